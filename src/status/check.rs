//! `cache_status --check`: a [`StatusReport`] judged against the profile's
//! `[check]` thresholds, as one monitoring-plugin line and a level whose
//! number is the exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
//!
//! What is judged, and why:
//! - **Age of the last successful warm**: the newest run whose result is
//!   `ok`, measured from its end. A `partial` run does not count: some stage
//!   failed, so some category may be going stale. No such run at all is
//!   CRITICAL.
//! - **Share of expired entries** of `project`, `field` and `user`. Issues
//!   are left out: with a 5-minute TTL most of them are always expired
//!   between two warms, so they would always warn.
//! - **Hit rate** over every category, once there have been reads by
//!   programs (the library and `cache_serve`; `cache_status --get` reads are
//!   counted apart and left out, so exploring by hand cannot warn): a cache
//!   nobody reads yet has no rate to judge. Below the threshold is a
//!   WARNING (there is no critical threshold).
//! - **The last run**: one that failed, was partial, interrupted or
//!   abandoned is a WARNING; a run still going is skipped. Staleness, the
//!   real harm, escalates through the age thresholds.
//! - **The file itself**: SQLite's `quick_check` (every page read once) on
//!   demand (`--quick-check`) and, without the flag, on a schedule: when
//!   the last one is [`QUICK_CHECK_EVERY`] old or there was none (see
//!   [`quick_check_due`]). A corrupt page is otherwise found only when a
//!   read happens to touch it. Corruption is CRITICAL.

use std::fmt;
use std::time::Duration;

use crate::Category;
use crate::profile::CheckThresholds;

use super::{StatusReport, parse_rfc3339};

/// How often `cache_status --check` reads the whole file with
/// `quick_check` without being asked: a monitoring check every few minutes
/// pays for it once a day.
pub const QUICK_CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Whether a scheduled `quick_check` is due at `now_ms`, given when the
/// last one ran: never, [`QUICK_CHECK_EVERY`] ago or more, or "in the
/// future" (a clock that went back: checked rather than trusted).
pub fn quick_check_due(last_ms: Option<i64>, now_ms: i64) -> bool {
    let every = i64::try_from(QUICK_CHECK_EVERY.as_millis()).unwrap_or(i64::MAX);
    match last_ms {
        None => true,
        Some(last) => last > now_ms || now_ms.saturating_sub(last) >= every,
    }
}

/// The verdict, in increasing severity; its number is the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CheckLevel {
    /// Everything within the thresholds: exit 0.
    Ok,
    /// Some figure crossed a warning threshold: exit 1.
    Warning,
    /// Some figure crossed a critical threshold: exit 2.
    Critical,
    /// The state could not be judged (any error, usage errors included): exit 3.
    Unknown,
}

impl CheckLevel {
    /// The exit code of monitoring-plugin practice: 0, 1, 2 or 3.
    pub fn exit_code(self) -> u8 {
        match self {
            CheckLevel::Ok => 0,
            CheckLevel::Warning => 1,
            CheckLevel::Critical => 2,
            CheckLevel::Unknown => 3,
        }
    }

    /// `OK`, `WARNING`, `CRITICAL` or `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckLevel::Ok => "OK",
            CheckLevel::Warning => "WARNING",
            CheckLevel::Critical => "CRITICAL",
            CheckLevel::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for CheckLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of [`check`]: the level and the line to print.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    /// The worst level found.
    pub level: CheckLevel,
    /// The human part: what is wrong, worst first, or the main figures when
    /// all is well.
    pub summary: String,
    /// Performance data, `label=value[unit];warn;crit;min;max` each.
    pub perfdata: Vec<String>,
    /// The whole line: `JIRA-CACHE WARNING - production: … | age=…`.
    pub line: String,
}

impl CheckOutcome {
    /// An UNKNOWN outcome for a state that could not be judged: an error
    /// loading the profile or reading the cache, or bad flags.
    pub fn unknown(detail: &str) -> CheckOutcome {
        CheckOutcome::new(CheckLevel::Unknown, detail.to_string(), Vec::new())
    }

    /// A CRITICAL outcome for a cache file that failed `PRAGMA quick_check`.
    pub fn corrupt(profile: &str, problems: &str) -> CheckOutcome {
        let mut problems = problems.to_string();
        if problems.chars().count() > 200 {
            problems = problems.chars().take(200).collect::<String>() + "…";
        }
        CheckOutcome::new(
            CheckLevel::Critical,
            format!(
                "{profile}: the cache file is corrupt ({problems}); run `cache_warm --reset --all --profile {profile}`"
            ),
            Vec::new(),
        )
    }

    fn new(level: CheckLevel, summary: String, perfdata: Vec<String>) -> CheckOutcome {
        let mut line = format!("JIRA-CACHE {level} - {summary}");
        if !perfdata.is_empty() {
            line.push_str(" | ");
            line.push_str(&perfdata.join(" "));
        }
        CheckOutcome {
            level,
            summary,
            perfdata,
            line,
        }
    }
}

/// The categories whose expired share is judged.
const EXPIRY_CHECKED: [Category; 3] = [Category::Project, Category::Field, Category::User];

/// Judges `report` against `thresholds` as of `now_ms` (see the module
/// documentation for what is judged).
pub fn check(report: &StatusReport, thresholds: &CheckThresholds, now_ms: i64) -> CheckOutcome {
    let mut problems: Vec<(CheckLevel, String)> = Vec::new();
    let mut facts: Vec<String> = Vec::new();
    let mut perfdata: Vec<String> = Vec::new();

    if !report.exists {
        problems.push((
            CheckLevel::Critical,
            format!(
                "no cache yet; run `cache_warm --all --profile {}`",
                report.profile
            ),
        ));
    }

    // Age of the last successful warm.
    match report.last_success.as_deref() {
        None if report.exists => problems.push((
            CheckLevel::Critical,
            "no successful warm recorded".to_string(),
        )),
        None => {}
        Some(text) => match parse_rfc3339(text) {
            None => problems.push((
                CheckLevel::Unknown,
                format!("unreadable time of the last successful warm `{text}`"),
            )),
            Some(ended) => {
                let age = u64::try_from(now_ms.saturating_sub(ended) / 1000).unwrap_or(0);
                let (warn, crit) = (thresholds.warn_age.as_secs(), thresholds.crit_age.as_secs());
                let said = format!("last warm {} ago", span(age));
                if age > crit {
                    problems.push((
                        CheckLevel::Critical,
                        format!("{said} (crit {})", span(crit)),
                    ));
                } else if age > warn {
                    problems.push((CheckLevel::Warning, format!("{said} (warn {})", span(warn))));
                } else {
                    facts.push(said);
                }
                perfdata.push(format!("age={age}s;{warn};{crit};0"));
            }
        },
    }

    // The last run that is not still going.
    if let Some(run) = report.runs.iter().find(|r| r.result != "running")
        && run.result != "ok"
    {
        let mut said = format!("last run {} (started {})", run.result, run.started);
        if let Some(first) = run.errors.first() {
            said.push_str(": ");
            said.push_str(&shorten(first, 120));
        }
        problems.push((CheckLevel::Warning, said));
    }

    // Expired shares.
    let mut worst_share: Option<f64> = None;
    for c in report
        .categories
        .iter()
        .filter(|c| EXPIRY_CHECKED.contains(&c.category))
    {
        let share = if c.entries == 0 {
            0.0
        } else {
            c.expired as f64 / c.entries as f64
        };
        perfdata.push(format!(
            "expired_{}={}%;{};{};0;100",
            c.category,
            number(share * 100.0),
            number(thresholds.warn_expired * 100.0),
            number(thresholds.crit_expired * 100.0)
        ));
        if c.entries == 0 {
            continue;
        }
        worst_share = Some(worst_share.map_or(share, |w: f64| w.max(share)));
        let said = format!("{} {} expired", c.category, percent(share));
        if share > thresholds.crit_expired {
            problems.push((
                CheckLevel::Critical,
                format!("{said} (crit {})", percent(thresholds.crit_expired)),
            ));
        } else if share > thresholds.warn_expired {
            problems.push((
                CheckLevel::Warning,
                format!("{said} (warn {})", percent(thresholds.warn_expired)),
            ));
        }
    }
    match worst_share {
        Some(share) if share > 0.0 => facts.push(format!("at most {} expired", percent(share))),
        Some(_) => facts.push("none expired".to_string()),
        None => {}
    }

    // Hit rate, once there have been reads.
    let reads: u64 = report.categories.iter().map(|c| c.reads()).sum();
    if reads > 0 {
        let hits: u64 = report
            .categories
            .iter()
            .map(|c| c.hits + c.stale_hits)
            .sum();
        let rate = hits as f64 / reads as f64;
        let said = format!("hit rate {} of {reads} reads", percent(rate));
        if rate < thresholds.warn_hit_rate {
            problems.push((
                CheckLevel::Warning,
                format!("{said} (warn below {})", percent(thresholds.warn_hit_rate)),
            ));
        } else {
            facts.push(said);
        }
        perfdata.push(format!(
            "hit_rate={}%;{}:;;0;100",
            number(rate * 100.0),
            number(thresholds.warn_hit_rate * 100.0)
        ));
        perfdata.push(format!("reads={reads}c"));
    }

    perfdata.push(format!(
        "size={}B;;;0;{}",
        report.total_bytes, report.max_size
    ));

    // Worst first; the sort is stable, so equal levels keep their order.
    problems.sort_by_key(|p| std::cmp::Reverse(p.0));
    let level = problems.first().map_or(CheckLevel::Ok, |p| p.0);
    let details = if problems.is_empty() {
        facts.join(", ")
    } else {
        let texts: Vec<String> = problems.into_iter().map(|(_, text)| text).collect();
        texts.join("; ")
    };
    let summary = format!("{}: {details}", report.profile);
    CheckOutcome::new(level, summary, perfdata)
}

/// A span of seconds as people read it on a monitoring screen: `45 s`,
/// `12 min`, `3 h 5 min`, `27 h`, `4 d 3 h`.
fn span(secs: u64) -> String {
    let (mins, hours, days) = (secs / 60, secs / 3600, secs / 86_400);
    let with = |big: u64, bu: &str, small: u64, su: &str| {
        if small == 0 {
            format!("{big} {bu}")
        } else {
            format!("{big} {bu} {small} {su}")
        }
    };
    if secs < 120 {
        format!("{secs} s")
    } else if mins < 120 {
        format!("{mins} min")
    } else if hours < 72 {
        with(hours, "h", mins % 60, "min")
    } else {
        with(days, "d", hours % 24, "h")
    }
}

/// A share as a percentage: `62%`, `12.5%`.
fn percent(share: f64) -> String {
    format!("{}%", number(share * 100.0))
}

/// A number with at most one decimal, and none when it is whole.
fn number(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

/// At most `max` characters of `text`, cut in the middle with `…`: an
/// error line names its cause first and the next step last, and both
/// matter more than the details between them.
fn shorten(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let head = (max - 1) / 2;
    let tail = max - 1 - head;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!("{start}…{end}")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_long_error_keeps_its_cause_and_its_next_step() {
        let line = format!(
            "projects: the site could not be reached ({}); check the network and the profile's url",
            "x".repeat(200)
        );
        let short = shorten(&line, 120);
        assert_eq!(short.chars().count(), 120);
        assert!(
            short.starts_with("projects: the site could not be reached"),
            "{short}"
        );
        assert!(
            short.ends_with("check the network and the profile's url"),
            "{short}"
        );
        assert_eq!(shorten("short", 120), "short");
    }
    use crate::status::{CategoryStatus, RunStatus, SCHEMA_VERSION, rfc3339};

    const HOUR_MS: i64 = 3_600_000;
    /// 2025-11-26T06:00:00Z.
    const NOW: i64 = 1_764_136_800_000;

    fn category(category: Category, entries: u64, expired: u64) -> CategoryStatus {
        CategoryStatus {
            category,
            ttl_seconds: 86_400,
            ttl_old_seconds: None,
            entries,
            fresh: entries - expired,
            expired,
            bytes: entries * 100,
            oldest_fetch: None,
            newest_fetch: None,
            next_expiry: None,
            hits: 0,
            stale_hits: 0,
            misses: 0,
            hit_rate: None,
            reads_by_source: Default::default(),
        }
    }

    fn run(result: &str, started_ms: i64) -> RunStatus {
        RunStatus {
            id: 1,
            started: rfc3339(started_ms),
            ended: Some(rfc3339(started_ms + 60_000)),
            seconds: Some(60.0),
            stages: "projects,fields,users,issues".into(),
            result: result.into(),
            requests: 10,
            retries: 0,
            throttled: 0,
            written: 10,
            unchanged: 0,
            removed: 0,
            errors: Vec::new(),
            rate: None,
        }
    }

    /// A healthy cache: warmed OK an hour ago, nothing expired, no reads.
    fn healthy() -> StatusReport {
        StatusReport {
            schema_version: SCHEMA_VERSION,
            generated_at: rfc3339(NOW),
            profile: "production".into(),
            site: "https://example.atlassian.net/".into(),
            deployment: Some("cloud".into()),
            cache_path: "/tmp/production.sqlite3".into(),
            exists: true,
            total_bytes: 1000,
            max_size: 500 << 20,
            file_bytes: 4096,
            last_success: Some(rfc3339(NOW - HOUR_MS)),
            categories: vec![
                category(Category::Project, 3, 0),
                category(Category::Field, 5, 0),
                category(Category::User, 2, 0),
                category(Category::Issue, 10, 10),
            ],
            projects: Vec::new(),
            runs: vec![run("ok", NOW - HOUR_MS - 60_000)],
            partial_lists: Vec::new(),
        }
    }

    fn judge(report: &StatusReport) -> CheckOutcome {
        check(report, &CheckThresholds::default(), NOW)
    }

    #[test]
    fn a_fresh_warm_cache_is_ok_and_says_when_it_was_warmed() {
        let out = judge(&healthy());
        assert_eq!(out.level, CheckLevel::Ok);
        assert_eq!(out.level.exit_code(), 0);
        assert!(
            out.line
                .starts_with("JIRA-CACHE OK - production: last warm 60 min ago"),
            "{}",
            out.line
        );
        assert!(
            out.line.contains(" | age=3600s;93600;180000;0 "),
            "{}",
            out.line
        );
    }

    #[test]
    fn expired_issues_never_warn_because_their_ttl_is_minutes() {
        let out = judge(&healthy());
        assert_eq!(out.level, CheckLevel::Ok, "{}", out.line);
        assert!(!out.line.contains("expired_issue"), "{}", out.line);
    }

    #[test]
    fn a_warm_older_than_warn_age_warns_with_the_threshold_named() {
        let mut r = healthy();
        r.last_success = Some(rfc3339(NOW - 27 * HOUR_MS));
        let out = judge(&r);
        assert_eq!(out.level, CheckLevel::Warning);
        assert_eq!(
            out.summary, "production: last warm 27 h ago (warn 26 h)",
            "{}",
            out.line
        );
        assert!(
            out.line.contains("| age=97200s;93600;180000;0"),
            "{}",
            out.line
        );
    }

    #[test]
    fn a_warm_older_than_crit_age_is_critical() {
        let mut r = healthy();
        r.last_success = Some(rfc3339(NOW - 51 * HOUR_MS));
        let out = judge(&r);
        assert_eq!(out.level, CheckLevel::Critical);
        assert_eq!(out.level.exit_code(), 2);
        assert!(
            out.summary.contains("last warm 51 h ago (crit 50 h)"),
            "{}",
            out.line
        );
    }

    #[test]
    fn a_cache_never_warmed_successfully_is_critical() {
        let mut r = healthy();
        r.last_success = None;
        r.runs = vec![run("failed", NOW - HOUR_MS)];
        let out = judge(&r);
        assert_eq!(out.level, CheckLevel::Critical);
        assert!(
            out.summary.contains("no successful warm recorded"),
            "{}",
            out.line
        );
        assert!(out.summary.contains("last run failed"), "{}", out.line);
    }

    #[test]
    fn a_missing_cache_is_critical_and_says_how_to_create_it() {
        let mut r = healthy();
        r.exists = false;
        r.last_success = None;
        r.runs.clear();
        let out = judge(&r);
        assert_eq!(out.level, CheckLevel::Critical);
        assert!(
            out.summary
                .contains("cache_warm --all --profile production"),
            "{}",
            out.line
        );
    }

    #[test]
    fn a_failed_last_run_warns_with_its_first_error() {
        let mut r = healthy();
        let mut failed = run("failed", NOW - 10 * 60_000);
        failed.errors = vec!["projects: site unreachable".into()];
        r.runs.insert(0, failed);
        let out = judge(&r);
        assert_eq!(out.level, CheckLevel::Warning);
        assert!(
            out.summary.contains(
                "last run failed (started 2025-11-26T05:50:00Z): projects: site unreachable"
            ),
            "{}",
            out.line
        );
    }

    #[test]
    fn a_run_still_going_is_skipped_for_the_one_before() {
        let mut r = healthy();
        r.runs.insert(0, run("running", NOW - 60_000));
        assert_eq!(judge(&r).level, CheckLevel::Ok);
        r.runs.insert(1, run("abandoned", NOW - 30 * 60_000));
        let out = judge(&r);
        assert_eq!(out.level, CheckLevel::Warning);
        assert!(out.summary.contains("last run abandoned"), "{}", out.line);
    }

    #[test]
    fn expired_shares_warn_and_go_critical_per_category() {
        let mut r = healthy();
        r.categories[1] = category(Category::Field, 10, 6);
        let out = judge(&r);
        assert_eq!(out.level, CheckLevel::Warning);
        assert!(
            out.summary.contains("field 60% expired (warn 50%)"),
            "{}",
            out.line
        );
        assert!(
            out.line.contains("expired_field=60%;50;90;0;100"),
            "{}",
            out.line
        );

        r.categories[2] = category(Category::User, 20, 19);
        let out = judge(&r);
        assert_eq!(out.level, CheckLevel::Critical);
        // Worst first.
        assert!(
            out.summary
                .starts_with("production: user 95% expired (crit 90%); field 60% expired"),
            "{}",
            out.line
        );
    }

    #[test]
    fn a_low_hit_rate_warns_only_once_there_have_been_reads() {
        let mut r = healthy();
        assert!(!judge(&r).line.contains("hit_rate"));
        r.categories[3].hits = 1;
        r.categories[3].stale_hits = 1;
        r.categories[3].misses = 8;
        let out = judge(&r);
        assert_eq!(out.level, CheckLevel::Warning);
        assert!(
            out.summary
                .contains("hit rate 20% of 10 reads (warn below 50%)"),
            "{}",
            out.line
        );
        assert!(
            out.line.contains("hit_rate=20%;50:;;0;100 reads=10c"),
            "{}",
            out.line
        );
    }

    #[test]
    fn thresholds_from_flags_replace_the_profile_ones() {
        let mut r = healthy();
        r.last_success = Some(rfc3339(NOW - 13 * HOUR_MS));
        let strict = CheckThresholds {
            warn_age: Duration::from_secs(12 * 3600),
            crit_age: Duration::from_secs(30 * 3600),
            ..CheckThresholds::default()
        };
        assert_eq!(judge(&r).level, CheckLevel::Ok);
        assert_eq!(check(&r, &strict, NOW).level, CheckLevel::Warning);
    }

    #[test]
    fn unknown_outcomes_carry_the_error_and_exit_3() {
        let out = CheckOutcome::unknown("profiles.toml:3:1: unknown key `ur`");
        assert_eq!(out.level.exit_code(), 3);
        assert_eq!(
            out.line,
            "JIRA-CACHE UNKNOWN - profiles.toml:3:1: unknown key `ur`"
        );
    }

    #[test]
    fn spans_read_like_a_person_would_say_them() {
        assert_eq!(span(45), "45 s");
        assert_eq!(span(12 * 60), "12 min");
        assert_eq!(span(3 * 3600 + 5 * 60), "3 h 5 min");
        assert_eq!(span(27 * 3600), "27 h");
        assert_eq!(span(4 * 86_400 + 3 * 3600), "4 d 3 h");
    }
}
