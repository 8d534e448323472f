//! The outbox's destinations, from a running `vigil serve` to real local HTTP
//! receivers (Slack, PagerDuty, Jira, Splunk HEC, webhooks) and to moto_server
//! (EventBridge, Security Hub): the request shapes each vendor documents, the
//! failures sorted and retried, dead deliveries replayed, Slack's buttons, and
//! `kill -9` with a thousand deliveries pending.

mod receiver;
mod service;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use receiver::{Answer, Receiver};
use serde_json::{json, Value};
use service::{now_rfc3339, root_login, wait_for, Moto, Service, ADMIN, ANALYST, FORWARDER};
use sha2::Sha256;

const PD_KEY: &str = "0123456789abcdef0123456789abcdef";
const HOOK_SECRET: &str = "webhook-secret-0123456789";
const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// A CloudTrail record of `user` stopping a trail (a finding of its own per
/// user, so an incident of its own).
fn stop_logging(id: &str, user: &str) -> Value {
    json!({
        "eventVersion": "1.08", "eventTime": now_rfc3339(), "eventSource": "cloudtrail.amazonaws.com",
        "eventName": "StopLogging", "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.23",
        "userAgent": "aws-cli/2.15.0", "eventType": "AwsApiCall", "recipientAccountId": "111122223333",
        "eventID": id,
        "requestParameters": {"name": "arn:aws:cloudtrail:us-east-1:111122223333:trail/org-trail"},
        "userIdentity": {"type": "IAMUser", "principalId": format!("AIDA{user}"),
                         "arn": format!("arn:aws:iam::111122223333:user/{user}"), "accountId": "111122223333",
                         "userName": user}
    })
}

fn ingest(svc: &Service, records: Vec<Value>) {
    let body = serde_json::to_vec(&json!({ "Records": records })).unwrap();
    let r = svc.call(&FORWARDER, "POST", "/api/v1/ingest", &body);
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// The outbox's counts per destination.
fn counts(svc: &Service) -> BTreeMap<String, Value> {
    let page = svc.get("/api/v1/outbox?limit=1");
    page["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["destination"].as_str().unwrap().to_owned(), c.clone()))
        .collect()
}

/// Waits until no delivery is pending (and at least one is done).
fn drained(svc: &Service, secs: u64) {
    wait_for(secs, "the outbox to drain", || {
        let c = counts(svc);
        !c.is_empty() && c.values().all(|c| c["pending"] == 0)
    });
}

/// The HTTP destinations' tables, pointed at `r`; secrets from the
/// environment (see `envs`).
fn http_outputs(r: &Receiver, rate: u32) -> String {
    format!(
        r#"
[[outputs]]
type = "slack"
token = "${{SLACK_TOKEN}}"
channel = "C0VIGIL"
api_url = "{slack}"
rate = {rate}
backoff = "100ms"
link_base = "https://vigil.example.com"
[[outputs]]
type = "pagerduty"
routing_key = "${{PD_KEY}}"
events_url = "{pd}"
rate = {rate}
backoff = "100ms"
link_base = "https://vigil.example.com"
[[outputs]]
type = "jira"
base_url = "{jira}"
email = "soc@example.com"
api_token = "${{JIRA_TOKEN}}"
project = "SEC"
rate = {rate}
backoff = "100ms"
[[outputs]]
type = "splunk"
url = "{hec}"
token = "${{HEC_TOKEN}}"
ack = true
channel = "3f2a5b1c-0d4e-4f60-8a7b-9c0d1e2f3a4b"
rate = {rate}
backoff = "100ms"
[[outputs]]
type = "webhook"
url = "{hook}"
secret = "${{HOOK_SECRET}}"
rate = {rate}
backoff = "100ms"
"#,
        slack = r.url("/api"),
        pd = r.url("/v2/enqueue"),
        jira = r.url(""),
        hec = r.url(""),
        hook = r.url("/hook"),
    )
}

fn envs() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SLACK_TOKEN", "xoxb-test-bot-token"),
        ("PD_KEY", PD_KEY),
        ("JIRA_TOKEN", "jira-api-token"),
        ("HEC_TOKEN", "hec-token-0001"),
        ("HOOK_SECRET", HOOK_SECRET),
    ]
}

/// A webhook delivery checked as docs/outputs.md tells receivers to: the HMAC
/// of `<timestamp>.<body>` under the shared secret, in constant time.
fn verify_webhook(req: &receiver::Req) -> bool {
    let ts = req.header("x-vigil-timestamp").unwrap_or("");
    let given = req.header("x-vigil-signature").unwrap_or("");
    let Some(hex_sig) = given.strip_prefix("v1=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&req.body);
    mac.verify_slice(&sig).is_ok()
}

#[test]
fn http_destinations_receive_what_their_vendors_document() {
    let r = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    // Slack's simple option too: an incoming webhook (its URL is a secret).
    let more = format!(
        "{}[[outputs]]\ntype = \"slack\"\nname = \"slack-hook\"\nwebhook_url = \"${{SLACK_WEBHOOK}}\"\nrate = 100\n",
        http_outputs(&r, 100)
    );
    let hook_url = r.url("/services/T0/B0/slack-hook-secret");
    let mut env = envs();
    env.push(("SLACK_WEBHOOK", hook_url.as_str()));
    let svc = Service::start_env(dir.path(), &[], &more, &env);

    // Two people stop the trail (two incidents); the first does it again.
    ingest(
        &svc,
        vec![
            stop_logging("stop-1", "mallory"),
            stop_logging("stop-2", "trudy"),
        ],
    );
    drained(&svc, 60);
    ingest(&svc, vec![stop_logging("stop-3", "mallory")]);
    drained(&svc, 60);
    let incidents = svc.get("/api/v1/incidents")["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(incidents.len(), 2, "{incidents:?}");
    let ids: BTreeSet<String> = incidents
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();

    // Slack: one message per incident (chat.postMessage, Bearer token, Block
    // Kit), the repeat edits its incident's message (chat.update).
    let posts = r.requests("/api/chat.postMessage");
    assert_eq!(posts.len(), 2, "one message per incident: {posts:?}");
    for p in &posts {
        assert_eq!(
            p.header("authorization"),
            Some("Bearer xoxb-test-bot-token")
        );
        assert!(p
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
        let b = p.json();
        assert_eq!(b["channel"], "C0VIGIL");
        assert!(b["text"].as_str().unwrap().contains("111122223333"), "{b}");
        let blocks = b["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        assert!(blocks
            .iter()
            .any(|x| x["type"] == "section" && x["fields"].is_array()));
        let ctx = blocks.iter().find(|x| x["type"] == "context").unwrap();
        assert!(
            ctx.to_string()
                .contains("https://vigil.example.com/incidents/"),
            "{ctx}"
        );
        assert_eq!(b["metadata"]["event_type"], "vigil_delivery");
        assert!(b["metadata"]["event_payload"]["delivery_id"]
            .as_str()
            .unwrap()
            .starts_with("vigil-slack-"));
    }
    let updates = r.requests("/api/chat.update");
    assert_eq!(updates.len(), 1, "{updates:?}");
    let u = updates[0].json();
    // The receiver numbers its posts' ts in order of arrival.
    let mallory_post = posts
        .iter()
        .position(|p| p.json()["blocks"].to_string().contains("user/mallory"))
        .unwrap();
    assert_eq!(
        u["ts"],
        format!("1700000000.{:06}", mallory_post + 1),
        "mallory's message is edited: {u}"
    );
    assert!(u["blocks"].to_string().contains("seen 2 time(s)"), "{u}");

    // PagerDuty: Events v2 triggers, deduplicated by incident.
    let pd = r.requests("/v2/enqueue");
    assert!(pd.len() >= 2, "{pd:?}");
    for p in &pd {
        let b = p.json();
        assert_eq!(b["routing_key"], PD_KEY);
        assert_eq!(b["event_action"], "trigger");
        assert!(ids.contains(b["dedup_key"].as_str().unwrap()), "{b}");
        let payload = &b["payload"];
        assert!(["critical", "error", "warning", "info"]
            .contains(&payload["severity"].as_str().unwrap()));
        assert!(!payload["summary"].as_str().unwrap().is_empty());
        assert_eq!(payload["source"], "111122223333");
        assert!(payload["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(b["client"], "Vigil");
        let link = format!(
            "https://vigil.example.com/incidents/{}",
            b["dedup_key"].as_str().unwrap()
        );
        assert_eq!(b["client_url"], link.as_str());
        assert_eq!(b["links"][0]["href"], link.as_str());
    }
    // Jira: one issue per incident, Basic auth, an ADF description; the
    // repeat is a comment on mallory's issue.
    let creates: Vec<_> = r
        .requests("/rest/api/3/issue")
        .into_iter()
        .filter(|q| q.path == "/rest/api/3/issue")
        .collect();
    assert_eq!(creates.len(), 2, "{creates:?}");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("soc@example.com:jira-api-token")
    );
    for c in &creates {
        assert_eq!(c.header("authorization"), Some(basic.as_str()));
        let f = &c.json()["fields"];
        assert_eq!(f["project"]["key"], "SEC");
        assert_eq!(f["issuetype"]["name"], "Task");
        assert!(f["priority"]["name"].is_string());
        let d = &f["description"];
        assert_eq!(d["type"], "doc");
        assert_eq!(d["version"], 1);
        let text = d.to_string();
        assert!(
            text.contains("\"bulletList\"") && text.contains("source_ip"),
            "{text}"
        );
        assert!(f["labels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().starts_with("vigil-")));
    }
    // The receiver numbers issues in order of creation.
    let mallory_issue = creates
        .iter()
        .position(|c| {
            c.json()["fields"]["summary"]
                .as_str()
                .unwrap()
                .contains("user/mallory")
        })
        .unwrap();
    let comments = r.requests(&format!(
        "/rest/api/3/issue/SEC-{}/comment",
        mallory_issue + 1
    ));
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(comments[0].json()["body"]["type"], "doc");

    // Splunk HEC: the token, the channel, events with their metadata, and
    // every batch acknowledged.
    let hec = r.requests("/services/collector/event");
    assert!(!hec.is_empty());
    let mut hec_events = Vec::new();
    for h in &hec {
        assert_eq!(h.header("authorization"), Some("Splunk hec-token-0001"));
        assert_eq!(
            h.header("x-splunk-request-channel"),
            Some("3f2a5b1c-0d4e-4f60-8a7b-9c0d1e2f3a4b")
        );
        for line in String::from_utf8_lossy(&h.body).lines() {
            let e: Value = serde_json::from_str(line).unwrap();
            assert!(e["time"].is_f64() || e["time"].is_u64(), "{e}");
            assert_eq!(e["source"], "vigil");
            assert!(e["sourcetype"].as_str().unwrap().starts_with("vigil:"));
            assert!(e["host"].is_string());
            assert!(e["fields"]["vigil_delivery"].is_string());
            hec_events.push(e);
        }
    }
    assert!(hec_events
        .iter()
        .any(|e| e["event"]["finding"]["detail"]["evidence"]["api_call"] == "StopLogging"));
    assert!(r.requests("/services/collector/ack").len() >= hec.len());

    // Webhooks: signed, with a delivery id.
    let hooks = r.requests("/hook");
    assert!(hooks.len() >= 3, "{hooks:?}");
    for h in &hooks {
        assert!(verify_webhook(h), "bad signature: {:?}", h.headers);
        let b = h.json();
        assert_eq!(b["delivery_id"], h.header("x-vigil-delivery").unwrap());
        assert_eq!(b["event"], h.header("x-vigil-event").unwrap());
    }

    // People act: mallory's incident acknowledged, trudy's resolved.
    let mallory = incidents
        .iter()
        .find(|i| i["subject"].as_str().unwrap().contains("mallory"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let trudy = incidents
        .iter()
        .find(|i| i["subject"].as_str().unwrap().contains("trudy"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ok = svc.call(
        &ADMIN,
        "POST",
        &format!("/api/v1/incidents/{mallory}/acknowledge"),
        br#"{"note":"looking"}"#,
    );
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let ok = svc.call(
        &ADMIN,
        "POST",
        &format!("/api/v1/incidents/{trudy}/resolve"),
        b"",
    );
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    drained(&svc, 60);
    let pd: Vec<Value> = r.requests("/v2/enqueue").iter().map(|q| q.json()).collect();
    assert!(
        pd.iter()
            .any(|b| b["event_action"] == "acknowledge" && b["dedup_key"] == mallory.as_str()),
        "{pd:?}"
    );
    assert!(
        pd.iter()
            .any(|b| b["event_action"] == "resolve" && b["dedup_key"] == trudy.as_str()),
        "{pd:?}"
    );
    // Slack: both messages edited, and a reply in each thread.
    let replies: Vec<Value> = r
        .requests("/api/chat.postMessage")
        .iter()
        .map(|q| q.json())
        .filter(|b| b["thread_ts"].is_string())
        .collect();
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies.iter().any(|b| b["text"]
            .as_str()
            .unwrap()
            .contains("acknowledged by adm: looking")),
        "{replies:?}"
    );
    assert!(r.requests("/api/chat.update").len() >= 3);
    // Jira: a comment on each, and trudy's issue moved by the Done transition.
    let moved: Vec<_> = r
        .requests("/rest/api/3/issue/")
        .into_iter()
        .filter(|q| q.path.ends_with("/transitions") && q.method == "POST")
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0].json(), json!({"transition": {"id": "31"}}));
    let events: Vec<String> = r
        .requests("/hook")
        .iter()
        .map(|q| q.json()["event"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        events.contains(&"incident.acknowledged".to_owned())
            && events.contains(&"incident.resolved".to_owned()),
        "{events:?}"
    );

    // The incoming webhook: a Block Kit message per change, nothing edited.
    let simple: Vec<Value> = r
        .requests("/services/T0/B0/")
        .iter()
        .map(|q| q.json())
        .collect();
    assert!(simple.len() >= 4, "{simple:?}");
    for m in &simple {
        assert!(m["text"].is_string() && m["blocks"].is_array(), "{m}");
    }
    assert!(
        simple
            .iter()
            .any(|m| m["blocks"].to_string().contains("resolved by adm")),
        "{simple:?}"
    );

    // Nothing went dead; the log never shows a secret.
    let dead = svc.get("/api/v1/outbox?state=dead");
    assert_eq!(dead["items"], json!([]), "{dead}");
    let log = svc.log.lock().unwrap().join("\n");
    for (_, secret) in &env {
        assert!(!log.contains(secret), "a secret was logged");
    }
}

#[test]
fn failures_are_retried_waited_for_or_dead_and_dead_ones_replay() {
    let r = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let hook = |name: &str, path: &str| {
        format!(
            "[[outputs]]\ntype = \"webhook\"\nname = \"{name}\"\nurl = \"{}\"\nsecret = \"${{HOOK_SECRET}}\"\nevents = [\"incident.opened\"]\nmax_attempts = 4\nbackoff = \"100ms\"\nmax_backoff = \"400ms\"\n",
            r.url(path)
        )
    };
    // 500 three times then 200; a 429 asking for 2 s; a 400 until fixed; a
    // 503 until fixed.
    r.script("/flaky", (0..3).map(|_| Answer::status(500)));
    r.script(
        "/slow",
        [Answer::status(429).with_header("retry-after", "2")],
    );
    r.always("/broken", Some(Answer::status(400)));
    r.always("/down", Some(Answer::status(503)));
    let more = [
        hook("flaky", "/flaky"),
        hook("slow", "/slow"),
        hook("broken", "/broken"),
        hook("down", "/down"),
    ]
    .concat();
    let svc = Service::start_env(dir.path(), &[], &more, &[("HOOK_SECRET", HOOK_SECRET)]);
    ingest(&svc, vec![stop_logging("f-1", "mallory")]);
    wait_for(60, "every delivery to settle", || {
        let c = counts(&svc);
        c.len() == 4 && c.values().all(|c| c["pending"] == 0)
    });

    // 500 × 3 then 200: four tries, delivered once.
    let flaky = r.requests("/flaky");
    assert_eq!(flaky.len(), 4, "{flaky:?}");
    assert!(flaky
        .iter()
        .all(|q| q.header("x-vigil-delivery") == flaky[0].header("x-vigil-delivery")));
    let c = counts(&svc);
    assert_eq!(
        (c["flaky"]["done"].as_u64(), c["flaky"]["dead"].as_u64()),
        (Some(1), Some(0))
    );
    // 429 with Retry-After: 2: the second try came no sooner.
    let slow = r.requests("/slow");
    assert_eq!(slow.len(), 2, "{slow:?}");
    let waited = slow[1].at - slow[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "Retry-After not honoured: {waited:?}"
    );
    // 400: refused for good at once, dead after one try.
    assert_eq!(r.requests("/broken").len(), 1);
    assert_eq!(c["broken"]["dead"], 1);
    // 503 every time: dead after max_attempts.
    assert_eq!(r.requests("/down").len(), 4);
    assert_eq!(c["down"]["dead"], 1);

    // The dead are listed, by the API and the CLI.
    let dead = svc.get("/api/v1/outbox?state=dead");
    let items = dead["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{dead}");
    let id_of = |dest: &str| {
        items.iter().find(|d| d["destination"] == dest).unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (broken, down) = (id_of("broken"), id_of("down"));
    assert!(items
        .iter()
        .any(|d| d["last_error"].as_str().unwrap().contains("HTTP 400")));
    let data = dir.path().join("data");
    let listed = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["outbox", "list", "--state", "dead", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 2);

    // Replay: refused to an analyst, and for a delivery that is not dead.
    let r1 = svc.call(
        &ANALYST,
        "POST",
        &format!("/api/v1/outbox/{broken}/replay"),
        b"",
    );
    assert_eq!(r1.status, 403);
    let flaky_id = svc.get("/api/v1/outbox?destination=flaky")["items"][0]["id"]
        .as_i64()
        .unwrap();
    let r2 = svc.call(
        &ADMIN,
        "POST",
        &format!("/api/v1/outbox/{flaky_id}/replay"),
        b"",
    );
    assert_eq!(r2.status, 409, "{:?}", r2.body);
    // Fixed, then replayed: by the API and by the CLI; each arrives once more.
    r.always("/broken", None);
    r.always("/down", None);
    let r3 = svc.call(
        &ADMIN,
        "POST",
        &format!("/api/v1/outbox/{broken}/replay"),
        b"",
    );
    assert_eq!(r3.status, 200, "{:?}", r3.body);
    let replayed = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["outbox", "replay", &down.to_string(), "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    wait_for(30, "the replays", || {
        let c = counts(&svc);
        c["broken"]["done"] == 1 && c["down"]["done"] == 1
    });
    assert_eq!(r.requests("/broken").len(), 2);
    assert_eq!(r.requests("/down").len(), 5);
    assert_eq!(svc.get("/api/v1/outbox?state=dead")["items"], json!([]));
    let audit = svc.call(&ADMIN, "GET", "/api/v1/audit?limit=1000", b"");
    let text = audit.body.to_string();
    assert!(text.contains("outbox replay"), "{text}");
}

#[test]
fn kill_9_with_a_thousand_deliveries_pending_delivers_each_once_by_its_key() {
    let r = Receiver::start();
    // Slow the webhook so that the kill finds deliveries pending everywhere.
    let dir = tempfile::tempdir().unwrap();
    let more = http_outputs(&r, 400);
    let svc = Service::start_env(dir.path(), &[], &more, &envs());
    let records: Vec<Value> = (0..1000)
        .map(|i| stop_logging(&format!("k-{i}"), &format!("user{i:04}")))
        .collect();
    ingest(&svc, records);
    wait_for(60, "some deliveries", || r.requests("/hook").len() >= 50);
    let mut svc = svc;
    svc.child.kill().unwrap(); // SIGKILL
    svc.child.wait().unwrap();
    let before = r.requests("/hook").len();
    assert!(
        before < 1000,
        "everything went before the kill ({before}); the test proves nothing"
    );
    drop(svc);
    let svc = Service::start_env(dir.path(), &[], &more, &envs());
    drained(&svc, 240);

    // Every destination: each delivery done, none dead, and what arrived is
    // exactly the done deliveries' keys (a repeat carries the same key).
    let c = counts(&svc);
    for (dest, n) in &c {
        assert_eq!(n["dead"], 0, "{dest}: {n}");
        assert_eq!(n["pending"], 0, "{dest}: {n}");
    }
    let expected = |dest: &str| -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        let mut pq = format!("/api/v1/outbox?destination={dest}&state=done&limit=1000");
        loop {
            let page = svc.get(&pq);
            for d in page["items"].as_array().unwrap() {
                keys.insert(format!("vigil-{dest}-{}", d["id"]));
            }
            match page["next_cursor"].as_str() {
                Some(cur) => {
                    pq = format!(
                        "/api/v1/outbox?destination={dest}&state=done&limit=1000&cursor={cur}"
                    )
                }
                None => return keys,
            }
        }
    };
    let incidents: usize = 1000;
    let hooks: Vec<String> = r
        .requests("/hook")
        .iter()
        .map(|q| q.header("x-vigil-delivery").unwrap().to_owned())
        .collect();
    let got: BTreeSet<String> = hooks.iter().cloned().collect();
    assert_eq!(got, expected("webhook"));
    assert!(got.len() >= incidents);
    let slack: BTreeSet<String> = r
        .requests("/api/chat.")
        .iter()
        .map(|q| {
            q.json()["metadata"]["event_payload"]["delivery_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(slack, expected("slack"));
    // One Slack message and one Jira issue per incident (a retry after the
    // crash edited or found what the first try made).
    let posts = r
        .requests("/api/chat.postMessage")
        .iter()
        .filter(|q| !q.json()["thread_ts"].is_string())
        .count();
    let issues = r
        .requests("/rest/api/3/issue")
        .iter()
        .filter(|q| q.path == "/rest/api/3/issue")
        .count();
    eprintln!(
        "slack posts {posts}, jira issues {issues}, webhook arrivals {} for {} keys",
        hooks.len(),
        got.len()
    );
    assert!(
        posts <= incidents + 2,
        "{posts} Slack messages for {incidents} incidents"
    );
    assert!(
        issues <= incidents,
        "{issues} Jira issues for {incidents} incidents"
    );
    let pd: BTreeSet<String> = r
        .requests("/v2/enqueue")
        .iter()
        .map(|q| {
            q.json()["payload"]["custom_details"]["delivery_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(pd, expected("pagerduty"));
    let hec: BTreeSet<String> = r
        .requests("/services/collector/event")
        .iter()
        .flat_map(|q| {
            String::from_utf8_lossy(&q.body)
                .lines()
                .map(|l| {
                    serde_json::from_str::<Value>(l).unwrap()["fields"]["vigil_delivery"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(hec, expected("splunk"));
    // Every incident reached every destination.
    let pd_incidents: BTreeSet<String> = r
        .requests("/v2/enqueue")
        .iter()
        .map(|q| q.json()["dedup_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pd_incidents.len(), incidents);
}

/// A Slack interaction payload for a click on `action` of run `run` by `user`,
/// with its headers signed as Slack signs them.
fn slack_click(
    user: &str,
    action: &str,
    run: &str,
    action_ts: &str,
    at: i64,
    secret: &str,
) -> (Vec<u8>, Vec<(String, String)>) {
    let payload = json!({
        "type": "block_actions", "user": {"id": user, "username": user},
        "actions": [{"action_id": action, "value": run, "type": "button", "action_ts": action_ts}],
        "response_url": "https://hooks.slack.com/actions/T0/1/x", "trigger_id": "1.2.3",
    });
    let body = format!(
        "payload={}",
        percent_encoding::utf8_percent_encode(
            &payload.to_string(),
            percent_encoding::NON_ALPHANUMERIC
        )
    )
    .into_bytes();
    let ts = at.to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(&body);
    let sig = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    (
        body,
        vec![
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("x-slack-request-timestamp".into(), ts),
            ("x-slack-signature".into(), sig),
        ],
    )
}

/// Unix seconds now (Slack's request timestamp).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The id of a run of `playbook` waiting for approval, once there is one.
fn waiting_run(svc: &Service, playbook: &str) -> String {
    let mut run_id = String::new();
    wait_for(60, "the waiting run", || {
        let runs = svc.get("/api/v1/remediations?status=AWAITING_APPROVAL");
        let found = runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["playbook"] == playbook)
            .map(|r| r["id"].as_str().unwrap().to_owned());
        run_id = found.unwrap_or_default();
        !run_id.is_empty()
    });
    run_id
}

fn post_slack(svc: &Service, body: &[u8], headers: &[(String, String)]) -> u16 {
    let h: Vec<(String, String)> = headers.to_vec();
    service::support::raw_call(svc.addr, "POST", "/slack/interactions", &h, body).status
}

fn audit_outcomes(svc: &Service) -> Vec<String> {
    let a = svc.call(&ADMIN, "GET", "/api/v1/audit?limit=1000", b"");
    a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "slack interaction")
        .map(|e| {
            format!(
                "{} {}",
                e["principal"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn slack_buttons_approve_a_gated_step_and_nothing_else_gets_through() {
    let moto = Moto::start();
    let r = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let more = format!(
        r#"[response]
enabled = true
[slack]
signing_secret = "${{SLACK_SIGNING_SECRET}}"
approval_ttl = "1h"
approvers = {{ U0ADM = "adm", U0ANA = "ana" }}
[[outputs]]
type = "slack"
token = "${{SLACK_TOKEN}}"
channel = "C0VIGIL"
api_url = "{}"
rate = 100
"#,
        r.url("/api")
    );
    let mut env: Vec<(&str, &str)> = moto.env().to_vec();
    env.push(("SLACK_TOKEN", "xoxb-test-bot-token"));
    env.push(("SLACK_SIGNING_SECRET", SIGNING_SECRET));
    let svc = Service::start_env(dir.path(), &[], &more, &env);

    // A root login: PB-006 starts and waits for approval; Slack gets the buttons.
    ingest(&svc, vec![root_login("slack-1")]);
    let mut run_id = String::new();
    wait_for(60, "the approval message", || {
        let posts = r.requests("/api/chat.postMessage");
        let found = posts
            .iter()
            .map(|q| q.json())
            .find(|b| b["blocks"].to_string().contains("vigil_approve"));
        if let Some(b) = found {
            let actions = b["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["type"] == "actions")
                .unwrap()
                .clone();
            assert_eq!(actions["elements"][0]["action_id"], "vigil_approve");
            assert_eq!(actions["elements"][1]["action_id"], "vigil_reject");
            run_id = actions["elements"][0]["value"].as_str().unwrap().to_owned();
            true
        } else {
            false
        }
    });
    let run = svc.get(&format!("/api/v1/remediations/{run_id}"));
    assert_eq!(run["status"], "AWAITING_APPROVAL", "{run}");
    let now = unix_now();

    // A bad signature, a stale timestamp: 401, nothing done, audited.
    let (body, mut h) = slack_click(
        "U0ADM",
        "vigil_approve",
        &run_id,
        "1.1",
        now,
        SIGNING_SECRET,
    );
    h[2].1 = format!("v0={}", "0".repeat(64));
    assert_eq!(post_slack(&svc, &body, &h), 401);
    let (body, h) = slack_click(
        "U0ADM",
        "vigil_approve",
        &run_id,
        "1.2",
        now - 400,
        SIGNING_SECRET,
    );
    assert_eq!(post_slack(&svc, &body, &h), 401);
    // A Slack user who is no approver: answered, refused.
    let (body, h) = slack_click(
        "U0EVE",
        "vigil_approve",
        &run_id,
        "1.3",
        now,
        SIGNING_SECRET,
    );
    let asked = Instant::now();
    assert_eq!(post_slack(&svc, &body, &h), 200);
    assert!(asked.elapsed() < Duration::from_secs(3));
    // An approver whose principal may not act (ana is an analyst): refused.
    let (body, h) = slack_click(
        "U0ANA",
        "vigil_approve",
        &run_id,
        "1.4",
        now,
        SIGNING_SECRET,
    );
    assert_eq!(post_slack(&svc, &body, &h), 200);
    wait_for(30, "the refusals in the audit log", || {
        audit_outcomes(&svc).len() >= 4
    });
    assert_eq!(
        svc.get(&format!("/api/v1/remediations/{run_id}"))["status"],
        "AWAITING_APPROVAL"
    );

    // The approver's click runs the step; Slack's retry of it is ignored.
    let (body, h) = slack_click(
        "U0ADM",
        "vigil_approve",
        &run_id,
        "1.5",
        now,
        SIGNING_SECRET,
    );
    assert_eq!(post_slack(&svc, &body, &h), 200);
    let mut retry = h.clone();
    retry.push(("x-slack-retry-num".into(), "1".into()));
    retry.push(("x-slack-retry-reason".into(), "http_timeout".into()));
    assert_eq!(post_slack(&svc, &body, &retry), 200);
    wait_for(60, "the approved run to move on", || {
        svc.get(&format!("/api/v1/remediations/{run_id}"))["status"] != "AWAITING_APPROVAL"
    });
    let run = svc.get(&format!("/api/v1/remediations/{run_id}"));
    assert!(
        run["steps"].to_string().contains("\"approved_by\":\"adm\""),
        "{run}"
    );
    // The message is edited to say who decided.
    wait_for(30, "the message edited", || {
        r.requests("/api/chat.update")
            .iter()
            .any(|q| q.json()["blocks"].to_string().contains("by adm"))
    });
    let outcomes = audit_outcomes(&svc);
    let has = |who: &str, what: &str| {
        outcomes
            .iter()
            .any(|o| o.starts_with(who) && o.contains(what))
    };
    assert!(
        has("slack:unverified", "refused: a bad signature"),
        "{outcomes:?}"
    );
    assert!(
        has("slack:unverified", "refused: a stale timestamp"),
        "{outcomes:?}"
    );
    assert!(has("slack:U0EVE", "is not an approver"), "{outcomes:?}");
    assert!(has("slack:U0ANA (ana)", "may act"), "{outcomes:?}");
    assert!(has("slack:U0ADM (adm)", "approved"), "{outcomes:?}");
    assert!(
        has("slack:U0ADM", "a Slack retry of a click already acted on"),
        "{outcomes:?}"
    );
    drop(svc);

    // Expired: the same kind of run, approved after its time is up.
    let dir = tempfile::tempdir().unwrap();
    let more = more.replace("approval_ttl = \"1h\"", "approval_ttl = \"1s\"");
    let svc = Service::start_env(dir.path(), &[], &more, &env);
    ingest(&svc, vec![root_login("slack-2")]);
    let run_id = waiting_run(&svc, "PB-006");
    std::thread::sleep(Duration::from_millis(1500));
    let now = unix_now();
    let (body, h) = slack_click(
        "U0ADM",
        "vigil_approve",
        &run_id,
        "2.1",
        now,
        SIGNING_SECRET,
    );
    assert_eq!(post_slack(&svc, &body, &h), 200);
    wait_for(30, "the expiry in the audit log", || {
        audit_outcomes(&svc).iter().any(|o| o.contains("expired"))
    });
    assert_eq!(
        svc.get(&format!("/api/v1/remediations/{run_id}"))["status"],
        "AWAITING_APPROVAL"
    );
}

#[test]
fn two_approvers_are_needed_for_a_hard_step() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let more = r#"[response]
enabled = true
[slack]
signing_secret = "${SLACK_SIGNING_SECRET}"
approvers = { U0ADM = "adm", U0ADM2 = "adm2" }
two_approvers = ["PB-006"]
[[api.keys]]
access_key_id = "AKIATESTADMIN000002"
secret_access_key = "test-admin-secret-0000000000000000000002"
principal = "adm2"
role = "admin"
"#;
    let mut env: Vec<(&str, &str)> = moto.env().to_vec();
    env.push(("SLACK_SIGNING_SECRET", SIGNING_SECRET));
    let svc = Service::start_env(dir.path(), &[], more, &env);
    ingest(&svc, vec![root_login("two-1")]);
    let run_id = waiting_run(&svc, "PB-006");
    let now = unix_now();
    // The same person twice counts once.
    for ts in ["3.1", "3.2"] {
        let (body, h) = slack_click("U0ADM", "vigil_approve", &run_id, ts, now, SIGNING_SECRET);
        assert_eq!(post_slack(&svc, &body, &h), 200);
    }
    wait_for(30, "the first approvals", || {
        audit_outcomes(&svc)
            .iter()
            .filter(|o| o.contains("1 of 2"))
            .count()
            >= 2
    });
    assert_eq!(
        svc.get(&format!("/api/v1/remediations/{run_id}"))["status"],
        "AWAITING_APPROVAL"
    );
    let (body, h) = slack_click(
        "U0ADM2",
        "vigil_approve",
        &run_id,
        "3.3",
        now,
        SIGNING_SECRET,
    );
    assert_eq!(post_slack(&svc, &body, &h), 200);
    wait_for(60, "the run to move on", || {
        svc.get(&format!("/api/v1/remediations/{run_id}"))["status"] != "AWAITING_APPROVAL"
    });
    let outcomes = audit_outcomes(&svc);
    assert!(
        outcomes
            .iter()
            .any(|o| o.contains("approved by adm and adm2 (two approvers)")),
        "{outcomes:?}"
    );
}

#[test]
fn findings_reach_eventbridge_in_the_seed_schema_and_security_hub_in_asff() {
    let moto = Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conf = moto.sdk_config(&rt);
    let events = aws_sdk_eventbridge::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let hub = aws_sdk_securityhub::Client::new(&conf);
    // A bus, a rule on it for the seed's events, and a queue as its target.
    let queue = rt.block_on(async {
        events
            .create_event_bus()
            .name("security")
            .send()
            .await
            .unwrap();
        let q = sqs
            .create_queue()
            .queue_name("findings")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&q)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        events
            .put_rule()
            .name("security-findings")
            .event_bus_name("security")
            .event_pattern(
                r#"{"source": ["com.security.platform"], "detail-type": ["Security Finding"]}"#,
            )
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule("security-findings")
            .event_bus_name("security")
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("q")
                    .arn(arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let _ = hub.enable_security_hub().send().await;
        q
    });
    let dir = tempfile::tempdir().unwrap();
    let more = r#"[aws]
home_region = "us-east-1"
[[outputs]]
type = "eventbridge"
bus = "security"
[[outputs]]
type = "securityhub"
account = "123456789012"
"#;
    let svc = Service::start_env(dir.path(), &[], more, &moto.env());
    ingest(&svc, vec![stop_logging("eb-1", "mallory")]);
    drained(&svc, 60);

    // The event, field by field as the seed's schema has it.
    let mut got: Vec<Value> = Vec::new();
    wait_for(30, "the event in the queue", || {
        let msgs = rt
            .block_on(
                sqs.receive_message()
                    .queue_url(&queue)
                    .max_number_of_messages(10)
                    .send(),
            )
            .unwrap();
        got.extend(
            msgs.messages()
                .iter()
                .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap()),
        );
        !got.is_empty()
    });
    let e = &got[0];
    let finding = &svc.get("/api/v1/findings")["items"][0];
    assert_eq!(e["detail-type"], "Security Finding");
    assert_eq!(e["source"], "com.security.platform");
    assert!(e["id"].is_string() && e["version"].is_string(), "{e}");
    // EventBridge sets `account` and `region` (moto 5.2.5 leaves `account`
    // out of what it delivers).
    assert!(
        e.get("account").is_none_or(Value::is_string) && e["region"] == "us-east-1",
        "{e}"
    );
    // EventBridge keeps whole seconds.
    assert_eq!(
        e["time"].as_str().unwrap()[..19],
        finding["time"].as_str().unwrap()[..19]
    );
    assert_eq!(e["resources"], finding["resources"]);
    let d = &e["detail"];
    for k in [
        "finding_id",
        "severity",
        "confidence",
        "title",
        "description",
        "category",
        "detection_source",
        "resource_type",
        "resource_arn",
        "first_seen",
        "last_seen",
        "remediation",
        "evidence",
    ] {
        assert!(d.get(k).is_some(), "detail.{k} missing: {d}");
        assert_eq!(d[k], finding["detail"][k], "detail.{k}");
    }
    for k in ["playbook", "automated", "status"] {
        assert!(d["remediation"].get(k).is_some(), "remediation.{k}");
    }
    for k in ["source_ip", "user_agent", "api_call", "aws_region"] {
        assert!(d["evidence"].get(k).is_some(), "evidence.{k}");
    }
    assert_eq!(d["evidence"]["api_call"], "StopLogging");
    assert!(d["event_id"]
        .as_str()
        .unwrap()
        .starts_with("vigil-eventbridge-"));

    // Security Hub: imported under the finding's id, ACTIVE and NEW.
    let get = || {
        rt.block_on(hub.get_findings().send())
            .unwrap()
            .findings()
            .to_vec()
    };
    let found = get();
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f.id(), finding["id"].as_str());
    assert_eq!(f.schema_version(), Some("2018-10-08"));
    assert_eq!(f.generator_id(), finding["detail"]["rule"]["id"].as_str());
    assert_eq!(f.record_state().map(|s| s.as_str()), Some("ACTIVE"));
    assert_eq!(f.product_fields().unwrap()["vigil/count"], "1");
    // Seen again: updated in place.
    ingest(&svc, vec![stop_logging("eb-2", "mallory")]);
    drained(&svc, 60);
    let found = get();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].product_fields().unwrap()["vigil/count"], "2");
    // Resolved: archived, workflow RESOLVED.
    let inc = svc.get("/api/v1/incidents")["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ok = svc.call(
        &ADMIN,
        "POST",
        &format!("/api/v1/incidents/{inc}/resolve"),
        b"",
    );
    assert_eq!(ok.status, 200);
    drained(&svc, 60);
    let found = get();
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].record_state().map(|s| s.as_str()),
        Some("ARCHIVED")
    );
    assert_eq!(
        found[0]
            .workflow()
            .and_then(|w| w.status())
            .map(|s| s.as_str()),
        Some("RESOLVED")
    );
}

#[test]
fn a_secret_written_in_a_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = service::write_config(dir.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[[outputs]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"written-in-the-file-0001\"\n");
    std::fs::write(&config, &text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = |cfg: &std::path::Path| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(cfg)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > until {
                child.kill().ok();
                panic!("vigil serve started with a readable secret in its configuration");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    };
    let out = run(&config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("outputs[0].secret") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(
        !err.contains("written-in-the-file-0001"),
        "the secret was printed: {err}"
    );
}
