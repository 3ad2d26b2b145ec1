//! What a warm run did, stage by stage: what `cache_warm` prints, what goes
//! into the cache's run history, and what decides the exit code.

use std::time::Duration;

use serde::Serialize;

use super::{Stage, WarmError};
pub use crate::cache::RunResult;
use crate::jira::{JiraError, RateStats, RequestStats};

/// How a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    /// Everything it tried worked.
    Ok,
    /// Some of it worked, some failed.
    Partial,
    /// Nothing worked.
    Failed,
    /// Not run (an earlier stage showed it could not work).
    Skipped,
}

/// The kind of an error, as far as the user's next step is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// Credentials refused (a 401, or a 403 on the account's identity).
    Auth,
    /// One resource refused to this account (a 403): that part failed,
    /// the rest of the run goes on.
    Forbidden,
    /// The site could not be reached.
    Unreachable,
    /// The site kept throttling.
    Throttled,
    /// The cache file failed.
    Cache,
    /// Anything else (a bad answer, broken paging).
    Other,
}

impl ErrorKind {
    /// A few words for the kind.
    pub fn describe(self) -> &'static str {
        match self {
            ErrorKind::Auth => "credentials refused",
            ErrorKind::Forbidden => "permission denied",
            ErrorKind::Unreachable => "site unreachable",
            ErrorKind::Throttled => "site throttling",
            ErrorKind::Cache => "cache file error",
            ErrorKind::Other => "error",
        }
    }
}

/// One error of a stage: its kind and its one-line message.
#[derive(Debug, Clone, Serialize)]
pub struct StageError {
    /// The kind.
    pub kind: ErrorKind,
    /// The message (never a secret).
    pub message: String,
}

impl From<WarmError> for StageError {
    fn from(e: WarmError) -> StageError {
        let kind = match &e {
            WarmError::Jira(j) => jira_kind(j),
            WarmError::Cache(_) => ErrorKind::Cache,
        };
        StageError::new(kind, e.to_string())
    }
}

impl StageError {
    /// An error of `kind` with `message`, any secret in it scrubbed: the
    /// message goes to output, `--json` and run history, and a site can
    /// echo credentials in any text it sends.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> StageError {
        let message = message.into();
        StageError {
            kind,
            message: crate::scrub::scrub(&message).into_owned(),
        }
    }
}

fn jira_kind(e: &JiraError) -> ErrorKind {
    if e.is_auth() {
        ErrorKind::Auth
    } else if e.is_forbidden() {
        ErrorKind::Forbidden
    } else if e.is_unreachable() {
        ErrorKind::Unreachable
    } else if e.is_throttled() {
        ErrorKind::Throttled
    } else {
        ErrorKind::Other
    }
}

/// What one stage did.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// The stage.
    pub stage: Stage,
    /// How it ended.
    pub status: StageStatus,
    /// Items received from Jira and cached.
    pub items: u64,
    /// Entries whose value was new or changed.
    pub written: u64,
    /// Entries refreshed with an identical value (not rewritten).
    pub unchanged: u64,
    /// Entries removed by reconciliation.
    pub removed: u64,
    /// HTTP requests the stage sent.
    pub requests: u64,
    /// Of which retries.
    pub retries: u64,
    /// 429/503 answers received.
    pub throttled: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Lines worth showing (e.g. `Warmed 100 issues for PROJ`).
    pub lines: Vec<String>,
    /// Warnings that are not errors (e.g. a truncated listing).
    pub notes: Vec<String>,
    /// Errors.
    pub errors: Vec<StageError>,
    /// Listings not fetched because they are still fresh, and why.
    pub skipped: Vec<super::ListingVerdict>,
    /// Parts of the stage that succeeded (e.g. `fields`, `statuses`).
    #[serde(skip)]
    pub parts_ok: u32,
}

impl StageReport {
    /// A report for a stage about to run.
    pub fn new(stage: Stage) -> StageReport {
        StageReport {
            stage,
            status: StageStatus::Ok,
            items: 0,
            written: 0,
            unchanged: 0,
            removed: 0,
            requests: 0,
            retries: 0,
            throttled: 0,
            seconds: 0.0,
            lines: Vec::new(),
            notes: Vec::new(),
            errors: Vec::new(),
            skipped: Vec::new(),
            parts_ok: 0,
        }
    }

    /// A stage that was not run, and why.
    pub fn skipped(stage: Stage, reason: String) -> StageReport {
        let mut r = StageReport::new(stage);
        r.status = StageStatus::Skipped;
        r.notes.push(reason);
        r
    }

    /// Records the stage's time and traffic and settles its status.
    pub fn finish(&mut self, elapsed: Duration, before: RequestStats, after: RequestStats) {
        self.seconds = elapsed.as_secs_f64();
        self.requests = after.requests - before.requests;
        self.retries = after.retries - before.retries;
        self.throttled = after.throttled - before.throttled;
        self.status = match (self.errors.is_empty(), self.parts_ok > 0) {
            (true, _) => StageStatus::Ok,
            (false, true) => StageStatus::Partial,
            (false, false) => StageStatus::Failed,
        };
    }

    /// The one-line summary, e.g. `Warmed 312 projects in 0.8 s`.
    pub fn summary(&self) -> String {
        let (one, many) = match self.stage {
            Stage::Projects => ("project", "projects"),
            Stage::Fields => ("field entry", "field entries"),
            Stage::Users => ("user", "users"),
            Stage::Issues => ("issue", "issues"),
        };
        let what = if self.items == 1 { one } else { many };
        match self.status {
            StageStatus::Skipped => format!("Skipped {}: {}", self.stage, self.notes.join("; ")),
            StageStatus::Failed => format!("Failed {} after {:.1} s", self.stage, self.seconds),
            _ => {
                let mut s = format!("Warmed {} {what} in {:.1} s", self.items, self.seconds);
                if self.unchanged > 0 || self.removed > 0 {
                    s.push_str(&format!(
                        " ({} written, {} unchanged, {} removed)",
                        self.written, self.unchanged, self.removed
                    ));
                }
                if !self.skipped.is_empty() {
                    let n = self.skipped.len();
                    let what = if n == 1 { "listing" } else { "listings" };
                    s.push_str(&format!("; {n} fresh {what} not fetched"));
                }
                if self.status == StageStatus::Partial {
                    s.push_str(", with errors");
                }
                s
            }
        }
    }
}

/// What a whole run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// When it started.
    pub started: chrono::DateTime<chrono::Utc>,
    /// Wall time in seconds.
    pub seconds: f64,
    /// How it ended.
    pub result: RunResult,
    /// The stages, in the order run.
    pub stages: Vec<StageReport>,
    /// The run's traffic.
    pub requests: RequestStats,
    /// The pace the site allowed: the rate settled at, 429s, time paused.
    pub rate: RateStats,
    /// Warnings about the run as a whole (e.g. an eviction).
    pub notes: Vec<String>,
    /// Why the run was stopped before its stages ended, if it was.
    pub stopped: Option<StageError>,
}

impl RunReport {
    /// Settles the run's result from its stages.
    pub fn new(
        started: chrono::DateTime<chrono::Utc>,
        elapsed: Duration,
        stages: Vec<StageReport>,
        requests: RequestStats,
    ) -> RunReport {
        let any_ok = stages
            .iter()
            .any(|s| matches!(s.status, StageStatus::Ok | StageStatus::Partial));
        let all_ok = stages.iter().all(|s| s.status == StageStatus::Ok);
        // Refused credentials fail the run, whatever the other stages did:
        // a stage that found its listing fresh sent nothing, so its "ok"
        // proves nothing of the token, and the exit code (3) says "fix the
        // profile", not "partly done".
        let refused = stages
            .iter()
            .any(|s| s.errors.iter().any(|e| e.kind == ErrorKind::Auth));
        let result = if refused {
            RunResult::Failed
        } else if all_ok {
            RunResult::Ok
        } else if any_ok {
            RunResult::Partial
        } else {
            RunResult::Failed
        };
        RunReport {
            started,
            seconds: elapsed.as_secs_f64(),
            result,
            stages,
            requests,
            rate: RateStats::default(),
            notes: Vec::new(),
            stopped: None,
        }
    }

    /// The report of a run stopped before its stages ended (a signal, or
    /// `--max-duration`): what was written stays; `stages` are the stages
    /// that ended before the stop.
    pub fn stopped(
        started_at_ms: i64,
        stages: Vec<StageReport>,
        requests: RequestStats,
        result: RunResult,
        why: String,
    ) -> RunReport {
        let started = chrono::DateTime::from_timestamp_millis(started_at_ms).unwrap_or_default();
        let elapsed = (chrono::Utc::now() - started).to_std().unwrap_or_default();
        RunReport {
            started,
            seconds: elapsed.as_secs_f64(),
            result,
            stages,
            requests,
            rate: RateStats::default(),
            notes: Vec::new(),
            stopped: Some(StageError::new(ErrorKind::Other, why)),
        }
    }

    /// Every error of every stage, in order.
    pub fn errors(&self) -> impl Iterator<Item = &StageError> {
        self.stages
            .iter()
            .flat_map(|s| s.errors.iter())
            .chain(self.stopped.iter())
    }

    /// Totals of written, unchanged and removed entries.
    pub fn totals(&self) -> (u64, u64, u64) {
        self.stages.iter().fold((0, 0, 0), |(w, u, r), s| {
            (w + s.written, u + s.unchanged, r + s.removed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_fail_the_run_even_beside_stages_that_sent_nothing() {
        let fresh = StageReport::new(Stage::Projects);
        let mut refused = StageReport::new(Stage::Issues);
        refused.status = StageStatus::Failed;
        refused
            .errors
            .push(StageError::new(ErrorKind::Auth, "HTTP 401"));
        let run = |stages| {
            RunReport::new(
                chrono::Utc::now(),
                Duration::ZERO,
                stages,
                RequestStats::default(),
            )
            .result
        };
        assert_eq!(run(vec![fresh.clone(), refused]), RunResult::Failed);
        let mut forbidden = StageReport::new(Stage::Issues);
        forbidden.status = StageStatus::Failed;
        forbidden
            .errors
            .push(StageError::new(ErrorKind::Forbidden, "HTTP 403"));
        assert_eq!(run(vec![fresh, forbidden]), RunResult::Partial);
    }
}
