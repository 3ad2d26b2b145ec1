//! The local SQLite cache of Jira data: one file per profile,
//! `<cache_dir>/<profile>.sqlite3` (directory 0700, file 0600).
//!
//! What it guarantees:
//! - **One writer, many readers.** All writes go through one
//!   [`CacheWriter`]: a thread owning its own connection, fed by a bounded
//!   channel. Every write is atomic and committed before its caller hears
//!   "ok" (queued writes may share one transaction), so a crash or an
//!   interrupt loses at most the writes in flight, never half of one. Readers
//!   ([`CacheReader`]) use their own connections; with WAL they never wait for
//!   the writer and never see "database is locked".
//! - **Values are stored exactly as Jira sent them**, apart from their
//!   metadata, and an unchanged value (same xxh3 hash) is never rewritten.
//! - **A complete listing refreshes its entries at once.** Entries written by
//!   a listing that proves them all current (every project, every user, each
//!   kind of field metadata) are its members and carry its times
//!   ([`Listing`]); a run that finds them unchanged writes one row, not one
//!   per entry, and a page identical to the last is not even looked at entry
//!   by entry. Readers see each entry's own times or its listing's.
//! - **Status is cheap on a million entries**: totals are kept by every write,
//!   and every other figure is an index range or an index seek.
//! - **The schema is versioned** through `PRAGMA user_version`; a file from a
//!   newer binary, a corrupt file or another program's file is refused with a
//!   [`CacheError`] that says what to do ([`CacheError::is_cache_file_error`]:
//!   exit code 7).
//!
//! Times are unix milliseconds (`i64`) everywhere; functions that depend on
//! "now" take it as a parameter.
//!
//! All SQL of the project lives in this module.

mod checkpoint;
mod error;
pub mod leases;
mod pg;
mod reader;
mod runs;
mod schema;
mod write;
mod writer;

use std::fs::{DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

pub use error::CacheError;

/// The prefix of every key `cache_serve` writes (its kept answers, beside
/// the warm's entries of the same category). A warm's reconciliation never
/// removes them: no listing of the site names them, so none can prove
/// them gone; they leave by their TTL, eviction, `--clear` or a write
/// through `cache_serve`.
pub const SERVE_PREFIX: &str = "serve:";
pub use pg::{CopyOutcome, PgTarget, PgWarmLock};

/// The `meta` key that records where a moved issue went: Jira answers
/// `old_key` with the issue under its new key, and the cache keeps the
/// issue under the key Jira returned.
pub fn issue_alias_meta_key(old_key: &str) -> String {
    format!("issue-alias:{old_key}")
}
pub use reader::{
    CacheReader, CachedEntry, CategoryStats, Freshness, ReadCounts, ReadSource, Watermark,
};
pub use runs::{RunEnd, RunId, RunRecord, RunResult, RunStart};
pub use write::{EvictionOutcome, KeyScope, Listing, NewEntry, PruneOutcome, PutOutcome};
pub use writer::{CacheWriter, Pending};

use error::SqliteResultExt;

/// The newest schema version this binary understands.
pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

/// Where a cache lives: the SQLite file of one machine (the default), or a
/// PostgreSQL database that several share (`cache_url`).
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "made once per command; boxing would only complicate every match"
)]
pub enum CacheLocation {
    /// `<cache_dir>/<profile>.sqlite3`.
    File(PathBuf),
    /// A scope of a PostgreSQL schema.
    Postgres(PgTarget),
}

impl CacheLocation {
    /// The file, or the database for messages (`postgres://user@host:port/db
    /// (schema s)`, never with its password), as a path.
    pub fn path(&self) -> PathBuf {
        match self {
            CacheLocation::File(p) => p.clone(),
            CacheLocation::Postgres(t) => t.display_path(),
        }
    }

    /// The PostgreSQL target, if the cache lives in a database.
    pub fn postgres(&self) -> Option<&PgTarget> {
        match self {
            CacheLocation::Postgres(t) => Some(t),
            CacheLocation::File(_) => None,
        }
    }
}

impl From<PathBuf> for CacheLocation {
    fn from(p: PathBuf) -> Self {
        CacheLocation::File(p)
    }
}

impl From<&PathBuf> for CacheLocation {
    fn from(p: &PathBuf) -> Self {
        CacheLocation::File(p.clone())
    }
}

impl From<&Path> for CacheLocation {
    fn from(p: &Path) -> Self {
        CacheLocation::File(p.to_path_buf())
    }
}

impl From<&str> for CacheLocation {
    fn from(p: &str) -> Self {
        CacheLocation::File(PathBuf::from(p))
    }
}

impl From<&CacheLocation> for CacheLocation {
    fn from(l: &CacheLocation) -> Self {
        l.clone()
    }
}

/// The password `~/.pgpass` holds for `target`'s host, port, database and
/// user (libpq's format: `host:port:db:user:password`, `*` matching
/// anything, `\:` and `\\` escaped), or `None`. Like libpq, a file that
/// others can read is ignored.
pub fn pgpass_lookup(path: &Path, target: &PgTarget) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let (host, port, db, user) = target.pgpass_fields();
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        field.push(n);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() != 5 {
            continue;
        }
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        if matches(&fields[0], &host)
            && matches(&fields[1], &port)
            && matches(&fields[2], &db)
            && matches(&fields[3], &user)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

/// A migrated cache. Cheap to clone; open a [`CacheWriter`] or
/// [`CacheReader`] from it.
#[derive(Debug, Clone)]
pub struct Cache {
    path: PathBuf,
    postgres: Option<PgTarget>,
    /// The connection that opened and migrated the file, for the first
    /// writer: closing it (the file's last connection: a checkpoint, two
    /// `fsync`s, the WAL removed) only for the writer to open the file
    /// again cost a fresh cache's first warm ~5 ms (issue 16).
    spare: Arc<Mutex<Option<Connection>>>,
}

impl Cache {
    /// The cache file of `profile` in `cache_dir`: `<cache_dir>/<profile>.sqlite3`.
    pub fn path_for(cache_dir: &Path, profile: &str) -> PathBuf {
        cache_dir.join(format!("{profile}.sqlite3"))
    }

    /// Opens the cache file at `path`, creating it (and its directory) if
    /// missing, and migrates it to the current schema.
    ///
    /// A missing directory is created 0700 and a missing file 0600 before
    /// SQLite touches them; existing ones keep their modes. Fails with
    /// [`CacheError::Corrupt`], [`CacheError::NewerSchema`],
    /// [`CacheError::Unwritable`], [`CacheError::DiskFull`] or
    /// [`CacheError::Io`].
    pub fn open(location: impl Into<CacheLocation>) -> Result<Cache, CacheError> {
        let path = match location.into() {
            CacheLocation::File(path) => path,
            CacheLocation::Postgres(target) => return Cache::open_postgres(target),
        };
        let path = path.as_path();
        create_private_file(path)?;
        let mut conn = open_connection(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        if conn.is_readonly("main").at(path)? {
            return Err(CacheError::Unwritable {
                path: path.to_path_buf(),
                detail: "the file is read-only".to_string(),
            });
        }
        schema::migrate(&mut conn, path)?;
        Ok(Cache {
            path: path.to_path_buf(),
            postgres: None,
            spare: Arc::new(Mutex::new(Some(conn))),
        })
    }

    /// Connects to the database, creates its schema if missing and applies
    /// the pending migrations (on a thread of its own: the blocking client
    /// must not run on an async runtime's thread).
    fn open_postgres(target: PgTarget) -> Result<Cache, CacheError> {
        let migrator = pg::Actor::start(&target, "jira-cache-migrate")?;
        let t = target.clone();
        migrator.call(move |client, _, _| pg::migrate(client, &t))?;
        Ok(Cache {
            path: target.display_path(),
            postgres: Some(target),
            spare: Arc::default(),
        })
    }

    /// Copies this SQLite cache into the PostgreSQL store `target` (its
    /// scope's rows are replaced), with every time intact, in one
    /// transaction: `cache_warm --copy-to`. The caller holds the warm lock
    /// of the file, so no warm changes it meanwhile.
    pub fn copy_to(&self, target: &PgTarget) -> Result<CopyOutcome, CacheError> {
        if self.postgres.is_some() {
            return Err(CacheError::Database {
                path: self.path.clone(),
                detail: "this cache is already in PostgreSQL; copy from the SQLite file"
                    .to_string(),
            });
        }
        drop(Cache::open_postgres(target.clone())?);
        let source = open_connection(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let source_path = self.path.clone();
        let actor = pg::Actor::start(target, "jira-cache-copy")?;
        actor.call(move |client, scope, at| pg::copy_into(client, scope, at, &source, &source_path))
    }

    /// The PostgreSQL target, if this cache lives in a database.
    pub fn postgres(&self) -> Option<&PgTarget> {
        self.postgres.as_ref()
    }

    /// Where this cache lives.
    pub fn location(&self) -> CacheLocation {
        match &self.postgres {
            Some(t) => CacheLocation::Postgres(t.clone()),
            None => CacheLocation::File(self.path.clone()),
        }
    }

    /// Deletes the cache file at `path` (with its `-wal` and `-shm`) and
    /// creates a fresh one: `cache_warm --reset`.
    pub fn reset(location: impl Into<CacheLocation>) -> Result<Cache, CacheError> {
        let path = match location.into() {
            CacheLocation::File(path) => path,
            CacheLocation::Postgres(target) => {
                // The profile's scope only: other profiles sharing the
                // database keep theirs.
                let cache = Cache::open_postgres(target.clone())?;
                let actor = pg::Actor::start(&target, "jira-cache-reset")?;
                actor.call(pg::reset_scope)?;
                return Ok(cache);
            }
        };
        let path = path.as_path();
        refuse_symlink(path)?;
        // The companions go first: removing the main file first would leave,
        // if we stopped right there, a `-wal` that SQLite replays into the
        // next file created at this path. The caller holds the warm lock.
        for file in [
            companion(path, "-wal"),
            companion(path, "-shm"),
            companion(path, "-journal"),
            path.to_path_buf(),
        ] {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(CacheError::from_io(&file, e)),
            }
        }
        Cache::open(path)
    }

    /// Opens an existing cache for reading (`cache_status`): never creates
    /// the file ([`CacheError::Missing`] if there is none).
    ///
    /// An older schema is migrated if the file is writable (a newer one is
    /// refused). The only writes a reader makes are its batched read counters
    /// ([`CacheReader::flush_read_counts`]).
    pub fn open_read_only(location: impl Into<CacheLocation>) -> Result<CacheReader, CacheError> {
        let path = match location.into() {
            CacheLocation::File(path) => path,
            CacheLocation::Postgres(target) => return CacheReader::open_postgres(&target),
        };
        let path = path.as_path();
        // A link on the way is named first: "no cache yet; run cache_warm"
        // would send the user to a warm that refuses it.
        refuse_symlinked_dir(path)?;
        if !path.exists() {
            return Err(CacheError::Missing {
                path: path.to_path_buf(),
            });
        }
        let opened =
            open_connection(path, OpenFlags::SQLITE_OPEN_READ_WRITE).and_then(|mut conn| {
                schema::migrate(&mut conn, path)?;
                Ok(conn)
            });
        let conn = match opened {
            Ok(conn) => conn,
            Err(_) if !path.exists() => {
                return Err(CacheError::Missing {
                    path: path.to_path_buf(),
                });
            }
            // A read-only file system or directory: read without writing.
            Err(CacheError::Unwritable { .. }) => open_connection_read_only(path)?,
            Err(e) => return Err(e),
        };
        Ok(CacheReader::new(conn, path.to_path_buf()))
    }

    /// The cache file (for PostgreSQL, the database as
    /// [`CacheLocation::path`] shows it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts the writer thread with its own connection.
    pub fn writer(&self) -> Result<CacheWriter, CacheError> {
        if let Some(target) = &self.postgres {
            return CacheWriter::start_postgres(target);
        }
        let spare = self.spare.lock().ok().and_then(|mut spare| spare.take());
        let conn = match spare {
            Some(conn) => conn,
            None => open_connection(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?,
        };
        // The checkpoints' own connection; without it the writer checkpoints
        // on its own thread.
        let checkpoints = open_connection(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .inspect_err(|e| tracing::debug!(error = %e, "no connection for checkpoints"))
            .ok();
        CacheWriter::start(conn, checkpoints, self.path.clone())
    }

    /// Opens a reader with its own connection.
    pub fn reader(&self) -> Result<CacheReader, CacheError> {
        if let Some(target) = &self.postgres {
            return CacheReader::open_postgres(target);
        }
        let conn = open_connection(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        Ok(CacheReader::new(conn, self.path.clone()))
    }
}

/// Creates `dir` and its missing parents with mode 0700 (`CONVENTIONS.md`,
/// "Files"); an existing directory keeps its mode. Shared with the warm lock,
/// which lives in the same directory.
pub(crate) fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The first existing part of `dir` (itself or a directory above it) that
/// is a symbolic link, with where it points: the cache is never reached
/// through one (`CONVENTIONS.md`, "Files"), and SQLite, told not to follow
/// links, would refuse the path anyway, with a message that names no cause.
/// Checked before anything is created, so that no lock or file lands in
/// the link's target.
pub fn symlink_in(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    use std::path::Component;
    // As written, up to the first part that does not exist yet (a link
    // before a `..` is found here)...
    if let Some(found) = first_symlink(dir.components()) {
        return Some(found);
    }
    // ... and with `..` taken lexically: `missing/../link` must not hide
    // `link` behind a part that does not exist yet, since creating that
    // part would let the kernel follow `link`.
    let mut lexical = PathBuf::new();
    for part in dir.components() {
        match part {
            Component::ParentDir
                if matches!(lexical.components().next_back(), Some(Component::Normal(_))) =>
            {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    first_symlink(lexical.components())
}

/// The first prefix of `parts` that is a symbolic link, with its target;
/// `None` at the first prefix that does not exist.
fn first_symlink<'a>(
    parts: impl Iterator<Item = std::path::Component<'a>>,
) -> Option<(PathBuf, PathBuf)> {
    let mut at = PathBuf::new();
    for part in parts {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&at).unwrap_or_default();
                return Some((at, target));
            }
            Ok(_) => {}
            // Nothing below a missing part exists yet.
            Err(_) => return None,
        }
    }
    None
}

/// [`symlink_in`] as the cache's error.
pub(crate) fn refuse_symlinked_dir(path: &Path) -> Result<(), CacheError> {
    match path.parent().and_then(symlink_in) {
        Some((link, target)) => Err(CacheError::SymlinkedDir {
            path: path.to_path_buf(),
            link,
            target,
        }),
        None => Ok(()),
    }
}

/// Refuses a symbolic link at the cache path: the file is never reached
/// through one (`CONVENTIONS.md`, "Files").
fn refuse_symlink(path: &Path) -> Result<(), CacheError> {
    use std::os::unix::fs::FileTypeExt as _;
    refuse_symlinked_dir(path)?;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(CacheError::Symlink {
            path: path.to_path_buf(),
        });
    }
    // SQLite would open a named pipe or a device and then fail with a
    // "disk I/O error", which sends the user to the wrong place.
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a named pipe (FIFO)"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a device"
    };
    Err(CacheError::Unwritable {
        path: path.to_path_buf(),
        detail: format!("it is {what}, not a file; remove it"),
    })
}

/// Warns about a cache directory other users can write, or that belongs to
/// someone else: they could swap the cache file under us. Returns the
/// warning (logged at debug; the binaries print it), or `None` when the
/// directory is private enough.
pub fn directory_warning(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(dir).ok()?;
    // SAFETY: getuid has no preconditions and cannot fail.
    let me = unsafe { libc::getuid() };
    let mode = meta.mode() & 0o7777;
    let warning = if meta.uid() != me {
        format!(
            "the cache directory {} belongs to user id {}, not to you; another user controls what is cached: choose your own `cache_dir`",
            dir.display(),
            meta.uid()
        )
    } else if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        format!(
            "the cache directory {} is writable by other users (mode {mode:04o}); run `chmod go-w {}`",
            dir.display(),
            dir.display()
        )
    } else {
        return None;
    };
    tracing::debug!("{warning}");
    Some(warning)
}

/// Creates the directory (0700) and the empty file (0600) if missing; a
/// symlink at the path is refused, never followed.
fn create_private_file(path: &Path) -> Result<(), CacheError> {
    refuse_symlinked_dir(path)?;
    if let Some(dir) = path.parent() {
        ensure_private_dir(dir).map_err(|e| CacheError::from_io(dir, e))?;
        directory_warning(dir);
    }
    refuse_symlink(path)?;
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(CacheError::from_io(path, e)),
    }
}

/// Opens a connection to an existing file and applies the per-connection
/// pragmas.
///
/// The file is never opened through a symlink (`SQLITE_OPEN_NOFOLLOW`), and
/// it is identified as ours (or empty) *before* any pragma that writes it:
/// a foreign SQLite file is refused untouched, never switched to WAL first.
fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, CacheError> {
    refuse_symlink(path)?;
    let new_file = std::fs::metadata(path)
        .map(|m| m.len() == 0)
        .unwrap_or(false);
    let conn = Connection::open_with_flags(
        path,
        flags | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .at(path)?;
    conn.busy_timeout(schema::BUSY_TIMEOUT).at(path)?;
    schema::identify(&conn, path)?;
    schema::configure(&conn, path, new_file)?;
    Ok(conn)
}

/// Opens the file for reading only, for a read-only file system or
/// directory: no lock file, no `-shm` to create, nothing written. SQLite
/// reads a WAL file there only as `immutable`, which is what a status
/// snapshot needs.
fn open_connection_read_only(path: &Path) -> Result<Connection, CacheError> {
    refuse_symlink(path)?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file:");
    for b in absolute.as_os_str().as_encoded_bytes() {
        match b {
            b'?' | b'#' | b'%' => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(char::from(*b)),
        }
    }
    uri.push_str("?immutable=1");
    let conn = Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .at(path)?;
    schema::identify(&conn, path)?;
    Ok(conn)
}

/// `path` with `suffix` appended: SQLite's `-wal` and `-shm` files.
fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Bytes of the file on disk, with its write-ahead log.
fn size_on_disk(path: &Path) -> Result<u64, CacheError> {
    let mut total = 0;
    for file in [path.to_path_buf(), companion(path, "-wal")] {
        match std::fs::metadata(&file) {
            Ok(m) => total += m.len(),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(CacheError::from_io(&file, e)),
        }
    }
    Ok(total)
}

/// A `u64` count or size as SQLite's `i64`, saturating.
fn to_sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A count or size read from SQLite as `u64` (negatives, which the schema
/// never produces, read as 0).
fn from_sql_int(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests;
