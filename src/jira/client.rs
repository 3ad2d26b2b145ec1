//! The HTTP core every resource goes through: authentication, the rate
//! limiter, the concurrency limit, the shared throttling gate, retries, and
//! turning answers into typed results or [`JiraError`]s.
//!
//! One [`JiraClient`] serves a whole run and is cheap to clone: clones share
//! the limiter, the gate, the permits and the counters, so "never faster
//! than the rate" holds across every worker, retries included.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::adaptive::{AdaptiveRate, RateStats, Signal, family, limit_reason, throttle_wait};
use super::error::JiraError;
use super::retry::{ConnectRetry, Decision, Gate, Outcome, RetryPolicy};
use crate::Deployment;

/// How the client authenticates. `Debug` never shows a token.
#[derive(Clone)]
pub enum Auth {
    /// No credentials: only for the anonymous `serverInfo` probe.
    None,
    /// HTTP Basic `email:api_token` (Cloud; old Server sites with a password).
    Basic {
        /// The account's email (or user name on Server).
        email: String,
        /// The API token or password.
        token: String,
    },
    /// `Authorization: Bearer <personal access token>` (Data Center 8.14+).
    Bearer {
        /// The personal access token.
        token: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::Basic { email, .. } => {
                write!(f, "Auth::Basic {{ email: {email:?}, token: [redacted] }}")
            }
            Auth::Bearer { .. } => f.write_str("Auth::Bearer { token: [redacted] }"),
        }
    }
}

impl Auth {
    /// The `Authorization` header, marked sensitive so that no log of
    /// reqwest or hyper prints it.
    fn header(&self) -> Result<Option<HeaderValue>, JiraError> {
        use base64::Engine as _;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let raw = match self {
            Auth::None => return Ok(None),
            Auth::Basic { email, token } => {
                crate::scrub::register_basic(email, token);
                format!("Basic {}", b64(format!("{email}:{token}").as_bytes()))
            }
            Auth::Bearer { token } => {
                crate::scrub::register(token);
                format!("Bearer {token}")
            }
        };
        let mut value = HeaderValue::from_str(&raw)
            .map_err(|_| JiraError::Setup("the token contains characters not allowed in an HTTP header; check it for stray newlines or spaces".into()))?;
        value.set_sensitive(true);
        Ok(Some(value))
    }
}

/// Everything needed to build a client; the binaries fill it from a profile.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The site's base URL (may carry a context path such as `/jira`).
    pub site: url::Url,
    /// Cloud or Data Center: decides the REST base path.
    pub deployment: Deployment,
    /// Credentials.
    pub auth: Auth,
    /// Requests per second; `None` is unlimited.
    pub rate_limit: Option<f64>,
    /// Requests allowed at once above the steady rate.
    pub burst: u32,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Extra root certificate (PEM) for sites with a private CA.
    pub ca_file: Option<PathBuf>,
    /// The largest success body read, in bytes (the profile's
    /// `max_response`); error bodies are cut at [`MAX_ERROR_BODY`].
    pub max_response: u64,
    /// The retry policy.
    pub retry: RetryPolicy,
}

/// How much of an error answer's body is read: enough for Jira's
/// `errorMessages`, never a server's 500 MiB.
pub const MAX_ERROR_BODY: u64 = 64 * 1024;

/// Counters of one client's traffic, shared by its clones.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RequestStats {
        RequestStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of the traffic counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestStats {
    /// HTTP requests sent (every attempt counts).
    pub requests: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// 429 / 503-with-`Retry-After` answers received.
    pub throttled: u64,
}

struct Inner {
    http: reqwest::Client,
    site: String,
    deployment: Deployment,
    auth: Option<HeaderValue>,
    limiter: Option<DefaultDirectRateLimiter>,
    /// The pace found from the site's answers, under `limiter`'s ceiling.
    adaptive: AdaptiveRate,
    gate: Gate,
    /// Requests in flight: never more than the profile's `concurrency`.
    permits: Semaphore,
    /// The ordinary lane to `permits`, as wide: every request passes it
    /// first except those of a [`JiraClient::ahead`] clone. So however many
    /// ordinary requests wait, none of them waits at `permits` itself, and
    /// a request sent ahead takes the first slot that frees.
    lane: Semaphore,
    policy: RetryPolicy,
    timeout: Duration,
    max_response: u64,
    counters: Counters,
    /// Set once the site's throttling ended a request for good (a
    /// `Retry-After` above the limit, or the retry budget spent on 429s):
    /// the contract ends the whole run then, so every later request of
    /// this client fails at once with the same error instead of asking again.
    halted: std::sync::OnceLock<JiraError>,
}

/// A Jira REST client for one site and one run.
#[derive(Clone)]
pub struct JiraClient {
    inner: Arc<Inner>,
    /// A second count of this clone's traffic (and its clones'), beside the
    /// client's own: see [`JiraClient::counted_apart`].
    apart: Option<Arc<Counters>>,
    /// Set on an [`JiraClient::ahead`] clone (and its clones).
    ahead: bool,
}

impl std::fmt::Debug for JiraClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraClient")
            .field("site", &self.inner.site)
            .field("deployment", &self.inner.deployment)
            .finish_non_exhaustive()
    }
}

/// Everything of a [`ClientConfig`] that goes into the HTTP transport
/// (reqwest's client): its connections, TLS roots, timeouts and redirects,
/// but not its credentials, pace or counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Transport {
    site: url::Url,
    timeout: Duration,
    concurrency: usize,
    ca_file: Option<PathBuf>,
    /// The `ca_file` as it was when this was made (inode, length, mtime):
    /// a file replaced since (while a warm waited for the lock) is read
    /// again, not trusted or refused as it was.
    ca_stamp: Option<(u64, u64, Option<std::time::SystemTime>)>,
}

/// A transport being built ahead of time ([`Transport::prepare`]).
type Prepared = (
    Transport,
    std::thread::JoinHandle<Result<reqwest::Client, JiraError>>,
);

/// One in a warm; a list so that two preparing at once (tests) keep both.
static PREPARED: std::sync::Mutex<Vec<Prepared>> = std::sync::Mutex::new(Vec::new());

impl Transport {
    /// The transport of a client for `site` with these settings.
    pub fn new(
        site: url::Url,
        timeout: Duration,
        concurrency: usize,
        ca_file: Option<PathBuf>,
    ) -> Transport {
        let ca_stamp = ca_file.as_deref().and_then(|ca| {
            use std::os::unix::fs::MetadataExt as _;
            let m = std::fs::metadata(ca).ok()?;
            Some((m.ino(), m.len(), m.modified().ok()))
        });
        Transport {
            site,
            timeout,
            concurrency,
            ca_file,
            ca_stamp,
        }
    }

    /// The transport `config` needs.
    pub fn of(config: &ClientConfig) -> Transport {
        Transport::new(
            config.site.clone(),
            config.timeout,
            config.concurrency,
            config.ca_file.clone(),
        )
    }

    /// Starts building this transport on a thread of its own, for the
    /// next [`JiraClient::new`] that needs it to take. Loading the system's
    /// root certificates takes about 20 ms of CPU; `cache_warm` starts it
    /// here while it takes its lock and opens the cache (issue 16). A
    /// transport prepared and never taken costs only that.
    pub fn prepare(self) {
        let Ok(mut prepared) = PREPARED.lock() else {
            return;
        };
        let transport = self.clone();
        if let Ok(handle) = std::thread::Builder::new()
            .name("jira-cache-tls".to_string())
            .spawn(move || transport.build())
        {
            prepared.push((self, handle));
        }
    }

    /// rustls, the profile's timeout and CA, proxies from the standard
    /// environment variables.
    fn build(&self) -> Result<reqwest::Client, JiraError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("jira-cache/", env!("CARGO_PKG_VERSION")))
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(self.concurrency.max(1))
            .redirect(same_origin_redirects(&self.site));
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                JiraError::Setup(format!(
                    "cannot read ca_file {}: {e}; fix the path in the profile",
                    ca.display()
                ))
            })?;
            // Parsing may succeed on text that holds no certificate at all.
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(JiraError::Setup(format!(
                    "ca_file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----); export the CA as PEM",
                    ca.display()
                )));
            }
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|_| {
                JiraError::Setup(format!(
                    "ca_file {} is not a PEM certificate; export the CA as PEM",
                    ca.display()
                ))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        builder
            .build()
            .map_err(|e| JiraError::Setup(format!("cannot set up HTTP: {}", error_chain(&e))))
    }
}

/// The transport prepared for `wanted`, once built; `None` when none was
/// prepared for it (one prepared for another stays).
fn take_prepared(wanted: &Transport) -> Option<Result<reqwest::Client, JiraError>> {
    let (_, handle) = {
        let mut prepared = PREPARED.lock().ok()?;
        let at = prepared.iter().position(|(t, _)| t == wanted)?;
        prepared.swap_remove(at)
    };
    handle.join().ok()
}

impl JiraClient {
    /// Builds the client: its [`Transport`] (the one prepared for it, if
    /// any), the rate limiter and permits.
    pub fn new(config: ClientConfig) -> Result<JiraClient, JiraError> {
        let transport = Transport::of(&config);
        let http = match take_prepared(&transport) {
            Some(http) => http,
            None => transport.build(),
        }?;
        let limiter = match config.rate_limit {
            Some(rate) if rate.is_finite() && rate > 0.0 => {
                // A rate so low that one request's period does not fit
                // (under one request in ~584 years) is refused, not a panic.
                let period = Duration::try_from_secs_f64(1.0 / rate)
                    .ok()
                    .filter(|p| u64::try_from(p.as_nanos()).is_ok())
                    .ok_or_else(|| {
                        JiraError::Setup(format!(
                            "rate_limit {rate:?} is too low to pace requests by; raise it (e.g. 0.1 is one request every 10 s)"
                        ))
                    })?;
                let burst = NonZeroU32::new(config.burst.max(1)).unwrap_or(NonZeroU32::MIN);
                let quota = Quota::with_period(period)
                    .ok_or_else(|| JiraError::Setup(format!("rate_limit {rate} is too high")))?
                    .allow_burst(burst);
                Some(RateLimiter::direct(quota))
            }
            _ => None,
        };
        Ok(JiraClient {
            inner: Arc::new(Inner {
                http,
                site: config.site.as_str().trim_end_matches('/').to_string(),
                deployment: config.deployment,
                auth: config.auth.header()?,
                limiter,
                adaptive: AdaptiveRate::new(config.rate_limit, config.burst),
                gate: Gate::default(),
                permits: Semaphore::new(config.concurrency.max(1)),
                lane: Semaphore::new(config.concurrency.max(1)),
                policy: config.retry,
                timeout: config.timeout,
                max_response: config.max_response,
                counters: Counters::default(),
                halted: std::sync::OnceLock::new(),
            }),
            apart: None,
            ahead: false,
        })
    }

    /// Cloud or Data Center.
    pub fn deployment(&self) -> Deployment {
        self.inner.deployment
    }

    /// The site's base URL, without a trailing slash.
    pub fn site(&self) -> &str {
        &self.inner.site
    }

    /// The traffic so far.
    pub fn stats(&self) -> RequestStats {
        self.inner.counters.snapshot()
    }

    /// A clone whose traffic is also counted on its own, from zero, in
    /// [`JiraClient::own_stats`], while [`JiraClient::stats`] goes on
    /// counting everything: one stage's figures while stages overlap. It
    /// shares everything else (connections, pace, permits, gate).
    pub fn counted_apart(&self) -> JiraClient {
        JiraClient {
            inner: self.inner.clone(),
            apart: Some(Arc::default()),
            ahead: self.ahead,
        }
    }

    /// A clone whose requests never queue behind this client's others:
    /// for a serial chain (a count, then a census page, then the next) that
    /// the rest of a stage waits on, while other stages keep many requests
    /// waiting. Its requests take the first request slot that frees, ahead
    /// of every ordinary request waiting; they still count, pace and stop
    /// at the gate as every other, and the site never sees more than
    /// `concurrency` requests at once. It keeps no slot, so it costs the
    /// others nothing while it has no request out.
    pub fn ahead(&self) -> JiraClient {
        JiraClient {
            ahead: true,
            ..self.clone()
        }
    }

    /// The traffic of this clone since [`JiraClient::counted_apart`] (for a
    /// client not counted apart, the same as [`JiraClient::stats`]).
    pub fn own_stats(&self) -> RequestStats {
        match &self.apart {
            Some(c) => c.snapshot(),
            None => self.stats(),
        }
    }

    /// Counts one event on the client and, when counted apart, on this clone.
    fn count(&self, which: fn(&Counters) -> &AtomicU64) {
        which(&self.inner.counters).fetch_add(1, Ordering::Relaxed);
        if let Some(apart) = &self.apart {
            which(apart).fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The pace the site allowed: the rate settled at, 429s, time paused.
    pub fn rate_stats(&self) -> RateStats {
        self.inner.adaptive.stats()
    }

    /// A path under the deployment's REST base: `api("/field")` is
    /// `/rest/api/3/field` on Cloud.
    pub fn api(&self, rel: &str) -> String {
        format!("{}{}", self.inner.deployment.api_base(), rel)
    }

    /// `GET path?query`, decoded as `T`.
    pub async fn get<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, JiraError> {
        self.request(Method::GET, path, query, None).await
    }

    /// `POST path` with a JSON body, decoded as `T`. Only used for reads
    /// (searches, bulk fetches), which are safe to retry.
    pub async fn post<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, JiraError> {
        self.request(Method::POST, path, &[], Some(body)).await
    }

    /// Sends one logical request as a task of its own, so that its answer
    /// is read (and its slot freed) by whichever runtime thread is free, and
    /// decoded there, rather than waiting for the caller's task, which may
    /// be busy decoding another answer. Dropping the returned future stops
    /// the request, as dropping it in place would.
    async fn request<T: DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, JiraError> {
        use tracing::Instrument;
        let span = tracing::debug_span!("request", method = %method, path = %path);
        let query = query
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect();
        let task = crate::task::Owned::spawn(
            self.clone()
                .with_retries(method, path.to_string(), query, body.cloned())
                .instrument(span),
        );
        task.join()
            .await
            .unwrap_or_else(|| Err(JiraError::Setup("the client was shut down".into())))
    }

    /// The body of [`JiraClient::request`]'s task: every attempt the retry
    /// policy allows.
    async fn with_retries<T: DeserializeOwned>(
        self,
        method: Method,
        path: String,
        query: Vec<(String, String)>,
        body: Option<serde_json::Value>,
    ) -> Result<T, JiraError> {
        let (path, query, body) = (path.as_str(), query.as_slice(), body.as_ref());
        let inner = &*self.inner;
        let url = format!("{}{}", inner.site, path);
        let mut attempt: u32 = 0;
        loop {
            if let Some(halt) = inner.halted.get() {
                return Err(halt.clone());
            }
            let result = self.attempt::<T>(&method, &url, path, query, body).await;
            let (outcome, error) = match result {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            match inner.policy.decide(attempt, outcome) {
                Decision::GiveUp => {
                    let error = final_error(error, outcome, attempt + 1, path);
                    if error.is_throttled() {
                        let _ = inner.halted.set(error.clone());
                    }
                    return Err(error);
                }
                Decision::RetryAfterGate(wait) => {
                    tracing::warn!(path, wait = ?wait, "throttled by the site; every worker pauses");
                    inner.gate.close_for(wait);
                    inner.adaptive.note_pause(wait);
                }
                Decision::RetryAfterBackoff(wait) => {
                    // Numbered from 1, as the final error counts them.
                    tracing::info!(
                        path,
                        failed_attempt = attempt + 1,
                        of = inner.policy.max_retries + 1,
                        wait = ?wait,
                        error = %error,
                        "retrying"
                    );
                    if let Some(hook) = &inner.policy.on_connect_retry
                        && let Some(cause) = unreachable_cause(&error)
                    {
                        (hook.0)(&ConnectRetry {
                            site: inner.site.clone(),
                            attempt: attempt + 2,
                            attempts: inner.policy.max_retries + 1,
                            cause,
                        });
                    }
                    tokio::time::sleep(wait).await;
                }
            }
            attempt += 1;
            self.count(|c| &c.retries);
        }
    }

    /// One attempt: waits at the gate and the limiter, holds a permit while
    /// the request is in flight, and classifies the result.
    async fn attempt<T: DeserializeOwned>(
        &self,
        method: &Method,
        url: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, (Outcome, JiraError)> {
        let inner = &*self.inner;
        let shut = |_| {
            (
                Outcome::Status(0),
                JiraError::Setup("the client was shut down".into()),
            )
        };
        let lane = match self.ahead {
            true => None,
            false => Some(inner.lane.acquire().await.map_err(shut)?),
        };
        let permit = inner.permits.acquire().await.map_err(shut)?;
        let held = std::time::Instant::now();
        inner.gate.wait_open().await;
        // The site's pace for this endpoint family first, then the
        // profile's ceiling over every request.
        let ticket = inner
            .adaptive
            .until_ready(&family(method.as_str(), path))
            .await;
        if let Some(limiter) = &inner.limiter {
            limiter.until_ready().await;
        }
        let mut req = inner
            .http
            .request(method.clone(), url)
            .header(header::ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(auth) = &inner.auth {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        self.count(|c| &c.requests);
        tracing::debug!(url, "request");
        let response = req.send().await.map_err(|e| {
            let error = self.transport_error(&e, path);
            // A redirect off the site is refused the same way every time,
            // and so is TLS spoken to a plain-HTTP port.
            let outcome = match &error {
                JiraError::Redirect { .. } => Outcome::Status(300),
                JiraError::Connect { message, .. } if message == NOT_TLS => Outcome::Status(0),
                _ => Outcome::Transport,
            };
            (outcome, error)
        })?;
        let status = response.status();
        if status.is_success() {
            let signal = Signal::from_headers(response.headers(), true);
            inner.adaptive.observe(&ticket, signal);
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let mut bytes = match read_capped(response, inner.max_response).await {
                Ok(Body::Whole(bytes)) => bytes,
                Ok(Body::Cut(_)) => {
                    return Err((
                        Outcome::Status(200),
                        JiraError::TooLarge {
                            endpoint: path.to_string(),
                            limit: inner.max_response,
                        },
                    ));
                }
                Err(e) => return Err((Outcome::Transport, self.transport_error(&e, path))),
            };
            // The site is done with this request: its slot goes to the
            // next one while the answer is decoded.
            drop((permit, lane));
            // How long the request held its slot: the site's time, plus
            // the wait for a thread to read the answer.
            tracing::debug!(
                bytes = bytes.len(),
                held_ms = %format_args!("{:.1}", held.elapsed().as_secs_f64() * 1000.0),
                "answer read"
            );
            // A site may echo the credentials it got (in a user's name, a
            // `self` link): they must not reach the cache or any output.
            crate::scrub::remove_secrets_from_data(&mut bytes);
            return decode(path, &content_type, &bytes);
        }
        let retry_after = throttle_wait(response.headers(), chrono::Utc::now());
        let limit_reason = limit_reason(response.headers());
        let throttled = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::SERVICE_UNAVAILABLE && retry_after.is_some());
        let signal = match throttled {
            true => Signal::Throttled,
            false => Signal::from_headers(response.headers(), false),
        };
        inner.adaptive.observe(&ticket, signal);
        // Only the head of an error body is read (a server may send any
        // amount); a failure to read it only loses the message.
        let messages = match read_capped(response, MAX_ERROR_BODY).await {
            Ok(Body::Whole(b)) => error_messages(&b),
            Ok(Body::Cut(_)) | Err(_) => Vec::new(),
        };
        tracing::debug!(status = status.as_u16(), ?messages, "error answer");
        if throttled {
            self.count(|c| &c.throttled);
            let reason = match retry_after {
                Some(w) => format!(
                    "HTTP {} with Retry-After {}",
                    status.as_u16(),
                    humantime::format_duration(w)
                ),
                None => format!("HTTP {}", status.as_u16()),
            };
            let reason = match limit_reason {
                Some(why) => format!("{reason} (RateLimit-Reason: {why})"),
                None => reason,
            };
            return Err((
                Outcome::Throttled(retry_after),
                JiraError::RateLimited {
                    endpoint: path.to_string(),
                    retry_after,
                    reason,
                },
            ));
        }
        Err((
            Outcome::Status(status.as_u16()),
            status_error(path, status.as_u16(), messages),
        ))
    }

    fn transport_error(&self, e: &reqwest::Error, path: &str) -> JiraError {
        if e.is_redirect() {
            // The policy's own error names the target; the reqwest error's
            // URL is the request that was redirected.
            let mut source = std::error::Error::source(e);
            let mut target = None;
            while let Some(s) = source {
                if let Some(off) = s.downcast_ref::<RedirectRefused>() {
                    target = Some(off.0.clone());
                    break;
                }
                source = s.source();
            }
            let target = target.unwrap_or_else(|| "(unknown)".into());
            JiraError::Redirect {
                endpoint: path.to_string(),
                target,
            }
        } else if e.is_timeout() {
            JiraError::Timeout {
                endpoint: path.to_string(),
                timeout: self.inner.timeout,
                attempts: 1,
            }
        } else if e.is_decode() || e.is_body() {
            JiraError::Decode {
                endpoint: path.to_string(),
                message: format!("the answer was cut off: {}", error_chain(e)),
            }
        } else {
            JiraError::Connect {
                site: self.inner.site.clone(),
                message: connect_cause(e),
            }
        }
    }
}

/// The cause of a failed connection when an `https://` site answered in
/// plain HTTP (rustls reads `HTTP/1.1 400` as a record of no known type;
/// OpenSSL says "wrong version number").
const NOT_TLS: &str = "the site answers plain HTTP, not TLS: is this site http?";

/// A failed connection's cause in a few words: the transport's innermost
/// message (`connection refused`), without reqwest's `error sending request
/// for url (…)` around it, which names the URL again.
fn connect_cause(e: &reqwest::Error) -> String {
    let mut messages = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        messages.push(s.to_string());
        source = s.source();
    }
    let all = messages.join(": ");
    if [
        "InvalidContentType",
        "wrong version number",
        "corrupt message",
    ]
    .iter()
    .any(|m| all.contains(m))
    {
        return NOT_TLS.to_string();
    }
    // The innermost message that says something (hyper's `client error
    // (Connect)` says nothing the next one does not).
    let deepest = messages
        .iter()
        .rev()
        .map(|m| m.trim())
        .find(|m| !m.is_empty())
        .unwrap_or("unknown error");
    // `Connection refused (os error 111)`: the number helps no one.
    let deepest = match deepest.rfind(" (os error ") {
        Some(at) if deepest.ends_with(')') => &deepest[..at],
        _ => deepest,
    };
    let mut chars = deepest.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => deepest.to_string(),
    }
}

/// A body read up to a cap.
pub(crate) enum Body {
    /// The whole body, within the cap.
    Whole(Vec<u8>),
    /// The first `cap` bytes of a longer body; the rest was never read.
    Cut(#[allow(dead_code)] Vec<u8>),
}

/// Reads a response body chunk by chunk, never holding more than `cap`
/// bytes: a `Content-Length` above the cap is refused before reading, a
/// body without one is cut as soon as it passes the cap.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    cap: u64,
) -> Result<Body, reqwest::Error> {
    if response.content_length().is_some_and(|n| n > cap) {
        return Ok(Body::Cut(Vec::new()));
    }
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok(Body::Cut(out));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Body::Whole(out))
}

/// Follows a redirect only within the site's origin (scheme, host and
/// port), at most 10 in a row: an answer from another origin would be
/// cached as the site's own data, and the credentials would go with the
/// request. Anything else stops with an error that names the target.
fn same_origin_redirects(site: &url::Url) -> reqwest::redirect::Policy {
    let origin = site.origin();
    reqwest::redirect::Policy::custom(move |attempt| {
        let target = redacted(attempt.url().as_str());
        if attempt.previous().len() >= 10 {
            attempt.error(RedirectRefused(format!(
                "{target}, the 11th redirect in a row (a loop?)"
            )))
        } else if attempt.url().origin() == origin {
            attempt.follow()
        } else {
            attempt.error(RedirectRefused(format!(
                "{target}, outside the profile's `url`"
            )))
        }
    })
}

/// Why the redirect policy refused to follow: the target it named.
#[derive(Debug)]
struct RedirectRefused(String);

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a redirect off the site, to {}", self.0)
    }
}

impl std::error::Error for RedirectRefused {}

/// A URL without its user info or query, fit for a message: any secret
/// the server put in its path is scrubbed, and control characters escaped.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            crate::scrub::for_terminal(&crate::scrub::scrub(u.as_str())).into_owned()
        }
        Err(_) => "(unreadable URL)".into(),
    }
}

/// Why the site could not be reached, when that is what `error` says.
fn unreachable_cause(error: &JiraError) -> Option<String> {
    match error {
        JiraError::Connect { message, .. } => Some(message.clone()),
        JiraError::Timeout { timeout, .. } => Some(format!(
            "no answer within {}",
            humantime::format_duration(*timeout)
        )),
        _ => None,
    }
}

/// The error to report once retries are over.
fn final_error(error: JiraError, outcome: Outcome, attempts: u32, path: &str) -> JiraError {
    match (error, outcome) {
        (
            JiraError::Timeout {
                endpoint, timeout, ..
            },
            _,
        ) => JiraError::Timeout {
            endpoint,
            timeout,
            attempts,
        },
        (
            JiraError::RateLimited {
                endpoint,
                retry_after,
                reason,
            },
            Outcome::Throttled(_),
        ) => {
            let reason = if attempts > 1 {
                format!("still {reason} after {attempts} attempts")
            } else {
                format!("{reason}, longer than we wait")
            };
            JiraError::RateLimited {
                endpoint,
                retry_after,
                reason,
            }
        }
        (JiraError::Connect { site, message }, _) if attempts > 1 => {
            tracing::debug!(path, attempts, "gave up connecting");
            JiraError::Connect {
                site,
                message: format!("{message} ({attempts} attempts)"),
            }
        }
        (e, _) => e,
    }
}

/// Decodes a success body, telling a login page from JSON and a truncated
/// body (retried) from a wrong shape (not retried).
fn decode<T: DeserializeOwned>(
    path: &str,
    content_type: &str,
    bytes: &[u8],
) -> Result<T, (Outcome, JiraError)> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if content_type.contains("html") || first == Some(b'<') {
        let shown = if content_type.is_empty() {
            "HTML".to_string()
        } else {
            content_type.to_string()
        };
        return Err((
            Outcome::Status(200),
            JiraError::NotJson {
                endpoint: path.to_string(),
                content_type: shown,
            },
        ));
    }
    serde_json::from_slice::<T>(bytes).map_err(|e| {
        let err = JiraError::Decode {
            endpoint: path.to_string(),
            message: e.to_string(),
        };
        if e.is_eof() {
            (Outcome::Transport, err)
        } else {
            (Outcome::Status(200), err)
        }
    })
}

/// Jira's error body: `{"errorMessages": [...], "errors": {"field": "msg"}}`.
fn error_messages(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct ErrorBody {
        #[serde(rename = "errorMessages")]
        error_messages: Vec<String>,
        errors: std::collections::BTreeMap<String, serde_json::Value>,
        message: Option<String>,
    }
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        return Vec::new();
    };
    let mut out = parsed.error_messages;
    for (field, msg) in parsed.errors {
        match msg {
            serde_json::Value::String(s) => out.push(format!("{field}: {s}")),
            other => out.push(format!("{field}: {other}")),
        }
    }
    out.extend(parsed.message);
    // A server may echo what it got, `Authorization` header included: the
    // messages go to output, logs and run history, so they are scrubbed here.
    out.iter_mut().for_each(|m| {
        if let std::borrow::Cow::Owned(clean) = crate::scrub::scrub(m) {
            *m = clean;
        }
        if let std::borrow::Cow::Owned(shown) = crate::scrub::for_terminal(m) {
            *m = shown;
        }
        if m.len() > 300 {
            let mut cut = 300;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
            m.push('…');
        }
    });
    out
}

fn status_error(path: &str, status: u16, messages: Vec<String>) -> JiraError {
    let endpoint = path.to_string();
    let message = (!messages.is_empty()).then(|| messages.join("; "));
    match status {
        401 => JiraError::Unauthorized { endpoint, message },
        403 => JiraError::Forbidden { endpoint, message },
        404 => JiraError::NotFound { endpoint, message },
        410 => JiraError::Gone { endpoint, message },
        _ => JiraError::Api {
            endpoint,
            status,
            messages,
        },
    }
}

/// An error and its causes on one line (reqwest hides the useful part in
/// the source chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transport no other test uses (the prepared one is process-wide).
    fn transport(site: &str, ca_file: Option<PathBuf>) -> Transport {
        Transport::new(
            url::Url::parse(site).unwrap(),
            Duration::from_secs(7),
            3,
            ca_file,
        )
    }

    #[test]
    fn a_prepared_transport_goes_to_the_client_that_needs_it_and_only_once() {
        let mine = transport("https://prepared.example.test/", None);
        mine.clone().prepare();
        let other = transport("https://other.example.test/", None);
        assert!(take_prepared(&other).is_none());
        // The one asked for another site stays prepared for its own.
        assert!(matches!(take_prepared(&mine), Some(Ok(_))));
        assert!(take_prepared(&mine).is_none(), "taken twice");
    }

    #[test]
    fn a_prepared_transport_keeps_the_ca_file_error_for_its_client() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let mine = transport("https://bad-ca.example.test/", Some(ca));
        mine.clone().prepare();
        let Some(Err(JiraError::Setup(message))) = take_prepared(&mine) else {
            panic!("the CA error was lost");
        };
        assert!(message.contains("holds no PEM certificate"), "{message}");
    }

    #[test]
    fn a_ca_file_replaced_after_the_transport_was_prepared_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let site = "https://rotated-ca.example.test/";
        transport(site, Some(ca.clone())).prepare();
        // Replaced while the warm waited for its lock.
        std::fs::write(dir.path().join("new.pem"), "still not one, but longer").unwrap();
        std::fs::rename(dir.path().join("new.pem"), &ca).unwrap();
        assert!(take_prepared(&transport(site, Some(ca))).is_none());
    }

    #[test]
    fn debug_of_auth_never_shows_the_token() {
        let basic = Auth::Basic {
            email: "a@b.c".into(),
            token: "s3cret-token".into(),
        };
        let bearer = Auth::Bearer {
            token: "s3cret-token".into(),
        };
        assert!(!format!("{basic:?}{bearer:?}").contains("s3cret"));
    }

    #[test]
    fn error_bodies_yield_jira_messages() {
        let body = br#"{"errorMessages":["Field 'x' does not exist"],"errors":{"jql":"bad"}}"#;
        assert_eq!(
            error_messages(body),
            vec![
                "Field 'x' does not exist".to_string(),
                "jql: bad".to_string()
            ]
        );
        assert!(error_messages(b"<html>").is_empty());
    }

    #[test]
    fn an_html_page_is_reported_as_not_json_and_not_retried() {
        let r = decode::<serde_json::Value>(
            "/rest/api/3/field",
            "text/html; charset=utf-8",
            b"<!DOCTYPE html><html>",
        );
        let (outcome, err) = r.unwrap_err();
        assert_eq!(outcome, Outcome::Status(200));
        assert!(matches!(err, JiraError::NotJson { .. }));
    }

    #[test]
    fn a_body_cut_off_mid_json_is_retried() {
        let (outcome, err) =
            decode::<serde_json::Value>("/x", "application/json", br#"{"values": [{"key": "A"#)
                .unwrap_err();
        assert_eq!(outcome, Outcome::Transport);
        assert!(matches!(err, JiraError::Decode { .. }));
    }
}
