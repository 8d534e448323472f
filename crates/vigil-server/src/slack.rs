//! `POST /slack/interactions`: the Approve and Reject buttons of the Slack
//! output's approval messages.
//!
//! Not SigV4: Slack signs its requests with the app's signing secret
//! (`X-Slack-Signature: v0=<hex>`, the HMAC-SHA256 of `v0:<timestamp>:<body>`,
//! with `X-Slack-Request-Timestamp` within five minutes). A verified click is
//! answered at once (Slack wants an answer within 3 s) and acted on in the
//! background: the Slack user is mapped to a Vigil principal allowed to act
//! (`[slack] approvers`), a click already acted on (Slack retries, with
//! `X-Slack-Retry-Num`) is ignored, an approval older than `approval_ttl` is
//! refused, and a step of `two_approvers` waits for a second, different person.
//! Every case, refused ones too, is written to the audit chain; the decision
//! reaches the message through the outbox, which edits it to say who decided.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use vigil_model::Span;

use crate::{now, ApiError, AppState};

/// `[slack]`: who may approve from Slack, and how.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    /// The Slack app's signing secret; the route is off without it.
    pub signing_secret: Option<String>,
    /// Slack user id (`U0123…`) → the Vigil principal (of an API key whose
    /// role may act) the click counts as.
    pub approvers: BTreeMap<String, String>,
    /// Playbook ids (`PB-003`) or step actions (`s3.put_public_access_block`)
    /// whose approval takes two different people.
    pub two_approvers: Vec<String>,
    /// How long after a step starts waiting its buttons still work.
    pub approval_ttl: Span,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            signing_secret: None,
            approvers: BTreeMap::new(),
            two_approvers: Vec::new(),
            approval_ttl: Span::from_secs(4 * 3600),
        }
    }
}

impl std::fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackConfig")
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "***"),
            )
            .field("approvers", &self.approvers)
            .field("two_approvers", &self.two_approvers)
            .field("approval_ttl", &self.approval_ttl)
            .finish()
    }
}

/// Request headers, as [`verify`] reads them.
pub type Headers = HeaderMap;

/// How far Slack's timestamp may be from ours.
const WINDOW_SECS: i64 = 5 * 60;

/// Slack's signature of `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Why a request was not verified.
pub fn verify(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<(), &'static str> {
    let ts = headers
        .get("x-slack-request-timestamp")
        .and_then(|v| v.to_str().ok())
        .ok_or("no X-Slack-Request-Timestamp")?;
    let at: i64 = ts
        .parse()
        .map_err(|_| "a malformed X-Slack-Request-Timestamp")?;
    if (now_secs - at).abs() > WINDOW_SECS {
        return Err("a stale timestamp (more than 5 minutes from ours)");
    }
    let given = headers
        .get("x-slack-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or("no X-Slack-Signature")?;
    let want = signature(secret, ts, body);
    if want.as_bytes().ct_eq(given.as_bytes()).into() {
        Ok(())
    } else {
        Err("a bad signature")
    }
}

async fn audit(app: &Arc<AppState>, principal: String, target: String, outcome: String) {
    tracing::info!(%principal, %target, "slack interaction: {outcome}");
    let r = app
        .write(move |s| s.audit(now(), &principal, "slack interaction", &target, &outcome))
        .await;
    if let Err(e) = r {
        tracing::error!(
            "audit of a Slack interaction failed: {}",
            e.message.as_str()
        );
    }
}

/// One click, as far as Vigil reads it.
#[derive(Debug)]
pub struct Click {
    /// The Slack user id.
    pub user: String,
    /// `vigil_approve` or `vigil_reject`.
    pub action: String,
    /// The run the button is for.
    pub run: String,
    /// What makes this click itself (Slack's retries repeat it).
    pub key: String,
}

/// Reads a click out of an interaction request's form body (`payload=<JSON>`),
/// or says why it is not one. Used on verified bodies only.
pub fn click(body: &[u8]) -> Result<Click, String> {
    let form: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|e| format!("the form does not read: {e}"))?;
    let payload = form
        .iter()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v)
        .ok_or("no payload field")?;
    let p: Value = serde_json::from_str(payload).map_err(|e| format!("payload: {e}"))?;
    if p.get("type").and_then(Value::as_str) != Some("block_actions") {
        return Err(format!(
            "payload.type {:?} is not block_actions",
            p.get("type").and_then(Value::as_str).unwrap_or("")
        ));
    }
    let user = p
        .pointer("/user/id")
        .and_then(Value::as_str)
        .ok_or("payload.user.id is missing")?
        .to_owned();
    let a = p.pointer("/actions/0").ok_or("payload.actions is empty")?;
    let action = a
        .get("action_id")
        .and_then(Value::as_str)
        .ok_or("payload.actions[0].action_id is missing")?
        .to_owned();
    let run = a
        .get("value")
        .and_then(Value::as_str)
        .ok_or("payload.actions[0].value is missing")?
        .to_owned();
    let action_ts = a.get("action_ts").and_then(Value::as_str).unwrap_or("");
    let key = format!("slack:{user}:{run}:{action}:{action_ts}");
    Ok(Click {
        user,
        action,
        run,
        key,
    })
}

/// `POST /slack/interactions`.
pub(crate) async fn interactions(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let off = || {
        ApiError::not_found("Slack interactions are off: set [slack] signing_secret")
            .into_response()
    };
    let Some(config) = app.slack.clone() else {
        return off();
    };
    let Some(secret) = config.signing_secret.as_deref() else {
        return off();
    };
    let now_secs = now().as_millis() / 1000;
    if let Err(why) = verify(secret, &headers, &body, now_secs) {
        audit(
            &app,
            "slack:unverified".into(),
            "-".into(),
            format!("refused: {why}"),
        )
        .await;
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UnauthorizedException",
            "the request is not signed by Slack",
        )
        .into_response();
    }
    let c = match click(&body) {
        Ok(c) => c,
        Err(why) => {
            audit(
                &app,
                "slack:verified".into(),
                "-".into(),
                format!("ignored: {why}"),
            )
            .await;
            return StatusCode::OK.into_response();
        }
    };
    let retry = headers.get("x-slack-retry-num").is_some();
    let key = c.key.clone();
    let first = app.write(move |s| s.first_interaction(&key, now())).await;
    let who = format!("slack:{}", c.user);
    match first {
        Ok(true) => {}
        Ok(false) => {
            let why = if retry {
                "ignored: a Slack retry of a click already acted on"
            } else {
                "ignored: a click already acted on"
            };
            audit(&app, who, c.run, why.into()).await;
            return StatusCode::OK.into_response();
        }
        Err(e) => return e.into_response(),
    }
    // Acted on in the background: Slack has its answer now.
    tokio::spawn(act(app, config, c));
    StatusCode::OK.into_response()
}

async fn act(app: Arc<AppState>, config: SlackConfig, c: Click) {
    let slack_user = format!("slack:{}", c.user);
    let Some(principal) = config.approvers.get(&c.user).cloned() else {
        audit(
            &app,
            slack_user,
            c.run,
            format!("refused: Slack user {} is not an approver", c.user),
        )
        .await;
        return;
    };
    let who = format!("{slack_user} ({principal})");
    match app.principals.get(&principal) {
        Some(role) if role.can_act() => {}
        _ => {
            audit(
                &app,
                who,
                c.run,
                format!("refused: {principal} has no key whose role may act"),
            )
            .await;
            return;
        }
    }
    let Some(engine) = app.engine.clone() else {
        audit(&app, who, c.run, "refused: response is off".into()).await;
        return;
    };
    let id = c.run.clone();
    let run = match app.read(move |s| s.run(&id)).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            audit(
                &app,
                who,
                c.run.clone(),
                format!("refused: no run {}", c.run),
            )
            .await;
            return;
        }
        Err(e) => {
            audit(&app, who, c.run, format!("failed: {}", e.message.as_str())).await;
            return;
        }
    };
    let waiting = run.steps.iter().find(|s| {
        matches!(
            s.status,
            vigil_model::response::StepStatus::AwaitingApproval
                | vigil_model::response::StepStatus::Unknown
        )
    });
    let Some(step) = waiting.cloned() else {
        audit(
            &app,
            who,
            c.run,
            format!(
                "refused: the run is {} and waits for nothing",
                run.status.as_str()
            ),
        )
        .await;
        return;
    };
    let age = now().as_millis() - run.updated_at.as_millis();
    if age > config.approval_ttl.as_millis() {
        audit(
            &app,
            who,
            c.run,
            format!(
                "refused: the approval expired ({} s after the step began to wait)",
                age / 1000
            ),
        )
        .await;
        return;
    }
    let result = match c.action.as_str() {
        "vigil_reject" => engine
            .reject(&c.run, &principal, Some("rejected in Slack"))
            .await
            .map(|_| "rejected".to_owned()),
        "vigil_approve" => {
            let two = config
                .two_approvers
                .iter()
                .any(|x| *x == run.playbook || *x == step.action);
            if two {
                let (id, p, seq) = (c.run.clone(), principal.clone(), step.seq);
                match app
                    .write(move |s| s.record_approval(&id, seq, &p, "slack", now()))
                    .await
                {
                    Err(e) => Err(vigil_respond::EngineError::Task(e.message)),
                    Ok(who_so_far) if who_so_far.len() >= 2 => engine
                        .approve(&c.run, &who_so_far.join(" and "))
                        .await
                        .map(|_| {
                            format!("approved by {} (two approvers)", who_so_far.join(" and "))
                        }),
                    Ok(_) => {
                        Ok("approved: 1 of 2 approvers; waiting for a second person".to_owned())
                    }
                }
            } else {
                engine
                    .approve(&c.run, &principal)
                    .await
                    .map(|_| "approved".to_owned())
            }
        }
        other => {
            audit(&app, who, c.run, format!("ignored: unknown action {other}")).await;
            return;
        }
    };
    let outcome = match result {
        Ok(o) => o,
        Err(e) => format!("failed: {e}"),
    };
    audit(&app, who, c.run, outcome).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_slack_signatures() {
        // Slack's documented example.
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            signature(secret, "1531420618", body),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
        let mut h = HeaderMap::new();
        h.insert("x-slack-request-timestamp", "1531420618".parse().unwrap());
        h.insert(
            "x-slack-signature",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
                .parse()
                .unwrap(),
        );
        assert_eq!(verify(secret, &h, body, 1531420618 + 60), Ok(()));
        assert_eq!(
            verify(secret, &h, body, 1531420618 + 301),
            Err("a stale timestamp (more than 5 minutes from ours)")
        );
        assert_eq!(
            verify("other", &h, body, 1531420618),
            Err("a bad signature")
        );
    }
}
