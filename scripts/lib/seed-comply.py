#!/usr/bin/env python3
"""Seeds an emulated AWS account (moto_server) for the compliance tests and the
Prowler comparison: `good` hardens everything the CIS AWS Foundations checks
look at that the emulator can hold; `bad` leaves or makes one known failure for
each. Run with the Python that has moto (and so boto3) installed.

    seed-comply.py --endpoint URL --state good|bad [--account ID] [--region R]

With --account, the account is entered through STS AssumeRole (as its own
administrator would); without it, the emulator's default account is seeded.
Prints one JSON line naming what was made."""

import argparse
import json
import sys

import boto3
from botocore.config import Config

MONITOR_PATTERNS = {
    "unauthorized": '{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }',
    "no-mfa": '{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") }',
    "root": '{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }',
    "iam": "{ " + " || ".join(f"($.eventName = {e})" for e in [
        "DeleteGroupPolicy", "DeleteRolePolicy", "DeleteUserPolicy", "PutGroupPolicy", "PutRolePolicy",
        "PutUserPolicy", "CreatePolicy", "DeletePolicy", "CreatePolicyVersion", "DeletePolicyVersion",
        "AttachRolePolicy", "DetachRolePolicy", "AttachUserPolicy", "DetachUserPolicy",
        "AttachGroupPolicy", "DetachGroupPolicy"]) + " }",
    "trail": "{ " + " || ".join(f"($.eventName = {e})" for e in [
        "CreateTrail", "UpdateTrail", "DeleteTrail", "StartLogging", "StopLogging"]) + " }",
    "auth-failures": '{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }',
    "kms": "{ ($.eventSource = kms.amazonaws.com) && (($.eventName = DisableKey) || ($.eventName = ScheduleKeyDeletion)) }",
    "s3-policy": "{ ($.eventSource = s3.amazonaws.com) && (" + " || ".join(f"($.eventName = {e})" for e in [
        "PutBucketAcl", "PutBucketPolicy", "PutBucketCors", "PutBucketLifecycle", "PutBucketReplication",
        "DeleteBucketPolicy", "DeleteBucketCors", "DeleteBucketLifecycle", "DeleteBucketReplication"]) + ") }",
    "config": "{ ($.eventSource = config.amazonaws.com) && (" + " || ".join(f"($.eventName = {e})" for e in [
        "StopConfigurationRecorder", "DeleteDeliveryChannel", "PutDeliveryChannel",
        "PutConfigurationRecorder"]) + ") }",
    "security-groups": "{ " + " || ".join(f"($.eventName = {e})" for e in [
        "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupIngress",
        "RevokeSecurityGroupEgress", "CreateSecurityGroup", "DeleteSecurityGroup"]) + " }",
    "nacls": "{ " + " || ".join(f"($.eventName = {e})" for e in [
        "CreateNetworkAcl", "CreateNetworkAclEntry", "DeleteNetworkAcl", "DeleteNetworkAclEntry",
        "ReplaceNetworkAclEntry", "ReplaceNetworkAclAssociation"]) + " }",
    "gateways": "{ " + " || ".join(f"($.eventName = {e})" for e in [
        "CreateCustomerGateway", "DeleteCustomerGateway", "AttachInternetGateway",
        "CreateInternetGateway", "DeleteInternetGateway", "DetachInternetGateway"]) + " }",
    "route-tables": "{ ($.eventSource = ec2.amazonaws.com) && (" + " || ".join(f"($.eventName = {e})" for e in [
        "CreateRoute", "CreateRouteTable", "ReplaceRoute", "ReplaceRouteTableAssociation",
        "DeleteRouteTable", "DeleteRoute", "DisassociateRouteTable"]) + ") }",
    "vpcs": "{ " + " || ".join(f"($.eventName = {e})" for e in [
        "CreateVpc", "DeleteVpc", "ModifyVpcAttribute", "AcceptVpcPeeringConnection",
        "CreateVpcPeeringConnection", "DeleteVpcPeeringConnection", "RejectVpcPeeringConnection",
        "AttachClassicLinkVpc", "DetachClassicLinkVpc", "DisableVpcClassicLink",
        "EnableVpcClassicLink"]) + " }",
    "organizations": "{ ($.eventSource = organizations.amazonaws.com) && (" + " || ".join(f"($.eventName = {e})" for e in [
        "AcceptHandshake", "AttachPolicy", "CreateAccount", "CreateOrganizationalUnit", "CreatePolicy",
        "DeclineHandshake", "DeleteOrganization", "DeleteOrganizationalUnit", "DeletePolicy",
        "DetachPolicy", "DisablePolicyType", "EnablePolicyType", "InviteAccountToOrganization",
        "LeaveOrganization", "MoveAccount", "RemoveAccountFromOrganization", "UpdatePolicy",
        "UpdateOrganizationalUnit"]) + ") }",
}

# A self-signed certificate body: the emulator stores it without reading it
# (and reports every server certificate as expired in 2012).
CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUBm9jaw==\n-----END CERTIFICATE-----"
KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----"


def tls_only(bucket, logs_from=None):
    statements = [{
        "Sid": "DenyWithoutTls",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }]
    if logs_from:
        # What S3's log delivery needs to write access logs here.
        statements.append({
            "Sid": "AccessLogs",
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{logs_from}"}},
        })
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--state", choices=["good", "bad"], required=True)
    p.add_argument("--account")
    p.add_argument("--region", default="us-east-1")
    a = p.parse_args()

    base = dict(endpoint_url=a.endpoint, region_name=a.region,
                aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    if a.account:
        c = boto3.client("sts", **base).assume_role(
            RoleArn=f"arn:aws:iam::{a.account}:role/Admin", RoleSessionName="seed")["Credentials"]
        base.update(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                    aws_session_token=c["SessionToken"])
    # Buckets in the path and no account-id host prefix for S3 Control: the
    # emulator's host has no subdomains.
    configs = {"s3": Config(s3={"addressing_style": "path"}),
               "s3control": Config(inject_host_prefix=False)}
    cl = lambda name: boto3.client(name, config=configs.get(name), **base)  # noqa: E731
    account = cl("sts").get_caller_identity()["Account"]
    region = a.region
    good = a.state == "good"
    tag = a.state
    made = {"account": account, "state": a.state}

    iam, s3, s3c, ec2 = cl("iam"), cl("s3"), cl("s3control"), cl("ec2")

    # S3 Control's endpoint rules put the account id in front of any host, the
    # emulator's too: take it off again before the request is signed.
    def unprefix(request, **_):
        request.url = request.url.replace(f"//{account}.", "//", 1)
    s3c.meta.events.register("before-sign.s3-control.*", unprefix)

    # ---- IAM
    if good:
        iam.update_account_password_policy(
            MinimumPasswordLength=14, PasswordReusePrevention=24, RequireSymbols=True,
            RequireNumbers=True, RequireUppercaseCharacters=True, RequireLowercaseCharacters=True,
            MaxPasswordAge=90)
        iam.create_group(GroupName="readers")
        limited = iam.create_policy(PolicyName="read-logs", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["logs:Get*"], "Resource": "*"}]}))
        iam.attach_group_policy(GroupName="readers", PolicyArn=limited["Policy"]["Arn"])
        # A console user with MFA, in a group.
        iam.create_user(UserName="alice")
        iam.create_login_profile(UserName="alice", Password="Correct-Horse-9-Battery!")
        iam.add_user_to_group(GroupName="readers", UserName="alice")
        mfa = iam.create_virtual_mfa_device(VirtualMFADeviceName="alice")
        iam.enable_mfa_device(UserName="alice", SerialNumber=mfa["VirtualMFADevice"]["SerialNumber"],
                              AuthenticationCode1="123456", AuthenticationCode2="654321")
        # A programmatic user with one key.
        iam.create_user(UserName="ci")
        iam.create_access_key(UserName="ci")
        # The support role.
        iam.create_role(RoleName="Support", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                           "Action": "sts:AssumeRole"}]}))
        iam.attach_role_policy(RoleName="Support",
                               PolicyArn="arn:aws:iam::aws:policy/AWSSupportAccess")
    else:
        iam.update_account_password_policy(MinimumPasswordLength=8, PasswordReusePrevention=3)
        # A console user without MFA, with an access key made with it and never
        # used, and a policy of its own.
        iam.create_user(UserName="bob")
        iam.create_login_profile(UserName="bob", Password="Correct-Horse-9-Battery!")
        iam.create_access_key(UserName="bob")
        admin = iam.create_policy(PolicyName="everything", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        iam.attach_user_policy(UserName="bob", PolicyArn=admin["Policy"]["Arn"])
        # A programmatic user with two active keys.
        iam.create_user(UserName="ci")
        iam.create_access_key(UserName="ci")
        iam.create_access_key(UserName="ci")
        iam.upload_server_certificate(ServerCertificateName="old-site", CertificateBody=CERT,
                                      PrivateKey=KEY)

    # ---- S3
    trail_bucket = f"trail-{tag}-{account}"
    log_bucket = f"access-logs-{tag}-{account}"
    data_bucket = f"data-{tag}-{account}"
    for b in (trail_bucket, log_bucket, data_bucket):
        if region == "us-east-1":
            s3.create_bucket(Bucket=b)
        else:
            s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": region})
    if good:
        s3c.put_public_access_block(AccountId=account, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
        for b in (trail_bucket, log_bucket, data_bucket):
            s3.put_bucket_policy(Bucket=b, Policy=tls_only(b, trail_bucket if b == log_bucket else None))
            s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_logging(Bucket=trail_bucket, BucketLoggingStatus={"LoggingEnabled": {
            "TargetBucket": log_bucket, "TargetPrefix": "trail/"}})
    else:
        # A partial block on one bucket, none on the account.
        s3.put_public_access_block(Bucket=data_bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False,
            "RestrictPublicBuckets": False})

    # ---- KMS
    kms = cl("kms")
    key = kms.create_key(Description=f"{tag} key")["KeyMetadata"]
    if good:
        kms.enable_key_rotation(KeyId=key["KeyId"])

    # ---- CloudWatch Logs, alarms, SNS: the monitoring section.
    logs, cw, sns = cl("logs"), cl("cloudwatch"), cl("sns")
    group = f"cloudtrail-{tag}"
    logs.create_log_group(logGroupName=group)
    group_arn = f"arn:aws:logs:{region}:{account}:log-group:{group}:*"
    if good:
        topic = sns.create_topic(Name="security-alarms")["TopicArn"]
        queue = cl("sqs").create_queue(QueueName="security-alarms")["QueueUrl"]
        queue_arn = cl("sqs").get_queue_attributes(
            QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        for name, pattern in MONITOR_PATTERNS.items():
            logs.put_metric_filter(logGroupName=group, filterName=f"cis-{name}", filterPattern=pattern,
                                   metricTransformations=[{"metricName": f"cis-{name}",
                                                           "metricNamespace": "CISBenchmark",
                                                           "metricValue": "1"}])
            cw.put_metric_alarm(AlarmName=f"cis-{name}", MetricName=f"cis-{name}",
                                Namespace="CISBenchmark", Statistic="Sum", Period=300,
                                EvaluationPeriods=1, Threshold=1.0,
                                ComparisonOperator="GreaterThanOrEqualToThreshold",
                                AlarmActions=[topic])

    # ---- CloudTrail
    ct = cl("cloudtrail")
    if good:
        ct.create_trail(Name="org-trail", S3BucketName=trail_bucket, IsMultiRegionTrail=True,
                        EnableLogFileValidation=True, KmsKeyId=key["Arn"],
                        CloudWatchLogsLogGroupArn=group_arn,
                        CloudWatchLogsRoleArn=f"arn:aws:iam::{account}:role/CloudTrailToLogs")
        ct.put_event_selectors(TrailName="org-trail", EventSelectors=[{
            "ReadWriteType": "All", "IncludeManagementEvents": True,
            "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}]}])
        ct.start_logging(Name="org-trail")
    else:
        ct.create_trail(Name="one-region", S3BucketName=trail_bucket)
        ct.start_logging(Name="one-region")

    # ---- Config
    if good:
        cfg = cl("config")
        cfg.put_configuration_recorder(ConfigurationRecorder={
            "name": "default", "roleARN": f"arn:aws:iam::{account}:role/config",
            "recordingGroup": {"allSupported": True, "includeGlobalResourceTypes": True}})
        cfg.put_delivery_channel(DeliveryChannel={"name": "default", "s3BucketName": log_bucket})
        cfg.start_configuration_recorder(ConfigurationRecorderName="default")

    # ---- Security Hub
    if good:
        cl("securityhub").enable_security_hub()

    # ---- EC2 and VPC
    if good:
        ec2.enable_ebs_encryption_by_default()
    vpcs = [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]]
    for g in ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]:
        if good:
            if g["IpPermissions"]:
                ec2.revoke_security_group_ingress(GroupId=g["GroupId"], IpPermissions=g["IpPermissions"])
            if g["IpPermissionsEgress"]:
                ec2.revoke_security_group_egress(GroupId=g["GroupId"], IpPermissions=g["IpPermissionsEgress"])
    for n in ec2.describe_network_acls()["NetworkAcls"]:
        if good:
            for e in n["Entries"]:
                if not e["Egress"] and e["RuleAction"] == "allow" and e["RuleNumber"] < 32767:
                    ec2.delete_network_acl_entry(NetworkAclId=n["NetworkAclId"],
                                                 RuleNumber=e["RuleNumber"], Egress=False)
            ec2.create_network_acl_entry(NetworkAclId=n["NetworkAclId"], RuleNumber=100,
                                         Protocol="6", RuleAction="allow", Egress=False,
                                         CidrBlock="10.0.0.0/8", PortRange={"From": 22, "To": 22})
            ec2.create_network_acl_entry(NetworkAclId=n["NetworkAclId"], RuleNumber=110,
                                         Protocol="6", RuleAction="allow", Egress=False,
                                         CidrBlock="0.0.0.0/0", PortRange={"From": 443, "To": 443})
    if good:
        ec2.create_flow_logs(ResourceIds=vpcs, ResourceType="VPC", TrafficType="ALL",
                             LogDestinationType="s3", LogDestination=f"arn:aws:s3:::{log_bucket}")
    vpc = vpcs[0]
    sg = ec2.create_security_group(GroupName=f"app-{tag}", Description="app", VpcId=vpc)["GroupId"]
    if good:
        ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
             "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}])
    else:
        ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "tcp", "FromPort": 3389, "ToPort": 3389, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
            {"IpProtocol": "tcp", "FromPort": 445, "ToPort": 445, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"][0]
    zone = subnet["AvailabilityZone"]
    ec2.create_volume(AvailabilityZone=zone, Size=8, Encrypted=good)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    run = dict(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
               SubnetId=subnet["SubnetId"], SecurityGroupIds=[sg],
               MetadataOptions={"HttpTokens": "required" if good else "optional",
                                "HttpEndpoint": "enabled"})
    if good:
        iam.create_role(RoleName="app", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                           "Action": "sts:AssumeRole"}]}))
        iam.create_instance_profile(InstanceProfileName="app")
        iam.add_role_to_instance_profile(InstanceProfileName="app", RoleName="app")
        run["IamInstanceProfile"] = {"Name": "app"}
        run["BlockDeviceMappings"] = [{"DeviceName": "/dev/sda1",
                                       "Ebs": {"VolumeSize": 8, "Encrypted": True}}]
    ec2.run_instances(**run)

    # ---- RDS and EFS
    cl("rds").create_db_instance(
        DBInstanceIdentifier=f"db-{tag}", DBInstanceClass="db.t3.micro", Engine="postgres",
        MasterUsername="admin_user", MasterUserPassword="Correct-Horse-9",
        AllocatedStorage=20, StorageEncrypted=good, AutoMinorVersionUpgrade=good,
        PubliclyAccessible=not good)
    cl("efs").create_file_system(CreationToken=f"fs-{tag}", Encrypted=good)

    if good:
        # Whatever made keys of its own along the way rotates them too.
        for k in kms.list_keys()["Keys"]:
            m = kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]
            if m["KeyManager"] == "CUSTOMER" and m.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT":
                kms.enable_key_rotation(KeyId=k["KeyId"])

    made.update(buckets=[trail_bucket, log_bucket, data_bucket], security_group=sg)
    print(json.dumps(made))


if __name__ == "__main__":
    sys.exit(main())
