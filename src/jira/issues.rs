//! Issues: JQL search (Cloud `/search/jql` with token paging, Data Center
//! `/search` with offsets) and fetching by key (Cloud `/issue/bulkfetch`,
//! Data Center `/issue/{key}`).
//!
//! The old Cloud `/search` answers 410 Gone; this module never calls it.

use serde::Deserialize;
use serde_json::json;

use super::client::JiraClient;
use super::error::JiraError;
use super::paging::{Item, Listing, Pager, Style, by_key};
use crate::Deployment;

/// The most keys one Cloud `/issue/bulkfetch` call takes.
pub const BULKFETCH_MAX: usize = 100;

impl JiraClient {
    /// The issues a (bounded) JQL query returns, with `fields`, up to `limit`.
    pub fn search(
        &self,
        jql: &str,
        fields: &[String],
        page_size: usize,
        limit: Option<usize>,
    ) -> Pager {
        let (path, style) = match self.deployment() {
            Deployment::Cloud => (self.api("/search/jql"), Style::Token),
            Deployment::DataCenter => (self.api("/search"), Style::OffsetSearch),
        };
        let listing = Listing::new(path, style, page_size, by_key)
            .body_field("jql", json!(jql))
            .body_field("fields", json!(fields))
            .limit(limit);
        Pager::new(self.clone(), listing)
    }

    /// The issues with these keys (missing ones are left out). Cloud asks
    /// `/issue/bulkfetch` in batches of [`BULKFETCH_MAX`]; Data Center asks
    /// `/issue/{key}` for each, concurrently up to the client's limit.
    pub async fn issues_by_keys(
        &self,
        keys: &[String],
        fields: &[String],
    ) -> Result<Vec<Item>, JiraError> {
        #[derive(Deserialize)]
        struct Bulk {
            #[serde(default)]
            issues: Vec<Item>,
        }
        let mut out = Vec::with_capacity(keys.len());
        match self.deployment() {
            Deployment::Cloud => {
                for batch in keys.chunks(BULKFETCH_MAX) {
                    let body = json!({ "issueIdsOrKeys": batch, "fields": fields });
                    let bulk: Bulk = self.post(&self.api("/issue/bulkfetch"), &body).await?;
                    out.extend(bulk.issues);
                }
            }
            Deployment::DataCenter => {
                let fields = fields.join(",");
                let fetches = keys.iter().map(|key| {
                    let path = self.api(&format!("/issue/{key}"));
                    let fields = fields.clone();
                    async move {
                        match self.get::<Item>(&path, &[("fields", fields)]).await {
                            Ok(item) => Ok(Some(item)),
                            Err(JiraError::NotFound { .. }) => Ok(None),
                            Err(e) => Err(e),
                        }
                    }
                });
                for item in futures::future::try_join_all(fetches).await? {
                    out.extend(item);
                }
            }
        }
        Ok(out)
    }
}

/// Keys asked per page of a Cloud key-only census: the most `/search/jql`
/// returns when only `id` or `key` is asked for (the spec).
pub const KEY_CENSUS_PAGE: usize = 5000;

/// Issues asked per page of a Cloud search that asks for fields.
pub const SEARCH_JQL_PAGE: usize = 100;

/// Issues asked per page of a Data Center search: Jira's default cap
/// (`jira.search.views.default.max`); a site with a lower cap answers
/// shorter pages, which paging follows.
pub const DC_SEARCH_PAGE: usize = 1000;

/// One answer of Cloud `POST /issue/bulkfetch`.
#[derive(Debug, Default)]
pub struct BulkAnswer {
    /// The issues found, in Jira's order (ascending id); a moved issue
    /// answers under its new key.
    pub issues: Vec<Item>,
    /// Issues Jira could not return this time ("a retriable error or
    /// payload constraint", the spec): neither found nor gone.
    pub errors: usize,
}

impl JiraClient {
    /// The listing of a (bounded) JQL search with `fields`, for a caller
    /// that sets more of it (a ceiling, Data Center's `validateQuery`)
    /// before paging it with [`Pager::new`].
    pub fn search_listing(&self, jql: &str, fields: &[String], page_size: usize) -> Listing {
        let (path, style) = match self.deployment() {
            Deployment::Cloud => (self.api("/search/jql"), Style::Token),
            Deployment::DataCenter => (self.api("/search"), Style::OffsetSearch),
        };
        Listing::new(path, style, page_size, by_key)
            .body_field("jql", json!(jql))
            .body_field("fields", json!(fields))
    }

    /// How many issues a (bounded) JQL query matches: Cloud
    /// `POST /search/approximate-count`, Data Center a `/search` asking for
    /// no issue (`maxResults: 0`), whose `total` says it. Used to give a
    /// listing its request budget.
    pub async fn issue_count(&self, jql: &str) -> Result<u64, JiraError> {
        #[derive(Deserialize)]
        struct Count {
            count: Option<serde_json::Number>,
            total: Option<serde_json::Number>,
        }
        let count: Count = match self.deployment() {
            Deployment::Cloud => {
                self.post(
                    &self.api("/search/approximate-count"),
                    &json!({ "jql": jql }),
                )
                .await?
            }
            Deployment::DataCenter => {
                self.post(
                    &self.api("/search"),
                    &json!({ "jql": jql, "startAt": 0, "maxResults": 0, "fields": ["key"] }),
                )
                .await?
            }
        };
        // A count that is not a whole number ≥ 0 says nothing: 0, so the
        // budget falls back to its floor.
        Ok(count
            .count
            .or(count.total)
            .and_then(|n| n.as_u64())
            .unwrap_or(0))
    }

    /// Cloud `POST /issue/bulkfetch` of at most [`BULKFETCH_MAX`] keys.
    pub async fn bulk_fetch(
        &self,
        keys: &[String],
        fields: &[String],
    ) -> Result<BulkAnswer, JiraError> {
        #[derive(Deserialize)]
        struct Bulk {
            #[serde(default)]
            issues: Vec<Item>,
            #[serde(default, rename = "issueErrors")]
            issue_errors: Vec<serde::de::IgnoredAny>,
        }
        debug_assert!(keys.len() <= BULKFETCH_MAX);
        let body = json!({ "issueIdsOrKeys": keys, "fields": fields });
        let bulk: Bulk = self.post(&self.api("/issue/bulkfetch"), &body).await?;
        Ok(BulkAnswer {
            issues: bulk.issues,
            errors: bulk.issue_errors.len(),
        })
    }

    /// `GET /issue/{key}` with `fields`; `None` when Jira does not know it
    /// (or the user cannot see it). A moved issue answers under its new key.
    pub async fn issue_by_key(
        &self,
        key: &str,
        fields: &[String],
    ) -> Result<Option<Item>, JiraError> {
        let path = self.api(&format!("/issue/{}", urlencoding_path(key)));
        match self
            .get::<Item>(&path, &[("fields", fields.join(","))])
            .await
        {
            Ok(item) => Ok(Some(item)),
            Err(JiraError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// An issue key as one path segment: anything but letters, digits, `-`
/// and `_` percent-encoded, so a key read from a file cannot reach another path.
fn urlencoding_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
