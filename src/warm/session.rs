//! A warm run's whole life, the same for every caller (`cache_warm`,
//! `cache_serve --warm`, any Rust program): take the profile's lock, open the
//! cache, record the run in the cache's history, connect, run the stages
//! until they end, a stop arrives or time runs out, keep the cache inside its
//! `max_size`, and record how the run ended.
//!
//! Guarantees:
//! - At most one warm per profile at a time (the lock is held for as long
//!   as the [`WarmSession`] lives).
//! - Every run that started is recorded as ended, with its report, whatever
//!   stopped it: a connection that failed, a signal, `max_duration`.
//! - Nothing here prints: progress goes to the caller's [`Progress`], the
//!   outcome comes back as a [`WarmOutcome`] to show as the caller likes.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    ErrorKind, IssueOptions, Progress, RunReport, RunResult, Stage, StageReport, WarmContext,
    WarmPlan,
};
use crate::cache::{Cache, CacheError, CacheLocation, CacheWriter, RunEnd, RunStart};
use crate::exit;
use crate::jira::RetryPolicy;
use crate::lock::{LockError, WarmLock};
use crate::profile::{Profile, ProfileError};
use crate::site::{self, ConnectError};

/// Why a warm session could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The profile's lock is held, or could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The cache file failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The profile is incomplete (e.g. its token is missing).
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The site could not be connected to.
    #[error("profile `{profile}`{}", site_unless_named(.source, .url))]
    Connect {
        /// The profile's name.
        profile: String,
        /// The profile's site.
        url: String,
        /// What failed.
        #[source]
        source: ConnectError,
    },
}

/// ` (URL)`, unless the error names the site itself: a failed connection
/// says "cannot connect to URL", and a line names the site once.
fn site_unless_named(source: &ConnectError, url: &str) -> String {
    match source {
        ConnectError::Jira(crate::jira::JiraError::Connect { .. }) => String::new(),
        _ => format!(" ({url})"),
    }
}

impl SessionError {
    /// The contract's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            SessionError::Lock(e) => exit::code_for(e),
            SessionError::Cache(e) => exit::code_for(e),
            SessionError::Profile(e) => exit::code_for(e),
            SessionError::Connect { source, .. } => exit::code_for(source),
        }
    }
}

/// What stopped a run before its stages ended: a signal, as the caller saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupt {
    /// The exit code the contract gives it (130, 143).
    pub code: u8,
    /// The signal's name, for the report: `SIGINT`.
    pub signal: &'static str,
}

/// Resolves on the first SIGINT or SIGTERM; never, when the signals cannot
/// be listened to. The stop most callers pass to [`WarmSession::warm`].
pub async fn until_signal() -> Interrupt {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut sigint), Ok(mut sigterm)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = sigint.recv() => Interrupt { code: exit::SIGINT, signal: "SIGINT" },
        _ = sigterm.recv() => Interrupt { code: exit::SIGTERM, signal: "SIGTERM" },
    }
}

/// What a warm covers.
#[derive(Debug, Clone, Default)]
pub struct WarmRequest {
    /// The stages.
    pub stages: Vec<Stage>,
    /// Skip the stages whose entries are all still fresh.
    pub only_stale: bool,
    /// Projects in scope; empty means the profile's `projects`.
    pub projects: Vec<String>,
    /// What the issues stage does.
    pub issues: IssueOptions,
    /// Pause between stages.
    pub stage_delay: Duration,
    /// Stop after this long, keeping what was warmed.
    pub max_duration: Option<Duration>,
    /// How requests are retried.
    pub retry: RetryPolicy,
    /// Which still-fresh listings the metadata and users stages skip.
    pub fresh: super::FreshPolicy,
}

/// How a warm ended.
#[derive(Debug)]
pub enum WarmOutcome {
    /// `only_stale` found every stage fresh: nothing ran, nothing recorded.
    NothingToDo {
        /// The stages found fresh.
        fresh: Vec<Stage>,
    },
    /// The run ran and is recorded.
    Ran {
        /// What it did (boxed: a report is far larger than the other variant).
        report: Box<RunReport>,
        /// The contract's exit code for it.
        exit_code: u8,
    },
}

/// The profile's lock and its open cache, for one or more warm runs.
#[derive(Debug)]
pub struct WarmSession {
    cache: Cache,
    writer: CacheWriter,
    // Last: released after the writer is gone.
    _lock: SessionLock,
}

/// The profile's warm lock: a file lock beside the SQLite file, or an
/// advisory lock in the PostgreSQL database (which holds across machines).
#[derive(Debug)]
#[expect(dead_code, reason = "held for its Drop, which releases the lock")]
enum SessionLock {
    File(WarmLock),
    Database(crate::cache::PgWarmLock),
}

impl SessionLock {
    async fn acquire(
        profile: &Profile,
        location: &CacheLocation,
        wait: Option<Option<Duration>>,
    ) -> Result<SessionLock, SessionError> {
        let Some(target) = location.postgres() else {
            return Ok(SessionLock::File(match wait {
                Some(limit) => WarmLock::acquire_waiting(&profile.lock_path(), limit).await?,
                None => WarmLock::acquire(&profile.lock_path())?,
            }));
        };
        let start = std::time::Instant::now();
        loop {
            let t = target.clone();
            let attempt =
                tokio::task::spawn_blocking(move || crate::cache::PgWarmLock::acquire(&t))
                    .await
                    .map_err(|_| CacheError::WriterStopped {
                        path: target.display_path(),
                    })??;
            match (attempt, wait) {
                (Ok(lock), _) => return Ok(SessionLock::Database(lock)),
                (Err(holder), None) => return Err(LockError::Held { holder }.into()),
                (Err(holder), Some(Some(limit))) if start.elapsed() >= limit => {
                    return Err(LockError::WaitTimedOut {
                        waited: limit,
                        holder,
                    }
                    .into());
                }
                (Err(_), Some(_)) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
}

impl WarmSession {
    /// Takes the profile's lock (waiting up to `wait` when given: `Some(None)`
    /// waits as long as it takes) and opens its cache, recreating it first
    /// when `reset`.
    pub async fn open(
        profile: &Profile,
        wait: Option<Option<Duration>>,
        reset: bool,
    ) -> Result<WarmSession, SessionError> {
        let location = profile.cache_location()?;
        let lock = SessionLock::acquire(profile, &location, wait).await?;
        let cache = if reset {
            Cache::reset(&location)?
        } else {
            Cache::open(&location)?
        };
        let writer = cache.writer()?;
        Ok(WarmSession {
            cache,
            writer,
            _lock: lock,
        })
    }

    /// The cache's single writer, for the caller's own maintenance.
    pub fn writer(&self) -> &CacheWriter {
        &self.writer
    }

    /// Ends the session: the writer finishes what it holds, the lock goes.
    pub async fn close(self) -> Result<(), SessionError> {
        self.writer.shutdown().await?;
        Ok(())
    }

    /// One warm run: recorded, connected, run until it ends or `stop`
    /// resolves or `max_duration` passes, then the cache is kept inside its
    /// `max_size` and the end is recorded.
    pub async fn warm(
        &self,
        profile: &Profile,
        request: WarmRequest,
        progress: Arc<dyn Progress>,
        stop: impl Future<Output = Interrupt>,
    ) -> Result<WarmOutcome, SessionError> {
        let writer = &self.writer;
        let mut stages = request.stages;
        let reader = self.cache.reader()?;
        let remembered = site::remembered_deployment(&reader, profile)?;
        if request.only_stale {
            let fresh = super::fresh_stages(&reader, &stages, super::now_ms())?;
            stages.retain(|s| !fresh.contains(s));
            if stages.is_empty() {
                return Ok(WarmOutcome::NothingToDo { fresh });
            }
        }
        drop(reader);
        let stage_names: Vec<String> = stages.iter().map(|s| s.as_str().to_string()).collect();
        let started_at = super::now_ms();
        let run_id = writer
            .run_start(RunStart {
                started_at,
                pid: std::process::id(),
                stages: stage_names,
            })
            .await?;

        let connection = match site::connect(profile, remembered, request.retry).await {
            Ok(c) => c,
            Err(e) => {
                writer
                    .run_finish(
                        run_id,
                        run_end(RunResult::Failed, vec![e.to_string()], None),
                    )
                    .await?;
                return Err(match e {
                    ConnectError::Profile(p) => p.into(),
                    other => SessionError::Connect {
                        profile: profile.name.clone(),
                        url: profile.url.to_string(),
                        source: other,
                    },
                });
            }
        };
        if connection.probed.is_some() {
            site::remember_deployment(writer, profile, connection.deployment).await?;
        }

        let projects = if request.projects.is_empty() {
            profile.projects.clone()
        } else {
            request.projects
        };
        let mut plan = WarmPlan::new(stages, projects);
        plan.issues = request.issues;
        plan.stage_delay = request.stage_delay;
        plan.fresh = request.fresh;
        let recorder = Arc::new(Recorder {
            inner: progress,
            finished: Mutex::new(Vec::new()),
        });
        let ctx = WarmContext {
            client: connection.client.clone(),
            writer: writer.clone(),
            ttl: profile.ttl,
            cache_path: self.cache.location(),
            issue_fields: profile.issue_fields.clone(),
            concurrency: profile.concurrency,
            progress: recorder.clone(),
            cache_failure: Arc::default(),
        };

        let ending = run_until_stopped(&plan, &ctx, request.max_duration, stop).await;
        let client_stats = connection.client.stats();
        let (mut report, code) = match ending {
            Ending::Finished(report) => {
                let code = exit_code(&report);
                (report, code)
            }
            Ending::Interrupted(Interrupt { code, signal }) => {
                let report = RunReport::stopped(
                    started_at,
                    recorder.finished_stages(),
                    client_stats,
                    RunResult::Interrupted,
                    format!("interrupted by {signal}"),
                );
                (report, code)
            }
            Ending::OutOfTime(limit) => {
                let message = format!(
                    "stopped after --max-duration {}; what was warmed is kept",
                    humantime::format_duration(limit)
                );
                (
                    RunReport::stopped(
                        started_at,
                        recorder.finished_stages(),
                        client_stats,
                        RunResult::Partial,
                        message,
                    ),
                    exit::PARTIAL,
                )
            }
        };

        report.rate = connection.client.rate_stats();
        let eviction = writer
            .enforce_max_size(profile.max_size, super::now_ms())
            .await?;
        if eviction.removed_expired + eviction.removed_lru > 0 {
            report.notes.push(format!(
                "the cache passed its max_size of {}: removed {} expired and {} least recently read entries",
                format_bytes(profile.max_size),
                eviction.removed_expired,
                eviction.removed_lru
            ));
        }
        let errors: Vec<String> = report.errors().map(|e| e.message.clone()).collect();
        let json = serde_json::to_string(&report).unwrap_or_default();
        writer
            .run_finish(
                run_id,
                run_end(report.result, errors, Some((&report, json))),
            )
            .await?;
        Ok(WarmOutcome::Ran {
            report: Box::new(report),
            exit_code: code,
        })
    }
}

/// Passes progress on, and keeps the reports of the stages that ended, so a
/// run stopped early still reports what it did.
struct Recorder {
    inner: Arc<dyn Progress>,
    finished: Mutex<Vec<StageReport>>,
}

impl Recorder {
    fn finished_stages(&self) -> Vec<StageReport> {
        self.finished.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

impl Progress for Recorder {
    fn stage_started(&self, stage: Stage, units: Option<u64>) {
        self.inner.stage_started(stage, units);
    }
    fn entries(&self, stage: Stage, count: u64) {
        self.inner.entries(stage, count);
    }
    fn unit_done(&self, stage: Stage) {
        self.inner.unit_done(stage);
    }
    fn line(&self, stage: Stage, text: &str) {
        self.inner.line(stage, text);
    }
    fn project_line(&self, stage: Stage, text: &str, ok: bool) {
        self.inner.project_line(stage, text, ok);
    }
    fn phase(&self, stage: Stage, phase: &str, done: u64, total: u64) {
        self.inner.phase(stage, phase, done, total);
    }
    fn stage_finished(&self, report: &StageReport) {
        if let Ok(mut finished) = self.finished.lock() {
            finished.push(report.clone());
        }
        self.inner.stage_finished(report);
    }
}

/// How the stages ended.
enum Ending {
    Finished(RunReport),
    Interrupted(Interrupt),
    OutOfTime(Duration),
}

/// Runs the plan until it finishes, `stop` resolves, or time runs out.
async fn run_until_stopped(
    plan: &WarmPlan,
    ctx: &WarmContext,
    max_duration: Option<Duration>,
    stop: impl Future<Output = Interrupt>,
) -> Ending {
    let deadline = async {
        match max_duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        report = super::run(plan, ctx) => Ending::Finished(report),
        interrupt = stop => Ending::Interrupted(interrupt),
        _ = deadline => Ending::OutOfTime(max_duration.unwrap_or_default()),
    }
}

fn run_end(result: RunResult, errors: Vec<String>, report: Option<(&RunReport, String)>) -> RunEnd {
    let (requests, totals, json) = match report {
        Some((r, json)) => (r.requests, r.totals(), json),
        None => (Default::default(), (0, 0, 0), String::new()),
    };
    RunEnd {
        ended_at: super::now_ms(),
        result,
        requests: requests.requests,
        retries: requests.retries,
        throttled: requests.throttled,
        written: totals.0,
        unchanged: totals.1,
        removed: totals.2,
        errors,
        report_json: json,
    }
}

/// The contract's exit code for a run that ended by itself.
pub fn exit_code(report: &RunReport) -> u8 {
    let kinds: Vec<ErrorKind> = report.errors().map(|e| e.kind).collect();
    match report.result {
        RunResult::Ok => exit::OK,
        _ if kinds.contains(&ErrorKind::Auth) => exit::CONFIG,
        _ if kinds.contains(&ErrorKind::Cache) => exit::CACHE_FILE,
        RunResult::Partial => exit::PARTIAL,
        _ => exit::FAILED,
    }
}

/// Human-readable byte count: `1.2 MiB`.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
