//! Field metadata for the fields stage: fields, issue types, priorities,
//! statuses, resolutions. Unpaged bare arrays, except Cloud's priorities
//! and resolutions: their bare-array endpoints are deprecated in the v3
//! spec, so they are read from the paginated `/priority/search` and
//! `/resolution/search` (PageBeans), under the same cache keys.

use super::client::JiraClient;
use super::paging::{Listing, Pager, Style, by_id};
use crate::Deployment;

/// The metadata lists, in the order the fields stage fetches them, with the
/// key prefix of their per-id entries and the name of their whole-list entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metadata {
    /// `GET /field`: entries keyed by field id, whole list `list:fields`.
    Fields,
    /// `GET /issuetype`: `issuetype:<id>`, `list:issuetypes`.
    IssueTypes,
    /// `GET /priority` (Cloud: `/priority/search`): `priority:<id>`,
    /// `list:priorities`.
    Priorities,
    /// `GET /status`: `status:<id>`, `list:statuses`.
    Statuses,
    /// `GET /resolution` (Cloud: `/resolution/search`): `resolution:<id>`,
    /// `list:resolutions`.
    Resolutions,
}

impl Metadata {
    /// Every list, in fetch order.
    pub const ALL: [Metadata; 5] = [
        Metadata::Fields,
        Metadata::IssueTypes,
        Metadata::Priorities,
        Metadata::Statuses,
        Metadata::Resolutions,
    ];

    /// The REST path under the API base, and its list shape, on this
    /// deployment.
    pub fn endpoint(self, deployment: Deployment) -> (&'static str, Style) {
        match (self, deployment) {
            (Metadata::Priorities, Deployment::Cloud) => ("/priority/search", Style::PageBean),
            (Metadata::Resolutions, Deployment::Cloud) => ("/resolution/search", Style::PageBean),
            (other, _) => (other.path(), Style::Unpaged),
        }
    }

    /// The unpaged REST path under the API base (Data Center's, and
    /// Cloud's for every list but priorities and resolutions).
    pub fn path(self) -> &'static str {
        match self {
            Metadata::Fields => "/field",
            Metadata::IssueTypes => "/issuetype",
            Metadata::Priorities => "/priority",
            Metadata::Statuses => "/status",
            Metadata::Resolutions => "/resolution",
        }
    }

    /// The prefix of per-id cache keys (`""` for fields, keyed by bare id).
    pub fn key_prefix(self) -> &'static str {
        match self {
            Metadata::Fields => "",
            Metadata::IssueTypes => "issuetype:",
            Metadata::Priorities => "priority:",
            Metadata::Statuses => "status:",
            Metadata::Resolutions => "resolution:",
        }
    }

    /// The cache key of the whole list.
    pub fn list_key(self) -> &'static str {
        match self {
            Metadata::Fields => "list:fields",
            Metadata::IssueTypes => "list:issuetypes",
            Metadata::Priorities => "list:priorities",
            Metadata::Statuses => "list:statuses",
            Metadata::Resolutions => "list:resolutions",
        }
    }
}

impl JiraClient {
    /// One metadata list.
    pub fn metadata(&self, which: Metadata) -> Pager {
        let (path, style) = which.endpoint(self.deployment());
        // 100 a page: the spec takes `maxResults` as a string, default 50.
        let page_size = if style == Style::PageBean { 100 } else { 0 };
        Pager::new(
            self.clone(),
            Listing::new(self.api(path), style, page_size, by_id),
        )
    }
}
