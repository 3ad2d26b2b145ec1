//! Projects: Cloud `GET /project/search` (PageBean), Data Center
//! `GET /project` (a bare array, no paging).

use super::client::JiraClient;
use super::paging::{Listing, Pager, Style, by_key};
use crate::Deployment;

impl JiraClient {
    /// Every project, or only `keys` when given. On Data Center, which has
    /// no key filter on `/project`, the caller filters the one answer.
    pub fn projects(&self, keys: &[String]) -> Pager {
        let listing = match self.deployment() {
            Deployment::Cloud => {
                let mut l = Listing::new(self.api("/project/search"), Style::PageBean, 100, by_key);
                if !keys.is_empty() {
                    l = l.query("keys", keys.join(","));
                }
                l
            }
            Deployment::DataCenter => Listing::new(self.api("/project"), Style::Unpaged, 0, by_key),
        };
        Pager::new(self.clone(), listing)
    }
}
