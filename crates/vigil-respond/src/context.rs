//! What a step can refer to: the finding (and its incident) a run answers, with
//! the parts a responder names most — the principal, the resource, the account and
//! region — worked out once from the finding's ARNs. Step parameters refer to them
//! as `{{ principal.user_name }}`; conditions by their bare path.

use serde_json::{json, Map, Value};
use vigil_model::Finding;

/// The names a path may start with.
pub const ROOTS: &[&str] = &[
    "finding",
    "incident",
    "evidence",
    "account",
    "region",
    "principal",
    "resource",
    "source_ip",
    "run",
];

/// The values a run's templates and conditions read.
#[derive(Clone, Debug)]
pub struct Context {
    root: Value,
}

impl Context {
    /// The context of `finding` (as stored, JSON) and its incident, for run `run_id`.
    pub fn new(finding: &Finding, incident: Option<Value>, run_id: &str) -> Context {
        let finding_json = serde_json::to_value(finding).unwrap_or(Value::Null);
        let d = &finding.detail;
        let evidence = finding_json
            .pointer("/detail/evidence")
            .cloned()
            .unwrap_or(Value::Null);
        let principal_arn = d
            .principal
            .clone()
            .or_else(|| string_at(&evidence, "principal_arn"))
            .or_else(|| {
                (d.resource_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("AWS::IAM::")))
                .then(|| d.resource_arn.clone())
                .flatten()
            });
        let mut root = Map::new();
        root.insert("finding".into(), finding_json);
        root.insert("incident".into(), incident.unwrap_or(Value::Null));
        root.insert("account".into(), json!(finding.account));
        root.insert(
            "region".into(),
            json!(finding
                .region
                .clone()
                .or_else(|| d.evidence.aws_region.clone())),
        );
        root.insert(
            "principal".into(),
            principal_arn.as_deref().map_or(Value::Null, principal),
        );
        root.insert(
            "resource".into(),
            d.resource_arn
                .as_deref()
                .map_or(Value::Null, |arn| resource(arn, d.resource_type.as_deref())),
        );
        root.insert("source_ip".into(), json!(d.evidence.source_ip));
        root.insert("evidence".into(), evidence);
        root.insert("run".into(), json!({ "id": run_id }));
        Context {
            root: Value::Object(root),
        }
    }

    /// A context from a ready-made JSON object (tests, replays).
    pub fn from_value(root: Value) -> Context {
        Context { root }
    }

    /// The value at a dotted path (`principal.user_name`, `finding.resources.0`);
    /// `None` when any part is missing or null.
    pub fn lookup(&self, path: &str) -> Option<&Value> {
        let mut at = &self.root;
        for part in path.split('.') {
            at = match at {
                Value::Object(m) => m.get(part)?,
                Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        (!at.is_null()).then_some(at)
    }

    pub fn as_value(&self) -> &Value {
        &self.root
    }
}

/// The CloudFormation type of the resource an ARN names, for the kinds playbooks
/// act on; `None` for other kinds.
pub fn resource_type_of(arn: &str) -> Option<&'static str> {
    let [_, _, service, _, _, res] = arn_parts(arn)?;
    let kind = res.split(['/', ':']).next().unwrap_or("");
    Some(match (service, kind) {
        ("ec2", "instance") => "AWS::EC2::Instance",
        ("ec2", "security-group") => "AWS::EC2::SecurityGroup",
        ("ec2", "snapshot") => "AWS::EC2::Snapshot",
        ("ec2", "image") => "AWS::EC2::Image",
        ("ec2", "volume") => "AWS::EC2::Volume",
        // A bucket's ARN names the bucket alone; an object's has a path.
        ("s3", _) if !res.contains('/') => "AWS::S3::Bucket",
        ("kms", "key") => "AWS::KMS::Key",
        ("cloudtrail", "trail") => "AWS::CloudTrail::Trail",
        ("iam", "policy") => "AWS::IAM::Policy",
        ("iam", "user") => "AWS::IAM::User",
        ("iam", "role") => "AWS::IAM::Role",
        _ => return None,
    })
}

fn string_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// `arn:partition:service:region:account:resource`, split; `None` if not an ARN.
fn arn_parts(arn: &str) -> Option<[&str; 6]> {
    let mut it = arn.splitn(6, ':');
    let parts = [
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    ];
    (parts[0] == "arn").then_some(parts)
}

/// A principal's ARN and what it names: `type` (user, role, assumed-role, root,
/// federated-user), `name`, and `user_name` or `role_name` as the case may be.
fn principal(arn: &str) -> Value {
    let mut p = json!({ "arn": arn });
    let Some([_, _, service, _, account, res]) = arn_parts(arn) else {
        return p;
    };
    p["account"] = json!(account);
    let (kind, rest) = res.split_once('/').unwrap_or((res, ""));
    let name = match (service, kind) {
        // assumed-role/RoleName/session
        ("sts", "assumed-role") => rest.split('/').next().unwrap_or(""),
        // user/path/to/Name, role/path/Name
        _ => rest.rsplit('/').next().unwrap_or(""),
    };
    p["type"] = json!(kind);
    if kind == "root" {
        return p;
    }
    p["name"] = json!(name);
    match kind {
        "user" => p["user_name"] = json!(name),
        "role" | "assumed-role" => p["role_name"] = json!(name),
        _ => {}
    }
    if let ("sts", "assumed-role") = (service, kind) {
        p["session_name"] = json!(rest.split('/').nth(1).unwrap_or(""));
    }
    p
}

/// A resource's ARN, type and id (the part after the resource kind: `i-0abc…`,
/// a bucket name, a key id).
fn resource(arn: &str, kind: Option<&str>) -> Value {
    let mut r = json!({ "arn": arn, "type": kind });
    if let Some([_, _, _, region, account, res]) = arn_parts(arn) {
        let id = res
            .split_once('/')
            .or_else(|| res.split_once(':'))
            .map_or(res, |(_, id)| id);
        r["id"] = json!(id);
        r["region"] = json!((!region.is_empty()).then_some(region));
        r["account"] = json!((!account.is_empty()).then_some(account));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_named_by_kind() {
        let u = principal("arn:aws:iam::123456789012:user/ops/alice");
        assert_eq!(
            (u["type"].as_str(), u["user_name"].as_str()),
            (Some("user"), Some("alice"))
        );
        let a = principal("arn:aws:sts::123456789012:assumed-role/Admin/bob@example.com");
        assert_eq!(a["role_name"], "Admin");
        assert_eq!(a["session_name"], "bob@example.com");
        let r = principal("arn:aws:iam::123456789012:root");
        assert_eq!((r["type"].as_str(), r.get("name")), (Some("root"), None));
        assert_eq!(principal("not-an-arn")["arn"], "not-an-arn");
    }

    #[test]
    fn resources_have_their_id() {
        let i = resource("arn:aws:ec2:us-east-1:123456789012:instance/i-0abc", None);
        assert_eq!(
            (i["id"].as_str(), i["region"].as_str()),
            (Some("i-0abc"), Some("us-east-1"))
        );
        assert_eq!(resource("arn:aws:s3:::my-bucket", None)["id"], "my-bucket");
        let k = resource("arn:aws:kms:eu-west-1:123456789012:key/1234-abcd", None);
        assert_eq!(k["id"], "1234-abcd");
        let t = resource("arn:aws:cloudtrail:us-east-1:123456789012:trail/main", None);
        assert_eq!(t["id"], "main");
    }

    #[test]
    fn resource_types_come_from_the_arn() {
        let cases = [
            (
                "arn:aws:ec2:eu-west-1:123456789012:instance/i-0abc",
                Some("AWS::EC2::Instance"),
            ),
            (
                "arn:aws:ec2:eu-west-1:123456789012:security-group/sg-1",
                Some("AWS::EC2::SecurityGroup"),
            ),
            ("arn:aws:s3:::my-bucket", Some("AWS::S3::Bucket")),
            ("arn:aws:s3:::my-bucket/key.txt", None),
            (
                "arn:aws:kms:eu-west-1:123456789012:key/1234",
                Some("AWS::KMS::Key"),
            ),
            (
                "arn:aws:iam::123456789012:policy/app",
                Some("AWS::IAM::Policy"),
            ),
            ("arn:aws:lambda:eu-west-1:123456789012:function:f", None),
            ("not an arn", None),
        ];
        for (arn, want) in cases {
            assert_eq!(resource_type_of(arn), want, "{arn}");
        }
    }

    #[test]
    fn lookup_walks_objects_and_arrays_and_treats_null_as_missing() {
        let c = Context::from_value(json!({"a": {"b": [1, {"c": "x"}], "n": null}}));
        assert_eq!(c.lookup("a.b.1.c"), Some(&json!("x")));
        assert_eq!(c.lookup("a.b.0"), Some(&json!(1)));
        assert_eq!(c.lookup("a.n"), None);
        assert_eq!(c.lookup("a.b.9"), None);
        assert_eq!(c.lookup("a.b.x"), None);
    }
}
