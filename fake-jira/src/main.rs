//! `fake-jira`: a fake Jira on 127.0.0.1 for trying `jira-cache` by hand,
//! for scripts and for benchmarks. It prints one line with its URL on
//! stdout once it listens (so `--port 0` can be read by a script), notes on
//! stderr, and serves until SIGINT or SIGTERM.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fake_jira::{Credentials, FakeJira, Flavor, GenerateOptions, Site, SiteSize, UserNames};

/// A fake Jira (Cloud or Data Center) serving made-up or captured data.
#[derive(Debug, Parser)]
#[command(
    name = "fake-jira",
    version,
    after_help = "Without --fixtures or --generated it serves a small site: projects ALPHA, BETA \
                  and FOR (a JQL reserved word), a dozen issues, a few users."
)]
struct Cli {
    /// Port on 127.0.0.1; 0 lets the OS pick one (read it from stdout).
    #[arg(long, default_value_t = 8089)]
    port: u16,

    /// Which Jira to impersonate: cloud or datacenter.
    #[arg(long, default_value = "cloud", value_parser = parse_flavor)]
    flavor: Flavor,

    /// Serve the captured fixtures in DIR (the shared/jira/fixtures directory).
    #[arg(long, value_name = "DIR", conflicts_with = "generated")]
    fixtures: Option<PathBuf>,

    /// Serve generated data at scale (sized by the flags below).
    #[arg(long)]
    generated: bool,

    /// Generated projects [default: 10].
    #[arg(long, value_name = "N", requires = "generated")]
    projects: Option<usize>,

    /// Generated fields [default: 50].
    #[arg(long, value_name = "N", requires = "generated")]
    fields: Option<usize>,

    /// Generated users [default: 100].
    #[arg(long, value_name = "N", requires = "generated")]
    users: Option<usize>,

    /// Generated issues per project [default: 10].
    #[arg(long, value_name = "N", requires = "generated")]
    issues_per_project: Option<usize>,

    /// Approximate JSON size of each generated issue, in bytes [default: 1024].
    #[arg(long, value_name = "N", requires = "generated")]
    issue_bytes: Option<usize>,

    /// Half the generated issues were updated within this many days [default: 30].
    #[arg(long, value_name = "DAYS", requires = "generated")]
    recent_days: Option<u32>,

    /// Name generated users PREFIX then a zero-padded number (`--user-prefix
    /// user --user-digits 4`: user0001, ...; `e` and 6: e000001, ...), display
    /// names and emails alike, as sites using employee ids do. Data Center
    /// clients must then split `/user/search` deeper than 3 characters.
    #[arg(long, value_name = "PREFIX", requires = "generated")]
    user_prefix: Option<String>,

    /// Digits of the systematic user names [default: 4].
    #[arg(long, value_name = "N", requires = "user_prefix")]
    user_digits: Option<usize>,

    /// Active users assignable in each generated project [default: 25].
    #[arg(long, value_name = "N", requires = "generated")]
    assignable_per_project: Option<usize>,

    /// serverInfo answers 401 to requests without credentials (a site
    /// behind an SSO plugin or proxy); with credentials it answers.
    #[arg(long)]
    server_info_needs_auth: bool,

    /// A project the account may not see: its /project/KEY, its issues, its
    /// assignable users and searches naming it answer 403 (repeatable).
    #[arg(long, value_name = "KEY")]
    forbid_project: Vec<String>,

    /// Where the official OpenAPI documents are [default: $FAKE_JIRA_OPENAPI_DIR,
    /// else shared/jira/openapi beside the repository]. Every request is
    /// checked against the flavor's document; each violation is printed on
    /// stderr (the request is still answered).
    #[arg(long, value_name = "DIR")]
    openapi: Option<PathBuf>,

    /// Do not check requests against the OpenAPI documents.
    #[arg(long, conflicts_with = "openapi")]
    no_validate: bool,

    /// Added to every answer, e.g. 20ms, 1.5s.
    #[arg(long, value_parser = parse_duration)]
    latency: Option<Duration>,

    /// Server-side rate limit in requests per second: a token bucket of
    /// --burst requests, 429 over it with Retry-After and Atlassian's
    /// headers (X-RateLimit-Limit/-Remaining/-Reset, X-RateLimit-NearLimit,
    /// RateLimit-Reason, Beta-Retry-After). E.g. --rate-limit 20 --burst 10.
    #[arg(long, value_name = "PER_SECOND", value_parser = parse_rate)]
    rate_limit: Option<f64>,

    /// Requests allowed at once above the rate [default: the rate, rounded up].
    #[arg(long, value_name = "N", requires = "rate_limit")]
    burst: Option<u32>,

    /// The 429's Retry-After in seconds, whatever the wait [default: the
    /// wait rounded up, at least 1].
    #[arg(long, value_name = "SECONDS", requires = "rate_limit")]
    retry_after: Option<u64>,

    /// Send only Retry-After on a 429, none of Atlassian's X-RateLimit-*,
    /// RateLimit-Reason and Beta-Retry-After headers (sent by default).
    #[arg(long, requires = "rate_limit")]
    plain_rate_limit: bool,

    /// Email of the accepted Basic credential [Cloud default: bot@example.com].
    #[arg(long, requires = "token")]
    email: Option<String>,

    /// API token of the accepted Basic credential [Cloud default: cloud-token-123].
    #[arg(long, requires = "email")]
    token: Option<String>,

    /// Accepted Bearer token [Data Center default: dc-token-456].
    #[arg(long)]
    bearer: Option<String>,

    /// Accept any non-empty Basic or Bearer credential.
    #[arg(long, conflicts_with_all = ["email", "token", "bearer"])]
    any_auth: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fake-jira: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let flavor = cli.flavor;
    let site = if let Some(dir) = &cli.fixtures {
        Site::from_fixtures(flavor, dir)
            .map_err(|e| format!("cannot load fixtures from {}: {e}", dir.display()))?
    } else if cli.generated {
        let d = SiteSize::default();
        let mut options = GenerateOptions::default();
        if let Some(prefix) = &cli.user_prefix {
            options.user_names = UserNames::Numbered {
                prefix: prefix.clone(),
                digits: cli.user_digits.unwrap_or(4),
            };
        }
        if let Some(n) = cli.assignable_per_project {
            options.assignable_per_project = n;
        }
        Site::generated_with(
            flavor,
            SiteSize {
                projects: cli.projects.unwrap_or(d.projects),
                fields: cli.fields.unwrap_or(d.fields),
                users: cli.users.unwrap_or(d.users),
                issues_per_project: cli.issues_per_project.unwrap_or(d.issues_per_project),
                issue_bytes: cli.issue_bytes.unwrap_or(d.issue_bytes),
                recent_days: cli.recent_days.unwrap_or(d.recent_days),
            },
            &options,
        )
    } else {
        Site::small(flavor)
    };
    let credentials = if cli.any_auth {
        Credentials::any()
    } else if cli.email.is_some() || cli.bearer.is_some() {
        Credentials {
            basic: cli.email.zip(cli.token),
            bearer: cli.bearer,
        }
    } else {
        Credentials::default_for(flavor)
    };
    let summary = format!(
        "{} projects, {} issues, {} users",
        site.projects.len(),
        site.issues.len(),
        site.users.len()
    );
    let mut builder = FakeJira::builder(flavor)
        .site(site)
        .credentials(credentials.clone())
        .server_info_needs_auth(cli.server_info_needs_auth)
        .spec_validation(!cli.no_validate)
        .print_violations(true)
        .port(cli.port);
    if let Some(dir) = &cli.openapi {
        builder = builder.openapi_dir(dir);
    }
    for key in &cli.forbid_project {
        builder = builder.forbid_project(key);
    }
    if let Some(latency) = cli.latency {
        builder = builder.latency(latency);
    }
    if let Some(rate) = cli.rate_limit {
        let burst = cli.burst.unwrap_or(rate.ceil().max(1.0) as u32);
        builder = builder
            .rate_limit(rate, burst)
            .atlassian_rate_limit_headers(!cli.plain_rate_limit);
        if let Some(seconds) = cli.retry_after {
            builder = builder.retry_after(seconds);
        }
    }
    let jira = builder
        .try_start()
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", cli.port))?;

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "fake-jira ({flavor}) listening on {}", jira.url())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    drop(stdout);
    eprintln!("fake-jira: serving {summary}");
    eprintln!("fake-jira: accepting {}", credentials.describe());
    eprintln!("fake-jira: stop with Ctrl-C");
    eprintln!("fake-jira: on stdin, `touch N` edits N random issues updated in the last 30 days");

    // Commands on stdin change the site between runs of a client (the
    // benchmark's re-warm with 1% of the issues changed). End of input
    // (stdin closed or /dev/null) just ends the reader.
    let site = jira.site();
    std::thread::spawn(move || commands(&site));

    if jira.validates() {
        eprintln!("fake-jira: checking every request against the OpenAPI document");
    }
    wait_for_signal()?;
    let violations = jira.take_violations().len();
    if violations > 0 {
        eprintln!("fake-jira: {violations} request(s) broke the OpenAPI document (printed above)");
    }
    drop(jira);
    eprintln!("fake-jira: stopped");
    Ok(())
}

/// Reads `touch N` lines from stdin; answers each with `touched K` on stdout.
fn commands(site: &fake_jira::SiteHandle) {
    let mut seed: u64 = 0x746f_7563_6821;
    for line in std::io::stdin().lines() {
        let Ok(line) = line else { return };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["touch", n] => match n.parse::<usize>() {
                Ok(n) => {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let touched = site.touch_random(n, chrono::Duration::days(30), seed);
                    format!("touched {}", touched.len())
                }
                Err(_) => format!("error: `{n}` is not a number"),
            },
            [] => continue,
            _ => format!("error: unknown command `{line}` (try `touch N`)"),
        };
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{reply}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return;
        }
    }
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_signal() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the signal handler: {e}"))?;
    runtime.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate())
                .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.map_err(|e| format!("cannot listen for SIGINT: {e}")),
                _ = term.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c()
                .await
                .map_err(|e| format!("cannot listen for Ctrl-C: {e}"))
        }
    })
}

fn parse_flavor(s: &str) -> Result<Flavor, String> {
    s.parse()
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "`{s}` is not a rate: expected a number of requests per second > 0"
        )),
    }
}

/// `20ms`, `1.5s`, `2m`, `0`: a number and a unit (ms, s, m).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not a duration: expected e.g. 20ms, 1.5s or 2m");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_read_milliseconds_seconds_and_minutes() {
        assert_eq!(parse_duration("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("20").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn size_flags_need_generated_and_fixtures_exclude_it() {
        assert!(Cli::try_parse_from(["fake-jira", "--projects", "3"]).is_err());
        assert!(Cli::try_parse_from(["fake-jira", "--generated", "--fixtures", "x"]).is_err());
        let cli = Cli::try_parse_from(["fake-jira", "--generated", "--projects", "3"]).expect("ok");
        assert_eq!(cli.projects, Some(3));
        assert_eq!(cli.port, 8089);
        assert_eq!(cli.flavor, Flavor::Cloud);
    }

    #[test]
    fn site_shape_rate_and_validation_flags_need_what_they_modify() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["fake-jira"], args].concat());
        assert!(parse(&["--user-prefix", "e"]).is_err(), "needs --generated");
        assert!(parse(&["--generated", "--user-digits", "6"]).is_err());
        assert!(
            parse(&["--retry-after", "1"]).is_err(),
            "needs --rate-limit"
        );
        assert!(parse(&["--plain-rate-limit"]).is_err());
        assert!(parse(&["--no-validate", "--openapi", "x"]).is_err());
        let cli = parse(&[
            "--generated",
            "--user-prefix",
            "e",
            "--user-digits",
            "6",
            "--assignable-per-project",
            "3",
            "--rate-limit",
            "20",
            "--burst",
            "10",
            "--retry-after",
            "1",
            "--server-info-needs-auth",
            "--forbid-project",
            "AAB",
            "--forbid-project",
            "AAC",
        ])
        .expect("valid");
        assert_eq!(cli.user_prefix.as_deref(), Some("e"));
        assert_eq!(cli.user_digits, Some(6));
        assert_eq!(cli.retry_after, Some(1));
        assert!(cli.server_info_needs_auth);
        assert_eq!(cli.forbid_project, ["AAB", "AAC"]);
    }

    #[test]
    fn a_rate_must_be_positive() {
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("nan").is_err());
        assert_eq!(parse_rate("2.5"), Ok(2.5));
    }
}
