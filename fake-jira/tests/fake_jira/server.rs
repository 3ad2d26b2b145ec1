//! Starting, stopping, credentials, recording and the paths a fake serves.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use fake_jira::{Credentials, FakeJira, Flavor};
use serde_json::json;

use crate::common::{authed, client, get, messages, start};

/// One HTTP/1.1 request over a plain socket: the whole answer as text.
fn raw_get(jira: &FakeJira, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", jira.port())).expect("connects");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("reads");
    answer
}

#[test]
fn start_works_from_a_plain_test_and_server_info_needs_no_credentials() {
    let jira = start(Flavor::Cloud);
    let answer = raw_get(&jira, "/rest/api/2/serverInfo");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""deploymentType":"Cloud""#), "{answer}");
    assert!(
        answer.contains(&format!(r#""baseUrl":"{}""#, jira.url())),
        "{answer}"
    );
}

#[tokio::test]
async fn start_works_inside_a_current_thread_tokio_test() {
    let jira = start(Flavor::DataCenter);
    let (status, info) = get(&jira, "/rest/api/2/serverInfo").await;
    assert_eq!(status, 200);
    assert_eq!(info["deploymentType"], "Server");
    drop(jira);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_works_inside_a_multi_thread_tokio_test() {
    let jira = start(Flavor::Cloud);
    let (status, _) = get(&jira, "/rest/api/3/myself").await;
    assert_eq!(status, 200);
}

#[test]
fn the_url_names_the_port_without_a_trailing_slash() {
    let jira = start(Flavor::Cloud);
    assert_eq!(jira.url(), format!("http://127.0.0.1:{}", jira.port()));
    assert_eq!(jira.api_url(), format!("{}/rest/api/3", jira.url()));
    assert_ne!(jira.port(), 0);
}

#[test]
fn two_fakes_run_side_by_side_and_a_dropped_one_closes_its_port() {
    let a = start(Flavor::Cloud);
    let b = start(Flavor::DataCenter);
    assert_ne!(a.port(), b.port());
    let port = a.port();
    drop(a);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(raw_get(&b, "/rest/api/2/serverInfo").starts_with("HTTP/1.1 200"));
}

#[test]
fn a_taken_port_is_an_error_from_try_start() {
    let a = start(Flavor::Cloud);
    let err = FakeJira::builder(Flavor::Cloud)
        .port(a.port())
        .try_start()
        .expect_err("the port is taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
}

#[tokio::test]
async fn missing_or_wrong_credentials_get_401_in_jiras_shape() {
    let jira = start(Flavor::Cloud);
    let url = format!("{}/rest/api/3/field", jira.url());
    let attempts = [
        client().get(&url),
        client()
            .get(&url)
            .basic_auth("bot@example.com", Some("wrong")),
        client().get(&url).bearer_auth("cloud-token-123"),
    ];
    for attempt in attempts {
        let response = attempt.send().await.expect("an answer");
        assert_eq!(response.status(), 401);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(
            body,
            json!({
                "errorMessages": ["You are not authenticated. Authentication required to perform this operation."],
                "errors": {}
            })
        );
    }
    let ok = authed(&jira, client().get(&url))
        .send()
        .await
        .expect("an answer");
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn data_center_accepts_its_bearer_token_only() {
    let jira = start(Flavor::DataCenter);
    let url = format!("{}/rest/api/2/myself", jira.url());
    let wrong = client()
        .get(&url)
        .bearer_auth("nope")
        .send()
        .await
        .expect("an answer");
    assert_eq!(wrong.status(), 401);
    let right = client()
        .get(&url)
        .bearer_auth("dc-token-456")
        .send()
        .await
        .expect("an answer");
    assert_eq!(right.status(), 200);
}

#[tokio::test]
async fn any_credentials_accept_anything_but_nothing() {
    let jira = FakeJira::builder(Flavor::Cloud)
        .credentials(Credentials::any())
        .start();
    let url = format!("{}/rest/api/3/myself", jira.url());
    let basic = client()
        .get(&url)
        .basic_auth("x", Some("y"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(basic.status(), 200);
    let none = client().get(&url).send().await.expect("an answer");
    assert_eq!(none.status(), 401);
}

#[tokio::test]
async fn every_request_is_recorded_in_order_with_its_status() {
    let jira = start(Flavor::Cloud);
    get(&jira, "/rest/api/3/field").await;
    get(&jira, "/rest/api/3/project/search?startAt=0&maxResults=2").await;
    get(&jira, "/rest/api/3/nothing-here").await;
    crate::common::post(
        &jira,
        "/rest/api/3/search/jql",
        &json!({"jql": "project = ALPHA"}),
    )
    .await;
    client()
        .get(format!("{}/rest/api/3/field", jira.url()))
        .send()
        .await
        .expect("an answer");

    let requests = jira.requests();
    let seen: Vec<(&str, &str, u16)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "/rest/api/3/field", 200),
            ("GET", "/rest/api/3/project/search", 200),
            ("GET", "/rest/api/3/nothing-here", 404),
            ("POST", "/rest/api/3/search/jql", 200),
            ("GET", "/rest/api/3/field", 401),
        ]
    );
    assert_eq!(requests[1].query, "startAt=0&maxResults=2");
    assert_eq!(
        requests[3].body.as_deref(),
        Some(r#"{"jql":"project = ALPHA"}"#)
    );
    assert!(
        requests[0]
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic "))
    );
    assert_eq!(requests[4].authorization, None);
    assert!(requests.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(jira.request_count(), 5);
    assert_eq!(jira.count_path("/rest/api/3/field"), 2);
    assert_eq!(jira.count_path("/rest/api/3/"), 5);
    jira.reset_requests();
    assert_eq!(jira.request_count(), 0);
    crate::common::expect_violations(&jira, 1, &["/rest/api/3/nothing-here"]);
}

#[tokio::test]
async fn server_info_says_what_the_site_says_it_is() {
    let jira = start(Flavor::DataCenter);
    for deployment in ["Data Center", "DataCenter", "Server"] {
        jira.site()
            .with(|s| s.deployment_type = deployment.to_owned());
        let (_, info) = get(&jira, "/rest/api/2/serverInfo").await;
        assert_eq!(info["deploymentType"], deployment);
        assert_eq!(info["version"], "10.3.12");
        assert_eq!(info["versionNumbers"], json!([10, 3, 12]));
    }
}

#[tokio::test]
async fn cloud_answers_server_info_on_v2_and_v3_and_data_center_on_v2_only() {
    let cloud = start(Flavor::Cloud);
    assert_eq!(get(&cloud, "/rest/api/3/serverInfo").await.0, 200);
    assert_eq!(get(&cloud, "/rest/api/2/serverInfo").await.0, 200);
    let dc = start(Flavor::DataCenter);
    let (status, body) = get(&dc, "/rest/api/3/serverInfo").await;
    assert_eq!(status, 404);
    assert_eq!(body["status-code"], 404);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("/rest/api/3/serverInfo"))
    );
    crate::common::expect_violations(&dc, 1, &["no path of the spec matches /api/3/serverInfo"]);
}

#[tokio::test]
async fn data_center_has_no_cloud_only_endpoints() {
    let dc = start(Flavor::DataCenter);
    for path in [
        "/rest/api/2/search/jql",
        "/rest/api/2/project/search",
        "/rest/api/2/users/search",
    ] {
        assert_eq!(get(&dc, path).await.0, 404, "{path}");
    }
    crate::common::expect_violations(&dc, 2, &["no path of the spec matches"]);
}

#[tokio::test]
async fn a_changed_site_is_served_at_once() {
    let jira = start(Flavor::Cloud);
    let site = jira.site();
    assert!(site.remove_project("BETA"));
    let (_, page) = get(&jira, "/rest/api/3/project/search").await;
    assert_eq!(crate::common::keys(&page["values"]), ["ALPHA", "FOR"]);
    let (status, body) = get(&jira, "/rest/api/3/issue/BETA-1").await;
    assert_eq!(status, 404);
    assert_eq!(
        messages(&body),
        "Issue does not exist or you do not have permission to see it."
    );
    let key = site.add_issue("ALPHA", "Brand new").expect("ALPHA exists");
    let (status, issue) = get(&jira, &format!("/rest/api/3/issue/{key}")).await;
    assert_eq!(status, 200);
    assert_eq!(issue["fields"]["summary"], "Brand new");
    assert_eq!(site.snapshot().projects.len(), 2);
}

#[test]
fn dropping_a_fake_returns() {
    let jira = start(Flavor::Cloud);
    // Dropped on another thread, so that a drop that never returns fails
    // here (after a generous guard) instead of hanging the suite; how fast
    // it returns is not this test's business.
    let (done, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(jira);
        let _ = done.send(());
    });
    dropped
        .recv_timeout(Duration::from_secs(60))
        .expect("dropping the fake returned");
}
