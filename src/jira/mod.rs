//! The Jira REST client: Cloud (v3, email + API token) and Data Center (v2,
//! bearer token), one paging primitive per list shape, one retry policy, a
//! shared rate limiter. Facts it gets right are in `JIRA_API.md`.

mod adaptive;
pub(crate) mod client;
mod error;
mod issues;
mod metadata;
mod paging;
mod projects;
mod retry;
mod server;
mod users;

pub use adaptive::{AdaptiveRate, RateStats, Signal};
pub use client::{Auth, ClientConfig, JiraClient, RequestStats, Transport};
pub use error::JiraError;
pub use issues::{BULKFETCH_MAX, BulkAnswer, DC_SEARCH_PAGE, KEY_CENSUS_PAGE, SEARCH_JQL_PAGE};
pub use metadata::Metadata;
pub use paging::{
    End, Identity, Item, Listing, Pager, Style, WINDOW_LIMIT, by_id, by_key, by_user,
};
pub use projects::PROJECT_KEYS_PER_REQUEST;
pub use retry::{ConnectRetry, ConnectRetryHook, Gate, RetryPolicy, parse_retry_after};
pub use server::{Myself, ServerInfo};
pub use users::DC_ASSIGNABLE_CAP;
