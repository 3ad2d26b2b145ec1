//! A consumer of the `jira_cache` library: reads Jira through the local
//! cache the way another Rust tool would, fetching (and storing) only what
//! is missing or expired.
//!
//! ```sh
//! cargo run --example read_through -- --profile NAME project PROJ
//! cargo run --example read_through -- --profile NAME field-id "Story Points"
//! cargo run --example read_through -- --profile NAME user ACCOUNT_ID
//! cargo run --example read_through -- --profile NAME user-name "Alice Archer"
//! cargo run --example read_through -- --profile NAME issue PROJ-1
//! cargo run --example read_through -- --profile NAME get field list:fields
//! ```
//!
//! The value goes to stdout as Jira sent it (a field id alone for
//! `field-id`); how fresh it is and where it came from go to stderr. Exit
//! codes follow `cache_status --get`: 0 fresh, 10 stale, 11 not found; 1 any
//! error, 2 a usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jira_cache::Category;
use jira_cache::profile::{self, LoadOptions};
use jira_cache::read::{CachedValue, Origin, ReadThrough};

/// Reads Jira through the local cache of a profile.
#[derive(Debug, Parser)]
#[command(name = "read_through")]
struct Args {
    /// The profiles file (default: $JIRA_CACHE_CONFIG, then
    /// ~/.config/jira-cache/profiles.toml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// The profile (default: $JIRA_PROFILE, then the file's default).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    #[command(subcommand)]
    lookup: Lookup,
}

#[derive(Debug, Subcommand)]
enum Lookup {
    /// A project by key.
    Project {
        /// The project key, e.g. PROJ.
        key: String,
    },
    /// A field's id by its name.
    FieldId {
        /// The field's name, e.g. "Story Points".
        name: String,
    },
    /// A user by Cloud accountId or Data Center key.
    User {
        /// The accountId or key.
        id: String,
    },
    /// A cached user by user name, display name or email.
    UserName {
        /// The name.
        name: String,
    },
    /// An issue by key.
    Issue {
        /// The issue key, e.g. PROJ-1.
        key: String,
    },
    /// Any cached entry, from the cache only (no fetch).
    Get {
        /// project, field, user or issue.
        category: Category,
        /// The key, e.g. list:fields.
        key: String,
    },
}

/// Exit codes, as `cache_status --get` uses them.
const FRESH: u8 = 0;
const FAILED: u8 = 1;
const STALE: u8 = 10;
const NOT_FOUND: u8 = 11;

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("read_through: {err:#}");
            ExitCode::from(FAILED)
        }
    }
}

fn run(args: Args) -> anyhow::Result<u8> {
    let profile = profile::load(&LoadOptions::from_process_env(args.config, args.profile))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let cache = ReadThrough::open(&profile)?;
        let found = match args.lookup {
            Lookup::Project { key } => cache.project(&key).await?,
            Lookup::FieldId { name } => {
                return Ok(match cache.field_id(&name).await? {
                    Some(id) => {
                        print_value(&id)?;
                        FRESH
                    }
                    None => {
                        eprintln!("no field named {name:?}");
                        NOT_FOUND
                    }
                });
            }
            Lookup::User { id } => cache.user(&id).await?,
            Lookup::UserName { name } => cache.user_by_name(&name).await?,
            Lookup::Issue { key } => cache.issue(&key).await?,
            Lookup::Get { category, key } => cache.get(category, &key)?,
        };
        Ok(match found {
            Some(value) => {
                print_value(&value.value)?;
                eprintln!("{}", describe(&value));
                if value.is_fresh() { FRESH } else { STALE }
            }
            None => {
                eprintln!("not found");
                NOT_FOUND
            }
        })
    })
}

/// Prints the value on stdout; a reader that went away (`| head`) is fine.
fn print_value(value: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{value}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

/// "fresh, fetched 2m 3s ago, from the cache".
fn describe(value: &CachedValue) -> String {
    let freshness = if value.is_fresh() { "fresh" } else { "stale" };
    let age = humantime::format_duration(std::time::Duration::from_secs(value.age.as_secs()));
    let origin = match &value.origin {
        Origin::Cache => "from the cache".to_string(),
        Origin::Fetched => "just fetched from Jira".to_string(),
        Origin::StaleWhileRefreshing => {
            "from the cache while another process refreshes it".to_string()
        }
        Origin::StaleAfterError(cause) => {
            format!("from the cache, because the refresh failed: {cause}")
        }
    };
    format!("{freshness}, fetched {age} ago, {origin}")
}
