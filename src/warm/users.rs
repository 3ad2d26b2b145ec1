//! The users stage: one `user` entry per user (Cloud `accountId`, Data
//! Center `key`), and each project's assignable users as `assignable:<KEY>`.
//!
//! Data Center caps `/user/search` (Jira 10: 100 users whatever `startAt`
//! asks, JRASERVER-78520). A listing that hits the cap is split by
//! username prefix (`a`, `b`, … then `aa`, `ab`, … where a prefix still hits
//! it), Atlassian's own workaround, so that every user is still found. A
//! listing that stays truncated is cached, reported, and never used to
//! remove anything.

use std::collections::{HashSet, VecDeque};

use futures::StreamExt;

use super::{
    StageReport, WarmContext, WarmError, entry, finish_listing, json_array, now_ms, write_page_of,
};
use crate::cache::{KeyScope, Listing};
use crate::jira::{DC_ASSIGNABLE_CAP, Item, Pager, by_user};
use crate::{Category, Deployment};

/// The result cap of Data Center's `/user/search` on Jira 10.
pub const DC_USER_SEARCH_CAP: usize = 100;

/// How deep prefixes go before a listing is declared truncated.
const MAX_PREFIX_LEN: usize = 3;

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
    let assignable = futures::stream::iter(projects.iter().cloned())
        .map(|project| {
            let pager = ctx.client.assignable_users(&project);
            async move { (project, pager.collect_all().await) }
        })
        .buffer_unordered(super::listings_at_once(ctx))
        .collect::<Vec<_>>();
    let all_users = async {
        if skip_users {
            return Ok((false, false));
        }
        match ctx.client.deployment() {
            Deployment::Cloud => {
                let mut pager = ctx.client.users("");
                store_pages(ctx, &listing, &mut pager, &mut keep, report).await?;
                Ok::<(bool, bool), WarmError>((pager.is_complete(), false))
            }
            Deployment::DataCenter => dc_users(ctx, &listing, &mut keep, report).await,
        }
    };
    let (listed, mut results) = futures::join!(all_users, assignable);
    // In key order, not of arrival: the same site then gives the same
    // page, which a re-warm recognises as a whole.
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let (complete, split) = listed?;
    report.parts_ok += 1;
    if skip_users {
        // Not listed this run: the cached users keep their times.
    } else if complete {
        // Users no prefix could find are kept, but were not listed: they
        // keep the times they had rather than this run's.
        let unreachable = match split {
            true => unreachable_names(ctx, &keep)?,
            false => HashSet::new(),
        };
        let removal = (KeyScope::NotGlob("assignable:*".into()), unreachable);
        finish_listing(ctx, listing, keep, Some(removal), report).await?;
    } else {
        // Only the users it returned are proved current; nothing is removed.
        ctx.writer.leave_listing(listing, keep).await?;
        report.notes.push(
            "the user listing was truncated by the site: cached what came, removed nothing".into(),
        );
    }

    // The assignable lists of the projects in scope: a listing too, which
    // refreshes the lists it fetched (a list it did not, of a project out
    // of this run's scope, keeps its own times).
    let assignable = super::listing(Category::User, "assignable", ctx.ttl.user);
    let mut listed = HashSet::new();
    let mut failed = false;
    let now = now_ms();
    let mut entries = Vec::new();
    for (project, result) in results {
        match result {
            Ok((items, _)) => {
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
    if listed.is_empty() && !failed {
        // Every assignable list was still fresh: nothing to finish.
        return Ok(());
    }
    if failed {
        // Only the lists fetched are proved current.
        ctx.writer.leave_listing(assignable, listed).await?;
    } else {
        finish_listing(ctx, assignable, listed, None, report).await?;
    }
    Ok(())
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

/// Lists Data Center users, splitting capped listings by prefix. Answers
/// whether every user was found (no listing stayed capped).
async fn dc_users(
    ctx: &WarmContext,
    listing: &Listing,
    keep: &mut HashSet<String>,
    report: &mut StageReport,
) -> Result<(bool, bool), WarmError> {
    let mut complete = true;
    let mut asked: HashSet<String> = HashSet::new();
    // The users of the capped root listing, and those the prefixes found:
    // a name starting with a character outside the alphabet (`Ü…`) would be
    // missed by every prefix, so the split only counts as complete if it
    // found everyone the root listing showed.
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
                continue;
            }
            if prefix.len() >= MAX_PREFIX_LEN {
                complete = false;
                continue;
            }
            tracing::debug!(
                prefix,
                found = items.len(),
                "user listing hit the cap; splitting it"
            );
            // `.` alone means "everyone" to Data Center, so it is never a child.
            let base = if prefix == "." { "" } else { prefix.as_str() };
            let children = PREFIX_ALPHABET
                .chars()
                .map(|c| format!("{base}{c}"))
                .filter(|p| p != ".");
            queue.extend(children.filter(|p| asked.insert(p.clone())));
        }
    }
    if !asked.is_empty() && !root.is_subset(&by_prefix) {
        let missed = root.difference(&by_prefix).count();
        report.notes.push(format!(
            "{missed} users of the capped listing were not found by any name prefix (names starting with other characters?)"
        ));
        complete = false;
    }
    Ok((complete, !asked.is_empty()))
}

/// After a split listing, a cached user it did not return is only proved
/// gone if some prefix could have found them: a user whose name, display
/// name and email all start outside the alphabet (`Ülrich`) is kept until
/// its TTL instead. Answers those users' keys. Only the few cached users
/// missing from the listing are read.
fn unreachable_names(
    ctx: &WarmContext,
    keep: &HashSet<String>,
) -> Result<HashSet<String>, WarmError> {
    #[derive(serde::Deserialize)]
    struct Names {
        name: Option<String>,
        #[serde(rename = "displayName")]
        display_name: Option<String>,
        #[serde(rename = "emailAddress")]
        email: Option<String>,
    }
    let reachable = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| s.chars().next())
            .is_some_and(|c| PREFIX_ALPHABET.contains(c.to_ascii_lowercase()))
    };
    let reader = crate::cache::Cache::open_read_only(&ctx.cache_path)?;
    let missing: Vec<String> = reader
        .keys(Category::User, None)?
        .into_iter()
        .filter(|k| !k.starts_with("assignable:") && !keep.contains(k))
        .collect();
    let mut unreachable = HashSet::new();
    for key in missing {
        let Some(entry) = reader.peek(Category::User, &key)? else {
            continue;
        };
        let names: Option<Names> = serde_json::from_str(&entry.value).ok();
        let findable = names.is_some_and(|n| {
            reachable(&n.name) || reachable(&n.display_name) || reachable(&n.email)
        });
        if !findable {
            unreachable.insert(key);
        }
    }
    Ok(unreachable)
}

/// A listing whose size is a positive multiple of the cap was probably cut
/// there (a site with exactly that many users only costs one split).
fn looks_capped(received: usize) -> bool {
    received >= DC_USER_SEARCH_CAP && received.is_multiple_of(DC_USER_SEARCH_CAP)
}
