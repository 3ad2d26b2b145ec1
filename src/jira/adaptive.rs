//! The site's own rate, found from its answers: the profile's `rate_limit`
//! is the ceiling, not the speed (issue 16, `JIRA_API.md` "Rate limits").
//!
//! Jira Cloud limits API tokens per endpoint and method and does not
//! publish the numbers. So each endpoint family (`GET /search`, `POST
//! /issue`, `GET /users`, …) gets its own pace:
//! - a 429 (or 503 with `Retry-After`) halves it (multiplicative decrease),
//!   once per round: answers to requests sent before the last decrease do
//!   not decrease it again;
//! - `X-RateLimit-NearLimit: true`, or an `X-RateLimit-Remaining` under a
//!   fifth of `X-RateLimit-Limit`, slows it by a fifth, before any 429;
//! - every clean answer raises it a little (additive increase: about
//!   [`AdaptiveRate::increase_per_second`] per second of clean answers), up
//!   to the ceiling.
//!
//! A family seen for the first time starts at the pace the last decrease
//! of any family set, not at the ceiling: a site that limits per tenant,
//! or all endpoints alike, has already said how fast it goes, and a family
//! limited separately climbs from there on clean answers.
//!
//! Each family paces with a token bucket of at most the profile's `burst`
//! refilled at its rate, which never exceeds the ceiling; the client's
//! shared limiter of the ceiling stays in front of them all. So "never
//! faster than the rate" (at most `burst + rate_limit × t` requests in any
//! `t` seconds) holds as before, and the shared `Retry-After` gate stays.
//!
//! Time comes from `tokio::time`, so tests can run it on paused time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The slowest pace a family is ever held to, in requests per second.
pub const MIN_RATE: f64 = 0.2;

/// A decrease on a 429 or a 503 with `Retry-After`.
const THROTTLED_FACTOR: f64 = 0.5;

/// A decrease on an early warning (`NearLimit`, low `Remaining`).
const NEAR_LIMIT_FACTOR: f64 = 0.8;

/// What one answer says about the pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// 429, or 503 with `Retry-After`.
    Throttled,
    /// Answered, but the site says its limit is near.
    NearLimit,
    /// Answered with room to spare (or without rate headers).
    Clean,
    /// Says nothing about the rate (a 500, a timeout).
    Neutral,
}

impl Signal {
    /// Reads Atlassian's headers on an answer that was not throttled.
    pub fn from_headers(headers: &reqwest::header::HeaderMap, success: bool) -> Signal {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let number = |name: &str| text(name).and_then(|v| v.trim().parse::<f64>().ok());
        let near = text("x-ratelimit-nearlimit").is_some_and(|v| v.trim() == "true");
        let low = match (number("x-ratelimit-remaining"), number("x-ratelimit-limit")) {
            (Some(remaining), Some(limit)) if limit > 0.0 => remaining < 0.2 * limit,
            _ => false,
        };
        match (near || low, success) {
            (true, _) => Signal::NearLimit,
            (false, true) => Signal::Clean,
            (false, false) => Signal::Neutral,
        }
    }
}

/// How long a throttled answer asks to wait: `Retry-After`, or
/// `Beta-Retry-After` (the points quota's wait), the longer if both.
pub fn throttle_wait(
    headers: &reqwest::header::HeaderMap,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let wait = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| super::retry::parse_retry_after(v, now))
    };
    match (wait("retry-after"), wait("beta-retry-after")) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// `RateLimit-Reason` (e.g. `jira-burst-based`), fit for one line of a
/// message: control characters dropped, at most 100 characters.
pub fn limit_reason(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let text = headers.get("ratelimit-reason")?.to_str().ok()?;
    let clean: String = text.chars().filter(|c| !c.is_control()).take(100).collect();
    (!clean.trim().is_empty()).then(|| clean.trim().to_string())
}

/// The family of an endpoint: the method and the first path segment under
/// the REST base, `/user/…` and `/users/…` taken as one.
pub fn family(method: &str, path: &str) -> String {
    let rel = path
        .split_once("/rest/api/")
        .map(|(_, rest)| rest.split_once('/').map_or("", |(_, r)| r))
        .unwrap_or(path);
    let first = rel
        .trim_start_matches('/')
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let first = if first == "user" { "users" } else { first };
    format!("{method} /{first}")
}

/// A request's place in its family's rounds: the answer only decreases the
/// pace if no decrease came since it was sent.
#[derive(Debug, Clone)]
pub struct Ticket {
    family: String,
    round: u64,
}

#[derive(Debug)]
struct Family {
    /// Requests per second; infinite while unlimited and never throttled.
    rate: f64,
    lowest: f64,
    round: u64,
    tokens: f64,
    last: Instant,
    /// Send times of the last second, to find the pace of an unlimited run.
    recent: VecDeque<Instant>,
    throttled: u64,
    slowed: u64,
}

#[derive(Debug, Default)]
struct Families {
    by_name: HashMap<String, Family>,
    /// The pace the last decrease of any family set.
    hint: Option<f64>,
}

#[derive(Debug, Default)]
struct Pauses {
    until: Option<Instant>,
    total: Duration,
}

/// The adaptive pace of one client, shared by its clones.
#[derive(Debug)]
pub struct AdaptiveRate {
    ceiling: Option<f64>,
    burst: f64,
    families: Mutex<Families>,
    pauses: Mutex<Pauses>,
}

/// What the pace did over a run: what `cache_warm` reports and
/// `cache_status` shows.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateStats {
    /// The profile's `rate_limit` (requests per second); `None`: unlimited.
    pub ceiling: Option<f64>,
    /// The pace the run ended at: the slowest family's; `None` if no family
    /// was ever held below an unlimited ceiling.
    pub settled: Option<f64>,
    /// The slowest pace any family was held to during the run.
    pub lowest: Option<f64>,
    /// Answers that were 429, or 503 with `Retry-After`.
    pub throttled: u64,
    /// Early slow-downs on `X-RateLimit-NearLimit` or a low `X-RateLimit-Remaining`.
    pub slowed_early: u64,
    /// Wall time every worker was paused by `Retry-After`, in seconds.
    pub waited_seconds: f64,
    /// The pace each family that was slowed ended at.
    pub families: BTreeMap<String, f64>,
}

impl AdaptiveRate {
    /// A pace with this ceiling (`None`: unlimited) and burst.
    pub fn new(ceiling: Option<f64>, burst: u32) -> AdaptiveRate {
        AdaptiveRate {
            ceiling: ceiling.filter(|r| r.is_finite() && *r > 0.0),
            burst: f64::from(burst.max(1)),
            families: Mutex::new(Families::default()),
            pauses: Mutex::new(Pauses::default()),
        }
    }

    /// How fast a family's pace climbs back while answers are clean, in
    /// requests per second per second: a fiftieth of the ceiling, at least
    /// half a request per second.
    pub fn increase_per_second(&self, rate: f64) -> f64 {
        match self.ceiling {
            Some(c) => (c * 0.02).max(0.5),
            None => (rate * 0.02).max(0.5),
        }
    }

    fn fresh_family(&self, now: Instant, hint: Option<f64>) -> Family {
        let ceiling = self.ceiling.unwrap_or(f64::INFINITY);
        let rate = hint.map_or(ceiling, |h| h.min(ceiling));
        Family {
            rate,
            lowest: rate,
            round: 0,
            tokens: self.burst,
            last: now,
            recent: VecDeque::new(),
            throttled: 0,
            slowed: 0,
        }
    }

    /// Waits until `family` may send at its current pace, and answers the
    /// request's ticket.
    pub async fn until_ready(&self, family: &str) -> Ticket {
        loop {
            let wait =
                {
                    let now = Instant::now();
                    let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
                    let hint = families.hint;
                    let f = families
                        .by_name
                        .entry(family.to_string())
                        .or_insert_with(|| self.fresh_family(now, hint));
                    let ready = if f.rate.is_infinite() {
                        None
                    } else {
                        // The bucket shrinks with the pace, so that a slowed
                        // family does not burst back at the site.
                        let capacity = match self.ceiling {
                            Some(c) => (self.burst * f.rate / c).floor().max(1.0),
                            None => 1.0,
                        };
                        let elapsed = now.saturating_duration_since(f.last).as_secs_f64();
                        f.tokens = (f.tokens + elapsed * f.rate).min(capacity);
                        f.last = now;
                        if f.tokens >= 1.0 {
                            f.tokens -= 1.0;
                            None
                        } else {
                            // A rate too low for a `Duration` waits "for ever".
                            Some(
                                Duration::try_from_secs_f64((1.0 - f.tokens) / f.rate)
                                    .unwrap_or(Duration::MAX),
                            )
                        }
                    };
                    if ready.is_none() {
                        f.recent.push_back(now);
                        while f.recent.front().is_some_and(|t| {
                            now.saturating_duration_since(*t) > Duration::from_secs(1)
                        }) {
                            f.recent.pop_front();
                        }
                        return Ticket {
                            family: family.to_string(),
                            round: f.round,
                        };
                    }
                    ready
                };
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Adjusts the pace of the ticket's family to what its answer said.
    pub fn observe(&self, ticket: &Ticket, signal: Signal) {
        let mut guard = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let families = &mut *guard;
        let Some(f) = families.by_name.get_mut(&ticket.family) else {
            return;
        };
        let before = f.round;
        let decrease = |f: &mut Family, factor: f64| {
            if ticket.round != f.round {
                return; // sent before the last decrease: already counted
            }
            // An unlimited run starts from the pace it was sending at.
            let from = if f.rate.is_infinite() {
                (f.recent.len() as f64).max(1.0)
            } else {
                f.rate
            };
            f.rate = (from * factor).max(MIN_RATE);
            f.lowest = f.lowest.min(f.rate);
            f.round += 1;
            f.tokens = f.tokens.min(1.0);
        };
        match signal {
            Signal::Throttled => {
                f.throttled += 1;
                decrease(f, THROTTLED_FACTOR);
            }
            Signal::NearLimit => {
                if ticket.round == f.round {
                    f.slowed += 1;
                }
                decrease(f, NEAR_LIMIT_FACTOR);
            }
            Signal::Clean if f.rate.is_finite() => {
                // About `increase_per_second` per second at this pace.
                let step = self.increase_per_second(f.rate) / f.rate.max(MIN_RATE);
                f.rate += step;
                match self.ceiling {
                    Some(c) => f.rate = f.rate.min(c),
                    // Unlimited: back to no pacing once far above where it
                    // was throttled.
                    None if f.rate > 64.0 * f.lowest.max(1.0) => f.rate = f64::INFINITY,
                    None => {}
                }
            }
            Signal::Clean | Signal::Neutral => {}
        }
        if f.round != before {
            families.hint = Some(f.rate);
        }
    }

    /// Records that every worker pauses until `wait` from now; overlapping
    /// pauses count once.
    pub fn note_pause(&self, wait: Duration) {
        let now = Instant::now();
        let until = now + wait;
        let mut p = self.pauses.lock().unwrap_or_else(|e| e.into_inner());
        let start = match p.until {
            Some(u) if u > now => u,
            _ => now,
        };
        if until > start {
            p.total += until - start;
            p.until = Some(until);
        }
    }

    /// The figures so far.
    pub fn stats(&self) -> RateStats {
        let guard = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let families = &guard.by_name;
        let finite = |r: f64| r.is_finite().then_some(r);
        let slowed: BTreeMap<String, f64> = families
            .iter()
            .filter(|(_, f)| f.lowest < self.ceiling.unwrap_or(f64::INFINITY))
            .filter_map(|(name, f)| Some((name.clone(), finite(f.rate)?)))
            .collect();
        let settled = slowed.values().copied().reduce(f64::min).or(self.ceiling);
        let lowest = families
            .values()
            .filter_map(|f| finite(f.lowest))
            .reduce(f64::min)
            .or(self.ceiling);
        let waited = self.pauses.lock().unwrap_or_else(|e| e.into_inner()).total;
        RateStats {
            ceiling: self.ceiling,
            settled,
            lowest,
            throttled: families.values().map(|f| f.throttled).sum(),
            slowed_early: families.values().map(|f| f.slowed).sum(),
            waited_seconds: waited.as_secs_f64(),
            families: slowed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn families_are_the_method_and_the_first_segment_under_the_rest_base() {
        assert_eq!(family("GET", "/rest/api/3/search/jql"), "GET /search");
        assert_eq!(family("POST", "/rest/api/3/issue/bulkfetch"), "POST /issue");
        assert_eq!(family("GET", "/jira/rest/api/2/user/search"), "GET /users");
        assert_eq!(family("GET", "/rest/api/3/users/search"), "GET /users");
        assert_eq!(family("GET", "/rest/api/3/field"), "GET /field");
    }

    #[test]
    fn atlassians_headers_warn_before_a_429() {
        let near = headers(&[("x-ratelimit-nearlimit", "true")]);
        assert_eq!(Signal::from_headers(&near, true), Signal::NearLimit);
        let low = headers(&[
            ("x-ratelimit-limit", "100"),
            ("x-ratelimit-remaining", "19"),
        ]);
        assert_eq!(Signal::from_headers(&low, true), Signal::NearLimit);
        let roomy = headers(&[
            ("x-ratelimit-limit", "100"),
            ("x-ratelimit-remaining", "20"),
        ]);
        assert_eq!(Signal::from_headers(&roomy, true), Signal::Clean);
        assert_eq!(Signal::from_headers(&HeaderMap::new(), true), Signal::Clean);
        assert_eq!(
            Signal::from_headers(&HeaderMap::new(), false),
            Signal::Neutral
        );
    }

    #[test]
    fn beta_retry_after_is_honoured_and_the_longer_wait_wins() {
        let now = chrono::Utc::now();
        let both = headers(&[("retry-after", "2"), ("beta-retry-after", "7")]);
        assert_eq!(throttle_wait(&both, now), Some(Duration::from_secs(7)));
        let beta = headers(&[("beta-retry-after", "3")]);
        assert_eq!(throttle_wait(&beta, now), Some(Duration::from_secs(3)));
        assert_eq!(throttle_wait(&HeaderMap::new(), now), None);
        let reason = headers(&[("ratelimit-reason", "jira-quota-tenant-based")]);
        assert_eq!(
            limit_reason(&reason).as_deref(),
            Some("jira-quota-tenant-based")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_halves_the_pace_once_per_round() {
        let rate = AdaptiveRate::new(Some(100.0), 10);
        let a = rate.until_ready("GET /field").await;
        let b = rate.until_ready("GET /field").await;
        rate.observe(&a, Signal::Throttled);
        rate.observe(&b, Signal::Throttled); // sent before the decrease
        let stats = rate.stats();
        assert_eq!(stats.settled, Some(50.0));
        assert_eq!(stats.throttled, 2);
        // A new family starts where the site was last found, and climbs
        // on its own.
        let c = rate.until_ready("GET /search").await;
        rate.observe(&c, Signal::Clean);
        let search = rate.stats().families["GET /search"];
        assert!(search > 50.0 && search < 51.0, "{search}");
        // A request sent after the decrease may decrease it again.
        let d = rate.until_ready("GET /field").await;
        rate.observe(&d, Signal::Throttled);
        assert_eq!(rate.stats().settled, Some(25.0));
    }

    #[tokio::test(start_paused = true)]
    async fn clean_answers_raise_the_pace_back_to_the_ceiling_and_never_above() {
        let rate = AdaptiveRate::new(Some(20.0), 5);
        let t = rate.until_ready("GET /field").await;
        rate.observe(&t, Signal::Throttled);
        let mut last = rate.stats().settled.unwrap();
        assert_eq!(last, 10.0);
        for _ in 0..400 {
            let t = rate.until_ready("GET /field").await;
            rate.observe(&t, Signal::Clean);
            let now = rate.stats().settled.unwrap();
            assert!(now >= last && now <= 20.0, "{last} -> {now}");
            last = now;
        }
        assert_eq!(last, 20.0);
    }

    /// A site that admits `per_second` with `burst`, on tokio's clock.
    struct Site {
        per_second: f64,
        burst: f64,
        tokens: f64,
        last: Instant,
    }

    impl Site {
        fn admit(&mut self) -> Signal {
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
            self.last = now;
            if self.tokens < 1.0 {
                return Signal::Throttled;
            }
            self.tokens -= 1.0;
            if self.tokens < 0.2 * self.burst {
                Signal::NearLimit
            } else {
                Signal::Clean
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_pace_falls_under_a_sites_limit_keeps_the_ceilings_promise_and_rises_once_it_lifts()
    {
        let rate = AdaptiveRate::new(Some(100.0), 10);
        let mut site = Site {
            per_second: 20.0,
            burst: 10.0,
            tokens: 10.0,
            last: Instant::now(),
        };
        let start = Instant::now();
        let mut sent = Vec::new();
        let mut throttled = 0;
        for _ in 0..600 {
            let ticket = rate.until_ready("GET /field").await;
            sent.push(Instant::now());
            let signal = site.admit();
            if signal == Signal::Throttled {
                throttled += 1;
                // The client's gate: every worker waits out Retry-After: 1.
                rate.note_pause(Duration::from_secs(1));
                rate.observe(&ticket, signal);
                tokio::time::sleep(Duration::from_secs(1)).await;
            } else {
                rate.observe(&ticket, signal);
            }
            tokio::time::sleep(Duration::from_millis(5)).await; // latency
        }
        let under = rate.stats();
        assert!(under.lowest.unwrap() < 20.0, "{under:?}");
        assert!(under.settled.unwrap() <= 25.0, "{under:?}");
        assert!(throttled * 20 <= 600, "{throttled} of 600 answered 429");
        // Never faster than the ceiling: at most burst + 100 × t in any window.
        for (i, a) in sent.iter().enumerate() {
            for (j, b) in sent.iter().enumerate().skip(i) {
                let t = b.duration_since(*a).as_secs_f64();
                assert!((j - i + 1) as f64 <= 10.0 + 100.0 * t + 1e-9, "{i}..{j}");
            }
        }
        assert!(start.elapsed() > Duration::from_secs(20));

        // The limit lifts: clean answers bring the pace back up.
        site.per_second = 10_000.0;
        site.burst = 10_000.0;
        for _ in 0..3_000 {
            let ticket = rate.until_ready("GET /field").await;
            rate.observe(&ticket, site.admit());
        }
        let lifted = rate.stats();
        assert_eq!(lifted.settled, Some(100.0), "{lifted:?}");
        assert_eq!(lifted.throttled, throttled);
    }

    #[tokio::test(start_paused = true)]
    async fn overlapping_pauses_count_once() {
        let rate = AdaptiveRate::new(None, 1);
        rate.note_pause(Duration::from_secs(2));
        rate.note_pause(Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        rate.note_pause(Duration::from_secs(2));
        assert_eq!(rate.stats().waited_seconds, 3.0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unlimited_run_is_slowed_from_the_pace_it_was_sending_at() {
        let rate = AdaptiveRate::new(None, 1);
        let mut last = None;
        for _ in 0..40 {
            last = Some(rate.until_ready("GET /field").await);
            tokio::time::advance(Duration::from_millis(25)).await;
        }
        assert_eq!(rate.stats().settled, None);
        rate.observe(&last.unwrap(), Signal::Throttled);
        let s = rate.stats().settled.unwrap();
        assert!(s > 1.0 && s <= 20.0, "{s}");
    }
}
