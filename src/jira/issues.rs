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
