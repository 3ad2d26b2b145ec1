//! Users: Cloud `/users/search` and Data Center `/user/search` (offset
//! bare arrays), and a project's assignable users.

use super::client::JiraClient;
use super::paging::{Listing, Pager, Style, WINDOW_LIMIT, by_user};
use crate::Deployment;

/// The most users Data Center's `/user/assignable/search` returns (no paging).
pub const DC_ASSIGNABLE_CAP: usize = 100;

impl JiraClient {
    /// Every user (Cloud), or the users whose name, display name or email
    /// starts with `prefix` (Data Center; `"."` matches everyone).
    pub fn users(&self, dc_prefix: &str) -> Pager {
        let listing = match self.deployment() {
            Deployment::Cloud => {
                Listing::new(self.api("/users/search"), Style::OffsetArray, 1000, by_user)
            }
            Deployment::DataCenter => {
                Listing::new(self.api("/user/search"), Style::OffsetArray, 1000, by_user)
                    .query("username", dc_prefix.to_string())
                    .query("includeInactive", "true")
            }
        };
        Pager::new(self.clone(), listing)
    }

    /// The users assignable to issues of `project`. Cloud filters windows
    /// of the site's users ([`Style::Window`]): 1,000 users a window, so one
    /// request covers all the endpoint can see (up to the thousandth user
    /// of the site); Data Center answers at most [`DC_ASSIGNABLE_CAP`]
    /// users in one page.
    pub fn assignable_users(&self, project: &str) -> Pager {
        let listing = match self.deployment() {
            Deployment::Cloud => Listing::new(
                self.api("/user/assignable/search"),
                Style::Window,
                WINDOW_LIMIT as usize,
                by_user,
            )
            .query("project", project.to_string()),
            Deployment::DataCenter => Listing::new(
                self.api("/user/assignable/search"),
                Style::Unpaged,
                0,
                by_user,
            )
            .query("project", project.to_string())
            .query("maxResults", DC_ASSIGNABLE_CAP.to_string()),
        };
        Pager::new(self.clone(), listing)
    }
}
