//! Helpers shared by the tests: an HTTP client that ignores proxies, the
//! flavor's default credentials, and JSON requests that return status and body.

use std::path::PathBuf;

use fake_jira::{FakeJira, Flavor, Violation};
use reqwest::{Client, RequestBuilder};
use serde_json::Value;

/// A client that never goes through a proxy, even if the environment names one.
pub fn client() -> Client {
    Client::builder().no_proxy().build().expect("a client")
}

/// Adds the credentials the fake accepts by default.
pub fn authed(jira: &FakeJira, request: RequestBuilder) -> RequestBuilder {
    let creds = jira.credentials();
    match (&creds.basic, &creds.bearer) {
        (Some((user, token)), _) => request.basic_auth(user, Some(token)),
        (None, Some(token)) => request.bearer_auth(token),
        (None, None) => request.bearer_auth("anything"),
    }
}

/// `GET url + path` with the default credentials: status and JSON body
/// (`Value::Null` if the body is not JSON).
pub async fn get(jira: &FakeJira, path: &str) -> (u16, Value) {
    let response = authed(jira, client().get(format!("{}{path}", jira.url())))
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `POST url + path` with a JSON body and the default credentials.
pub async fn post(jira: &FakeJira, path: &str, body: &Value) -> (u16, Value) {
    let response = authed(jira, client().post(format!("{}{path}", jira.url())))
        .json(body)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The `errorMessages` of a Jira error body, joined.
pub fn messages(body: &Value) -> String {
    body["errorMessages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .unwrap_or_default()
}

/// The keys of a list of JSON objects.
pub fn keys(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("an array")
        .iter()
        .map(|i| i["key"].as_str().expect("a key").to_owned())
        .collect()
}

/// The shared fixtures directory, or `None` (with a note) when it is absent.
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/jira/fixtures"
    ));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: the fixtures are not at {}", dir.display());
        None
    }
}

/// Takes the spec violations of requests a test sent on purpose, checking
/// there were `n` of them and that each names one of `fragments` (when the
/// OpenAPI documents are absent, validation is off and there are none).
pub fn expect_violations(jira: &FakeJira, n: usize, fragments: &[&str]) -> Vec<Violation> {
    let violations = jira.take_violations();
    if !jira.validates() {
        return violations;
    }
    assert_eq!(violations.len(), n, "{violations:#?}");
    for v in &violations {
        assert!(
            fragments.iter().any(|f| v.to_string().contains(f)),
            "unexpected violation: {v}"
        );
    }
    violations
}

/// A fake of the flavor with default settings.
pub fn start(flavor: Flavor) -> FakeJira {
    FakeJira::builder(flavor).start()
}
