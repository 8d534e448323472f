//! The account registry: which AWS accounts Vigil watches, what each is for and who
//! owns it. Incidents are weighted by an account's environment, and the API shows an
//! account's name wherever its id appears.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

use crate::Severity;

/// What an account is used for, in the terms of an AWS Organizations layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Environment {
    /// The account the security tooling runs in: tampering there blinds everything.
    SecurityTooling,
    Production,
    Development,
    Sandbox,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::SecurityTooling => "security-tooling",
            Environment::Production => "production",
            Environment::Development => "development",
            Environment::Sandbox => "sandbox",
        }
    }

    /// How an incident's severity moves in this environment: one level up where
    /// the stakes are highest, one down in a sandbox, unchanged in development.
    pub fn weigh(self, s: Severity) -> Severity {
        let i = Severity::ALL.iter().position(|&x| x == s).unwrap_or(0);
        let j = match self {
            Environment::SecurityTooling | Environment::Production => i + 1,
            Environment::Development => i,
            Environment::Sandbox => i.saturating_sub(1),
        };
        Severity::ALL[j.min(Severity::ALL.len() - 1)]
    }
}

/// One watched account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The 12-digit account id.
    pub id: String,
    pub name: String,
    pub environment: Environment,
    #[serde(default)]
    pub owner: Option<String>,
    /// The regions enabled in it, where known (read from AWS on onboarding).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Its organizational units, root first (`Workloads/Prod`), when it came
    /// from AWS Organizations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ou: Option<String>,
}

/// Every registered account, by id. A handle: its clones share one registry,
/// so that a refresh (accounts joining the organization) reaches every holder
/// at once, without a restart.
#[derive(Clone, Debug, Default)]
pub struct AccountRegistry {
    by_id: Arc<RwLock<BTreeMap<String, Account>>>,
}

/// Why a list of accounts is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountError {
    NotAnId(String),
    Twice(String),
}

impl std::fmt::Display for AccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountError::NotAnId(id) => write!(f, "account id {id:?} is not 12 digits"),
            AccountError::Twice(id) => write!(f, "account {id} is listed twice"),
        }
    }
}

impl std::error::Error for AccountError {}

impl AccountRegistry {
    /// Builds the registry, refusing ids that are not 12 digits or that repeat.
    pub fn new(accounts: Vec<Account>) -> Result<AccountRegistry, AccountError> {
        Ok(AccountRegistry {
            by_id: Arc::new(RwLock::new(Self::index(accounts)?)),
        })
    }

    fn index(accounts: Vec<Account>) -> Result<BTreeMap<String, Account>, AccountError> {
        let mut by_id = BTreeMap::new();
        for a in accounts {
            if a.id.len() != 12 || !a.id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AccountError::NotAnId(a.id));
            }
            if let Some(old) = by_id.insert(a.id.clone(), a) {
                return Err(AccountError::Twice(old.id));
            }
        }
        Ok(by_id)
    }

    /// Puts `accounts` in place of every account, for every holder of the
    /// registry (refused whole, as [`AccountRegistry::new`] refuses).
    pub fn replace(&self, accounts: Vec<Account>) -> Result<(), AccountError> {
        let by_id = Self::index(accounts)?;
        *self.by_id.write().unwrap_or_else(PoisonError::into_inner) = by_id;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<Account> {
        self.read().get(id).cloned()
    }

    /// Every account, by id.
    pub fn list(&self) -> Vec<Account> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Account>> {
        self.by_id.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// `s` weighted by the environment of `account`; unregistered accounts are
    /// taken as they come.
    pub fn weigh(&self, account: Option<&str>, s: Severity) -> Severity {
        match account.and_then(|a| self.read().get(a).map(|a| a.environment)) {
            Some(e) => e.weigh(s),
            None => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(id: &str, environment: Environment) -> Account {
        Account {
            id: id.into(),
            name: "n".into(),
            environment,
            owner: None,
            regions: Vec::new(),
            ou: None,
        }
    }

    #[test]
    fn weighting_moves_one_level_and_stays_in_range() {
        use Severity::*;
        assert_eq!(Environment::Production.weigh(High), Critical);
        assert_eq!(Environment::Production.weigh(Critical), Critical);
        assert_eq!(Environment::SecurityTooling.weigh(Low), Medium);
        assert_eq!(Environment::Development.weigh(Medium), Medium);
        assert_eq!(Environment::Sandbox.weigh(Medium), Low);
        assert_eq!(Environment::Sandbox.weigh(Informational), Informational);
    }

    #[test]
    fn registry_rejects_bad_and_repeated_ids() {
        assert!(AccountRegistry::new(vec![acct("12345", Environment::Sandbox)]).is_err());
        let twice = vec![
            acct("111111111111", Environment::Sandbox),
            acct("111111111111", Environment::Production),
        ];
        assert!(AccountRegistry::new(twice)
            .unwrap_err()
            .to_string()
            .contains("111111111111"));
        let r = AccountRegistry::new(vec![acct("111111111111", Environment::Production)]).unwrap();
        assert_eq!(
            r.weigh(Some("111111111111"), Severity::Low),
            Severity::Medium
        );
        assert_eq!(r.weigh(Some("222222222222"), Severity::Low), Severity::Low);
        assert_eq!(r.weigh(None, Severity::Low), Severity::Low);
    }
}
