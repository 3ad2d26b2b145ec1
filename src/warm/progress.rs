//! How a warm tells its caller what is happening while it happens, without
//! printing: the binary turns these calls into progress bars and into the
//! per-project lines it prints as each project finishes.

use super::{Stage, StageReport};

/// Receives progress of a running warm. Every method has a no-op default;
/// implementations must be cheap (they are called once per page).
pub trait Progress: Send + Sync {
    /// A stage starts; `units` is how many units it expects when known
    /// (the issues stage counts projects).
    fn stage_started(&self, _stage: Stage, _units: Option<u64>) {}
    /// Entries were written to the cache.
    fn entries(&self, _stage: Stage, _count: u64) {}
    /// A unit of the stage finished (a project of the issues stage).
    fn unit_done(&self, _stage: Stage) {}
    /// A line worth showing now, e.g. `Warmed 100 issues for PROJ`.
    fn line(&self, _stage: Stage, _text: &str) {}
    /// The line of one unit (a project of the issues stage) as it ends,
    /// `ok` unless it failed: a caller may show only the failures.
    fn project_line(&self, stage: Stage, text: &str, _ok: bool) {
        self.line(stage, text);
    }
    /// A phase of a stage advanced: `done` of `total` units (the users
    /// stage's assignable lists, one per project, fetched while and after
    /// the user listing pages), so that a caller can show it moving while
    /// the stage's entry count stands still.
    fn phase(&self, _stage: Stage, _phase: &str, _done: u64, _total: u64) {}
    /// The stage ended (or was skipped), with what it did.
    fn stage_finished(&self, _report: &StageReport) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
