//! Starting and stopping a fake: a builder for the knobs, a listener bound
//! before `start` returns, and a thread with its own tokio runtime, so the
//! same call works from a plain `#[test]` and from inside `#[tokio::test]`
//! (it never uses, nor blocks on, the caller's runtime).
//!
//! The accept loop is our own rather than `axum::serve`, for one fault:
//! [`FaultKind::Reset`](crate::FaultKind::Reset) must drop a connection
//! without answering, and only the loop that owns the connection can.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};
use tower::ServiceExt;

use crate::access::Forbidden;
use crate::auth::Credentials;
use crate::clock::Clock;
use crate::faults::{Fault, FaultHandle};
use crate::flavor::Flavor;
use crate::openapi::{OpenApi, Violation, default_openapi_dir, openapi_file};
use crate::rate_limit::TokenBucket;
use crate::record::{RateViolation, RecordedRequest, RequestLog, rate_violation};
use crate::site::{Site, SiteHandle};

/// A list endpoint whose largest page (or, for [`PageCap::DcUserSearch`],
/// largest answer) the server enforces, whatever `maxResults` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageCap {
    /// Cloud PageBeans: `/project/search`, `/priority/search`,
    /// `/resolution/search`. Default 100.
    PageBean,
    /// Cloud `/users/search`. Default 1000.
    CloudUserSearch,
    /// Cloud `/user/assignable/search`. Default 1000.
    CloudAssignable,
    /// Cloud `/user/assignable/search`: how far into the site's user list
    /// its windows reach. Default 1000: the spec says the server takes the
    /// users in `[startAt, startAt + maxResults)` "up to the thousandth
    /// user" and returns those of them that are assignable. Set it lower to
    /// get the effect on a small site.
    CloudAssignableReach,
    /// Cloud `/search/jql` when fields are asked for. Default 100; set it
    /// lower to get pages shorter than asked in the middle of a listing.
    SearchJql,
    /// Cloud `/search/jql` when only `id` / `key` are asked for. Default 5000.
    SearchJqlIds,
    /// Data Center `/search`. Default 1000 (Jira's
    /// `jira.search.views.default.max`).
    DcSearch,
    /// Data Center `/user/search`: the most users any one query can reach,
    /// whatever `startAt` says. Default 100, as Jira 10 (JRASERVER-78520):
    /// `startAt` ≥ 100 answers `[]`. Set 1000 for older versions.
    DcUserSearch,
    /// Data Center `/user/assignable/search` (no paging). Default 100.
    DcAssignable,
}

impl PageCap {
    /// The cap a fake uses unless its builder sets another.
    pub fn default_max(self) -> usize {
        match self {
            PageCap::PageBean => 100,
            PageCap::CloudUserSearch | PageCap::CloudAssignable | PageCap::CloudAssignableReach => {
                1000
            }
            PageCap::SearchJql => 100,
            PageCap::SearchJqlIds => 5000,
            PageCap::DcSearch => 1000,
            PageCap::DcUserSearch | PageCap::DcAssignable => 100,
        }
    }
}

/// Everything a request handler may need, shared by all connections.
pub(crate) struct App {
    pub(crate) flavor: Flavor,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base_url: String,
    pub(crate) site: SiteHandle,
    pub(crate) faults: FaultHandle,
    pub(crate) log: RequestLog,
    pub(crate) credentials: Credentials,
    pub(crate) latency: Duration,
    pub(crate) limiter: Option<Mutex<TokenBucket>>,
    /// The 429's `Retry-After`, when fixed; else the wait rounded up (≥ 1).
    pub(crate) retry_after: Option<u64>,
    /// Atlassian's rate-limit headers besides `Retry-After`.
    pub(crate) atlassian_headers: bool,
    /// Arrival times and the rate limit's time.
    pub(crate) clock: Clock,
    caps: BTreeMap<PageCap, usize>,
    /// Makes every `/search/jql` token distinct.
    pub(crate) token_serial: AtomicU64,
    /// `serverInfo` refuses anonymous requests (an SSO plugin or proxy).
    pub(crate) server_info_needs_auth: bool,
    /// Projects whose resources answer 403.
    pub(crate) forbidden: Forbidden,
    /// The OpenAPI document requests are checked against, if validation is on.
    pub(crate) spec: Option<Arc<OpenApi>>,
    /// What the requests got wrong, in arrival order.
    pub(crate) violations: Mutex<Vec<Violation>>,
    /// Also print each violation on stderr as it happens (the binary).
    print_violations: bool,
}

impl App {
    /// Checks a request against the spec, if validation is on, and records
    /// what it got wrong.
    pub(crate) fn validate(&self, method: &str, path: &str, query: &str, body: &[u8]) {
        let Some(spec) = &self.spec else {
            return;
        };
        let problems = spec.check(method, path, query, body);
        if problems.is_empty() {
            return;
        }
        let mut violations = self
            .violations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for problem in problems {
            let v = Violation {
                method: method.to_owned(),
                path: path.to_owned(),
                query: query.to_owned(),
                problem,
            };
            if self.print_violations {
                eprintln!("fake-jira: spec violation: {v}");
            }
            violations.push(v);
        }
    }
}

impl App {
    pub(crate) fn cap(&self, cap: PageCap) -> usize {
        self.caps.get(&cap).copied().unwrap_or(cap.default_max())
    }

    /// `http://127.0.0.1:PORT/rest/api/N`.
    pub(crate) fn api_url(&self) -> String {
        format!("{}{}", self.base_url, self.flavor.api_base())
    }
}

/// Configures a fake before it starts. Every knob has a default; see each.
#[derive(Debug, Clone)]
pub struct FakeJiraBuilder {
    flavor: Flavor,
    site: Option<Site>,
    credentials: Option<Credentials>,
    latency: Duration,
    rate_limit: Option<(f64, u32)>,
    retry_after: Option<u64>,
    atlassian_headers: bool,
    clock: Clock,
    caps: BTreeMap<PageCap, usize>,
    port: u16,
    faults: Vec<Fault>,
    server_info_needs_auth: bool,
    forbidden_projects: Vec<String>,
    spec_validation: bool,
    openapi_dir: Option<PathBuf>,
    print_violations: bool,
}

impl FakeJiraBuilder {
    /// The data to serve. Default: [`Site::small`] of the flavor.
    pub fn site(mut self, site: Site) -> Self {
        self.site = Some(site);
        self
    }

    /// The credentials accepted. Default: [`Credentials::default_for`] the flavor.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Added to every answer, refusals included. Default: none.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// A server-side token bucket: `burst` requests at once, refilled at
    /// `per_second`. Over it: 429 with `Retry-After` (whole seconds, at
    /// least 1, or [`FakeJiraBuilder::retry_after`]) and, unless
    /// [`FakeJiraBuilder::atlassian_rate_limit_headers`] turns them off,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining: 0`,
    /// `X-RateLimit-NearLimit: true`, `X-RateLimit-Reset` (ISO-8601),
    /// `RateLimit-Reason: jira-burst-based` and `Beta-Retry-After` (the
    /// same seconds). Admitted answers carry `X-RateLimit-Limit` and
    /// `X-RateLimit-Remaining`, and `X-RateLimit-NearLimit: true` under 20%.
    /// Default: no limit.
    pub fn rate_limit(mut self, per_second: f64, burst: u32) -> Self {
        self.rate_limit = Some((per_second, burst));
        self
    }

    /// The 429's `Retry-After` in whole seconds, whatever the bucket's wait
    /// (Jira Cloud often says 1). Default: the wait, rounded up, at least 1.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Whether rate-limited answers carry Atlassian's headers besides
    /// `Retry-After` (see [`FakeJiraBuilder::rate_limit`]). Default: on.
    /// Off plays a proxy or an older site that sends `Retry-After` only.
    pub fn atlassian_rate_limit_headers(mut self, on: bool) -> Self {
        self.atlassian_headers = on;
        self
    }

    /// The time source of arrival times and of the rate limit. Default:
    /// [`Clock::system`]. A test of the rate limit passes a
    /// [`Clock::manual`] and moves it, instead of sleeping.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Caps a list endpoint's pages at `max` items (see [`PageCap`]).
    pub fn page_cap(mut self, endpoint: PageCap, max: usize) -> Self {
        self.caps.insert(endpoint, max);
        self
    }

    /// The port on 127.0.0.1. Default 0: the OS picks a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Whether `serverInfo` answers 401 to requests without credentials, as
    /// sites behind SSO plugins or proxies do (it still answers with
    /// credentials). Default: false, `serverInfo` answers anonymously as a
    /// stock site does.
    pub fn server_info_needs_auth(mut self, needs_auth: bool) -> Self {
        self.server_info_needs_auth = needs_auth;
        self
    }

    /// A project the account may not see: its `/project/{key}`, its issues,
    /// its `/user/assignable/search` and any issue search whose JQL names
    /// it answer 403, while everything else works (see
    /// [`FakeJira::forbid_project`]). It still appears in project listings.
    pub fn forbid_project(mut self, key: impl Into<String>) -> Self {
        self.forbidden_projects.push(key.into());
        self
    }

    /// Whether every request is checked against the official OpenAPI
    /// document of the flavor (see [`FakeJira::violations`]). Default: on.
    /// A test that sends invalid requests on purpose turns it off, or takes
    /// the violations it expects with [`FakeJira::take_violations`].
    pub fn spec_validation(mut self, on: bool) -> Self {
        self.spec_validation = on;
        self
    }

    /// Where the OpenAPI documents are. Default: [`default_openapi_dir`].
    pub fn openapi_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.openapi_dir = Some(dir.into());
        self
    }

    /// Also print each violation on stderr as it happens. Default: off.
    pub fn print_violations(mut self, on: bool) -> Self {
        self.print_violations = on;
        self
    }

    /// A fault installed from the first request on (see [`FaultHandle::add`]).
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// Starts the fake and returns once it is listening.
    ///
    /// # Panics
    /// If the port cannot be bound or the server thread cannot start; use
    /// [`FakeJiraBuilder::try_start`] to handle that.
    pub fn start(self) -> FakeJira {
        match self.try_start() {
            Ok(jira) => jira,
            Err(e) => panic!("fake-jira could not start: {e}"),
        }
    }

    /// Starts the fake and returns once it is listening, or why it could not.
    ///
    /// With validation on and the OpenAPI documents absent, the fake runs
    /// without validation and says so loudly on stderr (once per process),
    /// unless the environment has `CI` set: there it is an error, because
    /// CI must validate.
    pub fn try_start(self) -> io::Result<FakeJira> {
        let spec = if self.spec_validation {
            load_spec(self.flavor, self.openapi_dir.as_deref())?
        } else {
            None
        };
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let url = format!("http://127.0.0.1:{port}");
        let faults = FaultHandle::default();
        for fault in self.faults {
            faults.add(fault);
        }
        let app = Arc::new(App {
            flavor: self.flavor,
            base_url: url.clone(),
            site: SiteHandle::new(self.site.unwrap_or_else(|| Site::small(self.flavor))),
            faults,
            log: RequestLog::default(),
            credentials: self
                .credentials
                .unwrap_or_else(|| Credentials::default_for(self.flavor)),
            latency: self.latency,
            limiter: self
                .rate_limit
                .map(|(rate, burst)| Mutex::new(TokenBucket::new(rate, burst, self.clock.now()))),
            retry_after: self.retry_after,
            atlassian_headers: self.atlassian_headers,
            clock: self.clock,
            caps: self.caps,
            token_serial: AtomicU64::new(1),
            server_info_needs_auth: self.server_info_needs_auth,
            forbidden: Forbidden::new(self.forbidden_projects),
            spec,
            violations: Mutex::new(Vec::new()),
            print_violations: self.print_violations,
        });
        let router = crate::api::router(Arc::clone(&app));
        let (stop, stopped) = oneshot::channel();
        let (ready_tx, ready) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("fake-jira-{port}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("fake-jira-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(serve(listener, router, stopped, ready_tx));
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other("the fake-jira thread ended early")),
        }
        Ok(FakeJira {
            app,
            port,
            url,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// A running fake Jira on 127.0.0.1. Dropping it stops the server and
/// closes every connection.
pub struct FakeJira {
    app: Arc<App>,
    port: u16,
    url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for FakeJira {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeJira")
            .field("flavor", &self.app.flavor)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// How much a request's arrival may lag its sending relative to another's,
/// on a loaded machine: the default slack of [`FakeJira::rate_violation`].
pub const ARRIVAL_JITTER: Duration = Duration::from_millis(10);

impl FakeJira {
    /// A builder for a fake of this flavor.
    pub fn builder(flavor: Flavor) -> FakeJiraBuilder {
        FakeJiraBuilder {
            flavor,
            site: None,
            credentials: None,
            latency: Duration::ZERO,
            rate_limit: None,
            retry_after: None,
            atlassian_headers: true,
            clock: Clock::system(),
            caps: BTreeMap::new(),
            port: 0,
            faults: Vec::new(),
            server_info_needs_auth: false,
            forbidden_projects: Vec::new(),
            spec_validation: true,
            openapi_dir: None,
            print_violations: false,
        }
    }

    /// The site URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The REST base URL: the site URL plus `/rest/api/3` (Cloud) or
    /// `/rest/api/2` (Data Center).
    pub fn api_url(&self) -> String {
        self.app.api_url()
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Which Jira this fake impersonates.
    pub fn flavor(&self) -> Flavor {
        self.app.flavor
    }

    /// The credentials this fake accepts.
    pub fn credentials(&self) -> &Credentials {
        &self.app.credentials
    }

    /// Every request received so far, in arrival order, with its status.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.app.log.snapshot()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.app.log.len()
    }

    /// How many requests were answered with this status (e.g. 429).
    pub fn count_status(&self, status: u16) -> usize {
        self.app
            .log
            .snapshot()
            .iter()
            .filter(|r| r.status == status)
            .count()
    }

    /// How many requests had a path starting with `path_prefix`.
    pub fn count_path(&self, path_prefix: &str) -> usize {
        self.app.log.count_path(path_prefix)
    }

    /// Checks the requests received against "never faster than the rate":
    /// at most `burst + per_second × t` requests in any window of `t`
    /// seconds. Returns the window that exceeds it most, if any. Arrival
    /// times carry scheduling jitter, so each window is judged as if it
    /// were [`ARRIVAL_JITTER`] longer; see [`FakeJira::rate_violation_within`].
    pub fn rate_violation(&self, per_second: f64, burst: u32) -> Option<RateViolation> {
        self.rate_violation_within(per_second, burst, ARRIVAL_JITTER)
    }

    /// [`FakeJira::rate_violation`] with an explicit allowance for arrival
    /// jitter (`Duration::ZERO` judges arrival times exactly).
    pub fn rate_violation_within(
        &self,
        per_second: f64,
        burst: u32,
        jitter: Duration,
    ) -> Option<RateViolation> {
        rate_violation(&self.app.log.snapshot(), per_second, burst, jitter)
    }

    /// Forgets the requests received so far.
    pub fn reset_requests(&self) {
        self.app.log.clear();
    }

    /// The served data, to read or change while the fake runs.
    pub fn site(&self) -> SiteHandle {
        self.app.site.clone()
    }

    /// The installed faults, to add or clear while the fake runs.
    pub fn faults(&self) -> FaultHandle {
        self.app.faults.clone()
    }

    /// Whether requests are being checked against the OpenAPI document.
    pub fn validates(&self) -> bool {
        self.app.spec.is_some()
    }

    /// Every way the requests so far differed from the OpenAPI document.
    pub fn violations(&self) -> Vec<Violation> {
        self.app
            .violations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The violations so far, forgotten: for a test that sends invalid
    /// requests on purpose and checks they were seen. Dropping the fake
    /// fails the test on violations not taken.
    pub fn take_violations(&self) -> Vec<Violation> {
        std::mem::take(
            &mut *self
                .app
                .violations
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Panics, listing them, if any request so far differed from the
    /// OpenAPI document. Dropping the fake does the same check.
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        if !violations.is_empty() {
            panic!("{}", violation_report(&violations));
        }
    }

    /// From the next request on, the project's own resources answer 403
    /// (see [`FakeJiraBuilder::forbid_project`]).
    pub fn forbid_project(&self, key: &str) {
        self.app.forbidden.set(key, true);
    }

    /// From the next request on, the project is visible again.
    pub fn allow_project(&self, key: &str) {
        self.app.forbidden.set(key, false);
    }
}

impl Drop for FakeJira {
    /// Stops the server, then fails the test if a request broke the spec
    /// (unless the test is failing already).
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if !std::thread::panicking() {
            let violations = self.take_violations();
            if !violations.is_empty() {
                panic!("{}", violation_report(&violations));
            }
        }
    }
}

fn violation_report(violations: &[Violation]) -> String {
    let mut report = format!(
        "fake-jira: {} request(s) broke the official OpenAPI document:",
        violations.len()
    );
    for v in violations.iter().take(50) {
        report.push_str("\n  ");
        report.push_str(&v.to_string());
    }
    if violations.len() > 50 {
        report.push_str(&format!("\n  ... and {} more", violations.len() - 50));
    }
    report
}

/// The flavor's document, or `None` (said loudly, an error in CI) when it
/// is absent.
fn load_spec(flavor: Flavor, dir: Option<&std::path::Path>) -> io::Result<Option<Arc<OpenApi>>> {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let explicit = dir.is_some();
    let dir = dir.map_or_else(default_openapi_dir, std::path::Path::to_path_buf);
    match OpenApi::load(flavor, &dir) {
        Ok(Some(spec)) => Ok(Some(spec)),
        Ok(None) => {
            let message = format!(
                "fake-jira: SPEC VALIDATION IS OFF: {} is not in {} (set FAKE_JIRA_OPENAPI_DIR, \
                 or put the shared directory beside the repository)",
                openapi_file(flavor),
                dir.display()
            );
            if explicit {
                return Err(io::Error::new(io::ErrorKind::NotFound, message));
            }
            if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{message}; CI must validate"),
                ));
            }
            if !WARNED.swap(true, Ordering::SeqCst) {
                eprintln!("{message}");
            }
            Ok(None)
        }
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the OpenAPI document cannot be used: {e}"),
        )),
    }
}

async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    mut stopped: oneshot::Receiver<()>,
    ready: mpsc::Sender<io::Result<()>>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, router.clone()));
                }
                // Out of file descriptors and the like: breathe, then go on.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

/// Serves one connection until the client closes it, or until a handler
/// fires its [`ConnectionKill`].
async fn connection(stream: TcpStream, router: Router) {
    let _ = stream.set_nodelay(true);
    let kill = ConnectionKill::default();
    let io = TokioIo::new(KillableStream {
        stream,
        kill: kill.clone(),
    });
    let for_requests = kill.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(for_requests.clone());
        router.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = kill.fired() => {}
    }
}

/// Lets a handler drop the connection its request came on, unanswered.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionKill(Arc<KillState>);

#[derive(Debug, Default)]
struct KillState {
    fired: AtomicBool,
    notify: Notify,
}

impl ConnectionKill {
    /// Drops the connection (with a TCP reset) as soon as its task runs.
    pub(crate) fn fire(&self) {
        self.0.fired.store(true, Ordering::SeqCst);
        self.0.notify.notify_one();
    }

    async fn fired(&self) {
        self.0.notify.notified().await;
    }

    fn is_fired(&self) -> bool {
        self.0.fired.load(Ordering::SeqCst)
    }
}

/// A TCP stream that closes with a reset (RST) rather than a FIN when its
/// connection was killed, as a crashed server or a proxy dropping it would.
struct KillableStream {
    stream: TcpStream,
    kill: ConnectionKill,
}

impl Drop for KillableStream {
    fn drop(&mut self) {
        if self.kill.is_fired() {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
