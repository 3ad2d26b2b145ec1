//! The cache's error type: one variant per thing a user can act on, each
//! message one line that names the cause and the next step.
//!
//! Every variant but [`CacheError::Missing`] is a "cache file error" in the
//! sense of `CONVENTIONS.md` (exit code 7); binaries ask
//! [`CacheError::is_cache_file_error`] instead of matching variants.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

/// An error opening, reading or writing the cache file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// There is no cache file yet (only from [`Cache::open_read_only`](super::Cache::open_read_only)).
    #[error("{}: no cache yet; run `cache_warm` to create it", path.display())]
    Missing {
        /// The cache file looked for.
        path: PathBuf,
    },

    /// The file is not a jira-cache database: corrupt, or some other file.
    #[error(
        "{}: not a jira-cache database (corrupt or another file: {detail}); run `cache_warm --reset` to recreate it, or move it away",
        path.display()
    )]
    Corrupt {
        /// The cache file.
        path: PathBuf,
        /// What SQLite (or the identity check) said.
        detail: String,
    },

    /// The file was written by a newer jira-cache with a schema this binary
    /// does not know.
    #[error(
        "{}: cache schema version {found} is newer than this jira-cache supports ({supported}); upgrade jira-cache, or run `cache_warm --reset` to recreate the cache",
        path.display()
    )]
    NewerSchema {
        /// The cache file.
        path: PathBuf,
        /// The file's `user_version`.
        found: i64,
        /// The newest schema version this binary knows.
        supported: i64,
    },

    /// The cache path is a symbolic link, which is never followed.
    #[error(
        "{}: the cache file is a symbolic link, which jira-cache never follows; remove it, or set `cache_dir` to the real directory",
        path.display()
    )]
    Symlink {
        /// The cache path.
        path: PathBuf,
    },

    /// A directory on the way to the cache file is a symbolic link.
    #[error(
        "{}: {} is a symbolic link (to {}), which jira-cache never follows; set `cache_dir` to the real directory",
        path.display(),
        link.display(),
        target.display()
    )]
    SymlinkedDir {
        /// The cache path.
        path: PathBuf,
        /// The link.
        link: PathBuf,
        /// Where it points.
        target: PathBuf,
    },

    /// The file or its directory cannot be written.
    #[error(
        "{}: cannot write the cache ({detail}); check the permissions of the file (0600) and its directory (0700), or choose another `cache_dir`",
        path.display()
    )]
    Unwritable {
        /// The cache file or directory.
        path: PathBuf,
        /// What the OS or SQLite said.
        detail: String,
    },

    /// The disk (or quota) is full.
    #[error(
        "{}: disk full while writing the cache; free some space or lower `max_size`, then run `cache_warm` again",
        path.display()
    )]
    DiskFull {
        /// The cache file.
        path: PathBuf,
    },

    /// The storage refused a write or read (an I/O error, a file size
    /// limit, a quota); what was committed before stays.
    #[error(
        "{}: the disk refused to write the cache ({detail}); check its free space, quota and health (`df`, `dmesg`), then run `cache_warm` again",
        path.display()
    )]
    Storage {
        /// The cache file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },

    /// Another process kept the database locked longer than the busy timeout.
    #[error(
        "{}: the cache stayed locked by another process for more than 5 s; retry once it has finished",
        path.display()
    )]
    Busy {
        /// The cache file.
        path: PathBuf,
    },

    /// Any other I/O error on the cache file or its directory.
    #[error("{}: {source}; check the path and its permissions", path.display())]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// Any other SQLite error.
    #[error(
        "{}: SQLite error: {source}; if it persists, run `cache_warm --reset` to recreate the cache",
        path.display()
    )]
    Sqlite {
        /// The cache file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },

    /// The writer thread is gone (it panicked, or the writer was shut down).
    /// The PostgreSQL server refused us: wrong password, no such
    /// database or user, no privilege (a configuration error, exit 3).
    #[error("{}: the database refused the connection ({detail}); {next}", path.display())]
    DatabaseRefused {
        /// Where the cache is (`postgres://…`, never with the password).
        path: PathBuf,
        /// What the server said.
        detail: String,
        /// The next step.
        next: &'static str,
    },

    /// The PostgreSQL server could not be reached, or went away mid-way.
    #[error(
        "{}: cannot reach the database ({detail}); check that the server runs and `cache_url` (host, port), then run the command again",
        path.display()
    )]
    DatabaseUnreachable {
        /// Where the cache is.
        path: PathBuf,
        /// What failed.
        detail: String,
    },

    /// Any other PostgreSQL error.
    #[error(
        "{}: database error: {detail}; if it persists, run `cache_warm --reset` to recreate this profile's cache",
        path.display()
    )]
    Database {
        /// Where the cache is.
        path: PathBuf,
        /// What the server said.
        detail: String,
    },

    #[error(
        "{}: the cache writer has stopped (shut down, or it crashed); this is a bug if you did not stop it, please report it",
        path.display()
    )]
    WriterStopped {
        /// The cache file.
        path: PathBuf,
    },
}

impl CacheError {
    /// Whether this is a "cache file error" (exit code 7 of both binaries):
    /// everything but [`CacheError::Missing`], which `cache_status` reports as
    /// "no cache yet" instead.
    pub fn is_cache_file_error(&self) -> bool {
        !matches!(
            self,
            CacheError::Missing { .. } | CacheError::DatabaseRefused { .. }
        )
    }

    /// Whether the error is one of configuration or credentials (exit 3):
    /// the database refused the profile's user, password or database name.
    pub fn is_configuration_error(&self) -> bool {
        matches!(self, CacheError::DatabaseRefused { .. })
    }

    /// The file or directory the error is about.
    pub fn path(&self) -> &Path {
        match self {
            CacheError::Missing { path }
            | CacheError::Corrupt { path, .. }
            | CacheError::NewerSchema { path, .. }
            | CacheError::Unwritable { path, .. }
            | CacheError::DiskFull { path }
            | CacheError::Symlink { path }
            | CacheError::SymlinkedDir { path, .. }
            | CacheError::Storage { path, .. }
            | CacheError::Busy { path }
            | CacheError::Io { path, .. }
            | CacheError::Sqlite { path, .. }
            | CacheError::WriterStopped { path }
            | CacheError::DatabaseRefused { path, .. }
            | CacheError::DatabaseUnreachable { path, .. }
            | CacheError::Database { path, .. } => path,
        }
    }

    /// Classifies a SQLite error on the cache file at `path`.
    pub(crate) fn from_sqlite(path: &Path, source: rusqlite::Error) -> CacheError {
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => CacheError::Corrupt {
                path,
                detail: source.to_string(),
            },
            Some(ErrorCode::DiskFull) => CacheError::DiskFull { path },
            // EIO, EFBIG (a file size limit), a quota: the storage refused
            // the write; the file itself is not to blame.
            Some(ErrorCode::SystemIoFailure) => CacheError::Storage {
                path,
                detail: source.to_string(),
            },
            Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
                CacheError::Unwritable {
                    path,
                    detail: source.to_string(),
                }
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => CacheError::Busy { path },
            _ => CacheError::Sqlite { path, source },
        }
    }

    /// Classifies an I/O error on `path` (the file, its directory, or a
    /// `-wal`/`-shm` companion).
    pub(crate) fn from_io(path: &Path, source: std::io::Error) -> CacheError {
        let path = path.to_path_buf();
        match source.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                CacheError::Unwritable {
                    path,
                    detail: source.to_string(),
                }
            }
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                CacheError::DiskFull { path }
            }
            _ => CacheError::Io { path, source },
        }
    }

    /// Whether SQLite gave up waiting for a lock.
    pub(crate) fn is_busy(&self) -> bool {
        matches!(self, CacheError::Busy { .. })
    }
}

/// Extension to turn `rusqlite` results into [`CacheError`]s naming the file.
pub(crate) trait SqliteResultExt<T> {
    /// Maps the error with [`CacheError::from_sqlite`].
    fn at(self, path: &Path) -> Result<T, CacheError>;
}

impl<T> SqliteResultExt<T> for Result<T, rusqlite::Error> {
    fn at(self, path: &Path) -> Result<T, CacheError> {
        self.map_err(|e| CacheError::from_sqlite(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_is_one_line_naming_a_next_step() {
        let p = PathBuf::from("/tmp/x.sqlite3");
        let errors = [
            CacheError::Missing { path: p.clone() },
            CacheError::Corrupt {
                path: p.clone(),
                detail: "file is not a database".into(),
            },
            CacheError::NewerSchema {
                path: p.clone(),
                found: 9,
                supported: 1,
            },
            CacheError::Unwritable {
                path: p.clone(),
                detail: "attempt to write a readonly database".into(),
            },
            CacheError::DiskFull { path: p.clone() },
            CacheError::Busy { path: p.clone() },
            CacheError::WriterStopped { path: p.clone() },
        ];
        for e in errors {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.starts_with("/tmp/x.sqlite3: "), "{msg}");
            assert!(msg.contains("; "), "no next step in: {msg}");
        }
    }

    #[test]
    fn only_a_missing_cache_is_not_a_cache_file_error() {
        let p = PathBuf::from("x");
        assert!(!CacheError::Missing { path: p.clone() }.is_cache_file_error());
        assert!(CacheError::DiskFull { path: p }.is_cache_file_error());
    }
}
