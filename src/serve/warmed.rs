//! Answers from the entries the warm writes (`CONVENTIONS.md`, "Categories
//! and keys"), so that a `cache_warm` is enough for `cache_serve` to answer
//! with the site down. Only where the warmed entry holds the JSON Jira
//! returns for the request:
//! - `field` from `list:fields` (the `GET /field` answer, any version: a
//!   field carries no rich text and no `self` link);
//! - the bare-array `project` from `list:projects` (Data Center's own
//!   `GET /project` answer; on Cloud the projects of `/project/search`,
//!   the same objects), and Cloud's `project/search`, paged from that list
//!   (`startAt`, `maxResults` up to 100, repeated `keys`);
//! - `issue/{key}?fields=…` from the issue's entry, when the cached fields
//!   cover the requested ones (below).
//!
//! The others stay answered from what `cache_serve` itself fetched
//! (`serve:` keys, see [`super::route`]), because the warmed entry is not
//! what Jira returns for them: `project/{key}` adds `description`, `lead`,
//! `components`, `issueTypes`, `versions` and `roles` to the listing's
//! project; `user?accountId=` adds `groups`, `applicationRoles` and
//! `expand` to the listing's user; an issue asked without `fields` gets
//! every field (`*all`), more than the warm's `issue_fields`.
//!
//! **Projects and users when the site is down.** `project/{key}` (by key)
//! and `user?accountId=` (Data Center `user?key=`) are read through as
//! above. Only when that fails for want of the site (nothing kept, or kept
//! beyond `max_stale`), the warmed project or user, within `max_stale`, is
//! served as what it is, the listing's object with fewer members, marked
//! `X-Cache: STALE-PARTIAL` ([`Source::Listed`]), as an issue short of
//! fields is.
//!
//! **Versions.** Every warmed entry was fetched in the deployment's API
//! version (`Deployment::api_base`: v3 on Cloud, v2 on Data Center): the
//! warm and the library ask nothing else. A request in the other version
//! (Cloud v2) is answered from it only when each requested issue field has
//! the same shape in both: never `description`, `environment`, `comment`,
//! `worklog`, a textarea custom field (by the cached `list:fields`), a
//! custom field that list does not know, or any value holding an ADF
//! document. Such an answer's `self` links are rewritten to the requested
//! version, so a client that follows them stays in its version.
//!
//! **Issues.** `fields` must name the fields (comma-separated and/or
//! repeated); `*all`, `*navigable`, `-field` and an absent `fields` (which
//! means `*all`) are fetched through, as are `expand`, `properties`,
//! `fieldsByKeys=true` and `updateHistory=true` (a side effect on the
//! site). The answer keeps `expand`, `id`, `self`, `key` and only the
//! requested fields. When the cached fields do not cover the request, the
//! issue is fetched through; if the site cannot be reached, the fields the
//! entry does have are served, marked `X-Cache: STALE-PARTIAL`
//! ([`Fit::Partial`]).

use std::collections::HashSet;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;

use super::route::SafePath;
use crate::{Category, Deployment};

/// The key of the cached list of fields.
pub const FIELDS_LIST: &str = "list:fields";
/// The key of the cached list of projects.
pub const PROJECTS_LIST: &str = "list:projects";

/// The most `keys` one `project/search` request may name (the spec's 50).
const MAX_PROJECT_KEYS: usize = 50;
/// The largest page of `project/search` (the spec: more is taken as 100).
const MAX_PROJECT_PAGE: usize = 100;
/// `project/search`'s default page.
const DEFAULT_PROJECT_PAGE: usize = 50;

/// Issue fields whose shape differs between v2 (wiki markup) and v3 (ADF).
const RICH_TEXT_FIELDS: [&str; 4] = ["description", "environment", "comment", "worklog"];
/// The custom field type whose values are rich text.
const TEXTAREA: &str = "com.atlassian.jira.plugin.system.customfieldtypes:textarea";

/// A request a warmed entry may answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A whole list, as Jira returns it: `field`, the bare `project`.
    List(Category, &'static str),
    /// A page of `list:projects`, as Cloud's `project/search` returns it.
    ProjectPage {
        /// `startAt`.
        start_at: usize,
        /// `maxResults`, capped at 100.
        max_results: usize,
        /// `keys` (none: every project).
        keys: Vec<String>,
    },
    /// One project or user whose warmed entry is the listing's object,
    /// fewer members than `project/{key}` or `user` return: never served
    /// whole, only as [`Fit::Partial`] when the site cannot be reached.
    Listed(Category, String),
    /// An issue with exactly these fields.
    Issue {
        /// Its key, upper-cased.
        key: String,
        /// The requested fields, in the request's order, without repeats.
        fields: Vec<String>,
    },
}

impl Source {
    /// The category of the warmed entry.
    pub fn category(&self) -> Category {
        match self {
            Source::List(category, _) => *category,
            Source::ProjectPage { .. } => Category::Project,
            Source::Listed(category, _) => *category,
            Source::Issue { .. } => Category::Issue,
        }
    }

    /// The key of the warmed entry.
    pub fn key(&self) -> &str {
        match self {
            Source::List(_, key) => key,
            Source::ProjectPage { .. } => PROJECTS_LIST,
            Source::Listed(_, key) => key,
            Source::Issue { key, .. } => key,
        }
    }
}

/// The warmed entry that may answer this GET, or `None` when only the
/// site (or `cache_serve`'s own entry) can.
pub fn source(path: &SafePath, query: Option<&str>, deployment: Deployment) -> Option<Source> {
    path.version?;
    let params = Params::parse(query);
    let parts: Vec<&str> = path.rest.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["field"] if params.is_empty() => Some(Source::List(Category::Field, FIELDS_LIST)),
        ["project"] if params.is_empty() => Some(Source::List(Category::Project, PROJECTS_LIST)),
        ["project", "search"] if deployment == Deployment::Cloud => project_page(&params),
        ["issue", key] => issue(key, &params),
        // By key: the warm keys projects by key, not id.
        ["project", key]
            if *key != "search"
                && params.is_empty()
                && !key.chars().all(|c| c.is_ascii_digit()) =>
        {
            Some(Source::Listed(Category::Project, key.to_ascii_uppercase()))
        }
        // The warm keys users by Cloud `accountId`, Data Center `key`.
        ["user"] => match (params.0.as_slice(), deployment) {
            ([(name, id)], Deployment::Cloud) if name == "accountId" && !id.is_empty() => {
                Some(Source::Listed(Category::User, id.clone()))
            }
            ([(name, id)], Deployment::DataCenter) if name == "key" && !id.is_empty() => {
                Some(Source::Listed(Category::User, id.clone()))
            }
            _ => None,
        },
        _ => None,
    }
}

fn project_page(params: &Params) -> Option<Source> {
    let mut start_at = 0;
    let mut max_results = DEFAULT_PROJECT_PAGE;
    let mut keys = Vec::new();
    let mut seen = HashSet::new();
    for (name, value) in &params.0 {
        match name.as_str() {
            "startAt" if seen.insert("startAt") => start_at = value.parse().ok()?,
            "maxResults" if seen.insert("maxResults") => {
                max_results = value.parse::<usize>().ok()?.min(MAX_PROJECT_PAGE);
            }
            // Each key its own parameter. The Cloud OpenAPI document
            // (`jira-cloud-platform-v3.json`, `GET /rest/api/3/project/search`)
            // declares `keys` a query array of strings in the default form
            // style, exploded, and says "To include multiple keys, provide an
            // ampersand-separated list. For example, `keys=PA&keys=PB`": the
            // comma is not a separator it defines. Whether Jira Cloud splits
            // `keys=PA,PB` anyway is not documented, and no captured answer
            // of ours shows it, so that form (or an empty key) is not read
            // here as several keys: the request goes to the site unchanged
            // and its answer, whatever it is, is kept under its own query
            // (`tests/serve.rs`,
            // `comma_joined_project_keys_go_to_the_site_as_they_came`).
            "keys" if !value.is_empty() && !value.contains(',') => keys.push(value.clone()),
            "orderBy" if seen.insert("orderBy") && matches!(value.as_str(), "key" | "+key") => {}
            _ => return None,
        }
    }
    if keys.len() > MAX_PROJECT_KEYS {
        return None;
    }
    Some(Source::ProjectPage {
        start_at,
        max_results,
        keys,
    })
}

fn issue(key: &str, params: &Params) -> Option<Source> {
    let key = key.to_ascii_uppercase();
    if !is_issue_key(&key) {
        // An id, or something the site will refuse: the site says.
        return None;
    }
    let mut fields: Vec<String> = Vec::new();
    for (name, value) in &params.0 {
        match (name.as_str(), value.as_str()) {
            ("fields", list) => {
                for field in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    if field.starts_with('*') || field.starts_with('-') {
                        return None;
                    }
                    if !fields.iter().any(|f| f == field) {
                        fields.push(field.to_string());
                    }
                }
            }
            ("expand", "") | ("fieldsByKeys", "false") | ("updateHistory", "false") => {}
            ("failFast", "true" | "false") => {}
            _ => return None,
        }
    }
    if fields.is_empty() {
        // No `fields` means every field: more than a warm keeps.
        return None;
    }
    Some(Source::Issue { key, fields })
}

fn is_issue_key(key: &str) -> bool {
    key.rsplit_once('-').is_some_and(|(project, number)| {
        let mut chars = project.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !number.is_empty()
            && number.chars().all(|c| c.is_ascii_digit())
    })
}

/// A query's parameters, decoded, in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: Option<&str>) -> Params {
        Params(
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a warmed entry makes of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// The whole answer, as Jira would give it.
    Whole(String),
    /// An issue holding only some of the requested fields (or some only in
    /// the other version's shape): those it can give. Served only when the
    /// site cannot be reached, marked `STALE-PARTIAL`.
    Partial(String),
    /// Nothing to serve (not the shape asked for, or not decodable).
    No,
}

/// How the request differs from the entry.
#[derive(Debug, Clone, Copy)]
pub struct Versions {
    /// The API version of the request.
    pub request: u8,
    /// The API version the entry was fetched in (the deployment's).
    pub entry: u8,
}

impl Versions {
    /// A request of `request`'s version against entries of `deployment`.
    pub fn of(request: u8, deployment: Deployment) -> Versions {
        Versions {
            request,
            entry: match deployment {
                Deployment::Cloud => 3,
                Deployment::DataCenter => 2,
            },
        }
    }

    fn differ(self) -> bool {
        self.request != self.entry
    }
}

/// What `source` makes of the warmed entry's JSON text `value`.
/// `self_url` is the site's URL of the requested path (a page's `self`);
/// `fields_list` gives the cached `list:fields`, asked only when needed.
pub fn fit(
    source: &Source,
    value: &str,
    versions: Versions,
    self_url: &str,
    fields_list: &mut dyn FnMut() -> Option<String>,
) -> Fit {
    let answer = match source {
        // The warm writes lists as JSON arrays: not decoded again per read.
        Source::List(..) if value.trim_start().starts_with('[') => Fit::Whole(value.to_string()),
        Source::List(..) => Fit::No,
        Source::Listed(..) if value.trim_start().starts_with('{') => {
            Fit::Partial(value.to_string())
        }
        Source::Listed(..) => Fit::No,
        Source::ProjectPage {
            start_at,
            max_results,
            keys,
        } => match project_page_text(value, *start_at, *max_results, keys, self_url) {
            Some(page) => Fit::Whole(page),
            None => Fit::No,
        },
        Source::Issue { key, fields } => issue_fit(value, key, fields, versions, fields_list),
    };
    if !versions.differ() {
        return answer;
    }
    let (from, to) = (versions.entry, versions.request);
    match answer {
        Fit::Whole(text) => Fit::Whole(rewrite_self_links(&text, from, to)),
        Fit::Partial(text) => Fit::Partial(rewrite_self_links(&text, from, to)),
        Fit::No => Fit::No,
    }
}

/// A `project/search` PageBean over the cached list.
fn project_page_text(
    list: &str,
    start_at: usize,
    max_results: usize,
    keys: &[String],
    self_url: &str,
) -> Option<String> {
    #[derive(Deserialize)]
    struct Keyed {
        key: Option<String>,
    }
    let all: Vec<&RawValue> = serde_json::from_str(list).ok()?;
    let mut values = Vec::with_capacity(all.len());
    for project in all {
        if !keys.is_empty() {
            let keyed: Keyed = serde_json::from_str(project.get()).ok()?;
            let key = keyed.key.unwrap_or_default();
            if !keys.iter().any(|k| k.eq_ignore_ascii_case(&key)) {
                continue;
            }
        }
        values.push(project);
    }
    let total = values.len();
    let start = start_at.min(total);
    let end = total.min(start.saturating_add(max_results));
    let is_last = end >= total;
    let page_url = |at: usize| format!("{self_url}?startAt={at}&maxResults={max_results}");
    let mut text = String::with_capacity(list.len().min(64 * 1024));
    text.push_str("{\"self\":");
    text.push_str(&serde_json::to_string(&page_url(start_at)).ok()?);
    if !is_last {
        text.push_str(",\"nextPage\":");
        text.push_str(&serde_json::to_string(&page_url(end)).ok()?);
    }
    text.push_str(&format!(
        ",\"maxResults\":{max_results},\"startAt\":{start_at},\"total\":{total},\"isLast\":{is_last},\"values\":["
    ));
    for (i, project) in values[start..end].iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(project.get());
    }
    text.push_str("]}");
    Some(text)
}

/// The members of an issue a plain `GET issue/{key}?fields=` returns.
const ISSUE_MEMBERS: [&str; 5] = ["expand", "id", "self", "key", "fields"];

fn issue_fit(
    value: &str,
    key: &str,
    wanted: &[String],
    versions: Versions,
    fields_list: &mut dyn FnMut() -> Option<String>,
) -> Fit {
    let Ok(top) = serde_json::from_str::<Members>(value) else {
        return Fit::No;
    };
    // A renamed issue's old key: the site knows where it went.
    let same_key = top
        .get("key")
        .and_then(|k| serde_json::from_str::<&str>(k.get()).ok());
    if same_key.is_none_or(|k| !k.eq_ignore_ascii_case(key)) {
        return Fit::No;
    }
    let Some(Ok(cached)) = top
        .get("fields")
        .map(|f| serde_json::from_str::<Members>(f.get()))
    else {
        return Fit::No;
    };
    let mut customs: Option<Option<Vec<FieldDef>>> = None;
    let mut custom_type = |id: &str| -> Option<Option<String>> {
        let defs = customs.get_or_insert_with(|| {
            fields_list().and_then(|l| serde_json::from_str::<Vec<FieldDef>>(&l).ok())
        });
        let def = defs
            .as_ref()?
            .iter()
            .find(|d| d.id.as_deref() == Some(id))?;
        Some(def.schema.as_ref().and_then(|s| s.custom.clone()))
    };
    let mut keep: HashSet<&str> = HashSet::new();
    let mut whole = true;
    for field in wanted {
        match cached.get(field) {
            None => whole = false,
            Some(raw) => {
                if versions.differ() && !same_shape(field, raw, &mut custom_type) {
                    whole = false;
                } else {
                    keep.insert(field.as_str());
                }
            }
        }
    }
    let mut fields = Members(Vec::new());
    for (name, raw) in cached.0 {
        if keep.contains(name.as_str()) {
            fields.0.push((name, raw));
        }
    }
    let fields_text = fields.to_text();
    let mut out = Members(Vec::new());
    let fields_raw: &RawValue = match serde_json::from_str(&fields_text) {
        Ok(raw) => raw,
        Err(_) => return Fit::No,
    };
    for (name, raw) in top.0 {
        if !ISSUE_MEMBERS.contains(&name.as_str()) {
            continue;
        }
        if name == "fields" {
            out.0.push((name, fields_raw));
        } else {
            out.0.push((name, raw));
        }
    }
    match whole {
        true => Fit::Whole(out.to_text()),
        false => Fit::Partial(out.to_text()),
    }
}

/// The warmed entry of an issue, refreshed from that issue as a search
/// answer gave it (`answered`, fetched in the entry's API version: the
/// caller's check). Conservative: `None`, leaving the entry as it is,
/// unless the answer holds the same issue (same `key`), every member the
/// entry holds, every field the entry holds (so no `fieldsByKeys` or
/// `versionedRepresentations` answer passes), and an `updated` no older
/// than the entry's `updated_at`. The refreshed value keeps the entry's
/// members and fields, in its order, each with the answer's value.
pub fn refreshed_issue(cached: &str, updated_at: Option<i64>, answered: &str) -> Option<String> {
    let old: Members = serde_json::from_str(cached).ok()?;
    let new: Members = serde_json::from_str(answered).ok()?;
    let key_of = |m: &Members| {
        m.get("key")
            .and_then(|k| serde_json::from_str::<String>(k.get()).ok())
    };
    if !key_of(&old)?.eq_ignore_ascii_case(&key_of(&new)?) {
        return None;
    }
    let old_fields: Members = serde_json::from_str(old.get("fields")?.get()).ok()?;
    let new_fields: Members = serde_json::from_str(new.get("fields")?.get()).ok()?;
    let updated = new_fields
        .get("updated")
        .and_then(|u| serde_json::from_str::<String>(u.get()).ok())
        .and_then(|u| crate::warm::parse_jira_time(&u))?;
    if updated < updated_at? {
        return None;
    }
    let mut fields = Members(Vec::with_capacity(old_fields.0.len()));
    for (name, _) in &old_fields.0 {
        fields.0.push((name.clone(), new_fields.get(name)?));
    }
    let fields_text = fields.to_text();
    let fields_raw: &RawValue = serde_json::from_str(&fields_text).ok()?;
    let mut out = Members(Vec::with_capacity(old.0.len()));
    for (name, _) in &old.0 {
        let value = match name.as_str() {
            "fields" => fields_raw,
            _ => new.get(name)?,
        };
        out.0.push((name.clone(), value));
    }
    Some(out.to_text())
}

#[derive(Deserialize)]
struct FieldDef {
    id: Option<String>,
    schema: Option<FieldSchema>,
}

#[derive(Deserialize)]
struct FieldSchema {
    custom: Option<String>,
}

/// Whether `field`'s value has the same shape in v2 and v3. `custom_type`
/// gives a custom field's type from the cached list of fields: `None` when
/// the field (or the list) is unknown.
fn same_shape(
    field: &str,
    raw: &RawValue,
    custom_type: &mut dyn FnMut(&str) -> Option<Option<String>>,
) -> bool {
    if RICH_TEXT_FIELDS.contains(&field) {
        return false;
    }
    if field.starts_with("customfield_") {
        match custom_type(field) {
            Some(Some(t)) if t == TEXTAREA => return false,
            Some(_) => {}
            None => return false,
        }
    }
    match serde_json::from_str::<serde_json::Value>(raw.get()) {
        Ok(value) => !holds_adf(&value),
        Err(_) => false,
    }
}

/// Whether `value` is or contains an ADF document (`{"type":"doc",…}`).
fn holds_adf(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(o) => {
            (o.get("type").and_then(|t| t.as_str()) == Some("doc") && o.contains_key("content"))
                || o.values().any(holds_adf)
        }
        serde_json::Value::Array(a) => a.iter().any(holds_adf),
        _ => false,
    }
}

/// `text` with the version in every `"self"` link's `/rest/api/N/` changed
/// from `from` to `to`. Only member names are matched: inside a JSON
/// string a quote is always escaped, so `"self":"` is structure.
fn rewrite_self_links(text: &str, from: u8, to: u8) -> String {
    let old = format!("/rest/api/{from}/");
    let new = format!("/rest/api/{to}/");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\"self\"") {
        let (before, after) = rest.split_at(at + "\"self\"".len());
        out.push_str(before);
        // `:` and the opening quote, with the whitespace JSON allows.
        let trimmed = after.trim_start();
        let Some(value) = trimmed.strip_prefix(':').map(str::trim_start) else {
            rest = after;
            continue;
        };
        let Some(value) = value.strip_prefix('"') else {
            rest = after;
            continue;
        };
        let prefix_len = after.len() - value.len();
        out.push_str(&after[..prefix_len]);
        let end = string_end(value);
        out.push_str(&value[..end].replacen(&old, &new, 1));
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// The byte offset of the closing quote of a JSON string whose opening
/// quote was just before `s` (or `s.len()`).
fn string_end(s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// A JSON object's members in their order, values as their original text.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'a> Members<'a> {
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    fn to_text(&self) -> String {
        let mut text = String::from("{");
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&serde_json::to_string(name).unwrap_or_else(|_| "\"\"".into()));
            text.push(':');
            text.push_str(value.get());
        }
        text.push('}');
        text
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, &'de RawValue>()? {
                    members.push((name, value));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::route::check_path;

    fn src(path: &str, query: Option<&str>) -> Option<Source> {
        let path = check_path(path, Deployment::Cloud).unwrap();
        source(&path, query, Deployment::Cloud)
    }

    const ISSUE: &str = r#"{"expand":"x","id":"10","self":"https://s/rest/api/3/issue/10","key":"P-1","fields":{"summary":"S","status":{"self":"https://s/rest/api/3/status/1","name":"Open"},"description":{"type":"doc","version":1,"content":[]},"customfield_1":"t","customfield_2":"u"}}"#;

    fn no_list() -> Option<String> {
        None
    }

    #[test]
    fn only_plain_requests_are_answered_from_warmed_entries() {
        assert_eq!(
            src("/rest/api/3/field", None),
            Some(Source::List(Category::Field, FIELDS_LIST))
        );
        assert_eq!(src("/rest/api/3/field", Some("x=1")), None);
        assert_eq!(
            src("/rest/api/3/project/alpha", None),
            Some(Source::Listed(Category::Project, "ALPHA".into()))
        );
        assert_eq!(src("/rest/api/3/project/10000", None), None);
        assert_eq!(src("/rest/api/3/project/ALPHA", Some("expand=lead")), None);
        assert_eq!(
            src("/rest/api/3/user", Some("accountId=a")),
            Some(Source::Listed(Category::User, "a".into()))
        );
        assert_eq!(
            src("/rest/api/3/user", Some("accountId=a&expand=groups")),
            None
        );
        assert_eq!(src("/rest/api/3/user", Some("username=a")), None);
        assert!(matches!(
            fit(
                &Source::Listed(Category::User, "a".into()),
                r#"{"accountId":"a"}"#,
                Versions::of(3, Deployment::Cloud),
                "",
                &mut no_list
            ),
            Fit::Partial(_)
        ));
        assert_eq!(
            src(
                "/rest/api/3/project/search",
                Some("keys=A&keys=B&maxResults=500")
            ),
            Some(Source::ProjectPage {
                start_at: 0,
                max_results: 100,
                keys: vec!["A".into(), "B".into()]
            })
        );
        assert_eq!(src("/rest/api/3/project/search", Some("keys=A,B")), None);
        assert_eq!(src("/rest/api/3/project/search", Some("startAt=-1")), None);
        assert_eq!(src("/rest/api/3/project/search", Some("query=x")), None);
        assert_eq!(
            src(
                "/rest/api/2/issue/p-1",
                Some("fields=summary%2Cstatus&fields=summary")
            ),
            Some(Source::Issue {
                key: "P-1".into(),
                fields: vec!["summary".into(), "status".into()]
            })
        );
        for q in [
            None,
            Some("fields=*all"),
            Some("fields=summary&expand=names"),
            Some("fields=-x"),
        ] {
            assert_eq!(src("/rest/api/3/issue/P-1", q), None, "{q:?}");
        }
        assert_eq!(src("/rest/api/3/issue/10001", Some("fields=summary")), None);
    }

    #[test]
    fn an_issue_is_whole_only_when_its_fields_cover_the_request() {
        let same = Versions::of(3, Deployment::Cloud);
        let source = |f: &[&str]| Source::Issue {
            key: "P-1".into(),
            fields: f.iter().map(|s| s.to_string()).collect(),
        };
        let Fit::Whole(text) = fit(
            &source(&["status", "summary"]),
            ISSUE,
            same,
            "",
            &mut no_list,
        ) else {
            panic!("covered");
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["fields"].as_object().unwrap().len(), 2);
        assert_eq!(v["self"], "https://s/rest/api/3/issue/10");
        let Fit::Partial(text) = fit(
            &source(&["summary", "labels"]),
            ISSUE,
            same,
            "",
            &mut no_list,
        ) else {
            panic!("partial");
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["fields"], serde_json::json!({"summary": "S"}));
        let other = Source::Issue {
            key: "P-2".into(),
            fields: vec!["summary".into()],
        };
        assert_eq!(fit(&other, ISSUE, same, "", &mut no_list), Fit::No);
    }

    #[test]
    fn a_v2_request_never_gets_rich_text_of_a_v3_entry() {
        let cross = Versions::of(2, Deployment::Cloud);
        let one = |f: &str| Source::Issue {
            key: "P-1".into(),
            fields: vec![f.into()],
        };
        let list = || {
            Some(
                r#"[{"id":"customfield_1","schema":{"custom":"com.atlassian.jira.plugin.system.customfieldtypes:textarea"}},{"id":"customfield_2","schema":{"custom":"com.atlassian.jira.plugin.system.customfieldtypes:textfield"}}]"#
                    .to_string(),
            )
        };
        for rich in ["description", "customfield_1"] {
            let got = fit(&one(rich), ISSUE, cross, "", &mut { list });
            assert!(
                matches!(got, Fit::Partial(ref t) if !t.contains(rich)),
                "{rich}: {got:?}"
            );
        }
        assert!(matches!(
            fit(&one("customfield_2"), ISSUE, cross, "", &mut { list }),
            Fit::Whole(_)
        ));
        // Without the list of fields, a custom field's shape is unknown.
        assert!(matches!(
            fit(&one("customfield_2"), ISSUE, cross, "", &mut no_list),
            Fit::Partial(_)
        ));
        let Fit::Whole(text) = fit(&one("status"), ISSUE, cross, "", &mut no_list) else {
            panic!("status has one shape");
        };
        assert!(text.contains("https://s/rest/api/2/issue/10"));
        assert!(text.contains("https://s/rest/api/2/status/1"));
        assert!(!text.contains("/rest/api/3/"));
    }

    #[test]
    fn only_self_links_are_rewritten() {
        let text = r#"{"self": "https://s/rest/api/3/x","summary":"see \"self\":\"https://s/rest/api/3/y\"","a":{"self":"h/rest/api/3/z"}}"#;
        let got = rewrite_self_links(text, 3, 2);
        assert_eq!(
            got,
            r#"{"self": "https://s/rest/api/2/x","summary":"see \"self\":\"https://s/rest/api/3/y\"","a":{"self":"h/rest/api/2/z"}}"#
        );
    }

    #[test]
    fn a_search_answer_refreshes_an_issue_only_when_it_covers_the_entry() {
        let cached = r#"{"id":"10","key":"P-1","fields":{"summary":"Old","updated":"2024-01-01T00:00:00.000+0000"}}"#;
        let at = crate::warm::parse_jira_time("2024-01-01T00:00:00.000+0000");
        let newer = r#"{"expand":"x","id":"10","self":"s","key":"P-1","fields":{"status":{"name":"Open"},"updated":"2024-02-01T00:00:00.000+0000","summary":"New"}}"#;
        let got = refreshed_issue(cached, at, newer).expect("covered");
        assert_eq!(
            got,
            r#"{"id":"10","key":"P-1","fields":{"summary":"New","updated":"2024-02-01T00:00:00.000+0000"}}"#
        );
        // A field the entry holds is missing from the answer.
        let short =
            r#"{"id":"10","key":"P-1","fields":{"updated":"2024-02-01T00:00:00.000+0000"}}"#;
        assert_eq!(refreshed_issue(cached, at, short), None);
        // Older than the entry, another issue, no `updated`: left alone.
        let older = newer.replace("2024-02-01", "2023-12-01");
        assert_eq!(refreshed_issue(cached, at, &older), None);
        assert_eq!(
            refreshed_issue(cached, at, &newer.replace("P-1", "P-2")),
            None
        );
        assert_eq!(refreshed_issue(cached, None, newer), None);
        // A member of the entry's (here `id`) the answer lacks.
        let no_id = newer.replace(r#""id":"10","#, "");
        assert_eq!(refreshed_issue(cached, at, &no_id), None);
    }

    #[test]
    fn project_pages_window_the_list_and_filter_by_keys() {
        let list = r#"[{"key":"A","id":"1"},{"key":"B","id":"2"},{"key":"C","id":"3"}]"#;
        let page = project_page_text(list, 1, 1, &[], "u").unwrap();
        let v: serde_json::Value = serde_json::from_str(&page).unwrap();
        assert_eq!(v["values"], serde_json::json!([{"key":"B","id":"2"}]));
        assert_eq!(
            (v["total"].as_u64(), v["isLast"].as_bool()),
            (Some(3), Some(false))
        );
        assert_eq!(v["nextPage"], "u?startAt=2&maxResults=1");
        let keyed = project_page_text(list, 0, 50, &["c".into(), "A".into()], "u").unwrap();
        let v: serde_json::Value = serde_json::from_str(&keyed).unwrap();
        assert_eq!(v["total"], 2);
        assert_eq!(v["isLast"], true);
        assert!(v.get("nextPage").is_none());
    }
}
