//! The flags of `cache_serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::common;

/// Serve a profile's Jira REST API from its local cache, for every tool that
/// reads Jira: point the tool's Jira URL at `http://<listen>` and keep its
/// credentials.
///
/// Reads the cache holds are answered from it (`X-Cache: HIT`, or `STALE`
/// within `max_stale` when the site fails); search, writes and everything
/// else go to the profile's site unchanged (`X-Cache: BYPASS`), and a write
/// drops the entries it touched.
/// The exit codes of the contract that the server never uses (a signal
/// stops it with 0).
pub const NEVER_EXITS_WITH: &[u8] = &[
    jira_cache::exit::PARTIAL,
    jira_cache::exit::LOCKED,
    jira_cache::exit::QUIET_HOURS,
    jira_cache::exit::SIGINT,
    jira_cache::exit::SIGTERM,
];

/// What the server's own exit codes mean, where the warm's words do not fit.
pub const OWN_EXIT_MEANINGS: &[(u8, &str)] = &[
    (
        jira_cache::exit::OK,
        "stopped by SIGINT or SIGTERM after the requests under way finished",
    ),
    (
        jira_cache::exit::FAILED,
        "could not start or go on serving (e.g. the --listen address is taken)",
    ),
];

#[derive(Debug, Parser)]
#[command(
    name = "cache_serve",
    version,
    after_help = common::exit_codes_help(NEVER_EXITS_WITH, OWN_EXIT_MEANINGS)
)]
pub struct Cli {
    /// The profile to serve (default: $JIRA_PROFILE, the file's `default`, or its only profile).
    #[arg(long, short = 'p', value_name = "NAME", add = clap_complete::ArgValueCompleter::new(common::complete_profile))]
    pub profile: Option<String>,
    /// The profiles file (default: $JIRA_CACHE_CONFIG, then ~/.config/jira-cache/profiles.toml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on (default: the profile's `serve_listen`, else 127.0.0.1:8765).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Allow an address other than loopback. The traffic is plain HTTP and carries credentials.
    #[arg(long)]
    pub allow_remote: bool,
    /// Warm every stage at start, then on the profile's `schedule`, as `cache_warm --all` does.
    #[arg(long)]
    pub warm: bool,
    /// Close a connection whose client has not sent a whole request head within this time; a keep-alive connection idle this long closes too.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = positive_duration)]
    pub header_timeout: Duration,
    /// Serve at most N connections at once; further clients wait until one closes (default: half of `ulimit -n` less 64, at most 1024).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// Print a systemd service unit that runs this server, and exit.
    #[arg(long)]
    pub print_systemd: bool,

    /// More log output on stderr (the access log is at the default level; -v debug, -vv trace).
    #[arg(long, short = 'v', action = clap::ArgAction::Count, help_heading = "Output")]
    pub verbose: u8,
    /// Only errors on stderr (no access log).
    #[arg(long, short = 'q', help_heading = "Output")]
    pub quiet: bool,
    /// Also append the log to this file.
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    pub log_file: Option<PathBuf>,
    /// Print shell completions for SHELL and exit.
    #[arg(long, value_name = "SHELL", help_heading = "Output")]
    pub completions: Option<clap_complete::Shell>,
    /// Print the man page and exit.
    #[arg(long, help_heading = "Output")]
    pub man: bool,
}

/// A duration above zero, such as `30s` or `2m`.
fn positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be above zero; use e.g. 30s".to_string()),
        Err(e) => Err(format!("`{s}` is not a duration ({e}); use e.g. 30s, 2m")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_flags_are_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
