//! The figures `cache_status` shows: what is cached, how fresh, how big, how
//! often read, and how the last warms went. Gathered here, printed by the
//! binary (as a table or as JSON); `schema_version` versions the JSON.

use std::time::Duration;

use serde::Serialize;

use crate::Category;
use crate::cache::{CacheError, CacheReader, RunResult};
use crate::lock::WarmLock;
use crate::profile::Profile;

/// The version of the `--json` object's shape.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything `cache_status` shows for one profile.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The JSON shape's version.
    pub schema_version: u32,
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
    /// One line per category.
    pub categories: Vec<CategoryStatus>,
    /// The last runs, newest first.
    pub runs: Vec<RunStatus>,
}

/// Figures of one category.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryStatus {
    /// The category.
    pub category: Category,
    /// Its TTL in seconds (for `issue`, the recent-issue TTL).
    pub ttl_seconds: u64,
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
    /// Reads answered fresh.
    pub hits: u64,
    /// Reads answered with a stale value.
    pub stale_hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// `(hits + stale_hits) / reads`, once there have been reads.
    pub hit_rate: Option<f64>,
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
}

/// An RFC 3339 UTC timestamp from Unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
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

/// The report for a profile whose cache file does not exist yet.
pub fn empty(profile: &Profile) -> StatusReport {
    StatusReport {
        schema_version: SCHEMA_VERSION,
        profile: profile.name.clone(),
        site: profile.url.to_string(),
        deployment: profile.deployment.map(|d| d.as_str().to_string()),
        cache_path: profile.cache_path().display().to_string(),
        exists: false,
        total_bytes: 0,
        max_size: profile.max_size,
        file_bytes: 0,
        categories: Category::ALL
            .iter()
            .map(|&c| CategoryStatus {
                category: c,
                ttl_seconds: ttl_of(profile, c).as_secs(),
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
            })
            .collect(),
        runs: Vec::new(),
    }
}

/// Gathers the report from an open cache.
pub fn gather(
    profile: &Profile,
    reader: &CacheReader,
    now_ms: i64,
    runs: usize,
) -> Result<StatusReport, CacheError> {
    let mut report = empty(profile);
    report.exists = true;
    if report.deployment.is_none()
        && reader.meta("site_url")?.as_deref() == Some(profile.url.as_str())
    {
        report.deployment = reader.meta("deployment")?;
    }
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
        };
    }
    report.total_bytes = report.categories.iter().map(|c| c.bytes).sum();
    let lock_held = WarmLock::is_held(&profile.lock_path());
    report.runs = reader
        .runs(runs)?
        .into_iter()
        .map(|r| {
            let result = match r.result {
                RunResult::Running if !lock_held => "abandoned".to_string(),
                other => other.as_str().to_string(),
            };
            RunStatus {
                id: r.id.0,
                started: rfc3339(r.started_at),
                ended: r.ended_at.map(rfc3339),
                seconds: r.ended_at.map(|e| (e - r.started_at) as f64 / 1000.0),
                stages: r.stages.join(","),
                result,
                requests: r.requests.unwrap_or(0),
                retries: r.retries.unwrap_or(0),
                throttled: r.throttled.unwrap_or(0),
                written: r.written.unwrap_or(0),
                unchanged: r.unchanged.unwrap_or(0),
                removed: r.removed.unwrap_or(0),
                errors: r.errors,
            }
        })
        .collect();
    Ok(report)
}
