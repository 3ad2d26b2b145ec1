//! The site facts and metadata lists: `serverInfo`, `myself`, projects and
//! the bare-array lists (fields, issue types, priorities, statuses,
//! resolutions), plus Cloud's PageBean versions of some of them.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use chrono::Utc;
use serde_json::{Value, json};

use super::paging::{Params, page_bean};
use super::{ApiError, ApiResult, ok, ok_serialized};
use crate::faults::PagingLies;
use crate::flavor::Flavor;
use crate::server::{App, PageCap};
use crate::site::{Site, str_field};
use crate::timestamp::format_jira_time;

/// `GET /rest/api/2/serverInfo` (and `/rest/api/3/serverInfo` on Cloud).
pub(super) async fn server_info(State(app): State<Arc<App>>) -> ApiResult {
    let (version, deployment_type, title) = app.site.view(|s| {
        (
            s.version.clone(),
            s.deployment_type.clone(),
            s.server_title.clone(),
        )
    });
    let numbers: Vec<u64> = version
        .split(['.', '-'])
        .map_while(|p| p.parse().ok())
        .take(3)
        .collect();
    let mut info = json!({
        "baseUrl": app.base_url,
        "version": version,
        "versionNumbers": numbers,
        "deploymentType": deployment_type,
        "buildNumber": if app.flavor == Flavor::Cloud { 100_204 } else { 10_030_012 },
        "buildDate": "2025-11-20T12:00:00.000+0000",
        "serverTime": format_jira_time(&Utc::now()),
        "scmInfo": "948b370c557f4bbf768b92203f3aca5d86ee9758",
        "serverTitle": title,
    });
    if app.flavor == Flavor::Cloud {
        info["defaultLocale"] = json!({"locale": "en_US"});
    }
    ok(&info)
}

/// `GET /myself`.
pub(super) async fn myself(State(app): State<Arc<App>>) -> ApiResult {
    app.site.view(|s| ok_serialized(&s.myself))
}

/// `GET /project`: every project, a bare array (Cloud deprecated, still served).
pub(super) async fn projects(State(app): State<Arc<App>>) -> ApiResult {
    bare(&app, |s| &s.projects)
}

/// `GET /project/{keyOrId}`.
pub(super) async fn project(State(app): State<Arc<App>>, Path(key): Path<String>) -> ApiResult {
    app.site.read(|s, index| match index.project(s, &key) {
        Some(p) => ok_serialized(p),
        None => Err(ApiError::not_found(format!(
            "No project could be found with key '{key}'."
        ))),
    })
}

/// `GET /field`.
pub(super) async fn fields(State(app): State<Arc<App>>) -> ApiResult {
    bare(&app, |s| &s.fields)
}

/// `GET /issuetype`.
pub(super) async fn issue_types(State(app): State<Arc<App>>) -> ApiResult {
    bare(&app, |s| &s.issue_types)
}

/// `GET /priority`.
pub(super) async fn priorities(State(app): State<Arc<App>>) -> ApiResult {
    bare(&app, |s| &s.priorities)
}

/// `GET /status`.
pub(super) async fn statuses(State(app): State<Arc<App>>) -> ApiResult {
    bare(&app, |s| &s.statuses)
}

/// `GET /statuscategory`.
pub(super) async fn status_categories(State(app): State<Arc<App>>) -> ApiResult {
    bare(&app, |s| &s.status_categories)
}

/// `GET /resolution`.
pub(super) async fn resolutions(State(app): State<Arc<App>>) -> ApiResult {
    bare(&app, |s| &s.resolutions)
}

fn bare(app: &App, list: impl FnOnce(&Site) -> &Vec<Value>) -> ApiResult {
    app.site.view(|s| ok_serialized(list(s)))
}

/// The most `keys` (and `id`s) one `/project/search` request may name.
pub(crate) const MAX_PROJECT_KEYS: usize = 50;

/// Cloud `GET /project/search`: a PageBean, sorted by key unless `orderBy`
/// says otherwise, narrowed by `keys`, `id` and `query`.
///
/// `keys` and `id` are exploded array parameters (`keys=A&keys=B`, at most
/// [`MAX_PROJECT_KEYS`] each, as the spec says): `keys=A,B` is the one key
/// `"A,B"`, which matches no project.
pub(super) async fn project_search(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    Extension(lies): Extension<PagingLies>,
) -> ApiResult {
    let params = Params::parse(query.as_deref())?;
    let start_at = params.number("startAt", 0)?;
    let max_results = params
        .number("maxResults", 50)?
        .min(app.cap(PageCap::PageBean));
    let (keys, ids) = if lies.unrequested {
        (Vec::new(), Vec::new())
    } else {
        (params.all("keys"), params.all("id"))
    };
    for (name, n) in [("keys", keys.len()), ("id", ids.len())] {
        if n > MAX_PROJECT_KEYS {
            return Err(ApiError::bad_request(format!(
                "Up to {MAX_PROJECT_KEYS} project {name} can be provided; this request has {n}."
            )));
        }
    }
    let text = params.get("query").map(str::to_lowercase);
    let order = params.get("orderBy").unwrap_or("key");
    let (field, descending) = match order.strip_prefix('-') {
        Some(f) => (f, true),
        None => (order.strip_prefix('+').unwrap_or(order), false),
    };
    if !matches!(field, "key" | "name" | "id") {
        return Err(ApiError::bad_request(format!(
            "The orderBy value '{order}' is not supported."
        )));
    }
    let mut values: Vec<Value> = app.site.view(|s| {
        s.projects
            .iter()
            .filter(|p| {
                let key = str_field(p, "key").unwrap_or_default();
                let name = str_field(p, "name").unwrap_or_default();
                (keys.is_empty() || keys.iter().any(|k| k.eq_ignore_ascii_case(key)))
                    && (ids.is_empty() || ids.iter().any(|i| Some(*i) == str_field(p, "id")))
                    && text.as_ref().is_none_or(|t| {
                        key.to_lowercase().contains(t) || name.to_lowercase().contains(t)
                    })
            })
            .cloned()
            .collect()
    });
    values.sort_by(|a, b| {
        let ord = match field {
            "id" => id_number(a).cmp(&id_number(b)),
            f => str_field(a, f)
                .unwrap_or_default()
                .to_lowercase()
                .cmp(&str_field(b, f).unwrap_or_default().to_lowercase()),
        };
        if descending { ord.reverse() } else { ord }
    });
    let url = format!("{}/project/search", app.api_url());
    ok(&page_bean(&values, start_at, max_results, &lies, &url))
}

/// Priorities say `isDefault`, resolutions `default`.
fn is_default(v: &Value) -> bool {
    [v.get("isDefault"), v.get("default")].contains(&Some(&Value::Bool(true)))
}

fn id_number(v: &Value) -> u64 {
    str_field(v, "id").and_then(|i| i.parse().ok()).unwrap_or(0)
}

/// Cloud `GET /priority/search`: a PageBean, narrowed by `id` (repeated),
/// `priorityName` (contained, any case) and `onlyDefault`. `projectId` is
/// accepted and narrows nothing: every priority of the fake belongs to the
/// one default scheme that every project uses.
pub(super) async fn priority_search(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    Extension(lies): Extension<PagingLies>,
) -> ApiResult {
    let params = Params::parse(query.as_deref())?;
    let name = params.get("priorityName").map(str::to_lowercase);
    searched_list(
        &app,
        &params,
        &lies,
        "priority/search",
        |s| &s.priorities,
        |p| {
            name.as_deref()
                .is_none_or(|n| str_field(p, "name").is_some_and(|v| v.to_lowercase().contains(n)))
        },
    )
}

/// Cloud `GET /resolution/search`: a PageBean, narrowed by `id` (repeated)
/// and `onlyDefault`.
pub(super) async fn resolution_search(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    Extension(lies): Extension<PagingLies>,
) -> ApiResult {
    let params = Params::parse(query.as_deref())?;
    searched_list(
        &app,
        &params,
        &lies,
        "resolution/search",
        |s| &s.resolutions,
        |_| true,
    )
}

/// A PageBean over a metadata list. `startAt` and `maxResults` are
/// declared as strings in the spec (of digits, read as numbers here).
fn searched_list(
    app: &App,
    params: &Params,
    lies: &PagingLies,
    path: &str,
    list: impl FnOnce(&Site) -> &Vec<Value>,
    keep: impl Fn(&Value) -> bool,
) -> ApiResult {
    let start_at = params.number("startAt", 0)?;
    let max_results = params
        .number("maxResults", 50)?
        .min(app.cap(PageCap::PageBean));
    let ids = if lies.unrequested {
        Vec::new()
    } else {
        params.all("id")
    };
    let only_default = params.flag("onlyDefault", false)?;
    let values: Vec<Value> = app.site.view(|s| {
        list(s)
            .iter()
            .filter(|v| ids.is_empty() || ids.iter().any(|i| Some(*i) == str_field(v, "id")))
            .filter(|v| !only_default || is_default(v))
            .filter(|v| keep(v))
            .cloned()
            .collect()
    });
    let url = format!("{}/{path}", app.api_url());
    ok(&page_bean(&values, start_at, max_results, lies, &url))
}
