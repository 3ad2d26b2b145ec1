//! Benchmark of a whole warm: `fake-jira` in its own process at a given size
//! and latency, the real `cache_warm` (release build) against it, and what
//! the issue's speed targets ask about each warm.
//!
//! ```sh
//! cargo build --release --workspace --bins --examples
//! target/release/examples/bench_warm --runs 3
//! ```
//!
//! What is measured, per warm:
//! - **wall**: from spawning `cache_warm` to reaping it (process start,
//!   cache open and run history included).
//! - **requests**: the run's own count, from `cache_status --json`.
//! - **floor**: requests × latency / concurrency, and wall / floor.
//! - **peak RSS**: `ru_maxrss` of `wait4` on the `cache_warm` pid itself,
//!   which is that one child's high-water mark (not `RUSAGE_CHILDREN`, which
//!   would also count `fake-jira` once it exits); `VmHWM` sampled from
//!   `/proc/<pid>/status` while it runs is printed beside it as a check.
//! - **db time**: CPU time of the cache's writer thread
//!   (`jira-cache-writer`, which runs every write transaction), from
//!   `/proc/<pid>/task/<tid>/schedstat`, sampled every 2 ms. Off-CPU time
//!   (fsync at WAL checkpoints) is not in it.
//!
//! Each run warms a fresh cache, then warms it again with nothing changed
//! on the site (the re-warm), then (unless `--changed-percent 0`) touches
//! that share of the window's issues through fake-jira's stdin and warms
//! once more. A run after one that touched issues gets a fresh `fake-jira`:
//! otherwise the touched issues would still be inside the next run's
//! watermark margin, and its re-warms would count their pages again.
//! `--flavor datacenter` runs the same against a Data Center
//! fake. Figures are printed per run and as medians, per stage too.
//! Traffic goes to 127.0.0.1 only; every child is killed at the deadline.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use jira_cache::cache::Cache;
use jira_cache::profile::DEFAULT_ISSUE_FIELDS;

/// Benchmark `cache_warm` against a generated `fake-jira` site.
#[derive(Debug, Parser)]
#[command(name = "bench_warm")]
struct Args {
    /// Projects on the site.
    #[arg(long, default_value_t = 300)]
    projects: usize,
    /// Fields on the site.
    #[arg(long, default_value_t = 3_000)]
    fields: usize,
    /// Users on the site.
    #[arg(long, default_value_t = 5_000)]
    users: usize,
    /// Issues per project; the generator makes half of them (the odd-numbered)
    /// updated within `--recent-days`, so 60 gives 30 in the warm's window.
    #[arg(long, default_value_t = 60)]
    issues_per_project: usize,
    /// Approximate JSON size of an issue (the profile asks for `description`,
    /// which carries the padding, so the cached value has this size).
    #[arg(long, default_value_t = 3_072)]
    issue_bytes: usize,
    /// Latency the fake adds to every answer, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// The profile's `concurrency`.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// `cache_warm --max-issues`.
    #[arg(long, default_value_t = 100)]
    max_issues: usize,
    /// The stage flags given to `cache_warm`.
    #[arg(long = "warm-flag", default_values_t = ["--all".to_string()])]
    warm_flags: Vec<String>,
    /// Cold warms (each followed by a re-warm unless --no-rewarm).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Skip the re-warm after each cold warm.
    #[arg(long)]
    no_rewarm: bool,
    /// Warm into this PostgreSQL database instead of a SQLite file (its
    /// password from PGPASSWORD); each cold warm gets a fresh schema, dropped
    /// at the end.
    #[arg(long)]
    cache_url: Option<String>,
    /// Which Jira the fake impersonates: cloud or datacenter.
    #[arg(long, default_value = "cloud", value_parser = ["cloud", "datacenter"])]
    flavor: String,
    /// After the unchanged re-warm, touch this percentage of the window's
    /// issues on the site (through fake-jira's `touch N` on stdin) and warm
    /// again; 0 skips that third warm.
    #[arg(long, default_value_t = 1.0)]
    changed_percent: f64,
    /// Stop everything after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_s: u64,
    /// Issue 16, target 5: `fake-jira` limits to this many requests per
    /// second (429 with `Retry-After` over it). Default: no limit.
    #[arg(long, value_name = "PER_SECOND")]
    site_rate_limit: Option<f64>,
    /// The burst of `--site-rate-limit`.
    #[arg(long, default_value_t = 10, requires = "site_rate_limit")]
    site_burst: u32,
    /// The `Retry-After` (seconds) of the fake's 429s, whatever the wait
    /// (issue 16's target 5 says 1). Default: the wait, rounded up, at least 1.
    #[arg(long, value_name = "SECONDS", requires = "site_rate_limit")]
    site_retry_after: Option<u64>,
    /// The profile's `rate_limit` (requests per second). Default: unlimited.
    #[arg(long, value_name = "PER_SECOND")]
    rate_limit: Option<f64>,
    /// Where `cache_warm`, `cache_status` and `fake-jira` are (default: the
    /// directory above this example's, i.e. target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where the temporary profile and caches go (default: the system temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

/// The credential the fake accepts by default on Cloud.
const EMAIL: &str = "bot@example.com";
const TOKEN: &str = "cloud-token-123";
/// The bearer token the fake accepts by default on Data Center.
const DC_TOKEN: &str = "dc-token-456";

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("bench_warm: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let bins = match &args.bin_dir {
        Some(d) => d.clone(),
        None => default_bin_dir()?,
    };
    for name in ["cache_warm", "cache_status", "fake-jira"] {
        if !bins.join(name).is_file() {
            return Err(format!(
                "no {name} in {}; run `cargo build --release --workspace --bins --examples` first",
                bins.display()
            ));
        }
    }
    // `cargo run --example` builds no binaries: show how old the ones used are.
    let age = |name: &str| {
        std::fs::metadata(bins.join(name))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .map_or("?".to_string(), |d| format!("{} min", d.as_secs() / 60))
    };
    println!(
        "binaries: {} (cache_warm built {} ago, fake-jira {} ago)",
        bins.display(),
        age("cache_warm"),
        age("fake-jira")
    );
    println!("machine: {}", machine());
    println!(
        "site ({}): {} projects, {} fields, {} users, {} issues per project (~{} B), latency {} ms; \
         profile concurrency {}, rate_limit {}; site limit {}; cache_warm {} --max-issues {}",
        args.flavor,
        args.projects,
        args.fields,
        args.users,
        args.issues_per_project,
        args.issue_bytes,
        args.latency_ms,
        args.concurrency,
        args.rate_limit
            .map_or("unlimited".to_string(), |r| r.to_string()),
        args.site_rate_limit.map_or("none".to_string(), |r| format!(
            "{r} requests/s, burst {}, Retry-After {}",
            args.site_burst,
            args.site_retry_after
                .map_or("the wait".to_string(), |s| format!("{s} s"))
        )),
        args.warm_flags.join(" "),
        args.max_issues
    );
    let started = Instant::now();
    let mut fake = FakeJira::start(&bins, args, deadline)?;
    println!(
        "fake-jira: {} (pid {}), ready in {:.1} s",
        fake.url,
        fake.child.id(),
        started.elapsed().as_secs_f64()
    );

    let mut cold = Vec::new();
    let mut rewarm = Vec::new();
    let mut changed = Vec::new();
    // The window holds the odd-numbered half of each project's issues.
    let in_window = args.projects * args.issues_per_project.div_ceil(2);
    let to_touch = (in_window as f64 * args.changed_percent / 100.0).round() as usize;
    for i in 1..=args.runs {
        if i > 1 && to_touch > 0 && !args.no_rewarm {
            // The last run touched issues: this run's site starts as the
            // first run's did.
            drop(fake);
            let started = Instant::now();
            fake = FakeJira::start(&bins, args, deadline)?;
            println!(
                "fake-jira started again for run {i}, with no issue touched: {} (pid {}), ready in {:.1} s",
                fake.url,
                fake.child.id(),
                started.elapsed().as_secs_f64()
            );
        }
        let dir = match &args.work_dir {
            Some(d) => tempfile::tempdir_in(d),
            None => tempfile::tempdir(),
        }
        .map_err(|e| format!("cannot make a temp dir: {e}"))?;
        let schema = format!("bench_warm_{}_{i}", std::process::id());
        let config = write_profile(dir.path(), &fake.url, args, &schema)?;
        let first = warm_once(&bins, &config, dir.path(), args, fake.child.id(), deadline)?;
        print_warm(&format!("run {i} cold"), &first, args);
        if !args.no_rewarm {
            let again = warm_once(&bins, &config, dir.path(), args, fake.child.id(), deadline)?;
            print_warm(&format!("run {i} re-warm"), &again, args);
            println!(
                "  re-warm: {} values rewritten, db time {:.1} % of the cold warm's",
                again.written,
                100.0 * again.db_cpu.as_secs_f64() / first.db_cpu.as_secs_f64().max(1e-9)
            );
            rewarm.push(again);
            if to_touch > 0 {
                let touched = fake.touch(to_touch, deadline)?;
                let third = warm_once(&bins, &config, dir.path(), args, fake.child.id(), deadline)?;
                print_warm(
                    &format!("run {i} re-warm, {touched} issues changed"),
                    &third,
                    args,
                );
                changed.push(third);
            }
        }
        cold.push(first);
    }
    println!();
    print_medians("cold warm", &cold, args);
    if !rewarm.is_empty() {
        print_medians("re-warm", &rewarm, args);
        let ratios: Vec<f64> = cold
            .iter()
            .zip(&rewarm)
            .map(|(c, r)| r.db_cpu.as_secs_f64() / c.db_cpu.as_secs_f64().max(1e-9))
            .collect();
        println!(
            "re-warm db time / cold db time: median {:.1} % (runs: {})",
            100.0 * median(&ratios),
            ratios
                .iter()
                .map(|r| format!("{:.1} %", 100.0 * r))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "re-warm values rewritten: {}",
            rewarm
                .iter()
                .map(|r| r.written.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !changed.is_empty() {
        print_medians(
            &format!("re-warm, {} % changed", args.changed_percent),
            &changed,
            args,
        );
    }
    drop(fake);
    if let Some(url) = &args.cache_url {
        drop_schemas(url, args.runs)?;
    }
    let failed = cold
        .iter()
        .chain(&rewarm)
        .chain(&changed)
        .filter(|w| w.exit_code != Some(0))
        .count();
    if failed > 0 {
        return Err(format!("{failed} warm(s) did not exit 0 (figures above)"));
    }
    Ok(())
}

/// target/release, from target/release/examples/bench_warm.
fn default_bin_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| "cannot find target/release; pass --bin-dir".to_string())
}

/// `nproc`, the CPU model and the load, for the record.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cpus} CPUs, {model}, load average {}", load.join(" "))
}

/// The fake Jira, in its own process; stopped (SIGTERM, then SIGKILL) on drop.
struct FakeJira {
    child: Child,
    url: String,
    /// Lines fake-jira prints after its URL (answers to commands).
    lines: mpsc::Receiver<String>,
}

impl FakeJira {
    fn start(bins: &Path, args: &Args, deadline: Instant) -> Result<FakeJira, String> {
        let mut child = Command::new(bins.join("fake-jira"))
            .args(["--port", "0", "--flavor", &args.flavor, "--generated"])
            .args(["--projects", &args.projects.to_string()])
            .args(["--fields", &args.fields.to_string()])
            .args(["--users", &args.users.to_string()])
            .args(["--issues-per-project", &args.issues_per_project.to_string()])
            .args(["--issue-bytes", &args.issue_bytes.to_string()])
            .args(["--recent-days", "30"])
            .args(["--latency", &format!("{}ms", args.latency_ms)])
            .args(args.site_rate_limit.into_iter().flat_map(|r| {
                [
                    "--rate-limit".to_string(),
                    r.to_string(),
                    "--burst".to_string(),
                    args.site_burst.to_string(),
                ]
            }))
            .args(
                args.site_retry_after
                    .into_iter()
                    .flat_map(|s| ["--retry-after".to_string(), s.to_string()]),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start fake-jira: {e}"))?;
        let stdout = child.stdout.take().ok_or("fake-jira has no stdout")?;
        let (tx, rx) = mpsc::channel();
        // Passes on every line (the URL first) until the fake exits.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut fake = FakeJira {
            child,
            url: String::new(),
            lines: rx,
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        let line = fake
            .lines
            .recv_timeout(wait)
            .map_err(|_| "fake-jira printed no URL before the deadline".to_string())?;
        let url = line.rsplit(' ').next().unwrap_or_default().to_string();
        if !url.starts_with("http://127.0.0.1:") {
            return Err(format!("unexpected first line from fake-jira: {line}"));
        }
        fake.url = url;
        Ok(fake)
    }

    /// Touches `n` random issues of the window; answers how many were.
    fn touch(&mut self, n: usize, deadline: Instant) -> Result<usize, String> {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().ok_or("fake-jira has no stdin")?;
        writeln!(stdin, "touch {n}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot write to fake-jira: {e}"))?;
        let wait = deadline.saturating_duration_since(Instant::now());
        let line = self
            .lines
            .recv_timeout(wait)
            .map_err(|_| "fake-jira did not answer `touch`".to_string())?;
        line.strip_prefix("touched ")
            .and_then(|k| k.parse().ok())
            .ok_or_else(|| format!("fake-jira answered `touch` with: {line}"))
    }
}

impl Drop for FakeJira {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes the benchmark's profile; answers the config path.
fn write_profile(dir: &Path, url: &str, args: &Args, schema: &str) -> Result<PathBuf, String> {
    let mut fields: Vec<String> = DEFAULT_ISSUE_FIELDS
        .iter()
        .map(|f| format!("\"{f}\""))
        .collect();
    fields.push("\"description\"".into());
    let cache_dir = dir.join("cache");
    let who = match args.flavor.as_str() {
        "datacenter" => "deployment = \"datacenter\"".to_string(),
        _ => format!("deployment = \"cloud\"\nemail = \"{EMAIL}\""),
    };
    let text = format!(
        r#"[profiles.bench]
url = "{url}"
{who}
token_env = "JIRA_API_TOKEN"
rate_limit = {rate_limit}
concurrency = {concurrency}
timeout = "2m"
max_size = "8GiB"
cache_dir = "{cache_dir}"
issue_fields = [{fields}]
{store}"#,
        store = match &args.cache_url {
            Some(cache_url) =>
                format!("cache_url = \"{cache_url}\"\ncache_schema = \"{schema}\"\n"),
            None => String::new(),
        },
        concurrency = args.concurrency,
        rate_limit = args
            .rate_limit
            .map_or("\"unlimited\"".to_string(), |r| format!("{r:?}")),
        cache_dir = cache_dir.display(),
        fields = fields.join(", "),
    );
    let path = dir.join("profiles.toml");
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// What one warm measured.
#[derive(Debug, Clone, Default)]
struct Warm {
    /// `cache_warm`'s exit code (`None`: killed by a signal).
    exit_code: Option<i32>,
    /// The message and output of a warm that did not exit 0.
    failure: Option<String>,
    wall: Duration,
    /// The run's own duration, as the run history has it.
    run_seconds: f64,
    requests: u64,
    /// Answers that were 429 (or 503 with `Retry-After`).
    throttled: u64,
    /// The pace the run settled at, and the time it was paused.
    settled: Option<f64>,
    waited_seconds: f64,
    written: u64,
    unchanged: u64,
    removed: u64,
    /// `ru_maxrss` of the child, KiB.
    maxrss_kib: u64,
    /// The last `VmHWM` sampled, KiB.
    vmhwm_kib: u64,
    /// CPU time of the writer thread.
    db_cpu: Duration,
    /// CPU time of the whole process (user + system).
    cpu: Duration,
    /// Wall time of `cache_status --json` right after.
    status_wall: Duration,
    /// CPU time `fake-jira` spent during the warm.
    fake_cpu: Duration,
    /// Per stage: name, seconds, requests, items.
    stages: Vec<(String, f64, u64, u64)>,
}

/// Runs `cache_warm` once and measures it.
fn warm_once(
    bins: &Path,
    config: &Path,
    dir: &Path,
    args: &Args,
    fake_pid: u32,
    deadline: Instant,
) -> Result<Warm, String> {
    let mut cmd = Command::new(bins.join("cache_warm"));
    cmd.args(&args.warm_flags)
        .args(["--max-issues", &args.max_issues.to_string()])
        .args(["--profile", "bench", "--config"])
        .arg(config);
    isolate_for(&mut cmd, dir, args);
    let out = dir.join("warm.out");
    let file = std::fs::File::create(&out).map_err(|e| format!("cannot create output: {e}"))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("cannot create output: {e}"))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err));
    let fake_before = process_cpu_time(fake_pid);
    let measured = run_measured(cmd, deadline)?;
    let fake_cpu = process_cpu_time(fake_pid).saturating_sub(fake_before);
    // A failed warm is still measured (its run is recorded): the throttled
    // site's "before" figure is an exit 4 with its count of 429s.
    let failure = (measured.exit_code != Some(0)).then(|| {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        format!(
            "cache_warm ended with {:?}; its output:\n{text}",
            measured.exit_code
        )
    });
    let mut warm = Warm {
        exit_code: measured.exit_code,
        failure: failure.clone(),
        wall: measured.wall,
        maxrss_kib: measured.maxrss_kib,
        vmhwm_kib: measured.vmhwm_kib,
        db_cpu: measured.thread_cpu,
        cpu: measured.cpu,
        fake_cpu,
        ..Warm::default()
    };

    // The request count as `cache_status --json` reports it.
    let mut status = Command::new(bins.join("cache_status"));
    status
        .args(["--json", "--runs", "1", "--profile", "bench", "--config"])
        .arg(config);
    isolate_for(&mut status, dir, args);
    let t = Instant::now();
    let output = status
        .output()
        .map_err(|e| format!("cannot run cache_status: {e}"))?;
    warm.status_wall = t.elapsed();
    if !output.status.success() {
        return Err(format!(
            "cache_status failed: {}{}",
            String::from_utf8_lossy(&output.stderr),
            failure.unwrap_or_default()
        ));
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cache_status --json is not JSON: {e}"))?;
    let last = &json["runs"][0];
    let number = |name: &str| last[name].as_u64().unwrap_or(0);
    warm.requests = number("requests");
    warm.throttled = number("throttled");
    warm.settled = last["rate"]["settled"].as_f64();
    warm.waited_seconds = last["rate"]["waited_seconds"].as_f64().unwrap_or(0.0);
    warm.written = number("written");
    warm.unchanged = number("unchanged");
    warm.removed = number("removed");
    warm.run_seconds = last["seconds"].as_f64().unwrap_or(0.0);

    // Per-stage figures, from the run report the warm stored.
    // Where the cache is (the SQLite file, or with --cache-url the database),
    // as the profile says.
    let options = jira_cache::profile::LoadOptions::from_process_env(
        Some(dir.join("profiles.toml")),
        Some("bench".to_string()),
    );
    let location = jira_cache::profile::load(&options)
        .and_then(|p| p.cache_location())
        .map_err(|e| e.to_string())?;
    let reader = Cache::open_read_only(location).map_err(|e| e.to_string())?;
    let runs = reader.runs(1).map_err(|e| e.to_string())?;
    if let Some(report) = runs.first().and_then(|r| r.report_json.as_deref()) {
        let report: serde_json::Value = serde_json::from_str(report).unwrap_or_default();
        for s in report["stages"].as_array().into_iter().flatten() {
            warm.stages.push((
                s["stage"].as_str().unwrap_or("?").to_string(),
                s["seconds"].as_f64().unwrap_or(0.0),
                s["requests"].as_u64().unwrap_or(0),
                s["items"].as_u64().unwrap_or(0),
            ));
        }
    }
    Ok(warm)
}

/// Keeps a child away from the real machine's configuration.
fn isolate(cmd: &mut Command, dir: &Path) {
    for var in [
        "JIRA_CACHE_CONFIG",
        "JIRA_PROFILE",
        "JIRA_SITE_URL",
        "JIRA_EMAIL",
        "JIRA_DEPLOYMENT",
        "JIRA_AUTH_TYPE",
        "JIRA_CACHE_RETRY_BASE",
        "RUST_LOG",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", dir).env("JIRA_API_TOKEN", TOKEN);
}

/// [`isolate`], with the token of the fake's flavor.
fn isolate_for(cmd: &mut Command, dir: &Path, args: &Args) {
    isolate(cmd, dir);
    if args.flavor == "datacenter" {
        cmd.env("JIRA_API_TOKEN", DC_TOKEN);
    }
}

/// What [`run_measured`] saw.
struct Measured {
    wall: Duration,
    exit_code: Option<i32>,
    maxrss_kib: u64,
    vmhwm_kib: u64,
    thread_cpu: Duration,
    cpu: Duration,
}

/// Spawns `cmd`, samples its writer thread and `VmHWM` every 2 ms, and
/// reaps it with `wait4` for its own resource usage.
fn run_measured(mut cmd: Command, deadline: Instant) -> Result<Measured, String> {
    let start = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start cache_warm: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut writer_tid: Option<String> = None;
    let mut thread_cpu = Duration::ZERO;
    let mut vmhwm_kib = 0;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain data; zeroed is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child's pid, with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            let wall = start.elapsed();
            let exit_code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            let time = |t: libc::timeval| {
                Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
            };
            return Ok(Measured {
                wall,
                exit_code,
                maxrss_kib: usage.ru_maxrss as u64,
                vmhwm_kib,
                thread_cpu,
                cpu: time(usage.ru_utime) + time(usage.ru_stime),
            });
        }
        if r < 0 {
            return Err(format!("wait4 failed: {}", std::io::Error::last_os_error()));
        }
        if writer_tid.is_none() {
            writer_tid = find_thread(pid, "jira-cache-wri");
        }
        if let Some(tid) = &writer_tid
            && let Some(cpu) = thread_cpu_time(pid, tid)
        {
            thread_cpu = cpu;
        }
        if let Some(hwm) = vm_hwm_kib(pid) {
            vmhwm_kib = hwm;
        }
        if Instant::now() >= deadline {
            // SAFETY: SIGKILL to our own unreaped child, then reap it.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Err("cache_warm did not finish before the deadline; killed".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The id of `pid`'s thread whose name starts with `prefix`.
fn find_thread(pid: libc::pid_t, prefix: &str) -> Option<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks.flatten().find_map(|t| {
        let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
        comm.starts_with(prefix)
            .then(|| t.file_name().to_string_lossy().into_owned())
    })
}

/// A thread's CPU time so far (`schedstat`'s first field, in ns).
fn thread_cpu_time(pid: libc::pid_t, tid: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// A process's user + system CPU time so far, from `/proc/<pid>/stat`.
fn process_cpu_time(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// `VmHWM` of a live process, KiB.
fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// requests × latency / concurrency.
fn floor(requests: u64, args: &Args) -> f64 {
    requests as f64 * args.latency_ms as f64 / 1000.0 / args.concurrency.max(1) as f64
}

fn print_warm(label: &str, w: &Warm, args: &Args) {
    let fl = floor(w.requests, args);
    let entries = w.written + w.unchanged;
    println!(
        "{label}: exit {}, wall {:.3} s (run {:.3} s), {} requests, floor {:.3} s, ratio {}, \
         {} entries ({} written, {} unchanged, {} removed), {:.0} entries/s of wall, \
         db time {:.3} s ({:.0} entries/s of db time), cpu {:.2} s (fake-jira {:.2} s), \
         peak RSS {:.1} MiB (VmHWM {:.1} MiB), cache_status {:.0} ms",
        w.exit_code
            .map_or("by a signal".to_string(), |c| c.to_string()),
        w.wall.as_secs_f64(),
        w.run_seconds,
        w.requests,
        fl,
        ratio(w.wall.as_secs_f64(), fl),
        entries,
        w.written,
        w.unchanged,
        w.removed,
        entries as f64 / w.wall.as_secs_f64(),
        w.db_cpu.as_secs_f64(),
        entries as f64 / w.db_cpu.as_secs_f64().max(1e-9),
        w.cpu.as_secs_f64(),
        w.fake_cpu.as_secs_f64(),
        w.maxrss_kib as f64 / 1024.0,
        w.vmhwm_kib as f64 / 1024.0,
        w.status_wall.as_secs_f64() * 1000.0
    );
    if let Some(failure) = &w.failure {
        println!("  FAILED: {failure}");
    }
    if w.throttled > 0 || args.site_rate_limit.is_some() {
        println!(
            "    site rate limit: {} of {} requests answered 429 ({:.1} %), paused {:.1} s, settled at {}",
            w.throttled,
            w.requests,
            100.0 * w.throttled as f64 / (w.requests.max(1)) as f64,
            w.waited_seconds,
            w.settled
                .map_or("the ceiling".to_string(), |r| format!("{r:.1} requests/s"))
        );
    }
    for (stage, seconds, requests, items) in &w.stages {
        let fl = floor(*requests, args);
        println!(
            "    {stage:<9} {seconds:>7.3} s  {requests:>6} requests  floor {fl:>6.3} s  ratio {:>6}  {items} items",
            ratio(*seconds, fl)
        );
    }
}

fn ratio(wall: f64, floor: f64) -> String {
    if floor > 0.0 {
        format!("{:.2}", wall / floor)
    } else {
        "-".into()
    }
}

fn print_medians(label: &str, warms: &[Warm], args: &Args) {
    let m = |f: &dyn Fn(&Warm) -> f64| median(&warms.iter().map(f).collect::<Vec<_>>());
    let wall = m(&|w| w.wall.as_secs_f64());
    let requests = m(&|w| w.requests as f64);
    let fl = floor(requests.round() as u64, args);
    println!(
        "{label} (median of {}): wall {wall:.3} s, {requests:.0} requests, floor {fl:.3} s, ratio {}, \
         {:.0} entries/s of wall, db time {:.3} s ({:.0} entries/s), cpu {:.2} s (fake-jira {:.2} s), \
         peak RSS {:.1} MiB, cache_status {:.0} ms",
        warms.len(),
        ratio(wall, fl),
        m(&|w| (w.written + w.unchanged) as f64 / w.wall.as_secs_f64()),
        m(&|w| w.db_cpu.as_secs_f64()),
        m(&|w| (w.written + w.unchanged) as f64 / w.db_cpu.as_secs_f64().max(1e-9)),
        m(&|w| w.cpu.as_secs_f64()),
        m(&|w| w.fake_cpu.as_secs_f64()),
        m(&|w| w.maxrss_kib as f64) / 1024.0,
        m(&|w| w.status_wall.as_secs_f64() * 1000.0),
    );
    println!(
        "  walls: {}",
        warms
            .iter()
            .map(|w| format!("{:.3}", w.wall.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let n_stages = warms.first().map_or(0, |w| w.stages.len());
    for i in 0..n_stages {
        let name = warms[0].stages[i].0.clone();
        let secs = m(&|w| w.stages.get(i).map_or(0.0, |s| s.1));
        let req = m(&|w| w.stages.get(i).map_or(0.0, |s| s.2 as f64));
        let fl = floor(req.round() as u64, args);
        println!(
            "    {name:<9} {secs:>7.3} s  {req:>6.0} requests  floor {fl:>6.3} s  ratio {:>6}",
            ratio(secs, fl)
        );
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Drops the schemas the runs warmed into (`--cache-url`).
fn drop_schemas(url: &str, runs: usize) -> Result<(), String> {
    let mut config: postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    if let Ok(p) = std::env::var("PGPASSWORD") {
        config.password(p);
    }
    let mut client = config
        .connect(postgres::NoTls)
        .map_err(|e| format!("cannot drop the benchmark's schemas: {e}"))?;
    for i in 1..=runs {
        let schema = format!("bench_warm_{}_{i}", std::process::id());
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .map_err(|e| format!("cannot drop {schema}: {e}"))?;
    }
    Ok(())
}
