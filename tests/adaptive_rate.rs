//! Issue 16, "adapt to the site's limit": against `fake-jira`'s own rate
//! limiting, a client whose `rate_limit` is far above the site's finds the
//! site's pace, gets few 429s, and speeds up again once the limit lifts.
//! Nothing here asserts a duration: requests and answers are counted.

mod common;

use std::time::Duration;

use common::*;
use fake_jira::{FakeJira, Flavor};
use futures::StreamExt;
use jira_cache::Deployment;
use jira_cache::jira::{Auth, ClientConfig, JiraClient, RetryPolicy};

fn client(fake: &FakeJira, rate: f64, burst: u32) -> JiraClient {
    JiraClient::new(ClientConfig {
        site: url::Url::parse(&fake.url()).unwrap(),
        deployment: Deployment::Cloud,
        auth: Auth::Basic {
            email: CLOUD_EMAIL.into(),
            token: CLOUD_TOKEN.into(),
        },
        rate_limit: Some(rate),
        burst,
        concurrency: 4,
        timeout: Duration::from_secs(30),
        ca_file: None,
        max_response: jira_cache::profile::DEFAULT_MAX_RESPONSE,
        retry: RetryPolicy::default(),
    })
    .unwrap()
}

/// Sends `n` GETs of `/field`, four at a time; every one must succeed.
async fn send(client: &JiraClient, n: usize) {
    let path = client.api("/field");
    let results: Vec<Result<serde_json::Value, _>> = futures::stream::iter(0..n)
        .map(|_| client.get::<serde_json::Value>(&path, &[]))
        .buffer_unordered(4)
        .collect()
        .await;
    for r in results {
        r.expect("every request ends in success");
    }
}

fn answered_429(fake: &FakeJira) -> usize {
    fake.requests().iter().filter(|r| r.status == 429).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_falls_under_the_sites_limit_and_rises_again_once_it_lifts() {
    let fake = FakeJira::builder(Flavor::Cloud)
        .rate_limit(20.0, 10)
        .start();
    let client = client(&fake, 100.0, 10);

    send(&client, 120).await;
    let limited = client.rate_stats();
    let sent = fake.request_count();
    let refused = answered_429(&fake);
    assert!(
        limited.lowest.unwrap() < 20.0,
        "the pace fell under the site's 20/s: {limited:?}"
    );
    assert!(limited.settled.unwrap() < 100.0, "{limited:?}");
    assert!(
        refused * 10 <= sent,
        "{refused} of {sent} answered 429: {limited:?}"
    );
    assert_eq!(limited.throttled, refused as u64);
    assert_eq!(
        fake.rate_violation(100.0, 10),
        None,
        "never faster than rate_limit"
    );

    // The site lifts its limit: clean answers raise the pace again.
    fake.set_rate_limit(10_000.0, 10_000);
    send(&client, 300).await;
    let lifted = client.rate_stats();
    assert!(
        lifted.settled.unwrap() > limited.settled.unwrap() + 10.0,
        "the pace rose: {limited:?} -> {lifted:?}"
    );
    assert_eq!(answered_429(&fake), refused, "no 429 once the limit lifted");
    assert_eq!(fake.rate_violation(100.0, 10), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_throttling_error_names_the_sites_rate_limit_reason() {
    let fake = FakeJira::builder(Flavor::Cloud).rate_limit(0.01, 1).start();
    let client = JiraClient::new(ClientConfig {
        retry: RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
        ..config_of(&fake)
    })
    .unwrap();
    let path = client.api("/field");
    client
        .get::<serde_json::Value>(&path, &[])
        .await
        .expect("the first request fits the burst");
    let err = client
        .get::<serde_json::Value>(&path, &[])
        .await
        .expect_err("the second is refused");
    let message = err.to_string();
    assert!(
        message.contains("RateLimit-Reason: jira-burst-based"),
        "{message}"
    );
    assert!(client.rate_stats().throttled == 1);
}

fn config_of(fake: &FakeJira) -> ClientConfig {
    ClientConfig {
        site: url::Url::parse(&fake.url()).unwrap(),
        deployment: Deployment::Cloud,
        auth: Auth::Basic {
            email: CLOUD_EMAIL.into(),
            token: CLOUD_TOKEN.into(),
        },
        rate_limit: Some(100.0),
        burst: 10,
        concurrency: 1,
        timeout: Duration::from_secs(30),
        ca_file: None,
        max_response: jira_cache::profile::DEFAULT_MAX_RESPONSE,
        retry: RetryPolicy::default(),
    }
}

#[test]
fn a_warm_above_the_sites_limit_completes_and_reports_the_pace_it_settled_at() {
    let fake = FakeJira::builder(Flavor::Cloud).rate_limit(5.0, 3).start();
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "deployment = \"cloud\"\nrate_limit = 100\nburst = 10",
    );
    let out = run_ok(&mut sb.warm(&["--projects", "--fields", "--users", "--profile", "test"]));
    assert!(
        stdout(&out).contains("Site rate limit: "),
        "the run's summary says how the site limited it: {}",
        text(&out)
    );
    let status = sb.status_json();
    let run = &status["runs"][0];
    let rate = &run["rate"];
    assert_eq!(rate["ceiling"], 100.0);
    assert!(rate["settled"].as_f64().unwrap() < 100.0, "{run}");
    assert!(rate["lowest"].as_f64().unwrap() < 100.0, "{run}");
    assert!(
        run["throttled"].as_u64().unwrap() + rate["slowed_early"].as_u64().unwrap() > 0,
        "{run}"
    );
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/cache_status.schema.json");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let index = compiler
        .compile(path.to_str().unwrap(), &mut schemas)
        .unwrap();
    schemas
        .validate(&status, index)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let human = stdout(&run_ok(&mut sb.status(&["--profile", "test"])));
    assert!(human.contains("The site limited the last run"), "{human}");
}
