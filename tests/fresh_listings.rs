//! Issue 16, "skip what is still fresh": a metadata or users listing whose
//! entries all stay fresh until well after the run is not fetched again,
//! unless `--full`; `--dry-run` says what will be skipped and why.

mod common;

use common::*;
use fake_jira::{FakeJira, Flavor, Site, SiteSize};

/// Requests to the listings of the projects, fields and users stages.
fn listing_requests(fake: &FakeJira) -> usize {
    [
        "/rest/api/3/project",
        "/rest/api/3/field",
        "/rest/api/3/issuetype",
        "/rest/api/3/priority",
        "/rest/api/3/status",
        "/rest/api/3/resolution",
        "/rest/api/3/users",
        "/rest/api/3/user/",
    ]
    .iter()
    .map(|p| fake.count_path(p))
    .sum()
}

/// A Cloud profile whose metadata and users TTL is `ttl`, warmed on `schedule`.
fn sandbox(fake: &FakeJira, schedule: &str, ttl: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.profile_for(
        fake,
        Flavor::Cloud,
        &format!(
            "deployment = \"cloud\"\nschedule = \"{schedule}\"\n[profiles.test.ttl]\n\
             project = \"{ttl}\"\nfield = \"{ttl}\"\nuser = \"{ttl}\"\n"
        ),
    );
    sb
}

const STAGES: [&str; 5] = ["--projects", "--fields", "--users", "--profile", "test"];

#[test]
fn a_second_warm_within_every_ttl_fetches_no_listing_again() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    // Every minute: the next scheduled warm is always close, and a
    // 1000-day TTL outlives it by far.
    let sb = sandbox(&fake, "* * * * *", "1000d");
    run_ok(&mut sb.warm(&STAGES));
    let first = listing_requests(&fake);
    assert!(first > 0);
    fake.reset_requests();

    let out = run_ok(&mut sb.warm(&STAGES));
    assert_eq!(listing_requests(&fake), 0, "{}", text(&out));
    let shown = stdout(&out);
    // One line per stage says how many listings were skipped (the dry run
    // says why, listing by listing).
    for (stage, count) in [
        ("projects", "1 fresh listing not fetched"),
        ("field entries", "5 fresh listings not fetched"),
        ("users", "4 fresh listings not fetched"),
    ] {
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with(&format!("Warmed 0 {stage}")) && l.contains(count)),
            "{stage}: {shown}"
        );
    }
    assert!(!shown.contains("Skipped"), "one line per stage: {shown}");
    // The run report keeps the skipped listings.
    let status = sb.status_json();
    assert_eq!(status["runs"][0]["result"], "ok");
    let reader = jira_cache::cache::Cache::open_read_only(sb.cache_path("test")).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(reader.runs(1).unwrap()[0].report_json.as_deref().unwrap()).unwrap();
    let skipped: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["skipped"].as_array().unwrap())
        .map(|v| v["listing"].as_str().unwrap())
        .collect();
    assert!(skipped.contains(&"users"), "{skipped:?}");
    assert!(skipped.contains(&"list:priorities"), "{skipped:?}");
}

/// Data Center caps `/user/search` (100 here), so a site of 250 users is
/// listed by name prefixes. A split that listed every prefix to its end is
/// as complete as a second split would be: it is skipped while fresh, as
/// Cloud's listing is (it used to cost ~800 requests per re-warm on the
/// benchmark site).
#[test]
fn a_data_center_user_listing_split_by_prefix_is_skipped_while_fresh() {
    let site = Site::generated(
        Flavor::DataCenter,
        SiteSize {
            projects: 1,
            users: 250,
            issues_per_project: 0,
            ..SiteSize::default()
        },
    );
    let fake = FakeJira::builder(Flavor::DataCenter).site(site).start();
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::DataCenter,
        "deployment = \"datacenter\"\n[profiles.test.ttl]\nuser = \"1000d\"\n",
    );
    run_ok(&mut sb.warm(&["--users", "--profile", "test"]));
    let split = fake.count_path("/rest/api/2/user/search");
    assert!(split > 1, "the capped listing was split: {split} requests");
    fake.reset_requests();

    let out = run_ok(&mut sb.warm(&["--users", "--profile", "test"]));
    assert_eq!(
        fake.count_path("/rest/api/2/user/search"),
        0,
        "{}",
        text(&out)
    );
    assert!(
        stdout(&out).contains("fresh listing"),
        "the stage says it skipped: {}",
        text(&out)
    );
}

#[test]
fn full_fetches_fresh_listings_again() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sb = sandbox(&fake, "* * * * *", "1000d");
    run_ok(&mut sb.warm(&STAGES));
    let first = listing_requests(&fake);
    fake.reset_requests();

    let mut args = STAGES.to_vec();
    args.push("--full");
    let out = run_ok(&mut sb.warm(&args));
    assert_eq!(listing_requests(&fake), first, "{}", text(&out));
    assert!(!stdout(&out).contains("Skipped"), "{}", text(&out));
}

#[test]
fn a_listing_with_half_its_ttl_or_less_left_is_fetched_again() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sb = sandbox(&fake, "* * * * *", "1h");
    run_ok(&mut sb.warm(&STAGES));
    let first = listing_requests(&fake);
    fake.reset_requests();
    // The entries expire in an hour; with a TTL of three, that is less
    // than half of it.
    sb = {
        sb.profile_for(
            &fake,
            Flavor::Cloud,
            "deployment = \"cloud\"\nschedule = \"* * * * *\"\n[profiles.test.ttl]\n\
             project = \"3h\"\nfield = \"3h\"\nuser = \"3h\"\n",
        );
        sb
    };
    let out = run_ok(&mut sb.warm(&STAGES));
    assert_eq!(listing_requests(&fake), first, "{}", text(&out));
    assert!(!stdout(&out).contains("Skipped"), "{}", text(&out));
}

#[test]
fn a_listing_that_expires_before_the_next_scheduled_warm_is_fetched_again() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let mut sb = sandbox(&fake, "0 6 * * *", "2d");
    run_ok(&mut sb.warm(&STAGES));
    let first = listing_requests(&fake);
    fake.reset_requests();
    // Stand five days ahead: the next 6 AM warm comes after the entries'
    // two days are up, so skipping them now would leave them stale.
    let ahead = chrono::Utc::now() + chrono::Duration::days(5);
    sb.set_env("JIRA_CACHE_NOW", &ahead.to_rfc3339());
    let out = run_ok(&mut sb.warm(&STAGES));
    assert_eq!(listing_requests(&fake), first, "{}", text(&out));

    let mut dry = STAGES.to_vec();
    dry.push("--dry-run");
    let shown = stdout(&run_ok(&mut sb.warm(&dry)));
    assert!(
        shown.contains("fetch list:fields: fresh until")
            && shown.contains("before the next scheduled warm"),
        "{shown}"
    );
}

#[test]
fn dry_run_shows_what_is_skipped_and_why_and_sends_nothing() {
    let fake = FakeJira::builder(Flavor::Cloud).start();
    let sb = sandbox(&fake, "* * * * *", "1000d");
    let mut dry = STAGES.to_vec();
    dry.push("--dry-run");
    // Before any warm: every listing is fetched, never having completed.
    let before = stdout(&run_ok(&mut sb.warm(&dry)));
    assert!(!before.contains("skip "), "{before}");

    run_ok(&mut sb.warm(&STAGES));
    fake.reset_requests();
    let shown = stdout(&run_ok(&mut sb.warm(&dry)));
    assert_eq!(fake.request_count(), 0, "a dry run sends nothing");
    let projects = fake.site().with(|s| s.projects.len());
    for line in [
        "skip projects: fresh until",
        "skip list:fields: fresh until",
        "skip users: fresh until",
        &format!("skip {projects} assignable lists"),
        "fields    ~0 requests",
    ] {
        assert!(shown.contains(line), "`{line}` in:\n{shown}");
    }
    assert!(shown.contains("more than half of its TTL left"), "{shown}");

    dry.push("--full");
    let full = stdout(&run_ok(&mut sb.warm(&dry)));
    assert!(!full.contains("skip "), "{full}");
    assert!(full.contains("fields    ~5 requests"), "{full}");
}
