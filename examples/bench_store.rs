//! Benchmark of the cache store alone: ingest through the single writer,
//! the same entries again unchanged, and `cache_status` on the result.
//!
//! ```sh
//! cargo build --release --workspace --bins --examples
//! target/release/examples/bench_store --entries 1000000 --runs 3
//! ```
//!
//! Each run makes a fresh cache and writes `--entries` entries of
//! `--value-bytes` through [`CacheWriter::put_page`], in pages of `--page`
//! entries with up to `--in-flight` pages queued (as the warm's concurrent
//! listings do): about 1,000 projects, 4,000 fields, 25,000 users and the
//! rest issues of those projects; half the entries already expired. Then it
//! writes the same values again (only their times change: nothing is
//! rewritten), and times the real `cache_status` binary (release) on the
//! cache, as a table and as `--json`.
//!
//! Besides wall time it reports the writer thread's CPU time
//! (`/proc/self/task/<tid>/schedstat`) and the bytes this process sent to
//! the storage layer (`/proc/self/io`), which tell a CPU-bound writer from
//! a disk-bound one. `--dir /dev/shm` runs the same on tmpfs.
//!
//! `--cache-url postgres://user@host:port/db` runs the same against
//! PostgreSQL (password from `PGPASSWORD`), each run in a fresh schema that
//! is dropped at its end. The writer thread's CPU is then the client's
//! share only; the server's is reported apart, as the CPU time of the
//! server's processes (the postmaster and its children, from `/proc`, when
//! the server runs on this machine and `/proc` shows them), which depends
//! far less on other work on the machine than the wall time does. `--reads
//! N` also times N cached reads of random keys through the read-through API
//! (`ReadThrough::get`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use jira_cache::Category;
use jira_cache::cache::{Cache, CacheLocation, NewEntry, PgTarget, RunEnd, RunResult, RunStart};

/// Benchmark cache ingest and `cache_status` at a million entries.
#[derive(Debug, Parser)]
#[command(name = "bench_store")]
struct Args {
    /// Entries to write.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Bytes of each value.
    #[arg(long, default_value_t = 1_024)]
    value_bytes: usize,
    /// Entries per page (one `put_page` each; queued pages share a transaction); the warm writes pages of up to 100.
    #[arg(long, default_value_t = 100)]
    page: usize,
    /// Pages queued at once.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Fresh caches to fill.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Skip writing the same entries again.
    #[arg(long)]
    no_rewrite: bool,
    /// Times `cache_status` runs per form (table, --json) on each cache.
    #[arg(long, default_value_t = 7)]
    status_runs: usize,
    /// Where the caches go (default: the system temp dir); /dev/shm for tmpfs.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A PostgreSQL database to run against instead of SQLite files
    /// (password from PGPASSWORD); each run uses a fresh schema, dropped at
    /// its end.
    #[arg(long)]
    cache_url: Option<String>,
    /// Cached reads to time through the read-through API after the ingest.
    #[arg(long, default_value_t = 0)]
    reads: usize,
    /// Where `cache_status` is (default: target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 1_200)]
    timeout_s: u64,
}

/// Projects, fields and users of the generated cache; the rest are issues.
const PROJECTS: u64 = 1_000;
const FIELDS: u64 = 4_000;
const USERS: u64 = 25_000;

fn main() {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench_store: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(&args)) {
        eprintln!("bench_store: {e}");
        std::process::exit(1);
    }
}

/// What one run measured.
#[derive(Debug, Default)]
struct Run {
    ingest: Phase,
    rewrite: Option<Phase>,
    file_bytes: u64,
    status_table: Vec<Duration>,
    status_json: Vec<Duration>,
    /// In-process: open, category figures, runs, file size.
    status_parts: Vec<(String, Duration)>,
    /// Each cached read's time, sorted.
    reads: Vec<Duration>,
}

/// Times `--reads` reads of random cached keys through the read-through
/// API, one at a time, sorted.
fn time_reads(args: &Args, location: &CacheLocation) -> Result<Vec<Duration>, String> {
    use rand::RngExt as _;
    let cache = jira_cache::read::ReadThrough::without_site(
        location,
        jira_cache::read::ReadOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    let issues = args.entries.saturating_sub(PROJECTS + FIELDS + USERS);
    let per_project = issues.div_ceil(PROJECTS).max(1);
    let mut rng = rand::rng();
    let pool = pad_pool();
    let mut times = Vec::with_capacity(args.reads);
    for _ in 0..args.reads {
        let i = rng.random_range(0..args.entries);
        let probe = make_entry(i, 8, per_project, 0, 0, &pool);
        let start = Instant::now();
        let found = cache
            .get(probe.category, &probe.key)
            .map_err(|e| e.to_string())?;
        times.push(start.elapsed());
        if found.is_none() {
            return Err(format!("cached key {} not found", probe.key));
        }
    }
    times.sort();
    Ok(times)
}

/// One pass of writes.
#[derive(Debug, Default, Clone)]
struct Phase {
    wall: Duration,
    writer_cpu: Duration,
    /// CPU time of the PostgreSQL server's processes, when it is local.
    server_cpu: Option<Duration>,
    written: u64,
    unchanged: u64,
    storage_write_bytes: u64,
}

impl Phase {
    fn rate(&self) -> f64 {
        (self.written + self.unchanged) as f64 / self.wall.as_secs_f64()
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let bins = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.parent()?.to_path_buf()))
            .ok_or("cannot find target/release; pass --bin-dir")?,
    };
    if !bins.join("cache_status").is_file() {
        return Err(format!(
            "no cache_status in {}; run `cargo build --release --workspace --bins --examples` first",
            bins.display()
        ));
    }
    println!("machine: {}", machine());
    println!(
        "{} entries of {} B, pages of {}, {} in flight, {} run(s)",
        args.entries, args.value_bytes, args.page, args.in_flight, args.runs
    );
    if let Some(url) = &args.cache_url {
        let postmaster = find_postmaster(url).await;
        match postmaster {
            Some(pid) => println!("server: postmaster pid {pid} on this machine"),
            None => println!("server: not on this machine (its CPU is not measured)"),
        }
        let _ = POSTMASTER.set(postmaster);
    }
    let mut runs = Vec::new();
    for i in 1..=args.runs {
        let dir = match &args.dir {
            Some(d) => tempfile::tempdir_in(d),
            None => tempfile::tempdir(),
        }
        .map_err(|e| format!("cannot make a temp dir: {e}"))?;
        println!("run {i}: {}", dir.path().display());
        let run = one_run(args, i, dir.path(), &bins, deadline).await?;
        print_run(&run);
        runs.push(run);
    }
    print_medians(&runs);
    Ok(())
}

async fn one_run(
    args: &Args,
    index: usize,
    dir: &Path,
    bins: &Path,
    deadline: Instant,
) -> Result<Run, String> {
    let path = Cache::path_for(dir, "bench");
    let schema = format!("bench_{}_{index}", std::process::id());
    let location = match &args.cache_url {
        Some(url) => CacheLocation::Postgres(PgTarget::new(
            url,
            std::env::var("PGPASSWORD").ok(),
            &schema,
            "bench http://127.0.0.1:9/",
        )?),
        None => CacheLocation::File(path.clone()),
    };
    let result = measure(args, &location, dir, &schema, bins, deadline).await;
    if let Some(url) = &args.cache_url {
        drop_schema(url, &schema).await?;
    }
    result
}

/// Drops a run's schema from the database.
async fn drop_schema(url: &str, schema: &str) -> Result<(), String> {
    let (url, schema) = (url.to_string(), schema.to_string());
    tokio::task::spawn_blocking(move || {
        let mut config: postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
        if let Ok(p) = std::env::var("PGPASSWORD") {
            config.password(p);
        }
        let mut client = config
            .connect(postgres::NoTls)
            .map_err(|e| format!("cannot drop the schema: {e}"))?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .map_err(|e| format!("cannot drop the schema: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn measure(
    args: &Args,
    location: &CacheLocation,
    dir: &Path,
    schema: &str,
    bins: &Path,
    deadline: Instant,
) -> Result<Run, String> {
    let cache = Cache::open(location).map_err(|e| e.to_string())?;
    let mut run = Run {
        ingest: write_all(args, &cache, 0, deadline).await?,
        ..Run::default()
    };
    println!(
        "  ingest: {:.2} s, {:.0} entries/s ({} written)",
        run.ingest.wall.as_secs_f64(),
        run.ingest.rate(),
        run.ingest.written
    );
    record_runs(&cache).await?;
    run.file_bytes = cache
        .reader()
        .and_then(|r| r.file_size())
        .map_err(|e| e.to_string())?;
    if args.reads > 0 {
        run.reads = time_reads(args, location)?;
        let q = |p: f64| run.reads[((run.reads.len() - 1) as f64 * p) as usize];
        println!(
            "  {} cached reads: p50 {:?}, p99 {:?}, max {:?}",
            run.reads.len(),
            q(0.5),
            q(0.99),
            q(1.0)
        );
    }

    let config = dir.join("profiles.toml");
    let store = match &args.cache_url {
        Some(url) => format!("cache_url = \"{url}\"\ncache_schema = \"{schema}\"\n"),
        None => String::new(),
    };
    std::fs::write(
        &config,
        format!(
            "[profiles.bench]\nurl = \"http://127.0.0.1:9\"\ndeployment = \"cloud\"\n\
             email = \"bot@example.com\"\ncache_dir = \"{}\"\n{store}",
            dir.display()
        ),
    )
    .map_err(|e| format!("cannot write the profile: {e}"))?;
    for _ in 0..args.status_runs {
        run.status_table
            .push(time_status(bins, &config, dir, false, deadline)?);
        run.status_json
            .push(time_status(bins, &config, dir, true, deadline)?);
    }
    run.status_parts = status_parts(location)?;

    if !args.no_rewrite {
        let phase = write_all(args, &cache, 60_000, deadline).await?;
        println!(
            "  same values again: {:.2} s, {:.0} entries/s ({} written, {} unchanged)",
            phase.wall.as_secs_f64(),
            phase.rate(),
            phase.written,
            phase.unchanged
        );
        run.rewrite = Some(phase);
    }
    Ok(run)
}

/// Writes every entry once through a fresh writer; `later` shifts the
/// fetch times (a re-warm a minute later) without changing any value.
async fn write_all(
    args: &Args,
    cache: &Cache,
    later: i64,
    deadline: Instant,
) -> Result<Phase, String> {
    // An earlier writer's thread may still be exiting: look for a new one.
    let before = writer_threads();
    let writer = cache.writer().map_err(|e| e.to_string())?;
    let mut tid = None;
    for _ in 0..1_000 {
        tid = writer_threads().into_iter().find(|t| !before.contains(t));
        if tid.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let tid = tid.ok_or("cannot find the writer thread in /proc/self/task")?;
    let cpu_before = thread_cpu_time(&tid).unwrap_or_default();
    let io_before = storage_write_bytes();
    let server_before = server_cpu_time();
    let now = now_ms();
    let pool = pad_pool();
    let issues = args.entries.saturating_sub(PROJECTS + FIELDS + USERS);
    let per_project = issues.div_ceil(PROJECTS).max(1);
    let pages = (0..args.entries).step_by(args.page.max(1)).map(|first| {
        let last = (first + args.page as u64).min(args.entries);
        (first..last)
            .map(|i| make_entry(i, args.value_bytes, per_project, now, later, &pool))
            .collect::<Vec<_>>()
    });
    let start = Instant::now();
    let mut results = futures::stream::iter(pages)
        .map(|page| writer.put_page(page))
        .buffer_unordered(args.in_flight.max(1));
    let mut phase = Phase::default();
    while let Some(r) = results.next().await {
        let outcome = r.map_err(|e| e.to_string())?;
        phase.written += outcome.written;
        phase.unchanged += outcome.unchanged;
        if Instant::now() >= deadline {
            return Err("the deadline passed while writing".into());
        }
    }
    drop(results);
    phase.wall = start.elapsed();
    phase.writer_cpu = thread_cpu_time(&tid)
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    writer.shutdown().await.map_err(|e| e.to_string())?;
    phase.server_cpu = server_before
        .zip(server_cpu_time())
        .map(|(before, after)| after.saturating_sub(before));
    phase.storage_write_bytes = storage_write_bytes().saturating_sub(io_before);
    Ok(phase)
}

/// Entry `i`: a project, a field, a user or an issue, with a value of
/// exactly `value_bytes` that only entry `i` has.
fn make_entry(
    i: u64,
    value_bytes: usize,
    per_project: u64,
    now: i64,
    later: i64,
    pool: &str,
) -> NewEntry {
    let (category, key, project, updated_at) = if i < PROJECTS {
        (Category::Project, project_key(i), None, None)
    } else if i < PROJECTS + FIELDS {
        (
            Category::Field,
            format!("customfield_{}", 10_000 + i),
            None,
            None,
        )
    } else if i < PROJECTS + FIELDS + USERS {
        (Category::User, format!("user-{i:08}"), None, None)
    } else {
        let j = i - PROJECTS - FIELDS - USERS;
        let project = project_key(j / per_project);
        let key = format!("{project}-{}", j % per_project + 1);
        let updated = now - (j % 30) as i64 * 86_400_000;
        (Category::Issue, key, Some(project), Some(updated))
    };
    let head = format!("{{\"key\":\"{key}\",\"n\":{i},\"pad\":\"");
    let room = value_bytes.saturating_sub(head.len() + 2);
    let start = (i as usize * 7_919) % (pool.len() - room.min(pool.len()) + 1);
    let mut value = String::with_capacity(value_bytes);
    value.push_str(&head);
    value.push_str(&pool[start..start + room.min(pool.len() - start)]);
    value.push_str("\"}");
    let fetched_at = now + later;
    // Half the entries expired an hour ago, the others expire in a day.
    let expires_at = if i.is_multiple_of(2) {
        fetched_at - 3_600_000
    } else {
        fetched_at + 86_400_000
    };
    NewEntry {
        category,
        key,
        value,
        fetched_at,
        expires_at,
        fetch_ms: 0,
        project,
        updated_at,
    }
}

fn project_key(p: u64) -> String {
    format!("P{p:04}")
}

/// 64 KiB of letters that do not repeat in any short period.
fn pad_pool() -> String {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..65_536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// A few finished runs, so that the status shows a history as usual.
async fn record_runs(cache: &Cache) -> Result<(), String> {
    let writer = cache.writer().map_err(|e| e.to_string())?;
    for k in 0..5 {
        let at = now_ms() - (5 - k) * 86_400_000;
        let id = writer
            .run_start(RunStart {
                started_at: at,
                pid: std::process::id(),
                stages: vec!["projects".into(), "issues".into()],
            })
            .await
            .map_err(|e| e.to_string())?;
        writer
            .run_finish(
                id,
                RunEnd {
                    ended_at: at + 60_000,
                    result: RunResult::Ok,
                    requests: 900,
                    retries: 0,
                    throttled: 0,
                    written: 10_000,
                    unchanged: 0,
                    removed: 0,
                    errors: Vec::new(),
                    report_json: "{}".into(),
                },
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    writer.shutdown().await.map_err(|e| e.to_string())
}

/// Wall time of one `cache_status` (table, or `--json`).
fn time_status(
    bins: &Path,
    config: &Path,
    home: &Path,
    json: bool,
    deadline: Instant,
) -> Result<Duration, String> {
    if Instant::now() >= deadline {
        return Err("the deadline passed before cache_status".into());
    }
    let mut cmd = Command::new(bins.join("cache_status"));
    cmd.args(["--profile", "bench", "--config"]).arg(config);
    if json {
        cmd.arg("--json");
    }
    for var in [
        "JIRA_CACHE_CONFIG",
        "JIRA_PROFILE",
        "RUST_LOG",
        "XDG_CONFIG_HOME",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home).env("JIRA_API_TOKEN", "unused");
    let start = Instant::now();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run cache_status: {e}"))?;
    let wall = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "cache_status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(wall)
}

/// The parts of a status, timed in this process.
fn status_parts(path: &CacheLocation) -> Result<Vec<(String, Duration)>, String> {
    let mut parts = Vec::new();
    let t = Instant::now();
    let reader = Cache::open_read_only(path).map_err(|e| e.to_string())?;
    parts.push(("open (+ migrate check)".to_string(), t.elapsed()));
    let t = Instant::now();
    let stats = reader.category_stats(now_ms()).map_err(|e| e.to_string())?;
    parts.push(("category_stats".to_string(), t.elapsed()));
    let t = Instant::now();
    let _ = reader.runs(5).map_err(|e| e.to_string())?;
    parts.push(("runs(5)".to_string(), t.elapsed()));
    let t = Instant::now();
    let _ = reader.file_size().map_err(|e| e.to_string())?;
    parts.push(("file_size".to_string(), t.elapsed()));
    let total: u64 = stats.iter().map(|s| s.entries).sum();
    let expired: u64 = stats.iter().map(|s| s.expired).sum();
    parts.push((
        format!("({total} entries, {expired} expired)"),
        Duration::ZERO,
    ));
    Ok(parts)
}

fn now_ms() -> i64 {
    jira_cache::warm::now_ms()
}

/// The ids of this process's cache writer threads (`jira-cache-writer`,
/// cut to 15 bytes by the kernel).
fn writer_threads() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            comm.starts_with("jira-cache-wri")
                .then(|| t.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

/// A thread's CPU time so far (`schedstat`'s first field, in ns).
fn thread_cpu_time(tid: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// The PostgreSQL server's process id (its postmaster), when it runs on
/// this machine: the parent of the backend of a connection to it. Set once
/// per process by [`find_postmaster`].
static POSTMASTER: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();

/// Finds the postmaster of the server at `url` (see [`POSTMASTER`]).
async fn find_postmaster(url: &str) -> Option<u32> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let mut config: postgres::Config = url.parse().ok()?;
        if let Ok(p) = std::env::var("PGPASSWORD") {
            config.password(p);
        }
        let mut client = config.connect(postgres::NoTls).ok()?;
        let backend: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .ok()?
            .get(0);
        let stat = std::fs::read_to_string(format!("/proc/{backend}/stat")).ok()?;
        // The fourth field, after the parenthesised command name.
        let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
        ppid.parse().ok()
    })
    .await
    .ok()
    .flatten()
}

/// CPU time of the server's processes so far: the postmaster's own and
/// that of its children that ended (`cutime`, `cstime`), plus that of its
/// live children. `None` when the server is not local.
fn server_cpu_time() -> Option<Duration> {
    let postmaster = (*POSTMASTER.get()?)?;
    // SAFETY: sysconf cannot fail for _SC_CLK_TCK.
    let ticks = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&t| t > 0)?;
    let fields = |pid: &str| -> Option<(u32, [u64; 4])> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // After the name: state, ppid, ..., utime (14th field of the
        // line, index 11 here), stime, cutime, cstime.
        let ppid = rest.get(1)?.parse().ok()?;
        let mut t = [0u64; 4];
        for (i, v) in t.iter_mut().enumerate() {
            *v = rest.get(11 + i)?.parse().ok()?;
        }
        Some((ppid, t))
    };
    let (_, own) = fields(&postmaster.to_string())?;
    let mut total: u64 = own.iter().sum();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some((ppid, t)) = fields(pid)
            && ppid == postmaster
        {
            total += t[0] + t[1];
        }
    }
    Some(Duration::from_nanos(total * 1_000_000_000 / ticks))
}

/// Bytes this process caused to be sent to the storage layer.
fn storage_write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_phase(label: &str, p: &Phase) {
    println!(
        "  {label}: {:.2} s wall, {:.0} entries/s, writer CPU {:.2} s ({:.0} % of wall), \
         {:.0} MiB to storage ({:.0} MiB/s)",
        p.wall.as_secs_f64(),
        p.rate(),
        p.writer_cpu.as_secs_f64(),
        100.0 * p.writer_cpu.as_secs_f64() / p.wall.as_secs_f64(),
        p.storage_write_bytes as f64 / 1_048_576.0,
        p.storage_write_bytes as f64 / 1_048_576.0 / p.wall.as_secs_f64()
    );
    if let Some(server) = p.server_cpu {
        let entries = (p.written + p.unchanged).max(1);
        println!(
            "  {label}: server CPU {:.2} s ({:.1} µs per entry), writer CPU {:.1} µs per entry",
            server.as_secs_f64(),
            server.as_secs_f64() * 1e6 / entries as f64,
            p.writer_cpu.as_secs_f64() * 1e6 / entries as f64
        );
    }
}

fn print_run(run: &Run) {
    print_phase("ingest", &run.ingest);
    if let Some(r) = &run.rewrite {
        print_phase("same values again", r);
        println!(
            "  same values again / ingest: {:.1} % of the wall, {:.1} % of the writer CPU",
            100.0 * r.wall.as_secs_f64() / run.ingest.wall.as_secs_f64(),
            100.0 * r.writer_cpu.as_secs_f64() / run.ingest.writer_cpu.as_secs_f64()
        );
    }
    println!("  file: {:.0} MiB", run.file_bytes as f64 / 1_048_576.0);
    let show = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  cache_status: median {:.0} ms (runs: {} ms); --json median {:.0} ms (runs: {} ms)",
        median(&run.status_table.iter().map(|d| ms(*d)).collect::<Vec<_>>()),
        show(&run.status_table),
        median(&run.status_json.iter().map(|d| ms(*d)).collect::<Vec<_>>()),
        show(&run.status_json)
    );
    for (part, d) in &run.status_parts {
        println!("    {part}: {:.1} ms", ms(*d));
    }
}

fn print_medians(runs: &[Run]) {
    let m = |f: &dyn Fn(&Run) -> Option<f64>| {
        let v: Vec<f64> = runs.iter().filter_map(f).collect();
        median(&v)
    };
    println!();
    println!("median of {} run(s):", runs.len());
    println!(
        "  ingest: {:.0} entries/s ({:.2} s wall, writer CPU {:.2} s)",
        m(&|r| Some(r.ingest.rate())),
        m(&|r| Some(r.ingest.wall.as_secs_f64())),
        m(&|r| Some(r.ingest.writer_cpu.as_secs_f64()))
    );
    if runs.iter().any(|r| r.ingest.server_cpu.is_some()) {
        println!(
            "  ingest: server CPU {:.1} µs per entry",
            m(&|r| r
                .ingest
                .server_cpu
                .map(|c| c.as_secs_f64() * 1e6
                    / (r.ingest.written + r.ingest.unchanged).max(1) as f64))
        );
    }
    if runs.iter().any(|r| r.rewrite.is_some()) {
        println!(
            "  same values again: {:.0} entries/s, {:.1} % of the ingest's wall, {:.1} % of its writer CPU",
            m(&|r| r.rewrite.as_ref().map(Phase::rate)),
            m(&|r| r
                .rewrite
                .as_ref()
                .map(|w| 100.0 * w.wall.as_secs_f64() / r.ingest.wall.as_secs_f64())),
            m(&|r| r
                .rewrite
                .as_ref()
                .map(|w| 100.0 * w.writer_cpu.as_secs_f64() / r.ingest.writer_cpu.as_secs_f64()))
        );
    }
    let all_table: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.status_table.iter().map(|d| ms(*d)))
        .collect();
    let all_json: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.status_json.iter().map(|d| ms(*d)))
        .collect();
    println!(
        "  cache_status: {:.0} ms (table), {:.0} ms (--json), medians over {} calls each",
        median(&all_table),
        median(&all_json),
        all_table.len()
    );
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
