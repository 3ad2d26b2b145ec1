//! The issues stage: the recent issues of each project in scope, as
//! `CACHE_WARMING.md`'s "warm by project" strategy does, plus the on-demand
//! tier (`--issue KEY`, `--jql`).
//!
//! - JQL: `project = "KEY" AND updated >= -30d ORDER BY updated DESC`; keys
//!   are validated and always quoted (`FOR` is a real key and a JQL word).
//! - Incremental: a watermark per project (the newest `updated` seen) lets
//!   the next warm ask only for what changed since, as a relative date from
//!   our own clock plus a safety margin, unless `--full`.
//! - TTL by age: issues updated in the last 7 days get `issue_recent`, older
//!   ones `issue_old`.
//! - Reconciliation: when the stage has a complete key census of the window
//!   (the full listing itself when it was not cut by `--max-issues`, else a
//!   `fields=key` census), cached issues of the project whose `updated` is
//!   inside the window and that the census does not return are removed
//!   (deleted or moved). Issues that merely aged out of the window stay
//!   until their TTL.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{StageReport, WarmContext, WarmError, now_ms, write_page};
use crate::Category;
use crate::cache::{Cache, KeyScope, NewEntry, Pending, PutOutcome};
use crate::jira::{Item, JiraError, Pager};

/// Issues updated within this long are "recent" (TTL `issue_recent`).
pub const RECENT: Duration = Duration::from_secs(7 * 86_400);

/// Added to the incremental window, for clock skew and search lag.
pub const WATERMARK_MARGIN: Duration = Duration::from_secs(15 * 60);

/// Issues asked per page of a full search.
const PAGE_SIZE: usize = 100;

/// Keys asked per page of a census.
const CENSUS_PAGE_SIZE: usize = 1000;

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
        .is_none_or(|u| now - u <= RECENT.as_millis() as i64);
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
        expires_at: now.saturating_add(ttl.as_millis() as i64),
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

/// What warming one project's issues did.
#[derive(Debug, Default)]
struct ProjectOutcome {
    items: u64,
    written: u64,
    unchanged: u64,
    removed: u64,
    incremental: bool,
    line: String,
}

impl ProjectOutcome {
    /// Stores a page (if any) and counts it.
    async fn store(&mut self, ctx: &WarmContext, mut page: Vec<NewEntry>) -> Result<(), WarmError> {
        super::refuse_bad_keys(ctx, super::Stage::Issues, &mut page);
        if !page.is_empty() {
            let put = ctx.writer.put_page(page).await?;
            self.count(ctx, put);
        }
        Ok(())
    }

    /// Counts a stored page, and shows its progress.
    fn count(&mut self, ctx: &WarmContext, put: PutOutcome) {
        self.written += put.written;
        self.unchanged += put.unchanged;
        ctx.progress
            .entries(super::Stage::Issues, put.written + put.unchanged);
    }
}

pub(super) async fn warm(
    ctx: &WarmContext,
    projects: &[String],
    options: &IssueOptions,
    report: &mut StageReport,
) -> Result<(), WarmError> {
    if options.recent {
        let watermarks = match Cache::open_read_only(&ctx.cache_path).and_then(|r| r.watermarks()) {
            Ok(w) => w,
            Err(e) => return Err(e.into()),
        };
        // Projects are listed `listings_at_once` at a time; each hands its
        // last write to the writer and makes room for the next. Their
        // outcomes are taken here, in the order they were handed over.
        let (listed_tx, listed_rx) = futures::channel::mpsc::unbounded();
        let list = async move {
            futures::stream::iter(projects.iter().cloned())
                .map(|project| {
                    let mark = watermarks
                        .iter()
                        .find(|w| w.project == project)
                        .map(|w| w.newest_updated_ms);
                    async move {
                        let r = warm_project(ctx, &project, mark, options).await;
                        (project, r)
                    }
                })
                .buffer_unordered(super::listings_at_once(ctx))
                .for_each(|listed| {
                    // The receiver lives until every project is taken.
                    let _ = listed_tx.unbounded_send(listed);
                    futures::future::ready(())
                })
                .await;
            // No more projects: their last writes need not wait for company.
            if let Err(e) = ctx.writer.flush().await {
                tracing::debug!(error = %e, "could not hurry the last issue writes");
            }
        };
        // A full disk or a corrupt file fails every later project the same
        // way: its line is shown once (the report keeps one error too).
        let cache_failed = std::sync::atomic::AtomicBool::new(false);
        let cache_failed = &cache_failed;
        let finish = listed_rx
            .then(|(project, listed)| async move {
                let r = match listed {
                    Ok(listed) => finish_project(ctx, &project, listed).await,
                    Err(e) => Err(e),
                };
                let line = match &r {
                    Ok(o) => Some(o.line.clone()),
                    Err(f) if matches!(f.error, WarmError::Cache(_)) => (!cache_failed
                        .swap(true, std::sync::atomic::Ordering::Relaxed))
                    .then(|| format!("Failed {project}: {}", f.error)),
                    Err(f) => Some(format!("Failed {project}: {}", f.error)),
                };
                if let Some(line) = line {
                    ctx.progress
                        .project_line(super::Stage::Issues, &line, r.is_ok());
                }
                ctx.progress.unit_done(super::Stage::Issues);
                (project, r)
            })
            .collect::<Vec<(String, Result<ProjectOutcome, Failed>)>>();
        let ((), results) = futures::join!(list, finish);
        // Report in the order of the scope, not of completion.
        let mut results = results;
        results.sort_by_key(|(p, _)| projects.iter().position(|q| q == p));
        for (project, result) in results {
            // A failed project's pages stored before the failure count too.
            let o = match &result {
                Ok(o) => o,
                Err(f) => &f.outcome,
            };
            report.items += o.items;
            report.written += o.written;
            report.unchanged += o.unchanged;
            report.removed += o.removed;
            match result {
                Ok(o) => {
                    report.lines.push(o.line);
                    report.parts_ok += 1;
                }
                Err(Failed { error: e, .. }) => {
                    let mut err: super::StageError = e.into();
                    err.message = format!("{project}: {}", err.message);
                    report.errors.push(err);
                }
            }
        }
    }
    if !options.keys.is_empty() {
        let items = ctx
            .client
            .issues_by_keys(&options.keys, &fields(ctx))
            .await?;
        let items = items
            .into_iter()
            .map(|item| {
                let facts = facts(&item);
                (item, facts)
            })
            .collect();
        let found = store(ctx, items, report).await?;
        let missing: Vec<&String> = options
            .keys
            .iter()
            .filter(|k| !found.contains(*k))
            .collect();
        if !missing.is_empty() {
            report.notes.push(format!(
                "not found (or not visible to this user): {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let line = format!(
            "Warmed {} of {} issues asked for",
            found.len(),
            options.keys.len()
        );
        super::say(ctx, report, line);
        report.parts_ok += 1;
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

async fn warm_project(
    ctx: &WarmContext,
    project: &str,
    watermark: Option<i64>,
    options: &IssueOptions,
) -> Result<Listed, Failed> {
    let start = now_ms();
    let window_start = start - options.since.as_millis() as i64;
    // Incremental: only what changed since the newest `updated` seen, plus a
    // margin; never reaching further back than the window.
    let incremental_since = watermark
        .filter(|_| !options.full)
        .filter(|&w| w >= window_start)
        .map(|w| Duration::from_millis((start - w).max(0) as u64) + WATERMARK_MARGIN)
        .filter(|d| *d < options.since);
    let window = incremental_since.unwrap_or(options.since);
    let jql = project_jql(project, window);
    let mut pager = ctx
        .client
        .search(&jql, &fields(ctx), PAGE_SIZE, Some(options.max_issues));
    let mut outcome = ProjectOutcome {
        incremental: incremental_since.is_some(),
        ..Default::default()
    };
    // Whatever fails, what was stored before still counts (`Failed`).
    let listed = async {
        let mut seen = HashSet::new();
        let mut newest = watermark;
        // The newest page is held back and written with the end of the listing
        // (below), so a project whose listing is one page (most, and every
        // re-warm) costs one transaction, not two.
        let mut held: Vec<NewEntry> = Vec::new();
        loop {
            let page = match pager.next_page_with(identity_and_facts).await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) => {
                    // What came before the failure is still stored.
                    outcome.store(ctx, held).await?;
                    return Err(e.into());
                }
            };
            let now = now_ms();
            let mut entries = Vec::with_capacity(page.len());
            for (item, facts) in page {
                // Issues without a key are not cached.
                let Some(facts) = facts else { continue };
                // The page's own text becomes the value: no copy.
                let (entry, updated) =
                    entry_of(ctx, String::from(Box::<str>::from(item)), facts, now);
                seen.insert(entry.key.clone());
                newest = newest.max(updated);
                entries.push(entry);
            }
            outcome.items += entries.len() as u64;
            if entries.is_empty() {
                continue;
            }
            super::stamp_fetch_ms(&mut entries, pager.last_page_ms());
            let earlier = std::mem::replace(&mut held, entries);
            outcome.store(ctx, earlier).await?;
        }
        // The census of the whole window: the listing itself when it was full
        // and complete, else a key-only search.
        let census = if !outcome.incremental && pager.is_complete() {
            Some(seen)
        } else {
            match census(ctx, project, options.since).await {
                Ok(census) => census,
                Err(e) => {
                    // What was fetched is still stored; only the removals wait.
                    outcome.store(ctx, held).await?;
                    return Err(e);
                }
            }
        };
        // A margin inside the window, so that an issue right at its edge is
        // never judged by a census that computed the edge a moment later.
        let removal = census.map(|keep| {
            let scope = KeyScope::IssueWindow {
                project: project.to_string(),
                updated_since_ms: window_start + WATERMARK_MARGIN.as_millis() as i64,
            };
            (scope, keep)
        });
        // The last page, the removals and the watermark in one write, queued:
        // the project's listing ends in one transaction, shared with other
        // projects', and the next project need not wait for it to commit.
        let last = ctx
            .writer
            .finish_issue_listing(project.to_string(), held, removal, newest, start)
            .await?;
        Ok::<_, WarmError>((!pager.is_complete(), last))
    }
    .await;
    match listed {
        Ok((cut, last)) => Ok(Listed { outcome, cut, last }),
        Err(error) => Err(Failed { outcome, error }),
    }
}

/// A project whose listing failed, with what it stored before it did.
struct Failed {
    outcome: ProjectOutcome,
    error: WarmError,
}

/// A project whose issues are listed and whose last write is queued.
struct Listed {
    outcome: ProjectOutcome,
    /// Stopped at `--max-issues`.
    cut: bool,
    /// The last write: the last page stored, and the issues removed.
    last: Pending<(PutOutcome, u64)>,
}

/// Waits for a project's last write and says what warming it did.
async fn finish_project(
    ctx: &WarmContext,
    project: &str,
    listed: Listed,
) -> Result<ProjectOutcome, Failed> {
    let Listed {
        mut outcome,
        cut,
        last,
    } = listed;
    let (put, removed) = match last.outcome().await {
        Ok(done) => done,
        Err(e) => {
            return Err(Failed {
                outcome,
                error: e.into(),
            });
        }
    };
    outcome.count(ctx, put);
    outcome.removed = removed;
    outcome.line = if outcome.incremental && outcome.written == 0 {
        format!(
            "Checked {} for {project}: none changed since the last warm",
            plural(outcome.items, "issue")
        )
    } else if outcome.incremental {
        format!(
            "Warmed {} for {project} ({} changed since the last warm)",
            plural(outcome.items, "issue"),
            outcome.written
        )
    } else {
        let cut = if cut {
            " (stopped at --max-issues)"
        } else {
            ""
        };
        format!(
            "Warmed {} for {project}{cut}",
            plural(outcome.items, "issue")
        )
    };
    if outcome.removed > 0 {
        outcome
            .line
            .push_str(&format!(", removed {} gone from Jira", outcome.removed));
    }
    Ok(outcome)
}

/// The keys of every issue of `project` updated within `window`, or `None`
/// when the census could not be completed (then nothing is removed).
async fn census(
    ctx: &WarmContext,
    project: &str,
    window: Duration,
) -> Result<Option<HashSet<String>>, WarmError> {
    let jql = format!(
        "project = {} AND updated >= {}",
        jql_quote(project),
        jql_relative(window)
    );
    let mut pager: Pager = ctx
        .client
        .search(&jql, &["key".to_string()], CENSUS_PAGE_SIZE, None);
    let mut keys = HashSet::new();
    loop {
        match pager.next_page().await {
            Ok(Some(page)) => keys.extend(page.iter().filter_map(|i| crate::jira::by_key(i))),
            Ok(None) => break,
            Err(e @ JiraError::Paging { .. }) => {
                tracing::warn!(project, error = %e, "issue census incomplete; nothing removed");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(pager.is_complete().then_some(keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_keys_are_quoted_even_when_they_are_jql_words() {
        assert_eq!(
            project_jql("FOR", Duration::from_secs(30 * 86_400)),
            r#"project = "FOR" AND updated >= -43200m ORDER BY updated DESC"#
        );
        assert_eq!(jql_quote(r#"a"b\c"#), r#""a\"b\\c""#);
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
