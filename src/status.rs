//! The figures `cache_status` shows: what is cached, how fresh, how big, how
//! often read, and how the last warms went. Gathered here, printed by the
//! binary (as a table or as JSON); `schema_version` versions the JSON, and
//! `schemas/cache_status.schema.json` describes it.
//!
//! [`check`] turns a report into the one-line verdict of
//! `cache_status --check`, for monitoring; [`prometheus`] into the text
//! `cache_status --prometheus` prints for Prometheus.

mod check;
mod prometheus;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::Category;
use crate::cache::{CacheError, CacheReader, ReadCounts, ReadSource, RunResult};
use crate::lock::WarmLock;
use crate::profile::Profile;

pub use check::{CheckLevel, CheckOutcome, QUICK_CHECK_EVERY, check, quick_check_due};
pub use prometheus::prometheus;

/// The version of the `--json` object's shape (2: runs carry `rate`).
pub const SCHEMA_VERSION: u32 = 2;

/// Everything `cache_status` shows for one profile.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The JSON shape's version.
    pub schema_version: u32,
    /// The moment the figures are for (RFC 3339): fresh and expired are
    /// counted against it.
    pub generated_at: String,
    /// The profile's name.
    pub profile: String,
    /// The site's URL.
    pub site: String,
    /// Cloud or Data Center, as stated or probed; `None` before the first warm.
    pub deployment: Option<String>,
    /// The cache file.
    pub cache_path: String,
    /// Whether the cache file exists.
    pub exists: bool,
    /// Bytes of cached entries (keys and values).
    pub total_bytes: u64,
    /// The profile's cap on `total_bytes`.
    pub max_size: u64,
    /// Size of the file on disk, WAL included.
    pub file_bytes: u64,
    /// When the newest run whose result is `ok` ended (RFC 3339); `partial`
    /// runs do not count. `None` if none ever did.
    pub last_success: Option<String>,
    /// One line per category.
    pub categories: Vec<CategoryStatus>,
    /// One line per project with cached issues or an issue watermark, by key.
    pub projects: Vec<ProjectStatus>,
    /// The last runs, newest first.
    pub runs: Vec<RunStatus>,
    /// Cached lists the site could not give in full (e.g. Cloud assignable
    /// users past the thousandth user of the site), by cache key.
    pub partial_lists: Vec<String>,
}

/// Figures of one category.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryStatus {
    /// The category.
    pub category: Category,
    /// Its TTL in seconds (for `issue`, the recent-issue TTL, `issue_recent`).
    pub ttl_seconds: u64,
    /// For `issue` only: the TTL of issues not updated in the last 7 days
    /// (`issue_old`), in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_old_seconds: Option<u64>,
    /// Entries cached.
    pub entries: u64,
    /// Entries not yet expired.
    pub fresh: u64,
    /// Entries past their expiry.
    pub expired: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
    /// Oldest fetch time (RFC 3339).
    pub oldest_fetch: Option<String>,
    /// Newest fetch time (RFC 3339).
    pub newest_fetch: Option<String>,
    /// The next time an entry expires (RFC 3339).
    pub next_expiry: Option<String>,
    /// Reads answered fresh, by programs: the library and `cache_serve`.
    /// These figures and `hit_rate` are what `--check` judges; `--get`
    /// reads are counted apart, in `reads_by_source`.
    pub hits: u64,
    /// Reads answered with a stale value.
    pub stale_hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// `(hits + stale_hits) / reads`, once there have been reads.
    pub hit_rate: Option<f64>,
    /// The reads of each source: `library`, `serve` (`cache_serve`) and
    /// `get` (`cache_status --get`).
    pub reads_by_source: BTreeMap<ReadSource, ReadCounts>,
}

impl CategoryStatus {
    /// Every read counted: hits, stale hits and misses.
    pub fn reads(&self) -> u64 {
        self.hits + self.stale_hits + self.misses
    }
}

/// The issues of one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectStatus {
    /// The project key.
    pub project: String,
    /// Issues cached.
    pub issues: u64,
    /// The incremental watermark (RFC 3339): every change before it is
    /// cached; the next warm asks only for issues changed since (minus a
    /// safety margin).
    /// `None` if the project's issues were never warmed.
    pub watermark: Option<String>,
    /// When the project's issues were last warmed (RFC 3339).
    pub issues_warmed: Option<String>,
}

/// One warm run of the history.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    /// The run's id.
    pub id: i64,
    /// Start (RFC 3339).
    pub started: String,
    /// End (RFC 3339), unless it never finished.
    pub ended: Option<String>,
    /// Duration in seconds, if it finished.
    pub seconds: Option<f64>,
    /// The stages asked for.
    pub stages: String,
    /// `ok`, `partial`, `failed`, `interrupted`, `running`, or `abandoned`
    /// (its process died before recording an end).
    pub result: String,
    /// HTTP requests sent.
    pub requests: u64,
    /// Of which retries.
    pub retries: u64,
    /// 429/503 answers received.
    pub throttled: u64,
    /// Entries written (new or changed).
    pub written: u64,
    /// Entries refreshed unchanged.
    pub unchanged: u64,
    /// Entries removed.
    pub removed: u64,
    /// Error lines.
    pub errors: Vec<String>,
    /// The pace the site allowed the run, from its report; `None` for a
    /// run that recorded none (unfinished, or from an older version).
    pub rate: Option<RunRate>,
}

/// How the site's rate limiting went in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRate {
    /// The profile's `rate_limit` (requests per second); `None`: unlimited.
    pub ceiling: Option<f64>,
    /// The pace the run settled at; `None`: never slowed below an
    /// unlimited ceiling.
    pub settled: Option<f64>,
    /// The slowest pace of the run.
    pub lowest: Option<f64>,
    /// Early slow-downs on `X-RateLimit-NearLimit` or a low `X-RateLimit-Remaining`.
    pub slowed_early: u64,
    /// Wall time every worker was paused by `Retry-After`, in seconds.
    pub waited_seconds: f64,
}

impl RunRate {
    /// The `rate` of a stored run report, if it has one.
    pub fn from_report(json: &str) -> Option<RunRate> {
        #[derive(serde::Deserialize)]
        struct Report {
            rate: crate::jira::RateStats,
        }
        let rate = serde_json::from_str::<Report>(json).ok()?.rate;
        Some(RunRate {
            ceiling: rate.ceiling,
            settled: rate.settled,
            lowest: rate.lowest,
            slowed_early: rate.slowed_early,
            waited_seconds: rate.waited_seconds,
        })
    }
}

/// An RFC 3339 UTC timestamp from Unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Unix milliseconds from an RFC 3339 timestamp (the inverse of [`rfc3339`]).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The TTL that applies to a category's entries.
pub fn ttl_of(profile: &Profile, category: Category) -> Duration {
    match category {
        Category::Project => profile.ttl.project,
        Category::Field => profile.ttl.field,
        Category::User => profile.ttl.user,
        Category::Issue => profile.ttl.issue_recent,
    }
}

/// The report for a profile whose cache file does not exist yet, as of
/// `now_ms`.
pub fn empty(profile: &Profile, now_ms: i64) -> StatusReport {
    StatusReport {
        schema_version: SCHEMA_VERSION,
        generated_at: rfc3339(now_ms),
        profile: profile.name.clone(),
        site: profile.url.to_string(),
        deployment: profile.deployment.map(|d| d.as_str().to_string()),
        cache_path: profile.cache_display(),
        exists: false,
        total_bytes: 0,
        max_size: profile.max_size,
        file_bytes: 0,
        last_success: None,
        categories: Category::ALL
            .iter()
            .map(|&c| CategoryStatus {
                category: c,
                ttl_seconds: ttl_of(profile, c).as_secs(),
                ttl_old_seconds: (c == Category::Issue).then_some(profile.ttl.issue_old.as_secs()),
                entries: 0,
                fresh: 0,
                expired: 0,
                bytes: 0,
                oldest_fetch: None,
                newest_fetch: None,
                next_expiry: None,
                hits: 0,
                stale_hits: 0,
                misses: 0,
                hit_rate: None,
                reads_by_source: ReadSource::ALL
                    .iter()
                    .map(|&s| (s, ReadCounts::default()))
                    .collect(),
            })
            .collect(),
        projects: Vec::new(),
        runs: Vec::new(),
        partial_lists: Vec::new(),
    }
}

/// Gathers the report from an open cache, as of `now_ms`, with the newest
/// `runs` runs.
pub fn gather(
    profile: &Profile,
    reader: &CacheReader,
    now_ms: i64,
    runs: usize,
) -> Result<StatusReport, CacheError> {
    let mut report = empty(profile, now_ms);
    report.exists = true;
    report.deployment =
        crate::site::remembered_deployment(reader, profile)?.map(|d| d.as_str().to_string());
    report.file_bytes = reader.file_size()?;
    let stats = reader.category_stats(now_ms)?;
    for s in stats {
        let Some(slot) = report
            .categories
            .iter_mut()
            .find(|c| c.category == s.category)
        else {
            continue;
        };
        let reads = s.hits + s.stale_hits + s.misses;
        *slot = CategoryStatus {
            category: s.category,
            ttl_seconds: slot.ttl_seconds,
            ttl_old_seconds: slot.ttl_old_seconds,
            entries: s.entries,
            fresh: s.fresh,
            expired: s.expired,
            bytes: s.bytes,
            oldest_fetch: s.oldest_fetch.map(rfc3339),
            newest_fetch: s.newest_fetch.map(rfc3339),
            next_expiry: s.next_expiry.map(rfc3339),
            hits: s.hits,
            stale_hits: s.stale_hits,
            misses: s.misses,
            hit_rate: (reads > 0).then(|| (s.hits + s.stale_hits) as f64 / reads as f64),
            reads_by_source: s.by_source,
        };
    }
    report.total_bytes = report.categories.iter().map(|c| c.bytes).sum();
    report.projects = projects(reader)?;
    report.last_success = reader.last_ended_at(RunResult::Ok)?.map(rfc3339);
    report.partial_lists = reader
        .meta(crate::warm::META_PARTIAL_ASSIGNABLE)?
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.is_empty())
        .map(|k| format!("assignable:{k}"))
        .collect();
    let lock_held = reader
        .warm_lock_held()
        .unwrap_or_else(|| WarmLock::is_held(&profile.lock_path()));
    report.runs = reader
        .runs(runs)?
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            // Only the newest run can be the one holding the lock; an older
            // run still marked running was killed before it could finish.
            let result = match r.result {
                RunResult::Running if !lock_held || i > 0 => "abandoned".to_string(),
                other => other.as_str().to_string(),
            };
            RunStatus {
                id: r.id.0,
                started: rfc3339(r.started_at),
                ended: r.ended_at.map(rfc3339),
                seconds: r
                    .ended_at
                    .map(|e| e.saturating_sub(r.started_at) as f64 / 1000.0),
                stages: r.stages.join(","),
                result,
                requests: r.requests.unwrap_or(0),
                retries: r.retries.unwrap_or(0),
                throttled: r.throttled.unwrap_or(0),
                written: r.written.unwrap_or(0),
                unchanged: r.unchanged.unwrap_or(0),
                removed: r.removed.unwrap_or(0),
                errors: r.errors,
                rate: r.report_json.as_deref().and_then(RunRate::from_report),
            }
        })
        .collect();
    Ok(report)
}

/// Issues per project, joined with the watermarks: a project appears if it
/// has cached issues, a watermark, or both.
fn projects(reader: &CacheReader) -> Result<Vec<ProjectStatus>, CacheError> {
    let mut by_key: BTreeMap<String, ProjectStatus> = BTreeMap::new();
    let blank = |project: &str| ProjectStatus {
        project: project.to_string(),
        issues: 0,
        watermark: None,
        issues_warmed: None,
    };
    for (project, issues) in reader.issue_counts_by_project()? {
        by_key
            .entry(project.clone())
            .or_insert_with(|| blank(&project))
            .issues = issues;
    }
    for w in reader.watermarks()? {
        let slot = by_key
            .entry(w.project.clone())
            .or_insert_with(|| blank(&w.project));
        slot.watermark = Some(rfc3339(w.newest_updated_ms));
        slot.issues_warmed = Some(rfc3339(w.warmed_at));
    }
    Ok(by_key.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_to_the_second() {
        let ms = 1_764_136_800_000;
        assert_eq!(rfc3339(ms), "2025-11-26T06:00:00Z");
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
