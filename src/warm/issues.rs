//! The issues stage: the recent issues of every project in scope, plus the
//! on-demand tier (`--issue KEY`, `--jql`).
//!
//! One request per project was the cost of the old design, not of the work
//! (issue 16). Now, for all projects in scope at once (chunked when the
//! JQL gets long):
//!
//! 1. **A count** of the window (Cloud `/search/approximate-count`, Data
//!    Center a `/search` with `maxResults: 0`): it gives each listing below
//!    its request budget. A listing still going past its budget is
//!    truncated and reported; it proves nothing.
//! 2. **What changed** (Cloud, when the projects have watermarks): one
//!    search for `updated >= -Nm`, N reaching back to the oldest watermark
//!    in scope plus [`WATERMARK_MARGIN`], with `updated` only.
//! 3. **A key census** of the window: Cloud `/search/jql` with `fields=key`
//!    (5,000 keys a page), newest first; Data Center `/search` with
//!    `updated`, sorted by key, so that an issue updated during the census
//!    cannot move to a page already read. Issue keys carry their project,
//!    so the per-project cap (`--max-issues`, the newest N) is applied
//!    here, client-side.
//! 4. **Bodies in bulk**, only for issues not cached or whose `updated`
//!    differs from the cached one (all of them with `--full` or for a
//!    project without a watermark): Cloud `POST /issue/bulkfetch`, 100 keys
//!    a request; Data Center `key in (…)` searches with `validateQuery:
//!    false`, so that an issue deleted since the census leaves a gap
//!    instead of failing the query. A moved issue answers under its new
//!    key: it is cached under that key, and the old key is remembered as an
//!    alias of it.
//! 5. **Reconciliation**, only after a complete census: a cached issue of a
//!    project whose `updated` is inside the window and that the census did
//!    not return is looked at once more (a second look, by key) before it
//!    is removed, so that a census shifted by a concurrent change never
//!    removes an issue that still exists. Issues that merely aged out of the
//!    window stay until their TTL.
//!
//! **Watermarks.** A project's watermark is the time (our clock) its last
//! complete pass started: every change before it is cached. It moves only
//! when the pass was complete (count, changes, census and every fetch of
//! the project), so it never passes a change that was not fetched. A
//! cached issue that changed is fetched even when it is past the
//! per-project cap. Relative JQL dates are computed from our own clock, so
//! the site's clock skew cancels out; the margin covers search lag.
//!
//! - TTL by age: issues updated in the last 7 days get `issue_recent`, older
//!   ones `issue_old`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{ErrorKind, StageError, StageReport, WarmContext, WarmError, now_ms, write_page};
use crate::cache::{Cache, KeyScope, NewEntry, issue_alias_meta_key};
use crate::jira::{
    BULKFETCH_MAX, DC_SEARCH_PAGE, Item, JiraClient, JiraError, KEY_CENSUS_PAGE, Pager,
    SEARCH_JQL_PAGE,
};
use crate::{Category, Deployment};

/// Issues updated within this long are "recent" (TTL `issue_recent`).
pub const RECENT: Duration = Duration::from_secs(7 * 86_400);

/// Added to the incremental window, for search lag (and a run's length).
pub const WATERMARK_MARGIN: Duration = Duration::from_secs(15 * 60);

/// Issues asked per page of a `--jql` search.
const PAGE_SIZE: usize = 100;

/// The longest JQL the stage builds: longer project or key lists are split
/// into several queries.
const MAX_JQL_CHARS: usize = 8_000;

/// The issue options of a plan.
#[derive(Debug, Clone)]
pub struct IssueOptions {
    /// Warm the recent issues of each project in scope.
    pub recent: bool,
    /// How far back "recent" goes (`--since`, default 30 days).
    pub since: Duration,
    /// At most this many issues per project, or per `--jql` (`--max-issues`).
    pub max_issues: usize,
    /// Ignore the watermarks: fetch the whole window.
    pub full: bool,
    /// `--issue KEY`: fetch these issues.
    pub keys: Vec<String>,
    /// `--jql`: fetch what this bounded query returns.
    pub jql: Option<String>,
}

impl Default for IssueOptions {
    fn default() -> IssueOptions {
        IssueOptions {
            recent: true,
            since: Duration::from_secs(30 * 86_400),
            max_issues: 100,
            full: false,
            keys: Vec::new(),
            jql: None,
        }
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Quotes a value for JQL: `"FOR"`, with `"` and `\` escaped.
pub fn jql_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A relative JQL date covering `d`, rounded up to whole minutes: `-43200m`.
pub fn jql_relative(d: Duration) -> String {
    format!("-{}m", d.as_secs().div_ceil(60).max(1))
}

/// The JQL of one project's window.
pub fn project_jql(project: &str, window: Duration) -> String {
    format!(
        "project = {} AND updated >= {} ORDER BY updated DESC",
        jql_quote(project),
        jql_relative(window)
    )
}

/// Parses Jira's timestamp (`2020-12-03T14:05:20.974+0100`) to Unix ms.
pub fn parse_jira_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.timestamp_millis())
}

#[derive(Deserialize)]
struct IssueProbe {
    key: Option<String>,
    fields: Option<FieldsProbe>,
}

#[derive(Deserialize)]
struct FieldsProbe {
    updated: Option<String>,
    project: Option<ProjectProbe>,
}

#[derive(Deserialize)]
struct ProjectProbe {
    key: Option<String>,
}

/// An issue's key, project and `updated`.
struct IssueFacts {
    key: String,
    project: Option<String>,
    updated: Option<i64>,
}

fn facts(item: &RawValue) -> Option<IssueFacts> {
    let probe: IssueProbe = serde_json::from_str(item.get()).ok()?;
    let key = probe.key?;
    let (project, updated) = match probe.fields {
        Some(f) => (
            f.project.and_then(|p| p.key),
            f.updated.as_deref().and_then(parse_jira_time),
        ),
        None => (None, None),
    };
    let project = project.or_else(|| key.rsplit_once('-').map(|(p, _)| p.to_string()));
    Some(IssueFacts {
        key,
        project,
        updated,
    })
}

/// An issue's identity for the pager (its `key`, as `by_key` reads it)
/// and its facts, from one parse: the pager's duplicate check and the
/// cache entry share it.
fn identity_and_facts(item: &RawValue) -> (Option<String>, Option<IssueFacts>) {
    match facts(item) {
        Some(f) => (Some(f.key.clone()), Some(f)),
        // Not an issue this stage can cache; it still counts by its key.
        None => (crate::jira::by_key(item), None),
    }
}

/// The cache entry of an issue, its TTL chosen by its age; `value` is the
/// issue as Jira sent it.
fn entry_of(ctx: &WarmContext, value: String, f: IssueFacts, now: i64) -> (NewEntry, Option<i64>) {
    let recent = f
        .updated
        .is_none_or(|u| now.saturating_sub(u) <= super::millis(RECENT));
    let ttl = if recent {
        ctx.ttl.issue_recent
    } else {
        ctx.ttl.issue_old
    };
    let entry = NewEntry {
        category: Category::Issue,
        key: f.key,
        value,
        fetched_at: now,
        expires_at: now.saturating_add(super::millis(ttl)),
        fetch_ms: 0,
        project: f.project,
        updated_at: f.updated,
    };
    (entry, f.updated)
}

/// The fields asked for: the profile's, plus what the cache itself needs.
fn fields(ctx: &WarmContext) -> Vec<String> {
    let mut fields = ctx.issue_fields.clone();
    for needed in ["updated", "project"] {
        if !fields
            .iter()
            .any(|f| f == needed || f == "*all" || f == "*navigable")
        {
            fields.push(needed.to_string());
        }
    }
    fields
}

/// The project restriction of a query: `project = "A"` for one project,
/// `project in ("A", "B")` for more.
pub fn project_clause(projects: &[String]) -> String {
    match projects {
        [one] => format!("project = {}", jql_quote(one)),
        many => format!(
            "project in ({})",
            many.iter()
                .map(|p| jql_quote(p))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `key in ("A-1", "B-2")`.
fn keys_jql(keys: &[String]) -> String {
    format!(
        "key in ({})",
        keys.iter()
            .map(|k| jql_quote(k))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Splits `items` into runs whose quoted list stays under [`MAX_JQL_CHARS`]
/// and holds at most `most` items.
fn chunk_for_jql(items: &[String], most: usize) -> Vec<Vec<String>> {
    let mut chunks = Vec::new();
    let mut chunk: Vec<String> = Vec::new();
    let mut len = 0;
    for item in items {
        let cost = jql_quote(item).len() + 2;
        if !chunk.is_empty() && (len + cost > MAX_JQL_CHARS || chunk.len() >= most) {
            chunks.push(std::mem::take(&mut chunk));
            len = 0;
        }
        len += cost;
        chunk.push(item.clone());
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// What a project's removal keeps: its census, the issues this pass
/// fetched and stored under the project (a moved issue stored under its
/// new project counts there), and the unlisted issues the second look found
/// still under their own key. The removal's scope is the project's own rows
/// (`project = ?`), so another project's keys would change nothing: they
/// used to be copied in anyway, every fetched key into each project's set,
/// 300 × 9,000 string copies on the benchmark site (issue 16's cold warm).
fn removal_keep(
    project: &str,
    listed: Option<&HashSet<String>>,
    fetched: &Fetched,
    unlisted: &[String],
    second: &Fetched,
) -> HashSet<String> {
    let mut keep: HashSet<String> = listed.cloned().unwrap_or_default();
    if let Some(own) = fetched.stored_in.get(project) {
        keep.extend(own.iter().cloned());
    }
    // Still there under its own key: the census missed it.
    keep.extend(
        unlisted
            .iter()
            .filter(|k| second.found.get(*k) == Some(*k))
            .cloned(),
    );
    keep
}

/// The census of a window: newest first on Cloud (the per-project cap
/// reads it in order), by key on Data Center (a concurrent update cannot
/// shift its pages; the cap sorts by the `updated` it carries).
pub fn census_jql(projects: &[String], window: Duration, deployment: Deployment) -> String {
    let order = match deployment {
        Deployment::Cloud => "ORDER BY updated DESC",
        Deployment::DataCenter => "ORDER BY key ASC",
    };
    format!(
        "{} AND updated >= {} {order}",
        project_clause(projects),
        jql_relative(window)
    )
}

/// The most requests a listing may make: what `expected` items (a count
/// taken just before, plus a quarter and 100 for what changes meanwhile)
/// need at `page` items a request, plus one.
pub fn page_budget(expected: u64, page: usize) -> usize {
    let bound = expected + expected / 4 + 100;
    bound.div_ceil(page.max(1) as u64) as usize + 1
}

/// How a listing ended.
#[derive(Debug)]
enum ListEnd {
    /// The server's own end marker, within the budget.
    Complete,
    /// Stopped early (budget spent, or paging that contradicts itself):
    /// what came is usable, it proves nothing.
    Truncated(String),
    /// A request failed.
    Failed(JiraError),
}

/// Reads a listing to its end, or to its budget: `expected` items at the
/// page size the server's first page shows.
async fn list_facts(mut pager: Pager, expected: u64, what: &str) -> (Vec<IssueFacts>, ListEnd) {
    let mut out = Vec::new();
    let mut budget: Option<usize> = None;
    loop {
        if let Some(b) = budget
            && pager.pages() >= b
            && !pager.is_complete()
        {
            let message = format!(
                "{what} was still going after {b} requests, more than its {expected} issues \
                 can need; stopped there and removed nothing"
            );
            return (out, ListEnd::Truncated(message));
        }
        match pager.next_page_with(identity_and_facts).await {
            Ok(Some(page)) => {
                if budget.is_none() {
                    budget = Some(page_budget(expected, page.len()));
                }
                out.extend(page.into_iter().filter_map(|(_, f)| f));
            }
            Ok(None) => break,
            Err(e @ JiraError::Paging { .. }) => {
                return (out, ListEnd::Truncated(format!("{what}: {e}")));
            }
            Err(e) => return (out, ListEnd::Failed(e)),
        }
    }
    if pager.is_complete() {
        (out, ListEnd::Complete)
    } else {
        let message = format!("{what} ended without the server's end marker; removed nothing");
        (out, ListEnd::Truncated(message))
    }
}

/// A pager for a stage listing, with a hard ceiling on its requests.
fn pager(
    client: &JiraClient,
    jql: &str,
    fields: &[String],
    page: usize,
    expected: u64,
    lenient: bool,
) -> Pager {
    let mut listing = client.search_listing(jql, fields, page);
    if lenient && client.deployment() == Deployment::DataCenter {
        listing = listing.body_field("validateQuery", serde_json::json!(false));
    }
    // The hard ceiling: a page that brings at least one issue. The
    // budget of `list_facts`, from the first page's size, is the tighter one.
    listing.max_pages = page_budget(expected, 1);
    Pager::new(client.clone(), listing)
}

/// What fetching issues by key found.
#[derive(Debug, Default)]
struct Fetched {
    /// Asked key → the key Jira answered with (another one for a moved issue).
    found: HashMap<String, String>,
    /// Project → the keys of `found` stored under it: a project's removal
    /// keeps these (its own), not every key the stage fetched.
    stored_in: HashMap<String, HashSet<String>>,
    /// Asked keys Jira did not return: deleted, moved out of sight, or not
    /// visible to this user.
    missing: Vec<String>,
    /// Asked keys Jira could not return this time (`issueErrors`, or a
    /// failed request): neither found nor gone.
    failed: Vec<String>,
    /// The first failed request.
    error: Option<WarmError>,
    /// Issues returned that no asked key accounts for: not cached.
    unrequested: usize,
    /// Keys the site sent that are not Jira issue keys: not cached.
    refused: Vec<String>,
    /// Issues stored.
    items: u64,
    written: u64,
    unchanged: u64,
}

impl Fetched {
    /// Records that `f` is cached under its project.
    fn stored_under(&mut self, f: &IssueFacts) {
        if let Some(project) = &f.project {
            self.stored_in
                .entry(project.clone())
                .or_default()
                .insert(f.key.clone());
        }
    }

    fn absorb(&mut self, other: Fetched) {
        self.found.extend(other.found);
        for (project, keys) in other.stored_in {
            self.stored_in.entry(project).or_default().extend(keys);
        }
        self.missing.extend(other.missing);
        self.failed.extend(other.failed);
        // The cache file's error wins: it is the one that stops the run.
        let cache_error = |e: &Option<WarmError>| matches!(e, Some(WarmError::Cache(_)));
        if self.error.is_none() || (cache_error(&other.error) && !cache_error(&self.error)) {
            self.error = other.error;
        }
        self.unrequested += other.unrequested;
        self.refused.extend(other.refused);
        self.items += other.items;
        self.written += other.written;
        self.unchanged += other.unchanged;
    }
}

/// Fetches the issues with these keys (Cloud bulkfetch, Data Center `key
/// in` searches) and caches each under the key Jira returns. Twice as many
/// batches run as the profile's concurrency, so that while some wait for
/// the cache writer others keep the request slots busy (the client still
/// caps the requests in flight).
async fn fetch_by_keys(ctx: &WarmContext, keys: &[String]) -> Fetched {
    let batches: Vec<Vec<String>> = match ctx.client.deployment() {
        Deployment::Cloud => keys.chunks(BULKFETCH_MAX).map(<[String]>::to_vec).collect(),
        Deployment::DataCenter => chunk_for_jql(keys, DC_SEARCH_PAGE),
    };
    let mut all = Fetched::default();
    let mut results = futures::stream::iter(batches)
        .map(|batch| fetch_batch(ctx, batch))
        .buffer_unordered(super::listings_at_once(ctx));
    while let Some(fetched) = results.next().await {
        all.absorb(fetched);
    }
    all
}

/// One batch of [`fetch_by_keys`]; not fetched at all once the cache
/// file has failed (nothing fetched could be stored).
async fn fetch_batch(ctx: &WarmContext, batch: Vec<String>) -> Fetched {
    let mut out = Fetched::default();
    if ctx.cache_failed() {
        out.failed = batch;
        return out;
    }
    let fields = fields(ctx);
    let started = std::time::Instant::now();
    let answer: Result<(Vec<Item>, usize), WarmError> = match ctx.client.deployment() {
        Deployment::Cloud => ctx
            .client
            .bulk_fetch(&batch, &fields)
            .await
            .map(|a| (a.issues, a.errors))
            .map_err(Into::into),
        Deployment::DataCenter => {
            let jql = keys_jql(&batch);
            let mut pager = pager(
                &ctx.client,
                &jql,
                &fields,
                batch.len(),
                batch.len() as u64,
                true,
            );
            let mut items = Vec::new();
            let mut failed = None;
            loop {
                match pager.next_page().await {
                    Ok(Some(page)) => items.extend(page),
                    Ok(None) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                Some(e) if items.is_empty() => Err(e.into()),
                // What came is used; the rest counts as not fetched.
                Some(e) => {
                    out.error = Some(e.into());
                    Ok((items, batch.len()))
                }
                None => Ok((items, 0)),
            }
        }
    };
    let (items, errors) = match answer {
        Ok(a) => a,
        Err(e) => {
            out.failed = batch;
            out.error = Some(e);
            return out;
        }
    };
    let fetch_ms = started.elapsed().as_millis() as i64;
    let asked: HashSet<&str> = batch.iter().map(String::as_str).collect();
    let mut returned: Vec<(Item, IssueFacts)> = Vec::with_capacity(items.len());
    let mut answered: HashSet<String> = HashSet::new();
    for item in items {
        if let Some(f) = facts(&item) {
            answered.insert(f.key.clone());
            returned.push((item, f));
        }
    }
    let unmatched: Vec<String> = batch
        .iter()
        .filter(|k| !answered.contains(k.as_str()))
        .cloned()
        .collect();
    let extras = returned
        .iter()
        .filter(|(_, f)| !asked.contains(f.key.as_str()))
        .count();
    // Keys answered under another key (moved issues): in a batch, which
    // asked key went where cannot be told from the answer, so each such key
    // is asked alone (as many requests as there are unmatched keys).
    let mut resolved: Vec<(String, Item, IssueFacts)> = Vec::new();
    let mut still_missing = Vec::new();
    if extras > 0 || batch.len() == 1 {
        for key in unmatched {
            match fetch_one(ctx, &key, &fields).await {
                Ok(Some((item, f))) => resolved.push((key, item, f)),
                Ok(None) => still_missing.push(key),
                Err(e) => {
                    out.failed.push(key);
                    if out.error.is_none() {
                        out.error = Some(e);
                    }
                }
            }
        }
    } else {
        still_missing = unmatched;
    }
    // `issueErrors`: some keys could not be returned this time; which ones
    // is not said by key, so none of the unmatched counts as gone.
    if errors > 0 {
        out.failed.append(&mut still_missing);
    }
    out.missing = still_missing;
    let now = now_ms();
    let mut entries = Vec::new();
    let mut stored: HashSet<String> = HashSet::new();
    for (item, f) in returned {
        if !asked.contains(f.key.as_str()) {
            // Only an asked key's own answer (below) is cached.
            continue;
        }
        out.found.insert(f.key.clone(), f.key.clone());
        stored.insert(f.key.clone());
        out.stored_under(&f);
        entries.push(entry_of(ctx, String::from(Box::<str>::from(item)), f, now).0);
    }
    for (asked_key, item, f) in resolved {
        out.found.insert(asked_key, f.key.clone());
        out.stored_under(&f);
        if stored.insert(f.key.clone()) {
            entries.push(entry_of(ctx, String::from(Box::<str>::from(item)), f, now).0);
        }
    }
    out.unrequested =
        extras.saturating_sub(out.found.iter().filter(|(asked, got)| asked != got).count());
    super::stamp_fetch_ms(&mut entries, fetch_ms.max(1));
    out.refused = super::refuse_bad_keys(ctx, super::Stage::Issues, &mut entries);
    out.items = entries.len() as u64;
    if !entries.is_empty() {
        match ctx.writer.put_page(entries).await {
            Ok(put) => {
                out.written = put.written;
                out.unchanged = put.unchanged;
                ctx.progress
                    .entries(super::Stage::Issues, put.written + put.unchanged);
            }
            Err(e) => {
                // Nothing of this batch is cached: none of it counts as found.
                out.failed.extend(out.found.drain().map(|(k, _)| k));
                out.stored_in.clear();
                out.items = 0;
                let e = WarmError::from(e);
                ctx.note_error(&e);
                out.error = Some(e);
            }
        }
    }
    out
}

/// One issue by key, alone: Cloud bulkfetch of one key, Data Center
/// `GET /issue/{key}`. Whatever single issue comes back is that key's.
async fn fetch_one(
    ctx: &WarmContext,
    key: &str,
    fields: &[String],
) -> Result<Option<(Item, IssueFacts)>, WarmError> {
    let item = match ctx.client.deployment() {
        Deployment::Cloud => {
            let answer = ctx.client.bulk_fetch(&[key.to_string()], fields).await?;
            if answer.issues.len() > 1 {
                return Ok(None);
            }
            answer.issues.into_iter().next()
        }
        Deployment::DataCenter => ctx.client.issue_by_key(key, fields).await?,
    };
    Ok(item.and_then(|item| facts(&item).map(|f| (item, f))))
}

/// The census and changes of one chunk of projects.
#[derive(Debug, Default)]
struct Census {
    /// Per project: keys newest first, with `updated` where the listing
    /// carried it (Data Center census, Cloud changes first).
    order: HashMap<String, Vec<(String, Option<i64>)>>,
    /// Per project: every key the census listed (uncapped).
    listed: HashMap<String, HashSet<String>>,
    /// Key → `updated`, as the changes (Cloud) or the census (Data
    /// Center) said.
    updated: HashMap<String, i64>,
    /// The census ended by the server's end marker, within its budget.
    complete: bool,
    /// The changes listing (Cloud) ended so, or was not needed.
    changes_complete: bool,
    /// Why not complete.
    problems: Vec<String>,
}

/// What happened to one project in a pass.
#[derive(Debug, Default)]
struct ProjectPass {
    /// Issues of the project in the capped census.
    capped: usize,
    /// Cut by `--max-issues`.
    cut: bool,
    /// Keys asked for.
    asked: Vec<String>,
    /// Keys that changed since the cached version (or were not cached).
    changed: usize,
    /// Incremental pass (the project has a watermark, no `--full`).
    incremental: bool,
}

pub(super) async fn warm(
    ctx: &WarmContext,
    projects: &[String],
    options: &IssueOptions,
    report: &mut StageReport,
) -> Result<(), WarmError> {
    if options.recent && !projects.is_empty() {
        recent(ctx, projects, options, report).await?;
    }
    if !options.keys.is_empty() {
        by_keys(ctx, options, report).await?;
    }
    if let Some(jql) = &options.jql {
        let mut pager = ctx
            .client
            .search(jql, &fields(ctx), PAGE_SIZE, Some(options.max_issues));
        let mut n = 0;
        while let Some(page) = pager.next_page_with(identity_and_facts).await? {
            n += store(ctx, page, report).await?.len();
        }
        let cut = if pager.is_complete() {
            ""
        } else {
            " (stopped at --max-issues)"
        };
        super::say(
            ctx,
            report,
            format!("Warmed {n} issues for the JQL query{cut}"),
        );
        report.parts_ok += 1;
    }
    Ok(())
}

/// `--issue KEY…`: each asked key counts once, found (under its own key or
/// the key it moved to) or not.
async fn by_keys(
    ctx: &WarmContext,
    options: &IssueOptions,
    report: &mut StageReport,
) -> Result<(), WarmError> {
    let mut asked: Vec<String> = Vec::new();
    for key in &options.keys {
        if !asked.contains(key) {
            asked.push(key.clone());
        }
    }
    let fetched = fetch_by_keys(ctx, &asked).await;
    report.items += fetched.items;
    report.written += fetched.written;
    report.unchanged += fetched.unchanged;
    record_moves(ctx, &fetched, report).await?;
    let missing: Vec<&str> = asked
        .iter()
        .filter(|k| fetched.missing.contains(k))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        report.notes.push(format!(
            "not found (or not visible to this user): {}",
            missing.join(", ")
        ));
    }
    if fetched.unrequested > 0 {
        report.notes.push(format!(
            "Jira returned {} issues that were not asked for; not cached",
            fetched.unrequested
        ));
    }
    report.notes.extend(fetched.refused.iter().cloned());
    let found = asked
        .iter()
        .filter(|k| fetched.found.contains_key(*k))
        .count();
    let line = format!("Warmed {found} of {} issues asked for", asked.len());
    super::say(ctx, report, line);
    match fetched.error {
        Some(e) if found == 0 => Err(e),
        Some(e) => {
            report.errors.push(e.into());
            report.parts_ok += 1;
            Ok(())
        }
        None => {
            report.parts_ok += 1;
            Ok(())
        }
    }
}

/// Remembers where moved issues went, and says so.
async fn record_moves(
    ctx: &WarmContext,
    fetched: &Fetched,
    report: &mut StageReport,
) -> Result<(), WarmError> {
    let mut moves: Vec<(&String, &String)> = fetched.found.iter().filter(|(a, g)| a != g).collect();
    moves.sort();
    for (old, new) in moves {
        ctx.writer
            .set_meta(issue_alias_meta_key(old), new.clone())
            .await?;
        report
            .notes
            .push(format!("{old} moved to {new}: cached as {new}"));
    }
    Ok(())
}

/// The recent issues of every project in scope.
async fn recent(
    ctx: &WarmContext,
    projects: &[String],
    options: &IssueOptions,
    report: &mut StageReport,
) -> Result<(), WarmError> {
    let start = now_ms();
    let marks: HashMap<String, i64> = Cache::open_read_only(&ctx.cache_path)?
        .watermarks()?
        .into_iter()
        .map(|w| (w.project, w.newest_updated_ms))
        .collect();
    let mut lines: HashMap<String, String> = HashMap::new();
    let mut chunks_done = 0;
    for chunk in chunk_for_jql(projects, usize::MAX) {
        if ctx.cache_failed() {
            // The error is reported once, by the part that hit it.
            let left: usize = projects.len() - chunks_done;
            report.notes.push(format!(
                "{} not warmed: the cache file failed",
                plural(left as u64, "more project")
            ));
            break;
        }
        chunks_done += chunk.len();
        let chunk_lines = pass(ctx, chunk, options, start, &marks, report).await?;
        lines.extend(chunk_lines);
    }
    for p in projects {
        if let Some(line) = lines.remove(p) {
            report.lines.push(line);
        }
    }
    Ok(())
}

fn margin_ms() -> i64 {
    super::millis(WATERMARK_MARGIN)
}

/// One query's worth of projects: count, changes, census, fetch,
/// reconcile. Answers each successful project's report line.
async fn pass(
    ctx: &WarmContext,
    mut chunk: Vec<String>,
    options: &IssueOptions,
    start: i64,
    marks: &HashMap<String, i64>,
    report: &mut StageReport,
) -> Result<HashMap<String, String>, WarmError> {
    let since_ms = super::millis(options.since);
    // A project is incremental when its watermark is inside the window and
    // the changes since it are a narrower query than the window itself.
    let incremental = |p: &str| {
        !options.full
            && marks.get(p).is_some_and(|&w| {
                w >= start.saturating_sub(since_ms)
                    && start.saturating_sub(w).saturating_add(margin_ms()) < since_ms
            })
    };
    let deployment = ctx.client.deployment();
    let window_start = start.saturating_sub(super::millis(options.since));
    // Steps 1 to 3 are one request after another, and everything after
    // waits on them: they go ahead of the other stages' queued requests.
    let chain = ctx.client.ahead();
    // 1. The count, which also finds projects Jira refuses in a query
    //    (deleted, or not visible): those fail alone, the rest go on.
    let expected = loop {
        if chunk.is_empty() {
            return Ok(HashMap::new());
        }
        let jql = census_jql(&chunk, options.since, deployment);
        match chain.issue_count(&jql).await {
            Ok(n) => break n,
            Err(e) => {
                let refused = refused_projects(&e, &chunk);
                if refused.is_empty() {
                    fail_chunk(ctx, &chunk, e.into(), report);
                    return Ok(HashMap::new());
                }
                for p in &refused {
                    report
                        .errors
                        .push(StageError::new(ErrorKind::Other, format!("{p}: {e}")));
                    ctx.progress.unit_done(super::Stage::Issues);
                }
                chunk.retain(|p| !refused.contains(p));
            }
        }
    };
    let mut census = Census {
        changes_complete: true,
        ..Default::default()
    };
    // 2. What changed, on Cloud (Data Center's census carries `updated`).
    let incr: Vec<String> = chunk.iter().filter(|p| incremental(p)).cloned().collect();
    if deployment == Deployment::Cloud && !incr.is_empty() {
        let oldest = incr
            .iter()
            .filter_map(|p| marks.get(p).copied())
            .min()
            .unwrap_or(window_start);
        let window =
            Duration::from_millis(u64::try_from(start.saturating_sub(oldest)).unwrap_or(0))
                + WATERMARK_MARGIN;
        let jql = format!(
            "{} AND updated >= {} ORDER BY updated DESC",
            project_clause(&incr),
            jql_relative(window)
        );
        let fields = vec!["updated".to_string()];
        let pager = pager(&chain, &jql, &fields, SEARCH_JQL_PAGE, expected, false);
        let (changes, end) = list_facts(pager, expected, "the search for changed issues").await;
        for f in changes {
            if let Some(u) = f.updated {
                census.updated.insert(f.key.clone(), u);
            }
            let project = f.project.clone().unwrap_or_default();
            census
                .order
                .entry(project)
                .or_default()
                .push((f.key, f.updated));
        }
        match end {
            ListEnd::Complete => {}
            ListEnd::Truncated(m) => {
                census.changes_complete = false;
                census.problems.push(m);
            }
            ListEnd::Failed(e) => {
                fail_chunk(ctx, &chunk, e.into(), report);
                return Ok(HashMap::new());
            }
        }
    }
    // 3. The key census of the window.
    let (fields, page) = match deployment {
        Deployment::Cloud => (vec!["key".to_string()], KEY_CENSUS_PAGE),
        Deployment::DataCenter => (vec!["updated".to_string()], DC_SEARCH_PAGE),
    };
    let jql = census_jql(&chunk, options.since, deployment);
    let pager = pager(&chain, &jql, &fields, page, expected, false);
    let (listed, end) = list_facts(pager, expected, "the issue census").await;
    let mut dc_order: HashMap<String, Vec<(String, Option<i64>)>> = HashMap::new();
    for f in listed {
        let project = f.project.clone().unwrap_or_default();
        census
            .listed
            .entry(project.clone())
            .or_default()
            .insert(f.key.clone());
        if deployment == Deployment::DataCenter {
            if let Some(u) = f.updated {
                census.updated.insert(f.key.clone(), u);
            }
            dc_order
                .entry(project)
                .or_default()
                .push((f.key, f.updated));
        } else {
            census
                .order
                .entry(project)
                .or_default()
                .push((f.key, f.updated));
        }
    }
    for (project, mut keys) in dc_order {
        // Newest first; no `updated` last; ties by key, stable.
        keys.sort_by_key(|k| std::cmp::Reverse(k.1));
        census.order.entry(project).or_default().extend(keys);
    }
    // A failed census fails the chunk's projects, but what the changes
    // listing found is still fetched (below); nothing is removed.
    let mut chunk_failed = false;
    match end {
        ListEnd::Complete => census.complete = true,
        ListEnd::Truncated(m) => census.problems.push(m),
        ListEnd::Failed(e) => {
            report_chunk_error(&chunk, e.into(), report);
            chunk_failed = true;
        }
    }
    // 4. Which issues to fetch, per project.
    let deciding = std::time::Instant::now();
    let reader = Cache::open_read_only(&ctx.cache_path)?;
    let mut passes: HashMap<String, ProjectPass> = HashMap::new();
    let mut to_fetch: Vec<String> = Vec::new();
    for p in &chunk {
        let order = census.order.get(p).map(Vec::as_slice).unwrap_or(&[]);
        let cached = reader.issue_versions(order.iter().map(|(k, _)| k.as_str()))?;
        let mut pp = ProjectPass {
            incremental: incremental(p),
            ..Default::default()
        };
        let mut seen = HashSet::new();
        for (key, _) in order {
            if !seen.insert(key.as_str()) {
                continue;
            }
            let in_cap = seen.len() <= options.max_issues;
            let cached_updated = cached.get(key);
            let known = census.updated.get(key).copied();
            let differs = known.is_some() && cached_updated.is_some_and(|c| *c != known);
            let need = if in_cap {
                !pp.incremental || cached_updated.is_none() || differs
            } else {
                // Past the cap, only a cached issue that changed: the cache
                // never keeps a version the watermark says is current.
                differs
            };
            if need {
                if cached_updated.is_none() || differs {
                    pp.changed += 1;
                }
                pp.asked.push(key.clone());
            }
        }
        pp.capped = seen.len().min(options.max_issues);
        pp.cut = seen.len() > options.max_issues;
        to_fetch.extend(pp.asked.iter().cloned());
        passes.insert(p.clone(), pp);
    }
    drop(reader);
    tracing::debug!(
        fetch = to_fetch.len(),
        ms = deciding.elapsed().as_millis() as u64,
        "issues to fetch, from the census and the cache"
    );
    let fetched = fetch_by_keys(ctx, &to_fetch).await;
    report.items += fetched.items;
    report.written += fetched.written;
    report.unchanged += fetched.unchanged;
    record_moves(ctx, &fetched, report).await?;
    if fetched.unrequested > 0 {
        report.notes.push(format!(
            "Jira returned {} issues that were not asked for; not cached",
            fetched.unrequested
        ));
    }
    report.notes.extend(fetched.refused.iter().cloned());
    // 5. The second look at what the census did not list, then the removals
    //    and watermarks, one queued write per project.
    let proved = census.complete && census.changes_complete;
    let mut candidates: HashMap<String, Vec<String>> = HashMap::new();
    let removal_since = window_start + margin_ms();
    if census.complete {
        let reader = Cache::open_read_only(&ctx.cache_path)?;
        for p in &chunk {
            let listed = census.listed.get(p);
            let unlisted: Vec<String> = reader
                .issue_keys_in_window(p, removal_since)?
                .into_iter()
                .filter(|k| !listed.is_some_and(|l| l.contains(k)))
                .filter(|k| !fetched.found.contains_key(k))
                .collect();
            if !unlisted.is_empty() {
                candidates.insert(p.clone(), unlisted);
            }
        }
    }
    let second_keys: Vec<String> = candidates.values().flatten().cloned().collect();
    let second = if second_keys.is_empty() {
        Fetched::default()
    } else {
        fetch_by_keys(ctx, &second_keys).await
    };
    report.items += second.items;
    report.written += second.written;
    report.unchanged += second.unchanged;
    record_moves(ctx, &second, report).await?;
    let mut lines = HashMap::new();
    let mut pending = Vec::new();
    for p in &chunk {
        let pp = passes.remove(p).unwrap_or_default();
        let failed_here = pp.asked.iter().any(|k| fetched.failed.contains(k));
        let removal = if census.complete {
            let unlisted = candidates.get(p).map(Vec::as_slice).unwrap_or(&[]);
            let second_failed = unlisted.iter().any(|k| second.failed.contains(k));
            if second_failed {
                None
            } else {
                let keep = removal_keep(p, census.listed.get(p), &fetched, unlisted, &second);
                let scope = KeyScope::IssueWindow {
                    project: p.clone(),
                    updated_since_ms: removal_since,
                };
                Some((scope, keep))
            }
        } else {
            None
        };
        let complete = proved && !failed_here && removal.is_some();
        let mark = complete.then_some(start);
        let last = ctx
            .writer
            .finish_issue_listing(p.clone(), Vec::new(), removal, mark, start)
            .await?;
        pending.push((p.clone(), pp, complete, last));
    }
    if let Err(e) = ctx.writer.flush().await {
        tracing::debug!(error = %e, "could not hurry the last issue writes");
    }
    let problems = census.problems.join("; ");
    for (p, pp, complete, last) in pending {
        let removed = match last.outcome().await {
            Ok((_, removed)) => removed,
            Err(e) => {
                let mut err: StageError = WarmError::from(e).into();
                err.message = format!("{p}: {}", err.message);
                report.errors.push(err);
                ctx.progress.unit_done(super::Stage::Issues);
                continue;
            }
        };
        report.removed += removed;
        let found = pp
            .asked
            .iter()
            .filter(|k| fetched.found.contains_key(*k))
            .count();
        let mut line = if pp.incremental && pp.changed == 0 {
            // Not `Warmed 1 issue for FOR (0 changed since the last warm)`.
            format!(
                "Checked {} for {p}: none changed since the last warm",
                plural(found as u64, "issue")
            )
        } else if pp.incremental {
            format!(
                "Warmed {} for {p} ({} changed since the last warm)",
                plural(found as u64, "issue"),
                pp.changed
            )
        } else {
            let cut = if pp.cut {
                " (stopped at --max-issues)"
            } else {
                ""
            };
            format!("Warmed {} for {p}{cut}", plural(found as u64, "issue"))
        };
        let gone = pp
            .asked
            .iter()
            .filter(|k| fetched.missing.contains(k))
            .count();
        if gone > 0 {
            line.push_str(&format!(
                ", {} listed but gone when fetched",
                plural(gone as u64, "issue")
            ));
        }
        if removed > 0 {
            line.push_str(&format!(", removed {removed} gone from Jira"));
        }
        ctx.progress
            .project_line(super::Stage::Issues, &line, complete);
        ctx.progress.unit_done(super::Stage::Issues);
        if complete {
            report.parts_ok += 1;
        } else if chunk_failed {
            // Its error is reported once for the chunk.
        } else {
            let failed_with = pp
                .asked
                .iter()
                .any(|k| fetched.failed.contains(k))
                .then_some(fetched.error.as_ref())
                .flatten();
            // A cache-file error (a full disk) is the storage's, not the
            // site's: it keeps its kind, so the run stops with exit 7.
            if let Some(e @ WarmError::Cache(_)) = failed_with {
                report
                    .errors
                    .push(StageError::new(ErrorKind::Cache, format!("{p}: {e}")));
                lines.insert(p, line);
                continue;
            }
            let why = if let Some(e) = failed_with {
                format!("some issues could not be fetched ({e})")
            } else if !problems.is_empty() {
                problems.clone()
            } else {
                "the second look at issues the census did not list failed; removed nothing"
                    .to_string()
            };
            report.errors.push(StageError::new(
                ErrorKind::Other,
                format!("{p}: incomplete: {why}"),
            ));
        }
        lines.insert(p, line);
    }
    Ok(lines)
}

/// Reports a whole chunk failed: one error naming its projects, each of
/// which is done.
fn fail_chunk(ctx: &WarmContext, chunk: &[String], e: WarmError, report: &mut StageReport) {
    report_chunk_error(chunk, e, report);
    for _ in chunk {
        ctx.progress.unit_done(super::Stage::Issues);
    }
}

/// One error naming the chunk's projects.
fn report_chunk_error(chunk: &[String], e: WarmError, report: &mut StageReport) {
    let mut err: StageError = e.into();
    let names = if chunk.len() <= 5 {
        chunk.join(", ")
    } else {
        format!("{}, … ({} projects)", chunk[..5].join(", "), chunk.len())
    };
    err.message = format!("issues of {names}: {}", err.message);
    report.errors.push(err);
}

/// The projects of `chunk` a 400 names (`The value 'X' does not exist for
/// the field 'project'.`): those Jira refuses in a query.
fn refused_projects(e: &JiraError, chunk: &[String]) -> Vec<String> {
    let JiraError::Api {
        status: 400,
        messages,
        ..
    } = e
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in messages {
        for (i, part) in m.split('\'').enumerate() {
            if i % 2 == 1
                && let Some(p) = chunk.iter().find(|p| p.eq_ignore_ascii_case(part))
                && !out.contains(p)
            {
                out.push(p.clone());
            }
        }
    }
    out
}

/// Writes issues; answers their keys.
async fn store(
    ctx: &WarmContext,
    items: Vec<(Item, Option<IssueFacts>)>,
    report: &mut StageReport,
) -> Result<HashSet<String>, WarmError> {
    let now = now_ms();
    let mut keys = HashSet::with_capacity(items.len());
    let mut entries = Vec::with_capacity(items.len());
    for (item, facts) in items {
        let Some(facts) = facts else { continue };
        let (entry, _) = entry_of(ctx, String::from(Box::<str>::from(item)), facts, now);
        keys.insert(entry.key.clone());
        entries.push(entry);
    }
    report.items += entries.len() as u64;
    write_page(ctx, entries, report).await?;
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(fetched: &mut Fetched, asked: &str, key: &str, project: &str) {
        fetched.found.insert(asked.into(), key.into());
        fetched.stored_under(&IssueFacts {
            key: key.into(),
            project: Some(project.into()),
            updated: None,
        });
    }

    #[test]
    fn a_projects_removal_keeps_its_own_issues_not_every_fetched_one() {
        let mut fetched = Fetched::default();
        for i in 0..50 {
            stored(&mut fetched, &format!("A-{i}"), &format!("A-{i}"), "A");
            stored(&mut fetched, &format!("B-{i}"), &format!("B-{i}"), "B");
        }
        // B-99 moved to A as A-77: it is A's now, and B's asked key is not B's.
        stored(&mut fetched, "B-99", "A-77", "A");
        let mut other = Fetched::default();
        stored(&mut other, "C-1", "C-1", "C");
        fetched.absorb(other);
        // The census listed A-1000; the second look found A-2000 under its own key.
        let listed: HashSet<String> = HashSet::from(["A-1000".to_string()]);
        let mut second = Fetched::default();
        stored(&mut second, "A-2000", "A-2000", "A");
        let keep = removal_keep(
            "A",
            Some(&listed),
            &fetched,
            &["A-2000".to_string(), "A-3000".to_string()],
            &second,
        );
        assert_eq!(keep.len(), 50 + 3, "{keep:?}");
        for k in ["A-0", "A-49", "A-77", "A-1000", "A-2000"] {
            assert!(keep.contains(k), "{k}");
        }
        assert!(keep.iter().all(|k| k.starts_with("A-")), "{keep:?}");
    }

    #[test]
    fn project_keys_are_quoted_even_when_they_are_jql_words() {
        assert_eq!(
            project_jql("FOR", Duration::from_secs(30 * 86_400)),
            r#"project = "FOR" AND updated >= -43200m ORDER BY updated DESC"#
        );
        assert_eq!(jql_quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn one_project_is_an_equality_and_more_are_a_quoted_list() {
        assert_eq!(project_clause(&["FOR".into()]), r#"project = "FOR""#);
        assert_eq!(
            project_clause(&["A".into(), "FOR".into()]),
            r#"project in ("A", "FOR")"#
        );
        assert_eq!(
            census_jql(
                &["A".into()],
                Duration::from_secs(60),
                Deployment::DataCenter
            ),
            r#"project = "A" AND updated >= -1m ORDER BY key ASC"#
        );
    }

    #[test]
    fn long_lists_are_split_under_the_jql_limit_and_the_count() {
        let keys: Vec<String> = (0..3000).map(|i| format!("PROJ-{i}")).collect();
        let chunks = chunk_for_jql(&keys, 1000);
        assert_eq!(chunks.concat(), keys, "nothing lost or reordered");
        for c in &chunks {
            assert!(c.len() <= 1000);
            assert!(
                keys_jql(c).len() <= MAX_JQL_CHARS + 20,
                "{}",
                keys_jql(c).len()
            );
        }
        assert_eq!(chunk_for_jql(&keys[..3], 2).len(), 2);
        assert!(chunk_for_jql(&[], 5).is_empty());
    }

    #[test]
    fn a_budget_covers_the_count_and_what_changes_meanwhile() {
        assert_eq!(page_budget(9000, 5000), 4);
        assert_eq!(page_budget(0, 5000), 2);
        // Short pages get as many requests as they need, no more.
        assert_eq!(page_budget(39, 5), 31);
    }

    #[test]
    fn a_refusal_names_the_projects_jira_does_not_know() {
        let e = JiraError::Api {
            endpoint: "/rest/api/3/search/approximate-count".into(),
            status: 400,
            messages: vec!["The value 'GONE' does not exist for the field 'project'.".into()],
        };
        let chunk = vec!["A".to_string(), "GONE".to_string()];
        assert_eq!(refused_projects(&e, &chunk), vec!["GONE".to_string()]);
        let other = JiraError::Api {
            endpoint: String::new(),
            status: 500,
            messages: vec!["'GONE'".into()],
        };
        assert!(refused_projects(&other, &chunk).is_empty());
    }

    #[test]
    fn relative_dates_round_up_to_whole_minutes() {
        assert_eq!(jql_relative(Duration::from_secs(61)), "-2m");
        assert_eq!(jql_relative(Duration::from_secs(0)), "-1m");
    }

    #[test]
    fn jira_timestamps_are_not_rfc3339_but_parse() {
        assert_eq!(
            parse_jira_time("2020-12-03T14:05:20.974+0100"),
            Some(1_607_000_720_974)
        );
        assert_eq!(
            parse_jira_time("2020-12-03T13:05:20.974Z"),
            Some(1_607_000_720_974)
        );
        assert_eq!(parse_jira_time("yesterday"), None);
    }

    #[test]
    fn issue_facts_come_from_key_project_and_updated() {
        let raw = RawValue::from_string(
            r#"{"key":"FOR-7","fields":{"updated":"2020-12-03T14:05:20.974+0100","project":{"key":"FOR"}}}"#.into(),
        )
        .unwrap();
        let f = facts(&raw).unwrap();
        assert_eq!(
            (f.key.as_str(), f.project.as_deref(), f.updated),
            ("FOR-7", Some("FOR"), Some(1_607_000_720_974))
        );
        let bare = RawValue::from_string(r#"{"key":"ABC-1"}"#.into()).unwrap();
        assert_eq!(facts(&bare).unwrap().project.as_deref(), Some("ABC"));
    }

    #[test]
    fn one_parse_gives_the_pager_its_identity_and_the_entry_its_facts() {
        let raw = RawValue::from_string(
            r#"{"id":"10","key":"FOR-7","fields":{"updated":"2020-12-03T14:05:20.974+0100","project":{"key":"FOR"}}}"#.into(),
        )
        .unwrap();
        let (id, f) = identity_and_facts(&raw);
        assert_eq!(id, crate::jira::by_key(&raw));
        assert_eq!(f.unwrap().updated, Some(1_607_000_720_974));
        // Fields it cannot read: not cached, yet still known by its key for
        // the pager's duplicate check, as before.
        let odd =
            RawValue::from_string(r#"{"key":"FOR-8","fields":{"updated":5}}"#.into()).unwrap();
        let (id, f) = identity_and_facts(&odd);
        assert_eq!(id.as_deref(), Some("FOR-8"));
        assert!(f.is_none());
        let keyless = RawValue::from_string(r#"{"id":"11"}"#.into()).unwrap();
        assert_eq!(identity_and_facts(&keyless).0, None);
    }
}
