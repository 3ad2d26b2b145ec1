//! The server-side rate limit and the check that a client kept to a rate.

use std::time::Duration;

use chrono::DateTime;
use fake_jira::{FakeJira, Flavor};

use crate::common::{authed, client, get};

#[tokio::test]
async fn over_the_burst_answers_429_with_jiras_headers() {
    let jira = FakeJira::builder(Flavor::Cloud).rate_limit(0.5, 2).start();
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
    assert!((1..=2).contains(&retry_after), "{retry_after}");
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
    let jira = FakeJira::builder(Flavor::Cloud).rate_limit(2.0, 1).start();
    assert_eq!(get(&jira, "/rest/api/3/myself").await.0, 200);
    assert_eq!(get(&jira, "/rest/api/3/myself").await.0, 429);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get(&jira, "/rest/api/3/myself").await.0, 200);
}

#[tokio::test]
async fn the_rate_check_passes_a_paced_client_and_catches_a_burst() {
    let jira = FakeJira::builder(Flavor::Cloud).start();
    for _ in 0..3 {
        get(&jira, "/rest/api/2/serverInfo").await;
        tokio::time::sleep(Duration::from_millis(110)).await;
    }
    assert_eq!(jira.rate_violation(10.0, 2), None);
    for _ in 0..8 {
        get(&jira, "/rest/api/2/serverInfo").await;
    }
    let violation = jira.rate_violation(10.0, 2).expect("a burst of 8 at once");
    assert!(violation.requests > 3, "{violation}");
}
