//! What both binaries share at the edge: logging set-up, the exit-code text
//! of `--help`, and printing an error as one line.

#![allow(dead_code)] // each binary uses its own subset

pub mod recipe;

/// `println!` that never panics: once stdout is closed (`cache_warm --all |
/// head -1`), what is left to print is dropped and the run goes on, to be
/// recorded as it ends. `println!` would panic on the broken pipe and leave
/// the run abandoned.
#[allow(unused_macros)]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::common::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}
#[allow(unused_imports)]
pub(crate) use outln;

/// `print!` that never panics; see [`outln`].
#[allow(unused_macros)]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::common::write_out(format_args!($($arg)*))
    };
}
#[allow(unused_imports)]
pub(crate) use out;

/// Writes to stdout, ignoring a failure: a reader gone early is no error
/// of the run's, and nothing else could be told of it there.
#[allow(dead_code)]
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if stdout.write_fmt(args).is_ok() {
        let _ = stdout.flush();
    }
}

/// `eprintln!` that never panics, for the same reason as [`outln`]
/// (`cache_warm --all 2>&1 | head -1`).
#[allow(unused_macros)]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::common::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}
#[allow(unused_imports)]
pub(crate) use errln;

/// Opens `--log-file` for appending: created 0600 if missing; a symlink
/// at the path is refused rather than followed (the log lands where it is
/// named, never in a file someone pointed it at); and only a regular file
/// or a character device (`/dev/null` turns the log off) is taken, since a
/// named pipe would block the run until someone reads it (and hand that
/// reader the log). `O_NONBLOCK` makes a pipe or socket fail the open
/// (`ENXIO`) rather than wait; one with a reader is caught after it.
fn open_log(path: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let shown = path.display();
    let not_a_file = || {
        format!(
            "cannot open the log file {shown}: it is not a regular file (nor a device such as /dev/null); give the path of a file"
        )
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => format!(
                "cannot open the log file {shown}: it is a symbolic link, which is not followed; give the path of the file itself"
            ),
            Some(libc::ENXIO | libc::EISDIR) => not_a_file(),
            _ => format!("cannot open the log file {shown}: {e}; check the path and its directory"),
        })?;
    match file.metadata() {
        Ok(m) if m.file_type().is_file() || m.file_type().is_char_device() => Ok(file),
        _ => Err(not_a_file()),
    }
}

/// Writes to stderr, ignoring a failure.
pub fn write_err(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = std::io::stderr().lock().write_fmt(args);
}

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
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
    if !never.contains(&exit::SIGINT) {
        help.push_str("  130  interrupted by SIGINT, 143 by SIGTERM");
    }
    help.trim_end().to_string()
}

/// The exit-code rows of the man page's EXIT STATUS section, filtered
/// and worded as [`exit_codes_help`] does, plus `extra` rows.
pub fn exit_status_rows(
    never: &[u8],
    own: &[(u8, &str)],
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = EXIT_CODES
        .iter()
        .filter(|(c, _)| !never.contains(c))
        .map(|(code, meaning)| {
            let meaning = own
                .iter()
                .find(|(c, _)| c == code)
                .map_or(*meaning, |(_, m)| *m);
            (code.to_string(), meaning.to_string())
        })
        .collect();
    if !never.contains(&exit::SIGINT) {
        rows.push(("130, 143".into(), "interrupted by SIGINT, SIGTERM".into()));
    }
    rows.extend(extra.iter().map(|(c, m)| (c.to_string(), m.to_string())));
    rows
}

/// The files both binaries read or write, for the man page.
const MAN_FILES: &[(&str, &str)] = &[
    (
        "~/.config/jira-cache/profiles.toml",
        "The profiles (or --config PATH, or $JIRA_CACHE_CONFIG).",
    ),
    (
        "~/.cache/jira-cache/PROFILE.sqlite3",
        "The cache of a profile (or under the profile's cache_dir); directory 0700, file 0600.",
    ),
    (
        "~/.cache/jira-cache/PROFILE.lock",
        "The warm lock of a profile; holds the pid and start time of the warm that holds it.",
    ),
    (
        "~/.config/jira-cache/PROFILE.env",
        "For cron and systemd: one line TOKEN_VARIABLE=token (no export, no quotes; chmod 600).",
    ),
];

/// The environment variables both binaries read, for the man page.
const MAN_ENVIRONMENT: &[(&str, &str)] = &[
    (
        "JIRA_CACHE_CONFIG",
        "The profiles file, unless --config is given.",
    ),
    ("JIRA_PROFILE", "The profile, unless --profile is given."),
    (
        "JIRA_API_TOKEN",
        "The token (the default token_env); with no profiles file, with JIRA_SITE_URL and JIRA_EMAIL, it makes the profile `default`.",
    ),
    (
        "JIRA_SITE_URL, JIRA_EMAIL, JIRA_DEPLOYMENT, JIRA_AUTH_TYPE",
        "The profile `default` when there is no profiles file.",
    ),
    ("HTTPS_PROXY, HTTP_PROXY, NO_PROXY", "Proxies, honoured."),
    ("RUST_LOG", "Log filter; overrides -v."),
    ("NO_COLOR", "No colour, even on a terminal."),
    (
        "COLUMNS",
        "The width human output fits in (default: the terminal's, else 80).",
    ),
    (
        "JIRA_CACHE_RETRY_BASE",
        "The first retry backoff (e.g. 50ms), for tests.",
    ),
];

/// Roff text: backslashes, hyphens and a leading dot or quote escaped.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// A man page section of tagged paragraphs.
fn man_section(
    out: &mut dyn std::io::Write,
    title: &str,
    rows: &[(String, String)],
) -> std::io::Result<()> {
    writeln!(out, ".SH \"{title}\"")?;
    for (tag, text) in rows {
        writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(tag), roff(text))?;
    }
    Ok(())
}

/// The man page: clap's sections, then EXIT STATUS, FILES and ENVIRONMENT.
fn render_man(
    command: clap::Command,
    exit_status: &[(String, String)],
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command);
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man_section(out, "EXIT STATUS", exit_status)?;
    let owned = |rows: &[(&str, &str)]| -> Vec<(String, String)> {
        rows.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    man_section(out, "FILES", &owned(MAN_FILES))?;
    man_section(out, "ENVIRONMENT", &owned(MAN_ENVIRONMENT))?;
    man.render_version_section(out)?;
    Ok(())
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
    // By default the binaries print their own one-line messages and no
    // tracing lines; -v and up show them.
    let level = |verbose: u8| match verbose {
        0 => "off",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // `jira_cache_summary` carries each run's summary for the log file only:
    // on stderr the same lines are the binary's own output.
    let filter = |level: &str, summary: &str| {
        let base = match std::env::var("RUST_LOG") {
            Ok(spec) if !spec.is_empty() => spec,
            _ if level == "trace" => "trace".to_string(),
            _ if level == "off" => "off".to_string(),
            _ => format!(
                "warn,jira_cache={level},cache_warm={level},cache_status={level},cache_serve={level}"
            ),
        };
        EnvFilter::new(format!("{base},jira_cache_summary={summary}"))
    };
    let stderr_level = if quiet { "off" } else { level(verbose) };
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(|| jira_cache::scrub::ScrubWriter(std::io::stderr()))
        .with_ansi(colour_on_stderr())
        .with_target(false)
        .with_filter(filter(stderr_level, "off"));
    let file_layer = match log_file {
        Some(path) => {
            let file = open_log(path)?;
            let file = std::sync::Arc::new(file);
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(move || jira_cache::scrub::ScrubWriter(SharedFile(file.clone())))
                    .with_ansi(false)
                    .with_target(false)
                    .with_filter(filter(level(verbose.max(1)), "info")),
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

/// The log file, shared by every event's writer.
struct SharedFile(std::sync::Arc<std::fs::File>);

impl std::io::Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

/// Restores the default action of SIGPIPE, which Rust's runtime ignores:
/// a reader that closes the pipe (`cache_status --keys user | head -1`)
/// ends the program quietly, as it ends `ls`, instead of a panic on
/// "failed printing to stdout: Broken pipe".
pub fn quiet_on_closed_stdout() {
    // SAFETY: called first thing in `main`, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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

/// The columns human output fits in: `$COLUMNS` when set, else the
/// terminal's width, else 80 (piped output, cron mail).
pub fn stdout_width() -> usize {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c >= 40)
    {
        return columns;
    }
    match terminal_size::terminal_size() {
        Some((terminal_size::Width(w), _)) if w >= 40 => usize::from(w),
        _ => 80,
    }
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
/// Scrubbed of every secret (the last stop before stderr); the commands
/// its hint suggests keep the user's `--config` and `--profile`.
pub fn one_line(err: &anyhow::Error) -> String {
    let line = jira_cache::scrub::scrub(&format!("{err:#}")).into_owned();
    with_user_flags(&line).into_owned()
}

/// The `--config` and `--profile` given on the command line: a hint that
/// suggests a command (run `cache_warm --reset`) suggests it with them,
/// so that it acts on the same profile when pasted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFlags {
    /// `--config PATH`, as given.
    pub config: Option<PathBuf>,
    /// `--profile NAME`, as given.
    pub profile: Option<String>,
}

/// The flags of this run, set once by `main` ([`remember_user_flags`]).
static USER_FLAGS: OnceLock<UserFlags> = OnceLock::new();

/// Remembers the `--config` and `--profile` this run was given, for
/// [`with_user_flags`].
pub fn remember_user_flags(config: Option<&Path>, profile: Option<&str>) {
    let _ = USER_FLAGS.set(UserFlags {
        config: config.map(Path::to_path_buf),
        profile: profile.map(str::to_string),
    });
}

/// `text` with every command it suggests given this run's `--config` and
/// `--profile` (see [`UserFlags::apply`]).
pub fn with_user_flags(text: &str) -> Cow<'_, str> {
    match USER_FLAGS.get() {
        Some(flags) => flags.apply(text),
        None => Cow::Borrowed(text),
    }
}

/// The binaries whose commands hints suggest.
const SUGGESTED: [&str; 3] = ["cache_warm", "cache_status", "cache_serve"];

impl UserFlags {
    /// Every command quoted in backticks in `text` (`` `cache_warm --reset` ``)
    /// with `--config` and `--profile` inserted after the program's name,
    /// each unless the command already names one.
    pub fn apply<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut extra = Vec::new();
        if let Some(config) = &self.config {
            extra.push(("--config", shell_word(&config.to_string_lossy())));
        }
        if let Some(profile) = &self.profile {
            extra.push(("--profile", shell_word(profile)));
        }
        if extra.is_empty() || !text.contains('`') {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 64);
        let mut rest = text;
        // Spans alternate: outside, inside backticks, outside, …
        while let Some(open) = rest.find('`') {
            out.push_str(&rest[..=open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('`') else {
                rest = after;
                break;
            };
            out.push_str(&self.command(&after[..close], &extra));
            out.push('`');
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Cow::Owned(out)
    }

    /// One quoted span: a suggested command gains the flags it lacks.
    fn command(&self, span: &str, extra: &[(&str, String)]) -> String {
        let program = SUGGESTED
            .iter()
            .find(|p| span == **p || span.starts_with(&format!("{p} ")));
        let Some(program) = program else {
            return span.to_string();
        };
        let args = &span[program.len()..];
        let mut out = program.to_string();
        for (flag, value) in extra {
            let named = args
                .split_whitespace()
                .any(|w| w == *flag || w.starts_with(&format!("{flag}=")));
            if !named {
                out.push_str(&format!(" {flag} {value}"));
            }
        }
        out.push_str(args);
        out
    }
}

/// `--profile <TAB>`: the names of the profiles file this command line
/// reads (its `--config`, else `$JIRA_CACHE_CONFIG`, else the default
/// path), through clap's dynamic completion (`COMPLETE=bash cache_warm`).
pub fn complete_profile(current: &OsStr) -> Vec<clap_complete::CompletionCandidate> {
    let config = config_on_command_line(std::env::args_os());
    let options = jira_cache::profile::LoadOptions::from_process_env(config, None);
    profile_candidates(&options, current)
}

/// The profile names starting with `current`, in name order; none when the
/// profiles file cannot be read (completion has no place to say why).
pub fn profile_candidates(
    options: &jira_cache::profile::LoadOptions,
    current: &OsStr,
) -> Vec<clap_complete::CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    let Ok((_, names)) = jira_cache::profile::profile_names(options) else {
        return Vec::new();
    };
    names
        .into_iter()
        .filter(|name| name.starts_with(current))
        .map(clap_complete::CompletionCandidate::new)
        .collect()
}

/// The `--config` of the command line being completed: clap's completion
/// protocol passes it after a `--` (`cache_warm -- cache_warm --config X
/// --profile`); the last one given wins, as when parsing.
pub fn config_on_command_line(args: impl IntoIterator<Item = OsString>) -> Option<PathBuf> {
    let args: Vec<OsString> = args.into_iter().collect();
    let start = args.iter().position(|a| a == "--").map_or(0, |i| i + 1);
    let mut words = args[start..].iter();
    let mut config = None;
    while let Some(word) = words.next() {
        if word == "--config" {
            config = words.next().map(PathBuf::from);
        } else if let Some(value) = word.to_str().and_then(|w| w.strip_prefix("--config=")) {
            config = Some(PathBuf::from(value));
        }
    }
    config
}

/// A word the shell reads back as itself: quoted only when it must be.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@,%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
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
    exit_status: &[(String, String)],
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
        // The exit codes have their own section, not the --help text.
        match render_man(command.after_help(""), exit_status, &mut std::io::stdout()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            // `--man | head` closes the pipe early: not an error worth a word.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::ExitCode::SUCCESS,
            Err(e) => {
                errln!("{name}: cannot write the man page: {e}");
                std::process::ExitCode::from(jira_cache::exit::FAILED)
            }
        },
    )
}

/// What `--json` prints on stdout when the command fails before it has a
/// report to print: one object, as the contract asks of every `--json`
/// output, with the exit code and the error's one line.
pub fn json_error(schema_version: u32, exit_code: u8, error: &str) -> String {
    serde_json::json!({
        "schema_version": schema_version,
        "result": "error",
        "exit_code": exit_code,
        "error": error,
    })
    .to_string()
}

/// Runs a binary's async `main` on a multi-thread runtime and turns its
/// outcome into the exit code: an error becomes one line on stderr
/// (`<program>: <cause>`, passed to `on_error` first, e.g. for the log
/// file) and its documented code; with `json` (the binary's `--json`
/// schema version) also [`json_error`]'s object on stdout.
pub fn run_to_exit<F>(
    program: &str,
    main: F,
    json: Option<u32>,
    on_error: impl FnOnce(&str),
) -> std::process::ExitCode
where
    F: std::future::Future<Output = anyhow::Result<u8>>,
{
    use std::process::ExitCode;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("{program}: cannot start the async runtime: {e}");
            return ExitCode::from(jira_cache::exit::FAILED);
        }
    };
    match runtime.block_on(main) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let line = one_line(&err);
            on_error(&line);
            errln!("{program}: {line}");
            let code = jira_cache::exit::code_for(err.as_ref());
            if let Some(version) = json {
                outln!("{}", json_error(version, code, &line));
            }
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod user_flag_tests {
    use super::*;

    fn flags(config: Option<&str>, profile: Option<&str>) -> UserFlags {
        UserFlags {
            config: config.map(PathBuf::from),
            profile: profile.map(str::to_string),
        }
    }

    #[test]
    fn a_suggested_command_keeps_the_users_config_and_profile() {
        let hint = "x.sqlite3: corrupt; run `cache_warm --reset` to recreate it";
        assert_eq!(
            flags(Some("/etc/jc/p.toml"), Some("prod")).apply(hint),
            "x.sqlite3: corrupt; run `cache_warm --config /etc/jc/p.toml --profile prod --reset` to recreate it"
        );
        assert_eq!(
            flags(None, Some("prod")).apply("no cache yet; run `cache_warm` to create it"),
            "no cache yet; run `cache_warm --profile prod` to create it"
        );
    }

    #[test]
    fn flags_a_command_already_names_are_not_repeated() {
        let hint = "no cache yet; run `cache_warm --all --profile prod`";
        assert_eq!(
            flags(Some("p.toml"), Some("prod")).apply(hint),
            "no cache yet; run `cache_warm --config p.toml --all --profile prod`"
        );
    }

    #[test]
    fn other_quoted_text_and_runs_without_flags_are_left_alone() {
        let hint = "lower `max_size`, or run `chmod go-w /x`; see `cache_warmer`";
        assert_eq!(flags(Some("p.toml"), Some("a")).apply(hint), hint);
        let hint = "run `cache_warm --reset`";
        assert_eq!(flags(None, None).apply(hint), hint);
        // An unpaired backtick ends the scan without losing text.
        let odd = "run `cache_warm --reset` or `so";
        assert_eq!(
            flags(None, Some("a")).apply(odd),
            "run `cache_warm --profile a --reset` or `so"
        );
    }

    #[test]
    fn values_the_shell_would_split_are_quoted() {
        assert_eq!(
            flags(Some("/my dir/p's.toml"), Some("a b")).apply("`cache_status --check`"),
            r"`cache_status --config '/my dir/p'\''s.toml' --profile 'a b' --check`"
        );
    }
}

#[cfg(test)]
mod completion_tests {
    use super::*;
    use jira_cache::profile::{Env, LoadOptions};

    fn names(options: &LoadOptions, current: &str) -> Vec<String> {
        profile_candidates(options, OsStr::new(current))
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn profile_names_complete_from_the_profiles_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.toml");
        std::fs::write(
            &path,
            "default = \"production\"\n\
             [profiles.production]\nurl = \"https://p.example.net\"\n\
             [profiles.preview]\nurl = \"https://v.example.net\"\n\
             [profiles.staging]\nurl = \"https://s.example.net\"\n",
        )
        .unwrap();
        let options = LoadOptions {
            config: Some(path),
            profile: None,
            env: Env::from_pairs([("HOME", dir.path().to_str().unwrap())]),
        };
        assert_eq!(names(&options, ""), ["preview", "production", "staging"]);
        assert_eq!(names(&options, "pr"), ["preview", "production"]);
        assert!(names(&options, "x").is_empty());
        // No file there: nothing to offer, and no error on the terminal.
        let missing = LoadOptions {
            config: Some(dir.path().join("absent.toml")),
            ..options
        };
        assert!(names(&missing, "").is_empty());
    }

    #[test]
    fn the_config_of_the_line_being_completed_is_the_one_read() {
        let line = |words: &[&str]| config_on_command_line(words.iter().map(OsString::from));
        assert_eq!(
            line(&[
                "cache_warm",
                "--",
                "cache_warm",
                "--config",
                "a.toml",
                "--profile",
                ""
            ]),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            line(&[
                "cache_warm",
                "--",
                "cache_warm",
                "--config=b.toml",
                "-p",
                "x"
            ]),
            Some(PathBuf::from("b.toml"))
        );
        // The completer's own arguments before `--` are not the line's.
        assert_eq!(
            line(&["cache_warm", "--config", "c.toml", "--", "cache_warm", "-p"]),
            None
        );
    }
}
