//! `fake_jira`: an in-process fake Jira, Cloud or Data Center, for the tests,
//! examples, benchmarks and the README's try-it path of `jira-cache`.
//!
//! It exists so that every client behaviour can be checked against real
//! shapes without a real site: it serves the endpoints the warm stages use
//! (`shared/JIRA_API.md`) with Jira's list shapes and stop rules, parses the
//! JQL clients send, enforces credentials and a server-side rate limit, and
//! lies or fails on request ([`Fault`]). Every request is recorded with the
//! status it got, so a test can assert what the client did.
//!
//! ```
//! use fake_jira::{Fault, FaultKind, FakeJira, Flavor, PageCap};
//!
//! let jira = FakeJira::builder(Flavor::Cloud)
//!     .page_cap(PageCap::SearchJql, 10)
//!     .start();
//! jira.faults().add(Fault::new("/rest/api/3/search/jql", FaultKind::retry_after(429, 1)).once());
//! // Point the client at jira.url() with Credentials::default_for(Flavor::Cloud),
//! // run it, then check what it did:
//! assert_eq!(jira.count_path("/rest/api/3/search/jql"), 0);
//! assert!(jira.rate_violation(10.0, 10).is_none());
//! ```
//!
//! [`FakeJira::builder`]`(..).start()` is synchronous: the server runs on its
//! own thread with its own tokio runtime, so it works the same from a plain
//! `#[test]` and from inside `#[tokio::test]`. Dropping the [`FakeJira`] stops
//! it and closes every connection, hung ones included.

#![warn(missing_docs)]

mod access;
mod api;
mod auth;
mod faults;
mod flavor;
mod jql;
mod json_text;
mod pipeline;
mod rate_limit;
mod record;
mod server;
mod site;
mod timestamp;

pub use auth::Credentials;
pub use faults::{Fault, FaultHandle, FaultKind, http_date};
pub use flavor::Flavor;
pub use record::{RateViolation, RecordedRequest};
pub use server::{ARRIVAL_JITTER, FakeJira, FakeJiraBuilder, PageCap};
pub use site::{GenerateOptions, Site, SiteHandle, SiteSize, UserNames};
pub use timestamp::{format_jira_time, parse_jira_time};
