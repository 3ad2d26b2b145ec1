//! What can go wrong talking to Jira, as variants a user can act on.
//!
//! Every message is one line that names the endpoint and the cause; none of
//! them ever contains a credential (the client never puts one in a URL, and
//! bodies of error answers are reduced to Jira's own `errorMessages`).

use std::time::Duration;

/// An error from the Jira client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JiraError {
    /// 401: the credentials were refused. Never retried.
    #[error("{endpoint}: Jira refused the credentials (HTTP 401){}; check the token and, on Cloud, the email it belongs to", detail(.message))]
    Unauthorized {
        /// The request path.
        endpoint: String,
        /// Jira's own message, if it sent one.
        message: Option<String>,
    },
    /// 403: authenticated, but not allowed. Never retried.
    #[error("{endpoint}: Jira answered 403 Forbidden{}; the token's user lacks permission for this (ask a Jira admin) or the site blocks API tokens", detail(.message))]
    Forbidden {
        /// The request path.
        endpoint: String,
        /// Jira's own message, if it sent one.
        message: Option<String>,
    },
    /// 404: the resource does not exist (or is invisible to this user).
    #[error("{endpoint}: not found (HTTP 404){}; check that the profile's `url` is the Jira base URL (with any context path, e.g. /jira) and its `deployment`", detail(.message))]
    NotFound {
        /// The request path.
        endpoint: String,
        /// Jira's own message, if it sent one.
        message: Option<String>,
    },
    /// 410: an endpoint Jira has removed (the old `/search` on Cloud).
    #[error("{endpoint}: Jira says this endpoint is gone (HTTP 410){}; a Cloud site answers this to Data Center requests: check `deployment` in the profile (or remove it to probe)", detail(.message))]
    Gone {
        /// The request path.
        endpoint: String,
        /// Jira's own message, if it sent one.
        message: Option<String>,
    },
    /// Any other non-success answer that is not retried or ran out of retries.
    #[error("{endpoint}: HTTP {status}{}; {}", detail_list(.messages), status_hint(*.status))]
    Api {
        /// The request path.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// Jira's `errorMessages` and `errors` values.
        messages: Vec<String>,
    },
    /// The site keeps throttling: a `Retry-After` above the limit, or the
    /// retry budget spent on 429/503 answers.
    #[error(
        "{endpoint}: the site is throttling requests ({reason}); lower `rate_limit` / `concurrency` in the profile, or warm at a quieter time"
    )]
    RateLimited {
        /// The request path.
        endpoint: String,
        /// The last `Retry-After`, if any.
        retry_after: Option<Duration>,
        /// Why we stopped retrying.
        reason: String,
    },
    /// No answer within the profile's `timeout`, on every attempt.
    #[error("{endpoint}: no answer within {} ({attempts} attempts); the site is slow or unreachable: raise `timeout` in the profile or try later", humantime::format_duration(*.timeout))]
    Timeout {
        /// The request path.
        endpoint: String,
        /// The per-request timeout.
        timeout: Duration,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The connection failed (DNS, refused, reset, TLS) on every attempt.
    /// One short line that names the site once (the cause leaves out the
    /// URL the transport's own message repeats).
    #[error(
        "cannot connect to {site}: {message}; check the profile's `url`, the network and any proxy settings"
    )]
    Connect {
        /// The site's base URL.
        site: String,
        /// The transport's description of the failure.
        message: String,
    },
    /// A 200 answer that is not JSON: typically an SSO or proxy login page.
    #[error(
        "{endpoint}: expected JSON but got {content_type}; this is usually a single sign-on or proxy login page: check the profile's `url` (it must be the Jira base URL) and that API tokens are allowed past the proxy"
    )]
    NotJson {
        /// The request path.
        endpoint: String,
        /// The content type the server claimed.
        content_type: String,
    },
    /// The body could not be read as the expected JSON shape (e.g. cut off).
    #[error(
        "{endpoint}: the answer could not be read as JSON ({message}); check that the profile's `url` is the Jira base URL, or try again if a proxy cut the answer short"
    )]
    Decode {
        /// The request path.
        endpoint: String,
        /// The parser's message.
        message: String,
    },
    /// A success body longer than the profile's `max_response`: read up to
    /// the cap, then dropped. Not retried (the next answer would be as long).
    #[error(
        "{endpoint}: the answer is larger than max_response ({}); the site sent more than this profile accepts: raise `max_response` in the profile if that is expected, or check the profile's `url`",
        crate::jira::error::bytes(*.limit)
    )]
    TooLarge {
        /// The request path.
        endpoint: String,
        /// The cap, in bytes.
        limit: u64,
    },
    /// The server's paging misbehaved (a repeated token, no end in sight).
    #[error(
        "{endpoint}: paging stopped: {message}; what came is cached and nothing was removed: try again later, or tell the site's admin"
    )]
    Paging {
        /// The request path.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
    /// A redirect to another origin than the site's (or too many).
    #[error(
        "{endpoint}: the site redirected to {target}; nothing from there is cached: set `url` to the address Jira really answers on"
    )]
    Redirect {
        /// The request path.
        endpoint: String,
        /// Where the redirect pointed (without credentials or query), and
        /// why it was not followed.
        target: String,
    },
    /// A page that breaks the shape the spec gives it (a negative `total`,
    /// a `startAt` that is not a number): the site's answer, not our URL,
    /// is at fault.
    #[error(
        "{endpoint}: the site sent an invalid page ({message}); what came is cached and nothing was removed: tell the site's admin"
    )]
    InvalidPage {
        /// The request path.
        endpoint: String,
        /// What is invalid.
        message: String,
    },
    /// The client could not be built (e.g. an unreadable CA file).
    #[error("{0}")]
    Setup(String),
}

/// A byte count as a person reads it (`64 MiB`).
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Whether a request path is the account's own identity.
fn is_myself(endpoint: &str) -> bool {
    endpoint
        .split('?')
        .next()
        .unwrap_or("")
        .ends_with("/myself")
}

fn detail(message: &Option<String>) -> String {
    match message {
        // The server's sentence ends with its own full stop; ours goes on
        // after a `;` (not `operation.; check the token`).
        Some(m) if !m.trim().is_empty() => format!(": {}", m.trim().trim_end_matches('.')),
        _ => String::new(),
    }
}

/// The next step after a status the client does not retry (or stopped
/// retrying).
fn status_hint(status: u16) -> &'static str {
    match status {
        500..=599 => {
            "the site kept failing after retries: try again later, or tell the site's admin"
        }
        400 => {
            "Jira rejected the request as above: for --jql, check the query in Jira's issue search"
        }
        _ => "Jira rejected the request as above",
    }
}

fn detail_list(messages: &[String]) -> String {
    if messages.is_empty() {
        String::new()
    } else {
        let trimmed: Vec<&str> = messages
            .iter()
            .map(|m| m.trim().trim_end_matches('.'))
            .collect();
        format!(": {}", trimmed.join("; "))
    }
}

impl JiraError {
    /// Whether the credentials were refused (exit 3): a 401, or a 403 on
    /// the account's own identity (`/myself`). Any other 403 belongs to the
    /// resource that answered it (see [`JiraError::is_forbidden`]).
    pub fn is_auth(&self) -> bool {
        match self {
            JiraError::Unauthorized { .. } => true,
            JiraError::Forbidden { endpoint, .. } => is_myself(endpoint),
            _ => false,
        }
    }

    /// Whether one resource was refused to this account (a 403 anywhere
    /// but `/myself`): that part fails, the rest of the run goes on.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, JiraError::Forbidden { endpoint, .. } if !is_myself(endpoint))
    }

    /// Whether the client's own configuration is at fault (a CA file, a
    /// token that cannot be a header): exit 3, like a profile error.
    pub fn is_setup(&self) -> bool {
        matches!(self, JiraError::Setup(_))
    }

    /// Whether the site could not be reached at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, JiraError::Connect { .. } | JiraError::Timeout { .. })
    }

    /// Whether the site was throttling us.
    pub fn is_throttled(&self) -> bool {
        matches!(self, JiraError::RateLimited { .. })
    }
}
