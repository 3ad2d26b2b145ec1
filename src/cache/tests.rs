//! Tests of the cache through its public API, on real files in temp dirs.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use super::*;
use crate::Category;

const NOW: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

fn temp_cache() -> (tempfile::TempDir, PathBuf, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache").join("default.sqlite3");
    let cache = Cache::open(&path).unwrap();
    (dir, path, cache)
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

fn keys(cache: &Cache, category: Category) -> Vec<String> {
    cache.reader().unwrap().keys(category, None).unwrap()
}

fn set(keys: &[&str]) -> HashSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

/// A plain connection for looking behind the API.
fn raw(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

fn assert_totals_match_a_full_sum(path: &Path) {
    let conn = raw(path);
    let mut stmt = conn
        .prepare(
            "SELECT t.category, t.entries, t.bytes,
                    (SELECT count(*) FROM entries e WHERE e.category = t.category),
                    (SELECT coalesce(sum(size), 0) FROM entries e WHERE e.category = t.category)
             FROM category_totals t",
        )
        .unwrap();
    let rows: Vec<(String, i64, i64, i64, i64)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 4);
    for (category, entries, bytes, counted, summed) in rows {
        assert_eq!((entries, bytes), (counted, summed), "totals of {category}");
    }
    let by_project: Vec<(String, i64, i64)> = conn
        .prepare(
            "SELECT t.project, t.issues,
                    (SELECT count(*) FROM entries e WHERE e.category = 'issue' AND e.project = t.project)
             FROM project_issue_totals t",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (project, issues, counted) in by_project {
        assert_eq!(issues, counted, "issue total of {project}");
    }
    let uncounted: i64 = conn
        .query_row(
            "SELECT count(*) FROM entries e WHERE e.category = 'issue' AND e.project IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM project_issue_totals t WHERE t.project = e.project)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(uncounted, 0, "issues of a project without a total");
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM entry_values v WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.id = v.id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0, "values without an entry");
}

// ---- opening -------------------------------------------------------------

#[test]
fn opening_creates_the_directory_0700_and_the_file_0600() {
    let (_dir, path, _cache) = temp_cache();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn an_existing_file_keeps_its_mode() {
    let (_dir, path, cache) = temp_cache();
    drop(cache);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    Cache::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn a_text_file_at_the_path_is_reported_corrupt_with_the_reset_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.sqlite3");
    std::fs::write(&path, "these are my notes, not a database\n".repeat(40)).unwrap();
    let err = Cache::open(&path).unwrap_err();
    assert!(matches!(err, CacheError::Corrupt { .. }), "{err:?}");
    assert!(err.is_cache_file_error());
    assert!(err.to_string().contains("cache_warm --reset"), "{err}");
    let err = Cache::open_read_only(&path).unwrap_err();
    assert!(matches!(err, CacheError::Corrupt { .. }), "{err:?}");
}

#[test]
fn a_file_with_a_newer_schema_is_refused_on_open() {
    let (_dir, path, cache) = temp_cache();
    drop(cache);
    raw(&path)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    for err in [
        Cache::open(&path).unwrap_err(),
        Cache::open_read_only(&path).unwrap_err(),
    ] {
        assert!(
            matches!(err, CacheError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1),
            "{err:?}"
        );
    }
}

#[test]
fn opening_an_up_to_date_file_again_changes_nothing() {
    let (_dir, path, cache) = temp_cache();
    drop(cache);
    Cache::open(&path).unwrap();
    Cache::open_read_only(&path).unwrap();
    let version: i64 = raw(&path)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn open_read_only_reports_a_missing_cache_and_does_not_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope").join("default.sqlite3");
    let err = Cache::open_read_only(&path).unwrap_err();
    assert!(matches!(err, CacheError::Missing { .. }), "{err:?}");
    assert!(!err.is_cache_file_error());
    assert!(!path.exists());
    assert!(!path.parent().unwrap().exists());
}

#[test]
fn reset_replaces_a_corrupt_file_with_an_empty_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.sqlite3");
    std::fs::write(&path, "garbage".repeat(100)).unwrap();
    std::fs::write(super::companion(&path, "-wal"), "more garbage").unwrap();
    let cache = Cache::reset(&path).unwrap();
    assert!(keys(&cache, Category::Issue).is_empty());
}

// ---- writing -------------------------------------------------------------

#[tokio::test]
async fn put_page_writes_new_values_then_leaves_identical_ones_untouched() {
    let (_dir, path, cache) = temp_cache();
    // Count every write to a value row from here on.
    raw(&path)
        .execute_batch(
            "CREATE TABLE value_writes (id INTEGER);
             CREATE TRIGGER count_value_inserts AFTER INSERT ON entry_values
             BEGIN INSERT INTO value_writes VALUES (NEW.id); END;
             CREATE TRIGGER count_value_updates AFTER UPDATE ON entry_values
             BEGIN INSERT INTO value_writes VALUES (NEW.id); END;",
        )
        .unwrap();
    let writer = cache.writer().unwrap();
    let page = vec![
        entry(
            Category::Field,
            "summary",
            r#"{"id":"summary"}"#,
            NOW + HOUR,
        ),
        entry(Category::Field, "status", r#"{"id":"status"}"#, NOW + HOUR),
    ];
    let first = writer.put_page(page.clone()).await.unwrap();
    assert_eq!(
        first,
        PutOutcome {
            written: 2,
            unchanged: 0
        }
    );

    let rewarmed: Vec<NewEntry> = page
        .iter()
        .map(|e| NewEntry {
            fetched_at: NOW,
            expires_at: NOW + 2 * HOUR,
            fetch_ms: 99,
            ..e.clone()
        })
        .collect();
    let second = writer.put_page(rewarmed).await.unwrap();
    assert_eq!(
        second,
        PutOutcome {
            written: 0,
            unchanged: 2
        }
    );
    writer.shutdown().await.unwrap();

    let writes: i64 = raw(&path)
        .query_row("SELECT count(*) FROM value_writes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(writes, 2, "only the first page may write values");
    let got = cache
        .reader()
        .unwrap()
        .peek(Category::Field, "summary")
        .unwrap()
        .unwrap();
    assert_eq!(got.value, r#"{"id":"summary"}"#);
    assert_eq!(
        (got.fetched_at, got.expires_at, got.fetch_ms),
        (NOW, NOW + 2 * HOUR, 99)
    );
    assert_eq!(got.size, ("summary".len() + got.value.len()) as u64);
}

#[tokio::test]
async fn a_changed_value_is_rewritten_and_its_size_follows() {
    let (_dir, path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    writer
        .put_page(vec![entry(Category::User, "abc", r#"{"n":1}"#, NOW + HOUR)])
        .await
        .unwrap();
    let outcome = writer
        .put_page(vec![entry(
            Category::User,
            "abc",
            r#"{"n":1, "more": true}"#,
            NOW + HOUR,
        )])
        .await
        .unwrap();
    assert_eq!(
        outcome,
        PutOutcome {
            written: 1,
            unchanged: 0
        }
    );
    let got = cache
        .reader()
        .unwrap()
        .peek(Category::User, "abc")
        .unwrap()
        .unwrap();
    assert_eq!(got.value, r#"{"n":1, "more": true}"#);
    assert_eq!(got.size, (3 + got.value.len()) as u64);
    assert_totals_match_a_full_sum(&path);
}

#[test]
fn a_full_disk_is_reported_as_disk_full_and_the_page_is_rolled_back() {
    let (_dir, path, _cache) = temp_cache();
    let mut conn = raw(&path);
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    conn.query_row(
        &format!("PRAGMA max_page_count = {}", pages + 2),
        [],
        |_| Ok(()),
    )
    .unwrap();
    let big: Vec<NewEntry> = (0..200)
        .map(|i| entry(Category::Issue, &format!("P-{i}"), &"x".repeat(1000), NOW))
        .collect();
    // As the writer runs it: inside a transaction, rolled back on error.
    let tx = write::immediate(&mut conn).unwrap();
    let err = write::put_page(&tx, &big, None).unwrap_err();
    drop(tx);
    let err = CacheError::from_sqlite(&path, err);
    assert!(matches!(err, CacheError::DiskFull { .. }), "{err:?}");
    let count: i64 = conn
        .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn remove_missing_over_all_keys_removes_every_unlisted_key() {
    let (_dir, _path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    writer
        .put_page(
            ["A", "B", "C"]
                .iter()
                .map(|k| entry(Category::Project, k, "{}", NOW + HOUR))
                .chain([entry(Category::Field, "A", "{}", NOW + HOUR)])
                .collect(),
        )
        .await
        .unwrap();
    let removed = writer
        .remove_missing(Category::Project, KeyScope::All, set(&["A", "C"]))
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(keys(&cache, Category::Project), ["A", "C"]);
    assert_eq!(
        keys(&cache, Category::Field),
        ["A"],
        "other categories untouched"
    );
}

#[tokio::test]
async fn remove_missing_inside_a_glob_leaves_keys_outside_it() {
    let (_dir, _path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    let all = [
        "list:fields",
        "list:statuses",
        "status:1",
        "status:2",
        "summary",
    ];
    writer
        .put_page(
            all.iter()
                .map(|k| entry(Category::Field, k, "{}", NOW))
                .collect(),
        )
        .await
        .unwrap();
    let removed = writer
        .remove_missing(
            Category::Field,
            KeyScope::Glob("status:*".into()),
            set(&["status:2"]),
        )
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        keys(&cache, Category::Field),
        ["list:fields", "list:statuses", "status:2", "summary"]
    );
    // GLOB is case-sensitive.
    let removed = writer
        .remove_missing(
            Category::Field,
            KeyScope::Glob("LIST:*".into()),
            HashSet::new(),
        )
        .await
        .unwrap();
    assert_eq!(removed, 0);
}

#[tokio::test]
async fn remove_missing_outside_a_glob_leaves_keys_inside_it() {
    let (_dir, _path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    let all = ["assignable:OPS", "assignable:PROJ", "u1", "u2", "u3"];
    writer
        .put_page(
            all.iter()
                .map(|k| entry(Category::User, k, "{}", NOW))
                .collect(),
        )
        .await
        .unwrap();
    let removed = writer
        .remove_missing(
            Category::User,
            KeyScope::NotGlob("assignable:*".into()),
            set(&["u2"]),
        )
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert_eq!(
        keys(&cache, Category::User),
        ["assignable:OPS", "assignable:PROJ", "u2"]
    );
}

#[tokio::test]
async fn remove_missing_in_an_issue_window_only_removes_issues_updated_inside_it() {
    let (_dir, _path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    let since = NOW - 7 * 24 * HOUR;
    writer
        .put_page(vec![
            issue("PROJ-1", since - 1),  // aged out of the window: stays
            issue("PROJ-2", since),      // in the window, listed: stays
            issue("PROJ-3", since + 10), // in the window, not listed: removed
            issue("PROJ-4", NOW),        // in the window, not listed: removed
            issue("OPS-1", NOW),         // another project: stays
        ])
        .await
        .unwrap();
    let removed = writer
        .remove_missing(
            Category::Issue,
            KeyScope::IssueWindow {
                project: "PROJ".into(),
                updated_since_ms: since,
            },
            set(&["PROJ-2"]),
        )
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert_eq!(keys(&cache, Category::Issue), ["OPS-1", "PROJ-1", "PROJ-2"]);
    assert_eq!(
        cache.reader().unwrap().issue_counts_by_project().unwrap(),
        [("OPS".to_string(), 1), ("PROJ".to_string(), 2)]
    );
}

#[tokio::test]
async fn remove_counts_without_deleting_on_a_dry_run() {
    let (_dir, _path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    writer
        .put_page(vec![
            issue("PROJ-1", NOW),
            issue("PROJ-2", NOW),
            issue("OPS-1", NOW),
            entry(Category::Project, "PROJ", "{}", NOW),
        ])
        .await
        .unwrap();
    let pattern = Some("PROJ*".to_string());
    assert_eq!(writer.remove(None, pattern.clone(), true).await.unwrap(), 3);
    assert_eq!(keys(&cache, Category::Issue).len(), 3);
    assert_eq!(
        writer
            .remove(Some(Category::Issue), pattern, false)
            .await
            .unwrap(),
        2
    );
    assert_eq!(keys(&cache, Category::Issue), ["OPS-1"]);
    assert_eq!(keys(&cache, Category::Project), ["PROJ"]);
    assert_eq!(writer.remove(None, None, false).await.unwrap(), 2);
    assert_eq!(cache.reader().unwrap().total_bytes().unwrap(), 0);
}

#[tokio::test]
async fn deleting_an_entry_deletes_its_value() {
    let (_dir, path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    writer.put_page(vec![issue("PROJ-1", NOW)]).await.unwrap();
    writer.remove(None, None, false).await.unwrap();
    let values: i64 = raw(&path)
        .query_row("SELECT count(*) FROM entry_values", [], |r| r.get(0))
        .unwrap();
    assert_eq!(values, 0);
}

#[tokio::test]
async fn category_totals_match_a_full_sum_after_inserts_updates_and_deletes() {
    let (_dir, path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    // `even` is the project of the even-numbered issues: changing it moves them.
    let page = |n: usize, value: &str, expires: i64, even: &str| -> Vec<NewEntry> {
        (0..n)
            .map(|i| NewEntry {
                project: Some(if i % 2 == 0 { even } else { "PROJ" }.to_string()),
                updated_at: Some(NOW - i as i64),
                ..entry(Category::Issue, &format!("PROJ-{i}"), value, expires)
            })
            .chain((0..n / 3).map(|i| entry(Category::User, &format!("u{i}"), value, expires)))
            .collect()
    };
    writer
        .put_page(page(300, "{}", NOW - 1, "PROJ"))
        .await
        .unwrap();
    assert_totals_match_a_full_sum(&path);
    writer
        .put_page(page(200, r#"{"longer":true}"#, NOW + HOUR, "OPS"))
        .await
        .unwrap();
    assert_totals_match_a_full_sum(&path);
    writer
        .put_page(page(200, r#"{"longer":true}"#, NOW + HOUR, "OPS"))
        .await
        .unwrap();
    assert_totals_match_a_full_sum(&path);
    assert_eq!(
        cache.reader().unwrap().issue_counts_by_project().unwrap(),
        [("OPS".to_string(), 100), ("PROJ".to_string(), 200)]
    );
    writer
        .remove_missing(Category::User, KeyScope::All, set(&["u1", "u2"]))
        .await
        .unwrap();
    assert_totals_match_a_full_sum(&path);
    writer.prune(NOW).await.unwrap();
    assert_totals_match_a_full_sum(&path);
    writer.enforce_max_size(1000, NOW).await.unwrap();
    assert_totals_match_a_full_sum(&path);
    writer
        .remove(Some(Category::Issue), None, false)
        .await
        .unwrap();
    assert_totals_match_a_full_sum(&path);
}

// ---- eviction and pruning ------------------------------------------------

#[tokio::test]
async fn enforce_max_size_removes_expired_entries_first_then_the_least_recently_read() {
    let (_dir, path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    let value = "v".repeat(98); // with a two-letter key: 100 bytes each
    let e = |key: &str, fetched_at: i64, expires_at: i64| NewEntry {
        fetched_at,
        ..entry(Category::User, key, &value, expires_at)
    };
    writer
        .put_page(vec![
            e("k1", 10, NOW - 10),   // expired
            e("k2", 10, NOW - 20),   // expired earlier: first to go
            e("k3", 30, NOW + HOUR), // read at NOW + 500
            e("k4", 10, NOW + HOUR), // never read, fetched first
            e("k5", 20, NOW + HOUR), // never read, fetched later
            e("k6", 5, NOW + HOUR),  // read at NOW + 400
        ])
        .await
        .unwrap();
    {
        let mut reader = cache.reader().unwrap();
        reader.get(Category::User, "k6", NOW + 400).unwrap();
        reader.get(Category::User, "k3", NOW + 500).unwrap();
        assert!(reader.flush_read_counts().unwrap());
    }
    let under_cap = writer.enforce_max_size(600, NOW).await.unwrap();
    assert_eq!(under_cap.removed_expired + under_cap.removed_lru, 0);

    let outcome = writer.enforce_max_size(350, NOW).await.unwrap();
    assert_eq!(
        outcome,
        EvictionOutcome {
            removed_expired: 2,
            removed_lru: 1,
            bytes_before: 600,
            bytes_after: 300,
        }
    );
    assert_eq!(keys(&cache, Category::User), ["k3", "k5", "k6"]);

    let outcome = writer.enforce_max_size(150, NOW).await.unwrap();
    assert_eq!((outcome.removed_expired, outcome.removed_lru), (0, 2));
    assert_eq!(
        keys(&cache, Category::User),
        ["k3"],
        "the most recently read stays"
    );
    assert_totals_match_a_full_sum(&path);
}

#[tokio::test]
async fn prune_removes_expired_entries_and_shrinks_the_file() {
    let (_dir, _path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    let value = "x".repeat(2000);
    let page: Vec<NewEntry> = (0..2000)
        .map(|i| {
            let expires = if i % 10 == 0 { NOW + HOUR } else { NOW - HOUR };
            entry(Category::Issue, &format!("P-{i}"), &value, expires)
        })
        .collect();
    writer.put_page(page).await.unwrap();
    // Settle the WAL into the file so that "before" is the file's real size.
    writer.prune(0).await.unwrap();
    let reader = cache.reader().unwrap();
    let before = reader.file_size().unwrap();

    let outcome = writer.prune(NOW).await.unwrap();
    assert_eq!(outcome.removed, 1800);
    let after = reader.file_size().unwrap();
    assert!(outcome.bytes_freed_from_file > 0, "{outcome:?}");
    assert!(
        after < before / 4,
        "file did not shrink: {before} -> {after}"
    );
    assert_eq!(keys(&cache, Category::Issue).len(), 200);
}

// ---- reading -------------------------------------------------------------

#[tokio::test]
async fn get_counts_hits_stale_hits_and_misses() {
    let (_dir, _path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    writer
        .put_page(vec![entry(
            Category::Project,
            "PROJ",
            r#"{"key":"PROJ"}"#,
            NOW,
        )])
        .await
        .unwrap();
    let mut reader = cache.reader().unwrap();
    let fresh = reader
        .get(Category::Project, "PROJ", NOW - 1)
        .unwrap()
        .unwrap();
    assert_eq!(fresh.freshness(NOW - 1), Freshness::Fresh);
    assert_eq!(fresh.value, r#"{"key":"PROJ"}"#);
    let stale = reader.get(Category::Project, "PROJ", NOW).unwrap().unwrap();
    assert_eq!(stale.freshness(NOW), Freshness::Stale);
    assert!(reader.get(Category::Project, "OPS", NOW).unwrap().is_none());
    let stats = reader.category_stats(NOW).unwrap();
    let project = &stats[0];
    assert_eq!(project.category, Category::Project);
    assert_eq!(
        (project.hits, project.stale_hits, project.misses),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn get_reads_are_counted_apart_from_the_hit_rate_sources() {
    let (_dir, _path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    writer
        .put_page(vec![entry(Category::Project, "PROJ", "{}", NOW)])
        .await
        .unwrap();
    {
        let mut reader = cache.reader().unwrap();
        reader.get(Category::Project, "PROJ", NOW - 1).unwrap();
        reader.set_read_source(ReadSource::Serve);
        reader.get(Category::Project, "PROJ", NOW - 1).unwrap();
        reader.set_read_source(ReadSource::Get);
        reader.get(Category::Project, "NOPE", NOW).unwrap();
        reader.get(Category::Project, "NOPE", NOW).unwrap();
    }
    let stats = cache.reader().unwrap().category_stats(NOW).unwrap();
    let project = &stats[0];
    // Library and serve count in the hit rate; --get's misses do not.
    assert_eq!(
        (project.hits, project.stale_hits, project.misses),
        (2, 0, 0)
    );
    let of = |s: ReadSource| project.by_source[&s];
    assert_eq!(of(ReadSource::Library).hits, 1);
    assert_eq!(of(ReadSource::Serve).hits, 1);
    assert_eq!(of(ReadSource::Get).misses, 2);
    assert_eq!(of(ReadSource::Get).reads(), 2);
}

#[tokio::test]
async fn read_counts_persist_across_two_separate_opens() {
    let (_dir, path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    writer
        .put_page(vec![issue("PROJ-1", NOW), issue("PROJ-2", NOW)])
        .await
        .unwrap();
    writer.shutdown().await.unwrap();
    {
        let mut reader = cache.reader().unwrap();
        reader.get(Category::Issue, "PROJ-1", NOW).unwrap();
        reader
            .get(Category::Issue, "PROJ-2", NOW + 2 * HOUR)
            .unwrap();
        reader.get(Category::Issue, "PROJ-9", NOW).unwrap();
        // Dropping the reader flushes.
    }
    drop(cache);

    let reader = Cache::open_read_only(&path).unwrap();
    let issues = reader
        .category_stats(NOW)
        .unwrap()
        .into_iter()
        .find(|s| s.category == Category::Issue)
        .unwrap();
    assert_eq!((issues.hits, issues.stale_hits, issues.misses), (1, 1, 1));
    let last_read: Vec<Option<i64>> = raw(&path)
        .prepare("SELECT last_read_at FROM entries ORDER BY key")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(last_read, [Some(NOW), Some(NOW + 2 * HOUR)]);
}

#[tokio::test]
async fn category_stats_reports_fresh_expired_bytes_and_times() {
    let (_dir, _path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    let e = |key: &str, fetched_at: i64, expires_at: i64| NewEntry {
        fetched_at,
        ..entry(Category::Field, key, "{}", expires_at)
    };
    writer
        .put_page(vec![
            e("a", NOW - 3 * HOUR, NOW - HOUR),
            e("b", NOW - 2 * HOUR, NOW),
            e("c", NOW - HOUR, NOW + HOUR),
            e("d", NOW - 4 * HOUR, NOW + 2 * HOUR),
        ])
        .await
        .unwrap();
    let stats = cache.reader().unwrap().category_stats(NOW).unwrap();
    assert_eq!(
        stats.iter().map(|s| s.category).collect::<Vec<_>>(),
        Category::ALL
    );
    let field = &stats[1];
    assert_eq!(
        *field,
        CategoryStats {
            category: Category::Field,
            entries: 4,
            fresh: 2,
            expired: 2,
            bytes: 4 * 3,
            oldest_fetch: Some(NOW - 4 * HOUR),
            newest_fetch: Some(NOW - HOUR),
            next_expiry: Some(NOW + HOUR),
            hits: 0,
            stale_hits: 0,
            misses: 0,
            by_source: ReadSource::ALL
                .iter()
                .map(|&s| (s, ReadCounts::default()))
                .collect(),
        }
    );
    let issue = &stats[3];
    assert_eq!(
        (issue.entries, issue.oldest_fetch, issue.next_expiry),
        (0, None, None)
    );
}

#[tokio::test]
async fn keys_are_sorted_and_filtered_by_a_case_sensitive_glob() {
    let (_dir, _path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    writer
        .put_page(
            ["status:3", "list:statuses", "status:1", "Status:2"]
                .iter()
                .map(|k| entry(Category::Field, k, "{}", NOW))
                .collect(),
        )
        .await
        .unwrap();
    let reader = cache.reader().unwrap();
    assert_eq!(
        reader.keys(Category::Field, Some("status:*")).unwrap(),
        ["status:1", "status:3"]
    );
    assert_eq!(reader.keys(Category::Field, None).unwrap().len(), 4);
}

#[tokio::test]
async fn meta_watermarks_and_runs_round_trip() {
    let (_dir, _path, cache) = temp_cache();
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
        .set_watermark("PROJ".into(), NOW - HOUR, NOW)
        .await
        .unwrap();
    writer
        .set_watermark("OPS".into(), NOW - 2 * HOUR, NOW)
        .await
        .unwrap();
    writer
        .set_watermark("PROJ".into(), NOW, NOW + 1)
        .await
        .unwrap();
    let first = writer
        .run_start(RunStart {
            started_at: NOW,
            pid: 42,
            stages: vec!["projects".into(), "issues".into()],
        })
        .await
        .unwrap();
    writer
        .run_finish(
            first,
            RunEnd {
                ended_at: NOW + 1000,
                result: RunResult::Partial,
                requests: 10,
                retries: 2,
                throttled: 1,
                written: 5,
                unchanged: 4,
                removed: 3,
                errors: vec!["issues: HTTP 500".into()],
                report_json: r#"{"schema_version":1}"#.into(),
            },
        )
        .await
        .unwrap();
    let second = writer
        .run_start(RunStart {
            started_at: NOW + 2000,
            pid: 43,
            stages: vec!["fields".into()],
        })
        .await
        .unwrap();
    assert!(second > first);

    let reader = cache.reader().unwrap();
    assert_eq!(
        reader.meta("deployment").unwrap().as_deref(),
        Some("datacenter")
    );
    assert_eq!(reader.meta("site").unwrap(), None);
    assert_eq!(
        reader.watermarks().unwrap(),
        [
            Watermark {
                project: "OPS".into(),
                newest_updated_ms: NOW - 2 * HOUR,
                warmed_at: NOW
            },
            Watermark {
                project: "PROJ".into(),
                newest_updated_ms: NOW,
                warmed_at: NOW + 1
            },
        ]
    );
    assert_eq!(reader.watermark("OPS").unwrap().unwrap().warmed_at, NOW);
    let runs = reader.runs(10).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].id, second);
    assert_eq!(runs[0].result, RunResult::Running);
    assert_eq!(runs[0].ended_at, None);
    assert_eq!(
        runs[1],
        RunRecord {
            id: first,
            started_at: NOW,
            ended_at: Some(NOW + 1000),
            pid: 42,
            stages: vec!["projects".into(), "issues".into()],
            result: RunResult::Partial,
            requests: Some(10),
            retries: Some(2),
            throttled: Some(1),
            written: Some(5),
            unchanged: Some(4),
            removed: Some(3),
            errors: vec!["issues: HTTP 500".into()],
            report_json: Some(r#"{"schema_version":1}"#.into()),
        }
    );
    assert_eq!(reader.runs(1).unwrap().len(), 1);
}

// ---- concurrency ---------------------------------------------------------

#[tokio::test]
async fn a_shut_down_writer_finishes_the_queued_pages_first() {
    let (_dir, _path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    let pages: Vec<_> = (0..5)
        .map(|p| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .put_page((0..100).map(|i| issue(&format!("P{p}-{i}"), NOW)).collect())
                    .await
            })
        })
        .collect();
    tokio::task::yield_now().await;
    let late = writer.clone();
    writer.shutdown().await.unwrap();
    let mut stored = 0;
    for page in pages {
        // A page queued before the shutdown is written; one sent after it is refused.
        match page.await.unwrap() {
            Ok(outcome) => stored += outcome.written,
            Err(e) => assert!(matches!(e, CacheError::WriterStopped { .. }), "{e:?}"),
        }
    }
    assert_eq!(keys(&cache, Category::Issue).len() as u64, stored);
    let err = late.put_page(vec![issue("P-1", NOW)]).await.unwrap_err();
    assert!(matches!(err, CacheError::WriterStopped { .. }), "{err:?}");
}

#[tokio::test]
async fn queued_writes_share_a_transaction_and_a_failing_one_fails_alone() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let (_dir, path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    // A gate keeps the writer busy while the others queue up behind it: the
    // writer's thread enters it, says so, and stays until released (events,
    // not a pause that hopes the writer has started).
    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let busy = tokio::spawn({
        let writer = writer.clone();
        async move {
            writer
                .batched(1, move |_, _| {
                    let _ = entered_tx.send(());
                    release_rx
                        .recv_timeout(Duration::from_secs(60))
                        .expect("the test releases the gate");
                    Ok(())
                })
                .await
        }
    });
    tokio::task::spawn_blocking(move || entered_rx.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("the writer entered the gate");
    let small = |i: usize| {
        let writer = writer.clone();
        tokio::spawn(async move {
            writer
                .put_page(vec![issue(&format!("SMALL-{i}"), NOW)])
                .await
        })
    };
    let before: Vec<_> = (0..5).map(small).collect();
    tokio::task::yield_now().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let failing = tokio::spawn({
        let (writer, runs, path) = (writer.clone(), Arc::clone(&runs), path.clone());
        async move {
            writer
                .batched(1, move |tx, _| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    // Writes something, then fails: the write must not survive.
                    let super::writer::Tx::Lite(tx) = tx else {
                        unreachable!("a SQLite cache")
                    };
                    write::set_meta(tx, "half", "written").unwrap();
                    Err::<(), _>(CacheError::DiskFull { path: path.clone() })
                })
                .await
        }
    });
    tokio::task::yield_now().await;
    let after: Vec<_> = (5..10).map(small).collect();
    // Every write handed over (each queues before its task awaits the
    // answer), then the gate opens.
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    release_tx.send(()).unwrap();

    busy.await.unwrap().unwrap();
    for page in before.into_iter().chain(after) {
        assert_eq!(page.await.unwrap().unwrap().written, 1);
    }
    let err = failing.await.unwrap().unwrap_err();
    assert!(matches!(err, CacheError::DiskFull { .. }), "{err:?}");
    // Once in the batch, once alone after the batch was rolled back.
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(cache.reader().unwrap().meta("half").unwrap(), None);
    assert_eq!(
        keys(&cache, Category::Issue)
            .iter()
            .filter(|k| k.starts_with("SMALL-"))
            .count(),
        10
    );
    assert_totals_match_a_full_sum(&path);
}

#[tokio::test]
async fn readers_are_not_blocked_while_another_connection_holds_the_write_lock() {
    let (_dir, path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    writer.put_page(vec![issue("PROJ-1", NOW)]).await.unwrap();
    let mut reader = cache.reader().unwrap();

    let blocker = raw(&path);
    blocker
        .execute_batch("BEGIN IMMEDIATE; DELETE FROM entries;")
        .unwrap();
    assert_eq!(reader.category_stats(NOW).unwrap()[3].entries, 1);
    assert!(
        reader
            .get(Category::Issue, "PROJ-1", NOW)
            .unwrap()
            .is_some()
    );
    assert_eq!(reader.keys(Category::Issue, None).unwrap(), ["PROJ-1"]);
    let opened = Cache::open_read_only(&path).unwrap();
    assert_eq!(opened.total_bytes().unwrap(), reader.total_bytes().unwrap());
    // The counters cannot be written now: kept for later, after the short
    // flush wait, never the 5 s a write waits (a design bound, checked as
    // such rather than by the clock).
    assert!(!reader.flush_read_counts().unwrap());
    assert!(reader::FLUSH_BUSY_TIMEOUT * 10 <= schema::BUSY_TIMEOUT);
    blocker.execute_batch("ROLLBACK").unwrap();

    assert!(reader.flush_read_counts().unwrap());
    assert_eq!(reader.category_stats(NOW).unwrap()[3].hits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_keep_working_while_the_writer_stores_a_big_page() {
    let (_dir, _path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    writer.put_page(vec![issue("SEED-1", NOW)]).await.unwrap();
    let big: Vec<NewEntry> = (0..30_000)
        .map(|i| issue(&format!("BIG-{i}"), NOW - i))
        .collect();
    let writing = tokio::spawn(async move { writer.put_page(big).await });
    let reader_cache = cache.clone();
    let reads = tokio::task::spawn_blocking(move || {
        let mut reader = reader_cache.reader().unwrap();
        let mut rounds = 0;
        let mut seen = Vec::new();
        while !writing.is_finished() || rounds == 0 {
            let stats = reader.category_stats(NOW).unwrap();
            seen.push(stats[3].entries);
            reader.get(Category::Issue, "SEED-1", NOW).unwrap().unwrap();
            reader.flush_read_counts().unwrap(); // may be skipped, never an error
            rounds += 1;
        }
        (writing, seen)
    });
    let (writing, seen) = reads.await.unwrap();
    assert_eq!(writing.await.unwrap().unwrap().written, 30_000);
    // Every snapshot saw the page whole or not at all.
    assert!(seen.iter().all(|&n| n == 1 || n == 30_001), "{seen:?}");
}

#[tokio::test]
async fn a_hundred_thousand_entries_are_written_in_pages() {
    let (_dir, path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    let value = r#"{"fields":{"summary":"something to do","status":{"name":"Open"}}}"#;
    for page in 0..10 {
        let entries = (0..10_000)
            .map(|i| NewEntry {
                project: Some("PROJ".into()),
                updated_at: Some(NOW - i),
                ..entry(
                    Category::Issue,
                    &format!("PROJ-{}", page * 10_000 + i),
                    value,
                    NOW + HOUR,
                )
            })
            .collect();
        assert_eq!(writer.put_page(entries).await.unwrap().written, 10_000);
    }
    writer.shutdown().await.unwrap();
    let reader = cache.reader().unwrap();
    let stats = reader.category_stats(NOW).unwrap();
    assert_eq!((stats[3].entries, stats[3].fresh), (100_000, 100_000));
    assert_eq!(
        reader.issue_counts_by_project().unwrap(),
        [("PROJ".to_string(), 100_000)]
    );
    assert_totals_match_a_full_sum(&path);
}

// ---- listings (schema 4) --------------------------------------------------

/// A run of the listing `name` of users that started at `fetched_at`.
fn run_of(name: &str, fetched_at: i64, expires_at: i64) -> Listing {
    Listing {
        category: Category::User,
        name: name.to_string(),
        fetched_at,
        expires_at,
    }
}

fn user(key: &str, value: &str) -> NewEntry {
    // Its own times, which a listing's member does not keep.
    NewEntry {
        fetched_at: NOW - 9 * HOUR,
        ..entry(Category::User, key, value, NOW - 8 * HOUR)
    }
}

/// (fetched_at, expires_at) as readers see them.
fn times(cache: &Cache, key: &str) -> (i64, i64) {
    let e = cache
        .reader()
        .unwrap()
        .peek(Category::User, key)
        .unwrap()
        .unwrap_or_else(|| panic!("{key} is not cached"));
    (e.fetched_at, e.expires_at)
}

/// The row behind the API: own fetched_at, own expires_at, fetch_ms, in a listing?
fn row(path: &Path, key: &str) -> (Option<i64>, Option<i64>, i64, bool) {
    raw(path)
        .query_row(
            "SELECT fetched_at, expires_at, fetch_ms, listing IS NOT NULL FROM entries
             WHERE category = 'user' AND key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
}

#[tokio::test]
async fn a_listings_members_carry_its_times_and_an_unchanged_one_is_not_written() {
    let (_dir, path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    let first = run_of("users", NOW - 2 * HOUR, NOW + HOUR);
    let put = writer
        .put_listing_page(first.clone(), 0, vec![user("u1", "{}"), user("u2", "{}")])
        .await
        .unwrap();
    assert_eq!((put.written, put.unchanged), (2, 0));
    writer
        .finish_listing(first, set(&["u1", "u2"]), None)
        .await
        .unwrap();
    assert_eq!(times(&cache, "u1"), (NOW - 2 * HOUR, NOW + HOUR));
    assert_eq!(row(&path, "u1"), (None, None, 12, true));

    // The next run finds them unchanged: nothing is written, not even the
    // page's new fetch_ms, and the times move only when the run completes.
    let second = run_of("users", NOW, NOW + 5 * HOUR);
    let mut again = vec![user("u1", "{}"), user("u2", "{}")];
    for e in &mut again {
        e.fetch_ms = 99;
    }
    let put = writer
        .put_listing_page(second.clone(), 0, again.clone())
        .await
        .unwrap();
    assert_eq!((put.written, put.unchanged), (0, 2));
    assert_eq!(times(&cache, "u2"), (NOW - 2 * HOUR, NOW + HOUR));
    writer
        .finish_listing(second, set(&["u1", "u2"]), None)
        .await
        .unwrap();
    assert_eq!(times(&cache, "u1"), (NOW, NOW + 5 * HOUR));
    assert_eq!(times(&cache, "u2"), (NOW, NOW + 5 * HOUR));
    assert_eq!(row(&path, "u2"), (None, None, 12, true));

    // Looked at entry by entry (another position, so no page digest), a
    // member is still not written.
    let third = run_of("users", NOW + HOUR, NOW + 6 * HOUR);
    let put = writer.put_listing_page(third, 7, again).await.unwrap();
    assert_eq!((put.written, put.unchanged), (0, 2));
    assert_eq!(row(&path, "u1"), (None, None, 12, true));
    assert_totals_match_a_full_sum(&path);
}

/// A complete run of `listing` that returns `page` as its page 0.
async fn complete_run(writer: &CacheWriter, listing: Listing, page: Vec<NewEntry>) {
    let listed = page.iter().map(|e| e.key.clone()).collect();
    writer
        .put_listing_page(listing.clone(), 0, page)
        .await
        .unwrap();
    writer.finish_listing(listing, listed, None).await.unwrap();
}

/// A cache with one finished run of the `users` listing: page 0 holds
/// u1, u2 and u3.
async fn listed_users() -> (tempfile::TempDir, PathBuf, Cache, CacheWriter) {
    let (dir, path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    complete_run(
        &writer,
        run_of("users", NOW - HOUR, NOW + HOUR),
        three_users(),
    )
    .await;
    (dir, path, cache, writer)
}

fn three_users() -> Vec<NewEntry> {
    vec![user("u1", "{}"), user("u2", "{}"), user("u3", "{}")]
}

#[tokio::test]
async fn a_page_like_the_last_is_looked_at_again_once_a_member_was_removed() {
    let (_dir, path, cache, writer) = listed_users().await;
    let removed = writer
        .remove(Some(Category::User), Some("u2".into()), false)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let second = run_of("users", NOW, NOW + 2 * HOUR);
    let put = writer
        .put_listing_page(second, 0, three_users())
        .await
        .unwrap();
    assert_eq!((put.written, put.unchanged), (1, 2));
    assert_eq!(keys(&cache, Category::User), ["u1", "u2", "u3"]);
    assert_totals_match_a_full_sum(&path);
}

#[tokio::test]
async fn a_page_like_the_last_is_looked_at_again_once_a_member_was_fetched_alone() {
    let (_dir, path, _cache, writer) = listed_users().await;
    // As a reader refreshing one user does: it leaves the listing.
    writer.put_page(vec![user("u3", "{}")]).await.unwrap();
    assert!(!row(&path, "u3").3);
    let second = run_of("users", NOW, NOW + 2 * HOUR);
    let put = writer
        .put_listing_page(second, 0, three_users())
        .await
        .unwrap();
    assert_eq!((put.written, put.unchanged), (0, 3));
    assert!(row(&path, "u3").3, "listed again, it is a member again");
}

#[tokio::test]
async fn a_member_changed_through_another_page_voids_the_digests_of_its_listing() {
    let (_dir, _path, cache, writer) = listed_users().await;
    // A run whose page 0 brings nothing new (all seen) and whose page 1
    // brings u2 changed: page 0's record is not replaced.
    let second = run_of("users", NOW, NOW + 2 * HOUR);
    let put = writer
        .put_listing_page(second, 1, vec![user("u2", r#"{"new":1}"#)])
        .await
        .unwrap();
    assert_eq!(put.written, 1);
    // Jira has u2 as it was: page 0 is the same as its old record, but u2
    // must be written back.
    let third = run_of("users", NOW + HOUR, NOW + 3 * HOUR);
    let put = writer
        .put_listing_page(third, 0, three_users())
        .await
        .unwrap();
    assert_eq!((put.written, put.unchanged), (1, 2));
    let u2 = cache.reader().unwrap().peek(Category::User, "u2").unwrap();
    assert_eq!(u2.unwrap().value, "{}");
}

#[tokio::test]
async fn a_member_leaving_its_listing_voids_the_digests_of_its_listing() {
    let (_dir, path, _cache, writer) = listed_users().await;
    let cut = run_of("users", NOW, NOW + 2 * HOUR);
    writer.leave_listing(cut, set(&["u1"])).await.unwrap();
    assert!(!row(&path, "u1").3);
    let next = run_of("users", NOW + HOUR, NOW + 3 * HOUR);
    writer
        .put_listing_page(next, 0, three_users())
        .await
        .unwrap();
    assert!(row(&path, "u1").3, "a page like the last one rejoins u1");
}

#[tokio::test]
async fn a_member_a_run_did_not_list_voids_the_digests_of_its_listing() {
    let (_dir, path, _cache, writer) = listed_users().await;
    // A run that lists u1 and u2 on another page: u3 leaves at its end.
    let second = run_of("users", NOW, NOW + 2 * HOUR);
    writer
        .put_listing_page(second.clone(), 1, vec![user("u1", "{}"), user("u2", "{}")])
        .await
        .unwrap();
    writer
        .finish_listing(second, set(&["u1", "u2"]), None)
        .await
        .unwrap();
    assert!(!row(&path, "u3").3);
    let third = run_of("users", NOW + HOUR, NOW + 3 * HOUR);
    writer
        .put_listing_page(third, 0, three_users())
        .await
        .unwrap();
    assert!(row(&path, "u3").3, "listed again, u3 rejoins");
}

#[tokio::test]
async fn finishing_a_listing_keeps_unlisted_members_old_times_and_removes_what_it_proves_gone() {
    let (_dir, path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    let abc = vec![user("a", "{}"), user("b", "{}"), user("c", "{}")];
    complete_run(&writer, run_of("users", NOW - 3 * HOUR, NOW + HOUR), abc).await;

    // A run that lists a and b only, and removes nothing: c was not proved
    // current, so it keeps the times it had, as its own.
    let second = run_of("users", NOW - HOUR, NOW + 2 * HOUR);
    writer
        .put_listing_page(second.clone(), 0, vec![user("a", "{}"), user("b", "{}")])
        .await
        .unwrap();
    let removed = writer
        .finish_listing(second, set(&["a", "b"]), None)
        .await
        .unwrap();
    assert_eq!(removed, 0);
    assert_eq!(times(&cache, "a"), (NOW - HOUR, NOW + 2 * HOUR));
    assert_eq!(times(&cache, "c"), (NOW - 3 * HOUR, NOW + HOUR));
    assert_eq!(
        row(&path, "c"),
        (Some(NOW - 3 * HOUR), Some(NOW + HOUR), 12, false)
    );

    // A run that lists a only and reconciles the whole category, keeping
    // `kept` besides what it listed: b and c go, kept stays.
    writer.put_page(vec![user("kept", "{}")]).await.unwrap();
    let third = run_of("users", NOW, NOW + 3 * HOUR);
    writer
        .put_listing_page(third.clone(), 0, vec![user("a", "{}")])
        .await
        .unwrap();
    let removed = writer
        .finish_listing(third, set(&["a"]), Some((KeyScope::All, set(&["kept"]))))
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert_eq!(keys(&cache, Category::User), ["a", "kept"]);
    assert_eq!(times(&cache, "a"), (NOW, NOW + 3 * HOUR));
    assert_totals_match_a_full_sum(&path);
}

#[tokio::test]
async fn a_listing_cut_short_gives_its_times_only_to_what_it_returned() {
    let (_dir, path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    let abc = vec![user("a", "{}"), user("b", "{}"), user("c", "{}")];
    complete_run(&writer, run_of("users", NOW - 3 * HOUR, NOW + HOUR), abc).await;

    let cut = run_of("users", NOW, NOW + 2 * HOUR);
    writer
        .put_listing_page(
            cut.clone(),
            0,
            vec![user("a", "{}"), user("b", "{\"b\":2}")],
        )
        .await
        .unwrap();
    assert_eq!(
        writer.leave_listing(cut, set(&["a", "b"])).await.unwrap(),
        2
    );
    assert_eq!(times(&cache, "a"), (NOW, NOW + 2 * HOUR));
    assert_eq!(times(&cache, "b"), (NOW, NOW + 2 * HOUR));
    assert_eq!(
        times(&cache, "c"),
        (NOW - 3 * HOUR, NOW + HOUR),
        "not returned"
    );
    assert!(!row(&path, "a").3);
    assert!(row(&path, "c").3);
}

#[tokio::test]
async fn a_new_listing_or_one_left_empty_takes_its_first_runs_times_at_once() {
    let (_dir, _path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    // A first run that never completes: what it stored is fresh anyway.
    let never_finished = run_of("users", NOW - HOUR, NOW + HOUR);
    writer
        .put_listing_page(never_finished, 0, vec![user("a", "{}")])
        .await
        .unwrap();
    assert_eq!(times(&cache, "a"), (NOW - HOUR, NOW + HOUR));

    // Emptied, then a run that never completes: the same.
    writer
        .remove(Some(Category::User), None, false)
        .await
        .unwrap();
    let later = run_of("users", NOW, NOW + 2 * HOUR);
    writer
        .put_listing_page(later, 0, vec![user("b", "{}")])
        .await
        .unwrap();
    assert_eq!(times(&cache, "b"), (NOW, NOW + 2 * HOUR));

    // With members, an unfinished run leaves the listing's times alone.
    let unfinished = run_of("users", NOW + HOUR, NOW + 3 * HOUR);
    writer
        .put_listing_page(unfinished, 1, vec![user("c", "{}")])
        .await
        .unwrap();
    assert_eq!(times(&cache, "b"), (NOW, NOW + 2 * HOUR));
    assert_eq!(times(&cache, "c"), (NOW, NOW + 2 * HOUR));
}

#[tokio::test]
async fn status_figures_eviction_and_prune_follow_the_times_of_listings() {
    let (_dir, path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    let value = "v".repeat(98); // with a two-letter key: 100 bytes each
    // Three members of a listing that expired an hour ago...
    let members = ["m1", "m2", "m3"].map(|k| user(k, &value)).to_vec();
    complete_run(
        &writer,
        run_of("users", NOW - 3 * HOUR, NOW - HOUR),
        members,
    )
    .await;
    // ...two of a fresh one...
    let fresh = vec![user("f1", &value), user("f2", &value)];
    let assignable = run_of("assignable", NOW - 10 * 60_000, NOW + 30 * 60_000);
    complete_run(&writer, assignable, fresh).await;
    // ...and two with their own times: one expired, one fresh.
    let own = |key: &str, fetched_at: i64, expires_at: i64| NewEntry {
        fetched_at,
        ..entry(Category::User, key, &value, expires_at)
    };
    writer
        .put_page(vec![
            own("o1", NOW - 4 * HOUR, NOW - 2 * HOUR),
            own("o2", NOW - 2 * HOUR, NOW + HOUR),
        ])
        .await
        .unwrap();

    let stats = cache.reader().unwrap().category_stats(NOW).unwrap();
    let users = &stats[2];
    assert_eq!(users.category, Category::User);
    assert_eq!(
        (users.entries, users.fresh, users.expired),
        (7, 3, 4),
        "{users:?}"
    );
    assert_eq!(users.oldest_fetch, Some(NOW - 4 * HOUR));
    assert_eq!(users.newest_fetch, Some(NOW - 10 * 60_000));
    assert_eq!(users.next_expiry, Some(NOW + 30 * 60_000));

    // Over the cap by two entries: the oldest expiry goes first (o1, then
    // the expired listing's members, which expired together, by id).
    let outcome = writer.enforce_max_size(500, NOW).await.unwrap();
    assert_eq!((outcome.removed_expired, outcome.removed_lru), (2, 0));
    assert_eq!(keys(&cache, Category::User), ["f1", "f2", "m2", "m3", "o2"]);

    // Pruning takes the rest of the expired members and nothing fresh.
    let outcome = writer.prune(NOW).await.unwrap();
    assert_eq!(outcome.removed, 2);
    assert_eq!(keys(&cache, Category::User), ["f1", "f2", "o2"]);
    let stats = cache.reader().unwrap().category_stats(NOW).unwrap();
    assert_eq!((stats[2].fresh, stats[2].expired), (3, 0));
    assert_totals_match_a_full_sum(&path);
}

#[tokio::test]
async fn patient_writes_are_answered_and_flush_commits_them() {
    let (_dir, _path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    let mut pending = Vec::new();
    for p in ["A", "B", "C"] {
        pending.push(
            writer
                .finish_issue_listing(
                    p.to_string(),
                    vec![issue(&format!("{p}-1"), NOW)],
                    None,
                    Some(NOW),
                    NOW,
                )
                .await
                .unwrap(),
        );
    }
    // An ordinary write meanwhile is not held up behind them for good.
    writer.set_meta("k".into(), "v".into()).await.unwrap();
    writer.flush().await.unwrap();
    for p in pending {
        let (put, removed) = p.outcome().await.unwrap();
        assert_eq!((put.written, removed), (1, 0));
    }
    let reader = cache.reader().unwrap();
    assert_eq!(reader.watermarks().unwrap().len(), 3);
    assert_eq!(keys(&cache, Category::Issue), ["A-1", "B-1", "C-1"]);
}

#[tokio::test]
async fn a_writer_that_checkpointed_on_its_own_thread_leaves_the_whole_file_and_no_wal() {
    let (_dir, path, cache) = temp_cache();
    let writer = cache.writer().unwrap();
    // ~12 MB in pages of 100 issues, as a warm's bulk fetches come: the
    // checkpoint thread copies and the WAL starts over several times.
    let value = "x".repeat(3000);
    for page in 0..40 {
        let entries = (0..100)
            .map(|i| {
                let key = format!("P-{}", page * 100 + i);
                entry(Category::Issue, &key, &value, NOW + HOUR)
            })
            .collect();
        writer.put_page(entries).await.unwrap();
    }
    writer.shutdown().await.unwrap();
    drop(cache);
    for suffix in ["-wal", "-shm"] {
        assert!(
            !super::companion(&path, suffix).exists(),
            "{suffix} left behind"
        );
    }
    let conn = raw(&path);
    let (n, bytes): (i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(length(v.value)) FROM entries e JOIN entry_values v ON v.id = e.id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((n, bytes), (4000, 4000 * 3000));
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn a_named_pipe_or_a_directory_at_the_cache_path_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.sqlite3");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string; mkfifo only reads it.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let folder = dir.path().join("folder.sqlite3");
    std::fs::create_dir(&folder).unwrap();
    for (path, what) in [(&fifo, "a named pipe"), (&folder, "a directory")] {
        let err = Cache::open(path).unwrap_err();
        assert!(matches!(err, CacheError::Unwritable { .. }), "{err:?}");
        assert!(err.to_string().contains(what), "{err}");
        let err = Cache::open_read_only(path).unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
    }
}

#[test]
fn a_symlink_is_found_on_the_way_to_the_cache_however_the_path_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir(base.join("real")).unwrap();
    std::os::unix::fs::symlink(base.join("real"), base.join("link")).unwrap();
    for path in [
        "link",
        "link/sub",
        "missing/../link",
        "real/../link/x",
        "./link",
    ] {
        let (found, target) =
            super::symlink_in(&base.join(path)).unwrap_or_else(|| panic!("{path}: no link found"));
        assert!(found.ends_with("link"), "{path}: {}", found.display());
        assert_eq!(target, base.join("real"), "{path}");
    }
    for path in ["real", "real/sub", "missing/../real", "missing/deeper"] {
        assert_eq!(super::symlink_in(&base.join(path)), None, "{path}");
    }
}
