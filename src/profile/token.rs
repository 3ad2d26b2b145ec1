//! Where a profile's API token comes from, and the [`Secret`] that holds it.
//!
//! A token lives in an environment variable (`token_env`) or is printed by
//! a command (`token_cmd`), never in the profiles file. Once read it is a
//! [`Secret`], whose `Debug` and `Display` print `[redacted]`, so neither a
//! log line nor an error message can show it by accident.

use std::fmt;
use std::process::Stdio;
use std::time::Duration;

/// How long `token_cmd` may run before it is killed. A password manager
/// waiting for a passphrase must not hang a scheduled warm forever.
pub const TOKEN_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The variable that holds the token when a profile names none.
pub const DEFAULT_TOKEN_ENV: &str = "JIRA_API_TOKEN";

/// Where the API token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The named environment variable (`token_env`; default `JIRA_API_TOKEN`).
    Env(String),
    /// The stdout of this command, run with `sh -c` (`token_cmd`; wins over
    /// `token_env`).
    Command(String),
}

impl Default for TokenSource {
    fn default() -> Self {
        TokenSource::Env(DEFAULT_TOKEN_ENV.to_owned())
    }
}

/// A secret string, such as an API token. `Debug` and `Display` print
/// `[redacted]`; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// What a request authenticates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// HTTP Basic: `email:token` on Cloud (user name and password on old
    /// Data Center sites).
    Basic {
        /// The account's email (or, on Data Center, its user name).
        email: String,
        /// The API token or password.
        token: Secret,
    },
    /// `Authorization: Bearer <token>`: a Data Center personal access token.
    Bearer(Secret),
}

/// Runs `command` with `sh -c` and returns its stdout, trimmed, as the
/// token. It runs as a `tokio` child process: waiting never blocks a worker
/// thread, and after `timeout` the command is killed. The error is a reason
/// for [`super::ProfileError::TokenCommandFailed`]: the exit status, never
/// stdout nor stderr. A failing password manager may print the secret in
/// its complaint (`token abc123 has expired`), and a secret we never
/// received cannot be scrubbed, so neither is shown or stored (the
/// message tells the user to run the command by hand).
pub(crate) async fn run_token_command(command: &str, timeout: Duration) -> Result<Secret, String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("could not be started with `sh -c` ({e})"))?;
    // `wait_with_output` reads both pipes while it waits, so a chatty
    // command cannot block on a full pipe; dropping it on timeout kills it.
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("could not be waited for ({e})")),
        Err(_) => {
            return Err(format!(
                "did not finish within {}",
                humantime::format_duration(timeout)
            ));
        }
    };
    if !output.status.success() {
        let not_found = match output.status.code() {
            Some(127) => ": the command was not found",
            _ => "",
        };
        let said = match output.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
            true => "; what it printed is not shown, as it may hold the secret",
            false => "",
        };
        return Err(format!("failed ({}{not_found}{said})", output.status));
    }
    let stdout = String::from_utf8(output.stdout)
        .map_err(|_| "printed something that is not UTF-8".to_owned())?;
    let token = stdout.trim();
    if token.is_empty() {
        return Err("printed nothing on stdout".to_owned());
    }
    if token.lines().count() > 1 {
        return Err(
            "printed several lines, but the token must be its only output \
                    (keep the first line, e.g. `pass show jira | head -n1`)"
                .to_owned(),
        );
    }
    crate::scrub::register(token);
    Ok(Secret::new(token))
}

/// Refuses a profiles file that someone else could write: whoever can edit
/// it can make `token_cmd` run anything with our rights (ssh refuses such a
/// config for the same reason). Checked before `token_cmd` runs.
pub(crate) fn check_file_is_ours(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        // Gone since it was read (or a profile built from text in tests):
        // no file, nobody else's edits to fear.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(format!(
                "cannot check its mode ({e}), so token_cmd is not run; check the file"
            ));
        }
    };
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "is writable by other users (mode {mode:04o}), so token_cmd is not run; run `chmod go-w {}`",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_prints_redacted_in_debug_and_display() {
        let secret = Secret::new("hunter2-token");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(secret.expose(), "hunter2-token");
        let credentials = Credentials::Basic {
            email: "bot@example.com".into(),
            token: secret,
        };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }

    fn run(command: &str, timeout: Duration) -> Result<Secret, String> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_token_command(command, timeout))
    }

    #[test]
    fn token_command_output_is_trimmed() {
        let token = run("printf '  tok-123\\n\\n'", TOKEN_COMMAND_TIMEOUT).unwrap();
        assert_eq!(token.expose(), "tok-123");
    }

    #[test]
    fn a_failing_token_command_shows_its_exit_status_but_neither_stdout_nor_stderr() {
        // A short secret with dashes, as no "opaque word" rule would catch.
        let reason = run(
            "echo cloud-tok-12; echo 'error: token cloud-tok-12 has expired' >&2; exit 2",
            TOKEN_COMMAND_TIMEOUT,
        )
        .unwrap_err();
        assert!(reason.contains("exit status: 2"), "{reason}");
        assert!(reason.contains("not shown"), "{reason}");
        assert!(!reason.contains("cloud-tok"), "{reason}");
        assert!(!reason.contains("expired"), "{reason}");
        let silent = run("exit 1", TOKEN_COMMAND_TIMEOUT).unwrap_err();
        assert!(!silent.contains("not shown"), "{silent}");
        let missing = run("no-such-password-manager-xyz", TOKEN_COMMAND_TIMEOUT).unwrap_err();
        assert!(missing.contains("not found"), "{missing}");
    }

    #[test]
    fn token_command_with_empty_or_multi_line_output_is_refused_without_echo() {
        let reason = run("true", TOKEN_COMMAND_TIMEOUT).unwrap_err();
        assert!(reason.contains("nothing"), "{reason}");
        let reason = run("printf 'secret-1\\nurl: x\\n'", TOKEN_COMMAND_TIMEOUT).unwrap_err();
        assert!(reason.contains("several lines"), "{reason}");
        assert!(!reason.contains("secret-1"), "{reason}");
    }

    #[test]
    fn token_command_that_hangs_is_killed_after_the_timeout() {
        let reason = run("exec sleep 30", Duration::from_millis(200)).unwrap_err();
        assert!(reason.contains("did not finish"), "{reason}");
    }

    #[test]
    fn a_profiles_file_others_can_write_is_refused_with_the_chmod_to_run() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.toml");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
        let reason = check_file_is_ours(&path).unwrap_err();
        assert!(
            reason.contains(&format!("chmod go-w {}", path.display())),
            "{reason}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        check_file_is_ours(&path).unwrap();
    }
}
