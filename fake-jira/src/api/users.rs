//! Users: the offset-paged bare arrays (Cloud `/users/search`, Data
//! Center's capped `/user/search`: at most 100 users per query on Jira 10,
//! whatever `startAt` says, so clients must split the listing by name
//! prefix), both flavors' `/user/assignable/search` (a window filter on
//! Cloud), and `/user` for one user.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{RawQuery, State};
use serde_json::{Value, json};

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
    app.site.read(|s, index| {
        let texts = index.user_texts();
        let mut found: Vec<usize> = texts
            .iter()
            .enumerate()
            .filter(|(_, u)| {
                if u.active {
                    include_active
                } else {
                    include_inactive
                }
            })
            .filter(|(_, u)| username == "." || u.starts_with(&username))
            .map(|(pos, _)| pos)
            .collect();
        // Stable: users of the same name stay in the site's order.
        found.sort_by(|a, b| texts[*a].name.cmp(&texts[*b].name));
        found.truncate(cap);
        let range = window(found.len(), start_at, max_results, &lies);
        let users: Vec<&Value> = found[range].iter().map(|&pos| &s.users[pos]).collect();
        ok_serialized(&users)
    })
}

/// `GET /user/assignable/search?project=KEY` (or `issueKey=`): the active
/// users assignable in a project, narrowed by `query` (Cloud) or
/// `username` (Data Center).
///
/// Cloud is a window filter (`JIRA_API.md`): the server takes the site's
/// users in `[startAt, startAt + maxResults)`, never past the thousandth
/// ([`PageCap::CloudAssignableReach`]), and returns those of them that are
/// assignable. A short or empty page says nothing about the end; past the
/// reach every page is empty whoever is assignable there. Data Center
/// takes no `startAt` and answers at most [`PageCap::DcAssignable`] users.
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
    let keep = |u: &Value| is_active(u) && filter.as_deref().is_none_or(|f| starts_with(u, f));
    let project = params.get("project");
    let issue = params.get("issueKey").or_else(|| params.get("issueId"));
    let reach = app.cap(PageCap::CloudAssignableReach);
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
        match app.flavor {
            Flavor::Cloud => {
                let assignable: HashSet<usize> =
                    index.assignable_positions(&key).iter().copied().collect();
                let range = window(s.users.len().min(reach), start_at, max_results, &lies);
                let users: Vec<&Value> = range
                    .filter(|pos| assignable.contains(pos))
                    .map(|pos| &s.users[pos])
                    .filter(|u| keep(u))
                    .collect();
                ok_serialized(&users)
            }
            Flavor::DataCenter => {
                let users: Vec<&Value> = index.assignable(s, &key).filter(|u| keep(u)).collect();
                let range = window(users.len(), start_at, max_results, &lies);
                ok_serialized(&users[range])
            }
        }
    })
}

/// `GET /user`: one user, with the members the spec's `User` (Cloud) and
/// `UserBean` (Data Center) shapes carry. Cloud finds them by `accountId`
/// (required); Data Center by `key` or `username` (one is required). 404
/// when there is no such user.
pub(super) async fn user(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> ApiResult {
    let params = Params::parse(query.as_deref())?;
    let (field, wanted) = match app.flavor {
        Flavor::Cloud => (
            "accountId",
            params.get("accountId").ok_or_else(|| {
                ApiError::bad_request("The query parameter 'accountId' is required.")
            })?,
        ),
        Flavor::DataCenter => match (params.get("key"), params.get("username")) {
            (Some(key), _) => ("key", key),
            (None, Some(name)) => ("name", name),
            (None, None) => {
                return Err(ApiError::bad_request(
                    "Either the 'username' or the 'key' query parameter must be provided.",
                ));
            }
        },
    };
    let found = app.site.view(|s| {
        s.users
            .iter()
            .find(|u| {
                str_field(u, field).is_some_and(|v| match app.flavor {
                    Flavor::Cloud => v == wanted,
                    // Data Center user names and keys are case-insensitive.
                    Flavor::DataCenter => v.eq_ignore_ascii_case(wanted),
                })
            })
            .cloned()
    });
    let Some(mut user) = found else {
        return Err(ApiError::not_found(match app.flavor {
            Flavor::Cloud => format!(
                "Specified user does not exist or you do not have required permissions: {wanted}"
            ),
            Flavor::DataCenter => format!("The user named '{wanted}' does not exist"),
        }));
    };
    let self_url = match app.flavor {
        Flavor::Cloud => format!("{}/user?accountId={wanted}", app.api_url()),
        Flavor::DataCenter => format!(
            "{}/user?username={}",
            app.api_url(),
            str_field(&user, "name").unwrap_or(wanted)
        ),
    };
    if let Some(object) = user.as_object_mut() {
        object.entry("self").or_insert(Value::String(self_url));
        for member in ["groups", "applicationRoles"] {
            object
                .entry(member)
                .or_insert_with(|| json!({"size": 0, "items": []}));
        }
        object
            .entry("expand")
            .or_insert(Value::String("groups,applicationRoles".into()));
        if app.flavor == Flavor::DataCenter {
            object.entry("deleted").or_insert(Value::Bool(false));
        }
    }
    ok_serialized(&user)
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
        .any(|v| lower_starts_with(v, prefix))
}

/// `value.to_lowercase().starts_with(prefix)` without building the
/// lower-case copy: a Data Center listing split by prefix asks this of
/// every user on the site, hundreds of times per warm, on the cores the
/// client under test also needs.
fn lower_starts_with(value: &str, prefix: &str) -> bool {
    let mut lowered = value.chars().flat_map(char::to_lowercase);
    prefix.chars().all(|p| lowered.next() == Some(p))
}

#[cfg(test)]
mod tests {
    use super::lower_starts_with;

    #[test]
    fn a_prefix_matches_as_it_would_against_the_lower_case_copy() {
        for value in [
            "Alice",
            "ALICE.smith@example.com",
            "İlker",
            "Ørjan",
            "",
            "a",
        ] {
            let lower = value.to_lowercase();
            for end in 0..=lower.chars().count() + 1 {
                let prefix: String = lower.chars().take(end).collect();
                assert_eq!(
                    lower_starts_with(value, &prefix),
                    lower.starts_with(&prefix),
                    "{value:?} against {prefix:?}"
                );
            }
            assert!(!lower_starts_with(value, &format!("{lower}x")));
        }
        assert!(!lower_starts_with("Bob", "a"));
    }
}
