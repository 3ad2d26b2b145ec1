//! Every fault kind, as a client meets it.

use std::time::{Duration, Instant, SystemTime};

use fake_jira::{FakeJira, Fault, FaultKind, Flavor, Gate, Site, SiteSize, http_date};
use serde_json::{Value, json};

use crate::common::{authed, client, get, keys, messages, post, start};

const FIELD: &str = "/rest/api/3/field";

#[tokio::test]
async fn a_status_fault_answers_with_its_status_and_retry_after() {
    let jira = start(Flavor::Cloud);
    jira.faults()
        .add(Fault::new(FIELD, FaultKind::retry_after(503, 2)).once());
    let response = authed(&jira, client().get(format!("{}{FIELD}", jira.url())))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: Value = response.json().await.expect("json");
    assert!(!messages(&body).is_empty());
    assert_eq!(get(&jira, FIELD).await.0, 200, "once only");
}

#[tokio::test]
async fn retry_after_may_be_an_http_date_and_the_body_may_be_given() {
    let jira = start(Flavor::Cloud);
    let date = http_date(SystemTime::now() + Duration::from_secs(3));
    jira.faults().add(Fault::new(
        FIELD,
        FaultKind::Status {
            code: 429,
            retry_after: Some(date.clone()),
            body: Some(r#"{"message":"slow down"}"#.into()),
        },
    ));
    let response = authed(&jira, client().get(format!("{}{FIELD}", jira.url())))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], date.as_str());
    assert!(date.ends_with(" GMT"));
    assert_eq!(
        response.text().await.expect("a body"),
        r#"{"message":"slow down"}"#
    );
}

#[tokio::test]
async fn a_fault_can_skip_requests_and_fail_only_a_middle_page() {
    let jira = start(Flavor::Cloud);
    jira.faults().add(
        Fault::new("/rest/api/3/project/search", FaultKind::status(500))
            .method("GET")
            .skip(1)
            .times(1),
    );
    let statuses: Vec<u16> = {
        let mut s = Vec::new();
        for start_at in [0, 1, 1, 2] {
            s.push(
                get(
                    &jira,
                    &format!("/rest/api/3/project/search?startAt={start_at}&maxResults=1"),
                )
                .await
                .0,
            );
        }
        s
    };
    assert_eq!(statuses, [200, 500, 200, 200]);
    let recorded: Vec<u16> = jira.requests().iter().map(|r| r.status).collect();
    assert_eq!(recorded, statuses);
}

#[tokio::test]
async fn a_fault_can_match_on_the_query() {
    let jira = start(Flavor::Cloud);
    jira.faults().add(
        Fault::new("/rest/api/3/project/search", FaultKind::status(403))
            .query_contains("startAt=2"),
    );
    assert_eq!(
        get(&jira, "/rest/api/3/project/search?startAt=0").await.0,
        200
    );
    let (status, body) = get(&jira, "/rest/api/3/project/search?startAt=2").await;
    assert_eq!(status, 403);
    assert!(!messages(&body).is_empty());
}

#[tokio::test]
async fn faults_for_401_and_403_are_served_even_with_good_credentials() {
    let jira = start(Flavor::DataCenter);
    jira.faults()
        .add(Fault::new("/rest/api/2/myself", FaultKind::status(401)));
    jira.faults()
        .add(Fault::new("/rest/api/2/field", FaultKind::status(403)));
    assert_eq!(get(&jira, "/rest/api/2/myself").await.0, 401);
    assert_eq!(get(&jira, "/rest/api/2/field").await.0, 403);
    jira.faults().clear();
    assert!(jira.faults().is_empty());
    assert_eq!(get(&jira, "/rest/api/2/myself").await.0, 200);
}

#[tokio::test]
async fn html_login_is_a_200_html_page() {
    let jira = start(Flavor::Cloud);
    jira.faults().add(Fault::new("", FaultKind::HtmlLogin));
    let response = authed(&jira, client().get(format!("{}{FIELD}", jira.url())))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/html"))
    );
    assert!(response.text().await.expect("a body").contains("<form"));
}

#[tokio::test]
async fn a_truncated_body_is_json_cut_off_with_a_matching_length() {
    let jira = start(Flavor::Cloud);
    jira.faults()
        .add(Fault::new(FIELD, FaultKind::TruncatedBody).once());
    let response = authed(&jira, client().get(format!("{}{FIELD}", jira.url())))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/json"))
    );
    let text = response.text().await.expect("the whole (cut) body arrives");
    assert!(text.starts_with('['));
    assert!(serde_json::from_str::<Value>(&text).is_err());
    let (status, whole) = get(&jira, FIELD).await;
    assert_eq!(status, 200);
    assert!(whole.as_array().is_some_and(|f| !f.is_empty()));
}

#[tokio::test]
async fn a_reset_drops_the_connection_without_an_answer() {
    let jira = start(Flavor::Cloud);
    jira.faults()
        .add(Fault::new(FIELD, FaultKind::Reset).once());
    let err = authed(&jira, client().get(format!("{}{FIELD}", jira.url())))
        .send()
        .await
        .expect_err("no answer");
    assert!(!err.is_timeout(), "{err:?}");
    assert!(err.status().is_none());
    assert_eq!(jira.requests()[0].status, 0);
    assert_eq!(
        get(&jira, FIELD).await.0,
        200,
        "the next connection is served"
    );
}

#[tokio::test]
async fn a_hang_never_answers_and_dropping_the_fake_still_returns() {
    let jira = start(Flavor::Cloud);
    jira.faults().add(Fault::new(FIELD, FaultKind::Hang));
    let hung = authed(&jira, client().get(format!("{}{FIELD}", jira.url())))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("no answer");
    assert!(hung.is_timeout(), "{hung:?}");
    // A second request stays hung while the fake is dropped.
    let request = authed(&jira, client().get(format!("{}{FIELD}", jira.url()))).send();
    let pending = tokio::spawn(request);
    // Dropped once the second request has reached the fake (an event, not
    // a pause); a drop that never returns fails after a generous guard.
    let deadline = Instant::now() + Duration::from_secs(60);
    while jira.request_count() < 2 {
        assert!(Instant::now() < deadline, "the second request never came");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || drop(jira)),
    )
    .await
    .expect("dropping the fake returned")
    .unwrap();
    let outcome = pending.await.expect("the task ends");
    assert!(
        outcome.is_err(),
        "the hung request fails once the fake is gone"
    );
}

#[tokio::test]
async fn a_delay_and_the_builder_latency_slow_answers_down() {
    let jira = FakeJira::builder(Flavor::Cloud)
        .latency(Duration::from_millis(50))
        .start();
    jira.faults()
        .add(Fault::new(FIELD, FaultKind::Delay(Duration::from_millis(150))).once());
    let started = Instant::now();
    assert_eq!(get(&jira, FIELD).await.0, 200);
    let first = started.elapsed();
    assert!(first >= Duration::from_millis(200), "{first:?}");
    let started = Instant::now();
    assert_eq!(get(&jira, FIELD).await.0, 200);
    let second = started.elapsed();
    // Lower bounds only: a loaded machine may make any answer slower, so
    // "the delay applied once" is not judged by comparing times here (the
    // `once` of every fault kind is tested by its count elsewhere).
    assert!(second >= Duration::from_millis(50), "{second:?}");
}

#[tokio::test]
async fn a_hold_keeps_the_request_until_its_gate_opens() {
    let jira = start(Flavor::Cloud);
    let gate = Gate::new();
    jira.faults()
        .add(Fault::new(FIELD, FaultKind::Hold(gate.clone())).once());
    let url = format!("{}{FIELD}", jira.url());
    let held = tokio::spawn(authed(&jira, client().get(url)).send());
    while gate.reached() == 0 {
        tokio::task::yield_now().await;
    }
    // Nothing can answer it while the gate is shut.
    assert!(!held.is_finished());
    gate.open();
    let response = held.await.unwrap().expect("an answer once open");
    assert_eq!(response.status(), 200);
    assert_eq!(gate.reached(), 1);
    assert_eq!(get(&jira, FIELD).await.0, 200, "once only");
}

#[tokio::test]
async fn repeat_token_hands_out_the_same_token_again() {
    let jira = start(Flavor::Cloud);
    let body = json!({"jql": "project = ALPHA", "maxResults": 2});
    let (_, first) = post(&jira, "/rest/api/3/search/jql", &body).await;
    let token = first["nextPageToken"].clone();
    jira.faults()
        .add(Fault::new("/rest/api/3/search/jql", FaultKind::RepeatToken));
    let mut next = body.clone();
    next["nextPageToken"] = token.clone();
    let (_, second) = post(&jira, "/rest/api/3/search/jql", &next).await;
    assert_eq!(second["nextPageToken"], token);
    assert_eq!(second["isLast"], false);
}

#[tokio::test]
async fn never_last_keeps_tokens_coming_and_pages_repeating() {
    let jira = start(Flavor::Cloud);
    jira.faults().add(Fault::new("", FaultKind::NeverLast));
    let mut body = json!({"jql": "project = \"FOR\"", "maxResults": 2, "fields": ["key"]});
    let mut seen_keys = Vec::new();
    let mut tokens = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let (_, page) = post(&jira, "/rest/api/3/search/jql", &body).await;
        assert_eq!(page["isLast"], false);
        let token = page["nextPageToken"].as_str().expect("a token").to_owned();
        assert!(tokens.insert(token.clone()), "every token is new");
        seen_keys.extend(keys(&page["issues"]));
        body["nextPageToken"] = json!(token);
    }
    assert_eq!(&seen_keys[..4], ["FOR-3", "FOR-2", "FOR-1", "FOR-3"]);

    let (_, bean) = get(&jira, "/rest/api/3/project/search?startAt=3&maxResults=2").await;
    assert_eq!(bean["isLast"], false);
    assert_eq!(
        keys(&bean["values"]),
        ["ALPHA", "BETA"],
        "past the end, pages repeat"
    );
    let (_, users) = get(&jira, "/rest/api/3/users/search?startAt=600").await;
    assert!(users.as_array().is_some_and(|u| !u.is_empty()));
}

#[tokio::test]
async fn lying_total_changes_only_the_total() {
    let cloud = start(Flavor::Cloud);
    cloud.faults().add(Fault::new(
        "/rest/api/3/project/search",
        FaultKind::LyingTotal(1000),
    ));
    let (_, bean) = get(&cloud, "/rest/api/3/project/search").await;
    assert_eq!(bean["total"], 1000);
    assert_eq!(bean["isLast"], true);
    assert_eq!(keys(&bean["values"]).len(), 3);

    let dc = start(Flavor::DataCenter);
    dc.faults()
        .add(Fault::new("/rest/api/2/search", FaultKind::LyingTotal(2)));
    let (_, page) = post(
        &dc,
        "/rest/api/2/search",
        &json!({"jql": "project = ALPHA"}),
    )
    .await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["issues"].as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn oversize_and_short_pages_bend_the_page_size() {
    let flavor = Flavor::Cloud;
    let jira = FakeJira::builder(flavor)
        .site(Site::generated(
            flavor,
            SiteSize {
                users: 30,
                ..SiteSize::default()
            },
        ))
        .start();
    jira.faults()
        .add(Fault::new("/rest/api/3/users/search", FaultKind::OversizePage).once());
    let (_, big) = get(&jira, "/rest/api/3/users/search?maxResults=5").await;
    assert_eq!(big.as_array().map(Vec::len), Some(10));
    jira.faults()
        .add(Fault::new("/rest/api/3/search/jql", FaultKind::ShortPage(1)).once());
    let body = json!({"jql": "project = AAA", "maxResults": 5});
    let (_, short) = post(&jira, "/rest/api/3/search/jql", &body).await;
    assert_eq!(short["issues"].as_array().map(Vec::len), Some(1));
    assert_eq!(short["isLast"], false);
    let (_, normal) = post(&jira, "/rest/api/3/search/jql", &body).await;
    assert_eq!(normal["issues"].as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn faults_installed_by_the_builder_apply_from_the_first_request() {
    let jira = FakeJira::builder(Flavor::Cloud)
        .fault(Fault::new("/rest/api/2/serverInfo", FaultKind::status(500)).once())
        .start();
    assert_eq!(get(&jira, "/rest/api/2/serverInfo").await.0, 500);
    assert_eq!(get(&jira, "/rest/api/2/serverInfo").await.0, 200);
    assert_eq!(jira.faults().len(), 1);
}
