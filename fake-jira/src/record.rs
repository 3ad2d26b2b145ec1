//! The log of every request the fake received, in arrival order, with the
//! status it was answered: what tests assert on ("the client never exceeded
//! the rate", "the second page was asked once", "no request after a 401").

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query: `/rest/api/3/search/jql`.
    pub path: String,
    /// The raw query string without `?` (empty if none), still percent-encoded.
    pub query: String,
    /// The request body as text (lossy UTF-8), `None` if it was empty.
    pub body: Option<String>,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
    /// When the request arrived (before any latency, fault or rate limit).
    pub at: Instant,
    /// The status answered; 0 while in flight, and for requests that got no
    /// answer at all ([`FaultKind::Reset`](crate::FaultKind::Reset),
    /// [`FaultKind::Hang`](crate::FaultKind::Hang)).
    pub status: u16,
}

/// The shared, append-only request log.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestLog {
    inner: Arc<Mutex<Entries>>,
}

/// The requests, each with a serial number that survives [`RequestLog::clear`]
/// so that a late status never lands on the wrong entry.
#[derive(Debug, Default)]
struct Entries {
    next_serial: u64,
    list: Vec<(u64, RecordedRequest)>,
}

impl RequestLog {
    /// Appends a request and returns its serial, for [`RequestLog::set_status`].
    pub(crate) fn push(&self, request: RecordedRequest) -> u64 {
        let mut entries = self.lock();
        let serial = entries.next_serial;
        entries.next_serial += 1;
        entries.list.push((serial, request));
        serial
    }

    /// Records the status a request was answered with; a no-op if the log was
    /// cleared since the request arrived.
    pub(crate) fn set_status(&self, serial: u64, status: u16) {
        let mut entries = self.lock();
        if let Ok(i) = entries.list.binary_search_by_key(&serial, |(s, _)| *s) {
            entries.list[i].1.status = status;
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        self.lock().list.iter().map(|(_, r)| r.clone()).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().list.len()
    }

    pub(crate) fn count_path(&self, prefix: &str) -> usize {
        self.lock()
            .list
            .iter()
            .filter(|(_, r)| r.path.starts_with(prefix))
            .count()
    }

    pub(crate) fn clear(&self) {
        self.lock().list.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A stretch of time in which requests arrived faster than a rate allows.
#[derive(Debug, Clone, PartialEq)]
pub struct RateViolation {
    /// Requests received in the window, both ends included.
    pub requests: usize,
    /// From the first to the last of them.
    pub window: Duration,
    /// What the rate allowed in that window: `burst + per_second × window`.
    pub allowed: f64,
}

impl fmt::Display for RateViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests within {:?}, where at most {:.2} are allowed",
            self.requests, self.window, self.allowed
        )
    }
}

/// The window in which `requests` most exceed "at most `burst + per_second ×
/// t` requests in any `t` seconds", if there is one. Every request counts,
/// refused ones included: the client sent them.
///
/// `jitter` is how much earlier than it was sent a request may be seen to
/// arrive relative to another (scheduling on the client and on this
/// server): each window is judged as if it were that much longer. A client
/// that really outruns its rate exceeds the allowance by whole requests.
pub(crate) fn rate_violation(
    requests: &[RecordedRequest],
    per_second: f64,
    burst: u32,
    jitter: Duration,
) -> Option<RateViolation> {
    let mut times: Vec<Instant> = requests.iter().map(|r| r.at).collect();
    times.sort();
    let mut worst: Option<(f64, RateViolation)> = None;
    for (i, first) in times.iter().enumerate() {
        for (j, last) in times.iter().enumerate().skip(i) {
            let window = last.duration_since(*first);
            let allowed = f64::from(burst) + per_second * (window + jitter).as_secs_f64();
            let count = j - i + 1;
            let excess = count as f64 - allowed;
            if excess > 1e-9 && worst.as_ref().is_none_or(|(e, _)| excess > *e) {
                worst = Some((
                    excess,
                    RateViolation {
                        requests: count,
                        window,
                        allowed,
                    },
                ));
            }
        }
    }
    worst.map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, millis: &[u64]) -> Vec<RecordedRequest> {
        millis
            .iter()
            .map(|&m| RecordedRequest {
                method: "GET".into(),
                path: "/".into(),
                query: String::new(),
                body: None,
                authorization: None,
                at: start + Duration::from_millis(m),
                status: 200,
            })
            .collect()
    }

    #[test]
    fn requests_paced_at_the_rate_after_a_burst_are_within_it() {
        let start = Instant::now();
        let paced = at(start, &[0, 0, 500, 1000, 1500, 2000]);
        assert_eq!(rate_violation(&paced, 2.0, 2, Duration::ZERO), None);
    }

    #[test]
    fn a_second_burst_too_soon_is_found() {
        let start = Instant::now();
        let bursty = at(start, &[0, 0, 100, 100, 100]);
        let v = rate_violation(&bursty, 2.0, 2, Duration::ZERO).expect("a violation");
        assert_eq!(v.requests, 5);
        assert_eq!(v.window, Duration::from_millis(100));
        assert!(v.to_string().starts_with("5 requests within"));
    }

    #[test]
    fn status_survives_only_until_the_log_is_cleared() {
        let log = RequestLog::default();
        let start = Instant::now();
        let first = log.push(at(start, &[0]).remove(0));
        log.set_status(first, 429);
        assert_eq!(log.snapshot()[0].status, 429);
        log.clear();
        let second = log.push(at(start, &[1]).remove(0));
        log.set_status(first, 500);
        assert_eq!(log.snapshot()[0].status, 200);
        log.set_status(second, 201);
        assert_eq!(log.snapshot()[0].status, 201);
        assert_eq!(log.count_path("/"), 1);
    }
}
