//! Projects and metadata: the bare arrays and Cloud's PageBeans.

use fake_jira::{FakeJira, Flavor, PageCap, Site, SiteSize};
use serde_json::Value;

use crate::common::{expect_violations, get, keys, messages, start};

fn with_projects(flavor: Flavor, projects: usize) -> FakeJira {
    let size = SiteSize {
        projects,
        issues_per_project: 1,
        ..SiteSize::default()
    };
    FakeJira::builder(flavor)
        .site(Site::generated(flavor, size))
        .start()
}

#[tokio::test]
async fn cloud_project_search_pages_until_is_last() {
    let jira = with_projects(Flavor::Cloud, 7);
    let mut seen = Vec::new();
    let mut start_at = 0;
    loop {
        let (status, page) = get(
            &jira,
            &format!("/rest/api/3/project/search?startAt={start_at}&maxResults=3"),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(page["total"], 7);
        assert_eq!(page["startAt"], start_at);
        assert_eq!(page["maxResults"], 3);
        let values = keys(&page["values"]);
        start_at += values.len();
        seen.extend(values);
        if page["isLast"] == true {
            assert!(page.get("nextPage").is_none());
            break;
        }
        assert!(
            page["nextPage"]
                .as_str()
                .is_some_and(|n| n.contains(&format!("startAt={start_at}")))
        );
    }
    assert_eq!(seen, ["AAA", "AAB", "AAC", "AAD", "AAE", "AAF", "AAG"]);
    assert_eq!(jira.count_path("/rest/api/3/project/search"), 3);
}

#[tokio::test]
async fn project_search_caps_max_results_at_100_and_defaults_to_50() {
    let jira = with_projects(Flavor::Cloud, 150);
    let (_, page) = get(&jira, "/rest/api/3/project/search?maxResults=500").await;
    assert_eq!(page["maxResults"], 100);
    assert_eq!(page["values"].as_array().map(Vec::len), Some(100));
    let (_, page) = get(&jira, "/rest/api/3/project/search").await;
    assert_eq!(page["maxResults"], 50);
    assert_eq!(page["values"].as_array().map(Vec::len), Some(50));
    expect_violations(&jira, 1, &["above the maximum 100"]);
}

#[tokio::test]
async fn the_page_bean_cap_is_configurable() {
    let jira = FakeJira::builder(Flavor::Cloud)
        .page_cap(PageCap::PageBean, 2)
        .start();
    let (_, page) = get(&jira, "/rest/api/3/project/search?maxResults=50").await;
    assert_eq!(keys(&page["values"]), ["ALPHA", "BETA"]);
    assert_eq!(page["isLast"], false);
}

#[tokio::test]
async fn project_search_narrows_by_repeated_keys_and_never_splits_on_commas() {
    let jira = start(Flavor::Cloud);
    let (_, page) = get(&jira, "/rest/api/3/project/search?keys=FOR&keys=alpha").await;
    assert_eq!(keys(&page["values"]), ["ALPHA", "FOR"]);
    // An exploded array parameter: `keys=BETA,FOR` is the one key "BETA,FOR".
    let (status, page) = get(&jira, "/rest/api/3/project/search?keys=BETA,FOR").await;
    assert_eq!(status, 200);
    assert!(keys(&page["values"]).is_empty(), "{page}");
    assert_eq!(page["total"], 0);
    let (_, page) = get(&jira, "/rest/api/3/project/search?keys=BETA%2CFOR").await;
    assert!(keys(&page["values"]).is_empty(), "{page}");
    let (_, page) = get(&jira, "/rest/api/3/project/search?orderBy=-key").await;
    assert_eq!(keys(&page["values"]), ["FOR", "BETA", "ALPHA"]);
}

#[tokio::test]
async fn project_search_takes_at_most_50_keys() {
    let jira = start(Flavor::Cloud);
    let many = |n: usize| {
        (0..n)
            .map(|i| format!("keys=K{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    let (status, _) = get(&jira, &format!("/rest/api/3/project/search?{}", many(50))).await;
    assert_eq!(status, 200);
    let (status, body) = get(&jira, &format!("/rest/api/3/project/search?{}", many(51))).await;
    assert_eq!(status, 400);
    assert!(messages(&body).contains("50"), "{body}");
}

#[tokio::test]
async fn project_is_a_bare_array_on_both_flavors() {
    for (flavor, base) in [
        (Flavor::Cloud, "/rest/api/3"),
        (Flavor::DataCenter, "/rest/api/2"),
    ] {
        let jira = start(flavor);
        let (status, projects) = get(&jira, &format!("{base}/project")).await;
        assert_eq!(status, 200);
        assert_eq!(keys(&projects), ["ALPHA", "BETA", "FOR"]);
        let (_, one) = get(&jira, &format!("{base}/project/FOR")).await;
        assert_eq!(one["name"], "Forge");
        let (status, body) = get(&jira, &format!("{base}/project/NOPE")).await;
        assert_eq!(status, 404);
        assert_eq!(
            messages(&body),
            "No project could be found with key 'NOPE'."
        );
    }
}

#[tokio::test]
async fn metadata_lists_are_bare_arrays_on_both_flavors() {
    for (flavor, base) in [
        (Flavor::Cloud, "/rest/api/3"),
        (Flavor::DataCenter, "/rest/api/2"),
    ] {
        let jira = start(flavor);
        let site = jira.site().snapshot();
        let lists: [(&str, &Vec<Value>); 6] = [
            ("field", &site.fields),
            ("issuetype", &site.issue_types),
            ("priority", &site.priorities),
            ("status", &site.statuses),
            ("statuscategory", &site.status_categories),
            ("resolution", &site.resolutions),
        ];
        for (path, expected) in lists {
            let (status, body) = get(&jira, &format!("{base}/{path}")).await;
            assert_eq!(status, 200, "{path}");
            assert!(!expected.is_empty(), "{path}");
            assert_eq!(body.as_array(), Some(expected), "{flavor} {path}");
        }
    }
}

#[tokio::test]
async fn cloud_priority_and_resolution_search_are_page_beans() {
    let jira = start(Flavor::Cloud);
    for path in ["priority/search", "resolution/search"] {
        let (_, first) = get(&jira, &format!("/rest/api/3/{path}?maxResults=2")).await;
        assert_eq!(first["isLast"], false, "{path}");
        assert_eq!(first["values"].as_array().map(Vec::len), Some(2));
        let total = first["total"].as_u64().expect("a total") as usize;
        let (_, rest) = get(
            &jira,
            &format!("/rest/api/3/{path}?startAt=2&maxResults=50"),
        )
        .await;
        assert_eq!(rest["isLast"], true);
        assert_eq!(rest["values"].as_array().map(Vec::len), Some(total - 2));
    }
    let (_, one) = get(&jira, "/rest/api/3/priority/search?id=3").await;
    assert_eq!(one["values"][0]["name"], "Medium");
    let (_, two) = get(&jira, "/rest/api/3/priority/search?id=1&id=3").await;
    assert_eq!(two["total"], 2);
    let (_, none) = get(&jira, "/rest/api/3/priority/search?id=1,3").await;
    assert_eq!(none["total"], 0, "ids are repeated, never comma-joined");
    let (_, named) = get(&jira, "/rest/api/3/priority/search?priorityName=high").await;
    let names: Vec<&str> = named["values"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["Highest", "High"]);
    for path in ["priority/search", "resolution/search"] {
        let (_, default) = get(&jira, &format!("/rest/api/3/{path}?onlyDefault=true")).await;
        assert_eq!(default["total"], 1, "{path}: {default}");
    }
}

#[tokio::test]
async fn user_finds_one_user_by_account_id_on_cloud_and_key_or_name_on_dc() {
    let cloud = start(Flavor::Cloud);
    let site = cloud.site().snapshot();
    let alice = &site.users[1];
    let id = alice["accountId"].as_str().expect("an accountId");
    let (status, user) = get(&cloud, &format!("/rest/api/3/user?accountId={id}")).await;
    assert_eq!(status, 200);
    assert_eq!(user["displayName"], alice["displayName"]);
    assert!(user["self"].as_str().is_some_and(|s| s.contains(id)));
    assert_eq!(user["groups"]["size"], 0);
    assert_eq!(user["applicationRoles"]["items"], serde_json::json!([]));
    let (status, _) = get(&cloud, "/rest/api/3/user?accountId=nobody").await;
    assert_eq!(status, 404);
    let (status, _) = get(&cloud, "/rest/api/3/user").await;
    assert_eq!(status, 400);
    cloud.take_violations();

    let dc = start(Flavor::DataCenter);
    let (_, by_name) = get(&dc, "/rest/api/2/user?username=ALICE").await;
    assert_eq!(by_name["name"], "alice");
    assert_eq!(by_name["deleted"], false);
    let key = by_name["key"].as_str().expect("a key");
    let (_, by_key) = get(&dc, &format!("/rest/api/2/user?key={key}")).await;
    assert_eq!(by_key, by_name);
    let (status, _) = get(&dc, "/rest/api/2/user?username=nobody").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn myself_is_the_user_the_credentials_belong_to() {
    let cloud = start(Flavor::Cloud);
    let (_, me) = get(&cloud, "/rest/api/3/myself").await;
    assert_eq!(me["emailAddress"], "bot@example.com");
    assert!(me["accountId"].is_string());
    let dc = start(Flavor::DataCenter);
    let (_, me) = get(&dc, "/rest/api/2/myself").await;
    assert_eq!(me["key"], "JIRAUSER10000");
    assert!(me.get("accountId").is_none());
}

#[tokio::test]
async fn malformed_paging_parameters_are_400s() {
    let jira = start(Flavor::Cloud);
    for query in [
        "startAt=-1",
        "maxResults=ten",
        "startAt=1.5",
        "orderBy=colour",
    ] {
        let (status, body) = get(&jira, &format!("/rest/api/3/project/search?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(!messages(&body).is_empty(), "{query}");
    }
    // `startAt=-1` is a spec-valid integer that Jira refuses itself.
    expect_violations(&jira, 3, &["`maxResults`", "`startAt`", "`orderBy`"]);
}
