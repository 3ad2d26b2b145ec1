//! What both binaries share at the edge: logging set-up, the exit-code text
//! of `--help`, and printing an error as one line.

#![allow(dead_code)] // each binary uses its own subset

use std::time::Duration;

use jira_cache::exit;
use jira_cache::jira::RetryPolicy;
use tracing_subscriber::EnvFilter;

/// The exit codes, as `--help` lists them.
const EXIT_CODES: &[(u8, &str)] = &[
    (exit::OK, "success"),
    (
        exit::FAILED,
        "failed: nothing useful done (unreachable site, every stage failed)",
    ),
    (exit::USAGE, "usage error"),
    (
        exit::CONFIG,
        "profile or configuration error, credentials missing or refused",
    ),
    (
        exit::PARTIAL,
        "partial: some stage failed, the others succeeded",
    ),
    (exit::LOCKED, "another warm holds the profile's lock"),
    (
        exit::QUIET_HOURS,
        "refused: inside quiet hours (--force overrides)",
    ),
    (
        exit::CACHE_FILE,
        "cache file error (corrupt, unwritable, newer schema); `cache_warm --reset` recreates the file",
    ),
];

/// The contract's exit-code table for `--help`, without the codes in
/// `never` (those a binary cannot return), and with a binary's own words
/// for some codes (`own`).
pub fn exit_codes_help(never: &[u8], own: &[(u8, &str)]) -> String {
    let mut help = String::from("Exit codes:\n");
    for (code, meaning) in EXIT_CODES.iter().filter(|(c, _)| !never.contains(c)) {
        let meaning = own
            .iter()
            .find(|(c, _)| c == code)
            .map_or(*meaning, |(_, m)| *m);
        help.push_str(&format!("  {code:<4} {meaning}\n"));
    }
    help.push_str("  130  interrupted by SIGINT, 143 by SIGTERM");
    help
}

/// Logs go to stderr: `-v` info, `-vv` debug, `-vvv` trace; `RUST_LOG`
/// wins when set; `--quiet` keeps only errors. With a log file, logs also go
/// there, at info level or more.
pub fn init_logging(
    verbose: u8,
    quiet: bool,
    log_file: Option<&std::path::Path>,
) -> Result<(), String> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let level = |verbose: u8| match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = |level: &str| match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ if level == "trace" => EnvFilter::new("trace"),
        _ => EnvFilter::new(format!(
            "warn,jira_cache={level},cache_warm={level},cache_status={level},cache_serve={level}"
        )),
    };
    let stderr_level = if quiet { "error" } else { level(verbose) };
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .with_target(false)
        .with_filter(filter(stderr_level));
    let file_layer = match log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    format!(
                        "cannot open the log file {}: {e}; check the path and its directory",
                        path.display()
                    )
                })?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::sync::Mutex::new(file))
                    .with_ansi(false)
                    .with_target(false)
                    .with_filter(filter(level(verbose.max(1)))),
            )
        }
        None => None,
    };
    let _ = tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .try_init();
    Ok(())
}

/// Colour only on a terminal, never with `NO_COLOR`.
pub fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Colour on stdout: only on a terminal, never with `NO_COLOR`.
pub fn colour_on_stdout() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// The retry policy; `JIRA_CACHE_RETRY_BASE` (e.g. `50ms`) shortens the
/// backoff, for tests and for sites known to recover fast.
pub fn retry_policy() -> RetryPolicy {
    let mut policy = RetryPolicy::default();
    if let Ok(v) = std::env::var("JIRA_CACHE_RETRY_BASE")
        && let Ok(d) = humantime::parse_duration(&v)
    {
        policy.base_backoff = d;
        policy.max_backoff = policy.max_backoff.max(d);
    }
    policy
}

/// An error and its causes on one line, as `{err:#}` prints it.
pub fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

/// Human-readable byte count: `1.2 MiB`.
pub fn bytes(n: u64) -> String {
    jira_cache::warm::format_bytes(n)
}

/// A duration as people read it: `0.8 s`, `5 min`, `2 h 5 min`, `1 d`, `1 d 12 h`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let total_min = (s / 60.0).round() as u64;
    let (days, hours, mins) = (total_min / 1440, total_min / 60 % 24, total_min % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (mins, "min")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}"))
        .collect();
    // Days and minutes together are more precision than anyone reads.
    parts.into_iter().take(2).collect::<Vec<_>>().join(" ")
}

/// `--completions SHELL` and `--man`, the same on both binaries: prints
/// them and answers the exit code, or `None` when neither was asked for.
pub fn print_completions_or_man<C: clap::CommandFactory>(
    completions: Option<clap_complete::Shell>,
    man: bool,
) -> Option<std::process::ExitCode> {
    let mut command = C::command();
    let name = command.get_name().to_string();
    if let Some(shell) = completions {
        clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
        return Some(std::process::ExitCode::SUCCESS);
    }
    if !man {
        return None;
    }
    Some(
        match clap_mangen::Man::new(command).render(&mut std::io::stdout()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            // `--man | head` closes the pipe early: not an error worth a word.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{name}: cannot write the man page: {e}");
                std::process::ExitCode::from(jira_cache::exit::FAILED)
            }
        },
    )
}
