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
const MIGRATIONS: &[&str] = &[V1, V2, V3];

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
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .at(path)?;
    // Another process may have migrated between the check and the lock.
    let found = identify(&tx, path)?;
    for migration in &MIGRATIONS[usize::try_from(found).unwrap_or(0)..] {
        tx.execute_batch(migration).at(path)?;
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
fn identify(conn: &Connection, path: &Path) -> Result<i64, CacheError> {
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
