//! The single writer: one thread owning one connection, fed by a bounded
//! channel.
//!
//! Every message is run to the end before the next one is taken, so callers
//! on many tasks never interleave inside a transaction and never wait on
//! SQLite's lock themselves. The channel is bounded, so a writer that falls
//! behind slows the fetchers down instead of buffering pages without limit.
//!
//! Group commit: the small writes of a warm (pages, reconciliations,
//! watermarks, meta values) that are already queued when the writer takes
//! one are run in ONE transaction, up to about a thousand entries, and each
//! caller is answered only once that transaction has committed. A
//! transaction's fixed cost (locking, the WAL frame of every page it
//! touched, the commit) is then paid once for many pages (BENCHMARKS.md).
//! Each write is still atomic and committed before its caller hears "ok".
//! Committed is not durable against a power loss: under WAL with
//! `synchronous = NORMAL` a commit survives the process crashing, but the
//! last commits before a power cut may be rolled back (never half of one).
//! On PostgreSQL a transaction of pages only does not wait for the server's
//! disk either ([`RELAXED_COMMIT`]); every other write that changes a row
//! does, and with it every page committed before it. On PostgreSQL the
//! plain pages next to each other in a batch are also stored in one
//! look-up and one `COPY` ([`pg::put_pages`]), and the rows the look-up
//! found absent are copied in without a conflict check ([`pg::NewRows`]);
//! after a look-up that found nothing, the next pages are copied in
//! without one, and looked up only if a key turns out to be there.
//! If one write of a batch fails, the batch is rolled back and its writes are run
//! again one transaction each, so only the failing one fails. A batch of
//! patient writes only (the ends of projects' issue listings, whose callers
//! hold a [`Pending`] and go on) waits up to [`PATIENCE`] for company. When
//! the last [`CacheWriter`] is dropped (or
//! [`CacheWriter::shutdown`] is called) the thread finishes the queued
//! messages and exits; a process that dies mid-transaction leaves nothing
//! half-written, since SQLite rolls the open transaction back.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpointer;
use super::error::{CacheError, SqliteResultExt};
use super::pg::{self, PgResultExt, PgTarget};
use super::runs::{self, RunEnd, RunId, RunStart};
use super::write::{self, EvictionOutcome, KeyScope, Listing, NewEntry, PruneOutcome, PutOutcome};
use crate::Category;

/// Messages waiting for the writer thread, at most.
const QUEUE_CAPACITY: usize = 16;

/// A batch is closed once it holds this many entries...
const BATCH_ENTRIES: usize = 1000;

/// ...or this many writes.
const BATCH_WRITES: usize = 64;

/// How long a batch of patient writes only waits for more writes to share
/// its transaction. A patient write is one whose caller does not wait for it
/// (it holds a [`Pending`] instead): the end of each project's issue
/// listing. Hundreds of those come a few milliseconds apart, and each alone
/// would be a transaction with its own commit. Any other write ends the
/// wait at once.
const PATIENCE: Duration = Duration::from_millis(100);

/// Set at the start of a PostgreSQL transaction whose writes only store
/// pages: its `COMMIT` then returns once the commit is in the server's
/// memory, not once the server's disk has it (the WAL writer writes it
/// within `wal_writer_delay`, 200 ms by default). During an ingest each
/// commit waited for about a megabyte of WAL to be written and flushed,
/// 40 ms to over 500 ms on a busy disk, while the writer could do nothing
/// else (BENCHMARKS.md).
///
/// Why this loses nothing that matters:
/// - The commit is still atomic and visible to every reader at once.
/// - Only a crash of the database server (not of jira-cache, and not a
///   clean restart) can lose such commits, and then only the last ones,
///   in order: the server's log is replayed as a prefix, never with a hole.
/// - Every other write (watermarks, the end of a listing and what it
///   removes, meta values, runs, `--clear`, `--prune`) commits
///   synchronously, which also puts every earlier commit on disk. So a
///   lost page is never covered by a watermark or a finished listing that
///   claims it: the next warm fetches it again. This is a cache; what is
///   lost is a re-fetch, never data of record.
/// - The writer waits for one synchronous commit when it closes.
const RELAXED_COMMIT: &str = "SET LOCAL synchronous_commit = off";

/// How long the writer sleeps at a time while a patient batch waits.
const PATIENCE_STEP: Duration = Duration::from_millis(5);

/// An operation that runs alone, opening its own transaction(s).
type Job = Box<dyn FnOnce(&mut Conn, &Path) + Send>;

/// The writer thread's connection: the SQLite file's, or a PostgreSQL
/// client with the profile's scope.
#[expect(
    clippy::large_enum_variant,
    reason = "one per writer thread, never moved in a loop"
)]
pub(crate) enum Conn {
    Lite(Connection),
    Pg {
        client: postgres::Client,
        prepared: pg::Prepared,
        scope: String,
        /// Whether a relaxed commit may not be on the server's disk yet.
        unsynced: bool,
    },
}

/// An open write transaction of either store.
pub(crate) enum Tx<'a> {
    Lite(&'a Connection),
    Pg {
        tx: postgres::Transaction<'a>,
        prepared: &'a mut pg::Prepared,
        scope: &'a str,
        /// How a page's rows that its look-up found absent are written:
        /// plainly inserted inside a batch (a batch that fails is run again
        /// write by write), with a conflict check when a write runs alone.
        new_rows: pg::NewRows,
    },
}

enum Message {
    Job(Job),
    /// A job that checkpoints the whole WAL itself: run while the
    /// [`Checkpointer`] is kept from copying.
    Alone(Job),
    Batched(Box<dyn Batched>),
    Shutdown(oneshot::Sender<Result<(), CacheError>>),
}

/// A write that may share its transaction with other queued writes.
trait Batched: Send {
    /// How many entries it writes, to bound a batch.
    fn weight(&self) -> usize;

    /// Whether it may wait up to [`PATIENCE`] for other writes to share its
    /// transaction.
    fn patient(&self) -> bool;

    /// Whether it only stores a page (no watermark, reconciliation or run
    /// record), so that a transaction of such writes only may be committed
    /// without waiting for the server's disk (see [`RELAXED_COMMIT`]).
    fn relaxed(&self) -> bool;

    /// Runs inside the open transaction `tx` and keeps its result. It may
    /// run again, in a fresh transaction, if the batch it was part of was
    /// rolled back.
    fn run(&mut self, tx: &mut Tx<'_>, path: &Path) -> Result<(), CacheError>;

    /// Answers the caller: its result if `committed` is `Ok`, else that error.
    fn answer(self: Box<Self>, committed: Result<(), CacheError>);

    /// The entries of a plain page (one without a listing), which a
    /// PostgreSQL batch stores together with the plain pages next to it
    /// ([`pg::put_pages`]); `None` for any other write.
    fn plain_page(&self) -> Option<&[NewEntry]> {
        None
    }

    /// Keeps the outcome of its page, stored together with others (see
    /// [`Batched::plain_page`]), in place of running it.
    fn page_stored(&mut self, _outcome: PutOutcome) {}
}

/// A plain page ([`CacheWriter::put_page`]).
struct PageWrite {
    entries: Vec<NewEntry>,
    result: Option<PutOutcome>,
    reply: oneshot::Sender<Result<PutOutcome, CacheError>>,
    path: Arc<PathBuf>,
}

impl Batched for PageWrite {
    fn weight(&self) -> usize {
        self.entries.len()
    }

    fn patient(&self) -> bool {
        false
    }

    fn relaxed(&self) -> bool {
        true
    }

    fn run(&mut self, tx: &mut Tx<'_>, path: &Path) -> Result<(), CacheError> {
        self.result = None;
        self.result = Some(match tx {
            Tx::Lite(tx) => write::put_page(tx, &self.entries, None).at(path)?,
            Tx::Pg {
                tx,
                prepared,
                scope,
                new_rows,
            } => pg::put_page(tx, prepared, scope, &self.entries, None, *new_rows).at_pg(path)?,
        });
        Ok(())
    }

    fn answer(self: Box<Self>, committed: Result<(), CacheError>) {
        send_answer(self.reply, self.result, committed, &self.path);
    }

    fn plain_page(&self) -> Option<&[NewEntry]> {
        Some(&self.entries)
    }

    fn page_stored(&mut self, outcome: PutOutcome) {
        self.result = Some(outcome);
    }
}

/// Answers a write: its result if it ran and its batch committed, else the
/// batch's error.
fn send_answer<T>(
    reply: oneshot::Sender<Result<T, CacheError>>,
    result: Option<T>,
    committed: Result<(), CacheError>,
    path: &Path,
) {
    let answer = match (committed, result) {
        (Ok(()), Some(result)) => Ok(result),
        (Err(e), _) => Err(e),
        // Not reachable: a write is only answered Ok after it ran.
        (Ok(()), None) => Err(CacheError::WriterStopped {
            path: path.to_path_buf(),
        }),
    };
    // The caller may have gone away (cancelled); the work is done anyway.
    let _ = reply.send(answer);
}

struct Write<T, F> {
    op: F,
    weight: usize,
    patient: bool,
    relaxed: bool,
    result: Option<T>,
    reply: oneshot::Sender<Result<T, CacheError>>,
    path: Arc<PathBuf>,
}

impl<T, F> Batched for Write<T, F>
where
    T: Send,
    F: FnMut(&mut Tx<'_>, &Path) -> Result<T, CacheError> + Send,
{
    fn weight(&self) -> usize {
        self.weight
    }

    fn patient(&self) -> bool {
        self.patient
    }

    fn relaxed(&self) -> bool {
        self.relaxed
    }

    fn run(&mut self, tx: &mut Tx<'_>, path: &Path) -> Result<(), CacheError> {
        self.result = None;
        self.result = Some((self.op)(tx, path)?);
        Ok(())
    }

    fn answer(self: Box<Self>, committed: Result<(), CacheError>) {
        send_answer(self.reply, self.result, committed, &self.path);
    }
}

/// A write the writer has queued, whose result is awaited apart from
/// queueing it ([`Pending::outcome`]), so that its caller can go on.
#[derive(Debug)]
pub struct Pending<T> {
    done: oneshot::Receiver<Result<T, CacheError>>,
    path: Arc<PathBuf>,
}

impl<T> Pending<T> {
    /// The write's result, once its transaction committed (or failed).
    pub async fn outcome(self) -> Result<T, CacheError> {
        self.done.await.map_err(|_| CacheError::WriterStopped {
            path: self.path.as_ref().clone(),
        })?
    }
}

/// The handle to the writer thread. Clone it freely: every clone feeds the
/// same thread, and the thread stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct CacheWriter {
    tx: mpsc::Sender<Message>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Job(_) => "Job",
            Message::Alone(_) => "Alone",
            Message::Batched(_) => "Batched",
            Message::Shutdown(_) => "Shutdown",
        })
    }
}

impl CacheWriter {
    /// Starts the thread on a configured, migrated connection.
    /// Its checkpoints run on a thread of their own ([`Checkpointer`]) when
    /// `checkpoints`, a second connection to the file, is given.
    pub(crate) fn start(
        mut conn: Connection,
        checkpoints: Option<Connection>,
        path: PathBuf,
    ) -> Result<CacheWriter, CacheError> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let thread_path = path.clone();
        let checkpointer = checkpoints.and_then(|own| Checkpointer::start(&mut conn, own, &path));
        std::thread::Builder::new()
            .name("jira-cache-writer".to_string())
            .spawn(move || run(Conn::Lite(conn), checkpointer, thread_path, rx))
            .map_err(|e| CacheError::Io {
                path: path.clone(),
                source: e,
            })?;
        Ok(CacheWriter {
            tx,
            path: Arc::new(path),
        })
    }

    /// Starts the thread with a connection to the PostgreSQL store (made
    /// on the thread itself: the blocking client must not run on an async
    /// runtime's thread). Answers once connected.
    pub(crate) fn start_postgres(target: &PgTarget) -> Result<CacheWriter, CacheError> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let path = target.display_path();
        let (ready, connected) = std::sync::mpsc::channel();
        let thread_target = target.clone();
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("jira-cache-writer".to_string())
            .spawn(move || match thread_target.connect() {
                Ok(client) => {
                    let _ = ready.send(Ok(()));
                    let scope = thread_target.scope().to_string();
                    run(
                        Conn::Pg {
                            client,
                            prepared: pg::Prepared::default(),
                            scope,
                            unsynced: false,
                        },
                        None,
                        thread_path,
                        rx,
                    );
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            })
            .map_err(|e| CacheError::Io {
                path: path.clone(),
                source: e,
            })?;
        connected
            .recv()
            .map_err(|_| CacheError::WriterStopped { path: path.clone() })??;
        Ok(CacheWriter {
            tx,
            path: Arc::new(path),
        })
    }

    /// Stores a page of entries atomically: when this returns `Ok`, the
    /// whole page is committed. An entry whose value is unchanged (same
    /// hash) only has its times refreshed; its stored value is not rewritten.
    pub async fn put_page(&self, entries: Vec<NewEntry>) -> Result<PutOutcome, CacheError> {
        let (reply, done) = oneshot::channel();
        let write = PageWrite {
            entries,
            result: None,
            reply,
            path: Arc::clone(&self.path),
        };
        self.queue(Box::new(write), done).await?.outcome().await
    }

    /// Stores a page of one run of `listing` atomically: its entries become
    /// the listing's members and carry its times, and a member whose value
    /// is unchanged is not written at all (see [`Listing`]). End the run
    /// with [`CacheWriter::finish_listing`] or [`CacheWriter::leave_listing`].
    ///
    /// `page` is the page's position in the run, from 0: a page that comes
    /// again at the same position with the same keys and values, none of
    /// them touched since, is recognised as a whole, without a look-up per
    /// entry.
    pub async fn put_listing_page(
        &self,
        listing: Listing,
        page: u32,
        entries: Vec<NewEntry>,
    ) -> Result<PutOutcome, CacheError> {
        let weight = entries.len();
        self.page(weight, move |tx, path| match tx {
            Tx::Lite(tx) => write::put_page(tx, &entries, Some((&listing, page))).at(path),
            Tx::Pg {
                tx,
                prepared,
                scope,
                new_rows,
            } => pg::put_page(tx, prepared, scope, &entries, Some(&listing), *new_rows).at_pg(path),
        })
        .await
    }

    /// Ends a complete run of `listing` atomically: the members it returned
    /// (`listed`) take the run's times, any other member leaves the listing
    /// with the times it had, and with `removal` (a scope and keys kept
    /// besides `listed`), what the run proves gone is removed. Answers how
    /// many entries were removed. See [`Listing`].
    pub async fn finish_listing(
        &self,
        listing: Listing,
        listed: HashSet<String>,
        removal: Option<(KeyScope, HashSet<String>)>,
    ) -> Result<u64, CacheError> {
        self.batched(1, move |tx, path| {
            let removal = removal.as_ref().map(|(scope, keep)| (scope, keep));
            match tx {
                Tx::Lite(tx) => write::finish_listing(tx, &listing, &listed, removal).at(path),
                Tx::Pg { tx, scope, .. } => {
                    pg::finish_listing(tx, scope, &listing, &listed, removal).at_pg(path)
                }
            }
        })
        .await
    }

    /// Ends a run of `listing` that could not list everything it covers,
    /// atomically: the members it returned (`keys`) leave the listing with
    /// the run's times as their own; the others keep its older times.
    /// Answers how many left.
    pub async fn leave_listing(
        &self,
        listing: Listing,
        keys: HashSet<String>,
    ) -> Result<u64, CacheError> {
        self.batched(keys.len().max(1), move |tx, path| match tx {
            Tx::Lite(tx) => write::leave_listing(tx, &listing, &keys).at(path),
            Tx::Pg { tx, scope, .. } => pg::leave_listing(tx, scope, &listing, &keys).at_pg(path),
        })
        .await
    }

    /// Reconciliation: deletes the entries of `category` inside `scope` whose
    /// key is not in `keep`, atomically, and returns how many.
    ///
    /// Call it only with the keys of a complete, untruncated listing of the
    /// scope (`CONVENTIONS.md`).
    pub async fn remove_missing(
        &self,
        category: Category,
        scope: KeyScope,
        keep: HashSet<String>,
    ) -> Result<u64, CacheError> {
        self.batched(1, move |tx, path| match tx {
            Tx::Lite(tx) => write::remove_missing(tx, category, &scope, &keep).at(path),
            Tx::Pg { tx, scope: s, .. } => {
                pg::remove_missing(tx, s, category, &scope, &keep).at_pg(path)
            }
        })
        .await
    }

    /// Deletes the entries of `category` (every category if `None`) whose key
    /// matches the GLOB `pattern` (every key if `None`), and returns how many;
    /// with `dry_run`, only counts them (`cache_warm --clear`). Removing
    /// issues also removes the issue watermarks of their projects (every
    /// watermark when every issue goes), so the next warm fetches them again.
    pub async fn remove(
        &self,
        category: Option<Category>,
        pattern: Option<String>,
        dry_run: bool,
    ) -> Result<u64, CacheError> {
        self.call(move |conn, path| match conn {
            Conn::Lite(conn) => write::remove(conn, category, pattern.as_deref(), dry_run).at(path),
            Conn::Pg { client, scope, .. } => {
                pg::remove(client, scope, category, pattern.as_deref(), dry_run).at_pg(path)
            }
        })
        .await
    }

    /// Sets a value in `meta` (e.g. the probed deployment, the site URL).
    pub async fn set_meta(&self, key: String, value: String) -> Result<(), CacheError> {
        self.batched(1, move |tx, path| match tx {
            Tx::Lite(tx) => write::set_meta(tx, &key, &value).at(path),
            Tx::Pg { tx, scope, .. } => pg::set_meta(tx, scope, &key, &value).at_pg(path),
        })
        .await
    }

    /// Records the newest `updated` (unix ms) seen for `project`'s issues.
    pub async fn set_watermark(
        &self,
        project: String,
        newest_updated_ms: i64,
        warmed_at: i64,
    ) -> Result<(), CacheError> {
        self.batched(1, move |tx, path| match tx {
            Tx::Lite(tx) => {
                write::set_watermark(tx, &project, newest_updated_ms, warmed_at).at(path)
            }
            Tx::Pg { tx, scope, .. } => {
                pg::set_watermark(tx, scope, &project, newest_updated_ms, warmed_at).at_pg(path)
            }
        })
        .await
    }

    /// Ends one project's issue listing atomically: stores its last page
    /// (`last_page`, possibly empty), removes what its census proves gone
    /// (`removal`: the census scope and the keys it found, as for
    /// [`CacheWriter::remove_missing`]) and records its watermark, if any.
    ///
    /// Returns once the write is queued; its [`Pending`] answers what
    /// storing the page did and how many issues were removed, once
    /// committed. It is a patient write (it may wait up to 100 ms for
    /// other writes to share its transaction): the ends of many
    /// projects' listings share a transaction, while their callers go on to
    /// the next project.
    pub async fn finish_issue_listing(
        &self,
        project: String,
        last_page: Vec<NewEntry>,
        removal: Option<(KeyScope, HashSet<String>)>,
        newest_updated_ms: Option<i64>,
        warmed_at: i64,
    ) -> Result<Pending<(PutOutcome, u64)>, CacheError> {
        self.hand_over(
            last_page.len().max(1),
            true,
            false,
            move |tx, path| match tx {
                Tx::Lite(tx) => {
                    let put = write::put_page(tx, &last_page, None).at(path)?;
                    let removed = match &removal {
                        Some((scope, keep)) => {
                            write::remove_missing(tx, Category::Issue, scope, keep).at(path)?
                        }
                        None => 0,
                    };
                    if let Some(newest) = newest_updated_ms {
                        write::set_watermark(tx, &project, newest, warmed_at).at(path)?;
                    }
                    Ok((put, removed))
                }
                Tx::Pg {
                    tx,
                    prepared,
                    scope: s,
                    new_rows,
                } => {
                    let put =
                        pg::put_page(tx, prepared, s, &last_page, None, *new_rows).at_pg(path)?;
                    let removed = match &removal {
                        Some((scope, keep)) => {
                            pg::remove_missing(tx, s, Category::Issue, scope, keep).at_pg(path)?
                        }
                        None => 0,
                    };
                    if let Some(newest) = newest_updated_ms {
                        pg::set_watermark(tx, s, &project, newest, warmed_at).at_pg(path)?;
                    }
                    Ok((put, removed))
                }
            },
        )
        .await
    }

    /// Commits whatever patient writes are waiting for company now,
    /// rather than at the end of their wait: call it when no more are coming.
    pub async fn flush(&self) -> Result<(), CacheError> {
        self.batched(0, |_, _| Ok(())).await
    }

    /// Records the start of a run (result `running`).
    pub async fn run_start(&self, start: RunStart) -> Result<RunId, CacheError> {
        self.call(move |conn, path| match conn {
            Conn::Lite(conn) => runs::run_start(conn, &start).at(path),
            Conn::Pg { client, scope, .. } => pg::run_start(client, scope, &start).at_pg(path),
        })
        .await
    }

    /// Records the end of a run.
    pub async fn run_finish(&self, id: RunId, end: RunEnd) -> Result<(), CacheError> {
        self.call(move |conn, path| match conn {
            Conn::Lite(conn) => runs::run_finish(conn, id, &end).at(path),
            Conn::Pg { client, scope, .. } => pg::run_finish(client, scope, id, &end).at_pg(path),
        })
        .await
    }

    /// Brings the total entry bytes under `max_bytes`: expired entries first
    /// (oldest expiry first), then the least recently read (never read first,
    /// then oldest fetch).
    pub async fn enforce_max_size(
        &self,
        max_bytes: u64,
        now_ms: i64,
    ) -> Result<EvictionOutcome, CacheError> {
        self.call(move |conn, path| match conn {
            Conn::Lite(conn) => write::enforce_max_size(conn, max_bytes, now_ms).at(path),
            Conn::Pg { client, scope, .. } => {
                pg::enforce_max_size(client, scope, max_bytes, now_ms).at_pg(path)
            }
        })
        .await
    }

    /// Deletes the entries that expired at or before `expired_before_ms`
    /// (pass `now - grace` to keep stale entries for a while) and shrinks the
    /// file (incremental vacuum, truncating WAL checkpoint).
    pub async fn prune(&self, expired_before_ms: i64) -> Result<PruneOutcome, CacheError> {
        self.call_alone(move |conn, path| match conn {
            Conn::Lite(conn) => write::prune(conn, path, expired_before_ms),
            Conn::Pg { client, scope, .. } => {
                pg::prune(client, scope, expired_before_ms).at_pg(path)
            }
        })
        .await
    }

    /// Finishes the queued messages (of every clone), closes the connection
    /// and stops the thread. Later calls on any clone fail with
    /// [`CacheError::WriterStopped`].
    pub async fn shutdown(self) -> Result<(), CacheError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Message::Shutdown(reply))
            .await
            .map_err(|_| self.stopped())?;
        done.await.map_err(|_| self.stopped())?
    }

    /// Runs `op` on the writer thread inside a transaction, possibly shared
    /// with other queued writes, and returns its result once committed.
    /// `op` may run more than once (after a rollback of its batch), so it
    /// must only write through `tx`.
    pub(super) async fn batched<T, F>(&self, weight: usize, op: F) -> Result<T, CacheError>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>, &Path) -> Result<T, CacheError> + Send + 'static,
    {
        self.hand_over(weight, false, false, op)
            .await?
            .outcome()
            .await
    }

    /// [`Self::batched`] for a write that only stores a page (see
    /// [`Batched::relaxed`]).
    async fn page<T, F>(&self, weight: usize, op: F) -> Result<T, CacheError>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>, &Path) -> Result<T, CacheError> + Send + 'static,
    {
        self.hand_over(weight, false, true, op)
            .await?
            .outcome()
            .await
    }

    /// Queues a write; its result comes through the answered [`Pending`].
    async fn hand_over<T, F>(
        &self,
        weight: usize,
        patient: bool,
        relaxed: bool,
        op: F,
    ) -> Result<Pending<T>, CacheError>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>, &Path) -> Result<T, CacheError> + Send + 'static,
    {
        let (reply, done) = oneshot::channel();
        let write = Write {
            op,
            weight,
            patient,
            relaxed,
            result: None,
            reply,
            path: Arc::clone(&self.path),
        };
        self.queue(Box::new(write), done).await
    }

    /// Hands `write` to the writer thread; `done` receives its answer.
    async fn queue<T>(
        &self,
        write: Box<dyn Batched>,
        done: oneshot::Receiver<Result<T, CacheError>>,
    ) -> Result<Pending<T>, CacheError> {
        self.tx
            .send(Message::Batched(write))
            .await
            .map_err(|_| self.stopped())?;
        Ok(Pending {
            done,
            path: Arc::clone(&self.path),
        })
    }

    /// Runs `op` on the writer thread, alone, and returns its result.
    async fn send_job<T, F>(&self, alone: bool, op: F) -> Result<T, CacheError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn, &Path) -> Result<T, CacheError> + Send + 'static,
    {
        let (reply, done) = oneshot::channel();
        let job: Job = Box::new(move |conn, path| {
            // The caller may have gone away (cancelled); the work is done anyway.
            let _ = reply.send(op(conn, path));
        });
        self.tx
            .send(if alone {
                Message::Alone(job)
            } else {
                Message::Job(job)
            })
            .await
            .map_err(|_| self.stopped())?;
        done.await.map_err(|_| self.stopped())?
    }

    async fn call<T, F>(&self, op: F) -> Result<T, CacheError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn, &Path) -> Result<T, CacheError> + Send + 'static,
    {
        self.send_job(false, op).await
    }

    /// [`Self::call`] for a job that checkpoints the whole WAL itself.
    async fn call_alone<T, F>(&self, op: F) -> Result<T, CacheError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn, &Path) -> Result<T, CacheError> + Send + 'static,
    {
        self.send_job(true, op).await
    }

    fn stopped(&self) -> CacheError {
        CacheError::WriterStopped {
            path: self.path.as_ref().clone(),
        }
    }
}

/// The writer thread's loop.
fn run(
    mut conn: Conn,
    mut checkpointer: Option<Checkpointer>,
    path: PathBuf,
    mut rx: mpsc::Receiver<Message>,
) {
    // Without a checkpoint thread, SQLite checkpoints on the writer's own
    // thread: every 64 MiB rather than every 4 MiB, since at the default
    // checkpoints took a fifth of the writer's time during a warm
    // (BENCHMARKS.md). The WAL is truncated once when the writer closes.
    if checkpointer.is_none()
        && let Conn::Lite(conn) = &conn
        && let Err(e) = conn.execute_batch("PRAGMA wal_autocheckpoint = 16384")
    {
        tracing::debug!(error = %e, "could not widen the WAL checkpoint interval");
    }
    let mut waiting = Vec::new();
    // A message taken while filling a batch, to run right after it.
    let mut held: Option<Message> = None;
    loop {
        let Some(message) = held.take().or_else(|| rx.blocking_recv()) else {
            break;
        };
        match message {
            Message::Job(job) => job(&mut conn, &path),
            Message::Alone(job) => match &checkpointer {
                Some(checkpointer) => checkpointer.paused(|| job(&mut conn, &path)),
                None => job(&mut conn, &path),
            },
            Message::Batched(first) => {
                let started = Instant::now();
                let mut weight = first.weight();
                let mut patient = first.patient();
                // Messages taken since the writer last slept.
                let mut taken = 0;
                let mut batch = vec![first];
                while weight < BATCH_ENTRIES && batch.len() < BATCH_WRITES {
                    let next = match rx.try_recv() {
                        Ok(next) => {
                            taken += 1;
                            next
                        }
                        Err(mpsc::error::TryRecvError::Empty)
                            if patient
                                && started.elapsed() < PATIENCE
                                && taken < QUEUE_CAPACITY / 2 =>
                        {
                            // Only patient writes so far, and they come
                            // sparsely: let more come. Short sleeps, each
                            // ending by taking what came, rather than a
                            // wake-up per message (which cost the writer
                            // more than the commits saved). Once a sleep
                            // finds half a queue waiting, they come fast
                            // enough to fill batches by themselves: waiting
                            // longer would only keep senders waiting.
                            std::thread::sleep(PATIENCE_STEP);
                            taken = 0;
                            continue;
                        }
                        Err(_) => break,
                    };
                    match next {
                        Message::Batched(next) => {
                            weight += next.weight();
                            patient &= next.patient();
                            batch.push(next);
                        }
                        other => {
                            held = Some(other);
                            break;
                        }
                    }
                }
                run_batch(&mut conn, &path, batch);
                if let (Some(checkpointer), Conn::Lite(conn)) = (&checkpointer, &conn) {
                    checkpointer.after_batch(conn);
                }
            }
            Message::Shutdown(reply) => {
                // Refuse new messages, but finish those already queued.
                rx.close();
                waiting.push(reply);
            }
        }
    }
    // The last checkpoint runs alone, so it can finish.
    if let Some(checkpointer) = checkpointer.take() {
        checkpointer.stop();
    }
    let closed = match conn {
        Conn::Lite(conn) => {
            // Let SQLite refresh its statistics where they are stale, as
            // recommended before closing, from a sample (SQLite's advice for
            // `optimize`: a full ANALYZE of a freshly warmed cache took 24 ms
            // of a 1.4 s warm), then give the WAL back to the file (readers
            // never wait for this: a busy checkpoint just does less).
            let _ = conn.execute_batch("PRAGMA analysis_limit = 400; PRAGMA optimize");
            let _ = write::truncate_wal(&conn);
            conn.close()
                .map_err(|(_, e)| CacheError::from_sqlite(&path, e))
        }
        Conn::Pg {
            mut client,
            unsynced,
            ..
        } => {
            // Relaxed commits reach the disk within the server's
            // `wal_writer_delay` anyway; waiting for one synchronous commit
            // here makes "the writer closed" mean "all on disk" again.
            if unsynced && let Err(e) = pg::sync_commits(&mut client) {
                tracing::warn!(error = %e, "could not wait for the cache's last commits to reach the database's disk");
            }
            client.close().at_pg(&path)
        }
    };
    if let Err(e) = &closed {
        tracing::warn!(error = %e, "closing the cache writer's connection failed");
    }
    // The first shutdown hears how closing went; any others just that it is done.
    let mut closed = Some(closed);
    for reply in waiting {
        let _ = reply.send(closed.take().unwrap_or(Ok(())));
    }
}

/// How a batch run in one transaction ended.
enum Together {
    Committed,
    /// Opening or committing the transaction failed: the same for every write.
    Failed(CacheError),
    /// One write failed; the transaction was rolled back.
    WriteFailed,
}

/// Runs a batch of writes in one transaction and answers each; if one
/// write fails, runs each again in its own transaction so only that one fails.
///
/// On PostgreSQL a lone page goes the batch's way too, so that its new rows
/// are copied in without a conflict check ([`pg::NewRows::Insert`]): a
/// fifth of an ingest's batches were single pages (the writer takes the
/// first page that comes when it is idle), written with the upsert.
fn run_batch(conn: &mut Conn, path: &Path, mut batch: Vec<Box<dyn Batched>>) {
    let lone_page = matches!(conn, Conn::Pg { .. }) && batch.iter().all(|w| w.relaxed());
    if batch.len() > 1 || lone_page {
        match together(conn, path, &mut batch) {
            Together::Committed => {
                for write in batch {
                    write.answer(Ok(()));
                }
                return;
            }
            Together::Failed(e) => {
                for write in batch {
                    write.answer(Err(replicate(path, &e)));
                }
                return;
            }
            Together::WriteFailed => {
                tracing::debug!(
                    writes = batch.len(),
                    "a write of a batch failed; running the batch one write at a time"
                );
            }
        }
    }
    for mut write in batch {
        let committed = alone(conn, path, write.as_mut());
        write.answer(committed);
    }
}

fn together(conn: &mut Conn, path: &Path, batch: &mut [Box<dyn Batched>]) -> Together {
    match conn {
        Conn::Lite(conn) => {
            let tx = match WriteTx::begin(conn) {
                Ok(tx) => tx,
                Err(e) => return Together::Failed(CacheError::from_sqlite(path, e)),
            };
            let mut open = Tx::Lite(tx.conn);
            for write in batch.iter_mut() {
                if write.run(&mut open, path).is_err() {
                    // Dropping `tx` rolls the batch back.
                    return Together::WriteFailed;
                }
            }
            match tx.commit() {
                Ok(()) => Together::Committed,
                Err(e) => Together::Failed(CacheError::from_sqlite(path, e)),
            }
        }
        Conn::Pg {
            client,
            prepared,
            scope,
            unsynced,
        } => {
            let mut tx = match client.transaction() {
                Ok(tx) => tx,
                Err(e) => return Together::Failed(pg::from_pg(path, e)),
            };
            let relaxed = batch.iter().all(|w| w.relaxed());
            if relaxed && let Err(e) = tx.batch_execute(RELAXED_COMMIT) {
                return Together::Failed(pg::from_pg(path, e));
            }
            *unsynced |= relaxed;
            let mut open = Tx::Pg {
                tx,
                prepared,
                scope,
                new_rows: pg::NewRows::Insert,
            };
            let mut i = 0;
            while i < batch.len() {
                // Consecutive plain pages go in one look-up and one copy.
                let pages = batch[i..]
                    .iter()
                    .take_while(|w| w.plain_page().is_some())
                    .count();
                if pages > 1 {
                    let stored = {
                        let Tx::Pg {
                            tx,
                            prepared,
                            scope,
                            new_rows,
                        } = &mut open
                        else {
                            unreachable!("opened as a PostgreSQL transaction")
                        };
                        let entries: Vec<&[NewEntry]> = batch[i..i + pages]
                            .iter()
                            .filter_map(|w| w.plain_page())
                            .collect();
                        pg::put_pages(tx, prepared, scope, &entries, None, *new_rows)
                    };
                    let Ok(outcomes) = stored else {
                        // Dropping the transaction rolls the batch back.
                        return Together::WriteFailed;
                    };
                    for (write, outcome) in batch[i..i + pages].iter_mut().zip(outcomes) {
                        write.page_stored(outcome);
                    }
                    i += pages;
                    continue;
                }
                if batch[i].run(&mut open, path).is_err() {
                    // Dropping the transaction rolls the batch back.
                    return Together::WriteFailed;
                }
                i += 1;
            }
            let Tx::Pg { tx, .. } = open else {
                unreachable!("opened as a PostgreSQL transaction")
            };
            match tx.commit() {
                Ok(()) => Together::Committed,
                Err(e) => Together::Failed(pg::from_pg(path, e)),
            }
        }
    }
}

fn alone(conn: &mut Conn, path: &Path, write: &mut dyn Batched) -> Result<(), CacheError> {
    match conn {
        Conn::Lite(conn) => {
            let tx = WriteTx::begin(conn).at(path)?;
            write.run(&mut Tx::Lite(tx.conn), path)?;
            tx.commit().at(path)
        }
        Conn::Pg {
            client,
            prepared,
            scope,
            unsynced,
        } => {
            let mut tx = client.transaction().at_pg(path)?;
            if write.relaxed() {
                tx.batch_execute(RELAXED_COMMIT).at_pg(path)?;
                *unsynced = true;
            }
            let mut open = Tx::Pg {
                tx,
                prepared,
                scope,
                new_rows: pg::NewRows::Checked,
            };
            write.run(&mut open, path)?;
            let Tx::Pg { tx, .. } = open else {
                unreachable!("opened as a PostgreSQL transaction")
            };
            tx.commit().at_pg(path)
        }
    }
}

/// A write transaction whose `BEGIN IMMEDIATE`, `COMMIT` and `ROLLBACK` are
/// cached statements: a warm opens hundreds of small transactions, and
/// parsing those three anew each time (as `rusqlite::Transaction` does) was
/// about 4% of the writer's time in a re-warm (BENCHMARKS.md). Dropped
/// without [`WriteTx::commit`], it rolls back.
struct WriteTx<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> WriteTx<'c> {
    fn begin(conn: &'c mut Connection) -> rusqlite::Result<WriteTx<'c>> {
        let conn = &*conn;
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(WriteTx { conn, open: true })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        // After a failed COMMIT the transaction may still be open; a
        // rollback that fails leaves nothing more to do here.
        if self.open && !self.conn.is_autocommit() {
            let _ = self
                .conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]));
        }
    }
}

/// The same error again, for the next caller of a failed batch (the
/// errors of SQLite and PostgreSQL are not `Clone`).
fn replicate(path: &Path, e: &CacheError) -> CacheError {
    let path = path.to_path_buf();
    match e {
        CacheError::Sqlite { source, .. } => CacheError::from_sqlite(
            &path,
            match source {
                rusqlite::Error::SqliteFailure(code, message) => {
                    rusqlite::Error::SqliteFailure(*code, message.clone())
                }
                other => rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                    Some(other.to_string()),
                ),
            },
        ),
        CacheError::Corrupt { detail, .. } => CacheError::Corrupt {
            path,
            detail: detail.clone(),
        },
        CacheError::DiskFull { .. } => CacheError::DiskFull { path },
        CacheError::Storage { detail, .. } => CacheError::Storage {
            path,
            detail: detail.clone(),
        },
        CacheError::Unwritable { detail, .. } => CacheError::Unwritable {
            path,
            detail: detail.clone(),
        },
        CacheError::Busy { .. } => CacheError::Busy { path },
        CacheError::DatabaseRefused { detail, next, .. } => CacheError::DatabaseRefused {
            path,
            detail: detail.clone(),
            next,
        },
        CacheError::DatabaseUnreachable { detail, .. } => CacheError::DatabaseUnreachable {
            path,
            detail: detail.clone(),
        },
        other => CacheError::Database {
            path,
            detail: other.to_string(),
        },
    }
}
