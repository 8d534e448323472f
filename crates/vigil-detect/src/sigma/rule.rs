//! Sigma detection rules: loading them from YAML, compiling them once into matchers,
//! and the analysis that lets the engine skip rules an event cannot match.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use super::condition::{self, Cond};
use super::value::{self, FieldMatcher, Pattern, ValueError};

/// Severity a rule assigns (`level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "informational" => Level::Informational,
            "low" => Level::Low,
            "medium" => Level::Medium,
            "high" => Level::High,
            "critical" => Level::Critical,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSource {
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
}

/// What a rule says about itself.
#[derive(Clone, Debug)]
pub struct RuleMeta {
    pub id: Option<String>,
    /// The optional `name` other rules (correlations) refer to it by.
    pub rule_name: Option<String>,
    pub title: String,
    pub status: Option<String>,
    pub description: Option<String>,
    pub level: Option<Level>,
    pub tags: Vec<String>,
    pub falsepositives: Vec<String>,
    pub references: Vec<String>,
    pub author: Option<String>,
    pub logsource: LogSource,
    /// The file the rule came from.
    pub origin: PathBuf,
    /// Vigil's own attributes (the rule's `vigil:` map: category, playbook,
    /// confidence, resource, …) as key → text.
    pub custom: Vec<(String, String)>,
}

impl RuleMeta {
    /// `id` when the rule has one, else its title: what messages call the rule.
    pub fn name(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.title)
    }
}

/// A problem with a rule: a feature this engine does not implement, or a mistake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleIssue {
    pub origin: PathBuf,
    /// Title (and id) of the rule, when the document got that far.
    pub rule: Option<String>,
    pub unsupported: bool,
    pub message: String,
}

impl std::fmt::Display for RuleIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.origin.display())?;
        if let Some(r) = &self.rule {
            write!(f, ": {r}")?;
        }
        let kind = if self.unsupported {
            "unsupported"
        } else {
            "invalid"
        };
        write!(f, ": {kind}: {}", self.message)
    }
}

#[derive(Clone)]
pub(crate) enum Selection {
    /// A list of maps: any map whose fields all match.
    Maps(Vec<Vec<FieldMatcher>>),
    /// Values searched for anywhere in the record.
    Keywords(Vec<Pattern>),
}

#[derive(Clone, Debug)]
pub(crate) enum Node {
    Sel(usize),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
}

/// CloudTrail fields the normalized event carries exactly as the record writes them,
/// so rules that read only these need not parse the record.
pub const TYPED_CLOUDTRAIL_FIELDS: [&str; 17] = [
    "eventName",
    "eventSource",
    "awsRegion",
    "userAgent",
    "errorCode",
    "errorMessage",
    "eventType",
    "readOnly",
    "userIdentity.type",
    "userIdentity.arn",
    "userIdentity.principalId",
    "userIdentity.accountId",
    "userIdentity.accessKeyId",
    "userIdentity.invokedBy",
    "userIdentity.sessionContext.sessionIssuer.type",
    "userIdentity.sessionContext.sessionIssuer.arn",
    "userIdentity.sessionContext.sessionIssuer.userName",
];

/// The fields of a flow record the typed event model carries (as the normalized
/// event's JSON names them), read without building that JSON. The first two are
/// addresses, the next seven numbers.
pub const TYPED_FLOW_FIELDS: [&str; 21] = [
    "network.src_addr",
    "network.dst_addr",
    "network.src_port",
    "network.dst_port",
    "network.protocol",
    "network.packets",
    "network.bytes",
    "network.tcp_flags",
    "network.version",
    "network.interface_id",
    "network.action",
    "network.log_status",
    "network.vpc_id",
    "network.subnet_id",
    "network.instance_id",
    "network.flow_direction",
    "network.traffic_type",
    "network.region",
    "network.az_id",
    "network.pkt_src_aws_service",
    "network.pkt_dst_aws_service",
];

/// The number of a field of the typed event model: CloudTrail's from 0, flows' after
/// them, in the order of the two lists.
pub fn typed_field(name: &str) -> Option<u8> {
    let at = |list: &[&str]| list.iter().position(|f| *f == name);
    at(&TYPED_CLOUDTRAIL_FIELDS)
        .or_else(|| at(&TYPED_FLOW_FIELDS).map(|i| i + TYPED_CLOUDTRAIL_FIELDS.len()))
        .map(|i| i as u8)
}

/// A rule compiled for matching.
pub struct CompiledRule {
    pub meta: RuleMeta,
    pub(crate) selections: Vec<(String, Selection)>,
    pub(crate) condition: Node,
    /// When set, the rule can only match events whose `eventName` is one of these
    /// (lowercase): the engine indexes it under them.
    pub(crate) event_names: Option<Vec<String>>,
}

/// What a rule match evaluates against: the record as JSON and as text.
pub struct Subject<'a> {
    pub doc: &'a Value,
    pub raw: &'a str,
}

impl CompiledRule {
    pub fn matches(&self, subject: &Subject<'_>, memo: &mut Vec<Option<bool>>) -> bool {
        memo.clear();
        memo.resize(self.selections.len(), None);
        let mut field = |f: &FieldMatcher| f.matches(subject.doc);
        self.eval(&self.condition, &mut field, subject.raw, memo)
    }

    /// Matches reading typed fields with `get`, by their [`typed_field`] number
    /// (`Some(value)`, `Some(None)` when the event has no value, `None` when the
    /// event model does not carry the field for this event) and
    /// the others from the record's members in `doc`, which may parse each member
    /// only when a rule first reaches into it.
    /// Answers of scanning matchers on texts already seen come from `cache`. When
    /// `doc` is `raw` parsed (`record` given: a CloudTrail record), a field whose
    /// values all need some text the record lacks is not looked up.
    pub fn matches_hybrid<'e>(
        &self,
        get: &dyn Fn(u8) -> Option<Option<value::Typed<'e>>>,
        doc: &dyn value::Members,
        raw: &str,
        mut record: Option<&mut value::RecordText>,
        memo: &mut Vec<Option<bool>>,
        cache: &mut value::TextCache,
    ) -> bool {
        memo.clear();
        memo.resize(self.selections.len(), None);
        let mut field = |f: &FieldMatcher| {
            if let Some(id) = f.typed {
                if let Some(v) = get(id) {
                    return match (f.cache_slot, &v) {
                        (Some(slot), Some(value::Typed::Text(text))) => {
                            cache.get_or(slot, text, || f.matches_text(Some(text)))
                        }
                        (_, v) => f.matches_typed(v.as_ref()),
                    };
                }
            }
            if let (Some(record), Some(needles)) = (record.as_deref_mut(), &f.prefilter) {
                if !record.may_hold(raw.as_bytes(), needles) {
                    return false;
                }
            }
            f.matches(doc)
        };
        self.eval(&self.condition, &mut field, raw, memo)
    }

    /// The values `field` must have for the rule to match (folded: see
    /// [`value::fold_key`]), when its condition pins the field to exact literals.
    pub(crate) fn required_values(&self, field: &str) -> Option<Vec<String>> {
        required_values(&self.condition, &self.selections, field)
    }

    /// Numbers the typed matchers worth a [`value::TextCache`] slot from `next` on.
    pub fn number_cached(&mut self, next: &mut u32) {
        for (_, sel) in &mut self.selections {
            let Selection::Maps(maps) = sel else { continue };
            for f in maps.iter_mut().flatten() {
                if f.typed.is_some() && f.scans() {
                    f.cache_slot = Some(*next);
                    *next += 1;
                }
            }
        }
    }

    fn eval(
        &self,
        n: &Node,
        field: &mut dyn FnMut(&FieldMatcher) -> bool,
        raw: &str,
        memo: &mut [Option<bool>],
    ) -> bool {
        match n {
            Node::Sel(i) => {
                if let Some(v) = memo[*i] {
                    return v;
                }
                let v = match &self.selections[*i].1 {
                    Selection::Maps(maps) => {
                        maps.iter().any(|fields| fields.iter().all(&mut *field))
                    }
                    Selection::Keywords(k) => k.iter().any(|p| value::keyword_matches(p, raw)),
                };
                memo[*i] = Some(v);
                v
            }
            Node::Not(x) => !self.eval(x, field, raw, memo),
            Node::And(xs) => xs.iter().all(|x| self.eval(x, field, raw, memo)),
            Node::Or(xs) => xs.iter().any(|x| self.eval(x, field, raw, memo)),
        }
    }
}

/// Everything loaded from a set of rule files.
#[derive(Default)]
pub struct Loaded {
    pub rules: Vec<CompiledRule>,
    pub correlations: Vec<super::correlation::Correlation>,
    pub filters: Vec<Filter>,
    pub issues: Vec<RuleIssue>,
}

/// A Sigma filter: selections and a condition that suppress matches of the rules it
/// names (`filter.rules`), for tuning without editing those rules.
pub struct Filter {
    pub title: String,
    pub id: Option<String>,
    pub rules: Vec<String>,
    pub logsource: LogSource,
    pub origin: PathBuf,
    selections: Vec<(String, Selection)>,
    condition: Node,
}

fn shift(n: &Node, by: usize) -> Node {
    match n {
        Node::Sel(i) => Node::Sel(i + by),
        Node::Not(x) => Node::Not(Box::new(shift(x, by))),
        Node::And(xs) => Node::And(xs.iter().map(|x| shift(x, by)).collect()),
        Node::Or(xs) => Node::Or(xs.iter().map(|x| shift(x, by)).collect()),
    }
}

impl Loaded {
    /// Applies every filter to the rules it names: a rule then matches only when its
    /// own condition holds and the filter's does not. A filter naming a rule that is
    /// not loaded, or whose logsource differs, is reported.
    pub fn apply_filters(&mut self) {
        let filters = std::mem::take(&mut self.filters);
        for f in &filters {
            for r in &f.rules {
                // `vigil_iam_*` or `*`: every loaded rule whose name or id matches and
                // whose logsource fits, so one allowlist can tune a whole family.
                let pattern = r.contains('*');
                let named = |x: &CompiledRule| {
                    let hit = |n: Option<&str>| {
                        n.is_some_and(|n| {
                            if pattern {
                                super::condition::pattern_matches(r, n)
                            } else {
                                n == r
                            }
                        })
                    };
                    hit(x.meta.id.as_deref()) || hit(x.meta.rule_name.as_deref())
                };
                let clash = |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(x), Some(y)) if x != y);
                let fits = |ls: &LogSource| {
                    !(clash(&f.logsource.product, &ls.product)
                        || clash(&f.logsource.service, &ls.service)
                        || clash(&f.logsource.category, &ls.category))
                };
                let mut applied = 0;
                let mut named_any = false;
                for rule in self.rules.iter_mut().filter(|x| named(x)) {
                    named_any = true;
                    if !fits(&rule.meta.logsource) {
                        if !pattern {
                            self.issues.push(RuleIssue {
                                origin: f.origin.clone(),
                                rule: Some(f.title.clone()),
                                unsupported: false,
                                message: format!("filter's logsource does not match rule `{r}`'s"),
                            });
                        }
                        continue;
                    }
                    applied += 1;
                    let offset = rule.selections.len();
                    for (name, sel) in &f.selections {
                        rule.selections.push((
                            format!("{}:{name}", f.id.as_deref().unwrap_or(&f.title)),
                            sel.clone(),
                        ));
                    }
                    let own = std::mem::replace(&mut rule.condition, Node::And(vec![]));
                    rule.condition =
                        Node::And(vec![own, Node::Not(Box::new(shift(&f.condition, offset)))]);
                    if !pattern {
                        break;
                    }
                }
                if !named_any || (pattern && applied == 0) {
                    self.issues.push(RuleIssue {
                        origin: f.origin.clone(),
                        rule: Some(f.title.clone()),
                        unsupported: false,
                        message: if pattern {
                            format!("filter pattern `{r}` matches no loaded rule of its logsource")
                        } else {
                            format!("filter names rule `{r}`, which is not loaded")
                        },
                    });
                }
            }
        }
    }
}

pub(crate) fn str_of(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn strings(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(a) => a.iter().filter_map(str_of).collect(),
        other => str_of(other).into_iter().collect(),
    }
}

/// Options for compiling rules.
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// Values for `%placeholder%`s used with the `expand` modifier.
    pub placeholders: HashMap<String, Vec<String>>,
}

/// Loads every rule document in `text` (YAML, possibly several `---` documents).
pub fn load_str(text: &str, origin: &Path, opts: &CompileOptions, out: &mut Loaded) {
    let docs = match YamlLoader::load_from_str(text) {
        Ok(d) => d,
        Err(e) => {
            out.issues.push(RuleIssue {
                origin: origin.to_owned(),
                rule: None,
                unsupported: false,
                message: format!("YAML: {e}"),
            });
            return;
        }
    };
    for doc in docs {
        if doc.is_null() {
            continue;
        }
        if !doc["filter"].is_badvalue() && doc["detection"].is_badvalue() {
            match compile_filter(&doc, origin, opts) {
                Ok(f) => out.filters.push(f),
                Err(issue) => out.issues.push(issue),
            }
            continue;
        }
        if !doc["correlation"].is_badvalue() {
            match super::correlation::compile(&doc, origin) {
                Ok(c) => out.correlations.push(c),
                Err(issue) => out.issues.push(issue),
            }
            continue;
        }
        match compile_doc(&doc, origin, opts) {
            Ok(rule) => out.rules.push(rule),
            Err(issue) => out.issues.push(issue),
        }
    }
}

/// Loads a rule file, or every `.yml`/`.yaml` file under a directory (sorted).
pub fn load_path(path: &Path, opts: &CompileOptions, out: &mut Loaded) {
    let mut files = Vec::new();
    collect(path, &mut files, out);
    files.sort();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => load_str(&text, &f, opts, out),
            Err(e) => out.issues.push(RuleIssue {
                origin: f,
                rule: None,
                unsupported: false,
                message: e.to_string(),
            }),
        }
    }
}

/// Test cases kept beside rules (`*.tests.yml`) are not rules.
pub fn is_test_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".tests.yml") || n.ends_with(".tests.yaml"))
}

fn collect(path: &Path, files: &mut Vec<PathBuf>, out: &mut Loaded) {
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    collect(&p, files, out);
                } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml")
                    && !is_test_file(&p)
                {
                    files.push(p);
                }
            }
        }
        Err(_) if path.is_file() => files.push(path.to_owned()),
        Err(e) => out.issues.push(RuleIssue {
            origin: path.to_owned(),
            rule: None,
            unsupported: false,
            message: e.to_string(),
        }),
    }
}

fn compile_doc(
    doc: &Yaml,
    origin: &Path,
    opts: &CompileOptions,
) -> Result<CompiledRule, RuleIssue> {
    let get = |k: &str| &doc[k];
    let title = str_of(get("title"));
    let id = str_of(get("id"));
    let rule_name = match (&title, &id) {
        (Some(t), Some(i)) => Some(format!("{t} ({i})")),
        (Some(t), None) => Some(t.clone()),
        (None, Some(i)) => Some(i.clone()),
        (None, None) => None,
    };
    let issue = |unsupported: bool, message: String| RuleIssue {
        origin: origin.to_owned(),
        rule: rule_name.clone(),
        unsupported,
        message,
    };
    let title = title.ok_or_else(|| issue(false, "missing `title`".into()))?;
    let detection = get("detection");
    let Yaml::Hash(det) = detection else {
        return Err(issue(false, "missing `detection` map".into()));
    };
    let ls = get("logsource");
    let logsource = LogSource {
        product: str_of(&ls["product"]).map(|s| s.to_ascii_lowercase()),
        service: str_of(&ls["service"]).map(|s| s.to_ascii_lowercase()),
        category: str_of(&ls["category"]).map(|s| s.to_ascii_lowercase()),
    };
    let level = match str_of(get("level")) {
        None => None,
        Some(l) => {
            Some(Level::parse(&l).ok_or_else(|| issue(false, format!("unknown level `{l}`")))?)
        }
    };
    let mut selections = Vec::new();
    let mut condition_src: Vec<String> = Vec::new();
    for (k, v) in det {
        let Some(name) = str_of(k) else { continue };
        match name.as_str() {
            "condition" => condition_src = strings(v),
            "timeframe" => {
                return Err(issue(
                    true,
                    "`timeframe` (Sigma 1.0 aggregation) — write a correlation rule".into(),
                ))
            }
            _ => {
                let sel = compile_selection(v, opts).map_err(|e| match e {
                    ValueError::Unsupported(m) => issue(true, format!("selection `{name}`: {m}")),
                    ValueError::Invalid(m) => issue(false, format!("selection `{name}`: {m}")),
                })?;
                selections.push((name, sel));
            }
        }
    }
    if condition_src.is_empty() {
        return Err(issue(false, "missing `detection.condition`".into()));
    }
    let mut alternatives = Vec::new();
    for c in &condition_src {
        let parsed = condition::parse(c).map_err(|e| {
            issue(
                e.reason.contains("not supported") || e.reason.contains("correlation"),
                e.to_string(),
            )
        })?;
        alternatives.push(resolve(&parsed, &selections).map_err(|m| issue(false, m))?);
    }
    let condition = if alternatives.len() == 1 {
        alternatives.remove(0)
    } else {
        Node::Or(alternatives)
    };
    let event_names = required_names(&condition, &selections);
    Ok(CompiledRule {
        meta: RuleMeta {
            id,
            rule_name: str_of(get("name")),
            title,
            status: str_of(get("status")),
            description: str_of(get("description")),
            level,
            tags: strings(get("tags")),
            falsepositives: strings(get("falsepositives")),
            references: strings(get("references")),
            author: str_of(get("author")),
            logsource,
            origin: origin.to_owned(),
            custom: custom_attrs(get("vigil")),
        },
        selections,
        condition,
        event_names,
    })
}

/// The `vigil:` map of a rule or correlation, flattened to key → text (lists are
/// joined with commas).
pub(crate) fn custom_attrs(y: &Yaml) -> Vec<(String, String)> {
    let Yaml::Hash(m) = y else {
        return Vec::new();
    };
    m.iter()
        .filter_map(|(k, v)| {
            let key = str_of(k)?;
            let val = match v {
                Yaml::Array(items) => items
                    .iter()
                    .filter_map(str_of)
                    .collect::<Vec<_>>()
                    .join(","),
                other => str_of(other)?,
            };
            Some((key, val))
        })
        .collect()
}

fn compile_filter(doc: &Yaml, origin: &Path, opts: &CompileOptions) -> Result<Filter, RuleIssue> {
    let title = str_of(&doc["title"]);
    let issue = |unsupported: bool, message: String| RuleIssue {
        origin: origin.to_owned(),
        rule: title.clone(),
        unsupported,
        message,
    };
    let Yaml::Hash(body) = &doc["filter"] else {
        return Err(issue(false, "`filter` must be a map".into()));
    };
    let mut selections = Vec::new();
    let mut condition_src = Vec::new();
    let mut rules = Vec::new();
    for (k, v) in body {
        let Some(name) = str_of(k) else { continue };
        match name.as_str() {
            "rules" => rules = strings(v),
            "condition" => condition_src = strings(v),
            _ => selections.push((
                name.clone(),
                compile_selection(v, opts).map_err(|e| match e {
                    ValueError::Unsupported(m) => issue(true, format!("selection `{name}`: {m}")),
                    ValueError::Invalid(m) => issue(false, format!("selection `{name}`: {m}")),
                })?,
            )),
        }
    }
    if rules.is_empty() {
        return Err(issue(false, "`filter.rules` names no rule".into()));
    }
    if condition_src.is_empty() {
        return Err(issue(false, "missing `filter.condition`".into()));
    }
    let mut alternatives = Vec::new();
    for c in &condition_src {
        let parsed = condition::parse(c).map_err(|e| issue(false, e.to_string()))?;
        alternatives.push(resolve(&parsed, &selections).map_err(|m| issue(false, m))?);
    }
    let condition = if alternatives.len() == 1 {
        alternatives.remove(0)
    } else {
        Node::Or(alternatives)
    };
    let ls = &doc["logsource"];
    Ok(Filter {
        title: title
            .clone()
            .ok_or_else(|| issue(false, "missing `title`".into()))?,
        id: str_of(&doc["id"]),
        rules,
        logsource: LogSource {
            product: str_of(&ls["product"]).map(|s| s.to_ascii_lowercase()),
            service: str_of(&ls["service"]).map(|s| s.to_ascii_lowercase()),
            category: str_of(&ls["category"]).map(|s| s.to_ascii_lowercase()),
        },
        origin: origin.to_owned(),
        selections,
        condition,
    })
}

fn compile_selection(v: &Yaml, opts: &CompileOptions) -> Result<Selection, ValueError> {
    match v {
        Yaml::Hash(_) => Ok(Selection::Maps(vec![compile_map(v, opts)?])),
        Yaml::Array(items) if items.iter().all(|i| matches!(i, Yaml::Hash(_))) => {
            Ok(Selection::Maps(
                items
                    .iter()
                    .map(|m| compile_map(m, opts))
                    .collect::<Result<_, _>>()?,
            ))
        }
        Yaml::Array(items)
            if items
                .iter()
                .all(|i| !matches!(i, Yaml::Hash(_) | Yaml::Array(_))) =>
        {
            Ok(Selection::Keywords(value::compile_keywords(items)?))
        }
        Yaml::String(_) | Yaml::Integer(_) => Ok(Selection::Keywords(value::compile_keywords(
            std::slice::from_ref(v),
        )?)),
        _ => Err(ValueError::Invalid(
            "a selection is a map, a list of maps or a list of keywords".into(),
        )),
    }
}

fn compile_map(v: &Yaml, opts: &CompileOptions) -> Result<Vec<FieldMatcher>, ValueError> {
    let Yaml::Hash(h) = v else {
        return Err(ValueError::Invalid("expected a map".into()));
    };
    let mut fields = Vec::with_capacity(h.len());
    for (k, vals) in h {
        let key =
            str_of(k).ok_or_else(|| ValueError::Invalid("a field name must be a string".into()))?;
        let values: Vec<Yaml> = match vals {
            Yaml::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        let mut f =
            value::compile_field(&key, &values, &opts.placeholders).map_err(|e| match e {
                ValueError::Unsupported(m) => {
                    ValueError::Unsupported(format!("field `{key}`: {m}"))
                }
                ValueError::Invalid(m) => ValueError::Invalid(format!("field `{key}`: {m}")),
            })?;
        f.typed = f.path.typed.filter(|_| f.text_only());
        fields.push(f);
    }
    Ok(fields)
}

fn resolve(c: &Cond, sels: &[(String, Selection)]) -> Result<Node, String> {
    let by_pattern = |p: &str| -> Result<Vec<Node>, String> {
        let found: Vec<Node> = sels
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| {
                !(p == "*" && n.starts_with('_')) && condition::pattern_matches(p, n)
            })
            .map(|(i, _)| Node::Sel(i))
            .collect();
        if found.is_empty() {
            Err(format!("no selection matches `{p}`"))
        } else {
            Ok(found)
        }
    };
    Ok(match c {
        Cond::Ident(name) => {
            let i = sels
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| format!("the condition names `{name}`, which is not a selection"))?;
            Node::Sel(i)
        }
        Cond::Not(x) => Node::Not(Box::new(resolve(x, sels)?)),
        Cond::And(xs) => Node::And(
            xs.iter()
                .map(|x| resolve(x, sels))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Or(xs) => Node::Or(
            xs.iter()
                .map(|x| resolve(x, sels))
                .collect::<Result<_, _>>()?,
        ),
        Cond::OneOf(p) => Node::Or(by_pattern(p)?),
        Cond::AllOf(p) => Node::And(by_pattern(p)?),
    })
}

/// The eventName values one of which an event must have for the condition to hold,
/// when the condition implies such a set.
fn required_names(n: &Node, sels: &[(String, Selection)]) -> Option<Vec<String>> {
    required_values(n, sels, "eventName")
}

/// The values `field` must have (case-insensitively) for the condition to hold,
/// folded as the matcher folds them; `None` when the condition does not pin it to
/// a list of exact literals.
fn required_values(n: &Node, sels: &[(String, Selection)], field: &str) -> Option<Vec<String>> {
    match n {
        Node::Sel(i) => match &sels[*i].1 {
            Selection::Maps(maps) => {
                let mut all = Vec::new();
                for fields in maps {
                    let f = fields
                        .iter()
                        .find(|f| f.path.name == field && !f.neq && !f.all)?;
                    for p in &f.patterns {
                        all.push(p.exact_literal()?.to_owned());
                    }
                }
                Some(all)
            }
            Selection::Keywords(_) => None,
        },
        Node::Not(_) => None,
        // Any constrained conjunct constrains the whole; take the narrowest.
        Node::And(xs) => xs
            .iter()
            .filter_map(|x| required_values(x, sels, field))
            .min_by_key(Vec::len),
        Node::Or(xs) => {
            let mut all = Vec::new();
            for x in xs {
                all.extend(required_values(x, sels, field)?);
            }
            Some(all)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(text: &str) -> Loaded {
        let mut l = Loaded::default();
        load_str(text, Path::new("t.yml"), &CompileOptions::default(), &mut l);
        l
    }

    #[test]
    fn compiles_and_indexes() {
        let l = load(
            "title: t\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    eventSource: s3.amazonaws.com\n    eventName: [DeleteBucket, PutBucketPolicy]\n  filter:\n    userIdentity.type: AWSService\n  condition: selection and not filter\nlevel: high\n",
        );
        assert!(l.issues.is_empty(), "{:?}", l.issues);
        let r = &l.rules[0];
        assert_eq!(
            r.event_names.as_deref(),
            Some(&["deletebucket".to_string(), "putbucketpolicy".to_string()][..])
        );
        let mut memo = Vec::new();
        let doc = json!({"eventSource":"s3.amazonaws.com","eventName":"DeleteBucket","userIdentity":{"type":"IAMUser"}});
        assert!(r.matches(&Subject { doc: &doc, raw: "" }, &mut memo));
        let doc = json!({"eventSource":"s3.amazonaws.com","eventName":"DeleteBucket","userIdentity":{"type":"AWSService"}});
        assert!(!r.matches(&Subject { doc: &doc, raw: "" }, &mut memo));
    }

    #[test]
    fn one_of_and_lists() {
        let l = load(
            "title: t\nlogsource: {product: aws}\ndetection:\n  sel_a:\n    - eventName: A\n    - eventName: B\n  sel_b:\n    eventName: C\n  _helper:\n    x: y\n  condition: 1 of sel_*\n",
        );
        assert!(l.issues.is_empty(), "{:?}", l.issues);
        let mut names = l.rules[0].event_names.clone().unwrap();
        names.sort();
        assert_eq!(names, ["a", "b", "c"]);
        let l = load("title: t\nlogsource: {product: aws}\ndetection:\n  a: {x: 1}\n  _b: {y: 2}\n  condition: all of them\n");
        let mut memo = Vec::new();
        assert!(
            l.rules[0].matches(
                &Subject {
                    doc: &json!({"x": 1}),
                    raw: ""
                },
                &mut memo
            ),
            "`them` leaves out _names"
        );
    }

    #[test]
    fn issues_name_the_rule_and_feature() {
        let l = load("title: t\nid: 1\nlogsource: {product: aws}\ndetection:\n  sel:\n    a|nope: 1\n  condition: sel\n");
        assert_eq!(l.issues.len(), 1);
        let i = &l.issues[0];
        assert!(i.unsupported);
        assert_eq!(
            i.to_string(),
            "t.yml: t (1): unsupported: selection `sel`: field `a|nope`: modifier `nope`"
        );
        let l = load("title: t\nlogsource: {product: aws}\ndetection:\n  sel: {a: 1}\n  condition: sel and other\n");
        assert!(l.issues[0]
            .message
            .contains("`other`, which is not a selection"));
        let l = load("title: t\ncorrelation:\n  type: sequence_magic\n");
        assert!(
            l.issues[0].message.contains("sequence_magic"),
            "{:?}",
            l.issues
        );
        let l = load("title: [oops\n");
        assert!(l.issues[0].message.starts_with("YAML:"));
    }

    #[test]
    fn filters_suppress_matches_of_named_rules() {
        let mut l = load(
            "title: Bucket deleted\nid: r1\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel: {eventName: DeleteBucket}\n  condition: sel\n---\ntitle: Our cleanup job\nlogsource: {product: aws, service: cloudtrail}\nfilter:\n  rules: [r1]\n  selection:\n    userIdentity.arn|endswith: ':role/cleanup'\n  condition: selection\n---\ntitle: Stale\nlogsource: {product: aws}\nfilter:\n  rules: [nope]\n  s: {a: 1}\n  condition: s\n",
        );
        l.apply_filters();
        assert_eq!(l.issues.len(), 1);
        assert!(l.issues[0].message.contains("`nope`"));
        let mut memo = Vec::new();
        let by_cleanup = json!({"eventName": "DeleteBucket", "userIdentity": {"arn": "arn:aws:iam::1:role/cleanup"}});
        let by_alice = json!({"eventName": "DeleteBucket", "userIdentity": {"arn": "arn:aws:iam::1:user/alice"}});
        assert!(!l.rules[0].matches(
            &Subject {
                doc: &by_cleanup,
                raw: ""
            },
            &mut memo
        ));
        assert!(l.rules[0].matches(
            &Subject {
                doc: &by_alice,
                raw: ""
            },
            &mut memo
        ));
        assert_eq!(
            l.rules[0].event_names.as_deref(),
            Some(&["deletebucket".to_string()][..]),
            "the index still holds"
        );
    }

    #[test]
    fn filter_patterns_tune_every_rule_they_match() {
        let mut l = load(
            "title: Bucket deleted\nname: acme_s3_deleted\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel: {eventName: DeleteBucket}\n  condition: sel\n---\ntitle: Policy put\nname: acme_s3_policy\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel: {eventName: PutBucketPolicy}\n  condition: sel\n---\ntitle: Key made\nname: acme_iam_key\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  sel: {eventName: CreateAccessKey}\n  condition: sel\n---\ntitle: Terraform role\nlogsource: {product: aws, service: cloudtrail}\nfilter:\n  rules: ['acme_s3_*']\n  selection:\n    userIdentity.arn|endswith: ':role/terraform'\n  condition: selection\n---\ntitle: Nothing\nlogsource: {product: aws}\nfilter:\n  rules: ['other_*']\n  s: {a: 1}\n  condition: s\n",
        );
        l.apply_filters();
        assert_eq!(l.issues.len(), 1, "{:?}", l.issues);
        assert!(l.issues[0].message.contains("`other_*`"));
        let mut memo = Vec::new();
        let terraform = |name: &str| json!({"eventName": name, "userIdentity": {"arn": "arn:aws:iam::1:role/terraform"}});
        let hit = |r: &CompiledRule, doc: &serde_json::Value, memo: &mut Vec<_>| {
            r.matches(&Subject { doc, raw: "" }, memo)
        };
        assert!(!hit(&l.rules[0], &terraform("DeleteBucket"), &mut memo));
        assert!(!hit(&l.rules[1], &terraform("PutBucketPolicy"), &mut memo));
        assert!(
            hit(&l.rules[2], &terraform("CreateAccessKey"), &mut memo),
            "not named by the pattern"
        );
    }

    #[test]
    fn keywords() {
        let l = load("title: t\nlogsource: {product: aws}\ndetection:\n  kw:\n    - 'trufflehog'\n  condition: kw\n");
        let mut memo = Vec::new();
        assert!(l.rules[0].matches(
            &Subject {
                doc: &json!({}),
                raw: r#"{"userAgent":"TruffleHog v3"}"#
            },
            &mut memo
        ));
    }
}
