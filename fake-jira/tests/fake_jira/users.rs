//! User listings: Cloud's offset arrays and Data Center's capped search.

use std::collections::BTreeSet;

use fake_jira::{FakeJira, Flavor, PageCap, Site, SiteSize};
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
}
