//! Projects: Cloud `GET /project/search` (PageBean), Data Center
//! `GET /project` (a bare array, no paging).

use super::client::JiraClient;
use super::paging::{Listing, Pager, Style, by_key};
use crate::Deployment;

/// The most keys Cloud's `/project/search` takes in one request (the spec's
/// `keys`: "up to 50 project keys"); a longer scope is asked in chunks.
pub const PROJECT_KEYS_PER_REQUEST: usize = 50;

impl JiraClient {
    /// Every project, or only `keys` when given (at most
    /// [`PROJECT_KEYS_PER_REQUEST`]: see [`JiraClient::project_chunks`]).
    /// On Cloud the keys go as repeated parameters (`keys=A&keys=B`), as the
    /// spec's exploded array wants, never comma-joined. On Data Center,
    /// which has no key filter on `/project`, the caller filters the one
    /// answer.
    pub fn projects(&self, keys: &[String]) -> Pager {
        let listing = match self.deployment() {
            Deployment::Cloud => {
                let mut l = Listing::new(self.api("/project/search"), Style::PageBean, 100, by_key);
                for key in keys {
                    l = l.query("keys", key.clone());
                }
                l
            }
            Deployment::DataCenter => Listing::new(self.api("/project"), Style::Unpaged, 0, by_key),
        };
        Pager::new(self.clone(), listing)
    }

    /// The listings that cover `keys`: on Cloud one per
    /// [`PROJECT_KEYS_PER_REQUEST`] keys; on Data Center (one unfiltered
    /// answer) and for every project (`keys` empty), one.
    pub fn project_chunks(&self, keys: &[String]) -> Vec<Pager> {
        if keys.is_empty() || self.deployment() == Deployment::DataCenter {
            return vec![self.projects(keys)];
        }
        keys.chunks(PROJECT_KEYS_PER_REQUEST)
            .map(|chunk| self.projects(chunk))
            .collect()
    }
}
