//! `cache_warm`: warm the local Jira cache of one profile.
//!
//! Thin front end: parses flags, sets up logging, loads the profile, takes
//! the profile's lock, calls the library's warmers, prints the report and
//! chooses the exit code (`CONVENTIONS.md`). SIGINT and SIGTERM end the run
//! between pages: what was written stays, the run is recorded as
//! interrupted, the lock is released.

mod auth;
mod clear;
mod cli;
#[path = "../common/mod.rs"]
mod common;
mod copy;
mod output;
mod plan;
mod schedule;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use jira_cache::exit;
use jira_cache::profile::{self, LoadOptions, Profile};
use jira_cache::warm::{self, Stage, WarmOutcome, WarmRequest, WarmSession};

use cli::Cli;
use output::{LiveOutput, Mode};

fn main() -> ExitCode {
    // `COMPLETE=bash cache_…`: the shell asks for completions (profile
    // names included); answered here, before anything else runs.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command).complete();
    let cli = Cli::parse();
    common::remember_user_flags(cli.config.as_deref(), cli.profile.as_deref());
    let exit_status = common::exit_status_rows(&[], &[], &[]);
    if let Some(code) =
        common::print_completions_or_man::<Cli>(cli.completions, cli.man, &exit_status)
    {
        return code;
    }
    if cli.stages().is_empty() && !cli.has_other_action() && !cli.dry_run {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "nothing to warm: pass --all, or one or more of --projects --fields --users --issues --issue --jql",
            )
            .exit();
    }
    if let Err(e) = common::init_logging(cli.verbose, cli.quiet, cli.log_file.as_deref()) {
        crate::common::errln!("cache_warm: {e}");
        return ExitCode::from(exit::CONFIG);
    }
    let json = cli.json.then_some(output::JSON_SCHEMA_VERSION);
    common::run_to_exit("cache_warm", run(cli), json, |line| {
        // --log-file keeps the cause of a run that failed before it began.
        tracing::error!(target: output::SUMMARY_TARGET, "{line}");
    })
}

fn mode(cli: &Cli) -> Mode {
    if cli.json {
        Mode::Json
    } else if cli.quiet {
        Mode::Quiet
    } else {
        Mode::Human
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let options = LoadOptions::from_process_env(cli.config.clone(), cli.profile.clone());
    let profile = profile::load(&options)?;
    if cli.check_auth {
        return auth::check_auth(&profile).await;
    }
    if cli.print_cron || cli.print_systemd {
        let recipe = if cli.print_cron {
            schedule::cron(&profile)
        } else {
            match schedule::systemd(&profile) {
                Ok(recipe) => recipe,
                Err(refusal) => {
                    crate::common::errln!("cache_warm: {refusal}");
                    return Ok(exit::CONFIG);
                }
            }
        };
        for warning in &recipe.warnings {
            crate::common::errln!("cache_warm: {warning}");
        }
        crate::common::out!("{}", recipe.text);
        return Ok(exit::OK);
    }
    if let Some(url) = &cli.copy_to {
        return copy::copy_to(&profile, url).await;
    }
    let stages = cli.stages();
    if cli.dry_run {
        // Touch nothing: count what --clear would remove, show the plan.
        if let Some(categories) = &cli.clear {
            let n = clear::count_matching(&profile, categories, cli.pattern.as_deref())?;
            crate::common::outln!(
                "Would remove {n} {} (dry run: nothing removed)",
                clear::clear_what(categories, cli.pattern.as_deref())
            );
        }
        if !stages.is_empty() || cli.clear.is_none() {
            plan::print_plan(&cli, &profile, &stages)?;
        }
        return Ok(exit::OK);
    }
    if !stages.is_empty()
        && !cli.force
        && let Some(quiet) = profile.quiet_hours
        && quiet.contains(schedule::local_time_of_day())
    {
        let line = format!(
            "profile `{}`: refusing to warm inside its quiet hours ({quiet}, local time); \
             run it outside them, or pass --force",
            profile.name
        );
        crate::common::errln!("cache_warm: {line}");
        if cli.json {
            crate::common::outln!(
                "{}",
                common::json_error(output::JSON_SCHEMA_VERSION, exit::QUIET_HOURS, &line)
            );
        }
        return Ok(exit::QUIET_HOURS);
    }

    if !stages.is_empty() {
        // Before the lock and cache files exist: a profile that cannot
        // authenticate leaves nothing behind.
        profile.check_offline()?;
    }
    // Not with --quiet: a cron run that waits is no failure worth a mail.
    if let Some(limit) = cli.wait
        && !cli.quiet
    {
        say_what_we_wait_for(&profile, limit);
    }
    if !stages.is_empty() {
        // Its TLS roots load while the lock is taken and the cache opened.
        jira_cache::site::prepare(&profile);
    }
    let session = WarmSession::open(&profile, cli.wait, cli.reset).await?;
    // The library only returns this warning; the binary says it, once.
    if let Some(warning) = jira_cache::cache::directory_warning(&profile.cache_dir) {
        crate::common::errln!("cache_warm: warning: {warning}");
    }
    if cli.reset {
        crate::common::outln!("Recreated {}", profile.cache_display());
    }
    let writer = session.writer();
    if let Some(categories) = &cli.clear {
        clear::clear(writer, categories, cli.pattern.clone()).await?;
    }
    if cli.prune {
        let outcome = writer.prune(warm::now_ms()).await?;
        if profile.cache_url.is_some() {
            // The server reuses the space; its autovacuum gives it back.
            crate::common::outln!("Pruned {} expired entries", outcome.removed);
        } else {
            crate::common::outln!(
                "Pruned {} expired entries; the file gave back {}",
                outcome.removed,
                common::bytes(outcome.bytes_freed_from_file)
            );
        }
    }
    if stages.is_empty() {
        session.close().await?;
        return Ok(exit::OK);
    }
    let code = warm_stages(&cli, &profile, &session, stages).await;
    session.close().await?;
    code
}

/// The warm itself, through the library's run lifecycle; prints its report.
async fn warm_stages(
    cli: &Cli,
    profile: &Profile,
    session: &WarmSession,
    stages: Vec<Stage>,
) -> anyhow::Result<u8> {
    let mode = mode(cli);
    let live = Arc::new(LiveOutput::new(mode, cli.verbose));
    let requested = stages.clone();
    // The cache's word on the last runs, for the fresh-listing rule; none
    // yet on a first warm.
    let reader = jira_cache::cache::Cache::open_read_only(profile.cache_location()?).ok();
    let request = WarmRequest {
        stages,
        only_stale: cli.only_stale,
        projects: cli.project.clone(),
        issues: cli.issue_options(),
        stage_delay: cli.stage_delay,
        max_duration: cli.max_duration,
        retry: jira_cache::jira::RetryPolicy {
            on_connect_retry: live.connect_retry_hook(),
            ..common::retry_policy()
        },
        fresh: schedule::fresh_policy(profile, cli.full, reader.as_ref()),
    };
    let outcome = session
        .warm(profile, request, live.clone(), warm::until_signal())
        .await;
    // No bar stays on screen, whatever ended the run (Ctrl-C included).
    live.clear_bars();
    match outcome? {
        WarmOutcome::NothingToDo { fresh } => {
            match mode {
                Mode::Human => crate::common::outln!(
                    "Nothing to do: every entry of {} is still fresh",
                    names(&fresh)
                ),
                Mode::Json => output::print_nothing_to_do(profile, &fresh),
                Mode::Quiet => {}
            }
            Ok(exit::OK)
        }
        WarmOutcome::Ran { report, exit_code } => {
            output::print_report(&report, profile, mode, &requested, &live.started());
            Ok(exit_code)
        }
    }
}

/// `--wait` with the lock held: says whom it waits for, and how long it
/// will; nothing when the lock is free (the warm starts at once).
fn say_what_we_wait_for(profile: &Profile, limit: Option<std::time::Duration>) {
    let holder = match profile.cache_location() {
        Ok(jira_cache::cache::CacheLocation::Postgres(target)) => {
            jira_cache::cache::PgWarmLock::holder(&target)
                .ok()
                .flatten()
        }
        _ => jira_cache::lock::WarmLock::holder_of(&profile.lock_path()),
    };
    let Some(holder) = holder else {
        return;
    };
    let how_long = match limit {
        Some(limit) => format!("for up to {}", humantime::format_duration(limit)),
        None => "for as long as it runs (Ctrl-C stops waiting)".to_string(),
    };
    crate::common::errln!(
        "cache_warm: profile `{}`: waiting for the warm that holds its lock ({holder}), {how_long}",
        profile.name
    );
}

fn names(stages: &[Stage]) -> String {
    stages
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
