//! The EC2 actions, in the finding's region. Each looks before it changes, so
//! that a second run of the same step changes nothing and says so.

use aws_sdk_ec2::types::{
    Filter, Instance, InstanceStateName, IpPermission, IpRange, Ipv6Range, LaunchPermission,
    LaunchPermissionModifications, OperationType, PermissionGroup, ResourceType, RuleAction,
    SnapshotAttributeName, Tag, TagSpecification,
};
use aws_sdk_ec2::Client;
use serde_json::{json, Value};

use crate::{optional, param, sdk_error, ActionError, Outcome};

/// The security group an instance in quarantine is moved into: no ingress rule
/// and its default egress rule revoked, so it can reach nothing.
pub const QUARANTINE_GROUP: &str = "vigil-quarantine";

pub async fn run(client: &Client, name: &str, p: &Value) -> Result<Outcome, ActionError> {
    match name {
        "ec2.quarantine_instance" => quarantine(client, p).await,
        "ec2.snapshot_volumes" => snapshot_volumes(client, p).await,
        "ec2.stop_instance" => stop(client, p).await,
        "ec2.tag_resources" => tag(client, p).await,
        "ec2.deny_in_network_acl" => deny_in_nacl(client, p).await,
        "ec2.revoke_security_group_ingress" => revoke_ingress(client, p).await,
        "ec2.make_snapshot_private" => snapshot_private(client, p).await,
        "ec2.make_image_private" => image_private(client, p).await,
        "ec2.enable_ebs_default_encryption" => ebs_default(client).await,
        other => Err(ActionError::Unsupported(other.to_owned())),
    }
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

async fn instance(client: &Client, id: &str) -> Result<Instance, ActionError> {
    let out = client
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| sdk_error("ec2:DescribeInstances", e))?;
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(id))
        .cloned()
        .ok_or_else(|| ActionError::NotFound {
            op: "ec2:DescribeInstances".into(),
            message: format!("no instance {id}"),
        })
}

async fn quarantine(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let id = param(p, "instance_id")?;
    let group_name = optional(p, "group_name")?.unwrap_or(QUARANTINE_GROUP);
    let inst = instance(client, id).await?;
    let mut calls = vec!["ec2:DescribeInstances".to_owned()];
    let vpc = inst.vpc_id().ok_or_else(|| ActionError::Failed {
        op: "ec2:DescribeInstances".into(),
        message: format!("instance {id} is in no VPC"),
    })?;
    let before: Vec<String> = inst
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect();
    let found = client
        .describe_security_groups()
        .filters(filter("group-name", group_name))
        .filters(filter("vpc-id", vpc))
        .send()
        .await
        .map_err(|e| sdk_error("ec2:DescribeSecurityGroups", e))?;
    calls.push("ec2:DescribeSecurityGroups".into());
    let group = match found.security_groups().first().and_then(|g| g.group_id()) {
        Some(g) => g.to_owned(),
        None => {
            let made = client
                .create_security_group()
                .group_name(group_name)
                .description("Vigil quarantine: no traffic in or out")
                .vpc_id(vpc)
                .send()
                .await
                .map_err(|e| sdk_error("ec2:CreateSecurityGroup", e))?;
            calls.push("ec2:CreateSecurityGroup".into());
            let g = made.group_id().unwrap_or_default().to_owned();
            // A new group may send anywhere; a quarantine group may not.
            client
                .revoke_security_group_egress()
                .group_id(&g)
                .ip_permissions(
                    IpPermission::builder()
                        .ip_protocol("-1")
                        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                        .build(),
                )
                .send()
                .await
                .map_err(|e| sdk_error("ec2:RevokeSecurityGroupEgress", e))?;
            calls.push("ec2:RevokeSecurityGroupEgress".into());
            g
        }
    };
    if before == [group.clone()] {
        return Ok(Outcome {
            changed: false,
            calls,
            detail: json!({"instance_id": id, "quarantine_group": group}),
        });
    }
    client
        .modify_instance_attribute()
        .instance_id(id)
        .groups(&group)
        .send()
        .await
        .map_err(|e| sdk_error("ec2:ModifyInstanceAttribute", e))?;
    calls.push("ec2:ModifyInstanceAttribute".into());
    Ok(Outcome {
        changed: true,
        calls,
        detail: json!({"instance_id": id, "quarantine_group": group, "previous_groups": before}),
    })
}

async fn snapshot_volumes(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let id = param(p, "instance_id")?;
    let description = optional(p, "description")?.unwrap_or("Vigil: evidence");
    let inst = instance(client, id).await?;
    let mut calls = vec!["ec2:DescribeInstances".to_owned()];
    let mut snapshots = Vec::new();
    for volume in inst
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.volume_id()))
    {
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::Snapshot)
            .tags(Tag::builder().key("vigil:instance").value(id).build())
            .build();
        let snap = client
            .create_snapshot()
            .volume_id(volume)
            .description(description)
            .tag_specifications(tags)
            .send()
            .await
            .map_err(|e| sdk_error("ec2:CreateSnapshot", e))?;
        calls.push("ec2:CreateSnapshot".into());
        snapshots.push(json!({"volume_id": volume, "snapshot_id": snap.snapshot_id()}));
    }
    Ok(Outcome {
        changed: !snapshots.is_empty(),
        calls,
        detail: json!({"instance_id": id, "snapshots": snapshots}),
    })
}

async fn stop(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let id = param(p, "instance_id")?;
    let inst = instance(client, id).await?;
    let mut calls = vec!["ec2:DescribeInstances".to_owned()];
    let state = inst.state().and_then(|s| s.name()).cloned();
    if matches!(
        state,
        Some(InstanceStateName::Stopped | InstanceStateName::Stopping)
    ) {
        return Ok(Outcome {
            changed: false,
            calls,
            detail: json!({"instance_id": id, "state": state.map(|s| s.as_str().to_owned())}),
        });
    }
    client
        .stop_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| sdk_error("ec2:StopInstances", e))?;
    calls.push("ec2:StopInstances".into());
    Ok(Outcome {
        changed: true,
        calls,
        detail: json!({"instance_id": id, "before": state.map(|s| s.as_str().to_owned())}),
    })
}

async fn tag(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let bad = |name: &str, message: &str| ActionError::Parameter {
        name: name.into(),
        message: message.into(),
    };
    let ids: Vec<&str> = p
        .get("resource_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .filter(|v: &Vec<&str>| !v.is_empty())
        .ok_or_else(|| bad("resource_ids", "must be a list of resource ids"))?;
    let tags = p
        .get("tags")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad("tags", "must be a map of tag keys to values"))?;
    let mut ask = client.create_tags();
    for id in &ids {
        ask = ask.resources(*id);
    }
    for (k, v) in tags {
        let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        ask = ask.tags(Tag::builder().key(k).value(v).build());
    }
    ask.send()
        .await
        .map_err(|e| sdk_error("ec2:CreateTags", e))?;
    Ok(Outcome {
        changed: true,
        calls: vec!["ec2:CreateTags".into()],
        detail: json!({"resource_ids": ids, "tags": tags}),
    })
}

/// The subnet whose network ACL to change: given, or the instance's or the
/// network interface's.
async fn subnet_of(
    client: &Client,
    p: &Value,
    calls: &mut Vec<String>,
) -> Result<String, ActionError> {
    if let Some(s) = optional(p, "subnet_id")? {
        return Ok(s.to_owned());
    }
    if let Some(eni) = optional(p, "network_interface_id")? {
        let out = client
            .describe_network_interfaces()
            .network_interface_ids(eni)
            .send()
            .await
            .map_err(|e| sdk_error("ec2:DescribeNetworkInterfaces", e))?;
        calls.push("ec2:DescribeNetworkInterfaces".into());
        return out
            .network_interfaces()
            .first()
            .and_then(|n| n.subnet_id())
            .map(str::to_owned)
            .ok_or_else(|| ActionError::NotFound {
                op: "ec2:DescribeNetworkInterfaces".into(),
                message: format!("no subnet for network interface {eni}"),
            });
    }
    if let Some(id) = optional(p, "instance_id")? {
        let inst = instance(client, id).await?;
        calls.push("ec2:DescribeInstances".into());
        return inst
            .subnet_id()
            .map(str::to_owned)
            .ok_or_else(|| ActionError::Failed {
                op: "ec2:DescribeInstances".into(),
                message: format!("instance {id} is in no subnet"),
            });
    }
    Err(ActionError::Parameter {
        name: "network_acl_id".into(),
        message: "give one of network_acl_id, subnet_id, network_interface_id or instance_id"
            .into(),
    })
}

async fn deny_in_nacl(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let cidr = param(p, "cidr")?;
    let egress = p.get("egress").and_then(Value::as_bool).unwrap_or(false);
    let mut calls = Vec::new();
    let found = match optional(p, "network_acl_id")? {
        Some(acl) => client.describe_network_acls().network_acl_ids(acl),
        None => {
            let subnet = subnet_of(client, p, &mut calls).await?;
            client
                .describe_network_acls()
                .filters(filter("association.subnet-id", &subnet))
        }
    }
    .send()
    .await
    .map_err(|e| sdk_error("ec2:DescribeNetworkAcls", e))?;
    calls.push("ec2:DescribeNetworkAcls".into());
    let acl = found
        .network_acls()
        .first()
        .ok_or_else(|| ActionError::NotFound {
            op: "ec2:DescribeNetworkAcls".into(),
            message: "no network ACL for that subnet".into(),
        })?;
    let acl_id = acl.network_acl_id().unwrap_or_default().to_owned();
    let entries: Vec<_> = acl
        .entries()
        .iter()
        .filter(|e| e.egress() == Some(egress))
        .collect();
    if entries
        .iter()
        .any(|e| e.cidr_block() == Some(cidr) && e.rule_action() == Some(&RuleAction::Deny))
    {
        return Ok(Outcome {
            changed: false,
            calls,
            detail: json!({"network_acl_id": acl_id, "cidr": cidr}),
        });
    }
    // The lowest free rule number: evaluated before the usual allow rules.
    let rule = match p.get("rule_number").and_then(Value::as_i64) {
        Some(n) => n as i32,
        None => (1..32_766)
            .find(|n| !entries.iter().any(|e| e.rule_number() == Some(*n)))
            .unwrap_or(32_766),
    };
    client
        .create_network_acl_entry()
        .network_acl_id(&acl_id)
        .rule_number(rule)
        .protocol("-1")
        .rule_action(RuleAction::Deny)
        .egress(egress)
        .cidr_block(cidr)
        .send()
        .await
        .map_err(|e| sdk_error("ec2:CreateNetworkAclEntry", e))?;
    calls.push("ec2:CreateNetworkAclEntry".into());
    Ok(Outcome {
        changed: true,
        calls,
        detail: json!({"network_acl_id": acl_id, "cidr": cidr, "rule_number": rule, "egress": egress}),
    })
}

async fn revoke_ingress(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let group = param(p, "group_id")?;
    let cidr = optional(p, "cidr")?.unwrap_or("0.0.0.0/0");
    let port = |k: &str| p.get(k).and_then(Value::as_i64).map(|n| n as i32);
    let (from, to, proto) = (port("from_port"), port("to_port"), optional(p, "protocol")?);
    let found = client
        .describe_security_groups()
        .group_ids(group)
        .send()
        .await
        .map_err(|e| sdk_error("ec2:DescribeSecurityGroups", e))?;
    let mut calls = vec!["ec2:DescribeSecurityGroups".to_owned()];
    let sg = found
        .security_groups()
        .first()
        .ok_or_else(|| ActionError::NotFound {
            op: "ec2:DescribeSecurityGroups".into(),
            message: format!("no security group {group}"),
        })?;
    let v6 = cidr.contains(':');
    let mut revoke = Vec::new();
    for perm in sg.ip_permissions() {
        let opens = if v6 {
            perm.ipv6_ranges()
                .iter()
                .any(|r| r.cidr_ipv6() == Some(cidr))
        } else {
            perm.ip_ranges().iter().any(|r| r.cidr_ip() == Some(cidr))
        };
        let wanted = from.is_none_or(|f| perm.from_port() == Some(f))
            && to.is_none_or(|t| perm.to_port() == Some(t))
            && proto.is_none_or(|x| perm.ip_protocol() == Some(x));
        if !opens || !wanted {
            continue;
        }
        // Only the open range, not the rule's other sources.
        let mut b = IpPermission::builder()
            .set_ip_protocol(perm.ip_protocol().map(str::to_owned))
            .set_from_port(perm.from_port())
            .set_to_port(perm.to_port());
        b = if v6 {
            b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(cidr).build())
        } else {
            b.ip_ranges(IpRange::builder().cidr_ip(cidr).build())
        };
        revoke.push(b.build());
    }
    let revoked: Vec<Value> = revoke
        .iter()
        .map(|r| json!({"protocol": r.ip_protocol(), "from_port": r.from_port(), "to_port": r.to_port()}))
        .collect();
    if !revoke.is_empty() {
        client
            .revoke_security_group_ingress()
            .group_id(group)
            .set_ip_permissions(Some(revoke))
            .send()
            .await
            .map_err(|e| sdk_error("ec2:RevokeSecurityGroupIngress", e))?;
        calls.push("ec2:RevokeSecurityGroupIngress".into());
    }
    Ok(Outcome {
        changed: !revoked.is_empty(),
        calls,
        detail: json!({"group_id": group, "cidr": cidr, "revoked": revoked}),
    })
}

async fn snapshot_private(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let id = param(p, "snapshot_id")?;
    let attr = client
        .describe_snapshot_attribute()
        .snapshot_id(id)
        .attribute(SnapshotAttributeName::CreateVolumePermission)
        .send()
        .await
        .map_err(|e| sdk_error("ec2:DescribeSnapshotAttribute", e))?;
    let mut calls = vec!["ec2:DescribeSnapshotAttribute".to_owned()];
    let public = attr
        .create_volume_permissions()
        .iter()
        .any(|c| c.group() == Some(&PermissionGroup::All));
    if public {
        client
            .modify_snapshot_attribute()
            .snapshot_id(id)
            .attribute(SnapshotAttributeName::CreateVolumePermission)
            .operation_type(OperationType::Remove)
            // `GroupNames=all` rather than the CreateVolumePermission structure:
            // AWS takes both, and moto only this one.
            .group_names("all")
            .send()
            .await
            .map_err(|e| sdk_error("ec2:ModifySnapshotAttribute", e))?;
        calls.push("ec2:ModifySnapshotAttribute".into());
    }
    Ok(Outcome {
        changed: public,
        calls,
        detail: json!({"snapshot_id": id, "was_public": public}),
    })
}

async fn image_private(client: &Client, p: &Value) -> Result<Outcome, ActionError> {
    let id = param(p, "image_id")?;
    let attr = client
        .describe_image_attribute()
        .image_id(id)
        .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
        .send()
        .await
        .map_err(|e| sdk_error("ec2:DescribeImageAttribute", e))?;
    let mut calls = vec!["ec2:DescribeImageAttribute".to_owned()];
    let public = attr
        .launch_permissions()
        .iter()
        .any(|l| l.group() == Some(&PermissionGroup::All));
    if public {
        client
            .modify_image_attribute()
            .image_id(id)
            .launch_permission(
                LaunchPermissionModifications::builder()
                    .remove(
                        LaunchPermission::builder()
                            .group(PermissionGroup::All)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("ec2:ModifyImageAttribute", e))?;
        calls.push("ec2:ModifyImageAttribute".into());
    }
    Ok(Outcome {
        changed: public,
        calls,
        detail: json!({"image_id": id, "was_public": public}),
    })
}

async fn ebs_default(client: &Client) -> Result<Outcome, ActionError> {
    let now = client
        .get_ebs_encryption_by_default()
        .send()
        .await
        .map_err(|e| sdk_error("ec2:GetEbsEncryptionByDefault", e))?;
    let mut calls = vec!["ec2:GetEbsEncryptionByDefault".to_owned()];
    let on = now.ebs_encryption_by_default() == Some(true);
    if !on {
        client
            .enable_ebs_encryption_by_default()
            .send()
            .await
            .map_err(|e| sdk_error("ec2:EnableEbsEncryptionByDefault", e))?;
        calls.push("ec2:EnableEbsEncryptionByDefault".into());
    }
    Ok(Outcome {
        changed: !on,
        calls,
        detail: json!({"was_enabled": on}),
    })
}
