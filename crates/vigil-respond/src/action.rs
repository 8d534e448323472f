//! The actions a playbook step may name: for each, the parameters it takes, the AWS
//! API operations it makes, and whether it is hard to undo. This is the contract
//! between playbook files (checked against it when they load) and the crate that
//! calls AWS (which implements every action listed here); it does no IO itself.

/// Where an action's API lives, which decides the region it is called in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A global service (IAM): called in the partition's home region.
    Global,
    /// A regional service: called in the finding's region.
    Regional,
    /// AWS Organizations: called in the organization's management account.
    Organization,
    /// Vigil's own event bus output: called where Vigil publishes.
    Vigil,
}

/// One action of the catalogue.
#[derive(Debug)]
pub struct ActionSpec {
    pub name: &'static str,
    pub summary: &'static str,
    /// The AWS API operations it may make, in the order it makes them.
    pub calls: &'static [&'static str],
    pub required: &'static [&'static str],
    pub optional: &'static [&'static str],
    /// Hard or impossible to undo (stopping an instance, deleting a login
    /// profile): in a production account it waits for approval even in a fully
    /// automated playbook.
    pub destructive: bool,
    /// Safe to run again after a crash left it unknown whether it ran: it looks
    /// before it changes, so a second run changes nothing. An action that is not
    /// (each run makes a new snapshot, publishes a new event) is never run twice
    /// by the engine: a crash in the middle of one stops the run for a person.
    pub repeatable: bool,
    pub scope: Scope,
}

/// Actions are the same when their names are.
impl PartialEq for ActionSpec {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl ActionSpec {
    pub fn takes(&self, param: &str) -> bool {
        self.required.contains(&param) || self.optional.contains(&param)
    }
}

macro_rules! action {
    ($name:literal, $summary:literal, calls [$($c:literal),*], required [$($r:literal),*],
     optional [$($o:literal),*], destructive $d:literal, repeatable $i:literal, $scope:ident) => {
        ActionSpec {
            name: $name,
            summary: $summary,
            calls: &[$($c),*],
            required: &[$($r),*],
            optional: &[$($o),*],
            destructive: $d,
            repeatable: $i,
            scope: Scope::$scope,
        }
    };
}

/// Every action, by name.
pub const CATALOGUE: &[ActionSpec] = &[
    // IAM
    action!("iam.deactivate_access_key", "Set an access key Inactive (already inactive: nothing to do).",
        calls ["iam:ListAccessKeys", "iam:UpdateAccessKey"], required ["user_name", "access_key_id"],
        optional [], destructive false, repeatable true, Global),
    action!("iam.activate_access_key", "Set an access key Active again (the undo of deactivating it).",
        calls ["iam:UpdateAccessKey"], required ["user_name", "access_key_id"],
        optional [], destructive false, repeatable true, Global),
    action!("iam.attach_deny_all_policy", "Put an inline policy denying every action on a user or role.",
        calls ["iam:PutUserPolicy", "iam:PutRolePolicy"], required ["principal_arn"],
        optional ["policy_name"], destructive false, repeatable true, Global),
    action!("iam.revoke_older_sessions", "Put an inline policy on a role denying every session issued before now (aws:TokenIssueTime).",
        calls ["iam:PutRolePolicy"], required ["role_name"], optional ["policy_name", "issued_before"],
        destructive false, repeatable true, Global),
    action!("iam.remove_inline_policy", "Delete an inline policy Vigil put on a user or role (the undo of the deny policies).",
        calls ["iam:DeleteUserPolicy", "iam:DeleteRolePolicy"], required ["principal_arn"],
        optional ["policy_name"], destructive false, repeatable true, Global),
    action!("iam.detach_user_policy", "Detach a managed policy from a user (not attached: nothing to do).",
        calls ["iam:ListAttachedUserPolicies", "iam:DetachUserPolicy"], required ["user_name", "policy_arn"],
        optional [], destructive false, repeatable true, Global),
    action!("iam.set_default_policy_version", "Make an earlier version of a managed policy the default: the one given, else the newest before the current default.",
        calls ["iam:ListPolicyVersions", "iam:SetDefaultPolicyVersion"], required ["policy_arn"],
        optional ["version_id"], destructive false, repeatable true, Global),
    action!("iam.delete_login_profile", "Delete a user's console password (none: nothing to do).",
        calls ["iam:DeleteLoginProfile"], required ["user_name"], optional [], destructive true, repeatable true, Global),
    // EC2
    action!("ec2.quarantine_instance", "Replace an instance's security groups with a quarantine group that allows no traffic, created in its VPC if missing.",
        calls ["ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "ec2:CreateSecurityGroup", "ec2:RevokeSecurityGroupEgress", "ec2:ModifyInstanceAttribute"],
        required ["instance_id"], optional ["group_name"], destructive false, repeatable true, Regional),
    action!("ec2.snapshot_volumes", "Snapshot every EBS volume attached to an instance, tagged with the run.",
        calls ["ec2:DescribeInstances", "ec2:CreateSnapshot"], required ["instance_id"], optional ["description"],
        destructive false, repeatable false, Regional),
    action!("ec2.stop_instance", "Stop an instance (already stopped: nothing to do).",
        calls ["ec2:DescribeInstances", "ec2:StopInstances"], required ["instance_id"], optional [], destructive true, repeatable true, Regional),
    action!("ec2.tag_resources", "Tag EC2 resources.",
        calls ["ec2:CreateTags"], required ["resource_ids", "tags"], optional [], destructive false, repeatable true, Regional),
    action!("ec2.deny_in_network_acl", "Add a deny entry for a CIDR at the top of a subnet's network ACL (already there: nothing to do).",
        calls ["ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces", "ec2:DescribeNetworkAcls", "ec2:CreateNetworkAclEntry"],
        required ["cidr"],
        optional ["network_acl_id", "subnet_id", "instance_id", "network_interface_id", "rule_number", "egress"],
        destructive false, repeatable true, Regional),
    action!("ec2.revoke_security_group_ingress", "Revoke the ingress rules of a security group that are open to a CIDR (all ports, or one port range).",
        calls ["ec2:DescribeSecurityGroups", "ec2:RevokeSecurityGroupIngress"], required ["group_id"],
        optional ["cidr", "from_port", "to_port", "protocol"], destructive false, repeatable true, Regional),
    action!("ec2.make_snapshot_private", "Remove public (all) create-volume permission from an EBS snapshot.",
        calls ["ec2:DescribeSnapshotAttribute", "ec2:ModifySnapshotAttribute"], required ["snapshot_id"], optional [], destructive false, repeatable true, Regional),
    action!("ec2.make_image_private", "Remove public (all) launch permission from an AMI.",
        calls ["ec2:DescribeImageAttribute", "ec2:ModifyImageAttribute"], required ["image_id"], optional [], destructive false, repeatable true, Regional),
    action!("ec2.enable_ebs_default_encryption", "Turn on EBS encryption by default in the region.",
        calls ["ec2:GetEbsEncryptionByDefault", "ec2:EnableEbsEncryptionByDefault"], required [], optional [], destructive false, repeatable true, Regional),
    // S3
    action!("s3.block_bucket_public_access", "Turn on all four Block Public Access settings of a bucket.",
        calls ["s3:GetPublicAccessBlock", "s3:PutPublicAccessBlock"], required ["bucket"], optional [], destructive false, repeatable true, Regional),
    action!("s3.block_account_public_access", "Turn on all four Block Public Access settings of the account.",
        calls ["s3control:GetPublicAccessBlock", "s3control:PutPublicAccessBlock"], required [], optional [], destructive false, repeatable true, Regional),
    action!("s3.remove_public_statements", "Remove the statements of a bucket policy that allow anyone (Principal \"*\" without a narrowing condition); delete the policy if none is left.",
        calls ["s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"], required ["bucket"],
        optional [], destructive false, repeatable true, Regional),
    // CloudTrail, GuardDuty, KMS
    action!("cloudtrail.start_logging", "Start logging on a trail (already logging: nothing to do).",
        calls ["cloudtrail:GetTrailStatus", "cloudtrail:StartLogging"], required ["trail"], optional [],
        destructive false, repeatable true, Regional),
    action!("guardduty.enable_detector", "Enable the region's GuardDuty detector, creating one if there is none.",
        calls ["guardduty:ListDetectors", "guardduty:GetDetector", "guardduty:UpdateDetector", "guardduty:CreateDetector"], required [],
        optional ["detector_id"], destructive false, repeatable true, Regional),
    action!("kms.cancel_key_deletion", "Cancel a KMS key's scheduled deletion and enable the key again.",
        calls ["kms:DescribeKey", "kms:CancelKeyDeletion", "kms:EnableKey"], required ["key_id"], optional [],
        destructive false, repeatable true, Regional),
    // Organizations
    action!("organizations.deny_root_user", "Attach to a member account a service control policy denying every action by its root user (the policy is created once and shared).",
        calls ["organizations:ListPolicies", "organizations:CreatePolicy", "organizations:ListPoliciesForTarget", "organizations:AttachPolicy"],
        required ["account_id"], optional ["policy_name"], destructive false, repeatable true, Organization),
    // Vigil's own record
    action!("events.emit", "Publish the finding and its incident to the EventBridge bus as a Vigil event.",
        calls ["events:PutEvents"], required [], optional ["detail_type", "bus", "detail"], destructive false, repeatable false, Vigil),
];

/// The action named `name`.
pub fn action(name: &str) -> Option<&'static ActionSpec> {
    CATALOGUE.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parameters_not_both_required_and_optional() {
        let mut seen = std::collections::HashSet::new();
        for a in CATALOGUE {
            assert!(seen.insert(a.name), "{} twice", a.name);
            assert!(!a.calls.is_empty(), "{} makes no call", a.name);
            for r in a.required {
                assert!(!a.optional.contains(r), "{}: {r} both ways", a.name);
            }
        }
    }
}
