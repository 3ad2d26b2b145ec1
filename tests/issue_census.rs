//! The issues stage as issue 16 and issue 13 want it: one key census of all
//! projects in scope, bodies in bulk, the per-project cap applied to the
//! census, a second look before anything is removed, moved issues, the
//! watermark, and request budgets; on both deployments.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use fake_jira::{FakeJira, Fault, FaultKind, Flavor, PageCap, Site, SiteSize};
use jira_cache::Category;
use jira_cache::cache::Cache;
use serde_json::{Value, json};

const FLAVORS: [Flavor; 2] = [Flavor::Cloud, Flavor::DataCenter];

/// `projects` projects of 40 issues each; issue i of the site was updated
/// i + 1 hours ago, so every issue is in the window, in a strict order.
fn site(flavor: Flavor, projects: usize) -> Site {
    let mut site = Site::generated(
        flavor,
        SiteSize {
            projects,
            users: 5,
            issues_per_project: 40,
            fields: 20,
            issue_bytes: 600,
            recent_days: 20,
        },
    );
    let now = chrono::Utc::now();
    for (i, issue) in site.issues.iter_mut().enumerate() {
        let t = now - chrono::Duration::hours(1 + i as i64);
        issue["fields"]["updated"] = json!(fake_jira::format_jira_time(&t));
    }
    site
}

fn sandbox(fake: &FakeJira, flavor: Flavor) -> Sandbox {
    let deployment = match flavor {
        Flavor::Cloud => "cloud",
        Flavor::DataCenter => "datacenter",
    };
    let mut sb = Sandbox::new();
    sb.profile_for(fake, flavor, &format!("deployment = \"{deployment}\""));
    sb
}

/// `cache_warm --json --profile test <args>`, expecting exit `code`.
fn warm_json(sb: &Sandbox, args: &[&str], code: i32) -> Value {
    let mut all = args.to_vec();
    all.extend(["--json", "--profile", "test"]);
    let out = run_code(&mut sb.warm(&all), code);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("cache_warm --json prints one object ({e}): {}", text(&out)))
}

/// [`warm_json`], with the fault-test invariant checked around the run
/// against what `fake` holds when it ends; a run that exits 0 must leave
/// `complete` complete and current.
fn warm_json_checked(
    sb: &Sandbox,
    fake: &FakeJira,
    args: &[&str],
    code: i32,
    complete: &[Category],
) -> Value {
    let mut all = args.to_vec();
    all.extend(["--json", "--profile", "test"]);
    let before = invariant::Snapshot::take(sb);
    let out = run_code(&mut sb.warm(&all), code);
    let truth = invariant::Truth::of(fake).complete_on_success(complete);
    invariant::check(&before, &invariant::Snapshot::take(sb), &truth, &out);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("cache_warm --json prints one object ({e}): {}", text(&out)))
}

fn issues_stage(report: &Value) -> &Value {
    report["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["stage"] == "issues"))
        .unwrap_or_else(|| panic!("no issues stage in {report:#}"))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn issue_keys(sb: &Sandbox) -> BTreeSet<String> {
    Cache::open_read_only(sb.cache_path("test"))
        .unwrap()
        .keys(Category::Issue, None)
        .unwrap()
        .into_iter()
        .collect()
}

fn cached_summary(sb: &Sandbox, key: &str) -> Option<Value> {
    let entry = Cache::open_read_only(sb.cache_path("test"))
        .unwrap()
        .peek(Category::Issue, key)
        .unwrap()?;
    let value: Value = serde_json::from_str(&entry.value).unwrap();
    Some(value["fields"]["summary"].clone())
}

fn site_keys(fake: &FakeJira) -> BTreeSet<String> {
    fake.site().with(|s| {
        s.issues
            .iter()
            .map(|i| i["key"].as_str().unwrap().to_string())
            .collect()
    })
}

/// Requests to each path since `from`.
fn paths_since(fake: &FakeJira, from: usize) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in &fake.requests()[from..] {
        *out.entry(r.path.clone()).or_insert(0) += 1;
    }
    out
}

#[test]
fn three_projects_cost_a_handful_of_requests_cold_and_no_body_fetch_when_nothing_changed() {
    for flavor in FLAVORS {
        let fake = FakeJira::builder(flavor).site(site(flavor, 3)).start();
        let sb = sandbox(&fake, flavor);
        warm_json(&sb, &["--projects"], 0);
        let from = fake.requests().len();
        let report = warm_json(&sb, &["--issues"], 0);
        let issues = issues_stage(&report);
        // A count, one census of all three projects, the bodies of 120
        // issues (Cloud: 100 a request; Data Center: one search).
        let paths = paths_since(&fake, from);
        match flavor {
            Flavor::Cloud => {
                assert_eq!(paths["/rest/api/3/search/approximate-count"], 1);
                assert_eq!(paths["/rest/api/3/search/jql"], 1);
                assert_eq!(paths["/rest/api/3/issue/bulkfetch"], 2, "100 a request");
            }
            Flavor::DataCenter => {
                assert_eq!(paths["/rest/api/2/search"], 3, "{paths:?}");
            }
        }
        let expected_cold = if flavor == Flavor::Cloud { 4 } else { 3 };
        assert_eq!(n(&issues["requests"]), expected_cold, "{flavor:?}");
        assert_eq!(issue_keys(&sb), site_keys(&fake), "{flavor:?}");
        assert_eq!(n(&issues["written"]), 120, "{flavor:?}");

        // Nothing changed: no body is fetched, nothing is written.
        let from = fake.requests().len();
        let report = warm_json(&sb, &["--issues"], 0);
        let issues = issues_stage(&report);
        let paths = paths_since(&fake, from);
        assert!(
            !paths.contains_key("/rest/api/3/issue/bulkfetch"),
            "{flavor:?}: {paths:?}"
        );
        // Cloud: count, changes, census; Data Center: count, census.
        let expected = if flavor == Flavor::Cloud { 3 } else { 2 };
        assert_eq!(n(&issues["requests"]), expected, "{flavor:?}: {paths:?}");
        assert_eq!(
            (n(&issues["written"]), n(&issues["removed"])),
            (0, 0),
            "{flavor:?}"
        );
    }
}

#[test]
fn the_per_project_cap_keeps_the_newest_issues_of_each_project_from_the_census() {
    for flavor in FLAVORS {
        let site = site(flavor, 2);
        // Issues are in the site's order, newest first; the first 5 of each
        // project are its newest.
        let mut newest: BTreeSet<String> = BTreeSet::new();
        for p in &site.projects {
            let key = p["key"].as_str().unwrap();
            newest.extend(
                site.issues
                    .iter()
                    .filter(|i| i["fields"]["project"]["key"] == key)
                    .take(5)
                    .map(|i| i["key"].as_str().unwrap().to_string()),
            );
        }
        let fake = FakeJira::builder(flavor)
            .site(site)
            .page_cap(PageCap::SearchJqlIds, 7)
            .page_cap(PageCap::DcSearch, 7)
            .start();
        let sb = sandbox(&fake, flavor);
        let out =
            run_ok(&mut sb.warm(&["--issues", "-v", "--max-issues", "5", "--profile", "test"]));
        assert_eq!(issue_keys(&sb), newest, "{flavor:?}: {}", text(&out));
        assert_eq!(
            stdout(&out).matches("Warmed 5 issues for").count(),
            2,
            "{flavor:?}: {}",
            text(&out)
        );
        assert!(
            stdout(&out).contains("stopped at --max-issues"),
            "{flavor:?}: {}",
            text(&out)
        );
    }
}

#[test]
fn a_bulk_fetch_that_returns_fewer_issues_than_asked_caches_what_came() {
    for flavor in FLAVORS {
        let fake = FakeJira::builder(flavor).site(site(flavor, 1)).start();
        let sb = sandbox(&fake, flavor);
        warm_json(&sb, &["--projects"], 0);
        let gone = fake
            .site()
            .with(|s| s.issues[7]["key"].as_str().unwrap().to_string());
        // After the count and the census, before the bodies: deleted.
        let key = gone.clone();
        fake.site().after_search_pages(2, move |s| {
            assert!(s.remove_issue(&key));
        });
        let out = invariant::warm_checked(&sb, &["--issues", "-v", "--profile", "test"], || {
            invariant::Truth::of(&fake).complete_on_success(&[Category::Issue])
        });
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(
            stdout(&out).contains("Warmed 39 issues for")
                && stdout(&out).contains("1 issue listed but gone when fetched"),
            "{flavor:?}: {}",
            text(&out)
        );
        assert_eq!(issue_keys(&sb), site_keys(&fake), "{flavor:?}");
        assert!(!issue_keys(&sb).contains(&gone));
        let status = sb.status_json();
        assert_eq!(entries(&status, "issue"), 39, "{flavor:?}");
    }
}

#[test]
fn an_issue_asked_for_by_its_old_key_is_cached_under_its_new_key_and_counted_once() {
    for flavor in FLAVORS {
        let fake = FakeJira::builder(flavor).site(site(flavor, 2)).start();
        let (old, to) = fake.site().with(|s| {
            (
                s.issues[0]["key"].as_str().unwrap().to_string(),
                s.projects[1]["key"].as_str().unwrap().to_string(),
            )
        });
        let new = fake.site().move_issue(&old, &to).expect("moved");
        assert_ne!(new, old);
        let sb = sandbox(&fake, flavor);
        let out = run_ok(&mut sb.warm(&["--issue", &old, "--profile", "test"]));
        assert!(
            stdout(&out).contains("Warmed 1 of 1 issues asked for"),
            "{flavor:?}: {}",
            text(&out)
        );
        assert_eq!(
            issue_keys(&sb),
            BTreeSet::from([new.clone()]),
            "{flavor:?}: cached under the key Jira returned"
        );
        let alias = Cache::open_read_only(sb.cache_path("test"))
            .unwrap()
            .issue_alias(&old)
            .unwrap();
        assert_eq!(alias, Some(new.clone()), "{flavor:?}");
    }
}

#[test]
fn an_issue_moved_between_warms_leaves_its_old_key_for_the_new_one() {
    for flavor in FLAVORS {
        let fake = FakeJira::builder(flavor).site(site(flavor, 2)).start();
        let sb = sandbox(&fake, flavor);
        warm_json(&sb, &["--projects", "--issues"], 0);
        let (old, to) = fake.site().with(|s| {
            (
                s.issues[3]["key"].as_str().unwrap().to_string(),
                s.projects[1]["key"].as_str().unwrap().to_string(),
            )
        });
        assert!(issue_keys(&sb).contains(&old));
        let new = fake.site().move_issue(&old, &to).expect("moved");
        let report = warm_json_checked(
            &sb,
            &fake,
            &["--projects", "--issues"],
            0,
            &[Category::Project, Category::Issue],
        );
        let keys = issue_keys(&sb);
        assert!(
            keys.contains(&new) && !keys.contains(&old),
            "{flavor:?}: {report:#}"
        );
        assert_eq!(keys, site_keys(&fake), "{flavor:?}");
        let alias = Cache::open_read_only(sb.cache_path("test"))
            .unwrap()
            .issue_alias(&old)
            .unwrap();
        assert_eq!(alias, Some(new), "{flavor:?}");
    }
}

#[test]
fn an_issue_updated_during_the_census_is_never_removed() {
    for flavor in FLAVORS {
        // Pages of 5 for every listing, so that the census (and, before,
        // the full listing that served as one) takes several pages.
        let fake = FakeJira::builder(flavor)
            .site(site(flavor, 1))
            .page_cap(PageCap::SearchJql, 5)
            .page_cap(PageCap::SearchJqlIds, 5)
            .page_cap(PageCap::DcSearch, 5)
            .start();
        let sb = sandbox(&fake, flavor);
        warm_json(&sb, &["--projects", "--issues"], 0);
        let before = issue_keys(&sb);
        assert_eq!(before.len(), 40);
        // The oldest issue is updated after the second search page: newest
        // first, it moves to a page already read.
        let oldest = fake.site().with(|s| {
            s.issues.last().unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        });
        let key = oldest.clone();
        fake.site().after_search_pages(2, move |s| {
            assert!(s.touch_issue(&key));
        });
        let report = warm_json_checked(&sb, &fake, &["--projects", "--issues", "--full"], 0, &[]);
        assert_eq!(
            n(&issues_stage(&report)["removed"]),
            0,
            "{flavor:?}: {report:#}"
        );
        assert_eq!(issue_keys(&sb), before, "{flavor:?}: nothing removed");
        // And the next warm brings its new version.
        warm_json_checked(
            &sb,
            &fake,
            &["--projects", "--issues"],
            0,
            &[Category::Project, Category::Issue],
        );
        let on_site = fake
            .site()
            .with(|s| s.issue(&oldest).unwrap()["fields"]["summary"].clone());
        assert_eq!(cached_summary(&sb, &oldest), Some(on_site), "{flavor:?}");
    }
}

#[test]
fn the_watermark_never_passes_a_change_that_max_issues_cut() {
    let flavor = Flavor::Cloud;
    let fake = FakeJira::builder(flavor).site(site(flavor, 1)).start();
    let sb = sandbox(&fake, flavor);
    warm_json(&sb, &["--projects", "--issues", "--max-issues", "5"], 0);
    let cached = issue_keys(&sb);
    assert_eq!(cached.len(), 5);
    // The five cached issues change, then five newer, uncached ones change
    // after them: more changes than --max-issues lets through.
    let now = chrono::Utc::now();
    let newer: Vec<String> = fake.site().with(|s| {
        let mut newer = Vec::new();
        for (i, issue) in s.issues.iter_mut().enumerate() {
            let key = issue["key"].as_str().unwrap().to_string();
            let minutes = if cached.contains(&key) {
                10
            } else if newer.len() < 5 {
                newer.push(key.clone());
                2
            } else {
                continue;
            };
            let t = now - chrono::Duration::minutes(minutes) - chrono::Duration::seconds(i as i64);
            issue["fields"]["updated"] = json!(fake_jira::format_jira_time(&t));
            issue["fields"]["summary"] = json!(format!("changed {key}"));
        }
        newer
    });
    let report = warm_json_checked(
        &sb,
        &fake,
        &["--projects", "--issues", "--max-issues", "5"],
        0,
        &[Category::Project],
    );
    // The five newest changes are in the cap; the five cached issues that
    // changed are refreshed too, though past the cap.
    for key in newer.iter().chain(cached.iter()) {
        assert_eq!(
            cached_summary(&sb, key),
            Some(json!(format!("changed {key}"))),
            "{key}: {report:#}"
        );
    }
    // A third warm, nothing changed: still current, nothing written.
    let report = warm_json_checked(
        &sb,
        &fake,
        &["--projects", "--issues", "--max-issues", "5"],
        0,
        &[Category::Project],
    );
    assert_eq!(n(&issues_stage(&report)["written"]), 0, "{report:#}");
    for key in &cached {
        assert_eq!(
            cached_summary(&sb, key),
            Some(json!(format!("changed {key}")))
        );
    }
}

#[test]
fn a_census_that_never_ends_is_cut_by_its_budget_and_removes_nothing() {
    for flavor in FLAVORS {
        let fake = FakeJira::builder(flavor)
            .site(site(flavor, 1))
            .page_cap(PageCap::SearchJql, 5)
            .page_cap(PageCap::SearchJqlIds, 5)
            .page_cap(PageCap::DcSearch, 5)
            .start();
        let sb = sandbox(&fake, flavor);
        warm_json(&sb, &["--projects", "--issues"], 0);
        let before = issue_keys(&sb);
        let deleted = before.iter().nth(4).unwrap().clone();
        assert!(fake.site().remove_issue(&deleted));
        // A site that grows by five new issues with every page it serves:
        // a listing of it has no end.
        let project = fake
            .site()
            .with(|s| s.projects[0]["key"].as_str().unwrap().to_string());
        let p = project.clone();
        fake.site().after_each_search_page(move |s| {
            for _ in 0..5 {
                s.add_issue(&p, "more");
            }
        });
        let from = fake.requests().len();
        let report = warm_json_checked(
            &sb,
            &fake,
            &["--projects", "--issues", "--full"],
            i32::from(jira_cache::exit::PARTIAL),
            &[],
        );
        let issues = issues_stage(&report);
        let searches = fake.requests()[from..]
            .iter()
            .filter(|r| r.path.ends_with("/search") || r.path.ends_with("/search/jql"))
            // The window's count and census, not the fetches by key.
            .filter(|r| r.body.as_deref().is_some_and(|b| b.contains("updated >=")))
            .count();
        // The count said 39 (40, one deleted); pages of 5: the census's
        // budget is (39 + 39 / 4 + 100) / 5, rounded up, plus one; the
        // count itself is a search on Data Center.
        let count: usize = 39;
        let budget = (count + count / 4 + 100).div_ceil(5) + 1;
        let counts = usize::from(flavor == Flavor::DataCenter);
        assert!(
            searches <= budget + counts,
            "{flavor:?}: {searches} searches"
        );
        if flavor == Flavor::DataCenter {
            // Sorted by key, every page brings new issues: only the budget
            // stops it. (Newest first on Cloud, the new issues push seen
            // ones onto the next page, and paging stops as broken sooner.)
            assert!(searches >= budget, "cut at the budget, not before");
        }
        assert_eq!(n(&issues["removed"]), 0, "{flavor:?}: {issues:#}");
        assert!(
            issues["errors"].to_string().contains(&project),
            "{flavor:?}: {issues:#}"
        );
        assert!(issue_keys(&sb).contains(&deleted), "{flavor:?}");
    }
}

#[test]
fn a_failing_census_page_keeps_every_cached_issue() {
    let flavor = Flavor::Cloud;
    let fake = FakeJira::builder(flavor)
        .site(site(flavor, 2))
        .page_cap(PageCap::SearchJqlIds, 10)
        .start();
    let sb = sandbox(&fake, flavor);
    warm_json(&sb, &["--projects", "--issues"], 0);
    let before = issue_keys(&sb);
    for key in before.iter().take(3) {
        assert!(fake.site().remove_issue(key));
    }
    // The changes search passes; the census's fourth page fails.
    fake.faults()
        .add(Fault::new("/rest/api/3/search/jql", FaultKind::status(500)).skip(4));
    let report = warm_json_checked(
        &sb,
        &fake,
        &["--projects", "--issues"],
        i32::from(jira_cache::exit::PARTIAL),
        &[],
    );
    assert_eq!(n(&issues_stage(&report)["removed"]), 0, "{report:#}");
    assert_eq!(issue_keys(&sb), before);
}
