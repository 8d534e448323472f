//! The playbook format against its contract: the fifteen built-in playbooks load,
//! each mistake is refused naming the file and field, overrides replace built-ins,
//! every rule's playbook lists the rule among its triggers, and plans fill in the
//! finding's values and the approval gates.

mod support;

use serde_json::{json, Value};
use vigil_model::Environment;
use vigil_model::Finding;
use vigil_respond::{plan, Automation, Context, Gate, Library, Playbook};

fn library() -> Library {
    Library::load(None).unwrap_or_else(|e| panic!("built-in playbooks: {e:?}"))
}

#[test]
fn the_fifteen_built_in_playbooks_load() {
    let lib = library();
    let ids: Vec<&str> = lib.all().iter().map(|p| p.id.as_str()).collect();
    let want: Vec<String> = (1..=15).map(|n| format!("PB-{n:03}")).collect();
    assert_eq!(ids, want);
    // Names and automation as the detection engine's table has them.
    for p in lib.all() {
        let known = vigil_model::finding::playbook(&p.id).expect("known to detection");
        assert_eq!(p.name, known.incident, "{}", p.id);
        assert_eq!(
            p.automation == Automation::Full,
            known.automated,
            "{}",
            p.id
        );
    }
}

const GOOD: &str = "
id: PB-900
name: Test
description: d
automation: full
expected_duration: 5s
triggers: {categories: [Cryptojacking]}
steps:
  - id: stop
    action: ec2.stop_instance
    parameters: {instance_id: '{{ resource.id }}'}
";

fn refused(text: &str) -> String {
    Playbook::parse(text, "pb.yaml")
        .expect_err("should be refused")
        .to_string()
}

#[test]
fn mistakes_are_refused_with_the_file_and_the_field() {
    assert!(Playbook::parse(GOOD, "pb.yaml").is_ok());
    let cases = [
        (GOOD.replace("ec2.stop_instance", "ec2.stop"), "pb.yaml: steps[0].action: \"ec2.stop\" is not an action"),
        (GOOD.replace("instance_id:", "instance:"), "pb.yaml: steps[0].parameters.instance: ec2.stop_instance takes no parameter \"instance\" (it takes: instance_id)"),
        (GOOD.replace("{instance_id: '{{ resource.id }}'}", "{}"), "pb.yaml: steps[0].parameters: ec2.stop_instance needs parameter \"instance_id\""),
        (GOOD.replace("resource.id", "resourse.id"), "pb.yaml: steps[0].parameters.instance_id: \"{{ resourse.id }}\": `resourse.id` does not start with one of"),
        (GOOD.replace("{{ resource.id }}", "{{ resource.id"), "`{{` is not closed"),
        (GOOD.replace("[Cryptojacking]", "[Mining]"), "pb.yaml: triggers.categories[0]: \"Mining\" is not a finding category"),
        (GOOD.replace("5s", "5 minutes"), "pb.yaml: expected_duration:"),
        (GOOD.replace("automation: full", "automation: sometimes"), "pb.yaml: "),
        (GOOD.replace("id: PB-900", "id: PB 900"), "pb.yaml: id:"),
        (format!("{GOOD}    colour: red\n"), "colour"),
        (format!("{GOOD}  - id: stop\n    action: ec2.stop_instance\n    parameters: {{instance_id: x}}\n"), "pb.yaml: steps[1].id: \"stop\" is used by an earlier step"),
        (format!("{GOOD}    timeout: 2h\n"), "pb.yaml: steps[0].timeout: must be more than 0 and at most 1h"),
        (format!("{GOOD}    retries: {{max: 50}}\n"), "pb.yaml: steps[0].retries.max: at most 10"),
        (format!("{GOOD}    when: {{present: nowhere.x}}\n"), "pb.yaml: steps[0].when: `nowhere.x` does not start"),
        (format!("{GOOD}rollback:\n  - id: start\n    action: ec2.stop_instance\n    parameters: {{instance_id: x}}\n"), "pb.yaml: rollback[0].id: \"start\" undoes no step"),
        (GOOD.replace("steps:\n  - id: stop\n    action: ec2.stop_instance\n    parameters: {instance_id: '{{ resource.id }}'}\n", "steps: []\n"), "pb.yaml: steps: a playbook needs at least one step"),
    ];
    for (text, want) in cases {
        let got = refused(&text);
        assert!(got.contains(want), "want {want:?} in {got:?}");
    }
    // The YAML reader's own errors give the line.
    let got = refused("id: PB-1\nname: [unclosed\n");
    assert!(got.starts_with("pb.yaml: ") && got.contains('2'), "{got}");
}

#[test]
fn a_file_in_the_override_directory_replaces_the_built_in_and_bad_files_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.yaml"),
        GOOD.replace("PB-900", "PB-002")
            .replace("name: Test", "name: Our cryptojacking"),
    )
    .unwrap();
    std::fs::write(dir.path().join("new.yml"), GOOD).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a playbook").unwrap();
    let lib = Library::load(Some(dir.path())).unwrap();
    assert_eq!(lib.all().len(), 16);
    assert_eq!(lib.get("pb-002").unwrap().name, "Our cryptojacking");
    assert!(lib.get("PB-002").unwrap().source.ends_with("mine.yaml"));
    std::fs::write(dir.path().join("bad1.yaml"), "id: [").unwrap();
    std::fs::write(
        dir.path().join("bad2.yaml"),
        GOOD.replace("ec2.stop_instance", "nope"),
    )
    .unwrap();
    let errors = Library::load(Some(dir.path())).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].file.ends_with("bad1.yaml") && errors[1].file.ends_with("bad2.yaml"));
}

/// Every rule that names a playbook is among that playbook's triggers, so that
/// the two mappings cannot drift apart.
#[test]
fn every_rule_naming_a_playbook_triggers_it() {
    let lib = library();
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../content/rules");
    let mut checked = 0;
    for dir in std::fs::read_dir(&rules).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if !name.ends_with(".yml") || name.ends_with(".tests.yml") {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            // Each document: a rule, or a correlation over the rules before it.
            for doc in text.split("\n---\n") {
                let field = |k: &str| {
                    doc.lines()
                        .find_map(|l| l.trim().strip_prefix(k).map(|v| v.trim().to_owned()))
                };
                let (Some(id), Some(pb)) = (field("id:"), field("playbook:")) else {
                    continue;
                };
                if pb == "none" {
                    continue;
                }
                let p = lib
                    .get(&pb)
                    .unwrap_or_else(|| panic!("{name}: no playbook {pb}"));
                assert!(
                    p.triggers.rules.contains(&id),
                    "{name} ({id}) names {pb}, which does not list it"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} rules checked");
}

fn finding(v: Value) -> Finding {
    support::finding("111122223333", "eu-west-1", "PB-001", v)
}

#[test]
fn a_plan_fills_in_the_finding_and_skips_steps_whose_condition_fails() {
    let lib = library();
    let f = finding(json!({"detail": {
        "principal": "arn:aws:iam::111122223333:user/mallory",
        "evidence": {"access_key_id": "AKIAEXAMPLEKEY000001"}
    }}));
    let ctx = Context::new(&f, None, "run-1");
    let p = plan(
        lib.get("PB-001").unwrap(),
        &ctx,
        Some(Environment::Development),
    );
    let by_id = |id: &str| p.steps.iter().find(|s| s.id == id).unwrap();
    let key = by_id("deactivate-key");
    assert!(key.runs && key.gate.is_none() && key.problem.is_none());
    assert_eq!(key.calls, ["iam:ListAccessKeys", "iam:UpdateAccessKey"]);
    assert_eq!(
        key.parameters,
        Some(json!({"user_name": "mallory", "access_key_id": "AKIAEXAMPLEKEY000001"}))
    );
    assert_eq!(
        (key.account.as_deref(), key.region.as_deref()),
        (Some("111122223333"), Some("us-east-1"))
    );
    assert_eq!(
        by_id("deny-user").parameters,
        Some(
            json!({"principal_arn": "arn:aws:iam::111122223333:user/mallory", "policy_name": "VigilDenyAll"})
        )
    );
    assert!(!by_id("revoke-role-sessions").runs, "a user is not a role");
    assert_eq!(p.problems().count(), 0);
    // The same playbook for a role's session: the key and user steps skip.
    let r = finding(
        json!({"detail": {"principal": "arn:aws:sts::111122223333:assumed-role/Deploy/ci"}}),
    );
    let p = plan(
        lib.get("PB-001").unwrap(),
        &Context::new(&r, None, "run-2"),
        None,
    );
    let runs: Vec<&str> = p
        .steps
        .iter()
        .filter(|s| s.runs)
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(runs, ["revoke-role-sessions", "publish"]);
    assert_eq!(p.steps[2].parameters, Some(json!({"role_name": "Deploy"})));
}

#[test]
fn gates_come_from_the_step_the_playbook_and_the_account() {
    let lib = library();
    let f = finding(json!({"detail": {
        "category": "Cryptojacking",
        "resource_type": "AWS::EC2::Instance",
        "resource_arn": "arn:aws:ec2:eu-west-1:111122223333:instance/i-0123456789abcdef0"
    }}));
    let ctx = Context::new(&f, None, "run-3");
    let pb2 = lib.get("PB-002").unwrap();
    let gates = |env| -> Vec<(String, Option<Gate>)> {
        plan(pb2, &ctx, env)
            .steps
            .into_iter()
            .map(|s| (s.id, s.gate))
            .collect()
    };
    // Full automation in development: nothing waits.
    assert!(gates(Some(Environment::Development))
        .iter()
        .all(|(_, g)| g.is_none()));
    // In production the stop (hard to undo) waits; nothing else does.
    let prod = gates(Some(Environment::Production));
    assert_eq!(
        prod.iter().filter(|(_, g)| g.is_some()).collect::<Vec<_>>(),
        [&("stop".to_owned(), Some(Gate::Environment))]
    );
    let stop = plan(pb2, &ctx, None)
        .steps
        .into_iter()
        .find(|s| s.id == "stop")
        .unwrap();
    assert_eq!(
        stop.parameters,
        Some(json!({"instance_id": "i-0123456789abcdef0"}))
    );
    // A semi-automated playbook waits before its first running step only.
    let bucket = finding(json!({"detail": {
        "category": "PolicyViolation", "resource_type": "AWS::S3::Bucket", "resource_arn": "arn:aws:s3:::open-bucket"
    }}));
    let p = plan(
        lib.get("PB-003").unwrap(),
        &Context::new(&bucket, None, "r"),
        None,
    );
    let g: Vec<Option<Gate>> = p.steps.iter().map(|s| s.gate).collect();
    assert_eq!(g, [Some(Gate::Playbook), None, None, None]);
    assert_eq!(
        p.steps[0].parameters,
        Some(json!({"bucket": "open-bucket"}))
    );
}

#[test]
fn triggers_match_categories_rules_and_guardduty_types() {
    let lib = library();
    use vigil_model::finding::Category;
    let pb1 = lib.get("PB-001").unwrap();
    assert!(pb1.triggered_by(Category::UnauthorizedAccess, "x", None));
    assert!(pb1.triggered_by(
        Category::PolicyViolation,
        "x",
        Some("UnauthorizedAccess:IAMUser/TorIPCaller")
    ));
    assert!(!pb1.triggered_by(
        Category::PolicyViolation,
        "x",
        Some("Recon:EC2/PortProbeUnprotectedPort")
    ));
    let pb8 = lib.get("PB-008").unwrap();
    assert!(pb8.triggered_by(
        Category::PolicyViolation,
        "vigil-ec2-security-group-open-admin-port",
        None
    ));
    assert!(!pb8.triggered_by(Category::PolicyViolation, "another-rule", None));
}
