//! What `cache_warm` shows: live lines and progress bars while it runs, the
//! summary at the end, `--quiet`'s silence, `--json`'s one object.
//!
//! Human output goes to stdout; progress bars go to stderr and only on a
//! terminal, never with `--quiet` or `--json`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use jira_cache::Profile;
use jira_cache::jira::{ConnectRetry, ConnectRetryHook};
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

/// Columns left free at the end of each bar line for what the terminal
/// echoes: `^C` is two.
const ECHO_ROOM: u16 = 2;

/// Standard error as a narrower terminal than it is. indicatif pads each
/// bar line to the terminal's full width, which leaves the cursor waiting
/// to wrap: the `^C` the terminal echoes on Ctrl-C then starts a new line,
/// and clearing the bars clears that line instead of the bar, which stayed
/// on screen. With two columns free, the echo fits on the bar's own line
/// and goes with it.
#[derive(Debug)]
struct EchoRoom(console::Term);

impl indicatif::TermLike for EchoRoom {
    fn width(&self) -> u16 {
        self.0.size().1.saturating_sub(ECHO_ROOM).max(1)
    }
    fn height(&self) -> u16 {
        self.0.size().0
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_up(n)
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_down(n)
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_right(n)
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_left(n)
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.0.write_line(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.0.write_str(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.0.clear_line()
    }
    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A stage's bar and what its message shows.
struct StageBar {
    stage: Stage,
    bar: ProgressBar,
    /// Entries written so far.
    entries: u64,
    /// A phase's own progress (`assignable users 12/300`), while it runs.
    phase: Option<String>,
}

/// A bar's message: `1234 entries, 500/s`, and the phase under way, if any.
pub fn bar_message(entries: u64, seconds: f64, phase: Option<&str>) -> String {
    let rate = entries as f64 / seconds.max(0.001);
    match phase {
        Some(phase) => format!("{entries} entries, {rate:.0}/s; {phase}"),
        None => format!("{entries} entries, {rate:.0}/s"),
    }
}

/// `assignable users of 12/300 projects`, or `None` once every unit is done.
pub fn phase_text(phase: &str, done: u64, total: u64) -> Option<String> {
    (done < total).then(|| format!("{phase} of {done}/{total} projects"))
}

/// Live output: one line per stage, per-project lines with `-v`, and bars
/// on a terminal.
pub struct LiveOutput {
    mode: Mode,
    verbose: u8,
    multi: Option<MultiProgress>,
    bars: Mutex<Vec<StageBar>>,
    /// A stage's own lines, shown after its summary line.
    held: Mutex<Vec<(Stage, String)>>,
    /// The stages that started, in order: a stop names those it cut short.
    started: Mutex<Vec<Stage>>,
    /// Stages that ended while one started before them still runs (users
    /// and issues run together): their lines wait, so that the lines come
    /// in the plan's order whichever stage ends first. The stages whose
    /// lines were shown are in `shown`.
    waiting: Mutex<Vec<StageReport>>,
    shown: Mutex<Vec<Stage>>,
    /// The highest connection attempt said so far (every worker reports
    /// its own retries; each attempt number is said once).
    connect_attempt: AtomicU32,
}

impl LiveOutput {
    /// Bars only when stderr is a terminal and the output is for people.
    pub fn new(mode: Mode, verbose: u8) -> LiveOutput {
        let bars_wanted = mode == Mode::Human && std::io::stderr().is_terminal();
        let multi = bars_wanted.then(|| {
            MultiProgress::with_draw_target(ProgressDrawTarget::term_like_with_hz(
                Box::new(EchoRoom(console::Term::buffered_stderr())),
                20,
            ))
        });
        LiveOutput {
            mode,
            verbose,
            multi,
            bars: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
            started: Mutex::new(Vec::new()),
            waiting: Mutex::new(Vec::new()),
            shown: Mutex::new(Vec::new()),
            connect_attempt: AtomicU32::new(0),
        }
    }

    /// On a terminal, for people: says `connecting to SITE (attempt 2 of
    /// 5)` as requests retry a site they cannot reach, instead of silence
    /// until the run gives up. `None` otherwise (cron, pipes, --quiet,
    /// --json): the final error says it all there.
    pub fn connect_retry_hook(self: &Arc<Self>) -> Option<ConnectRetryHook> {
        let wanted = self.mode == Mode::Human && std::io::stderr().is_terminal();
        let me = Arc::clone(self);
        wanted.then(|| {
            ConnectRetryHook(Arc::new(move |retry: &ConnectRetry| {
                me.connect_retry(retry)
            }))
        })
    }

    /// One retry of an unreachable site; said once per attempt number.
    fn connect_retry(&self, retry: &ConnectRetry) {
        let before = self
            .connect_attempt
            .fetch_max(retry.attempt, Ordering::Relaxed);
        if retry.attempt <= before {
            return;
        }
        let line = format!("cache_warm: {}", connect_retry_line(retry));
        match &self.multi {
            Some(multi) if !self.bars.lock().map(|b| b.is_empty()).unwrap_or(true) => {
                let _ = multi.println(&line);
            }
            _ => crate::common::errln!("{line}"),
        }
    }

    /// The stages that started so far, in order.
    pub fn started(&self) -> Vec<Stage> {
        self.started.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Clears every bar, so that none stays on screen after the run (or
    /// after Ctrl-C).
    pub fn clear_bars(&self) {
        // A stage that ended beside one cut short still gets its line.
        self.show_waiting(true);
        if let Ok(bars) = self.bars.lock() {
            for b in bars.iter() {
                b.bar.finish_and_clear();
            }
        }
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }

    /// Prints a line above the bars, if any.
    fn print(&self, stage: Stage, text: &str) {
        match self.bar(stage) {
            Some(bar) => bar.suspend(|| crate::common::outln!("{text}")),
            None => crate::common::outln!("{text}"),
        }
    }

    fn bar(&self, stage: Stage) -> Option<ProgressBar> {
        let bars = self.bars.lock().ok()?;
        bars.iter()
            .find(|b| b.stage == stage)
            .map(|b| b.bar.clone())
    }

    /// Changes what a stage's bar counts, and shows it.
    fn update(&self, stage: Stage, change: impl FnOnce(&mut StageBar)) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        if let Some(b) = bars.iter_mut().find(|b| b.stage == stage) {
            change(b);
            let seconds = b.bar.elapsed().as_secs_f64();
            b.bar
                .set_message(bar_message(b.entries, seconds, b.phase.as_deref()));
        }
    }
}

impl Progress for LiveOutput {
    fn stage_started(&self, stage: Stage, units: Option<u64>) {
        if let Ok(mut started) = self.started.lock() {
            started.push(stage);
        }
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
            bars.push(StageBar {
                stage,
                bar,
                entries: 0,
                phase: None,
            });
        }
    }

    fn entries(&self, stage: Stage, count: u64) {
        self.update(stage, |b| b.entries += count);
    }

    fn phase(&self, stage: Stage, phase: &str, done: u64, total: u64) {
        self.update(stage, |b| b.phase = phase_text(phase, done, total));
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
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.push(report.clone());
        }
        self.show_ready();
        tracing::info!(target: SUMMARY_TARGET, "{}", report.summary());
        if let Some(bar) = self.bar(report.stage) {
            bar.finish_and_clear();
        }
    }
}

impl LiveOutput {
    /// Shows the lines of the stages that ended, in the order the stages
    /// started; with `all`, also those still waiting for an earlier stage
    /// (a run stopped early).
    fn show_waiting(&self, all: bool) {
        loop {
            let next = {
                let (Ok(mut waiting), Ok(started), Ok(shown)) =
                    (self.waiting.lock(), self.started.lock(), self.shown.lock())
                else {
                    return;
                };
                // The first stage that started and is not shown yet.
                let first_open = started.iter().find(|s| !shown.contains(s)).copied();
                let pick = waiting.iter().position(|r| {
                    all || first_open.is_none_or(|f| f == r.stage) || !started.contains(&r.stage)
                });
                match pick {
                    Some(i) => waiting.remove(i),
                    None => return,
                }
            };
            if let Ok(mut shown) = self.shown.lock() {
                shown.push(next.stage);
            }
            self.show_stage(&next);
        }
    }

    fn show_ready(&self) {
        self.show_waiting(false);
    }

    /// A stage's line, its held lines and its notes.
    fn show_stage(&self, report: &StageReport) {
        if self.mode != Mode::Human {
            return;
        }
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
}

/// `connecting to https://jira.example.net (attempt 2 of 5; connection refused)`.
pub fn connect_retry_line(retry: &ConnectRetry) -> String {
    format!(
        "connecting to {} (attempt {} of {}; last: {})",
        retry.site, retry.attempt, retry.attempts, retry.cause
    )
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

/// `--json` when `--only-stale` found every stage fresh: a run that did
/// nothing and needed to do nothing, `result` `ok` with no stages.
pub fn print_nothing_to_do(profile: &Profile, fresh: &[jira_cache::warm::Stage]) {
    let json = serde_json::json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "profile": profile.name,
        "site": profile.url.as_str(),
        "cache_path": profile.cache_display(),
        "result": "ok",
        "nothing_to_do": true,
        "fresh": fresh.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "stages": [],
        "errors": [],
    });
    crate::common::outln!("{json:#}");
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
        .map(|(cause, places)| (common::with_user_flags(&cause).into_owned(), places))
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
/// stages failed (users)`, `interrupted; cut short: users; not run:
/// issues`. `started`: the stages that began (a stop cuts short those of
/// them that did not end).
pub fn outcome_line(report: &RunReport, requested: &[Stage], started: &[Stage]) -> String {
    let failed: Vec<&str> = report
        .stages
        .iter()
        .filter(|s| matches!(s.status, StageStatus::Failed | StageStatus::Partial))
        .map(|s| s.stage.as_str())
        .collect();
    let unfinished = requested
        .iter()
        .filter(|r| !report.stages.iter().any(|s| s.stage == **r));
    let (cut, not_run): (Vec<&Stage>, Vec<&Stage>) = unfinished.partition(|r| started.contains(r));
    let names = |stages: Vec<&Stage>| {
        stages
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
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
        line.push_str(&format!("; cut short: {}", names(cut)));
    }
    if !not_run.is_empty() {
        line.push_str(&format!("; not run: {}", names(not_run)));
    }
    line
}

/// Prints the end of a run (`requested`: the stages asked for; `started`:
/// those that began), and logs its summary for `--log-file`.
pub fn print_report(
    report: &RunReport,
    profile: &Profile,
    mode: Mode,
    requested: &[Stage],
    started: &[Stage],
) {
    let mut errors = error_lines(report);
    if report
        .errors()
        .any(|e| e.kind == jira_cache::warm::ErrorKind::Auth)
    {
        // The 401 line comes from the client, which knows no profile: say
        // where this profile's token came from, so that the fix is named.
        let source = match &profile.token {
            jira_cache::profile::TokenSource::Env(variable) => {
                format!("the environment variable {variable}")
            }
            jira_cache::profile::TokenSource::Command(_) => "its token_cmd".to_string(),
        };
        let email = match &profile.email {
            Some(email) => format!(" (sent with the email {email})"),
            None => String::new(),
        };
        errors.push(format!(
            "profile `{}` took its token from {source}{email}: fix it there",
            profile.name
        ));
    }
    let done = done_line(report, profile);
    if report.result != RunResult::Ok {
        tracing::warn!(
            target: SUMMARY_TARGET,
            "profile `{}`: {}",
            profile.name,
            outcome_line(report, requested, started)
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
                Ok(text) => crate::common::outln!("{text}"),
                Err(e) => crate::common::errln!("cache_warm: cannot write the JSON report: {e}"),
            }
        }
        Mode::Quiet => {
            if report.result != RunResult::Ok {
                crate::common::errln!(
                    "cache_warm: profile `{}`: {}",
                    profile.name,
                    outcome_line(report, requested, started)
                );
                for e in &errors {
                    crate::common::errln!("cache_warm: {e}");
                }
            }
        }
        Mode::Human => {
            // Each stage's line was printed as it ended.
            for e in &errors {
                crate::common::errln!("cache_warm: {e}");
            }
            if let Some(stopped) = &report.stopped {
                crate::common::errln!("cache_warm: {}", stopped.message);
            }
            if report.stopped.is_some() || report.result != RunResult::Ok {
                let outcome = outcome_line(report, requested, started);
                if outcome.contains("not run") || outcome.contains("cut short") {
                    crate::common::errln!("cache_warm: {outcome}");
                }
            }
            for note in &report.notes {
                crate::common::outln!("note: {note}");
            }
            crate::common::outln!("{done}");
            if let Some(line) = rate_line(&report.rate) {
                crate::common::outln!("{line}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_under_way_shows_beside_the_entry_count_until_it_ends() {
        let phase = phase_text("assignable users", 12, 300);
        assert_eq!(
            bar_message(1200, 2.0, phase.as_deref()),
            "1200 entries, 600/s; assignable users of 12/300 projects"
        );
        assert_eq!(phase_text("assignable users", 300, 300), None);
        assert_eq!(bar_message(0, 0.0, None), "0 entries, 0/s");
    }

    #[test]
    fn a_connection_retry_names_the_site_and_the_attempt() {
        let retry = ConnectRetry {
            site: "https://jira.example.net".into(),
            attempt: 2,
            attempts: 5,
            cause: "connection refused".into(),
        };
        assert_eq!(
            connect_retry_line(&retry),
            "connecting to https://jira.example.net (attempt 2 of 5; last: connection refused)"
        );
    }
}
