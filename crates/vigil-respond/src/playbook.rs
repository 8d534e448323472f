//! The playbook format: a YAML file per playbook, checked whole when it loads, so
//! that a mistake (an unknown action, a parameter the action does not take, a
//! template naming nothing, a step id used twice) is reported with the file and the
//! field before any run, never discovered halfway through one.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use vigil_model::finding::Category;

use crate::action::{action, ActionSpec};
use crate::template::{self, Condition};

/// Why a playbook was refused: the file, where in it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {at}{why}")]
pub struct PlaybookError {
    pub file: String,
    /// The field (`steps[2].parameters.user_name`), or empty for the YAML reader's
    /// own errors, which carry the line and column in `why`.
    pub at: Field,
    pub why: String,
}

/// A field path inside a playbook, printed followed by `: `.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Field(pub String);

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "{}: ", self.0)
        }
    }
}

/// How much a playbook does without a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Automation {
    /// Runs as soon as a finding triggers it (approval gates still hold).
    Full,
    /// A person approves the run before its first step.
    Semi,
    /// Never started by a finding: a responder starts it and approves each step.
    Manual,
}

/// What to do when a step fails for good (after its retries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Note it and go on with the next step.
    Continue,
    /// Stop the run here.
    Abort,
    /// Stop, then run the playbook's rollback steps for the steps that completed.
    Rollback,
}

/// Which findings start a playbook: any of the listed categories, rule ids or
/// GuardDuty finding types (`*` matches any run of characters).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Triggers {
    pub categories: Vec<String>,
    pub rules: Vec<String>,
    pub guardduty_types: Vec<String>,
}

/// Retries after a failure that may pass (throttling, a resource not yet
/// consistent): `max` more attempts, waiting `backoff`, doubled each time.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryFile {
    max: u32,
    #[serde(default = "default_backoff")]
    backoff: String,
}

fn default_backoff() -> String {
    "1s".into()
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Retry {
    pub max: u32,
    #[serde(with = "as_millis")]
    pub backoff: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    id: String,
    action: String,
    #[serde(default)]
    parameters: BTreeMap<String, Value>,
    #[serde(default)]
    when: Option<Condition>,
    #[serde(default)]
    retries: Option<RetryFile>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    on_failure: Option<OnFailure>,
    /// A person approves before this step runs.
    #[serde(default)]
    approval: bool,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaybookFile {
    id: String,
    name: String,
    description: String,
    automation: Automation,
    triggers: Triggers,
    expected_duration: String,
    steps: Vec<StepFile>,
    #[serde(default)]
    rollback: Vec<StepFile>,
}

/// One step, checked.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Step {
    pub id: String,
    #[serde(serialize_with = "action_name")]
    pub action: &'static ActionSpec,
    pub parameters: BTreeMap<String, Value>,
    pub when: Option<Condition>,
    pub retries: Option<Retry>,
    #[serde(with = "as_millis")]
    pub timeout: Duration,
    pub on_failure: OnFailure,
    pub approval: bool,
    pub description: Option<String>,
}

/// A playbook, checked.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Playbook {
    pub id: String,
    pub name: String,
    pub description: String,
    pub automation: Automation,
    pub triggers: Triggers,
    #[serde(with = "as_millis")]
    pub expected_duration: Duration,
    pub steps: Vec<Step>,
    /// Run in order after a failure whose step says `rollback`; each undoes the
    /// step of the same `id` under `steps`, and runs only if that step completed.
    pub rollback: Vec<Step>,
    /// Where it was read from (`builtin:PB-001.yaml` or a path).
    pub source: String,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// `500ms`, `10s`, `5m`, `1h` (Vigil's one span grammar, `vigil_model::Span`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    vigil_model::Span::parse(s)
        .map(vigil_model::Span::duration)
        .map_err(|e| e.to_string())
}

impl Playbook {
    /// Reads and checks a playbook; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Playbook, PlaybookError> {
        let err = |at: String, why: String| PlaybookError {
            file: file.to_owned(),
            at: Field(at),
            why,
        };
        let raw: PlaybookFile =
            serde_saphyr::from_str(text).map_err(|e| err(String::new(), e.to_string()))?;
        if !is_playbook_id(&raw.id) {
            return Err(err(
                "id".into(),
                format!(
                    "{:?} is not of the form PB-NNN (or a name of letters, digits and -)",
                    raw.id
                ),
            ));
        }
        if raw.name.trim().is_empty() {
            return Err(err("name".into(), "empty".into()));
        }
        for (i, c) in raw.triggers.categories.iter().enumerate() {
            if Category::parse(c).is_none() {
                return Err(err(
                    format!("triggers.categories[{i}]"),
                    format!("{c:?} is not a finding category"),
                ));
            }
        }
        let expected_duration = parse_duration(&raw.expected_duration)
            .map_err(|why| err("expected_duration".into(), why))?;
        if raw.steps.is_empty() {
            return Err(err(
                "steps".into(),
                "a playbook needs at least one step".into(),
            ));
        }
        let steps = check_steps(raw.steps, "steps", &err)?;
        let rollback = check_steps(raw.rollback, "rollback", &err)?;
        for (i, r) in rollback.iter().enumerate() {
            if !steps.iter().any(|s| s.id == r.id) {
                return Err(err(
                    format!("rollback[{i}].id"),
                    format!("{:?} undoes no step of this playbook (a rollback step takes the id of the step it undoes)", r.id),
                ));
            }
        }
        Ok(Playbook {
            id: raw.id,
            name: raw.name,
            description: raw.description,
            automation: raw.automation,
            triggers: raw.triggers,
            expected_duration,
            steps,
            rollback,
            source: file.to_owned(),
        })
    }

    /// Whether a finding of `category`, raised by `rule_id` (with the source
    /// finding type `finding_type`, for GuardDuty), starts this playbook.
    pub fn triggered_by(
        &self,
        category: Category,
        rule_id: &str,
        finding_type: Option<&str>,
    ) -> bool {
        self.triggers
            .categories
            .iter()
            .any(|c| Category::parse(c) == Some(category))
            || self.triggered_by_name(rule_id, finding_type)
    }

    /// Whether the triggers name `rule_id` or match the GuardDuty `finding_type`.
    pub fn triggered_by_name(&self, rule_id: &str, finding_type: Option<&str>) -> bool {
        let t = &self.triggers;
        t.rules.iter().any(|r| r == rule_id)
            || finding_type.is_some_and(|ft| t.guardduty_types.iter().any(|g| glob(g, ft)))
    }

    /// Whether any step is hard to undo.
    pub fn destructive(&self) -> bool {
        self.steps.iter().any(|s| s.action.destructive)
    }
}

fn is_playbook_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_steps(
    raw: Vec<StepFile>,
    list: &str,
    err: &dyn Fn(String, String) -> PlaybookError,
) -> Result<Vec<Step>, PlaybookError> {
    let mut ids = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, s) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("{list}[{i}].{field}");
        if !is_playbook_id(&s.id) {
            return Err(err(
                at("id"),
                format!("{:?} is not a name of letters, digits, - and _", s.id),
            ));
        }
        if !ids.insert(s.id.clone()) {
            return Err(err(
                at("id"),
                format!("{:?} is used by an earlier step", s.id),
            ));
        }
        let spec = action(&s.action).ok_or_else(|| {
            err(
                at("action"),
                format!(
                    "{:?} is not an action Vigil knows (`vigil playbooks actions` lists them)",
                    s.action
                ),
            )
        })?;
        for p in s.parameters.keys() {
            if !spec.takes(p) {
                return Err(err(
                    at(&format!("parameters.{p}")),
                    format!(
                        "{} takes no parameter {p:?} (it takes: {})",
                        spec.name,
                        params_of(spec)
                    ),
                ));
            }
        }
        for r in spec.required {
            if !s.parameters.contains_key(*r) {
                return Err(err(
                    at("parameters"),
                    format!("{} needs parameter {r:?}", spec.name),
                ));
            }
        }
        for (p, v) in &s.parameters {
            template::check(v).map_err(|e| err(at(&format!("parameters.{p}")), e.to_string()))?;
        }
        if let Some(c) = &s.when {
            c.check().map_err(|why| err(at("when"), why))?;
        }
        let retries = match s.retries {
            None => None,
            Some(r) => Some(Retry {
                max: r.max,
                backoff: parse_duration(&r.backoff)
                    .map_err(|why| err(at("retries.backoff"), why))?,
            }),
        };
        if retries.as_ref().is_some_and(|r| r.max > 10) {
            return Err(err(at("retries.max"), "at most 10".into()));
        }
        let timeout = match &s.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => parse_duration(t).map_err(|why| err(at("timeout"), why))?,
        };
        if timeout.is_zero() || timeout > Duration::from_secs(3600) {
            return Err(err(
                at("timeout"),
                "must be more than 0 and at most 1h".into(),
            ));
        }
        out.push(Step {
            id: s.id,
            action: spec,
            parameters: s.parameters,
            when: s.when,
            retries,
            timeout,
            on_failure: s.on_failure.unwrap_or(OnFailure::Abort),
            approval: s.approval,
            description: s.description,
        });
    }
    Ok(out)
}

fn params_of(spec: &ActionSpec) -> String {
    let all: Vec<&str> = spec.required.iter().chain(spec.optional).copied().collect();
    if all.is_empty() {
        "none".into()
    } else {
        all.join(", ")
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(p);
        }
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// The built-in playbooks, shipped inside the binary.
const BUILTIN: &[(&str, &str)] = &[
    (
        "PB-001.yaml",
        include_str!("../../../content/playbooks/PB-001.yaml"),
    ),
    (
        "PB-002.yaml",
        include_str!("../../../content/playbooks/PB-002.yaml"),
    ),
    (
        "PB-003.yaml",
        include_str!("../../../content/playbooks/PB-003.yaml"),
    ),
    (
        "PB-004.yaml",
        include_str!("../../../content/playbooks/PB-004.yaml"),
    ),
    (
        "PB-005.yaml",
        include_str!("../../../content/playbooks/PB-005.yaml"),
    ),
    (
        "PB-006.yaml",
        include_str!("../../../content/playbooks/PB-006.yaml"),
    ),
    (
        "PB-007.yaml",
        include_str!("../../../content/playbooks/PB-007.yaml"),
    ),
    (
        "PB-008.yaml",
        include_str!("../../../content/playbooks/PB-008.yaml"),
    ),
    (
        "PB-009.yaml",
        include_str!("../../../content/playbooks/PB-009.yaml"),
    ),
    (
        "PB-010.yaml",
        include_str!("../../../content/playbooks/PB-010.yaml"),
    ),
    (
        "PB-011.yaml",
        include_str!("../../../content/playbooks/PB-011.yaml"),
    ),
    (
        "PB-012.yaml",
        include_str!("../../../content/playbooks/PB-012.yaml"),
    ),
    (
        "PB-013.yaml",
        include_str!("../../../content/playbooks/PB-013.yaml"),
    ),
    (
        "PB-014.yaml",
        include_str!("../../../content/playbooks/PB-014.yaml"),
    ),
    (
        "PB-015.yaml",
        include_str!("../../../content/playbooks/PB-015.yaml"),
    ),
];

/// The playbooks in force: the built-in ones, each replaced by a file of the same
/// id in the override directory, plus any new ones there.
#[derive(Clone, Debug, Default)]
pub struct Library {
    playbooks: Vec<Playbook>,
}

impl Library {
    /// The built-in playbooks, then those of `dir` (`*.yaml`, `*.yml`) over them.
    /// Every file is checked; all the errors are returned together.
    pub fn load(dir: Option<&Path>) -> Result<Library, Vec<PlaybookError>> {
        let mut lib = Library::default();
        let mut errors = Vec::new();
        for (name, text) in BUILTIN {
            match Playbook::parse(text, &format!("builtin:{name}")) {
                Ok(p) => lib.put(p),
                Err(e) => errors.push(e),
            }
        }
        if let Some(dir) = dir {
            match files_in(dir) {
                Ok(files) => {
                    for path in files {
                        let shown = path.display().to_string();
                        match std::fs::read_to_string(&path) {
                            Ok(text) => match Playbook::parse(&text, &shown) {
                                Ok(p) => lib.put(p),
                                Err(e) => errors.push(e),
                            },
                            Err(e) => errors.push(PlaybookError {
                                file: shown,
                                at: Field::default(),
                                why: e.to_string(),
                            }),
                        }
                    }
                }
                Err(e) => errors.push(PlaybookError {
                    file: dir.display().to_string(),
                    at: Field::default(),
                    why: e.to_string(),
                }),
            }
        }
        if errors.is_empty() {
            Ok(lib)
        } else {
            Err(errors)
        }
    }

    fn put(&mut self, p: Playbook) {
        match self.playbooks.iter_mut().find(|q| q.id == p.id) {
            Some(q) => *q = p,
            None => self.playbooks.push(p),
        }
        self.playbooks.sort_by(|a, b| a.id.cmp(&b.id));
    }

    pub fn get(&self, id: &str) -> Option<&Playbook> {
        self.playbooks
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(id))
    }

    /// The playbook a finding starts: the one its rule names, else the first (by
    /// id) whose triggers name its rule or GuardDuty finding type.
    ///
    /// Category triggers are not consulted here. A rule without a `playbook` gets
    /// its category's playbook when it is loaded, so a finding naming none comes
    /// from a rule that said `playbook: none` (a low-severity record, a change to
    /// look at): starting its category's full-automation playbook would override
    /// that choice.
    pub fn for_finding(&self, f: &vigil_model::Finding) -> Option<&Playbook> {
        if let Some(p) = f
            .detail
            .remediation
            .playbook
            .as_deref()
            .and_then(|id| self.get(id))
        {
            return Some(p);
        }
        let finding_type = f
            .detail
            .evidence
            .extra
            .get("finding_type")
            .and_then(Value::as_str);
        let mut matching: Vec<&Playbook> = self
            .playbooks
            .iter()
            .filter(|p| p.triggered_by_name(&f.detail.rule.id, finding_type))
            .collect();
        matching.sort_by(|a, b| a.id.cmp(&b.id));
        matching.first().copied()
    }

    pub fn all(&self) -> &[Playbook] {
        &self.playbooks
    }
}

fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

fn action_name<S: serde::Serializer>(a: &&'static ActionSpec, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.name)
}

mod as_millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob(
            "UnauthorizedAccess:IAMUser/*",
            "UnauthorizedAccess:IAMUser/TorIPCaller"
        ));
        assert!(glob("*:EC2/*", "CryptoCurrency:EC2/BitcoinTool.B!DNS"));
        assert!(glob(
            "Recon:EC2/PortProbeUnprotectedPort",
            "Recon:EC2/PortProbeUnprotectedPort"
        ));
        assert!(!glob(
            "Recon:EC2/Port",
            "Recon:EC2/PortProbeUnprotectedPort"
        ));
        assert!(!glob("*:S3/*", "CryptoCurrency:EC2/BitcoinTool.B"));
        assert!(glob("*", ""));
    }
}
