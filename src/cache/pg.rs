//! The PostgreSQL store: the same cache as the SQLite file, in a database
//! that several machines share (`cache_url` in the profile).
//!
//! - **Scopes.** Every row carries a `scope` (the profile's name and its
//!   site's URL), so several profiles and sites share one database without
//!   seeing each other's entries.
//! - **Schema.** All tables live in one PostgreSQL schema (namespace),
//!   `jira_cache` unless the profile's `cache_schema` says otherwise.
//!   Migrations are an append-only list, recorded in `schema_version`; all
//!   pending ones run in ONE transaction, under an advisory lock so that two
//!   processes never migrate at once. A database migrated by a newer
//!   jira-cache is refused ([`CacheError::NewerSchema`]).
//! - **Threads.** The `postgres` client blocks, and must not run on an
//!   async runtime's thread: the writer thread owns one connection, and each
//!   reader or lease table owns a connection on a thread of its own
//!   ([`Actor`]), which its methods call and wait for, as they wait for
//!   SQLite today.
//! - **Times** are unix milliseconds (`bigint`), as in the SQLite file; a
//!   listing's members carry their listing's times (the same schema 4 rules).
//! - **Faults.** Every statement runs under `statement_timeout`; a write is
//!   one transaction, so a server that restarts mid-warm loses nothing that
//!   was committed and keeps nothing half-written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::error::SqlState;
use postgres::types::Type;
use postgres::{Client, GenericClient, NoTls};

use super::SERVE_PREFIX;
use super::error::CacheError;
use super::reader::{CachedEntry, CategoryStats, ReadCounts, ReadSource, Watermark};
use super::runs::{RunEnd, RunId, RunRecord, RunResult, RunStart};
use super::write::{
    EvictionOutcome, KeyScope, Listing, NewEntry, PruneOutcome, PutOutcome, value_hash,
};
use crate::Category;

/// How long one statement may run before the server cancels it.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a PostgreSQL-backed cache lives: the server, the schema and the
/// scope of one profile.
#[derive(Clone)]
pub struct PgTarget {
    config: postgres::Config,
    /// Extra CA certificates (PEM) trusted for the server's certificate
    /// (the profile's `ca_file`), besides the system's.
    ca_file: Option<PathBuf>,
    schema: String,
    scope: String,
    display: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("PgTarget")
            .field("display", &self.display)
            .field("schema", &self.schema)
            .field("scope", &self.scope)
            .finish()
    }
}

impl PgTarget {
    /// A target from a `postgres://` URL (without a password: the profile
    /// loader refuses one), the password from wherever the profile says,
    /// the schema name and the scope.
    ///
    /// Fails with a one-line message when the URL cannot be read, or the
    /// schema name is not a plain identifier.
    pub fn new(
        url: &str,
        password: Option<String>,
        schema: &str,
        scope: &str,
    ) -> Result<PgTarget, String> {
        // libpq's verifying modes: the TLS connector always checks the
        // certificate's chain and host name, so both are `require` here.
        let url = url
            .replace("sslmode=verify-full", "sslmode=require")
            .replace("sslmode=verify-ca", "sslmode=require");
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| format!("`cache_url` is not a PostgreSQL URL ({e})"))?;
        if config.get_password().is_some() {
            return Err(
                "`cache_url` holds a password; remove it and use `cache_password_env`, `cache_password_cmd`, PGPASSWORD or ~/.pgpass".to_string(),
            );
        }
        if !valid_schema_name(schema) {
            return Err(format!(
                "`cache_schema` `{schema}` is not a plain name (letters, digits and `_`, not starting with a digit, at most 63)"
            ));
        }
        if let Some(password) = password {
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("jira-cache");
        let display = display_of(&config, schema);
        Ok(PgTarget {
            config,
            ca_file: None,
            schema: schema.to_string(),
            scope: scope.to_string(),
            display,
        })
    }

    /// Trusts the CA certificates (PEM) of `ca_file` for the server's
    /// certificate, besides the system's (the profile's `ca_file`).
    pub fn with_ca_file(mut self, ca_file: Option<PathBuf>) -> PgTarget {
        self.ca_file = ca_file;
        self
    }

    /// Where the cache is, for messages: `postgres://user@host:port/db
    /// (schema s)`, never with the password.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The scope of the profile's rows.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The advisory lock key of this scope's warm lock.
    pub(crate) fn warm_lock_key(&self) -> i64 {
        warm_lock_key(&self.schema, &self.scope)
    }

    /// The display as a path, for the error type's `path` fields.
    pub(crate) fn display_path(&self) -> PathBuf {
        PathBuf::from(&self.display)
    }

    /// Host, port, database and user as `~/.pgpass` matches them.
    pub(crate) fn pgpass_fields(&self) -> (String, String, String, String) {
        let host = match self.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            // libpq matches a socket directory as `localhost`.
            Some(postgres::config::Host::Unix(_)) | None => "localhost".to_string(),
        };
        let port = self
            .config
            .get_ports()
            .first()
            .copied()
            .unwrap_or(5432)
            .to_string();
        let user = self.config.get_user().unwrap_or_default().to_string();
        let db = self
            .config
            .get_dbname()
            .map(str::to_string)
            .unwrap_or_else(|| user.clone());
        (host, port, db, user)
    }

    /// Connects, sets the session's schema and statement timeout. Must run
    /// on a thread that is not an async runtime's.
    pub(crate) fn connect(&self) -> Result<Client, CacheError> {
        let mut client = match self.config.get_ssl_mode() {
            postgres::config::SslMode::Disable => self.config.connect(NoTls),
            // `prefer` (the default) asks for TLS and falls back to plain
            // text if the server has none; `require` insists. Either way a
            // certificate is checked against the system's CAs and
            // `ca_file`, and its host name against the URL's.
            _ => self.config.connect(self.tls()?),
        }
        .map_err(|e| self.error(e))?;
        let setup = format!(
            "SET statement_timeout = {}; SET lock_timeout = {}; SET search_path TO \"{}\"",
            STATEMENT_TIMEOUT.as_millis(),
            STATEMENT_TIMEOUT.as_millis(),
            self.schema
        );
        client.batch_execute(&setup).map_err(|e| self.error(e))?;
        Ok(client)
    }

    /// The TLS connector: rustls with the system's CA certificates and the
    /// profile's `ca_file`.
    fn tls(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, CacheError> {
        let refused = |detail: String| CacheError::DatabaseRefused {
            path: self.display_path(),
            detail,
            next: "fix `ca_file` in the profile (a PEM file of CA certificates)",
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = &self.ca_file {
            use rustls::pki_types::pem::PemObject as _;
            let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| refused(format!("cannot read ca_file {}: {e}", path.display())))?
                .collect::<Result<_, _>>()
                .map_err(|e| refused(format!("ca_file {} is not PEM: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(refused(format!(
                    "ca_file {} holds no PEM certificate",
                    path.display()
                )));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| refused(format!("ca_file {}: {e}", path.display())))?;
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| refused(format!("cannot set up TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }

    /// The cache error for a PostgreSQL error.
    pub(crate) fn error(&self, e: postgres::Error) -> CacheError {
        from_pg(&self.display_path(), e)
    }
}

/// `user@host:port/db (schema s)` for messages.
fn display_of(config: &postgres::Config, schema: &str) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    format!("postgres://{at}{host}:{port}/{db} (schema {schema})")
}

fn valid_schema_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// The cache error for a PostgreSQL error at `target`.
pub(crate) fn from_pg(target: &Path, e: postgres::Error) -> CacheError {
    let target = target.to_path_buf();
    let detail = one_line(&e);
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return CacheError::DatabaseRefused {
                path: target,
                detail,
                next: "check the user in `cache_url` and its password (`cache_password_env`, `cache_password_cmd`, PGPASSWORD or ~/.pgpass)",
            };
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return CacheError::DatabaseRefused {
                path: target,
                detail,
                next: "create the database (`createdb`) or fix its name in `cache_url`",
            };
        }
        if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            return CacheError::DatabaseRefused {
                path: target,
                detail,
                next: "grant the user CREATE on the database (or on `cache_schema`) and use of its tables",
            };
        }
        if *code == SqlState::DISK_FULL {
            return CacheError::Storage {
                path: target,
                detail,
            };
        }
        if *code == SqlState::QUERY_CANCELED || *code == SqlState::LOCK_NOT_AVAILABLE {
            return CacheError::DatabaseUnreachable {
                path: target,
                detail: format!("{detail} (statement timeout)"),
            };
        }
        return CacheError::Database {
            path: target,
            detail,
        };
    }
    // A certificate the client does not trust: configuration, not reach.
    if detail.contains("certificate") {
        return CacheError::DatabaseRefused {
            path: target,
            detail,
            next: "trust the server's certificate authority with `ca_file` in the profile (PEM), or fix the host name in `cache_url`",
        };
    }
    // No answer from the server: refused, unreachable, closed mid-way,
    // timed out.
    CacheError::DatabaseUnreachable {
        path: target,
        detail,
    }
}

/// An error and its causes on one line, without control characters.
fn one_line(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    crate::scrub::for_terminal(&crate::scrub::scrub(&text)).into_owned()
}

/// A `Result` with a PostgreSQL error, mapped at `target`.
pub(crate) trait PgResultExt<T> {
    fn at_pg(self, target: &Path) -> Result<T, CacheError>;
}

impl<T> PgResultExt<T> for Result<T, postgres::Error> {
    fn at_pg(self, target: &Path) -> Result<T, CacheError> {
        self.map_err(|e| from_pg(target, e))
    }
}

// ---------------------------------------------------------------------------
// Statements prepared once per connection.

/// The statements one connection has prepared, by their text. A statement
/// given as text is parsed and planned by the server on every call, one
/// round trip more each time; the hot statements (a page's look-up and
/// upsert, a cached read) are prepared once per connection instead. A
/// protocol-level prepared statement outlives a rolled-back transaction.
///
/// It also keeps what the connection's last page look-up found (see
/// [`Prepared::new_keys_expected`]).
#[derive(Default)]
pub(crate) struct Prepared {
    statements: HashMap<&'static str, postgres::Statement>,
    /// Whether the last look-up of pages written with [`NewRows::Insert`]
    /// on this connection found none of their keys: then the next such
    /// pages are copied in without a look-up ([`put_disjoint`]), as in an
    /// ingest into an empty cache, where every look-up finds nothing.
    new_keys_expected: bool,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("statements", &self.statements.len())
            .field("new_keys_expected", &self.new_keys_expected)
            .finish()
    }
}

impl Prepared {
    /// The statement `sql`, prepared on `client`'s connection the first time.
    /// `client` must always be the same connection (or a transaction of it).
    pub(crate) fn get(
        &mut self,
        client: &mut impl GenericClient,
        sql: &'static str,
    ) -> Result<postgres::Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

// ---------------------------------------------------------------------------
// A connection on a thread of its own.

type Call = Box<dyn FnOnce(&mut Client, &mut Prepared) + Send>;

/// A connection owned by a thread of its own, so that callers on an async
/// runtime's threads may use it (the blocking `postgres` client must not
/// run there). Each call is run to its end before the next.
pub(crate) struct Actor {
    calls: mpsc::Sender<Call>,
    target: PathBuf,
    scope: String,
}

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor")
            .field("target", &self.target)
            .finish()
    }
}

impl Actor {
    /// Connects on a new thread; answers once connected (or not).
    pub(crate) fn start(target: &PgTarget, name: &str) -> Result<Actor, CacheError> {
        let (calls, queue) = mpsc::channel::<Call>();
        let (ready, connected) = mpsc::channel();
        let thread_target = target.clone();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let mut client = match thread_target.connect() {
                    Ok(c) => {
                        let _ = ready.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let mut prepared = Prepared::default();
                while let Ok(call) = queue.recv() {
                    call(&mut client, &mut prepared);
                }
            })
            .map_err(|e| CacheError::Io {
                path: target.display_path(),
                source: e,
            })?;
        connected.recv().map_err(|_| CacheError::WriterStopped {
            path: target.display_path(),
        })??;
        Ok(Actor {
            calls,
            target: target.display_path(),
            scope: target.scope.clone(),
        })
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    pub(crate) fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client, &str, &Path) -> Result<R, CacheError> + Send + 'static,
    ) -> Result<R, CacheError> {
        self.call_prepared(move |client, _, scope, at| f(client, scope, at))
    }

    /// [`Self::call`], with the statements this connection has prepared.
    pub(crate) fn call_prepared<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client, &mut Prepared, &str, &Path) -> Result<R, CacheError>
        + Send
        + 'static,
    ) -> Result<R, CacheError> {
        let (reply, answer) = mpsc::channel();
        let scope = self.scope.clone();
        let target = self.target.clone();
        let call: Call = Box::new(move |client, prepared| {
            let _ = reply.send(f(client, prepared, &scope, &target));
        });
        let stopped = || CacheError::WriterStopped {
            path: self.target.clone(),
        };
        self.calls.send(call).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

// ---------------------------------------------------------------------------
// Idle reader connections.

/// Idle reader connections kept per target, at most.
const IDLE_READERS_PER_TARGET: usize = 4;

/// The reader connections of this process that are not in use, with the
/// key of the target they are connected to. A warm opens a reader for each
/// look-up it makes (per chunk of projects, per stage); connecting anew each
/// time (a thread, a TCP connection, authentication and the session's
/// settings) made a PostgreSQL re-warm four times as slow as SQLite's.
static IDLE_READERS: std::sync::Mutex<Vec<(String, Actor)>> = std::sync::Mutex::new(Vec::new());

impl PgTarget {
    /// What identifies the connections of this target in the idle pool:
    /// where, which schema and scope, and which credentials (a connection
    /// made with one password is never handed to a caller with another).
    pub(crate) fn pool_key(&self) -> String {
        let password = self
            .config
            .get_password()
            .map_or(0, xxhash_rust::xxh3::xxh3_64);
        format!(
            "{}\n{}\n{password:x}\n{:?}",
            self.display, self.scope, self.ca_file
        )
    }
}

/// A reader connection to `target`: an idle one of this process if there
/// is one, else a new one.
pub(crate) fn take_reader(target: &PgTarget, name: &str) -> Result<(Actor, bool), CacheError> {
    let key = target.pool_key();
    let idle = {
        let mut idle = IDLE_READERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        idle.iter()
            .rposition(|(k, _)| *k == key)
            .map(|i| idle.swap_remove(i).1)
    };
    match idle {
        Some(actor) => Ok((actor, true)),
        None => Ok((Actor::start(target, name)?, false)),
    }
}

/// Keeps a reader connection for the next reader of `key`, unless the
/// connection is closed (the server restarted or ended it) or enough are
/// kept already.
pub(crate) fn park_reader(key: String, actor: Actor) {
    let open = actor
        .call(|client, _, _| Ok(!client.is_closed()))
        .unwrap_or(false);
    if !open {
        return;
    }
    let mut idle = IDLE_READERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if idle.iter().filter(|(k, _)| *k == key).count() < IDLE_READERS_PER_TARGET {
        idle.push((key, actor));
    }
}

// ---------------------------------------------------------------------------
// Schema.

/// The migrations, oldest first. Append only; each takes the schema from
/// version n - 1 to n.
const MIGRATIONS: &[&str] = &[PG_V1, PG_V2, PG_V3];

/// The schema version this binary writes and understands.
pub(crate) const PG_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Schema 1: the SQLite schema 5, with a `scope` on every row, values in the
/// entry's row (PostgreSQL keeps large values out of line and does not
/// rewrite an unchanged one), and totals counted by queries.
const PG_V1: &str = r#"
CREATE TABLE listings (
    id         bigserial PRIMARY KEY,
    scope      text   NOT NULL,
    category   text   NOT NULL CHECK (category IN ('project', 'field', 'user', 'issue')),
    name       text   NOT NULL,
    fetched_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    UNIQUE (scope, category, name)
);

CREATE TABLE entries (
    scope        text   NOT NULL,
    category     text   NOT NULL CHECK (category IN ('project', 'field', 'user', 'issue')),
    key          text   NOT NULL,
    value        text   NOT NULL,
    hash         bigint NOT NULL,
    size         bigint NOT NULL,
    fetched_at   bigint,
    expires_at   bigint,
    fetch_ms     bigint NOT NULL DEFAULT 0,
    project      text,
    updated_at   bigint,
    last_read_at bigint,
    listing      bigint REFERENCES listings (id),
    PRIMARY KEY (scope, category, key),
    CHECK ((listing IS NULL) = (fetched_at IS NOT NULL)),
    CHECK ((listing IS NULL) = (expires_at IS NOT NULL))
);
CREATE INDEX entries_by_expiry ON entries (scope, category, expires_at);
CREATE INDEX entries_by_fetch ON entries (scope, category, fetched_at);
CREATE INDEX entries_by_issue_update ON entries (scope, project, updated_at) WHERE project IS NOT NULL;
CREATE INDEX entries_by_listing ON entries (listing) WHERE listing IS NOT NULL;

CREATE TABLE read_counts (
    scope      text   NOT NULL,
    category   text   NOT NULL,
    source     text   NOT NULL,
    hits       bigint NOT NULL DEFAULT 0,
    stale_hits bigint NOT NULL DEFAULT 0,
    misses     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, category, source)
);

CREATE TABLE meta (
    scope text NOT NULL,
    key   text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE watermarks (
    scope             text   NOT NULL,
    project           text   NOT NULL,
    newest_updated_ms bigint NOT NULL,
    warmed_at         bigint NOT NULL,
    PRIMARY KEY (scope, project)
);

CREATE TABLE runs (
    id         bigserial PRIMARY KEY,
    scope      text   NOT NULL,
    started_at bigint NOT NULL,
    ended_at   bigint,
    pid        bigint NOT NULL,
    host       text   NOT NULL DEFAULT '',
    stages     text   NOT NULL,
    result     text   NOT NULL,
    requests   bigint,
    retries    bigint,
    throttled  bigint,
    written    bigint,
    unchanged  bigint,
    removed    bigint,
    errors     text,
    report     text
);
CREATE INDEX runs_by_scope ON runs (scope, id);

CREATE TABLE leases (
    scope      text   NOT NULL,
    category   text   NOT NULL,
    key        text   NOT NULL,
    holder     text   NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (scope, category, key)
);

-- Who holds the warm lock of a scope (the lock itself is an advisory lock,
-- released by the server when its connection ends).
CREATE TABLE warm_locks (
    scope      text   PRIMARY KEY,
    host       text   NOT NULL,
    pid        bigint NOT NULL,
    started_at bigint NOT NULL
);
"#;

/// How wide a bucket of expiry times is in `entry_totals`, in ms (see
/// [`PG_V2`]). Must match `expiry_bucket` there.
const EXPIRY_BUCKET_MS: i64 = 60_000;

/// Schema 2: totals kept as the entries change, so that `cache_status`
/// never scans the entries (it took 1.3 s at a million entries).
///
/// - `entry_totals` counts entries and their bytes per scope, category and
///   either the minute their own expiry falls in (`listing` 0) or the
///   listing whose times they carry (`bucket` 0). The expired figure is
///   then a sum of whole past minutes, one index range count inside the
///   current minute, and the members of expired listings: exact at any
///   `now`, without a scan.
/// - `issue_totals` counts issues per project.
/// - Statement-level triggers with transition tables keep both, in the
///   transaction of the statement that changed the entries: every path
///   (pages, reconciliation, `--clear`, `--prune`, eviction, `--reset`, a
///   copy) is counted alike, and a rolled-back write rolls its counts back.
///   A statement adds each group's change once, in key order (so that two
///   writers of one scope lock the totals' rows in the same order), and
///   skips groups that did not change (a hit-count update changes none).
/// - The entries' key columns compare bytes (`COLLATE "C"`, as SQLite
///   does): under the database's locale every comparison in an index went
///   through the locale's rules (a quarter of the server's time in an
///   ingest).
/// - The time indexes become partial (rows with a time of their own): a
///   look-up by key can then only use the primary key. On a table without
///   statistics yet (during an ingest) the planner took `entries_by_fetch`
///   for a look-up by key, filtering the scope's rows one by one.
///
/// The entries table is locked while the totals are first counted, so that
/// a writer of an older jira-cache cannot slip rows past both.
const PG_V2: &str = r#"
LOCK TABLE entries IN SHARE ROW EXCLUSIVE MODE;

DROP INDEX entries_by_expiry;
DROP INDEX entries_by_fetch;
ALTER TABLE entries
    ALTER COLUMN scope TYPE text COLLATE "C",
    ALTER COLUMN category TYPE text COLLATE "C",
    ALTER COLUMN key TYPE text COLLATE "C",
    ALTER COLUMN project TYPE text COLLATE "C";
CREATE INDEX entries_by_expiry ON entries (scope, category, expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX entries_by_fetch ON entries (scope, category, fetched_at) WHERE fetched_at IS NOT NULL;

-- The minute an expiry time falls in (floor division, also for times
-- before 1970).
CREATE FUNCTION expiry_bucket(expires_at bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $f$ SELECT (expires_at - ((expires_at % 60000) + 60000) % 60000) / 60000 $f$;

CREATE TABLE entry_totals (
    scope    text COLLATE "C" NOT NULL,
    category text COLLATE "C" NOT NULL,
    listing  bigint NOT NULL,
    bucket   bigint NOT NULL,
    entries  bigint NOT NULL,
    bytes    bigint NOT NULL,
    PRIMARY KEY (scope, category, listing, bucket)
);

CREATE TABLE issue_totals (
    scope   text COLLATE "C" NOT NULL,
    project text COLLATE "C" NOT NULL,
    issues  bigint NOT NULL,
    PRIMARY KEY (scope, project)
);

INSERT INTO entry_totals (scope, category, listing, bucket, entries, bytes)
SELECT scope, category, coalesce(listing, 0),
       CASE WHEN listing IS NULL THEN expiry_bucket(expires_at) ELSE 0 END, count(*), sum(size)
FROM entries GROUP BY 1, 2, 3, 4;

INSERT INTO issue_totals (scope, project, issues)
SELECT scope, project, count(*) FROM entries
WHERE category = 'issue' AND project IS NOT NULL GROUP BY 1, 2;

-- Adds the change of the rows in `added` minus those in `removed` (either
-- may be empty) to the totals.
CREATE FUNCTION count_entries_changes() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO entry_totals AS t (scope, category, listing, bucket, entries, bytes)
        SELECT scope, category, coalesce(listing, 0),
               CASE WHEN listing IS NULL THEN expiry_bucket(expires_at) ELSE 0 END,
               count(*), sum(size)
        FROM added GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (scope, category, listing, bucket) DO UPDATE
        SET entries = t.entries + excluded.entries, bytes = t.bytes + excluded.bytes;
        INSERT INTO issue_totals AS t (scope, project, issues)
        SELECT scope, project, count(*) FROM added
        WHERE category = 'issue' AND project IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (scope, project) DO UPDATE SET issues = t.issues + excluded.issues;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO entry_totals AS t (scope, category, listing, bucket, entries, bytes)
        SELECT scope, category, listing, bucket, sum(n), sum(b)
        FROM (SELECT scope, category, coalesce(listing, 0) AS listing,
                     CASE WHEN listing IS NULL THEN expiry_bucket(expires_at) ELSE 0 END AS bucket,
                     1 AS n, size AS b FROM added
              UNION ALL
              SELECT scope, category, coalesce(listing, 0),
                     CASE WHEN listing IS NULL THEN expiry_bucket(expires_at) ELSE 0 END,
                     -1, -size FROM removed) d
        GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0 OR sum(b) <> 0 ORDER BY 1, 2, 3, 4
        ON CONFLICT (scope, category, listing, bucket) DO UPDATE
        SET entries = t.entries + excluded.entries, bytes = t.bytes + excluded.bytes;
        INSERT INTO issue_totals AS t (scope, project, issues)
        SELECT scope, project, sum(n)
        FROM (SELECT scope, project, 1 AS n FROM added
              WHERE category = 'issue' AND project IS NOT NULL
              UNION ALL
              SELECT scope, project, -1 FROM removed
              WHERE category = 'issue' AND project IS NOT NULL) d
        GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2
        ON CONFLICT (scope, project) DO UPDATE SET issues = t.issues + excluded.issues;
    ELSE
        INSERT INTO entry_totals AS t (scope, category, listing, bucket, entries, bytes)
        SELECT scope, category, coalesce(listing, 0),
               CASE WHEN listing IS NULL THEN expiry_bucket(expires_at) ELSE 0 END,
               -count(*), -sum(size)
        FROM removed GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (scope, category, listing, bucket) DO UPDATE
        SET entries = t.entries + excluded.entries, bytes = t.bytes + excluded.bytes;
        INSERT INTO issue_totals AS t (scope, project, issues)
        SELECT scope, project, -count(*) FROM removed
        WHERE category = 'issue' AND project IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (scope, project) DO UPDATE SET issues = t.issues + excluded.issues;
    END IF;
    -- Groups left empty go, so the totals stay as small as the entries'
    -- distinct minutes and listings.
    DELETE FROM entry_totals WHERE entries = 0 AND scope IN (SELECT DISTINCT scope FROM removed);
    DELETE FROM issue_totals WHERE issues = 0 AND scope IN (SELECT DISTINCT scope FROM removed);
    RETURN NULL;
END
$f$;

CREATE TRIGGER entries_inserted AFTER INSERT ON entries
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION count_entries_changes();
CREATE TRIGGER entries_updated AFTER UPDATE ON entries
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION count_entries_changes();
CREATE TRIGGER entries_deleted AFTER DELETE ON entries
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION count_entries_changes();
"#;

/// Schema 3: the totals' trigger finds its tables in its own schema
/// whatever the session's search path (the store's sessions set it, but a
/// DBA's `DELETE FROM <schema>.entries` from psql failed with "relation
/// entry_totals does not exist"). Migrations run with the search path set
/// to the cache's schema, which `FROM CURRENT` fixes on the function.
const PG_V3: &str = "ALTER FUNCTION count_entries_changes() SET search_path FROM CURRENT;";

/// The advisory lock key that serialises migrations of one schema.
fn migration_lock_key(schema: &str) -> i64 {
    xxhash_rust::xxh3::xxh3_64(format!("jira-cache migrate {schema}").as_bytes()) as i64
}

/// The advisory lock key of a scope's warm lock.
pub(crate) fn warm_lock_key(schema: &str, scope: &str) -> i64 {
    xxhash_rust::xxh3::xxh3_64(format!("jira-cache warm {schema} {scope}").as_bytes()) as i64
}

/// Creates the schema if missing and applies the pending migrations, all in
/// one transaction; refuses a schema newer than this binary's.
pub(crate) fn migrate(client: &mut Client, target: &PgTarget) -> Result<(), CacheError> {
    let at = target.display_path();
    let mut tx = client.transaction().at_pg(&at)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&migration_lock_key(&target.schema)],
    )
    .at_pg(&at)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{0}\";
         CREATE TABLE IF NOT EXISTS \"{0}\".schema_version (
             version    bigint NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
        target.schema
    ))
    .at_pg(&at)?;
    let found: i64 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .at_pg(&at)?
        .get(0);
    if found > PG_SCHEMA_VERSION {
        return Err(CacheError::NewerSchema {
            path: at,
            found,
            supported: PG_SCHEMA_VERSION,
        });
    }
    if found == PG_SCHEMA_VERSION {
        return tx.commit().at_pg(&at);
    }
    for migration in &MIGRATIONS[usize::try_from(found).unwrap_or(0)..] {
        tx.batch_execute(migration).at_pg(&at)?;
    }
    tx.execute(
        "INSERT INTO schema_version (version) VALUES ($1)",
        &[&PG_SCHEMA_VERSION],
    )
    .at_pg(&at)?;
    tx.commit().at_pg(&at)
}

/// The schema version recorded in the database (0: none yet).
pub(crate) fn schema_version(client: &mut Client, target: &Path) -> Result<i64, CacheError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .at_pg(target)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .at_pg(target)?
        .get(0))
}

/// Deletes every row of the scope; other scopes sharing the database keep
/// theirs. Entries go before the listings they refer to.
fn delete_scope(tx: &mut impl GenericClient, scope: &str) -> Result<(), postgres::Error> {
    for table in [
        "entries",
        // Emptied by the entries' trigger already; deleted again in case a
        // count ever drifted.
        "entry_totals",
        "issue_totals",
        "listings",
        "read_counts",
        "meta",
        "watermarks",
        "runs",
        "leases",
    ] {
        tx.execute(&format!("DELETE FROM {table} WHERE scope = $1"), &[&scope])?;
    }
    Ok(())
}

/// Deletes every row of the scope (`cache_warm --reset`); other scopes
/// sharing the database keep theirs.
pub(crate) fn reset_scope(client: &mut Client, scope: &str, at: &Path) -> Result<(), CacheError> {
    let mut tx = client.transaction().at_pg(at)?;
    delete_scope(&mut tx, scope).at_pg(at)?;
    tx.commit().at_pg(at)
}

// ---------------------------------------------------------------------------
// Keys: SQLite GLOB patterns, as the contract states them, as regular
// expressions.

/// A SQLite GLOB pattern (`*`, `?`, `[...]`, `[^...]`, case-sensitive) as
/// an anchored POSIX regular expression for `~`.
pub(crate) fn glob_to_regex(glob: &str) -> String {
    let mut out = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                // A class up to its closing `]` (a `]` right after `[` or
                // `[^` is a member); an unclosed `[` is a literal.
                let rest: String = chars.clone().collect();
                let mut class = String::new();
                let mut body = rest.chars().peekable();
                let mut taken = 0;
                if body.peek() == Some(&'^') {
                    class.push('^');
                    body.next();
                    taken += 1;
                }
                if body.peek() == Some(&']') {
                    class.push_str("\\]");
                    body.next();
                    taken += 1;
                }
                let mut closed = false;
                for b in body {
                    taken += 1;
                    if b == ']' {
                        closed = true;
                        break;
                    }
                    if b == '\\' {
                        class.push_str("\\\\");
                    } else {
                        class.push(b);
                    }
                }
                if closed {
                    out.push('[');
                    out.push_str(&class);
                    out.push(']');
                    for _ in 0..taken {
                        chars.next();
                    }
                } else {
                    out.push_str("\\[");
                }
            }
            c if "\\.^$|()+{}]".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('$');
    out
}

// ---------------------------------------------------------------------------
// Writes. Each runs inside a transaction the writer opened.

fn size_of(key: &str, value: &str) -> i64 {
    i64::try_from(key.len() + value.len()).unwrap_or(i64::MAX)
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uncount(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The id of `listing`'s row, creating it with this run's times if it is
/// new, and giving it this run's times if it has no members.
fn open_listing(
    tx: &mut impl GenericClient,
    scope: &str,
    listing: &Listing,
) -> Result<i64, postgres::Error> {
    let row = tx.query_one(
        "INSERT INTO listings (scope, category, name, fetched_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (scope, category, name) DO UPDATE
         SET fetched_at = CASE WHEN EXISTS (SELECT 1 FROM entries e WHERE e.listing = listings.id)
                               THEN listings.fetched_at ELSE excluded.fetched_at END,
             expires_at = CASE WHEN EXISTS (SELECT 1 FROM entries e WHERE e.listing = listings.id)
                               THEN listings.expires_at ELSE excluded.expires_at END
         RETURNING id",
        &[
            &scope,
            &listing.category.as_str(),
            &listing.name,
            &listing.fetched_at,
            &listing.expires_at,
        ],
    )?;
    Ok(row.get(0))
}

/// The rows a page already has: for each (category, key) of the page, one
/// seek on the primary key. `LIMIT 1` keeps the sub-query from being merged
/// into a join the planner could answer with a scan: during an ingest the
/// table has no statistics yet, and both a join with `unnest` and
/// `key = ANY(...)` were planned as scans of the scope's rows, slower with
/// every page (BENCHMARKS.md).
const LOOK_UP_PAGE: &str = "SELECT k.category, k.key, e.hash, e.size, e.listing
     FROM unnest($2::text[], $3::text[]) AS k(category, key)
     CROSS JOIN LATERAL (SELECT hash, size, listing FROM entries
                         WHERE scope = $1 AND category = k.category AND key = k.key
                         LIMIT 1) e";

/// New times (and listing) for a page's rows whose value did not change.
/// Rows are found as in [`LOOK_UP_PAGE`] and updated by their row id: a
/// plain join of `entries` with `unnest` was planned, on a table without
/// statistics, as a hash join over all the scope's rows. A row another
/// writer changed in between is left as that writer made it.
const TOUCH_UNCHANGED: &str = "UPDATE entries e
     SET fetched_at = t.fetched_at, expires_at = t.expires_at, fetch_ms = t.fetch_ms,
         listing = t.listing
     FROM (SELECT x.row_id, k.*
           FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
                       $7::bigint[])
                AS k(category, key, fetched_at, expires_at, fetch_ms, listing)
           CROSS JOIN LATERAL (SELECT ctid AS row_id FROM entries
                               WHERE scope = $1 AND category = k.category AND key = k.key
                               LIMIT 1) x) t
     WHERE e.ctid = t.row_id";

/// A page's changed rows (and, when a conflict check is wanted, its new
/// ones).
const UPSERT_CHANGED: &str = "INSERT INTO entries (scope, category, key, value, hash, size,
                          fetched_at, expires_at, fetch_ms, project, updated_at, listing)
     SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[],
                              $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[],
                              $10::text[], $11::bigint[], $12::bigint[])
     ON CONFLICT (scope, category, key) DO UPDATE
     SET value = excluded.value, hash = excluded.hash, size = excluded.size,
         fetched_at = excluded.fetched_at, expires_at = excluded.expires_at,
         fetch_ms = excluded.fetch_ms, project = excluded.project,
         updated_at = excluded.updated_at, listing = excluded.listing";

/// The rows the look-up found absent, without the conflict check of
/// [`UPSERT_CHANGED`]: `ON CONFLICT` inserts each row speculatively (one
/// more probe of the primary key, one more log record and heap page change
/// per row to confirm it), and makes the statement fire the update
/// trigger too. A key another writer inserted after the look-up fails the
/// statement with a unique violation; the writer then runs the write again
/// alone, where new rows go through [`UPSERT_CHANGED`] (see
/// [`NewRows::Checked`]).
///
/// `COPY` rather than `INSERT … SELECT FROM unnest(…)`: it skips the
/// executor's per-row work (unnesting twelve arrays, projecting, the
/// insert node) and the server's parsing of the arrays, and inserts its
/// rows into each heap page in one go. It fires the same statement-level
/// triggers, with the same transition tables, so the totals count its rows
/// as an `INSERT`'s (BENCHMARKS.md, issue 18, fourth round).
const COPY_NEW: &str = "COPY entries (scope, category, key, value, hash, size,
                          fetched_at, expires_at, fetch_ms, project, updated_at, listing)
     FROM STDIN (FORMAT binary)";

/// The column types of [`COPY_NEW`], in its order.
const COPY_TYPES: [Type; 12] = [
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
];

/// How [`put_pages`] writes the rows its look-up found absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NewRows {
    /// A plain `COPY` ([`COPY_NEW`]): a key another writer inserted since
    /// the look-up fails the statement (and with it the transaction), so
    /// only for writes that are run again alone when they fail, as the
    /// writer's batches are. After a look-up that found none of its pages'
    /// keys, the connection copies the next pages in without a look-up,
    /// inside a savepoint, and looks them up only if a key was there
    /// ([`Prepared::new_keys_expected`]).
    Insert,
    /// An upsert ([`UPSERT_CHANGED`]): never fails on a key another writer
    /// inserted since the look-up.
    Checked,
}

/// The columns of the rows one statement writes.
#[derive(Default)]
struct Rows<'a> {
    category: Vec<&'a str>,
    key: Vec<&'a str>,
    value: Vec<&'a str>,
    hash: Vec<i64>,
    size: Vec<i64>,
    fetched: Vec<Option<i64>>,
    expires: Vec<Option<i64>>,
    fetch_ms: Vec<i64>,
    project: Vec<Option<&'a str>>,
    updated: Vec<Option<i64>>,
    listing: Vec<Option<i64>>,
}

impl<'a> Rows<'a> {
    fn push(
        &mut self,
        e: &'a NewEntry,
        hash: i64,
        size: i64,
        fetched_at: Option<i64>,
        expires_at: Option<i64>,
        listing: Option<i64>,
    ) {
        self.category.push(e.category.as_str());
        self.key.push(e.key.as_str());
        self.value.push(e.value.as_str());
        self.hash.push(hash);
        self.size.push(size);
        self.fetched.push(fetched_at);
        self.expires.push(expires_at);
        self.fetch_ms.push(e.fetch_ms);
        self.project.push(e.project.as_deref());
        self.updated.push(e.updated_at);
        self.listing.push(listing);
    }

    /// Copies these rows in as new ones ([`COPY_NEW`]), unless there are none.
    fn copy(
        &self,
        tx: &mut impl GenericClient,
        prepared: &mut Prepared,
        scope: &str,
    ) -> Result<(), postgres::Error> {
        if self.key.is_empty() {
            return Ok(());
        }
        let statement = prepared.get(tx, COPY_NEW)?;
        let mut rows = BinaryCopyInWriter::new(tx.copy_in(&statement)?, &COPY_TYPES);
        for i in 0..self.key.len() {
            rows.write(&[
                &scope,
                &self.category[i],
                &self.key[i],
                &self.value[i],
                &self.hash[i],
                &self.size[i],
                &self.fetched[i],
                &self.expires[i],
                &self.fetch_ms[i],
                &self.project[i],
                &self.updated[i],
                &self.listing[i],
            ])?;
        }
        rows.finish()?;
        Ok(())
    }

    /// Runs `sql` (an insert of these columns) on `tx`, unless there are no rows.
    fn write(
        &self,
        tx: &mut impl GenericClient,
        prepared: &mut Prepared,
        sql: &'static str,
        scope: &str,
    ) -> Result<(), postgres::Error> {
        if self.key.is_empty() {
            return Ok(());
        }
        let statement = prepared.get(tx, sql)?;
        tx.execute(
            &statement,
            &[
                &scope,
                &self.category,
                &self.key,
                &self.value,
                &self.hash,
                &self.size,
                &self.fetched,
                &self.expires,
                &self.fetch_ms,
                &self.project,
                &self.updated,
                &self.listing,
            ],
        )?;
        Ok(())
    }
}

/// Stores a page of entries (see `write::put_page`); see [`put_pages`].
pub(crate) fn put_page(
    tx: &mut impl GenericClient,
    prepared: &mut Prepared,
    scope: &str,
    entries: &[NewEntry],
    listing: Option<&Listing>,
    new_rows: NewRows,
) -> Result<PutOutcome, postgres::Error> {
    let outcomes = put_pages(tx, prepared, scope, &[entries], listing, new_rows)?;
    Ok(outcomes.into_iter().next().unwrap_or_default())
}

/// Stores pages of entries, each as `write::put_page` would one after the
/// other, and answers each page's outcome. Consecutive pages that share no
/// key are stored together, in multi-row statements: one look-up of their
/// existing rows, then one copy of the new ones (with [`NewRows::Checked`]
/// the upsert takes them), one upsert of the changed ones and one update of
/// the unchanged ones' times; or, when the connection expects new keys
/// ([`Prepared::new_keys_expected`]), one copy of them all, inside a
/// savepoint, and the look-up only if a key was there. Each statement has a
/// fixed cost in the server (planning, executor start, the totals'
/// triggers) that a page of 100 entries paid ten times over what 800 pay
/// (BENCHMARKS.md). A page with a key an earlier page of the run also has
/// starts a new run, so that each page's outcome is what storing the pages
/// one by one would have answered.
pub(crate) fn put_pages(
    tx: &mut impl GenericClient,
    prepared: &mut Prepared,
    scope: &str,
    pages: &[&[NewEntry]],
    listing: Option<&Listing>,
    new_rows: NewRows,
) -> Result<Vec<PutOutcome>, postgres::Error> {
    let mut outcomes = vec![PutOutcome::default(); pages.len()];
    if pages.iter().all(|p| p.is_empty()) {
        return Ok(outcomes);
    }
    let listing = match listing {
        Some(l) => Some((l.category, open_listing(tx, scope, l)?)),
        None => None,
    };
    let mut first = 0;
    while first < pages.len() {
        let mut seen: HashSet<(Category, &str)> = HashSet::new();
        let mut end = first;
        while end < pages.len() {
            let keys: HashSet<(Category, &str)> = pages[end]
                .iter()
                .map(|e| (e.category, e.key.as_str()))
                .collect();
            if end > first && !keys.is_disjoint(&seen) {
                break;
            }
            seen.extend(keys);
            end += 1;
        }
        put_disjoint(
            tx,
            prepared,
            scope,
            &pages[first..end],
            listing,
            new_rows,
            &mut outcomes[first..end],
        )?;
        first = end;
    }
    Ok(outcomes)
}

/// Counts each page's entries as SQLite's store does, entry by entry in
/// the page's order: unchanged when the key already holds the same value
/// (in `existing`, the stored rows, or from an earlier entry of the page),
/// else written. Only a page's last entry of a key is stored, but a key
/// given twice counts twice, as two statements would have it, so that
/// `written + unchanged` is the page's length on both stores.
fn count_pages(
    pages: &[&[NewEntry]],
    sums: &[Vec<(i64, i64)>],
    existing: &HashMap<(String, String), (i64, i64, Option<i64>)>,
    outcomes: &mut [PutOutcome],
) {
    let mut given: HashMap<(Category, &str), (i64, i64)> = HashMap::new();
    for ((page, sums), outcome) in pages.iter().zip(sums).zip(outcomes.iter_mut()) {
        for (e, &now) in page.iter().zip(sums) {
            let before = given
                .get(&(e.category, e.key.as_str()))
                .copied()
                .or_else(|| {
                    existing
                        .get(&(e.category.as_str().to_string(), e.key.clone()))
                        .map(|&(hash, size, _)| (hash, size))
                });
            match before == Some(now) {
                true => outcome.unchanged += 1,
                false => outcome.written += 1,
            }
            given.insert((e.category, e.key.as_str()), now);
        }
    }
}

/// [`put_pages`] for pages that share no key.
fn put_disjoint(
    tx: &mut impl GenericClient,
    prepared: &mut Prepared,
    scope: &str,
    pages: &[&[NewEntry]],
    listing: Option<(Category, i64)>,
    new_rows: NewRows,
    outcomes: &mut [PutOutcome],
) -> Result<(), postgres::Error> {
    // A page may hold the same key twice; the last one wins, as one
    // statement per entry would have it. (Pages here share no key.)
    let mut last: HashMap<(Category, &str), (usize, usize)> = HashMap::new();
    for (p, page) in pages.iter().enumerate() {
        for (i, e) in page.iter().enumerate() {
            last.insert((e.category, e.key.as_str()), (p, i));
        }
    }
    if last.is_empty() {
        return Ok(());
    }
    // Each value's hash and size, computed once.
    let sums: Vec<Vec<(i64, i64)>> = pages
        .iter()
        .map(|page| {
            page.iter()
                .map(|e| (value_hash(&e.value), size_of(&e.key, &e.value)))
                .collect()
        })
        .collect();
    // Where each entry goes: into the listing's rows (without times of its
    // own) or with its own times.
    let placed = |e: &NewEntry| {
        let member = listing.and_then(|(category, id)| (category == e.category).then_some(id));
        match member {
            Some(_) => (member, None, None),
            None => (None, Some(e.fetched_at), Some(e.expires_at)),
        }
    };
    if new_rows == NewRows::Insert && prepared.new_keys_expected {
        let mut rows = Rows::default();
        for (p, page) in pages.iter().enumerate() {
            for (i, e) in page.iter().enumerate() {
                if last.get(&(e.category, e.key.as_str())) == Some(&(p, i)) {
                    let (member, fetched_at, expires_at) = placed(e);
                    let (hash, size) = sums[p][i];
                    rows.push(e, hash, size, fetched_at, expires_at, member);
                }
            }
        }
        if copy_all_new(tx, prepared, scope, &rows)? {
            count_pages(pages, &sums, &HashMap::new(), outcomes);
            return Ok(());
        }
        prepared.new_keys_expected = false;
    }
    let categories: Vec<&str> = last.keys().map(|(c, _)| c.as_str()).collect();
    let keys: Vec<&str> = last.keys().map(|(_, k)| *k).collect();
    let mut existing: HashMap<(String, String), (i64, i64, Option<i64>)> = HashMap::new();
    let lookup = prepared.get(tx, LOOK_UP_PAGE)?;
    for row in tx.query(&lookup, &[&scope, &categories, &keys])? {
        existing.insert(
            (row.get(0), row.get(1)),
            (row.get(2), row.get(3), row.get(4)),
        );
    }
    let mut inserted = Rows::default();
    let mut upserted = Rows::default();
    let mut t_cat = Vec::new();
    let mut t_key = Vec::new();
    let mut t_fetched = Vec::new();
    let mut t_expires = Vec::new();
    let mut t_fetch_ms = Vec::new();
    let mut t_listing = Vec::new();
    count_pages(pages, &sums, &existing, outcomes);
    for (p, page) in pages.iter().enumerate() {
        for (i, e) in page.iter().enumerate() {
            if last.get(&(e.category, e.key.as_str())) != Some(&(p, i)) {
                continue;
            }
            let (hash, size) = sums[p][i];
            let (member, fetched_at, expires_at) = placed(e);
            match existing.get(&(e.category.as_str().to_string(), e.key.clone())) {
                Some(&(old_hash, old_size, old_listing))
                    if old_hash == hash
                        && old_size == size
                        && member.is_some()
                        && old_listing == member => {}
                Some(&(old_hash, old_size, _)) if old_hash == hash && old_size == size => {
                    t_cat.push(e.category.as_str());
                    t_key.push(e.key.as_str());
                    t_fetched.push(fetched_at);
                    t_expires.push(expires_at);
                    t_fetch_ms.push(e.fetch_ms);
                    t_listing.push(member);
                }
                None if new_rows == NewRows::Insert => {
                    inserted.push(e, hash, size, fetched_at, expires_at, member);
                }
                _ => {
                    upserted.push(e, hash, size, fetched_at, expires_at, member);
                }
            }
        }
    }
    if !t_key.is_empty() {
        let update = prepared.get(tx, TOUCH_UNCHANGED)?;
        tx.execute(
            &update,
            &[
                &scope,
                &t_cat,
                &t_key,
                &t_fetched,
                &t_expires,
                &t_fetch_ms,
                &t_listing,
            ],
        )?;
    }
    upserted.write(tx, prepared, UPSERT_CHANGED, scope)?;
    inserted.copy(tx, prepared, scope)?;
    if new_rows == NewRows::Insert {
        prepared.new_keys_expected = existing.is_empty();
    }
    Ok(())
}

/// Copies `rows` in as new rows, inside a savepoint: `false`, with nothing
/// written, if one of their keys was already there (or another writer's
/// transaction inserted it meanwhile and committed), so that the caller
/// looks the keys up. Sound without a look-up, as the unique index checks
/// every row against all rows committed or being written.
///
/// A transaction of the writer holds at most 64 pages (`BATCH_WRITES` in
/// `writer.rs`), so at most 64 such savepoints: the server keeps up to 64
/// subtransactions of a backend in shared memory, and other sessions'
/// snapshots need not look further.
fn copy_all_new(
    tx: &mut impl GenericClient,
    prepared: &mut Prepared,
    scope: &str,
    rows: &Rows<'_>,
) -> Result<bool, postgres::Error> {
    let mut savepoint = tx.transaction()?;
    match rows.copy(&mut savepoint, prepared, scope) {
        Ok(()) => {
            savepoint.commit()?;
            Ok(true)
        }
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            savepoint.rollback()?;
            Ok(false)
        }
        // Dropping the savepoint rolls it back; the error fails the write.
        Err(e) => Err(e),
    }
}

/// Waits until every commit of this connection is on the server's disk,
/// relaxed ones included: a transaction with an id of its own commits
/// synchronously, which flushes the server's log up to its commit.
pub(crate) fn sync_commits(client: &mut Client) -> Result<(), postgres::Error> {
    client.batch_execute("BEGIN; SET LOCAL synchronous_commit = on; SELECT txid_current(); COMMIT")
}

/// Ends a complete run of `listing` (see `write::finish_listing`).
pub(crate) fn finish_listing(
    tx: &mut impl GenericClient,
    scope: &str,
    listing: &Listing,
    listed: &HashSet<String>,
    removal: Option<(&KeyScope, &HashSet<String>)>,
) -> Result<u64, postgres::Error> {
    let id = open_listing(tx, scope, listing)?;
    let removed = match removal {
        Some((key_scope, also_keep)) => {
            let keep: HashSet<&str> = listed
                .iter()
                .chain(also_keep.iter())
                .map(String::as_str)
                .collect();
            remove_unless(tx, scope, listing.category, key_scope, &keep)?
        }
        None => 0,
    };
    let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
    // Members the run did not return leave with the listing's times.
    tx.execute(
        "UPDATE entries e SET fetched_at = l.fetched_at, expires_at = l.expires_at, listing = NULL
         FROM listings l
         WHERE l.id = $1 AND e.listing = l.id AND NOT (e.key = ANY($2::text[]))",
        &[&id, &listed],
    )?;
    tx.execute(
        "UPDATE listings SET fetched_at = $2, expires_at = $3 WHERE id = $1",
        &[&id, &listing.fetched_at, &listing.expires_at],
    )?;
    Ok(removed)
}

/// Ends a run of `listing` that did not list everything it covers (see
/// `write::leave_listing`).
pub(crate) fn leave_listing(
    tx: &mut impl GenericClient,
    scope: &str,
    listing: &Listing,
    keys: &HashSet<String>,
) -> Result<u64, postgres::Error> {
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    tx.execute(
        "UPDATE entries e SET fetched_at = $4, expires_at = $5, listing = NULL
         FROM listings l
         WHERE l.scope = $1 AND l.category = $2 AND l.name = $3 AND e.listing = l.id
           AND e.key = ANY($6::text[])",
        &[
            &scope,
            &listing.category.as_str(),
            &listing.name,
            &listing.fetched_at,
            &listing.expires_at,
            &keys,
        ],
    )
}

/// Deletes the entries of `category` inside `key_scope` whose key is not in
/// `keep`.
pub(crate) fn remove_missing(
    tx: &mut impl GenericClient,
    scope: &str,
    category: Category,
    key_scope: &KeyScope,
    keep: &HashSet<String>,
) -> Result<u64, postgres::Error> {
    let keep: HashSet<&str> = keep.iter().map(String::as_str).collect();
    remove_unless(tx, scope, category, key_scope, &keep)
}

fn remove_unless(
    tx: &mut impl GenericClient,
    scope: &str,
    category: Category,
    key_scope: &KeyScope,
    keep: &HashSet<&str>,
) -> Result<u64, postgres::Error> {
    let keep: Vec<&str> = keep.iter().copied().collect();
    let category = category.as_str();
    // `cache_serve`'s kept answers are in no listing: never proved gone.
    match key_scope {
        KeyScope::All => tx.execute(
            "DELETE FROM entries WHERE scope = $1 AND category = $2 AND NOT (key = ANY($3::text[])) AND NOT starts_with(key, $4)",
            &[&scope, &category, &keep, &SERVE_PREFIX],
        ),
        KeyScope::Glob(g) => tx.execute(
            "DELETE FROM entries WHERE scope = $1 AND category = $2 AND key ~ $4
               AND NOT (key = ANY($3::text[])) AND NOT starts_with(key, $5)",
            &[&scope, &category, &keep, &glob_to_regex(g), &SERVE_PREFIX],
        ),
        KeyScope::NotGlob(g) => tx.execute(
            "DELETE FROM entries WHERE scope = $1 AND category = $2 AND key !~ $4
               AND NOT (key = ANY($3::text[])) AND NOT starts_with(key, $5)",
            &[&scope, &category, &keep, &glob_to_regex(g), &SERVE_PREFIX],
        ),
        KeyScope::IssueWindow {
            project,
            updated_since_ms,
        } => tx.execute(
            "DELETE FROM entries WHERE scope = $1 AND category = $2 AND project = $4
               AND updated_at >= $5 AND NOT (key = ANY($3::text[])) AND NOT starts_with(key, $6)",
            &[&scope, &category, &keep, project, updated_since_ms, &SERVE_PREFIX],
        ),
    }
}

/// Deletes (or with `dry_run` counts) entries by category and GLOB pattern;
/// clearing issues clears the watermarks of their projects.
pub(crate) fn remove(
    client: &mut Client,
    scope: &str,
    category: Option<Category>,
    pattern: Option<&str>,
    dry_run: bool,
) -> Result<u64, postgres::Error> {
    let category = category.map(Category::as_str);
    let regex = pattern.map(glob_to_regex);
    const WHERE: &str = "WHERE scope = $1 AND ($2::text IS NULL OR category = $2)
                         AND ($3::text IS NULL OR key ~ $3)";
    if dry_run {
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM entries {WHERE}"),
                &[&scope, &category, &regex],
            )?
            .get(0);
        return Ok(uncount(n));
    }
    let mut tx = client.transaction()?;
    if category.is_none_or(|c| c == "issue") {
        tx.execute(
            "DELETE FROM watermarks WHERE scope = $1 AND ($2::text IS NULL OR project IN (
                 SELECT DISTINCT coalesce(project, split_part(key, '-', 1))
                 FROM entries WHERE scope = $1 AND category = 'issue' AND key ~ $2))",
            &[&scope, &regex],
        )?;
    }
    let n = tx.execute(
        &format!("DELETE FROM entries {WHERE}"),
        &[&scope, &category, &regex],
    )?;
    tx.commit()?;
    Ok(n)
}

pub(crate) fn set_meta(
    tx: &mut impl GenericClient,
    scope: &str,
    key: &str,
    value: &str,
) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO meta (scope, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value",
        &[&scope, &key, &value],
    )?;
    Ok(())
}

pub(crate) fn set_watermark(
    tx: &mut impl GenericClient,
    scope: &str,
    project: &str,
    newest_updated_ms: i64,
    warmed_at: i64,
) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO watermarks (scope, project, newest_updated_ms, warmed_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (scope, project) DO UPDATE
         SET newest_updated_ms = excluded.newest_updated_ms, warmed_at = excluded.warmed_at",
        &[&scope, &project, &newest_updated_ms, &warmed_at],
    )?;
    Ok(())
}

pub(crate) fn total_bytes(
    client: &mut impl GenericClient,
    scope: &str,
) -> Result<u64, postgres::Error> {
    let n: i64 = client
        .query_one(
            "SELECT coalesce(sum(bytes), 0)::bigint FROM entry_totals WHERE scope = $1",
            &[&scope],
        )?
        .get(0);
    Ok(uncount(n))
}

/// Brings the scope's entry bytes under `max_bytes` (see
/// `write::enforce_max_size`).
pub(crate) fn enforce_max_size(
    client: &mut Client,
    scope: &str,
    max_bytes: u64,
    now_ms: i64,
) -> Result<EvictionOutcome, postgres::Error> {
    let mut tx = client.transaction()?;
    let bytes_before = total_bytes(&mut tx, scope)?;
    let mut outcome = EvictionOutcome {
        bytes_before,
        bytes_after: bytes_before,
        ..EvictionOutcome::default()
    };
    if bytes_before <= max_bytes {
        return Ok(outcome);
    }
    let mut excess = count(bytes_before - max_bytes);
    let expired = victims(
        &mut tx,
        "SELECT e.category, e.key, e.size FROM entries e LEFT JOIN listings l ON l.id = e.listing
         WHERE e.scope = $1 AND coalesce(e.expires_at, l.expires_at) <= $2
         ORDER BY coalesce(e.expires_at, l.expires_at), e.key",
        &[&scope, &now_ms],
        &mut excess,
    )?;
    delete_keys(&mut tx, scope, &expired)?;
    outcome.removed_expired = expired.len() as u64;
    if excess > 0 {
        let lru = victims(
            &mut tx,
            "SELECT e.category, e.key, e.size FROM entries e LEFT JOIN listings l ON l.id = e.listing
             WHERE e.scope = $1 AND $2::bigint IS NOT NULL
             ORDER BY e.last_read_at NULLS FIRST, coalesce(e.fetched_at, l.fetched_at), e.key",
            &[&scope, &now_ms],
            &mut excess,
        )?;
        delete_keys(&mut tx, scope, &lru)?;
        outcome.removed_lru = lru.len() as u64;
    }
    outcome.bytes_after = total_bytes(&mut tx, scope)?;
    tx.commit()?;
    Ok(outcome)
}

fn victims(
    tx: &mut impl GenericClient,
    sql: &str,
    args: &[&(dyn postgres::types::ToSql + Sync)],
    excess: &mut i64,
) -> Result<Vec<(String, String)>, postgres::Error> {
    let mut out = Vec::new();
    for row in tx.query(sql, args)? {
        if *excess <= 0 {
            break;
        }
        out.push((row.get(0), row.get(1)));
        *excess -= row.get::<_, i64>(2);
    }
    Ok(out)
}

fn delete_keys(
    tx: &mut impl GenericClient,
    scope: &str,
    keys: &[(String, String)],
) -> Result<(), postgres::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    let categories: Vec<&str> = keys.iter().map(|(c, _)| c.as_str()).collect();
    let names: Vec<&str> = keys.iter().map(|(_, k)| k.as_str()).collect();
    tx.execute(
        // By row id, as in `TOUCH_UNCHANGED`.
        "DELETE FROM entries e
         USING (SELECT x.row_id FROM unnest($2::text[], $3::text[]) AS k(category, key)
                CROSS JOIN LATERAL (SELECT ctid AS row_id FROM entries
                                    WHERE scope = $1 AND category = k.category AND key = k.key
                                    LIMIT 1) x) d
         WHERE e.ctid = d.row_id",
        &[&scope, &categories, &names],
    )?;
    Ok(())
}

/// Deletes the entries that expired at or before `expired_before_ms`.
pub(crate) fn prune(
    client: &mut Client,
    scope: &str,
    expired_before_ms: i64,
) -> Result<PruneOutcome, postgres::Error> {
    let mut tx = client.transaction()?;
    let removed = tx.execute(
        "DELETE FROM entries e WHERE e.scope = $1 AND (e.expires_at <= $2
            OR e.listing IN (SELECT id FROM listings WHERE scope = $1 AND expires_at <= $2))",
        &[&scope, &expired_before_ms],
    )?;
    tx.commit()?;
    // The server gives space back to the file system by its own vacuum.
    Ok(PruneOutcome {
        removed,
        bytes_freed_from_file: 0,
    })
}

// ---------------------------------------------------------------------------
// Runs.

pub(crate) fn run_start(
    client: &mut impl GenericClient,
    scope: &str,
    start: &RunStart,
) -> Result<RunId, postgres::Error> {
    let host = crate::lock::host_name();
    let row = client.query_one(
        "INSERT INTO runs (scope, started_at, pid, host, stages, result)
         VALUES ($1, $2, $3, $4, $5, 'running') RETURNING id",
        &[
            &scope,
            &start.started_at,
            &i64::from(start.pid),
            &host,
            &start.stages.join(","),
        ],
    )?;
    Ok(RunId(row.get(0)))
}

pub(crate) fn run_finish(
    client: &mut impl GenericClient,
    scope: &str,
    id: RunId,
    end: &RunEnd,
) -> Result<(), postgres::Error> {
    let scrubbed: Vec<String> = end
        .errors
        .iter()
        .map(|e| crate::scrub::scrub(e).into_owned())
        .collect();
    let errors = serde_json::to_string(&scrubbed).unwrap_or_else(|_| "[]".to_string());
    let report = crate::scrub::scrub(&end.report_json).into_owned();
    client.execute(
        "UPDATE runs SET ended_at = $3, result = $4, requests = $5, retries = $6, throttled = $7,
                         written = $8, unchanged = $9, removed = $10, errors = $11, report = $12
         WHERE scope = $1 AND id = $2",
        &[
            &scope,
            &id.0,
            &end.ended_at,
            &end.result.as_str(),
            &count(end.requests),
            &count(end.retries),
            &count(end.throttled),
            &count(end.written),
            &count(end.unchanged),
            &count(end.removed),
            &errors,
            &report,
        ],
    )?;
    Ok(())
}

pub(crate) fn runs(
    client: &mut impl GenericClient,
    scope: &str,
    limit: usize,
) -> Result<Vec<RunRecord>, postgres::Error> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client.query(
        "SELECT id, started_at, ended_at, pid, stages, result, requests, retries, throttled,
                written, unchanged, removed, errors, report
         FROM runs WHERE scope = $1 ORDER BY id DESC LIMIT $2",
        &[&scope, &limit],
    )?;
    let counted = |v: Option<i64>| v.map(uncount);
    Ok(rows
        .iter()
        .map(|row| {
            let stages: String = row.get(4);
            let result: String = row.get(5);
            let errors: Option<String> = row.get(12);
            RunRecord {
                id: RunId(row.get(0)),
                started_at: row.get(1),
                ended_at: row.get(2),
                pid: u32::try_from(row.get::<_, i64>(3)).unwrap_or(0),
                stages: stages
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                // Only this module writes `result`; an unknown one (a newer
                // jira-cache's) reads as failed rather than failing the read.
                result: result.parse().unwrap_or(RunResult::Failed),
                requests: counted(row.get(6)),
                retries: counted(row.get(7)),
                throttled: counted(row.get(8)),
                written: counted(row.get(9)),
                unchanged: counted(row.get(10)),
                removed: counted(row.get(11)),
                errors: errors
                    .and_then(|json| serde_json::from_str(&json).ok())
                    .unwrap_or_default(),
                report_json: row.get(13),
            }
        })
        .collect())
}

pub(crate) fn last_ended_at(
    client: &mut impl GenericClient,
    scope: &str,
    result: RunResult,
) -> Result<Option<i64>, postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT ended_at FROM runs WHERE scope = $1 AND result = $2 AND ended_at IS NOT NULL
             ORDER BY id DESC LIMIT 1",
            &[&scope, &result.as_str()],
        )?
        .map(|r| r.get(0)))
}

// ---------------------------------------------------------------------------
// Reads.

/// A cached read: one seek on the primary key (the time indexes are
/// partial, so the planner has no other index to choose), prepared once per
/// connection.
const PEEK: &str = "SELECT e.value, coalesce(e.fetched_at, l.fetched_at, 0),
            coalesce(e.expires_at, l.expires_at, 0), e.fetch_ms, e.size, e.updated_at
     FROM entries e LEFT JOIN listings l ON l.id = e.listing
     WHERE e.scope = $1 AND e.category = $2 AND e.key = $3";

pub(crate) fn peek(
    client: &mut impl GenericClient,
    prepared: &mut Prepared,
    scope: &str,
    category: Category,
    key: &str,
) -> Result<Option<CachedEntry>, postgres::Error> {
    let statement = prepared.get(client, PEEK)?;
    Ok(client
        .query_opt(&statement, &[&scope, &category.as_str(), &key])?
        .map(|row| CachedEntry {
            value: row.get(0),
            fetched_at: row.get(1),
            expires_at: row.get(2),
            fetch_ms: row.get(3),
            size: uncount(row.get(4)),
            updated_at: row.get(5),
        }))
}

/// The reads one reader counted, per source and category.
pub(crate) type PendingCounts =
    BTreeMap<(ReadSource, Category), (u64, u64, u64, HashMap<String, i64>)>;

pub(crate) fn write_reads(
    client: &mut Client,
    scope: &str,
    pending: &PendingCounts,
) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    // Hit counts are statistics: the reader that flushes them must not wait
    // for the server's disk (a crash of the server may lose the last
    // flushes; nothing is cached or removed because of them).
    tx.batch_execute("SET LOCAL synchronous_commit = off")?;
    for ((source, category), (hits, stale_hits, misses, keys)) in pending {
        tx.execute(
            "INSERT INTO read_counts (scope, category, source, hits, stale_hits, misses)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (scope, category, source) DO UPDATE
             SET hits = read_counts.hits + excluded.hits,
                 stale_hits = read_counts.stale_hits + excluded.stale_hits,
                 misses = read_counts.misses + excluded.misses",
            &[
                &scope,
                &category.as_str(),
                &source.as_str(),
                &count(*hits),
                &count(*stale_hits),
                &count(*misses),
            ],
        )?;
        if !keys.is_empty() {
            let names: Vec<&str> = keys.keys().map(String::as_str).collect();
            let at: Vec<i64> = keys.values().copied().collect();
            // By row id, as in `TOUCH_UNCHANGED`: a join was planned as a
            // scan of the category's rows (651 ms at 200,000 entries).
            tx.execute(
                "UPDATE entries e SET last_read_at = greatest(coalesce(e.last_read_at, 0), r.at)
                 FROM (SELECT x.row_id, k.at FROM unnest($3::text[], $4::bigint[]) AS k(key, at)
                       CROSS JOIN LATERAL (SELECT ctid AS row_id FROM entries
                                           WHERE scope = $1 AND category = $2 AND key = k.key
                                           LIMIT 1) x) r
                 WHERE e.ctid = r.row_id",
                &[&scope, &category.as_str(), &names, &at],
            )?;
        }
    }
    tx.commit()
}

pub(crate) fn count_keys(
    client: &mut impl GenericClient,
    scope: &str,
    category: Category,
    pattern: Option<&str>,
) -> Result<u64, postgres::Error> {
    let regex = pattern.map(glob_to_regex);
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM entries WHERE scope = $1 AND category = $2
               AND ($3::text IS NULL OR key ~ $3)",
            &[&scope, &category.as_str(), &regex],
        )?
        .get(0);
    Ok(uncount(n))
}

pub(crate) fn keys(
    client: &mut impl GenericClient,
    scope: &str,
    category: Category,
    pattern: Option<&str>,
) -> Result<Vec<String>, postgres::Error> {
    let regex = pattern.map(glob_to_regex);
    Ok(client
        .query(
            "SELECT key FROM entries WHERE scope = $1 AND category = $2
               AND ($3::text IS NULL OR key ~ $3) ORDER BY key COLLATE \"C\"",
            &[&scope, &category.as_str(), &regex],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The warmed issues (key, value) whose value holds `needle`.
pub(crate) fn issues_holding(
    client: &mut impl GenericClient,
    scope: &str,
    needle: &str,
) -> Result<Vec<(String, Vec<u8>)>, postgres::Error> {
    Ok(client
        .query(
            "SELECT key, value FROM entries WHERE scope = $1 AND category = 'issue'
               AND project IS NOT NULL AND strpos(value, $2) > 0",
            &[&scope, &needle],
        )?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1).into_bytes()))
        .collect())
}

pub(crate) fn scope_expiry(
    client: &mut impl GenericClient,
    scope: &str,
    category: Category,
    key_scope: &KeyScope,
) -> Result<Option<(u64, Option<i64>)>, postgres::Error> {
    let (negate, regex) = match key_scope {
        KeyScope::All => (false, None),
        KeyScope::Glob(g) => (false, Some(glob_to_regex(g))),
        KeyScope::NotGlob(g) => (true, Some(glob_to_regex(g))),
        KeyScope::IssueWindow { .. } => return Ok(None),
    };
    let row = client.query_one(
        "SELECT count(*), min(coalesce(e.expires_at, l.expires_at, 0))
         FROM entries e LEFT JOIN listings l ON l.id = e.listing
         WHERE e.scope = $1 AND e.category = $2
           AND ($3::text IS NULL OR ((e.key ~ $3) <> $4))",
        &[&scope, &category.as_str(), &regex, &negate],
    )?;
    Ok(Some((uncount(row.get(0)), row.get(1))))
}

pub(crate) fn meta(
    client: &mut impl GenericClient,
    scope: &str,
    key: &str,
) -> Result<Option<String>, postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT value FROM meta WHERE scope = $1 AND key = $2",
            &[&scope, &key],
        )?
        .map(|r| r.get(0)))
}

pub(crate) fn watermarks(
    client: &mut impl GenericClient,
    scope: &str,
    project: Option<&str>,
) -> Result<Vec<Watermark>, postgres::Error> {
    Ok(client
        .query(
            "SELECT project, newest_updated_ms, warmed_at FROM watermarks
             WHERE scope = $1 AND ($2::text IS NULL OR project = $2) ORDER BY project",
            &[&scope, &project],
        )?
        .iter()
        .map(|r| Watermark {
            project: r.get(0),
            newest_updated_ms: r.get(1),
            warmed_at: r.get(2),
        })
        .collect())
}

pub(crate) fn issue_versions(
    client: &mut impl GenericClient,
    scope: &str,
    keys: &[String],
) -> Result<HashMap<String, Option<i64>>, postgres::Error> {
    Ok(client
        .query(
            // One seek per key (see `LOOK_UP_PAGE`).
            "SELECT k.key, e.updated_at FROM unnest($2::text[]) AS k(key)
             CROSS JOIN LATERAL (SELECT updated_at FROM entries
                                 WHERE scope = $1 AND category = 'issue' AND key = k.key
                                 LIMIT 1) e",
            &[&scope, &keys],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

pub(crate) fn issue_keys_in_window(
    client: &mut impl GenericClient,
    scope: &str,
    project: &str,
    updated_since_ms: i64,
) -> Result<Vec<String>, postgres::Error> {
    Ok(client
        .query(
            "SELECT key FROM entries
             WHERE scope = $1 AND category = 'issue' AND project = $2 AND updated_at >= $3",
            &[&scope, &project, &updated_since_ms],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

pub(crate) fn issue_counts_by_project(
    client: &mut impl GenericClient,
    scope: &str,
) -> Result<Vec<(String, u64)>, postgres::Error> {
    Ok(client
        .query(
            "SELECT project, issues FROM issue_totals
             WHERE scope = $1 AND issues > 0 ORDER BY project COLLATE \"C\"",
            &[&scope],
        )?
        .iter()
        .map(|r| (r.get(0), uncount(r.get(1))))
        .collect())
}

/// The figures of every category (see `CacheReader::category_stats`), in
/// one snapshot (a repeatable-read transaction), without a scan of the
/// entries: totals from `entry_totals` (schema 2), the expired entries of
/// the current minute and the fetch and expiry extremes from index seeks,
/// and the listings' times for their members.
pub(crate) fn category_stats(
    client: &mut Client,
    scope: &str,
    now_ms: i64,
    pending: &PendingCounts,
) -> Result<Vec<CategoryStats>, postgres::Error> {
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let mut stats = Vec::with_capacity(Category::ALL.len());
    let now_bucket = now_ms.div_euclid(EXPIRY_BUCKET_MS);
    let names: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
    let totals = tx.query(
        "SELECT t.category, t.listing, t.bucket, t.entries, t.bytes, l.fetched_at, l.expires_at
         FROM entry_totals t LEFT JOIN listings l ON l.id = t.listing AND t.listing <> 0
         WHERE t.scope = $1",
        &[&scope],
    )?;
    // Each a seek or a range of one minute on a partial time index.
    let seeks = tx.query(
        "SELECT c.category,
                (SELECT count(*) FROM entries WHERE scope = $1 AND category = c.category
                   AND expires_at >= $3 AND expires_at <= $2),
                (SELECT min(fetched_at) FROM entries WHERE scope = $1 AND category = c.category
                   AND fetched_at IS NOT NULL),
                (SELECT max(fetched_at) FROM entries WHERE scope = $1 AND category = c.category
                   AND fetched_at IS NOT NULL),
                (SELECT min(expires_at) FROM entries WHERE scope = $1 AND category = c.category
                   AND expires_at > $2)
         FROM unnest($4::text[]) AS c(category)",
        &[&scope, &now_ms, &(now_bucket * EXPIRY_BUCKET_MS), &names],
    )?;
    let reads = tx.query(
        "SELECT category, source, hits, stale_hits, misses FROM read_counts WHERE scope = $1",
        &[&scope],
    )?;
    tx.commit()?;
    for category in Category::ALL {
        let name = category.as_str();
        let (mut entries, mut bytes, mut expired) = (0u64, 0u64, 0u64);
        let (mut oldest_fetch, mut newest_fetch, mut next_expiry) =
            (None::<i64>, None::<i64>, None::<i64>);
        if let Some(r) = seeks.iter().find(|r| r.get::<_, &str>(0) == name) {
            expired += uncount(r.get(1));
            oldest_fetch = r.get(2);
            newest_fetch = r.get(3);
            next_expiry = r.get(4);
        }
        for r in totals.iter().filter(|r| r.get::<_, &str>(0) == name) {
            let (listing, bucket): (i64, i64) = (r.get(1), r.get(2));
            let n = uncount(r.get(3));
            if n == 0 {
                continue;
            }
            entries += n;
            bytes += uncount(r.get(4));
            if listing == 0 {
                // Minutes wholly past; the current one was counted above.
                if bucket < now_bucket {
                    expired += n;
                }
                continue;
            }
            // Members carry their listing's times.
            let (Some(fetched_at), Some(expires_at)) =
                (r.get::<_, Option<i64>>(5), r.get::<_, Option<i64>>(6))
            else {
                continue;
            };
            if expires_at <= now_ms {
                expired += n;
            } else {
                next_expiry = Some(next_expiry.map_or(expires_at, |e| e.min(expires_at)));
            }
            oldest_fetch = Some(oldest_fetch.map_or(fetched_at, |f| f.min(fetched_at)));
            newest_fetch = Some(newest_fetch.map_or(fetched_at, |f| f.max(fetched_at)));
        }
        let mut by_source: BTreeMap<ReadSource, ReadCounts> = ReadSource::ALL
            .iter()
            .map(|&s| (s, ReadCounts::default()))
            .collect();
        for r in reads.iter().filter(|r| r.get::<_, &str>(0) == name) {
            let source: &str = r.get(1);
            let Some(source) = ReadSource::ALL.into_iter().find(|s| s.as_str() == source) else {
                continue;
            };
            let c = by_source.entry(source).or_default();
            c.hits += uncount(r.get(2));
            c.stale_hits += uncount(r.get(3));
            c.misses += uncount(r.get(4));
        }
        for ((source, c), (hits, stale_hits, misses, _)) in pending {
            if *c != category {
                continue;
            }
            let counts = by_source.entry(*source).or_default();
            counts.hits += hits;
            counts.stale_hits += stale_hits;
            counts.misses += misses;
        }
        let counted = ReadCounts::in_hit_rate(&by_source);
        stats.push(CategoryStats {
            category,
            entries,
            fresh: entries.saturating_sub(expired),
            expired,
            bytes,
            oldest_fetch,
            newest_fetch,
            next_expiry,
            hits: counted.hits,
            stale_hits: counted.stale_hits,
            misses: counted.misses,
            by_source,
        });
    }
    Ok(stats)
}

/// The bytes the entries table takes in the database, with its indexes and
/// out-of-line values (every profile sharing the schema: PostgreSQL keeps no
/// per-scope figure, and a scan would make `cache_status` slow).
pub(crate) fn stored_bytes(
    client: &mut impl GenericClient,
    _scope: &str,
) -> Result<u64, postgres::Error> {
    let n: i64 = client
        .query_one("SELECT pg_total_relation_size('entries')", &[])?
        .get(0);
    Ok(uncount(n))
}

// ---------------------------------------------------------------------------
// Leases.

pub(crate) fn lease_try_acquire(
    client: &mut impl GenericClient,
    scope: &str,
    category: Category,
    key: &str,
    holder: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<bool, postgres::Error> {
    let n = client.execute(
        "INSERT INTO leases (scope, category, key, holder, expires_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (scope, category, key) DO UPDATE
         SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE leases.expires_at <= $6 OR leases.holder = excluded.holder",
        &[
            &scope,
            &category.as_str(),
            &key,
            &holder,
            &now_ms.saturating_add(ttl_ms),
            &now_ms,
        ],
    )?;
    Ok(n == 1)
}

pub(crate) fn lease_release(
    client: &mut impl GenericClient,
    scope: &str,
    category: Category,
    key: &str,
    holder: &str,
) -> Result<(), postgres::Error> {
    client.execute(
        "DELETE FROM leases WHERE scope = $1 AND category = $2 AND key = $3 AND holder = $4",
        &[&scope, &category.as_str(), &key, &holder],
    )?;
    Ok(())
}

pub(crate) fn lease_holder(
    client: &mut impl GenericClient,
    scope: &str,
    category: Category,
    key: &str,
    now_ms: i64,
) -> Result<Option<String>, postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT holder FROM leases
             WHERE scope = $1 AND category = $2 AND key = $3 AND expires_at > $4",
            &[&scope, &category.as_str(), &key, &now_ms],
        )?
        .map(|r| r.get(0)))
}

// ---------------------------------------------------------------------------
// Moving over: a SQLite cache copied into PostgreSQL.

/// What [`copy_into`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyOutcome {
    /// Entries copied.
    pub entries: u64,
    /// Runs of the history copied.
    pub runs: u64,
}

/// One entry as [`copy_into`] reads it: category, key, value; hash, size,
/// fetched_at, expires_at, fetch_ms; project; updated_at, last_read_at.
type CopiedEntry = (
    String,
    String,
    String,
    [i64; 5],
    Option<String>,
    [Option<i64>; 2],
);

/// Replaces what the database holds for the target's scope with the
/// contents of the SQLite cache `source`, times intact, in ONE transaction:
/// a copy that fails half-way leaves the database as it was. Entries are
/// read and written 1,000 at a time (multi-row statements), so a large file
/// never sits in memory whole. A listing's members are copied with their
/// listing's times as their own; the next complete run of the listing
/// adopts them again.
pub(crate) fn copy_into(
    client: &mut Client,
    scope: &str,
    at: &Path,
    source: &rusqlite::Connection,
    source_path: &Path,
) -> Result<CopyOutcome, CacheError> {
    use super::error::SqliteResultExt as _;
    let mut tx = client.transaction().at_pg(at)?;
    delete_scope(&mut tx, scope).at_pg(at)?;
    let mut outcome = CopyOutcome::default();
    let mut stmt = source
        .prepare(
            "SELECT e.category, e.key, CAST(v.value AS TEXT), e.hash, e.size,
                    coalesce(e.fetched_at, l.fetched_at, 0), coalesce(e.expires_at, l.expires_at, 0),
                    e.fetch_ms, e.project, e.updated_at, e.last_read_at
             FROM entries e JOIN entry_values v ON v.id = e.id
             LEFT JOIN listings l ON l.id = e.listing
             ORDER BY e.id",
        )
        .at(source_path)?;
    let mut rows = stmt.query([]).at(source_path)?;
    let mut done = false;
    while !done {
        let mut batch: Vec<CopiedEntry> = Vec::with_capacity(1000);
        while batch.len() < 1000 {
            let Some(row) = rows.next().at(source_path)? else {
                done = true;
                break;
            };
            let get = |i| row.get::<_, i64>(i);
            batch.push((
                row.get(0).at(source_path)?,
                row.get(1).at(source_path)?,
                row.get(2).at(source_path)?,
                [
                    get(3).at(source_path)?,
                    get(4).at(source_path)?,
                    get(5).at(source_path)?,
                    get(6).at(source_path)?,
                    get(7).at(source_path)?,
                ],
                row.get(8).at(source_path)?,
                [row.get(9).at(source_path)?, row.get(10).at(source_path)?],
            ));
        }
        if batch.is_empty() {
            break;
        }
        let text = |i: usize| -> Vec<&str> {
            batch
                .iter()
                .map(|e| match i {
                    0 => e.0.as_str(),
                    1 => e.1.as_str(),
                    _ => e.2.as_str(),
                })
                .collect()
        };
        let number = |i: usize| -> Vec<i64> { batch.iter().map(|e| e.3[i]).collect() };
        let projects: Vec<Option<&str>> = batch.iter().map(|e| e.4.as_deref()).collect();
        let updated: Vec<Option<i64>> = batch.iter().map(|e| e.5[0]).collect();
        let read: Vec<Option<i64>> = batch.iter().map(|e| e.5[1]).collect();
        tx.execute(
            "INSERT INTO entries (scope, category, key, value, hash, size, fetched_at, expires_at,
                                  fetch_ms, project, updated_at, last_read_at)
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[],
                                      $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[],
                                      $10::text[], $11::bigint[], $12::bigint[])",
            &[
                &scope,
                &text(0),
                &text(1),
                &text(2),
                &number(0),
                &number(1),
                &number(2),
                &number(3),
                &number(4),
                &projects,
                &updated,
                &read,
            ],
        )
        .at_pg(at)?;
        outcome.entries += batch.len() as u64;
    }
    drop(rows);
    drop(stmt);
    let meta: Vec<(String, String)> = source
        .prepare("SELECT key, value FROM meta")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .at(source_path)?;
    for (key, value) in &meta {
        set_meta(&mut tx, scope, key, value).at_pg(at)?;
    }
    let marks: Vec<(String, i64, i64)> = source
        .prepare("SELECT project, newest_updated_ms, warmed_at FROM watermarks")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .at(source_path)?;
    for (project, newest, warmed) in &marks {
        set_watermark(&mut tx, scope, project, *newest, *warmed).at_pg(at)?;
    }
    let reads: Vec<(String, String, i64, i64, i64)> = source
        .prepare("SELECT category, source, hits, stale_hits, misses FROM read_counts")
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect()
        })
        .at(source_path)?;
    for (category, source, hits, stale, misses) in &reads {
        tx.execute(
            "INSERT INTO read_counts (scope, category, source, hits, stale_hits, misses)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&scope, category, source, hits, stale, misses],
        )
        .at_pg(at)?;
    }
    let mut runs = source
        .prepare(
            "SELECT started_at, ended_at, pid, stages, result, requests, retries, throttled,
                    written, unchanged, removed, errors, report
             FROM runs ORDER BY id",
        )
        .at(source_path)?;
    let mut rows = runs.query([]).at(source_path)?;
    while let Some(r) = rows.next().at(source_path)? {
        let started: i64 = r.get(0).at(source_path)?;
        let ended: Option<i64> = r.get(1).at(source_path)?;
        let pid: i64 = r.get(2).at(source_path)?;
        let stages: String = r.get(3).at(source_path)?;
        let result: String = r.get(4).at(source_path)?;
        let mut counts = [None::<i64>; 6];
        for (i, c) in counts.iter_mut().enumerate() {
            *c = r.get(5 + i).at(source_path)?;
        }
        let errors: Option<String> = r.get(11).at(source_path)?;
        let report: Option<String> = r.get(12).at(source_path)?;
        tx.execute(
            "INSERT INTO runs (scope, started_at, ended_at, pid, stages, result, requests,
                               retries, throttled, written, unchanged, removed, errors, report)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            &[
                &scope, &started, &ended, &pid, &stages, &result, &counts[0], &counts[1],
                &counts[2], &counts[3], &counts[4], &counts[5], &errors, &report,
            ],
        )
        .at_pg(at)?;
        outcome.runs += 1;
    }
    tx.commit().at_pg(at)?;
    Ok(outcome)
}

// ---------------------------------------------------------------------------
// The warm lock of a PostgreSQL-backed profile.

/// The warm lock of a profile whose cache lives in PostgreSQL: a
/// session-level advisory lock, held by a connection of its own. The server
/// releases it when that connection ends, however the holder ends (a
/// `kill -9` included). A row of `warm_locks` names the holder's host, pid
/// and start time for the next warm that finds it taken.
#[derive(Debug)]
pub struct PgWarmLock {
    actor: Actor,
    key: i64,
}

impl PgWarmLock {
    /// Takes the lock now. `Ok(Err(holder))` when another warm holds it,
    /// with who that is ("pid 123 on host-a since 2026-11-28 06:00:00").
    pub fn acquire(target: &PgTarget) -> Result<Result<PgWarmLock, String>, CacheError> {
        let actor = Actor::start(target, "jira-cache-lock")?;
        let key = warm_lock_key(&target.schema, &target.scope);
        let pid = i64::from(std::process::id());
        let host = crate::lock::host_name();
        let now = chrono::Utc::now().timestamp_millis();
        let t = target.clone();
        let taken = actor.call(move |client, scope, at| {
            // The lock's table may not exist yet: a first warm creates it.
            migrate(client, &t)?;
            let taken: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .at_pg(at)?
                .get(0);
            if taken {
                client
                    .execute(
                        "INSERT INTO warm_locks (scope, host, pid, started_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (scope) DO UPDATE
                         SET host = excluded.host, pid = excluded.pid, started_at = excluded.started_at",
                        &[&scope, &host, &pid, &now],
                    )
                    .at_pg(at)?;
                return Ok(None);
            }
            let holder = client
                .query_opt(
                    "SELECT host, pid, started_at FROM warm_locks WHERE scope = $1",
                    &[&scope],
                )
                .at_pg(at)?
                .map(|row| describe_holder(row.get(0), row.get(1), row.get(2)))
                .unwrap_or_else(|| "a warm on another connection".to_string());
            Ok(Some(holder))
        })?;
        Ok(match taken {
            None => Ok(PgWarmLock { actor, key }),
            Some(holder) => Err(holder),
        })
    }
}

impl PgWarmLock {
    /// Who holds the warm lock of the target's scope right now ("pid 123 on
    /// host-a since …"), or `None` when nobody does. Asks without taking the
    /// lock: a warm starting at that instant is never refused because of it.
    pub fn holder(target: &PgTarget) -> Result<Option<String>, CacheError> {
        let actor = Actor::start(target, "jira-cache-lock-check")?;
        let key = warm_lock_key(&target.schema, &target.scope);
        actor.call(move |client, scope, at| {
            if !lock_held(client, key).at_pg(at)? {
                return Ok(None);
            }
            let row = client
                .query_opt(
                    "SELECT host, pid, started_at FROM warm_locks WHERE scope = $1",
                    &[&scope],
                )
                .at_pg(at)?;
            Ok(Some(match row {
                Some(row) => describe_holder(row.get(0), row.get(1), row.get(2)),
                None => "a warm on another connection".to_string(),
            }))
        })
    }
}

/// "pid 123 on host-a since 2026-11-28 06:00:00 +0000".
fn describe_holder(host: String, pid: i64, started_at: i64) -> String {
    let since = chrono::DateTime::from_timestamp_millis(started_at)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S %z")
                .to_string()
        })
        .unwrap_or_default();
    format!(
        "pid {pid} on {} since {since}",
        crate::scrub::for_terminal(&host)
    )
}

/// Whether some session holds the advisory lock `key` in this database,
/// read from `pg_locks` (a bigint key is split into `classid` and `objid`,
/// with `objsubid` 1) without taking it.
pub(crate) fn lock_held(client: &mut Client, key: i64) -> Result<bool, postgres::Error> {
    let bits = key as u64;
    let high = (bits >> 32) as i64;
    let low = (bits & 0xFFFF_FFFF) as i64;
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks
                            WHERE locktype = 'advisory' AND granted AND objsubid = 1
                              AND database = (SELECT oid FROM pg_database
                                              WHERE datname = current_database())
                              AND classid::bigint = $1 AND objid::bigint = $2)",
            &[&high, &low],
        )?
        .get(0))
}

impl Drop for PgWarmLock {
    fn drop(&mut self) {
        let key = self.key;
        // Best effort: closing the connection (the actor's thread ends when
        // it is dropped) releases the lock anyway.
        let _ = self.actor.call(move |client, scope, at| {
            client
                .execute(
                    "DELETE FROM warm_locks WHERE scope = $1 AND pid = $2",
                    &[&scope, &i64::from(std::process::id())],
                )
                .at_pg(at)?;
            client
                .execute("SELECT pg_advisory_unlock($1)", &[&key])
                .at_pg(at)?;
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_anchored_regular_expressions() {
        assert_eq!(glob_to_regex("list:*"), "^list:.*$");
        assert_eq!(glob_to_regex("assignable:*"), "^assignable:.*$");
        assert_eq!(glob_to_regex("A?-1"), "^A.-1$");
        assert_eq!(glob_to_regex("a.b"), "^a\\.b$");
        assert_eq!(glob_to_regex("[AB]-*"), "^[AB]-.*$");
        assert_eq!(glob_to_regex("[^AB]*"), "^[^AB].*$");
        assert_eq!(glob_to_regex("x[y"), "^x\\[y$");
        assert_eq!(glob_to_regex("(a)+"), "^\\(a\\)\\+$");
    }

    #[test]
    fn a_url_with_a_password_is_refused() {
        let e = PgTarget::new("postgres://u:secret@h/db", None, "jira_cache", "s").unwrap_err();
        assert!(e.contains("password"), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(PgTarget::new("postgres://u@h/db", None, "jira_cache", "s").is_ok());
        for bad in ["", "a\"b", "1abc", "a-b", "a;drop"] {
            assert!(
                PgTarget::new("postgres://u@h/db", None, bad, "s").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_display_never_holds_the_password() {
        let t = PgTarget::new("postgres://u@h:5433/db", Some("hunter2".into()), "jc", "s").unwrap();
        assert_eq!(t.display(), "postgres://u@h:5433/db (schema jc)");
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
