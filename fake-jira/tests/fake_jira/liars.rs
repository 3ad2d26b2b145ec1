//! The liar faults: answers that are each well-formed while the listing
//! they add up to is not, so a client must prove completeness from the
//! server's own end markers.

use fake_jira::{FakeJira, Fault, FaultKind, Flavor};
use serde_json::{Value, json};

use crate::common::{authed, get, keys, post, start};

const PROJECTS: &str = "/rest/api/3/project/search";

#[tokio::test]
async fn an_empty_page_says_the_listing_goes_on() {
    let jira = start(Flavor::Cloud);
    jira.faults()
        .add(Fault::new(PROJECTS, FaultKind::EmptyPage).query_contains("startAt=1"));
    let (_, page) = get(&jira, &format!("{PROJECTS}?startAt=1&maxResults=1")).await;
    assert_eq!(page["values"], json!([]));
    assert_eq!(page["isLast"], false);
    assert_eq!(page["total"], 3);
    assert!(
        page["nextPage"]
            .as_str()
            .is_some_and(|n| n.contains("startAt=1"))
    );

    jira.faults()
        .add(Fault::new("/rest/api/3/users/search", FaultKind::EmptyPage).once());
    let (_, users) = get(&jira, "/rest/api/3/users/search?startAt=0&maxResults=2").await;
    assert_eq!(
        users,
        json!([]),
        "an empty page at the start of a longer listing"
    );
    let (_, users) = get(&jira, "/rest/api/3/users/search?startAt=0&maxResults=2").await;
    assert_eq!(users.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn an_empty_data_center_search_page_stays_below_the_total() {
    let jira = start(Flavor::DataCenter);
    jira.faults()
        .add(Fault::new("/rest/api/2/search", FaultKind::EmptyPage));
    let (_, page) = post(
        &jira,
        "/rest/api/2/search",
        &json!({"jql": "project = ALPHA", "startAt": 0, "maxResults": 2}),
    )
    .await;
    assert_eq!(page["issues"], json!([]));
    assert_eq!(page["total"], 5);
}

#[tokio::test]
async fn a_repeated_page_ignores_start_at() {
    let jira = start(Flavor::Cloud);
    let (_, first) = get(&jira, &format!("{PROJECTS}?startAt=0&maxResults=2")).await;
    jira.faults()
        .add(Fault::new(PROJECTS, FaultKind::RepeatPage));
    let (_, second) = get(&jira, &format!("{PROJECTS}?startAt=2&maxResults=2")).await;
    assert_eq!(second["startAt"], 0);
    assert_eq!(second["values"], first["values"]);
    assert_eq!(second["isLast"], false);
}

#[tokio::test]
async fn a_lying_total_is_smaller_than_what_was_served() {
    let jira = start(Flavor::Cloud);
    jira.faults()
        .add(Fault::new(PROJECTS, FaultKind::LyingTotal(1)).skip(1));
    let (_, first) = get(&jira, &format!("{PROJECTS}?startAt=0&maxResults=2")).await;
    assert_eq!(first["total"], 3);
    let (_, second) = get(&jira, &format!("{PROJECTS}?startAt=2&maxResults=2")).await;
    assert_eq!(second["total"], 1, "2 items were served already");
}

#[tokio::test]
async fn a_short_page_mid_listing_is_not_the_end() {
    let jira = start(Flavor::Cloud);
    jira.faults()
        .add(Fault::new(PROJECTS, FaultKind::ShortPage(1)).query_contains("startAt=0"));
    let (_, page) = get(&jira, &format!("{PROJECTS}?startAt=0&maxResults=2")).await;
    assert_eq!(keys(&page["values"]), ["ALPHA"]);
    assert_eq!(page["isLast"], false);
}

#[tokio::test]
async fn unrequested_items_come_with_the_asked_ones() {
    let jira = start(Flavor::Cloud);
    jira.faults()
        .add(Fault::new("/rest/api/3/", FaultKind::UnrequestedItems));
    let (_, page) = get(&jira, &format!("{PROJECTS}?keys=ALPHA")).await;
    assert_eq!(keys(&page["values"]), ["ALPHA", "BETA", "FOR"]);
    let (_, priorities) = get(&jira, "/rest/api/3/priority/search?id=1").await;
    assert_eq!(priorities["total"], 5);
}

#[tokio::test]
async fn a_redirect_leads_off_the_site_with_path_and_query() {
    let site = start(Flavor::Cloud);
    let elsewhere = start(Flavor::Cloud);
    site.faults().add(Fault::new(
        PROJECTS,
        FaultKind::redirect_to(elsewhere.url()),
    ));
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let response = authed(
        &site,
        no_redirects.get(format!("{}{PROJECTS}?keys=ALPHA", site.url())),
    )
    .send()
    .await
    .expect("an answer");
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        format!("{}{PROJECTS}?keys=ALPHA", elsewhere.url()).as_str()
    );
    assert_ne!(site.url(), elsewhere.url());
    assert_eq!(elsewhere.request_count(), 0);
}

#[tokio::test]
async fn liars_combine_with_each_other_and_with_other_faults() {
    let jira = FakeJira::builder(Flavor::Cloud).start();
    let faults = jira.faults();
    faults.add(Fault::new(PROJECTS, FaultKind::status(503)).once());
    faults.add(Fault::new(PROJECTS, FaultKind::RepeatPage));
    faults.add(Fault::new(PROJECTS, FaultKind::LyingTotal(2)));
    faults.add(Fault::new(PROJECTS, FaultKind::UnrequestedItems));
    let (status, _) = get(
        &jira,
        &format!("{PROJECTS}?startAt=2&maxResults=2&keys=FOR"),
    )
    .await;
    assert_eq!(status, 503, "the answering fault goes first");
    let (_, page) = get(
        &jira,
        &format!("{PROJECTS}?startAt=2&maxResults=2&keys=FOR"),
    )
    .await;
    assert_eq!(page["startAt"], 0);
    assert_eq!(page["total"], 2);
    assert_eq!(keys(&page["values"]), ["ALPHA", "BETA"]);
    assert_eq!(page["isLast"], Value::Bool(false));
}

#[tokio::test]
async fn an_update_mid_listing_shifts_a_data_center_search_under_the_client() {
    let jira = start(Flavor::DataCenter);
    let search = |start_at: usize| {
        json!({"jql": "project = ALPHA ORDER BY updated DESC", "fields": ["updated"],
               "startAt": start_at, "maxResults": 2})
    };
    let (_, first) = post(&jira, "/rest/api/2/search", &search(0)).await;
    let first_keys = keys(&first["issues"]);
    // The oldest issue (on page 3, not yet read) is edited just before page
    // 2 is answered: it moves to page 1, already read, and everything after
    // it shifts one place back, so page 2 starts with an issue page 1 had.
    let site = jira.site().snapshot();
    let mut by_age: Vec<(String, String)> = site
        .issues
        .iter()
        .filter(|i| i["key"].as_str().is_some_and(|k| k.starts_with("ALPHA-")))
        .map(|i| {
            let updated = i["fields"]["updated"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (updated, i["key"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    by_age.sort();
    assert_eq!(by_age.len(), 5);
    let oldest = by_age[0].1.clone();
    jira.faults()
        .add(Fault::new("/rest/api/2/search", FaultKind::UpdateIssue(oldest.clone())).once());
    let (_, second) = post(&jira, "/rest/api/2/search", &search(2)).await;
    let second_keys = keys(&second["issues"]);
    assert_eq!(
        second_keys[0], first_keys[1],
        "page 2 repeats the end of page 1"
    );
    let (_, third) = post(&jira, "/rest/api/2/search", &search(4)).await;
    let third_keys = keys(&third["issues"]);
    let read: Vec<&String> = first_keys
        .iter()
        .chain(&second_keys)
        .chain(&third_keys)
        .collect();
    assert!(
        !read.contains(&&oldest),
        "{oldest} was never served: {read:?}"
    );
    assert_eq!(second["total"], 5, "nothing says so");
    let (_, again) = post(&jira, "/rest/api/2/search", &search(0)).await;
    assert_eq!(keys(&again["issues"])[0], oldest, "now the newest");
}
