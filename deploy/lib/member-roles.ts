// The two roles Vigil assumes in every member account, deployed there by a
// StackSet: the response role (the actions the playbooks take, and no more)
// and the read-only audit role (compliance). Both trust only the Vigil
// service's role in the security tooling account, with the external id.

import { CfnParameter, Stack, StackProps } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";

export const RESPONSE_ROLE = "VigilResponder";
export const AUDIT_ROLE = "VigilAudit";

// What `crates/vigil-aws` calls in a member account, by IAM action name (the
// S3 public-access-block calls are `s3:*PublicAccessBlock` to IAM).
export const RESPONSE_ACTIONS = [
  "cloudtrail:GetTrailStatus",
  "cloudtrail:StartLogging",
  "ec2:CreateNetworkAclEntry",
  "ec2:CreateSecurityGroup",
  "ec2:CreateSnapshot",
  "ec2:CreateTags",
  "ec2:DescribeImageAttribute",
  "ec2:DescribeInstances",
  "ec2:DescribeNetworkAcls",
  "ec2:DescribeNetworkInterfaces",
  "ec2:DescribeRegions",
  "ec2:DescribeSecurityGroups",
  "ec2:DescribeSnapshotAttribute",
  "ec2:EnableEbsEncryptionByDefault",
  "ec2:GetEbsEncryptionByDefault",
  "ec2:ModifyImageAttribute",
  "ec2:ModifyInstanceAttribute",
  "ec2:ModifySnapshotAttribute",
  "ec2:RevokeSecurityGroupEgress",
  "ec2:RevokeSecurityGroupIngress",
  "ec2:StopInstances",
  "guardduty:CreateDetector",
  "guardduty:GetDetector",
  "guardduty:ListDetectors",
  "guardduty:UpdateDetector",
  "iam:DeleteLoginProfile",
  "iam:DeleteRolePolicy",
  "iam:DeleteUserPolicy",
  "iam:DetachUserPolicy",
  "iam:ListAccessKeys",
  "iam:ListAttachedUserPolicies",
  "iam:ListPolicyVersions",
  "iam:PutRolePolicy",
  "iam:PutUserPolicy",
  "iam:SetDefaultPolicyVersion",
  "iam:UpdateAccessKey",
  "kms:CancelKeyDeletion",
  "kms:DescribeKey",
  "kms:EnableKey",
  "s3:DeleteBucketPolicy",
  "s3:GetBucketPolicy",
  "s3:GetBucketPublicAccessBlock",
  "s3:PutBucketPolicy",
  "s3:PutBucketPublicAccessBlock",
  "s3:GetAccountPublicAccessBlock",
  "s3:PutAccountPublicAccessBlock",
];

export interface MemberRolesProps extends StackProps {
  /** The security tooling account, where the Vigil service runs. */
  readonly securityAccount: string;
  /** The name of the Vigil service's role there. */
  readonly serviceRoleName: string;
}

export class MemberRolesStack extends Stack {
  constructor(scope: Construct, id: string, props: MemberRolesProps) {
    super(scope, id, props);
    const externalId = new CfnParameter(this, "ExternalId", {
      type: "String",
      minLength: 16,
      noEcho: true,
      description: "What the roles' trust policies require Vigil to present",
    });
    const trusted = new iam.ArnPrincipal(
      `arn:${this.partition}:iam::${props.securityAccount}:role/${props.serviceRoleName}`,
    ).withConditions({ StringEquals: { "sts:ExternalId": externalId.valueAsString } });

    const responder = new iam.Role(this, "Responder", {
      roleName: RESPONSE_ROLE,
      assumedBy: trusted,
      description: "Vigil's playbooks act in this account through this role",
      maxSessionDuration: undefined,
    });
    // The actions are the playbooks'; their resources are whatever a finding
    // names (any user, instance, bucket of the account), so they cannot be
    // narrowed here. Destructive steps wait for approval in Vigil itself.
    responder.addToPolicy(
      new iam.PolicyStatement({ actions: RESPONSE_ACTIONS, resources: ["*"] }),
    );
    NagSuppressions.addResourceSuppressions(
      responder,
      [
        {
          id: "AwsSolutions-IAM5",
          reason:
            "Playbook actions act on the resource a finding names, which may be any of the account's; the action list is exactly what the playbooks call",
        },
      ],
      true,
    );

    const audit = new iam.Role(this, "Audit", {
      roleName: AUDIT_ROLE,
      assumedBy: trusted,
      description: "Vigil reads this account's configuration for compliance through this role",
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName("SecurityAudit"),
        iam.ManagedPolicy.fromAwsManagedPolicyName("job-function/ViewOnlyAccess"),
      ],
    });
    NagSuppressions.addResourceSuppressions(audit, [
      {
        id: "AwsSolutions-IAM4",
        reason:
          "SecurityAudit and ViewOnlyAccess are AWS's read-only policies for exactly this use, kept current by AWS as services add read calls",
      },
    ]);
  }
}
