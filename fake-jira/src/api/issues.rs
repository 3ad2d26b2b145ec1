//! Issues: Cloud's token-paged `/search/jql` (and the 410 the removed
//! `/search` answers there), `/search/approximate-count` and
//! `/issue/bulkfetch`; Data Center's offset-paged `/search`; and
//! `/issue/{key}` on both. Every search runs the JQL through [`crate::jql`],
//! so results come in the query's `ORDER BY` order.

use std::collections::BTreeSet;
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
use super::{ApiError, ApiResult, ok, ok_text};
use crate::faults::PagingLies;
use crate::jql;
use crate::json_text::{Member, MembersText, Object, array};
use crate::server::{App, PageCap};
use crate::site::{IssueIndex, Site};

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
        let rendering = Rendering::new(&selection, site, index, &api_url);
        let issues = array(&hits[range.clone()], |&pos, out| rendering.write(pos, out));
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
    let mut page = Object::new();
    page.insert("issues", Member::Text(issues));
    page.insert("isLast", Member::Owned(Value::Bool(next.is_none())));
    if let Some(token) = next {
        page.insert("nextPageToken", Member::Owned(Value::String(token)));
    }
    app.site.search_page_served();
    ok_text(page.into_text())
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
    app.site.search_page_served();
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
        let rendering = Rendering::new(&selection, site, index, &api_url);
        array(positions, |pos, out| rendering.write(pos, out))
    });
    let mut page = Object::new();
    page.insert("expand", Member::Owned(json!("schema,names")));
    page.insert("issues", Member::Text(issues));
    page.insert("issueErrors", Member::Owned(json!([])));
    ok_text(page.into_text())
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
    let validate = params.get("validateQuery") != Some("false");
    search(
        &app,
        &jql,
        Paging {
            start_at,
            max_results,
            validate,
        },
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
    let validate = match body.get("validateQuery") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::bad_request(
                "Can not deserialize value of type boolean: validateQuery",
            ));
        }
    };
    search(
        &app,
        &jql,
        Paging {
            start_at,
            max_results,
            validate,
        },
        &body_list(&body, "fields")?,
        &lies,
    )
}

/// Where a Data Center search page starts, how long it is, and
/// `validateQuery`.
struct Paging {
    start_at: usize,
    max_results: usize,
    validate: bool,
}

/// One page of Data Center search: `{startAt, maxResults, total, issues}`.
/// Unbounded queries are allowed here. With `validateQuery: false`, keys
/// and projects that do not exist match nothing instead of failing.
fn search(
    app: &App,
    jql_text: &str,
    paging: Paging,
    fields: &[String],
    lies: &PagingLies,
) -> ApiResult {
    let Paging {
        start_at,
        max_results,
        validate,
    } = paging;
    let query = jql::parse(jql_text).map_err(jql_error)?;
    let max_results = max_results.min(app.cap(PageCap::DcSearch));
    let selection = Selection::parse(fields, "*navigable");
    let api_url = app.api_url();
    let (issues, total) = app.site.read(|site, index| {
        let plan =
            jql::plan_checked(&query, site, index, now_millis(), validate).map_err(jql_error)?;
        let hits = jql::run(&plan, index);
        let range = window(hits.len(), start_at, max_results, lies);
        let rendering = Rendering::new(&selection, site, index, &api_url);
        let issues = array(&hits[range], |&pos, out| rendering.write(pos, out));
        Ok::<_, ApiError>((issues, hits.len()))
    })?;
    let mut page = Object::new();
    page.insert("expand", Member::Owned(json!("schema,names")));
    page.insert("startAt", Member::Owned(json!(start_at)));
    page.insert("maxResults", Member::Owned(json!(max_results)));
    page.insert(
        "total",
        Member::Owned(json!(lies.lying_total.unwrap_or(total))),
    );
    page.insert("issues", Member::Text(issues));
    app.site.search_page_served();
    ok_text(page.into_text())
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
        index.find(&key).map(|pos| {
            let mut out = Vec::new();
            Rendering::new(&selection, site, index, &api_url).write(pos, &mut out);
            out
        })
    });
    match found {
        Some(issue) => ok_text(issue),
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
    include: BTreeSet<String>,
    exclude: BTreeSet<String>,
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
            include: BTreeSet::new(),
            exclude: BTreeSet::new(),
            key: false,
        };
        for item in items {
            match item.as_str() {
                "*all" | "*navigable" => s.all = true,
                "id" | "" => {}
                "key" => s.key = true,
                other => match other.strip_prefix('-') {
                    Some(name) => {
                        s.exclude.insert(name.to_owned());
                    }
                    None => {
                        s.include.insert(other.to_owned());
                    }
                },
            }
        }
        s
    }

    /// Only `id` (and maybe `key`) asked for: the issue carries no `fields`.
    fn is_id_only(&self) -> bool {
        !self.all && self.include.is_empty()
    }

    /// Whether the answer carries this member of `fields`.
    fn wants(&self, name: &str) -> bool {
        (self.all || self.include.contains(name)) && !self.exclude.contains(name)
    }

    /// Appends the issue as an answer carries it, as JSON text written
    /// straight from the site's values (see [`crate::json_text`]). Its
    /// `fields` are copied from `written` when given: the index's text of
    /// them, with which field name ids this selection keeps. An id-only
    /// answer is `{"id"}` (plus `key` if asked, or if the issue has no id,
    /// as trimmed fixtures do).
    fn write(
        &self,
        issue: &Value,
        written: Option<(&MembersText, &[bool])>,
        api_url: &str,
        out: &mut Vec<u8>,
    ) {
        let no_members = Map::new();
        let top = issue.as_object().unwrap_or(&no_members);
        // One pass rather than a look-up per member.
        let (mut id, mut key, mut fields) = (None, None, None);
        for (name, value) in top {
            match name.as_str() {
                "id" => id = Some(value),
                "key" => key = Some(value),
                "fields" => fields = Some(value),
                _ => {}
            }
        }
        let mut rendered = Object::new();
        if self.is_id_only() {
            if let Some(id) = id {
                rendered.insert("id", Member::Borrowed(id));
            }
            if (self.key || id.is_none())
                && let Some(key) = key
            {
                rendered.insert("key", Member::Borrowed(key));
            }
            rendered.write(out);
            return;
        }
        rendered.insert(
            "expand",
            Member::Owned(json!(
                "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"
            )),
        );
        for (name, value) in top.iter().filter(|(n, _)| *n != "fields") {
            rendered.insert(name.as_str(), Member::Borrowed(value));
        }
        if !rendered.contains_key("self")
            && let Some(id) = id.and_then(Value::as_str)
        {
            rendered.insert(
                "self",
                Member::Owned(json!(format!("{api_url}/issue/{id}"))),
            );
        }
        let wanted = |name: &str| self.wants(name);
        let fields = match (fields, written) {
            // The index is rebuilt whenever the site changes, so its text
            // is this issue's; the count is only a guard.
            (Some(Value::Object(all)), Some((text, keep))) if text.len() == all.len() => {
                Member::Chosen {
                    written: text,
                    keep,
                }
            }
            (Some(Value::Object(all)), _) => Member::Subset {
                object: all,
                keep: &wanted,
            },
            _ => Member::Text(b"{}".to_vec()),
        };
        rendered.insert("fields", fields);
        rendered.write(out);
    }
}

/// A selection applied to the issues of one answer: which of the index's
/// field names it keeps is worked out once, not for each field of each
/// issue.
struct Rendering<'a> {
    selection: &'a Selection,
    site: &'a Site,
    index: &'a IssueIndex,
    /// By field name id ([`IssueIndex::field_names`]).
    wanted: Vec<bool>,
    api_url: &'a str,
}

impl<'a> Rendering<'a> {
    fn new(
        selection: &'a Selection,
        site: &'a Site,
        index: &'a IssueIndex,
        api_url: &'a str,
    ) -> Rendering<'a> {
        let wanted = if selection.is_id_only() {
            Vec::new()
        } else {
            index
                .field_names()
                .iter()
                .map(|name| selection.wants(name))
                .collect()
        };
        Rendering {
            selection,
            site,
            index,
            wanted,
            api_url,
        }
    }

    /// Appends the issue at `pos` (see [`Selection::write`]).
    fn write(&self, pos: usize, out: &mut Vec<u8>) {
        let written = self.index.fields_text(pos).map(|t| (t, &self.wanted[..]));
        self.selection
            .write(&self.site.issues[pos], written, self.api_url, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flavor::Flavor;
    use crate::json_text::Names;
    use crate::site::SiteSize;
    use serde_json::Map;

    /// The issue as answers carried it before [`Selection::write`]: built as
    /// a `Value`, then serialized. `write` must give exactly its text.
    fn reference(selection: &Selection, issue: &Value, api_url: &str) -> Value {
        let id = issue.get("id");
        let mut out = Map::new();
        if selection.is_id_only() {
            if let Some(id) = id {
                out.insert("id".into(), id.clone());
            }
            if (selection.key || id.is_none())
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
                let wanted = (selection.all || selection.include.contains(name.as_str()))
                    && !selection.exclude.contains(name.as_str());
                if wanted {
                    fields.insert(name.clone(), value.clone());
                }
            }
        }
        out.insert("fields".into(), Value::Object(fields));
        Value::Object(out)
    }

    /// The issue as written, checked to be the same with and without the
    /// index's text of its fields.
    fn written(selection: &Selection, issue: &Value, api_url: &str) -> String {
        let mut plain = Vec::new();
        selection.write(issue, None, api_url, &mut plain);
        let mut names = Names::default();
        let fields_text = match issue.get("fields") {
            Some(Value::Object(fields)) => Some(MembersText::new(fields, &mut names)),
            _ => None,
        };
        let wanted: Vec<bool> = names.all().iter().map(|n| selection.wants(n)).collect();
        let mut copied = Vec::new();
        let written = fields_text.as_ref().map(|t| (t, &wanted[..]));
        selection.write(issue, written, api_url, &mut copied);
        assert_eq!(
            plain, copied,
            "the copied fields differ from the written ones"
        );
        String::from_utf8(plain).expect("UTF-8")
    }

    fn rendered(selection: &Selection, issue: &Value, api_url: &str) -> Value {
        serde_json::from_str(&written(selection, issue, api_url)).expect("valid JSON")
    }

    #[test]
    fn written_issues_are_the_reference_values_serialized() {
        let selections: Vec<Selection> = [
            &[][..],
            &["id"],
            &["key"],
            &["id", "key"],
            &["*all"],
            &["*navigable", "-description"],
            &["summary", "status", "updated", "description", "nope"],
            &["summary", "-summary", "labels"],
        ]
        .iter()
        .flat_map(|list| {
            let list = fields(list);
            [
                Selection::parse(&list, "id"),
                Selection::parse(&list, "*all"),
            ]
        })
        .collect();
        let size = SiteSize {
            projects: 3,
            issues_per_project: 4,
            ..SiteSize::default()
        };
        let mut issues: Vec<Value> = [Flavor::Cloud, Flavor::DataCenter]
            .into_iter()
            .flat_map(|f| {
                let mut all = Site::small(f).issues;
                all.extend(Site::generated(f, size).issues);
                all
            })
            .collect();
        issues.extend([
            issue(),
            json!({"key": "T-1", "fields": {}}),
            json!({"key": "T-2"}),
            json!({"id": 7, "key": "T-3", "fields": {"b": 1, "a": [2.5, null]}}),
            json!({"id": "9", "self": "s", "expand": "x", "zz": {"é\"": "\u{1}"}, "fields": {"x": 1}}),
            json!([1, 2]),
        ]);
        for selection in &selections {
            for issue in &issues {
                assert_eq!(
                    written(selection, issue, "http://h/rest/api/3"),
                    reference(selection, issue, "http://h/rest/api/3").to_string(),
                    "{selection:?} of {issue}"
                );
            }
        }
    }

    fn issue() -> Value {
        json!({"id": "10001", "key": "A-1", "fields": {"summary": "s", "status": {"name": "Open"}, "labels": []}})
    }

    fn fields(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn by_default_search_jql_returns_ids_only() {
        let sel = Selection::parse(&[], "id");
        assert_eq!(rendered(&sel, &issue(), "u"), json!({"id": "10001"}));
        let with_key = Selection::parse(&fields(&["id", "key"]), "id");
        assert_eq!(
            rendered(&with_key, &issue(), "u"),
            json!({"id": "10001", "key": "A-1"})
        );
        let trimmed = json!({"key": "T-1", "fields": {}});
        assert_eq!(rendered(&sel, &trimmed, "u"), json!({"key": "T-1"}));
    }

    #[test]
    fn asked_fields_are_kept_and_minus_fields_dropped() {
        let sel = Selection::parse(&fields(&["summary", "nope"]), "id");
        let got = rendered(&sel, &issue(), "u");
        assert_eq!(got["fields"], json!({"summary": "s"}));
        assert_eq!(got["key"], "A-1");
        assert_eq!(got["self"], "u/issue/10001");
        let sel = Selection::parse(&fields(&["*all", "-labels"]), "id");
        let got = rendered(&sel, &issue(), "u");
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
