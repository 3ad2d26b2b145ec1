//! `cache_serve` run as a child in a sandbox, for the tests that talk to it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use super::Sandbox;

/// A running `cache_serve`; killed when dropped.
pub struct Served {
    pub child: Child,
    pub url: String,
}

impl Served {
    /// Starts `cache_serve --profile test --listen 127.0.0.1:0 ARGS` and
    /// reads the address it prints.
    pub fn start(sandbox: &Sandbox, args: &[&str]) -> Served {
        let mut cmd = sandbox.std_command(env!("CARGO_BIN_EXE_cache_serve"));
        cmd.args(["--profile", "test", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("cache_serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the first line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Served { child, url }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        self.child.wait().expect("cache_serve ends")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
