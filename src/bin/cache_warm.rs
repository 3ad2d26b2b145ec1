//! `cache_warm`: warm the local Jira cache of one profile.
//!
//! Thin front end: parses flags, sets up logging, loads the profile, takes
//! the profile's lock, calls the library's warmers, prints the report and
//! chooses the exit code (`CONVENTIONS.md`).

mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use jira_cache::cache::{Cache, CacheReader, RunEnd, RunStart};
use jira_cache::lock::WarmLock;
use jira_cache::profile::{self, LoadOptions, Profile};
use jira_cache::warm::{
    self, IssueOptions, RunReport, RunResult, Stage, StageStatus, WarmContext, WarmPlan,
};
use jira_cache::{Deployment, exit, site};

/// Warm the local SQLite cache of a Jira site, stage by stage.
///
/// Stages run in priority order: projects, fields, users, issues. Each page
/// is written as it arrives; a failed stage keeps what was cached before.
#[derive(Debug, Parser)]
#[command(name = "cache_warm", version, after_help = common::EXIT_CODES_HELP)]
struct Cli {
    /// Warm projects (one entry per project key, plus `list:projects`).
    #[arg(long, help_heading = "Stages")]
    projects: bool,
    /// Warm fields, issue types, priorities, statuses and resolutions.
    #[arg(long, help_heading = "Stages")]
    fields: bool,
    /// Warm users and the assignable users of each project.
    #[arg(long, help_heading = "Stages")]
    users: bool,
    /// Warm the recent issues of each project in scope.
    #[arg(long, help_heading = "Stages")]
    issues: bool,
    /// Every stage: projects, fields, users, issues.
    #[arg(long, help_heading = "Stages")]
    all: bool,

    /// The profile to use (default: $JIRA_PROFILE, the file's `default`, or its only profile).
    #[arg(long, short = 'p', value_name = "NAME")]
    profile: Option<String>,
    /// The profiles file (default: $JIRA_CACHE_CONFIG, then ~/.config/jira-cache/profiles.toml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Restrict per-project stages to this project (repeatable; default: the profile's `projects`, else all).
    #[arg(long = "project", value_name = "KEY", value_parser = project_key)]
    project: Vec<String>,

    /// How far back recent issues go: N followed by m, h, d or w (e.g. 7d).
    #[arg(long, value_name = "AGE", value_parser = since_value, default_value = "30d", help_heading = "Issues")]
    since: std::time::Duration,
    /// At most this many issues per project (and per --jql query).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Issues")]
    max_issues: u32,
    /// Ignore the incremental watermarks: fetch each project's whole window again.
    #[arg(long, help_heading = "Issues")]
    full: bool,
    /// Warm this issue (repeatable), on demand; Cloud fetches up to 100 per request.
    #[arg(long = "issue", value_name = "KEY", value_parser = issue_key, help_heading = "Issues")]
    issue: Vec<String>,
    /// Warm the issues this bounded JQL query returns (up to --max-issues).
    #[arg(long, value_name = "QUERY", help_heading = "Issues")]
    jql: Option<String>,

    /// Check the credentials: print who the token belongs to, the deployment and the server version.
    #[arg(long, conflicts_with_all = ["projects", "fields", "users", "issues", "all", "issue", "jql"])]
    check_auth: bool,

    /// More logging on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, help_heading = "Output")]
    verbose: u8,
    /// Print nothing on success; a short summary on stderr on failure.
    #[arg(short, long, help_heading = "Output", conflicts_with = "verbose")]
    quiet: bool,
}

fn project_key(s: &str) -> Result<String, String> {
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

fn issue_key(s: &str) -> Result<String, String> {
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

fn since_value(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("`{s}` is not an age: use N followed by m, h, d or w, e.g. 7d or 12h");
    let (number, unit) = s.split_at(s.len().checked_sub(1).ok_or_else(bad)?);
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
    Ok(std::time::Duration::from_secs(n * minutes * 60))
}

impl Cli {
    fn stages(&self) -> Vec<Stage> {
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

    fn issue_options(&self) -> IssueOptions {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.stages().is_empty() && !cli.check_auth {
        use clap::CommandFactory;
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "nothing to warm: pass --all, or one or more of --projects --fields --users --issues --issue --jql",
            )
            .exit();
    }
    common::init_logging(cli.verbose, cli.quiet);
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
    let quiet = cli.quiet;
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("cache_warm: {}", common::one_line(&err));
            let _ = quiet; // errors are printed even with --quiet
            ExitCode::from(exit::code_for(err.as_ref()))
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let options = LoadOptions::from_process_env(cli.config.clone(), cli.profile.clone());
    let profile = profile::load(&options)?;
    if cli.check_auth {
        return check_auth(&profile).await;
    }
    let cache = Cache::open(profile.cache_path())?;
    let _lock = WarmLock::acquire(&profile.lock_path())?;
    let remembered = remembered_deployment(&cache.reader()?, &profile)?;
    let writer = cache.writer()?;
    let stages = cli.stages();
    let stage_names: Vec<String> = stages.iter().map(|s| s.as_str().to_string()).collect();
    let run_id = writer
        .run_start(RunStart {
            started_at: warm::now_ms(),
            pid: std::process::id(),
            stages: stage_names,
        })
        .await?;

    let connection = match site::connect(&profile, remembered, common::retry_policy()).await {
        Ok(c) => c,
        Err(e) => {
            let end = RunEnd {
                ended_at: warm::now_ms(),
                result: RunResult::Failed,
                requests: 0,
                retries: 0,
                throttled: 0,
                written: 0,
                unchanged: 0,
                removed: 0,
                errors: vec![e.to_string()],
                report_json: String::new(),
            };
            writer.run_finish(run_id, end).await?;
            return Err(e).with_context(|| format!("profile `{}` ({})", profile.name, profile.url));
        }
    };
    if connection.probed.is_some() {
        writer
            .set_meta("site_url".into(), profile.url.to_string())
            .await?;
        writer
            .set_meta("deployment".into(), connection.deployment.as_str().into())
            .await?;
    }

    let projects = if cli.project.is_empty() {
        profile.projects.clone()
    } else {
        cli.project.clone()
    };
    let mut plan = WarmPlan::new(stages, projects);
    plan.issues = cli.issue_options();
    let ctx = WarmContext {
        client: connection.client.clone(),
        writer: writer.clone(),
        ttl: ttls(&profile),
        cache_path: profile.cache_path(),
        issue_fields: profile.issue_fields.clone(),
        concurrency: profile.concurrency,
    };
    let report = warm::run(&plan, &ctx).await;

    let (written, unchanged, removed) = report.totals();
    let errors: Vec<String> = report.errors().map(|e| e.message.clone()).collect();
    writer
        .run_finish(
            run_id,
            RunEnd {
                ended_at: warm::now_ms(),
                result: report.result,
                requests: report.requests.requests,
                retries: report.requests.retries,
                throttled: report.requests.throttled,
                written,
                unchanged,
                removed,
                errors,
                report_json: serde_json::to_string(&report).unwrap_or_default(),
            },
        )
        .await?;
    writer.shutdown().await?;

    print_report(&report, &profile, cli.quiet);
    Ok(exit_code(&report))
}

/// The deployment an earlier probe of this same site found, if any.
fn remembered_deployment(
    reader: &CacheReader,
    profile: &Profile,
) -> anyhow::Result<Option<Deployment>> {
    if profile.deployment.is_some() {
        return Ok(profile.deployment);
    }
    let site = reader.meta("site_url")?;
    if site.as_deref() != Some(profile.url.as_str()) {
        return Ok(None);
    }
    Ok(reader.meta("deployment")?.and_then(|d| d.parse().ok()))
}

fn ttls(profile: &Profile) -> warm::Ttls {
    warm::Ttls {
        project: profile.ttl.project,
        field: profile.ttl.field,
        user: profile.ttl.user,
        issue_recent: profile.ttl.issue_recent,
        issue_old: profile.ttl.issue_old,
    }
}

fn print_report(report: &RunReport, profile: &Profile, quiet: bool) {
    if quiet {
        if report.result != RunResult::Ok {
            eprintln!(
                "cache_warm: profile `{}`: {} ({} of {} stages failed)",
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
        return;
    }
    for stage in &report.stages {
        for line in stage.lines.iter().filter(|_| stage.stage == Stage::Issues) {
            println!("{line}");
        }
        println!("{}", stage.summary());
        for note in stage
            .notes
            .iter()
            .filter(|_| stage.status != StageStatus::Skipped)
        {
            println!("  note: {note}");
        }
        for e in &stage.errors {
            eprintln!("cache_warm: {}: {}", stage.stage, e.message);
        }
    }
    println!(
        "{} in {}: {} requests, {} retries; cache {}",
        match report.result {
            RunResult::Ok => "Done",
            RunResult::Partial => "Done with errors",
            _ => "Failed",
        },
        common::duration(std::time::Duration::from_secs_f64(report.seconds)),
        report.requests.requests,
        report.requests.retries,
        profile.cache_path().display()
    );
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

async fn check_auth(profile: &Profile) -> anyhow::Result<u8> {
    let connection = site::connect(profile, profile.deployment, common::retry_policy())
        .await
        .with_context(|| format!("profile `{}` ({})", profile.name, profile.url))?;
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
