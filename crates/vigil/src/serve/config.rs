//! The service's one configuration file (TOML), with environment overrides
//! (`VIGIL_LISTEN`, `VIGIL_DATA_DIR`, `VIGIL_INBOX`). Unknown keys are refused by
//! name; every default works on a laptop.
//!
//! ```toml
//! listen = "127.0.0.1:8750"
//! data_dir = "./vigil-data"
//! poll_ms = 500
//! dedup_window = "1h"       # the same rule, principal and resource: one finding
//! incident_window = "1h"    # findings of one account, subject and category: one incident
//! lateness = "5m"           # how late an event may come and still correlate
//! rules = ["my-rules/"]
//!
//! [api]
//! region = "us-east-1"
//! service = "execute-api"
//! firehose_access_keys = ["…at least 16 characters…"]
//! [[api.keys]]
//! access_key_id = "AKIA…"
//! secret_access_key = "…"
//! principal = "ana"
//! role = "analyst"          # analyst | responder | admin | ingest
//!
//! [[accounts]]
//! id = "111122223333"
//! name = "payments-prod"
//! environment = "production" # security-tooling | production | development | sandbox
//! owner = "payments-team"
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use serde::Deserialize;
use vigil_model::{Account, AccountRegistry};
use vigil_server::{AccessKey, ApiConfig, Role};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    pub listen: std::net::SocketAddr,
    pub data_dir: PathBuf,
    pub inbox: Option<PathBuf>,
    pub poll_ms: u64,
    pub dedup_window: String,
    pub incident_window: String,
    pub lateness: String,
    pub rules: Vec<PathBuf>,
    pub api: ApiConfig,
    pub accounts: Vec<Account>,
    pub response: ResponseConfig,
    pub compliance: ComplianceConfig,
}

/// Compliance: the checks run on a schedule, and again within seconds of a
/// CloudTrail event that changes what they judge, over the inventory read from
/// AWS (or from a snapshot file).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComplianceConfig {
    pub enabled: bool,
    /// Assess this snapshot file (read again each time) instead of reading AWS.
    pub snapshot: Option<PathBuf>,
    /// How often the whole inventory is read and assessed.
    pub interval: String,
    /// The accounts read; empty: the account of Vigil's credentials.
    pub accounts: Vec<String>,
    /// The regions read; empty: every region enabled in each account.
    pub regions: Vec<String>,
    /// The role assumed in each member account to read it.
    pub role: Option<String>,
    pub external_id: Option<String>,
    /// Call AWS here instead (default: the response section's).
    pub endpoint_url: Option<String>,
    pub home_account: Option<String>,
    pub home_region: Option<String>,
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        ComplianceConfig {
            enabled: false,
            snapshot: None,
            interval: "6h".into(),
            accounts: Vec::new(),
            regions: Vec::new(),
            role: None,
            external_id: None,
            endpoint_url: None,
            home_account: None,
            home_region: None,
        }
    }
}

impl ComplianceConfig {
    pub fn interval_ms(&self) -> Result<i64> {
        span("compliance.interval", &self.interval)
    }
}

/// Response: whether playbooks run, and how Vigil reaches AWS to run them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// Run playbooks at all; off, the remediation routes answer 503.
    pub enabled: bool,
    /// Start the playbook a new finding triggers without a person (the
    /// playbook's own gates still hold).
    pub automatic: bool,
    /// A folder of playbook files over the built-in ones.
    pub playbooks: Option<PathBuf>,
    /// Runs calling AWS at once.
    pub max_concurrent: usize,
    /// Call AWS here instead of its endpoints (an emulator, a VPC endpoint proxy).
    pub endpoint_url: Option<String>,
    /// The role assumed in each member account to act there.
    pub response_role: Option<String>,
    pub external_id: Option<String>,
    /// The account Vigil's own credentials are in (no role is assumed there).
    pub home_account: Option<String>,
    pub home_region: Option<String>,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            enabled: false,
            automatic: true,
            playbooks: None,
            max_concurrent: 8,
            endpoint_url: None,
            response_role: None,
            external_id: None,
            home_account: None,
            home_region: None,
        }
    }
}

impl ResponseConfig {
    #[cfg(feature = "aws")]
    pub fn aws_settings(&self) -> vigil_aws::AwsSettings {
        vigil_aws::AwsSettings {
            endpoint_url: self.endpoint_url.clone(),
            response_role: self.response_role.clone(),
            external_id: self.external_id.clone(),
            home_account: self.home_account.clone(),
            home_region: self.home_region.clone(),
            credentials: None,
        }
    }

    /// The playbooks: built-in, then those of the configured folder over them.
    pub fn library(&self) -> Result<vigil_respond::Library> {
        crate::playbooks::load_library(self.playbooks.as_deref())
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8750)),
            data_dir: PathBuf::from("./vigil-data"),
            inbox: None,
            poll_ms: 500,
            dedup_window: "1h".into(),
            incident_window: "1h".into(),
            lateness: "5m".into(),
            rules: Vec::new(),
            api: ApiConfig::default(),
            accounts: Vec::new(),
            response: ResponseConfig::default(),
            compliance: ComplianceConfig::default(),
        }
    }
}

fn span(key: &str, v: &str) -> Result<i64> {
    vigil_detect::sigma::correlation::parse_timespan(v)
        .ok_or_else(|| anyhow!("{key}: `{v}` is not a number followed by s, m, h or d"))
}

impl ServeConfig {
    pub fn load(path: &Path) -> Result<ServeConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("config {}", path.display()))?;
        let c: ServeConfig =
            toml::from_str(&text).map_err(|e| anyhow!("config {}: {e}", path.display()))?;
        c.api
            .validate()
            .map_err(|e| anyhow!("config {}: {e}", path.display()))?;
        Ok(c)
    }

    /// `VIGIL_LISTEN`, `VIGIL_DATA_DIR` and `VIGIL_INBOX` override the file.
    pub fn apply_env(&mut self) -> Result<()> {
        if let Ok(v) = std::env::var("VIGIL_LISTEN") {
            self.listen = v.parse().map_err(|e| anyhow!("VIGIL_LISTEN={v}: {e}"))?;
        }
        if let Ok(v) = std::env::var("VIGIL_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Ok(v) = std::env::var("VIGIL_INBOX") {
            self.inbox = Some(v.into());
        }
        if let Ok(v) = std::env::var("VIGIL_AWS_ENDPOINT_URL") {
            self.compliance.endpoint_url = Some(v.clone());
            self.response.endpoint_url = Some(v);
        }
        Ok(())
    }

    pub fn dedup_window_ms(&self) -> Result<i64> {
        span("dedup_window", &self.dedup_window)
    }

    pub fn incident_window_ms(&self) -> Result<i64> {
        span("incident_window", &self.incident_window)
    }

    pub fn detector_config(&self) -> Result<vigil_detect::DetectorConfig> {
        Ok(vigil_detect::DetectorConfig {
            lateness_ms: span("lateness", &self.lateness)?,
            ..Default::default()
        })
    }

    pub fn registry(&self) -> Result<AccountRegistry> {
        AccountRegistry::new(self.accounts.clone()).map_err(|e| anyhow!("accounts: {e}"))
    }

    /// With no access keys configured, the service would be unreachable: it makes
    /// an admin key once, keeps it in `<data-dir>/admin-key.toml` (readable by its
    /// owner only), and uses it. Returns that file's path when it is in use.
    pub fn ensure_keys(&mut self, data_dir: &Path) -> Result<Option<PathBuf>> {
        if !self.api.keys.is_empty() {
            return Ok(None);
        }
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("data dir {}", data_dir.display()))?;
        let path = data_dir.join("admin-key.toml");
        let key: AccessKey = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = AccessKey {
                    access_key_id: format!(
                        "AKIAVIGIL{}",
                        &hex(&random_bytes(8)?)[..11].to_uppercase()
                    ),
                    secret_access_key: hex(&random_bytes(20)?),
                    principal: "admin".into(),
                    role: Role::Admin,
                };
                let text = format!(
                    "# Made by `vigil serve` because its configuration lists no access keys.\n\
                     access_key_id = \"{}\"\nsecret_access_key = \"{}\"\nprincipal = \"admin\"\nrole = \"admin\"\n",
                    key.access_key_id, key.secret_access_key
                );
                write_private(&path, text.as_bytes())?;
                key
            }
            Err(e) => return Err(anyhow!("{}: {e}", path.display())),
        };
        self.api.keys.push(key);
        Ok(Some(path))
    }
}

fn random_bytes(n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom for a new access key")?;
    Ok(b)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes a file only its owner can read (a secret).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let bad = toml::from_str::<ServeConfig>("listen = \"127.0.0.1:1\"\ncolour = 1\n");
        assert!(bad.unwrap_err().to_string().contains("colour"));
        let c: ServeConfig = toml::from_str(
            "dedup_window = \"soon\"\n[api]\nregion = \"eu-west-1\"\n[[accounts]]\nid = \"123\"\nname = \"x\"\nenvironment = \"production\"\n",
        )
        .unwrap();
        assert!(c
            .dedup_window_ms()
            .unwrap_err()
            .to_string()
            .contains("dedup_window"));
        assert!(c.registry().unwrap_err().to_string().contains("123"));
        assert_eq!(c.api.region, "eu-west-1");
        assert_eq!(c.api.service, "execute-api");
    }

    #[test]
    fn a_missing_key_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = ServeConfig::default();
        let path = a.ensure_keys(dir.path()).unwrap().unwrap();
        let mut b = ServeConfig::default();
        b.ensure_keys(dir.path()).unwrap();
        assert_eq!(a.api.keys[0].access_key_id, b.api.keys[0].access_key_id);
        assert_eq!(a.api.keys[0].role, Role::Admin);
        assert_eq!(a.api.keys[0].secret_access_key.len(), 40);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
    }
}
