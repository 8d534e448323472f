//! Networking: network ACLs, security groups, instance metadata.

use crate::check::{Check, Input, Results, Status};
use crate::checks::storage::per_region;
use crate::snapshot::{NaclEntry, SgRule};
use vigil_model::Severity;

/// The remote administration ports the benchmark names.
const ADMIN_PORTS: [i32; 2] = [22, 3389];

fn is_world_v4(c: &str) -> bool {
    c == "0.0.0.0/0"
}

fn is_world_v6(c: &str) -> bool {
    c == "::/0"
}

/// Whether a rule of `protocol` over `from..=to` lets TCP `port` through.
fn covers(protocol: &str, from: Option<i32>, to: Option<i32>, port: i32) -> bool {
    match protocol {
        "-1" | "all" => true,
        "tcp" | "6" => match (from, to) {
            (Some(f), Some(t)) => (f == -1 && t == -1) || (f <= port && port <= t),
            _ => true,
        },
        _ => false,
    }
}

/// The first ingress entry (by rule number) that matches traffic from anywhere
/// to `port` decides; true when it allows.
pub fn nacl_allows_world(entries: &[NaclEntry], port: i32) -> bool {
    let mut ingress: Vec<&NaclEntry> = entries.iter().filter(|e| !e.egress).collect();
    ingress.sort_by_key(|e| e.rule_number);
    ingress
        .into_iter()
        .find(|e| {
            let world = e.cidr.as_deref().is_some_and(is_world_v4)
                || e.ipv6_cidr.as_deref().is_some_and(is_world_v6);
            world && covers(&e.protocol, e.from_port, e.to_port, port)
        })
        .is_some_and(|e| e.action == "allow")
}

fn nacl_admin_ports(input: &Input, out: &mut Results) {
    let mut any = false;
    per_region(input, out, "ec2", |region, r, out| {
        for acl in &r.network_acls {
            any = true;
            let open: Vec<String> = ADMIN_PORTS
                .iter()
                .filter(|p| nacl_allows_world(&acl.entries, **p))
                .map(|p| p.to_string())
                .collect();
            out.verdict(
                open.is_empty(),
                Some(region),
                format!("arn:aws:ec2:{region}:{}:network-acl/{}", input.id(), acl.id),
                if open.is_empty() {
                    "no ingress from anywhere to 22 or 3389".to_owned()
                } else {
                    format!(
                        "allows ingress from anywhere to port(s) {}",
                        open.join(", ")
                    )
                },
            );
        }
    });
    if !any && out.items.is_empty() {
        out.push(
            Status::NotApplicable,
            None,
            input.account_arn(),
            "no network ACLs",
        );
    }
}

/// The ports of `ports` some rule opens to the whole internet (IPv6 when `v6`).
fn world_open(rules: &[SgRule], ports: &[i32], v6: bool) -> Vec<i32> {
    ports
        .iter()
        .copied()
        .filter(|p| {
            rules.iter().any(|r| {
                let world = if v6 {
                    r.ipv6.iter().any(|c| is_world_v6(c))
                } else {
                    r.ipv4.iter().any(|c| is_world_v4(c))
                };
                world && covers(&r.protocol, r.from_port, r.to_port, *p)
            })
        })
        .collect()
}

/// Per security group: FAIL when a rule opens any of `ports` to the world over
/// the address families `v6` lists (false: IPv4, true: IPv6).
fn per_group(input: &Input, out: &mut Results, ports: &[i32], families: &[bool]) {
    let mut any = false;
    let from = families
        .iter()
        .map(|v6| if *v6 { "::/0" } else { "0.0.0.0/0" })
        .collect::<Vec<_>>()
        .join(" or ");
    per_region(input, out, "ec2", |region, r, out| {
        for g in &r.security_groups {
            any = true;
            let mut open: Vec<i32> = Vec::new();
            for v6 in families {
                open.extend(world_open(&g.ingress, ports, *v6));
            }
            open.sort_unstable();
            open.dedup();
            out.verdict(
                open.is_empty(),
                Some(region),
                format!(
                    "arn:aws:ec2:{region}:{}:security-group/{}",
                    input.id(),
                    g.id
                ),
                if open.is_empty() {
                    format!("{}: no ingress from {from} to {ports:?}", g.name)
                } else {
                    format!("{}: ingress from {from} to port(s) {open:?}", g.name)
                },
            );
        }
    });
    if !any && out.items.is_empty() {
        out.push(
            Status::NotApplicable,
            None,
            input.account_arn(),
            "no security groups",
        );
    }
}

fn sg_admin_ipv4(input: &Input, out: &mut Results) {
    per_group(input, out, &ADMIN_PORTS, &[false]);
}

fn sg_admin_ipv6(input: &Input, out: &mut Results) {
    per_group(input, out, &ADMIN_PORTS, &[true]);
}

fn sg_cifs(input: &Input, out: &mut Results) {
    per_group(input, out, &[445], &[false, true]);
}

fn default_sg_closed(input: &Input, out: &mut Results) {
    let mut any = false;
    per_region(input, out, "ec2", |region, r, out| {
        for g in r.security_groups.iter().filter(|g| g.name == "default") {
            any = true;
            let (i, e) = (g.ingress.len(), g.egress.len());
            out.verdict(
                i + e == 0,
                Some(region),
                format!(
                    "arn:aws:ec2:{region}:{}:security-group/{}",
                    input.id(),
                    g.id
                ),
                format!(
                    "default group of {}: {i} inbound and {e} outbound rule(s)",
                    g.vpc_id.as_deref().unwrap_or("?")
                ),
            );
        }
    });
    if !any && out.items.is_empty() {
        out.push(
            Status::NotApplicable,
            None,
            input.account_arn(),
            "no default security groups",
        );
    }
}

/// Per instance that is not terminated, NOT_APPLICABLE without any.
fn per_instance(
    input: &Input,
    out: &mut Results,
    judge: fn(&crate::snapshot::Instance) -> (bool, String),
) {
    let mut any = false;
    per_region(input, out, "ec2", |region, r, out| {
        for i in r
            .instances
            .iter()
            .filter(|i| i.state != "terminated" && i.state != "shutting-down")
        {
            any = true;
            let (ok, evidence) = judge(i);
            out.verdict(
                ok,
                Some(region),
                format!("arn:aws:ec2:{region}:{}:instance/{}", input.id(), i.id),
                evidence,
            );
        }
    });
    if !any && out.items.is_empty() {
        out.push(
            Status::NotApplicable,
            None,
            input.account_arn(),
            "no EC2 instances",
        );
    }
}

fn imdsv2(input: &Input, out: &mut Results) {
    per_instance(input, out, |i| {
        let off = i.http_endpoint.as_deref() == Some("disabled");
        let v2 = i.http_tokens.as_deref() == Some("required");
        (
            off || v2,
            if off {
                "instance metadata service off".to_owned()
            } else if v2 {
                "IMDSv2 required".to_owned()
            } else {
                "IMDSv1 still accepted".to_owned()
            },
        )
    });
}

fn instance_profile(input: &Input, out: &mut Results) {
    per_instance(input, out, |i| match &i.instance_profile {
        Some(p) => (true, format!("instance profile {p}")),
        None => (
            false,
            "no instance profile: any AWS access must use stored keys".to_owned(),
        ),
    });
}

pub const CHECKS: &[Check] = &[
    Check {
        id: "ec2_nacl_no_admin_ingress_from_internet",
        title: "No network ACL allows ingress from anywhere to remote administration ports",
        service: "ec2",
        severity: Severity::Medium,
        remediation: "Add deny entries for 22 and 3389 from 0.0.0.0/0 and ::/0 ahead of the allow, or narrow the allow to known networks.",
        playbook: Some("PB-005"),
        prowler: &[
            "ec2_networkacl_allow_ingress_any_port",
            "ec2_networkacl_allow_ingress_tcp_port_22",
            "ec2_networkacl_allow_ingress_tcp_port_3389",
        ],
        run: nacl_admin_ports,
    },
    Check {
        id: "ec2_sg_no_admin_ingress_from_ipv4_internet",
        title: "No security group allows ingress from 0.0.0.0/0 to remote administration ports",
        service: "ec2",
        severity: Severity::High,
        remediation: "Revoke the rule and allow 22/3389 only from known networks, or use Session Manager instead.",
        playbook: Some("PB-008"),
        prowler: &[
            "ec2_securitygroup_allow_ingress_from_internet_to_all_ports",
            "ec2_securitygroup_allow_ingress_from_internet_to_tcp_port_22",
            "ec2_securitygroup_allow_ingress_from_internet_to_tcp_port_3389",
        ],
        run: sg_admin_ipv4,
    },
    Check {
        id: "ec2_sg_no_admin_ingress_from_ipv6_internet",
        title: "No security group allows ingress from ::/0 to remote administration ports",
        service: "ec2",
        severity: Severity::High,
        remediation: "Revoke the rule and allow 22/3389 only from known networks, or use Session Manager instead.",
        playbook: Some("PB-008"),
        prowler: &[
            "ec2_securitygroup_allow_ingress_from_internet_to_all_ports",
            "ec2_securitygroup_allow_ingress_from_internet_to_tcp_port_22",
            "ec2_securitygroup_allow_ingress_from_internet_to_tcp_port_3389",
        ],
        run: sg_admin_ipv6,
    },
    Check {
        id: "ec2_sg_no_cifs_from_internet",
        title: "No security group exposes CIFS (445) to the internet",
        service: "ec2",
        severity: Severity::High,
        remediation: "Revoke the rule; reach file shares over a VPN or from known networks only.",
        playbook: None,
        prowler: &["ec2_instance_port_cifs_exposed_to_internet"],
        run: sg_cifs,
    },
    Check {
        id: "ec2_default_sg_closed",
        title: "Default security groups allow no traffic",
        service: "ec2",
        severity: Severity::Medium,
        remediation: "Remove every inbound and outbound rule of each VPC's default group and move its members to groups made for them.",
        playbook: None,
        prowler: &["ec2_securitygroup_default_restrict_traffic"],
        run: default_sg_closed,
    },
    Check {
        id: "ec2_imdsv2_required",
        title: "Instances require IMDSv2",
        service: "ec2",
        severity: Severity::Medium,
        remediation: "aws ec2 modify-instance-metadata-options --instance-id ID --http-tokens required --http-endpoint enabled.",
        playbook: None,
        prowler: &["ec2_instance_imdsv2_enabled"],
        run: imdsv2,
    },
    Check {
        id: "ec2_instance_profile",
        title: "Instances reach AWS through an instance profile",
        service: "ec2",
        severity: Severity::Low,
        remediation: "Create a role with the access the workload needs and associate it: aws ec2 associate-iam-instance-profile.",
        playbook: None,
        prowler: &["ec2_instance_profile_attached"],
        run: instance_profile,
    },
];
