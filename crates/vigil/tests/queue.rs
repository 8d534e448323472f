//! `vigil serve` reading an organization's telemetry through SQS, against
//! moto_server: S3 event notifications sent to a queue directly, through SNS,
//! and through EventBridge; EventBridge events that are telemetry themselves;
//! a corrupt object that ends in the dead-letter queue; and several processes
//! sharing one queue and one store, one of them killed halfway.

mod service;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};
use service::*;

const HOME: &str = "123456789012";
const REGION: &str = "us-east-1";

/// SDK clients pointed at moto, with a runtime to call them from a test.
struct Cloud {
    rt: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
    events: aws_sdk_eventbridge::Client,
}

impl Cloud {
    fn new(moto: &Moto) -> Cloud {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let base = moto.sdk_config(&rt);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&base)
                .force_path_style(true)
                .build(),
        );
        Cloud {
            s3,
            sqs: aws_sdk_sqs::Client::new(&base),
            sns: aws_sdk_sns::Client::new(&base),
            events: aws_sdk_eventbridge::Client::new(&base),
            rt,
        }
    }

    /// A queue with a dead-letter queue taking what was received `max` times;
    /// the queue's URL and ARN, and the dead-letter queue's URL.
    fn queue_with_dlq(&self, name: &str, max: u32) -> (String, String, String) {
        self.rt.block_on(async {
            let dlq = self
                .sqs
                .create_queue()
                .queue_name(format!("{name}-dlq"))
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap();
            let redrive = json!({
                "deadLetterTargetArn": format!("arn:aws:sqs:{REGION}:{HOME}:{name}-dlq"),
                "maxReceiveCount": max.to_string(),
            });
            let url = self
                .sqs
                .create_queue()
                .queue_name(name)
                .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap();
            (url, format!("arn:aws:sqs:{REGION}:{HOME}:{name}"), dlq)
        })
    }

    fn bucket(&self, name: &str) {
        self.rt
            .block_on(self.s3.create_bucket().bucket(name).send())
            .unwrap();
    }

    /// S3 notifies `queue_arn` directly of every object created in `bucket`.
    fn notify_queue(&self, bucket: &str, queue_arn: &str) {
        use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
        let config = NotificationConfiguration::builder()
            .queue_configurations(
                QueueConfiguration::builder()
                    .queue_arn(queue_arn)
                    .events(Event::from("s3:ObjectCreated:*"))
                    .build()
                    .unwrap(),
            )
            .build();
        self.rt
            .block_on(
                self.s3
                    .put_bucket_notification_configuration()
                    .bucket(bucket)
                    .notification_configuration(config)
                    .send(),
            )
            .unwrap();
    }

    fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.rt
            .block_on(
                self.s3
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(body.into())
                    .send(),
            )
            .unwrap();
    }

    /// Messages waiting and in flight.
    fn depth(&self, url: &str) -> (u64, u64) {
        let out = self
            .rt
            .block_on(
                self.sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(QueueAttributeName::All)
                    .send(),
            )
            .unwrap();
        let a = out.attributes.unwrap_or_default();
        let n = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        (
            n(QueueAttributeName::ApproximateNumberOfMessages),
            n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// The bodies of the messages a queue holds (received, and left there).
    fn bodies(&self, url: &str) -> Vec<String> {
        let out = self
            .rt
            .block_on(
                self.sqs
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(10)
                    .visibility_timeout(0)
                    .send(),
            )
            .unwrap();
        out.messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.body)
            .collect()
    }
}

/// A CloudTrail record (`account` and region left out when `bare`: the
/// object's key gives them).
fn record(id: &str, account: &str, at: &str, name: &str, bare: bool) -> Value {
    let mut r = match name {
        "ConsoleLogin" => json!({
            "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
            "eventType": "AwsConsoleSignIn",
            "userIdentity": {"type": "Root", "principalId": account,
                             "arn": format!("arn:aws:iam::{account}:root"), "accountId": account},
            "responseElements": {"ConsoleLogin": "Success"},
            "additionalEventData": {"MFAUsed": "No"},
        }),
        trail => json!({
            "eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging",
            "eventType": "AwsApiCall",
            "userIdentity": {"type": "IAMUser", "principalId": "AIDAOPS",
                             "arn": format!("arn:aws:iam::{account}:user/ops"), "accountId": account},
            "requestParameters": {"name": format!("arn:aws:cloudtrail:{REGION}:{account}:trail/{trail}")},
        }),
    };
    let o = r.as_object_mut().unwrap();
    o.insert("eventVersion".into(), json!("1.08"));
    o.insert("eventTime".into(), json!(at));
    o.insert("eventID".into(), json!(id));
    o.insert("sourceIPAddress".into(), json!("198.51.100.23"));
    o.insert("userAgent".into(), json!("Mozilla/5.0"));
    if !bare {
        o.insert("recipientAccountId".into(), json!(account));
        o.insert("awsRegion".into(), json!(REGION));
    }
    r
}

fn gzip(v: &Value) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(v.to_string().as_bytes()).unwrap();
    z.finish().unwrap()
}

/// Object `i` of an organization trail: four root sign-ins in its account
/// (one finding per account and rule, fed by every object of the account)
/// and one trail stopped (a finding of its own). Keys have spaces and `+`.
fn trail_object(i: usize, accounts: usize) -> (String, Vec<u8>) {
    let account = format!("1111222233{:02}", i % accounts);
    let minute = i % 60;
    let mut records = Vec::new();
    for n in 0..4 {
        let at = format!("2026-12-01T10:{minute:02}:{:02}Z", n * 10);
        records.push(record(
            &format!("root-{i}-{n}"),
            &account,
            &at,
            "ConsoleLogin",
            n % 2 == 0,
        ));
    }
    let at = format!("2026-12-01T10:{minute:02}:45Z");
    records.push(record(
        &format!("stop-{i}"),
        &account,
        &at,
        &format!("trail-{i}"),
        i % 2 == 0,
    ));
    let key = format!(
        "AWSLogs/o-example/{account}/CloudTrail/{REGION}/2026/12/01/{account}_CloudTrail_{REGION}_20261201T10{minute:02}Z_part {i}+x.json.gz"
    );
    (key, gzip(&json!({ "Records": records })))
}

/// The service's part of the configuration: the queue as a source.
fn sqs_source(url: &str) -> String {
    format!(
        r#"
[[sources]]
type = "sqs"
name = "org-trail"
queue_url = "{url}"
wait = "1s"
visibility_timeout = "5s"
retry_delay = "1s"
"#
    )
}

/// Every finding: (rule, principal, resource) → (id, count).
type Found = BTreeMap<(String, String, String), (String, u64)>;

fn found(svc: &Service) -> Found {
    let mut out = Found::new();
    let mut pq = "/api/v1/findings?limit=1000".to_owned();
    for _ in 0..100 {
        let page = svc.get(&pq);
        for f in page["items"].as_array().unwrap() {
            let d = &f["detail"];
            let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
            let key = (
                s(&d["rule"]["id"]),
                s(&d["principal"]),
                s(&d["resource_arn"]),
            );
            let was = out.insert(key.clone(), (s(&f["id"]), d["count"].as_u64().unwrap()));
            assert!(was.is_none(), "two findings for {key:?}");
        }
        match page["next_cursor"].as_str() {
            Some(c) => pq = format!("/api/v1/findings?limit=1000&cursor={c}"),
            None => return out,
        }
    }
    panic!("the findings listing does not end");
}

/// How many records the trail findings count: stopped trails, and root
/// sign-ins (as each rule that fires on them counts them: the same for all).
fn counted(f: &Found) -> (u64, u64) {
    let mut stops = 0;
    let mut roots: BTreeMap<&str, u64> = BTreeMap::new();
    for ((rule, principal, resource), (_, count)) in f {
        if resource.contains(":trail/trail-") {
            stops += count;
        } else if principal.ends_with(":root") {
            *roots.entry(rule).or_default() += count;
        }
    }
    let mut per_rule = roots.values();
    let first = per_rule.next().copied().unwrap_or(0);
    if per_rule.any(|&n| n != first) {
        return (stops, 0);
    }
    (stops, first)
}

fn root_rules(f: &Found) -> usize {
    let rules: std::collections::BTreeSet<_> = f
        .keys()
        .filter(|(_, p, _)| p.ends_with(":root"))
        .map(|(r, _, _)| r.clone())
        .collect();
    rules.len()
}

fn wait_counted(svc: &Service, want: (u64, u64), secs: u64) -> Found {
    let mut last = Found::new();
    wait_for(secs, "every record to be counted", || {
        last = found(svc);
        let (stops, roots) = counted(&last);
        stops == want.0 && roots == want.1
    });
    last
}

#[test]
fn s3_notifications_on_a_queue_become_findings_and_bad_objects_go_to_the_dlq() {
    let moto = Moto::start();
    let cloud = Cloud::new(&moto);
    let (url, arn, dlq) = cloud.queue_with_dlq("org-trail", 2);
    cloud.bucket("org-logs");
    cloud.notify_queue("org-logs", &arn);

    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start_env(dir.path(), &[], &sqs_source(&url), &moto.env());

    let objects = 6;
    for i in 0..objects {
        let (key, body) = trail_object(i, 3);
        cloud.put("org-logs", &key, body);
        if i == 2 {
            // Between good ones: gzip's magic, then nothing that inflates.
            let bad = "AWSLogs/o-example/111122223300/CloudTrail/us-east-1/2026/12/01/corrupt object.json.gz";
            cloud.put(
                "org-logs",
                bad,
                b"\x1f\x8b\x08\x00garbage that is not deflate".to_vec(),
            );
        }
    }
    let f = wait_counted(&svc, (objects as u64, 4 * objects as u64), 60);
    // The root findings' accounts came from the keys where records lack them.
    for ((_, principal, _), _) in f.iter().filter(|(k, _)| k.1.ends_with(":root")) {
        assert!(
            principal.starts_with("arn:aws:iam::1111222233"),
            "{principal}"
        );
    }
    let (stops, roots) = counted(&f);
    assert_eq!((stops, roots), (6, 24), "each record once: {f:?}");

    // The good messages were deleted, the test event skipped, and the corrupt
    // object, after its two receives, is in the dead-letter queue.
    let mut in_dlq = Vec::new();
    let mut depth = (0, 0);
    for _ in 0..300 {
        in_dlq = cloud.bodies(&dlq);
        depth = cloud.depth(&url);
        if depth == (0, 0) && !in_dlq.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        depth == (0, 0) && !in_dlq.is_empty(),
        "the queue drains into its dead-letter queue: depth {depth:?}, dead letters {in_dlq:?}, log {:#?}",
        svc.log.lock().unwrap()
    );
    assert_eq!(in_dlq.len(), 1, "{in_dlq:?}");
    assert!(
        in_dlq[0].contains("corrupt+object.json.gz"),
        "{}",
        in_dlq[0]
    );

    let status = svc.get("/api/v1/sources");
    let s = &status["sources"][0];
    assert_eq!(s["name"], "org-trail", "{status}");
    assert!(
        s["messages_skipped"].as_u64().unwrap() >= 1,
        "the test event: {s}"
    );
    assert_eq!(
        s["messages_deleted"].as_u64().unwrap(),
        objects as u64 + 1,
        "{s}"
    );
    assert!(s["messages_failed"].as_u64().unwrap() >= 2, "{s}");
    assert!(
        s["last_error"]
            .as_str()
            .unwrap()
            .contains("corrupt object.json.gz"),
        "{s}"
    );
    let log = svc.log.lock().unwrap().join("\n");
    assert!(
        log.contains("corrupt object.json.gz") && log.contains("dead-letter"),
        "{log}"
    );
}

#[test]
fn notifications_through_sns_and_eventbridge_and_telemetry_events_are_read() {
    let moto = Moto::start();
    let cloud = Cloud::new(&moto);
    let (url, arn, _dlq) = cloud.queue_with_dlq("telemetry", 3);
    cloud.bucket("via-sns");
    cloud.bucket("via-events");
    cloud.rt.block_on(async {
        // S3 → SNS → SQS, in SNS's envelope (not raw).
        let topic = cloud
            .sns
            .create_topic()
            .name("trail-objects")
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap();
        cloud
            .sns
            .subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(&arn)
            .send()
            .await
            .unwrap();
        use aws_sdk_s3::types::{
            Event, EventBridgeConfiguration, NotificationConfiguration, TopicConfiguration,
        };
        let config = NotificationConfiguration::builder()
            .topic_configurations(
                TopicConfiguration::builder()
                    .topic_arn(&topic)
                    .events(Event::from("s3:ObjectCreated:*"))
                    .build()
                    .unwrap(),
            )
            .build();
        cloud
            .s3
            .put_bucket_notification_configuration()
            .bucket("via-sns")
            .notification_configuration(config)
            .send()
            .await
            .unwrap();
        // S3 → EventBridge → a rule → SQS; CloudTrail's events the same way.
        cloud
            .s3
            .put_bucket_notification_configuration()
            .bucket("via-events")
            .notification_configuration(
                NotificationConfiguration::builder()
                    .event_bridge_configuration(EventBridgeConfiguration::builder().build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let pattern = json!({"detail-type": ["Object Created", "AWS API Call via CloudTrail"]});
        cloud
            .events
            .put_rule()
            .name("to-vigil")
            .event_pattern(pattern.to_string())
            .send()
            .await
            .unwrap();
        cloud
            .events
            .put_targets()
            .rule("to-vigil")
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("vigil")
                    .arn(&arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    });

    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start_env(dir.path(), &[], &sqs_source(&url), &moto.env());
    let (key, body) = trail_object(0, 1);
    cloud.put("via-sns", &key, body);
    let (key, body) = trail_object(1, 1);
    cloud.put("via-events", &key, body);
    // A trail stopped, as EventBridge delivers the API call.
    let call = record(
        "stop-eb",
        "111122223300",
        "2026-12-01T10:30:00Z",
        "trail-eb",
        false,
    );
    cloud
        .rt
        .block_on(
            cloud
                .events
                .put_events()
                .entries(
                    aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                        .source("aws.cloudtrail")
                        .detail_type("AWS API Call via CloudTrail")
                        .detail(call.to_string())
                        .build(),
                )
                .send(),
        )
        .unwrap();
    let f = wait_counted(&svc, (3, 8), 60);
    assert!(
        f.keys().any(|(_, _, r)| r.ends_with("trail/trail-eb")),
        "the EventBridge event: {f:?}"
    );
    assert_eq!(counted(&f), (3, 8), "{f:?}");
    wait_for(30, "the queue to drain", || cloud.depth(&url) == (0, 0));
}

/// One run over `objects` trail objects with `processes` services on one
/// queue and one data directory; `kill` one of them with SIGKILL once about
/// half the records are counted. Every finding, once all is counted.
fn shared_run(objects: usize, processes: usize, kill: bool) -> Found {
    let moto = Moto::start();
    let cloud = Cloud::new(&moto);
    let (url, arn, _dlq) = cloud.queue_with_dlq("shared", 5);
    cloud.bucket("org");
    cloud.notify_queue("org", &arn);
    let dir = tempfile::tempdir().unwrap();
    let mut services: Vec<Service> = (0..processes)
        .map(|_| Service::start_env(dir.path(), &[], &sqs_source(&url), &moto.env()))
        .collect();
    for i in 0..objects {
        let (key, body) = trail_object(i, 20);
        cloud.put("org", &key, body);
    }
    if kill {
        wait_for(120, "half the records", || {
            counted(&found(&services[1])).0 >= objects as u64 / 2
        });
        let victim = services.remove(0);
        Command::new("kill")
            .args(["-KILL", &victim.child.id().to_string()])
            .status()
            .unwrap();
        drop(victim);
    }
    let want = (objects as u64, 4 * objects as u64);
    let f = wait_counted(&services[0], want, 180);
    wait_for(60, "the queue to drain", || cloud.depth(&url) == (0, 0));
    // Nothing comes late: the counts hold still.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(found(&services[0]), f);
    f
}

/// Findings fed by one object have the same id whoever read it; those fed by
/// many objects (one account's root sign-ins) take the id of whichever
/// object's commit came first, which depends on the queue's order even for a
/// single process, so they are compared by what they are and their count.
fn same_findings(one: &Found, other: &Found, what: &str) {
    assert_eq!(
        one.keys().collect::<Vec<_>>(),
        other.keys().collect::<Vec<_>>(),
        "{what}: the same findings"
    );
    for (k, (id, count)) in one {
        let (other_id, other_count) = &other[k];
        assert_eq!(count, other_count, "{what}: {k:?} counted alike");
        if k.2.contains(":trail/trail-") {
            assert_eq!(id, other_id, "{what}: {k:?} has the same id");
        }
    }
}

#[test]
fn two_processes_on_one_queue_count_each_record_once_even_when_one_is_killed() {
    let objects = 200;
    let single = shared_run(objects, 1, false);
    assert_eq!(counted(&single), (200, 800));
    assert_eq!(single.len(), 200 + 20 * root_rules(&single), "{single:?}");

    let two = shared_run(objects, 2, false);
    same_findings(&single, &two, "two processes");

    let killed = shared_run(objects, 2, true);
    same_findings(&single, &killed, "one of two killed halfway");
}
