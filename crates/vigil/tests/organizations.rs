//! Onboarding from AWS Organizations, against moto_server: the registry of a
//! running `vigil serve` is filled with the organization's accounts, each
//! with the environment its OU or tag says, and an account that joins later
//! appears at the next refresh, without a restart.

mod service;

use aws_sdk_organizations::types::Tag;
use aws_sdk_organizations::Client;
use serde_json::Value;
use service::*;

/// Makes an account named `name` under `parent` (and tags it); its id.
async fn account(
    c: &Client,
    root: &str,
    parent: &str,
    name: &str,
    tags: &[(&str, &str)],
) -> String {
    let made = c
        .create_account()
        .account_name(name)
        .email(format!("{name}@example.com"))
        .send()
        .await
        .unwrap();
    let id = made
        .create_account_status()
        .and_then(|s| s.account_id())
        .unwrap()
        .to_owned();
    c.move_account()
        .account_id(&id)
        .source_parent_id(root)
        .destination_parent_id(parent)
        .send()
        .await
        .unwrap();
    if !tags.is_empty() {
        let mut t = c.tag_resource().resource_id(&id);
        for (k, v) in tags {
            t = t.tags(Tag::builder().key(*k).value(*v).build().unwrap());
        }
        t.send().await.unwrap();
    }
    id
}

async fn ou(c: &Client, parent: &str, name: &str) -> String {
    c.create_organizational_unit()
        .parent_id(parent)
        .name(name)
        .send()
        .await
        .unwrap()
        .organizational_unit()
        .and_then(|u| u.id())
        .unwrap()
        .to_owned()
}

/// The registry as the API lists it: id → (environment, ou, regions).
fn registry(svc: &Service) -> std::collections::BTreeMap<String, (String, String, usize)> {
    svc.get("/api/v1/accounts")["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
            (
                s(&a["id"]),
                (
                    s(&a["environment"]),
                    s(&a["ou"]),
                    a["regions"].as_array().map_or(0, Vec::len),
                ),
            )
        })
        .collect()
}

#[test]
fn the_registry_follows_the_organization_without_a_restart() {
    let moto = Moto::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = moto.sdk_config(&rt);
    let c = Client::new(&base);
    let (root, sandbox, prod, security, tagged) = rt.block_on(async {
        c.create_organization()
            .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
            .send()
            .await
            .unwrap();
        let root = c.list_roots().send().await.unwrap().roots()[0]
            .id()
            .unwrap()
            .to_owned();
        let security = ou(&c, &root, "Security").await;
        let workloads = ou(&c, &root, "Workloads").await;
        let prod_ou = ou(&c, &workloads, "Prod").await;
        let sandbox = ou(&c, &root, "Sandbox").await;
        let log = account(&c, &root, &security, "log-archive", &[]).await;
        let prod = account(
            &c,
            &root,
            &prod_ou,
            "payments",
            &[("owner", "payments-team")],
        )
        .await;
        let tagged = account(
            &c,
            &root,
            &prod_ou,
            "shared-dev",
            &[("environment", "development")],
        )
        .await;
        (root, sandbox, prod, log, tagged)
    });

    let dir = tempfile::tempdir().unwrap();
    let more = "\n[organizations]\nenabled = true\nrefresh = \"1s\"\n";
    let svc = Service::start_env(dir.path(), &[], more, &moto.env());
    let mut seen = Default::default();
    wait_for(60, "the organization's accounts", || {
        seen = registry(&svc);
        seen.contains_key(&prod) && seen.contains_key(&security) && seen.contains_key(&tagged)
    });
    assert_eq!(seen[&prod].0, "production", "{seen:?}");
    assert_eq!(seen[&prod].1, "Workloads/Prod", "{seen:?}");
    assert!(seen[&prod].2 > 0, "its enabled regions: {seen:?}");
    assert_eq!(seen[&security].0, "security-tooling", "{seen:?}");
    assert_eq!(
        seen[&tagged].0, "development",
        "the tag before the OU: {seen:?}"
    );
    // The account the configuration names keeps what it says.
    assert_eq!(seen["111122223333"].0, "production");

    let late = rt.block_on(account(&c, &root, &sandbox, "experiments", &[]));
    wait_for(30, "the new account", || {
        seen = registry(&svc);
        seen.contains_key(&late)
    });
    assert_eq!(seen[&late].0, "sandbox", "{seen:?}");
}
