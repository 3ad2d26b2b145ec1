//! Issue 3 end to end: users, recent issues by project, on-demand issues,
//! incremental warms and reconciliation, in both deployments.

mod common;

use common::*;
use fake_jira::{FakeJira, Fault, FaultKind, Flavor, PageCap, Site, SiteSize};

fn size(projects: usize, users: usize, issues_per_project: usize) -> SiteSize {
    SiteSize {
        projects,
        users,
        issues_per_project,
        fields: 20,
        issue_bytes: 600,
        recent_days: 20,
    }
}

/// How many issues of each project the fake holds updated within `days`.
fn in_window_by_project(fake: &FakeJira, days: i64) -> std::collections::BTreeMap<String, usize> {
    let since = chrono::Utc::now() - chrono::Duration::days(days);
    fake.site().with(|s| {
        let mut counts = std::collections::BTreeMap::new();
        for i in &s.issues {
            let updated =
                fake_jira::parse_jira_time(i["fields"]["updated"].as_str().unwrap()).unwrap();
            if updated >= since {
                *counts
                    .entry(i["fields"]["project"]["key"].as_str().unwrap().to_string())
                    .or_insert(0) += 1;
            }
        }
        counts
    })
}

fn user_keys(sb: &Sandbox) -> String {
    stdout(&run_ok(&mut sb.status(&[
        "--profile",
        "test",
        "--keys",
        "user",
    ])))
}

fn issue_keys(sb: &Sandbox) -> Vec<String> {
    let out = run_ok(&mut sb.status(&["--profile", "test", "--keys", "issue"]));
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn cloud_users_are_read_across_several_short_pages() {
    let site = Site::generated(Flavor::Cloud, size(2, 250, 0));
    let fake = FakeJira::builder(Flavor::Cloud)
        .site(site)
        .page_cap(PageCap::CloudUserSearch, 60)
        .start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    let out = run_ok(&mut sb.warm(&["--users", "--profile", "test"]));
    assert!(stdout(&out).contains("Warmed 250 users"), "{}", text(&out));
    assert!(
        fake.count_path("/rest/api/3/users/search") >= 5,
        "250 users at 60 a page"
    );
    assert_eq!(
        entries(&sb.status_json(), "user"),
        250 + 2,
        "every user plus assignable:<KEY> of each project"
    );
}

#[test]
fn a_data_center_site_capped_at_100_users_per_search_still_yields_every_user() {
    let site = Site::generated(Flavor::DataCenter, size(1, 420, 0));
    let fake = FakeJira::builder(Flavor::DataCenter).site(site).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::DataCenter, "deployment = \"datacenter\"");
    let out = run_ok(&mut sb.warm(&["--users", "--profile", "test"]));
    assert!(stdout(&out).contains("Warmed 420 users"), "{}", text(&out));
    assert!(!stdout(&out).contains("truncated"), "{}", text(&out));
}

#[test]
fn cloud_issues_come_from_a_key_census_over_several_token_pages_then_bulkfetch_with_the_profile_fields()
 {
    let site = Site::generated(Flavor::Cloud, size(2, 5, 60));
    let fake = FakeJira::builder(Flavor::Cloud)
        .site(site)
        .page_cap(PageCap::SearchJqlIds, 7)
        .start();
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "deployment = \"cloud\"\nissue_fields = [\"summary\", \"status\"]",
    );
    let out = run_ok(&mut sb.warm(&["--issues", "-v", "--profile", "test"]));
    let in_window = in_window_by_project(&fake, 30);
    for (p, n) in &in_window {
        assert!(
            stdout(&out).contains(&format!("Warmed {n} issues for {p}")),
            "{p}: {}",
            text(&out)
        );
    }
    let searches: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/rest/api/3/search/jql")
        .collect();
    let total: usize = in_window.values().sum();
    assert_eq!(
        searches.len(),
        total.div_ceil(7),
        "one census of both projects, 7 keys a page"
    );
    let census = searches[0].body.clone().unwrap();
    assert!(
        census.contains(r#""fields":["key"]"#) && census.contains("project in ("),
        "a key-only census of all projects at once: {census}"
    );
    let bulk: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/rest/api/3/issue/bulkfetch")
        .collect();
    assert_eq!(bulk.len(), total.div_ceil(100));
    let body = bulk[0].body.clone().unwrap();
    assert!(
        body.contains("\"summary\"") && body.contains("\"updated\""),
        "asks for the profile's fields plus updated: {body}"
    );
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.path != "/rest/api/3/search" && r.path != "/rest/api/2/search"),
        "never the removed /search"
    );
    assert_eq!(issue_keys(&sb).len(), total);
}

#[test]
fn data_center_issues_come_from_search_with_offsets() {
    let site = Site::generated(Flavor::DataCenter, size(1, 5, 50));
    let fake = FakeJira::builder(Flavor::DataCenter)
        .site(site)
        .page_cap(PageCap::DcSearch, 9)
        .start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::DataCenter, "deployment = \"datacenter\"");
    let out = run_ok(&mut sb.warm(&["--issues", "-v", "--profile", "test"]));
    assert!(
        stdout(&out).contains("Warmed 25 issues for"),
        "{}",
        text(&out)
    );
    assert!(fake.count_path("/rest/api/2/search") >= 3);
}

#[test]
fn since_and_max_issues_bound_the_window_and_the_count() {
    let site = Site::generated(Flavor::Cloud, size(1, 5, 80));
    let fake = FakeJira::builder(Flavor::Cloud).site(site).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    let out = run_ok(&mut sb.warm(&["--issues", "-v", "--max-issues", "5", "--profile", "test"]));
    assert!(
        stdout(&out).contains("Warmed 5 issues for"),
        "{}",
        text(&out)
    );
    assert!(
        stdout(&out).contains("stopped at --max-issues"),
        "{}",
        text(&out)
    );

    let out = run_ok(&mut sb.warm(&[
        "--issues",
        "-v",
        "--since",
        "2h",
        "--full",
        "--profile",
        "test",
    ]));
    let body = fake
        .requests()
        .iter()
        .rev()
        .find(|r| r.path.ends_with("/search/jql"))
        .unwrap()
        .body
        .clone()
        .unwrap();
    assert!(body.contains("updated >= -120m"), "{body}");
    assert!(
        stdout(&out).contains("issues for") || stdout(&out).contains("issue for"),
        "{}",
        text(&out)
    );
}

#[test]
fn issues_asked_for_by_key_and_by_jql_are_warmed_on_demand() {
    for flavor in [Flavor::Cloud, Flavor::DataCenter] {
        let fake = FakeJira::builder(flavor).start();
        let keys: Vec<String> = fake.site().with(|s| {
            s.issues
                .iter()
                .take(3)
                .map(|i| i["key"].as_str().unwrap().to_string())
                .collect()
        });
        let mut sb = Sandbox::new();
        sb.profile_for(&fake, flavor, "");
        let out = run_ok(&mut sb.warm(&[
            "--issue",
            &keys[0],
            "--issue",
            &keys[1],
            "--issue",
            "NOPE-1",
            "--profile",
            "test",
        ]));
        assert!(
            stdout(&out).contains("Warmed 2 of 3 issues asked for"),
            "{flavor:?}: {}",
            text(&out)
        );
        assert!(
            stdout(&out).contains("NOPE-1"),
            "the missing key is named: {}",
            text(&out)
        );
        let project = keys[2].rsplit_once('-').unwrap().0.to_string();
        let jql = format!("project = \"{project}\" ORDER BY key");
        let out = run_ok(&mut sb.warm(&["--jql", &jql, "--profile", "test"]));
        assert!(stdout(&out).contains("for the JQL query"), "{}", text(&out));
        assert!(issue_keys(&sb).contains(&keys[2]), "{flavor:?}");
    }
}

#[test]
fn a_project_key_that_is_a_jql_reserved_word_is_quoted() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        "deployment = \"cloud\"\nprojects = [\"FOR\"]",
    );
    let out = run_ok(&mut sb.warm(&["--issues", "-v", "--profile", "test"]));
    assert!(stdout(&out).contains("for FOR"), "{}", text(&out));
    let body = fake
        .requests()
        .iter()
        .find(|r| r.path.ends_with("/search/jql"))
        .unwrap()
        .body
        .clone()
        .unwrap();
    assert!(body.contains(r#"project = \"FOR\""#), "{body}");
}

#[test]
fn a_second_warm_after_one_issue_changed_asks_only_for_what_changed_and_rewrites_only_that_issue() {
    let site = Site::generated(Flavor::Cloud, size(1, 5, 40));
    let fake = FakeJira::builder(Flavor::Cloud).site(site).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    run_ok(&mut sb.warm(&["--issues", "-v", "--profile", "test"]));
    // Issue i was updated i + 3 hours ago: no issue lies within the
    // watermark's safety margin.
    let key = fake.site().with(|s| {
        let now = chrono::Utc::now();
        for (i, issue) in s.issues.iter_mut().enumerate() {
            let t = now - chrono::Duration::hours(3 + i as i64);
            issue["fields"]["updated"] = serde_json::json!(fake_jira::format_jira_time(&t));
        }
        s.issues[5]["key"].as_str().unwrap().to_string()
    });
    run_ok(&mut sb.warm(&["--issues", "-v", "--full", "--profile", "test"]));
    assert!(fake.site().touch_issue(&key));
    let before = fake.requests().len();
    let out = run_ok(&mut sb.warm(&["--issues", "-v", "--profile", "test"]));
    // Only the changed issue: the watermark is when the last pass started,
    // and no other issue changed within its margin.
    assert!(
        stdout(&out).contains("Warmed 1 issue for"),
        "{}",
        text(&out)
    );
    let bulk: Vec<String> = fake.requests()[before..]
        .iter()
        .filter(|r| r.path.ends_with("/issue/bulkfetch"))
        .filter_map(|r| r.body.clone())
        .collect();
    assert_eq!(bulk.len(), 1, "{bulk:?}");
    assert!(bulk[0].contains(&format!("\"{key}\"")), "{bulk:?}");
    assert!(
        stdout(&out).contains("(1 changed since the last warm)"),
        "{}",
        text(&out)
    );
    assert_eq!(sb.status_json()["runs"][0]["written"], 1);
}

#[test]
fn what_jira_deleted_vanishes_after_the_next_warm_but_not_after_a_failed_one() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    run_ok(&mut sb.warm(&["--all", "--profile", "test"]));
    let (project, user) = fake.site().with(|s| {
        (
            s.projects[0]["key"].as_str().unwrap().to_string(),
            s.users[0]["accountId"].as_str().unwrap().to_string(),
        )
    });
    let issue = issue_keys(&sb)
        .into_iter()
        .find(|k| !k.starts_with(&format!("{project}-")))
        .expect("a cached issue of another project");
    let keys = |c: &str| stdout(&run_ok(&mut sb.status(&["--profile", "test", "--keys", c])));
    assert!(keys("project").lines().any(|k| k == project));

    // Failing stages remove nothing.
    fake.site().remove_project(&project);
    fake.site().remove_user(&user);
    fake.site().remove_issue(&issue);
    fake.faults().add(Fault::new(
        "/rest/api/3/project/search",
        FaultKind::status(500),
    ));
    fake.faults().add(Fault::new(
        "/rest/api/3/users/search",
        FaultKind::status(500),
    ));
    fake.faults()
        .add(Fault::new("/rest/api/3/search/jql", FaultKind::status(500)));
    run_code(&mut sb.warm(&["--all", "--full", "--profile", "test"]), 4);
    assert!(
        keys("project").lines().any(|k| k == project),
        "a failed stage removes nothing"
    );
    assert!(keys("user").lines().any(|k| k == user));
    assert!(issue_keys(&sb).contains(&issue));

    fake.faults().clear();
    run_ok(&mut sb.warm(&["--all", "--full", "--profile", "test"]));
    assert!(
        !keys("project").lines().any(|k| k == project),
        "the deleted project is gone"
    );
    assert!(
        !keys("user").lines().any(|k| k == user),
        "the deleted user is gone"
    );
    assert!(
        !issue_keys(&sb).contains(&issue),
        "the deleted issue is gone"
    );
}

#[test]
fn a_split_user_listing_removes_deleted_users_but_never_one_no_prefix_can_find() {
    let mut site = Site::generated(Flavor::DataCenter, size(1, 250, 0));
    site.users.push(serde_json::json!({
        "key": "JIRAUSER99999", "name": "Ülrich", "displayName": "Ülrich Ärger",
        "emailAddress": "Ülrich@example.com", "active": true
    }));
    let deleted = site.users[0]["key"].as_str().unwrap().to_string();
    // First a site without the cap: every user, Ülrich included, is cached.
    let uncapped = FakeJira::builder(Flavor::DataCenter)
        .site(site.clone())
        .page_cap(PageCap::DcUserSearch, 100_000)
        .start();
    let mut sb = Sandbox::new();
    sb.profile_for(&uncapped, Flavor::DataCenter, "deployment = \"datacenter\"");
    run_ok(&mut sb.warm(&["--users", "--profile", "test"]));

    let before = user_keys(&sb);
    assert!(before.contains("JIRAUSER99999") && before.contains(&deleted));

    // Then the same site capped at 100 per search, one user deleted.
    site.users.retain(|u| u["key"] != deleted.as_str());
    let capped = FakeJira::builder(Flavor::DataCenter).site(site).start();
    sb.profile_for(&capped, Flavor::DataCenter, "deployment = \"datacenter\"");
    run_ok(&mut sb.warm(&["--users", "--full", "--profile", "test"]));
    let after = user_keys(&sb);
    assert!(!after.contains(&deleted), "the deleted user is gone");
    assert!(
        after.contains("JIRAUSER99999"),
        "a user no prefix can find is kept, not judged deleted"
    );
}

/// What a warm told of the users stage's phases, and whether any came
/// after the stage had ended.
#[derive(Default)]
struct Phases {
    calls: std::sync::Mutex<Vec<(String, u64, u64)>>,
    users_ended: std::sync::atomic::AtomicBool,
    after_the_end: std::sync::atomic::AtomicBool,
}

impl jira_cache::warm::Progress for Phases {
    fn phase(&self, stage: jira_cache::warm::Stage, phase: &str, done: u64, total: u64) {
        use std::sync::atomic::Ordering::SeqCst;
        assert_eq!(stage, jira_cache::warm::Stage::Users);
        if self.users_ended.load(SeqCst) {
            self.after_the_end.store(true, SeqCst);
        }
        self.calls
            .lock()
            .unwrap()
            .push((phase.to_string(), done, total));
    }

    fn stage_finished(&self, report: &jira_cache::warm::StageReport) {
        if report.stage == jira_cache::warm::Stage::Users {
            self.users_ended
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[test]
fn the_assignable_users_phase_tells_its_own_progress_project_by_project() {
    use jira_cache::profile::{self, Env, LoadOptions};
    use jira_cache::warm::{ASSIGNABLE_PHASE, Stage, WarmOutcome, WarmRequest, WarmSession};
    let projects = 7;
    let site = Site::generated(Flavor::Cloud, size(projects, 30, 0));
    let fake = FakeJira::builder(Flavor::Cloud).site(site).start();
    let mut sb = Sandbox::new();
    sb.profile_for(&fake, Flavor::Cloud, "deployment = \"cloud\"");
    let profile = profile::load(&LoadOptions {
        config: Some(sb.config_path()),
        profile: Some("test".into()),
        env: Env::from_pairs([
            ("HOME", sb.home().to_str().unwrap()),
            ("JIRA_API_TOKEN", CLOUD_TOKEN),
        ]),
    })
    .unwrap();
    let phases = std::sync::Arc::new(Phases::default());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime.block_on(async {
        let session = WarmSession::open(&profile, None, false).await.unwrap();
        let request = WarmRequest {
            stages: vec![Stage::Users],
            ..Default::default()
        };
        let outcome = session
            .warm(&profile, request, phases.clone(), std::future::pending())
            .await
            .unwrap();
        session.close().await.unwrap();
        outcome
    });
    assert!(
        matches!(outcome, WarmOutcome::Ran { exit_code: 0, .. }),
        "{outcome:?}"
    );
    let calls = phases.calls.lock().unwrap().clone();
    let total = projects as u64;
    assert_eq!(
        calls.first(),
        Some(&(ASSIGNABLE_PHASE.to_string(), 0, total)),
        "said before the first list arrives: {calls:?}"
    );
    let mut done: Vec<u64> = calls.iter().map(|c| c.1).collect();
    done.sort_unstable();
    assert_eq!(
        done,
        (0..=total).collect::<Vec<_>>(),
        "each list once: {calls:?}"
    );
    assert!(
        calls
            .iter()
            .all(|c| c.0 == ASSIGNABLE_PHASE && c.2 == total)
    );
    assert!(
        !phases
            .after_the_end
            .load(std::sync::atomic::Ordering::SeqCst),
        "every phase call came while the stage ran"
    );
}
