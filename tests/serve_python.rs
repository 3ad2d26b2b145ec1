//! A real third-party client, unchanged: the Python `jira` package, pointed
//! at `cache_serve`, lists projects and fields, reads an issue and runs a
//! JQL search; then reads the same with the site stopped, from the cache.
//!
//! `.ci/run` installs the package into a virtual environment and names it
//! in `JIRA_CACHE_PYTHON_VENV`. Without it the test skips with a message,
//! except under CI (`CI=true`), where a missing client is a failure.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{DC_TOKEN, Sandbox};
use fake_jira::{FakeJira, Flavor};
use serde_json::Value;

fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("JIRA_CACHE_PYTHON_VENV").map(PathBuf::from);
    let python = venv.map(|v| v.join("bin/python"));
    match python {
        Some(p) if p.is_file() => Some(p),
        other => {
            let why = match other {
                Some(p) => format!("{} does not exist", p.display()),
                None => "JIRA_CACHE_PYTHON_VENV is not set".to_string(),
            };
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("the Python `jira` client is required under CI: {why}; .ci/run installs it");
            }
            eprintln!(
                "skipping: {why} (run .ci/run, or make a venv with `pip install jira` and point JIRA_CACHE_PYTHON_VENV at it)"
            );
            None
        }
    }
}

fn run_client(python: &PathBuf, url: &str, issue: &str, mode: &str) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/jira_client.py");
    let out = Command::new(python)
        .args([script, url, DC_TOKEN, issue, mode])
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "the jira client failed ({mode}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn the_python_jira_package_reads_through_cache_serve_and_from_the_cache_alone() {
    let Some(python) = python() else { return };
    let fake = FakeJira::builder(Flavor::DataCenter).start();
    let mut sandbox = Sandbox::new();
    sandbox.profile_for(&fake, Flavor::DataCenter, "deployment = \"datacenter\"\n");
    let mut child = KillOnDrop(
        sandbox
            .std_command(env!("CARGO_BIN_EXE_cache_serve"))
            .args(["--profile", "test", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("cache_serve starts"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("an address")
        .to_string();
    let issue = fake.site().snapshot().issues[0]["key"]
        .as_str()
        .expect("an issue")
        .to_string();

    let online = run_client(&python, &url, &issue, "online");
    assert!(!online["projects"].as_array().unwrap().is_empty());
    assert!(!online["fields"].as_array().unwrap().is_empty());
    assert_eq!(online["issue"]["key"], issue.as_str());
    assert!(!online["search"].as_array().unwrap().is_empty());

    drop(fake);
    let offline = run_client(&python, &url, &issue, "offline");
    for part in ["projects", "fields", "issue"] {
        assert_eq!(offline[part], online[part], "{part} from the cache");
    }
    drop(child);
}

/// Stops the server however the test ends: a failed assertion must not
/// leave it running, holding the test's output pipe open.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
