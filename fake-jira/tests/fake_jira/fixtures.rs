//! The captured fixtures, served as they were captured.

use std::path::Path;

use fake_jira::{FakeJira, Flavor, Site};
use serde_json::{Value, json};

use crate::common::{fixtures_dir, get, keys, post};

fn fixture(dir: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(name)).expect("the fixture is readable");
    serde_json::from_str(&text).expect("the fixture is JSON")
}

fn serve(flavor: Flavor, dir: &Path) -> FakeJira {
    let site = Site::from_fixtures(flavor, dir).expect("the fixtures load");
    FakeJira::builder(flavor).site(site).start()
}

#[tokio::test]
async fn cloud_fixtures_are_served_as_captured() {
    let Some(dir) = fixtures_dir() else { return };
    let jira = serve(Flavor::Cloud, &dir);
    let cloud = dir.join("cloud");

    let (_, info) = get(&jira, "/rest/api/2/serverInfo").await;
    assert_eq!(info["deploymentType"], "Cloud");
    assert_eq!(
        get(&jira, "/rest/api/3/myself").await.1,
        fixture(&cloud, "myself.json")
    );
    assert_eq!(
        get(&jira, "/rest/api/3/field").await.1,
        fixture(&cloud, "fields.json")
    );
    assert_eq!(
        get(&jira, "/rest/api/3/users/search").await.1,
        fixture(&cloud, "users.json")
    );

    let (_, bean) = get(&jira, "/rest/api/3/project/search").await;
    let captured = fixture(&cloud, "projects.json");
    let captured = captured.as_array().expect("a bare array");
    assert_eq!(
        bean["values"].as_array().map(|v| &v[..3]),
        Some(&captured[..])
    );
    assert_eq!(keys(&bean["values"]), ["PRJ1", "PRJ2", "PRJ3", "TEST"]);
    assert!(bean["values"][0].get("id").is_none(), "trimmed: no id");

    let (status, page) = post(
        &jira,
        "/rest/api/3/search/jql",
        &json!({"jql": "project = TEST ORDER BY key ASC", "fields": ["*all"]}),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(keys(&page["issues"]), ["TEST-1", "TEST-2", "TEST-3"]);
    let captured = fixture(&cloud, "issue.json");
    assert_eq!(page["issues"][0]["fields"], captured["fields"]);
    let (_, ids_only) = post(
        &jira,
        "/rest/api/3/search/jql",
        &json!({"jql": "project = TEST"}),
    )
    .await;
    assert_eq!(
        ids_only["issues"][0],
        json!({"key": "TEST-3"}),
        "no id to give: the key stands in"
    );
}

#[tokio::test]
async fn server_fixtures_are_served_as_captured() {
    let Some(dir) = fixtures_dir() else { return };
    let jira = serve(Flavor::DataCenter, &dir);
    let server = dir.join("server");
    for (path, name) in [
        ("project", "all_projects.json"),
        ("field", "all_fields.json"),
        ("priority", "all_priorities.json"),
        ("resolution", "all_resolutions.json"),
        ("status", "all_statuses.json"),
        ("statuscategory", "all_statuscategories.json"),
    ] {
        let (status, body) = get(&jira, &format!("/rest/api/2/{path}")).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body, fixture(&server, name), "{path}");
    }
    let (_, types) = get(&jira, "/rest/api/2/issuetype").await;
    assert_eq!(types, fixture(&server, "project.json")["issueTypes"]);

    for key in ["FOR", "EXEC", "TRANSACTION"] {
        let (status, _) = post(
            &jira,
            "/rest/api/2/search",
            &json!({"jql": format!("project = {key}")}),
        )
        .await;
        assert_eq!(status, 400, "{key} unquoted");
        let (status, page) = post(
            &jira,
            "/rest/api/2/search",
            &json!({"jql": format!("project = \"{key}\"")}),
        )
        .await;
        assert_eq!(status, 200, "{key} quoted");
        assert_eq!(page["total"], 2);
    }
    let (_, users) = get(&jira, "/rest/api/2/user/search?username=.&maxResults=1000").await;
    assert_eq!(
        users.as_array().map(Vec::len),
        Some(100),
        "151 users, capped at 100"
    );
}
