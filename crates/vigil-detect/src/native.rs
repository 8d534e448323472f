//! Detections written in code because Sigma cannot express them: behavioural
//! baselines (state learned per principal and account, persisted between runs) and
//! checks that must reason about one item of a list at a time (a policy statement, a
//! security-group permission).

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use vigil_model::{Event, IdentityType, Outcome, Severity, SourceKind, Timestamp};

use crate::detector::{alert_from_event, arn_for};
use crate::finding::{Alert, RuleInfo, RuleKind, RuleSource};
use crate::sigma::value::FastMap;

/// Ids of the native detectors.
pub const NEW_NETWORK: &str = "vigil-baseline-new-network-for-principal";
pub const NEW_REGION: &str = "vigil-baseline-runinstances-unused-region";
pub const SG_OPEN: &str = "vigil-ec2-security-group-open-admin-port";
pub const S3_PUBLIC_POLICY: &str = "vigil-s3-bucket-policy-public";
pub const ROLE_TRUST_OPENED: &str = "vigil-iam-role-trust-opened";

/// How baselines learn.
#[derive(Clone, Debug)]
pub struct BaselineConfig {
    /// A principal or account is judged only once its first event is this far
    /// (event time) in the past and it has `min_events` events: until then it is
    /// learning, and whatever it does is normal.
    pub learning_ms: i64,
    pub min_events: u64,
    /// Networks remembered per principal (the least recently seen go first).
    pub max_networks: usize,
    /// Principals and accounts remembered (the least recently seen go first).
    pub max_subjects: usize,
    /// IP → ASN and country, when the user supplies a database.
    pub asn_db: Option<Arc<AsnDb>>,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            learning_ms: 3 * 86_400_000,
            min_events: 10,
            max_networks: 64,
            max_subjects: 200_000,
            asn_db: None,
        }
    }
}

/// An IP-to-ASN table in the tab-separated layout iptoasn.com publishes
/// (`range_start range_end AS_number country_code AS_description`), IPv4 and IPv6.
#[derive(Debug, Default)]
pub struct AsnDb {
    ranges: Vec<(u128, u128, u32, [u8; 2])>,
}

/// Where a network address belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetInfo {
    pub asn: Option<u32>,
    pub country: Option<String>,
}

fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        // IPv4 in the IPv4-mapped IPv6 range, so both families share one table.
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Why an ASN table or a baseline file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {what}")]
    Line {
        path: PathBuf,
        line: usize,
        what: &'static str,
    },
    #[error("{path}: {why}")]
    Content { path: PathBuf, why: String },
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> StateFileError + '_ {
    move |source| StateFileError::Io {
        path: path.to_owned(),
        source,
    }
}

impl AsnDb {
    /// Reads the table; bad lines are errors naming the line.
    pub fn load(path: &Path) -> Result<AsnDb, StateFileError> {
        let f = std::fs::File::open(path).map_err(io_error(path))?;
        let mut ranges = Vec::new();
        for (n, line) in BufReader::new(f).lines().enumerate() {
            let line = line.map_err(io_error(path))?;
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: &'static str| StateFileError::Line {
                path: path.to_owned(),
                line: n + 1,
                what,
            };
            let mut cols = line.split('\t');
            let start: IpAddr = cols
                .next()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| bad("range_start is not an IP address"))?;
            let end: IpAddr = cols
                .next()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| bad("range_end is not an IP address"))?;
            let asn: u32 = cols
                .next()
                .and_then(|s| s.trim().trim_start_matches("AS").parse().ok())
                .ok_or_else(|| bad("AS_number is not a number"))?;
            let cc = cols.next().unwrap_or("").trim().as_bytes();
            let cc = if cc.len() == 2 {
                [cc[0], cc[1]]
            } else {
                [0, 0]
            };
            ranges.push((ip_key(start), ip_key(end), asn, cc));
        }
        ranges.sort_unstable();
        Ok(AsnDb { ranges })
    }

    pub fn lookup(&self, ip: IpAddr) -> NetInfo {
        let k = ip_key(ip);
        let i = self.ranges.partition_point(|r| r.0 <= k);
        match i.checked_sub(1).map(|i| self.ranges[i]) {
            // AS 0 marks ranges that are not routed.
            Some((_, end, asn, cc)) if k <= end && asn != 0 => NetInfo {
                asn: Some(asn),
                country: (cc != [0, 0] && &cc != b"No" && &cc != b"ZZ")
                    .then(|| String::from_utf8_lossy(&cc).into_owned()),
            },
            _ => NetInfo {
                asn: None,
                country: None,
            },
        }
    }
}

/// The network an address is judged by: its ASN when the database knows it, else
/// its /24 (IPv4) or /48 (IPv6).
/// Writes the network `ip` belongs to, as baselines compare them, into `out`.
fn network_of(ip: IpAddr, info: &NetInfo, out: &mut String) {
    use crate::sigma::value::{push_dotted, push_u64};
    out.clear();
    match (info.asn, ip) {
        (Some(asn), _) => {
            out.push_str("AS");
            push_u64(out, u64::from(asn));
        }
        (None, IpAddr::V4(v4)) => {
            push_dotted(out, &v4.octets()[..3]);
            out.push_str(".0/24");
        }
        (None, IpAddr::V6(v6)) => {
            use std::fmt::Write;
            let s = v6.segments();
            let _ = write!(out, "{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]);
        }
    }
}

/// Records `now` for `name` in `items`, allocating only for a name not seen yet.
fn see(items: &mut FastMap<String, Seen>, name: &str, now: i64) {
    match items.get_mut(name) {
        Some(s) => {
            s.first = s.first.min(now);
            s.last = s.last.max(now);
        }
        None => {
            items.insert(
                name.to_owned(),
                Seen {
                    first: now,
                    last: now,
                },
            );
        }
    }
}

/// The subject `key` names in `map`, created (the only allocation) when new.
fn subject<'m>(map: &'m mut FastMap<String, Subject>, key: &str, now: i64) -> &'m mut Subject {
    if !map.contains_key(key) {
        map.insert(
            key.to_owned(),
            Subject {
                first: now,
                last: now,
                ..Default::default()
            },
        );
    }
    map.get_mut(key).expect("inserted above")
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Seen {
    first: i64,
    last: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Subject {
    first: i64,
    last: i64,
    events: u64,
    /// Network or region → when seen.
    items: FastMap<String, Seen>,
    #[serde(default, skip_serializing_if = "FastMap::is_empty")]
    countries: FastMap<String, Seen>,
}

/// What the baselines have learned; saved to and loaded from a JSON file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct BaselineState {
    version: u32,
    /// Per principal: the networks (and countries) it has acted from.
    principals: FastMap<String, Subject>,
    /// Per account: the regions it has been active in.
    accounts: FastMap<String, Subject>,
}

impl BaselineState {
    pub fn load(path: &Path) -> Result<BaselineState, StateFileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io_error(path)(e)),
        };
        let content = |why: String| StateFileError::Content {
            path: path.to_owned(),
            why,
        };
        let s: BaselineState = serde_json::from_str(&text)
            .map_err(|e| content(format!("not a Vigil baseline file: {e}")))?;
        if s.version != 1 {
            return Err(content(format!(
                "baseline file version {} is not 1",
                s.version
            )));
        }
        Ok(s)
    }

    /// Writes the state atomically (a temporary file renamed over the old one).
    pub fn save(&self, path: &Path) -> Result<(), StateFileError> {
        let mut tmp = PathBuf::from(path);
        tmp.set_extension("json.tmp");
        let mut copy = self.clone();
        copy.version = 1;
        let text = serde_json::to_vec(&copy).map_err(|e| StateFileError::Content {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
        std::fs::write(&tmp, text).map_err(io_error(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_error(path))
    }

    /// Folds in the state another worker learned over a disjoint share of the input,
    /// where both workers started from `base` (the loaded state): what each saw is
    /// united, and event counts add up without counting `base` twice. A subject's
    /// networks stay capped at `max_items`, the most recently seen kept.
    pub fn merge(&mut self, other: BaselineState, base: &BaselineState, max_items: usize) {
        for (mine, theirs, base) in [
            (&mut self.principals, other.principals, &base.principals),
            (&mut self.accounts, other.accounts, &base.accounts),
        ] {
            for (k, s) in theirs {
                let Some(x) = mine.get_mut(&k) else {
                    mine.insert(k, s);
                    continue;
                };
                let already = base.get(&k).map_or(0, |b| b.events);
                x.events = (x.events + s.events).saturating_sub(already);
                x.first = x.first.min(s.first);
                x.last = x.last.max(s.last);
                for (into, from) in [(&mut x.items, s.items), (&mut x.countries, s.countries)] {
                    for (name, seen) in from {
                        let e = into.entry(name).or_insert(seen);
                        e.first = e.first.min(seen.first);
                        e.last = e.last.max(seen.last);
                    }
                }
                if x.items.len() > max_items {
                    let mut v: Vec<(String, Seen)> = x.items.drain().collect();
                    v.sort_by_key(|(_, s)| std::cmp::Reverse(s.last));
                    v.truncate(max_items);
                    x.items = v.into_iter().collect();
                }
            }
        }
    }

    pub fn principals(&self) -> usize {
        self.principals.len()
    }

    pub fn accounts(&self) -> usize {
        self.accounts.len()
    }
}

/// The native detectors and their state.
pub struct Natives {
    enabled: bool,
    config: BaselineConfig,
    pub state: BaselineState,
    infos: Vec<Arc<RuleInfo>>,
    /// Reused per event for the principal's key and its network.
    key_buf: String,
    net_buf: String,
}

/// A native detector's attributes, as a Sigma rule would carry them.
struct NativeRule<'a> {
    id: &'a str,
    title: &'a str,
    description: &'a str,
    kind: RuleKind,
    level: crate::sigma::Level,
    tags: &'a [&'a str],
    custom: &'a [(&'a str, &'a str)],
    falsepositives: &'a [&'a str],
}

fn info(rule: NativeRule) -> Arc<RuleInfo> {
    let NativeRule {
        id,
        title,
        description,
        kind,
        level,
        tags,
        custom,
        falsepositives,
    } = rule;
    let falsepositives: Vec<String> = falsepositives.iter().map(|t| t.to_string()).collect();
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    let custom: Vec<(String, String)> = custom
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(
        RuleInfo::from_rule(&RuleSource {
            id: Some(id),
            name: Some(id),
            title,
            description: Some(description),
            status: Some("stable"),
            level: Some(level),
            tags: &tags,
            custom: &custom,
            falsepositives: &falsepositives,
            kind,
        })
        .expect("built-in attributes are valid"),
    )
}

/// TCP/UDP ports of remote administration and data stores that must not be open to
/// the internet.
pub const ADMIN_PORTS: [(u16, &str); 17] = [
    (20, "FTP data"),
    (21, "FTP"),
    (22, "SSH"),
    (23, "Telnet"),
    (445, "SMB"),
    (1433, "SQL Server"),
    (1521, "Oracle"),
    (2375, "Docker API"),
    (2376, "Docker API (TLS)"),
    (3306, "MySQL"),
    (3389, "RDP"),
    (5432, "PostgreSQL"),
    (5985, "WinRM"),
    (5986, "WinRM (TLS)"),
    (6379, "Redis"),
    (9200, "Elasticsearch"),
    (27017, "MongoDB"),
];

impl Natives {
    pub fn new(config: BaselineConfig) -> Natives {
        use crate::sigma::Level::*;
        let infos = vec![
            info(NativeRule {
                id: NEW_NETWORK,
                title: "Principal acting from a network never seen for it",
                description: "An access key or role was used from a network (ASN, or /24 and /48 without an ASN database) it has never been used from, after a learning period in which its usual networks were recorded. Stolen keys are typically used from the attacker's infrastructure.",
                kind: RuleKind::Baseline,
                level: Medium,
                tags: &["attack.initial-access", "attack.t1078.004"],
                custom: &[("category", "UnauthorizedAccess"), ("playbook", "PB-009"), ("confidence", "60"), ("rationale", "A new network is weak evidence alone (travel, new offices, VPNs); it is medium so that it ranks below behaviour-based findings.")],
                falsepositives: &["Travel, a new office or VPN exit, a CI provider changing its address ranges"],
            }),
            info(NativeRule {
                id: NEW_REGION,
                title: "Instances launched in a region the account does not use",
                description: "RunInstances succeeded in a region in which the account had no activity until recently. Cryptojacking campaigns launch instances in regions nobody watches.",
                kind: RuleKind::Baseline,
                level: High,
                tags: &["attack.impact", "attack.t1496", "attack.defense-evasion", "attack.t1535"],
                custom: &[("category", "Cryptojacking"), ("playbook", "PB-002"), ("confidence", "75"), ("rationale", "Launching compute where the account has never worked is the signature of miners hiding from whoever watches the usual regions.")],
                falsepositives: &["Expanding into a new region (disaster recovery, a new market)"],
            }),
            info(NativeRule {
                id: SG_OPEN,
                title: "Security group opened to the internet on an administration port",
                description: "An ingress rule allowing 0.0.0.0/0 or ::/0 to a remote-administration or database port (SSH, RDP, SMB, MySQL, PostgreSQL, Redis, …) or to all ports was added to a security group.",
                kind: RuleKind::Native,
                level: High,
                tags: &["attack.initial-access", "attack.t1190", "attack.defense-evasion", "attack.t1562.007"],
                custom: &[("category", "PolicyViolation"), ("playbook", "PB-008"), ("confidence", "95"), ("rationale", "Each opened port is read from the rule itself, so the finding is nearly certain; the exposure is severe whoever made it.")],
                falsepositives: &["Bastion hosts deliberately open to the internet on SSH (better: Session Manager)"],
            }),
            info(NativeRule {
                id: S3_PUBLIC_POLICY,
                title: "S3 bucket policy grants access to everyone",
                description: "A bucket policy was written with an Allow statement for Principal \"*\" that no condition restricts to a network, organization or account: anyone on the internet gets the actions it lists.",
                kind: RuleKind::Native,
                level: High,
                tags: &["attack.exfiltration", "attack.t1530", "attack.defense-evasion"],
                custom: &[("category", "PolicyViolation"), ("playbook", "PB-003"), ("confidence", "90"), ("rationale", "Statements restricted by network, organization or account conditions are excluded, so what remains is public.")],
                falsepositives: &["Buckets that host public websites or datasets on purpose"],
            }),
            info(NativeRule {
                id: ROLE_TRUST_OPENED,
                title: "IAM role trust policy lets another account or everyone assume it",
                description: "A role was created, or its trust policy replaced, with an Allow statement that lets Principal \"*\" or an AWS account other than this one assume it, with no condition that limits it to the organization. Whoever controls that account (or anyone, for \"*\") can take the role's permissions: the classic cross-account backdoor.",
                kind: RuleKind::Native,
                level: High,
                tags: &["attack.persistence", "attack.privilege-escalation", "attack.t1098.003", "attack.t1484.002"],
                custom: &[("category", "UnauthorizedAccess"), ("playbook", "PB-001"), ("confidence", "75"), ("rationale", "Trust is read statement by statement against the account's own id; vendors and other accounts of the organization are the false positives, and an organization condition removes them.")],
                falsepositives: &["Vendor integrations (monitoring, backup) whose role trusts the vendor's account with an external id", "Roles shared with other accounts of the organization without an organization condition"],
            }),
        ];
        Natives {
            enabled: true,
            config,
            state: BaselineState::default(),
            infos,
            key_buf: String::new(),
            net_buf: String::new(),
        }
    }

    /// No native detectors (only user rules run).
    pub fn none(config: BaselineConfig) -> Natives {
        let mut n = Natives::new(config);
        n.enabled = false;
        n.infos.clear();
        n
    }

    pub fn infos(&self) -> impl Iterator<Item = &RuleInfo> {
        self.infos.iter().map(|i| &**i)
    }

    fn info(&self, id: &str) -> &Arc<RuleInfo> {
        self.infos
            .iter()
            .find(|i| i.key == id)
            .expect("native detector ids are fixed")
    }

    pub fn observe(&mut self, e: &Event, out: &mut Vec<Alert>) {
        if !self.enabled || e.source != SourceKind::CloudTrail {
            return;
        }
        self.new_network(e, out);
        self.new_region(e, out);
        let Some(op) = e.action.as_ref().map(|a| a.operation.as_str()) else {
            return;
        };
        if !matches!(e.outcome, Outcome::Success | Outcome::Unknown) {
            return;
        }
        match op {
            "AuthorizeSecurityGroupIngress" => self.sg_open(e, out),
            "PutBucketPolicy" => self.s3_public(e, out),
            "CreateRole" | "UpdateAssumeRolePolicy" => self.role_trust(e, out),
            _ => {}
        }
    }

    fn mature(&self, s: &Subject, now: i64) -> bool {
        s.events >= self.config.min_events && now - s.first >= self.config.learning_ms
    }

    fn evict(map: &mut FastMap<String, Subject>, max: usize) {
        if map.len() <= max {
            return;
        }
        // Drop the least recently seen tenth at once, so eviction is rare.
        let mut lasts: Vec<i64> = map.values().map(|s| s.last).collect();
        lasts.sort_unstable();
        let cut = lasts[map.len() - max + max / 10];
        map.retain(|_, s| s.last > cut);
    }

    fn new_network(&mut self, e: &Event, out: &mut Vec<Alert>) {
        let (Some(actor), Some(ip)) = (&e.actor, e.source_ip) else {
            return;
        };
        let mut key = std::mem::take(&mut self.key_buf);
        key.clear();
        let arn = actor.arn.as_deref();
        match actor.identity_type {
            // A long-term key is what gets stolen; a role is judged as the role.
            IdentityType::IamUser => match actor.access_key_id.as_deref() {
                Some(k) if k.starts_with("AKIA") => {
                    key.push_str("key:");
                    key.push_str(k);
                }
                _ => key.push_str(arn.unwrap_or("")),
            },
            IdentityType::AssumedRole => key.push_str(
                actor
                    .session_issuer
                    .as_ref()
                    .and_then(|i| i.arn.as_deref())
                    .or(arn)
                    .unwrap_or(""),
            ),
            IdentityType::Root => key.push_str(arn.unwrap_or("")),
            _ => {}
        }
        if key.is_empty() {
            self.key_buf = key;
            return;
        }
        let now = e.time.as_millis();
        let net = self
            .config
            .asn_db
            .as_ref()
            .map(|db| db.lookup(ip))
            .unwrap_or(NetInfo {
                asn: None,
                country: None,
            });
        let mut network = std::mem::take(&mut self.net_buf);
        network_of(ip, &net, &mut network);
        let max_networks = self.config.max_networks;
        let subject = subject(&mut self.state.principals, &key, now);
        let mature = subject.events >= self.config.min_events
            && now - subject.first >= self.config.learning_ms;
        let new_net = !subject.items.contains_key(network.as_str());
        let new_country = net
            .country
            .as_ref()
            .is_some_and(|c| !subject.countries.contains_key(c));
        subject.events += 1;
        subject.first = subject.first.min(now);
        subject.last = subject.last.max(now);
        see(&mut subject.items, &network, now);
        if let Some(c) = &net.country {
            see(&mut subject.countries, c, now);
        }
        if subject.items.len() > max_networks {
            if let Some(oldest) = subject
                .items
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
            {
                subject.items.remove(&oldest);
            }
        }
        let known: Vec<String> = if mature && new_net {
            let mut v: Vec<(&String, &Seen)> = subject
                .items
                .iter()
                .filter(|(k, _)| **k != network)
                .collect();
            v.sort_by_key(|(_, s)| std::cmp::Reverse(s.last));
            v.into_iter().take(5).map(|(k, _)| k.clone()).collect()
        } else {
            Vec::new()
        };
        Self::evict(&mut self.state.principals, self.config.max_subjects);
        if mature && new_net {
            let mut a = alert_from_event(self.info(NEW_NETWORK), e);
            a.principal = Some(key.strip_prefix("key:").unwrap_or(&key).to_owned());
            if new_country {
                a.severity = Some(Severity::High);
            }
            let x = &mut a.evidence.extra;
            x.insert("network".into(), Value::String(network.clone()));
            if let Some(asn) = net.asn {
                x.insert("asn".into(), Value::from(asn));
            }
            if let Some(c) = net.country {
                x.insert("country".into(), Value::String(c));
                x.insert("new_country".into(), Value::Bool(new_country));
            }
            x.insert("usual_networks".into(), Value::from(known));
            out.push(a);
        }
        self.key_buf = key;
        self.net_buf = network;
    }

    fn new_region(&mut self, e: &Event, out: &mut Vec<Alert>) {
        let (Some(account), Some(region)) = (&e.account, &e.region) else {
            return;
        };
        let now = e.time.as_millis();
        let learning = self.config.learning_ms;
        let subject = subject(&mut self.state.accounts, account, now);
        let mature = self.config.min_events <= subject.events && now - subject.first >= learning;
        subject.events += 1;
        subject.first = subject.first.min(now);
        subject.last = subject.last.max(now);
        // Activity in a region counts once it is older than the learning period: the
        // calls an intruder makes to prepare a launch do not make the region "used".
        let region_first = subject
            .items
            .get(region)
            .map(|s| s.first)
            .unwrap_or(now)
            .min(now);
        let established = now - region_first >= learning;
        see(&mut subject.items, region, now);
        let is_launch = e
            .action
            .as_ref()
            .is_some_and(|a| a.operation == "RunInstances")
            && matches!(e.outcome, Outcome::Success);
        let used: Vec<String> = if mature && is_launch && !established {
            let mut v: Vec<String> = subject
                .items
                .iter()
                .filter(|(_, s)| now - s.first >= learning)
                .map(|(k, _)| k.clone())
                .collect();
            v.sort();
            v
        } else {
            Vec::new()
        };
        Self::evict(&mut self.state.accounts, self.config.max_subjects);
        if mature && is_launch && !established {
            let mut a = alert_from_event(self.info(NEW_REGION), e);
            if let Some(t) = e
                .raw
                .to_json()
                .and_then(|d| d.pointer("/requestParameters/instanceType").cloned())
            {
                a.evidence.extra.insert("instance_type".into(), t);
            }
            a.evidence
                .extra
                .insert("regions_in_use".into(), Value::from(used));
            out.push(a);
        }
    }

    fn sg_open(&self, e: &Event, out: &mut Vec<Alert>) {
        let Some(doc) = e.raw.to_json() else { return };
        let params = &doc["requestParameters"];
        let mut opened: Vec<Value> = Vec::new();
        // The API's older form (`--cidr --port` in the CLI) puts one permission's
        // fields at the top of the request instead of in `ipPermissions`.
        let legacy = params.get("cidrIp").is_some().then_some(params);
        for perm in items(&params["ipPermissions"]).chain(legacy) {
            let proto = text(&perm["ipProtocol"]).unwrap_or_default();
            let all_ports = proto == "-1" || proto.eq_ignore_ascii_case("all");
            if !all_ports && !matches!(proto.as_str(), "tcp" | "udp" | "6" | "17") {
                continue;
            }
            let from = perm["fromPort"].as_i64().unwrap_or(-1);
            let to = perm["toPort"].as_i64().unwrap_or(-1);
            let whole_range = from <= 0 && (to == -1 || to >= 65535);
            let mut world = Vec::new();
            // Any address with prefix length 0 covers every address.
            let everywhere = |c: &str| c.trim().ends_with("/0");
            let ranges = items(&perm["ipRanges"]).map(|r| &r["cidrIp"]);
            let ranges6 = items(&perm["ipv6Ranges"]).map(|r| &r["cidrIpv6"]);
            for c in ranges
                .chain(ranges6)
                .chain(std::iter::once(&perm["cidrIp"]))
            {
                if let Some(c) = text(c).filter(|c| everywhere(c)) {
                    world.push(c);
                }
            }
            if world.is_empty() {
                continue;
            }
            let ports: Vec<&str> = if all_ports || whole_range {
                vec!["all ports"]
            } else {
                ADMIN_PORTS
                    .iter()
                    .filter(|(p, _)| i64::from(*p) >= from && i64::from(*p) <= to)
                    .map(|(_, n)| *n)
                    .collect()
            };
            if ports.is_empty() {
                continue;
            }
            opened.push(serde_json::json!({
                "protocol": proto, "from_port": from, "to_port": to,
                "cidrs": world, "services": ports,
            }));
        }
        if opened.is_empty() {
            return;
        }
        let mut a = alert_from_event(self.info(SG_OPEN), e);
        if let Some(g) = text(&params["groupId"]).or_else(|| text(&params["groupName"])) {
            a.resource_arn = arn_for(
                "AWS::EC2::SecurityGroup",
                &g,
                e.region.as_deref().unwrap_or(""),
                e.account.as_deref().unwrap_or(""),
            );
            a.resource_type = Some("AWS::EC2::SecurityGroup".into());
            a.evidence
                .extra
                .insert("resource_id".into(), Value::String(g));
        }
        a.evidence
            .extra
            .insert("opened".into(), Value::Array(opened));
        out.push(a);
    }

    fn s3_public(&self, e: &Event, out: &mut Vec<Alert>) {
        let Some(doc) = e.raw.to_json() else { return };
        let params = &doc["requestParameters"];
        let policy = policy_document(&params["bucketPolicy"]);
        let mut public = Vec::new();
        for (n, st) in items_or_one(&policy["Statement"]).enumerate() {
            if text(&st["Effect"]).as_deref() != Some("Allow") {
                continue;
            }
            let p = &st["Principal"];
            let everyone = match p {
                Value::String(s) => s == "*",
                Value::Object(m) => m
                    .get("AWS")
                    .is_some_and(|v| items_or_one(v).any(|x| x.as_str() == Some("*"))),
                _ => false,
            };
            if !everyone || restricted(&st["Condition"]) {
                continue;
            }
            public.push(serde_json::json!({
                "statement": st.get("Sid").cloned().unwrap_or(Value::from(n)),
                "actions": st.get("Action").cloned().unwrap_or(Value::Null),
            }));
        }
        if public.is_empty() {
            return;
        }
        let bucket = text(&params["bucketName"]);
        out.push(self.policy_alert(
            S3_PUBLIC_POLICY,
            e,
            bucket.map(|b| (format!("arn:aws:s3:::{b}"), "AWS::S3::Bucket", b)),
            ("public_statements", public),
        ));
    }

    /// An alert about a resource whose policy a native check judged, with the
    /// offending parts of the policy as evidence under `key`.
    fn policy_alert(
        &self,
        id: &str,
        e: &Event,
        resource: Option<(String, &str, String)>,
        (key, items): (&'static str, Vec<Value>),
    ) -> Alert {
        let mut a = alert_from_event(self.info(id), e);
        if let Some((arn, kind, name)) = resource {
            a.resource_arn = Some(arn);
            a.resource_type = Some(kind.into());
            a.evidence
                .extra
                .insert("resource_id".into(), Value::String(name));
        }
        a.evidence.extra.insert(key.into(), Value::Array(items));
        a
    }

    fn role_trust(&self, e: &Event, out: &mut Vec<Alert>) {
        let Some(doc) = e.raw.to_json() else { return };
        let params = &doc["requestParameters"];
        let raw = if params["assumeRolePolicyDocument"].is_null() {
            &params["policyDocument"]
        } else {
            &params["assumeRolePolicyDocument"]
        };
        let policy = policy_document(raw);
        let own = e.account.as_deref().unwrap_or("");
        let mut opened = Vec::new();
        for st in items_or_one(&policy["Statement"]) {
            if text(&st["Effect"]).as_deref() != Some("Allow") || restricted(&st["Condition"]) {
                continue;
            }
            let assumes = items_or_one(&st["Action"]).any(|a| {
                a.as_str().is_some_and(|a| {
                    let a = a.to_ascii_lowercase();
                    a == "*" || a == "sts:*" || a.starts_with("sts:assumerole")
                })
            });
            if !assumes {
                continue;
            }
            let aws = match &st["Principal"] {
                Value::String(s) if s == "*" => vec!["*".to_owned()],
                Value::Object(m) => m
                    .get("AWS")
                    .map(|v| items_or_one(v).filter_map(text).collect())
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            for p in aws {
                // `123456789012`, `arn:aws:iam::123456789012:root|role/…|user/…`.
                let account = p
                    .strip_prefix("arn:")
                    .and_then(|rest| rest.split(':').nth(3))
                    .unwrap_or(&p);
                if p == "*" || (!account.is_empty() && account != own) {
                    opened.push(Value::String(p));
                }
            }
        }
        if opened.is_empty() {
            return;
        }
        let role = text(&params["roleName"]);
        out.push(self.policy_alert(
            ROLE_TRUST_OPENED,
            e,
            role.map(|r| (format!("arn:aws:iam::{own}:role/{r}"), "AWS::IAM::Role", r)),
            ("trusted_principals", opened),
        ));
    }

    /// Whether the principal (or account) behind `key` is past learning; for tests.
    pub fn is_learning(&self, principal: &str, now: Timestamp) -> bool {
        self.state
            .principals
            .get(principal)
            .is_none_or(|s| !self.mature(s, now.as_millis()))
    }
}

/// Condition keys that limit a statement to a known network, organization or
/// account: with one of them, `Principal: *` is not public.
const RESTRICTING_KEYS: [&str; 10] = [
    "aws:sourcevpce",
    "aws:sourcevpc",
    "aws:sourceip",
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:principalaccount",
    "aws:sourceaccount",
    "aws:sourcearn",
    "aws:principalarn",
    "aws:userid",
];

fn restricted(cond: &Value) -> bool {
    let Value::Object(ops) = cond else {
        return false;
    };
    ops.values().any(|keys| match keys {
        Value::Object(k) => k
            .keys()
            .any(|k| RESTRICTING_KEYS.contains(&k.to_ascii_lowercase().as_str())),
        _ => false,
    })
}

/// A policy CloudTrail records either as JSON text (IAM) or as an object (S3).
fn policy_document(v: &Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    }
}

/// CloudTrail writes EC2 lists as `{"items": [...]}`.
fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn items_or_one(v: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match v {
        Value::Array(a) => Box::new(a.iter()),
        Value::Null => Box::new(std::iter::empty()),
        other => Box::new(std::iter::once(other)),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(events: u64, items: &[(&str, i64)]) -> Subject {
        Subject {
            first: items.iter().map(|i| i.1).min().unwrap_or(0),
            last: items.iter().map(|i| i.1).max().unwrap_or(0),
            events,
            items: items
                .iter()
                .map(|(k, t)| {
                    (
                        k.to_string(),
                        Seen {
                            first: *t,
                            last: *t,
                        },
                    )
                })
                .collect(),
            countries: FastMap::default(),
        }
    }

    fn state(principals: &[(&str, Subject)]) -> BaselineState {
        BaselineState {
            version: 1,
            principals: principals
                .iter()
                .map(|(k, s)| (k.to_string(), s.clone()))
                .collect(),
            accounts: FastMap::default(),
        }
    }

    #[test]
    fn merging_workers_unites_what_they_learned_without_double_counting() {
        let base = state(&[("k1", subject(10, &[("198.51.100.0/24", 100)]))]);
        // Worker A saw k1 twice more from a new network; worker B saw k1 three times
        // from the old one, and a principal of its own.
        let a = state(&[(
            "k1",
            subject(12, &[("198.51.100.0/24", 100), ("192.0.2.0/24", 300)]),
        )]);
        let mut b = state(&[("k1", subject(13, &[("198.51.100.0/24", 400)]))]);
        b.principals
            .insert("k2".into(), subject(1, &[("203.0.113.0/24", 50)]));
        let mut m = a.clone();
        m.merge(b.clone(), &base, 64);
        let k1 = &m.principals["k1"];
        assert_eq!(k1.events, 15);
        assert_eq!((k1.first, k1.last), (100, 400));
        assert_eq!(k1.items.len(), 2);
        assert_eq!(
            k1.items["198.51.100.0/24"],
            Seen {
                first: 100,
                last: 400
            }
        );
        assert_eq!(m.principals["k2"].events, 1);
        // The other way round gives the same state.
        let mut m2 = b;
        m2.merge(a, &base, 64);
        assert_eq!(m, m2);
        // The network cap keeps the most recently seen.
        let mut capped = state(&[("k1", subject(2, &[("n1", 1), ("n2", 5)]))]);
        capped.merge(
            state(&[("k1", subject(1, &[("n3", 3)]))]),
            &BaselineState::default(),
            2,
        );
        let mut kept: Vec<&String> = capped.principals["k1"].items.keys().collect();
        kept.sort();
        assert_eq!(kept, ["n2", "n3"]);
    }

    #[test]
    fn asn_db_lookup_and_errors() {
        let dir = tempfile_dir();
        let p = dir.join("asn.tsv");
        std::fs::write(
            &p,
            "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n\
             2.16.0.0\t2.16.255.255\t20940\tEU\tAKAMAI\n\
             10.0.0.0\t10.255.255.255\t0\tNone\tNot routed\n\
             2001:db8::\t2001:db8:ffff::\t64500\tDE\tDOC\n",
        )
        .unwrap();
        let db = AsnDb::load(&p).unwrap();
        let l = |s: &str| db.lookup(s.parse().unwrap());
        assert_eq!(l("1.0.0.7").asn, Some(13335));
        assert_eq!(l("1.0.0.7").country.as_deref(), Some("US"));
        assert_eq!(l("1.0.1.7").asn, None);
        assert_eq!(l("10.1.2.3").asn, None);
        assert_eq!(l("2001:db8::1").asn, Some(64500));
        std::fs::write(&p, "1.0.0.0\tnope\t1\tUS\tX\n").unwrap();
        let err = AsnDb::load(&p).unwrap_err().to_string();
        assert!(err.ends_with(":1: range_end is not an IP address"), "{err}");
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("vigil-native-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn networks_without_db() {
        let none = NetInfo {
            asn: None,
            country: None,
        };
        let net = |ip: &str| {
            let mut out = String::from("stale");
            network_of(ip.parse().unwrap(), &none, &mut out);
            out
        };
        assert_eq!(net("203.0.113.9"), "203.0.113.0/24");
        assert_eq!(net("0.0.0.1"), "0.0.0.0/24");
        assert_eq!(net("2001:db8:7:1::5"), "2001:db8:7::/48");
        let known = NetInfo {
            asn: Some(64500),
            country: None,
        };
        let mut out = String::new();
        network_of("203.0.113.9".parse().unwrap(), &known, &mut out);
        assert_eq!(out, "AS64500");
    }

    #[test]
    fn restricting_conditions() {
        let c: Value = serde_json::json!({"StringEquals": {"aws:SourceVpce": "vpce-1"}});
        assert!(restricted(&c));
        let c: Value = serde_json::json!({"Bool": {"aws:SecureTransport": "true"}});
        assert!(!restricted(&c));
    }
}
