//! Issue 4's maintenance through the real binary: --clear (with --dry-run
//! and --pattern), --prune, and the max_size cap enforced after a warm.

mod common;

use common::*;
use fake_jira::{FakeJira, Flavor, Site, SiteSize};

fn warmed(extra: &str) -> (FakeJira, Sandbox) {
    let site = Site::generated(
        Flavor::Cloud,
        SiteSize {
            projects: 5,
            users: 20,
            issues_per_project: 40,
            issue_bytes: 2000,
            recent_days: 20,
            ..Default::default()
        },
    );
    let fake = FakeJira::builder(Flavor::Cloud).site(site).start();
    let mut sb = Sandbox::new();
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        &format!("deployment = \"cloud\"\n{extra}"),
    );
    run_ok(&mut sb.warm(&["--all", "--profile", "test"]));
    (fake, sb)
}

#[test]
fn clear_dry_run_counts_but_removes_nothing_and_clear_removes_by_category_and_pattern() {
    let (_fake, sb) = warmed("");
    let before = sb.status_json();
    let issues = entries(&before, "issue");
    let out = run_ok(&mut sb.warm(&["--clear", "issue", "--dry-run", "--profile", "test"]));
    assert!(
        stdout(&out).contains(&format!("Would remove {issues} issue entries")),
        "{}",
        text(&out)
    );
    assert_eq!(
        entries(&sb.status_json(), "issue"),
        issues,
        "a dry run removes nothing"
    );

    let out = run_ok(&mut sb.warm(&[
        "--clear",
        "project",
        "--pattern",
        "list:*",
        "--profile",
        "test",
    ]));
    assert!(
        stdout(&out).contains("Removed 1 project entries matching list:*"),
        "{}",
        text(&out)
    );
    let out = run_ok(&mut sb.warm(&["--clear", "issue", "--profile", "test"]));
    assert!(
        stdout(&out).contains(&format!("Removed {issues} issue entries")),
        "{}",
        text(&out)
    );
    let after = sb.status_json();
    assert_eq!(entries(&after, "issue"), 0);
    assert_eq!(entries(&after, "project"), entries(&before, "project") - 1);
    assert_eq!(
        entries(&after, "user"),
        entries(&before, "user"),
        "other categories untouched"
    );
}

#[test]
fn a_cache_over_its_cap_is_brought_under_it_after_a_warm_expired_entries_first() {
    let (fake, mut sb) = warmed("");
    let total = sb.status_json()["total_bytes"].as_u64().unwrap();
    // Issues expire at once; then cap the cache below its size.
    sb.profile_for(
        &fake,
        Flavor::Cloud,
        &format!("deployment = \"cloud\"\nmax_size = \"{}\"", total * 3 / 4),
    );
    sb.set_env("JIRA_CACHE_NOW", "2099-01-01T00:00:00Z");
    let expired_before = sb.status_json()["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["expired"].as_u64().unwrap())
        .sum::<u64>();
    assert!(expired_before > 0);
    sb.env.retain(|(k, _)| k != "JIRA_CACHE_NOW");
    let out = run_ok(&mut sb.warm(&["--projects", "--full", "--profile", "test"]));
    let status = sb.status_json();
    assert!(
        status["total_bytes"].as_u64().unwrap() <= total * 3 / 4,
        "under the cap: {}",
        text(&out)
    );
    assert!(
        stdout(&out).contains("passed its max_size"),
        "{}",
        text(&out)
    );
    assert!(
        entries(&status, "project") > 0,
        "the fresh projects just warmed stay"
    );
}

#[test]
fn prune_drops_expired_entries_and_shrinks_the_file() {
    // A TTL of zero: the issues are expired as soon as they are written, so
    // no clock has to pass for them (no sleep).
    let (_fake, sb) = warmed("[profiles.test.ttl]\nissue_recent = \"0s\"\nissue_old = \"0s\"");
    let size = |sb: &Sandbox| std::fs::metadata(sb.cache_path("test")).unwrap().len();
    let before = size(&sb);
    let issues = entries(&sb.status_json(), "issue");
    let out = run_ok(&mut sb.warm(&["--prune", "--profile", "test"]));
    assert!(
        stdout(&out).contains(&format!("Pruned {issues} expired entries")),
        "{}",
        text(&out)
    );
    assert_eq!(entries(&sb.status_json(), "issue"), 0);
    assert!(
        size(&sb) < before,
        "the file shrank: {before} -> {}",
        size(&sb)
    );
}
