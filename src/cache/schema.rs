//! The cache file's schema and the settings of every connection to it.
//!
//! Migrations are an append-only list: migration `n` (1-based) takes the file
//! from `PRAGMA user_version = n - 1` to `n`. Every pending migration runs in
//! ONE transaction together with the `user_version` bump, so a file is always
//! at exactly one known version. Never edit a released migration; append one.
//!
//! Per-connection settings (WAL, busy timeout, synchronous, foreign keys) are
//! not part of migrations: they are set on every connection right after it
//! opens ([`configure`]).

use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, TransactionBehavior};

use super::error::{CacheError, SqliteResultExt};

/// How long a connection waits for a lock before giving up with
/// [`CacheError::Busy`].
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// `PRAGMA application_id` of a jira-cache file ("JCAC"), so that a SQLite
/// file of some other program is refused instead of migrated.
pub(crate) const APPLICATION_ID: i64 = 0x4A43_4143;

/// The schema version this binary writes and understands.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The migrations, oldest first. Append only.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// Schema 1.
///
/// - `entries` holds metadata only; the value lives in `entry_values` (same
///   id) so that re-warming an unchanged value rewrites a small row, never the
///   value. Deleting an entry deletes its value (foreign key cascade).
/// - `category_totals` and `project_issue_totals` are kept by triggers so
///   that status figures never need a scan of a million rows (schema 3 moves
///   this into the writer).
/// - `read_counts` is updated in batches by readers.
const V1: &str = r#"
PRAGMA application_id = 1245921603;

CREATE TABLE entries (
    id           INTEGER PRIMARY KEY,
    category     TEXT    NOT NULL CHECK (category IN ('project', 'field', 'user', 'issue')),
    key          TEXT    NOT NULL,
    hash         INTEGER NOT NULL,            -- xxh3_64 of the value, as i64
    size         INTEGER NOT NULL,            -- len(key) + len(value)
    fetched_at   INTEGER NOT NULL,            -- unix ms
    expires_at   INTEGER NOT NULL,            -- unix ms; fresh while now < expires_at
    fetch_ms     INTEGER NOT NULL DEFAULT 0,  -- how long the fetch took (early refresh)
    project      TEXT,                        -- issues: project key
    updated_at   INTEGER,                     -- issues: Jira `updated`, unix ms
    last_read_at INTEGER,                     -- unix ms, flushed in batches by readers
    UNIQUE (category, key)
);
CREATE INDEX entries_by_expiry ON entries (category, expires_at);
CREATE INDEX entries_by_fetch ON entries (category, fetched_at);
CREATE INDEX entries_by_issue_update ON entries (project, updated_at) WHERE project IS NOT NULL;

CREATE TABLE entry_values (
    id    INTEGER PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
    value BLOB NOT NULL                       -- the JSON text exactly as Jira sent it
);

CREATE TABLE category_totals (
    category TEXT PRIMARY KEY,
    entries  INTEGER NOT NULL,
    bytes    INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO category_totals (category, entries, bytes)
VALUES ('project', 0, 0), ('field', 0, 0), ('user', 0, 0), ('issue', 0, 0);

CREATE TRIGGER entries_totals_insert AFTER INSERT ON entries BEGIN
    UPDATE category_totals SET entries = entries + 1, bytes = bytes + NEW.size
    WHERE category = NEW.category;
END;
CREATE TRIGGER entries_totals_delete AFTER DELETE ON entries BEGIN
    UPDATE category_totals SET entries = entries - 1, bytes = bytes - OLD.size
    WHERE category = OLD.category;
END;
CREATE TRIGGER entries_totals_update AFTER UPDATE OF category, size ON entries
WHEN OLD.size IS NOT NEW.size OR OLD.category IS NOT NEW.category BEGIN
    UPDATE category_totals SET entries = entries - 1, bytes = bytes - OLD.size
    WHERE category = OLD.category;
    UPDATE category_totals SET entries = entries + 1, bytes = bytes + NEW.size
    WHERE category = NEW.category;
END;

CREATE TABLE project_issue_totals (
    project TEXT PRIMARY KEY,
    issues  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER entries_project_insert AFTER INSERT ON entries
WHEN NEW.category = 'issue' AND NEW.project IS NOT NULL BEGIN
    INSERT INTO project_issue_totals (project, issues) VALUES (NEW.project, 1)
    ON CONFLICT (project) DO UPDATE SET issues = issues + 1;
END;
CREATE TRIGGER entries_project_delete AFTER DELETE ON entries
WHEN OLD.category = 'issue' AND OLD.project IS NOT NULL BEGIN
    UPDATE project_issue_totals SET issues = issues - 1 WHERE project = OLD.project;
END;
CREATE TRIGGER entries_project_update AFTER UPDATE OF project ON entries
WHEN NEW.category = 'issue' AND OLD.project IS NOT NEW.project BEGIN
    UPDATE project_issue_totals SET issues = issues - 1 WHERE project = OLD.project;
    INSERT INTO project_issue_totals (project, issues) SELECT NEW.project, 1 WHERE NEW.project IS NOT NULL
    ON CONFLICT (project) DO UPDATE SET issues = issues + 1;
END;

CREATE TABLE read_counts (
    category   TEXT PRIMARY KEY,
    hits       INTEGER NOT NULL DEFAULT 0,
    stale_hits INTEGER NOT NULL DEFAULT 0,
    misses     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO read_counts (category) VALUES ('project'), ('field'), ('user'), ('issue');

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE watermarks (
    project           TEXT PRIMARY KEY,
    newest_updated_ms INTEGER NOT NULL,
    warmed_at         INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE runs (
    id         INTEGER PRIMARY KEY,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    pid        INTEGER NOT NULL,
    stages     TEXT    NOT NULL,             -- comma list requested
    result     TEXT    NOT NULL,             -- running | ok | partial | failed | interrupted
    requests   INTEGER,
    retries    INTEGER,
    throttled  INTEGER,
    written    INTEGER,
    unchanged  INTEGER,
    removed    INTEGER,
    errors     TEXT,                         -- JSON array of strings
    report     TEXT                          -- JSON of the whole run report
);
"#;

/// Schema 2: `leases`, short claims that one process is refetching an
/// entry, so that readers in other processes wait for its value instead of
/// refetching the same key at once (`crate::read`). A lease is held while
/// `expires_at` (unix ms) is in the future; an expired row is free to take.
const V2: &str = r#"
CREATE TABLE leases (
    category   TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    holder     TEXT    NOT NULL,             -- pid and a random number of the holding handle
    expires_at INTEGER NOT NULL,             -- unix ms
    PRIMARY KEY (category, key)
) WITHOUT ROWID;
"#;

/// Schema 3: the totals are kept by the writer, not by row triggers.
///
/// A statement that fires a trigger gets a statement journal, and those
/// journals (with the allocations behind them) were about 45% of the
/// writer's CPU (BENCHMARKS.md). The write operations in `write.rs` now add
/// up the changes to `category_totals` and `project_issue_totals` and apply
/// them once per operation, in the same transaction. The totals are
/// recounted here once, so a file whose totals ever drifted starts exact.
const V3: &str = r#"
DROP TRIGGER entries_totals_insert;
DROP TRIGGER entries_totals_delete;
DROP TRIGGER entries_totals_update;
DROP TRIGGER entries_project_insert;
DROP TRIGGER entries_project_delete;
DROP TRIGGER entries_project_update;

UPDATE category_totals
SET entries = (SELECT count(*) FROM entries e WHERE e.category = category_totals.category),
    bytes   = (SELECT coalesce(sum(size), 0) FROM entries e WHERE e.category = category_totals.category);

DELETE FROM project_issue_totals;
INSERT INTO project_issue_totals (project, issues)
SELECT project, count(*) FROM entries
WHERE category = 'issue' AND project IS NOT NULL
GROUP BY project;
"#;

/// Schema 4: listings own the times of their members.
///
/// A complete listing (every project, every user, every field of a kind)
/// proves all of its entries current at once. Refreshing each unchanged
/// entry's own times made a re-warm with nothing changed re-index every
/// listed row (BENCHMARKS.md, target 5). Now a `listings` row holds the
/// times of the last complete run of one listing, and an entry written or
/// confirmed by that listing is its member: `listing` names the row, and its
/// own `fetched_at` and `expires_at` are NULL. Every other entry (issues,
/// values fetched one at a time) keeps its own times, with `listing` NULL.
/// An entry's times are therefore `coalesce(own, its listing's)`; the CHECK
/// keeps exactly one of the two.
///
/// SQLite cannot drop a NOT NULL constraint, so `entries` is rebuilt (the
/// documented procedure: new table, copy, drop, rename). `migrate` turns
/// foreign keys off around it, or dropping the old table would cascade into
/// `entry_values`. Values are not copied: `entry_values` keys on the same
/// ids. `listing` is not declared a foreign key: a statement that writes a
/// foreign key column needs a statement journal, which made each refresh of
/// an entry's times several times dearer; rows of `listings` are never
/// deleted, so a member always finds its listing. `listing_pages` lets a
/// listing's page that is the same as last time skip its per-entry
/// look-ups. (Widening the issue-census index to `category, key` made
/// censuses index-only but cost every issue insert more than it saved:
/// BENCHMARKS.md.)
const V4: &str = r#"
CREATE TABLE listings (
    id         INTEGER PRIMARY KEY,
    category   TEXT    NOT NULL CHECK (category IN ('project', 'field', 'user', 'issue')),
    name       TEXT    NOT NULL,             -- e.g. `users`, `fields`, `statuses`
    fetched_at INTEGER NOT NULL,             -- unix ms: start of its last complete run
    expires_at INTEGER NOT NULL,             -- unix ms: its members are fresh until then
    UNIQUE (category, name)
);

CREATE TABLE entries_v4 (
    id           INTEGER PRIMARY KEY,
    category     TEXT    NOT NULL CHECK (category IN ('project', 'field', 'user', 'issue')),
    key          TEXT    NOT NULL,
    hash         INTEGER NOT NULL,            -- xxh3_64 of the value, as i64
    size         INTEGER NOT NULL,            -- len(key) + len(value)
    fetched_at   INTEGER,                     -- unix ms; NULL for a listing's member
    expires_at   INTEGER,                     -- unix ms; NULL for a listing's member
    fetch_ms     INTEGER NOT NULL DEFAULT 0,  -- how long the fetch took (early refresh)
    project      TEXT,                        -- issues: project key
    updated_at   INTEGER,                     -- issues: Jira `updated`, unix ms
    last_read_at INTEGER,                     -- unix ms, flushed in batches by readers
    listing      INTEGER,                     -- listings.id whose times these are, if a member
    UNIQUE (category, key),
    CHECK ((listing IS NULL) = (fetched_at IS NOT NULL)),
    CHECK ((listing IS NULL) = (expires_at IS NOT NULL))
);
INSERT INTO entries_v4 (id, category, key, hash, size, fetched_at, expires_at, fetch_ms,
                        project, updated_at, last_read_at)
SELECT id, category, key, hash, size, fetched_at, expires_at, fetch_ms,
       project, updated_at, last_read_at
FROM entries;
DROP TABLE entries;
ALTER TABLE entries_v4 RENAME TO entries;
CREATE INDEX entries_by_expiry ON entries (category, expires_at);
CREATE INDEX entries_by_fetch ON entries (category, fetched_at);
CREATE INDEX entries_by_issue_update ON entries (project, updated_at) WHERE project IS NOT NULL;
CREATE INDEX entries_by_listing ON entries (listing) WHERE listing IS NOT NULL;

-- What each page of a listing held when it was last stored: a digest of its
-- keys and value hashes. A page that comes again with the same digest holds
-- only unchanged members, and is not looked at entry by entry. Any write that
-- takes an entry out of a listing, changes a member's value or deletes one
-- drops the listing's pages here, so a digest never vouches for a page whose
-- entries moved.
CREATE TABLE listing_pages (
    listing INTEGER NOT NULL,                -- listings.id
    page    INTEGER NOT NULL,                -- its position in the run, from 0
    digest  INTEGER NOT NULL,                -- xxh3_64 over its keys, hashes and sizes
    PRIMARY KEY (listing, page)
) WITHOUT ROWID;
"#;

/// Schema 5: reads counted per source (`library`, `serve`, `get`), so that
/// a person exploring with `cache_status --get` does not move the hit rate
/// that monitoring judges (library and `cache_serve` reads). The counts of
/// earlier schemas did not say where they came from; they become `library`.
const V5: &str = r#"
CREATE TABLE read_counts_v5 (
    category   TEXT    NOT NULL CHECK (category IN ('project', 'field', 'user', 'issue')),
    source     TEXT    NOT NULL CHECK (source IN ('library', 'serve', 'get')),
    hits       INTEGER NOT NULL DEFAULT 0,
    stale_hits INTEGER NOT NULL DEFAULT 0,
    misses     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (category, source)
) WITHOUT ROWID;
INSERT INTO read_counts_v5 (category, source)
SELECT c.category, s.source
FROM (SELECT 'project' AS category UNION ALL SELECT 'field' UNION ALL SELECT 'user'
      UNION ALL SELECT 'issue') AS c,
     (SELECT 'library' AS source UNION ALL SELECT 'serve' UNION ALL SELECT 'get') AS s;
UPDATE read_counts_v5
SET hits = r.hits, stale_hits = r.stale_hits, misses = r.misses
FROM read_counts AS r
WHERE r.category = read_counts_v5.category AND read_counts_v5.source = 'library';
DROP TABLE read_counts;
ALTER TABLE read_counts_v5 RENAME TO read_counts;
"#;

/// Sets the per-connection pragmas; call right after opening.
///
/// `new_file`: the file is empty, so `auto_vacuum` can still be chosen. It
/// must be set before anything (the switch to WAL included) writes the
/// database header, and outside a transaction.
pub(crate) fn configure(conn: &Connection, path: &Path, new_file: bool) -> Result<(), CacheError> {
    conn.busy_timeout(BUSY_TIMEOUT).at(path)?;
    if new_file {
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
            .at(path)?;
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .at(path)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(CacheError::Unwritable {
            path: path.to_path_buf(),
            detail: format!("cannot switch the journal to WAL (still `{mode}`)"),
        });
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .at(path)?;
    // Plans that do not depend on the values bound. Without this, a join
    // whose table has partial indexes (`entries`) marks its parameters as
    // plan-changing, and rusqlite's statement cache, which clears the
    // bindings of a statement it takes back, makes SQLite compile the
    // statement again at its next use: the entry look-up of every read cost
    // ~75 µs of parsing and planning instead of ~5 µs (issue 17's profile).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .at(path)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Checks that the file is a jira-cache database this binary understands and
/// applies the pending migrations, all in one transaction.
///
/// An up-to-date file takes no write lock.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), CacheError> {
    if identify(conn, path)? == SCHEMA_VERSION {
        return Ok(());
    }
    // Rebuilding a table (schema 4) must not cascade deletes into its
    // children; the switch is a no-op inside a transaction, so it is made
    // here, and `foreign_key_check` below stands in for it.
    conn.pragma_update(None, "foreign_keys", false).at(path)?;
    let migrated = apply_pending(conn, path);
    let restored = conn.pragma_update(None, "foreign_keys", true).at(path);
    migrated.and(restored)
}

fn apply_pending(conn: &mut Connection, path: &Path) -> Result<(), CacheError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .at(path)?;
    // Another process may have migrated between the check and the lock.
    let found = identify(&tx, path)?;
    for migration in &MIGRATIONS[usize::try_from(found).unwrap_or(0)..] {
        tx.execute_batch(migration).at(path)?;
    }
    let violations: i64 = tx
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
            row.get(0)
        })
        .at(path)?;
    if violations > 0 {
        return Err(CacheError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("{violations} rows break the schema's references"),
        });
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .at(path)?;
    tx.commit().at(path)
}

/// Takes an empty file to schema `version` (not the newest), as an older
/// jira-cache left it, to test the migrations after it.
#[cfg(test)]
pub(crate) fn migrate_to(conn: &mut Connection, version: usize) {
    let tx = conn.transaction().unwrap();
    for migration in &MIGRATIONS[..version] {
        tx.execute_batch(migration).unwrap();
    }
    tx.pragma_update(None, "user_version", version as i64)
        .unwrap();
    tx.commit().unwrap();
}

/// Returns the schema version of a file that is (or can become) a jira-cache
/// database; refuses foreign and newer files.
pub(crate) fn identify(conn: &Connection, path: &Path) -> Result<i64, CacheError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .at(path)?;
    let application_id: i64 = conn
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .at(path)?;
    let corrupt = |detail: String| CacheError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    if application_id != APPLICATION_ID && (application_id != 0 || version != 0) {
        return Err(corrupt(format!(
            "a SQLite database of another application (application_id {application_id}, user_version {version})"
        )));
    }
    if version == 0 {
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .at(path)?;
        if objects > 0 {
            return Err(corrupt(
                "a SQLite database without the jira-cache schema".to_string(),
            ));
        }
    }
    if version > SCHEMA_VERSION {
        return Err(CacheError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(dir: &tempfile::TempDir) -> (Connection, std::path::PathBuf) {
        let path = dir.path().join("c.sqlite3");
        let conn = Connection::open(&path).unwrap();
        configure(&conn, &path, true).unwrap();
        (conn, path)
    }

    fn schema_of(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name")
            .unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, path) = fresh(&dir);
        migrate(&mut conn, &path).unwrap();
        let once = schema_of(&conn);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        migrate(&mut conn, &path).unwrap();
        assert_eq!(schema_of(&conn), once);
        let totals: i64 = conn
            .query_row("SELECT count(*) FROM category_totals", [], |r| r.get(0))
            .unwrap();
        assert_eq!(totals, 4, "seed rows must not be inserted twice");
    }

    #[test]
    fn schema_2_files_lose_their_triggers_and_get_exact_totals() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, path) = fresh(&dir);
        migrate_to(&mut conn, 2);
        conn.execute_batch(
            "INSERT INTO entries (category, key, hash, size, fetched_at, expires_at, project)
             VALUES ('issue', 'A-1', 1, 10, 0, 0, 'A'), ('issue', 'A-2', 2, 20, 0, 0, 'A'),
                    ('issue', 'B-1', 3, 5, 0, 0, 'B'), ('field', 'summary', 4, 7, 0, 0, NULL);
             DELETE FROM entries WHERE key = 'B-1';
             -- a total that drifted (say, by a bug of an old version)
             UPDATE category_totals SET entries = 99 WHERE category = 'user';",
        )
        .unwrap();
        migrate(&mut conn, &path).unwrap();
        let triggers: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(triggers, 0);
        let totals: Vec<(String, i64, i64)> = conn
            .prepare("SELECT category, entries, bytes FROM category_totals ORDER BY category")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            totals,
            [
                ("field".to_string(), 1, 7),
                ("issue".to_string(), 2, 30),
                ("project".to_string(), 0, 0),
                ("user".to_string(), 0, 0)
            ]
        );
        let projects: Vec<(String, i64)> = conn
            .prepare("SELECT project, issues FROM project_issue_totals ORDER BY project")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(projects, [("A".to_string(), 2)]);
    }

    #[test]
    fn schema_4_read_counts_become_library_reads_in_schema_5() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, path) = fresh(&dir);
        migrate_to(&mut conn, 4);
        conn.execute_batch(
            "UPDATE read_counts SET hits = 5, stale_hits = 2, misses = 1 WHERE category = 'issue'",
        )
        .unwrap();
        migrate(&mut conn, &path).unwrap();
        let rows: Vec<(String, String, i64, i64, i64)> = conn
            .prepare(
                "SELECT category, source, hits, stale_hits, misses FROM read_counts
                 WHERE category IN ('issue', 'user') ORDER BY category, source",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let row = |c: &str, s: &str, h, st, m| (c.to_string(), s.to_string(), h, st, m);
        assert_eq!(
            rows,
            [
                row("issue", "get", 0, 0, 0),
                row("issue", "library", 5, 2, 1),
                row("issue", "serve", 0, 0, 0),
                row("user", "get", 0, 0, 0),
                row("user", "library", 0, 0, 0),
                row("user", "serve", 0, 0, 0),
            ]
        );
    }

    #[test]
    fn schema_3_files_keep_every_entry_value_and_time_in_schema_4() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, path) = fresh(&dir);
        migrate_to(&mut conn, 3);
        conn.execute_batch(
            "INSERT INTO entries (id, category, key, hash, size, fetched_at, expires_at, fetch_ms,
                                  project, updated_at, last_read_at)
             VALUES (7, 'issue', 'A-1', 1, 10, 100, 200, 3, 'A', 50, 150),
                    (9, 'user', 'u1', 2, 20, 110, 210, 4, NULL, NULL, NULL);
             INSERT INTO entry_values (id, value) VALUES (7, 'issue A-1'), (9, 'user u1');",
        )
        .unwrap();
        migrate(&mut conn, &path).unwrap();
        // Rebuilding `entries` did not cascade into the values.
        type Row = (i64, String, i64, i64, i64, Option<i64>, Option<i64>, String);
        let rows: Vec<Row> = conn
            .prepare(
                "SELECT e.id, e.key, e.fetched_at, e.expires_at, e.fetch_ms, e.updated_at,
                        e.listing, v.value
                 FROM entries e JOIN entry_values v ON v.id = e.id ORDER BY e.id",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (
                    7,
                    "A-1".into(),
                    100,
                    200,
                    3,
                    Some(50),
                    None,
                    "issue A-1".into()
                ),
                (9, "u1".into(), 110, 210, 4, None, None, "user u1".into()),
            ]
        );
        // Foreign keys are back on, and still hold: deleting an entry
        // deletes its value.
        let on: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(on, 1);
        conn.execute("DELETE FROM entries WHERE id = 9", [])
            .unwrap();
        let values: i64 = conn
            .query_row("SELECT count(*) FROM entry_values", [], |r| r.get(0))
            .unwrap();
        assert_eq!(values, 1);
        // A row with neither its own times nor a listing is refused.
        let err = conn
            .execute(
                "INSERT INTO entries (category, key, hash, size) VALUES ('user', 'x', 0, 0)",
                [],
            )
            .unwrap_err();
        assert!(err.to_string().contains("CHECK"), "{err}");
    }

    #[test]
    fn a_new_file_gets_incremental_auto_vacuum_and_wal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, path) = fresh(&dir);
        migrate(&mut conn, &path).unwrap();
        let auto_vacuum: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap();
        assert_eq!(auto_vacuum, 2, "2 = incremental");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, path) = fresh(&dir);
        migrate(&mut conn, &path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn, &path).unwrap_err();
        assert!(
            matches!(err, CacheError::NewerSchema { found, supported, .. }
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
            "{err:?}"
        );
        assert!(err.is_cache_file_error());
    }

    #[test]
    fn another_programs_sqlite_file_is_refused_not_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, path) = fresh(&dir);
        conn.execute_batch("CREATE TABLE theirs (x)").unwrap();
        let err = migrate(&mut conn, &path).unwrap_err();
        assert!(matches!(err, CacheError::Corrupt { .. }), "{err:?}");
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1);
    }
}
