//! `vigil playbooks`: a finding raised by `vigil scan` planned by the playbook it
//! names (the dry run), an override directory, and the exit codes.

mod common;

use common::{stdout, vigil};
use serde_json::{json, Value};

/// A console sign-in without MFA by IAM user `dana`, as CloudTrail delivers it.
fn console_login() -> Value {
    json!({"Records": [{
        "eventVersion": "1.08", "eventTime": "2026-11-27T08:00:00Z",
        "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
        "awsRegion": "eu-west-1", "sourceIPAddress": "198.51.100.23", "userAgent": "Mozilla/5.0",
        "eventType": "AwsConsoleSignIn", "recipientAccountId": "111122223333",
        "eventID": "5d3c0a52-0000-4000-8000-000000000001",
        "responseElements": {"ConsoleLogin": "Success"}, "additionalEventData": {"MFAUsed": "No"},
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": "111122223333",
                         "arn": "arn:aws:iam::111122223333:user/dana", "userName": "dana"}
    }]})
}

#[test]
fn a_scanned_finding_is_planned_by_the_playbook_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("trail.json");
    std::fs::write(&trail, console_login().to_string()).unwrap();
    let scan = vigil(&["scan", "--output", "jsonl", trail.to_str().unwrap()]);
    let line = stdout(&scan)
        .lines()
        .find(|l| l.contains("\"PB-014\""))
        .unwrap_or_else(|| panic!("no PB-014 finding: {}", stdout(&scan)))
        .to_owned();
    let finding = dir.path().join("finding.json");
    std::fs::write(&finding, &line).unwrap();

    let out = vigil(&[
        "playbooks",
        "plan",
        "--finding",
        finding.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(plan["playbook"], "PB-014");
    let step = &plan["steps"][0];
    assert_eq!(step["action"], "iam.delete_login_profile");
    assert_eq!(step["calls"], json!(["iam:DeleteLoginProfile"]));
    assert_eq!(step["parameters"], json!({"user_name": "dana"}));
    assert_eq!(
        (step["runs"].as_bool(), step["gate"].as_str()),
        (Some(true), Some("playbook"))
    );
    assert_eq!(step["account"], "111122223333");

    // The text form says the same for a person.
    let text = stdout(&vigil(&[
        "playbooks",
        "plan",
        "--finding",
        finding.to_str().unwrap(),
    ]));
    assert!(text.contains("nothing is called"), "{text}");
    assert!(
        text.contains("delete-password — iam.delete_login_profile: waits for approval"),
        "{text}"
    );
    assert!(text.contains("with {\"user_name\":\"dana\"}"), "{text}");

    // Another playbook by hand: PB-009 needs the access key, which a console
    // sign-in has none of, so its key step is skipped rather than failing.
    let out = vigil(&[
        "playbooks",
        "plan",
        "--playbook",
        "PB-009",
        "--finding",
        finding.to_str().unwrap(),
        "--json",
    ]);
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(plan["steps"][0]["runs"], false);
}

#[test]
fn an_override_that_cannot_run_exits_3_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("trail.json");
    std::fs::write(&trail, console_login().to_string()).unwrap();
    let scan = stdout(&vigil(&[
        "scan",
        "--output",
        "jsonl",
        trail.to_str().unwrap(),
    ]));
    let finding = dir.path().join("finding.json");
    std::fs::write(
        &finding,
        scan.lines().find(|l| l.contains("PB-014")).unwrap(),
    )
    .unwrap();

    let books = dir.path().join("playbooks");
    std::fs::create_dir(&books).unwrap();
    // Our PB-014 also deactivates the key, with no condition: a console sign-in
    // has no access key, so the plan names the step that cannot run.
    std::fs::write(
        books.join("pb-014.yaml"),
        "id: PB-014\nname: Console login without MFA\ndescription: ours\nautomation: semi\n\
         expected_duration: 10s\ntriggers: {}\nsteps:\n  - id: key\n    action: iam.deactivate_access_key\n\
         \x20   parameters: {user_name: '{{ principal.user_name }}', access_key_id: '{{ evidence.access_key_id }}'}\n",
    )
    .unwrap();
    let out = vigil(&[
        "playbooks",
        "plan",
        "--dir",
        books.to_str().unwrap(),
        "--finding",
        finding.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out)
            .contains("CANNOT RUN: parameter access_key_id: `evidence.access_key_id` has no value"),
        "{}",
        stdout(&out)
    );
    let listed = stdout(&vigil(&[
        "playbooks",
        "list",
        "--dir",
        books.to_str().unwrap(),
    ]));
    // The columns' widths are the table's business: compare words.
    let words = listed.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("PB-014 semi 1 Console login without MFA"),
        "{listed}"
    );

    std::fs::write(books.join("broken.yaml"), "id: PB-099\nname: x\nsteps: [\n").unwrap();
    let out = vigil(&["playbooks", "list", "--dir", books.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 playbook file(s) refused") && err.contains("broken.yaml: error: line"),
        "{err}"
    );
}
