//! User listings: Cloud's offset arrays and Data Center's capped search.

use std::collections::BTreeSet;

use fake_jira::{FakeJira, Flavor, GenerateOptions, PageCap, Site, SiteSize, UserNames};
use serde_json::Value;

use crate::common::{get, messages, start};

fn with_users(flavor: Flavor, users: usize) -> FakeJira {
    let size = SiteSize {
        users,
        projects: 2,
        issues_per_project: 1,
        ..SiteSize::default()
    };
    FakeJira::builder(flavor)
        .site(Site::generated(flavor, size))
        .start()
}

fn ids(users: &Value, member: &str) -> Vec<String> {
    users
        .as_array()
        .expect("a bare array")
        .iter()
        .map(|u| u[member].as_str().expect("an id").to_owned())
        .collect()
}

#[tokio::test]
async fn cloud_users_search_pages_until_an_empty_page() {
    let jira = with_users(Flavor::Cloud, 25);
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let (_, page) = get(
            &jira,
            &format!(
                "/rest/api/3/users/search?startAt={}&maxResults=10",
                seen.len()
            ),
        )
        .await;
        let page = ids(&page, "accountId");
        sizes.push(page.len());
        if page.is_empty() {
            break;
        }
        seen.extend(page);
    }
    assert_eq!(sizes, [10, 10, 5, 0]);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 25);
}

#[tokio::test]
async fn cloud_users_search_may_return_fewer_than_asked_mid_listing() {
    let flavor = Flavor::Cloud;
    let jira = FakeJira::builder(flavor)
        .site(Site::generated(
            flavor,
            SiteSize {
                users: 20,
                ..SiteSize::default()
            },
        ))
        .page_cap(PageCap::CloudUserSearch, 7)
        .start();
    let (_, first) = get(&jira, "/rest/api/3/users/search?maxResults=10").await;
    assert_eq!(first.as_array().map(Vec::len), Some(7));
    let (_, second) = get(&jira, "/rest/api/3/users/search?startAt=7&maxResults=10").await;
    assert_eq!(second.as_array().map(Vec::len), Some(7));
}

#[tokio::test]
async fn dc_user_search_needs_a_username() {
    let jira = start(Flavor::DataCenter);
    let (status, body) = get(&jira, "/rest/api/2/user/search").await;
    assert_eq!(status, 400);
    assert_eq!(
        messages(&body),
        "The username query parameter was not provided"
    );
}

#[tokio::test]
async fn dc_user_search_reaches_at_most_100_users_whatever_start_at_says() {
    let jira = with_users(Flavor::DataCenter, 300);
    let (_, all) = get(&jira, "/rest/api/2/user/search?username=.&maxResults=1000").await;
    assert_eq!(all.as_array().map(Vec::len), Some(100));
    let (_, beyond) = get(
        &jira,
        "/rest/api/2/user/search?username=.&startAt=100&maxResults=1000",
    )
    .await;
    assert_eq!(beyond.as_array().map(Vec::len), Some(0));
    let (_, tail) = get(
        &jira,
        "/rest/api/2/user/search?username=.&startAt=50&maxResults=100",
    )
    .await;
    assert_eq!(tail.as_array().map(Vec::len), Some(50));
    assert!(ids(&all, "key").iter().all(|k| k.starts_with("JIRAUSER")));
}

#[tokio::test]
async fn dc_user_search_can_be_split_by_name_prefix_into_every_active_user() {
    let jira = with_users(Flavor::DataCenter, 3_000);
    let active: BTreeSet<String> = jira
        .site()
        .snapshot()
        .users
        .iter()
        .filter(|u| u["active"] == true)
        .filter_map(|u| u["key"].as_str().map(str::to_owned))
        .collect();
    let alphabet: Vec<char> = ('a'..='z')
        .chain('0'..='9')
        .chain(['.', '@', '-', '_', ' '])
        .collect();
    let mut prefixes: Vec<String> = alphabet[..36].iter().map(char::to_string).collect();
    let mut found = BTreeSet::new();
    let mut requests = 0;
    while let Some(prefix) = prefixes.pop() {
        requests += 1;
        assert!(requests < 2_000, "the split does not end");
        let encoded = prefix.replace(' ', "%20").replace('@', "%40");
        let (_, users) = get(
            &jira,
            &format!("/rest/api/2/user/search?username={encoded}&maxResults=1000"),
        )
        .await;
        let keys = ids(&users, "key");
        if keys.len() == 100 {
            prefixes.extend(alphabet.iter().map(|c| format!("{prefix}{c}")));
        }
        found.extend(keys);
    }
    assert_eq!(found, active);
}

#[tokio::test]
async fn dc_user_search_leaves_out_inactive_users_unless_asked() {
    let jira = start(Flavor::DataCenter);
    let (_, active) = get(&jira, "/rest/api/2/user/search?username=dave").await;
    assert_eq!(active.as_array().map(Vec::len), Some(0));
    let (_, all) = get(
        &jira,
        "/rest/api/2/user/search?username=dave&includeInactive=true",
    )
    .await;
    assert_eq!(ids(&all, "name"), ["dave"]);
    let (_, by_display_name) = get(&jira, "/rest/api/2/user/search?username=Bob%20B").await;
    assert_eq!(ids(&by_display_name, "name"), ["bob"]);
    let (status, _) = get(
        &jira,
        "/rest/api/2/user/search?username=.&includeInactive=perhaps",
    )
    .await;
    assert_eq!(status, 400);
    crate::common::expect_violations(&jira, 1, &["`includeInactive`"]);
}

#[tokio::test]
async fn the_dc_user_cap_can_be_raised_to_older_jiras_1000() {
    let flavor = Flavor::DataCenter;
    let jira = FakeJira::builder(flavor)
        .site(Site::generated(
            flavor,
            SiteSize {
                users: 300,
                ..SiteSize::default()
            },
        ))
        .page_cap(PageCap::DcUserSearch, 1000)
        .start();
    let (_, page) = get(
        &jira,
        "/rest/api/2/user/search?username=.&startAt=100&maxResults=1000",
    )
    .await;
    assert!(page.as_array().is_some_and(|p| p.len() > 150));
}

#[tokio::test]
async fn assignable_search_lists_a_projects_active_users() {
    let cloud = start(Flavor::Cloud);
    let (_, alpha) = get(&cloud, "/rest/api/3/user/assignable/search?project=ALPHA").await;
    assert_eq!(alpha.as_array().map(Vec::len), Some(3));
    let (_, page) = get(
        &cloud,
        "/rest/api/3/user/assignable/search?project=ALPHA&startAt=1&maxResults=1",
    )
    .await;
    assert_eq!(page.as_array().map(Vec::len), Some(1));
    assert_eq!(page[0], alpha[1]);
    let (_, by_issue) = get(
        &cloud,
        "/rest/api/3/user/assignable/search?issueKey=ALPHA-1",
    )
    .await;
    assert_eq!(by_issue, alpha);

    let dc = start(Flavor::DataCenter);
    let (_, beta) = get(&dc, "/rest/api/2/user/assignable/search?project=BETA").await;
    assert_eq!(ids(&beta, "name"), ["alice"], "dave is inactive");
    let (status, body) = get(&dc, "/rest/api/2/user/assignable/search").await;
    assert_eq!(status, 400);
    assert!(!messages(&body).is_empty());
    let (status, _) = get(&dc, "/rest/api/2/user/assignable/search?project=NOPE").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn dc_assignable_search_takes_at_most_100_and_no_start_at() {
    let jira = with_users(Flavor::DataCenter, 300);
    let flavor_site = jira.site();
    let everyone: Vec<String> = flavor_site
        .snapshot()
        .users
        .iter()
        .filter(|u| u["active"] == true)
        .filter_map(|u| u["key"].as_str().map(str::to_owned))
        .collect();
    flavor_site.with(|s| {
        s.assignable.insert("AAA".into(), everyone.clone());
    });
    let (_, page) = get(
        &jira,
        "/rest/api/2/user/assignable/search?project=AAA&maxResults=1000",
    )
    .await;
    assert_eq!(page.as_array().map(Vec::len), Some(100));
    let (_, again) = get(
        &jira,
        "/rest/api/2/user/assignable/search?project=AAA&maxResults=1000&startAt=100",
    )
    .await;
    assert_eq!(again, page);
    crate::common::expect_violations(&jira, 1, &["`startAt` is not declared"]);
}

/// A Cloud site of `users` users where project `AAA` has exactly the
/// users at these positions (active ones) assignable.
fn cloud_assignable_at(users: usize, positions: &[usize]) -> FakeJira {
    let flavor = Flavor::Cloud;
    let mut site = Site::generated(
        flavor,
        SiteSize {
            users,
            projects: 1,
            issues_per_project: 1,
            ..SiteSize::default()
        },
    );
    for &p in positions {
        site.users[p]["active"] = Value::Bool(true);
    }
    let ids = positions
        .iter()
        .map(|&p| Site::user_id(&site.users[p]).expect("an id").to_owned())
        .collect();
    site.assignable.insert("AAA".into(), ids);
    FakeJira::builder(flavor).site(site).start()
}

async fn assignable_page(jira: &FakeJira, start_at: usize, max_results: usize) -> Vec<String> {
    let (status, page) = get(
        jira,
        &format!(
            "/rest/api/3/user/assignable/search?project=AAA&startAt={start_at}&maxResults={max_results}"
        ),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    ids(&page, "accountId")
}

#[tokio::test]
async fn cloud_assignable_search_filters_a_window_of_the_sites_users() {
    let jira = cloud_assignable_at(1_200, &[3, 40, 41, 250, 999, 1_000, 1_150]);
    let site = jira.site().snapshot();
    let id = |p: usize| Site::user_id(&site.users[p]).expect("an id").to_owned();
    // The window [0, 50) holds three of them: a short page mid-listing.
    assert_eq!(assignable_page(&jira, 0, 50).await, [id(3), id(40), id(41)]);
    // [50, 100) holds none: an empty page that is not the end.
    assert!(assignable_page(&jira, 50, 50).await.is_empty());
    assert_eq!(assignable_page(&jira, 200, 100).await, [id(250)]);
    // Advancing by the count received (3) re-reads an overlapping window.
    assert_eq!(assignable_page(&jira, 3, 50).await, [id(3), id(40), id(41)]);
    // Up to the thousandth user only: 999 is reached, 1000 and 1150 never.
    assert_eq!(assignable_page(&jira, 950, 100).await, [id(999)]);
    assert!(assignable_page(&jira, 1_000, 100).await.is_empty());
    assert!(assignable_page(&jira, 1_100, 100).await.is_empty());
}

#[tokio::test]
async fn cloud_assignable_reach_is_configurable_for_small_sites() {
    let flavor = Flavor::Cloud;
    let jira = FakeJira::builder(flavor)
        .page_cap(PageCap::CloudAssignableReach, 2)
        .start();
    let (_, alpha) = get(&jira, "/rest/api/3/user/assignable/search?project=ALPHA").await;
    // ALPHA's assignable users are the first three of the site: only the
    // first two are within reach.
    assert_eq!(alpha.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn systematic_user_names_need_prefixes_deeper_than_three_characters() {
    let flavor = Flavor::DataCenter;
    let options = GenerateOptions {
        user_names: UserNames::Numbered {
            prefix: "user".into(),
            digits: 4,
        },
        ..GenerateOptions::default()
    };
    let site = Site::generated_with(
        flavor,
        SiteSize {
            users: 2_000,
            projects: 1,
            issues_per_project: 1,
            ..SiteSize::default()
        },
        &options,
    );
    let jira = FakeJira::builder(flavor).site(site).start();
    let count = |users: &Value| users.as_array().map_or(0, Vec::len);
    for capped in ["u", "use", "user", "user0", "user01"] {
        let (_, found) = get(
            &jira,
            &format!(
                "/rest/api/2/user/search?username={capped}&maxResults=1000&includeInactive=true"
            ),
        )
        .await;
        assert_eq!(count(&found), 100, "{capped} hits the cap");
    }
    let (_, found) = get(
        &jira,
        "/rest/api/2/user/search?username=user012&maxResults=1000&includeInactive=true",
    )
    .await;
    assert_eq!(count(&found), 10, "user0120 to user0129");
    assert_eq!(found[0]["name"], "user0120");
}
