//! What the HTTP destinations share: the client, secrets that never print,
//! the pace a destination is held to, and sorting a refusal into worth another
//! try (timeouts, 429, 5xx) or not (other 4xx).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;

use super::Failure;

/// A token, key or URL that must not be logged: it prints as `***`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The HTTP client every destination uses (rustls, the system's roots).
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("Vigil/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with rustls and these settings builds")
}

/// Holds a destination to a rate, and to a pause a 429 asked for.
pub struct Pace {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pace {
    pub fn new(per_second: f64) -> Pace {
        Pace {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this request's turn.
    pub async fn turn(&self) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }

    /// No request before `wait` from now (the destination asked).
    pub fn pause(&self, wait: Duration) {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        *next = (*next).max(Instant::now() + wait);
    }

    /// How long until the next request may go, in ms.
    pub fn paused_ms(&self) -> i64 {
        let next = *self.next.lock().unwrap_or_else(|e| e.into_inner());
        next.saturating_duration_since(Instant::now()).as_millis() as i64
    }
}

/// `Retry-After` in seconds (the form the vendors here send), or as an HTTP
/// date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(3600.0)));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(3600)),
    )
}

/// A failure from a status that is not success.
pub fn refused(status: StatusCode, headers: &HeaderMap, body: &str) -> Failure {
    let text: String = body.chars().take(300).collect();
    let message = format!("HTTP {}: {}", status.as_u16(), text.trim());
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Failure {
            retryable: true,
            retry_after: retry_after(headers),
            message,
        }
    } else {
        Failure::permanent(message)
    }
}

/// A failure from the transport (timeouts, refused connections): retryable.
pub fn transport(what: &str, e: reqwest::Error) -> Failure {
    // The URL may carry a secret (a Slack webhook): say what failed without it.
    let e = e.without_url();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    Failure::retry(format!("{what}: {kind}: {e}"))
}

/// Sends `req` at its turn; the status, headers and body, or why not. A 429's
/// `Retry-After` pauses the whole destination.
pub async fn send(
    pace: &Pace,
    what: &str,
    req: reqwest::RequestBuilder,
) -> Result<(StatusCode, HeaderMap, String), Failure> {
    pace.turn().await;
    let resp = req.send().await.map_err(|e| transport(what, e))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await.map_err(|e| transport(what, e))?;
    if status == StatusCode::TOO_MANY_REQUESTS {
        pace.pause(retry_after(&headers).unwrap_or(Duration::from_secs(1)));
    }
    Ok((status, headers, body))
}

/// Like [`send`], but any status other than success is a failure.
pub async fn send_ok(
    pace: &Pace,
    what: &str,
    req: reqwest::RequestBuilder,
) -> Result<(HeaderMap, String), Failure> {
    let (status, headers, body) = send(pace, what, req).await?;
    if status.is_success() {
        Ok((headers, body))
    } else {
        let mut f = refused(status, &headers, &body);
        f.message = format!("{what}: {}", f.message);
        Err(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn sorts_refusals() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let f = refused(StatusCode::TOO_MANY_REQUESTS, &h, "slow down");
        assert!(f.retryable);
        assert_eq!(f.retry_after, Some(Duration::from_secs(7)));
        assert!(refused(StatusCode::BAD_GATEWAY, &HeaderMap::new(), "").retryable);
        assert!(!refused(StatusCode::BAD_REQUEST, &HeaderMap::new(), "bad").retryable);
        assert!(!refused(StatusCode::UNAUTHORIZED, &HeaderMap::new(), "").retryable);
    }

    #[test]
    fn secrets_do_not_print() {
        let s: Secret = serde_json::from_str("\"xoxb-1\"").unwrap();
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(s.expose(), "xoxb-1");
    }
}
