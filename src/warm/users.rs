//! The users stage: one `user` entry per user (Cloud `accountId`, Data
//! Center `key`), and each project's assignable users as `assignable:<KEY>`.
//!
//! Data Center caps `/user/search` (Jira 10: 100 users whatever `startAt`
//! asks, JRASERVER-78520). A listing that hits the cap is split by
//! username prefix (`a`, `b`, … then `aa`, `ab`, … as deep as a prefix
//! still hits it: systematic names such as `user0001` need many levels),
//! Atlassian's own workaround, so that every user is still found. Splitting
//! is bounded by a request budget, not by a depth. A cached user the
//! listing did not return is removed only if every prefix that could find
//! them (their name, display name and email) was listed completely; a
//! prefix left capped when the budget ran out is reported and proves
//! nothing.
//!
//! Cloud's `/user/assignable/search` only looks at the first 1,000 users
//! of the site: on a bigger site (or when the user listing could not
//! count them) each assignable list is *partial*: cached, marked so (the
//! `partial_assignable` meta entry, shown by `cache_status`), reported, and
//! never reconciled.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;

use super::{
    ErrorKind, Stage, StageError, StageReport, WarmContext, WarmError, entry, finish_listing,
    json_array, now_ms, write_page_of,
};
use crate::cache::{KeyScope, Listing};
use crate::jira::{DC_ASSIGNABLE_CAP, Item, Pager, WINDOW_LIMIT, by_user};
use crate::{Category, Deployment};

/// The result cap of Data Center's `/user/search` on Jira 10.
pub const DC_USER_SEARCH_CAP: usize = 100;

/// The fewest prefix listings splitting may send: enough for a site of a
/// few thousand users with systematic names (each capped prefix costs one
/// listing per character of the alphabet).
const DC_SPLIT_MIN_BUDGET: usize = 1_000;

/// Prefix listings allowed per user found: splitting that keeps finding
/// users may go on, one that finds nothing new soon stops.
const DC_SPLIT_PER_USER: usize = 2;

/// The most prefix listings splitting ever sends.
const DC_SPLIT_MAX_BUDGET: usize = 50_000;

/// The meta entry listing the projects whose assignable list is partial
/// (comma-separated keys; empty when none).
pub const META_PARTIAL_ASSIGNABLE: &str = "partial_assignable";

/// The phase of the users stage that fetches each project's assignable
/// users, as [`super::Progress::phase`] names it.
pub const ASSIGNABLE_PHASE: &str = "assignable users";

/// The first characters of user names, for splitting a capped listing.
const PREFIX_ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz0123456789._-@";

pub(super) async fn warm(
    ctx: &WarmContext,
    projects: &[String],
    skip: &HashSet<String>,
    report: &mut StageReport,
) -> Result<(), WarmError> {
    let mut keep = HashSet::new();
    // Listings still fresh (`freshness.rs`) are not asked for: the whole
    // user listing, and each project's assignable list on its own.
    let skip_users = skip.contains("users");
    let projects: Vec<String> = projects
        .iter()
        .filter(|p| !skip.contains(&format!("assignable:{p}")))
        .cloned()
        .collect();
    // Every user but the assignable lists: one listing, whose entries carry
    // its times once it completes.
    let listing = super::listing(Category::User, "users", ctx.ttl.user);
    // The assignable lists are fetched while the user listing pages: they
    // are independent, and the listing alone would leave workers idle.
    // Their own progress is told as each list arrives: once the user
    // listing ends, they are all that moves.
    let total = projects.len() as u64;
    let done = AtomicU64::new(0);
    let done = &done;
    if total > 0 {
        ctx.progress.phase(Stage::Users, ASSIGNABLE_PHASE, 0, total);
    }
    let assignable = futures::stream::iter(projects.iter().cloned())
        .map(|project| {
            let pager = ctx.client.assignable_users(&project);
            async move {
                let result = pager.collect_all().await;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                ctx.progress.phase(Stage::Users, ASSIGNABLE_PHASE, n, total);
                (project, result)
            }
        })
        .buffer_unordered(super::listings_at_once(ctx))
        .collect::<Vec<_>>();
    // `None`: the user listing is still fresh and was not asked for.
    let all_users = async {
        if skip_users {
            return Ok::<Option<Coverage>, WarmError>(None);
        }
        match ctx.client.deployment() {
            Deployment::Cloud => {
                let mut pager = ctx.client.users("");
                store_pages(ctx, &listing, &mut pager, &mut keep, report).await?;
                let coverage = if pager.is_complete() {
                    Coverage::Everything
                } else {
                    Coverage::Nothing
                };
                Ok(Some(coverage))
            }
            Deployment::DataCenter => dc_users(ctx, &listing, &mut keep, report).await.map(Some),
        }
    };
    let (listed, mut results) = futures::join!(all_users, assignable);
    // In key order, not of arrival: the same site then gives the same
    // page, which a re-warm recognises as a whole.
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let coverage = listed?;
    report.parts_ok += 1;
    // Cloud's assignable windows see the site's users up to the thousandth:
    // complete only on a site the user listing proved to be smaller.
    // A skipped listing completed recently (the only kind `freshness.rs`
    // skips): the users it cached count the site.
    let site_users = match &coverage {
        Some(_) => keep.len() as u64,
        None => cached_users(ctx)?,
    };
    let assignable_partial = ctx.client.deployment() == Deployment::Cloud
        && (coverage
            .as_ref()
            .is_some_and(|c| *c != Coverage::Everything)
            || site_users > WINDOW_LIMIT);
    match &coverage {
        None => {
            // Not listed this run: the cached users keep their times.
        }
        Some(Coverage::Everything) => {
            let removal = (KeyScope::NotGlob("assignable:*".into()), HashSet::new());
            finish_listing(ctx, listing, keep, Some(removal), report).await?;
        }
        Some(Coverage::Prefixes { complete, whole }) => {
            // Users no complete prefix listing could have found are kept:
            // nothing proves them gone.
            let unproved = unproved_gone(ctx, &keep, complete)?;
            let mut kept = keep.clone();
            kept.extend(unproved);
            let marker = super::complete_marker(listing.category, &listing.name);
            let at = listing.fetched_at.to_string();
            ctx.writer.leave_listing(listing, keep).await?;
            if *whole {
                // Every prefix was listed to its end: a second split while
                // the users are fresh would find no one this one did not,
                // so the listing may be skipped while fresh (issue 16's
                // "second --all within every TTL" on Data Center). The users
                // kept unproved keep their older times, so the listing is
                // fetched again once the first of them nears its expiry.
                ctx.writer.set_meta(marker, at).await?;
            }
            report.removed += ctx
                .writer
                .remove_missing(
                    Category::User,
                    KeyScope::NotGlob("assignable:*".into()),
                    kept,
                )
                .await?;
        }
        Some(Coverage::Nothing) => {
            // Only the users it returned are proved current; nothing is removed.
            ctx.writer.leave_listing(listing, keep).await?;
            report.notes.push(
                "the user listing was truncated by the site: cached what came, removed nothing"
                    .into(),
            );
        }
    }

    // The assignable lists of the projects in scope: a listing too, which
    // refreshes the lists it fetched (a list it did not, of a project out
    // of this run's scope, keeps its own times).
    let assignable = super::listing(Category::User, "assignable", ctx.ttl.user);
    let mut listed = HashSet::new();
    let mut failed = false;
    let now = now_ms();
    let mut entries = Vec::new();
    let mut partial = Vec::new();
    for (project, result) in results {
        match result {
            Ok((items, _)) => {
                if assignable_partial {
                    partial.push(project.clone());
                }
                if ctx.client.deployment() == Deployment::DataCenter
                    && items.len() >= DC_ASSIGNABLE_CAP
                {
                    report.notes.push(format!(
                        "assignable users of {project} truncated at {DC_ASSIGNABLE_CAP} by the site"
                    ));
                }
                let list = list_value(&items)?;
                let key = format!("assignable:{project}");
                listed.insert(key.clone());
                entries.push(entry(Category::User, key, &list, ctx.ttl.user, now));
                report.parts_ok += 1;
            }
            Err(e) => {
                failed = true;
                report.errors.push(WarmError::from(e).into());
            }
        }
    }
    if !entries.is_empty() {
        let line = format!("Warmed the assignable users of {} projects", entries.len());
        super::say(ctx, report, line);
    }
    write_page_of(ctx, Some((&assignable, 0)), entries, report).await?;
    if !partial.is_empty() {
        report.notes.push(format!(
            "the assignable users of {} projects are partial: Jira Cloud's /user/assignable/search only looks at the first {WINDOW_LIMIT} users of the site{}",
            partial.len(),
            if coverage.as_ref().is_none_or(|c| *c == Coverage::Everything) {
                format!(", and this one has {site_users}")
            } else {
                ", and the user listing could not count them".to_string()
            }
        ));
    }
    ctx.writer
        .set_meta(META_PARTIAL_ASSIGNABLE.into(), partial.join(","))
        .await?;
    if listed.is_empty() && !failed {
        // Every assignable list was still fresh: nothing to finish.
        return Ok(());
    }
    if failed || !partial.is_empty() {
        // Only the lists fetched are proved current, and a partial list
        // proves nothing.
        ctx.writer.leave_listing(assignable, listed).await?;
    } else {
        finish_listing(ctx, assignable, listed, None, report).await?;
    }
    Ok(())
}

/// The users cached by earlier listings (the assignable lists left out).
fn cached_users(ctx: &WarmContext) -> Result<u64, WarmError> {
    let reader = crate::cache::Cache::open_read_only(&ctx.cache_path)?;
    let all = reader.count_keys(Category::User, None)?;
    let lists = reader.count_keys(Category::User, Some("assignable:*"))?;
    Ok(all.saturating_sub(lists))
}

fn list_value(items: &[Item]) -> Result<Box<serde_json::value::RawValue>, WarmError> {
    serde_json::value::RawValue::from_string(json_array(items.iter().map(|i| i.as_ref()))).map_err(
        |e| {
            WarmError::Jira(crate::jira::JiraError::Decode {
                endpoint: "users".into(),
                message: e.to_string(),
            })
        },
    )
}

/// Writes each page's users not yet seen in this stage.
async fn store_pages(
    ctx: &WarmContext,
    listing: &Listing,
    pager: &mut Pager,
    keep: &mut HashSet<String>,
    report: &mut StageReport,
) -> Result<usize, WarmError> {
    let mut received = 0;
    let mut pages = 0;
    while let Some(page) = pager.next_page().await? {
        received += page.len();
        store(
            ctx,
            (listing, pages),
            &page,
            pager.last_page_ms(),
            keep,
            report,
        )
        .await?;
        pages += 1;
    }
    Ok(received)
}

/// Writes the users of one page of the user listing (`listing`, at the
/// page's position in the run) not yet seen in this stage.
async fn store(
    ctx: &WarmContext,
    listing: (&Listing, u32),
    items: &[Item],
    fetch_ms: i64,
    keep: &mut HashSet<String>,
    report: &mut StageReport,
) -> Result<(), WarmError> {
    let now = now_ms();
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let Some(id) = by_user(item) else { continue };
        if keep.insert(id.clone()) {
            entries.push(entry(Category::User, id, item, ctx.ttl.user, now));
        }
    }
    report.items += entries.len() as u64;
    super::stamp_fetch_ms(&mut entries, fetch_ms);
    write_page_of(ctx, Some(listing), entries, report).await
}

/// What a user listing proves about the users it did not return.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Coverage {
    /// It was complete: every user it did not return is gone.
    Everything,
    /// Data Center, split: these prefixes (lower case; `.` for everyone)
    /// were listed completely; a user is gone only if every one of their
    /// names falls under one of them. `whole`: no prefix was left capped,
    /// so listing again would find no user this run did not.
    Prefixes { complete: Vec<String>, whole: bool },
    /// It was truncated: it proves nothing gone.
    Nothing,
}

/// Lists Data Center users, splitting capped listings by prefix within a
/// request budget. Answers which prefixes were listed completely.
async fn dc_users(
    ctx: &WarmContext,
    listing: &Listing,
    keep: &mut HashSet<String>,
    report: &mut StageReport,
) -> Result<Coverage, WarmError> {
    let mut asked: HashSet<String> = HashSet::from([".".to_string()]);
    let mut complete_prefixes: Vec<String> = Vec::new();
    // Capped prefixes left unsplit because the budget ran out.
    let mut left_capped: Vec<String> = Vec::new();
    // The users of the capped root listing, and those the prefixes found:
    // a name starting with a character outside the alphabet (`Ü…`) would be
    // missed by every prefix; if the prefixes miss users the root listing
    // showed, the split cannot be trusted to prove anyone gone.
    let mut root: HashSet<String> = HashSet::new();
    let mut by_prefix: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<String> = VecDeque::from([".".to_string()]);
    // Pages are numbered in the order they are stored.
    let mut pages = 0;
    while !queue.is_empty() {
        let batch: Vec<String> = queue.drain(..).collect();
        let fetches = futures::stream::iter(batch)
            .map(|prefix| {
                let pager = ctx.client.users(&prefix);
                async move {
                    let started = std::time::Instant::now();
                    let result = pager.collect_all().await;
                    (
                        prefix,
                        result,
                        (started.elapsed().as_millis() as i64).max(1),
                    )
                }
            })
            .buffer_unordered(super::listings_at_once(ctx));
        let mut results: Vec<_> = fetches.collect().await;
        // In the order asked, not of arrival: the same site gives the same
        // pages at the same positions, which a re-warm recognises.
        results.sort_by(|a, b| a.0.cmp(&b.0));
        for (prefix, result, fetch_ms) in results {
            let page = pages;
            pages += 1;
            let (items, _) = result?;
            let ids = items.iter().filter_map(|i| by_user(i));
            if prefix == "." {
                root.extend(ids);
            } else {
                by_prefix.extend(ids);
            }
            store(ctx, (listing, page), &items, fetch_ms, keep, report).await?;
            if !looks_capped(items.len()) {
                complete_prefixes.push(prefix);
                continue;
            }
            // `.` alone means "everyone" to Data Center, so it is never a child.
            let base = if prefix == "." { "" } else { prefix.as_str() };
            let children: Vec<String> = PREFIX_ALPHABET
                .chars()
                .map(|c| format!("{base}{c}"))
                .filter(|p| p != "." && !asked.contains(p))
                .collect();
            let budget =
                (keep.len() * DC_SPLIT_PER_USER).clamp(DC_SPLIT_MIN_BUDGET, DC_SPLIT_MAX_BUDGET);
            if asked.len() + children.len() > budget {
                left_capped.push(prefix);
                continue;
            }
            tracing::debug!(
                prefix,
                found = items.len(),
                "user listing hit the cap; splitting it"
            );
            asked.extend(children.iter().cloned());
            queue.extend(children);
        }
    }
    if !left_capped.is_empty() {
        left_capped.sort();
        let shown: Vec<&str> = left_capped.iter().take(5).map(String::as_str).collect();
        report.errors.push(StageError::new(
            ErrorKind::Other,
            format!(
                "the user listing is truncated: {} name prefixes ({}{}) still hit the site's cap of {DC_USER_SEARCH_CAP} after {} listings, the request budget; their users were cached as far as listed, none of them removed",
                left_capped.len(),
                shown.join(", "),
                if left_capped.len() > shown.len() { ", …" } else { "" },
                asked.len()
            ),
        ));
    }
    if asked.len() > 1 && !root.is_subset(&by_prefix) {
        let missed = root.difference(&by_prefix).count();
        report.notes.push(format!(
            "{missed} users of the capped listing were not found by any name prefix (names starting with other characters?): no user is removed"
        ));
        return Ok(Coverage::Nothing);
    }
    if complete_prefixes.iter().any(|p| p == ".") {
        return Ok(Coverage::Everything);
    }
    Ok(Coverage::Prefixes {
        complete: complete_prefixes,
        whole: left_capped.is_empty(),
    })
}

/// The cached users the listing did not return that are not proved gone:
/// some name of theirs (name, display name, email; lower case) falls under
/// no completely listed prefix, or they have no name at all. Only the few
/// cached users missing from the listing are read.
fn unproved_gone(
    ctx: &WarmContext,
    keep: &HashSet<String>,
    complete: &[String],
) -> Result<HashSet<String>, WarmError> {
    #[derive(serde::Deserialize)]
    struct Names {
        name: Option<String>,
        #[serde(rename = "displayName")]
        display_name: Option<String>,
        #[serde(rename = "emailAddress")]
        email: Option<String>,
    }
    let covered = |s: &str| {
        let s = s.to_lowercase();
        complete
            .iter()
            .any(|p| p == "." || s.starts_with(p.as_str()))
    };
    let reader = crate::cache::Cache::open_read_only(&ctx.cache_path)?;
    let missing: Vec<String> = reader
        .keys(Category::User, None)?
        .into_iter()
        .filter(|k| !k.starts_with("assignable:") && !keep.contains(k))
        .collect();
    let mut unproved = HashSet::new();
    for key in missing {
        let Some(entry) = reader.peek(Category::User, &key)? else {
            continue;
        };
        let names: Vec<String> = serde_json::from_str::<Names>(&entry.value)
            .map(|n| {
                [n.name, n.display_name, n.email]
                    .into_iter()
                    .flatten()
                    .collect()
            })
            .unwrap_or_default();
        let names: Vec<&String> = names.iter().filter(|n| !n.trim().is_empty()).collect();
        if names.is_empty() || !names.iter().all(|n| covered(n)) {
            unproved.insert(key);
        }
    }
    Ok(unproved)
}

/// A listing whose size is a positive multiple of the cap was probably cut
/// there (a site with exactly that many users only costs one split).
fn looks_capped(received: usize) -> bool {
    received >= DC_USER_SEARCH_CAP && received.is_multiple_of(DC_USER_SEARCH_CAP)
}
