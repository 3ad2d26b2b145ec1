//! Field metadata for the fields stage: fields, issue types, priorities,
//! statuses, resolutions. All unpaged bare arrays on both deployments.

use super::client::JiraClient;
use super::paging::{Listing, Pager, Style, by_id};

/// The metadata lists, in the order the fields stage fetches them, with the
/// key prefix of their per-id entries and the name of their whole-list entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metadata {
    /// `GET /field`: entries keyed by field id, whole list `list:fields`.
    Fields,
    /// `GET /issuetype`: `issuetype:<id>`, `list:issuetypes`.
    IssueTypes,
    /// `GET /priority`: `priority:<id>`, `list:priorities`.
    Priorities,
    /// `GET /status`: `status:<id>`, `list:statuses`.
    Statuses,
    /// `GET /resolution`: `resolution:<id>`, `list:resolutions`.
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

    /// The REST path under the API base.
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
        Pager::new(
            self.clone(),
            Listing::new(self.api(which.path()), Style::Unpaged, 0, by_id),
        )
    }
}
