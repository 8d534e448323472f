//! The service's one configuration file (TOML), with environment overrides
//! (`VIGIL_LISTEN`, `VIGIL_DATA_DIR`, `VIGIL_INBOX`) and `${NAME}` references
//! to the environment inside it. Unknown keys are refused by name; every
//! default works on a laptop.
//!
//! ```toml
//! listen = "127.0.0.1:8750"
//! data_dir = "./vigil-data"
//! dedup_window = "1h"       # the same rule, principal and resource: one finding
//! incident_window = "1h"    # findings of one account, subject and category: one incident
//! lateness = "5m"           # how late an event may come and still correlate
//! redelivery_window = "24h" # a record delivered again within this long counts once
//! rules = ["my-rules/"]
//!
//! # Without [[sources]]: an inbox in <data_dir>/inbox and HTTP ingest.
//! [[sources]]
//! type = "inbox"
//! path = "/var/spool/vigil"
//! poll = "500ms"
//! [[sources]]
//! type = "http"
//!
//! [[outputs]]               # besides the store, which is always there
//! type = "jsonl"
//! path = "findings.jsonl"
//! [[outputs]]               # through the outbox (docs/outputs.md): eventbridge,
//! type = "slack"            # securityhub, slack, pagerduty, jira, splunk, webhook
//! token = "${SLACK_BOT_TOKEN}"
//! channel = "C0123456789"
//! min_severity = "HIGH"     # and categories, accounts, environments, tags, events,
//!                           # max_attempts, backoff, max_backoff, rate, timeout, link_base
//!
//! [routing.rules]           # a rule's findings to these outputs only
//! "aws-cloudtrail-stop-logging" = ["slack"]
//!
//! [slack]                   # approving playbook steps from Slack's buttons
//! signing_secret = "${SLACK_SIGNING_SECRET}"
//! approvers = { U0123ABCD = "ana" }   # Slack user → principal of an API key that may act
//! two_approvers = ["PB-003"]          # playbooks or step actions needing two people
//! approval_ttl = "4h"
//!
//! [aws]                     # how Vigil reaches AWS (response and compliance)
//! home_account = "111122223333"
//! response_role = "VigilResponder"
//! read_role = "VigilAudit"
//! external_id = "…"
//!
//! [api]
//! region = "us-east-1"
//! service = "execute-api"
//! firehose_access_keys = ["…at least 16 characters…"]
//! header_timeout = "10s"    # a request's head, and an idle keep-alive connection
//! body_timeout = "60s"      # a request's body, in full
//! max_connections = 512     # more wait, unaccepted
//! max_body_bytes = 67108864
//! [[api.keys]]
//! access_key_id = "AKIA…"
//! secret_access_key = "…"
//! principal = "ana"
//! role = "analyst"          # analyst | responder | admin | ingest
//!
//! [organizations]          # the registry filled from AWS Organizations
//! enabled = true
//! refresh = "1h"
//!
//! [[accounts]]              # named here: kept as written
//! id = "111122223333"
//! name = "payments-prod"
//! environment = "production" # security-tooling | production | development | sandbox
//! owner = "payments-team"
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::PipelineError;

type Result<T, E = PipelineError> = std::result::Result<T, E>;

fn err(msg: String) -> PipelineError {
    PipelineError::Config(msg)
}
use serde::Deserialize;
use vigil_model::{Account, AccountRegistry, Span};
use vigil_server::{AccessKey, ApiConfig, Role};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    pub listen: std::net::SocketAddr,
    pub data_dir: PathBuf,
    pub dedup_window: Span,
    pub incident_window: Span,
    pub lateness: Span,
    pub redelivery_window: Span,
    /// The most record identities remembered (about 50 bytes each).
    pub max_remembered_records: usize,
    pub rules: Vec<PathBuf>,
    /// Each a table with a `type` (inbox, http, demo, sqs) and its own keys.
    pub sources: Vec<toml::Table>,
    /// Each a table with a `type` (jsonl; eventbridge, securityhub, slack,
    /// pagerduty, jira, splunk, webhook through the outbox) and its own keys.
    pub outputs: Vec<toml::Table>,
    /// Destinations chosen per rule, over the outputs' filters.
    pub routing: crate::notify::RoutingConfig,
    /// Slack's approval buttons.
    pub slack: vigil_server::SlackConfig,
    pub api: ApiConfig,
    pub aws: AwsConfig,
    pub accounts: Vec<Account>,
    pub response: ResponseConfig,
    pub compliance: ComplianceConfig,
    pub organizations: super::OrganizationsConfig,
}

/// How Vigil reaches AWS, for response and compliance alike.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// Call AWS here instead of its endpoints (an emulator, a VPC endpoint proxy).
    pub endpoint_url: Option<String>,
    /// The account Vigil's own credentials are in (no role is assumed there).
    pub home_account: Option<String>,
    pub home_region: Option<String>,
    /// The role assumed in each member account to act there (playbooks).
    pub response_role: Option<String>,
    /// The role assumed in each member account to read it (compliance); the
    /// response role when not set.
    pub read_role: Option<String>,
    /// What the roles' trust policies require.
    pub external_id: Option<String>,
}

impl AwsConfig {
    #[cfg(feature = "aws")]
    pub fn settings(&self, role: Option<&String>) -> vigil_aws::AwsSettings {
        vigil_aws::AwsSettings {
            endpoint_url: self.endpoint_url.clone(),
            response_role: role.cloned(),
            external_id: self.external_id.clone(),
            home_account: self.home_account.clone(),
            home_region: self.home_region.clone(),
            credentials: None,
        }
    }

    /// For playbooks.
    #[cfg(feature = "aws")]
    pub fn response_settings(&self) -> vigil_aws::AwsSettings {
        self.settings(self.response_role.as_ref())
    }

    /// For the compliance inventory.
    #[cfg(feature = "aws")]
    pub fn read_settings(&self) -> vigil_aws::AwsSettings {
        self.settings(self.read_role.as_ref().or(self.response_role.as_ref()))
    }
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
    pub interval: Span,
    /// The accounts read; empty: the account of Vigil's credentials.
    pub accounts: Vec<String>,
    /// The regions read; empty: every region enabled in each account.
    pub regions: Vec<String>,
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        ComplianceConfig {
            enabled: false,
            snapshot: None,
            interval: Span::from_secs(6 * 3600),
            accounts: Vec::new(),
            regions: Vec::new(),
        }
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
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            enabled: false,
            automatic: true,
            playbooks: None,
            max_concurrent: 8,
        }
    }
}

impl ResponseConfig {
    /// The playbooks: built-in, then those of the configured folder over them.
    pub fn library(&self) -> Result<vigil_respond::Library> {
        load_library(self.playbooks.as_deref())
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8750)),
            data_dir: PathBuf::from("./vigil-data"),
            dedup_window: Span::from_secs(3600),
            incident_window: Span::from_secs(3600),
            lateness: Span::from_secs(300),
            redelivery_window: Span::from_secs(24 * 3600),
            max_remembered_records: 2_000_000,
            rules: Vec::new(),
            sources: Vec::new(),
            outputs: Vec::new(),
            routing: Default::default(),
            slack: Default::default(),
            api: ApiConfig::default(),
            aws: AwsConfig::default(),
            accounts: Vec::new(),
            response: ResponseConfig::default(),
            compliance: ComplianceConfig::default(),
            organizations: Default::default(),
        }
    }
}

/// Puts the environment's values in place of `${NAME}` (NAME of capitals,
/// digits and `_`), so that a deployment can hand the file what it only knows
/// at run time (queue URLs, say); a name that is not set is an error naming
/// its line. Anything else with a `$` is left as written.
pub fn expand_env(text: &str, get: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("${") {
            let name_len = rest[at + 2..]
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len() - at - 2);
            let closes = rest[at + 2 + name_len..].starts_with('}');
            if name_len == 0 || !closes {
                out.push_str(&rest[..at + 2]);
                rest = &rest[at + 2..];
                continue;
            }
            let name = &rest[at + 2..at + 2 + name_len];
            let value =
                get(name).ok_or_else(|| format!("line {}: ${{{name}}} is not set", n + 1))?;
            out.push_str(&rest[..at]);
            out.push_str(&value);
            rest = &rest[at + 3 + name_len..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// The keys of `[[outputs]]` and `[slack]` that hold secrets.
const SECRET_KEYS: &[&str] = &[
    "token",
    "webhook_url",
    "routing_key",
    "api_token",
    "secret",
    "signing_secret",
];

/// Refuses a configuration file that writes a secret out (rather than as a
/// `${NAME}` from the environment) while others may read it.
fn check_secrets(path: &Path, text: &str) -> Result<()> {
    let Ok(raw) = toml::from_str::<toml::Table>(text) else {
        return Ok(()); // the real parse names the mistake
    };
    let mut written = Vec::new();
    let literal = |v: &toml::Value| v.as_str().map(|s| !s.contains("${")).unwrap_or(false);
    if let Some(outputs) = raw.get("outputs").and_then(toml::Value::as_array) {
        for (i, o) in outputs.iter().enumerate() {
            for k in SECRET_KEYS {
                if o.get(*k).map(literal).unwrap_or(false) {
                    written.push(format!("outputs[{i}].{k}"));
                }
            }
        }
    }
    if raw
        .get("slack")
        .and_then(|s| s.get("signing_secret"))
        .map(literal)
        .unwrap_or(false)
    {
        written.push("slack.signing_secret".into());
    }
    if written.is_empty() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| PipelineError::Io(format!("config {}", path.display()), e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "config {}: {} written in the file, which others may read (mode {:o}): \
                 chmod 600 it, or give the secret as ${{NAME}} from the environment",
                path.display(),
                written.join(", "),
                mode & 0o777
            )));
        }
    }
    Ok(())
}

impl ServeConfig {
    pub fn load(path: &Path) -> Result<ServeConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PipelineError::Io(format!("config {}", path.display()), e))?;
        check_secrets(path, &text)?;
        let text = expand_env(&text, |name| std::env::var(name).ok())
            .map_err(|e| err(format!("config {}: {e}", path.display())))?;
        let c: ServeConfig =
            toml::from_str(&text).map_err(|e| err(format!("config {}: {e}", path.display())))?;
        c.api
            .validate()
            .map_err(|e| err(format!("config {}: {e}", path.display())))?;
        Ok(c)
    }

    /// `VIGIL_LISTEN`, `VIGIL_DATA_DIR`, `VIGIL_INBOX` and `VIGIL_AWS_ENDPOINT_URL`
    /// override the file.
    pub fn apply_env(&mut self) -> Result<()> {
        if let Ok(v) = std::env::var("VIGIL_LISTEN") {
            self.listen = v
                .parse()
                .map_err(|e| err(format!("VIGIL_LISTEN={v}: {e}")))?;
        }
        if let Ok(v) = std::env::var("VIGIL_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Ok(v) = std::env::var("VIGIL_INBOX") {
            self.set_inbox(v.into());
        }
        if let Ok(v) = std::env::var("VIGIL_AWS_ENDPOINT_URL") {
            self.aws.endpoint_url = Some(v);
        }
        Ok(())
    }

    /// The sources in force: those configured, else an inbox and HTTP ingest.
    pub fn sources(&self) -> Vec<toml::Table> {
        if !self.sources.is_empty() {
            return self.sources.clone();
        }
        ["inbox", "http"]
            .into_iter()
            .map(|t| toml::Table::from_iter([("type".to_owned(), toml::Value::from(t))]))
            .collect()
    }

    /// Points the (first) inbox source at `path`, adding one if there is none.
    pub fn set_inbox(&mut self, path: PathBuf) {
        self.sources = self.sources();
        let path = toml::Value::from(path.display().to_string());
        match self
            .sources
            .iter_mut()
            .find(|t| t.get("type").and_then(toml::Value::as_str) == Some("inbox"))
        {
            Some(t) => {
                t.insert("path".into(), path);
            }
            None => self.sources.push(toml::Table::from_iter([
                ("type".to_owned(), toml::Value::from("inbox")),
                ("path".to_owned(), path),
            ])),
        }
    }

    /// Adds the demo story as a source.
    pub fn add_demo(&mut self) {
        self.sources = self.sources();
        self.sources.push(toml::Table::from_iter([(
            "type".to_owned(),
            toml::Value::from("demo"),
        )]));
    }

    pub fn detector_config(&self) -> vigil_detect::DetectorConfig {
        vigil_detect::DetectorConfig {
            lateness_ms: self.lateness.as_millis(),
            ..Default::default()
        }
    }

    pub fn registry(&self) -> Result<AccountRegistry> {
        AccountRegistry::new(self.accounts.clone()).map_err(|e| err(format!("accounts: {e}")))
    }

    /// With no access keys configured, the service would be unreachable: it makes
    /// an admin key once, keeps it in `<data-dir>/admin-key.toml` (readable by its
    /// owner only), and uses it. Returns that file's path when it is in use.
    pub fn ensure_keys(&mut self, data_dir: &Path) -> Result<Option<PathBuf>> {
        if !self.api.keys.is_empty() {
            return Ok(None);
        }
        std::fs::create_dir_all(data_dir)
            .map_err(|e| PipelineError::Io(format!("data dir {}", data_dir.display()), e))?;
        let path = data_dir.join("admin-key.toml");
        let key: AccessKey = match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).map_err(|e| err(format!("{}: {e}", path.display())))?
            }
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
            Err(e) => return Err(err(format!("{}: {e}", path.display()))),
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
        .map_err(|e| PipelineError::Io("reading /dev/urandom for a new access key".into(), e))?;
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
        .map_err(|e| PipelineError::Io(format!("creating {}", path.display()), e))?;
    f.write_all(bytes)
        .map_err(|e| PipelineError::Io(format!("writing {}", path.display()), e))
}

/// The built-in playbooks with those of `dir` over them; every refusal listed.
pub fn load_library(dir: Option<&Path>) -> Result<vigil_respond::Library> {
    vigil_respond::Library::load(dir).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        err(format!(
            "{} playbook file(s) refused:\n{}",
            errors.len(),
            list.join("\n")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let bad = toml::from_str::<ServeConfig>("listen = \"127.0.0.1:1\"\ncolour = 1\n");
        assert!(bad.unwrap_err().to_string().contains("colour"));
        let c = toml::from_str::<ServeConfig>(
            "dedup_window = \"soon\"\n[api]\nregion = \"eu-west-1\"\n",
        );
        assert!(c.is_err_and(|e| e.to_string().contains("dedup_window")));
        let c: ServeConfig = toml::from_str(
            "[api]\nregion = \"eu-west-1\"\n[[accounts]]\nid = \"123\"\nname = \"x\"\nenvironment = \"production\"\n",
        )
        .unwrap();
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

#[cfg(test)]
mod env_tests {
    use super::expand_env;

    #[test]
    fn names_in_braces_are_replaced_and_unset_ones_named() {
        let get = |n: &str| (n == "QUEUE_1").then(|| "https://q".to_owned());
        assert_eq!(
            expand_env("a = \"${QUEUE_1}/x\"\nb = \"$5 ${lower} ${\"\n", get).unwrap(),
            "a = \"https://q/x\"\nb = \"$5 ${lower} ${\"\n"
        );
        let e = expand_env("a = 1\nb = \"${MISSING}\"\n", get).unwrap_err();
        assert!(e.contains("line 2") && e.contains("${MISSING}"), "{e}");
    }

    /// The configuration the CDK app's container runs with is one Vigil takes.
    #[test]
    fn the_deployed_configuration_loads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/vigil.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let text = expand_env(&text, |n| {
            Some(format!("https://sqs.us-east-1.amazonaws.com/1/{n}"))
        })
        .unwrap();
        let c: super::ServeConfig = toml::from_str(&text).unwrap();
        assert_eq!(c.sources.len(), 2);
        assert!(c.organizations.enabled);
    }
}
