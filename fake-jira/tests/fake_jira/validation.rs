//! Every request is checked against Atlassian's OpenAPI documents, and a
//! request that breaks them fails the test that sent it.

use fake_jira::{FakeJira, Flavor};
use serde_json::json;

use crate::common::{authed, client, get, post, start};

/// Whether the documents are here; a note when not (the fake said so
/// loudly already, and CI has them).
fn validating(jira: &FakeJira) -> bool {
    if !jira.validates() {
        eprintln!("skipped: the OpenAPI documents are absent, validation is off");
    }
    jira.validates()
}

#[tokio::test]
async fn valid_requests_of_both_flavors_pass() {
    let cloud = start(Flavor::Cloud);
    if !validating(&cloud) {
        return;
    }
    get(&cloud, "/rest/api/2/serverInfo").await;
    get(
        &cloud,
        "/rest/api/3/project/search?keys=ALPHA&keys=FOR&startAt=0&maxResults=50",
    )
    .await;
    get(
        &cloud,
        "/rest/api/3/priority/search?startAt=0&maxResults=50&onlyDefault=false",
    )
    .await;
    get(
        &cloud,
        "/rest/api/3/user/assignable/search?project=ALPHA&startAt=0&maxResults=50",
    )
    .await;
    get(&cloud, "/rest/api/3/project/ALPHA").await;
    post(
        &cloud,
        "/rest/api/3/search/jql",
        &json!({"jql": "project = ALPHA", "fields": ["summary"], "maxResults": 50}),
    )
    .await;
    assert_eq!(cloud.violations(), []);

    let dc = start(Flavor::DataCenter);
    get(
        &dc,
        "/rest/api/2/user/search?username=.&startAt=0&maxResults=100&includeInactive=true",
    )
    .await;
    get(
        &dc,
        "/rest/api/2/search?jql=project%3DALPHA&fields=summary,updated&startAt=0",
    )
    .await;
    post(
        &dc,
        "/rest/api/2/search",
        &json!({"jql": "project = ALPHA", "fields": ["summary"], "startAt": 0, "maxResults": 50}),
    )
    .await;
    assert_eq!(dc.violations(), []);
}

#[tokio::test]
async fn comma_joined_keys_are_type_valid_and_match_nothing() {
    let jira = start(Flavor::Cloud);
    let (_, page) = get(&jira, "/rest/api/3/project/search?keys=ALPHA,BETA").await;
    // The spec cannot catch this one (a key with a comma is a string):
    // the fake's model does, by finding no such project.
    assert_eq!(page["total"], 0);
    assert_eq!(jira.violations(), []);
}

#[tokio::test]
async fn an_unknown_query_parameter_is_reported() {
    let jira = start(Flavor::Cloud);
    if !validating(&jira) {
        return;
    }
    get(&jira, "/rest/api/3/project/search?maxResult=10").await;
    let v = jira.take_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].method, "GET");
    assert_eq!(v[0].path, "/rest/api/3/project/search");
    assert_eq!(v[0].query, "maxResult=10");
    assert_eq!(v[0].problem, "query parameter `maxResult` is not declared");
}

#[tokio::test]
async fn a_value_of_the_wrong_type_is_reported() {
    for (flavor, path, param) in [
        (
            Flavor::Cloud,
            "/rest/api/3/users/search?startAt=ten",
            "startAt",
        ),
        (
            Flavor::Cloud,
            "/rest/api/3/priority/search?onlyDefault=yes",
            "onlyDefault",
        ),
        (Flavor::Cloud, "/rest/api/3/project/search?id=ALPHA", "id"),
        (
            Flavor::DataCenter,
            "/rest/api/2/user/search?username=.&maxResults=9999999999",
            "maxResults",
        ),
    ] {
        let jira = start(flavor);
        if !validating(&jira) {
            return;
        }
        get(&jira, path).await;
        let v = jira.take_violations();
        assert_eq!(v.len(), 1, "{path}: {v:?}");
        assert!(v[0].problem.contains(&format!("`{param}`")), "{}", v[0]);
    }
}

#[tokio::test]
async fn a_scalar_parameter_given_twice_is_reported() {
    let jira = start(Flavor::Cloud);
    if !validating(&jira) {
        return;
    }
    get(&jira, "/rest/api/3/users/search?startAt=0&startAt=50").await;
    let v = jira.take_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].problem.contains("not an array"), "{}", v[0]);
}

#[tokio::test]
async fn a_missing_required_parameter_is_reported() {
    let jira = start(Flavor::Cloud);
    if !validating(&jira) {
        return;
    }
    get(&jira, "/rest/api/3/user/bulk").await;
    let v = jira.take_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        v[0].problem,
        "required query parameter `accountId` is missing"
    );
}

#[tokio::test]
async fn an_invalid_or_missing_post_body_is_reported() {
    let jira = start(Flavor::Cloud);
    if !validating(&jira) {
        return;
    }
    post(
        &jira,
        "/rest/api/3/search/jql",
        &json!({"jql": "project = ALPHA", "fields": "summary", "startAt": 0}),
    )
    .await;
    let v = jira.take_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].problem
            .contains("does not match the operation's schema"),
        "{}",
        v[0]
    );
    assert!(v[0].problem.contains("/fields"), "{}", v[0]);
    assert!(
        v[0].problem.contains("startAt"),
        "additionalProperties: {}",
        v[0]
    );

    authed(
        &jira,
        client().post(format!("{}/rest/api/3/search/jql", jira.url())),
    )
    .send()
    .await
    .expect("an answer");
    let v = jira.take_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].problem.contains("requires a request body"), "{}", v[0]);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_reported() {
    let jira = start(Flavor::DataCenter);
    if !validating(&jira) {
        return;
    }
    get(&jira, "/rest/api/2/users/search").await;
    post(&jira, "/rest/api/2/serverInfo", &json!({})).await;
    let v = jira.take_violations();
    let problems: Vec<&str> = v.iter().map(|v| v.problem.as_str()).collect();
    assert_eq!(
        problems,
        [
            "no path of the spec matches /api/2/users/search",
            "the spec has no POST for /api/2/serverInfo",
        ]
    );
}

#[test]
#[should_panic(expected = "broke the official OpenAPI document")]
fn dropping_a_fake_with_violations_fails_the_test() {
    let jira = FakeJira::builder(Flavor::Cloud).start();
    if !jira.validates() {
        panic!("broke the official OpenAPI document (skipped: validation is off)");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(get(&jira, "/rest/api/3/field?bogus=1"));
    drop(jira);
}

#[tokio::test]
async fn a_test_may_opt_out_where_it_sends_invalid_requests_on_purpose() {
    let jira = FakeJira::builder(Flavor::Cloud)
        .spec_validation(false)
        .start();
    assert!(!jira.validates());
    get(&jira, "/rest/api/3/field?bogus=1").await;
    assert_eq!(jira.violations(), []);
}
