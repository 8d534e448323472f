//! Step parameters with `{{ path }}` in them, and step conditions.
//!
//! A parameter is any YAML value; in its strings, `{{ path }}` is replaced by the
//! value at `path` of the run's [`Context`]. A string that is one `{{ path }}` and
//! nothing else takes the value as it is (a list stays a list); inside other text a
//! value is written as text. A path with no value stops the step: an action is
//! never called with a parameter left empty.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::context::{Context, ROOTS};

/// Why a template could not be read or filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("{text:?}: {why}")]
    Syntax { text: String, why: String },
    #[error("`{path}` has no value for this finding")]
    Missing { path: String },
}

/// Checks a path's form and root without a context (at load).
pub fn check_path(path: &str) -> Result<(), String> {
    let root = path.split('.').next().unwrap_or("");
    if !ROOTS.contains(&root) {
        return Err(format!(
            "`{path}` does not start with one of {}",
            ROOTS.join(", ")
        ));
    }
    let ok = path.split('.').all(|p| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if ok {
        Ok(())
    } else {
        Err(format!("`{path}` is not a dotted path of names"))
    }
}

/// A string's text and `{{ path }}` pieces.
enum Piece<'a> {
    Text(&'a str),
    Path(&'a str),
}

fn pieces(s: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let syntax = |why: &str| TemplateError::Syntax {
        text: s.to_owned(),
        why: why.to_owned(),
    };
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| syntax("`{{` is not closed"))?;
        let path = after[..close].trim();
        check_path(path).map_err(|why| syntax(&why))?;
        out.push(Piece::Path(path));
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err(syntax("`}}` without `{{`"));
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// Checks every string in `v` (at load).
pub fn check(v: &Value) -> Result<(), TemplateError> {
    match v {
        Value::String(s) => pieces(s).map(drop),
        Value::Array(a) => a.iter().try_for_each(check),
        Value::Object(m) => m.values().try_for_each(check),
        _ => Ok(()),
    }
}

/// `v` with its templates filled from `ctx`.
pub fn render(v: &Value, ctx: &Context) -> Result<Value, TemplateError> {
    Ok(match v {
        Value::String(s) => {
            let parts = pieces(s)?;
            let value_of = |path: &str| {
                ctx.lookup(path).ok_or_else(|| TemplateError::Missing {
                    path: path.to_owned(),
                })
            };
            match parts.as_slice() {
                [Piece::Path(p)] => value_of(p)?.clone(),
                _ => {
                    let mut out = String::new();
                    for part in &parts {
                        match part {
                            Piece::Text(t) => out.push_str(t),
                            Piece::Path(p) => match value_of(p)? {
                                Value::String(s) => out.push_str(s),
                                other => out.push_str(&other.to_string()),
                            },
                        }
                    }
                    Value::String(out)
                }
            }
        }
        Value::Array(a) => {
            Value::Array(a.iter().map(|x| render(x, ctx)).collect::<Result<_, _>>()?)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), render(x, ctx)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// When a step runs: written in the playbook as a one-key map.
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The path has a value.
    Present(String),
    /// Each path has exactly this value.
    Equals(BTreeMap<String, Value>),
    /// Each path has one of these values.
    OneOf(BTreeMap<String, Vec<Value>>),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

impl Condition {
    /// Checks every path (at load).
    pub fn check(&self) -> Result<(), String> {
        match self {
            Condition::Present(p) => check_path(p),
            Condition::Equals(m) => m.keys().try_for_each(|p| check_path(p)),
            Condition::OneOf(m) => m.keys().try_for_each(|p| check_path(p)),
            Condition::All(c) | Condition::Any(c) => c.iter().try_for_each(Condition::check),
            Condition::Not(c) => c.check(),
        }
    }

    pub fn holds(&self, ctx: &Context) -> bool {
        match self {
            Condition::Present(p) => ctx.lookup(p).is_some(),
            Condition::Equals(m) => m.iter().all(|(p, v)| ctx.lookup(p) == Some(v)),
            Condition::OneOf(m) => m
                .iter()
                .all(|(p, vs)| ctx.lookup(p).is_some_and(|v| vs.contains(v))),
            Condition::All(c) => c.iter().all(|c| c.holds(ctx)),
            Condition::Any(c) => c.iter().any(|c| c.holds(ctx)),
            Condition::Not(c) => !c.holds(ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Context {
        Context::from_value(json!({
            "principal": {"user_name": "alice", "type": "user"},
            "resource": {"id": "i-1", "ids": ["i-1", "i-2"]},
            "source_ip": "203.0.113.9",
            "account": "123456789012"
        }))
    }

    #[test]
    fn a_whole_template_keeps_the_type_and_text_around_makes_a_string() {
        let v = json!({
            "ids": "{{ resource.ids }}",
            "cidr": "{{source_ip}}/32",
            "tags": {"vigil:who": "{{ principal.user_name }} in {{ account }}"},
            "n": 7
        });
        assert_eq!(
            render(&v, &ctx()).unwrap(),
            json!({"ids": ["i-1", "i-2"], "cidr": "203.0.113.9/32",
                   "tags": {"vigil:who": "alice in 123456789012"}, "n": 7})
        );
    }

    #[test]
    fn a_missing_value_stops_rendering_and_bad_templates_are_refused_at_load() {
        assert_eq!(
            render(&json!("{{ principal.role_name }}"), &ctx()),
            Err(TemplateError::Missing {
                path: "principal.role_name".into()
            })
        );
        for bad in [
            "{{ principal.user_name",
            "x }}",
            "{{ nobody.x }}",
            "{{ a..b }}",
            "{{ }}",
        ] {
            assert!(check(&json!(bad)).is_err(), "{bad}");
        }
        assert!(check(&json!(["{{ resource.id }}", {"k": "{{ run.id }}"}])).is_ok());
    }

    #[test]
    fn conditions() {
        let c = ctx();
        let yes = Condition::All(vec![
            Condition::Present("resource.id".into()),
            Condition::Equals([("principal.type".to_owned(), json!("user"))].into()),
            Condition::OneOf(
                [(
                    "account".to_owned(),
                    vec![json!("1"), json!("123456789012")],
                )]
                .into(),
            ),
            Condition::Not(Box::new(Condition::Present("principal.role_name".into()))),
        ]);
        assert!(yes.holds(&c));
        let no = Condition::Any(vec![
            Condition::Present("resource.gone".into()),
            Condition::Equals([("principal.type".to_owned(), json!("role"))].into()),
        ]);
        assert!(!no.holds(&c));
        assert!(Condition::Present("elsewhere.x".into()).check().is_err());
    }
}
