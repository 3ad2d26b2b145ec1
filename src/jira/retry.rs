//! The one retry policy of the client, and the gate every worker waits at.
//!
//! What is retried, and how (see `CONVENTIONS.md`, "Retries"):
//!
//! | answer | retried? | wait |
//! |---|---|---|
//! | 429, or 503 with `Retry-After` | yes | `Retry-After` (seconds or HTTP date), shared by every worker through the [`Gate`]; above [`RetryPolicy::max_retry_after`] the run stops with the throttling error |
//! | 503 without `Retry-After`, 500, 502, 504 and other 5xx | yes | capped exponential backoff with jitter (×0.7–1.3) |
//! | timeouts, connection errors, a body cut off mid-read | yes | capped exponential backoff with jitter |
//! | 400, 401, 403, 404, 410 and other 4xx | never | — |
//!
//! At most [`RetryPolicy::max_retries`] retries per request (4 by default).
//! Every retried request passes the rate limiter again; the caller's loop in
//! `client.rs` does that, this module only decides.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the client retries. Built once per run, shared by every request.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries per request after the first attempt.
    pub max_retries: u32,
    /// The first backoff; each further retry doubles it.
    pub base_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this ends the run with the throttling error.
    pub max_retry_after: Duration,
    /// Told before each retry of a request that could not reach the site
    /// (refused, unresolved, timed out), so that a caller can show it.
    pub on_connect_retry: Option<ConnectRetryHook>,
}

/// A request that could not reach the site, about to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRetry {
    /// The site's base URL.
    pub site: String,
    /// The attempt about to start: 2 for the first retry.
    pub attempt: u32,
    /// The most attempts a request gets.
    pub attempts: u32,
    /// Why the last attempt failed, in a few words.
    pub cause: String,
}

/// What a [`RetryPolicy`] tells of each [`ConnectRetry`]: `cache_warm`
/// says `connecting to … (attempt 2 of 5)` on a terminal with it. Called
/// from every worker: it must be cheap, and may be called several times for
/// the same attempt number.
#[derive(Clone)]
pub struct ConnectRetryHook(pub Arc<dyn Fn(&ConnectRetry) + Send + Sync>);

impl std::fmt::Debug for ConnectRetryHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectRetryHook")
    }
}

impl Default for RetryPolicy {
    /// Atlassian's published advice: about 4 retries, exponential backoff
    /// from a couple of seconds, capped near 30 s; `Retry-After` up to 60 s.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            on_connect_retry: None,
        }
    }
}

/// What to do after one failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this long (a backoff, for this request only).
    RetryAfterBackoff(Duration),
    /// The server asked every client to wait: close the gate this long, then retry.
    RetryAfterGate(Duration),
    /// Do not retry.
    GiveUp,
}

/// What an attempt ended with, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP status that is not a success.
    Status(u16),
    /// A throttling status (429, or 503 with `Retry-After`) and its wait.
    Throttled(Option<Duration>),
    /// Timeout, connection error, or a body that could not be read in full.
    Transport,
}

impl RetryPolicy {
    /// Decides whether attempt number `attempt` (0 for the first) is retried.
    pub fn decide(&self, attempt: u32, outcome: Outcome) -> Decision {
        if attempt >= self.max_retries {
            return Decision::GiveUp;
        }
        match outcome {
            Outcome::Throttled(Some(wait)) if wait > self.max_retry_after => Decision::GiveUp,
            Outcome::Throttled(Some(wait)) => Decision::RetryAfterGate(wait),
            Outcome::Throttled(None) => Decision::RetryAfterGate(self.backoff(attempt)),
            Outcome::Status(s) if (500..600).contains(&s) => {
                Decision::RetryAfterBackoff(self.backoff(attempt))
            }
            Outcome::Status(_) => Decision::GiveUp,
            Outcome::Transport => Decision::RetryAfterBackoff(self.backoff(attempt)),
        }
    }

    /// The backoff before retry `attempt + 1`: `base × 2^attempt`, capped, ×0.7–1.3.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_backoff.saturating_mul(1u32 << attempt.min(16));
        let capped = exp.min(self.max_backoff);
        capped.mul_f64(0.7 + 0.6 * jitter_unit())
    }
}

/// A number in [0, 1) that differs between calls; jitter needs no better.
fn jitter_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Reads a `Retry-After` value: delay seconds, or an HTTP date (RFC 9110).
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>()
        && secs >= 0.0
    {
        // The server chooses the number: `1e20` or `1e300` does not fit a
        // `Duration` (`from_secs_f64` would panic); it is "longer than we
        // ever wait", which the policy turns into the throttling error.
        return Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// One shared "not before" instant: when the server says wait, every worker
/// waits, not only the one that got the 429.
#[derive(Debug, Default)]
pub struct Gate {
    not_before: Mutex<Option<Instant>>,
}

impl Gate {
    /// Closes the gate for `wait` from now (never shortens an existing closure).
    pub fn close_for(&self, wait: Duration) {
        // `Instant + Duration` panics on overflow; a wait that long is "closed
        // for as long as anyone will run", a year stands for it.
        let now = Instant::now();
        let until = now
            .checked_add(wait)
            .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
            .unwrap_or(now);
        let mut guard = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none_or(|t| t < until) {
            *guard = Some(until);
        }
    }

    /// Waits until the gate is open.
    pub async fn wait_open(&self) {
        loop {
            let until = *self.not_before.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    #[test]
    fn client_errors_are_never_retried() {
        for s in [400, 401, 403, 404, 410, 422] {
            assert_eq!(
                policy().decide(0, Outcome::Status(s)),
                Decision::GiveUp,
                "status {s}"
            );
        }
    }

    #[test]
    fn server_errors_and_transport_failures_back_off() {
        for o in [
            Outcome::Status(500),
            Outcome::Status(502),
            Outcome::Status(503),
            Outcome::Transport,
        ] {
            assert!(
                matches!(policy().decide(0, o), Decision::RetryAfterBackoff(_)),
                "{o:?}"
            );
        }
    }

    #[test]
    fn throttling_closes_the_gate_for_the_retry_after() {
        let d = policy().decide(1, Outcome::Throttled(Some(Duration::from_secs(3))));
        assert_eq!(d, Decision::RetryAfterGate(Duration::from_secs(3)));
    }

    #[test]
    fn a_retry_after_above_the_limit_gives_up() {
        let d = policy().decide(0, Outcome::Throttled(Some(Duration::from_secs(61))));
        assert_eq!(d, Decision::GiveUp);
    }

    #[test]
    fn at_most_four_retries_per_request() {
        let p = policy();
        assert!(matches!(
            p.decide(3, Outcome::Status(500)),
            Decision::RetryAfterBackoff(_)
        ));
        assert_eq!(p.decide(4, Outcome::Status(500)), Decision::GiveUp);
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered_within_thirty_percent() {
        let p = policy();
        for attempt in 0..8 {
            let nominal = (p.base_backoff * (1 << attempt)).min(p.max_backoff);
            let b = p.backoff(attempt);
            assert!(
                b >= nominal.mul_f64(0.69) && b <= nominal.mul_f64(1.31),
                "{attempt}: {b:?}"
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-26T06:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Thu, 26 Nov 2026 06:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Thu, 26 Nov 2026 05:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn a_retry_after_too_large_for_a_duration_is_the_longest_wait_not_a_panic() {
        let now = chrono::Utc::now();
        for v in ["1e20", "99999999999999999999", "1e300", "inf", "1e400"] {
            assert_eq!(parse_retry_after(v, now), Some(Duration::MAX), "{v}");
            assert_eq!(
                policy().decide(0, Outcome::Throttled(parse_retry_after(v, now))),
                Decision::GiveUp,
                "{v}"
            );
        }
        assert_eq!(parse_retry_after("NaN", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[tokio::test]
    async fn a_closed_gate_holds_every_waiter_until_it_opens() {
        let gate = Gate::default();
        gate.close_for(Duration::from_millis(50));
        gate.close_for(Duration::from_millis(10)); // never shortens
        let start = Instant::now();
        gate.wait_open().await;
        assert!(start.elapsed() >= Duration::from_millis(45));
    }
}
