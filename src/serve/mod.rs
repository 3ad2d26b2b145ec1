//! The cache as a local Jira endpoint (`cache_serve`): the Jira REST API of
//! a profile's site, answered from the cache where it can be, so every tool
//! that reads Jira (jira-cli, the Python `jira` package, MCP servers, curl)
//! gets the warm cache with a URL change and no code change.
//!
//! A router plus layers: the access log (one line per request at info:
//! method, path, status, cache result, time; never a header or a query),
//! a timeout, then the credential check ([`auth`]), in front of one handler.
//! Before the router, a thin front answers a `GET` with accepted
//! credentials whose answer is kept in memory ([`hot`]), with the same
//! access-log line; everything else goes to the router unchanged. The
//! handler:
//! - **Reads the cache answers** (`serverInfo`, `myself`, `field`,
//!   `issuetype`, `priority[/search]`, `status`, `resolution[/search]`,
//!   `project`, `project/search`, `project/{key}`, `user`, `users/search`,
//!   `user/assignable/search`, `issue/{key}`) go through the library's read
//!   path ([`crate::read::ReadThrough`]): single flight, early refresh,
//!   leases across processes, stale within `max_stale` when the site fails.
//!   Each is kept under its API version, path and query ([`route`]), so a
//!   v2 client never gets a v3 answer's ADF. `field`, `project`,
//!   `project/search` and `issue/{key}?fields=` are answered first from the
//!   entries the warm wrote, where they hold what Jira returns ([`warmed`]);
//!   `project/{key}` and `user` fall back on them, partial, when the site
//!   is down.
//! - **Every other request** (search, writes, anything else under `/rest/`)
//!   goes to the site unchanged; a successful write drops the entries it
//!   touches before the answer goes back, so a client never reads its own
//!   write back stale. The issues of a search answer refresh their warmed
//!   entries (`refresh_from_search`).
//! - `X-Cache: HIT | STALE | STALE-PARTIAL | MISS | BYPASS` and `Age` say
//!   what happened.
//!
//! Only the profile's site is ever asked: paths are checked (no `..`, no
//! encoded slashes, no absolute-form request targets), no redirect is
//! followed, and a `Location` off the site is dropped.

pub mod auth;
mod hot;
mod listen;
pub mod route;
pub mod schedule;
pub mod upstream;
pub mod warmed;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::cache::{CacheReader, CachedEntry};
use crate::profile::{Profile, ProfileError};
use crate::read::{CachedValue, Origin, ReadError, ReadThrough};
use crate::site::{self, ConnectError};
use crate::{Category, Deployment};

use hot::{Hot, HotAnswer};
pub use listen::Limits;
use route::{PathRefusal, SafePath};
use upstream::{Answer, SiteError, Upstream};
use warmed::{Fit, Source, Versions};

/// The content type Jira answers JSON with.
pub const JSON_TYPE: &str = "application/json;charset=UTF-8";
/// The header that says where an answer came from.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Why the server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The profile is incomplete (e.g. its token or serve token is missing).
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The deployment had to be probed and the probe failed.
    #[error(
        "profile `{profile}`: cannot tell Cloud from Data Center: {source}; state `deployment` in the profile, or make the site reachable"
    )]
    Probe {
        /// The profile.
        profile: String,
        /// What failed.
        #[source]
        source: ConnectError,
    },
    /// The cache could not be opened.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The HTTP client could not be built.
    #[error("profile `{profile}`: {message}")]
    Setup {
        /// The profile.
        profile: String,
        /// What failed.
        message: String,
    },
}

impl ServeError {
    /// The contract's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::Profile(_) | ServeError::Setup { .. } => crate::exit::CONFIG,
            ServeError::Probe { source, .. } => crate::exit::code_for(source),
            ServeError::Read(ReadError::Cache(c)) => crate::exit::code_for(c.as_ref()),
            ServeError::Read(_) => crate::exit::FAILED,
        }
    }
}

/// How often the reads answered from memory are handed to the read counts.
const HAND_OVER_EVERY: Duration = Duration::from_secs(1);

/// What the handler works with.
#[derive(Debug)]
struct App {
    read: ReadThrough,
    /// Looks at warmed entries without counting the look (the read that
    /// answers is counted through `read`).
    peek: Mutex<CacheReader>,
    upstream: Upstream,
    deployment: Deployment,
    /// Held (shared) by each write from before it goes to the site until
    /// the entries it touched are dropped; a search answer refreshes
    /// entries only when it can take it alone ([`refresh_from_search`]).
    write_gate: tokio::sync::RwLock<()>,
    /// Writes started so far: a search answer refreshes nothing if a write
    /// started while it was under way.
    writes: AtomicU64,
    /// In-memory copies of answers given from fresh entries ([`hot`]).
    hot: Hot,
}

impl App {
    /// The cache file's `data_version` on the peek connection ([`hot`]);
    /// `None` when there is none (PostgreSQL) or it cannot be read, and
    /// then nothing is answered from memory.
    fn data_version(&self) -> Option<i64> {
        let mut reader = self.peek.lock().unwrap_or_else(PoisonError::into_inner);
        reader.data_version_since().ok().flatten()
    }

    /// Hands the reads answered from memory ([`hot`]) to the read counts,
    /// which write them in their batches.
    fn hand_over_hits(&self) {
        for tally in self.hot.take_tallies() {
            self.read
                .count_hits(tally.category, &tally.key, tally.hits, tally.last_read);
        }
    }

    /// Keeps the answer to `target` in memory if its entry (read now,
    /// after the file was at `version`) is fresh: until its expiry, less
    /// the margin in which the read path may refresh it early.
    fn keep_hot(&self, target: &str, version: i64, category: Category, key: &str) {
        let Some(entry) = self.peek(category, key) else {
            return;
        };
        let beta = self.read.options().beta;
        let margin = match beta > 0.0 && entry.fetch_ms > 0 {
            true => (hot::XFETCH_MARGIN * beta * entry.fetch_ms as f64).ceil() as i64,
            false => 0,
        };
        let until = entry.expires_at.saturating_sub(margin);
        if chrono::Utc::now().timestamp_millis() >= until {
            return;
        }
        self.hot.put(
            target,
            version,
            HotAnswer {
                body: Bytes::from(entry.value),
                fetched_at: entry.fetched_at,
                until,
                category,
                key: key.into(),
            },
        );
    }

    /// The keys of the warmed issues whose id is `id` (none if the cache
    /// cannot be read: then only the answers kept by id go). A scan of the
    /// issues' values, on a connection of its own: the reads that answer
    /// from memory ([`Front`]) need `peek` meanwhile.
    async fn warmed_keys_of(&self, id: &str) -> Vec<String> {
        let (location, id) = (self.read.cache_location(), id.to_string());
        let found = tokio::task::spawn_blocking(move || {
            crate::cache::Cache::open_read_only(location)?.issue_keys_with_id(&id)
        })
        .await;
        match found {
            Ok(Ok(keys)) => keys,
            Ok(Err(e)) => {
                tracing::warn!("cannot look up the issue written by id: {e}");
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }

    /// The entry, uncounted; `None` also when the cache cannot say.
    fn peek(&self, category: Category, key: &str) -> Option<CachedEntry> {
        let reader = self.peek.lock().unwrap_or_else(PoisonError::into_inner);
        match reader.peek(category, key) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(%category, key = logged(key), "cannot read the cache: {}", e.to_string().replace(key, logged(key)));
                None
            }
        }
    }
}

/// The server of one profile: its router, ready for [`serve`].
#[derive(Debug)]
pub struct Server {
    router: Router,
    app: Arc<App>,
    gate: Arc<auth::Gate>,
    /// Cloud or Data Center (which API versions are served).
    pub deployment: Deployment,
    read: ReadThrough,
    limits: Limits,
    /// For opening the cache again when its file is replaced.
    profile: Profile,
    retry: crate::jira::RetryPolicy,
}

impl Server {
    /// Opens the profile's cache and settles its deployment (from the
    /// profile, else the cache's memory of an earlier probe, else one
    /// `serverInfo` probe), and reads the credentials it accepts.
    pub async fn new(
        profile: &Profile,
        retry: crate::jira::RetryPolicy,
    ) -> Result<Server, ServeError> {
        let read = ReadThrough::open(profile)?;
        let remembered = match crate::cache::Cache::open_read_only(profile.cache_location()?) {
            Ok(reader) => site::remembered_deployment(&reader, profile).ok().flatten(),
            Err(_) => None,
        };
        let deployment = match profile.deployment.or(remembered) {
            Some(d) => d,
            None => {
                site::connect(profile, None, retry.clone())
                    .await
                    .map_err(|source| match source {
                        ConnectError::Profile(p) => ServeError::Profile(p),
                        source => ServeError::Probe {
                            profile: profile.name.clone(),
                            source,
                        },
                    })?
                    .deployment
            }
        };
        let credentials = profile.credentials(deployment)?;
        let serve_token = profile.resolve_serve_token()?;
        let gate = Arc::new(auth::Gate::new(&credentials, serve_token.as_ref()));
        let upstream =
            Upstream::new(profile, &credentials).map_err(|message| ServeError::Setup {
                profile: profile.name.clone(),
                message,
            })?;
        let peek = crate::cache::Cache::open_read_only(read.cache_location())
            .map_err(|e| ServeError::Read(ReadError::Cache(Arc::new(e))))?;
        let app = Arc::new(App {
            read: read.clone(),
            peek: Mutex::new(peek),
            upstream,
            deployment,
            write_gate: tokio::sync::RwLock::new(()),
            writes: AtomicU64::new(0),
            hot: Hot::default(),
        });
        // Room for the site's own timeout and a retry behind a lease.
        let timeout = profile.timeout * 2 + Duration::from_secs(5);
        let router = Router::new()
            .fallback(handle)
            .with_state(app.clone())
            .layer(middleware::from_fn_with_state(gate.clone(), auth::require))
            .layer(middleware::from_fn_with_state(timeout, time_limit))
            .layer(middleware::from_fn(access_log));
        Ok(Server {
            router,
            app,
            gate,
            deployment,
            read,
            limits: Limits::default(),
            profile: {
                let mut profile = profile.clone();
                profile.deployment = Some(deployment);
                profile
            },
            retry,
        })
    }

    /// These bounds on connections rather than the defaults.
    pub fn with_limits(mut self, limits: Limits) -> Server {
        self.limits = limits;
        self
    }

    /// The router, for tests and embedding: every request through the
    /// library's read path (what [`Self::serve`] serves, less the answers
    /// it keeps in memory).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves on `listener` until `shutdown` resolves; then stops accepting,
    /// lets the requests under way finish (for up to [`Limits::drain`]),
    /// and writes the read counts.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let file = match self.read.cache_location() {
            crate::cache::CacheLocation::File(path) => Some(path),
            crate::cache::CacheLocation::Postgres(_) => None,
        };
        let front = self.front();
        // Nothing else keeps this server's read path: once `live` swaps
        // it out, the replaced file is closed.
        let Server {
            read,
            limits,
            profile,
            retry,
            router,
            app,
            gate,
            deployment: _,
        } = self;
        drop((router, app, gate));
        let live = Arc::new(Live {
            front: std::sync::RwLock::new(front),
            read: Mutex::new(read),
        });
        // Off the requests' path, every second: the reads answered from
        // memory go to the read counts (which may write a batch of them),
        // the cache is brought under `max_size`, and its file is checked
        // for a replacement.
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let chores = tokio::spawn({
            let live = live.clone();
            let mut identity = file.as_deref().and_then(file_identity);
            // The write-ahead log this server's connections hold.
            let wal = file.as_deref().map(|f| {
                let mut wal = f.as_os_str().to_owned();
                wal.push("-wal");
                std::path::PathBuf::from(wal)
            });
            let mut held_wal = wal.as_deref().and_then(file_identity);
            let mut failed = None;
            let mut evicted_said = None;
            async move {
                let mut every = tokio::time::interval(HAND_OVER_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = every.tick() => {}
                        _ = stopped.changed() => break,
                    }
                    let app = live.app();
                    let _ = tokio::task::spawn_blocking(move || app.hand_over_hits()).await;
                    // What the server keeps counts against `max_size` as
                    // what a warm writes does.
                    let read = live
                        .read
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    match read.enforce_max_size(profile.max_size).await {
                        Ok(Some(outcome)) => {
                            let line = format!(
                                "the cache passed its max_size of {}: removed {} expired and {} least recently read entries",
                                crate::warm::format_bytes(profile.max_size),
                                outcome.removed_expired,
                                outcome.removed_lru
                            );
                            // A working set above max_size evicts every
                            // second: said every ten minutes.
                            match evicted_said
                                .is_none_or(|at: Instant| at.elapsed() > Duration::from_secs(600))
                            {
                                true => {
                                    tracing::info!("{line}");
                                    evicted_said = Some(Instant::now());
                                }
                                false => tracing::debug!("{line}"),
                            }
                        }
                        Ok(None) => {}
                        Err(e) => tracing::debug!("cannot bring the cache under max_size: {e}"),
                    }
                    let Some(file) = &file else { continue };
                    let now = file_identity(file);
                    if now.is_none() || now == identity {
                        continue;
                    }
                    let first_try = failed != now;
                    // A file moved in by hand next to the log this server
                    // still writes: SQLite would read that log into it.
                    let wal_now = wal.as_deref().and_then(file_identity);
                    if wal_now.is_some() && wal_now == held_wal {
                        if first_try {
                            tracing::warn!(
                                "the cache file {} was replaced while this server's {}-wal stays beside it: opening it would mix the old file's changes into it; replace the file with `cache_warm --reset`, or with cache_serve stopped; still serving the old one",
                                file.display(),
                                file.display()
                            );
                        }
                        failed = now;
                        continue;
                    }
                    match reopen(&profile, &retry, file, first_try).await {
                        Some(reopened) => {
                            let live = live.clone();
                            let _ =
                                tokio::task::spawn_blocking(move || live.replace(reopened)).await;
                            identity = now;
                            held_wal = wal.as_deref().and_then(file_identity);
                        }
                        // Tried again every second, said once per file.
                        None => failed = now,
                    }
                }
            }
        });
        let service = {
            let live = live.clone();
            move |request| {
                let front = live
                    .front
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                tower::ServiceExt::oneshot(front, listen::into_axum(request))
            }
        };
        listen::serve(listener, service, limits, shutdown).await;
        let _ = stop.send(true);
        let _ = chores.await;
        live.app().hand_over_hits();
        // Best effort: a busy database keeps the counts for the drop.
        let read = live
            .read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let _ = read.flush_read_counts();
        // Its last checkpoint before the process exits; the readers then
        // close with the server, the last of them removing the WAL.
        if let Err(e) = read.close_writer().await {
            tracing::debug!(error = %e, "closing the cache writer");
        }
        Ok(())
    }

    fn front(&self) -> Front {
        Front {
            app: self.app.clone(),
            gate: self.gate.clone(),
            router: self.router.clone(),
        }
    }
}

/// What [`Server::serve`] answers with, swapped whole when the cache file
/// is replaced.
struct Live {
    front: std::sync::RwLock<Front>,
    /// The read path of `front`, whose read counts are written at the end.
    read: Mutex<ReadThrough>,
}

impl Live {
    fn app(&self) -> Arc<App> {
        self.front
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .app
            .clone()
    }

    /// Answers with `server` from now on; the reads the old one answered
    /// from memory go to its file's counts first.
    fn replace(&self, server: Server) {
        let old = std::mem::replace(
            &mut *self.front.write().unwrap_or_else(PoisonError::into_inner),
            server.front(),
        );
        old.app.hand_over_hits();
        let old_read = std::mem::replace(
            &mut *self.read.lock().unwrap_or_else(PoisonError::into_inner),
            server.read,
        );
        let _ = old_read.flush_read_counts();
    }
}

/// The device and inode of the file at `path`, if there is one.
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// The server again, on the file now at `file` (another was put in its
/// place, as `cache_warm --reset` does): without this, every later warm
/// would be invisible to it until a restart. `None` if it cannot be
/// opened (with a warning when `say`); the next check tries again.
async fn reopen(
    profile: &Profile,
    retry: &crate::jira::RetryPolicy,
    file: &std::path::Path,
    say: bool,
) -> Option<Server> {
    match Server::new(profile, retry.clone()).await {
        Ok(server) => {
            tracing::warn!(
                "the cache file {} was replaced (cache_warm --reset?); serving the new one",
                file.display()
            );
            Some(server)
        }
        Err(e) if say => {
            tracing::warn!(
                "the cache file {} was replaced, and the new one cannot be opened: {e}; still serving the old one",
                file.display()
            );
            None
        }
        Err(_) => None,
    }
}

/// A key as the log shows it: without the query of the answer it keeps
/// (the log never holds a query, as the access log does not).
fn logged(key: &str) -> &str {
    key.split_once('?').map_or(key, |(path, _)| path)
}

/// How long a request with a body (an upload) may take, body included.
const UPLOAD_LIMIT: Duration = Duration::from_secs(3600);

/// 504 in Jira's error shape for a request not answered within `limit`
/// (within [`UPLOAD_LIMIT`] for one with a body: its upload counts).
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    use axum::body::HttpBody as _;
    let limit = match request.body().size_hint().exact() {
        Some(0) => limit,
        _ => limit.max(UPLOAD_LIMIT),
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = refusal(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "no answer within {} s; the site may be slow or down",
                    limit.as_secs()
                ),
            );
            response
                .headers_mut()
                .insert(X_CACHE, HeaderValue::from_static("BYPASS"));
            response
        }
    }
}

/// Whether the access log is on (its target is enabled at info).
fn access_log_on() -> bool {
    tracing::enabled!(target: ACCESS_LOG, tracing::Level::INFO)
}

const ACCESS_LOG: &str = "jira_cache::serve::access";

/// One line per request, at info: never a header, a query or a body.
async fn access_log(request: Request, next: Next) -> Response {
    if !access_log_on() {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    log_access(&method, &path, &response, start);
    response
}

/// The access log's line for one answered request.
fn log_access(method: &Method, path: &str, response: &Response, start: Instant) {
    let cache = response
        .headers()
        .get(&X_CACHE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info!(
        target: ACCESS_LOG,
        "{method} {path} {} {cache} {:.1}ms",
        response.status().as_u16(),
        start.elapsed().as_secs_f64() * 1000.0
    );
}

/// The server's front: a `GET` whose answer is kept in memory ([`hot`]) is
/// answered here, before the router and its layers (routing, the timeout,
/// two boxed middlewares): it costs a credential check, one look-up and
/// the file's version. Everything else, and any request without accepted
/// credentials, goes to the router unchanged, whose layers then log it,
/// time it and turn strangers away with 401. So the credential check still
/// comes before any cache access, and each request still gets one
/// access-log line.
#[derive(Clone)]
struct Front {
    app: Arc<App>,
    gate: Arc<auth::Gate>,
    router: Router,
}

impl Front {
    /// The answer from memory, if this request has one.
    fn hot_answer(&self, request: &Request) -> Option<Response> {
        let uri = request.uri();
        // An absolute-form target is the router's to refuse.
        if request.method() != Method::GET || uri.scheme().is_some() || uri.authority().is_some() {
            return None;
        }
        // Strangers go on to the router's 401, before any cache access.
        if !self
            .gate
            .accepts(request.headers().get(header::AUTHORIZATION))
        {
            return None;
        }
        let start = access_log_on().then(Instant::now);
        let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let now = chrono::Utc::now().timestamp_millis();
        let (body, fetched_at) = self.app.hot.get(target, now, || self.app.data_version())?;
        let age = Duration::from_millis(u64::try_from(now - fetched_at).unwrap_or(0));
        let response = cached_json(body, "HIT", age);
        if let Some(start) = start {
            log_access(request.method(), uri.path(), &response, start);
        }
        Some(response)
    }
}

impl tower::Service<Request> for Front {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::Either<
        std::future::Ready<Result<Response, std::convert::Infallible>>,
        axum::routing::future::RouteFuture<std::convert::Infallible>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::<Request>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.hot_answer(&request) {
            Some(response) => futures::future::Either::Left(std::future::ready(Ok(response))),
            None => futures::future::Either::Right(self.router.call(request)),
        }
    }
}

/// The one handler: check the path, then answer from the cache or forward.
async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    // Taken apart by hand: a read the cache answers needs neither a copy of
    // the headers nor the (empty) body collected.
    let (parts, body) = request.into_parts();
    let (method, uri) = (&parts.method, &parts.uri);
    // An absolute-form target (`GET http://elsewhere/ HTTP/1.1`) would make
    // this a proxy: refused.
    if uri.scheme().is_some() || uri.authority().is_some() {
        return refusal(
            StatusCode::BAD_REQUEST,
            "absolute request targets are refused",
        );
    }
    // The answers kept in memory ([`hot`]) were answered by [`Front`];
    // a GET the cache answers from a fresh entry may become one, filed
    // under the file's version read now, before its entry.
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let hot = match *method == Method::GET {
        true => app.data_version().map(|version| {
            app.hot.observe(version);
            (target, version)
        }),
        false => None,
    };
    let path = match route::check_path(uri.path(), app.deployment) {
        Ok(p) => p,
        Err(PathRefusal::Unsafe) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "the path holds `..`, `.`, an empty segment or an encoded slash; refused",
            );
        }
        Err(PathRefusal::NotJira) => {
            return refusal(
                StatusCode::NOT_FOUND,
                "not a REST path of this site's deployment",
            );
        }
    };
    let query = uri.query();
    if *method == Method::GET
        && let Some((category, key)) = route::cache_key(&path, query)
    {
        if let Some(source) = warmed::source(&path, query, app.deployment) {
            return from_warmed(&app, source, category, key, path, query, hot).await;
        }
        let read = read_through(&app, category, &key, path, query).await;
        if let (Some((target, version)), Ok(value)) = (hot, &read)
            && matches!(value.origin, Origin::Cache)
            && value.is_fresh()
        {
            app.keep_hot(target, version, category, &key);
        }
        return answer_read(read, &key);
    }
    // The body goes on as it comes, of any size (an attachment, say).
    forward(&app, parts.method, &path, query, &parts.headers, body).await
}

/// A GET the cache may answer: the entry `cache_serve` keeps for it
/// (`serve:` key), fetched through when missing or expired.
async fn read_through(
    app: &App,
    category: Category,
    key: &str,
    path: SafePath,
    query: Option<&str>,
) -> Result<CachedValue, ReadError> {
    let upstream = app.upstream.clone();
    let query = query.map(str::to_string);
    app.read
        .get_or_fetch(category, key, || async move {
            let answer = upstream
                .send(
                    Method::GET,
                    &path,
                    query.as_deref(),
                    &json_accept(),
                    Body::empty(),
                )
                .await
                .map_err(FetchFailure::Site)?;
            if !answer.status.is_success() {
                return Err(FetchFailure::Answer(answer));
            }
            String::from_utf8(answer.body.to_vec()).map_err(|_| FetchFailure::NotText)
        })
        .await
}

/// The response to a [`read_through`].
fn answer_read(read: Result<CachedValue, ReadError>, key: &str) -> Response {
    match read {
        Ok(value) => {
            let result = match &value.origin {
                Origin::Fetched => "MISS",
                Origin::Cache if value.is_fresh() => "HIT",
                _ => "STALE",
            };
            if let Origin::StaleAfterError(cause) = &value.origin {
                tracing::warn!(key = logged(key), "served stale: {cause}");
            }
            cached_json(value.value, result, value.age)
        }
        Err(e) => {
            if let Some(answer) = site_answer(&e) {
                return relay(answer.clone(), "MISS");
            }
            tracing::warn!(
                key = logged(key),
                "{}",
                e.to_string().replace(key, logged(key))
            );
            let mut response = refusal(StatusCode::BAD_GATEWAY, &e.to_string());
            response
                .headers_mut()
                .insert(X_CACHE, HeaderValue::from_static("MISS"));
            response
        }
    }
}

/// The site's own answer (404, 401…) that made a fetch fail, if it did.
fn site_answer(e: &ReadError) -> Option<&Answer> {
    match e
        .fetch_error()
        .and_then(|f| f.downcast_ref::<FetchFailure>())
    {
        Some(FetchFailure::Answer(answer)) => Some(answer),
        _ => None,
    }
}

/// JSON from the cache, with `X-Cache` and `Age`.
fn cached_json(body: impl Into<Body>, result: &'static str, age: Duration) -> Response {
    // Built directly, with static header values: this is every hit's path.
    let mut response = Response::new(body.into());
    let h = response.headers_mut();
    h.reserve(3);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE));
    h.insert(X_CACHE, HeaderValue::from_static(result));
    h.insert(header::AGE, HeaderValue::from(age.as_secs()));
    response
}

/// A GET a warmed entry may answer ([`warmed`]): from that entry while it
/// is fresh and fits the request; otherwise as any other read (the site,
/// then `cache_serve`'s own entry). When that fails for want of the site,
/// the warmed entry within `max_stale` is served `STALE`, and an issue
/// holding only some of the requested fields `STALE-PARTIAL`.
async fn from_warmed(
    app: &App,
    source: Source,
    category: Category,
    key: String,
    path: SafePath,
    query: Option<&str>,
    hot: Option<(&str, i64)>,
) -> Response {
    let versions = Versions::of(path.version.unwrap_or(2), app.deployment);
    let self_url = app.upstream.url_of(&path);
    let fit = |value: &str| {
        let mut fields_list = || {
            app.peek(Category::Field, warmed::FIELDS_LIST)
                .map(|e| e.value)
        };
        warmed::fit(&source, value, versions, &self_url, &mut fields_list)
    };
    let now = chrono::Utc::now().timestamp_millis();
    let warm = app.peek(source.category(), source.key());
    let age = |fetched_at: i64| Duration::from_millis(u64::try_from(now - fetched_at).unwrap_or(0));
    if let Some(entry) = &warm
        && now < entry.expires_at
        && let Fit::Whole(body) = fit(&entry.value)
    {
        // Counted as the hit it is (the look above was not counted).
        app.read.count_hit(source.category(), source.key());
        let body = Bytes::from(body);
        if let Some((target, version)) = hot {
            app.hot.put(
                target,
                version,
                HotAnswer {
                    body: body.clone(),
                    fetched_at: entry.fetched_at,
                    until: entry.expires_at,
                    category: source.category(),
                    key: source.key().into(),
                },
            );
        }
        return cached_json(body, "HIT", age(entry.fetched_at));
    }
    let read = read_through(app, category, &key, path, query).await;
    if let (Some((target, version)), Ok(value)) = (hot, &read)
        && matches!(value.origin, Origin::Cache)
        && value.is_fresh()
    {
        // The warmed entry did not answer; it cannot start to before a
        // commit, which drops the copy.
        app.keep_hot(target, version, category, &key);
    }
    let site_failed = match &read {
        Ok(value) => matches!(
            value.origin,
            Origin::StaleAfterError(_) | Origin::StaleWhileRefreshing
        ),
        Err(e) => site_answer(e).is_none_or(|a| a.status.is_server_error()),
    };
    let max_stale = app.read.options().max_stale.as_millis() as i64;
    let fallback = warm
        .filter(|_| site_failed)
        .filter(|e| now - e.expires_at <= max_stale)
        // Newer than the stale answer the read found, if it found one.
        .filter(|e| {
            read.as_ref().is_err() || read.as_ref().is_ok_and(|v| e.fetched_at > v.fetched_at)
        })
        .map(|e| (fit(&e.value), e.fetched_at));
    match (fallback, read) {
        (Some((Fit::Whole(body), at)), _) => {
            tracing::warn!(
                key = logged(&key),
                "the site failed; served the warmed entry stale"
            );
            cached_json(body, "STALE", age(at))
        }
        (Some((Fit::Partial(body), at)), Err(_)) => {
            tracing::warn!(
                key = logged(&key),
                "the site failed; served the warmed issue's cached fields, fewer than asked"
            );
            cached_json(body, "STALE-PARTIAL", age(at))
        }
        (_, read) => answer_read(read, &key),
    }
}

/// Anything the cache does not answer: sent to the site unchanged; a
/// successful write first drops what it touched.
async fn forward(
    app: &Arc<App>,
    method: Method,
    path: &SafePath,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let is_write =
        !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) && !route::is_search(path);
    let _writing = match is_write {
        true => Some(app.write_gate.read().await),
        false => None,
    };
    if is_write {
        app.writes.fetch_add(1, Ordering::SeqCst);
    }
    let writes_before = app.writes.load(Ordering::SeqCst);
    let opened = match app.upstream.open(method, path, query, headers, body).await {
        Ok(opened) => opened,
        Err(e) => return site_failure(&e),
    };
    let succeeded = opened.status.is_success();
    // A search answer whose issues may refresh the cache is read whole
    // (up to `max_response`); every other answer goes on as it comes, of
    // any size (an attachment, say).
    let response = match succeeded && route::is_entry_version_search(path, app.deployment) {
        true => match opened.read(app.upstream.max_response()).await {
            Ok(answer) => {
                refresh_from_search(app, &answer.body, writes_before).await;
                relay(answer, "BYPASS")
            }
            Err(e) => return site_failure(&e),
        },
        false => {
            let (status, headers, body) = opened.streamed();
            relay_body(status, headers, body, "BYPASS")
        }
    };
    // The site has done the write once its answer's head is here: the
    // entries it touched go before the client sees that head.
    if is_write && succeeded {
        app.hot.clear();
        // A write by numeric id: the warm keeps the issue under its key,
        // which only the entry's value tells (the cache still holds it
        // after a delete at the site).
        let written_keys = match route::issue_id(path) {
            Some(id) => app.warmed_keys_of(id).await,
            None => Vec::new(),
        };
        let by_key = written_keys
            .iter()
            .flat_map(|key| route::invalidated_by_issue_write(key));
        for (category, pattern) in route::invalidated_by_write(path).into_iter().chain(by_key) {
            if let Err(e) = app.read.invalidate(category, &pattern).await {
                // The write happened; the client must not read it back
                // stale: say so rather than answer 2xx.
                tracing::error!("cannot drop {category} entries after a write: {e}");
                return refusal(
                    StatusCode::BAD_GATEWAY,
                    "the write went through, but the cache could not drop the entries it touched; reads may be stale",
                );
            }
        }
    }
    response
}

/// A forwarded request the site did not answer, or answered with more
/// than the server takes: 502, in Jira's error shape.
fn site_failure(e: &SiteError) -> Response {
    let mut response = refusal(StatusCode::BAD_GATEWAY, &e.to_string());
    response
        .headers_mut()
        .insert(X_CACHE, HeaderValue::from_static("BYPASS"));
    response
}

/// The issues of a search answer refresh their warmed entries, where the
/// answer covers what each entry holds ([`warmed::refreshed_issue`]); an
/// issue whose `updated` moved also loses the whole answers `cache_serve`
/// kept for it (`serve:` keys), which the next read fetches anew. Nothing
/// is refreshed if a write started since the search was sent, or is under
/// way: its answer may predate the write, and a client must never read its
/// own write back stale. Best effort: a failure only leaves the entries as
/// they were.
async fn refresh_from_search(app: &App, body: &[u8], writes_before: u64) {
    #[derive(serde::Deserialize)]
    struct SearchAnswer<'a> {
        #[serde(borrow, default)]
        issues: Vec<&'a serde_json::value::RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Keyed {
        key: Option<String>,
    }
    let Ok(answer) = serde_json::from_slice::<SearchAnswer>(body) else {
        return;
    };
    let mut refreshed = Vec::new();
    let mut moved = Vec::new();
    for issue in answer.issues {
        let Some(key) = serde_json::from_str::<Keyed>(issue.get())
            .ok()
            .and_then(|k| k.key)
            .map(|k| k.to_ascii_uppercase())
        else {
            continue;
        };
        let Some(entry) = app.peek(Category::Issue, &key) else {
            continue;
        };
        let Some(value) = warmed::refreshed_issue(&entry.value, entry.updated_at, issue.get())
        else {
            continue;
        };
        if value != entry.value {
            moved.push(key.clone());
        }
        refreshed.push((key, value));
    }
    if refreshed.is_empty() {
        return;
    }
    let Ok(_alone) = app.write_gate.try_write() else {
        return;
    };
    if app.writes.load(Ordering::SeqCst) != writes_before {
        return;
    }
    if let Err(e) = app.read.store_fetched(Category::Issue, refreshed).await {
        tracing::warn!("cannot refresh issues from a search answer: {e}");
        return;
    }
    app.hot.clear();
    for key in moved {
        let key = route::glob_escape(&key);
        for pattern in [
            format!("{}*/issue/{key}", route::SERVE_PREFIX),
            format!("{}*/issue/{key}[?/]*", route::SERVE_PREFIX),
        ] {
            if let Err(e) = app.read.invalidate(Category::Issue, &pattern).await {
                tracing::warn!("cannot drop the answers kept for a changed issue: {e}");
            }
        }
    }
}

fn json_accept() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    h
}

/// The site's answer, passed on.
fn relay(answer: Answer, result: &'static str) -> Response {
    relay_body(
        answer.status,
        answer.headers,
        Body::from(answer.body),
        result,
    )
}

/// An answer of the site passed on with `body`, marked `result`.
fn relay_body(
    status: StatusCode,
    headers: HeaderMap,
    body: Body,
    result: &'static str,
) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
        .headers_mut()
        .insert(X_CACHE, HeaderValue::from_static(result));
    response
}

/// An error of `cache_serve` itself, in Jira's error shape.
fn refusal(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({
        "errorMessages": [format!("cache_serve: {message}")],
        "errors": {},
    });
    (
        status,
        [(header::CONTENT_TYPE, JSON_TYPE)],
        body.to_string(),
    )
        .into_response()
}

/// Why a fetch for the cache failed.
#[derive(Debug, thiserror::Error)]
enum FetchFailure {
    #[error(transparent)]
    Site(SiteError),
    #[error("{0}")]
    Answer(Answer),
    #[error("the site's answer is not UTF-8 text")]
    NotText,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_past_its_time_gets_504_in_jiras_error_shape() {
        let router = Router::new()
            .fallback(std::future::pending::<Response>)
            .layer(middleware::from_fn_with_state(
                Duration::from_millis(50),
                time_limit,
            ));
        let request = Request::builder()
            .uri("/rest/api/3/field")
            .body(Body::empty())
            .unwrap();
        let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(response.headers()[header::CONTENT_TYPE], JSON_TYPE);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            json["errorMessages"][0]
                .as_str()
                .is_some_and(|m| m.starts_with("cache_serve: ")),
            "{json}"
        );
    }
}
