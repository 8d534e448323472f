//! Sigma correlation rules: `event_count`, `value_count`, `temporal`,
//! `temporal_ordered`, `value_sum`, `value_avg` and `value_percentile`, with
//! `group-by`, `timespan`, conditions, `aliases` and chaining (a correlation may refer
//! to another correlation).
//!
//! Evaluation is in event time. Each group keeps the matching events of the last
//! `timespan` before its newest event, sorted by time, so events that arrive out of
//! order (up to `lateness` behind the newest event seen) are counted where they
//! belong; later ones are dropped and counted. After a correlation fires for a group
//! the group starts over, so one burst raises one hit. State is bounded: a group
//! holds one window, and groups whose window has passed are swept away.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use serde_json::Value;
use yaml_rust2::Yaml;

use super::keys;
use super::rule::{str_of, strings, Level, RuleIssue};
use super::value::FieldPath;

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    EventCount,
    ValueCount {
        fields: Vec<String>,
    },
    Temporal,
    TemporalOrdered,
    ValueSum {
        field: String,
    },
    ValueAvg {
        field: String,
    },
    /// The share (percent) of the group's events in the window whose `field` has the
    /// value of the event at hand (rare values have a low share).
    ValuePercentile {
        field: String,
    },
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::EventCount => "event_count",
            Kind::ValueCount { .. } => "value_count",
            Kind::Temporal => "temporal",
            Kind::TemporalOrdered => "temporal_ordered",
            Kind::ValueSum { .. } => "value_sum",
            Kind::ValueAvg { .. } => "value_avg",
            Kind::ValuePercentile { .. } => "value_percentile",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Neq,
}

/// One or more comparisons, all of which must hold (`gt: 100, lte: 200`).
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold(pub Vec<(Op, f64)>);

impl Threshold {
    pub fn holds(&self, v: f64) -> bool {
        self.0.iter().all(|(op, x)| match op {
            Op::Gt => v > *x,
            Op::Gte => v >= *x,
            Op::Lt => v < *x,
            Op::Lte => v <= *x,
            Op::Eq => v == *x,
            Op::Neq => v != *x,
        })
    }
}

#[derive(Clone, Debug)]
pub struct CorrelationMeta {
    pub id: Option<String>,
    pub rule_name: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub level: Option<Level>,
    pub tags: Vec<String>,
    pub falsepositives: Vec<String>,
    pub origin: PathBuf,
    /// Vigil's own attributes (see `RuleMeta::custom`).
    pub custom: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct Correlation {
    pub meta: CorrelationMeta,
    pub kind: Kind,
    /// Referenced rules (ids or names), in order for `temporal_ordered`.
    pub rules: Vec<String>,
    pub group_by: Vec<String>,
    /// alias → (rule name → field).
    pub aliases: HashMap<String, HashMap<String, String>>,
    pub timespan_ms: i64,
    pub threshold: Option<Threshold>,
    /// Whether the referenced rules also raise their own detections.
    pub generate: bool,
}

/// A correlation's `timespan` in milliseconds: `30s`, `5m`, `1h`, `2d`, `1w` (the
/// span grammar of all of Vigil's configuration and content).
pub fn parse_timespan(s: &str) -> Option<i64> {
    vigil_model::Span::parse(s)
        .ok()
        .map(vigil_model::Span::as_millis)
}

pub(crate) fn compile(doc: &Yaml, origin: &Path) -> Result<Correlation, RuleIssue> {
    let title = str_of(&doc["title"]);
    let id = str_of(&doc["id"]);
    let rule = match (&title, &id) {
        (Some(t), Some(i)) => Some(format!("{t} ({i})")),
        (Some(t), None) => Some(t.clone()),
        (None, i) => i.clone(),
    };
    let issue = |unsupported: bool, message: String| RuleIssue {
        origin: origin.to_owned(),
        rule: rule.clone(),
        unsupported,
        message,
    };
    let c = &doc["correlation"];
    let type_name =
        str_of(&c["type"]).ok_or_else(|| issue(false, "missing `correlation.type`".into()))?;
    let cond = &c["condition"];
    let field = || -> Result<Vec<String>, RuleIssue> {
        let f = strings(&cond["field"]);
        if f.is_empty() {
            Err(issue(
                false,
                format!("`{type_name}` needs `condition.field`"),
            ))
        } else {
            Ok(f)
        }
    };
    let kind = match type_name.as_str() {
        "event_count" => Kind::EventCount,
        "value_count" => Kind::ValueCount { fields: field()? },
        "temporal" => Kind::Temporal,
        "temporal_ordered" => Kind::TemporalOrdered,
        "value_sum" => Kind::ValueSum {
            field: field()?.remove(0),
        },
        "value_avg" => Kind::ValueAvg {
            field: field()?.remove(0),
        },
        "value_percentile" => Kind::ValuePercentile {
            field: field()?.remove(0),
        },
        other => return Err(issue(true, format!("correlation type `{other}`"))),
    };
    let rules = strings(&c["rules"]);
    if rules.is_empty() {
        return Err(issue(false, "`correlation.rules` names no rule".into()));
    }
    let timespan_src = str_of(&c["timespan"])
        .ok_or_else(|| issue(false, "missing `correlation.timespan`".into()))?;
    let timespan_ms = parse_timespan(&timespan_src).ok_or_else(|| {
        issue(
            false,
            format!("timespan `{timespan_src}` is not a number followed by s, m, h or d"),
        )
    })?;
    let mut ops = Vec::new();
    if let Yaml::Hash(h) = cond {
        for (k, v) in h {
            let Some(k) = str_of(k) else { continue };
            let op = match k.as_str() {
                "gt" => Op::Gt,
                "gte" => Op::Gte,
                "lt" => Op::Lt,
                "lte" => Op::Lte,
                "eq" => Op::Eq,
                "neq" => Op::Neq,
                "field" => continue,
                other => {
                    return Err(issue(
                        false,
                        format!("unknown condition operator `{other}`"),
                    ))
                }
            };
            let n = str_of(v)
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or_else(|| issue(false, format!("`{k}` needs a number")))?;
            ops.push((op, n));
        }
    }
    let threshold = if ops.is_empty() {
        None
    } else {
        Some(Threshold(ops))
    };
    if threshold.is_none() && !matches!(kind, Kind::Temporal | Kind::TemporalOrdered) {
        return Err(issue(
            false,
            format!("`{type_name}` needs a condition (gt, gte, lt, lte, eq or neq)"),
        ));
    }
    let mut aliases = HashMap::new();
    if let Yaml::Hash(h) = &c["aliases"] {
        for (alias, map) in h {
            let (Some(alias), Yaml::Hash(m)) = (str_of(alias), map) else {
                return Err(issue(
                    false,
                    "`aliases` maps an alias to {rule name: field}".into(),
                ));
            };
            let fields = m
                .iter()
                .filter_map(|(r, f)| Some((str_of(r)?, str_of(f)?)))
                .collect();
            aliases.insert(alias, fields);
        }
    }
    let generate = matches!(&c["generate"], Yaml::Boolean(true))
        || matches!(&doc["generate"], Yaml::Boolean(true));
    let level = str_of(&doc["level"]).and_then(|l| match l.to_ascii_lowercase().as_str() {
        "informational" => Some(Level::Informational),
        "low" => Some(Level::Low),
        "medium" => Some(Level::Medium),
        "high" => Some(Level::High),
        "critical" => Some(Level::Critical),
        _ => None,
    });
    Ok(Correlation {
        meta: CorrelationMeta {
            id,
            rule_name: str_of(&doc["name"]),
            title: title.ok_or_else(|| issue(false, "missing `title`".into()))?,
            description: str_of(&doc["description"]),
            level,
            tags: strings(&doc["tags"]),
            falsepositives: strings(&doc["falsepositives"]),
            origin: origin.to_owned(),
            custom: super::rule::custom_attrs(&doc["vigil"]),
        },
        kind,
        rules,
        group_by: strings(&c["group-by"]),
        aliases,
        timespan_ms,
        threshold,
        generate,
    })
}

/// Where a correlation's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    Rule(u32),
    Correlation(u32),
}

/// Which correlations (and at which position of their `rules`) each input feeds,
/// by rule and correlation number: looked up for every match, so indexed, not
/// hashed.
#[derive(Default)]
struct Feeds {
    by_rule: Vec<Vec<(u32, u16)>>,
    by_correlation: Vec<Vec<(u32, u16)>>,
}

impl Feeds {
    fn of(&self, input: Input) -> &[(u32, u16)] {
        let (lists, i) = match input {
            Input::Rule(r) => (&self.by_rule, r as usize),
            Input::Correlation(c) => (&self.by_correlation, c as usize),
        };
        lists.get(i).map_or(&[], Vec::as_slice)
    }

    fn entry(&mut self, input: Input) -> &mut Vec<(u32, u16)> {
        let (lists, i) = match input {
            Input::Rule(r) => (&mut self.by_rule, r as usize),
            Input::Correlation(c) => (&mut self.by_correlation, c as usize),
        };
        if lists.len() <= i {
            lists.resize_with(i + 1, Vec::new);
        }
        &mut lists[i]
    }
}

/// A correlation that fired.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub correlation: u32,
    /// The group-by values, in the order of `group-by`.
    pub group: Vec<String>,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Events in the window when it fired.
    pub events: usize,
    /// The measured value the condition was tested on (count, distinct values, sum…).
    pub value: f64,
}

/// What an event adds to its group: a value to count (a long one shared with the
/// group's count of it, so a value already in the window costs no allocation), or to
/// sum.
#[derive(Clone, Debug)]
enum Payload {
    None,
    Value(keys::Value),
    Num(f64),
}

/// An event a group holds: its time, the position of its input rule in `rules`,
/// and its payload.
type Item = (i64, u16, Payload);

/// A group's events in time order. One is held in place: most groups (one address
/// talking to another, one source probing one port) never get a second, and then
/// cost no allocation and no second cache line.
enum Held {
    None,
    One(Item),
    Many(VecDeque<Item>),
}

impl Held {
    fn len(&self) -> usize {
        match self {
            Held::None => 0,
            Held::One(_) => 1,
            Held::Many(d) => d.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn front(&self) -> Option<&Item> {
        match self {
            Held::None => None,
            Held::One(x) => Some(x),
            Held::Many(d) => d.front(),
        }
    }

    fn pop_front(&mut self) -> Option<Item> {
        match self {
            Held::None => None,
            Held::One(_) => match std::mem::replace(self, Held::None) {
                Held::One(x) => Some(x),
                _ => None,
            },
            Held::Many(d) => d.pop_front(),
        }
    }

    /// Adds `x` after every held event not later than it.
    fn insert(&mut self, x: Item) {
        match self {
            Held::None => *self = Held::One(x),
            Held::One(_) => {
                let Held::One(a) = std::mem::replace(self, Held::None) else {
                    return;
                };
                let mut d = VecDeque::with_capacity(4);
                if a.0 <= x.0 {
                    d.extend([a, x]);
                } else {
                    d.extend([x, a]);
                }
                *self = Held::Many(d);
            }
            Held::Many(d) => {
                let at = d.partition_point(|(t, _, _)| *t <= x.0);
                d.insert(at, x);
            }
        }
    }

    /// The events, oldest first.
    fn iter(&self) -> impl DoubleEndedIterator<Item = &Item> {
        let (a, b): (&[Item], &[Item]) = match self {
            Held::None => (&[], &[]),
            Held::One(x) => (std::slice::from_ref(x), &[]),
            Held::Many(d) => d.as_slices(),
        };
        a.iter().chain(b)
    }
}

struct Group {
    /// The events in the window, oldest first.
    items: Held,
    /// Running aggregates over `items`, kept as items come and go so that no event
    /// costs more than its own insertion (a scanner's thousand probes in a window
    /// must not make each new one walk the other thousand).
    agg: Agg,
    /// The newest event time the group has seen (kept after it fires and starts
    /// over): lateness is judged per group, so files read one account or region after
    /// another do not make each other's events late.
    newest: i64,
    /// The observation count when the group last got an event, modulo 2³² (only
    /// differences of up to [`IDLE_OBSERVATIONS`] are ever asked).
    touched: u32,
}

#[derive(Default)]
struct Agg {
    /// value_sum / value_avg: the sum of the values held.
    sum: f64,
    /// value_count / value_percentile, once the group holds more than
    /// [`FEW_HELD`] events: each value held and how many held events have it (fewer
    /// are counted from the events themselves, with no table to allocate). Boxed, so
    /// that the many groups without one carry a pointer, not a table; hashed with
    /// the correlation's hasher, so a table keeps no hasher of its own.
    distinct: Option<Box<Distinct>>,
    /// temporal: how many held events each input rule has.
    per_rule: Box<[u32]>,
}

impl Agg {
    /// Counts in an event of input `pos` with payload `p`.
    fn add(&mut self, pos: u16, p: &Payload, h: &Hasher) {
        self.bump_rule(pos, true);
        match p {
            Payload::Num(x) => self.sum += x,
            Payload::Value(v) => {
                self.count_in(v.as_bytes(), h);
            }
            Payload::None => {}
        }
    }

    /// Counts in an event of input `pos` with the value `value`, and gives the
    /// value as the event's payload: once values are tabled, the window's copy when
    /// it is long and held already, so a repeated long value costs no allocation. One
    /// lookup.
    fn add_value(&mut self, pos: u16, value: &[u8], h: &Hasher) -> keys::Value {
        self.bump_rule(pos, true);
        let Some((held, _)) = self.count_in(value, h) else {
            return keys::Value::new(value);
        };
        match held {
            keys::Value::Shared(_) => held.clone(),
            keys::Value::Inline { .. } => keys::Value::new(value),
        }
    }

    /// Starts the table of values from the events `held` (when they have values).
    fn table(&mut self, held: &Held, h: &Hasher) {
        let table = self.distinct.get_or_insert_default();
        for (_, _, p) in held.iter() {
            if let Payload::Value(v) = p {
                count_value(table, v.as_bytes(), || v.clone(), h);
            }
        }
    }

    /// How many distinct values the events `held` have.
    fn distinct_in(&self, held: &Held) -> usize {
        if let Some(table) = &self.distinct {
            return table.len();
        }
        held.iter()
            .enumerate()
            .filter(|(i, (_, _, a))| held.iter().take(*i).all(|(_, _, b)| !same_value(a, b)))
            .count()
    }

    /// How many of the events `held` have `value`.
    fn held_with(&self, held: &Held, value: &keys::Value, h: &Hasher) -> u32 {
        if self.distinct.is_some() {
            return self.count_of(value.as_bytes(), h);
        }
        let value = value.as_bytes();
        held.iter()
            .filter(|(_, _, p)| matches!(p, Payload::Value(v) if v.as_bytes() == value))
            .count() as u32
    }

    /// The value's entry, counted once more (inserted with a count of one); `None`
    /// while the group counts from its events.
    fn count_in(&mut self, value: &[u8], h: &Hasher) -> Option<&mut (keys::Value, u32)> {
        let table = self.distinct.as_mut()?;
        Some(count_value(table, value, || keys::Value::new(value), h))
    }

    /// Counts out an event that leaves the window.
    fn remove(&mut self, pos: u16, p: &Payload, h: &Hasher) {
        self.bump_rule(pos, false);
        match p {
            Payload::Num(x) => self.sum -= x,
            Payload::Value(v) => {
                let v = v.as_bytes();
                let Some(table) = &mut self.distinct else {
                    return;
                };
                if let Ok(mut e) = table.find_entry(h.hash_one(v), |(k, _)| k.as_bytes() == v) {
                    let held = e.get_mut();
                    held.1 -= 1;
                    if held.1 == 0 {
                        e.remove();
                    }
                }
            }
            Payload::None => {}
        }
    }

    fn bump_rule(&mut self, pos: u16, up: bool) {
        if let Some(n) = self.per_rule.get_mut(pos as usize) {
            *n = if up { *n + 1 } else { n.saturating_sub(1) };
        }
    }

    /// How many held events have `value`.
    fn count_of(&self, value: &[u8], h: &Hasher) -> u32 {
        self.distinct
            .as_ref()
            .and_then(|t| t.find(h.hash_one(value), |(k, _)| k.as_bytes() == value))
            .map_or(0, |(_, n)| *n)
    }

    fn clear(&mut self) {
        self.sum = 0.0;
        self.distinct = None;
        self.per_rule.iter_mut().for_each(|n| *n = 0);
    }
}

/// Up to this many events, a group counts its distinct values from the events
/// themselves; beyond, in a table.
const FEW_HELD: usize = 8;

/// Whether two payloads are the same counted value.
fn same_value(a: &Payload, b: &Payload) -> bool {
    match (a, b) {
        (Payload::Value(x), Payload::Value(y)) => x.as_bytes() == y.as_bytes(),
        _ => false,
    }
}

/// A group's held values and how many held events have each.
type Distinct = hashbrown::HashTable<(keys::Value, u32)>;

/// The entry of `value` in `table`, counted once more; a new entry holds `make()`.
fn count_value<'t>(
    table: &'t mut Distinct,
    value: &[u8],
    make: impl FnOnce() -> keys::Value,
    h: &Hasher,
) -> &'t mut (keys::Value, u32) {
    match table.entry(
        h.hash_one(value),
        |(k, _)| k.as_bytes() == value,
        |(k, _)| h.hash_one(k.as_bytes()),
    ) {
        hashbrown::hash_table::Entry::Occupied(e) => {
            let held = e.into_mut();
            held.1 += 1;
            held
        }
        hashbrown::hash_table::Entry::Vacant(e) => e.insert((make(), 1)).into_mut(),
    }
}

/// The hasher of a correlation's group keys and counted values (seeded per process).
type Hasher = foldhash::fast::RandomState;

/// How the correlation reads one of its inputs: the group-by fields (aliases
/// resolved for that rule) and the value field.
struct InputFields {
    group: Vec<FieldPath>,
    value: Vec<FieldPath>,
}

struct Compiled {
    def: Correlation,
    inputs: Vec<InputFields>,
    /// Groups with their group-by values as a key (see [`keys`]): most keys (an
    /// address, two addresses and a port, a short name) are held in place, so a new
    /// group costs no allocation for its key. A table rather than a map so that a
    /// key is hashed once and turned into a [`keys::Value`] only for a new group.
    groups: hashbrown::HashTable<(keys::Value, Group)>,
    hasher: Hasher,
    /// The newest event time any of its groups has seen.
    watermark: i64,
}

/// A group whose window lies behind the correlation's newest event is still kept
/// while it got an event within this many observations (its own stream may simply
/// be read later, as when files are scanned one account after another).
const IDLE_OBSERVATIONS: u32 = 16_384;

/// Runs correlation rules over the matches of the rules they refer to.
pub struct Correlator {
    corrs: Vec<Compiled>,
    feeds: Feeds,
    lateness_ms: i64,
    observed: u64,
    /// Inputs dropped because they came more than the lateness behind their group's
    /// newest event.
    pub dropped_late: u64,
    /// Reused for each event's group key.
    key: Vec<u8>,
    /// Reused for each event's value to count.
    value: Vec<u8>,
    /// Reused for each event's inputs.
    pending: Vec<Input>,
    /// The observation count at which groups are next swept.
    next_sweep: u64,
}

/// How the engine names its base rules, for resolving references.
pub struct BaseRef<'a> {
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
}

impl Correlator {
    /// Resolves every correlation's references against the base rules and the other
    /// correlations; a correlation with an unresolved reference is left out and
    /// reported.
    pub fn new(
        defs: Vec<Correlation>,
        base: &[BaseRef<'_>],
        lateness_ms: i64,
    ) -> (Correlator, Vec<RuleIssue>) {
        let mut issues = Vec::new();
        let mut kept: Vec<Correlation> = Vec::new();
        // First pass: which references can resolve at all (correlations may chain).
        let names_of = |c: &Correlation| [c.meta.id.clone(), c.meta.rule_name.clone()];
        let all_corr_names: Vec<[Option<String>; 2]> = defs.iter().map(names_of).collect();
        for d in defs {
            let unresolved: Vec<&String> = d
                .rules
                .iter()
                .filter(|r| {
                    !base
                        .iter()
                        .any(|b| b.id == Some(r.as_str()) || b.name == Some(r.as_str()))
                        && !all_corr_names
                            .iter()
                            .any(|n| n.iter().flatten().any(|x| x == *r))
                })
                .collect();
            if unresolved.is_empty() {
                kept.push(d);
            } else {
                issues.push(RuleIssue {
                    origin: d.meta.origin.clone(),
                    rule: Some(d.meta.title.clone()),
                    unsupported: false,
                    message: format!(
                        "refers to {} which no loaded rule is",
                        unresolved
                            .iter()
                            .map(|r| format!("`{r}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        let mut feeds = Feeds::default();
        let mut corrs = Vec::new();
        for (ci, d) in kept.iter().enumerate() {
            let mut inputs = Vec::new();
            for (pos, r) in d.rules.iter().enumerate() {
                let input = match base
                    .iter()
                    .position(|b| b.id == Some(r.as_str()) || b.name == Some(r.as_str()))
                {
                    Some(i) => Input::Rule(i as u32),
                    None => match kept.iter().position(|c| {
                        c.meta.id.as_deref() == Some(r.as_str())
                            || c.meta.rule_name.as_deref() == Some(r.as_str())
                    }) {
                        Some(j) => Input::Correlation(j as u32),
                        None => continue,
                    },
                };
                feeds.entry(input).push((ci as u32, pos as u16));
                let field_for = |f: &str| -> FieldPath {
                    let aliased = d
                        .aliases
                        .get(f)
                        .and_then(|m| m.get(r.as_str()))
                        .map(String::as_str);
                    FieldPath::new(aliased.unwrap_or(f))
                };
                let value = match &d.kind {
                    Kind::ValueCount { fields } => fields.iter().map(|f| field_for(f)).collect(),
                    Kind::ValueSum { field }
                    | Kind::ValueAvg { field }
                    | Kind::ValuePercentile { field } => vec![field_for(field)],
                    _ => Vec::new(),
                };
                inputs.push(InputFields {
                    group: d.group_by.iter().map(|g| field_for(g)).collect(),
                    value,
                });
            }
            corrs.push(Compiled {
                def: d.clone(),
                inputs,
                groups: hashbrown::HashTable::new(),
                hasher: Default::default(),
                watermark: i64::MIN,
            });
        }
        (
            Correlator {
                corrs,
                feeds,
                lateness_ms,
                observed: 0,
                dropped_late: 0,
                key: Vec::new(),
                value: Vec::new(),
                pending: Vec::new(),
                next_sweep: 1024,
            },
            issues,
        )
    }

    pub fn correlations(&self) -> impl Iterator<Item = &Correlation> {
        self.corrs.iter().map(|c| &c.def)
    }

    pub fn is_empty(&self) -> bool {
        self.corrs.is_empty()
    }

    /// Base rules whose matches only feed correlations (`generate` not set).
    pub fn silent_rules(&self) -> Vec<u32> {
        (0..self.feeds.by_rule.len() as u32)
            .filter(|&r| {
                let users = self.feeds.of(Input::Rule(r));
                !users.is_empty()
                    && users
                        .iter()
                        .all(|(c, _)| !self.corrs[*c as usize].def.generate)
            })
            .collect()
    }

    /// Events held across all groups (the state the correlator keeps).
    pub fn state_size(&self) -> usize {
        self.corrs
            .iter()
            .map(|c| c.groups.iter().map(|(_, g)| g.items.len()).sum::<usize>())
            .sum()
    }

    /// Feeds the matches of one event (at `time_ms`, as `doc`) and appends the
    /// correlations that fire.
    pub fn observe(&mut self, time_ms: i64, doc: &dyn Fields, matched: &[u32], out: &mut Vec<Hit>) {
        if matched.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.clear();
        pending.extend(matched.iter().map(|&r| Input::Rule(r)));
        while let Some(input) = pending.pop() {
            for k in 0..self.feeds.of(input).len() {
                // Indexed, not iterated: `feed` needs `self` mutably.
                let (c, pos) = self.feeds.of(input)[k];
                if let Some(hit) = self.feed(c, pos, time_ms, doc) {
                    pending.push(Input::Correlation(c));
                    out.push(hit);
                }
            }
        }
        self.pending = pending;
        self.observed += 1;
        if self.observed >= self.next_sweep {
            self.sweep();
            // Sweeping walks every group: space sweeps out by the number of groups so
            // each observation pays O(1) on average (the state at most doubles between
            // sweeps).
            let groups: usize = self.corrs.iter().map(|c| c.groups.len()).sum();
            self.next_sweep = self.observed + (groups as u64).max(1024);
        }
    }

    fn feed(&mut self, c: u32, pos: u16, t: i64, doc: &dyn Fields) -> Option<Hit> {
        let comp = &mut self.corrs[c as usize];
        let fields = &comp.inputs[pos as usize];
        let key = &mut self.key;
        key.clear();
        for p in &fields.group {
            doc.push_key(p, key);
        }
        let value = &mut self.value;
        enum Want {
            Text,
            Num(f64),
            None,
        }
        let want = match &comp.def.kind {
            Kind::ValueCount { .. } | Kind::ValuePercentile { .. } => {
                value.clear();
                let mut any = false;
                for p in &fields.value {
                    any |= doc.push_key(p, value);
                }
                if !any {
                    return None; // No value to count.
                }
                Want::Text
            }
            Kind::ValueSum { .. } | Kind::ValueAvg { .. } => {
                match fields.value.first().and_then(|p| doc.number(p)) {
                    Some(n) => Want::Num(n),
                    None => return None,
                }
            }
            _ => Want::None,
        };
        let span = comp.def.timespan_ms;
        comp.watermark = comp.watermark.max(t);
        let hasher = &comp.hasher;
        let group = match comp.groups.entry(
            hasher.hash_one(key.as_slice()),
            |(k, _)| k.as_bytes() == key.as_slice(),
            |(k, _)| hasher.hash_one(k.as_bytes()),
        ) {
            hashbrown::hash_table::Entry::Occupied(e) => &mut e.into_mut().1,
            hashbrown::hash_table::Entry::Vacant(e) => {
                let group = Group {
                    items: Held::None,
                    agg: Agg {
                        per_rule: match comp.def.kind {
                            Kind::Temporal => vec![0; comp.def.rules.len()].into(),
                            _ => Box::default(),
                        },
                        ..Agg::default()
                    },
                    newest: t,
                    touched: 0,
                };
                &mut e.insert((keys::Value::new(key), group)).into_mut().1
            }
        };
        if t < group.newest - self.lateness_ms {
            self.dropped_late += 1;
            return None;
        }
        group.newest = group.newest.max(t);
        group.touched = self.observed as u32;
        let payload = match want {
            Want::Text => Payload::Value(group.agg.add_value(pos, value, hasher)),
            Want::Num(n) => {
                let p = Payload::Num(n);
                group.agg.add(pos, &p, hasher);
                p
            }
            Want::None => {
                group.agg.add(pos, &Payload::None, hasher);
                Payload::None
            }
        };
        let mine = match &payload {
            Payload::Value(v) if matches!(comp.def.kind, Kind::ValuePercentile { .. }) => {
                Some(v.clone())
            }
            _ => None,
        };
        // In time order (out-of-order events land where they belong).
        group.items.insert((t, pos, payload));
        if matches!(want, Want::Text)
            && group.agg.distinct.is_none()
            && group.items.len() > FEW_HELD
        {
            group.agg.table(&group.items, hasher);
        }
        let newest = group.newest;
        while group
            .items
            .front()
            .is_some_and(|(it, _, _)| *it < newest - span)
        {
            if let Some((_, p, pl)) = group.items.pop_front() {
                group.agg.remove(p, &pl, hasher);
            }
        }
        if group.items.is_empty() {
            return None;
        }
        let n_rules = comp.def.rules.len();
        let items = &group.items;
        let agg = &group.agg;
        let value = match &comp.def.kind {
            Kind::EventCount => items.len() as f64,
            Kind::ValueCount { .. } => agg.distinct_in(items) as f64,
            Kind::ValueSum { .. } => agg.sum,
            Kind::ValueAvg { .. } => agg.sum / items.len() as f64,
            Kind::ValuePercentile { .. } => {
                let same = mine.as_ref().map_or(0, |m| agg.held_with(items, m, hasher));
                100.0 * same as f64 / items.len() as f64
            }
            Kind::Temporal => agg.per_rule.iter().filter(|n| **n > 0).count() as f64,
            Kind::TemporalOrdered => {
                // Latest event of the last rule, then going backwards the latest event of
                // each earlier rule that is not later: the tightest ordered chain.
                let mut bound = i64::MAX;
                let mut chain = 0;
                for want in (0..n_rules).rev() {
                    match items
                        .iter()
                        .rev()
                        .find(|(it, p, _)| *p as usize == want && *it <= bound)
                    {
                        Some((it, _, _)) => {
                            bound = *it;
                            chain += 1;
                        }
                        None => break,
                    }
                }
                if chain == n_rules && newest - bound <= span {
                    n_rules as f64
                } else {
                    0.0
                }
            }
        };
        let fires = match &comp.def.threshold {
            Some(t) => t.holds(value),
            None => value >= n_rules as f64,
        };
        if !fires {
            return None;
        }
        let hit = Hit {
            correlation: c,
            group: if fields.group.is_empty() {
                Vec::new()
            } else {
                keys::texts(key)
            },
            first_ms: items.front().map_or(t, |x| x.0),
            last_ms: newest,
            events: items.len(),
            value,
        };
        group.items = Held::None;
        group.agg.clear();
        Some(hit)
    }

    /// Drops groups whose window lies behind their correlation's newest event and
    /// that have been idle for a while.
    fn sweep(&mut self) {
        let late = self.lateness_ms;
        let now = self.observed;
        for c in &mut self.corrs {
            // Saturating: a correlation that has seen no event yet has a watermark of
            // i64::MIN.
            let horizon = c
                .watermark
                .saturating_sub(c.def.timespan_ms)
                .saturating_sub(late);
            c.groups.retain(|(_, g)| {
                g.newest >= horizon || (now as u32).wrapping_sub(g.touched) < IDLE_OBSERVATIONS
            });
        }
    }
}

/// Where correlations read an event's group-by and value fields: its JSON, or the
/// typed event with the JSON behind it.
pub trait Fields {
    /// The field's text: a string as it is, a number or object as JSON text, null as
    /// ""; `None` when the event has no such field.
    fn text(&self, path: &FieldPath) -> Option<Cow<'_, str>>;

    /// Appends the field's value to a key (see [`keys`]); `false` when the event has
    /// no such field or it is empty.
    fn push_key(&self, path: &FieldPath, buf: &mut Vec<u8>) -> bool {
        keys::push_text(buf, self.text(path).as_deref().unwrap_or_default())
    }

    /// The field as a number (a number, or text that reads as one).
    fn number(&self, path: &FieldPath) -> Option<f64> {
        self.text(path).and_then(|t| t.trim().parse().ok())
    }
}

impl Fields for Value {
    fn text(&self, path: &FieldPath) -> Option<Cow<'_, str>> {
        field_text(self, path)
    }
}

/// A field of `doc` as [`Fields::text`] gives it.
pub fn field_text<'d>(
    doc: &'d dyn super::value::Members,
    path: &FieldPath,
) -> Option<Cow<'d, str>> {
    if let Some(s) = path.string_in(doc) {
        return Some(Cow::Borrowed(s));
    }
    path.lookup(doc).map(|v| match v {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Null => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn corr(yaml: &str) -> Correlation {
        let docs = yaml_rust2::YamlLoader::load_from_str(yaml).unwrap();
        compile(&docs[0], Path::new("c.yml")).unwrap()
    }

    fn correlator(c: Correlation, base: &[(&str, &str)]) -> Correlator {
        let refs: Vec<BaseRef<'_>> = base
            .iter()
            .map(|(id, name)| BaseRef {
                id: Some(id),
                name: Some(name),
            })
            .collect();
        let (k, issues) = Correlator::new(vec![c], &refs, 60_000);
        assert!(issues.is_empty(), "{issues:?}");
        k
    }

    #[test]
    fn event_count_fires_once_per_burst_and_handles_out_of_order() {
        let c = corr("title: burst\ncorrelation:\n  type: event_count\n  rules: [failed]\n  group-by: [user]\n  timespan: 5m\n  condition: {gte: 3}\n");
        let mut k = correlator(c, &[("1", "failed")]);
        let mut hits = Vec::new();
        let ev = |u: &str| json!({"user": u});
        k.observe(99_000, &ev("bob"), &[0], &mut hits);
        k.observe(400_000, &ev("bob"), &[0], &mut hits); // 301 s later: outside the window
        k.observe(380_000, &ev("alice"), &[0], &mut hits);
        assert!(hits.is_empty());
        // Arrives late (before the 400 s event) but within lateness and the window.
        k.observe(350_000, &ev("bob"), &[0], &mut hits);
        assert!(
            hits.is_empty(),
            "the 99 s event is out of the window ending at 400 s"
        );
        k.observe(390_000, &ev("bob"), &[0], &mut hits);
        assert_eq!(hits.len(), 1);
        assert_eq!(
            (hits[0].group.clone(), hits[0].events, hits[0].first_ms),
            (vec!["bob".to_string()], 3, 350_000)
        );
        k.observe(395_000, &ev("bob"), &[0], &mut hits);
        assert_eq!(hits.len(), 1, "the group starts over after firing");
        // Far too late: dropped and counted.
        k.observe(1_000, &ev("bob"), &[0], &mut hits);
        assert_eq!(k.dropped_late, 1);
    }

    #[test]
    fn value_count_sum_avg_percentile() {
        let mut hits = Vec::new();
        let c = corr("title: spray\ncorrelation:\n  type: value_count\n  rules: [f]\n  group-by: [ip]\n  timespan: 1h\n  condition: {field: user, gt: 2}\n");
        let mut k = correlator(c, &[("1", "f")]);
        for (t, u) in [(1, "a"), (2, "a"), (3, "b"), (4, "c")] {
            k.observe(
                t * 1000,
                &json!({"ip": "198.51.100.1", "user": u}),
                &[0],
                &mut hits,
            );
        }
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].value, 3.0);

        let c = corr("title: exfil\ncorrelation:\n  type: value_sum\n  rules: [f]\n  group-by: [dst]\n  timespan: 10m\n  condition: {field: bytes, gt: 1000}\n");
        let mut k = correlator(c, &[("1", "f")]);
        hits.clear();
        for b in [400, 400, 300] {
            k.observe(1000, &json!({"dst": "x", "bytes": b}), &[0], &mut hits);
        }
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].value, 1100.0);

        let c = corr("title: avg\ncorrelation:\n  type: value_avg\n  rules: [f]\n  group-by: [dst]\n  timespan: 10m\n  condition: {field: bytes, gt: 500}\n");
        let mut k = correlator(c, &[("1", "f")]);
        hits.clear();
        k.observe(1000, &json!({"dst": "x", "bytes": "400"}), &[0], &mut hits);
        k.observe(2000, &json!({"dst": "x", "bytes": 700}), &[0], &mut hits);
        assert_eq!(hits.len(), 1);

        let c = corr("title: rare\ncorrelation:\n  type: value_percentile\n  rules: [f]\n  group-by: [host]\n  timespan: 1d\n  condition: {field: image, lte: 10}\n");
        let mut k = correlator(c, &[("1", "f")]);
        hits.clear();
        for i in 0..20 {
            k.observe(
                i * 1000,
                &json!({"host": "h", "image": "common.exe"}),
                &[0],
                &mut hits,
            );
        }
        assert!(hits.is_empty());
        k.observe(
            30_000,
            &json!({"host": "h", "image": "rare.exe"}),
            &[0],
            &mut hits,
        );
        assert_eq!(hits.len(), 1);
    }

    #[test]
    fn counted_values_leave_with_their_events() {
        // Values longer than a key holds in place, repeated, then out of the window.
        let c = corr("title: spray\ncorrelation:\n  type: value_count\n  rules: [f]\n  group-by: [ip]\n  timespan: 10s\n  condition: {field: user, gt: 2}\n");
        let mut k = correlator(c, &[("1", "f")]);
        let user = |n: u32| format!("arn:aws:iam::111122223333:user/someone-{n}");
        let mut hits = Vec::new();
        let mut at = |t: i64, n: u32, hits: &mut Vec<Hit>| {
            let event = json!({"ip": "198.51.100.1", "user": user(n)});
            k.observe(t * 1000, &event, &[0], hits);
        };
        at(0, 1, &mut hits);
        at(1, 1, &mut hits);
        at(2, 2, &mut hits);
        // 20 s on, users 1 and 2 have left the window: one user is held, not three.
        at(20, 3, &mut hits);
        assert!(hits.is_empty(), "{hits:?}");
        at(21, 1, &mut hits);
        at(22, 1, &mut hits);
        assert!(hits.is_empty(), "{hits:?}");
        at(23, 2, &mut hits);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].value, 3.0);
        assert_eq!(hits[0].events, 4);
    }

    #[test]
    fn temporal_and_ordered_with_aliases() {
        let mut hits = Vec::new();
        let c = corr("title: t\ncorrelation:\n  type: temporal_ordered\n  rules: [create_user, attach_admin]\n  group-by: [target]\n  timespan: 10m\n  aliases:\n    target:\n      create_user: requestParameters.userName\n      attach_admin: requestParameters.userName\n");
        let mut k = correlator(c.clone(), &[("1", "create_user"), ("2", "attach_admin")]);
        let ev = |u: &str| json!({"requestParameters": {"userName": u}});
        // Wrong order: admin attached before the user exists (in event time).
        k.observe(5000, &ev("eve"), &[1], &mut hits);
        k.observe(6000, &ev("mallory"), &[0], &mut hits);
        assert!(hits.is_empty());
        k.observe(9000, &ev("eve"), &[0], &mut hits);
        assert!(hits.is_empty(), "attach came before create for eve");
        k.observe(20_000, &ev("mallory"), &[1], &mut hits);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].group, ["mallory"]);
        // Out of order arrival that is in order in event time.
        let mut k = correlator(c, &[("1", "create_user"), ("2", "attach_admin")]);
        hits.clear();
        k.observe(50_000, &ev("trent"), &[1], &mut hits);
        k.observe(40_000, &ev("trent"), &[0], &mut hits);
        assert_eq!(
            hits.len(),
            1,
            "created at 40 s, admin at 50 s, whatever the arrival order"
        );

        let c = corr("title: t\ncorrelation:\n  type: temporal\n  rules: [a, b]\n  group-by: [h]\n  timespan: 1m\n");
        let mut k = correlator(c, &[("1", "a"), ("2", "b")]);
        hits.clear();
        k.observe(0, &json!({"h": 1}), &[1], &mut hits);
        k.observe(120_000, &json!({"h": 1}), &[0], &mut hits);
        assert!(hits.is_empty(), "two minutes apart");
        k.observe(150_000, &json!({"h": 1}), &[1], &mut hits);
        assert_eq!(hits.len(), 1);
    }

    #[test]
    fn chained_correlations() {
        let base = yaml_rust2::YamlLoader::load_from_str(
            "title: many failed\nname: many_failed\ncorrelation:\n  type: event_count\n  rules: [failed]\n  group-by: [user]\n  timespan: 1h\n  condition: {gte: 2}\n---\ntitle: then success\ncorrelation:\n  type: temporal_ordered\n  rules: [many_failed, success]\n  group-by: [user]\n  timespan: 1h\n",
        )
        .unwrap();
        let defs: Vec<Correlation> = base
            .iter()
            .map(|d| compile(d, Path::new("c.yml")).unwrap())
            .collect();
        let refs = [
            BaseRef {
                id: Some("1"),
                name: Some("failed"),
            },
            BaseRef {
                id: Some("2"),
                name: Some("success"),
            },
        ];
        let (mut k, issues) = Correlator::new(defs, &refs, 0);
        assert!(issues.is_empty());
        let mut hits = Vec::new();
        let u = json!({"user": "bob"});
        k.observe(1000, &u, &[0], &mut hits);
        k.observe(2000, &u, &[0], &mut hits);
        assert_eq!(hits.len(), 1, "many_failed fires");
        k.observe(3000, &u, &[1], &mut hits);
        assert_eq!(hits.len(), 2, "then the chained correlation");
        assert_eq!(k.silent_rules(), [0, 1]);
    }

    #[test]
    fn state_is_bounded_over_a_long_stream() {
        let c = corr("title: burst\ncorrelation:\n  type: event_count\n  rules: [r]\n  group-by: [user]\n  timespan: 1m\n  condition: {gte: 1000000}\n");
        let mut k = correlator(c, &[("1", "r")]);
        let mut hits = Vec::new();
        let mut max_state = 0;
        // 100k events over ~28 hours, each from a new user: without eviction every
        // one would stay. Kept are the groups of the last minute (plus lateness) and
        // those that got an event in the last IDLE_OBSERVATIONS observations.
        // (state_size walks every group, so it is sampled rather than taken per event.)
        // Sweeps come every max(1024, groups) observations, so up to twice that.
        let bound = 2 * (IDLE_OBSERVATIONS as usize + 60 + 60 + 1024);
        let mut max_groups = 0;
        for i in 0..100_000i64 {
            k.observe(i * 1000, &json!({"user": format!("u{i}")}), &[0], &mut hits);
            max_groups = max_groups.max(k.corrs[0].groups.len());
            if i % 97 == 0 {
                max_state = max_state.max(k.state_size());
            }
        }
        assert!(hits.is_empty());
        assert!(max_groups <= bound, "{max_groups} groups kept");
        assert!(max_state <= bound, "state grew to {max_state}");
        // A few busy users: each group holds at most a minute of its events.
        let c = corr("title: burst\ncorrelation:\n  type: event_count\n  rules: [r]\n  group-by: [user]\n  timespan: 1m\n  condition: {gte: 1000000}\n");
        let mut k = correlator(c, &[("1", "r")]);
        for i in 0..200_000i64 {
            k.observe(
                i * 100,
                &json!({"user": format!("u{}", i % 5)}),
                &[0],
                &mut hits,
            );
        }
        assert!(k.state_size() <= 5 * 601, "{}", k.state_size());
    }

    #[test]
    fn invalid_correlations_are_named() {
        let docs = yaml_rust2::YamlLoader::load_from_str("title: x\ncorrelation:\n  type: event_count\n  rules: [a]\n  timespan: 5 minutes\n  condition: {gte: 1}\n").unwrap();
        let e = compile(&docs[0], Path::new("c.yml")).unwrap_err();
        assert!(e.message.contains("timespan `5 minutes`"), "{e}");
        let c = corr("title: x\ncorrelation:\n  type: event_count\n  rules: [nope]\n  group-by: [u]\n  timespan: 5m\n  condition: {gte: 1}\n");
        let (_, issues) = Correlator::new(vec![c], &[], 0);
        assert!(issues[0].message.contains("`nope`"), "{issues:?}");
        assert_eq!(parse_timespan("90m"), Some(5_400_000));
    }

    /// A correlation as the specification words it, for one input rule: each group
    /// keeps its events in time order, drops those older than the timespan before
    /// its newest, and fires (then starts over) when the measure meets the
    /// condition; events later than the lateness behind a group's newest are dropped.
    fn reference(
        kind: &str,
        span: i64,
        threshold: f64,
        events: &[(i64, u8, Option<String>)],
    ) -> Vec<(String, usize, i64, i64, f64)> {
        let mut groups: HashMap<u8, (i64, Vec<(i64, String)>)> = HashMap::new();
        let mut hits = Vec::new();
        for (t, g, v) in events {
            let Some(v) = v else { continue };
            // Sums and averages take numbers only.
            if matches!(kind, "value_sum" | "value_avg") && v.parse::<f64>().is_err() {
                continue;
            }
            let (newest, items) = groups.entry(*g).or_insert((*t, Vec::new()));
            if *t < *newest - 60_000 {
                continue;
            }
            *newest = (*newest).max(*t);
            let at = items.iter().take_while(|(it, _)| it <= t).count();
            items.insert(at, (*t, v.clone()));
            items.retain(|(it, _)| *it >= *newest - span);
            let n = items.len() as f64;
            let num = |x: &String| x.parse::<f64>().unwrap_or_default();
            let value = match kind {
                "event_count" => n,
                "value_count" => {
                    let mut d: Vec<&String> = items.iter().map(|(_, x)| x).collect();
                    d.sort();
                    d.dedup();
                    d.len() as f64
                }
                "value_sum" => items.iter().map(|(_, x)| num(x)).sum(),
                "value_avg" => items.iter().map(|(_, x)| num(x)).sum::<f64>() / n,
                _ => 100.0 * items.iter().filter(|(_, x)| x == v).count() as f64 / n,
            };
            if value >= threshold {
                hits.push((format!("g{g}"), items.len(), items[0].0, *newest, value));
                items.clear();
            }
        }
        hits
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

        /// Every kind of window over random streams (out of order, late, long and
        /// short values, groups that grow past what is held in place and shrink
        /// again) fires exactly when the reference does, with the same measure.
        #[test]
        fn windows_agree_with_reference(
            kind in proptest::sample::select(vec![
                "event_count", "value_count", "value_sum", "value_avg", "value_percentile",
            ]),
            span_s in 1i64..120,
            threshold in 1u32..30,
            steps in proptest::collection::vec(
                (0i64..100, 0u8..3, proptest::option::weighted(0.95, 0usize..14)),
                1..250,
            ),
        ) {
            let values = [
                "1", "2", "3", "5", "8", "13", "21", "34",
                "a", "b", "arn:aws:iam::111122223333:user/a-rather-long-name",
                "arn:aws:iam::111122223333:user/another-long-name-x", "10.0.0.1", "c",
            ];
            let mut t = 1_000_000i64;
            let events: Vec<(i64, u8, Option<String>)> = steps
                .iter()
                .map(|(r, g, v)| {
                    // Whole seconds, so that events land on the window's edges. Mostly
                    // a few seconds forward; one step in ten goes back up to 63 s, so
                    // that an event comes out of order, or late (beyond the 60 s
                    // lateness).
                    let dt = if *r < 10 { -7 * r } else { (r - 10) / 8 };
                    t += dt * 1000;
                    (t, *g, v.map(|i| values[i].to_string()))
                })
                .collect();
            let field = if kind == "event_count" { String::new() } else { "field: v, ".into() };
            let threshold = match kind {
                "value_sum" => f64::from(threshold) * 5.0,
                "value_avg" => f64::from(threshold) / 2.0,
                "value_percentile" => f64::from(threshold) * 3.0,
                _ => f64::from(threshold),
            };
            let c = corr(&format!(
                "title: w\ncorrelation:\n  type: {kind}\n  rules: [f]\n  group-by: [g]\n  timespan: {span_s}s\n  condition: {{{field}gte: {threshold}}}\n"
            ));
            let mut k = correlator(c, &[("1", "f")]);
            let mut hits = Vec::new();
            for (t, g, v) in &events {
                let doc = match v {
                    Some(v) => json!({"g": format!("g{g}"), "v": v}),
                    None => json!({"g": format!("g{g}")}),
                };
                // An event without the value still counts for event_count.
                k.observe(*t, &doc, &[0], &mut hits);
            }
            let got: Vec<_> = hits
                .iter()
                .map(|h| (h.group.join("/"), h.events, h.first_ms, h.last_ms, h.value))
                .collect();
            let events: Vec<_> = if kind == "event_count" {
                events.into_iter().map(|(t, g, v)| (t, g, Some(v.unwrap_or_default()))).collect()
            } else {
                events
            };
            let want = reference(kind, span_s * 1000, threshold, &events);
            proptest::prop_assert_eq!(got, want);
        }
    }
}
