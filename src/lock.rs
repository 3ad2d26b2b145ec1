//! One warm per profile at a time: an OS file lock on
//! `<cache_dir>/<profile>.lock` (`CONVENTIONS.md`, "Files").
//!
//! The lock is the kernel's (`flock`), so it is released when the holder
//! exits, however it exits: a `kill -9` leaves no stale lock behind. The
//! file's text (pid and start time of the holder) is only there to tell the
//! next run who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another warm of this profile is running ({holder}); wait for it to finish, or pass --wait to queue behind it"
    )]
    Held {
        /// Who holds it, as far as the lock file says.
        holder: String,
    },
    /// `--wait` ran out.
    #[error("another warm of this profile still holds the lock after waiting {} ({holder}); try again later", humantime::format_duration(*.waited))]
    WaitTimedOut {
        /// How long we waited.
        waited: Duration,
        /// Who holds it.
        holder: String,
    },
    /// The lock file's path is a symbolic link: never followed, since
    /// claiming the lock truncates the file.
    #[error("the lock file {} is a symbolic link, which jira-cache never follows; remove it (`rm {}`) and run again", .path.display(), .path.display())]
    Symlink {
        /// The lock file.
        path: PathBuf,
    },
    /// A directory on the way to the lock file is a symbolic link.
    #[error("cannot use {}: {} is a symbolic link (to {}), which jira-cache never follows; set `cache_dir` to the real directory", .path.display(), .link.display(), .target.display())]
    SymlinkedDir {
        /// The lock file.
        path: PathBuf,
        /// The link.
        link: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// The lock file could not be created or locked.
    #[error("cannot use the lock file {}: {source}; check that the cache directory is writable", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A held warm lock; dropping it releases the lock.
#[derive(Debug)]
pub struct WarmLock {
    file: File,
    path: PathBuf,
}

impl WarmLock {
    /// Takes the lock now, or says who holds it.
    pub fn acquire(path: &Path) -> Result<WarmLock, LockError> {
        let mut file = open(path)?;
        match file.try_lock() {
            Ok(()) => Self::claimed(file, path),
            Err(TryLockError::WouldBlock) => Err(LockError::Held {
                holder: holder(&mut file),
            }),
            Err(TryLockError::Error(source)) => Err(LockError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Takes the lock, waiting up to `wait` (forever when `None`) for the holder.
    pub async fn acquire_waiting(
        path: &Path,
        wait: Option<Duration>,
    ) -> Result<WarmLock, LockError> {
        let start = Instant::now();
        let mut said = false;
        loop {
            match Self::acquire(path) {
                Err(LockError::Held { holder }) => {
                    if !said {
                        // Said once (seen at -v): what the run is waiting for.
                        tracing::info!(%holder, "another warm holds the lock; waiting for it");
                        said = true;
                    }
                    if let Some(limit) = wait
                        && start.elapsed() >= limit
                    {
                        return Err(LockError::WaitTimedOut {
                            waited: limit,
                            holder,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }

    /// Whether a warm seems to hold the lock right now (for `cache_status`,
    /// which tells a running warm from an abandoned one).
    ///
    /// It asks without touching the lock: taking even a shared lock for an
    /// instant could make a warm that starts at that instant exit 5, and
    /// needs a writable lock file. The holder writes its pid into the file
    /// and empties it when it ends; a pid that names a live process means a
    /// warm runs (a `kill -9`'d holder leaves a dead pid: not running).
    /// The file is opened read-only and never through a symlink.
    pub fn is_held(path: &Path) -> bool {
        let Ok(mut file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        else {
            return false;
        };
        let mut text = String::new();
        if (&mut file).take(256).read_to_string(&mut text).is_err() {
            return false;
        }
        let Some(pid) = text
            .strip_prefix("pid ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse::<libc::pid_t>().ok())
            .filter(|&p| p > 0)
        else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists.
        (unsafe { libc::kill(pid, 0) }) == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }

    /// Who holds the lock, as its file says (`pid 123 since 2026-11-28
    /// 04:20:38 +0000`), when a live process does ([`WarmLock::is_held`]):
    /// what `--wait` says it waits for. Read the same way, touching nothing.
    pub fn holder_of(path: &Path) -> Option<String> {
        if !Self::is_held(path) {
            return None;
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .ok()?;
        let mut text = String::new();
        file.take(256).read_to_string(&mut text).ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_string())
    }

    fn claimed(mut file: File, path: &Path) -> Result<WarmLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let since = chrono::Local::now().format("%Y-%m-%d %H:%M:%S %z");
        writeln!(file, "pid {} since {since}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(WarmLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WarmLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn open(path: &Path) -> Result<File, LockError> {
    if let Some((link, target)) = path.parent().and_then(crate::cache::symlink_in) {
        return Err(LockError::SymlinkedDir {
            path: path.to_path_buf(),
            link,
            target,
        });
    }
    if let Some(dir) = path.parent() {
        crate::cache::ensure_private_dir(dir).map_err(|source| LockError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // A symlink planted at the lock's path must not make us truncate
        // its target.
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                LockError::Symlink {
                    path: path.to_path_buf(),
                }
            } else {
                LockError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })
}

fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let text = text.trim();
    if text.is_empty() {
        "holder unknown".to_string()
    } else {
        text.to_string()
    }
}

/// This machine's host name, for messages that name a lock's holder on
/// another machine (PostgreSQL-backed profiles); `unknown host` if the
/// system will not say.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most
    // that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown host".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    if name.is_empty() {
        "unknown host".to_string()
    } else {
        crate::scrub::for_terminal(&name).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_says_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.lock");
        let first = WarmLock::acquire(&path).unwrap();
        assert!(WarmLock::is_held(&path));
        match WarmLock::acquire(&path) {
            Err(LockError::Held { holder }) => assert!(
                holder.contains(&format!("pid {}", std::process::id())),
                "{holder}"
            ),
            other => panic!("expected Held, got {other:?}"),
        }
        let since = WarmLock::holder_of(&path).expect("a live holder");
        assert!(
            since.starts_with(&format!("pid {} since ", std::process::id())),
            "{since}"
        );
        drop(first);
        assert!(!WarmLock::is_held(&path));
        assert_eq!(WarmLock::holder_of(&path), None, "nobody holds it now");
        WarmLock::acquire(&path).unwrap();
    }

    #[test]
    fn asking_whether_a_warm_runs_never_locks_and_reads_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.lock");
        assert!(!WarmLock::is_held(&path), "no file: no warm");
        // A holder killed with -9 leaves its pid behind: a dead pid is no warm.
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        std::fs::write(&path, format!("pid {dead_pid} since then\n")).unwrap();
        assert!(!WarmLock::is_held(&path));
        // While is_held looks, a warm can always take the lock: it holds none.
        let held = WarmLock::acquire(&path).unwrap();
        assert!(WarmLock::is_held(&path));
        let file = OpenOptions::new().read(true).open(&path).unwrap();
        assert!(
            matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock)),
            "the warm's exclusive lock is still there after is_held"
        );
        drop(held);
        assert!(!WarmLock::is_held(&path), "an ended warm empties the file");
        // A symlink at the path is never read through.
        let target = dir.path().join("t.lock");
        std::fs::write(&target, format!("pid {} since now\n", std::process::id())).unwrap();
        let link = dir.path().join("l.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(!WarmLock::is_held(&link));
        assert!(matches!(
            WarmLock::acquire(&link),
            Err(LockError::Symlink { .. })
        ));
    }

    #[tokio::test]
    async fn waiting_gives_up_after_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.lock");
        let _held = WarmLock::acquire(&path).unwrap();
        let err = WarmLock::acquire_waiting(&path, Some(Duration::from_millis(300)))
            .await
            .unwrap_err();
        assert!(matches!(err, LockError::WaitTimedOut { .. }), "{err}");
    }
}
