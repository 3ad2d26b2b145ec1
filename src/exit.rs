//! The exit codes of the contract (`CONVENTIONS.md`, "Exit codes"), and the
//! one place that maps an error to its code, so both binaries agree.

use crate::cache::CacheError;
use crate::jira::JiraError;
use crate::lock::LockError;
use crate::profile::ProfileError;
use crate::site::ConnectError;
use crate::warm::SessionError;

/// Success.
pub const OK: u8 = 0;
/// Failed: nothing useful done (unreachable site, every stage failed).
pub const FAILED: u8 = 1;
/// Usage error (clap).
pub const USAGE: u8 = 2;
/// Profile or configuration error, credentials missing or refused.
pub const CONFIG: u8 = 3;
/// Partial: some stage failed, the others succeeded.
pub const PARTIAL: u8 = 4;
/// Another warm holds the profile's lock.
pub const LOCKED: u8 = 5;
/// Refused: inside quiet hours (`--force` overrides).
pub const QUIET_HOURS: u8 = 6;
/// Cache file error (corrupt, unwritable, newer schema than this binary).
pub const CACHE_FILE: u8 = 7;
/// Interrupted by SIGINT.
pub const SIGINT: u8 = 130;
/// Interrupted by SIGTERM.
pub const SIGTERM: u8 = 143;

/// The exit code for an error: the first error in its chain that the
/// contract names decides; anything else is a plain failure.
pub fn code_for(error: &(dyn std::error::Error + 'static)) -> u8 {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<ProfileError>().is_some() {
            return CONFIG;
        }
        if let Some(c) = e.downcast_ref::<CacheError>() {
            return if c.is_configuration_error() {
                CONFIG
            } else if c.is_cache_file_error() {
                CACHE_FILE
            } else {
                FAILED
            };
        }
        if let Some(l) = e.downcast_ref::<LockError>() {
            return match l {
                LockError::Held { .. } | LockError::WaitTimedOut { .. } => LOCKED,
                LockError::Io { .. }
                | LockError::Symlink { .. }
                | LockError::SymlinkedDir { .. } => CACHE_FILE,
            };
        }
        if let Some(j) = e.downcast_ref::<JiraError>() {
            return jira_code(j);
        }
        // Transparent wrappers hand `source()` on to their inner error's
        // source, skipping the inner error itself: look inside them.
        if let Some(s) = e.downcast_ref::<SessionError>() {
            return s.exit_code();
        }
        if let Some(s) = e.downcast_ref::<crate::serve::ServeError>() {
            return s.exit_code();
        }
        if let Some(c) = e.downcast_ref::<ConnectError>() {
            return match c {
                ConnectError::Profile(_) => CONFIG,
                ConnectError::Jira(j) => jira_code(j),
                ConnectError::ProbeRefused { .. } => CONFIG,
            };
        }
        current = e.source();
    }
    FAILED
}

fn jira_code(error: &JiraError) -> u8 {
    if error.is_auth() || error.is_setup() {
        CONFIG
    } else {
        FAILED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_inside_transparent_wrappers_keep_their_codes() {
        let setup = anyhow::Error::from(ConnectError::Jira(JiraError::Setup("bad ca".into())))
            .context("profile `x`");
        assert_eq!(code_for(setup.as_ref()), CONFIG);
        let down = anyhow::Error::from(ConnectError::Jira(JiraError::Connect {
            site: "s".into(),
            message: "m".into(),
        }));
        assert_eq!(code_for(down.as_ref()), FAILED);
        let held = anyhow::Error::from(LockError::Held {
            holder: "pid 1".into(),
        });
        assert_eq!(code_for(held.as_ref()), LOCKED);
    }
}
