//! `cache_status`: what the cache of a profile holds, how fresh, how big,
//! how often read, and how the last warms went; a table for people, `--json`
//! for machines, `--check` for monitoring, `--get`/`--keys` for scripts.
//!
//! Thin front end: parses flags, loads the profile, asks the library for the
//! figures ([`jira_cache::status`]) and prints them. Two exit-code schemes:
//! the contract's (`CONVENTIONS.md`) everywhere, except that `--check` follows
//! monitoring-plugin practice (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN for any
//! error, usage errors included) and `--get` tells fresh (0), stale (10) and
//! missing (11) apart.
//!
//! `JIRA_CACHE_NOW` (an RFC 3339 time, undocumented in `--help`) fixes "now",
//! so that tests and bug reports get the same figures every time.

#[path = "../common/mod.rs"]
mod common;
mod human;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use jira_cache::cache::{Cache, CacheError, Freshness};
use jira_cache::profile::{self, CheckThresholds, LoadOptions, Profile};
use jira_cache::status::{self, CheckLevel, CheckOutcome, StatusReport};
use jira_cache::{Category, exit, warm};
use serde::Serialize;

/// `--get`: a stale hit (expired, still cached).
const GET_STALE: u8 = 10;
/// `--get`: nothing cached under that key.
const GET_MISS: u8 = 11;
/// The environment variable that fixes "now" (RFC 3339), for tests.
const NOW_VAR: &str = "JIRA_CACHE_NOW";
/// Runs `--check` and `--all-profiles` read, whatever `--runs` says: enough
/// to find the last run that is not still going.
const RUNS_FOR_CHECK: usize = 5;

/// Show what the local Jira cache holds, how fresh it is, and how the last warms went.
#[derive(Debug, Parser)]
#[command(name = "cache_status", version, after_help = exit_codes_help())]
struct Cli {
    /// The profile to show (default: $JIRA_PROFILE, the file's `default`, or its only profile).
    #[arg(long, short = 'p', value_name = "NAME", add = clap_complete::ArgValueCompleter::new(common::complete_profile))]
    profile: Option<String>,
    /// The profiles file (default: $JIRA_CACHE_CONFIG, then ~/.config/jira-cache/profiles.toml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// How many of the last warm runs to show.
    #[arg(long, value_name = "N", default_value_t = 5)]
    runs: usize,
    /// Print one JSON object (with `schema_version`) instead of tables;
    /// its shape is schemas/cache_status.schema.json.
    #[arg(long)]
    json: bool,
    /// One line per profile of the profiles file, with its health as
    /// --check judges it. Exits with the error code of the first profile
    /// that cannot be read, if any.
    #[arg(long, conflicts_with = "profile")]
    all_profiles: bool,
    /// Health check for monitoring: print one line and exit 0 OK, 1 WARNING,
    /// 2 CRITICAL, 3 UNKNOWN (any error, usage errors included). Judged
    /// against the profile's [check] table, or the flags below: the age of
    /// the last successful warm (the newest run whose result is `ok`;
    /// `partial` runs do not count; none at all is CRITICAL), the share of
    /// expired project, field and user entries (not issues: their TTL is
    /// minutes), the hit rate once there have been reads (WARNING only), and
    /// a last run that failed, was partial, interrupted or abandoned
    /// (WARNING).
    #[arg(long, conflicts_with_all = ["json", "all_profiles", "get", "keys"])]
    check: bool,
    /// With --check: WARNING when the last successful warm is older (e.g. 12h).
    #[arg(long, value_name = "DURATION", requires = "check", value_parser = parse_duration)]
    warn_age: Option<Duration>,
    /// With --check: CRITICAL when the last successful warm is older (e.g. 30h).
    #[arg(long, value_name = "DURATION", requires = "check", value_parser = parse_duration)]
    crit_age: Option<Duration>,
    /// With --check: WARNING above this share of expired entries in a category (e.g. 40%).
    #[arg(long, value_name = "PERCENT", requires = "check", value_parser = parse_percent)]
    warn_expired: Option<f64>,
    /// With --check: CRITICAL above this share of expired entries in a category (e.g. 80%).
    #[arg(long, value_name = "PERCENT", requires = "check", value_parser = parse_percent)]
    crit_expired: Option<f64>,
    /// With --check: WARNING when the hit rate is below this (e.g. 50%).
    #[arg(long, value_name = "PERCENT", requires = "check", value_parser = parse_percent)]
    warn_hit_rate: Option<f64>,
    /// With --check: read every page of the cache file now (SQLite's
    /// quick_check, linear in its size) and report CRITICAL on corruption;
    /// without it, --check does so once a day.
    #[arg(long, requires = "check")]
    quick_check: bool,
    /// Print the figures in Prometheus' text format (`jira_cache_…` metrics,
    /// labelled by profile), for node_exporter's textfile collector.
    #[arg(long, conflicts_with_all = ["json", "check", "all_profiles", "get", "keys"])]
    prometheus: bool,
    /// Print the cached JSON value of one entry; exit 0 fresh, 10 stale, 11 miss.
    /// Its reads are counted apart (`reads_by_source.get` in --json) and
    /// never in the hit rate --check judges.
    #[arg(long, num_args = 2, value_names = ["CATEGORY", "KEY"], conflicts_with_all = ["keys", "json", "all_profiles"])]
    get: Option<Vec<String>>,
    /// List the keys of a category (project, field, user, issue), sorted.
    /// The answers cache_serve keeps (`serve:…` keys) are listed only when
    /// --pattern asks for them, e.g. --pattern 'serve:*'.
    #[arg(long, value_name = "CATEGORY", conflicts_with_all = ["json", "all_profiles"])]
    keys: Option<Category>,
    /// With --keys: only keys matching this SQLite GLOB (case-sensitive), e.g. 'PROJ-*'.
    #[arg(long, value_name = "GLOB", requires = "keys")]
    pattern: Option<String>,
    /// More logging on stderr (-v, -vv, -vvv); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Print shell completions for SHELL and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<clap_complete::Shell>,
    /// Print the man page and exit.
    #[arg(long, exclusive = true)]
    man: bool,
}

/// The contract's exit codes that `cache_status` can return (it takes no
/// lock, runs no stage and has no quiet hours), plus those of `--get` and
/// `--check`.
fn exit_codes_help() -> String {
    format!(
        "{}\n\nWith --get: 0 fresh hit, 10 stale hit, 11 miss.\n\
         With --check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (any error, usage errors included).",
        common::exit_codes_help(
            &[exit::PARTIAL, exit::LOCKED, exit::QUIET_HOURS],
            // cache_status runs no stage: its 1 is any error not named below.
            &[(exit::FAILED, "failed (an error no other code names)")]
        )
    )
}

fn main() -> ExitCode {
    // `COMPLETE=bash cache_…`: the shell asks for completions (profile
    // names included); answered here, before anything else runs.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command).complete();
    common::quiet_on_closed_stdout();
    let checking = std::env::args_os().any(|a| a == "--check");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Monitoring reads stdout and treats anything but 0-3 as a plugin
        // bug: a usage error under --check is UNKNOWN.
        Err(err) if checking && err.use_stderr() => {
            let _ = err.print();
            let first = err.render().to_string();
            let first = first.lines().next().unwrap_or_default();
            let detail = format!("usage: {}", first.trim_start_matches("error: "));
            println!("{}", CheckOutcome::unknown(&detail).line);
            return ExitCode::from(CheckLevel::Unknown.exit_code());
        }
        Err(err) => err.exit(),
    };
    common::remember_user_flags(cli.config.as_deref(), cli.profile.as_deref());
    let exit_status = common::exit_status_rows(
        &[exit::PARTIAL, exit::LOCKED, exit::QUIET_HOURS],
        &[(exit::FAILED, "failed (an error no other code names)")],
        &[
            ("--get", "0 fresh hit, 10 stale hit, 11 miss."),
            (
                "--check",
                "0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (any error, usage errors included).",
            ),
        ],
    );
    if let Some(code) =
        common::print_completions_or_man::<Cli>(cli.completions, cli.man, &exit_status)
    {
        return code;
    }
    let _ = common::init_logging(cli.verbose, false, None);
    if cli.check {
        let outcome = run_check(&cli).unwrap_or_else(|err| {
            eprintln!("cache_status: {}", common::one_line(&err));
            CheckOutcome::unknown(&common::one_line(&err))
        });
        println!("{}", common::with_user_flags(&outcome.line));
        return ExitCode::from(outcome.level.exit_code());
    }
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("cache_status: {}", common::one_line(&err));
            let code = match err.downcast_ref::<UsageError>() {
                Some(_) => exit::USAGE,
                None => exit::code_for(err.as_ref()),
            };
            if cli.json {
                let line = common::one_line(&err);
                println!(
                    "{}",
                    common::json_error(status::SCHEMA_VERSION, code, &line)
                );
            }
            ExitCode::from(code)
        }
    }
}

/// A bad flag value or combination found after clap: exit 2 (3 under --check).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let now = now_ms()?;
    if cli.all_profiles {
        return all_profiles(cli, now);
    }
    let profile = profile::load(&load_options(cli, cli.profile.clone()))?;
    if let Some(get) = &cli.get {
        return get_entry(&profile, &get[0], &get[1], now);
    }
    if let Some(category) = cli.keys {
        let reader = match Cache::open_read_only(profile.cache_location()?) {
            Ok(r) => r,
            Err(CacheError::Missing { .. }) => return Ok(exit::OK),
            Err(e) => return Err(e.into()),
        };
        // The answers cache_serve keeps only when a pattern asks for them.
        for key in reader.keys(category, cli.pattern.as_deref())? {
            println!("{key}");
        }
        return Ok(exit::OK);
    }
    // Enough runs for the verdict to find the last one that has ended.
    let mut report = report_for(&profile, now, cli.runs.max(RUNS_FOR_CHECK))?;
    let verdict = status::check(&report, &profile.check, now);
    if cli.prometheus {
        // The last run's figures, whatever --runs says.
        print!("{}", status::prometheus(&report, now));
        return Ok(exit::OK);
    }
    report.runs.truncate(cli.runs);
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let layout = human::Layout {
            colour: common::colour_on_stdout(),
            width: common::stdout_width(),
            runs_asked: cli.runs,
        };
        print!("{}", human::report(&report, &verdict, now, &layout));
    }
    Ok(exit::OK)
}

/// `--get CATEGORY KEY`.
fn get_entry(profile: &Profile, category: &str, key: &str, now: i64) -> anyhow::Result<u8> {
    let category: Category = category.parse().map_err(|e| UsageError(format!("{e}")))?;
    let mut reader = match Cache::open_read_only(profile.cache_location()?) {
        Ok(r) => r,
        Err(CacheError::Missing { .. }) => return Ok(GET_MISS),
        Err(e) => return Err(e.into()),
    };
    // Counted apart from programs' reads: a person exploring with --get
    // must not move the hit rate --check judges.
    reader.set_read_source(jira_cache::cache::ReadSource::Get);
    let found = reader.get(category, key, now)?;
    let _ = reader.flush_read_counts();
    Ok(match found {
        None => GET_MISS,
        Some(entry) => {
            println!("{}", entry.value);
            match entry.freshness(now) {
                Freshness::Fresh => exit::OK,
                Freshness::Stale => GET_STALE,
            }
        }
    })
}

/// `--check`: the outcome to print (errors become UNKNOWN in `main`).
fn run_check(cli: &Cli) -> anyhow::Result<CheckOutcome> {
    let now = now_ms()?;
    let profile = profile::load(&load_options(cli, cli.profile.clone()))?;
    let thresholds = thresholds(&profile.check, cli)?;
    // On demand, or on its schedule (recorded in the file, best effort).
    match Cache::open_read_only(profile.cache_location()?) {
        Ok(mut reader) => {
            if cli.quick_check || status::quick_check_due(reader.last_quick_check()?, now) {
                if let Some(problems) = reader.quick_check()? {
                    return Ok(CheckOutcome::corrupt(&profile.name, &problems));
                }
                reader.record_quick_check(now)?;
            }
        }
        Err(CacheError::Missing { .. }) => {}
        Err(CacheError::Corrupt { detail, .. }) => {
            return Ok(CheckOutcome::corrupt(&profile.name, &detail));
        }
        Err(e) => return Err(e.into()),
    }
    let report = report_for(&profile, now, cli.runs.max(RUNS_FOR_CHECK))?;
    Ok(status::check(&report, &thresholds, now))
}

/// The profile's `[check]` thresholds with the flags' overrides, checked for
/// order (critical never below warning).
fn thresholds(from_profile: &CheckThresholds, cli: &Cli) -> Result<CheckThresholds, UsageError> {
    let t = CheckThresholds {
        warn_age: cli.warn_age.unwrap_or(from_profile.warn_age),
        crit_age: cli.crit_age.unwrap_or(from_profile.crit_age),
        warn_expired: cli.warn_expired.unwrap_or(from_profile.warn_expired),
        crit_expired: cli.crit_expired.unwrap_or(from_profile.crit_expired),
        warn_hit_rate: cli.warn_hit_rate.unwrap_or(from_profile.warn_hit_rate),
    };
    if t.crit_age < t.warn_age {
        return Err(UsageError(format!(
            "the critical age ({}) is below the warning age ({}); raise --crit-age or lower --warn-age",
            humantime::format_duration(t.crit_age),
            humantime::format_duration(t.warn_age)
        )));
    }
    if t.crit_expired < t.warn_expired {
        return Err(UsageError(format!(
            "the critical expired share ({}%) is below the warning share ({}%); raise --crit-expired or lower --warn-expired",
            t.crit_expired * 100.0,
            t.warn_expired * 100.0
        )));
    }
    Ok(t)
}

/// The report of one profile; a profile never warmed has an empty one.
fn report_for(profile: &Profile, now: i64, runs: usize) -> anyhow::Result<StatusReport> {
    Ok(match Cache::open_read_only(profile.cache_location()?) {
        Ok(reader) => status::gather(profile, &reader, now, runs)?,
        Err(CacheError::Missing { .. }) => status::empty(profile, now),
        Err(e) => return Err(e.into()),
    })
}

/// One profile of `--all-profiles --json`.
#[derive(Debug, Serialize)]
struct ProfileLine {
    profile: String,
    /// OK, WARNING, CRITICAL or UNKNOWN, as `--check` would say.
    health: CheckLevel,
    /// The line `--check` would print.
    check: String,
    /// The figures, unless the profile or its cache could not be read.
    status: Option<StatusReport>,
    /// Why not.
    error: Option<String>,
}

/// `--all-profiles --json`.
#[derive(Debug, Serialize)]
struct AllProfiles {
    schema_version: u32,
    generated_at: String,
    profiles: Vec<ProfileLine>,
}

/// `--all-profiles`: one line per profile; a profile that cannot be read
/// gets its line too, and its error decides the exit code.
fn all_profiles(cli: &Cli, now: i64) -> anyhow::Result<u8> {
    let (_, names) = profile::profile_names(&load_options(cli, None))?;
    let mut code = exit::OK;
    let mut lines = Vec::with_capacity(names.len());
    for name in names {
        let loaded = profile::load(&load_options(cli, Some(name.clone())))
            .map_err(anyhow::Error::from)
            .and_then(|p| {
                let report = report_for(&p, now, cli.runs.max(RUNS_FOR_CHECK))?;
                Ok((p, report))
            });
        lines.push(match loaded {
            Ok((p, mut report)) => {
                let outcome = status::check(&report, &p.check, now);
                report.runs.truncate(cli.runs);
                ProfileLine {
                    profile: name,
                    health: outcome.level,
                    check: outcome.line,
                    status: Some(report),
                    error: None,
                }
            }
            Err(err) => {
                if code == exit::OK {
                    code = exit::code_for(err.as_ref());
                }
                let detail = common::one_line(&err);
                ProfileLine {
                    profile: name,
                    health: CheckLevel::Unknown,
                    check: CheckOutcome::unknown(&detail).line,
                    status: None,
                    error: Some(detail),
                }
            }
        });
    }
    if cli.json {
        let all = AllProfiles {
            schema_version: status::SCHEMA_VERSION,
            generated_at: status::rfc3339(now),
            profiles: lines,
        };
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        let rows: Vec<human::ProfileRow<'_>> = lines
            .iter()
            .map(|l| human::ProfileRow {
                profile: &l.profile,
                health: l.health,
                report: l.status.as_ref(),
                error: l.error.as_deref(),
            })
            .collect();
        print!(
            "{}",
            human::profiles(
                &rows,
                now,
                common::colour_on_stdout(),
                common::stdout_width()
            )
        );
    }
    Ok(code)
}

fn load_options(cli: &Cli, profile: Option<String>) -> LoadOptions {
    LoadOptions::from_process_env(cli.config.clone(), profile)
}

/// Now, or the time `JIRA_CACHE_NOW` fixes.
fn now_ms() -> Result<i64, UsageError> {
    match std::env::var(NOW_VAR) {
        Ok(text) if !text.is_empty() => status::parse_rfc3339(&text).ok_or_else(|| {
            UsageError(format!(
                "{NOW_VAR}=`{text}` is not an RFC 3339 time; unset it, or write e.g. 2025-11-26T06:00:00Z"
            ))
        }),
        _ => Ok(warm::now_ms()),
    }
}

/// A `--warn-age`/`--crit-age` value: a humantime duration such as `26h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}; write a duration such as `26h`, `90m` or `2d`"))
}

/// A percentage flag: `40%` (the sign is required, as in profiles.toml),
/// from 0% to 100%, returned as a share from 0 to 1.
fn parse_percent(text: &str) -> Result<f64, String> {
    let hint = "write a percentage from 0% to 100%, such as `40%`";
    let Some(number) = text.trim().strip_suffix('%') else {
        return Err(format!("`{text}` has no % sign; {hint}"));
    };
    match number.trim().parse::<f64>() {
        Ok(n) if (0.0..=100.0).contains(&n) => Ok(n / 100.0),
        _ => Err(format!("`{text}` is not a percentage; {hint}")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn percentages_need_their_sign_and_stay_within_0_and_100() {
        assert_eq!(parse_percent("40%"), Ok(0.4));
        assert_eq!(parse_percent("12.5 %"), Ok(0.125));
        for bad in ["40", "0.4", "101%", "-1%", "many%"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn threshold_flags_override_the_profile_and_keep_their_order() {
        let cli = Cli::parse_from(["cache_status", "--check", "--warn-age", "12h"]);
        let t = thresholds(&CheckThresholds::default(), &cli).unwrap();
        assert_eq!(t.warn_age, Duration::from_secs(12 * 3600));
        assert_eq!(t.crit_age, CheckThresholds::default().crit_age);
        let cli = Cli::parse_from(["cache_status", "--check", "--warn-age", "60h"]);
        let err = thresholds(&CheckThresholds::default(), &cli).unwrap_err();
        assert!(err.to_string().contains("--crit-age"), "{err}");
    }
}
