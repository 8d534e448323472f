//! The EC2 response actions against moto_server, in eu-west-1 (not the home
//! region, so the finding's region is what decides): each seeds the emulated
//! region, runs the action through `Aws::run`, reads the state back, and runs it
//! again to see that nothing more changes.

mod moto;

use aws_sdk_ec2::types::{
    Filter, InstanceStateName, IpPermission, IpRange, LaunchPermission,
    LaunchPermissionModifications, OperationType, PermissionGroup, RuleAction,
    SnapshotAttributeName,
};
use moto::{aws, described, launch, start_moto, test_credentials, Moto, HOME};
use serde_json::json;
use vigil_aws::ActionError;

const REGION: &str = "eu-west-1";

fn ec2(moto: &Moto) -> aws_sdk_ec2::Client {
    ec2_in(moto, REGION)
}

/// A running instance of one of moto's images; its id.
async fn instance(ec2: &aws_sdk_ec2::Client) -> String {
    launch(ec2).await.instance_id().unwrap().to_owned()
}

fn ec2_in(moto: &Moto, region: &str) -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(region.to_owned()))
        .endpoint_url(&moto.url)
        .http_client(vigil_aws::http_client())
        .credentials_provider(test_credentials())
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mining_instance_is_snapshotted_quarantined_tagged_and_stopped() {
    let moto = start_moto();
    let aws = aws(&moto, None).await;
    let ec2 = ec2(&moto);
    let id = instance(&ec2).await;
    let run = |name: &'static str, p: serde_json::Value| {
        let aws = &aws;
        async move { aws.run(name, &p, Some(HOME), Some(REGION)).await }
    };

    let snap = run("ec2.snapshot_volumes", json!({"instance_id": id}))
        .await
        .unwrap();
    let volumes = described(&ec2, &id).await.block_device_mappings().len();
    assert!(volumes >= 1);
    assert_eq!(snap.detail["snapshots"].as_array().unwrap().len(), volumes);
    let tagged = ec2
        .describe_snapshots()
        .filters(
            Filter::builder()
                .name("tag:vigil:instance")
                .values(&id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.snapshots().len(), volumes);

    let q = run("ec2.quarantine_instance", json!({"instance_id": id}))
        .await
        .unwrap();
    assert!(q.changed);
    let group = q.detail["quarantine_group"].as_str().unwrap().to_owned();
    let groups: Vec<String> = described(&ec2, &id)
        .await
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect();
    assert_eq!(groups, std::slice::from_ref(&group));
    let sg = ec2
        .describe_security_groups()
        .group_ids(&group)
        .send()
        .await
        .unwrap();
    let sg = &sg.security_groups()[0];
    assert!(sg.ip_permissions().is_empty() && sg.ip_permissions_egress().is_empty());
    let again = run("ec2.quarantine_instance", json!({"instance_id": id}))
        .await
        .unwrap();
    assert!(!again.changed);
    assert_eq!(again.detail["quarantine_group"], group.as_str());

    run(
        "ec2.tag_resources",
        json!({"resource_ids": [id], "tags": {"vigil:quarantined-by": "run-7"}}),
    )
    .await
    .unwrap();
    let tags = described(&ec2, &id).await;
    assert!(tags
        .tags()
        .iter()
        .any(|t| t.key() == Some("vigil:quarantined-by") && t.value() == Some("run-7")));

    assert!(
        run("ec2.stop_instance", json!({"instance_id": id}))
            .await
            .unwrap()
            .changed
    );
    let state = described(&ec2, &id)
        .await
        .state()
        .unwrap()
        .name()
        .unwrap()
        .clone();
    assert!(
        matches!(
            state,
            InstanceStateName::Stopped | InstanceStateName::Stopping
        ),
        "{state:?}"
    );
    assert!(
        !run("ec2.stop_instance", json!({"instance_id": id}))
            .await
            .unwrap()
            .changed
    );

    let err = run(
        "ec2.stop_instance",
        json!({"instance_id": "i-0000000000000dead"}),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ActionError::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanner_is_denied_at_the_network_acl_and_world_ingress_is_revoked() {
    let moto = start_moto();
    let aws = aws(&moto, None).await;
    let ec2 = ec2(&moto);
    let id = instance(&ec2).await;
    let subnet = described(&ec2, &id).await.subnet_id().unwrap().to_owned();

    let p = json!({"cidr": "203.0.113.9/32", "instance_id": id});
    let out = aws
        .run("ec2.deny_in_network_acl", &p, Some(HOME), Some(REGION))
        .await
        .unwrap();
    assert!(out.changed);
    let acls = ec2
        .describe_network_acls()
        .filters(
            Filter::builder()
                .name("association.subnet-id")
                .values(&subnet)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let deny: Vec<_> = acls.network_acls()[0]
        .entries()
        .iter()
        .filter(|e| e.cidr_block() == Some("203.0.113.9/32"))
        .collect();
    assert_eq!(deny.len(), 1);
    assert_eq!(deny[0].rule_action(), Some(&RuleAction::Deny));
    assert_eq!(deny[0].egress(), Some(false));
    assert_eq!(
        deny[0].rule_number(),
        out.detail["rule_number"].as_i64().map(|n| n as i32)
    );
    let again = aws
        .run("ec2.deny_in_network_acl", &p, Some(HOME), Some(REGION))
        .await
        .unwrap();
    assert!(!again.changed);

    // A group open to the world on SSH (and to the VPC), and on HTTPS.
    let vpc = described(&ec2, &id).await.vpc_id().unwrap().to_owned();
    let sg = ec2
        .create_security_group()
        .group_name("web")
        .description("web")
        .vpc_id(vpc)
        .send()
        .await
        .unwrap();
    let group = sg.group_id().unwrap().to_owned();
    let open = |port: i32, cidrs: &[&str]| {
        let mut b = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(port)
            .to_port(port);
        for c in cidrs {
            b = b.ip_ranges(IpRange::builder().cidr_ip(*c).build());
        }
        b.build()
    };
    ec2.authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(open(22, &["0.0.0.0/0", "10.0.0.0/8"]))
        .ip_permissions(open(443, &["0.0.0.0/0"]))
        .send()
        .await
        .unwrap();
    let p = json!({"group_id": group, "cidr": "0.0.0.0/0"});
    let out = aws
        .run(
            "ec2.revoke_security_group_ingress",
            &p,
            Some(HOME),
            Some(REGION),
        )
        .await
        .unwrap();
    assert_eq!(out.detail["revoked"].as_array().unwrap().len(), 2);
    let after = ec2
        .describe_security_groups()
        .group_ids(&group)
        .send()
        .await
        .unwrap();
    let perms = after.security_groups()[0].ip_permissions();
    let world = perms
        .iter()
        .flat_map(|p| p.ip_ranges())
        .filter(|r| r.cidr_ip() == Some("0.0.0.0/0"))
        .count();
    assert_eq!(world, 0, "{perms:?}");
    // The VPC's own range on SSH stays.
    assert!(perms.iter().any(|p| p.from_port() == Some(22)
        && p.ip_ranges()
            .iter()
            .any(|r| r.cidr_ip() == Some("10.0.0.0/8"))));
    let again = aws
        .run(
            "ec2.revoke_security_group_ingress",
            &p,
            Some(HOME),
            Some(REGION),
        )
        .await
        .unwrap();
    assert!(!again.changed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_snapshots_and_images_are_made_private_and_ebs_encryption_turned_on() {
    let moto = start_moto();
    let aws = aws(&moto, None).await;
    let ec2 = ec2(&moto);
    let id = instance(&ec2).await;

    let volume = ec2
        .create_volume()
        .availability_zone(format!("{REGION}a"))
        .size(8)
        .send()
        .await
        .unwrap();
    let snap = ec2
        .create_snapshot()
        .volume_id(volume.volume_id().unwrap())
        .send()
        .await
        .unwrap();
    let snap_id = snap.snapshot_id().unwrap().to_owned();
    ec2.modify_snapshot_attribute()
        .snapshot_id(&snap_id)
        .attribute(SnapshotAttributeName::CreateVolumePermission)
        .operation_type(OperationType::Add)
        .group_names("all")
        .send()
        .await
        .unwrap();
    let p = json!({"snapshot_id": snap_id});
    assert!(
        aws.run("ec2.make_snapshot_private", &p, Some(HOME), Some(REGION))
            .await
            .unwrap()
            .changed
    );
    let attr = ec2
        .describe_snapshot_attribute()
        .snapshot_id(&snap_id)
        .attribute(SnapshotAttributeName::CreateVolumePermission)
        .send()
        .await
        .unwrap();
    assert!(attr.create_volume_permissions().is_empty(), "{attr:?}");
    assert!(
        !aws.run("ec2.make_snapshot_private", &p, Some(HOME), Some(REGION))
            .await
            .unwrap()
            .changed
    );

    let image = ec2
        .create_image()
        .instance_id(&id)
        .name("app")
        .send()
        .await
        .unwrap();
    let image_id = image.image_id().unwrap().to_owned();
    ec2.modify_image_attribute()
        .image_id(&image_id)
        .operation_type(OperationType::Add)
        .launch_permission(
            LaunchPermissionModifications::builder()
                .add(
                    LaunchPermission::builder()
                        .group(PermissionGroup::All)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let p = json!({"image_id": image_id});
    assert!(
        aws.run("ec2.make_image_private", &p, Some(HOME), Some(REGION))
            .await
            .unwrap()
            .changed
    );
    let attr = ec2
        .describe_image_attribute()
        .image_id(&image_id)
        .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
        .send()
        .await
        .unwrap();
    assert!(attr.launch_permissions().is_empty(), "{attr:?}");

    ec2.disable_ebs_encryption_by_default()
        .send()
        .await
        .unwrap();
    let none = json!({});
    assert!(
        aws.run(
            "ec2.enable_ebs_default_encryption",
            &none,
            Some(HOME),
            Some(REGION)
        )
        .await
        .unwrap()
        .changed
    );
    let on = ec2.get_ebs_encryption_by_default().send().await.unwrap();
    assert_eq!(on.ebs_encryption_by_default(), Some(true));
    assert!(
        !aws.run(
            "ec2.enable_ebs_default_encryption",
            &none,
            Some(HOME),
            Some(REGION)
        )
        .await
        .unwrap()
        .changed
    );
    // The finding's region only: the home region keeps its setting.
    let home = ec2_in(&moto, "us-east-1");
    let off = home.get_ebs_encryption_by_default().send().await.unwrap();
    assert_eq!(off.ebs_encryption_by_default(), Some(false));
}
