//! Reading the cache: entries for the library's read path, and the figures
//! `cache_status` shows.
//!
//! A reader has its own connection; under WAL it reads a consistent snapshot
//! without waiting for the writer. Reads are counted in memory (hits, stale
//! hits, misses, and which keys were read) and written in one small
//! transaction per flush, never one write per read. A flush that finds the
//! database busy is skipped and its counts kept for the next one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::error::{CacheError, SqliteResultExt};
use super::pg::{self, PgResultExt, PgTarget};
use super::runs::{self, RunRecord};
use super::schema::BUSY_TIMEOUT;
use super::{from_sql_int, size_on_disk, to_sql_int, write};
use crate::Category;

/// The meta key of [`CacheReader::last_quick_check`].
const QUICK_CHECK_META: &str = "last_quick_check_at";

/// How long a read-counter flush waits for the writer before giving up and
/// keeping its counts for later.
pub(crate) const FLUSH_BUSY_TIMEOUT: Duration = Duration::from_millis(200);

/// Reads after which [`CacheReader::get`] tries to flush the counters itself.
const FLUSH_EVERY: u64 = 1024;

/// The look-up of one entry. A listing's member carries the listing's
/// times (schema 4).
const PEEK: &str = "SELECT v.value, coalesce(e.fetched_at, l.fetched_at, 0),
        coalesce(e.expires_at, l.expires_at, 0), e.fetch_ms, e.size, e.updated_at
     FROM entries e JOIN entry_values v ON v.id = e.id
     LEFT JOIN listings l ON l.id = e.listing
     WHERE e.category = ?1 AND e.key = ?2";

/// Whether a cached value may still be used as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Freshness {
    /// Before its expiry.
    Fresh,
    /// At or after its expiry: usable, but due for a refresh.
    Stale,
}

/// A cached value with its metadata.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CachedEntry {
    /// The JSON text exactly as Jira sent it.
    pub value: String,
    /// When it was fetched, unix ms.
    pub fetched_at: i64,
    /// When it stops being fresh, unix ms.
    pub expires_at: i64,
    /// How long the fetch took, ms.
    pub fetch_ms: i64,
    /// Bytes accounted: key plus value.
    pub size: u64,
    /// Issues: Jira's `updated`, unix ms.
    pub updated_at: Option<i64>,
}

impl CachedEntry {
    /// Fresh while `now_ms < expires_at`.
    pub fn freshness(&self, now_ms: i64) -> Freshness {
        if now_ms < self.expires_at {
            Freshness::Fresh
        } else {
            Freshness::Stale
        }
    }
}

/// A project's issue watermark: every change of the project's issues
/// before it is cached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Watermark {
    /// The project key.
    pub project: String,
    /// Unix ms: when the last complete pass over the project's window
    /// started (our clock). Files from before issue 16 hold the newest
    /// issue `updated` seen, which is never later, so still safe.
    pub newest_updated_ms: i64,
    /// When the project's issues were last warmed, unix ms.
    pub warmed_at: i64,
}

/// The figures of one category, as `cache_status` shows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CategoryStats {
    /// The category.
    pub category: Category,
    /// Entries stored.
    pub entries: u64,
    /// Of which fresh (`now < expires_at`).
    pub fresh: u64,
    /// Of which expired.
    pub expired: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
    /// The oldest `fetched_at`, unix ms.
    pub oldest_fetch: Option<i64>,
    /// The newest `fetched_at`, unix ms.
    pub newest_fetch: Option<i64>,
    /// The next expiry after now, unix ms.
    pub next_expiry: Option<i64>,
    /// Reads that found a fresh entry (flushed counts plus this reader's
    /// own), from the sources that count in the hit rate (library and
    /// `cache_serve`, not `--get`).
    pub hits: u64,
    /// Reads that found an expired entry, likewise.
    pub stale_hits: u64,
    /// Reads that found nothing, likewise.
    pub misses: u64,
    /// The reads of each source, `--get` included.
    pub by_source: BTreeMap<ReadSource, ReadCounts>,
}

/// Who read an entry. Reads are counted per source, so that a person
/// exploring with `cache_status --get` does not move the hit rate that
/// monitoring judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadSource {
    /// A program reading through the library (`jira_cache::read`): the default.
    #[default]
    Library,
    /// `cache_serve`, answering its clients.
    Serve,
    /// `cache_status --get`, run by a person or a script.
    Get,
}

impl ReadSource {
    /// Every source, in the order figures list them.
    pub const ALL: [ReadSource; 3] = [ReadSource::Library, ReadSource::Serve, ReadSource::Get];

    /// The name stored and shown: `library`, `serve`, `get`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadSource::Library => "library",
            ReadSource::Serve => "serve",
            ReadSource::Get => "get",
        }
    }

    /// Whether its reads count in the hit rate `cache_status --check`
    /// judges: the programs' reads (library, `cache_serve`) do; `--get`
    /// reads, often a person exploring, do not.
    pub fn counts_in_hit_rate(self) -> bool {
        !matches!(self, ReadSource::Get)
    }
}

/// Reads of one category from one source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReadCounts {
    /// Reads that found a fresh entry.
    pub hits: u64,
    /// Reads that found an expired entry.
    pub stale_hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
}

impl ReadCounts {
    /// The sum of the sources that count in the hit rate
    /// ([`ReadSource::counts_in_hit_rate`]).
    pub(crate) fn in_hit_rate(by_source: &BTreeMap<ReadSource, ReadCounts>) -> ReadCounts {
        by_source
            .iter()
            .filter(|(s, _)| s.counts_in_hit_rate())
            .fold(ReadCounts::default(), |sum, (_, c)| ReadCounts {
                hits: sum.hits + c.hits,
                stale_hits: sum.stale_hits + c.stale_hits,
                misses: sum.misses + c.misses,
            })
    }

    /// Every read: hits, stale hits and misses.
    pub fn reads(&self) -> u64 {
        self.hits + self.stale_hits + self.misses
    }
}

/// Reads not yet written to `read_counts` and `last_read_at`.
#[derive(Debug, Default)]
struct PendingReads {
    hits: u64,
    stale_hits: u64,
    misses: u64,
    /// Each key read, with the time of its latest read.
    keys: HashMap<String, i64>,
}

/// A connection for reading. Not shared between threads; open one per
/// thread (cheap). Dropping it flushes its read counters, best effort.
#[derive(Debug)]
pub struct CacheReader {
    conn: Connection,
    /// For a PostgreSQL store: its connection (then `conn` is an empty
    /// in-memory database that nothing reads).
    pg: Option<pg::Actor>,
    /// The advisory lock key of the profile's warm lock (PostgreSQL only).
    pg_lock_key: i64,
    /// Where the connection goes back to when the reader is dropped
    /// (PostgreSQL only: `pg::park_reader`).
    pg_pool_key: String,
    path: PathBuf,
    pending: BTreeMap<(ReadSource, Category), PendingReads>,
    unflushed: u64,
    source: ReadSource,
    /// For [`Self::data_version_since`]: the WAL index header seen before
    /// the last `PRAGMA data_version`, and what that said; `None` until
    /// the file is known to be in WAL mode with its index mapped.
    wal_mark: Option<(WalIndexHeader, i64)>,
    /// Whether the file is in WAL mode (asked once).
    wal: Option<bool>,
    /// `PRAGMA data_version` statements run (for tests).
    version_reads: u64,
}

/// The first 48 bytes of a WAL index (`-shm`): SQLite's `WalIndexHdr`.
type WalIndexHeader = [u8; WAL_INDEX_HEADER];
const WAL_INDEX_HEADER: usize = 48;

impl CacheReader {
    pub(crate) fn new(conn: Connection, path: PathBuf) -> CacheReader {
        CacheReader {
            conn,
            pg: None,
            pg_lock_key: 0,
            pg_pool_key: String::new(),
            path,
            pending: BTreeMap::new(),
            unflushed: 0,
            source: ReadSource::Library,
            wal_mark: None,
            wal: None,
            version_reads: 0,
        }
    }

    /// A reader of the PostgreSQL store, on a connection of its own.
    pub(crate) fn open_postgres(target: &PgTarget) -> Result<CacheReader, CacheError> {
        let (mut actor, reused) = pg::take_reader(target, "jira-cache-reader")?;
        let mut version = actor.call(|client, _, at| pg::schema_version(client, at));
        if reused && version.is_err() {
            // An idle connection the server ended since: a new one.
            actor = pg::Actor::start(target, "jira-cache-reader")?;
            version = actor.call(|client, _, at| pg::schema_version(client, at));
        }
        let version = version?;
        if version == 0 {
            return Err(CacheError::Missing {
                path: target.display_path(),
            });
        }
        if version > pg::PG_SCHEMA_VERSION {
            return Err(CacheError::NewerSchema {
                path: target.display_path(),
                found: version,
                supported: pg::PG_SCHEMA_VERSION,
            });
        }
        let conn = Connection::open_in_memory().at(&target.display_path())?;
        let mut reader = CacheReader::new(conn, target.display_path());
        reader.pg = Some(actor);
        reader.pg_lock_key = target.warm_lock_key();
        reader.pg_pool_key = target.pool_key();
        Ok(reader)
    }

    /// For a PostgreSQL store, whether a warm of this profile holds its lock
    /// right now, on any machine (asked without taking the lock); `None`
    /// for a SQLite file, whose lock is a file beside it
    /// ([`crate::lock::WarmLock::is_held`]).
    pub fn warm_lock_held(&self) -> Option<bool> {
        let actor = self.pg.as_ref()?;
        let key = self.pg_lock_key;
        actor
            .call(move |c, _, at| pg::lock_held(c, key).at_pg(at))
            .ok()
    }

    /// The counts not yet flushed, in the PostgreSQL module's shape.
    fn pending_counts(&self) -> pg::PendingCounts {
        self.pending
            .iter()
            .map(|(k, p)| (*k, (p.hits, p.stale_hits, p.misses, p.keys.clone())))
            .collect()
    }

    /// Counts this reader's next reads as `source`'s (the default is
    /// [`ReadSource::Library`]).
    pub fn set_read_source(&mut self, source: ReadSource) {
        self.source = source;
    }

    /// Whose reads this reader counts.
    pub fn read_source(&self) -> ReadSource {
        self.source
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads an entry and counts the read (hit, stale hit or miss, by
    /// `now_ms`). Counts are flushed in batches ([`Self::flush_read_counts`]).
    pub fn get(
        &mut self,
        category: Category,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<CachedEntry>, CacheError> {
        let entry = self.peek(category, key)?;
        self.count_read(
            category,
            key,
            entry.as_ref().map(|e| e.freshness(now_ms)),
            now_ms,
        );
        Ok(entry)
    }

    /// Counts a read of `key` that found nothing (`None`) or an entry of
    /// this freshness, as [`Self::get`] counts its reads, for a caller that
    /// answered from its own copy of an entry it read before (`cache_serve`'s
    /// in-memory answers). Flushed in the same batches.
    pub fn count_read(
        &mut self,
        category: Category,
        key: &str,
        found: Option<Freshness>,
        now_ms: i64,
    ) {
        self.count_reads(category, key, found, 1, now_ms);
    }

    /// Counts `n` reads of `key` at once, the latest at `now_ms`, as `n`
    /// calls of [`Self::count_read`] would (for a caller that tallies its
    /// own reads in memory and hands them over in batches).
    pub fn count_reads(
        &mut self,
        category: Category,
        key: &str,
        found: Option<Freshness>,
        n: u64,
        now_ms: i64,
    ) {
        if n == 0 {
            return;
        }
        let reads = self.pending.entry((self.source, category)).or_default();
        match found {
            None => reads.misses += n,
            Some(freshness) => {
                match freshness {
                    Freshness::Fresh => reads.hits += n,
                    Freshness::Stale => reads.stale_hits += n,
                }
                match reads.keys.get_mut(key) {
                    Some(at) => *at = (*at).max(now_ms),
                    None => {
                        reads.keys.insert(key.to_string(), now_ms);
                    }
                }
            }
        }
        self.unflushed += n;
        if self.unflushed >= FLUSH_EVERY
            && let Err(e) = self.flush_read_counts()
        {
            tracing::warn!(error = %e, "could not record cache reads; keeping them for later");
        }
    }

    /// SQLite's `PRAGMA data_version` of this connection: it changes
    /// whenever another connection (of this process or another) commits to
    /// the file, so a caller that keeps copies of entries can tell when to
    /// drop them. `None` for a PostgreSQL store, which has no such cheap
    /// signal.
    pub fn data_version(&mut self) -> Result<Option<i64>, CacheError> {
        if self.pg.is_some() {
            return Ok(None);
        }
        self.version_reads += 1;
        self.conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
            .map(Some)
            .at(&self.path)
    }

    /// [`Self::data_version`] as it is now, without a read transaction
    /// when nothing was committed since it was last asked.
    ///
    /// `PRAGMA data_version` begins a read transaction (two `fcntl` calls
    /// for the WAL read lock, and SQLite's statement machinery). Every
    /// commit to a WAL file, by any connection of any process, rewrites
    /// the header at the start of the WAL index (`-shm`, shared memory)
    /// before the commit returns: `mxFrame` (the last valid frame) grows,
    /// or after a WAL restart the salts change, and the frame checksums
    /// change with either. So if that header, read now, is byte for byte
    /// the one read just *before* the last `PRAGMA data_version`, nothing
    /// was committed since that pragma, and its answer still holds. The
    /// header is read as SQLite's readers read it: both copies, with a
    /// fence between, and only a consistent, initialised pair is trusted;
    /// anything else (no WAL, no index mapped yet, a writer updating it)
    /// asks the pragma. SQLite documents the format in "walformat.html"
    /// (stable since 3.7.0, `WALINDEX_MAX_VERSION` 3007000).
    pub fn data_version_since(&mut self) -> Result<Option<i64>, CacheError> {
        if self.pg.is_some() {
            return Ok(None);
        }
        let mark = self.wal_index_header();
        if let (Some(mark), Some((seen, version))) = (mark, self.wal_mark)
            && mark == seen
        {
            return Ok(Some(version));
        }
        let version = self.data_version()?;
        self.wal_mark = mark.zip(version);
        Ok(version)
    }

    /// `PRAGMA data_version` statements this reader ran.
    pub fn version_reads(&self) -> u64 {
        self.version_reads
    }

    /// The WAL index header, if the file is in WAL mode, this connection
    /// has the index mapped, and both copies of the header agree.
    fn wal_index_header(&mut self) -> Option<WalIndexHeader> {
        use rusqlite::ffi;
        use std::sync::atomic::{Ordering, fence};
        if self.wal.is_none() {
            let mode: Result<String, _> = self
                .conn
                .query_row("PRAGMA journal_mode", [], |row| row.get(0));
            self.wal = Some(mode.is_ok_and(|m| m.eq_ignore_ascii_case("wal")));
        }
        if self.wal != Some(true) {
            return None;
        }
        // SAFETY: the handle is this reader's open connection, used from
        // this thread only (`&mut self`). The file pointer SQLite hands
        // out lives as long as the connection. `xShmMap` with `bExtend`
        // 0 only returns the region already mapped (or null), which stays
        // mapped while the connection is open in WAL mode; it is read,
        // never written, and only within its first 96 bytes (a region is
        // 32 KiB).
        unsafe {
            let db = self.conn.handle();
            let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
            let rc = ffi::sqlite3_file_control(
                db,
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&raw mut file).cast(),
            );
            if rc != ffi::SQLITE_OK || file.is_null() {
                return None;
            }
            let methods = (*file).pMethods;
            if methods.is_null() || (*methods).iVersion < 2 {
                return None;
            }
            let shm_map = (*methods).xShmMap?;
            let mut region: *mut std::ffi::c_void = std::ptr::null_mut();
            let rc = shm_map(file, 0, 32 * 1024, 0, &raw mut region);
            if rc != ffi::SQLITE_OK || region.is_null() {
                return None;
            }
            let base = region.cast::<u8>().cast_const();
            let mut copies = [[0u8; WAL_INDEX_HEADER]; 2];
            for (n, copy) in copies.iter_mut().enumerate() {
                if n == 1 {
                    fence(Ordering::SeqCst);
                }
                for (i, byte) in copy.iter_mut().enumerate() {
                    *byte = std::ptr::read_volatile(base.add(n * WAL_INDEX_HEADER + i));
                }
            }
            // Byte 12 is `isInit`.
            (copies[0] == copies[1] && copies[0][12] == 1).then_some(copies[0])
        }
    }

    /// Reads an entry without counting the read (for the warmer's own
    /// look-ups).
    pub fn peek(&self, category: Category, key: &str) -> Result<Option<CachedEntry>, CacheError> {
        if let Some(actor) = &self.pg {
            let key = key.to_string();
            return actor.call_prepared(move |c, prepared, scope, at| {
                pg::peek(c, prepared, scope, category, &key).at_pg(at)
            });
        }
        self.conn
            .prepare_cached(PEEK)
            .and_then(|mut stmt| {
                stmt.query_row(params![category.as_str(), key], |row| {
                    Ok(CachedEntry {
                        value: row.get(0)?,
                        fetched_at: row.get(1)?,
                        expires_at: row.get(2)?,
                        fetch_ms: row.get(3)?,
                        size: from_sql_int(row.get(4)?),
                        updated_at: row.get(5)?,
                    })
                })
                .optional()
            })
            .at(&self.path)
    }

    /// Writes the counted reads (per-category counters and each read key's
    /// `last_read_at`) in one small transaction.
    ///
    /// Returns `Ok(false)`, keeping the counts, if the database stayed busy
    /// for a moment; `Ok(true)` once written (or if there was nothing to write).
    pub fn flush_read_counts(&mut self) -> Result<bool, CacheError> {
        if self.pending.is_empty() {
            return Ok(true);
        }
        if let Some(actor) = &self.pg {
            let pending = self.pending_counts();
            actor.call(move |c, scope, at| pg::write_reads(c, scope, &pending).at_pg(at))?;
            self.pending.clear();
            self.unflushed = 0;
            return Ok(true);
        }
        self.conn.busy_timeout(FLUSH_BUSY_TIMEOUT).at(&self.path)?;
        let written = write_reads(&mut self.conn, &self.pending).at(&self.path);
        self.conn.busy_timeout(BUSY_TIMEOUT).at(&self.path)?;
        match written {
            Ok(()) => {
                self.pending.clear();
                self.unflushed = 0;
                Ok(true)
            }
            Err(e) if e.is_busy() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// How many keys of `category` there are, optionally only those
    /// matching the SQLite GLOB `pattern` (case-sensitive); counted in SQL.
    pub fn count_keys(&self, category: Category, pattern: Option<&str>) -> Result<u64, CacheError> {
        if let Some(actor) = &self.pg {
            let pattern = pattern.map(str::to_string);
            return actor.call(move |c, scope, at| {
                pg::count_keys(c, scope, category, pattern.as_deref()).at_pg(at)
            });
        }
        self.conn
            .prepare_cached(
                "SELECT COUNT(*) FROM entries WHERE category = ?1 AND (?2 IS NULL OR key GLOB ?2)",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![category.as_str(), pattern], |row| {
                    row.get::<_, i64>(0)
                })
            })
            .map(|n| n.max(0) as u64)
            .at(&self.path)
    }

    /// The keys of `category`, sorted, optionally only those matching the
    /// SQLite GLOB `pattern` (case-sensitive). Without a pattern, the
    /// answers `cache_serve` keeps ([`super::SERVE_PREFIX`]) are left out:
    /// they are not the contract's keys, and no stage may take them for a
    /// project or a user.
    pub fn keys(
        &self,
        category: Category,
        pattern: Option<&str>,
    ) -> Result<Vec<String>, CacheError> {
        let mut keys = self.all_keys(category, pattern)?;
        if pattern.is_none() {
            keys.retain(|k| !k.starts_with(super::SERVE_PREFIX));
        }
        Ok(keys)
    }

    /// The keys of the warmed issues whose Jira `id` is `id` (a write by
    /// id must drop the entry the warm keeps under the issue's key). No
    /// index leads from id to key: this reads the value of every warmed
    /// issue that holds the text `"<id>"`, so it is for rare callers.
    pub fn issue_keys_with_id(&self, id: &str) -> Result<Vec<String>, CacheError> {
        let needle = format!("\"{id}\"");
        let candidates: Vec<(String, Vec<u8>)> = match &self.pg {
            Some(actor) => {
                actor.call(move |c, scope, at| pg::issues_holding(c, scope, &needle).at_pg(at))?
            }
            None => self
                .conn
                .prepare_cached(
                    "SELECT e.key, CAST(v.value AS BLOB) FROM entries e JOIN entry_values v ON v.id = e.id
                     WHERE e.category = 'issue' AND e.project IS NOT NULL
                       AND instr(v.value, ?1) > 0",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(params![needle.into_bytes()], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect()
                })
                .at(&self.path)?,
        };
        #[derive(serde::Deserialize)]
        struct Issue {
            id: Option<String>,
        }
        Ok(candidates
            .into_iter()
            .filter(|(_, value)| {
                serde_json::from_slice::<Issue>(value)
                    .is_ok_and(|issue| issue.id.as_deref() == Some(id))
            })
            .map(|(key, _)| key)
            .collect())
    }

    fn all_keys(
        &self,
        category: Category,
        pattern: Option<&str>,
    ) -> Result<Vec<String>, CacheError> {
        if let Some(actor) = &self.pg {
            let pattern = pattern.map(str::to_string);
            return actor.call(move |c, scope, at| {
                pg::keys(c, scope, category, pattern.as_deref()).at_pg(at)
            });
        }
        self.conn
            .prepare_cached(
                "SELECT key FROM entries WHERE category = ?1 AND (?2 IS NULL OR key GLOB ?2)
                 ORDER BY key",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![category.as_str(), pattern], |row| row.get(0))?
                    .collect()
            })
            .at(&self.path)
    }

    /// How many entries of `category` lie in `scope`, and the earliest
    /// expiry among them (unix ms; a listing's member counts with its
    /// listing's times): the moment the first of them goes stale. Issue
    /// windows are not a scope this answers for (`None`).
    pub fn scope_expiry(
        &self,
        category: Category,
        scope: &write::KeyScope,
    ) -> Result<Option<(u64, Option<i64>)>, CacheError> {
        if let Some(actor) = &self.pg {
            let key_scope = scope.clone();
            return actor.call(move |c, scope, at| {
                pg::scope_expiry(c, scope, category, &key_scope).at_pg(at)
            });
        }
        let (filter, pattern) = match scope {
            write::KeyScope::All => ("1", None),
            write::KeyScope::Glob(g) => ("e.key GLOB ?2", Some(g.as_str())),
            write::KeyScope::NotGlob(g) => ("NOT (e.key GLOB ?2)", Some(g.as_str())),
            write::KeyScope::IssueWindow { .. } => return Ok(None),
        };
        let sql = format!(
            "SELECT count(*), min(coalesce(e.expires_at, l.expires_at, 0))
             FROM entries e LEFT JOIN listings l ON l.id = e.listing
             WHERE e.category = ?1 AND (?2 IS NULL OR 1) AND {filter}"
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_row(params![category.as_str(), pattern], |row| {
                    Ok((
                        from_sql_int(row.get::<_, i64>(0)?),
                        row.get::<_, Option<i64>>(1)?,
                    ))
                })
            })
            .map(Some)
            .at(&self.path)
    }

    /// A value from `meta`.
    pub fn meta(&self, key: &str) -> Result<Option<String>, CacheError> {
        if let Some(actor) = &self.pg {
            let key = key.to_string();
            return actor.call(move |c, scope, at| pg::meta(c, scope, &key).at_pg(at));
        }
        self.conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut stmt| stmt.query_row([key], |row| row.get(0)).optional())
            .at(&self.path)
    }

    /// SQLite's `PRAGMA quick_check`: every page of every b-tree read once
    /// (linear in the file's size, no index cross-check). `None` when the
    /// file is sound, else the first problems SQLite found, on one line. A
    /// page of garbage in the middle of the file is otherwise found only
    /// when some read happens to touch it.
    pub fn quick_check(&self) -> Result<Option<String>, CacheError> {
        // PostgreSQL checks its own pages (checksums, `amcheck`): nothing
        // for a client to scan.
        if self.pg.is_some() {
            return Ok(None);
        }
        let problems: Vec<String> = match self
            .conn
            .prepare("PRAGMA quick_check(5)")
            .and_then(|mut stmt| stmt.query_map([], |row| row.get::<_, String>(0))?.collect())
        {
            Ok(rows) => rows,
            // Corruption bad enough that the check itself cannot run.
            Err(e) => {
                return match CacheError::from_sqlite(&self.path, e) {
                    CacheError::Corrupt { detail, .. } => Ok(Some(detail)),
                    other => Err(other),
                };
            }
        };
        if problems.len() == 1 && problems[0] == "ok" {
            return Ok(None);
        }
        Ok(Some(
            crate::scrub::for_terminal(&problems.join("; ")).into_owned(),
        ))
    }

    /// When `cache_status --check` last ran [`Self::quick_check`] on this
    /// file (unix ms, meta `last_quick_check_at`), if ever.
    pub fn last_quick_check(&self) -> Result<Option<i64>, CacheError> {
        Ok(self
            .meta(QUICK_CHECK_META)?
            .and_then(|v| v.trim().parse::<i64>().ok()))
    }

    /// Records that [`Self::quick_check`] ran at `at_ms`, so that a
    /// scheduled check is not repeated until it is due. Best effort, like
    /// the read counters: `Ok(false)` when the file is read-only or stays
    /// busy for a moment.
    pub fn record_quick_check(&mut self, at_ms: i64) -> Result<bool, CacheError> {
        // PostgreSQL checks its own pages: there is no check to schedule.
        if self.pg.is_some() {
            return Ok(false);
        }
        self.conn.busy_timeout(FLUSH_BUSY_TIMEOUT).at(&self.path)?;
        let written =
            write::set_meta(&self.conn, QUICK_CHECK_META, &at_ms.to_string()).at(&self.path);
        self.conn.busy_timeout(BUSY_TIMEOUT).at(&self.path)?;
        match written {
            Ok(()) => Ok(true),
            Err(e) if e.is_busy() || matches!(e, CacheError::Unwritable { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every project's issue watermark, by project key.
    pub fn watermarks(&self) -> Result<Vec<Watermark>, CacheError> {
        if let Some(actor) = &self.pg {
            return actor.call(move |c, scope, at| pg::watermarks(c, scope, None).at_pg(at));
        }
        self.conn
            .prepare_cached(
                "SELECT project, newest_updated_ms, warmed_at FROM watermarks ORDER BY project",
            )
            .and_then(|mut stmt| stmt.query_map([], watermark_from_row)?.collect())
            .at(&self.path)
    }

    /// One project's issue watermark.
    pub fn watermark(&self, project: &str) -> Result<Option<Watermark>, CacheError> {
        if let Some(actor) = &self.pg {
            let project = project.to_string();
            return actor.call(move |c, scope, at| {
                Ok(pg::watermarks(c, scope, Some(&project))
                    .at_pg(at)?
                    .into_iter()
                    .next())
            });
        }
        self.conn
            .prepare_cached(
                "SELECT project, newest_updated_ms, warmed_at FROM watermarks WHERE project = ?1",
            )
            .and_then(|mut stmt| stmt.query_row([project], watermark_from_row).optional())
            .at(&self.path)
    }

    /// The cached `updated` (unix ms, `None` when the issue had none) of
    /// each of `keys` that is cached as an issue; keys not cached are left
    /// out. One index seek per key.
    pub fn issue_versions<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Result<HashMap<String, Option<i64>>, CacheError> {
        if let Some(actor) = &self.pg {
            let keys: Vec<String> = keys.into_iter().map(str::to_string).collect();
            return actor.call(move |c, scope, at| pg::issue_versions(c, scope, &keys).at_pg(at));
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT updated_at FROM entries WHERE category = 'issue' AND key = ?1")
            .at(&self.path)?;
        let mut out = HashMap::new();
        for key in keys {
            let found: Option<Option<i64>> = stmt
                .query_row([key], |row| row.get(0))
                .optional()
                .at(&self.path)?;
            if let Some(updated) = found {
                out.insert(key.to_string(), updated);
            }
        }
        Ok(out)
    }

    /// The cached issues of `project` whose `updated` is at or after
    /// `updated_since_ms`: what a census of that window must account for
    /// (the scope of [`KeyScope::IssueWindow`](super::KeyScope::IssueWindow)).
    pub fn issue_keys_in_window(
        &self,
        project: &str,
        updated_since_ms: i64,
    ) -> Result<Vec<String>, CacheError> {
        if let Some(actor) = &self.pg {
            let project = project.to_string();
            return actor.call(move |c, scope, at| {
                pg::issue_keys_in_window(c, scope, &project, updated_since_ms).at_pg(at)
            });
        }
        self.conn
            .prepare_cached(
                "SELECT key FROM entries
                 WHERE category = 'issue' AND project = ?1 AND updated_at >= ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![project, updated_since_ms], |row| row.get(0))?
                    .collect()
            })
            .at(&self.path)
    }

    /// The key an issue moved to, if a warm saw `old_key` answer under
    /// another key (see [`issue_alias_meta_key`](super::issue_alias_meta_key)).
    pub fn issue_alias(&self, old_key: &str) -> Result<Option<String>, CacheError> {
        self.meta(&super::issue_alias_meta_key(old_key))
    }

    /// How many issues are cached per project, by project key (from
    /// totals the writer keeps: no scan).
    pub fn issue_counts_by_project(&self) -> Result<Vec<(String, u64)>, CacheError> {
        if let Some(actor) = &self.pg {
            return actor.call(move |c, scope, at| pg::issue_counts_by_project(c, scope).at_pg(at));
        }
        self.conn
            .prepare_cached(
                "SELECT project, issues FROM project_issue_totals
                 WHERE issues > 0 ORDER BY project",
            )
            .and_then(|mut stmt| {
                stmt.query_map([], |row| Ok((row.get(0)?, from_sql_int(row.get(1)?))))?
                    .collect()
            })
            .at(&self.path)
    }

    /// The figures of every category, in [`Category::ALL`] order, from one
    /// snapshot. Totals come from counters the writer keeps; everything else is
    /// an index seek or an index range count, so this stays fast on a
    /// million entries.
    pub fn category_stats(&self, now_ms: i64) -> Result<Vec<CategoryStats>, CacheError> {
        if let Some(actor) = &self.pg {
            let pending = self.pending_counts();
            return actor.call(move |c, scope, at| {
                pg::category_stats(c, scope, now_ms, &pending).at_pg(at)
            });
        }
        let path = &self.path;
        let tx = self.conn.unchecked_transaction().at(path)?;
        let mut stats = Vec::with_capacity(Category::ALL.len());
        {
            let mut totals = tx
                .prepare_cached("SELECT entries, bytes FROM category_totals WHERE category = ?1")
                .at(path)?;
            let mut reads = tx
                .prepare_cached(
                    "SELECT source, hits, stale_hits, misses FROM read_counts WHERE category = ?1",
                )
                .at(path)?;
            // Separate sub-queries: SQLite answers a lone min() or max() from
            // the index, but not both in one SELECT. These cover the entries
            // with times of their own; a listing's members (whose own times
            // are NULL) are added from `listings` below.
            let mut figures = tx
                .prepare_cached(
                    "SELECT
                       (SELECT count(*) FROM entries WHERE category = ?1 AND expires_at <= ?2),
                       (SELECT min(fetched_at) FROM entries WHERE category = ?1),
                       (SELECT max(fetched_at) FROM entries WHERE category = ?1),
                       (SELECT min(expires_at) FROM entries WHERE category = ?1 AND expires_at > ?2)",
                )
                .at(path)?;
            let mut listings = tx
                .prepare_cached(
                    "SELECT l.fetched_at, l.expires_at,
                            (SELECT count(*) FROM entries e WHERE e.listing = l.id)
                     FROM listings l WHERE l.category = ?1",
                )
                .at(path)?;
            for category in Category::ALL {
                let name = category.as_str();
                let (entries, bytes) = totals
                    .query_row([name], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                    .optional()
                    .at(path)?
                    .unwrap_or((0, 0));
                let mut by_source: BTreeMap<ReadSource, ReadCounts> = ReadSource::ALL
                    .iter()
                    .map(|&s| (s, ReadCounts::default()))
                    .collect();
                let mut rows = reads.query([name]).at(path)?;
                while let Some(row) = rows.next().at(path)? {
                    let source: String = row.get(0).at(path)?;
                    let Some(source) = ReadSource::ALL.into_iter().find(|s| s.as_str() == source)
                    else {
                        continue;
                    };
                    let counts = by_source.entry(source).or_default();
                    counts.hits += from_sql_int(row.get(1).at(path)?);
                    counts.stale_hits += from_sql_int(row.get(2).at(path)?);
                    counts.misses += from_sql_int(row.get(3).at(path)?);
                }
                drop(rows);
                for ((source, pending_category), p) in &self.pending {
                    if *pending_category != category {
                        continue;
                    }
                    let counts = by_source.entry(*source).or_default();
                    counts.hits += p.hits;
                    counts.stale_hits += p.stale_hits;
                    counts.misses += p.misses;
                }
                let counted = ReadCounts::in_hit_rate(&by_source);
                let (mut expired, mut oldest_fetch, mut newest_fetch, mut next_expiry): (
                    u64,
                    Option<i64>,
                    Option<i64>,
                    Option<i64>,
                ) = figures
                    .query_row(params![name, now_ms], |r| {
                        Ok((from_sql_int(r.get(0)?), r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .at(path)?;
                let mut rows = listings.query([name]).at(path)?;
                while let Some(row) = rows.next().at(path)? {
                    let fetched_at: i64 = row.get(0).at(path)?;
                    let expires_at: i64 = row.get(1).at(path)?;
                    let members = from_sql_int(row.get(2).at(path)?);
                    if members == 0 {
                        continue;
                    }
                    oldest_fetch = Some(oldest_fetch.map_or(fetched_at, |t| t.min(fetched_at)));
                    newest_fetch = Some(newest_fetch.map_or(fetched_at, |t| t.max(fetched_at)));
                    if expires_at <= now_ms {
                        expired += members;
                    } else {
                        next_expiry = Some(next_expiry.map_or(expires_at, |t| t.min(expires_at)));
                    }
                }
                let entries = from_sql_int(entries);
                stats.push(CategoryStats {
                    category,
                    entries,
                    fresh: entries.saturating_sub(expired),
                    expired,
                    bytes: from_sql_int(bytes),
                    oldest_fetch,
                    newest_fetch,
                    next_expiry,
                    hits: counted.hits,
                    stale_hits: counted.stale_hits,
                    misses: counted.misses,
                    by_source,
                });
            }
        }
        tx.commit().at(path)?;
        Ok(stats)
    }

    /// The newest `limit` warm runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, CacheError> {
        if let Some(actor) = &self.pg {
            return actor.call(move |c, scope, at| pg::runs(c, scope, limit).at_pg(at));
        }
        runs::runs(&self.conn, limit).at(&self.path)
    }

    /// When the newest run that ended with `result` ended, unix ms; `None`
    /// if no run ever did. `cache_status --check` asks this for
    /// [`RunResult::Ok`](super::RunResult::Ok), however many other runs
    /// came since.
    pub fn last_ended_at(&self, result: super::RunResult) -> Result<Option<i64>, CacheError> {
        if let Some(actor) = &self.pg {
            return actor.call(move |c, scope, at| pg::last_ended_at(c, scope, result).at_pg(at));
        }
        runs::last_ended_at(&self.conn, result).at(&self.path)
    }

    /// Total bytes of keys and values stored (the figure `max_size` caps).
    pub fn total_bytes(&self) -> Result<u64, CacheError> {
        if let Some(actor) = &self.pg {
            return actor.call(move |c, scope, at| pg::total_bytes(c, scope).at_pg(at));
        }
        write::total_bytes(&self.conn).at(&self.path)
    }

    /// Bytes the cache file and its write-ahead log take on disk.
    pub fn file_size(&self) -> Result<u64, CacheError> {
        if let Some(actor) = &self.pg {
            return actor.call(move |c, scope, at| pg::stored_bytes(c, scope).at_pg(at));
        }
        size_on_disk(&self.path)
    }
}

impl Drop for CacheReader {
    fn drop(&mut self) {
        match self.flush_read_counts() {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!("cache busy; dropping this reader's unflushed read counts")
            }
            Err(e) => tracing::debug!(error = %e, "could not record cache reads"),
        }
        if let Some(actor) = self.pg.take() {
            pg::park_reader(std::mem::take(&mut self.pg_pool_key), actor);
        }
    }
}

fn watermark_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Watermark> {
    Ok(Watermark {
        project: row.get(0)?,
        newest_updated_ms: row.get(1)?,
        warmed_at: row.get(2)?,
    })
}

/// Adds the pending reads to `read_counts` and sets `last_read_at`: one
/// statement per category and figure, not per read.
fn write_reads(
    conn: &mut Connection,
    pending: &BTreeMap<(ReadSource, Category), PendingReads>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut counts = tx.prepare_cached(
            "UPDATE read_counts
             SET hits = hits + ?3, stale_hits = stale_hits + ?4, misses = misses + ?5
             WHERE category = ?1 AND source = ?2",
        )?;
        // `?2` is a JSON object {key: read_at}: one statement for all the keys.
        let mut touched = tx.prepare_cached(
            "UPDATE entries SET last_read_at = max(coalesce(entries.last_read_at, 0), read.value)
             FROM json_each(?2) AS read
             WHERE entries.category = ?1 AND entries.key = read.key",
        )?;
        for ((source, category), reads) in pending {
            counts.execute(params![
                category.as_str(),
                source.as_str(),
                to_sql_int(reads.hits),
                to_sql_int(reads.stale_hits),
                to_sql_int(reads.misses)
            ])?;
            if !reads.keys.is_empty() {
                let keys = serde_json::to_string(&reads.keys).expect("strings serialize");
                touched.execute(params![category.as_str(), keys])?;
            }
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Cache, NewEntry};
    use rusqlite::StatementStatus;

    /// An issue of project `P` that never expires.
    fn entry(key: &str) -> NewEntry {
        NewEntry {
            category: Category::Issue,
            key: key.to_string(),
            value: format!(r#"{{"key":"{key}"}}"#),
            fetched_at: 1,
            expires_at: i64::MAX,
            fetch_ms: 1,
            project: Some("P".into()),
            updated_at: Some(1),
        }
    }

    /// The commit signal skips the read transaction only while nothing is
    /// committed: any commit, by another connection, and one after a
    /// checkpoint that restarts the WAL, is seen at the next call.
    #[tokio::test]
    async fn the_data_version_is_read_again_after_any_commit_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite3");
        let cache = Cache::open(&path).unwrap();
        let writer = cache.writer().unwrap();
        writer.put_page(vec![entry("P-1")]).await.unwrap();
        let mut reader = Cache::open_read_only(&path).unwrap();
        let mut version = reader.data_version_since().unwrap().unwrap();
        let mut versions = vec![version];
        for round in 0..3 {
            // Settled: no transaction while nothing is committed.
            assert_eq!(reader.data_version_since().unwrap(), Some(version));
            let reads = reader.version_reads();
            for _ in 0..3 {
                assert_eq!(reader.data_version_since().unwrap(), Some(version));
            }
            assert_eq!(reader.version_reads(), reads, "round {round}");
            if round == 1 {
                // The next commit starts the WAL again (new salts).
                let other = rusqlite::Connection::open(&path).unwrap();
                other
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .unwrap();
            }
            writer.put_page(vec![entry("P-1")]).await.unwrap();
            version = reader.data_version_since().unwrap().unwrap();
            assert!(!versions.contains(&version), "round {round}: {version}");
            assert_eq!(
                Some(version),
                reader.data_version().unwrap(),
                "the pragma agrees"
            );
            versions.push(version);
        }
        writer.shutdown().await.unwrap();
    }

    /// The look-up every read makes is compiled once, not once per read:
    /// SQLite recompiles a cached statement whose plan depends on its
    /// bound values, and `entries` (partial indexes) made the join's do.
    #[tokio::test]
    async fn the_entry_look_up_is_not_compiled_again_at_each_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("c.sqlite3")).unwrap();
        let writer = cache.writer().unwrap();
        writer
            .put_page(vec![entry("P-1"), entry("P-2")])
            .await
            .unwrap();
        let mut reader = cache.reader().unwrap();
        for key in ["P-1", "P-2", "P-1", "P-3", "P-2"] {
            reader.get(Category::Issue, key, 2).unwrap();
        }
        let stmt = reader.conn.prepare_cached(PEEK).unwrap();
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
    }
}
