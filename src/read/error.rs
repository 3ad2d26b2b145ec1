//! Why a read through the cache failed. Errors are cheap to clone, because
//! one upstream failure is handed to every caller that shared the fetch.

use std::sync::Arc;
use std::time::Duration;

use crate::Category;
use crate::cache::CacheError;
use crate::jira::JiraError;
use crate::site::ConnectError;

/// The error of an upstream fetch, shared by every caller that waited for it.
pub type FetchError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// An error reading through the cache.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The cache file could not be opened, read or written.
    #[error(transparent)]
    Cache(Arc<CacheError>),

    /// The site could not be connected to (profile incomplete, token
    /// missing, `serverInfo` probe failed).
    #[error(transparent)]
    Connect(Arc<ConnectError>),

    /// The fetch failed and nothing usable was cached.
    #[error("{category} {key}: fetching from Jira failed and nothing is cached: {cause}")]
    Fetch {
        /// The entry's category.
        category: Category,
        /// The entry's key.
        key: String,
        /// What the fetch said (also in the message, so not a `source`).
        cause: FetchError,
    },

    /// The fetch failed, and the cached value expired longer ago than
    /// `max_stale` allows serving it.
    #[error(
        "{category} {key}: fetching from Jira failed ({cause}) and the cached value expired {} ago, longer than max_stale ({}) allows; fix the cause, or raise `max_stale` in the profile",
        humantime::format_duration(*.expired_for),
        humantime::format_duration(*.max_stale)
    )]
    TooStale {
        /// The entry's category.
        category: Category,
        /// The entry's key.
        key: String,
        /// How long ago the cached value expired.
        expired_for: Duration,
        /// The profile's limit.
        max_stale: Duration,
        /// What the fetch said (also in the message, so not a `source`).
        cause: FetchError,
    },

    /// A key that cannot name the resource (e.g. a project key with `/`).
    #[error("`{key}` is not a valid {category} key: {reason}")]
    InvalidKey {
        /// The category asked for.
        category: Category,
        /// The key given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl ReadError {
    /// The upstream error of a failed fetch ([`ReadError::Fetch`] or
    /// [`ReadError::TooStale`]), to downcast, e.g. to [`JiraError`].
    pub fn fetch_error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            ReadError::Fetch { cause, .. } | ReadError::TooStale { cause, .. } => {
                Some(cause.as_ref())
            }
            _ => None,
        }
    }

    /// Whether Jira answered that the resource does not exist (404), or the
    /// fetch found nothing under the key.
    pub fn is_not_found(&self) -> bool {
        self.fetch_error()
            .and_then(|e| e.downcast_ref::<JiraError>())
            .is_some_and(|e| matches!(e, JiraError::NotFound { .. }))
    }
}

impl From<CacheError> for ReadError {
    fn from(e: CacheError) -> Self {
        ReadError::Cache(Arc::new(e))
    }
}

impl From<ConnectError> for ReadError {
    fn from(e: ConnectError) -> Self {
        ReadError::Connect(Arc::new(e))
    }
}
