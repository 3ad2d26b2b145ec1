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

/// Cloud `GET /project/search`: a PageBean, sorted by key unless `orderBy`
/// says otherwise, narrowed by `keys`, `id` and `query`.
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
    let keys = params.list("keys");
    let ids = params.list("id");
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
                    && (ids.is_empty()
                        || ids.iter().any(|i| Some(i.as_str()) == str_field(p, "id")))
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

fn id_number(v: &Value) -> u64 {
    str_field(v, "id").and_then(|i| i.parse().ok()).unwrap_or(0)
}

/// Cloud `GET /priority/search`: a PageBean, narrowed by `id`.
pub(super) async fn priority_search(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    Extension(lies): Extension<PagingLies>,
) -> ApiResult {
    searched_list(&app, query, &lies, "priority/search", |s| &s.priorities)
}

/// Cloud `GET /resolution/search`: a PageBean, narrowed by `id`.
pub(super) async fn resolution_search(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    Extension(lies): Extension<PagingLies>,
) -> ApiResult {
    searched_list(&app, query, &lies, "resolution/search", |s| &s.resolutions)
}

fn searched_list(
    app: &App,
    query: Option<String>,
    lies: &PagingLies,
    path: &str,
    list: impl FnOnce(&Site) -> &Vec<Value>,
) -> ApiResult {
    let params = Params::parse(query.as_deref())?;
    let start_at = params.number("startAt", 0)?;
    let max_results = params
        .number("maxResults", 50)?
        .min(app.cap(PageCap::PageBean));
    let ids = params.list("id");
    let values: Vec<Value> = app.site.view(|s| {
        list(s)
            .iter()
            .filter(|v| {
                ids.is_empty() || ids.iter().any(|i| Some(i.as_str()) == str_field(v, "id"))
            })
            .cloned()
            .collect()
    });
    let url = format!("{}/{path}", app.api_url());
    ok(&page_bean(&values, start_at, max_results, lies, &url))
}
