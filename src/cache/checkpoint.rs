//! The SQLite writer's checkpoints, on a thread and connection of their own.
//!
//! A checkpoint copies the WAL's pages back into the file and `fsync`s both,
//! 30-60 ms each on the benchmark machine's disk during a cold warm. Run on
//! the writer's thread (SQLite's `wal_autocheckpoint`, or the writer's own
//! "idle" checkpoints before this), every write queued behind one waited
//! for it, and a checkpoint that started just before a stage's last writes
//! delayed the end of the run by as much (BENCHMARKS.md, issue 16). A
//! checkpoint needs no writer's lock in WAL mode, so another connection can
//! run it while the writer goes on committing.
//!
//! The writer's WAL hook, which SQLite calls after each commit with the
//! WAL's length, wakes this thread once [`CHECKPOINT_PAGES`] pages have
//! been written since its last copy; it then runs a `PASSIVE` checkpoint,
//! which never waits for readers or the writer: what it cannot copy now,
//! a later one does (after [`CHECKPOINT_PAGES`] more pages, when it could
//! copy nothing: a reader's snapshot, another process's checkpoint, a
//! full disk).
//!
//! SQLite starts the WAL over only when a write begins while every page of
//! it has been copied, which a busy writer never sees while another thread
//! copies: the WAL then grew to 44 MB in a cold warm, and this file system
//! (mounted with `discard`) took 40-70 ms to truncate it at the end. So
//! once this thread has copied a WAL [`RESTART_PAGES`] long, it leaves the
//! rest to the writer, which copies it after its next batch
//! ([`Checkpointer::after_batch`]: the pages of the commits made during the
//! thread's copy), and the write after that starts the WAL over.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;

/// WAL pages (of 4 KiB) after which the thread copies: a quarter of
/// SQLite's default for `wal_autocheckpoint`, so that what is left for the
/// writer's last checkpoint (at most this plus what came during the
/// thread's last copy) is small.
const CHECKPOINT_PAGES: i32 = 256;

/// The WAL's length from which the WAL is started over: once the thread
/// has copied this far, the writer copies the rest and its next write
/// starts at the WAL's beginning.
const RESTART_PAGES: i32 = 4 * CHECKPOINT_PAGES;

#[derive(Default)]
struct State {
    /// The WAL's length at the last commit.
    pages: i32,
    /// How far into the WAL the thread's last checkpoint copied (0 once the
    /// WAL starts over).
    copied: i32,
    /// How many times the WAL started over.
    restarts: u64,
    /// The thread is copying.
    copying: bool,
    /// The thread copied a WAL [`RESTART_PAGES`] long: the writer is to copy
    /// the rest, and the thread waits for the WAL to start over (unless it
    /// grows by [`RESTART_PAGES`] more meanwhile).
    restart: bool,
    /// The writer has yet to make its first attempt at that copy; later
    /// ones (a reader kept the WAL from starting over) wait for
    /// [`CHECKPOINT_PAGES`] more pages, so a writer kept from it for long
    /// copies no more often than the thread would.
    writer_due: bool,
    /// After a checkpoint that copied nothing (a reader's snapshot,
    /// another connection's checkpoint, a full disk), the WAL length at
    /// which the thread tries again: [`CHECKPOINT_PAGES`] more, not at once
    /// (it spun on the same pages otherwise).
    retry_at: i32,
    /// The writer runs a checkpoint of its own that must not find this
    /// thread copying ([`Checkpointer::paused`]).
    paused: bool,
    stop: bool,
}

impl State {
    /// Whether the thread has copying to do.
    fn due(&self) -> bool {
        let behind = self.pages - self.copied;
        !self.copying
            && !self.paused
            && self.pages >= self.retry_at
            && (behind >= RESTART_PAGES || (!self.restart && behind >= CHECKPOINT_PAGES))
    }

    /// The WAL started over: nothing of it is copied.
    fn started_over(&mut self) {
        self.restarts += 1;
        self.copied = 0;
        self.restart = false;
        self.writer_due = false;
        self.retry_at = 0;
    }
}

/// The state, even if a thread panicked holding it: every field stays
/// meaningful, and a thread or writer that stopped looking at it would
/// leave the WAL growing or a shutdown waiting.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The checkpoint thread; stopped (and waited for) by [`Checkpointer::stop`]
/// or when dropped.
pub(crate) struct Checkpointer {
    shared: Arc<(Mutex<State>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on `own` (a configured connection to the same file)
    /// and hooks the writer's commits on `writer`. `None` (logged at debug)
    /// when the thread cannot be started: the writer then checkpoints for
    /// itself, as SQLite does by default.
    pub(crate) fn start(writer: &mut Connection, own: Connection, path: &Path) -> Option<Self> {
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let thread_shared = Arc::clone(&shared);
        let thread = match std::thread::Builder::new()
            .name("jira-cache-checkpoint".to_string())
            .spawn(move || run(own, &thread_shared))
        {
            Ok(thread) => thread,
            Err(e) => {
                tracing::debug!(error = %e, path = %path.display(), "no checkpoint thread; the writer checkpoints for itself");
                return None;
            }
        };
        let hook_shared = Arc::clone(&shared);
        // Replaces SQLite's auto-checkpoint, which is a WAL hook too.
        let hooked = writer.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
            let (state, wake) = &*hook_shared;
            let mut state = lock(state);
            if pages < state.pages {
                tracing::trace!(from = state.pages, "the WAL starts over");
                state.started_over();
            }
            state.pages = pages;
            if state.due() {
                wake.notify_all();
            }
            Ok(())
        }));
        let checkpointer = Checkpointer {
            shared,
            thread: Some(thread),
        };
        match hooked {
            Ok(()) => Some(checkpointer),
            Err(e) => {
                tracing::debug!(error = %e, path = %path.display(), "could not hook the writer's commits; the writer checkpoints for itself");
                None
            }
        }
    }

    /// For the writer after each batch: once the thread has copied a WAL
    /// [`RESTART_PAGES`] long, copies the rest on `writer` (what SQLite's
    /// own auto-checkpoint would do there: a few pages, those of the
    /// commits made during the thread's copy), so that its next write
    /// starts the WAL over; again every [`CHECKPOINT_PAGES`] while a reader
    /// keeps it from starting over.
    pub(crate) fn after_batch(&self, writer: &Connection) {
        let (state, _) = &*self.shared;
        let restarts = {
            let mut state = lock(state);
            let due = state.restart
                && !state.copying
                && (state.writer_due || state.pages - state.copied >= CHECKPOINT_PAGES);
            if !due {
                return;
            }
            state.writer_due = false;
            state.restarts
        };
        // Busy (the thread started one after all), cut short by a reader
        // or failed: a later batch tries again.
        let copied = match writer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((
                row.get::<_, i32>(0)?,
                row.get::<_, i32>(1)?,
                row.get::<_, i32>(2)?,
            ))
        }) {
            Ok((busy, wal_pages, copied)) => {
                tracing::trace!(busy, wal_pages, copied, "the writer's checkpoint");
                copied
            }
            Err(e) => {
                tracing::debug!(error = %e, "the writer's checkpoint failed");
                return;
            }
        };
        let mut state = lock(state);
        if state.restarts == restarts {
            state.copied = state.copied.max(copied);
        }
    }

    /// Runs `op` once the thread is not copying, and keeps it from starting
    /// until `op` returns: for a writer's job that needs the whole WAL
    /// copied (`prune`'s `TRUNCATE`), which SQLite refuses with "busy"
    /// while another connection checkpoints.
    pub(crate) fn paused<T>(&self, op: impl FnOnce() -> T) -> T {
        let (state, wake) = &*self.shared;
        let mut guard = lock(state);
        guard.paused = true;
        while guard.copying {
            guard = wake.wait(guard).unwrap_or_else(PoisonError::into_inner);
        }
        drop(guard);
        let result = op();
        lock(state).paused = false;
        wake.notify_all();
        result
    }

    /// Ends the thread once its checkpoint under way (if any) is done, so
    /// that the writer's last checkpoint runs alone.
    pub(crate) fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let (state, wake) = &*self.shared;
        lock(state).stop = true;
        wake.notify_all();
        let _ = thread.join();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run(conn: Connection, shared: &(Mutex<State>, Condvar)) {
    let (state, wake) = shared;
    loop {
        let (restarts, before) = {
            let mut guard = lock(state);
            while !guard.due() && !guard.stop {
                guard = wake.wait(guard).unwrap_or_else(PoisonError::into_inner);
            }
            if guard.stop {
                break;
            }
            guard.copying = true;
            (guard.restarts, guard.copied)
        };
        let started = std::time::Instant::now();
        // `(busy, WAL pages, pages copied)`; -1 for the last two when busy.
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i32>(1)?, row.get::<_, i32>(2)?))
        });
        let mut guard = lock(state);
        guard.copying = false;
        // Whether the result is of the WAL as this thread knows it: not if
        // it started over during the copy (what was copied was of the old).
        let mut current = guard.restarts == restarts;
        let copied = match result {
            Ok((wal_pages, copied)) if copied >= 0 => {
                tracing::trace!(
                    wal_pages,
                    copied,
                    ms = started.elapsed().as_millis() as u64,
                    "checkpoint"
                );
                if current && wal_pages < before {
                    // Started over by another connection (another process's
                    // writer or its last checkpoint): this one's commits
                    // would only show it later. The result is of the new
                    // WAL.
                    tracing::trace!(from = before, "the WAL started over elsewhere");
                    guard.started_over();
                    guard.pages = wal_pages;
                    current = true;
                }
                Some(copied)
            }
            Ok(_) => {
                tracing::trace!("checkpoint busy: another connection is checkpointing");
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "a checkpoint failed; a later one copies what it left");
                None
            }
        };
        let progressed = match copied {
            Some(copied) if current => {
                let progressed = copied > guard.copied;
                guard.copied = guard.copied.max(copied);
                progressed
            }
            _ => false,
        };
        guard.retry_at = if progressed {
            0
        } else {
            guard.pages + CHECKPOINT_PAGES
        };
        if guard.copied >= RESTART_PAGES && !guard.restart {
            guard.restart = true;
            guard.writer_due = true;
        }
        // A writer may be waiting to run its own checkpoint, or the commits
        // made while it copied made it due.
        wake.notify_all();
    }
    // Not the file's last connection (the writer's still is): closing it
    // neither checkpoints nor removes the WAL.
    drop(conn);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Liveness only: how long a test waits for the thread before failing.
    const PATIENCE: Duration = Duration::from_secs(60);

    fn open(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        conn.execute_batch("PRAGMA synchronous = NORMAL").unwrap();
        conn
    }

    fn pair() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        Connection,
        Checkpointer,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite3");
        let mut writer = open(&path);
        writer
            .execute_batch("CREATE TABLE t (x BLOB NOT NULL)")
            .unwrap();
        let checkpointer = Checkpointer::start(&mut writer, open(&path), &path).unwrap();
        (dir, path, writer, checkpointer)
    }

    /// About `rows` WAL pages: one row of 4,000 bytes fills a page.
    fn write(conn: &Connection, rows: usize) {
        let tx = conn.unchecked_transaction().unwrap();
        for _ in 0..rows {
            tx.execute("INSERT INTO t (x) VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        tx.commit().unwrap();
    }

    fn state(c: &Checkpointer) -> (i32, i32, bool) {
        let s = c.shared.0.lock().unwrap();
        (s.pages, s.copied, s.copying)
    }

    fn wait_for(c: &Checkpointer, what: &str, done: impl Fn(i32, i32, bool) -> bool) {
        let start = Instant::now();
        loop {
            let (pages, copied, copying) = state(c);
            if done(pages, copied, copying) {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{what}: pages {pages}, copied {copied}, copying {copying}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_thread_copies_the_wal_while_the_writer_goes_on() {
        let (_dir, path, writer, checkpointer) = pair();
        for _ in 0..12 {
            write(&writer, 100);
        }
        wait_for(&checkpointer, "no checkpoint", |_, copied, copying| {
            copied >= CHECKPOINT_PAGES && !copying
        });
        // The copy reached the file, with no checkpoint on the writer's
        // connection.
        let file = std::fs::metadata(&path).unwrap().len();
        assert!(file >= 1000 * 4096, "{file}");
        checkpointer.stop();
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1200);
    }

    #[test]
    fn once_the_wal_is_long_the_writer_finishes_the_copy_and_its_next_write_starts_it_over() {
        let (_dir, path, writer, checkpointer) = pair();
        // A reader that began before the thread's copy keeps the WAL from
        // starting over by itself, as a busy writer's commits during the
        // copy do in a warm.
        let reader = open(&path);
        checkpointer.paused(|| {
            write(&writer, RESTART_PAGES as usize + 200);
            reader.execute_batch("BEGIN").unwrap();
            reader
                .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                .unwrap();
        });
        // The thread copies that WAL and leaves the rest to the writer.
        wait_for(&checkpointer, "the thread lags", |_, copied, copying| {
            copied >= RESTART_PAGES && !copying
        });
        assert!(checkpointer.shared.0.lock().unwrap().restart);
        write(&writer, 10);
        reader.execute_batch("COMMIT").unwrap();
        // Left alone, the WAL goes on growing...
        write(&writer, 10);
        let (pages, _, _) = state(&checkpointer);
        assert!(pages > RESTART_PAGES + 200, "{pages}");
        // ...until the writer copies the rest...
        checkpointer.after_batch(&writer);
        // ...and its next write starts at the WAL's beginning.
        write(&writer, 10);
        let (after, _, _) = state(&checkpointer);
        assert!(
            after < 100,
            "the WAL did not start over: {pages} -> {after}"
        );
        assert!(!checkpointer.shared.0.lock().unwrap().restart);
    }

    #[test]
    fn a_checkpoint_that_copies_nothing_is_tried_again_only_after_more_pages() {
        let (_dir, path, writer, checkpointer) = pair();
        let reader = open(&path);
        checkpointer.paused(|| {
            write(&writer, 300);
            // A snapshot the thread cannot copy past.
            reader.execute_batch("BEGIN").unwrap();
            reader
                .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                .unwrap();
        });
        write(&writer, 300);
        // The thread copies up to the reader's snapshot, then finds nothing
        // more it may copy: it waits for more pages instead of trying again
        // at once (it spun, thousands of checkpoints a second).
        wait_for(&checkpointer, "the thread keeps trying", |_, _, _| {
            let s = checkpointer.shared.0.lock().unwrap();
            !s.copying && !s.due()
        });
        let (pages, copied, retry_at) = {
            let s = checkpointer.shared.0.lock().unwrap();
            (s.pages, s.copied, s.retry_at)
        };
        assert!(copied < pages, "{copied} of {pages}");
        assert_eq!(retry_at, pages + CHECKPOINT_PAGES);
        // Once the reader is gone and more pages came, it copies them all.
        reader.execute_batch("COMMIT").unwrap();
        write(&writer, CHECKPOINT_PAGES as usize);
        wait_for(
            &checkpointer,
            "no copy after the reader left",
            |pages, copied, copying| !copying && copied == pages,
        );
        checkpointer.stop();
    }

    #[test]
    fn a_job_run_paused_checkpoints_the_whole_wal_however_busy_the_thread_is() {
        let (_dir, path, writer, checkpointer) = pair();
        for round in 0..5 {
            // Enough for the thread to be due, and likely copying.
            for _ in 0..12 {
                write(&writer, 100);
            }
            let busy: i64 = checkpointer.paused(|| {
                writer
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                    .unwrap()
            });
            assert_eq!(busy, 0, "round {round}");
            let wal = std::fs::metadata(path.with_extension("sqlite3-wal"))
                .unwrap()
                .len();
            assert_eq!(wal, 0, "round {round}");
        }
        checkpointer.stop();
    }
}
