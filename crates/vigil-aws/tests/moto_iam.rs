//! The IAM response actions against moto_server (the AWS emulator from PyPI, which
//! `scripts/test` installs): each test seeds the emulated account, runs the action
//! through `Aws::run`, and reads the changed state back through the SDK. Plus: a
//! repeat that changes nothing, a missing resource that fails cleanly, and an
//! action carried into a second account through STS AssumeRole.

mod moto;

use aws_credential_types::Credentials;
use aws_sdk_iam::types::StatusType;
use moto::{aws, key_status, start_moto, test_credentials, user_with_key, Moto, HOME};
use serde_json::{json, Value};
use vigil_aws::ActionError;

/// An IAM client of the home account, for seeding and reading back.
async fn iam(moto: &Moto, credentials: Credentials) -> aws_sdk_iam::Client {
    let conf = aws_sdk_iam::Config::builder()
        .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
        .region(aws_sdk_iam::config::Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .http_client(vigil_aws::http_client())
        .credentials_provider(credentials)
        .build();
    aws_sdk_iam::Client::from_conf(conf)
}

fn policy_doc(raw: &str) -> Value {
    // IAM returns the document URL-encoded.
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap_or_else(|e| panic!("{e}: {decoded}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_keys_are_deactivated_once_and_activated_back() {
    let moto = start_moto();
    let aws = aws(&moto, None).await;
    let iam = iam(&moto, test_credentials()).await;
    let key = user_with_key(&iam, "mallory").await;
    let p = json!({"user_name": "mallory", "access_key_id": key});

    let out = aws
        .run("iam.deactivate_access_key", &p, Some(HOME), None)
        .await
        .unwrap();
    assert!(out.changed);
    assert_eq!(out.calls, ["iam:ListAccessKeys", "iam:UpdateAccessKey"]);
    assert_eq!(
        key_status(&iam, "mallory", &key).await,
        StatusType::Inactive
    );
    // Again: already inactive, nothing to do, and it says so.
    let again = aws
        .run("iam.deactivate_access_key", &p, Some(HOME), None)
        .await
        .unwrap();
    assert!(!again.changed);
    assert_eq!(again.calls, ["iam:ListAccessKeys"]);
    // The rollback.
    aws.run("iam.activate_access_key", &p, Some(HOME), None)
        .await
        .unwrap();
    assert_eq!(key_status(&iam, "mallory", &key).await, StatusType::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_policies_are_put_on_users_and_roles_and_removed() {
    let moto = start_moto();
    let aws = aws(&moto, None).await;
    let iam = iam(&moto, test_credentials()).await;
    iam.create_user().user_name("eve").send().await.unwrap();
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    iam.create_role()
        .role_name("Deploy")
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap();

    let user_arn = format!("arn:aws:iam::{HOME}:user/eve");
    let p = json!({"principal_arn": user_arn, "policy_name": "VigilDenyAll"});
    aws.run("iam.attach_deny_all_policy", &p, Some(HOME), None)
        .await
        .unwrap();
    let got = iam
        .get_user_policy()
        .user_name("eve")
        .policy_name("VigilDenyAll")
        .send()
        .await
        .unwrap();
    let doc = policy_doc(got.policy_document());
    assert_eq!(doc["Statement"][0]["Effect"], "Deny");
    assert_eq!(doc["Statement"][0]["Action"], "*");

    // A role's session: the role gets the policy.
    let session =
        json!({"principal_arn": format!("arn:aws:sts::{HOME}:assumed-role/Deploy/ci-42")});
    aws.run("iam.attach_deny_all_policy", &session, Some(HOME), None)
        .await
        .unwrap();
    iam.get_role_policy()
        .role_name("Deploy")
        .policy_name("VigilDenyAll")
        .send()
        .await
        .unwrap();

    // Sessions issued before now are denied by their issue time.
    let out = aws
        .run(
            "iam.revoke_older_sessions",
            &json!({"role_name": "Deploy"}),
            Some(HOME),
            None,
        )
        .await
        .unwrap();
    let got = iam
        .get_role_policy()
        .role_name("Deploy")
        .policy_name("VigilRevokeOlderSessions")
        .send()
        .await
        .unwrap();
    let doc = policy_doc(got.policy_document());
    let cutoff = &doc["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"];
    assert_eq!(cutoff, &out.detail["issued_before"]);
    assert!(cutoff.as_str().unwrap().starts_with("20"), "{cutoff}");

    // Removing: gone, then nothing to remove.
    let out = aws
        .run("iam.remove_inline_policy", &p, Some(HOME), None)
        .await
        .unwrap();
    assert!(out.changed);
    assert!(iam
        .get_user_policy()
        .user_name("eve")
        .policy_name("VigilDenyAll")
        .send()
        .await
        .is_err());
    let again = aws
        .run("iam.remove_inline_policy", &p, Some(HOME), None)
        .await
        .unwrap();
    assert!(!again.changed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drifted_policy_gets_its_previous_version_back() {
    let moto = start_moto();
    let aws = aws(&moto, None).await;
    let iam = iam(&moto, test_credentials()).await;
    let v1 = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]});
    let v2 = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    let created = iam
        .create_policy()
        .policy_name("app-read")
        .policy_document(v1.to_string())
        .send()
        .await
        .unwrap();
    let arn = created.policy().unwrap().arn().unwrap().to_owned();
    iam.create_policy_version()
        .policy_arn(&arn)
        .policy_document(v2.to_string())
        .set_as_default(true)
        .send()
        .await
        .unwrap();

    let out = aws
        .run(
            "iam.set_default_policy_version",
            &json!({"policy_arn": arn}),
            Some(HOME),
            None,
        )
        .await
        .unwrap();
    assert!(out.changed);
    assert_eq!(out.detail["before"], "v2");
    let p = iam.get_policy().policy_arn(&arn).send().await.unwrap();
    assert_eq!(p.policy().unwrap().default_version_id(), Some("v1"));
    // v1 is the oldest: asked again, there is no earlier version to go back to.
    let err = aws
        .run(
            "iam.set_default_policy_version",
            &json!({"policy_arn": arn}),
            Some(HOME),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ActionError::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_passwords_and_managed_policies_are_taken_away() {
    let moto = start_moto();
    let aws = aws(&moto, None).await;
    let iam = iam(&moto, test_credentials()).await;
    iam.create_user().user_name("dana").send().await.unwrap();
    iam.create_login_profile()
        .user_name("dana")
        .password("Correct-Horse-9-Battery")
        .send()
        .await
        .unwrap();
    let all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    let created = iam
        .create_policy()
        .policy_name("everything")
        .policy_document(all.to_string())
        .send()
        .await
        .unwrap();
    let admin = created.policy().unwrap().arn().unwrap().to_owned();
    iam.attach_user_policy()
        .user_name("dana")
        .policy_arn(&admin)
        .send()
        .await
        .unwrap();

    let p = json!({"user_name": "dana"});
    assert!(
        aws.run("iam.delete_login_profile", &p, Some(HOME), None)
            .await
            .unwrap()
            .changed
    );
    assert!(iam
        .get_login_profile()
        .user_name("dana")
        .send()
        .await
        .is_err());
    assert!(
        !aws.run("iam.delete_login_profile", &p, Some(HOME), None)
            .await
            .unwrap()
            .changed
    );

    let p = json!({"user_name": "dana", "policy_arn": admin});
    assert!(
        aws.run("iam.detach_user_policy", &p, Some(HOME), None)
            .await
            .unwrap()
            .changed
    );
    let attached = iam
        .list_attached_user_policies()
        .user_name("dana")
        .send()
        .await
        .unwrap();
    assert!(attached.attached_policies().is_empty());
    assert!(
        !aws.run("iam.detach_user_policy", &p, Some(HOME), None)
            .await
            .unwrap()
            .changed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_resource_or_parameter_fails_cleanly() {
    let moto = start_moto();
    let aws = aws(&moto, None).await;
    let p = json!({"user_name": "nobody", "access_key_id": "AKIANOSUCHKEY0000000"});
    let err = aws
        .run("iam.deactivate_access_key", &p, Some(HOME), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ActionError::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("iam:ListAccessKeys: NoSuchEntity"),
        "{err}"
    );
    assert!(!err.is_transient());
    let err = aws
        .run(
            "iam.deactivate_access_key",
            &json!({"user_name": "x"}),
            Some(HOME),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "parameter access_key_id: missing");
    let err = aws
        .run(
            "iam.attach_deny_all_policy",
            &json!({"principal_arn": "arn:aws:s3:::bucket"}),
            Some(HOME),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ActionError::Parameter { .. }), "{err}");
}

/// The response role is assumed in the finding's account, and the action changes
/// that account, not Vigil's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_run_in_the_member_account_through_assume_role() {
    const MEMBER: &str = "222233334444";
    let moto = start_moto();
    let aws = aws(&moto, Some("VigilResponder")).await;

    // Seed the member account as its own admin would: through an assumed role.
    let sts_conf = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .http_client(vigil_aws::http_client())
        .credentials_provider(test_credentials())
        .build();
    let assumed = aws_sdk_sts::Client::from_conf(sts_conf)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{MEMBER}:role/Admin"))
        .role_session_name("seed")
        .send()
        .await
        .unwrap();
    let c = assumed.credentials().unwrap();
    let member = iam(
        &moto,
        Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().into()),
            None,
            "seed",
        ),
    )
    .await;
    let key = user_with_key(&member, "intruder").await;

    let p = json!({"user_name": "intruder", "access_key_id": key});
    aws.run("iam.deactivate_access_key", &p, Some(MEMBER), None)
        .await
        .unwrap();
    assert_eq!(
        key_status(&member, "intruder", &key).await,
        StatusType::Inactive
    );
    // The home account has no such user: the call went to the member account.
    let home = iam(&moto, test_credentials()).await;
    assert!(home.get_user().user_name("intruder").send().await.is_err());
    let users = member.list_users().send().await.unwrap();
    assert_eq!(
        users.users()[0].arn(),
        format!("arn:aws:iam::{MEMBER}:user/intruder")
    );
}
