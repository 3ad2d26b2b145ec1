//! Where a profile's API token comes from, and the [`Secret`] that holds it.
//!
//! A token lives in an environment variable (`token_env`) or is printed by
//! a command (`token_cmd`), never in the profiles file. Once read it is a
//! [`Secret`], whose `Debug` and `Display` print `[redacted]`, so neither a
//! log line nor an error message can show it by accident.

use std::fmt;
use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

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
/// token. The error is a reason for [`super::ProfileError::TokenCommandFailed`]:
/// it may quote the first line of stderr, never stdout.
pub(crate) fn run_token_command(command: &str, timeout: Duration) -> Result<Secret, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not be started with `sh -c` ({e})"))?;

    // Read both pipes on their own threads so that a chatty command cannot
    // block on a full pipe while we wait for it.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish within {}s", timeout.as_secs()));
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("could not be waited for ({e})")),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();

    if !status.success() {
        let stderr = String::from_utf8_lossy(&stderr);
        let first_line = stderr.lines().map(str::trim).find(|l| !l.is_empty());
        return Err(match first_line {
            Some(line) => format!("failed ({status}; stderr: {})", shorten(line, 200)),
            None => format!("failed ({status})"),
        });
    }
    let stdout =
        String::from_utf8(stdout).map_err(|_| "printed something that is not UTF-8".to_owned())?;
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
    Ok(Secret::new(token))
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

fn shorten(line: &str, max_chars: usize) -> String {
    if line.chars().count() <= max_chars {
        line.to_owned()
    } else {
        let mut short: String = line.chars().take(max_chars).collect();
        short.push('…');
        short
    }
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

    #[test]
    fn token_command_output_is_trimmed() {
        let token = run_token_command("printf '  tok-123\\n\\n'", TOKEN_COMMAND_TIMEOUT).unwrap();
        assert_eq!(token.expose(), "tok-123");
    }

    #[test]
    fn failing_token_command_quotes_stderr_but_never_stdout() {
        let reason = run_token_command(
            "echo leaked-stdout; echo 'gpg: decryption failed' >&2; exit 2",
            TOKEN_COMMAND_TIMEOUT,
        )
        .unwrap_err();
        assert!(reason.contains("gpg: decryption failed"), "{reason}");
        assert!(reason.contains('2'), "{reason}");
        assert!(!reason.contains("leaked-stdout"), "{reason}");
    }

    #[test]
    fn token_command_with_empty_or_multi_line_output_is_refused_without_echo() {
        let reason = run_token_command("true", TOKEN_COMMAND_TIMEOUT).unwrap_err();
        assert!(reason.contains("nothing"), "{reason}");
        let reason =
            run_token_command("printf 'secret-1\\nurl: x\\n'", TOKEN_COMMAND_TIMEOUT).unwrap_err();
        assert!(reason.contains("several lines"), "{reason}");
        assert!(!reason.contains("secret-1"), "{reason}");
    }

    #[test]
    fn token_command_that_hangs_is_killed_after_the_timeout() {
        let started = Instant::now();
        let reason = run_token_command("exec sleep 30", Duration::from_millis(200)).unwrap_err();
        assert!(reason.contains("did not finish"), "{reason}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
