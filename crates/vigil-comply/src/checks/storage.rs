//! Storage: S3 buckets, EBS, RDS and EFS.

use serde_json::Value;
use vigil_model::Severity;

use crate::check::{Check, Input, Results, Status};
use crate::snapshot::Regional;

fn bucket_arn(name: &str) -> String {
    format!("arn:aws:s3:::{name}")
}

/// Per bucket, NOT_APPLICABLE when there are none; ERROR when the list was not read.
fn per_bucket(
    input: &Input,
    out: &mut Results,
    judge: impl Fn(&crate::snapshot::Bucket) -> (Status, String),
) {
    if out.unread(input, "s3", None) {
        return;
    }
    let buckets = &input.account.s3.buckets;
    if buckets.is_empty() {
        out.push(
            Status::NotApplicable,
            None,
            input.account_arn(),
            "no S3 buckets",
        );
    }
    for b in buckets {
        let (status, evidence) = judge(b);
        out.push(
            status,
            Some(&b.region),
            bucket_arn(&b.name),
            format!("{}: {evidence}", b.name),
        );
    }
}

fn values(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        v => vec![v],
    }
}

/// Whether a policy denies every request not made over TLS: a Deny of `s3:*` (or
/// `*`) to everyone when `aws:SecureTransport` is false.
pub fn denies_plain_http(policy: &Value) -> bool {
    values(&policy["Statement"]).into_iter().any(|s| {
        let everyone =
            s["Principal"] == "*" || values(&s["Principal"]["AWS"]).iter().any(|p| *p == "*");
        let all_actions = values(&s["Action"])
            .iter()
            .any(|a| *a == "s3:*" || *a == "*");
        let insecure = ["Bool", "BoolIfExists"].iter().any(|op| {
            let c = &s["Condition"][op];
            c.as_object().is_some_and(|m| {
                m.iter().any(|(k, v)| {
                    k.eq_ignore_ascii_case("aws:SecureTransport")
                        && values(v).iter().any(|x| *x == "false" || *x == false)
                })
            })
        });
        s["Effect"] == "Deny" && everyone && all_actions && insecure
    })
}

fn tls_only(input: &Input, out: &mut Results) {
    per_bucket(input, out, |b| match &b.policy {
        _ if b.errors.iter().any(|e| e.starts_with("GetBucketPolicy")) => {
            (Status::Error, "its policy could not be read".into())
        }
        None => (
            Status::Fail,
            "no bucket policy, so plain HTTP is allowed".into(),
        ),
        Some(p) if denies_plain_http(p) => (
            Status::Pass,
            "its policy denies requests without TLS".into(),
        ),
        Some(_) => (
            Status::Fail,
            "its policy does not deny requests without TLS".into(),
        ),
    });
}

fn mfa_delete(input: &Input, out: &mut Results) {
    per_bucket(input, out, |b| {
        if b.errors
            .iter()
            .any(|e| e.starts_with("GetBucketVersioning"))
        {
            return (Status::Error, "its versioning could not be read".into());
        }
        match (b.versioning.as_deref(), b.mfa_delete) {
            (Some("Enabled"), true) => (Status::Pass, "versioning with MFA delete".into()),
            (Some("Enabled"), false) => (Status::Fail, "versioning without MFA delete".into()),
            _ => (Status::Fail, "versioning (and so MFA delete) is off".into()),
        }
    });
}

fn account_public_access(input: &Input, out: &mut Results) {
    if out.unread(input, "s3control", None) {
        return;
    }
    let arn = format!("arn:aws:s3:::{}:account-public-access-block", input.id());
    match input.account.s3.account_public_access_block {
        Some(b) if b.all_on() => out.verdict(
            true,
            None,
            arn,
            "all four account-level Block Public Access settings are on",
        ),
        Some(b) => out.verdict(
            false,
            None,
            arn,
            format!("account-level Block Public Access is partial: {b:?}"),
        ),
        None => out.verdict(false, None, arn, "no account-level Block Public Access"),
    }
}

fn bucket_public_access(input: &Input, out: &mut Results) {
    let account_wide = input
        .account
        .s3
        .account_public_access_block
        .is_some_and(|b| b.all_on());
    per_bucket(input, out, |b| match b.public_access_block {
        _ if account_wide => (
            Status::Pass,
            "covered by the account-level Block Public Access".into(),
        ),
        Some(p) if p.all_on() => (
            Status::Pass,
            "all four Block Public Access settings are on".into(),
        ),
        Some(p) => (
            Status::Fail,
            format!("Block Public Access is partial: {p:?}"),
        ),
        None if b
            .errors
            .iter()
            .any(|e| e.starts_with("GetPublicAccessBlock")) =>
        {
            (
                Status::Error,
                "its Block Public Access could not be read".into(),
            )
        }
        None => (
            Status::Fail,
            "no Block Public Access on the bucket or the account".into(),
        ),
    });
}

/// One verdict per assessed region from `judge`, after the collection check.
pub(crate) fn per_region(
    input: &Input,
    out: &mut Results,
    service: &str,
    mut judge: impl FnMut(&str, &Regional, &mut Results),
) {
    let empty = Regional::default();
    for region in &input.account.regions {
        if out.unread(input, service, Some(region)) {
            continue;
        }
        let r = input.account.regional.get(region).unwrap_or(&empty);
        judge(region, r, out);
    }
}

fn ebs_default_encryption(input: &Input, out: &mut Results) {
    per_region(input, out, "ec2", |region, r, out| {
        let arn = format!("arn:aws:ec2:{region}:{}:ebs-default-encryption", input.id());
        match r.ebs_encryption_by_default {
            Some(on) => out.verdict(
                on,
                Some(region),
                arn,
                if on {
                    "EBS encryption by default is on"
                } else {
                    "EBS encryption by default is off"
                },
            ),
            None => out.push(
                Status::Error,
                Some(region),
                arn,
                "EBS encryption by default was not collected",
            ),
        }
    });
}

fn ebs_volumes_encrypted(input: &Input, out: &mut Results) {
    let mut any = false;
    per_region(input, out, "ec2", |region, r, out| {
        for v in &r.volumes {
            any = true;
            out.verdict(
                v.encrypted,
                Some(region),
                format!("arn:aws:ec2:{region}:{}:volume/{}", input.id(), v.id),
                if v.encrypted {
                    "encrypted"
                } else {
                    "not encrypted"
                },
            );
        }
    });
    if !any && out.items.is_empty() {
        out.push(
            Status::NotApplicable,
            None,
            input.account_arn(),
            "no EBS volumes",
        );
    }
}

/// Per RDS instance, NOT_APPLICABLE when there are none.
fn per_rds(
    input: &Input,
    out: &mut Results,
    judge: fn(&crate::snapshot::RdsInstance) -> (bool, &'static str),
) {
    let mut any = false;
    per_region(input, out, "rds", |region, r, out| {
        for db in &r.rds_instances {
            any = true;
            let (ok, evidence) = judge(db);
            out.verdict(
                ok,
                Some(region),
                db.arn.clone(),
                format!("{}: {evidence}", db.id),
            );
        }
    });
    if !any && out.items.is_empty() {
        out.push(
            Status::NotApplicable,
            None,
            input.account_arn(),
            "no RDS instances",
        );
    }
}

fn rds_encrypted(input: &Input, out: &mut Results) {
    per_rds(input, out, |db| {
        (
            db.storage_encrypted,
            if db.storage_encrypted {
                "storage encrypted"
            } else {
                "storage not encrypted"
            },
        )
    });
}

fn rds_minor_upgrades(input: &Input, out: &mut Results) {
    per_rds(input, out, |db| {
        (
            db.auto_minor_version_upgrade,
            if db.auto_minor_version_upgrade {
                "minor versions upgraded automatically"
            } else {
                "automatic minor version upgrade is off"
            },
        )
    });
}

fn rds_not_public(input: &Input, out: &mut Results) {
    per_rds(input, out, |db| {
        (
            !db.publicly_accessible,
            if db.publicly_accessible {
                "publicly accessible"
            } else {
                "not publicly accessible"
            },
        )
    });
}

fn efs_encrypted(input: &Input, out: &mut Results) {
    let mut any = false;
    per_region(input, out, "efs", |region, r, out| {
        for fs in &r.efs_file_systems {
            any = true;
            out.verdict(
                fs.encrypted,
                Some(region),
                fs.arn.clone(),
                format!(
                    "{}: {}",
                    fs.id,
                    if fs.encrypted {
                        "encrypted at rest"
                    } else {
                        "not encrypted at rest"
                    }
                ),
            );
        }
    });
    if !any && out.items.is_empty() {
        out.push(
            Status::NotApplicable,
            None,
            input.account_arn(),
            "no EFS file systems",
        );
    }
}

pub const CHECKS: &[Check] = &[
    Check {
        id: "s3_bucket_tls_only",
        title: "Bucket policies deny requests made without TLS",
        service: "s3",
        severity: Severity::Medium,
        remediation: "Add to the bucket policy a statement that denies s3:* to \"*\" on the bucket and its objects when aws:SecureTransport is false.",
        playbook: None,
        prowler: &["s3_bucket_secure_transport_policy"],
        run: tls_only,
    },
    Check {
        id: "s3_bucket_mfa_delete",
        title: "Buckets have versioning with MFA delete",
        service: "s3",
        severity: Severity::Low,
        remediation: "As the root user with its MFA: aws s3api put-bucket-versioning --bucket NAME --versioning-configuration Status=Enabled,MFADelete=Enabled --mfa 'SERIAL CODE'.",
        playbook: None,
        prowler: &["s3_bucket_no_mfa_delete"],
        run: mfa_delete,
    },
    Check {
        id: "s3_account_public_access_block",
        title: "Block Public Access is on for the whole account",
        service: "s3",
        severity: Severity::High,
        remediation: "aws s3control put-public-access-block --account-id ID --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true.",
        playbook: Some("PB-003"),
        prowler: &["s3_account_level_public_access_blocks"],
        run: account_public_access,
    },
    Check {
        id: "s3_bucket_public_access_block",
        title: "Every bucket has Block Public Access (its own or the account's)",
        service: "s3",
        severity: Severity::High,
        remediation: "aws s3api put-public-access-block --bucket NAME with all four settings true, or turn them on for the account.",
        playbook: Some("PB-003"),
        prowler: &["s3_bucket_level_public_access_block"],
        run: bucket_public_access,
    },
    Check {
        id: "ec2_ebs_default_encryption",
        title: "EBS encryption by default is on in every region",
        service: "ec2",
        severity: Severity::Medium,
        remediation: "aws ec2 enable-ebs-encryption-by-default in each region.",
        playbook: Some("PB-013"),
        prowler: &["ec2_ebs_default_encryption"],
        run: ebs_default_encryption,
    },
    Check {
        id: "ec2_ebs_volumes_encrypted",
        title: "EBS volumes are encrypted",
        service: "ec2",
        severity: Severity::Medium,
        remediation: "Snapshot the volume, copy the snapshot with encryption, create a volume from the copy and swap it in; turn on EBS encryption by default so new volumes are encrypted.",
        playbook: None,
        prowler: &["ec2_ebs_volume_encryption"],
        run: ebs_volumes_encrypted,
    },
    Check {
        id: "rds_storage_encrypted",
        title: "RDS instances encrypt their storage",
        service: "rds",
        severity: Severity::Medium,
        remediation: "Snapshot the instance, copy the snapshot with a KMS key, restore from the encrypted copy and move clients to it.",
        playbook: None,
        prowler: &["rds_instance_storage_encrypted"],
        run: rds_encrypted,
    },
    Check {
        id: "rds_auto_minor_version_upgrade",
        title: "RDS instances take minor version upgrades automatically",
        service: "rds",
        severity: Severity::Low,
        remediation: "aws rds modify-db-instance --db-instance-identifier ID --auto-minor-version-upgrade --apply-immediately.",
        playbook: None,
        prowler: &["rds_instance_minor_version_upgrade_enabled"],
        run: rds_minor_upgrades,
    },
    Check {
        id: "rds_not_public",
        title: "RDS instances are not publicly accessible",
        service: "rds",
        severity: Severity::High,
        remediation: "aws rds modify-db-instance --db-instance-identifier ID --no-publicly-accessible --apply-immediately.",
        playbook: None,
        prowler: &["rds_instance_no_public_access"],
        run: rds_not_public,
    },
    Check {
        id: "efs_encrypted",
        title: "EFS file systems are encrypted at rest",
        service: "efs",
        severity: Severity::Medium,
        remediation: "Create an encrypted file system, copy the data across (AWS DataSync), and move the mounts to it.",
        playbook: None,
        prowler: &["efs_encryption_at_rest_enabled"],
        run: efs_encrypted,
    },
];
