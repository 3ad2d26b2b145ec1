//! The server-side rate limit and the check that a client kept to a rate.

use std::time::Duration;

use chrono::DateTime;
use fake_jira::{Clock, FakeJira, Flavor};

use crate::common::{authed, client, get};

#[tokio::test]
async fn over_the_burst_answers_429_with_jiras_headers() {
    let jira = FakeJira::builder(Flavor::Cloud)
        .rate_limit(0.5, 2)
        .clock(Clock::manual())
        .start();
    let url = format!("{}/rest/api/3/field", jira.url());
    let first = authed(&jira, client().get(&url))
        .send()
        .await
        .expect("an answer");
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit"], "2");
    assert_eq!(first.headers()["x-ratelimit-remaining"], "1");
    let second = authed(&jira, client().get(&url))
        .send()
        .await
        .expect("an answer");
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["x-ratelimit-nearlimit"], "true");
    let refused = authed(&jira, client().get(&url))
        .send()
        .await
        .expect("an answer");
    assert_eq!(refused.status(), 429);
    let headers = refused.headers();
    let retry_after: u64 = headers["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert_eq!(retry_after, 2, "a token comes back in 2 s at 0.5/s");
    assert_eq!(headers["x-ratelimit-limit"], "2");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    assert_eq!(headers["ratelimit-reason"], "jira-burst-based");
    let reset = headers["x-ratelimit-reset"].to_str().expect("text");
    assert!(DateTime::parse_from_rfc3339(reset).is_ok(), "{reset}");
    let statuses: Vec<u16> = jira.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 429]);
}

#[tokio::test]
async fn tokens_come_back_at_the_rate() {
    let clock = Clock::manual();
    let jira = FakeJira::builder(Flavor::Cloud)
        .rate_limit(2.0, 1)
        .clock(clock.clone())
        .start();
    assert_eq!(get(&jira, "/rest/api/3/myself").await.0, 200);
    assert_eq!(get(&jira, "/rest/api/3/myself").await.0, 429);
    clock.advance(Duration::from_millis(499));
    assert_eq!(get(&jira, "/rest/api/3/myself").await.0, 429);
    clock.advance(Duration::from_millis(1));
    assert_eq!(get(&jira, "/rest/api/3/myself").await.0, 200);
    assert_eq!(jira.count_status(429), 2);
}

/// Issue 15: this once slept between requests and failed on a loaded
/// machine; the fake's clock now moves only when the test moves it.
#[tokio::test]
async fn the_rate_check_passes_a_paced_client_and_catches_a_burst() {
    let clock = Clock::manual();
    let jira = FakeJira::builder(Flavor::Cloud)
        .clock(clock.clone())
        .start();
    for _ in 0..3 {
        get(&jira, "/rest/api/2/serverInfo").await;
        clock.advance(Duration::from_millis(110));
    }
    assert_eq!(jira.rate_violation_within(10.0, 2, Duration::ZERO), None);
    for _ in 0..8 {
        get(&jira, "/rest/api/2/serverInfo").await;
    }
    let violation = jira
        .rate_violation_within(10.0, 2, Duration::ZERO)
        .expect("a burst of 8 at once");
    assert_eq!(violation.requests, 8, "{violation}");
    assert_eq!(violation.window, Duration::ZERO);
}

#[tokio::test]
async fn a_throttled_site_says_retry_after_1_at_20_per_second() {
    let clock = Clock::manual();
    let jira = FakeJira::builder(Flavor::Cloud)
        .rate_limit(20.0, 10)
        .clock(clock.clone())
        .start();
    let url = format!("{}/rest/api/3/field", jira.url());
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..12 {
        let response = authed(&jira, client().get(&url))
            .send()
            .await
            .expect("an answer");
        statuses.push(response.status().as_u16());
        last = Some(response);
    }
    assert_eq!(statuses, [[200; 10].as_slice(), &[429, 429]].concat());
    let refused = last.expect("a response");
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(refused.headers()["beta-retry-after"], "1");
    assert_eq!(refused.headers()["ratelimit-reason"], "jira-burst-based");
    // 20 per second: one more request every 50 ms.
    clock.advance(Duration::from_millis(50));
    assert_eq!(get(&jira, "/rest/api/3/field").await.0, 200);
    assert_eq!(get(&jira, "/rest/api/3/field").await.0, 429);
}

#[tokio::test]
async fn retry_after_can_be_fixed_and_atlassian_headers_left_out() {
    let jira = FakeJira::builder(Flavor::DataCenter)
        .rate_limit(0.1, 1)
        .retry_after(3)
        .atlassian_rate_limit_headers(false)
        .clock(Clock::manual())
        .start();
    let url = format!("{}/rest/api/2/field", jira.url());
    let first = authed(&jira, client().get(&url))
        .send()
        .await
        .expect("an answer");
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("x-ratelimit-remaining").is_none());
    let refused = authed(&jira, client().get(&url))
        .send()
        .await
        .expect("an answer");
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "3", "not the 10 s wait");
    for name in ["x-ratelimit-limit", "ratelimit-reason", "beta-retry-after"] {
        assert!(refused.headers().get(name).is_none(), "{name}");
    }
}
