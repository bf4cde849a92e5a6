//! Sign-in sessions of the cockpit's page: a bearer token typed into the sign-in form once
//! gives a random session id in a cookie (`HttpOnly`, `SameSite=Strict`, path `/cockpit`),
//! so the token is never kept by the browser. Only the session id's SHA-256 is held, in
//! memory: a restart signs everyone out. Sessions expire; there are at most [`MAX_SESSIONS`].

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie's name.
pub const COOKIE: &str = "pg_cockpit";

/// The most sessions held; the oldest is dropped for a new one.
pub const MAX_SESSIONS: usize = 10_000;

/// The sessions: id digest → (principal index, expiry).
#[derive(Default)]
pub struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], (usize, Instant)>>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// A new session for principal `index`, lasting `ttl`; returns its id (64 hex characters).
    pub fn open(&self, index: usize, ttl: Duration) -> String {
        let id = hex::encode(rand::random::<[u8; 32]>());
        let now = Instant::now();
        let mut map = self.by_digest.lock().expect("sessions lock");
        map.retain(|_, (_, until)| *until > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, (_, u))| *u).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(digest(&id), (index, now + ttl));
        id
    }

    /// The principal index of a live session.
    pub fn principal(&self, id: &str) -> Option<usize> {
        let map = self.by_digest.lock().expect("sessions lock");
        map.get(&digest(id))
            .filter(|(_, until)| *until > Instant::now())
            .map(|(i, _)| *i)
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        self.by_digest
            .lock()
            .expect("sessions lock")
            .remove(&digest(id));
    }
}

/// The session id a request's `Cookie` header carries, if any.
pub fn cookie_of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_names_its_principal_until_it_expires_or_closes() {
        let s = Sessions::default();
        let id = s.open(3, Duration::from_secs(60));
        assert_eq!(s.principal(&id), Some(3));
        assert_eq!(s.principal(&"0".repeat(64)), None);
        s.close(&id);
        assert_eq!(s.principal(&id), None);
        let gone = s.open(1, Duration::ZERO);
        assert_eq!(s.principal(&gone), None);
    }

    #[test]
    fn the_cookie_is_found_among_others_and_must_look_like_an_id() {
        let mut h = axum::http::HeaderMap::new();
        let id = "ab".repeat(32);
        h.insert(
            axum::http::header::COOKIE,
            format!("a=1; {COOKIE}={id}; b=2").parse().unwrap(),
        );
        assert_eq!(cookie_of(&h), Some(id));
        h.insert(
            axum::http::header::COOKIE,
            format!("{COOKIE}=<script>").parse().unwrap(),
        );
        assert_eq!(cookie_of(&h), None);
    }
}
