//! Issue 2 end to end: `cache_warm --projects --fields` against a fake Jira
//! of each deployment, through the real binaries.

mod common;

use common::*;
use fake_jira::{Credentials, FakeJira, Fault, FaultKind, Flavor, PageCap, Site};

#[test]
fn cloud_projects_and_fields_are_warmed_and_shown_by_cache_status() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");

    let out = run_ok(&mut sb.warm(&["--projects", "--fields", "--profile", "test"]));
    let projects = fake.site().with(|s| s.projects.len());
    assert!(
        stdout(&out).contains(&format!("Warmed {projects} projects in")),
        "{}",
        text(&out)
    );

    let status = sb.status_json();
    assert_eq!(status["schema_version"], 2);
    assert_eq!(
        entries(&status, "project"),
        projects as u64 + 1,
        "each project plus list:projects"
    );
    let fields = fake.site().with(|s| {
        s.fields.len()
            + s.issue_types.len()
            + s.priorities.len()
            + s.statuses.len()
            + s.resolutions.len()
    });
    assert_eq!(
        entries(&status, "field"),
        fields as u64 + 5,
        "each item plus the five list entries"
    );
    assert_eq!(status["runs"][0]["result"], "ok");
    assert_eq!(fake.count_path("/rest/api/3/project/search"), 1);
    assert_eq!(
        fake.count_path("/rest/api/2/"),
        0,
        "a Cloud profile never uses the v2 API"
    );
}

#[test]
fn data_center_with_the_567_apache_projects_is_warmed_over_v2_with_a_bearer_token() {
    let Some(dir) = fixtures() else { return };
    let site = Site::from_fixtures(Flavor::DataCenter, &dir).unwrap();
    let fake = FakeJira::builder(Flavor::DataCenter).site(site).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::DataCenter, "deployment = \"datacenter\"");

    let out = run_ok(&mut sb.warm(&["--projects", "--fields", "--profile", "test"]));
    assert!(
        stdout(&out).contains("Warmed 567 projects in"),
        "{}",
        text(&out)
    );
    assert_eq!(entries(&sb.status_json(), "project"), 568);
    let auth = fake
        .requests()
        .iter()
        .filter_map(|r| r.authorization.clone())
        .collect::<Vec<_>>();
    assert!(
        auth.iter().all(|a| a == &format!("Bearer {DC_TOKEN}")),
        "{auth:?}"
    );
    assert_eq!(fake.count_path("/rest/api/3/"), 0);
}

#[test]
fn the_deployment_is_probed_once_when_the_profile_does_not_state_it() {
    let mut site = Site::small(Flavor::DataCenter);
    site.deployment_type = "Data Center".into();
    let fake = FakeJira::builder(Flavor::DataCenter).site(site).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::DataCenter, "");

    run_ok(&mut sb.warm(&["--projects", "--profile", "test"]));
    assert_eq!(fake.count_path("/rest/api/2/serverInfo"), 1);
    assert_eq!(sb.status_json()["deployment"], "datacenter");

    run_ok(&mut sb.warm(&["--projects", "--profile", "test"]));
    assert_eq!(
        fake.count_path("/rest/api/2/serverInfo"),
        1,
        "the probe's answer is remembered in the cache"
    );
}

#[test]
fn a_cloud_site_is_recognised_by_probing_server_info() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "");
    run_ok(&mut sb.warm(&["--projects", "--profile", "test"]));
    assert_eq!(fake.count_path("/rest/api/3/project/search"), 1);
    assert_eq!(sb.status_json()["deployment"], "cloud");
}

#[test]
fn projects_are_read_across_several_pages_in_order() {
    let site = Site::generated(
        Flavor::Cloud,
        fake_jira::SiteSize {
            projects: 230,
            ..Default::default()
        },
    );
    let fake = FakeJira::builder(Flavor::Cloud)
        .site(site)
        .page_cap(PageCap::PageBean, 50)
        .start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    let out = run_ok(&mut sb.warm(&["--projects", "--profile", "test"]));
    assert!(
        stdout(&out).contains("Warmed 230 projects"),
        "{}",
        text(&out)
    );
    assert_eq!(
        fake.count_path("/rest/api/3/project/search"),
        5,
        "230 projects at 50 a page"
    );
}

#[test]
fn a_429_with_retry_after_is_waited_out_and_the_warm_succeeds() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    fake.faults()
        .add(Fault::new("/rest/api/3/field", FaultKind::retry_after(429, 1)).once());
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    let started = std::time::Instant::now();
    run_ok(&mut sb.warm(&["--fields", "--profile", "test"]));
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(fake.count_path("/rest/api/3/field"), 2);
    let run = &sb.status_json()["runs"][0];
    assert_eq!(run["retries"], 1);
    assert_eq!(run["throttled"], 1);
}

#[test]
fn refused_credentials_fail_at_once_with_exit_3_and_a_clear_message() {
    let fake = FakeJira::builder(Flavor::Cloud)
        .credentials(Credentials::basic(CLOUD_EMAIL, "the-right-one"))
        .start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    let out = run_code(
        &mut sb.warm(&["--projects", "--fields", "--profile", "test"]),
        3,
    );
    let err = stderr(&out);
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(
        !err.contains(CLOUD_TOKEN),
        "the token never appears in output"
    );
    assert_eq!(
        fake.count_path("/rest/api/3/project/search"),
        1,
        "401 is never retried"
    );
    assert_eq!(
        fake.count_path("/rest/api/3/field"),
        0,
        "later stages are skipped"
    );
}

#[test]
fn a_profile_error_names_file_line_and_column_and_exits_3() {
    let sb = Sandbox::new();
    sb.profiles("[profiles.test]\nurl = \"https://x.atlassian.net\"\nrate_limit = [1\n");
    let out = run_code(&mut sb.warm(&["--projects", "--profile", "test"]), 3);
    let err = stderr(&out);
    assert!(err.contains("profiles.toml:3:"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn a_failed_stage_keeps_what_an_earlier_warm_cached() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    run_ok(&mut sb.warm(&["--projects", "--fields", "--profile", "test"]));
    let before = sb.status_json();

    fake.faults().add(Fault::new(
        "/rest/api/3/project/search",
        FaultKind::status(500),
    ));
    let out = run_code(
        &mut sb.warm(&["--projects", "--fields", "--full", "--profile", "test"]),
        4,
    );
    assert!(stderr(&out).contains("HTTP 500"), "{}", text(&out));
    let after = sb.status_json();
    assert_eq!(
        entries(&after, "project"),
        entries(&before, "project"),
        "stale data beats no data"
    );
    assert_eq!(entries(&after, "field"), entries(&before, "field"));
    assert_eq!(after["runs"][0]["result"], "partial");
}

#[test]
fn check_auth_names_the_user_the_deployment_and_the_version() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "");
    let out = run_ok(&mut sb.warm(&["--check-auth", "--profile", "test"]));
    let text = stdout(&out);
    assert!(text.contains("Deployment  cloud"), "{text}");
    assert!(text.contains("User "), "{text}");

    sb.set_env("JIRA_API_TOKEN", "wrong");
    let out = run_code(&mut sb.warm(&["--check-auth", "--profile", "test"]), 3);
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));

    // A warm refused says where the profile's token came from, and is
    // recorded failed, not partial.
    let out = run_code(&mut sb.warm(&["--all", "--profile", "test"]), 3);
    assert!(
        stderr(&out).contains("took its token from the environment variable JIRA_API_TOKEN"),
        "{}",
        stderr(&out)
    );
    let out = run_ok(&mut sb.status(&["--profile", "test", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["runs"][0]["result"], "failed", "{json}");
}

#[test]
fn warmed_entries_record_how_long_their_fetch_took_for_early_refresh() {
    let fake = FakeJira::builder(Flavor::Cloud)
        .latency(std::time::Duration::from_millis(30))
        .start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    run_ok(&mut sb.warm(&["--projects", "--fields", "--profile", "test"]));
    let reader = jira_cache::cache::Cache::open_read_only(sb.cache_path("test")).unwrap();
    let key = fake
        .site()
        .with(|s| s.projects[0]["key"].as_str().unwrap().to_string());
    for (category, key) in [
        (jira_cache::Category::Project, key.as_str()),
        (jira_cache::Category::Field, "list:fields"),
    ] {
        let entry = reader.peek(category, key).unwrap().expect("cached");
        assert!(
            entry.fetch_ms >= 30,
            "{category} {key}: δ = {} ms",
            entry.fetch_ms
        );
    }
}
