//! What `cache_warm` shows: live lines and progress bars while it runs, the
//! summary at the end, `--quiet`'s silence, `--json`'s one object.
//!
//! Human output goes to stdout; progress bars go to stderr and only on a
//! terminal, never with `--quiet` or `--json`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use jira_cache::Profile;
use jira_cache::warm::{Progress, RunReport, RunResult, Stage, StageReport, StageStatus};
use serde::Serialize;

use crate::common;

/// How the run is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lines and a summary on stdout.
    Human,
    /// Nothing on success.
    Quiet,
    /// One JSON object at the end.
    Json,
}

/// The tracing target of the lines `--log-file` keeps for every run (the
/// summary, and a failed run's causes); never shown on stderr, where the
/// same lines are printed as output.
pub const SUMMARY_TARGET: &str = "jira_cache_summary";

/// Live output: one line per stage, per-project lines with `-v`, and bars
/// on a terminal.
pub struct LiveOutput {
    mode: Mode,
    verbose: u8,
    multi: Option<MultiProgress>,
    bars: Mutex<Vec<(Stage, ProgressBar)>>,
    /// A stage's own lines, shown after its summary line.
    held: Mutex<Vec<(Stage, String)>>,
}

impl LiveOutput {
    /// Bars only when stderr is a terminal and the output is for people.
    pub fn new(mode: Mode, verbose: u8) -> LiveOutput {
        let bars_wanted = mode == Mode::Human && std::io::stderr().is_terminal();
        let multi =
            bars_wanted.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        LiveOutput {
            mode,
            verbose,
            multi,
            bars: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
        }
    }

    /// Clears every bar, so that none stays on screen after the run (or
    /// after Ctrl-C).
    pub fn clear_bars(&self) {
        if let Ok(bars) = self.bars.lock() {
            for (_, bar) in bars.iter() {
                bar.finish_and_clear();
            }
        }
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }

    /// Prints a line above the bars, if any.
    fn print(&self, stage: Stage, text: &str) {
        match self.bar(stage) {
            Some(bar) => bar.suspend(|| println!("{text}")),
            None => println!("{text}"),
        }
    }

    fn bar(&self, stage: Stage) -> Option<ProgressBar> {
        let bars = self.bars.lock().ok()?;
        bars.iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, b)| b.clone())
    }
}

impl Progress for LiveOutput {
    fn stage_started(&self, stage: Stage, units: Option<u64>) {
        let Some(multi) = &self.multi else { return };
        let bar = match units {
            Some(n) => {
                let bar = multi.add(ProgressBar::new(n));
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:8} [{bar:30}] {pos}/{len} projects, {msg} ({elapsed}, ETA {eta})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                bar
            }
            None => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:8} {msg} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar
            }
        };
        bar.set_prefix(stage.as_str());
        bar.set_message("0 entries");
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut bars) = self.bars.lock() {
            bars.push((stage, bar));
        }
    }

    fn entries(&self, stage: Stage, count: u64) {
        if let Some(bar) = self.bar(stage) {
            let so_far = bar
                .message()
                .split(' ')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
                + count;
            let rate = so_far as f64 / bar.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!("{so_far} entries, {rate:.0}/s"));
        }
    }

    fn unit_done(&self, stage: Stage) {
        if let Some(bar) = self.bar(stage) {
            bar.inc(1);
        }
    }

    fn line(&self, stage: Stage, text: &str) {
        // Shown under the stage's own line when it ends: the users stage's
        // assignable-users line comes after `Warmed N users`.
        if self.mode == Mode::Human
            && let Ok(mut held) = self.held.lock()
        {
            held.push((stage, text.to_string()));
        }
    }

    fn project_line(&self, stage: Stage, text: &str, ok: bool) {
        // One line per stage by default: a project's line only with -v
        // (failures are summed up, one line per cause, at the end).
        let _ = ok;
        if self.mode == Mode::Human && self.verbose > 0 {
            self.print(stage, &format!("  {text}"));
        }
    }

    fn stage_finished(&self, report: &StageReport) {
        if self.mode == Mode::Human {
            self.print(report.stage, &report.summary());
            let held: Vec<String> = match self.held.lock() {
                Ok(mut held) => {
                    let (mine, others) = held.drain(..).partition(|(s, _)| *s == report.stage);
                    *held = others;
                    mine.into_iter().map(|(_, t)| t).collect()
                }
                Err(_) => Vec::new(),
            };
            for line in held {
                self.print(report.stage, &format!("  {line}"));
            }
            for note in report
                .notes
                .iter()
                .filter(|_| report.status != StageStatus::Skipped)
            {
                self.print(report.stage, &format!("  note: {note}"));
            }
        }
        tracing::info!(target: SUMMARY_TARGET, "{}", report.summary());
        if let Some(bar) = self.bar(report.stage) {
            bar.finish_and_clear();
        }
    }
}

/// The run report as `--json` prints it.
#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    profile: &'a str,
    site: &'a str,
    cache_path: String,
    #[serde(flatten)]
    report: &'a RunReport,
    errors: Vec<&'a str>,
}

/// The version of `cache_warm --json`'s shape.
pub const JSON_SCHEMA_VERSION: u32 = 2;

/// What the site's rate limiting did, when it did anything: the 429s, the
/// time paused, and the pace the run settled at.
pub fn rate_line(rate: &jira_cache::jira::RateStats) -> Option<String> {
    if rate.throttled == 0 && rate.slowed_early == 0 {
        return None;
    }
    let settled = match (rate.settled, rate.ceiling) {
        (Some(s), Some(c)) => format!("settled at {s:.1} requests/s (rate_limit {c})"),
        (Some(s), None) => format!("settled at {s:.1} requests/s (rate_limit unlimited)"),
        (None, _) => "back to full speed".to_string(),
    };
    Some(format!(
        "Site rate limit: {} throttled (429/503), {} early slow-downs, paused {:.1} s; {settled}",
        rate.throttled, rate.slowed_early, rate.waited_seconds
    ))
}

/// The run's errors, one line per cause: a cause that several projects (or
/// stages) share is said once, with how many and which.
pub fn error_lines(report: &RunReport) -> Vec<String> {
    // (cause, where it happened), in the order first seen.
    let mut causes: Vec<(String, Vec<String>)> = Vec::new();
    for stage in &report.stages {
        for e in &stage.errors {
            // Messages name where first: the project (`PROJ: …`) and the
            // endpoint (`/rest/api/3/field: …`); the rest is the cause.
            let mut place = stage.stage.to_string();
            let mut cause = e.message.as_str();
            while let Some((head, tail)) = cause.split_once(": ")
                && (crate::cli::project_key(head).is_ok()
                    || (head.starts_with('/') && !head.contains(' ')))
            {
                place.push(' ');
                place.push_str(head);
                cause = tail;
            }
            let cause = cause.to_string();
            match causes.iter_mut().find(|(c, _)| *c == cause) {
                Some((_, places)) => places.push(place),
                None => causes.push((cause, vec![place])),
            }
        }
    }
    causes
        .into_iter()
        .map(|(cause, places)| match places.as_slice() {
            [one] => format!("{one}: {cause}"),
            many => {
                const NAMED: usize = 3;
                let mut named = many[..NAMED.min(many.len())].join(", ");
                if many.len() > NAMED {
                    named.push_str(&format!(" and {} more", many.len() - NAMED));
                }
                format!("{cause} ({} times: {named})", many.len())
            }
        })
        .collect()
}

/// How a run that did not succeed ended, in a few words: `partial: 1 of 4
/// stages failed (users)`, `interrupted after 1 of 2 stages; not run:
/// issues`.
pub fn outcome_line(report: &RunReport, requested: &[Stage]) -> String {
    let failed: Vec<&str> = report
        .stages
        .iter()
        .filter(|s| matches!(s.status, StageStatus::Failed | StageStatus::Partial))
        .map(|s| s.stage.as_str())
        .collect();
    let cut: Vec<&str> = requested
        .iter()
        .filter(|r| !report.stages.iter().any(|s| s.stage == **r))
        .map(|s| s.as_str())
        .collect();
    let mut line = report.result.as_str().to_string();
    if !failed.is_empty() {
        line.push_str(&format!(
            ": {} of {} stages failed ({})",
            failed.len(),
            requested.len(),
            failed.join(", ")
        ));
    }
    if !cut.is_empty() {
        line.push_str(&format!("; not run: {}", cut.join(", ")));
    }
    line
}

/// Prints the end of a run (`requested`: the stages asked for), and logs
/// its summary for `--log-file`.
pub fn print_report(report: &RunReport, profile: &Profile, mode: Mode, requested: &[Stage]) {
    let errors = error_lines(report);
    let done = done_line(report, profile);
    if report.result != RunResult::Ok {
        tracing::warn!(
            target: SUMMARY_TARGET,
            "profile `{}`: {}",
            profile.name,
            outcome_line(report, requested)
        );
    }
    if let Some(stopped) = &report.stopped {
        tracing::warn!(target: SUMMARY_TARGET, "{}", stopped.message);
    }
    for e in &errors {
        tracing::error!(target: SUMMARY_TARGET, "{e}");
    }
    tracing::info!(target: SUMMARY_TARGET, "{done}");
    if let Some(line) = rate_line(&report.rate) {
        tracing::info!(target: SUMMARY_TARGET, "{line}");
    }
    match mode {
        Mode::Json => {
            let json = JsonReport {
                schema_version: JSON_SCHEMA_VERSION,
                profile: &profile.name,
                site: profile.url.as_str(),
                cache_path: profile.cache_display(),
                report,
                errors: report.errors().map(|e| e.message.as_str()).collect(),
            };
            match serde_json::to_string_pretty(&json) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("cache_warm: cannot write the JSON report: {e}"),
            }
        }
        Mode::Quiet => {
            if report.result != RunResult::Ok {
                eprintln!(
                    "cache_warm: profile `{}`: {}",
                    profile.name,
                    outcome_line(report, requested)
                );
                for e in &errors {
                    eprintln!("cache_warm: {e}");
                }
            }
        }
        Mode::Human => {
            // Each stage's line was printed as it ended.
            for e in &errors {
                eprintln!("cache_warm: {e}");
            }
            if let Some(stopped) = &report.stopped {
                eprintln!("cache_warm: {}", stopped.message);
            }
            if report.stopped.is_some() || report.result != RunResult::Ok {
                let outcome = outcome_line(report, requested);
                if outcome.contains("not run") {
                    eprintln!("cache_warm: {outcome}");
                }
            }
            for note in &report.notes {
                println!("note: {note}");
            }
            println!("{done}");
            if let Some(line) = rate_line(&report.rate) {
                println!("{line}");
            }
        }
    }
}

/// `Done in 1.2 s: 20 requests, 0 retries; cache PATH`.
fn done_line(report: &RunReport, profile: &Profile) -> String {
    let count = |n: u64, one: &str, many: &str| match n {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    };
    format!(
        "{} in {}: {}, {}; cache {}",
        match report.result {
            RunResult::Ok => "Done",
            RunResult::Partial => "Done with errors",
            RunResult::Interrupted => "Interrupted",
            _ => "Failed",
        },
        common::duration(Duration::from_secs_f64(report.seconds)),
        count(report.requests.requests, "request", "requests"),
        count(report.requests.retries, "retry", "retries"),
        profile.cache_display()
    )
}
