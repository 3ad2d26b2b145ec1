//! The cache's contract, written once and run against both stores: the
//! SQLite file and PostgreSQL (issue 18). Each test runs on a fresh SQLite
//! file and on a fresh PostgreSQL schema of a throwaway server
//! (`common::pg`); without the server binaries the PostgreSQL half skips
//! with a message (under `CI=true` it fails instead).

mod common;

use std::collections::HashSet;

use jira_cache::Category;
use jira_cache::cache::{
    Cache, CacheError, CacheLocation, Freshness, KeyScope, Listing, NewEntry, PgTarget, ReadSource,
    RunEnd, RunResult, RunStart,
};

const NOW: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

/// A fresh cache of each kind: (name, location, what keeps it alive).
fn stores() -> Vec<(&'static str, CacheLocation, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![(
        "sqlite",
        CacheLocation::File(dir.path().join("c.sqlite3")),
        Some(dir),
    )];
    if let Some(server) = common::pg::shared() {
        out.push((
            "postgres",
            pg_location(server, &fresh_schema(), "p https://a.example/"),
            None,
        ));
    }
    out
}

fn fresh_schema() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "contract_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

fn pg_location(server: &common::pg::PgServer, schema: &str, scope: &str) -> CacheLocation {
    CacheLocation::Postgres(
        PgTarget::new(
            &server.url("postgres"),
            Some(common::pg::PASSWORD.to_string()),
            schema,
            scope,
        )
        .unwrap(),
    )
}

fn entry(category: Category, key: &str, value: &str, expires_at: i64) -> NewEntry {
    NewEntry {
        category,
        key: key.to_string(),
        value: value.to_string(),
        fetched_at: NOW - HOUR,
        expires_at,
        fetch_ms: 12,
        project: None,
        updated_at: None,
    }
}

fn issue(key: &str, updated_at: i64) -> NewEntry {
    NewEntry {
        project: Some(key.split('-').next().unwrap().to_string()),
        updated_at: Some(updated_at),
        ..entry(
            Category::Issue,
            key,
            &format!(r#"{{"key":"{key}"}}"#),
            NOW + HOUR,
        )
    }
}

fn set(keys: &[&str]) -> HashSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

fn keys(cache: &Cache, category: Category) -> Vec<String> {
    cache.reader().unwrap().keys(category, None).unwrap()
}

/// The keys of the answers `cache_serve` keeps in `category`.
fn serve_keys(cache: &Cache, category: Category) -> Vec<String> {
    cache
        .reader()
        .unwrap()
        .keys(category, Some("serve:*"))
        .unwrap()
}

fn listing(name: &str, at: i64) -> Listing {
    Listing {
        category: Category::User,
        name: name.to_string(),
        fetched_at: at,
        expires_at: at + 24 * HOUR,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_round_trip_and_unchanged_values_are_not_rewritten() {
    for (name, location, _keep) in stores() {
        let cache = Cache::open(&location).unwrap();
        let writer = cache.writer().unwrap();
        let first = writer
            .put_page(vec![
                entry(
                    Category::Project,
                    "ALPHA",
                    r#"{"key":"ALPHA","ü":"✓"}"#,
                    NOW + HOUR,
                ),
                entry(Category::Field, "summary", r#"{"id":"summary"}"#, NOW - 1),
            ])
            .await
            .unwrap();
        assert_eq!((first.written, first.unchanged), (2, 0), "{name}");
        let again = writer
            .put_page(vec![
                entry(
                    Category::Project,
                    "ALPHA",
                    r#"{"key":"ALPHA","ü":"✓"}"#,
                    NOW + 2 * HOUR,
                ),
                entry(
                    Category::Field,
                    "summary",
                    r#"{"id":"summary","v":2}"#,
                    NOW + HOUR,
                ),
            ])
            .await
            .unwrap();
        assert_eq!((again.written, again.unchanged), (1, 1), "{name}");
        let mut reader = cache.reader().unwrap();
        let alpha = reader
            .get(Category::Project, "ALPHA", NOW)
            .unwrap()
            .unwrap();
        assert_eq!(
            alpha.value, r#"{"key":"ALPHA","ü":"✓"}"#,
            "{name}: byte for byte"
        );
        assert_eq!(alpha.expires_at, NOW + 2 * HOUR, "{name}: times refreshed");
        assert_eq!(alpha.freshness(NOW), Freshness::Fresh);
        let summary = reader.peek(Category::Field, "summary").unwrap().unwrap();
        assert_eq!(summary.value, r#"{"id":"summary","v":2}"#, "{name}");
        assert!(reader.get(Category::User, "nobody", NOW).unwrap().is_none());
        writer.shutdown().await.unwrap();
    }
}

/// A page that gives a key twice (a site repeating an item across its
/// answer) stores the last, and counts each as one statement per entry
/// would: `written + unchanged` is the page's length on both stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_given_twice_in_a_page_counts_twice_and_the_last_is_stored() {
    for (name, location, _keep) in stores() {
        let cache = Cache::open(&location).unwrap();
        let writer = cache.writer().unwrap();
        let user =
            |key: &str, v: u32| entry(Category::User, key, &format!(r#"{{"v":{v}}}"#), NOW + HOUR);
        // New, then changed by its second entry; new, then the same again.
        let first = writer
            .put_page(vec![user("a", 1), user("a", 2), user("b", 1), user("b", 1)])
            .await
            .unwrap();
        assert_eq!((first.written, first.unchanged), (3, 1), "{name}");
        // "a" holds 2: its first entry changes it, its second changes it
        // back; "b" is unchanged twice.
        let again = writer
            .put_page(vec![user("a", 1), user("a", 2), user("b", 1), user("b", 1)])
            .await
            .unwrap();
        assert_eq!((again.written, again.unchanged), (2, 2), "{name}");
        // The same in a listing's page, which SQLite may skip whole when
        // it is unchanged: not when a key comes twice.
        let users = listing("users", NOW);
        let page = || vec![user("c", 1), user("c", 2)];
        let first = writer
            .put_listing_page(users.clone(), 0, page())
            .await
            .unwrap();
        assert_eq!((first.written, first.unchanged), (2, 0), "{name}");
        let again = writer
            .put_listing_page(users.clone(), 0, page())
            .await
            .unwrap();
        assert_eq!((again.written, again.unchanged), (2, 0), "{name}");
        let reader = cache.reader().unwrap();
        for (key, value) in [
            ("a", r#"{"v":2}"#),
            ("b", r#"{"v":1}"#),
            ("c", r#"{"v":2}"#),
        ] {
            let stored = reader.peek(Category::User, key).unwrap().unwrap();
            assert_eq!(stored.value, value, "{name}: {key}");
        }
        writer.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_listing_removes_only_what_it_proved_gone_inside_its_scope() {
    for (name, location, _keep) in stores() {
        let cache = Cache::open(&location).unwrap();
        let writer = cache.writer().unwrap();
        writer
            .put_listing_page(
                listing("users", NOW - HOUR),
                0,
                vec![
                    entry(Category::User, "u1", "{}", 0),
                    entry(Category::User, "u2", "{}", 0),
                    entry(Category::User, "u3", "{}", 0),
                ],
            )
            .await
            .unwrap();
        // An assignable list lives beside the users, outside their scope;
        // so does an answer cache_serve kept, which no listing names.
        writer
            .put_page(vec![
                entry(Category::User, "assignable:A", "[]", NOW + HOUR),
                entry(Category::User, "serve:3/myself", "{}", NOW + HOUR),
            ])
            .await
            .unwrap();
        writer
            .finish_listing(
                listing("users", NOW - HOUR),
                set(&["u1", "u2", "u3"]),
                Some((KeyScope::NotGlob("assignable:*".into()), HashSet::new())),
            )
            .await
            .unwrap();
        // The next complete run lists u1 and u3 only.
        writer
            .put_listing_page(
                listing("users", NOW),
                0,
                vec![
                    entry(Category::User, "u1", "{}", 0),
                    entry(Category::User, "u3", r#"{"changed":true}"#, 0),
                ],
            )
            .await
            .unwrap();
        let removed = writer
            .finish_listing(
                listing("users", NOW),
                set(&["u1", "u3"]),
                Some((KeyScope::NotGlob("assignable:*".into()), HashSet::new())),
            )
            .await
            .unwrap();
        assert_eq!(removed, 1, "{name}");
        assert_eq!(
            keys(&cache, Category::User),
            vec!["assignable:A", "u1", "u3"],
            "{name}: only u2 went, the assignable list stayed"
        );
        assert_eq!(
            serve_keys(&cache, Category::User),
            vec!["serve:3/myself"],
            "{name}: cache_serve's answer stayed, listed only when asked for"
        );
        // Nor does a scope of the whole category remove cache_serve's answers.
        writer
            .put_page(vec![entry(
                Category::Project,
                "serve:3/project/A",
                "{}",
                NOW + HOUR,
            )])
            .await
            .unwrap();
        let removed = writer
            .remove_missing(Category::Project, KeyScope::All, HashSet::new())
            .await
            .unwrap();
        assert_eq!(removed, 0, "{name}");
        assert_eq!(
            serve_keys(&cache, Category::Project),
            vec!["serve:3/project/A"],
            "{name}"
        );
        // ...and no stage takes it for a project.
        assert_eq!(
            keys(&cache, Category::Project),
            Vec::<String>::new(),
            "{name}"
        );
        let u1 = cache
            .reader()
            .unwrap()
            .peek(Category::User, "u1")
            .unwrap()
            .unwrap();
        assert_eq!(
            (u1.fetched_at, u1.expires_at),
            (NOW, NOW + 24 * HOUR),
            "{name}: a member carries its listing's times"
        );
        writer.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_could_not_list_everything_moves_only_the_times_it_proved() {
    for (name, location, _keep) in stores() {
        let cache = Cache::open(&location).unwrap();
        let writer = cache.writer().unwrap();
        writer
            .put_listing_page(
                listing("users", NOW - 2 * HOUR),
                0,
                vec![
                    entry(Category::User, "u1", "{}", 0),
                    entry(Category::User, "u2", "{}", 0),
                ],
            )
            .await
            .unwrap();
        writer
            .finish_listing(listing("users", NOW - 2 * HOUR), set(&["u1", "u2"]), None)
            .await
            .unwrap();
        writer
            .put_listing_page(
                listing("users", NOW),
                0,
                vec![entry(Category::User, "u1", "{}", 0)],
            )
            .await
            .unwrap();
        let left = writer
            .leave_listing(listing("users", NOW), set(&["u1"]))
            .await
            .unwrap();
        assert_eq!(left, 1, "{name}");
        let reader = cache.reader().unwrap();
        let u1 = reader.peek(Category::User, "u1").unwrap().unwrap();
        let u2 = reader.peek(Category::User, "u2").unwrap().unwrap();
        assert_eq!(u1.fetched_at, NOW, "{name}: proved current");
        assert_eq!(
            u2.fetched_at,
            NOW - 2 * HOUR,
            "{name}: kept its older times"
        );
        assert_eq!(
            keys(&cache, Category::User).len(),
            2,
            "{name}: nothing removed"
        );
        writer.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_census_reconciles_its_window_only_and_watermarks_follow_clears() {
    for (name, location, _keep) in stores() {
        let cache = Cache::open(&location).unwrap();
        let writer = cache.writer().unwrap();
        writer
            .put_page(vec![
                issue("A-1", NOW - HOUR),
                issue("A-2", NOW - HOUR),
                issue("A-3", NOW - 40 * 24 * HOUR),
                issue("B-1", NOW - HOUR),
            ])
            .await
            .unwrap();
        let pending = writer
            .finish_issue_listing(
                "A".to_string(),
                vec![],
                Some((
                    KeyScope::IssueWindow {
                        project: "A".into(),
                        updated_since_ms: NOW - 30 * 24 * HOUR,
                    },
                    set(&["A-1"]),
                )),
                Some(NOW - HOUR),
                NOW,
            )
            .await
            .unwrap();
        writer.flush().await.unwrap();
        let (_, removed) = pending.outcome().await.unwrap();
        assert_eq!(removed, 1, "{name}: A-2 only");
        assert_eq!(
            keys(&cache, Category::Issue),
            vec!["A-1", "A-3", "B-1"],
            "{name}: the aged-out A-3 and the other project stay"
        );
        let reader = cache.reader().unwrap();
        assert_eq!(
            reader.watermark("A").unwrap().unwrap().newest_updated_ms,
            NOW - HOUR
        );
        assert_eq!(
            reader
                .issue_keys_in_window("A", NOW - 30 * 24 * HOUR)
                .unwrap(),
            vec!["A-1"]
        );
        let versions = reader.issue_versions(["A-1", "A-9"]).unwrap();
        assert_eq!(versions.len(), 1, "{name}");
        assert_eq!(
            reader.issue_counts_by_project().unwrap(),
            vec![("A".to_string(), 2), ("B".to_string(), 1)],
            "{name}"
        );
        // A dry run counts; a clear of A's issues also clears A's watermark.
        assert_eq!(
            writer
                .remove(Some(Category::Issue), Some("A-*".into()), true)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            writer
                .remove(Some(Category::Issue), Some("A-*".into()), false)
                .await
                .unwrap(),
            2
        );
        assert!(
            cache.reader().unwrap().watermark("A").unwrap().is_none(),
            "{name}"
        );
        assert_eq!(keys(&cache, Category::Issue), vec!["B-1"], "{name}");
        writer.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn globs_select_the_same_keys_on_both_stores() {
    for (name, location, _keep) in stores() {
        let cache = Cache::open(&location).unwrap();
        let writer = cache.writer().unwrap();
        writer
            .put_page(
                [
                    "list:fields",
                    "status:1",
                    "status:10",
                    "summary",
                    "a.b",
                    "axb",
                    "[x]",
                ]
                .iter()
                .map(|k| entry(Category::Field, k, "{}", NOW + HOUR))
                .collect(),
            )
            .await
            .unwrap();
        let reader = cache.reader().unwrap();
        let found = |p: &str| reader.keys(Category::Field, Some(p)).unwrap();
        assert_eq!(found("status:?"), vec!["status:1"], "{name}");
        assert_eq!(found("status:*"), vec!["status:1", "status:10"], "{name}");
        assert_eq!(found("a.b"), vec!["a.b"], "{name}: `.` is literal");
        assert_eq!(found("[l]ist:*"), vec!["list:fields"], "{name}");
        assert_eq!(
            reader.count_keys(Category::Field, Some("*")).unwrap(),
            7,
            "{name}"
        );
        assert_eq!(
            reader.count_keys(Category::Field, Some("S*")).unwrap(),
            0,
            "{name}: case"
        );
        writer.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warmed_issue_is_found_by_its_id_and_only_by_its_own() {
    for (name, location, _keep) in stores() {
        let cache = Cache::open(&location).unwrap();
        let writer = cache.writer().unwrap();
        let with_value = |key: &str, value: &str| NewEntry {
            value: value.to_string(),
            ..issue(key, NOW)
        };
        writer
            .put_page(vec![
                with_value("ALPHA-4", r#"{"id":"10003","key":"ALPHA-4"}"#),
                // Another issue that holds the text "10003" elsewhere.
                with_value(
                    "BETA-1",
                    r#"{"id":"20001","key":"BETA-1","fields":{"project":{"id":"10003"}}}"#,
                ),
                // An answer cache_serve keeps, asked by id: not the warm's.
                entry(
                    Category::Issue,
                    "serve:3/issue/10003",
                    r#"{"id":"10003","key":"ALPHA-4"}"#,
                    NOW + HOUR,
                ),
            ])
            .await
            .unwrap();
        let reader = cache.reader().unwrap();
        assert_eq!(
            reader.issue_keys_with_id("10003").unwrap(),
            vec!["ALPHA-4"],
            "{name}"
        );
        assert_eq!(
            reader.issue_keys_with_id("20001").unwrap(),
            vec!["BETA-1"],
            "{name}"
        );
        assert!(
            reader.issue_keys_with_id("1000").unwrap().is_empty(),
            "{name}"
        );
        writer.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_recorded_and_scrubbed() {
    for (name, location, _keep) in stores() {
        let cache = Cache::open(&location).unwrap();
        let writer = cache.writer().unwrap();
        let id = writer
            .run_start(RunStart {
                started_at: NOW,
                pid: 4242,
                stages: vec!["projects".into(), "fields".into()],
            })
            .await
            .unwrap();
        let running = cache.reader().unwrap().runs(5).unwrap();
        assert_eq!(running[0].result, RunResult::Running, "{name}");
        jira_cache::scrub::register("s3cr3t-t0ken-for-contract");
        writer
            .run_finish(
                id,
                RunEnd {
                    ended_at: NOW + 1000,
                    result: RunResult::Ok,
                    requests: 7,
                    retries: 1,
                    throttled: 0,
                    written: 3,
                    unchanged: 4,
                    removed: 0,
                    errors: vec!["server said s3cr3t-t0ken-for-contract".into()],
                    report_json: r#"{"ok":true}"#.into(),
                },
            )
            .await
            .unwrap();
        let reader = cache.reader().unwrap();
        let runs = reader.runs(5).unwrap();
        assert_eq!(runs.len(), 1, "{name}");
        assert_eq!(runs[0].requests, Some(7));
        assert_eq!(runs[0].stages, vec!["projects", "fields"]);
        assert!(
            !runs[0].errors[0].contains("s3cr3t"),
            "{name}: {:?}",
            runs[0].errors
        );
        assert_eq!(
            reader.last_ended_at(RunResult::Ok).unwrap(),
            Some(NOW + 1000)
        );
        assert_eq!(reader.last_ended_at(RunResult::Failed).unwrap(), None);
        writer.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_counts_are_kept_per_source_and_reach_the_figures() {
    for (name, location, _keep) in stores() {
        let cache = Cache::open(&location).unwrap();
        let writer = cache.writer().unwrap();
        writer
            .put_page(vec![
                entry(Category::Project, "A", "{}", NOW + HOUR),
                entry(Category::Project, "B", "{}", NOW - 1),
            ])
            .await
            .unwrap();
        {
            let mut reader = cache.reader().unwrap();
            reader.get(Category::Project, "A", NOW).unwrap();
            reader.get(Category::Project, "B", NOW).unwrap();
            reader.get(Category::Project, "C", NOW).unwrap();
            reader.set_read_source(ReadSource::Get);
            reader.get(Category::Project, "A", NOW).unwrap();
            assert!(reader.flush_read_counts().unwrap());
        }
        let stats = cache.reader().unwrap().category_stats(NOW).unwrap();
        let project = stats
            .iter()
            .find(|s| s.category == Category::Project)
            .unwrap();
        assert_eq!(
            (project.entries, project.fresh, project.expired),
            (2, 1, 1),
            "{name}"
        );
        assert_eq!(
            (project.hits, project.stale_hits, project.misses),
            (1, 1, 1),
            "{name}: `--get` reads are not in the hit rate"
        );
        assert_eq!(project.by_source[&ReadSource::Get].hits, 1, "{name}");
        assert_eq!(project.bytes, 2 * 3, "{name}: key + value bytes");
        assert_eq!(project.next_expiry, Some(NOW + HOUR), "{name}");
        writer.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_exclusive_until_released_or_expired() {
    for (name, location, _keep) in stores() {
        let cache = Cache::open(&location).unwrap();
        let mut a = cache.leases().unwrap();
        let mut b = cache.leases().unwrap();
        assert!(
            a.try_acquire(Category::Issue, "A-1", "a", NOW, 1000)
                .unwrap(),
            "{name}"
        );
        assert!(
            !b.try_acquire(Category::Issue, "A-1", "b", NOW, 1000)
                .unwrap(),
            "{name}"
        );
        assert_eq!(
            b.holder(Category::Issue, "A-1", NOW).unwrap().as_deref(),
            Some("a")
        );
        // Expired: free to take.
        assert!(
            b.try_acquire(Category::Issue, "A-1", "b", NOW + 1000, 1000)
                .unwrap(),
            "{name}"
        );
        b.release(Category::Issue, "A-1", "b").unwrap();
        assert!(
            a.holder(Category::Issue, "A-1", NOW + 1000)
                .unwrap()
                .is_none(),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_takes_expired_entries_first_then_the_least_recently_read() {
    for (name, location, _keep) in stores() {
        let cache = Cache::open(&location).unwrap();
        let writer = cache.writer().unwrap();
        let big = "x".repeat(1000);
        writer
            .put_page(vec![
                entry(Category::Issue, "A-1", &big, NOW - 10),
                entry(Category::Issue, "A-2", &big, NOW + HOUR),
                entry(Category::Issue, "A-3", &big, NOW + HOUR),
            ])
            .await
            .unwrap();
        {
            let mut reader = cache.reader().unwrap();
            reader.get(Category::Issue, "A-2", NOW).unwrap();
            reader.flush_read_counts().unwrap();
        }
        let out = writer.enforce_max_size(1100, NOW).await.unwrap();
        assert_eq!((out.removed_expired, out.removed_lru), (1, 1), "{name}");
        assert_eq!(
            keys(&cache, Category::Issue),
            vec!["A-2"],
            "{name}: the one read stays"
        );
        writer
            .put_page(vec![entry(Category::Issue, "A-4", "{}", NOW - 5)])
            .await
            .unwrap();
        let pruned = writer.prune(NOW).await.unwrap();
        assert_eq!(pruned.removed, 1, "{name}");
        assert_eq!(keys(&cache, Category::Issue), vec!["A-2"], "{name}");
        writer.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_values_and_reset() {
    for (name, location, _keep) in stores() {
        let cache = Cache::open(&location).unwrap();
        let writer = cache.writer().unwrap();
        writer
            .set_meta("deployment".into(), "cloud".into())
            .await
            .unwrap();
        writer
            .set_meta("deployment".into(), "datacenter".into())
            .await
            .unwrap();
        writer
            .put_page(vec![entry(Category::Project, "A", "{}", NOW + HOUR)])
            .await
            .unwrap();
        assert_eq!(
            cache
                .reader()
                .unwrap()
                .meta("deployment")
                .unwrap()
                .as_deref(),
            Some("datacenter"),
            "{name}"
        );
        writer.shutdown().await.unwrap();
        let cache = Cache::reset(&location).unwrap();
        let reader = cache.reader().unwrap();
        assert!(reader.meta("deployment").unwrap().is_none(), "{name}");
        assert!(
            reader.keys(Category::Project, None).unwrap().is_empty(),
            "{name}"
        );
    }
}

/// PostgreSQL only: what the SQLite file gets from being one file per
/// profile, the database must get from scopes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_sharing_one_database_never_see_each_others_entries() {
    let Some(server) = common::pg::shared() else {
        return;
    };
    let schema = fresh_schema();
    let a = Cache::open(pg_location(server, &schema, "a https://a.example/")).unwrap();
    let b = Cache::open(pg_location(server, &schema, "b https://b.example/")).unwrap();
    let (wa, wb) = (a.writer().unwrap(), b.writer().unwrap());
    wa.put_page(vec![entry(Category::Project, "A", "{}", NOW + HOUR)])
        .await
        .unwrap();
    wb.put_page(vec![entry(Category::Project, "B", "{}", NOW + HOUR)])
        .await
        .unwrap();
    wb.set_meta("k".into(), "b".into()).await.unwrap();
    assert_eq!(keys(&a, Category::Project), vec!["A"]);
    assert_eq!(keys(&b, Category::Project), vec!["B"]);
    assert!(a.reader().unwrap().meta("k").unwrap().is_none());
    // A complete listing of one profile removes nothing of the other.
    wa.remove_missing(Category::Project, KeyScope::All, HashSet::new())
        .await
        .unwrap();
    assert_eq!(keys(&b, Category::Project), vec!["B"]);
    wa.shutdown().await.unwrap();
    // A reset of one profile leaves the other's entries.
    drop(Cache::reset(a.location()).unwrap());
    assert_eq!(keys(&b, Category::Project), vec!["B"]);
    wb.shutdown().await.unwrap();
}

/// PostgreSQL only: a schema migrated by a newer jira-cache is refused
/// (exit 7), and a reader of a database never warmed says so.
#[test]
fn a_newer_schema_is_refused_and_an_empty_database_is_missing() {
    let Some(server) = common::pg::shared() else {
        return;
    };
    let schema = fresh_schema();
    let location = pg_location(server, &schema, "p x");
    match Cache::open_read_only(&location) {
        Err(CacheError::Missing { .. }) => {}
        other => panic!("expected Missing, got {other:?}"),
    }
    drop(Cache::open(&location).unwrap());
    server
        .client("postgres")
        .batch_execute(&format!(
            "INSERT INTO {schema}.schema_version (version) VALUES (99)"
        ))
        .unwrap();
    let e = Cache::open(&location).unwrap_err();
    assert!(
        matches!(e, CacheError::NewerSchema { found: 99, .. }),
        "{e}"
    );
    assert_eq!(jira_cache::exit::code_for(&e), 7);
    assert!(!e.to_string().contains(common::pg::PASSWORD));
}

/// PostgreSQL only: a wrong password and a missing database are
/// configuration errors (exit 3); an unreachable server is a cache error
/// (exit 7). Each is one line that names the next step, without the
/// password.
#[test]
fn connection_failures_name_their_cause_and_next_step() {
    let Some(server) = common::pg::shared() else {
        return;
    };
    let target = |url: &str, password: &str| {
        CacheLocation::Postgres(
            PgTarget::new(url, Some(password.into()), "jira_cache", "s").unwrap(),
        )
    };
    let wrong = Cache::open(target(&server.url("postgres"), "not-the-password")).unwrap_err();
    assert_eq!(jira_cache::exit::code_for(&wrong), 3, "{wrong}");
    assert!(wrong.to_string().contains("password"), "{wrong}");
    assert!(!wrong.to_string().contains("not-the-password"), "{wrong}");
    let missing = Cache::open(target(&server.url("no_such_db"), common::pg::PASSWORD)).unwrap_err();
    assert_eq!(jira_cache::exit::code_for(&missing), 3, "{missing}");
    assert!(missing.to_string().contains("createdb"), "{missing}");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = Cache::open(target(
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        common::pg::PASSWORD,
    ))
    .unwrap_err();
    assert_eq!(jira_cache::exit::code_for(&gone), 7, "{gone}");
    assert!(
        gone.to_string().contains("cannot reach the database"),
        "{gone}"
    );
    for e in [&wrong, &missing, &gone] {
        assert_eq!(e.to_string().lines().count(), 1, "{e}");
    }
}

/// What `cache_status` shows of a store at a few moments: every category's
/// figures (`expired`, `fresh`, `next_expiry` depend on the moment) and the
/// issues per project.
fn figures(cache: &Cache) -> Vec<String> {
    let reader = cache.reader().unwrap();
    let mut out: Vec<String> = [
        NOW - 2 * HOUR,
        NOW - 1,
        NOW,
        NOW + 30_000,
        NOW + 39_999,
        NOW + 40_000,
        NOW + 2 * HOUR,
        NOW + 48 * HOUR,
    ]
    .into_iter()
    .map(|at| format!("at {at}: {:?}", reader.category_stats(at).unwrap()))
    .collect();
    out.push(format!(
        "issues per project: {:?}",
        reader.issue_counts_by_project().unwrap()
    ));
    out.push(format!("bytes: {}", reader.total_bytes().unwrap()));
    out
}

/// The PostgreSQL store keeps its totals as the entries change (schema 2)
/// rather than counting them for each `cache_status`; this drives both stores
/// through every kind of change and checks after each that their figures
/// are the same, at moments on either side of the entries' expiries (within
/// one minute too: the totals count expiries by the minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_figures_stay_equal_on_both_stores_through_every_kind_of_change() {
    let mut seen: Vec<(&str, Vec<Vec<String>>)> = Vec::new();
    for (name, location, _keep) in stores() {
        let cache = Cache::open(&location).unwrap();
        let writer = cache.writer().unwrap();
        let mut steps = vec![figures(&cache)];
        // Entries with their own times: expired, fresh, expiring within the
        // minute of NOW (NOW is 20 s into its minute).
        writer
            .put_page(vec![
                entry(Category::Project, "A", "{}", NOW + HOUR),
                entry(Category::Project, "B", "{}", NOW - HOUR),
                entry(Category::Field, "f1", r#"{"id":1}"#, NOW + 10_000),
                entry(Category::Field, "f2", r#"{"id":2}"#, NOW + 39_999),
                entry(Category::Field, "f3", r#"{"id":3}"#, NOW + 40_000),
                issue("P-1", NOW - HOUR),
                issue("P-2", NOW - HOUR),
                issue("Q-1", NOW - HOUR),
            ])
            .await
            .unwrap();
        steps.push(figures(&cache));
        // A listing's members carry its times.
        writer
            .put_listing_page(
                listing("users", NOW - 30 * HOUR),
                0,
                vec![
                    entry(Category::User, "u1", "{}", 0),
                    entry(Category::User, "u2", "{}", 0),
                    entry(Category::User, "u3", "{}", 0),
                ],
            )
            .await
            .unwrap();
        writer
            .put_page(vec![entry(
                Category::User,
                "assignable:A",
                "[]",
                NOW + HOUR,
            )])
            .await
            .unwrap();
        writer
            .finish_listing(
                listing("users", NOW - 30 * HOUR),
                set(&["u1", "u2", "u3"]),
                None,
            )
            .await
            .unwrap();
        steps.push(figures(&cache));
        // The next run changes a value, drops a member (removed) and
        // refreshes the listing's times.
        writer
            .put_listing_page(
                listing("users", NOW),
                0,
                vec![
                    entry(Category::User, "u1", r#"{"changed":true}"#, 0),
                    entry(Category::User, "u3", "{}", 0),
                ],
            )
            .await
            .unwrap();
        writer
            .finish_listing(
                listing("users", NOW),
                set(&["u1", "u3"]),
                Some((KeyScope::NotGlob("assignable:*".into()), HashSet::new())),
            )
            .await
            .unwrap();
        steps.push(figures(&cache));
        // A run that could not list everything: u1 leaves with new times.
        writer
            .put_listing_page(
                listing("users", NOW + HOUR),
                0,
                vec![entry(Category::User, "u1", r#"{"changed":true}"#, 0)],
            )
            .await
            .unwrap();
        writer
            .leave_listing(listing("users", NOW + HOUR), set(&["u1"]))
            .await
            .unwrap();
        steps.push(figures(&cache));
        // Same values with new times (the expiry moves to another minute),
        // a changed value of another size, and a reconciliation.
        writer
            .put_page(vec![
                entry(Category::Field, "f1", r#"{"id":1}"#, NOW + 3 * HOUR),
                entry(Category::Field, "f2", r#"{"id":2,"more":"bytes"}"#, NOW - 5),
                issue("P-3", NOW - 2 * HOUR),
            ])
            .await
            .unwrap();
        writer
            .remove_missing(Category::Project, KeyScope::All, set(&["A"]))
            .await
            .unwrap();
        steps.push(figures(&cache));
        // Reads (their counts and `last_read_at`).
        {
            let mut reader = cache.reader().unwrap();
            for key in ["P-1", "P-2", "X-9"] {
                reader.get(Category::Issue, key, NOW).unwrap();
            }
            assert!(reader.flush_read_counts().unwrap(), "{name}");
        }
        steps.push(figures(&cache));
        // `--clear` by pattern, `--prune`, eviction.
        writer
            .remove(Some(Category::Issue), Some("Q-*".into()), false)
            .await
            .unwrap();
        steps.push(figures(&cache));
        writer.prune(NOW).await.unwrap();
        steps.push(figures(&cache));
        writer.enforce_max_size(20, NOW).await.unwrap();
        steps.push(figures(&cache));
        writer.remove(None, None, false).await.unwrap();
        steps.push(figures(&cache));
        writer
            .put_page(vec![issue("R-1", NOW - HOUR)])
            .await
            .unwrap();
        writer.shutdown().await.unwrap();
        steps.push(figures(&cache));
        // `--reset`.
        let cache = Cache::reset(&location).unwrap();
        steps.push(figures(&cache));
        seen.push((name, steps));
    }
    let (first, expected) = &seen[0];
    for (name, steps) in &seen[1..] {
        for (i, (a, b)) in expected.iter().zip(steps).enumerate() {
            assert_eq!(a, b, "step {i}: {first} vs {name}");
        }
    }
}

/// PostgreSQL only: a dropped reader's connection serves the next reader of
/// the process (a warm opens one per look-up; connecting anew each time made
/// a re-warm four times as slow as on SQLite), and one the server ended in
/// between is replaced without the caller noticing.
#[test]
fn readers_reuse_their_connections_and_replace_ones_the_server_ended() {
    // A server of its own: the test ends every connection of jira-cache.
    let Some(server) = common::pg::PgServer::start() else {
        return;
    };
    let location = pg_location(&server, &fresh_schema(), "pool https://a.example/");
    let cache = Cache::open(&location).unwrap();
    let mut admin = server.client("postgres");
    // Sessions ever started in the database (PostgreSQL 14 and later).
    let sessions = |admin: &mut postgres::Client| -> i64 {
        admin
            .query_one(
                "SELECT sessions FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .unwrap()
            .get(0)
    };
    drop(cache.reader().unwrap());
    let before = sessions(&mut admin);
    for _ in 0..10 {
        let reader = Cache::open_read_only(&location).unwrap();
        assert!(reader.peek(Category::Project, "A").unwrap().is_none());
    }
    assert_eq!(sessions(&mut admin), before, "no new connection per reader");

    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'jira-cache'",
            &[],
        )
        .unwrap();
    let reader = Cache::open_read_only(&location).unwrap();
    assert!(reader.peek(Category::Project, "A").unwrap().is_none());
}

/// Polls `page` (a write handed to the writer) once, so that it is queued
/// behind what the writer is doing, and leaves it waiting for its answer.
fn queue<F: std::future::Future>(page: &mut std::pin::Pin<Box<F>>) {
    let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
    assert!(
        page.as_mut().poll(&mut cx).is_pending(),
        "the write was answered before the writer was let go"
    );
}

/// Waits until a statement of jira-cache's waits for a lock held by the
/// test (the writer is then stuck on a row or table the test holds).
fn wait_for_writer_blocked(client: &mut postgres::Client) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = 'jira-cache' AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the writer never waited for the test's lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Inserts `key` (an issue of `project`, expiring at `expires_at`) into
/// `schema`'s entries in `client`'s open transaction, as another writer of
/// the scope would. (Two such transactions must not share a project or an
/// expiry minute: each holds the totals' rows it changed until it ends.)
fn insert_elsewhere(
    client: &mut postgres::Transaction<'_>,
    schema: &str,
    scope: &str,
    (key, project, expires_at): (&str, &str, i64),
) {
    // On the session's own search path, as a DBA's psql would be: the
    // totals' trigger finds its tables in its schema all the same (schema 3).
    client
        .execute(
            &format!(
                "INSERT INTO {schema}.entries (scope, category, key, value, hash, size,
                                               fetched_at, expires_at, project, updated_at)
                 VALUES ($1, 'issue', $2, 'theirs', 1, 6, $3, $4, $5, $3)"
            ),
            &[&scope, &key, &NOW, &expires_at, &project],
        )
        .unwrap();
}

/// Pages queued while the writer is busy share a transaction, and the
/// PostgreSQL writer stores them in one look-up and one insert
/// (`pg::put_pages`). Each page is still answered what storing it alone, in
/// order, would have answered: unchanged and changed values, a key in two
/// pages (the later page finds the earlier one's value). Both stores agree, on
/// the outcomes, the values and the figures.
#[test]
fn pages_queued_together_are_answered_as_if_stored_one_by_one() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scope = "p https://a.example/";
    let mut seen = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec![(
        "sqlite",
        CacheLocation::File(dir.path().join("c.sqlite3")),
        None,
    )];
    if let Some(server) = common::pg::shared() {
        let schema = fresh_schema();
        stores.push((
            "postgres",
            pg_location(server, &schema, scope),
            Some(schema),
        ));
    }
    for (name, location, schema) in stores {
        let cache = Cache::open(&location).unwrap();
        let writer = cache.writer().unwrap();
        let page = |items: &[(&str, &str)]| -> Vec<NewEntry> {
            items
                .iter()
                .map(|(k, v)| NewEntry {
                    value: format!(r#"{{"v":"{v}"}}"#),
                    ..issue(k, NOW)
                })
                .collect()
        };
        runtime
            .block_on(writer.put_page(page(&[("P-1", "1"), ("P-2", "1")])))
            .unwrap();
        // On PostgreSQL, hold the writer on a row another transaction is
        // inserting until all the pages are queued behind it.
        let mut blocker = schema
            .as_ref()
            .map(|_| common::pg::shared().unwrap().client("postgres"));
        let mut held = blocker.as_mut().map(|c| c.transaction().unwrap());
        if let (Some(tx), Some(schema)) = (held.as_mut(), &schema) {
            insert_elsewhere(tx, schema, scope, ("P-0", "P", NOW + HOUR));
        }
        // Only PostgreSQL's writer can be held here: SQLite's may answer a
        // page between the poll that hands it over and the poll's check, so
        // its pages are not asserted to be queued (they go in order).
        let holds = held.is_some();
        let mut first = Box::pin(writer.put_page(page(&[("P-0", "1")])));
        if holds {
            queue(&mut first);
            let mut watcher = common::pg::shared().unwrap().client("postgres");
            wait_for_writer_blocked(&mut watcher);
        }
        let mut pages = vec![
            // P-1 unchanged; P-3 new.
            Box::pin(writer.put_page(page(&[("P-1", "1"), ("P-3", "2")]))),
            // P-2 changed; P-4 new.
            Box::pin(writer.put_page(page(&[("P-2", "2"), ("P-4", "1")]))),
            // P-4 again, as the page before wrote it; P-5 new.
            Box::pin(writer.put_page(page(&[("P-4", "1"), ("P-5", "1")]))),
            // P-4 changed once more.
            Box::pin(writer.put_page(page(&[("P-4", "3")]))),
        ];
        if holds {
            for p in &mut pages {
                queue(p);
            }
        }
        // Let the writer go: the row it waited for never existed.
        if let Some(tx) = held.take() {
            tx.rollback().unwrap();
        }
        let first = runtime.block_on(first).unwrap();
        let outcomes: Vec<(u64, u64)> = pages
            .into_iter()
            .map(|p| {
                let o = runtime.block_on(p).unwrap();
                (o.written, o.unchanged)
            })
            .collect();
        assert_eq!((first.written, first.unchanged), (1, 0), "{name}");
        assert_eq!(outcomes, vec![(1, 1), (2, 0), (1, 1), (1, 0)], "{name}");
        let reader = cache.reader().unwrap();
        let values: Vec<String> = ["P-0", "P-1", "P-2", "P-3", "P-4", "P-5"]
            .iter()
            .map(|k| {
                reader
                    .peek(Category::Issue, k)
                    .unwrap()
                    .map(|e| e.value)
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            values,
            ["1", "1", "2", "2", "3", "1"]
                .iter()
                .map(|v| format!(r#"{{"v":"{v}"}}"#))
                .collect::<Vec<_>>(),
            "{name}"
        );
        seen.push((name, figures(&cache)));
        runtime.block_on(writer.shutdown()).unwrap();
    }
    for pair in seen.windows(2) {
        assert_eq!(
            pair[0].1, pair[1].1,
            "{} and {} differ",
            pair[0].0, pair[1].0
        );
    }
}

/// PostgreSQL only: inside a batch, the rows a page's look-up found absent
/// are copied in without a conflict check. When another writer of the scope
/// inserts one of those keys after the look-up, the copy fails, the batch
/// is rolled back and each of its writes runs again alone: every page is
/// stored, the other writer's row is replaced by this page's value, and the
/// totals count it once. (The page before the race found a key it already
/// had, so the writer looks the next pages' keys up.)
#[test]
fn a_key_another_writer_inserted_after_the_look_up_is_written_on_the_retry() {
    another_writer_inserts_a_key_of_a_batch(true);
}

/// PostgreSQL only: once a look-up found none of its pages' keys (as in an
/// ingest into an empty cache), the writer copies the next pages in without
/// a look-up. When another writer of the scope has inserted one of their
/// keys, the copy fails, is rolled back to its savepoint, and the pages are
/// looked up and written as usual: the same answers, values and totals as
/// with a look-up.
#[test]
fn a_key_another_writer_inserted_while_new_keys_are_expected_is_written_after_a_look_up() {
    another_writer_inserts_a_key_of_a_batch(false);
}

/// The race of the two tests above: `known_key` makes the page before the
/// race hold a key already stored, so that the racing batch is looked up.
fn another_writer_inserts_a_key_of_a_batch(known_key: bool) {
    let Some(server) = common::pg::shared() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let schema = fresh_schema();
    let scope = "p https://a.example/";
    let cache = Cache::open(pg_location(server, &schema, scope)).unwrap();
    let writer = cache.writer().unwrap();
    let mine = |key: &str| NewEntry {
        value: r#"{"mine":true}"#.to_string(),
        ..issue(key, NOW)
    };
    let mut first_holder = server.client("postgres");
    let mut second_holder = server.client("postgres");
    let mut watcher = server.client("postgres");
    let mut blocked_page = vec![mine("P-1")];
    if known_key {
        runtime
            .block_on(writer.put_page(vec![mine("P-0")]))
            .unwrap();
        blocked_page.insert(0, mine("P-0"));
    }
    // The writer waits on P-1, which a transaction is inserting.
    let mut first_tx = first_holder.transaction().unwrap();
    insert_elsewhere(&mut first_tx, &schema, scope, ("P-1", "P", NOW + HOUR));
    let mut blocked = Box::pin(writer.put_page(blocked_page));
    queue(&mut blocked);
    wait_for_writer_blocked(&mut watcher);
    // Meanwhile another transaction inserts P-2 and two pages queue up, one
    // of them with P-2: they will share the next batch.
    let mut second_tx = second_holder.transaction().unwrap();
    insert_elsewhere(&mut second_tx, &schema, scope, ("P-2", "Q", NOW + 3 * HOUR));
    let mut racing = Box::pin(writer.put_page(vec![mine("P-2"), mine("P-3")]));
    let mut other = Box::pin(writer.put_page(vec![mine("P-4")]));
    queue(&mut racing);
    queue(&mut other);
    first_tx.rollback().unwrap();
    let done = runtime.block_on(blocked).unwrap();
    assert_eq!((done.written, done.unchanged), (1, u64::from(known_key)));
    // The batch's look-up (if any) did not see the uncommitted P-2; its copy
    // waits for that transaction, which then commits the key.
    wait_for_writer_blocked(&mut watcher);
    second_tx.commit().unwrap();
    let racing = runtime.block_on(racing).unwrap();
    let other = runtime.block_on(other).unwrap();
    assert_eq!((racing.written, racing.unchanged), (2, 0));
    assert_eq!((other.written, other.unchanged), (1, 0));
    let reader = cache.reader().unwrap();
    let mut stored = vec!["P-1", "P-2", "P-3", "P-4"];
    if known_key {
        stored.insert(0, "P-0");
    }
    for key in stored.iter().copied() {
        assert_eq!(
            reader.peek(Category::Issue, key).unwrap().map(|e| e.value),
            Some(r#"{"mine":true}"#.to_string()),
            "{key}"
        );
    }
    let issues = reader
        .category_stats(NOW)
        .unwrap()
        .into_iter()
        .find(|s| s.category == Category::Issue)
        .unwrap();
    let n = u64::try_from(stored.len()).unwrap();
    assert_eq!(issues.entries, n);
    assert_eq!(
        reader.issue_counts_by_project().unwrap(),
        vec![("P".to_string(), n)]
    );
    runtime.block_on(writer.shutdown()).unwrap();
}
