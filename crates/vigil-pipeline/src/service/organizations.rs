//! Onboarding from AWS Organizations: the account registry is filled with the
//! organization's active accounts, each with the environment its tag or its
//! organizational units say, and the regions enabled in it; refreshed on a
//! schedule, so an account that joins the organization is watched (and its
//! incidents weighed) without a restart.
//!
//! ```toml
//! [organizations]
//! enabled = true
//! refresh = "1h"
//! management_account = "111111111111" # else Vigil's own account is asked
//! environment_tag = "environment"     # an account tag naming the environment
//! owner_tag = "owner"
//! default_environment = "production"  # when neither tag nor OU says
//! [organizations.ou_environments]     # OU names, before the built-in guesses
//! "Workloads-Live" = "production"
//! ```
//!
//! The environment of an account is, first to answer: its `environment_tag`
//! (`security-tooling`, `production`, `development`, `sandbox`, or the usual
//! short forms); then its OUs from the nearest up, each by `ou_environments`
//! and else by its name (`Security`, `Audit`, `Log Archive`: security-tooling;
//! `Prod`: production; `Dev`, `Test`, `Staging`, `NonProd`, `QA`: development;
//! `Sandbox`); else `default_environment` (production unless set: an account
//! nobody classified is weighed as if it mattered). Accounts listed under
//! `[[accounts]]` keep what the configuration says.

use std::collections::BTreeMap;

use serde::Deserialize;
use vigil_model::{Account, AccountRegistry, Environment, Span};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrganizationsConfig {
    pub enabled: bool,
    pub refresh: Span,
    pub management_account: Option<String>,
    pub environment_tag: String,
    pub owner_tag: String,
    pub default_environment: Environment,
    pub ou_environments: BTreeMap<String, Environment>,
    /// Read each account's enabled regions (one call per account a refresh).
    pub regions: bool,
}

impl Default for OrganizationsConfig {
    fn default() -> Self {
        OrganizationsConfig {
            enabled: false,
            refresh: Span::from_secs(3600),
            management_account: None,
            environment_tag: "environment".into(),
            owner_tag: "owner".into(),
            default_environment: Environment::Production,
            ou_environments: BTreeMap::new(),
            regions: true,
        }
    }
}

/// An account of the organization, as far as onboarding needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub active: bool,
    pub ou_path: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// An environment from a word: a tag value or an OU name.
pub fn guess(word: &str) -> Option<Environment> {
    let w = word.to_ascii_lowercase().replace(['_', ' '], "-");
    let has = |p: &str| w.contains(p);
    if has("security") || has("audit") || has("log-archive") || has("logarchive") {
        Some(Environment::SecurityTooling)
    } else if has("sandbox") {
        Some(Environment::Sandbox)
    } else if has("nonprod") || has("non-prod") || has("preprod") || has("pre-prod") {
        Some(Environment::Development)
    } else if has("prod") || w == "live" {
        Some(Environment::Production)
    } else if has("dev") || has("test") || has("staging") || has("stage") || w == "qa" {
        Some(Environment::Development)
    } else {
        None
    }
}

impl OrganizationsConfig {
    /// The environment of `m` (see the module's documentation).
    pub fn environment_of(&self, m: &Member) -> Environment {
        if let Some(e) = m.tags.get(&self.environment_tag).and_then(|v| guess(v)) {
            return e;
        }
        for ou in m.ou_path.iter().rev() {
            let named = self
                .ou_environments
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(ou))
                .map(|(_, e)| *e);
            if let Some(e) = named.or_else(|| guess(ou)) {
                return e;
            }
        }
        self.default_environment
    }

    /// The registry's accounts: those `configured`, then every active member
    /// not among them, with its environment, owner, OUs and `regions`.
    pub fn accounts(
        &self,
        configured: &[Account],
        members: &[Member],
        regions: &BTreeMap<String, Vec<String>>,
    ) -> Vec<Account> {
        let mut out: Vec<Account> = configured.to_vec();
        for m in members.iter().filter(|m| m.active) {
            if let Some(a) = out.iter_mut().find(|a| a.id == m.id) {
                if a.regions.is_empty() {
                    a.regions = regions.get(&m.id).cloned().unwrap_or_default();
                }
                continue;
            }
            out.push(Account {
                id: m.id.clone(),
                name: m.name.clone(),
                environment: self.environment_of(m),
                owner: m.tags.get(&self.owner_tag).cloned(),
                regions: regions.get(&m.id).cloned().unwrap_or_default(),
                ou: (!m.ou_path.is_empty()).then(|| m.ou_path.join("/")),
            });
        }
        out
    }
}

/// Refreshes `registry` from the organization every `refresh`, until the
/// process ends. A refresh that fails keeps the registry as it was.
#[cfg(feature = "aws")]
pub async fn run(
    config: OrganizationsConfig,
    aws: super::AwsConfig,
    configured: Vec<Account>,
    registry: AccountRegistry,
) {
    let aws = vigil_aws::Aws::new(aws.read_settings()).await;
    let every = config
        .refresh
        .duration()
        .max(std::time::Duration::from_secs(1));
    loop {
        match refresh(&config, &aws, &configured, &registry).await {
            Ok(n) => tracing::info!(
                accounts = n,
                "account registry refreshed from AWS Organizations"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "AWS Organizations not read; the account registry is unchanged")
            }
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(feature = "aws")]
async fn refresh(
    config: &OrganizationsConfig,
    aws: &vigil_aws::Aws,
    configured: &[Account],
    registry: &AccountRegistry,
) -> Result<usize, String> {
    let members: Vec<Member> = aws
        .organization_members(config.management_account.as_deref())
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|m| Member {
            active: m.status.is_empty() || m.status == "ACTIVE",
            id: m.id,
            name: m.name,
            ou_path: m.ou_path,
            tags: m.tags,
        })
        .collect();
    let mut regions = BTreeMap::new();
    if config.regions {
        for m in members.iter().filter(|m| m.active) {
            match aws.enabled_regions(Some(&m.id)).await {
                Ok(r) => {
                    regions.insert(m.id.clone(), r);
                }
                Err(e) => tracing::warn!(account = %m.id, error = %e, "enabled regions not read"),
            }
        }
    }
    let accounts = config.accounts(configured, &members, &regions);
    let n = accounts.len();
    registry.replace(accounts).map_err(|e| e.to_string())?;
    Ok(n)
}

/// Without the AWS SDK, onboarding cannot run.
#[cfg(not(feature = "aws"))]
pub async fn run(
    _config: OrganizationsConfig,
    _aws: super::AwsConfig,
    _configured: Vec<Account>,
    _registry: AccountRegistry,
) {
    tracing::error!(
        "{}",
        super::without_aws("read AWS Organizations ([organizations] enabled)")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, ous: &[&str], tags: &[(&str, &str)]) -> Member {
        Member {
            id: id.into(),
            name: format!("acct-{id}"),
            active: true,
            ou_path: ous.iter().map(|s| s.to_string()).collect(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_tag_then_the_nearest_ou_then_the_default_decide() {
        let c = OrganizationsConfig::default();
        use Environment::*;
        let env = |ous: &[&str], tags: &[(&str, &str)]| c.environment_of(&member("1", ous, tags));
        assert_eq!(
            env(&["Workloads", "Prod"], &[("environment", "sandbox")]),
            Sandbox
        );
        assert_eq!(env(&["Workloads", "Prod"], &[]), Production);
        assert_eq!(env(&["Workloads", "NonProd"], &[]), Development);
        assert_eq!(env(&["Security"], &[]), SecurityTooling);
        assert_eq!(
            env(&["Infrastructure", "Log Archive"], &[]),
            SecurityTooling
        );
        assert_eq!(env(&["Sandbox"], &[]), Sandbox);
        assert_eq!(
            env(&["Prod", "Team-Dev"], &[]),
            Development,
            "the nearest OU"
        );
        assert_eq!(env(&["Misc"], &[("environment", "unknown")]), Production);
        assert_eq!(env(&[], &[]), Production);
    }

    #[test]
    fn configured_names_for_ous_come_before_guesses() {
        let mut c = OrganizationsConfig::default();
        c.ou_environments
            .insert("workloads-live".into(), Environment::Production);
        c.ou_environments
            .insert("Test-Of-Prod".into(), Environment::Sandbox);
        assert_eq!(
            c.environment_of(&member("1", &["Workloads-Live"], &[])),
            Environment::Production
        );
        assert_eq!(
            c.environment_of(&member("1", &["Test-Of-Prod"], &[])),
            Environment::Sandbox
        );
    }

    #[test]
    fn configured_accounts_win_and_inactive_members_are_left_out() {
        let c = OrganizationsConfig::default();
        let configured = vec![Account {
            id: "111111111111".into(),
            name: "named-here".into(),
            environment: Environment::Sandbox,
            owner: None,
            regions: Vec::new(),
            ou: None,
        }];
        let mut closed = member("333333333333", &[], &[]);
        closed.active = false;
        let members = vec![
            member("111111111111", &["Prod"], &[]),
            member("222222222222", &["Dev"], &[("owner", "team-a")]),
            closed,
        ];
        let regions = BTreeMap::from([("222222222222".to_owned(), vec!["eu-west-1".to_owned()])]);
        let all = c.accounts(&configured, &members, &regions);
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].name.as_str(), all[0].environment),
            ("named-here", Environment::Sandbox)
        );
        assert_eq!(all[1].environment, Environment::Development);
        assert_eq!(all[1].owner.as_deref(), Some("team-a"));
        assert_eq!(all[1].ou.as_deref(), Some("Dev"));
        assert_eq!(all[1].regions, vec!["eu-west-1".to_owned()]);
    }
}
