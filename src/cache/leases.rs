//! Leases: short claims, shared by every process using the cache file, that
//! one of them is refetching an entry (`crate::read` uses them so that two
//! processes do not refetch the same key at once).
//!
//! A lease is a row of `leases` (schema 2) held by `holder` until
//! `expires_at`. Taking one is a single `INSERT … ON CONFLICT DO UPDATE …
//! WHERE` statement, atomic in SQLite, so of two processes racing for a key
//! exactly one wins. A holder that dies leaves its row behind; it is free to
//! take again once it expires, so a lease's time to live bounds how long a
//! crash can hold others up.
//!
//! Leases live on their own connection, not on the [`CacheWriter`]'s
//! thread: a lease is one small statement that must not queue behind a
//! warm's pages.
//!
//! [`CacheWriter`]: super::CacheWriter

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::error::{CacheError, SqliteResultExt};
use super::pg::{self, PgResultExt};
use super::{Cache, open_connection};
use crate::Category;

/// How long taking or releasing a lease waits for the database's write
/// lock: a lease that cannot be had at once is as good as one held by
/// someone else.
const LEASE_BUSY_TIMEOUT: Duration = Duration::from_millis(1000);

/// The lease table of one cache file, on its own connection. Not shared
/// between threads (put it behind a mutex).
#[derive(Debug)]
pub struct Leases {
    conn: Connection,
    /// For a PostgreSQL store: its connection (then `conn` is an empty
    /// in-memory database that nothing reads).
    pg: Option<pg::Actor>,
    path: PathBuf,
}

impl Cache {
    /// Opens the lease table on a connection of its own.
    pub fn leases(&self) -> Result<Leases, CacheError> {
        if let Some(target) = self.postgres() {
            let actor = pg::Actor::start(target, "jira-cache-leases")?;
            return Ok(Leases {
                conn: Connection::open_in_memory().at(&self.path)?,
                pg: Some(actor),
                path: self.path.clone(),
            });
        }
        let conn = open_connection(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.busy_timeout(LEASE_BUSY_TIMEOUT).at(&self.path)?;
        Ok(Leases {
            conn,
            pg: None,
            path: self.path.clone(),
        })
    }
}

impl Leases {
    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the lease on (`category`, `key`) for `holder` until
    /// `now_ms + ttl_ms`, if it is free (no row, or an expired one) or
    /// already `holder`'s (which extends it). Returns whether `holder` now
    /// holds it.
    ///
    /// A database that stays locked past a short wait counts as "not
    /// taken" (`Ok(false)`), not as an error.
    pub fn try_acquire(
        &mut self,
        category: Category,
        key: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, CacheError> {
        if let Some(actor) = &self.pg {
            let (key, holder) = (key.to_string(), holder.to_string());
            return actor.call(move |c, scope, at| {
                pg::lease_try_acquire(c, scope, category, &key, &holder, now_ms, ttl_ms).at_pg(at)
            });
        }
        let taken = self
            .conn
            .prepare_cached(
                "INSERT INTO leases (category, key, holder, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (category, key) DO UPDATE
                 SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE leases.expires_at <= ?5 OR leases.holder = excluded.holder",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    category.as_str(),
                    key,
                    holder,
                    now_ms.saturating_add(ttl_ms),
                    now_ms
                ])
            })
            .at(&self.path);
        match taken {
            Ok(changed) => Ok(changed == 1),
            Err(e) if e.is_busy() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up, if `holder` still holds it (an expired lease
    /// taken over by another holder is left alone).
    pub fn release(
        &mut self,
        category: Category,
        key: &str,
        holder: &str,
    ) -> Result<(), CacheError> {
        if let Some(actor) = &self.pg {
            let (key, holder) = (key.to_string(), holder.to_string());
            return actor.call(move |c, scope, at| {
                pg::lease_release(c, scope, category, &key, &holder).at_pg(at)
            });
        }
        let released = self
            .conn
            .prepare_cached("DELETE FROM leases WHERE category = ?1 AND key = ?2 AND holder = ?3")
            .and_then(|mut stmt| stmt.execute(params![category.as_str(), key, holder]))
            .at(&self.path);
        match released {
            Ok(_) => Ok(()),
            // The lease expires by itself; nobody waits longer than its TTL.
            Err(e) if e.is_busy() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Who holds the lease on (`category`, `key`) at `now_ms`, if anyone.
    pub fn holder(
        &self,
        category: Category,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<String>, CacheError> {
        if let Some(actor) = &self.pg {
            let key = key.to_string();
            return actor.call(move |c, scope, at| {
                pg::lease_holder(c, scope, category, &key, now_ms).at_pg(at)
            });
        }
        self.conn
            .prepare_cached(
                "SELECT holder FROM leases WHERE category = ?1 AND key = ?2 AND expires_at > ?3",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![category.as_str(), key, now_ms], |row| row.get(0))
                    .optional()
            })
            .at(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &tempfile::TempDir) -> Cache {
        Cache::open(dir.path().join("c.sqlite3")).unwrap()
    }

    #[test]
    fn of_two_holders_only_the_first_gets_a_live_lease() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(&dir);
        let mut a = cache.leases().unwrap();
        let mut b = cache.leases().unwrap();
        assert!(
            a.try_acquire(Category::Project, "PROJ", "a", 1_000, 500)
                .unwrap()
        );
        assert!(
            !b.try_acquire(Category::Project, "PROJ", "b", 1_100, 500)
                .unwrap()
        );
        assert_eq!(
            b.holder(Category::Project, "PROJ", 1_100)
                .unwrap()
                .as_deref(),
            Some("a")
        );
        // Another key, or the same key in another category, is another lease.
        assert!(
            b.try_acquire(Category::Project, "OPS", "b", 1_100, 500)
                .unwrap()
        );
        assert!(
            b.try_acquire(Category::Issue, "PROJ", "b", 1_100, 500)
                .unwrap()
        );
    }

    #[test]
    fn the_holder_extends_its_lease_and_an_expired_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(&dir);
        let mut a = cache.leases().unwrap();
        let mut b = cache.leases().unwrap();
        assert!(
            a.try_acquire(Category::User, "u1", "a", 1_000, 500)
                .unwrap()
        );
        assert!(
            a.try_acquire(Category::User, "u1", "a", 1_400, 500)
                .unwrap()
        );
        assert!(
            !b.try_acquire(Category::User, "u1", "b", 1_800, 500)
                .unwrap()
        );
        assert!(
            b.try_acquire(Category::User, "u1", "b", 1_900, 500)
                .unwrap()
        );
        assert_eq!(
            b.holder(Category::User, "u1", 1_900).unwrap().as_deref(),
            Some("b")
        );
    }

    #[test]
    fn release_frees_only_the_holders_own_lease() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(&dir);
        let mut a = cache.leases().unwrap();
        let mut b = cache.leases().unwrap();
        assert!(
            a.try_acquire(Category::Field, "list:fields", "a", 0, 500)
                .unwrap()
        );
        b.release(Category::Field, "list:fields", "b").unwrap();
        assert!(
            !b.try_acquire(Category::Field, "list:fields", "b", 1, 500)
                .unwrap()
        );
        a.release(Category::Field, "list:fields", "a").unwrap();
        assert_eq!(a.holder(Category::Field, "list:fields", 2).unwrap(), None);
        assert!(
            b.try_acquire(Category::Field, "list:fields", "b", 2, 500)
                .unwrap()
        );
    }

    #[test]
    fn a_schema_1_file_gets_the_lease_table_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite3");
        {
            let mut conn = Connection::open(&path).unwrap();
            crate::cache::schema::configure(&conn, &path, true).unwrap();
            crate::cache::schema::migrate_to(&mut conn, 1);
        }
        let cache = Cache::open(&path).unwrap();
        let mut leases = cache.leases().unwrap();
        assert!(
            leases
                .try_acquire(Category::Issue, "P-1", "a", 0, 10)
                .unwrap()
        );
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, super::super::SCHEMA_VERSION);
    }
}
