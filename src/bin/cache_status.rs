//! `cache_status`: what the cache of a profile holds, how fresh, how big,
//! and how the last warms went; a table for people, `--json` for machines.

mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use jira_cache::cache::Freshness;
use jira_cache::cache::{Cache, CacheError};
use jira_cache::profile::{self, LoadOptions};
use jira_cache::status::{self, StatusReport};
use jira_cache::{Category, exit, warm};

/// `--get`: a stale hit (expired, still cached).
const GET_STALE: u8 = 10;
/// `--get`: nothing cached under that key.
const GET_MISS: u8 = 11;

/// Show what the local Jira cache holds, how fresh it is, and how the last warms went.
#[derive(Debug, Parser)]
#[command(name = "cache_status", version, after_help = common::EXIT_CODES_HELP)]
struct Cli {
    /// The profile to show (default: $JIRA_PROFILE, the file's `default`, or its only profile).
    #[arg(long, short = 'p', value_name = "NAME")]
    profile: Option<String>,
    /// The profiles file (default: $JIRA_CACHE_CONFIG, then ~/.config/jira-cache/profiles.toml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// How many of the last warm runs to show.
    #[arg(long, value_name = "N", default_value_t = 5)]
    runs: usize,
    /// Print one JSON object (with `schema_version`) instead of tables.
    #[arg(long)]
    json: bool,
    /// Print the cached JSON value of one entry; exit 0 fresh, 10 stale, 11 miss.
    #[arg(long, num_args = 2, value_names = ["CATEGORY", "KEY"], conflicts_with_all = ["keys", "json"])]
    get: Option<Vec<String>>,
    /// List the keys of a category (project, field, user, issue), sorted.
    #[arg(long, value_name = "CATEGORY", conflicts_with = "json")]
    keys: Option<Category>,
    /// With --keys: only keys matching this SQLite GLOB (case-sensitive), e.g. 'PROJ-*'.
    #[arg(long, value_name = "GLOB", requires = "keys")]
    pattern: Option<String>,
    /// More logging on stderr (-v, -vv, -vvv); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    common::init_logging(cli.verbose, false);
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("cache_status: {}", common::one_line(&err));
            ExitCode::from(exit::code_for(err.as_ref()))
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let options = LoadOptions::from_process_env(cli.config.clone(), cli.profile.clone());
    let profile = profile::load(&options)?;
    if let Some(get) = &cli.get {
        let category: Category = get[0].parse()?;
        let mut reader = match Cache::open_read_only(profile.cache_path()) {
            Ok(r) => r,
            Err(CacheError::Missing { .. }) => return Ok(GET_MISS),
            Err(e) => return Err(e.into()),
        };
        let found = reader.get(category, &get[1], warm::now_ms())?;
        // Scripts read through --get, so it counts as a read.
        let _ = reader.flush_read_counts();
        return Ok(match found {
            None => GET_MISS,
            Some(entry) => {
                println!("{}", entry.value);
                match entry.freshness(warm::now_ms()) {
                    Freshness::Fresh => exit::OK,
                    Freshness::Stale => GET_STALE,
                }
            }
        });
    }
    if let Some(category) = cli.keys {
        let reader = match Cache::open_read_only(profile.cache_path()) {
            Ok(r) => r,
            Err(CacheError::Missing { .. }) => return Ok(exit::OK),
            Err(e) => return Err(e.into()),
        };
        for key in reader.keys(category, cli.pattern.as_deref())? {
            println!("{key}");
        }
        return Ok(exit::OK);
    }
    let report = match Cache::open_read_only(profile.cache_path()) {
        Ok(reader) => status::gather(&profile, &reader, warm::now_ms(), cli.runs)?,
        Err(CacheError::Missing { .. }) => status::empty(&profile),
        Err(e) => return Err(e.into()),
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_tables(&report);
    }
    Ok(exit::OK)
}

fn print_tables(r: &StatusReport) {
    println!(
        "Profile  {} ({}, {})",
        r.profile,
        r.site,
        r.deployment
            .as_deref()
            .unwrap_or("deployment not yet probed")
    );
    if !r.exists {
        println!(
            "Cache    {} (no cache yet: run `cache_warm --all --profile {}`)",
            r.cache_path, r.profile
        );
        return;
    }
    println!(
        "Cache    {} ({} of entries, cap {}; file {})",
        r.cache_path,
        common::bytes(r.total_bytes),
        common::bytes(r.max_size),
        common::bytes(r.file_bytes)
    );
    println!();
    let header = [
        "CATEGORY",
        "ENTRIES",
        "FRESH",
        "EXPIRED",
        "SIZE",
        "TTL",
        "OLDEST FETCH",
        "NEWEST FETCH",
    ];
    let rows: Vec<Vec<String>> = r
        .categories
        .iter()
        .map(|c| {
            vec![
                c.category.to_string(),
                c.entries.to_string(),
                c.fresh.to_string(),
                c.expired.to_string(),
                common::bytes(c.bytes),
                common::duration(std::time::Duration::from_secs(c.ttl_seconds)),
                local(c.oldest_fetch.as_deref()),
                local(c.newest_fetch.as_deref()),
            ]
        })
        .collect();
    print_table(&header, &rows, &[1, 2, 3, 4, 5]);
    println!();
    if r.runs.is_empty() {
        println!("No warm runs recorded yet.");
        return;
    }
    let header = [
        "LAST RUNS",
        "TOOK",
        "STAGES",
        "RESULT",
        "REQUESTS",
        "RETRIES",
        "WRITTEN",
        "UNCHANGED",
        "REMOVED",
    ];
    let rows: Vec<Vec<String>> = r
        .runs
        .iter()
        .map(|run| {
            vec![
                local(Some(&run.started)),
                run.seconds
                    .map(|s| common::duration(std::time::Duration::from_secs_f64(s)))
                    .unwrap_or_else(|| "-".into()),
                run.stages.clone(),
                run.result.clone(),
                run.requests.to_string(),
                run.retries.to_string(),
                run.written.to_string(),
                run.unchanged.to_string(),
                run.removed.to_string(),
            ]
        })
        .collect();
    print_table(&header, &rows, &[1, 4, 5, 6, 7, 8]);
    if let Some(last) = r.runs.first() {
        for e in &last.errors {
            println!("  error: {e}");
        }
    }
}

/// An RFC 3339 time shown in local time, to the minute.
fn local(t: Option<&str>) -> String {
    t.and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

/// Prints an aligned table; columns listed in `right` are right-aligned.
fn print_table(header: &[&str], rows: &[Vec<String>], right: &[usize]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if right.contains(&i) {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
