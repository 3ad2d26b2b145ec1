//! Sites that refuse some requests while serving others: `serverInfo`
//! behind SSO, and one project the account may not see.

use fake_jira::{FakeJira, Flavor};
use serde_json::json;

use crate::common::{client, get, post};

#[tokio::test]
async fn server_info_behind_sso_refuses_anonymous_requests_only() {
    for flavor in [Flavor::Cloud, Flavor::DataCenter] {
        let jira = FakeJira::builder(flavor)
            .server_info_needs_auth(true)
            .start();
        let url = format!("{}/rest/api/2/serverInfo", jira.url());
        let anonymous = client().get(&url).send().await.expect("an answer");
        assert_eq!(anonymous.status(), 401, "{flavor}");
        let (status, info) = get(&jira, "/rest/api/2/serverInfo").await;
        assert_eq!(status, 200, "{flavor}");
        assert!(info["deploymentType"].is_string());

        let stock = FakeJira::builder(flavor).start();
        let url = format!("{}/rest/api/2/serverInfo", stock.url());
        let anonymous = client().get(&url).send().await.expect("an answer");
        assert_eq!(
            anonymous.status(),
            200,
            "{flavor}: a stock site answers anonymously"
        );
    }
}

#[tokio::test]
async fn a_forbidden_project_answers_403_for_its_own_resources_only() {
    let jira = FakeJira::builder(Flavor::Cloud)
        .forbid_project("BETA")
        .start();
    for path in [
        "/rest/api/3/project/BETA",
        "/rest/api/3/project/10001",
        "/rest/api/3/issue/BETA-1",
        "/rest/api/3/user/assignable/search?project=BETA",
        "/rest/api/3/search/jql?jql=project%20%3D%20%22BETA%22&fields=key",
        "/rest/api/3/search/jql?jql=project%20in%20(ALPHA%2C%20BETA)",
    ] {
        let (status, _) = get(&jira, path).await;
        assert_eq!(status, 403, "{path}");
    }
    let (status, _) = post(
        &jira,
        "/rest/api/3/search/jql",
        &json!({"jql": "project = beta", "fields": ["key"]}),
    )
    .await;
    assert_eq!(status, 403);
    for path in [
        "/rest/api/3/project/ALPHA",
        "/rest/api/3/user/assignable/search?project=ALPHA",
        "/rest/api/3/search/jql?jql=project%20%3D%20ALPHA",
        "/rest/api/3/myself",
        "/rest/api/3/field",
    ] {
        let (status, _) = get(&jira, path).await;
        assert_eq!(status, 200, "{path}");
    }
    let (_, listing) = get(&jira, "/rest/api/3/project/search").await;
    assert_eq!(listing["total"], 3, "the project is still listed");
    jira.allow_project("BETA");
    let (status, _) = get(&jira, "/rest/api/3/project/BETA").await;
    assert_eq!(status, 200);
    jira.forbid_project("alpha");
    let (status, _) = get(&jira, "/rest/api/3/project/ALPHA").await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_forbidden_project_on_data_center_too() {
    let jira = FakeJira::builder(Flavor::DataCenter)
        .forbid_project("FOR")
        .start();
    let (status, _) = get(&jira, "/rest/api/2/user/assignable/search?project=FOR").await;
    assert_eq!(status, 403);
    let (status, _) = post(
        &jira,
        "/rest/api/2/search",
        &json!({"jql": "project = \"FOR\"", "maxResults": 10}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = get(&jira, "/rest/api/2/user/assignable/search?project=ALPHA").await;
    assert_eq!(status, 200);
}
