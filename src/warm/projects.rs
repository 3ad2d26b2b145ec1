//! The projects stage: one `project` entry per project key, plus the whole
//! list as `list:projects` when the scope is every project.
//!
//! This stage is the only writer of `project` entries. Restricted to some
//! keys it caches just those and reconciles nothing; over every project, a
//! complete listing removes the projects Jira no longer returns.

use std::collections::HashSet;

use super::{
    StageReport, WarmContext, WarmError, entry, finish_listing, json_array, now_ms, write_page_of,
};
use crate::Category;
use crate::cache::KeyScope;
use crate::jira::{Item, by_key};

/// The key of the whole list.
pub const LIST_KEY: &str = "list:projects";

pub(super) async fn warm(
    ctx: &WarmContext,
    scope: &[String],
    report: &mut StageReport,
) -> Result<(), WarmError> {
    let wanted: HashSet<&str> = scope.iter().map(String::as_str).collect();
    // Once the first page tells `total`, the next pages are requested
    // together (the client's permits still cap the requests in flight) and
    // taken in order, each written as it comes. A scope of more keys than
    // one request takes is asked in chunks, one after the other.
    let pagers = ctx.client.project_chunks(scope);
    // Over every project, the listing is complete and its entries carry its
    // times; restricted to some keys, each entry keeps its own.
    let listing = wanted
        .is_empty()
        .then(|| super::listing(Category::Project, "projects", ctx.ttl.project));
    let mut keep = HashSet::new();
    let mut all: Vec<Item> = Vec::new();
    let mut pages = 0;
    let mut complete = true;
    for pager in pagers {
        let mut pager = pager.fetch_ahead(ctx.concurrency);
        loop {
            let page = match pager.next_page().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                // A listing that broke after some pages: what came is cached
                // (the stage is partial), nothing is removed.
                Err(e) if !keep.is_empty() => {
                    report.errors.push(WarmError::from(e).into());
                    complete = false;
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let now = now_ms();
            let mut entries = Vec::with_capacity(page.len());
            for item in page {
                let Some(key) = by_key(&item) else { continue };
                // Data Center's /project has no key filter: keep only the scope.
                if !wanted.is_empty() && !wanted.contains(key.as_str()) {
                    continue;
                }
                entries.push(entry(
                    Category::Project,
                    key.clone(),
                    &item,
                    ctx.ttl.project,
                    now,
                ));
                keep.insert(key);
                if wanted.is_empty() {
                    all.push(item);
                }
            }
            report.items += entries.len() as u64;
            super::stamp_fetch_ms(&mut entries, pager.last_page_ms());
            write_page_of(ctx, listing.as_ref().map(|l| (l, pages)), entries, report).await?;
            pages += 1;
        }
        complete &= pager.is_complete();
        tracing::debug!(pages = pager.pages(), "projects listed");
    }
    if !complete {
        // Only the projects listed are proved current; nothing is removed.
        if let Some(listing) = listing {
            ctx.writer.leave_listing(listing, keep).await?;
        }
        report.parts_ok += 1;
        return Ok(());
    }
    if !wanted.is_empty() {
        let missing: Vec<&str> = scope
            .iter()
            .map(String::as_str)
            .filter(|k| !keep.contains(*k))
            .collect();
        if !missing.is_empty() {
            report.notes.push(format!(
                "not found on the site (or not visible to this user): {}",
                missing.join(", ")
            ));
        }
    } else if let Some(listing) = listing {
        let list = json_array(all.iter().map(|i| i.as_ref()));
        let value = serde_json::value::RawValue::from_string(list).map_err(|e| {
            WarmError::Jira(crate::jira::JiraError::Decode {
                endpoint: LIST_KEY.into(),
                message: e.to_string(),
            })
        })?;
        write_page_of(
            ctx,
            Some((&listing, pages)),
            vec![entry(
                Category::Project,
                LIST_KEY.into(),
                &value,
                ctx.ttl.project,
                now_ms(),
            )],
            report,
        )
        .await?;
        keep.insert(LIST_KEY.to_string());
        let removal = (KeyScope::All, HashSet::new());
        finish_listing(ctx, listing, keep, Some(removal), report).await?;
    }
    report.parts_ok += 1;
    Ok(())
}
