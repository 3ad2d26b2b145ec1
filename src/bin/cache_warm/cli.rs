//! The flags of `cache_warm` and the parsing of their values.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use jira_cache::Category;
use jira_cache::warm::{IssueOptions, Stage};

use crate::common;

/// Warm the local SQLite cache of a Jira site, stage by stage.
///
/// Stages run in priority order: projects, fields, users, issues. Each page
/// is written as it arrives; a failed stage keeps what was cached before.
#[derive(Debug, Parser)]
#[command(name = "cache_warm", version, after_help = common::exit_codes_help(&[], &[]))]
pub struct Cli {
    /// Warm projects (one entry per project key, plus `list:projects`).
    #[arg(long, help_heading = "Stages")]
    pub projects: bool,
    /// Warm fields, issue types, priorities, statuses and resolutions.
    #[arg(long, help_heading = "Stages")]
    pub fields: bool,
    /// Warm users and the assignable users of each project.
    #[arg(long, help_heading = "Stages")]
    pub users: bool,
    /// Warm the recent issues of each project in scope.
    #[arg(long, help_heading = "Stages")]
    pub issues: bool,
    /// Every stage: projects, fields, users, issues.
    #[arg(long, help_heading = "Stages")]
    pub all: bool,
    /// Skip every stage whose entries are all still fresh (the cheap warm for start-up or after a deploy).
    #[arg(long, help_heading = "Stages")]
    pub only_stale: bool,
    /// Pause this long between stages (e.g. 10s), to spread the load; without it the fields, users and issues stages run together.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "0s", help_heading = "Stages")]
    pub stage_delay: Duration,

    /// The profile to use (default: $JIRA_PROFILE, the file's `default`, or its only profile).
    #[arg(long, short = 'p', value_name = "NAME", add = clap_complete::ArgValueCompleter::new(common::complete_profile))]
    pub profile: Option<String>,
    /// The profiles file (default: $JIRA_CACHE_CONFIG, then ~/.config/jira-cache/profiles.toml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Restrict per-project stages to this project (repeatable; default: the profile's `projects`, else all).
    #[arg(long = "project", value_name = "KEY", value_parser = project_key)]
    pub project: Vec<String>,

    /// How far back recent issues go: N followed by m, h, d or w (e.g. 7d).
    #[arg(long, value_name = "AGE", value_parser = since_value, default_value = "30d", help_heading = "Issues")]
    pub since: Duration,
    /// At most this many issues per project (and per --jql query).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Issues")]
    pub max_issues: u32,
    /// Fetch everything again: ignore the incremental watermarks, and fetch listings that are still fresh.
    #[arg(long, help_heading = "Issues")]
    pub full: bool,
    /// Warm this issue (repeatable), on demand; Cloud fetches up to 100 per request.
    #[arg(long = "issue", value_name = "KEY", value_parser = issue_key, help_heading = "Issues")]
    pub issue: Vec<String>,
    /// Warm the issues this bounded JQL query returns (up to --max-issues).
    #[arg(long, value_name = "QUERY", help_heading = "Issues")]
    pub jql: Option<String>,

    /// Warm even inside the profile's quiet hours.
    #[arg(long, help_heading = "Running")]
    pub force: bool,
    /// If another warm of this profile is running, wait for it (for DURATION, or forever) instead of exiting 5.
    #[arg(long, value_name = "DURATION", num_args = 0..=1, require_equals = true, value_parser = duration, help_heading = "Running")]
    pub wait: Option<Option<Duration>>,
    /// End the run after this long, keeping what was done (exit 4), e.g. 50m so that cron runs never overlap.
    #[arg(long, value_name = "DURATION", value_parser = duration, help_heading = "Running")]
    pub max_duration: Option<Duration>,
    /// Print the plan (stages, projects, estimated requests) and touch nothing.
    #[arg(long, help_heading = "Running")]
    pub dry_run: bool,

    /// Remove cached entries: all, or of these categories (with --pattern: keys matching a GLOB); with stage flags, clear then warm.
    #[arg(long, value_name = "CATEGORY", num_args = 0.., help_heading = "Maintenance")]
    pub clear: Option<Vec<Category>>,
    /// With --clear: only keys matching this SQLite GLOB (case-sensitive), e.g. 'PROJ-*'.
    #[arg(
        long,
        value_name = "GLOB",
        requires = "clear",
        help_heading = "Maintenance"
    )]
    pub pattern: Option<String>,
    /// Drop expired entries and give the space back to the file system.
    #[arg(long, help_heading = "Maintenance")]
    pub prune: bool,
    /// Delete and recreate the cache file (the way back from a corrupt or too-new file).
    #[arg(long, help_heading = "Maintenance")]
    pub reset: bool,
    /// Copy this profile's SQLite cache into a PostgreSQL database (postgres://user@host/db), times intact, replacing what it holds for the profile; then set `cache_url` to use it.
    #[arg(
        long,
        value_name = "CACHE_URL",
        help_heading = "Maintenance",
        conflicts_with_all = ["projects", "fields", "users", "issues", "all", "only_stale", "clear", "prune", "reset", "dry_run"]
    )]
    pub copy_to: Option<String>,
    /// Check the credentials: print who the token belongs to, the deployment and the server version.
    #[arg(long, help_heading = "Maintenance")]
    pub check_auth: bool,

    /// Print a crontab line that runs `--all --quiet` on the profile's `schedule`.
    #[arg(long, help_heading = "Scheduling")]
    pub print_cron: bool,
    /// Print a systemd service and timer unit pair for the profile's `schedule`.
    #[arg(long, help_heading = "Scheduling")]
    pub print_systemd: bool,

    /// More logging on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, help_heading = "Output")]
    pub verbose: u8,
    /// Print nothing on success; a short summary on stderr on failure.
    #[arg(short, long, help_heading = "Output", conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print the run report as one JSON object on stdout.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// Also write logs to this file (appended; at least info level).
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    pub log_file: Option<PathBuf>,
    /// Print shell completions for SHELL and exit.
    #[arg(long, value_name = "SHELL", exclusive = true, help_heading = "Output")]
    pub completions: Option<clap_complete::Shell>,
    /// Print the man page and exit.
    #[arg(long, exclusive = true, help_heading = "Output")]
    pub man: bool,
}

impl Cli {
    /// The stages asked for, in priority order.
    pub fn stages(&self) -> Vec<Stage> {
        if self.all {
            return Stage::ALL.to_vec();
        }
        let on_demand = !self.issue.is_empty() || self.jql.is_some();
        [
            (self.projects, Stage::Projects),
            (self.fields, Stage::Fields),
            (self.users, Stage::Users),
            (self.issues || on_demand, Stage::Issues),
        ]
        .into_iter()
        .filter_map(|(on, s)| on.then_some(s))
        .collect()
    }

    /// Whether anything but a warm was asked for.
    pub fn has_other_action(&self) -> bool {
        self.check_auth
            || self.print_cron
            || self.print_systemd
            || self.clear.is_some()
            || self.prune
            || self.reset
            || self.copy_to.is_some()
    }

    /// What the issues stage does.
    pub fn issue_options(&self) -> IssueOptions {
        IssueOptions {
            recent: self.issues || self.all,
            since: self.since,
            max_issues: self.max_issues as usize,
            full: self.full,
            keys: self.issue.clone(),
            jql: self.jql.clone(),
        }
    }
}

/// A project key: `PROJ`, `OPS2`, `MY_TEAM`.
pub fn project_key(s: &str) -> Result<String, String> {
    let valid = s.len() >= 2
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a project key: keys look like PROJ or OPS2 (capital letters, digits, _)"
        ))
    }
}

/// An issue key: `PROJ-123`.
pub fn issue_key(s: &str) -> Result<String, String> {
    match s.rsplit_once('-') {
        Some((project, number))
            if project_key(project).is_ok()
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(s.to_string())
        }
        _ => Err(format!(
            "`{s}` is not an issue key: keys look like PROJ-123"
        )),
    }
}

/// `--since`: N followed by m, h, d or w.
pub fn since_value(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not an age: use N followed by m, h, d or w, e.g. 7d or 12h");
    let split = s
        .len()
        .checked_sub(1)
        .filter(|&i| s.is_char_boundary(i))
        .ok_or_else(bad)?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let minutes = match unit {
        "m" => 1,
        "h" => 60,
        "d" => 60 * 24,
        "w" => 60 * 24 * 7,
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(n * minutes * 60))
}

/// A humantime duration: `30s`, `50m`, `2h`.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); use e.g. 30s, 10m, 2h"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn since_takes_minutes_hours_days_and_weeks() {
        assert_eq!(since_value("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(since_value("2w").unwrap(), Duration::from_secs(14 * 86400));
        for bad in ["", "7", "7x", "0d", "-1d", "d"] {
            assert!(since_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_validated_before_they_reach_jql() {
        assert!(project_key("FOR").is_ok());
        assert!(project_key("proj").is_err());
        assert!(project_key("A\" OR 1=1").is_err());
        assert!(issue_key("FOR-12").is_ok());
        assert!(issue_key("FOR-").is_err());
    }
}
