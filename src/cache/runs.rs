//! The history of warm runs, kept in the cache file so that `cache_status`
//! can tell when the last successful warm was and what it did.

use std::fmt;
use std::str::FromStr;

use rusqlite::{Connection, params};

use super::{from_sql_int, to_sql_int};

/// The id of a run row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunResult {
    /// Started and not finished: still running, or killed without a chance
    /// to record its end.
    Running,
    /// Every stage succeeded.
    Ok,
    /// Some stage failed, the others succeeded.
    Partial,
    /// Nothing useful was done.
    Failed,
    /// Stopped by SIGINT or SIGTERM.
    Interrupted,
}

impl RunResult {
    /// The name stored and shown: `running`, `ok`, `partial`, `failed`,
    /// `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Running => "running",
            RunResult::Ok => "ok",
            RunResult::Partial => "partial",
            RunResult::Failed => "failed",
            RunResult::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for RunResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunResult {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "running" => RunResult::Running,
            "ok" => RunResult::Ok,
            "partial" => RunResult::Partial,
            "failed" => RunResult::Failed,
            "interrupted" => RunResult::Interrupted,
            other => return Err(format!("unknown run result `{other}`")),
        })
    }
}

/// The start of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStart {
    /// Unix ms.
    pub started_at: i64,
    /// The warming process.
    pub pid: u32,
    /// The stages requested, in order.
    pub stages: Vec<String>,
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    /// Unix ms.
    pub ended_at: i64,
    /// How it ended.
    pub result: RunResult,
    /// HTTP requests sent.
    pub requests: u64,
    /// Of which retries.
    pub retries: u64,
    /// Responses that were 429/503 with `Retry-After`.
    pub throttled: u64,
    /// Entries written (new or changed).
    pub written: u64,
    /// Entries refreshed with an unchanged value.
    pub unchanged: u64,
    /// Entries removed by reconciliation.
    pub removed: u64,
    /// One line per error.
    pub errors: Vec<String>,
    /// The whole run report, as JSON.
    pub report_json: String,
}

/// A run as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunRecord {
    /// The run's id (increasing).
    pub id: RunId,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms; `None` while running (or if the run was killed).
    pub ended_at: Option<i64>,
    /// The warming process.
    pub pid: u32,
    /// The stages requested.
    pub stages: Vec<String>,
    /// How it ended.
    pub result: RunResult,
    /// HTTP requests sent.
    pub requests: Option<u64>,
    /// Of which retries.
    pub retries: Option<u64>,
    /// Throttled responses.
    pub throttled: Option<u64>,
    /// Entries written.
    pub written: Option<u64>,
    /// Entries refreshed unchanged.
    pub unchanged: Option<u64>,
    /// Entries removed.
    pub removed: Option<u64>,
    /// One line per error.
    pub errors: Vec<String>,
    /// The whole run report, as JSON text.
    pub report_json: Option<String>,
}

pub(crate) fn run_start(conn: &Connection, start: &RunStart) -> rusqlite::Result<RunId> {
    conn.prepare_cached(
        "INSERT INTO runs (started_at, pid, stages, result) VALUES (?1, ?2, ?3, 'running')",
    )?
    .insert(params![
        start.started_at,
        i64::from(start.pid),
        start.stages.join(",")
    ])
    .map(RunId)
}

pub(crate) fn run_finish(conn: &Connection, id: RunId, end: &RunEnd) -> rusqlite::Result<()> {
    // Run history is the cache's copy of what went wrong: it passes the
    // one scrubber, whoever built the messages.
    let scrubbed: Vec<String> = end
        .errors
        .iter()
        .map(|e| crate::scrub::scrub(e).into_owned())
        .collect();
    let errors = serde_json::to_string(&scrubbed).expect("a list of strings serializes");
    let report_json = crate::scrub::scrub(&end.report_json);
    conn.prepare_cached(
        "UPDATE runs SET ended_at = ?2, result = ?3, requests = ?4, retries = ?5, throttled = ?6,
                         written = ?7, unchanged = ?8, removed = ?9, errors = ?10, report = ?11
         WHERE id = ?1",
    )?
    .execute(params![
        id.0,
        end.ended_at,
        end.result.as_str(),
        to_sql_int(end.requests),
        to_sql_int(end.retries),
        to_sql_int(end.throttled),
        to_sql_int(end.written),
        to_sql_int(end.unchanged),
        to_sql_int(end.removed),
        errors,
        report_json.as_ref()
    ])?;
    Ok(())
}

/// The newest `limit` runs, newest first.
pub(crate) fn runs(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<RunRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, started_at, ended_at, pid, stages, result, requests, retries, throttled,
                written, unchanged, removed, errors, report
         FROM runs ORDER BY id DESC LIMIT ?1",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let count = |i: usize, row: &rusqlite::Row<'_>| -> rusqlite::Result<Option<u64>> {
        Ok(row.get::<_, Option<i64>>(i)?.map(from_sql_int))
    };
    stmt.query_map([limit], |row| {
        let stages: String = row.get(4)?;
        let result: String = row.get(5)?;
        let errors: Option<String> = row.get(12)?;
        Ok(RunRecord {
            id: RunId(row.get(0)?),
            started_at: row.get(1)?,
            ended_at: row.get(2)?,
            pid: u32::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
            stages: stages
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            result: result.parse().map_err(|e: String| {
                rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, e.into())
            })?,
            requests: count(6, row)?,
            retries: count(7, row)?,
            throttled: count(8, row)?,
            written: count(9, row)?,
            unchanged: count(10, row)?,
            removed: count(11, row)?,
            errors: match errors {
                Some(json) => serde_json::from_str(&json).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        12,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?,
                None => Vec::new(),
            },
            report_json: row.get(13)?,
        })
    })?
    .collect()
}

pub(crate) fn last_ended_at(conn: &Connection, result: RunResult) -> rusqlite::Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached(
        "SELECT ended_at FROM runs WHERE result = ?1 AND ended_at IS NOT NULL ORDER BY id DESC LIMIT 1",
    )?
    .query_row([result.as_str()], |row| row.get(0))
    .optional()
}
