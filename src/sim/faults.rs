//! The switchable faults of the simulated care systems (the FHIR server and Nexus): a queue of
//! faults the next requests get, and the request counters tests read.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A fault a simulated server answers a request with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 500 with an error body.
    ServerError,
    /// 429 with `Retry-After`.
    TooManyRequests { retry_after_secs: u64 },
    /// 503 with `Retry-After`.
    Unavailable { retry_after_secs: u64 },
    /// The normal answer, after a delay.
    Slow(Duration),
    /// 200 with the normal body cut in half.
    TruncatedPage,
    /// 401 as if the access token had expired, even if it is valid.
    ExpiredToken,
}

/// A cheap handle to switch faults on and read the request counters. The requests that can
/// get a fault are the FHIR server's searches and Nexus's API GETs; the token endpoint never
/// gets one.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    queue: Mutex<VecDeque<Fault>>,
    requests: AtomicU64,
    tokens: AtomicU64,
}

impl Faults {
    /// The next `n` requests (after those already queued) get `fault`.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        lock(&self.inner.queue).extend(std::iter::repeat_n(fault, n));
    }

    /// Forgets the queued faults.
    pub fn clear(&self) {
        lock(&self.inner.queue).clear();
    }

    /// Faults still queued.
    pub fn pending(&self) -> usize {
        lock(&self.inner.queue).len()
    }

    /// Requests received (including those answered with a fault or a 401).
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::SeqCst)
    }

    /// Token requests received (including refused ones).
    pub fn token_requests(&self) -> u64 {
        self.inner.tokens.load(Ordering::SeqCst)
    }

    /// Counts a request.
    pub(crate) fn count_request(&self) {
        self.inner.requests.fetch_add(1, Ordering::SeqCst);
    }

    /// The fault the request being answered gets, if one is queued.
    pub(crate) fn next_fault(&self) -> Option<Fault> {
        lock(&self.inner.queue).pop_front()
    }

    /// Counts a token request.
    pub(crate) fn count_token(&self) {
        self.inner.tokens.fetch_add(1, Ordering::SeqCst);
    }
}

/// Locks `m`, going on past a panic of another holder (a test's server keeps serving).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
