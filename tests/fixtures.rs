//! The real captured Jira responses of `../shared/jira/fixtures/`: served by
//! fake-jira and read by the client, so it is held to real shapes, not only
//! to the shapes we invent. Skips with a message when the folder is absent.

mod common;

use common::*;
use fake_jira::{FakeJira, Flavor, Site};
use jira_cache::jira::{Item, Myself, ServerInfo, by_id, by_key, by_user};

fn read(dir: &std::path::Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_fixture_parses_into_the_client_types_with_its_identity() {
    let Some(dir) = fixtures() else { return };
    for (file, identity) in [
        ("cloud/projects.json", by_key as jira_cache::jira::Identity),
        ("cloud/fields.json", by_id),
        ("cloud/users.json", by_user),
        ("server/all_projects.json", by_key),
        ("server/all_fields.json", by_id),
        ("server/all_priorities.json", by_id),
        ("server/all_resolutions.json", by_id),
        ("server/all_statuses.json", by_id),
        ("server/all_statuscategories.json", by_id),
    ] {
        let items: Vec<Item> =
            serde_json::from_str(&read(&dir, file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!items.is_empty(), "{file}");
        assert!(
            items.iter().all(|i| identity(i).is_some()),
            "every item of {file} has its cache key"
        );
    }
    for file in ["cloud/issue.json", "server/project.json"] {
        let item: Item = serde_json::from_str(&read(&dir, file)).unwrap();
        assert!(by_key(&item).is_some(), "{file}");
    }
    let search: serde_json::Value = serde_json::from_str(&read(&dir, "cloud/search.json")).unwrap();
    assert_eq!(search["isLast"], true);
    let info: ServerInfo = serde_json::from_str(&read(&dir, "cloud/serverinfo.json")).unwrap();
    assert_eq!(info.deployment(), jira_cache::Deployment::Cloud);
    let me: Myself = serde_json::from_str(&read(&dir, "cloud/myself.json")).unwrap();
    assert_eq!(me.describe(), "Person A <user@test.com>");
}

#[test]
fn a_cloud_site_serving_the_fixtures_is_warmed_end_to_end() {
    let Some(dir) = fixtures() else { return };
    let fake = FakeJira::builder(Flavor::Cloud)
        .site(Site::from_fixtures(Flavor::Cloud, &dir).unwrap())
        .start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "");
    let out = run_ok(&mut sb.warm(&["--check-auth", "--profile", "test"]));
    assert!(stdout(&out).contains("Person A"), "{}", text(&out));
    let out = run_ok(&mut sb.warm(&["--all", "--profile", "test"]));
    let projects = fake.site().with(|s| s.projects.len());
    assert!(
        stdout(&out).contains(&format!("Warmed {projects} projects")),
        "{}",
        text(&out)
    );
    let out = run_ok(&mut sb.status(&["--profile", "test", "--keys", "user"]));
    assert!(
        stdout(&out).contains("5fb82376aca10c006949f35b"),
        "users by accountId: {}",
        text(&out)
    );
    let out = run_ok(&mut sb.status(&["--profile", "test", "--get", "field", "customfield_10111"]));
    assert!(
        stdout(&out).contains("Original story points"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_data_center_site_serving_the_apache_fixtures_is_warmed_end_to_end() {
    let Some(dir) = fixtures() else { return };
    let fake = FakeJira::builder(Flavor::DataCenter)
        .site(Site::from_fixtures(Flavor::DataCenter, &dir).unwrap())
        .start();
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::DataCenter,
        "projects = [\"ABDERA\", \"FOR\"]",
    );
    let out = run_ok(&mut sb.warm(&["--projects", "--fields", "--profile", "test"]));
    assert!(stdout(&out).contains("Warmed 2 projects"), "{}", text(&out));
    for (category, key, expect) in [
        ("project", "ABDERA", "Abdera"),
        ("field", "priority:1", "Blocker"),
        ("field", "resolution:2", "Won't Fix"),
        ("field", "list:statuses", "statusCategory"),
    ] {
        let out = run_ok(&mut sb.status(&["--profile", "test", "--get", category, key]));
        assert!(
            stdout(&out).contains(expect),
            "{category} {key}: {}",
            text(&out)
        );
    }
}
