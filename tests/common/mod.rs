//! What every CLI test needs: a sandbox with its own HOME and profiles file,
//! the real binaries run with a cleared environment (so no test ever reads
//! the machine's config, proxies or tokens), and fake Jira sites.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::Output;

pub mod events;
pub mod invariant;
pub mod pg;
pub mod scripted;
pub mod served;

use assert_cmd::Command;
use fake_jira::{FakeJira, Flavor};

/// The Cloud token the fake accepts by default.
pub const CLOUD_EMAIL: &str = "bot@example.com";
/// The Cloud token the fake accepts by default.
pub const CLOUD_TOKEN: &str = "cloud-token-123";
/// The Data Center bearer token the fake accepts by default.
pub const DC_TOKEN: &str = "dc-token-456";

/// The shared fixtures, or `None` (tests then skip with a message).
pub fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/jira/fixtures");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: {} is absent (the shared fixtures live beside the repository)",
            dir.display()
        );
        None
    }
}

/// A temporary HOME with a profiles file and a cache directory.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// Extra environment for the binaries.
    pub env: Vec<(String, String)>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("home/.config/jira-cache")).unwrap();
        Sandbox {
            dir,
            env: vec![("JIRA_CACHE_RETRY_BASE".into(), "20ms".into())],
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn config_path(&self) -> PathBuf {
        self.home().join(".config/jira-cache/profiles.toml")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.home().join(".cache/jira-cache")
    }

    pub fn cache_path(&self, profile: &str) -> PathBuf {
        self.cache_dir().join(format!("{profile}.sqlite3"))
    }

    /// Writes the profiles file.
    pub fn profiles(&self, toml: &str) -> &Sandbox {
        std::fs::write(self.config_path(), toml).unwrap();
        self
    }

    /// A profile named `test` for this fake site, with `extra` lines added,
    /// and the matching token in the environment.
    pub fn profile_for(&mut self, fake: &FakeJira, flavor: Flavor, extra: &str) -> &mut Sandbox {
        let (deployment_lines, token) = match flavor {
            Flavor::Cloud => (format!("email = \"{CLOUD_EMAIL}\"\n"), CLOUD_TOKEN),
            Flavor::DataCenter => (String::new(), DC_TOKEN),
        };
        // Defaults for tests, unless `extra` sets the key itself.
        let mut defaults = String::new();
        for (key, line) in [
            ("rate_limit", "rate_limit = \"unlimited\"\n"),
            ("timeout", "timeout = \"5s\"\n"),
        ] {
            if !extra
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{key} ")))
            {
                defaults.push_str(line);
            }
        }
        let toml = format!(
            "[profiles.test]\nurl = \"{}\"\n{deployment_lines}{defaults}{extra}\n",
            fake.url()
        );
        self.profiles(&toml);
        self.set_env("JIRA_API_TOKEN", token);
        self
    }

    pub fn set_env(&mut self, key: &str, value: &str) -> &mut Sandbox {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// Any program, with the sandbox's environment.
    pub fn shell_command(&self, program: &str) -> Command {
        self.command(program)
    }

    /// A `std::process::Command` with the sandbox's cleared environment, for
    /// tests that spawn, signal or limit the child themselves.
    pub fn std_command(&self, program: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn command(&self, bin: &str) -> Command {
        let mut cmd = Command::from_std(self.std_command(bin));
        // A hang fails its test instead of stalling the whole suite.
        cmd.timeout(std::time::Duration::from_secs(60));
        cmd
    }

    /// `cache_warm` as a `std::process::Command`.
    pub fn warm_std(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = self.std_command(env!("CARGO_BIN_EXE_cache_warm"));
        cmd.args(args);
        cmd
    }

    /// `cache_warm` with these arguments.
    pub fn warm(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_cache_warm"));
        cmd.args(args);
        cmd
    }

    /// `cache_status` with these arguments.
    pub fn status(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_cache_status"));
        cmd.args(args);
        cmd
    }

    /// `cache_status --json` of profile `test`, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        let out = self
            .status(&["--profile", "test", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "cache_status failed: {}", text(&out));
        serde_json::from_slice(&out.stdout).expect("cache_status --json prints one JSON object")
    }
}

/// stdout and stderr of a run, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A category's figures in a `cache_status --json` object.
pub fn category<'a>(status: &'a serde_json::Value, category: &str) -> &'a serde_json::Value {
    status["categories"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["category"] == category))
        .unwrap_or_else(|| panic!("no category {category} in {status}"))
}

/// Entries of a category in a `cache_status --json` object.
pub fn entries(status: &serde_json::Value, name: &str) -> u64 {
    category(status, name)["entries"]
        .as_u64()
        .unwrap_or_else(|| panic!("no entries for {name} in {status}"))
}

/// Runs a command and returns its output, exit code checked.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    out
}

/// Runs a command expecting this exit code.
pub fn run_code(cmd: &mut Command, code: i32) -> Output {
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
