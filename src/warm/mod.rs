//! Staged warming: the stages of `CACHE_WARMING.md`'s priority table, run in
//! that order (projects → fields → users → issues), each reporting what it
//! did, none able to lose what an earlier warm cached.
//!
//! Guarantees:
//! - Every page is written atomically as it arrives; a stage that
//!   fails part-way keeps what it wrote and what was cached before.
//! - Entries are only removed by reconciliation, after a listing that ended
//!   by the server's own end signal, untruncated and without error.
//! - Once a stage fails because the credentials were refused, the site
//!   cannot be reached, the site's throttling ended the run (a `Retry-After`
//!   above the limit, or the retry budget spent) or the cache file failed
//!   (disk full, corrupt, unwritable), the later stages are skipped: they
//!   would fail too.

mod fields;
mod freshness;
mod issues;
mod progress;
mod projects;
mod report;
mod session;
mod users;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use crate::Category;
use crate::cache::{CacheError, CacheWriter, KeyScope, Listing, NewEntry};
use crate::jira::{JiraClient, JiraError, RequestStats};

pub use freshness::{FreshPolicy, ListingVerdict, MIN_SCHEDULE_MARGIN, complete_marker};
pub use issues::{IssueOptions, jql_quote, parse_jira_time, project_jql};
pub use progress::{NoProgress, Progress};
pub use report::{ErrorKind, RunReport, RunResult, StageError, StageReport, StageStatus};
pub use session::{
    Interrupt, SessionError, WarmOutcome, WarmRequest, WarmSession, exit_code, format_bytes,
    until_signal,
};
pub use users::{ASSIGNABLE_PHASE, DC_USER_SEARCH_CAP, META_PARTIAL_ASSIGNABLE};

/// A warm stage, in priority order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Every project in scope (the `project` category).
    Projects,
    /// Fields, issue types, priorities, statuses, resolutions (`field`).
    Fields,
    /// Users and the assignable users of each project (`user`).
    Users,
    /// The recent issues of each project in scope (`issue`).
    Issues,
}

impl Stage {
    /// Every stage, in priority order.
    pub const ALL: [Stage; 4] = [Stage::Projects, Stage::Fields, Stage::Users, Stage::Issues];

    /// The stage's name, as the CLI flag spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Projects => "projects",
            Stage::Fields => "fields",
            Stage::Users => "users",
            Stage::Issues => "issues",
        }
    }

    /// The category the stage writes.
    pub fn category(self) -> Category {
        match self {
            Stage::Projects => Category::Project,
            Stage::Fields => Category::Field,
            Stage::Users => Category::User,
            Stage::Issues => Category::Issue,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Time to live of each kind of entry: the profile's `[ttl]` table.
pub use crate::profile::Ttls;

/// What a warm run does: which stages, over which projects.
#[derive(Debug, Clone, Default)]
pub struct WarmPlan {
    /// The stages, deduplicated and run in priority order.
    pub stages: Vec<Stage>,
    /// Projects in scope of per-project stages; empty means all projects.
    pub projects: Vec<String>,
    /// Pause between stages.
    pub stage_delay: Duration,
    /// What the issues stage does.
    pub issues: IssueOptions,
    /// Which still-fresh listings the metadata and users stages skip.
    pub fresh: FreshPolicy,
}

impl WarmPlan {
    /// A plan of these stages over these projects.
    pub fn new(stages: impl IntoIterator<Item = Stage>, projects: Vec<String>) -> WarmPlan {
        let mut stages: Vec<Stage> = stages
            .into_iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        stages.sort();
        WarmPlan {
            stages,
            projects,
            stage_delay: Duration::ZERO,
            issues: IssueOptions::default(),
            fresh: FreshPolicy::default(),
        }
    }
}

/// What the stages work with.
#[derive(Clone)]
pub struct WarmContext {
    /// The Jira client of this run.
    pub client: JiraClient,
    /// The cache's single writer.
    pub writer: CacheWriter,
    /// Entry lifetimes.
    pub ttl: Ttls,
    /// The cache file (stages open their own readers).
    pub cache_path: crate::cache::CacheLocation,
    /// The issue fields to cache (the profile's `issue_fields`).
    pub issue_fields: Vec<String>,
    /// How many per-project listings run at once.
    pub concurrency: usize,
    /// Where progress goes ([`NoProgress`] for nowhere).
    pub progress: Arc<dyn Progress>,
    /// Set at the run's first cache-file error (a full disk, a corrupt or
    /// unwritable file); see [`WarmContext::cache_failed`]. A new context
    /// starts with `Arc::default()` (not set).
    pub cache_failure: Arc<AtomicBool>,
}

impl WarmContext {
    /// Whether a write to the cache file has failed in this run. Nothing
    /// fetched after that could be stored, so from then on no stage starts
    /// another fetch: the stage in progress stops where it is (what was
    /// written stays) and the run stops after it.
    pub fn cache_failed(&self) -> bool {
        self.cache_failure.load(Ordering::SeqCst)
    }

    /// Notes `error` if it is the cache file's (see [`Self::cache_failed`]).
    pub(crate) fn note_error(&self, error: &WarmError) {
        if matches!(error, WarmError::Cache(_)) {
            self.cache_failure.store(true, Ordering::SeqCst);
        }
    }
}

impl std::fmt::Debug for WarmContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmContext")
            .field("client", &self.client)
            .field("cache_path", &self.cache_path)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// A duration in whole milliseconds as SQLite stores times, saturating:
/// a TTL or window from a profile can be longer than `i64` milliseconds
/// (`as` would wrap it to a time in the past).
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs the plan's stages in order; never fails as a whole: each stage's
/// outcome is in the report.
///
/// The fields, users and issues stages need nothing of each other, only
/// the projects before them (the scope): with no pause between stages they
/// run together, sharing the client's permits and pace, so the site sees no more
/// requests at once than the profile's `concurrency`. Each stage's figures
/// are its own ([`JiraClient::counted_apart`]), its line comes as it ends,
/// and the report keeps the plan's order.
pub async fn run(plan: &WarmPlan, ctx: &WarmContext) -> RunReport {
    let started = chrono::Utc::now();
    let start = Instant::now();
    let mut stages: Vec<StageReport> = Vec::with_capacity(plan.stages.len());
    let mut stop: Option<String> = None;
    let mut scope: Option<Vec<String>> = None;
    let mut cache_error_said = false;
    let mut i = 0;
    while i < plan.stages.len() {
        let len = match plan.stage_delay.is_zero() {
            true => plan.stages[i..]
                .iter()
                .take_while(|s| TOGETHER.contains(s))
                .count()
                .max(1),
            false => 1,
        };
        let group = &plan.stages[i..i + len];
        let first = i == 0;
        i += group.len();
        if let Some(reason) = &stop {
            for &stage in group {
                let report = StageReport::skipped(stage, reason.clone());
                ctx.progress.stage_finished(&report);
                stages.push(report);
            }
            continue;
        }
        if !first && !plan.stage_delay.is_zero() {
            tokio::time::sleep(plan.stage_delay).await;
        }
        let mut scope_error = None;
        if scope.is_none() && group.iter().any(|&s| needs_scope(plan, s)) {
            match resolve_scope(plan, ctx).await {
                Ok(keys) => scope = Some(keys),
                Err(e) => scope_error = Some(StageError::from(e)),
            }
        }
        let one = |stage: Stage| {
            let scope_error = scope_error.clone().filter(|_| needs_scope(plan, stage));
            let scope = scope.clone().unwrap_or_default();
            let (plan, ctx) = (plan.clone(), ctx.clone());
            // Started here, in the plan's order, whichever task runs first
            // (the output shows the stages' lines in the order they started).
            tracing::info!(stage = stage.as_str(), "stage starts");
            let units = match scope_error {
                None if stage == Stage::Issues && plan.issues.recent => Some(scope.len() as u64),
                _ => None,
            };
            ctx.progress.stage_started(stage, units);
            // Each stage is a task of its own: what one stage does on its
            // thread between requests (decoding, deciding, reading the
            // cache) never keeps another from starting its next request.
            crate::task::Owned::spawn(async move {
                let report = match scope_error {
                    Some(error) => {
                        let mut report = StageReport::new(stage);
                        report.errors.push(error);
                        report.finish(Duration::ZERO, ctx.client.stats(), ctx.client.stats());
                        report
                    }
                    None => run_stage(stage, &plan, &scope, &ctx).await,
                };
                ctx.progress.stage_finished(&report);
                report
            })
        };
        // Dropped with the run's future (an interrupt, `--max-duration`),
        // they stop as stages run in place did.
        let tasks: Vec<_> = group.iter().map(|&stage| one(stage)).collect();
        let mut reports = Vec::with_capacity(tasks.len());
        for task in tasks {
            match task.join().await {
                Some(report) => reports.push(report),
                // Only a runtime shutting down stops it: nothing to report.
                None => {
                    return RunReport::new(started, start.elapsed(), stages, ctx.client.stats());
                }
            }
        }
        for mut report in reports {
            if report.errors.iter().any(|e| e.kind == ErrorKind::Cache) {
                // Stages run together can both meet the cache file's error
                // (a full disk): it is said once, by the first of them.
                ctx.cache_failure.store(true, Ordering::SeqCst);
                if std::mem::replace(&mut cache_error_said, true) {
                    report.errors.retain(|e| e.kind != ErrorKind::Cache);
                    report
                        .notes
                        .push("stopped by the same cache file error".to_string());
                }
            }
            if stop.is_none()
                && let Some(e) = report.errors.iter().find(|e| {
                    matches!(
                        e.kind,
                        ErrorKind::Auth
                            | ErrorKind::Unreachable
                            | ErrorKind::Throttled
                            | ErrorKind::Cache
                    )
                })
            {
                stop = Some(format!(
                    "the {} stage failed ({})",
                    report.stage,
                    e.kind.describe()
                ));
            }
            stages.push(report);
        }
    }
    let mut report = RunReport::new(started, start.elapsed(), stages, ctx.client.stats());
    report.rate = ctx.client.rate_stats();
    report
}

/// The stages that run together (see [`run`]).
const TOGETHER: [Stage; 3] = [Stage::Fields, Stage::Users, Stage::Issues];

/// Whether a stage works project by project, over the run's scope.
fn needs_scope(plan: &WarmPlan, stage: Stage) -> bool {
    stage == Stage::Users || (stage == Stage::Issues && plan.issues.recent)
}

/// The projects per-project stages cover: the plan's, else every project
/// the cache knows (the projects stage runs first in `--all`), else every
/// project the site lists.
async fn resolve_scope(plan: &WarmPlan, ctx: &WarmContext) -> Result<Vec<String>, WarmError> {
    if !plan.projects.is_empty() {
        return Ok(plan.projects.clone());
    }
    let cached: Vec<String> = crate::cache::Cache::open_read_only(&ctx.cache_path)?
        .keys(Category::Project, None)?
        .into_iter()
        .filter(|k| !k.starts_with("list:"))
        .collect();
    if !cached.is_empty() {
        return Ok(cached);
    }
    let (items, _) = ctx.client.projects(&[]).collect_all().await?;
    Ok(items
        .iter()
        .filter_map(|i| crate::jira::by_key(i))
        .collect())
}

async fn run_stage(
    stage: Stage,
    plan: &WarmPlan,
    scope: &[String],
    ctx: &WarmContext,
) -> StageReport {
    // The stage's own traffic, whatever runs beside it.
    let ctx = &WarmContext {
        client: ctx.client.counted_apart(),
        ..ctx.clone()
    };
    let start = Instant::now();
    let mut report = StageReport::new(stage);
    let skip = match fresh_listings(stage, plan, scope, ctx) {
        Ok(verdicts) => {
            // The stage's own line counts them ("N fresh listings not
            // fetched"); the report keeps their names, `--dry-run` the reasons.
            let skip = freshness::skipped(&verdicts);
            report.skipped = verdicts.into_iter().filter(|v| v.skip).collect();
            skip
        }
        Err(e) => {
            // Without the cache's word, everything is fetched.
            tracing::warn!(error = %e, "cannot tell which listings are fresh; fetching all");
            HashSet::new()
        }
    };
    let result = match stage {
        Stage::Projects => projects::warm(ctx, &plan.projects, &skip, &mut report).await,
        Stage::Fields => fields::warm(ctx, &skip, &mut report).await,
        Stage::Users => users::warm(ctx, scope, &skip, &mut report).await,
        Stage::Issues => issues::warm(ctx, scope, &plan.issues, &mut report).await,
    };
    if let Err(e) = result {
        report.errors.push(e.into());
    }
    one_cache_error(&mut report);
    report.finish(
        start.elapsed(),
        RequestStats::default(),
        ctx.client.own_stats(),
    );
    tracing::info!(stage = stage.as_str(), status = ?report.status, items = report.items, "stage ends");
    report
}

/// Keeps only the first cache-file error of a stage: a full disk or a
/// corrupt file fails every project the same way, and one line says it
/// (the run stops after this stage; what was written stays).
fn one_cache_error(report: &mut StageReport) {
    let mut seen = 0usize;
    report.errors.retain(|e| {
        if e.kind != ErrorKind::Cache {
            return true;
        }
        seen += 1;
        seen == 1
    });
    if seen > 1 {
        report.notes.push(format!(
            "{} more parts of the stage failed on the same cache file error",
            seen - 1
        ));
    }
}

/// The verdicts on the stage's listings, when the plan skips fresh ones.
fn fresh_listings(
    stage: Stage,
    plan: &WarmPlan,
    scope: &[String],
    ctx: &WarmContext,
) -> Result<Vec<ListingVerdict>, CacheError> {
    if !plan.fresh.skip_fresh || stage == Stage::Issues {
        return Ok(Vec::new());
    }
    let reader = crate::cache::Cache::open_read_only(&ctx.cache_path)?;
    plan.fresh
        .verdicts(&reader, stage, &plan.projects, scope, &ctx.ttl, now_ms())
}

/// Why a stage (or part of one) failed.
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    /// Jira failed.
    #[error(transparent)]
    Jira(#[from] JiraError),
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// The stages whose entries are all still fresh (`--only-stale` skips
/// them); a stage with nothing cached is never fresh.
pub fn fresh_stages(
    reader: &crate::cache::CacheReader,
    stages: &[Stage],
    now_ms: i64,
) -> Result<Vec<Stage>, CacheError> {
    let stats = reader.category_stats(now_ms)?;
    Ok(stages
        .iter()
        .copied()
        .filter(|s| {
            stats
                .iter()
                .any(|c| c.category == s.category() && c.entries > 0 && c.expired == 0)
        })
        .collect())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A cache entry for one item as Jira sent it.
pub(crate) fn entry(
    category: Category,
    key: String,
    value: &RawValue,
    ttl: Duration,
    now: i64,
) -> NewEntry {
    NewEntry {
        category,
        key,
        value: value.get().to_string(),
        fetched_at: now,
        expires_at: now.saturating_add(millis(ttl)),
        fetch_ms: 0,
        project: None,
        updated_at: None,
    }
}

/// Records how long the fetch of these entries took (δ of early refresh).
pub(crate) fn stamp_fetch_ms(entries: &mut [NewEntry], fetch_ms: i64) {
    for e in entries {
        e.fetch_ms = fetch_ms;
    }
}

/// A JSON array of raw items, byte for byte as received.
pub(crate) fn json_array<'a>(items: impl IntoIterator<Item = &'a RawValue>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item.get());
    }
    out.push(']');
    out
}

/// Ends a complete run of `listing` that returned the keys `listed`: they
/// take the run's times, and with `removal` (a scope and keys kept besides
/// `listed`) the entries of the scope it proves gone are removed.
pub(crate) async fn finish_listing(
    ctx: &WarmContext,
    listing: Listing,
    listed: HashSet<String>,
    removal: Option<(KeyScope, HashSet<String>)>,
    report: &mut StageReport,
) -> Result<(), WarmError> {
    let marker = complete_marker(listing.category, &listing.name);
    let at = listing.fetched_at.to_string();
    report.removed += ctx.writer.finish_listing(listing, listed, removal).await?;
    // On record for `FreshPolicy`: only a listing that once completed may
    // be skipped while fresh.
    ctx.writer.set_meta(marker, at).await?;
    Ok(())
}

/// How many per-project listings run at once: twice the request limit, so
/// that while some wait for the cache writer to commit their page, others
/// keep every request slot busy (the client's own limit still caps the
/// requests in flight).
pub(crate) fn listings_at_once(ctx: &WarmContext) -> usize {
    ctx.concurrency.max(1) * 2
}

/// Records a line of the stage's report and shows it at once.
pub(crate) fn say(ctx: &WarmContext, report: &mut StageReport, line: String) {
    ctx.progress.line(report.stage, &line);
    report.lines.push(line);
}

/// Writes one page and counts it.
pub(crate) async fn write_page(
    ctx: &WarmContext,
    entries: Vec<NewEntry>,
    report: &mut StageReport,
) -> Result<(), WarmError> {
    write_page_of(ctx, None, entries, report).await
}

/// Drops the entries whose key a server could not have meant (see
/// [`Category::key_problem`]: `""`, `ALPHA-\n4`, `../ALPHA-2`, an RTL
/// override…) before they are stored, and reports each: a warning in the
/// log, a line of progress, and the returned notes for the stage's report.
/// Keys are shown escaped, never raw.
pub(crate) fn refuse_bad_keys(
    ctx: &WarmContext,
    stage: Stage,
    entries: &mut Vec<NewEntry>,
) -> Vec<String> {
    let mut notes = Vec::new();
    entries.retain(|e| match e.category.key_problem(&e.key) {
        None => true,
        Some(problem) => {
            let shown = crate::scrub::for_terminal(&e.key);
            let note = format!(
                "refused {} key \"{shown}\" from the site ({problem}); it was not cached",
                e.category
            );
            tracing::warn!("{note}");
            ctx.progress.line(stage, &note);
            notes.push(note);
            false
        }
    });
    notes
}

/// A run of the complete listing `name` of `category` that starts now: its
/// entries will carry its times (see [`Listing`]).
pub(crate) fn listing(category: Category, name: &str, ttl: Duration) -> Listing {
    let fetched_at = now_ms();
    Listing {
        category,
        name: name.to_string(),
        fetched_at,
        expires_at: fetched_at.saturating_add(millis(ttl)),
    }
}

/// Writes one page, of `listing` if given (with the page's position in its
/// run), and counts it.
pub(crate) async fn write_page_of(
    ctx: &WarmContext,
    listing: Option<(&Listing, u32)>,
    mut entries: Vec<NewEntry>,
    report: &mut StageReport,
) -> Result<(), WarmError> {
    let refused = refuse_bad_keys(ctx, report.stage, &mut entries);
    report.notes.extend(refused);
    if entries.is_empty() {
        return Ok(());
    }
    let outcome = match listing {
        Some((listing, page)) => {
            ctx.writer
                .put_listing_page(listing.clone(), page, entries)
                .await?
        }
        None => ctx.writer.put_page(entries).await?,
    };
    report.written += outcome.written;
    report.unchanged += outcome.unchanged;
    ctx.progress
        .entries(report.stage, outcome.written + outcome.unchanged);
    Ok(())
}
