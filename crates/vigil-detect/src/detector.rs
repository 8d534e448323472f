//! The whole detection stage: Sigma rules, correlation rules and the native
//! detectors (behavioural baselines, checks Sigma cannot express) over a stream of
//! events, producing [`Alert`]s that [`crate::finding::Findings`] folds into findings.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use vigil_model::{Event, IdentityType, Severity, SourceKind, Timestamp};

use crate::engine::{LazyDoc, RuleSet, Scratch};
use crate::finding::{Alert, Evidence, Findings, RuleInfo, RuleKind, RuleSource, Update};
use crate::native::{BaselineConfig, Natives};
use crate::sigma::correlation::{BaseRef, Correlator, Hit};
use crate::sigma::value::{FieldPath, Typed};
use crate::sigma::{CompileOptions, Loaded, RuleIssue};

/// Settings of a detection run.
#[derive(Clone, Debug)]
pub struct DetectorConfig {
    /// How far (event time) behind the newest event an event may come and still
    /// count for correlations.
    pub lateness_ms: i64,
    pub baseline: BaselineConfig,
    /// Run the built-in rules of `content/rules` (and the native detectors).
    pub builtin: bool,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            lateness_ms: 5 * 60 * 1000,
            baseline: BaselineConfig::default(),
            builtin: true,
        }
    }
}

/// Loads the built-in rules (embedded in the binary) into `loaded`.
pub fn load_builtin(loaded: &mut Loaded) {
    for (path, text) in crate::builtin::RULES {
        crate::sigma::load_str(text, Path::new(path), &CompileOptions::default(), loaded);
    }
}

/// A rule's resource/principal fields, compiled once.
struct Extract {
    info: Arc<RuleInfo>,
    resource: Option<FieldPath>,
    principal: Option<FieldPath>,
}

/// An event's fields for correlations: typed where the model carries them, else
/// from the record's JSON.
struct EventFields<'a> {
    scratch: &'a Scratch,
    event: &'a Event,
    doc: &'a LazyDoc<'a>,
}

impl crate::sigma::correlation::Fields for EventFields<'_> {
    fn text(&self, path: &FieldPath) -> Option<Cow<'_, str>> {
        match self.scratch.typed(self.event, path) {
            Some(v) => v.map(Typed::into_text),
            None => crate::sigma::correlation::field_text(self.doc, path),
        }
    }

    fn push_key(&self, path: &FieldPath, buf: &mut Vec<u8>) -> bool {
        use crate::sigma::keys;
        match self.scratch.typed(self.event, path) {
            Some(Some(v)) => keys::push_typed(buf, &v),
            Some(None) => keys::push_text(buf, ""),
            None => keys::push_text(
                buf,
                crate::sigma::correlation::field_text(self.doc, path)
                    .as_deref()
                    .unwrap_or_default(),
            ),
        }
    }

    fn number(&self, path: &FieldPath) -> Option<f64> {
        match self.scratch.typed(self.event, path) {
            Some(v) => v?.number(),
            None => crate::sigma::correlation::field_text(self.doc, path)?
                .trim()
                .parse()
                .ok(),
        }
    }
}

impl Extract {
    fn new(info: RuleInfo) -> Extract {
        Extract {
            resource: info.resource_field.as_deref().map(FieldPath::new),
            principal: info.principal_field.as_deref().map(FieldPath::new),
            info: Arc::new(info),
        }
    }
}

/// One rule or detector Vigil runs, for listings.
pub struct RuleEntry<'a> {
    pub info: &'a RuleInfo,
    /// Whether its matches only feed a correlation (it raises no findings itself).
    pub silent: bool,
    pub origin: String,
}

pub struct Detector {
    set: RuleSet,
    rules: Vec<Extract>,
    silent: Vec<bool>,
    correlator: Correlator,
    corrs: Vec<Extract>,
    natives: Natives,
    scratch: Scratch,
    hits: Vec<u32>,
    corr_hits: Vec<Hit>,
}

impl Detector {
    /// Builds the detector from loaded rules (filters already applied, built-ins
    /// loaded if wanted). Rules that cannot run come back as issues.
    pub fn new(loaded: Loaded, config: &DetectorConfig) -> (Detector, Vec<RuleIssue>) {
        let Loaded {
            rules,
            correlations,
            issues: mut all_issues,
            ..
        } = loaded;
        let (set, mut issues) = RuleSet::new(rules);
        all_issues.append(&mut issues);
        let mut extracts = Vec::with_capacity(set.len());
        for r in set.rules() {
            let m = &r.meta;
            let src = RuleSource {
                id: m.id.as_deref(),
                name: m.rule_name.as_deref(),
                title: &m.title,
                description: m.description.as_deref(),
                status: m.status.as_deref(),
                level: m.level,
                tags: &m.tags,
                custom: &m.custom,
                falsepositives: &m.falsepositives,
                kind: RuleKind::Sigma,
            };
            let info = info_or_issue(src, &m.origin, &mut all_issues);
            extracts.push(Extract::new(info));
        }
        let refs: Vec<BaseRef<'_>> = set
            .rules()
            .iter()
            .map(|r| BaseRef {
                id: r.meta.id.as_deref(),
                name: r.meta.rule_name.as_deref(),
            })
            .collect();
        let (correlator, mut issues) = Correlator::new(correlations, &refs, config.lateness_ms);
        all_issues.append(&mut issues);
        let mut corrs = Vec::new();
        for c in correlator.correlations() {
            let m = &c.meta;
            let src = RuleSource {
                id: m.id.as_deref(),
                name: m.rule_name.as_deref(),
                title: &m.title,
                description: m.description.as_deref(),
                status: None,
                level: m.level,
                tags: &m.tags,
                custom: &m.custom,
                falsepositives: &m.falsepositives,
                kind: RuleKind::Correlation,
            };
            let info = info_or_issue(src, &m.origin, &mut all_issues);
            corrs.push(Extract::new(info));
        }
        let mut silent = vec![false; set.len()];
        for r in correlator.silent_rules() {
            silent[r as usize] = true;
        }
        let natives = if config.builtin {
            Natives::new(config.baseline.clone())
        } else {
            Natives::none(config.baseline.clone())
        };
        (
            Detector {
                set,
                rules: extracts,
                silent,
                correlator,
                corrs,
                natives,
                scratch: Scratch::default(),
                hits: Vec::new(),
                corr_hits: Vec::new(),
            },
            all_issues,
        )
    }

    /// Every rule and detector, for listings: native detectors, correlations, rules.
    pub fn entries(&self) -> Vec<RuleEntry<'_>> {
        let mut out: Vec<RuleEntry<'_>> = self
            .natives
            .infos()
            .map(|i| RuleEntry {
                info: i,
                silent: false,
                origin: "native".into(),
            })
            .collect();
        for (c, e) in self.correlator.correlations().zip(&self.corrs) {
            out.push(RuleEntry {
                info: &e.info,
                silent: false,
                origin: c.meta.origin.display().to_string(),
            });
        }
        for (i, (r, e)) in self.set.rules().iter().zip(&self.rules).enumerate() {
            out.push(RuleEntry {
                info: &e.info,
                silent: self.silent[i],
                origin: r.meta.origin.display().to_string(),
            });
        }
        out
    }

    pub fn rule_set(&self) -> &RuleSet {
        &self.set
    }

    pub fn correlator(&self) -> &Correlator {
        &self.correlator
    }

    pub fn natives(&self) -> &Natives {
        &self.natives
    }

    pub fn natives_mut(&mut self) -> &mut Natives {
        &mut self.natives
    }

    /// Matching events that came too late to be correlated.
    pub fn late_events(&self) -> u64 {
        self.correlator.dropped_late
    }

    /// Runs every detection over `event`, appending what it raises.
    pub fn observe(&mut self, event: &Event, out: &mut Vec<Alert>) {
        self.observe_with(event, out, &mut |_| false);
    }

    /// [`observe`](Self::observe), offering each rule's alert to `update` first in
    /// a lighter form (no evidence: see [`Findings::touch`]): when `update` says
    /// it updated an open finding with it, the full alert is never built.
    ///
    /// [`Findings::touch`]: crate::finding::Findings::touch
    pub fn observe_with(
        &mut self,
        event: &Event,
        out: &mut Vec<Alert>,
        update: &mut dyn FnMut(&Alert) -> bool,
    ) {
        self.hits.clear();
        // The record, read no further than rules, correlations and findings reach.
        let doc = LazyDoc::new(event);
        self.set
            .evaluate_with(event, &doc, &mut self.scratch, &mut self.hits);
        if self.hits.is_empty() {
            self.natives.observe(event, out);
            return;
        }
        let scratch = &self.scratch;
        // A finding field: from the typed event when it carries it, else the record;
        // `first` takes the first of a list.
        let read = |p: &FieldPath, first: bool| -> Option<String> {
            match scratch.typed(event, p) {
                Some(v) => v.map(|v| v.into_text().into_owned()),
                None => match p.string_in(&doc) {
                    Some(s) => Some(s.to_owned()),
                    None => p.lookup(&doc).and_then(|v| match v {
                        Value::Array(items) if first => items.first().and_then(text),
                        other => text(other),
                    }),
                },
            }
        };
        for &i in &self.hits {
            if self.silent[i as usize] {
                continue;
            }
            let x = &self.rules[i as usize];
            if !update(&alert_for(x, event, &read, false)) {
                out.push(alert_for(x, event, &read, true));
            }
        }
        if !self.correlator.is_empty() {
            {
                self.corr_hits.clear();
                let fields = EventFields {
                    scratch: &self.scratch,
                    event,
                    doc: &doc,
                };
                self.correlator.observe(
                    event.time.as_millis(),
                    &fields,
                    &self.hits,
                    &mut self.corr_hits,
                );
                if self.corr_hits.is_empty() {
                    self.natives.observe(event, out);
                    return;
                }
                let defs: Vec<_> = self.correlator.correlations().collect();
                for h in &self.corr_hits {
                    let x = &self.corrs[h.correlation as usize];
                    let def = defs[h.correlation as usize];
                    let mut a = alert_for(x, event, &read, true);
                    a.first = vigil_model::Timestamp::from_millis(h.first_ms);
                    a.last = vigil_model::Timestamp::from_millis(h.last_ms);
                    a.events = h.events as u64;
                    a.detection_source = "Vigil";
                    if !def.group_by.is_empty() {
                        let group: serde_json::Map<String, Value> = def
                            .group_by
                            .iter()
                            .zip(&h.group)
                            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                            .collect();
                        if x.principal.is_none() {
                            a.principal = Some(h.group.join("/"));
                        }
                        a.evidence
                            .extra
                            .insert("group".into(), Value::Object(group));
                    }
                    if x.resource.is_none() {
                        // The group is what the correlation is about; the resource of
                        // the last event is kept among `resources`.
                        if let Some(r) = a.resource_arn.take() {
                            a.resources.push(r);
                        }
                        a.resource_type = None;
                    }
                    a.evidence.extra.insert(
                        "correlation".into(),
                        serde_json::json!({
                            "type": def.kind.as_str(),
                            "timespan_seconds": def.timespan_ms / 1000,
                            "value": h.value,
                            "events": h.events,
                        }),
                    );
                    a.event_ids = vec![event.id.clone()];
                    out.push(a);
                }
            }
        }
        self.natives.observe(event, out);
    }
}

/// A rule's finding attributes; a bad `vigil:` attribute becomes an issue and the
/// rule runs with the defaults instead.
fn info_or_issue(src: RuleSource<'_>, origin: &Path, issues: &mut Vec<RuleIssue>) -> RuleInfo {
    RuleInfo::from_rule(&src).unwrap_or_else(|message| {
        issues.push(RuleIssue {
            origin: origin.to_owned(),
            rule: Some(src.title.to_owned()),
            unsupported: false,
            message,
        });
        RuleInfo::from_rule(&RuleSource { custom: &[], ..src })
            .expect("no custom attributes, nothing to reject")
    })
}

/// The detection source a finding from `event` names.
/// Runs `event` through `detector` and folds what it raises into `findings`
/// (detected at `now`); `heard` learns of every alert's rule and whether the
/// alert opened a finding. Alerts that only update an open finding are folded in before their
/// evidence is built. `alerts` is scratch space, reused across events.
pub fn detect_into(
    detector: &mut Detector,
    findings: &mut Findings,
    event: &Event,
    now: Timestamp,
    alerts: &mut Vec<Alert>,
    heard: &mut dyn FnMut(&Arc<RuleInfo>, Update),
) {
    alerts.clear();
    detector.observe_with(event, alerts, &mut |a: &Alert| {
        let updated = findings.touch(a);
        if updated {
            heard(&a.rule, Update::Updated);
        }
        updated
    });
    for a in alerts.drain(..) {
        let rule = Arc::clone(&a.rule);
        let (update, _) = findings.record(a, now);
        heard(&rule, update);
    }
}

pub fn detection_source(s: SourceKind) -> &'static str {
    match s {
        SourceKind::CloudTrail => "CloudTrail",
        SourceKind::VpcFlow => "VPCFlowLogs",
        SourceKind::GuardDuty => "GuardDuty",
        SourceKind::SecurityHub => "SecurityHub",
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An ARN for a resource a rule names by id, for the types whose ARN can be built
/// from the id, the region and the account.
pub fn arn_for(resource_type: &str, id: &str, region: &str, account: &str) -> Option<String> {
    if id.starts_with("arn:") {
        return Some(id.to_owned());
    }
    Some(match resource_type {
        "AWS::S3::Bucket" => format!("arn:aws:s3:::{id}"),
        "AWS::EC2::Instance" => format!("arn:aws:ec2:{region}:{account}:instance/{id}"),
        "AWS::EC2::SecurityGroup" => format!("arn:aws:ec2:{region}:{account}:security-group/{id}"),
        "AWS::EC2::NetworkInterface" => {
            format!("arn:aws:ec2:{region}:{account}:network-interface/{id}")
        }
        "AWS::EC2::Snapshot" => format!("arn:aws:ec2:{region}::snapshot/{id}"),
        "AWS::EC2::Image" => format!("arn:aws:ec2:{region}::image/{id}"),
        "AWS::EC2::Volume" => format!("arn:aws:ec2:{region}:{account}:volume/{id}"),
        "AWS::EC2::NetworkAcl" => format!("arn:aws:ec2:{region}:{account}:network-acl/{id}"),
        "AWS::KMS::Key" => format!("arn:aws:kms:{region}:{account}:key/{id}"),
        "AWS::IAM::User" => format!("arn:aws:iam::{account}:user/{id}"),
        "AWS::IAM::Role" => format!("arn:aws:iam::{account}:role/{id}"),
        "AWS::IAM::Policy" => format!("arn:aws:iam::{account}:policy/{id}"),
        "AWS::CloudTrail::Trail" => format!("arn:aws:cloudtrail:{region}:{account}:trail/{id}"),
        "AWS::GuardDuty::Detector" => format!("arn:aws:guardduty:{region}:{account}:detector/{id}"),
        "AWS::Lambda::Function" => format!("arn:aws:lambda:{region}:{account}:function:{id}"),
        "AWS::RDS::DBInstance" => format!("arn:aws:rds:{region}:{account}:db:{id}"),
        "AWS::RDS::DBSnapshot" => format!("arn:aws:rds:{region}:{account}:snapshot:{id}"),
        _ => return None,
    })
}

/// Who acted, as findings name them: for a role session the role's ARN, else the
/// actor's ARN, user name or access key; for flows, the source address.
pub fn principal_of(e: &Event) -> Option<String> {
    if let Some(a) = &e.actor {
        // A role session acts for its role: findings (and their dedup) are about the
        // role, the session ARN stays in the evidence.
        if let Some(role) = a
            .session_issuer
            .as_ref()
            .filter(|i| i.issuer_type.as_deref() == Some("Role"))
            .and_then(|i| i.arn.clone())
        {
            return Some(role);
        }
        return a
            .arn
            .clone()
            .or_else(|| a.user_name.clone())
            .or_else(|| a.access_key_id.clone())
            .or_else(|| a.principal_id.clone());
    }
    if let Some(n) = &e.network {
        return n.src_addr.map(|ip| ip.to_string());
    }
    None
}

/// The alert `x` raises on `e`; `read` gives the fields the rule names for its
/// principal and resource (the first of a list, for the resource). With `detail`
/// false, without the evidence and descriptive fields an update of an open finding
/// does not read (see [`Findings::touch`](crate::finding::Findings::touch)).
fn alert_for(
    x: &Extract,
    e: &Event,
    read: &dyn Fn(&FieldPath, bool) -> Option<String>,
    detail: bool,
) -> Alert {
    let mut a = alert_from_event_as(&x.info, e, detail);
    if let Some(p) = &x.principal {
        if let Some(v) = read(p, false) {
            a.principal = Some(v);
        }
    }
    if let Some(p) = &x.resource {
        if let Some(v) = read(p, true) {
            let ty = x.info.resource_type.as_deref();
            let arn = ty.and_then(|t| {
                arn_for(
                    t,
                    &v,
                    e.region.as_deref().unwrap_or(""),
                    e.account.as_deref().unwrap_or(""),
                )
            });
            if let Some(old) = a.resource_arn.take() {
                a.resources.push(old);
            }
            if detail {
                a.evidence
                    .extra
                    .insert("resource_id".into(), Value::String(v.clone()));
            }
            a.resource_arn = arn.or(Some(v));
            a.resource_type = ty.filter(|_| detail).map(str::to_owned);
        }
    }
    a
}

/// An alert for `rule` from one event, with everything the event says: principal,
/// resource, evidence, and for GuardDuty and Security Hub findings their own title,
/// description, severity and confidence.
pub fn alert_from_event(rule: &Arc<RuleInfo>, e: &Event) -> Alert {
    alert_from_event_as(rule, e, true)
}

/// [`alert_from_event`]; with `detail` false the evidence stays empty (what the
/// finding is about, its severity, times and events are all there).
fn alert_from_event_as(rule: &Arc<RuleInfo>, e: &Event, detail: bool) -> Alert {
    let mut ev = if detail {
        Evidence {
            source_ip: e.source_ip.map(|ip| ip.to_string()),
            user_agent: e.user_agent.clone(),
            api_call: e.action.as_ref().map(|a| a.operation.clone()),
            aws_region: e.region.clone(),
            extra: Default::default(),
        }
    } else {
        Evidence::default()
    };
    // Evidence is only read (and its values only copied) with `detail`.
    let put = |ev: &mut Evidence, k: &'static str, v: &dyn Fn() -> Option<String>| {
        if let Some(v) = detail.then(v).flatten() {
            ev.extra.insert(k.into(), Value::String(v));
        }
    };
    if let Some(act) = &e.action {
        put(&mut ev, "event_source", &|| act.event_source.clone());
    }
    if let Some(code) = e.outcome.error_code() {
        put(&mut ev, "error_code", &|| Some(code.to_owned()));
    }
    let mut resource_arn = None;
    let mut resource_type = None;
    let mut resources = Vec::new();
    for r in &e.resources {
        let arn = r.arn.clone().or_else(|| {
            r.resource_type
                .as_deref()
                .zip(r.id.as_deref())
                .and_then(|(t, id)| {
                    arn_for(
                        t,
                        id,
                        e.region.as_deref().unwrap_or(""),
                        r.account_id
                            .as_deref()
                            .or(e.account.as_deref())
                            .unwrap_or(""),
                    )
                })
        });
        if let Some(arn) = arn {
            if resource_arn.is_none() {
                resource_arn = Some(arn);
                resource_type = r.resource_type.clone();
            } else if !resources.contains(&arn) {
                resources.push(arn);
            }
        } else if resource_type.is_none() {
            if let Some(id) = &r.id {
                put(&mut ev, "resource_id", &|| Some(id.clone()));
            }
            resource_type = r.resource_type.clone();
        }
    }
    if let Some(actor) = &e.actor {
        put(&mut ev, "principal_arn", &|| actor.arn.clone());
        put(&mut ev, "identity_type", &|| {
            Some(actor.identity_type.as_str().to_owned())
        });
        put(&mut ev, "access_key_id", &|| actor.access_key_id.clone());
        if let (true, Some(m)) = (detail, actor.mfa_authenticated) {
            ev.extra.insert("mfa_authenticated".into(), Value::Bool(m));
        }
        if resource_arn.is_none() {
            // Nothing else named: the principal is what the finding is about.
            let (arn, ty) = match actor.identity_type {
                IdentityType::AssumedRole => (
                    actor
                        .session_issuer
                        .as_ref()
                        .and_then(|i| i.arn.clone())
                        .or_else(|| actor.arn.clone()),
                    "AWS::IAM::Role",
                ),
                IdentityType::Root => (actor.arn.clone(), "AWS::IAM::Root"),
                _ => (actor.arn.clone(), "AWS::IAM::User"),
            };
            if arn.is_some() {
                resource_arn = arn;
                resource_type = Some(ty.to_owned());
            }
        }
    }
    if let Some(n) = &e.network {
        put(&mut ev, "dst_addr", &|| n.dst_addr.map(|ip| ip.to_string()));
        let num = |ev: &mut Evidence, k: &'static str, v: Option<u64>| {
            if let (true, Some(v)) = (detail, v) {
                ev.extra.insert(k.into(), Value::from(v));
            }
        };
        num(&mut ev, "src_port", n.src_port.map(u64::from));
        num(&mut ev, "dst_port", n.dst_port.map(u64::from));
        num(&mut ev, "protocol", n.protocol.map(u64::from));
        num(&mut ev, "bytes", n.bytes);
        num(&mut ev, "packets", n.packets);
        put(&mut ev, "flow_action", &|| {
            n.action.map(|a| format!("{a:?}").to_uppercase())
        });
        put(&mut ev, "interface_id", &|| n.interface_id.clone());
        if detail && ev.source_ip.is_none() {
            ev.source_ip = n.src_addr.map(|ip| ip.to_string());
        }
        let region = e.region.as_deref().unwrap_or("");
        let account = e.account.as_deref().unwrap_or("");
        if let Some(i) = &n.instance_id {
            resource_arn = arn_for("AWS::EC2::Instance", i, region, account);
            resource_type = Some("AWS::EC2::Instance".into());
        } else if let Some(eni) = &n.interface_id {
            resource_arn = arn_for("AWS::EC2::NetworkInterface", eni, region, account);
            resource_type = Some("AWS::EC2::NetworkInterface".into());
        }
    }
    let mut title = None;
    let mut description = None;
    let mut severity: Option<Severity> = None;
    let mut confidence = None;
    if let Some(f) = &e.finding {
        put(&mut ev, "source_finding_id", &|| Some(f.id.clone()));
        put(&mut ev, "finding_type", &|| f.finding_type.clone());
        put(&mut ev, "product", &|| f.product_name.clone());
        put(&mut ev, "control_id", &|| f.control_id.clone());
        put(&mut ev, "compliance_status", &|| {
            f.compliance_status.clone()
        });
        if let (true, Some(s)) = (detail, f.severity_score) {
            ev.extra.insert("source_severity".into(), Value::from(s));
        }
        title = f.title.clone();
        description = f.description.clone();
        severity = f.severity;
        confidence = f.confidence.map(|c| {
            // GuardDuty scores confidence 0–10, Security Hub 0–100.
            let pct = if e.source == SourceKind::GuardDuty {
                c * 10.0
            } else {
                c
            };
            pct.clamp(0.0, 100.0).round() as u8
        });
        if resource_type.is_none() {
            resource_type = f.resource_type.clone();
        }
    }
    Alert {
        rule: rule.clone(),
        first: e.time,
        last: e.time,
        account: if detail { e.account.clone() } else { None },
        region: if detail { e.region.clone() } else { None },
        principal: principal_of(e),
        resource_arn,
        resource_type,
        resources,
        detection_source: detection_source(e.source),
        title,
        description,
        severity,
        confidence,
        evidence: ev,
        event_ids: vec![e.id.clone()],
        events: 1,
        raw: detail.then(|| vigil_model::finding::RawRecord {
            event_id: e.id.clone(),
            text: e.raw.as_str().into(),
        }),
    }
}
