//! The one way `cache_serve` talks to the site: the profile's URL joined
//! with a checked path, the profile's own credentials, no redirect followed
//! (a 3xx goes back to the client as it came), and only the headers a Jira
//! client needs passed on either way.

use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::profile::{Credentials, Profile};

use super::route::SafePath;

/// Request headers passed to the site (never `Authorization`, `Cookie` or
/// `Host`: the site gets the profile's credentials and its own host).
const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "x-atlassian-token",
    "x-experimentalapi",
    "x-force-accept-language",
];

/// Answer headers passed back to the client.
const FORWARDED_ANSWER_HEADERS: &[&str] = &[
    "content-type",
    "location",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];

/// An answer of the site.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// The headers worth passing on.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the site answered {}", self.status)
    }
}

impl std::error::Error for Answer {}

/// Why the site gave no answer, or none the server takes.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// No answer: the connection failed, timed out or broke.
    #[error("the site could not be reached: {0}")]
    Unreachable(String),
    /// An answer the server will not pass on (one compressed unasked).
    #[error("{0}")]
    Refused(String),
    /// An answer past the profile's `max_response`, which is not kept.
    #[error("the site's answer is larger than max_response ({0})")]
    TooLarge(String),
}

/// An answer of the site whose body is still to come.
pub struct Opened {
    /// Its status.
    pub status: StatusCode,
    /// The headers worth passing on.
    pub headers: HeaderMap,
    response: reqwest::Response,
    /// The profile's `max_response`: how much of a JSON answer is held
    /// whole when streamed, so that escaped secrets are found too.
    max_response: u64,
}

impl Opened {
    /// Reads the whole body, up to `cap` bytes.
    pub async fn read(self, cap: u64) -> Result<Answer, SiteError> {
        use crate::jira::client::{Body as Read, read_capped};
        let mut body = match read_capped(self.response, cap).await {
            Ok(Read::Whole(body)) => body,
            Ok(Read::Cut(_)) => {
                return Err(SiteError::TooLarge(crate::warm::format_bytes(cap)));
            }
            Err(e) => return Err(SiteError::Unreachable(error_chain(&e))),
        };
        crate::scrub::remove_secrets_from_data(&mut body);
        Ok(Answer {
            status: self.status,
            headers: self.headers,
            body: Bytes::from(body),
        })
    }

    /// The answer with its body passed on as it comes, of any size, the
    /// operator's credentials removed from it as from a whole answer. A
    /// JSON answer is held whole up to `max_response` first: a secret
    /// escaped inside a JSON string is only found by reading the string
    /// from its opening quote, which an earlier chunk may hold.
    pub fn streamed(self) -> (StatusCode, HeaderMap, Body) {
        let json = self.headers.get(header::CONTENT_TYPE).is_some_and(|t| {
            String::from_utf8_lossy(t.as_bytes())
                .to_ascii_lowercase()
                .contains("json")
        });
        let whole_up_to = match json {
            true => usize::try_from(self.max_response).unwrap_or(usize::MAX),
            false => 0,
        };
        let body = Body::from_stream(without_secrets(self.response.bytes_stream(), whole_up_to));
        (self.status, self.headers, body)
    }
}

/// `chunks` with every secret [`crate::scrub::remove_secrets_from_data`]
/// removes taken out. Up to `whole_up_to` bytes the answer is held and
/// scrubbed whole at its end (JSON escapes included); past that it goes on
/// as it comes, with the plain forms removed even when split between two
/// chunks: the last `longest secret - 1` bytes of each are held back until
/// the next one (or the end) comes.
fn without_secrets<S, E>(
    chunks: S,
    whole_up_to: usize,
) -> impl futures::Stream<Item = Result<Bytes, E>> + Send
where
    S: futures::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Send + 'static,
{
    use futures::StreamExt as _;
    let hold = crate::scrub::longest_data_secret().saturating_sub(1);
    let chunks = chunks
        .map(Some)
        .chain(futures::stream::once(async { None }));
    // (held bytes, still holding the whole answer)
    chunks
        .scan(
            (Vec::new(), true),
            move |(held, whole): &mut (Vec<u8>, bool), chunk| {
                let out = match chunk {
                    Some(Ok(chunk)) => {
                        held.extend_from_slice(&chunk);
                        if *whole && held.len() <= whole_up_to {
                            Some(Ok(Bytes::new()))
                        } else {
                            *whole = false;
                            crate::scrub::remove_plain_secrets_from_data(held);
                            let keep = hold.min(held.len());
                            let ready: Vec<u8> = held.drain(..held.len() - keep).collect();
                            Some(Ok(Bytes::from(ready)))
                        }
                    }
                    Some(Err(e)) => Some(Err(e)),
                    None => {
                        let mut rest = std::mem::take(held);
                        match whole {
                            true => crate::scrub::remove_secrets_from_data(&mut rest),
                            false => crate::scrub::remove_plain_secrets_from_data(&mut rest),
                        }
                        Some(Ok(Bytes::from(rest)))
                    }
                };
                futures::future::ready(out)
            },
        )
        .filter(|item| futures::future::ready(!matches!(item, Ok(b) if b.is_empty())))
}

/// The site of one profile.
#[derive(Clone)]
pub struct Upstream {
    http: reqwest::Client,
    upload: reqwest::Client,
    base: url::Url,
    authorization: HeaderValue,
    max_response: u64,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// The profile's site, with these credentials.
    pub fn new(profile: &Profile, credentials: &Credentials) -> Result<Upstream, String> {
        let cert =
            match &profile.ca_file {
                Some(ca) => {
                    let pem = std::fs::read(ca)
                        .map_err(|e| format!("cannot read ca_file {}: {e}", ca.display()))?;
                    Some(reqwest::Certificate::from_pem(&pem).map_err(|_| {
                        format!("ca_file {} is not a PEM certificate", ca.display())
                    })?)
                }
                None => None,
            };
        let client = |read_timeout: Option<Duration>| {
            let mut builder = reqwest::Client::builder()
                .user_agent(concat!("jira-cache-serve/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(profile.timeout.min(Duration::from_secs(10)))
                // Each idle connection to the site holds a descriptor, as
                // the clients' connections do ([`super::Limits`]).
                .pool_max_idle_per_host(32)
                .pool_idle_timeout(Duration::from_secs(30));
            if let Some(timeout) = read_timeout {
                builder = builder.read_timeout(timeout);
            }
            if let Some(cert) = &cert {
                builder = builder.add_root_certificate(cert.clone());
            }
            builder
                .build()
                .map_err(|e| format!("cannot set up HTTP: {e}"))
        };
        // Each read, not the whole exchange: an answer passed on may take
        // longer, and the router's time limit bounds the wait for its head.
        let http = client(Some(profile.timeout))?;
        // reqwest's read timeout runs from the request's start, so it
        // would cut an upload longer than `timeout`: a request with a body
        // has only the router's (longer) limit.
        let upload = client(None)?;
        let mut authorization = HeaderValue::from_str(&super::auth::header_of(credentials))
            .map_err(|_| {
                "the token contains characters not allowed in an HTTP header".to_string()
            })?;
        authorization.set_sensitive(true);
        Ok(Upstream {
            http,
            upload,
            base: profile.url.clone(),
            authorization,
            max_response: profile.max_response,
        })
    }

    /// The profile's `max_response`: the largest answer read whole.
    pub fn max_response(&self) -> u64 {
        self.max_response
    }

    /// The site's URL of `path`, without a query (a page's `self` link).
    pub fn url_of(&self, path: &SafePath) -> String {
        match self.base.join(path.path.trim_start_matches('/')) {
            Ok(url) => url.to_string(),
            Err(_) => path.path.clone(),
        }
    }

    /// Sends one request to the site, its body streamed as it comes, and
    /// reads the site's whole answer, up to the profile's `max_response`.
    pub async fn send(
        &self,
        method: Method,
        path: &SafePath,
        query: Option<&str>,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Answer, SiteError> {
        self.open(method, path, query, headers, body)
            .await?
            .read(self.max_response)
            .await
    }

    /// Sends one request to the site, its body streamed as it comes, and
    /// returns once the answer's head has come.
    pub async fn open(
        &self,
        method: Method,
        path: &SafePath,
        query: Option<&str>,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Opened, SiteError> {
        let unreachable = |e: &dyn std::error::Error| SiteError::Unreachable(error_chain(e));
        // The path was checked: relative, no dot segments; joining it keeps
        // the site's host and context path.
        let mut url = self
            .base
            .join(path.path.trim_start_matches('/'))
            .map_err(|e| SiteError::Unreachable(format!("bad path: {e}")))?;
        url.set_query(query.filter(|q| !q.is_empty()));
        if url.origin() != self.base.origin() {
            return Err(SiteError::Unreachable("the path left the site".into()));
        }
        let size = body.size_hint().exact();
        let client = match size {
            Some(0) => &self.http,
            _ => &self.upload,
        };
        let mut request = client
            .request(method, url)
            .header(header::AUTHORIZATION, self.authorization.clone());
        for name in FORWARDED_REQUEST_HEADERS {
            if let Some(value) = headers.get(*name) {
                request = request.header(*name, value.clone());
            }
        }
        if size != Some(0) {
            // The client's length, when it gave one, frames the body to the
            // site too; else it goes chunked.
            if let Some(size) = size {
                request = request.header(header::CONTENT_LENGTH, size);
            }
            request = request.body(reqwest::Body::wrap_stream(body.into_data_stream()));
        }
        let response = request.send().await.map_err(|e| unreachable(&e))?;
        let status = response.status();
        // No encoding is asked for, so none is undone: a compressed answer
        // would reach the client without the header that says so (it is not
        // passed on), and past the scrubbing of the operator's credentials.
        // Every header of both kinds counts (a second one must not slip
        // past), and a transfer coding other than chunked is refused alike.
        let codings = |name: header::HeaderName, plain: &'static [&'static str]| {
            response
                .headers()
                .get_all(name)
                .iter()
                .flat_map(|v| {
                    String::from_utf8_lossy(v.as_bytes())
                        .split(',')
                        .map(|c| c.trim().to_ascii_lowercase())
                        .collect::<Vec<_>>()
                })
                .find(move |c| !c.is_empty() && !plain.contains(&c.as_str()))
        };
        if let Some(coding) = codings(header::CONTENT_ENCODING, &["identity"])
            .or_else(|| codings(header::TRANSFER_ENCODING, &["identity", "chunked"]))
        {
            return Err(SiteError::Refused(format!(
                "the site sent an answer encoded as {}, which was not asked for; nothing of it was passed on: check what stands between cache_serve and the site (a proxy?)",
                crate::scrub::for_terminal(&coding)
            )));
        }
        let mut kept = HeaderMap::new();
        for name in FORWARDED_ANSWER_HEADERS {
            if let Some(value) = response.headers().get(*name) {
                // The operator's credentials, echoed by the site, are not
                // the client's to see (it only holds the serve token).
                let mut bytes = value.as_bytes().to_vec();
                crate::scrub::remove_secrets_from_data(&mut bytes);
                if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                    kept.insert(*name, value);
                }
            }
        }
        if let Some(location) = kept.get(header::LOCATION)
            && !self.on_site(location)
        {
            // Never point a client off the profile's site.
            kept.remove(header::LOCATION);
        }
        Ok(Opened {
            status,
            headers: kept,
            response,
            max_response: self.max_response,
        })
    }

    fn on_site(&self, location: &HeaderValue) -> bool {
        let Ok(text) = location.to_str() else {
            return false;
        };
        match self.base.join(text) {
            Ok(url) => url.origin() == self.base.origin(),
            Err(_) => false,
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;

    #[tokio::test]
    async fn a_secret_split_between_chunks_is_still_taken_out_of_a_streamed_answer() {
        let secret = "stream-secret-0123456789";
        crate::scrub::register(secret);
        let body = format!(r#"{{"echo":"Basic {secret}","again":"{secret}","tail":"ok"}}"#);
        let bytes = body.as_bytes();
        for cut in 0..=bytes.len() {
            for second in [cut, (cut + 5).min(bytes.len())] {
                let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                    Ok(Bytes::copy_from_slice(&bytes[..cut])),
                    Ok(Bytes::copy_from_slice(&bytes[cut..second])),
                    Ok(Bytes::copy_from_slice(&bytes[second..])),
                ];
                let out: Vec<u8> = without_secrets(futures::stream::iter(chunks), 0)
                    .map(|c| c.unwrap())
                    .collect::<Vec<_>>()
                    .await
                    .concat();
                let out = String::from_utf8(out).unwrap();
                assert_eq!(
                    out, r#"{"echo":"Basic [redacted]","again":"[redacted]","tail":"ok"}"#,
                    "cut at {cut} and {second}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_json_answer_held_whole_loses_an_escaped_secret_split_anywhere() {
        let secret = "stream-secret-9876543210";
        crate::scrub::register(secret);
        let body = r#"{"pad":"xxxxxxxxxxxxxxxxxxxxxxxx","name":"\u0073tream-secret-9876543210"}"#;
        let bytes = body.as_bytes();
        for cut in 0..=bytes.len() {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::copy_from_slice(&bytes[..cut])),
                Ok(Bytes::copy_from_slice(&bytes[cut..])),
            ];
            let out: Vec<u8> = without_secrets(futures::stream::iter(chunks), 1 << 20)
                .map(|c| c.unwrap())
                .collect::<Vec<_>>()
                .await
                .concat();
            let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(value["name"], "[redacted]", "cut at {cut}");
        }
    }
}
