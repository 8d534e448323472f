//! The compiled matcher agrees with a naive reference evaluator, written straight
//! from the specification's words, on random rules × random events.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{json, Value};
use vigil_detect::sigma::rule::typed_field;
use vigil_detect::sigma::value::{RecordText, Typed};
use vigil_detect::sigma::{load_str, CompileOptions, Loaded, Subject};

const FIELDS: [&str; 3] = [
    "eventName",
    "userIdentity.type",
    "requestParameters.bucketName",
];
const WORDS: [&str; 6] = ["Delete", "delete", "Bucket", "Root", "a*b", "x?z"];

#[derive(Clone, Debug)]
enum Mod {
    Exact,
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Clone, Debug)]
struct FieldCond {
    field: usize,
    modifier: Mod,
    values: Vec<String>,
    all: bool,
}

#[derive(Clone, Debug)]
enum Expr {
    Sel(usize),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

fn value_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS.to_vec()), 1..3).prop_map(|w| w.concat())
}

fn field_cond() -> impl Strategy<Value = FieldCond> {
    (
        0..FIELDS.len(),
        0..4usize,
        // Up to five values, so that long lists (matched as one automaton on the
        // typed path) come up too.
        prop::collection::vec(value_strategy(), 1..6),
        any::<bool>(),
    )
        .prop_map(|(field, m, values, all)| {
            let modifier = [Mod::Exact, Mod::Contains, Mod::StartsWith, Mod::EndsWith][m].clone();
            let all = all && values.len() > 1;
            FieldCond {
                field,
                modifier,
                values,
                all,
            }
        })
}

fn expr(n: usize) -> impl Strategy<Value = Expr> {
    let leaf = (0..n).prop_map(Expr::Sel);
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn render(e: &Expr) -> String {
    match e {
        Expr::Sel(i) => format!("sel{i}"),
        Expr::Not(x) => format!("not ({})", render(x)),
        Expr::And(a, b) => format!("({}) and ({})", render(a), render(b)),
        Expr::Or(a, b) => format!("({}) or ({})", render(a), render(b)),
    }
}

fn yaml_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn rule_yaml(sels: &[Vec<FieldCond>], cond: &Expr) -> String {
    let mut y =
        String::from("title: random\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n");
    for (i, fields) in sels.iter().enumerate() {
        y.push_str(&format!("  sel{i}:\n"));
        for (j, f) in fields.iter().enumerate() {
            // The same field twice in one map is not YAML: use a list of maps then.
            let _ = j;
            let m = match f.modifier {
                Mod::Exact => "",
                Mod::Contains => "|contains",
                Mod::StartsWith => "|startswith",
                Mod::EndsWith => "|endswith",
            };
            let all = if f.all { "|all" } else { "" };
            let vals: Vec<String> = f.values.iter().map(|v| yaml_quote(v)).collect();
            y.push_str(&format!(
                "    {}{m}{all}: [{}]\n",
                FIELDS[f.field],
                vals.join(", ")
            ));
        }
    }
    y.push_str(&format!("  condition: {}\n", render(cond)));
    y
}

/// Sigma wildcard matching, case-insensitive, as the specification words it.
fn wildcard(pattern: &str, text: &str) -> bool {
    fn rec(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| rec(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && rec(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && rec(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    rec(&p, &t)
}

fn reference_field(f: &FieldCond, doc: &Value) -> bool {
    let mut v = doc;
    for part in FIELDS[f.field].split('.') {
        match v.get(part) {
            Some(x) => v = x,
            None => return false,
        }
    }
    let Some(text) = v.as_str() else { return false };
    let one = |val: &String| {
        let p = match f.modifier {
            Mod::Exact => val.clone(),
            Mod::Contains => format!("*{val}*"),
            Mod::StartsWith => format!("{val}*"),
            Mod::EndsWith => format!("*{val}"),
        };
        wildcard(&p, text)
    };
    if f.all {
        f.values.iter().all(one)
    } else {
        f.values.iter().any(one)
    }
}

fn reference(e: &Expr, sels: &[Vec<FieldCond>], doc: &Value) -> bool {
    match e {
        Expr::Sel(i) => sels[*i].iter().all(|f| reference_field(f, doc)),
        Expr::Not(x) => !reference(x, sels, doc),
        Expr::And(a, b) => reference(a, sels, doc) && reference(b, sels, doc),
        Expr::Or(a, b) => reference(a, sels, doc) || reference(b, sels, doc),
    }
}

fn event() -> impl Strategy<Value = Value> {
    (
        value_strategy(),
        value_strategy(),
        prop::option::of(value_strategy()),
    )
        .prop_map(|(name, ty, bucket)| {
            let mut doc = json!({"eventName": name, "userIdentity": {"type": ty}});
            if let Some(b) = bucket {
                doc["requestParameters"] = json!({"bucketName": b});
            }
            doc
        })
}

/// Two selections with one or two fields each (distinct fields, so each is a map),
/// a random condition over them, and events drawn from the same words.
fn case() -> impl Strategy<Value = (Vec<Vec<FieldCond>>, Expr, Vec<Value>)> {
    let sel = prop::collection::vec(field_cond(), 1..3).prop_map(|mut fs| {
        fs.sort_by_key(|f| f.field);
        fs.dedup_by_key(|f| f.field);
        fs
    });
    (
        prop::collection::vec(sel, 2..=2),
        expr(2),
        prop::collection::vec(event(), 1..8),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn compiled_agrees_with_reference((sels, cond, events) in case()) {
        let yaml = rule_yaml(&sels, &cond);
        let mut loaded = Loaded::default();
        load_str(&yaml, Path::new("random.yml"), &CompileOptions::default(), &mut loaded);
        prop_assert!(loaded.issues.is_empty(), "{yaml}\n{:?}", loaded.issues);
        let mut slots = 0;
        loaded.rules[0].number_cached(&mut slots);
        let rule = &loaded.rules[0];
        let mut memo = Vec::new();
        // Every text remembered, and each event seen twice, so that answers also
        // come from the cache.
        let mut cache = vigil_detect::sigma::value::TextCache::keeping_from(0);
        for doc in events.iter().chain(&events) {
            let want = reference(&cond, &sels, doc);
            let got = rule.matches(&Subject { doc, raw: "" }, &mut memo);
            prop_assert_eq!(got, want, "rule:\n{}\nevent: {}", yaml, doc);
            // The typed fast path: the first two fields come as text, the third from
            // the JSON.
            let typed = |id: u8| -> Option<Option<Typed<'_>>> {
                let v = if Some(id) == typed_field("eventName") {
                    &doc["eventName"]
                } else if Some(id) == typed_field("userIdentity.type") {
                    &doc["userIdentity"]["type"]
                } else {
                    return None;
                };
                Some(v.as_str().map(|s| Typed::Text(s.into())))
            };
            // The record's text as it would arrive, so that fields read from the JSON
            // are first looked for in it.
            let raw = doc.to_string();
            let mut record = RecordText::default();
            let got = rule.matches_hybrid(&typed, doc, &raw, Some(&mut record), &mut memo, &mut cache);
            prop_assert_eq!(got, want, "typed path, rule:\n{}\nevent: {}", yaml, doc);
        }
    }
}

/// A field of a flow rule on a number or address: a modifier and one to three of its
/// values, as written in YAML.
fn flow_field() -> impl Strategy<Value = (&'static str, Vec<&'static str>)> {
    let pools: Vec<(&'static str, Vec<&'static str>)> = vec![
        // Numbers, plain and not (a typed number only equals its plain text), and
        // wildcards and addresses as plain values.
        (
            "",
            vec![
                "22", "3389", "022", "22.0", "0", "65535", "80", "2*", "*9", "10.*.1", "?2",
                "10.0.0.1", "::1",
            ],
        ),
        ("|contains", vec!["2", "3", "10.", "::", ".1"]),
        ("|startswith", vec!["1", "2", "fe"]),
        ("|gt", vec!["22", "1000", "0"]),
        ("|lte", vec!["22", "1000", "0"]),
        (
            "|cidr",
            vec![
                "10.0.0.0/8",
                "10.1.0.0/16",
                "0.0.0.0/0",
                "8.8.8.8/32",
                "::/0",
                "fe80::/10",
                "2001:db8::/32",
            ],
        ),
    ];
    prop::sample::select(pools).prop_flat_map(|(m, pool)| {
        (
            Just(m),
            prop::collection::vec(prop::sample::select(pool), 1..4),
        )
    })
}

fn flow_event() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop::sample::select(vec![
            22u64, 80, 443, 3389, 0, 65535, 1000, 12,
        ])),
        prop::option::of(prop::sample::select(vec![
            "10.0.0.1",
            "10.1.3.4",
            "192.168.1.1",
            "8.8.8.8",
            "::1",
            "fe80::1",
            "2001:db8::5",
        ])),
    )
        .prop_map(|(port, addr)| {
            let mut net = serde_json::Map::new();
            if let Some(p) = port {
                net.insert("dst_port".into(), json!(p));
            }
            if let Some(a) = addr {
                net.insert("src_addr".into(), json!(a));
            }
            json!({ "network": net })
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Numbers and addresses from the typed event (tested as such where the values
    /// allow, as text otherwise) match exactly as their JSON does.
    #[test]
    fn typed_numbers_and_addresses_match_as_their_json(
        fields in prop::collection::vec((0..2usize, flow_field(), any::<bool>()), 1..3),
        events in prop::collection::vec(flow_event(), 1..8),
    ) {
        let names = ["network.dst_port", "network.src_addr"];
        let mut yaml = String::from("title: random\nlogsource: {product: aws, service: vpcflow}\ndetection:\n");
        for (i, (field, (m, values), all)) in fields.iter().enumerate() {
            // One selection per field, `all` when asked and there are several values.
            let all = if *all && values.len() > 1 { "|all" } else { "" };
            let values: Vec<String> = values.iter().map(|v| yaml_quote(v)).collect();
            yaml.push_str(&format!("  sel{i}:\n    {}{m}{all}: [{}]\n", names[*field], values.join(", ")));
        }
        let n = fields.len();
        yaml.push_str(&format!("  condition: {}\n", if n == 1 { "sel0" } else { "sel0 and not sel1" }));
        let mut loaded = Loaded::default();
        load_str(&yaml, Path::new("random.yml"), &CompileOptions::default(), &mut loaded);
        prop_assert!(loaded.issues.is_empty(), "{yaml}\n{:?}", loaded.issues);
        let rule = &loaded.rules[0];
        let mut memo = Vec::new();
        let mut cache = vigil_detect::sigma::value::TextCache::default();
        for doc in &events {
            let want = rule.matches(&Subject { doc, raw: "" }, &mut memo);
            let typed = |id: u8| -> Option<Option<Typed<'_>>> {
                let net = &doc["network"];
                if Some(id) == typed_field("network.dst_port") {
                    Some(net.get("dst_port").and_then(Value::as_u64).map(Typed::Num))
                } else if Some(id) == typed_field("network.src_addr") {
                    Some(net.get("src_addr").and_then(Value::as_str).map(|a| Typed::Ip(a.parse().unwrap())))
                } else {
                    None
                }
            };
            let got = rule.matches_hybrid(&typed, doc, "", None, &mut memo, &mut cache);
            prop_assert_eq!(got, want, "rule:\n{}\nevent: {}", yaml, doc);
        }
    }
}

/// A field of a flow rule for the flow program: a typed flow field, a modifier and
/// one to three values, as written in YAML.
fn program_field() -> impl Strategy<Value = (&'static str, &'static str, Vec<&'static str>)> {
    let pools: Vec<(&'static str, &'static str, Vec<&'static str>)> = vec![
        // Few values: every answer is worked out when the program is built.
        (
            "network.action",
            "",
            vec!["ACCEPT", "reject", "ACC*", "?EJECT", "", "OK"],
        ),
        ("network.action", "|contains", vec!["EP", "x", "re"]),
        ("network.action", "|exists", vec!["true", "false"]),
        ("network.log_status", "", vec!["OK", "nodata", "SKIP*"]),
        // Small numbers (a bit set), and numbers tested some other way.
        (
            "network.dst_port",
            "",
            vec!["22", "3389", "0", "65535", "80"],
        ),
        ("network.dst_port", "", vec!["022", "2*", "22"]),
        ("network.dst_port", "|gt", vec!["22", "1000"]),
        ("network.protocol", "", vec!["6", "17", "1"]),
        ("network.bytes", "", vec!["100", "4294967296"]),
        // Networks, and addresses tested as text.
        (
            "network.src_addr",
            "|cidr",
            vec![
                "10.0.0.0/8",
                "10.1.0.0/16",
                "0.0.0.0/0",
                "::/0",
                "fe80::/10",
            ],
        ),
        (
            "network.dst_addr",
            "|cidr",
            vec!["192.168.0.0/16", "8.8.8.8/32"],
        ),
        ("network.src_addr", "|startswith", vec!["10.", "fe"]),
        ("network.interface_id", "|endswith", vec!["1", "a"]),
    ];
    prop::sample::select(pools).prop_flat_map(|(field, m, pool)| {
        (
            Just(field),
            Just(m),
            prop::collection::vec(prop::sample::select(pool), 1..4),
        )
    })
}

/// A flow log line (version 2, default fields), `-` where a value is missing.
fn program_flow_line() -> impl Strategy<Value = String> {
    let pick = |v: Vec<&'static str>| prop::sample::select(v);
    (
        pick(vec!["eni-0a", "eni-01", "-"]),
        pick(vec!["10.0.0.1", "10.1.3.4", "8.8.8.8", "fe80::1", "::1", "-"]),
        pick(vec!["192.168.1.1", "8.8.8.8", "10.0.0.9", "-"]),
        pick(vec!["22", "80", "3389", "0", "65535", "1000", "-"]),
        pick(vec!["6", "17", "1", "-"]),
        pick(vec!["100", "4294967296", "7", "-"]),
        pick(vec!["ACCEPT", "REJECT", "-"]),
        pick(vec!["OK", "NODATA", "SKIPDATA"]),
    )
        .prop_map(|(eni, src, dst, port, proto, bytes, action, status)| {
            format!(
                "2 123456789012 {eni} {src} {dst} 40000 {port} {proto} 3 {bytes} 1717200000 1717200060 {action} {status}"
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Flow rules run as one compiled program (tests shared between the rules,
    /// answers for action and log status worked out in advance, numbers and networks
    /// as bit sets and masks) match exactly as the same rules do on the flow's JSON.
    #[test]
    fn flow_program_agrees_with_json(
        rules in prop::collection::vec(
            (prop::collection::vec(
                prop::collection::vec((program_field(), any::<bool>()), 1..3), 1..4),
             expr(3)),
            1..4),
        lines in prop::collection::vec(program_flow_line(), 1..16),
    ) {
        use vigil_detect::RuleSet;
        let mut yaml = String::new();
        for (n, (sels, cond)) in rules.iter().enumerate() {
            if n > 0 {
                yaml.push_str("---\n");
            }
            yaml.push_str(&format!(
                "title: random {n}\nlogsource: {{product: aws, service: vpcflow}}\ndetection:\n"
            ));
            for i in 0..3 {
                // Conditions may name sel0..sel2; a selection not drawn is always true.
                let fields = sels.get(i).map(Vec::as_slice).unwrap_or_default();
                yaml.push_str(&format!("  sel{i}:\n"));
                if fields.is_empty() {
                    yaml.push_str("    network.version: 2\n");
                }
                let mut seen = Vec::new();
                for ((field, m, values), all) in fields {
                    // One field once per map.
                    if seen.contains(field) {
                        continue;
                    }
                    seen.push(*field);
                    let all = if *all && values.len() > 1 && *m != "|exists" { "|all" } else { "" };
                    let values: Vec<String> = if *m == "|exists" {
                        vec![values[0].to_string()]
                    } else {
                        values.iter().map(|v| yaml_quote(v)).collect()
                    };
                    yaml.push_str(&format!("    {field}{m}{all}: [{}]\n", values.join(", ")));
                }
            }
            yaml.push_str(&format!("  condition: {}\n", render(cond)));
        }
        let mut loaded = Loaded::default();
        load_str(&yaml, Path::new("random.yml"), &CompileOptions::default(), &mut loaded);
        prop_assert!(loaded.issues.is_empty(), "{yaml}\n{:?}", loaded.issues);
        let (set, issues) = RuleSet::new(loaded.rules);
        prop_assert!(issues.is_empty());
        let text = lines.join("\n");
        let opts = vigil_ingest::DecodeOptions {
            format: Some(vigil_ingest::Format::VpcFlow),
            ..Default::default()
        };
        let d = vigil_ingest::open_reader(
            Path::new("flows.log"),
            Box::new(std::io::Cursor::new(text.into_bytes())),
            &opts,
        )
        .unwrap();
        let (mut s1, mut s2) = (vigil_detect::Scratch::default(), vigil_detect::Scratch::default());
        let mut events = 0;
        for item in d {
            let vigil_ingest::Item::Event(e) = item else { continue };
            events += 1;
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            set.evaluate(&e, &mut s1, &mut fast);
            set.evaluate_on_json(&e, &mut s2, &mut slow);
            prop_assert_eq!(fast, slow, "rules:\n{}\nevent: {}", yaml, e.raw.as_str());
        }
        prop_assert!(events > 0, "no line decoded: {}", lines.join("\n"));
    }
}

/// Flow rules share a test only when it is the same test: `|all` and `any` over the
/// same networks, and the same value under another modifier, stay apart.
#[test]
fn flow_rules_share_only_equal_tests() {
    let rule = |name: &str, field: &str| {
        format!(
            "title: {name}\nlogsource: {{product: aws, service: vpcflow}}\ndetection:\n  sel:\n    {field}: ['10.0.0.0/8', '10.1.0.0/16']\n  condition: sel\n"
        )
    };
    let yaml = [
        rule("any", "network.src_addr|cidr"),
        rule("all", "network.src_addr|cidr|all"),
        rule("other field", "network.dst_addr|cidr"),
        rule("any again", "network.src_addr|cidr"),
    ]
    .join("---\n");
    let mut loaded = Loaded::default();
    load_str(
        &yaml,
        Path::new("share.yml"),
        &CompileOptions::default(),
        &mut loaded,
    );
    assert!(loaded.issues.is_empty(), "{:?}", loaded.issues);
    let (set, _) = vigil_detect::RuleSet::new(loaded.rules);
    let lines = [
        "2 123456789012 eni-0a 10.2.0.1 10.1.0.1 40000 22 6 3 100 1717200000 1717200060 ACCEPT OK",
        "2 123456789012 eni-0a 10.1.0.1 8.8.8.8 40000 22 6 3 100 1717200000 1717200060 ACCEPT OK",
    ];
    let opts = vigil_ingest::DecodeOptions {
        format: Some(vigil_ingest::Format::VpcFlow),
        ..Default::default()
    };
    let d = vigil_ingest::open_reader(
        Path::new("flows.log"),
        Box::new(std::io::Cursor::new(lines.join("\n").into_bytes())),
        &opts,
    )
    .unwrap();
    let mut s = vigil_detect::Scratch::default();
    let mut got = Vec::new();
    for item in d {
        let vigil_ingest::Item::Event(e) = item else {
            panic!("decode error")
        };
        let mut out = Vec::new();
        set.evaluate(&e, &mut s, &mut out);
        got.push(out);
    }
    assert_eq!(got, [vec![0, 2, 3], vec![0, 1, 3]]);
}
