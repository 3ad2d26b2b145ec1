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

/// Live output: per-project lines as they finish, and bars on a terminal.
pub struct LiveOutput {
    mode: Mode,
    multi: Option<MultiProgress>,
    bars: Mutex<Vec<(Stage, ProgressBar)>>,
    finished: Mutex<Vec<StageReport>>,
}

impl LiveOutput {
    /// Bars only when stderr is a terminal and the output is for people.
    pub fn new(mode: Mode) -> LiveOutput {
        let bars_wanted = mode == Mode::Human && std::io::stderr().is_terminal();
        let multi =
            bars_wanted.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        LiveOutput {
            mode,
            multi,
            bars: Mutex::new(Vec::new()),
            finished: Mutex::new(Vec::new()),
        }
    }

    /// The reports of the stages that have ended so far.
    pub fn finished_stages(&self) -> Vec<StageReport> {
        self.finished.lock().map(|f| f.clone()).unwrap_or_default()
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
        if self.mode == Mode::Human {
            self.print(stage, text);
        }
    }

    fn stage_finished(&self, report: &StageReport) {
        if self.mode == Mode::Human {
            self.print(report.stage, &report.summary());
            for note in report
                .notes
                .iter()
                .filter(|_| report.status != StageStatus::Skipped)
            {
                self.print(report.stage, &format!("  note: {note}"));
            }
            for e in &report.errors {
                eprintln!("cache_warm: {}: {}", report.stage, e.message);
            }
        }
        if let Some(bar) = self.bar(report.stage) {
            bar.finish_and_clear();
        }
        if let Ok(mut finished) = self.finished.lock() {
            finished.push(report.clone());
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

/// Prints the end of a run.
pub fn print_report(report: &RunReport, profile: &Profile, mode: Mode) {
    match mode {
        Mode::Json => {
            let json = JsonReport {
                schema_version: JSON_SCHEMA_VERSION,
                profile: &profile.name,
                site: profile.url.as_str(),
                cache_path: profile.cache_path().display().to_string(),
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
                    "cache_warm: profile `{}`: {} ({} of {} stages did not succeed)",
                    profile.name,
                    report.result.as_str(),
                    report
                        .stages
                        .iter()
                        .filter(|s| s.status != StageStatus::Ok)
                        .count(),
                    report.stages.len()
                );
                for e in report.errors() {
                    eprintln!("cache_warm: {}", e.message);
                }
            }
        }
        Mode::Human => {
            // Each stage's lines and summary were printed as it ended.
            if let Some(stopped) = &report.stopped {
                eprintln!("cache_warm: {}", stopped.message);
            }
            for note in &report.notes {
                println!("note: {note}");
            }
            let count = |n: u64, one: &str, many: &str| match n {
                1 => format!("1 {one}"),
                n => format!("{n} {many}"),
            };
            println!(
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
                profile.cache_path().display()
            );
            if let Some(line) = rate_line(&report.rate) {
                println!("{line}");
            }
        }
    }
}
