//! The server-side rate limit: a token bucket like Jira Cloud's burst limits.
//! A client that honours its own limiter never meets it; one that does not
//! gets 429 with the headers Jira sends (`JIRA_API.md`, "Rate limits").
//! Time comes from the fake's [`Clock`](crate::Clock), so tests can move it
//! by hand rather than sleep.

use std::time::{Duration, Instant};

/// A token bucket: `burst` tokens at most, refilled at `per_second`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

/// What the bucket said about one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Admission {
    /// Let through; `remaining` whole tokens are left.
    Allowed { remaining: u32 },
    /// Refused; a token will be available after `wait`.
    Limited { wait: Duration },
}

impl TokenBucket {
    /// A full bucket at `now`. `per_second` must be > 0 and `burst` ≥ 1
    /// (clamped).
    pub(crate) fn new(per_second: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            per_second: if per_second.is_finite() && per_second > 0.0 {
                per_second
            } else {
                f64::MIN_POSITIVE
            },
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// The bucket size, sent as `X-RateLimit-Limit`.
    pub(crate) fn limit(&self) -> u32 {
        self.burst as u32
    }

    /// Takes a token if there is one. Refused requests take nothing.
    pub(crate) fn admit(&mut self, now: Instant) -> Admission {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Admission::Allowed {
                remaining: self.tokens.floor() as u32,
            }
        } else {
            let wait = (1.0 - self.tokens) / self.per_second;
            Admission::Limited {
                wait: Duration::from_secs_f64(wait.min(86_400.0)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_lets_a_burst_through_then_refuses() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 3, start);
        for left in [2, 1, 0] {
            assert_eq!(bucket.admit(start), Admission::Allowed { remaining: left });
        }
        match bucket.admit(start) {
            Admission::Limited { wait } => assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_never_above_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 2, start);
        bucket.admit(start);
        bucket.admit(start);
        let later = start + Duration::from_millis(100);
        assert_eq!(bucket.admit(later), Admission::Allowed { remaining: 0 });
        let much_later = later + Duration::from_secs(60);
        assert_eq!(
            bucket.admit(much_later),
            Admission::Allowed { remaining: 1 }
        );
    }
}
