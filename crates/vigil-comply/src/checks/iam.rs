//! Identity and access management: the root user, passwords, keys, policies.

use serde_json::Value;
use vigil_model::Severity;

use crate::check::{Check, Input, Results, Status};
use crate::snapshot::CredentialRow;

/// Root used within this many days counts as everyday use.
const ROOT_USE_DAYS: i64 = 1;
/// Credentials unused this long are to be disabled (CIS: 45 days).
const UNUSED_DAYS: i64 = 45;
/// Keys are to be rotated within this many days.
const ROTATION_DAYS: i64 = 90;

fn root<'a>(input: &Input<'a>) -> Option<&'a CredentialRow> {
    input
        .account
        .iam
        .credential_report
        .iter()
        .find(|r| r.is_root())
}

fn users<'a>(input: &Input<'a>) -> impl Iterator<Item = &'a CredentialRow> {
    input
        .account
        .iam
        .credential_report
        .iter()
        .filter(|r| !r.is_root())
}

/// `AccountMFAEnabled`-style summary flag, if the summary has it.
fn summary(input: &Input, key: &str) -> Option<i64> {
    input.account.iam.account_summary.get(key).copied()
}

fn root_no_access_key(input: &Input, out: &mut Results) {
    if out.unread(input, "iam", None) {
        return;
    }
    let from_report = root(input).map(|r| r.access_key_1_active || r.access_key_2_active);
    let from_summary = summary(input, "AccountAccessKeysPresent").map(|n| n > 0);
    match from_summary.or(from_report) {
        Some(has) => out.verdict(
            !has,
            None,
            input.account_arn(),
            if has {
                "the root user has an access key"
            } else {
                "the root user has no access key"
            },
        ),
        None => out.push(
            Status::Error,
            None,
            input.account_arn(),
            "neither the account summary nor the credential report was collected",
        ),
    }
}

fn root_mfa_on(input: &Input) -> Option<bool> {
    summary(input, "AccountMFAEnabled")
        .map(|n| n == 1)
        .or_else(|| root(input).map(|r| r.mfa_active))
}

fn root_mfa(input: &Input, out: &mut Results) {
    if out.unread(input, "iam", None) {
        return;
    }
    match root_mfa_on(input) {
        Some(on) => out.verdict(
            on,
            None,
            input.account_arn(),
            if on {
                "MFA is enabled for the root user"
            } else {
                "MFA is not enabled for the root user"
            },
        ),
        None => out.push(
            Status::Error,
            None,
            input.account_arn(),
            "neither the account summary nor the credential report was collected",
        ),
    }
}

fn root_hardware_mfa(input: &Input, out: &mut Results) {
    if out.unread(input, "iam", None) {
        return;
    }
    let Some(on) = root_mfa_on(input) else {
        out.push(
            Status::Error,
            None,
            input.account_arn(),
            "neither the account summary nor the credential report was collected",
        );
        return;
    };
    // The root user's virtual device is listed with the root ARN as its user, or
    // under the serial AWS gives it.
    let virtual_root = input.account.iam.virtual_mfa_devices.iter().any(|d| {
        d.user_arn.as_deref().is_some_and(|a| a.ends_with(":root"))
            || d.serial_number.ends_with("/root-account-mfa-device")
    });
    let evidence = match (on, virtual_root) {
        (false, _) => "the root user has no MFA at all",
        (true, true) => "the root user's MFA is a virtual device",
        (true, false) => "the root user's MFA is a hardware device",
    };
    out.verdict(on && !virtual_root, None, input.account_arn(), evidence);
}

fn root_not_used(input: &Input, out: &mut Results) {
    if out.unread(input, "iam", None) {
        return;
    }
    let Some(r) = root(input) else {
        out.push(
            Status::Error,
            None,
            input.account_arn(),
            "the credential report has no root row",
        );
        return;
    };
    let uses = [
        ("password", r.password_last_used),
        ("access key 1", r.access_key_1_last_used),
        ("access key 2", r.access_key_2_last_used),
    ];
    let recent: Vec<String> = uses
        .iter()
        .filter_map(|(what, t)| {
            t.filter(|t| input.days_since(*t) < ROOT_USE_DAYS)
                .map(|t| format!("{what} used at {t}"))
        })
        .collect();
    if recent.is_empty() {
        out.pass_root(
            input,
            format!("the root user was not used in the last {ROOT_USE_DAYS} day(s)"),
        );
    } else {
        out.verdict(
            false,
            None,
            r.arn.clone(),
            format!("the root user was used recently: {}", recent.join(", ")),
        );
    }
}

impl Results {
    fn pass_root(&mut self, input: &Input, evidence: String) {
        self.verdict(true, None, input.account_arn(), evidence);
    }
}

fn password_policy(
    input: &Input,
    out: &mut Results,
    what: &str,
    min: i64,
    get: fn(&crate::snapshot::PasswordPolicy) -> Option<i64>,
) {
    if out.unread(input, "iam", None) {
        return;
    }
    let arn = format!("arn:aws:iam::{}:account-password-policy", input.id());
    match input.account.iam.password_policy.as_ref() {
        None => out.verdict(false, None, arn, "the account has no password policy"),
        Some(p) => match get(p) {
            Some(n) if n >= min => out.verdict(true, None, arn, format!("{what} is {n}")),
            Some(n) => out.verdict(false, None, arn, format!("{what} is {n}, under {min}")),
            None => out.verdict(
                false,
                None,
                arn,
                format!("the password policy sets no {what}"),
            ),
        },
    }
}

fn password_length(input: &Input, out: &mut Results) {
    password_policy(input, out, "the minimum length", 14, |p| p.minimum_length);
}

fn password_reuse(input: &Input, out: &mut Results) {
    password_policy(
        input,
        out,
        "the number of previous passwords remembered",
        24,
        |p| p.reuse_prevention,
    );
}

/// One result per IAM user, or NOT_APPLICABLE for an account without users.
fn per_user(
    input: &Input,
    out: &mut Results,
    judge: impl Fn(&CredentialRow) -> Option<(bool, String)>,
) {
    if out.unread(input, "iam", None) {
        return;
    }
    let mut judged = 0;
    for u in users(input) {
        if let Some((ok, evidence)) = judge(u) {
            out.verdict(ok, None, u.arn.clone(), format!("{}: {evidence}", u.user));
            judged += 1;
        }
    }
    if judged == 0 {
        out.push(
            Status::NotApplicable,
            None,
            input.account_arn(),
            "no IAM user this check applies to",
        );
    }
}

fn console_user_mfa(input: &Input, out: &mut Results) {
    per_user(input, out, |u| {
        u.password_enabled.then(|| {
            (
                u.mfa_active,
                if u.mfa_active {
                    "console password with MFA".to_owned()
                } else {
                    "console password without MFA".to_owned()
                },
            )
        })
    });
}

fn no_initial_access_key(input: &Input, out: &mut Results) {
    per_user(input, out, |u| {
        if !u.password_enabled {
            return None;
        }
        let unused = |active: bool, used: Option<vigil_model::Timestamp>| active && used.is_none();
        let bad = unused(u.access_key_1_active, u.access_key_1_last_used)
            || unused(u.access_key_2_active, u.access_key_2_last_used);
        Some((
            !bad,
            if bad {
                "a console user with an active access key never used (made at set-up?)".to_owned()
            } else {
                "no unused access key beside the console password".to_owned()
            },
        ))
    });
}

fn credentials_unused(input: &Input, out: &mut Results) {
    per_user(input, out, |u| {
        let mut stale = Vec::new();
        if u.password_enabled {
            let last = u
                .password_last_used
                .or(u.password_last_changed)
                .or(u.user_creation_time);
            if let Some(t) = last.filter(|t| input.days_since(*t) >= UNUSED_DAYS) {
                stale.push(format!("password unused since {t}"));
            }
        }
        for (n, active, used, rotated) in [
            (
                1,
                u.access_key_1_active,
                u.access_key_1_last_used,
                u.access_key_1_last_rotated,
            ),
            (
                2,
                u.access_key_2_active,
                u.access_key_2_last_used,
                u.access_key_2_last_rotated,
            ),
        ] {
            if !active {
                continue;
            }
            if let Some(t) = used
                .or(rotated)
                .filter(|t| input.days_since(*t) >= UNUSED_DAYS)
            {
                stale.push(format!("access key {n} unused since {t}"));
            }
        }
        if !u.password_enabled && !u.access_key_1_active && !u.access_key_2_active {
            return None;
        }
        Some(if stale.is_empty() {
            (
                true,
                format!("every credential used within {UNUSED_DAYS} days"),
            )
        } else {
            (false, stale.join("; "))
        })
    });
}

fn single_active_key(input: &Input, out: &mut Results) {
    per_user(input, out, |u| {
        let both = u.access_key_1_active && u.access_key_2_active;
        Some((
            !both,
            if both {
                "two active access keys".to_owned()
            } else {
                "at most one active access key".to_owned()
            },
        ))
    });
}

fn keys_rotated(input: &Input, out: &mut Results) {
    per_user(input, out, |u| {
        let mut old = Vec::new();
        for (n, active, rotated) in [
            (1, u.access_key_1_active, u.access_key_1_last_rotated),
            (2, u.access_key_2_active, u.access_key_2_last_rotated),
        ] {
            if let Some(t) = rotated.filter(|t| active && input.days_since(*t) >= ROTATION_DAYS) {
                old.push(format!("access key {n} last rotated {t}"));
            }
        }
        if !u.access_key_1_active && !u.access_key_2_active {
            return None;
        }
        Some(if old.is_empty() {
            (
                true,
                format!("active keys rotated within {ROTATION_DAYS} days"),
            )
        } else {
            (false, old.join("; "))
        })
    });
}

fn no_user_policies(input: &Input, out: &mut Results) {
    if out.unread(input, "iam", None) {
        return;
    }
    let users = &input.account.iam.users;
    if users.is_empty() {
        out.push(
            Status::NotApplicable,
            None,
            input.account_arn(),
            "no IAM users",
        );
    }
    for u in users {
        let n = u.attached_policies.len() + u.inline_policies.len();
        out.verdict(
            n == 0,
            None,
            u.arn.clone(),
            if n == 0 {
                format!("{}: permissions only through groups", u.name)
            } else {
                format!(
                    "{}: {} policies on the user itself ({})",
                    u.name,
                    n,
                    u.attached_policies
                        .iter()
                        .map(|a| a.rsplit('/').next().unwrap_or(a))
                        .chain(u.inline_policies.iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        );
    }
}

/// Whether a policy document allows every action on every resource.
pub fn allows_everything(doc: &Value) -> bool {
    let statements = match &doc["Statement"] {
        Value::Array(a) => a.iter().collect::<Vec<_>>(),
        s @ Value::Object(_) => vec![s],
        _ => return false,
    };
    let has_star = |v: &Value| match v {
        Value::String(s) => s == "*",
        Value::Array(a) => a.iter().any(|x| x == "*"),
        _ => false,
    };
    statements.iter().any(|s| {
        s["Effect"] == "Allow"
            && has_star(&s["Action"])
            && has_star(&s["Resource"])
            && s.get("Condition").is_none()
    })
}

fn no_full_admin_policies(input: &Input, out: &mut Results) {
    if out.unread(input, "iam", None) {
        return;
    }
    let attached: Vec<_> = input
        .account
        .iam
        .policies
        .iter()
        .filter(|p| p.attachment_count > 0)
        .collect();
    if attached.is_empty() {
        out.push(
            Status::NotApplicable,
            None,
            input.account_arn(),
            "no attached managed policies",
        );
    }
    for p in attached {
        let all = allows_everything(&p.document);
        out.verdict(
            !all,
            None,
            p.arn.clone(),
            if all {
                format!(
                    "{} allows \"*\" on \"*\" and is attached {} time(s)",
                    p.name, p.attachment_count
                )
            } else {
                format!("{} does not allow \"*\" on \"*\"", p.name)
            },
        );
    }
}

fn support_role(input: &Input, out: &mut Results) {
    if out.unread(input, "iam", None) {
        return;
    }
    let roles = &input.account.iam.support_roles;
    out.verdict(
        !roles.is_empty(),
        None,
        "arn:aws:iam::aws:policy/AWSSupportAccess",
        if roles.is_empty() {
            "AWSSupportAccess is attached to no role".to_owned()
        } else {
            format!("AWSSupportAccess is attached to {}", roles.join(", "))
        },
    );
}

fn no_expired_certificates(input: &Input, out: &mut Results) {
    if out.unread(input, "iam", None) {
        return;
    }
    let certs = &input.account.iam.server_certificates;
    if certs.is_empty() {
        out.push(
            Status::NotApplicable,
            None,
            input.account_arn(),
            "no IAM server certificates",
        );
    }
    for c in certs {
        let expired = c
            .expiration
            .is_some_and(|t| t.as_millis() < input.now.as_millis());
        out.verdict(
            !expired,
            None,
            c.arn.clone(),
            match c.expiration {
                Some(t) if expired => format!("{} expired at {t}", c.name),
                Some(t) => format!("{} expires at {t}", c.name),
                None => format!("{} has no expiry date", c.name),
            },
        );
    }
}

fn access_analyzer(input: &Input, out: &mut Results) {
    for region in &input.account.regions {
        if out.unread(input, "accessanalyzer", Some(region)) {
            continue;
        }
        let analyzers = input
            .account
            .regional
            .get(region)
            .map(|r| r.access_analyzers.as_slice())
            .unwrap_or_default();
        let active: Vec<&str> = analyzers
            .iter()
            .filter(|a| a.status == "ACTIVE")
            .map(|a| a.name.as_str())
            .collect();
        out.verdict(
            !active.is_empty(),
            Some(region),
            format!("arn:aws:access-analyzer:{region}:{}:analyzer", input.id()),
            if active.is_empty() {
                "no active IAM Access Analyzer".to_owned()
            } else {
                format!("active analyzer(s): {}", active.join(", "))
            },
        );
    }
}

pub const CHECKS: &[Check] = &[
    Check {
        id: "iam_root_no_access_key",
        title: "The root user has no access key",
        service: "iam",
        severity: Severity::Critical,
        remediation: "Sign in as the root user, open Security credentials, and delete its access keys; use IAM roles or users for programmatic access.",
        playbook: None,
        prowler: &["iam_no_root_access_key"],
        run: root_no_access_key,
    },
    Check {
        id: "iam_root_mfa",
        title: "MFA is enabled for the root user",
        service: "iam",
        severity: Severity::Critical,
        remediation: "Sign in as the root user and assign an MFA device under Security credentials.",
        playbook: None,
        prowler: &["iam_root_mfa_enabled"],
        run: root_mfa,
    },
    Check {
        id: "iam_root_hardware_mfa",
        title: "The root user's MFA is a hardware device",
        service: "iam",
        severity: Severity::Critical,
        remediation: "Replace the root user's virtual MFA with a hardware key or token kept under dual control.",
        playbook: None,
        prowler: &["iam_root_hardware_mfa_enabled"],
        run: root_hardware_mfa,
    },
    Check {
        id: "iam_root_not_used",
        title: "The root user is not used for everyday tasks",
        service: "iam",
        severity: Severity::High,
        remediation: "Find out who used the root user and why (CloudTrail, userIdentity.type Root); give that work to an IAM role and keep the root credentials locked away.",
        playbook: Some("PB-006"),
        prowler: &["iam_avoid_root_usage"],
        run: root_not_used,
    },
    Check {
        id: "iam_password_min_length_14",
        title: "The password policy requires at least 14 characters",
        service: "iam",
        severity: Severity::Medium,
        remediation: "aws iam update-account-password-policy --minimum-password-length 14 (with the policy's other settings).",
        playbook: None,
        prowler: &["iam_password_policy_minimum_length_14"],
        run: password_length,
    },
    Check {
        id: "iam_password_reuse_24",
        title: "The password policy prevents reuse of the last 24 passwords",
        service: "iam",
        severity: Severity::Medium,
        remediation: "aws iam update-account-password-policy --password-reuse-prevention 24 (with the policy's other settings).",
        playbook: None,
        prowler: &["iam_password_policy_reuse_24"],
        run: password_reuse,
    },
    Check {
        id: "iam_console_user_mfa",
        title: "Every IAM user with a console password has MFA",
        service: "iam",
        severity: Severity::High,
        remediation: "Assign an MFA device to the user, or delete the login profile if the user does not need the console.",
        playbook: Some("PB-014"),
        prowler: &["iam_user_mfa_enabled_console_access"],
        run: console_user_mfa,
    },
    Check {
        id: "iam_no_initial_access_key",
        title: "No access key was made at set-up for a console user and left unused",
        service: "iam",
        severity: Severity::Medium,
        remediation: "Delete the unused access key; create keys only when the user needs programmatic access.",
        playbook: None,
        prowler: &["iam_user_no_setup_initial_access_key"],
        run: no_initial_access_key,
    },
    Check {
        id: "iam_credentials_unused_45_days",
        title: "Credentials unused for 45 days or more are disabled",
        service: "iam",
        severity: Severity::Medium,
        remediation: "Deactivate access keys and remove console passwords that have not been used in 45 days.",
        playbook: Some("PB-009"),
        prowler: &["iam_user_accesskey_unused", "iam_user_console_access_unused"],
        run: credentials_unused,
    },
    Check {
        id: "iam_single_active_key",
        title: "No IAM user has two active access keys",
        service: "iam",
        severity: Severity::Medium,
        remediation: "Deactivate and delete the key the user no longer uses.",
        playbook: None,
        prowler: &["iam_user_two_active_access_key"],
        run: single_active_key,
    },
    Check {
        id: "iam_keys_rotated_90_days",
        title: "Active access keys are rotated within 90 days",
        service: "iam",
        severity: Severity::Medium,
        remediation: "Create a new key, move its users to it, then deactivate and delete the old one.",
        playbook: None,
        prowler: &["iam_rotate_access_key_90_days"],
        run: keys_rotated,
    },
    Check {
        id: "iam_no_user_policies",
        title: "IAM users get permissions only through groups",
        service: "iam",
        severity: Severity::Low,
        remediation: "Move the user's attached and inline policies to a group (or a role) and add the user to it.",
        playbook: None,
        prowler: &["iam_policy_attached_only_to_group_or_roles"],
        run: no_user_policies,
    },
    Check {
        id: "iam_no_full_admin_policies",
        title: "No attached policy allows \"*\" on \"*\"",
        service: "iam",
        severity: Severity::High,
        remediation: "Detach the policy and grant only the actions and resources needed; keep full administration to a role assumed with MFA.",
        playbook: Some("PB-004"),
        prowler: &[
            "iam_aws_attached_policy_no_administrative_privileges",
            "iam_customer_attached_policy_no_administrative_privileges",
        ],
        run: no_full_admin_policies,
    },
    Check {
        id: "iam_support_role",
        title: "A role exists for managing incidents with AWS Support",
        service: "iam",
        severity: Severity::Low,
        remediation: "Create a role that your support staff can assume and attach AWSSupportAccess to it.",
        playbook: None,
        prowler: &["iam_support_role_created"],
        run: support_role,
    },
    Check {
        id: "iam_no_expired_server_certificates",
        title: "No expired TLS certificate is stored in IAM",
        service: "iam",
        severity: Severity::Medium,
        remediation: "aws iam delete-server-certificate --server-certificate-name NAME, after moving anything that uses it to a current certificate.",
        playbook: None,
        prowler: &["iam_no_expired_server_certificates_stored"],
        run: no_expired_certificates,
    },
    Check {
        id: "accessanalyzer_enabled",
        title: "IAM Access Analyzer is enabled in every region",
        service: "accessanalyzer",
        severity: Severity::Medium,
        remediation: "aws accessanalyzer create-analyzer --analyzer-name account --type ACCOUNT in each region.",
        playbook: None,
        prowler: &["accessanalyzer_enabled"],
        run: access_analyzer,
    },
];
