//! Profiles: which Jira site to warm, with which credentials, how fast, and
//! how long cached entries stay fresh.
//!
//! A [`Profile`] comes from a profiles TOML file or, when there is none,
//! from the environment (`CONVENTIONS.md`, "Profiles file"). Loading checks
//! everything that can be checked without the network: unknown keys,
//! durations, sizes, rates, project keys, URLs, the CA file. What `load`
//! returns is therefore valid, and every error names the file, line, key
//! and the fix.
//!
//! Look-up order:
//! - file: `--config PATH`, `$JIRA_CACHE_CONFIG`, then the platform config
//!   dir (`~/.config/jira-cache/profiles.toml`); a file named by the first
//!   two must exist;
//! - profile: `--profile`, `$JIRA_PROFILE`, the file's `default`, and with
//!   exactly one profile in the file that one;
//! - with no file at the platform path and `JIRA_SITE_URL` set, the
//!   environment makes one profile named `default`.
//!
//! Tokens never live in the file: an inline `token` key is refused, and the
//! token read from `token_env` or `token_cmd` is a [`Secret`], which no
//! `Debug` or error message shows. All variables are read from an [`Env`]
//! snapshot, so tests never see the real machine's environment.

mod env;
mod error;
mod raw;
mod resolve;
mod token;
mod values;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use url::Url;

use crate::{Category, Deployment};

pub use env::Env;
pub use error::{Location, ProfileError};
pub use token::{Credentials, DEFAULT_TOKEN_ENV, Secret, TOKEN_COMMAND_TIMEOUT, TokenSource};

/// The profile's own token, as errors name it: what it is, and the key
/// that runs a command for it instead.
const OWN_TOKEN: (&str, &str) = ("API token", "token_cmd");

/// `cache_serve`'s token for its clients (`serve_token_env`), as errors
/// name it.
const SERVE_TOKEN: (&str, &str) = ("cache_serve token", "serve_token_cmd");

/// The PostgreSQL password from `cache_password_cmd`, as errors name it.
const CACHE_PASSWORD: (&str, &str) = ("database password", "cache_password_cmd");
pub use values::{QuietHours, RateLimit};

use raw::RawFile;
use resolve::{from_environment, resolve_in_file};

/// The fields asked for with every issue when a profile sets no
/// `issue_fields`.
pub const DEFAULT_ISSUE_FIELDS: [&str; 14] = [
    "summary",
    "status",
    "assignee",
    "reporter",
    "priority",
    "issuetype",
    "project",
    "created",
    "updated",
    "labels",
    "components",
    "fixVersions",
    "resolution",
    "parent",
];

/// Issues updated within this window get the `issue_recent` TTL, older ones
/// `issue_old`.
pub const RECENT_ISSUE_WINDOW: Duration = Duration::from_secs(7 * DAY);

/// `cache_serve`'s address when neither `--listen` nor `serve_listen` says.
pub const DEFAULT_SERVE_LISTEN: &str = "127.0.0.1:8765";

/// The PostgreSQL schema of the cache's tables when `cache_schema` is not set.
pub const DEFAULT_CACHE_SCHEMA: &str = "jira_cache";

/// The name of the one profile the environment makes.
pub const ENV_PROFILE_NAME: &str = "default";

const DAY: u64 = 86_400;
const HOUR: u64 = 3_600;
const DEFAULT_RATE_LIMIT: f64 = 10.0;
const DEFAULT_BURST: u32 = 10;
const DEFAULT_CONCURRENCY: usize = 4;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_SIZE: u64 = 500 * 1024 * 1024;
/// The default `max_response`: the largest answer body read from the site.
pub const DEFAULT_MAX_RESPONSE: u64 = 64 * 1024 * 1024;
const DEFAULT_SCHEDULE: &str = "0 6 * * *";
const DEFAULT_MAX_STALE: Duration = Duration::from_secs(DAY);

/// Environment variables of the look-up and of the environment profile.
const VAR_CONFIG: &str = "JIRA_CACHE_CONFIG";
const VAR_PROFILE: &str = "JIRA_PROFILE";
const VAR_SITE_URL: &str = "JIRA_SITE_URL";
const VAR_EMAIL: &str = "JIRA_EMAIL";
const VAR_DEPLOYMENT: &str = "JIRA_DEPLOYMENT";
const VAR_AUTH_TYPE: &str = "JIRA_AUTH_TYPE";

/// Where a profile came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProfileSource {
    /// A profiles file (absolute path).
    File(PathBuf),
    /// The environment (`JIRA_SITE_URL` and friends), with no profiles file.
    Environment,
}

impl fmt::Display for ProfileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileSource::File(path) => write!(f, "{}", path.display()),
            ProfileSource::Environment => f.write_str("the environment (no profiles file)"),
        }
    }
}

/// How requests authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthKind {
    /// HTTP Basic with email (or user name) and API token.
    Basic,
    /// `Authorization: Bearer` with a personal access token.
    Bearer,
}

impl AuthKind {
    /// The name used in profiles: `basic` or `bearer`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Basic => "basic",
            AuthKind::Bearer => "bearer",
        }
    }

    /// The default of a deployment: Basic on Cloud, Bearer on Data Center.
    pub fn default_for(deployment: Deployment) -> AuthKind {
        match deployment {
            Deployment::Cloud => AuthKind::Basic,
            Deployment::DataCenter => AuthKind::Bearer,
        }
    }
}

impl fmt::Display for AuthKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "basic" => Ok(AuthKind::Basic),
            "bearer" => Ok(AuthKind::Bearer),
            other => Err(format!(
                "unknown auth `{other}`: expected \"basic\" (email + API token) or \"bearer\" (personal access token)"
            )),
        }
    }
}

/// How long cached entries stay fresh, per category (`[profiles.NAME.ttl]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    /// Projects; default 1 day.
    pub project: Duration,
    /// Fields and field metadata; default 1 day.
    pub field: Duration,
    /// Users; default 1 day.
    pub user: Duration,
    /// Issues updated within [`RECENT_ISSUE_WINDOW`]; default 5 minutes.
    pub issue_recent: Duration,
    /// Older issues; default 1 hour.
    pub issue_old: Duration,
}

impl Ttls {
    /// The TTL of an entry of `category`; for issues, `recent_issue` picks
    /// `issue_recent` over `issue_old` (it is ignored for the others).
    pub fn ttl_for(&self, category: Category, recent_issue: bool) -> Duration {
        match category {
            Category::Project => self.project,
            Category::Field => self.field,
            Category::User => self.user,
            Category::Issue if recent_issue => self.issue_recent,
            Category::Issue => self.issue_old,
        }
    }
}

impl Default for Ttls {
    fn default() -> Self {
        Ttls {
            project: Duration::from_secs(DAY),
            field: Duration::from_secs(DAY),
            user: Duration::from_secs(DAY),
            issue_recent: Duration::from_secs(5 * 60),
            issue_old: Duration::from_secs(HOUR),
        }
    }
}

/// Thresholds of `cache_status --check` (`[profiles.NAME.check]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckThresholds {
    /// WARNING when the last successful warm is older; default 26 hours.
    pub warn_age: Duration,
    /// CRITICAL when the last successful warm is older; default 50 hours.
    pub crit_age: Duration,
    /// WARNING when a category's share of expired entries is above this
    /// (0.0 to 1.0); default 0.5.
    pub warn_expired: f64,
    /// CRITICAL above this share of expired entries; default 0.9.
    pub crit_expired: f64,
    /// WARNING when the hit rate is below this (once there have been
    /// reads); default 0.5.
    pub warn_hit_rate: f64,
}

impl Default for CheckThresholds {
    fn default() -> Self {
        CheckThresholds {
            warn_age: Duration::from_secs(26 * HOUR),
            crit_age: Duration::from_secs(50 * HOUR),
            warn_expired: 0.5,
            crit_expired: 0.9,
            warn_hit_rate: 0.5,
        }
    }
}

/// A loaded and validated profile. Holds no token: the token is read on
/// demand by [`Profile::resolve_token`].
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The profile's name; it also names the cache and lock files.
    pub name: String,
    /// The file (or the environment) it came from.
    pub source: ProfileSource,
    /// The site's base URL, context path kept (`https://host/jira/`). It
    /// always ends with `/`, so `url.join("rest/api/2/field")` keeps the
    /// context path; see also [`Profile::api_base`].
    pub url: Url,
    /// The deployment, if the profile states it; `None`: probe `serverInfo`.
    pub deployment: Option<Deployment>,
    /// The auth kind, if the profile states it; see [`Profile::auth_kind`].
    pub auth: Option<AuthKind>,
    /// Email (or Data Center user name) for Basic auth.
    pub email: Option<String>,
    /// Where the token comes from.
    pub token: TokenSource,
    /// The steady request rate; default 10 per second.
    pub rate_limit: RateLimit,
    /// Requests allowed at once above the steady rate; default 10, ≥ 1.
    pub burst: u32,
    /// Requests in flight at once; default 4, ≥ 1.
    pub concurrency: usize,
    /// Per-request timeout; default 30 s, > 0.
    pub timeout: Duration,
    /// Project keys that scope the per-project stages; empty: all projects.
    pub projects: Vec<String>,
    /// The issue fields to ask for; default [`DEFAULT_ISSUE_FIELDS`].
    pub issue_fields: Vec<String>,
    /// Size cap of the cache's entries, in bytes; default 500 MiB.
    pub max_size: u64,
    /// The largest answer body read from the site, in bytes; default
    /// 64 MiB. A longer body ends the request with an error naming it.
    pub max_response: u64,
    /// Local-time window in which warming refuses to start; default none.
    pub quiet_hours: Option<QuietHours>,
    /// Cron schedule for `--print-cron` / `--print-systemd` (five fields,
    /// single spaces); default `0 6 * * *`.
    pub schedule: String,
    /// The directory of the cache and lock files (absolute when loaded from
    /// a file); default the platform cache dir, `~/.cache/jira-cache`.
    pub cache_dir: PathBuf,
    /// The PostgreSQL store (`cache_url`, or `$JIRA_CACHE_URL`), without a
    /// password; `None`: the SQLite file in `cache_dir`.
    pub cache_url: Option<String>,
    /// Where the database password comes from (`cache_password_cmd`, else
    /// `cache_password_env`); `None`: `PGPASSWORD`, then `~/.pgpass`.
    pub cache_password: Option<TokenSource>,
    /// The PostgreSQL schema (namespace) of the tables; default
    /// [`DEFAULT_CACHE_SCHEMA`].
    pub cache_schema: String,
    /// Extra CA certificate(s), PEM; checked readable at load time.
    pub ca_file: Option<PathBuf>,
    /// Accept `http://` for hosts that are not loopback; default false.
    pub allow_insecure_http: bool,
    /// How long past its TTL an entry may still be served by the
    /// read-through library ([`crate::read`]) when its refetch fails;
    /// default 1 day. `cache_status --get` never fetches and does not apply
    /// it: it prints any cached value, a stale one with exit 10.
    pub max_stale: Duration,
    /// `cache_serve`'s listen address (`serve_listen`); default
    /// [`DEFAULT_SERVE_LISTEN`].
    pub serve_listen: Option<std::net::SocketAddr>,
    /// Where `cache_serve`'s extra token comes from (`serve_token_cmd`, else
    /// `serve_token_env`); `None`: only the profile's own credentials.
    pub serve_token: Option<TokenSource>,
    /// Freshness per category.
    pub ttl: Ttls,
    /// Thresholds of `cache_status --check`.
    pub check: CheckThresholds,
    /// The environment snapshot the profile was loaded with; `token_env` is
    /// read from it. Its `Debug` shows no value.
    env: Env,
}

impl Profile {
    /// The cache file: `<cache_dir>/<name>.sqlite3`.
    pub fn cache_path(&self) -> PathBuf {
        self.cache_dir.join(format!("{}.sqlite3", self.name))
    }

    /// Where the cache lives: the SQLite file ([`Profile::cache_path`]), or
    /// with `cache_url` the PostgreSQL database, whose password this reads
    /// (`cache_password_cmd`/`_env`, else `PGPASSWORD`, else `~/.pgpass`).
    /// The profile's rows are scoped by its name and site URL.
    pub fn cache_location(&self) -> Result<crate::cache::CacheLocation, ProfileError> {
        let Some(url) = &self.cache_url else {
            return Ok(crate::cache::CacheLocation::File(self.cache_path()));
        };
        let invalid = |key: &str, message: String| ProfileError::Invalid {
            origin: self.source.clone(),
            location: None,
            profile: self.name.clone(),
            key: key.to_owned(),
            message,
        };
        let password = match &self.cache_password {
            Some(TokenSource::Env(variable)) => Some(
                self.env
                    .get_nonempty(variable)
                    .map(|v| v.trim().to_owned())
                    .ok_or_else(|| {
                        invalid(
                            "cache_password_env",
                            format!("environment variable {variable} is not set or empty; export it, or use cache_password_cmd"),
                        )
                    })?,
            ),
            Some(source) => Some(
                block_on_own_thread(self.read_token(source, CACHE_PASSWORD))?
                    .expose()
                    .to_owned(),
            ),
            None => self.env.get_nonempty("PGPASSWORD").map(str::to_owned),
        };
        let scope = format!("{} {}", self.name, self.url);
        let invalid = |reason: String| invalid("cache_url", reason);
        let mut target =
            crate::cache::PgTarget::new(url, password.clone(), &self.cache_schema, &scope)
                .map_err(invalid)?;
        if password.is_none()
            && let Some(home) = self.env.home_dir()
            && let Some(found) = crate::cache::pgpass_lookup(&home.join(".pgpass"), &target)
        {
            target = crate::cache::PgTarget::new(url, Some(found), &self.cache_schema, &scope)
                .map_err(invalid)?;
        }
        if let Some(p) = &password {
            crate::scrub::register(p);
        }
        Ok(crate::cache::CacheLocation::Postgres(
            target.with_ca_file(self.ca_file.clone()),
        ))
    }

    /// Where the cache is, for people: the SQLite file's path, or the
    /// database (`postgres://user@host:port/db (schema s)`, no password).
    pub fn cache_display(&self) -> String {
        match &self.cache_url {
            Some(url) => crate::cache::PgTarget::new(url, None, &self.cache_schema, "")
                .map(|t| t.display().to_owned())
                .unwrap_or_else(|_| "the PostgreSQL database of `cache_url`".to_owned()),
            None => self.cache_path().display().to_string(),
        }
    }

    /// The lock file: `<cache_dir>/<name>.lock`.
    pub fn lock_path(&self) -> PathBuf {
        self.cache_dir.join(format!("{}.lock", self.name))
    }

    /// The auth kind for `deployment`: the stated one, else Basic on Cloud
    /// and Bearer on Data Center.
    pub fn auth_kind(&self, deployment: Deployment) -> AuthKind {
        self.auth
            .unwrap_or_else(|| AuthKind::default_for(deployment))
    }

    /// The REST base of `deployment` under the site URL, ending with `/`:
    /// `https://host/jira/rest/api/2/`.
    pub fn api_base(&self, deployment: Deployment) -> Url {
        let relative = format!("{}/", deployment.api_base().trim_start_matches('/'));
        self.url
            .join(&relative)
            .expect("a relative path always joins onto an http(s) URL")
    }

    /// Reads the token: runs `token_cmd` (`sh -c`, stdout trimmed, at most
    /// [`TOKEN_COMMAND_TIMEOUT`], as a `tokio` child: no thread blocks on
    /// it), or reads the `token_env` variable from the environment snapshot.
    /// A profiles file other users can write is refused before `token_cmd`
    /// runs. Errors name the command or the variable, never a value.
    pub async fn resolve_token_async(&self) -> Result<Secret, ProfileError> {
        self.read_token(&self.token, OWN_TOKEN).await
    }

    /// Reads `cache_serve`'s extra token (`serve_token_cmd` or
    /// `serve_token_env`) as [`Profile::resolve_token_async`] reads the
    /// profile's own; `None` when the profile names none.
    pub fn resolve_serve_token(&self) -> Result<Option<Secret>, ProfileError> {
        match &self.serve_token {
            Some(source) => block_on_own_thread(self.read_token(source, SERVE_TOKEN)).map(Some),
            None => Ok(None),
        }
    }

    /// Reads one of the profile's tokens; `role` names it in an error (see
    /// [`OWN_TOKEN`], [`SERVE_TOKEN`]).
    async fn read_token(
        &self,
        source: &TokenSource,
        role: (&'static str, &'static str),
    ) -> Result<Secret, ProfileError> {
        match source {
            TokenSource::Command(command) => {
                let failed = |reason| ProfileError::TokenCommandFailed {
                    profile: self.name.clone(),
                    command_key: role.1,
                    command: command.clone(),
                    reason,
                };
                if let ProfileSource::File(path) = &self.source {
                    token::check_file_is_ours(path).map_err(|reason| ProfileError::UnsafeFile {
                        path: path.clone(),
                        reason,
                    })?;
                }
                token::run_token_command(command, TOKEN_COMMAND_TIMEOUT)
                    .await
                    .map_err(failed)
            }
            TokenSource::Env(variable) => {
                let secret = self
                    .env
                    .get(variable)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(Secret::new)
                    .ok_or_else(|| ProfileError::TokenMissing {
                        profile: self.name.clone(),
                        variable: variable.clone(),
                        what: role.0,
                        command_key: role.1,
                    })?;
                crate::scrub::register(secret.expose());
                Ok(secret)
            }
        }
    }

    /// [`Profile::resolve_token_async`] for callers outside a runtime (it
    /// runs on a short-lived runtime of its own thread, so it is also safe
    /// to call from inside one, though it then blocks that thread).
    pub fn resolve_token(&self) -> Result<Secret, ProfileError> {
        block_on_own_thread(self.resolve_token_async())
    }

    /// The credentials for `deployment`: Basic needs `email` (checked here,
    /// not at load, because the deployment may only be known after probing)
    /// and the token; Bearer needs the token.
    pub fn credentials(&self, deployment: Deployment) -> Result<Credentials, ProfileError> {
        block_on_own_thread(self.credentials_async(deployment))
    }

    /// [`Profile::credentials`] without blocking: what async callers use.
    pub async fn credentials_async(
        &self,
        deployment: Deployment,
    ) -> Result<Credentials, ProfileError> {
        match self.auth_kind(deployment) {
            AuthKind::Basic => {
                let email = self
                    .email
                    .clone()
                    .ok_or_else(|| self.missing_email(deployment))?;
                let token = self.resolve_token_async().await?;
                crate::scrub::register_basic(&email, token.expose());
                Ok(Credentials::Basic { email, token })
            }
            AuthKind::Bearer => Ok(Credentials::Bearer(self.resolve_token_async().await?)),
        }
    }

    /// Checks what can be checked of the credentials without the site or
    /// the token: a missing `email` when basic auth is certain (stated, or
    /// implied by a stated deployment). Run before anything touches the
    /// disk, so that a profile that cannot work creates no cache or lock file.
    pub fn check_offline(&self) -> Result<(), ProfileError> {
        let deployment = self.deployment.unwrap_or(Deployment::Cloud);
        let basic = match (self.auth, self.deployment) {
            (Some(kind), _) => kind == AuthKind::Basic,
            (None, Some(d)) => AuthKind::default_for(d) == AuthKind::Basic,
            (None, None) => false,
        };
        if basic && self.email.is_none() {
            return Err(self.missing_email(deployment));
        }
        Ok(())
    }

    /// The error for basic auth without an email.
    fn missing_email(&self, deployment: Deployment) -> ProfileError {
        let (key, message) = match self.source {
            ProfileSource::File(_) => (
                "email",
                format!(
                    "basic auth on {deployment} needs the account's email (the user name on Data Center); \
                                 set email, or auth = \"bearer\" for a personal access token"
                ),
            ),
            ProfileSource::Environment => (
                VAR_EMAIL,
                format!(
                    "basic auth on {deployment} needs the account's email (the user name on Data Center); \
                                 export {VAR_EMAIL}, or {VAR_AUTH_TYPE}=bearer for a personal access token"
                ),
            ),
        };
        ProfileError::Invalid {
            origin: self.source.clone(),
            location: None,
            profile: self.name.clone(),
            key: key.to_owned(),
            message,
        }
    }
}

/// Runs a future to completion on a current-thread runtime of a thread of
/// its own: the sync face of the async token look-up.
fn block_on_own_thread<T: Send>(
    fut: impl std::future::Future<Output = Result<T, ProfileError>> + Send,
) -> Result<T, ProfileError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| ProfileError::TokenCommandFailed {
                    profile: String::new(),
                    command_key: OWN_TOKEN.1,
                    command: String::new(),
                    reason: format!("could not start a runtime to run it ({e})"),
                })?;
            rt.block_on(fut)
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Where to look and which profile: the CLI flags, plus an environment
/// snapshot (so tests never read the real environment).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config PATH`.
    pub config: Option<PathBuf>,
    /// `--profile NAME`.
    pub profile: Option<String>,
    /// The environment to read `JIRA_*`, `HOME` and `XDG_*` from.
    pub env: Env,
}

impl LoadOptions {
    /// The flags, with the current process's environment.
    pub fn from_process_env(config: Option<PathBuf>, profile: Option<String>) -> Self {
        LoadOptions {
            config,
            profile,
            env: Env::from_process(),
        }
    }
}

/// Loads the profile the options and the environment select.
pub fn load(opts: &LoadOptions) -> Result<Profile, ProfileError> {
    match locate(opts)? {
        Located::File(path) => {
            let text = read(&path)?;
            parse_str(&text, &path, opts.profile.as_deref(), &opts.env)
        }
        Located::Environment => {
            if let Some(name) = requested_name(opts).filter(|n| n != ENV_PROFILE_NAME) {
                return Err(ProfileError::UnknownProfile {
                    name,
                    origin: ProfileSource::Environment,
                    known: vec![ENV_PROFILE_NAME.to_owned()],
                });
            }
            from_environment(&opts.env)
        }
    }
}

/// Loads every profile of the file, in name order (or the one environment
/// profile). Fails on the first invalid profile; to go on past one, list
/// the names with [`profile_names`] and [`load`] each.
pub fn load_all(opts: &LoadOptions) -> Result<Vec<Profile>, ProfileError> {
    match locate(opts)? {
        Located::File(path) => {
            let text = read(&path)?;
            let file = raw::parse_file(&text, &path)?;
            check_default(&file, &path)?;
            if file.profiles.is_empty() {
                return Err(ProfileError::NoProfiles { path });
            }
            file.profiles
                .into_iter()
                .map(|(name, raw)| resolve_in_file(raw, &name, &text, &path, &opts.env))
                .collect()
        }
        Located::Environment => Ok(vec![from_environment(&opts.env)?]),
    }
}

/// The profiles file in use and its profile names, in name order (for
/// `cache_status --all-profiles`). Without a file: the environment and
/// `["default"]`. The file is checked for syntax and unknown keys, but its
/// profiles are not validated.
pub fn profile_names(opts: &LoadOptions) -> Result<(ProfileSource, Vec<String>), ProfileError> {
    match locate(opts)? {
        Located::File(path) => {
            let text = read(&path)?;
            let file = raw::parse_file(&text, &path)?;
            check_default(&file, &path)?;
            if file.profiles.is_empty() {
                return Err(ProfileError::NoProfiles { path });
            }
            let names = file.profiles.into_keys().collect();
            Ok((ProfileSource::File(path), names))
        }
        Located::Environment => Ok((
            ProfileSource::Environment,
            vec![ENV_PROFILE_NAME.to_owned()],
        )),
    }
}

/// Loads a profile from the text of a profiles file, as if read from
/// `path` (named in errors; relative `cache_dir` and `ca_file` are relative
/// to its directory). `profile` is the requested name (`--profile`); when
/// `None`, `$JIRA_PROFILE`, `default` or the single profile decide. Meant
/// for tests elsewhere in the crate that need a `Profile`.
pub fn parse_str(
    text: &str,
    path: &Path,
    profile: Option<&str>,
    env: &Env,
) -> Result<Profile, ProfileError> {
    let file = raw::parse_file(text, path)?;
    check_default(&file, path)?;
    let requested = profile
        .map(str::to_owned)
        .or_else(|| env.get_nonempty(VAR_PROFILE).map(str::to_owned));
    let known = || file.profiles.keys().cloned().collect::<Vec<_>>();
    if file.profiles.is_empty() {
        return Err(ProfileError::NoProfiles {
            path: path.to_path_buf(),
        });
    }
    let name = match requested {
        Some(name) => name,
        None => match &file.default {
            Some(default) => default.get_ref().clone(),
            None if file.profiles.len() == 1 => known().remove(0),
            None => {
                return Err(ProfileError::AmbiguousProfile {
                    path: path.to_path_buf(),
                    known: known(),
                });
            }
        },
    };
    let known = known();
    let mut profiles = file.profiles;
    let Some(raw) = profiles.remove(&name) else {
        return Err(ProfileError::UnknownProfile {
            name,
            origin: ProfileSource::File(path.to_path_buf()),
            known,
        });
    };
    resolve_in_file(raw, &name, text, path, env)
}

/// Whether `name` can name a profile: ASCII letters, digits, `-` and `_`,
/// not starting with `-` (it becomes a file name).
pub(crate) fn is_valid_profile_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

enum Located {
    File(PathBuf),
    Environment,
}

fn locate(opts: &LoadOptions) -> Result<Located, ProfileError> {
    if let Some(path) = &opts.config {
        return explicit_file(path, "--config");
    }
    if let Some(path) = opts.env.get_nonempty(VAR_CONFIG) {
        return explicit_file(Path::new(path), "$JIRA_CACHE_CONFIG");
    }
    let platform = opts.env.default_config_file();
    if let Some(path) = &platform {
        match path.try_exists() {
            Ok(true) => return Ok(Located::File(path.clone())),
            Ok(false) => {}
            Err(source) => {
                return Err(ProfileError::Io {
                    path: path.clone(),
                    source,
                });
            }
        }
    }
    if opts.env.get_nonempty(VAR_SITE_URL).is_some() {
        return Ok(Located::Environment);
    }
    Err(ProfileError::NoProfile {
        searched: platform.into_iter().collect(),
    })
}

fn explicit_file(path: &Path, given_by: &'static str) -> Result<Located, ProfileError> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match absolute.try_exists() {
        Ok(true) => Ok(Located::File(absolute)),
        Ok(false) => Err(ProfileError::ConfigNotFound {
            path: path.to_path_buf(),
            given_by,
        }),
        Err(source) => Err(ProfileError::Io {
            path: absolute,
            source,
        }),
    }
}

fn read(path: &Path) -> Result<String, ProfileError> {
    std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The requested profile name: `--profile`, then `$JIRA_PROFILE`.
fn requested_name(opts: &LoadOptions) -> Option<String> {
    opts.profile
        .clone()
        .or_else(|| opts.env.get_nonempty(VAR_PROFILE).map(str::to_owned))
}

/// A `default` that names no profile is an error even when `--profile`
/// picks another: a typo must not wait for the day it matters.
fn check_default(file: &RawFile, path: &Path) -> Result<(), ProfileError> {
    match &file.default {
        Some(default) if !file.profiles.contains_key(default.get_ref()) => {
            Err(ProfileError::UnknownProfile {
                name: default.get_ref().clone(),
                origin: ProfileSource::File(path.to_path_buf()),
                known: file.profiles.keys().cloned().collect(),
            })
        }
        _ => Ok(()),
    }
}
