//! Issues: Cloud's token-paged `/search/jql` (and the 410 the removed
//! `/search` answers there), `/search/approximate-count` and
//! `/issue/bulkfetch`; Data Center's offset-paged `/search`; and
//! `/issue/{key}` on both. Every search runs the JQL through [`crate::jql`],
//! so results come in the query's `ORDER BY` order.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::paging::{Params, body_list, body_number, body_str, json_body, window};
use super::{ApiError, ApiResult, json_response, ok};
use crate::faults::PagingLies;
use crate::jql;
use crate::server::{App, PageCap};

/// Cloud's answer on the removed `/rest/api/{2,3}/search`.
pub(super) async fn gone() -> ApiResult {
    Err(ApiError::new(
        StatusCode::GONE,
        "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. \
         A full migration guideline is available at \
         https://developer.atlassian.com/changelog/#CHANGE-2046",
    ))
}

/// Cloud `GET /search/jql`.
pub(super) async fn search_jql_get(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    Extension(lies): Extension<PagingLies>,
) -> ApiResult {
    let params = Params::parse(query.as_deref())?;
    let request = JqlPage {
        jql: params.get("jql").unwrap_or_default().to_owned(),
        token: params.get("nextPageToken").map(str::to_owned),
        max_results: params.number("maxResults", 50)?,
        fields: params.list("fields"),
    };
    search_jql(&app, request, &lies)
}

/// Cloud `POST /search/jql` with `{jql, nextPageToken, maxResults, fields}`.
pub(super) async fn search_jql_post(
    State(app): State<Arc<App>>,
    Extension(lies): Extension<PagingLies>,
    body: Bytes,
) -> ApiResult {
    let body = json_body(&body)?;
    let request = JqlPage {
        jql: body_str(&body, "jql")?.unwrap_or_default().to_owned(),
        token: body_str(&body, "nextPageToken")?.map(str::to_owned),
        max_results: body_number(&body, "maxResults", 50)?,
        fields: body_list(&body, "fields")?,
    };
    search_jql(&app, request, &lies)
}

struct JqlPage {
    jql: String,
    token: Option<String>,
    max_results: usize,
    fields: Vec<String>,
}

/// One page of `/search/jql`: `{issues, isLast, nextPageToken?}`, no total.
/// Tokens are opaque, bound to the query, and never handed out twice
/// (unless [`RepeatToken`](crate::FaultKind::RepeatToken) says so).
fn search_jql(app: &App, request: JqlPage, lies: &PagingLies) -> ApiResult {
    let query = jql::parse(&request.jql).map_err(jql_error)?;
    if !query.is_bounded() {
        return Err(ApiError::bad_request(
            "Unbounded JQL queries are not allowed here. Please add a search restriction to \
             your query.",
        ));
    }
    let query_hash = hash(&request.jql);
    let start = match &request.token {
        None => 0,
        Some(token) => read_token(token, query_hash).ok_or_else(|| {
            ApiError::bad_request(format!(
                "The provided next page token '{token}' is invalid or expired, or belongs to \
                 another query."
            ))
        })?,
    };
    let selection = Selection::parse(&request.fields, "id");
    let cap = if selection.is_id_only() {
        app.cap(PageCap::SearchJqlIds)
    } else {
        app.cap(PageCap::SearchJql)
    };
    let max_results = request.max_results.min(cap);
    let api_url = app.api_url();
    let (issues, end, len) = app.site.read(|site, index| {
        let plan = jql::plan(&query, site, index, now_millis()).map_err(jql_error)?;
        let hits = jql::run(&plan, index);
        let range = window(hits.len(), start, max_results, lies);
        let issues: Vec<Value> = hits[range.clone()]
            .iter()
            .map(|&pos| selection.render(&site.issues[pos], &api_url))
            .collect();
        Ok::<_, ApiError>((issues, range.end, hits.len()))
    })?;
    let next = if lies.repeat_token {
        Some(
            request
                .token
                .clone()
                .unwrap_or_else(|| issue_token(app, query_hash, end)),
        )
    } else if end < len {
        Some(issue_token(app, query_hash, end))
    } else if lies.never_last {
        Some(issue_token(app, query_hash, 0))
    } else {
        None
    };
    let mut page = json!({"issues": issues, "isLast": next.is_none()});
    if let Some(token) = next {
        page["nextPageToken"] = json!(token);
    }
    ok(&page)
}

/// Cloud `POST /search/approximate-count` `{jql}` → `{count}`.
pub(super) async fn approximate_count(State(app): State<Arc<App>>, body: Bytes) -> ApiResult {
    let body = json_body(&body)?;
    let text = body_str(&body, "jql")?.unwrap_or_default();
    let query = jql::parse(text).map_err(jql_error)?;
    if !query.is_bounded() {
        return Err(ApiError::bad_request(
            "Unbounded JQL queries are not allowed here. Please add a search restriction to \
             your query.",
        ));
    }
    let count = app.site.read(|site, index| {
        let plan = jql::plan(&query, site, index, now_millis()).map_err(jql_error)?;
        Ok::<_, ApiError>(jql::run(&plan, index).len())
    })?;
    ok(&json!({"count": count}))
}

/// Cloud `POST /issue/bulkfetch` `{issueIdsOrKeys, fields}`: 1 to 100 keys
/// or ids; found issues in ascending id order; unknown ones are left out
/// (not listed in `issueErrors`, as the spec says).
pub(super) async fn bulk_fetch(State(app): State<Arc<App>>, body: Bytes) -> ApiResult {
    let body = json_body(&body)?;
    let wanted = body_list(&body, "issueIdsOrKeys")?;
    if wanted.is_empty() || wanted.len() > 100 {
        return Err(ApiError::bad_request(format!(
            "Between 1 and 100 issue ids or keys must be given; got {}.",
            wanted.len()
        )));
    }
    let selection = Selection::parse(&body_list(&body, "fields")?, "*navigable");
    let api_url = app.api_url();
    let issues = app.site.read(|site, index| {
        let mut positions: Vec<usize> = wanted.iter().filter_map(|k| index.find(k)).collect();
        positions.sort_by_key(|&p| (index.issues[p].id, p));
        positions.dedup();
        positions
            .into_iter()
            .map(|p| selection.render(&site.issues[p], &api_url))
            .collect::<Vec<_>>()
    });
    ok(&json!({"expand": "schema,names", "issues": issues, "issueErrors": []}))
}

/// Data Center `GET /search?jql&startAt&maxResults&fields`.
pub(super) async fn search_get(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    Extension(lies): Extension<PagingLies>,
) -> ApiResult {
    let params = Params::parse(query.as_deref())?;
    let jql = params.get("jql").unwrap_or_default().to_owned();
    let start_at = params.number("startAt", 0)?;
    let max_results = params.number("maxResults", 50)?;
    search(
        &app,
        &jql,
        start_at,
        max_results,
        &params.list("fields"),
        &lies,
    )
}

/// Data Center `POST /search` with `{jql, startAt, maxResults, fields}`.
pub(super) async fn search_post(
    State(app): State<Arc<App>>,
    Extension(lies): Extension<PagingLies>,
    body: Bytes,
) -> ApiResult {
    let body = json_body(&body)?;
    let jql = body_str(&body, "jql")?.unwrap_or_default().to_owned();
    let start_at = body_number(&body, "startAt", 0)?;
    let max_results = body_number(&body, "maxResults", 50)?;
    search(
        &app,
        &jql,
        start_at,
        max_results,
        &body_list(&body, "fields")?,
        &lies,
    )
}

/// One page of Data Center search: `{startAt, maxResults, total, issues}`.
/// Unbounded queries are allowed here.
fn search(
    app: &App,
    jql_text: &str,
    start_at: usize,
    max_results: usize,
    fields: &[String],
    lies: &PagingLies,
) -> ApiResult {
    let query = jql::parse(jql_text).map_err(jql_error)?;
    let max_results = max_results.min(app.cap(PageCap::DcSearch));
    let selection = Selection::parse(fields, "*navigable");
    let api_url = app.api_url();
    let (issues, total) = app.site.read(|site, index| {
        let plan = jql::plan(&query, site, index, now_millis()).map_err(jql_error)?;
        let hits = jql::run(&plan, index);
        let range = window(hits.len(), start_at, max_results, lies);
        let issues: Vec<Value> = hits[range]
            .iter()
            .map(|&pos| selection.render(&site.issues[pos], &api_url))
            .collect();
        Ok::<_, ApiError>((issues, hits.len()))
    })?;
    ok(&json!({
        "expand": "schema,names",
        "startAt": start_at,
        "maxResults": max_results,
        "total": lies.lying_total.unwrap_or(total),
        "issues": issues,
    }))
}

/// `GET /issue/{issueIdOrKey}?fields=`: all fields unless asked otherwise.
pub(super) async fn issue(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let params = Params::parse(query.as_deref())?;
    let selection = Selection::parse(&params.list("fields"), "*all");
    let api_url = app.api_url();
    let found = app.site.read(|site, index| {
        index
            .find(&key)
            .map(|pos| selection.render(&site.issues[pos], &api_url))
    });
    match found {
        Some(issue) => Ok(json_response(StatusCode::OK, &issue)),
        None => Err(ApiError::not_found(
            "Issue does not exist or you do not have permission to see it.",
        )),
    }
}

fn jql_error(e: jql::JqlError) -> ApiError {
    ApiError::bad_request(e.0)
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// A fresh token for the page starting at `offset` of the query.
fn issue_token(app: &App, query_hash: u64, offset: usize) -> String {
    let serial = app.token_serial.fetch_add(1, Ordering::Relaxed);
    format!("{query_hash:016x}{offset:010x}{serial:08x}")
}

/// The offset a token points at, if it is one of ours for this query.
fn read_token(token: &str, query_hash: u64) -> Option<usize> {
    if token.len() != 34 || !token.is_ascii() {
        return None;
    }
    let hash = u64::from_str_radix(&token[..16], 16).ok()?;
    let offset = usize::from_str_radix(&token[16..26], 16).ok()?;
    u32::from_str_radix(&token[26..], 16).ok()?;
    (hash == query_hash).then_some(offset)
}

/// Which fields an answer carries, from a `fields` list: `*all` and
/// `*navigable` (every field here), names, `-name` to leave one out, `id`
/// and `key` (top-level members, always present once any field is asked).
#[derive(Debug, Clone, PartialEq)]
struct Selection {
    all: bool,
    include: Vec<String>,
    exclude: Vec<String>,
    key: bool,
}

impl Selection {
    fn parse(items: &[String], default: &str) -> Selection {
        let default = [default.to_owned()];
        let items = if items.is_empty() {
            &default[..]
        } else {
            items
        };
        let mut s = Selection {
            all: false,
            include: Vec::new(),
            exclude: Vec::new(),
            key: false,
        };
        for item in items {
            match item.as_str() {
                "*all" | "*navigable" => s.all = true,
                "id" | "" => {}
                "key" => s.key = true,
                other => match other.strip_prefix('-') {
                    Some(name) => s.exclude.push(name.to_owned()),
                    None => s.include.push(other.to_owned()),
                },
            }
        }
        s
    }

    /// Only `id` (and maybe `key`) asked for: the issue carries no `fields`.
    fn is_id_only(&self) -> bool {
        !self.all && self.include.is_empty()
    }

    /// The issue as an answer carries it. An id-only answer is `{"id"}` (plus
    /// `key` if asked, or if the issue has no id, as trimmed fixtures do).
    fn render(&self, issue: &Value, api_url: &str) -> Value {
        let id = issue.get("id");
        let mut out = Map::new();
        if self.is_id_only() {
            if let Some(id) = id {
                out.insert("id".into(), id.clone());
            }
            if (self.key || id.is_none())
                && let Some(key) = issue.get("key")
            {
                out.insert("key".into(), key.clone());
            }
            return Value::Object(out);
        }
        out.insert(
            "expand".into(),
            json!(
                "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"
            ),
        );
        if let Value::Object(top) = issue {
            for (name, value) in top.iter().filter(|(n, _)| *n != "fields") {
                out.insert(name.clone(), value.clone());
            }
        }
        if !out.contains_key("self")
            && let Some(id) = id.and_then(Value::as_str)
        {
            out.insert("self".into(), json!(format!("{api_url}/issue/{id}")));
        }
        let mut fields = Map::new();
        if let Some(Value::Object(all)) = issue.get("fields") {
            for (name, value) in all {
                let wanted =
                    (self.all || self.include.contains(name)) && !self.exclude.contains(name);
                if wanted {
                    fields.insert(name.clone(), value.clone());
                }
            }
        }
        out.insert("fields".into(), Value::Object(fields));
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue() -> Value {
        json!({"id": "10001", "key": "A-1", "fields": {"summary": "s", "status": {"name": "Open"}, "labels": []}})
    }

    fn fields(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn by_default_search_jql_returns_ids_only() {
        let sel = Selection::parse(&[], "id");
        assert_eq!(sel.render(&issue(), "u"), json!({"id": "10001"}));
        let with_key = Selection::parse(&fields(&["id", "key"]), "id");
        assert_eq!(
            with_key.render(&issue(), "u"),
            json!({"id": "10001", "key": "A-1"})
        );
        let trimmed = json!({"key": "T-1", "fields": {}});
        assert_eq!(sel.render(&trimmed, "u"), json!({"key": "T-1"}));
    }

    #[test]
    fn asked_fields_are_kept_and_minus_fields_dropped() {
        let got = Selection::parse(&fields(&["summary", "nope"]), "id").render(&issue(), "u");
        assert_eq!(got["fields"], json!({"summary": "s"}));
        assert_eq!(got["key"], "A-1");
        assert_eq!(got["self"], "u/issue/10001");
        let got = Selection::parse(&fields(&["*all", "-labels"]), "id").render(&issue(), "u");
        assert_eq!(
            got["fields"],
            json!({"summary": "s", "status": {"name": "Open"}})
        );
    }

    #[test]
    fn tokens_are_bound_to_their_query() {
        let h = hash("project = A");
        let token = format!("{h:016x}{:010x}{:08x}", 150, 7);
        assert_eq!(read_token(&token, h), Some(150));
        assert_eq!(read_token(&token, hash("project = B")), None);
        assert_eq!(read_token("garbage", h), None);
        assert_eq!(read_token(&"é".repeat(17), h), None);
    }
}
