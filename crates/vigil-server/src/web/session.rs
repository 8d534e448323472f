//! Browser sessions: a sign-in that proves knowledge of an access key's secret
//! without sending it, and the cookie and CSRF token that stand for it after.
//!
//! The page asks for a nonce (`POST /ui/nonce`: random, single use, two
//! minutes), computes `HMAC-SHA256(secret, "vigil-login:" + nonce + ":" +
//! access_key_id)` with the browser's WebCrypto, and posts the access key id,
//! the nonce and that proof (`POST /ui/login`). The server computes the same
//! from the configured secret and compares in constant time. A session is then
//! a random token in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` over TLS)
//! that expires with the session; it carries the key's principal and role, and
//! a CSRF token every mutation must send back in `X-CSRF-Token`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Principal;

/// How long a session lasts from sign-in, unless `api.session_ttl` says.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// How long a nonce may wait for its sign-in.
const NONCE_TTL: Duration = Duration::from_secs(120);
/// The most nonces outstanding (older ones are dropped first).
const MAX_NONCES: usize = 10_000;
/// The session cookie's name.
pub const COOKIE: &str = "vigil_session";

/// A signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
    pub expires: Instant,
}

/// The sessions and nonces of one server (in memory: a restart signs everyone
/// out, which for a security console is the safe side).
pub struct Sessions {
    by_token: Mutex<HashMap<[u8; 32], Session>>,
    nonces: Mutex<HashMap<String, Instant>>,
    ttl: Duration,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::with_ttl(SESSION_TTL)
    }
}

/// 32 random bytes, hex.
pub fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("the system's random source works");
    hex::encode(b)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The proof a browser sends for `nonce` and `access_key_id` under `secret`.
pub fn proof(secret: &str, nonce: &str, access_key_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("vigil-login:{nonce}:{access_key_id}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl Sessions {
    /// Sessions that last `ttl` from sign-in.
    pub fn with_ttl(ttl: Duration) -> Sessions {
        Sessions {
            by_token: Mutex::default(),
            nonces: Mutex::default(),
            ttl,
        }
    }

    /// How long a session lasts from sign-in.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new nonce for a sign-in.
    pub fn nonce(&self) -> String {
        let n = random_hex();
        let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        nonces.retain(|_, at| now.duration_since(*at) < NONCE_TTL);
        if nonces.len() >= MAX_NONCES {
            if let Some(oldest) = nonces
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone())
            {
                nonces.remove(&oldest);
            }
        }
        nonces.insert(n.clone(), now);
        n
    }

    /// Takes `nonce` if it was given out and is fresh (each one works once).
    pub fn take_nonce(&self, nonce: &str) -> bool {
        let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        match nonces.remove(nonce) {
            Some(at) => at.elapsed() < NONCE_TTL,
            None => false,
        }
    }

    /// Whether `given` is the proof for `nonce` under `secret`.
    pub fn proves(secret: &str, nonce: &str, access_key_id: &str, given: &str) -> bool {
        proof(secret, nonce, access_key_id)
            .as_bytes()
            .ct_eq(given.as_bytes())
            .into()
    }

    /// Opens a session for `principal`: its cookie token and the session.
    pub fn open(&self, principal: Principal) -> (String, Session) {
        let token = random_hex();
        let session = Session {
            principal,
            csrf: random_hex(),
            expires: Instant::now() + self.ttl,
        };
        let mut all = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        all.retain(|_, s| s.expires > now);
        all.insert(digest(&token), session.clone());
        (token, session)
    }

    /// The live session of a cookie token.
    pub fn get(&self, token: &str) -> Option<Session> {
        let all = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        all.get(&digest(token))
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    /// Ends a session.
    pub fn close(&self, token: &str) {
        self.by_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&digest(token));
    }
}

/// The session token in a `Cookie` header, if any.
pub fn token_of(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value for a session token lasting `ttl` (`secure` over TLS).
pub fn cookie(token: &str, ttl: Duration, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl.as_secs().max(1),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that clears the session cookie.
pub fn cleared(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    #[test]
    fn a_nonce_works_once_and_a_proof_only_for_its_secret() {
        let s = Sessions::default();
        let n = s.nonce();
        let p = proof("secret-1", &n, "AKIA1");
        assert!(Sessions::proves("secret-1", &n, "AKIA1", &p));
        assert!(!Sessions::proves("secret-2", &n, "AKIA1", &p));
        assert!(!Sessions::proves("secret-1", &n, "AKIA2", &p));
        assert!(s.take_nonce(&n));
        assert!(!s.take_nonce(&n), "a nonce is single use");
        assert!(!s.take_nonce("made-up"));
    }

    #[test]
    fn sessions_open_find_and_close() {
        let s = Sessions::default();
        let (token, session) = s.open(Principal {
            name: "ana".into(),
            role: Role::Analyst,
        });
        assert_eq!(s.get(&token).unwrap().csrf, session.csrf);
        assert_eq!(
            token_of(&format!("a=b; {COOKIE}={token}; c=d")),
            Some(token.as_str())
        );
        s.close(&token);
        assert!(s.get(&token).is_none());
        let c = cookie(&token, SESSION_TTL, true);
        assert!(
            c.contains("HttpOnly; SameSite=Strict; Max-Age=28800"),
            "{c}"
        );
        assert!(c.ends_with("; Secure"));
    }

    #[test]
    fn a_session_ends_when_it_expires() {
        let s = Sessions::with_ttl(Duration::from_millis(200));
        let (token, _) = s.open(Principal {
            name: "rob".into(),
            role: Role::Responder,
        });
        assert!(s.get(&token).is_some());
        std::thread::sleep(Duration::from_millis(250));
        assert!(s.get(&token).is_none(), "expired");
    }
}
