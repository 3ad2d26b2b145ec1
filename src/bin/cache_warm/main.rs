//! `cache_warm`: warm the local Jira cache of one profile.
//!
//! Thin front end: parses flags, sets up logging, loads the profile, takes
//! the profile's lock, calls the library's warmers, prints the report and
//! chooses the exit code (`CONVENTIONS.md`). SIGINT and SIGTERM end the run
//! between pages: what was written stays, the run is recorded as
//! interrupted, the lock is released.

mod cli;
#[path = "../common/mod.rs"]
mod common;
mod output;
mod schedule;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory, Parser};
use jira_cache::cache::{Cache, CacheWriter, RunEnd, RunStart};
use jira_cache::lock::WarmLock;
use jira_cache::profile::{self, LoadOptions, Profile};
use jira_cache::warm::{self, RunReport, RunResult, Stage, WarmContext, WarmPlan};
use jira_cache::{Deployment, exit, site};

use cli::Cli;
use output::{LiveOutput, Mode};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = common::print_completions_or_man::<Cli>(cli.completions, cli.man) {
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
        eprintln!("cache_warm: {e}");
        return ExitCode::from(exit::CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cache_warm: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("cache_warm: {}", common::one_line(&err));
            ExitCode::from(exit::code_for(err.as_ref()))
        }
    }
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
        return check_auth(&profile).await;
    }
    if cli.print_cron {
        print!("{}", schedule::cron(&profile));
        return Ok(exit::OK);
    }
    if cli.print_systemd {
        print!("{}", schedule::systemd(&profile));
        return Ok(exit::OK);
    }
    let stages = cli.stages();
    if cli.dry_run {
        // Touch nothing: count what --clear would remove, show the plan.
        if let Some(categories) = &cli.clear {
            let n = count_matching(&profile, categories, cli.pattern.as_deref())?;
            println!(
                "Would remove {n} {} (dry run: nothing removed)",
                clear_what(categories, cli.pattern.as_deref())
            );
        }
        if !stages.is_empty() || cli.clear.is_none() {
            print_plan(&cli, &profile, &stages)?;
        }
        return Ok(exit::OK);
    }
    if !stages.is_empty()
        && !cli.force
        && let Some(quiet) = profile.quiet_hours
        && quiet.contains(schedule::local_time_of_day())
    {
        eprintln!(
            "cache_warm: profile `{}`: refusing to warm inside its quiet hours ({quiet}, local time); \
             run it outside them, or pass --force",
            profile.name
        );
        return Ok(exit::QUIET_HOURS);
    }

    let _lock = match cli.wait {
        Some(limit) => WarmLock::acquire_waiting(&profile.lock_path(), limit).await?,
        None => WarmLock::acquire(&profile.lock_path())?,
    };
    let cache = if cli.reset {
        let cache = Cache::reset(profile.cache_path())?;
        println!("Recreated {}", profile.cache_path().display());
        cache
    } else {
        Cache::open(profile.cache_path())?
    };
    let writer = cache.writer()?;
    if let Some(categories) = &cli.clear {
        clear(&writer, categories, cli.pattern.clone()).await?;
    }
    if cli.prune {
        let outcome = writer.prune(warm::now_ms()).await?;
        println!(
            "Pruned {} expired entries; the file gave back {}",
            outcome.removed,
            common::bytes(outcome.bytes_freed_from_file)
        );
    }
    if stages.is_empty() {
        writer.shutdown().await?;
        return Ok(exit::OK);
    }
    let code = warm_stages(&cli, &profile, &cache, &writer, stages).await;
    writer.shutdown().await?;
    code
}

async fn clear(
    writer: &CacheWriter,
    categories: &[jira_cache::Category],
    pattern: Option<String>,
) -> anyhow::Result<()> {
    let scopes: Vec<Option<jira_cache::Category>> = if categories.is_empty() {
        vec![None]
    } else {
        categories.iter().copied().map(Some).collect()
    };
    let mut total = 0;
    for category in scopes {
        total += writer.remove(category, pattern.clone(), false).await?;
    }
    println!(
        "Removed {total} {}",
        clear_what(categories, pattern.as_deref())
    );
    Ok(())
}

/// What `--clear` covers, in words: `issue entries matching PROJ-*`.
fn clear_what(categories: &[jira_cache::Category], pattern: Option<&str>) -> String {
    match (categories.is_empty(), pattern) {
        (true, None) => "entries".to_string(),
        (true, Some(p)) => format!("entries matching {p}"),
        (false, None) => format!("{} entries", list(categories)),
        (false, Some(p)) => format!("{} entries matching {p}", list(categories)),
    }
}

/// How many entries `--clear` would remove, read without writing anything.
fn count_matching(
    profile: &Profile,
    categories: &[jira_cache::Category],
    pattern: Option<&str>,
) -> anyhow::Result<u64> {
    let reader = match Cache::open_read_only(profile.cache_path()) {
        Ok(r) => r,
        Err(jira_cache::cache::CacheError::Missing { .. }) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let scope: &[jira_cache::Category] = if categories.is_empty() {
        &jira_cache::Category::ALL
    } else {
        categories
    };
    let mut n = 0;
    for &category in scope {
        n += reader.count_keys(category, pattern)?;
    }
    Ok(n)
}

fn list(categories: &[jira_cache::Category]) -> String {
    categories
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How the run ended, as far as the binary is concerned.
enum Ending {
    Finished(Box<RunReport>),
    Interrupted { code: u8, signal: &'static str },
    OutOfTime(Duration),
}

async fn warm_stages(
    cli: &Cli,
    profile: &Profile,
    cache: &Cache,
    writer: &CacheWriter,
    mut stages: Vec<Stage>,
) -> anyhow::Result<u8> {
    let reader = cache.reader()?;
    let remembered = site::remembered_deployment(&reader, profile)?;
    let fresh = schedule::fresh_policy(profile, cli.full, Some(&reader));
    let mut skipped = Vec::new();
    if cli.only_stale {
        let fresh = warm::fresh_stages(&reader, &stages, warm::now_ms())?;
        stages.retain(|s| !fresh.contains(s));
        skipped = fresh;
    }
    drop(reader);
    let mode = mode(cli);
    if stages.is_empty() {
        if mode == Mode::Human {
            println!(
                "Nothing to do: every entry of {} is still fresh",
                names(&skipped)
            );
        }
        return Ok(exit::OK);
    }
    let stage_names: Vec<String> = stages.iter().map(|s| s.as_str().to_string()).collect();
    let started_at = warm::now_ms();
    let run_id = writer
        .run_start(RunStart {
            started_at,
            pid: std::process::id(),
            stages: stage_names,
        })
        .await?;

    let connection = match site::connect(profile, remembered, common::retry_policy()).await {
        Ok(c) => c,
        Err(e) => {
            writer
                .run_finish(
                    run_id,
                    run_end(RunResult::Failed, vec![e.to_string()], None),
                )
                .await?;
            return match e {
                site::ConnectError::Profile(p) => Err(p.into()),
                other => Err(other)
                    .with_context(|| format!("profile `{}` ({})", profile.name, profile.url)),
            };
        }
    };
    if connection.probed.is_some() {
        site::remember_deployment(writer, profile, connection.deployment).await?;
    }

    let projects = if cli.project.is_empty() {
        profile.projects.clone()
    } else {
        cli.project.clone()
    };
    let mut plan = WarmPlan::new(stages, projects);
    plan.issues = cli.issue_options();
    plan.stage_delay = cli.stage_delay;
    plan.fresh = fresh;
    let live = Arc::new(LiveOutput::new(mode));
    let ctx = WarmContext {
        client: connection.client.clone(),
        writer: writer.clone(),
        ttl: profile.ttl,
        cache_path: profile.cache_path(),
        issue_fields: profile.issue_fields.clone(),
        concurrency: profile.concurrency,
        progress: live.clone(),
    };

    let ending = run_until_stopped(&plan, &ctx, cli.max_duration).await;
    let client_stats = connection.client.stats();
    let (report, code) = match ending {
        Ending::Finished(report) => {
            let report = *report;
            let code = exit_code(&report);
            (report, code)
        }
        Ending::Interrupted { code, signal } => {
            let report = RunReport::stopped(
                started_at,
                live.finished_stages(),
                client_stats,
                RunResult::Interrupted,
                format!("interrupted by {signal}"),
            );
            (report, code)
        }
        Ending::OutOfTime(limit) => {
            let message = format!(
                "stopped after --max-duration {}; what was warmed is kept",
                humantime::format_duration(limit)
            );
            (
                RunReport::stopped(
                    started_at,
                    live.finished_stages(),
                    client_stats,
                    RunResult::Partial,
                    message,
                ),
                exit::PARTIAL,
            )
        }
    };

    let mut report = report;
    report.rate = connection.client.rate_stats();
    let eviction = writer
        .enforce_max_size(profile.max_size, warm::now_ms())
        .await?;
    if eviction.removed_expired + eviction.removed_lru > 0 {
        report.notes.push(format!(
            "the cache passed its max_size of {}: removed {} expired and {} least recently read entries",
            common::bytes(profile.max_size),
            eviction.removed_expired,
            eviction.removed_lru
        ));
    }
    let errors: Vec<String> = report.errors().map(|e| e.message.clone()).collect();
    let json = serde_json::to_string(&report).unwrap_or_default();
    writer
        .run_finish(
            run_id,
            run_end(report.result, errors, Some((&report, json))),
        )
        .await?;
    output::print_report(&report, profile, mode);
    Ok(code)
}

/// Runs the plan until it finishes, a signal arrives, or time runs out.
async fn run_until_stopped(
    plan: &WarmPlan,
    ctx: &WarmContext,
    max_duration: Option<Duration>,
) -> Ending {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut sigint), Ok(mut sigterm)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return Ending::Finished(Box::new(warm::run(plan, ctx).await));
    };
    let deadline = async {
        match max_duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        report = warm::run(plan, ctx) => Ending::Finished(Box::new(report)),
        _ = sigint.recv() => Ending::Interrupted { code: exit::SIGINT, signal: "SIGINT" },
        _ = sigterm.recv() => Ending::Interrupted { code: exit::SIGTERM, signal: "SIGTERM" },
        _ = deadline => Ending::OutOfTime(max_duration.unwrap_or_default()),
    }
}

fn run_end(result: RunResult, errors: Vec<String>, report: Option<(&RunReport, String)>) -> RunEnd {
    let (requests, totals, json) = match report {
        Some((r, json)) => (r.requests, r.totals(), json),
        None => (Default::default(), (0, 0, 0), String::new()),
    };
    RunEnd {
        ended_at: warm::now_ms(),
        result,
        requests: requests.requests,
        retries: requests.retries,
        throttled: requests.throttled,
        written: totals.0,
        unchanged: totals.1,
        removed: totals.2,
        errors,
        report_json: json,
    }
}

fn names(stages: &[Stage]) -> String {
    stages
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn exit_code(report: &RunReport) -> u8 {
    use jira_cache::warm::ErrorKind;
    let kinds: Vec<ErrorKind> = report.errors().map(|e| e.kind).collect();
    match report.result {
        RunResult::Ok => exit::OK,
        _ if kinds.contains(&ErrorKind::Auth) => exit::CONFIG,
        _ if kinds.contains(&ErrorKind::Cache) => exit::CACHE_FILE,
        RunResult::Partial => exit::PARTIAL,
        _ => exit::FAILED,
    }
}

/// `--dry-run`: the plan, from the profile and what the cache knows; no
/// request is sent and nothing is written.
fn print_plan(cli: &Cli, profile: &Profile, stages: &[Stage]) -> anyhow::Result<()> {
    let reader = match Cache::open_read_only(profile.cache_path()) {
        Ok(r) => Some(r),
        Err(jira_cache::cache::CacheError::Missing { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    // Items cached in a category, not counting its list entries
    // (`list:projects`, `assignable:<KEY>`). Keys themselves may hold a colon
    // (Cloud account ids do), so the list entries are counted apart.
    let cached = |c: jira_cache::Category| -> anyhow::Result<usize> {
        let Some(r) = &reader else { return Ok(0) };
        let lists = match c {
            jira_cache::Category::User => r.count_keys(c, Some("assignable:*"))?,
            _ => r.count_keys(c, Some("list:*"))?,
        };
        Ok((r.count_keys(c, None)? - lists) as usize)
    };
    let projects: Vec<String> = if !cli.project.is_empty() {
        cli.project.clone()
    } else if !profile.projects.is_empty() {
        profile.projects.clone()
    } else {
        Vec::new()
    };
    let scope_size = if projects.is_empty() {
        cached(jira_cache::Category::Project)?
    } else {
        projects.len()
    };
    let deployment = profile.deployment.or(match &reader {
        Some(r) => site::remembered_deployment(r, profile)?,
        None => None,
    });
    println!(
        "Plan for profile `{}` ({}), {}:",
        profile.name,
        profile.url,
        match deployment {
            Some(d) => d.to_string(),
            None => "deployment to be probed (1 request)".into(),
        }
    );
    if projects.is_empty() {
        println!("  scope: all projects ({scope_size} cached)");
    } else {
        println!("  scope: {}", projects.join(", "));
    }
    let fresh = schedule::fresh_policy(profile, cli.full, reader.as_ref());
    let assignable_scope: Vec<String> = match (&reader, projects.is_empty()) {
        (_, false) => projects.clone(),
        (Some(r), true) => r
            .keys(jira_cache::Category::Project, None)?
            .into_iter()
            .filter(|k| !k.starts_with("list:"))
            .collect(),
        (None, true) => Vec::new(),
    };
    let mut total = 0;
    for stage in stages {
        let verdicts = match &reader {
            Some(r) if fresh.skip_fresh => fresh.verdicts(
                r,
                *stage,
                &projects,
                &assignable_scope,
                &profile.ttl,
                warm::now_ms(),
            )?,
            _ => Vec::new(),
        };
        let skips = |name: &str| verdicts.iter().any(|v| v.skip && v.listing == name);
        let skipped_assignable = verdicts
            .iter()
            .filter(|v| v.skip && v.listing.starts_with("assignable:"))
            .count();
        let (estimate, how) = match stage {
            Stage::Projects if verdicts.first().is_some_and(|v| v.skip) => {
                (0, "still fresh".to_string())
            }
            Stage::Projects => match deployment {
                Some(Deployment::DataCenter) => (1, "one /project listing".to_string()),
                _ => (
                    (scope_size.max(1)).div_ceil(100),
                    "/project/search at 100 a page".to_string(),
                ),
            },
            Stage::Fields => (
                5 - verdicts.iter().filter(|v| v.skip).count(),
                "fields, issue types, priorities, statuses, resolutions".to_string(),
            ),
            Stage::Users => {
                let users = cached(jira_cache::Category::User)?;
                let listing = match skips("users") {
                    true => 0,
                    false => users.div_ceil(1000) + 1,
                };
                let assignable = scope_size.saturating_sub(skipped_assignable);
                (
                    listing + assignable,
                    format!("users ({users} cached) and assignable users of {assignable} projects"),
                )
            }
            Stage::Issues => {
                let per = (cli.max_issues as usize).div_ceil(100).max(1);
                (
                    scope_size * (per + 1),
                    format!(
                        "up to {} issues per project, updated in the last {}, plus a key census",
                        cli.max_issues,
                        common::duration(cli.since)
                    ),
                )
            }
        };
        total += estimate;
        let unit = if estimate == 1 { "request" } else { "requests" };
        println!("  {:<9} ~{estimate} {unit}: {how}", stage.as_str());
        print_verdicts(&verdicts);
    }
    println!("  total     ~{total} requests; nothing was sent and nothing written (dry run)");
    Ok(())
}

/// The dry run's word on each listing: skipped or fetched, and why; the
/// assignable lists, one per project, in two lines at most.
fn print_verdicts(verdicts: &[warm::ListingVerdict]) {
    let what = |skip: bool| if skip { "skip" } else { "fetch" };
    let (assignable, others): (Vec<_>, Vec<_>) = verdicts
        .iter()
        .partition(|v| v.listing.starts_with("assignable:"));
    for v in others {
        println!("    {} {}: {}", what(v.skip), v.listing, v.reason);
    }
    for skip in [true, false] {
        let group: Vec<_> = assignable.iter().filter(|v| v.skip == skip).collect();
        if let Some(first) = group.first() {
            println!(
                "    {} {} assignable lists (e.g. {}: {})",
                what(skip),
                group.len(),
                first.listing,
                first.reason
            );
        }
    }
}

async fn check_auth(profile: &Profile) -> anyhow::Result<u8> {
    let connection = match site::connect(profile, profile.deployment, common::retry_policy()).await
    {
        Ok(c) => c,
        Err(site::ConnectError::Profile(p)) => return Err(p.into()),
        Err(e) => {
            return Err(e).with_context(|| format!("profile `{}` ({})", profile.name, profile.url));
        }
    };
    let client = &connection.client;
    let me = client
        .myself()
        .await
        .with_context(|| format!("profile `{}`: checking the credentials", profile.name))?;
    let info = match connection.probed {
        Some(info) => info,
        None => client.server_info().await.unwrap_or_default(),
    };
    println!("Profile     {}", profile.name);
    println!("Site        {}", profile.url);
    println!("User        {}", me.describe());
    println!("Deployment  {}", connection.deployment);
    println!(
        "Version     {}",
        info.version.as_deref().unwrap_or("unknown")
    );
    Ok(exit::OK)
}
