//! `GET /ui/events`: server-sent events that tell an open page something it
//! shows has changed — a new finding, a finding repeated, any incident change,
//! any playbook-run change — so that the page refreshes those parts in place.
//!
//! Each stream looks at the store's change marks once a second (four index
//! lookups) and sends `change` with what moved. It ends when its session does
//! (sign-out or expiry: `signed-out`, after which the page goes to the sign-in)
//! and after an hour in any case; the browser's EventSource then connects again
//! on its own, with its session's cookie checked anew.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::json;
use vigil_store::ChangeMarks;

use super::SessionToken;
use crate::AppState;

/// How often a stream looks for changes.
const LOOK: Duration = Duration::from_secs(1);
/// The longest one stream lasts before the browser reconnects.
const MAX_STREAM: Duration = Duration::from_secs(3600);

struct Watch {
    app: Arc<AppState>,
    token: String,
    last: ChangeMarks,
    until: Instant,
    closing: tokio::sync::watch::Receiver<bool>,
    done: bool,
}

pub(super) async fn events(
    State(app): State<Arc<AppState>>,
    Extension(SessionToken(token)): Extension<SessionToken>,
) -> Response {
    // The marks as they are now: any change after this response's headers
    // reach the browser is sent.
    let last = match app.read(|st| st.change_marks()).await {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let watch = Watch {
        closing: app.closing.subscribe(),
        app,
        token,
        last,
        until: Instant::now() + MAX_STREAM,
        done: false,
    };
    let stream = futures_util::stream::unfold(watch, |mut w| async move {
        if w.done {
            return None;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(LOOK) => {}
                _ = w.closing.wait_for(|c| *c) => return None,
            }
            if w.app.sessions.get(&w.token).is_none() {
                w.done = true;
                let e = Event::default().event("signed-out").data("{}");
                return Some((Ok::<_, Infallible>(e), w));
            }
            if Instant::now() >= w.until {
                return None;
            }
            let Ok(now) = w.app.read(|st| st.change_marks()).await else {
                continue;
            };
            if now != w.last {
                let data = json!({
                    "findings": (now.findings - w.last.findings).max(0),
                    "incidents": now.timeline != w.last.timeline || now.updates != w.last.updates,
                    "runs": now.runs != w.last.runs,
                });
                w.last = now;
                let e = Event::default().event("change").data(data.to_string());
                return Some((Ok(e), w));
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
