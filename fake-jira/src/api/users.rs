//! User listings, the offset-paged bare arrays: Cloud `/users/search` and
//! both flavors' `/user/assignable/search`, and Data Center's capped
//! `/user/search` (at most 100 users per query on Jira 10, whatever
//! `startAt` says, so clients must split the listing by name prefix).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{RawQuery, State};
use serde_json::Value;

use super::paging::{Params, window};
use super::{ApiError, ApiResult, ok_serialized};
use crate::faults::PagingLies;
use crate::flavor::Flavor;
use crate::server::{App, PageCap};
use crate::site::{IssueIndex, Site, issue_project_key, str_field};

/// Cloud `GET /users/search?startAt&maxResults`: every user, apps and
/// inactive ones included.
pub(super) async fn cloud_users(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    Extension(lies): Extension<PagingLies>,
) -> ApiResult {
    let params = Params::parse(query.as_deref())?;
    let start_at = params.number("startAt", 0)?;
    let max_results = params
        .number("maxResults", 50)?
        .min(app.cap(PageCap::CloudUserSearch));
    app.site.view(|s| {
        let range = window(s.users.len(), start_at, max_results, &lies);
        ok_serialized(&s.users[range])
    })
}

/// Data Center `GET /user/search?username=&startAt&maxResults`: `username`
/// is required; `.` matches everyone, anything else matches users whose
/// name, display name or email starts with it (any case). Inactive users
/// only with `includeInactive=true`. At most [`PageCap::DcUserSearch`]
/// users are reachable per query, whatever `startAt` says.
pub(super) async fn dc_users(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    Extension(lies): Extension<PagingLies>,
) -> ApiResult {
    let params = Params::parse(query.as_deref())?;
    let username = params
        .get("username")
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("The username query parameter was not provided"))?
        .to_lowercase();
    let include_active = params.flag("includeActive", true)?;
    let include_inactive = params.flag("includeInactive", false)?;
    let start_at = params.number("startAt", 0)?;
    let max_results = params.number("maxResults", 50)?.min(1000);
    let cap = app.cap(PageCap::DcUserSearch);
    app.site.view(|s| {
        let mut found: Vec<&Value> = s
            .users
            .iter()
            .filter(|u| {
                if is_active(u) {
                    include_active
                } else {
                    include_inactive
                }
            })
            .filter(|u| username == "." || starts_with(u, &username))
            .collect();
        found.sort_by_cached_key(|u| str_field(u, "name").unwrap_or_default().to_lowercase());
        found.truncate(cap);
        let range = window(found.len(), start_at, max_results, &lies);
        ok_serialized(&found[range])
    })
}

/// `GET /user/assignable/search?project=KEY` (or `issueKey=`): the active
/// users assignable in a project, narrowed by `query` (Cloud) or
/// `username` (Data Center). Cloud pages with `startAt`; Data Center takes
/// no `startAt` and at most [`PageCap::DcAssignable`] users.
pub(super) async fn assignable(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    Extension(lies): Extension<PagingLies>,
) -> ApiResult {
    let params = Params::parse(query.as_deref())?;
    let (start_at, max_results, filter) = match app.flavor {
        Flavor::Cloud => (
            params.number("startAt", 0)?,
            params
                .number("maxResults", 50)?
                .min(app.cap(PageCap::CloudAssignable)),
            params.get("query"),
        ),
        Flavor::DataCenter => (
            0,
            params
                .number("maxResults", 50)?
                .min(app.cap(PageCap::DcAssignable)),
            params.get("username"),
        ),
    };
    let filter = filter
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_lowercase);
    let project = params.get("project");
    let issue = params.get("issueKey").or_else(|| params.get("issueId"));
    app.site.read(|s, index| {
        let key = match (project, issue) {
            (Some(p), _) => project_key(s, index, p).ok_or_else(|| {
                ApiError::not_found(format!("No project could be found with key '{p}'."))
            })?,
            (None, Some(i)) => index
                .find(i)
                .and_then(|pos| issue_project_key(&s.issues[pos]))
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::not_found(
                        "Issue does not exist or you do not have permission to see it.",
                    )
                })?,
            (None, None) => {
                return Err(ApiError::bad_request(
                    "A value for one of 'project', 'issueKey' or 'issueId' is required.",
                ));
            }
        };
        let users: Vec<&Value> = index
            .assignable(s, &key)
            .filter(|u| is_active(u))
            .filter(|u| filter.as_deref().is_none_or(|f| starts_with(u, f)))
            .collect();
        let range = window(users.len(), start_at, max_results, &lies);
        ok_serialized(&users[range])
    })
}

/// A project's key from its key (any case) or id.
fn project_key(site: &Site, index: &IssueIndex, key_or_id: &str) -> Option<String> {
    index
        .project(site, key_or_id)
        .and_then(|p| str_field(p, "key"))
        .map(str::to_owned)
}

fn is_active(user: &Value) -> bool {
    user.get("active").and_then(Value::as_bool).unwrap_or(true)
}

/// Whether the user's name, display name or email starts with `prefix`
/// (already lower-case).
fn starts_with(user: &Value, prefix: &str) -> bool {
    ["name", "displayName", "emailAddress"]
        .iter()
        .filter_map(|f| str_field(user, f))
        .any(|v| v.to_lowercase().starts_with(prefix))
}
