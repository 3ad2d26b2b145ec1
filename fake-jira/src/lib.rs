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
//!
//! Every request is checked against Atlassian's official OpenAPI document
//! of the flavor (`shared/jira/openapi/`, see [`default_openapi_dir`]): an
//! undeclared parameter, a wrong type or array style, a missing required
//! parameter or a body its schema refuses is a [`Violation`], and dropping
//! a fake that saw one panics, so the test that sent it fails. A test that
//! sends invalid requests on purpose takes them with
//! [`FakeJira::take_violations`] or turns validation off with
//! [`FakeJiraBuilder::spec_validation`]. Where the documents are absent the
//! fake says so loudly and runs unchecked, except under `CI`, where it
//! refuses to start.
//!
//! Beyond honest answers, a fake can model what real sites do to clients:
//! `serverInfo` refusing anonymous requests
//! ([`FakeJiraBuilder::server_info_needs_auth`]), one project answering 403
//! ([`FakeJiraBuilder::forbid_project`]), Cloud's assignable-users window
//! over the first 1,000 users ([`PageCap::CloudAssignableReach`]),
//! systematic user names ([`UserNames`]).

#![warn(missing_docs)]

mod access;
mod api;
mod auth;
mod clock;
mod faults;
mod flavor;
mod jql;
mod json_text;
mod openapi;
mod pipeline;
mod rate_limit;
mod record;
mod server;
mod site;
mod timestamp;

pub use auth::Credentials;
pub use clock::Clock;
pub use faults::{Fault, FaultHandle, FaultKind, Gate, http_date};
pub use flavor::Flavor;
pub use openapi::{Violation, default_openapi_dir, openapi_file};
pub use record::{RateViolation, RecordedRequest};
pub use server::{ARRIVAL_JITTER, FakeJira, FakeJiraBuilder, PageCap};
pub use site::{GenerateOptions, Site, SiteHandle, SiteSize, UserNames};
pub use timestamp::{format_jira_time, parse_jira_time};
