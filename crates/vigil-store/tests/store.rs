//! The store against its contract: idempotent findings, grouping into incidents,
//! the lifecycle, KPIs from stored rows, the append-only audit log, pagination,
//! and a database that survives reopening.

use serde_json::{json, Value};
use vigil_model::finding::Category;
use vigil_model::Finding;
use vigil_model::{Account, AccountRegistry, Environment, Severity, Timestamp};
use vigil_store::{
    Delivery, FindingQuery, Grouping, IncidentQuery, IncidentStatus, Store, StoreError,
};

const MIN: i64 = 60_000;
/// 2024-06-01T00:00:00Z
const T0: i64 = 1_717_200_000_000;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// A finding as `vigil-detect` writes it, with the parts a test varies.
fn finding(id: &str, category: &str, principal: &str, first: i64, severity: &str) -> Finding {
    let v = json!({
        "version": "1.0", "id": id, "detail-type": "Security Finding",
        "source": "com.security.platform", "account": "123456789012",
        "time": ts(first + MIN).to_string(), "region": "us-east-1", "resources": [],
        "detail": {
            "finding_id": format!("sec-2024-06-01-{id}"), "severity": severity, "confidence": 80,
            "title": format!("rule for {id}"), "description": "d", "category": category,
            "detection_source": "CloudTrail", "resource_type": null, "resource_arn": null,
            "first_seen": ts(first).to_string(), "last_seen": ts(first).to_string(),
            "remediation": {"playbook": "PB-001", "automated": true, "status": "PENDING"},
            "evidence": {"source_ip": "203.0.113.9", "user_agent": null, "api_call": "ListUsers", "aws_region": "us-east-1"},
            "count": 1, "rule": {"id": "r1", "title": "rule", "kind": "sigma"},
            "mitre_attack": {"tactics": [], "techniques": []},
            "principal": principal, "event_ids": ["e1"]
        }
    });
    serde_json::from_value(v).expect("a valid finding")
}

fn store() -> Store {
    Store::in_memory(Grouping::default()).unwrap()
}

#[test]
fn the_same_finding_stored_twice_is_one_finding() {
    let mut s = store();
    let mut f = finding("a", "UnauthorizedAccess", "alice", T0, "HIGH");
    let r = s.record_findings(&[f.clone()], ts(T0 + MIN)).unwrap();
    assert_eq!((r.new_findings, r.new_incidents), (1, 1));
    f.detail.count = 5;
    f.detail.last_seen = ts(T0 + 10 * MIN);
    let r = s.record_findings(&[f.clone()], ts(T0 + 11 * MIN)).unwrap();
    assert_eq!(
        (r.new_findings, r.updated_findings, r.new_incidents),
        (0, 1, 0)
    );
    assert_eq!(s.finding_count().unwrap(), 1);
    let stored: Value = serde_json::from_str(s.finding("a").unwrap().unwrap().get()).unwrap();
    assert_eq!(stored["detail"]["count"], 5);
    // By finding_id too.
    assert!(s.finding("sec-2024-06-01-a").unwrap().is_some());
    let incidents = s.incidents(&IncidentQuery::default()).unwrap().items;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].finding_count, 1);
    assert_eq!(incidents[0].last_seen, ts(T0 + 10 * MIN));
}

#[test]
fn findings_group_by_account_subject_and_category_within_the_window() {
    let mut s = store();
    let now = ts(T0 + 300 * MIN);
    s.record_findings(
        &[
            finding("a", "UnauthorizedAccess", "alice", T0, "LOW"),
            // Same group, 30 minutes later: joins, and raises the severity.
            finding(
                "b",
                "UnauthorizedAccess",
                "alice",
                T0 + 30 * MIN,
                "CRITICAL",
            ),
            // Another category, another principal: their own incidents.
            finding("c", "DataExfiltration", "alice", T0, "HIGH"),
            finding("d", "UnauthorizedAccess", "bob", T0, "HIGH"),
            // Same group, but 3 hours after the last: a new incident (window 1 h).
            finding("e", "UnauthorizedAccess", "alice", T0 + 210 * MIN, "LOW"),
        ],
        now,
    )
    .unwrap();
    let all = s.incidents(&IncidentQuery::default()).unwrap().items;
    assert_eq!(all.len(), 4);
    let first = all
        .iter()
        .find(|i| i.subject.as_deref() == Some("alice") && i.finding_count == 2)
        .expect("a and b grouped");
    assert_eq!(first.severity, Severity::Critical);
    assert_eq!(first.category, Category::UnauthorizedAccess);
    assert_eq!(
        (first.first_seen, first.last_seen),
        (ts(T0), ts(T0 + 30 * MIN))
    );
    let view = s.incident(&first.id).unwrap().unwrap();
    assert_eq!(view.finding_ids, vec!["a", "b"]);
    assert_eq!(view.timeline.len(), 2);
    assert!(view.timeline.iter().all(|t| t.kind.as_str() == "finding"));
}

#[test]
fn the_lifecycle_allows_only_its_moves_and_closing_is_the_triage_verdict() {
    use IncidentStatus::*;
    let mut s = store();
    s.record_findings(&[finding("a", "Cryptojacking", "i-1", T0, "HIGH")], ts(T0))
        .unwrap();
    let id = s.incidents(&IncidentQuery::default()).unwrap().items[0]
        .id
        .clone();
    s.transition(&id, Acknowledged, "ana", None, ts(T0 + MIN))
        .unwrap();
    s.assign(&id, Some("ana"), "lead", ts(T0 + MIN)).unwrap();
    s.transition(
        &id,
        Remediating,
        "ana",
        Some("quarantined"),
        ts(T0 + 2 * MIN),
    )
    .unwrap();
    let done = s
        .transition(&id, Resolved, "ana", None, ts(T0 + 5 * MIN))
        .unwrap();
    assert_eq!(done.status, Resolved);
    assert_eq!(done.closed_at, Some(ts(T0 + 5 * MIN)));
    assert_eq!(done.assignee.as_deref(), Some("ana"));
    match s.transition(&id, Open, "ana", None, ts(T0 + 6 * MIN)) {
        Err(StoreError::Transition { from, to, .. }) => assert_eq!((from, to), (Resolved, Open)),
        other => panic!("reopened: {other:?}"),
    }
    assert!(matches!(
        s.transition("nope", Resolved, "ana", None, ts(T0)),
        Err(StoreError::NoIncident(_))
    ));
    let view = s.incident(&id).unwrap().unwrap();
    let kinds: Vec<&str> = view.timeline.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(kinds, ["finding", "status", "assign", "status", "status"]);
    assert!(view.timeline[3].text.ends_with("quarantined"));
    // A finding after the incident closed opens a new one, even within the window.
    let r = s
        .record_findings(
            &[finding("b", "Cryptojacking", "i-1", T0 + MIN, "HIGH")],
            ts(T0 + 7 * MIN),
        )
        .unwrap();
    assert_eq!(r.new_incidents, 1);
    // Every lifecycle pair, against the table the docs give.
    for from in IncidentStatus::ALL {
        for to in IncidentStatus::ALL {
            let allowed = !from.is_closed()
                && from != to
                && to != Open
                && !(from == Acknowledged && to == Acknowledged);
            assert_eq!(from.can_become(to), allowed, "{from} → {to}");
        }
    }
}

#[test]
fn kpis_come_from_stored_rows_and_are_null_with_nothing_to_measure() {
    let mut s = store();
    let now = ts(T0 + 24 * 60 * MIN);
    let m = s.metrics(None, now).unwrap();
    assert_eq!(
        (m.mttd.clone(), m.mttr.clone(), m.false_positive_rate),
        (None, None, None)
    );
    assert_eq!((m.compliance_score, m.incidents_last_24h), (None, 0));

    // Stored 2 and 4 minutes after their first events: MTTD 3.0.
    s.record_findings(
        &[finding("a", "Cryptojacking", "i-1", T0, "HIGH")],
        ts(T0 + 2 * MIN),
    )
    .unwrap();
    s.record_findings(
        &[finding("b", "NetworkAttack", "10.0.0.9", T0, "LOW")],
        ts(T0 + 4 * MIN),
    )
    .unwrap();
    let ids: Vec<(String, Category)> = s
        .incidents(&IncidentQuery::default())
        .unwrap()
        .items
        .into_iter()
        .map(|i| (i.id, i.category))
        .collect();
    let (crypto, scan) = (&ids[1].0, &ids[0].0);
    assert_eq!(ids[1].1, Category::Cryptojacking);
    // Resolved 10 minutes after it opened: MTTR 10.0; the other is a false positive.
    s.transition(
        crypto,
        IncidentStatus::Resolved,
        "ana",
        None,
        ts(T0 + 12 * MIN),
    )
    .unwrap();
    s.transition(
        scan,
        IncidentStatus::FalsePositive,
        "ana",
        None,
        ts(T0 + 13 * MIN),
    )
    .unwrap();
    let m = s.metrics(None, ts(T0 + 60 * MIN)).unwrap();
    assert_eq!(m.mttd.as_deref(), Some("3.0"));
    assert_eq!(m.mttr.as_deref(), Some("10.0"));
    assert_eq!(m.incidents_last_24h, 2);
    assert_eq!(m.false_positive_rate, Some(50.0));
    // A day later the incidents are no longer "last 24 h".
    assert_eq!(
        s.metrics(None, ts(T0 + 25 * 60 * MIN))
            .unwrap()
            .incidents_last_24h,
        0
    );
    // Per account: another account has nothing.
    let other = s.metrics(Some("999999999999"), ts(T0 + 60 * MIN)).unwrap();
    assert_eq!((other.mttd, other.incidents_last_24h), (None, 0));
    let json = serde_json::to_value(&m).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // serde_json's map is sorted: the five keys of the API, and no others.
    assert_eq!(
        keys,
        [
            "compliance_score",
            "false_positive_rate",
            "incidents_last_24h",
            "mttd",
            "mttr"
        ]
    );

    let table = s.threat_table(None, ts(T0 + 60 * MIN)).unwrap();
    assert_eq!(table.len(), Category::ALL.len());
    let row = |c: Category| table.iter().find(|r| r.category == c).unwrap().clone();
    let crypto_row = row(Category::Cryptojacking);
    assert_eq!(
        (
            crypto_row.detections,
            crypto_row.manual_interventions,
            crypto_row.false_positives
        ),
        (1, 1, 0)
    );
    let scan_row = row(Category::NetworkAttack);
    assert_eq!((scan_row.detections, scan_row.false_positives), (1, 1));
    assert_eq!(crypto_row.automated_responses, 0);
    assert_eq!(row(Category::DataExfiltration).detections, 0);
}

#[test]
fn the_kpi_trend_is_each_days_own_figures_over_thirty_days() {
    let mut s = store();
    const DAY: i64 = 24 * 60 * MIN;
    // Day 0: one finding stored 2 minutes after its event, its incident
    // resolved 10 minutes after opening. Day 3: two findings (4 and 6 minutes),
    // one incident marked a false positive.
    s.record_findings(
        &[finding("a", "Cryptojacking", "i-1", T0, "HIGH")],
        ts(T0 + 2 * MIN),
    )
    .unwrap();
    let first = s.incidents(&IncidentQuery::default()).unwrap().items[0]
        .id
        .clone();
    s.transition(
        &first,
        IncidentStatus::Resolved,
        "ana",
        None,
        ts(T0 + 12 * MIN),
    )
    .unwrap();
    let d3 = T0 + 3 * DAY;
    s.record_findings(
        &[finding("b", "NetworkAttack", "10.0.0.9", d3, "LOW")],
        ts(d3 + 4 * MIN),
    )
    .unwrap();
    s.record_findings(
        &[finding("c", "UnauthorizedAccess", "u-1", d3, "LOW")],
        ts(d3 + 6 * MIN),
    )
    .unwrap();
    let scan = s
        .incidents(&IncidentQuery {
            categories: vec![Category::NetworkAttack],
            ..Default::default()
        })
        .unwrap()
        .items[0]
        .id
        .clone();
    s.transition(
        &scan,
        IncidentStatus::FalsePositive,
        "ana",
        None,
        ts(d3 + 20 * MIN),
    )
    .unwrap();

    let now = ts(T0 + 5 * DAY);
    let trend = s.kpi_trend(None, now).unwrap();
    assert_eq!(trend.len(), 30);
    // Oldest first, one UTC day apart, ending today.
    assert_eq!(trend[29].day, ts(T0 + 5 * DAY));
    assert!(trend
        .windows(2)
        .all(|w| w[1].day.as_millis() - w[0].day.as_millis() == DAY));
    let day0 = &trend[24];
    assert_eq!(day0.day, ts(T0));
    assert_eq!((day0.findings, day0.opened, day0.resolved), (1, 1, 1));
    assert_eq!((day0.mttd, day0.mttr), (Some(2.0), Some(10.0)));
    assert_eq!(day0.false_positive_rate, Some(0.0));
    let day3 = &trend[27];
    assert_eq!((day3.findings, day3.opened, day3.resolved), (2, 2, 0));
    assert_eq!((day3.mttd, day3.mttr), (Some(5.0), None));
    // One of the day's two findings triaged, and that one a false positive.
    assert_eq!(day3.false_positive_rate, Some(100.0));
    // Days with nothing: zero counts, no rates.
    assert_eq!(
        (trend[0].findings, trend[0].mttd, trend[0].mttr),
        (0, None, None)
    );
    assert!(trend.iter().all(|d| d.compliance_score.is_none()));
    // Per account, and another account has nothing.
    assert_eq!(
        s.kpi_trend(Some("123456789012"), now).unwrap()[24].findings,
        1
    );
    assert!(s
        .kpi_trend(Some("999999999999"), now)
        .unwrap()
        .iter()
        .all(|d| d.findings == 0 && d.opened == 0));
}

#[test]
fn open_incidents_are_counted_by_severity_and_account() {
    let mut s = store();
    assert_eq!(s.open_incidents().unwrap().total(), 0);
    assert!(s.open_incidents().unwrap().newest.is_none());
    s.record_findings(
        &[
            finding("a", "Cryptojacking", "i-1", T0, "HIGH"),
            finding("b", "NetworkAttack", "10.0.0.9", T0 + MIN, "LOW"),
            finding("c", "UnauthorizedAccess", "u-1", T0 + 2 * MIN, "HIGH"),
        ],
        ts(T0 + 5 * MIN),
    )
    .unwrap();
    let all = s.incidents(&IncidentQuery::default()).unwrap().items;
    let scan = all
        .iter()
        .find(|i| i.category == Category::NetworkAttack)
        .unwrap();
    s.transition(
        &scan.id,
        IncidentStatus::Resolved,
        "ana",
        None,
        ts(T0 + 9 * MIN),
    )
    .unwrap();
    let open = s.open_incidents().unwrap();
    assert_eq!(open.total(), 2);
    assert_eq!(
        open.counts,
        vec![(Severity::High, Some("123456789012".to_owned()), 2)]
    );
    let newest = open.newest.unwrap();
    assert_ne!(newest.id, scan.id, "a resolved incident is not open");
    assert!(all
        .iter()
        .filter(|i| i.id != scan.id)
        .all(|i| i.opened_at <= newest.opened_at));
}

#[test]
fn the_first_records_behind_a_finding_are_kept_beside_it() {
    use vigil_model::finding::RawRecord;
    let mut s = store();
    let rec = |i: u32| RawRecord {
        event_id: format!("e{i}"),
        text: format!(r#"{{"eventID":"e{i}","eventName":"ListUsers"}}"#).into(),
    };
    let mut f = finding("a", "UnauthorizedAccess", "u-1", T0, "HIGH");
    f.raw_records = vec![rec(1), rec(2)];
    s.record_findings(std::slice::from_ref(&f), ts(T0 + MIN))
        .unwrap();
    // The finding as stored and sent carries none of them.
    let body = s.finding("a").unwrap().unwrap();
    assert!(!body.get().contains("eventName"), "{}", body.get());
    assert_eq!(s.finding_records("a").unwrap(), vec![rec(1), rec(2)]);
    // Recorded again with more: the ones already kept are not written twice,
    // and no more than three are kept.
    f.raw_records = vec![rec(2), rec(3), rec(4)];
    s.record_findings(&[f], ts(T0 + 2 * MIN)).unwrap();
    let kept = s.finding_records("a").unwrap();
    assert_eq!(kept, [rec(1), rec(2), rec(3)]);
    assert!(s.finding_records("no-such-finding").unwrap().is_empty());
}

#[test]
fn the_audit_log_is_append_only() {
    let s = store();
    let a = s
        .audit(
            ts(T0),
            "ana",
            "POST /api/v1/incidents/x/resolve",
            "x",
            "200",
        )
        .unwrap();
    let b = s
        .audit(
            ts(T0 + 1),
            "bob",
            "POST /api/v1/incidents/y/acknowledge",
            "y",
            "409",
        )
        .unwrap();
    assert!(b > a);
    let log = s.audit_log(0, 10).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].principal, "bob");
    assert_eq!(s.audit_log(a, 10).unwrap().len(), 1);
}

#[test]
fn the_audit_log_refuses_updates_and_deletes_in_sql_too() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), Grouping::default()).unwrap();
        s.audit(ts(T0), "ana", "act", "t", "200").unwrap();
    }
    let conn = rusqlite_conn(dir.path());
    for sql in ["UPDATE audit SET principal = 'eve'", "DELETE FROM audit"] {
        let err = conn.execute(sql, []).unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
}

fn rusqlite_conn(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(vigil_store::database_path(dir)).unwrap()
}

#[test]
fn pages_cover_every_finding_once_and_filters_apply() {
    let mut s = store();
    let mut all = Vec::new();
    for i in 0..25 {
        let sev = if i % 5 == 0 { "CRITICAL" } else { "LOW" };
        let cat = if i % 2 == 0 {
            "NetworkAttack"
        } else {
            "PolicyViolation"
        };
        all.push(finding(
            &format!("f{i:02}"),
            cat,
            &format!("p{i}"),
            T0 + i * MIN,
            sev,
        ));
    }
    s.record_findings(&all, ts(T0 + 100 * MIN)).unwrap();
    let mut seen = Vec::new();
    let mut q = FindingQuery {
        limit: 10,
        ..Default::default()
    };
    let mut pages = 0;
    loop {
        let page = s.findings(&q).unwrap();
        pages += 1;
        for item in &page.items {
            let v: Value = serde_json::from_str(item).unwrap();
            seen.push(v["id"].as_str().unwrap().to_owned());
        }
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    let mut expected: Vec<String> = (0..25).rev().map(|i| format!("f{i:02}")).collect();
    assert_eq!(seen, expected);
    expected.sort();

    let count = |q: FindingQuery| s.findings(&q).unwrap().items.len();
    let crit = FindingQuery {
        severities: vec![Severity::Critical],
        ..Default::default()
    };
    assert_eq!(count(crit), 5);
    let net_crit = FindingQuery {
        severities: vec![Severity::Critical],
        categories: vec![Category::NetworkAttack],
        ..Default::default()
    };
    assert_eq!(count(net_crit), 3); // f00, f10, f20
    let window = FindingQuery {
        since: Some(ts(T0 + 5 * MIN)),
        until: Some(ts(T0 + 9 * MIN)),
        ..Default::default()
    };
    assert_eq!(count(window), 5);
    let elsewhere = FindingQuery {
        account: Some("999999999999".into()),
        ..Default::default()
    };
    assert_eq!(count(elsewhere), 0);
    let bad = FindingQuery {
        cursor: Some("zzz".into()),
        ..Default::default()
    };
    assert!(matches!(s.findings(&bad), Err(StoreError::Cursor(_))));
}

#[test]
fn a_production_account_weighs_incidents_up() {
    let accounts = AccountRegistry::new(vec![Account {
        id: "123456789012".into(),
        name: "payments-prod".into(),
        environment: Environment::Production,
        owner: Some("payments-team".into()),
        regions: Vec::new(),
        ou: None,
    }])
    .unwrap();
    let mut s = Store::in_memory(Grouping {
        accounts,
        ..Default::default()
    })
    .unwrap();
    s.record_findings(
        &[finding("a", "PolicyViolation", "alice", T0, "HIGH")],
        ts(T0),
    )
    .unwrap();
    let inc = &s.incidents(&IncidentQuery::default()).unwrap().items[0];
    assert_eq!(inc.severity, Severity::Critical);
    // The finding keeps its own severity.
    let f: Value = serde_json::from_str(s.finding("a").unwrap().unwrap().get()).unwrap();
    assert_eq!(f["detail"]["severity"], "HIGH");
}

#[test]
fn the_database_survives_reopening_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(dir.path(), Grouping::default()).unwrap();
        s.record_with_checkpoint(
            &[finding("a", "NetworkAttack", "10.0.0.1", T0, "LOW")],
            "inbox:flows.log",
            "size=10",
            ts(T0),
        )
        .unwrap();
    }
    let s = Store::open(dir.path(), Grouping::default()).unwrap();
    assert_eq!(s.finding_count().unwrap(), 1);
    assert_eq!(
        s.checkpoint("inbox:flows.log").unwrap().as_deref(),
        Some("size=10")
    );
    assert_eq!(s.checkpoint("elsewhere").unwrap(), None);
    let reader = s.open_reader().unwrap();
    assert_eq!(reader.finding_count().unwrap(), 1);
    drop((s, reader));
    rusqlite_conn(dir.path())
        .pragma_update(None, "user_version", 99)
        .unwrap();
    match Store::open(dir.path(), Grouping::default()) {
        Err(e @ StoreError::TooNew { .. }) => assert!(e.to_string().contains("99")),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a newer schema"),
    }
}

/// The KPIs from the running sums equal the KPIs recomputed from the rows, after
/// a random mix of findings over many days, accounts and categories, and random
/// lifecycle moves.
#[test]
fn running_sums_agree_with_the_rows() {
    const CATS: [&str; 5] = [
        "UnauthorizedAccess",
        "Cryptojacking",
        "PolicyViolation",
        "NetworkAttack",
        "DataExfiltration",
    ];
    for seed in 1..=4u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path(), Grouping::default()).unwrap();
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let day = 24 * 60 * MIN;
        let now = T0 + 40 * day;
        for i in 0..300 {
            let first = T0 + rnd(40 * day as u64) as i64;
            let mut f = finding(
                &format!("f{i}"),
                CATS[rnd(5) as usize],
                &format!("p{}", rnd(30)),
                first,
                ["LOW", "MEDIUM", "HIGH"][rnd(3) as usize],
            );
            f.account = Some(format!("{:012}", rnd(3)));
            let stored = first + rnd(30 * MIN as u64) as i64;
            s.record_findings(&[f], ts(stored)).unwrap();
        }
        let ids: Vec<(String, Timestamp)> = s
            .incidents(&IncidentQuery {
                limit: 1000,
                ..Default::default()
            })
            .unwrap()
            .items
            .into_iter()
            .map(|i| (i.id, i.opened_at))
            .collect();
        for (id, opened) in &ids {
            let at = ts(opened.as_millis() + rnd(3 * day as u64) as i64);
            let to = match rnd(4) {
                0 => IncidentStatus::Resolved,
                1 => IncidentStatus::FalsePositive,
                2 => IncidentStatus::Acknowledged,
                _ => continue,
            };
            s.transition(id, to, "ana", None, at).unwrap();
        }
        let conn = rusqlite_conn(dir.path());
        // The open incidents' counts (kept by triggers through openings,
        // escalations and status moves) against counting the rows.
        let mut rows: Vec<(Severity, Option<String>, u64)> = conn
            .prepare(
                "SELECT severity, account, count(*) FROM incidents
                 WHERE status IN ('OPEN', 'ACKNOWLEDGED', 'REMEDIATING') GROUP BY 1, 2",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    Severity::ALL[r.get::<_, usize>(0)?],
                    r.get(1)?,
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut kept = s.open_incidents().unwrap().counts;
        rows.sort();
        kept.sort();
        assert_eq!(kept, rows, "seed {seed}");
        assert!(rows.len() > 3, "several severities and accounts: {rows:?}");
        for account in [None, Some("000000000001")] {
            let m = s.metrics(account, ts(now)).unwrap();
            let since_day = now / day - 29;
            let acct = "(?2 IS NULL OR account = ?2)";
            let (mttd, triaged, fps): (Option<f64>, i64, i64) = conn
                .query_row(
                    &format!(
                        "SELECT avg(max(detected_at - first_seen, 0)), count(triage), sum(triage IS 'FALSE_POSITIVE')
                         FROM findings WHERE detected_at / 86400000 >= ?1 AND {acct}"
                    ),
                    rusqlite::params![since_day, account],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            let mttr: Option<f64> = conn
                .query_row(
                    &format!(
                        "SELECT avg(closed_at - opened_at) FROM incidents
                         WHERE status = 'RESOLVED' AND closed_at / 86400000 >= ?1 AND {acct}"
                    ),
                    rusqlite::params![since_day, account],
                    |r| r.get(0),
                )
                .unwrap();
            // Incidents of the last 24 hours, the window's start at many points
            // of an hour (and on one), against counting the rows.
            for k in 0..12i64 {
                let at = now - k * 7 * 60 * MIN - rnd(60 * MIN as u64) as i64 * (k % 2);
                let opened: i64 = conn
                    .query_row(
                        &format!("SELECT count(*) FROM incidents WHERE opened_at >= ?1 AND {acct}"),
                        rusqlite::params![at - day, account],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(
                    s.metrics(account, ts(at)).unwrap().incidents_last_24h,
                    opened as u64,
                    "seed {seed} {account:?} at {at}"
                );
            }
            let minutes = |ms: Option<f64>| ms.map(|v| format!("{:.1}", v / 60_000.0));
            assert_eq!(m.mttd, minutes(mttd), "seed {seed} {account:?}");
            assert_eq!(m.mttr, minutes(mttr), "seed {seed} {account:?}");
            let rate = (triaged > 0).then(|| (1000.0 * fps as f64 / triaged as f64).round() / 10.0);
            assert_eq!(m.false_positive_rate, rate, "seed {seed} {account:?}");
            let table = s.threat_table(account, ts(now)).unwrap();
            for row in table {
                let (found, acted): (i64, i64) = conn
                    .query_row(
                        &format!(
                            "SELECT (SELECT count(*) FROM findings WHERE category = ?3 AND detected_at / 86400000 >= ?1 AND {acct}),
                                    (SELECT count(*) FROM incidents WHERE category = ?3 AND first_action_at / 86400000 >= ?1 AND {acct})"
                        ),
                        rusqlite::params![since_day, account, row.category.as_str()],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .unwrap();
                assert_eq!(
                    row.detections, found as u64,
                    "seed {seed} {:?}",
                    row.category
                );
                assert_eq!(
                    row.manual_interventions, acted as u64,
                    "seed {seed} {:?}",
                    row.category
                );
            }
        }
    }
}

/// A bounded read that runs out of steps gives `None` (not a partial page), one
/// within its steps gives the whole answer, and the connection reads unbounded
/// afterwards as before.
#[test]
fn a_bounded_read_is_cut_short_whole_or_not_at_all() {
    let mut s = store();
    let all: Vec<Finding> = (0..2000)
        .map(|i| {
            finding(
                &format!("b{i}"),
                "NetworkAttack",
                &format!("p{i}"),
                T0 + i * MIN,
                "LOW",
            )
        })
        .collect();
    s.record_findings(&all, ts(T0 + 3000 * MIN)).unwrap();
    // No finding starts this early: the page walks every row to find none.
    let scan = FindingQuery {
        until: Some(ts(T0 - MIN)),
        limit: 10,
        ..Default::default()
    };
    assert!(s.bounded(2_000, |s| s.findings(&scan)).unwrap().is_none());
    let whole = s
        .bounded(10_000_000, |s| s.findings(&scan))
        .unwrap()
        .expect("within its steps");
    assert!(whole.items.is_empty() && whole.next_cursor.is_none());
    let newest = FindingQuery {
        limit: 5,
        ..Default::default()
    };
    let quick = s.bounded(2_000, |s| s.findings(&newest)).unwrap().unwrap();
    assert_eq!(quick.items.len(), 5);
    // Unbounded again: the long walk completes.
    let everything = FindingQuery {
        limit: 1000,
        ..Default::default()
    };
    assert_eq!(s.findings(&everything).unwrap().items.len(), 1000);
    assert!(s.findings(&scan).unwrap().items.is_empty());
}

/// Someone with the database file can drop the triggers and edit the log; the hash
/// chain shows where.
#[test]
fn the_audit_chain_finds_an_edited_or_removed_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), Grouping::default()).unwrap();
    for i in 0..5 {
        s.audit(
            ts(T0 + i),
            &format!("p{i}"),
            "POST /api/v1/incidents/x/resolve",
            "x",
            "200",
        )
        .unwrap();
    }
    let ok = s.verify_audit().unwrap();
    assert_eq!((ok.entries, ok.broken.clone()), (5, None));
    let (head_seq, head) = ok.head.clone().unwrap();
    assert_eq!((head_seq, head.len()), (5, 64));

    let conn = rusqlite_conn(dir.path());
    conn.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
    // An edited principal breaks the chain at that entry.
    conn.execute(
        "UPDATE audit SET principal = 'someone-else' WHERE seq = 2",
        [],
    )
    .unwrap();
    let bad = s.verify_audit().unwrap();
    assert_eq!(bad.broken.as_ref().map(|b| b.0), Some(2), "{bad:?}");
    conn.execute("UPDATE audit SET principal = 'p1' WHERE seq = 2", [])
        .unwrap();
    assert_eq!(s.verify_audit().unwrap().broken, None);
    // An edited hash too (the forger cannot recompute what follows without
    // rewriting every later entry, which the recorded head then shows).
    conn.execute(
        "UPDATE audit SET hash = substr(hash, 2) || '0' WHERE seq = 3",
        [],
    )
    .unwrap();
    assert_eq!(s.verify_audit().unwrap().broken.map(|b| b.0), Some(3));
    conn.execute("DELETE FROM audit WHERE seq >= 3", [])
        .unwrap();
    // Cutting the newest entries off leaves a whole chain: only the recorded head
    // shows it.
    let cut = s.verify_audit().unwrap();
    assert_eq!(cut.broken, None);
    assert_ne!(cut.head.unwrap().1, head);
    // A removed entry in the middle is missing from the sequence.
    for i in 0..3 {
        s.audit(ts(T0 + 10 + i), "q", "act", "t", "200").unwrap();
    }
    conn.execute("DELETE FROM audit WHERE seq = 4", []).unwrap();
    let gap = s.verify_audit().unwrap();
    let (seq, why) = gap.broken.unwrap();
    assert_eq!(seq, 5);
    assert!(why.contains("entry 4 is missing"), "{why}");
}

/// A store from before the chain: its entries are chained (and renumbered) when
/// it is opened, and the log stays append-only.
#[test]
fn entries_from_before_the_chain_are_sealed_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), Grouping::default()).unwrap());
    {
        // Back to schema 3: no hash column, entries numbered with gaps (and
        // without what migration 8 adds, which is not written to run twice).
        let conn = rusqlite_conn(dir.path());
        conn.execute_batch(
            "DROP INDEX findings_dedup; ALTER TABLE findings DROP COLUMN dedup_key;
             DROP TABLE finding_days;
             DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;
             ALTER TABLE audit DROP COLUMN hash;
             INSERT INTO audit (seq, at, principal, action, target, outcome) VALUES
                 (3, 1, 'ana', 'a', 't', '200'), (7, 2, 'bob', 'b', 't', '403');
             CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
                 BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
             CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
                 BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let s = Store::open(dir.path(), Grouping::default()).unwrap();
    let check = s.verify_audit().unwrap();
    assert_eq!((check.entries, check.broken), (2, None));
    let log = s.audit_log(0, 10).unwrap();
    let seqs: Vec<(i64, &str)> = log.iter().map(|e| (e.seq, e.principal.as_str())).collect();
    assert_eq!(seqs, [(1, "ana"), (2, "bob")]);
    assert_eq!(s.audit(ts(T0), "cy", "c", "t", "200").unwrap(), 3);
    assert_eq!(s.verify_audit().unwrap().broken, None);
    let conn = rusqlite_conn(dir.path());
    assert!(conn.execute("DELETE FROM audit", []).is_err());
}

#[test]
fn a_commit_racing_another_writer_for_the_same_records_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Store::open(dir.path(), Grouping::default()).unwrap();
    let mut b = Store::open(dir.path(), Grouping::default()).unwrap();
    let after = a.last_records_seq().unwrap();
    let rec = |n: u8| ([n; 16], 1_000i64);
    let f = finding("a", "Cryptojacking", "i-1", T0, "HIGH");
    // Both read up to `after`, both took record 1; A commits first.
    let done = a
        .commit(
            &Delivery {
                records: &[rec(1), rec(2)],
                records_after: Some(after),
                ..Delivery::default()
            },
            ts(T0),
        )
        .unwrap();
    assert!(done.records_seq.is_some());
    let err = b
        .commit(
            &Delivery {
                findings: std::slice::from_ref(&f),
                records: &[rec(3), rec(1)],
                records_after: Some(after),
                checkpoint: Some(("s3://b/k", "etag=1")),
                ..Delivery::default()
            },
            ts(T0),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(1)), "{err}");
    // Nothing of B's delivery was kept.
    assert_eq!(b.checkpoint("s3://b/k").unwrap(), None);
    assert!(b.finding(&f.id).unwrap().is_none());
    // B reads what A took (not its own rows), and commits without it.
    let (theirs, last) = b.seen_records_after(after, &[]).unwrap();
    assert_eq!(theirs, vec![rec(1), rec(2)]);
    b.commit(
        &Delivery {
            records: &[rec(3)],
            records_after: Some(last),
            ..Delivery::default()
        },
        ts(T0),
    )
    .unwrap();
}

#[test]
fn object_checkpoints_are_forgotten_with_the_redelivery_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), Grouping::default()).unwrap();
    for key in ["s3://b/old", "inbox:old"] {
        s.commit(
            &Delivery {
                checkpoint: Some((key, "etag=1")),
                ..Delivery::default()
            },
            ts(T0),
        )
        .unwrap();
    }
    s.commit(
        &Delivery {
            forget_before: Some(T0 + 1),
            ..Delivery::default()
        },
        ts(T0 + 2),
    )
    .unwrap();
    assert_eq!(s.checkpoint("s3://b/old").unwrap(), None);
    assert_eq!(
        s.checkpoint("inbox:old").unwrap().as_deref(),
        Some("etag=1")
    );
}

/// Routes every change to `chat` (folded per incident) and `hook` (not
/// folded), and counts its wake-ups.
struct Both(std::sync::atomic::AtomicUsize);

impl vigil_store::outbox::Router for Both {
    fn route(&self, c: &vigil_store::outbox::Change<'_>) -> Vec<vigil_store::outbox::Route> {
        vec![
            vigil_store::outbox::Route {
                destination: "chat".into(),
                fold: c.incident.map(|i| i.id.clone()),
            },
            vigil_store::outbox::Route {
                destination: "hook".into(),
                fold: None,
            },
        ]
    }

    fn wake(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn changes_queue_their_deliveries_which_fold_retry_die_and_replay() {
    use std::sync::atomic::Ordering;
    use vigil_store::outbox::{Outcome, State};
    let mut s = store();
    let router = std::sync::Arc::new(Both(Default::default()));
    s.set_router(router.clone());
    let mut f = finding("a", "UnauthorizedAccess", "alice", T0, "LOW");
    s.record_findings(&[f.clone()], ts(T0)).unwrap();
    f.detail.count = 2;
    f.detail.severity = Severity::High;
    s.record_findings(&[f.clone()], ts(T0 + MIN)).unwrap();
    let inc = s.incidents(&IncidentQuery::default()).unwrap().items[0]
        .id
        .clone();
    s.transition(
        &inc,
        IncidentStatus::Acknowledged,
        "ana",
        Some("on it"),
        ts(T0 + 2 * MIN),
    )
    .unwrap();
    assert_eq!(
        router.0.load(Ordering::Relaxed),
        3,
        "woken after each commit"
    );
    let all = s.outbox(None, Some("hook"), 100, None).unwrap().items;
    let events: Vec<&str> = all.iter().rev().map(|d| d.event.as_str()).collect();
    assert_eq!(
        events,
        [
            "incident.opened",
            "incident.escalated",
            "incident.acknowledged"
        ]
    );
    let ack: Value = serde_json::from_str(all[0].payload.get()).unwrap();
    assert_eq!(ack["actor"], "ana");
    assert_eq!(ack["note"], "on it");
    assert_eq!(ack["incident"]["status"], "ACKNOWLEDGED");

    // The chat's three rows share the incident: one claim carries the newest.
    let now = ts(T0 + 3 * MIN);
    let claimed = s.claim_outbox("chat", now, 10, 30_000).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event, "incident.acknowledged");
    let c = &s.outbox_counts().unwrap()[0];
    assert_eq!(
        (c.destination.as_str(), c.pending, c.folded),
        ("chat", 1, 2)
    );
    // Claimed: not claimed again until its lease runs out.
    assert!(s.claim_outbox("chat", now, 10, 30_000).unwrap().is_empty());
    assert_eq!(
        s.claim_outbox("chat", ts(T0 + 4 * MIN), 10, 30_000)
            .unwrap()
            .len(),
        1
    );

    // The hook's rows go one by one, in order: retried, then dead.
    let hook = s.claim_outbox("hook", now, 10, 30_000).unwrap();
    assert_eq!(hook.len(), 3);
    assert_eq!(hook[0].attempts, 1);
    let later = ts(T0 + 10 * MIN);
    s.settle_outbox(
        &[
            (hook[0].id, Outcome::Done),
            (
                hook[1].id,
                Outcome::Retry {
                    at: later,
                    error: "HTTP 503".into(),
                },
            ),
            (
                hook[2].id,
                Outcome::Dead {
                    error: "HTTP 400: bad".into(),
                },
            ),
        ],
        now,
    )
    .unwrap();
    assert!(s
        .claim_outbox("hook", ts(T0 + 9 * MIN), 10, 30_000)
        .unwrap()
        .is_empty());
    let again = s.claim_outbox("hook", later, 10, 30_000).unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 2));
    s.settle_outbox(&[(again[0].id, Outcome::Release { at: later })], later)
        .unwrap();
    assert_eq!(s.outbox_delivery(again[0].id).unwrap().unwrap().attempts, 1);

    // Dead: listed with its error; replayed once, tries reset; a delivery that
    // is not dead is not replayed.
    let dead = s.outbox(Some(State::Dead), None, 100, None).unwrap().items;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 400: bad"));
    let back = s.replay_outbox(dead[0].id, "adm", later).unwrap().unwrap();
    assert_eq!((back.state, back.attempts), (State::Pending, 0));
    assert!(matches!(
        s.replay_outbox(hook[0].id, "adm", later),
        Err(StoreError::NotDead { .. })
    ));
    assert!(s.replay_outbox(9999, "adm", later).unwrap().is_none());
    assert!(s
        .audit_log(0, 100)
        .unwrap()
        .iter()
        .any(|e| e.action == "outbox replay" && e.principal == "adm"));

    // Pruning forgets what is done or folded, keeps what waits.
    let before = s.outbox(None, None, 100, None).unwrap().items.len();
    assert_eq!(
        s.prune_outbox(ts(T0 + 60 * MIN)).unwrap(),
        3,
        "one done, two folded"
    );
    let left = s.outbox(None, None, 100, None).unwrap().items;
    assert_eq!(left.len(), before - 3);
    assert!(left.iter().all(|d| d.state == State::Pending), "{left:?}");
}

#[test]
fn a_change_that_rolls_back_queues_nothing() {
    let mut s = store();
    s.set_router(std::sync::Arc::new(Both(Default::default())));
    s.record_findings(
        &[finding("a", "UnauthorizedAccess", "alice", T0, "LOW")],
        ts(T0),
    )
    .unwrap();
    let inc = s.incidents(&IncidentQuery::default()).unwrap().items[0]
        .id
        .clone();
    let before = s.outbox(None, None, 100, None).unwrap().items.len();
    // OPEN → OPEN is refused: the transaction rolls back, and its delivery
    // with it.
    assert!(s
        .transition(&inc, IncidentStatus::Open, "ana", None, ts(T0 + MIN))
        .is_err());
    assert_eq!(s.outbox(None, None, 100, None).unwrap().items.len(), before);
}
