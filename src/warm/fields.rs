//! The fields stage: fields, issue types, priorities, statuses and
//! resolutions, each per id (`customfield_10010`, `status:3`, …) and as a
//! whole list (`list:fields`, `list:statuses`, …).
//!
//! The five lists are fetched concurrently. Each list succeeds or fails on
//! its own: a failed list keeps its old entries and the others still count;
//! each complete list reconciles only its own keys.

use std::collections::HashSet;

use serde_json::value::RawValue;

use super::{
    StageReport, WarmContext, WarmError, entry, finish_listing, json_array, now_ms, write_page_of,
};
use crate::Category;
use crate::jira::{Metadata, by_id};

pub(super) async fn warm(
    ctx: &WarmContext,
    skip: &HashSet<String>,
    report: &mut StageReport,
) -> Result<(), WarmError> {
    // Lists still fresh (`freshness.rs`) are not asked for.
    let wanted = Metadata::ALL
        .into_iter()
        .filter(|which| !skip.contains(which.list_key()));
    report.parts_ok += (Metadata::ALL.len() - wanted.clone().count()) as u32;
    let fetches = wanted.map(|which| {
        let pager = ctx.client.metadata(which);
        async move {
            // Each list is a complete listing: its entries carry its times.
            let name = super::freshness::metadata_name(which);
            let listing = super::listing(Category::Field, name, ctx.ttl.field);
            let started = std::time::Instant::now();
            let result = pager.collect_all().await;
            (
                which,
                listing,
                result,
                (started.elapsed().as_millis() as i64).max(1),
            )
        }
    });
    let results = futures::future::join_all(fetches).await;
    for (which, listing, result, fetch_ms) in results {
        let items = match result {
            Ok((items, _end)) => items,
            Err(e) => {
                tracing::warn!(list = which.list_key(), error = %e, "metadata list failed; its cached entries stay");
                report.errors.push(WarmError::from(e).into());
                continue;
            }
        };
        let now = now_ms();
        let mut keep = HashSet::with_capacity(items.len() + 1);
        let mut entries = Vec::with_capacity(items.len() + 1);
        for item in &items {
            let Some(id) = by_id(item) else { continue };
            let key = format!("{}{id}", which.key_prefix());
            entries.push(entry(
                Category::Field,
                key.clone(),
                item,
                ctx.ttl.field,
                now,
            ));
            keep.insert(key);
        }
        report.items += entries.len() as u64;
        let list =
            RawValue::from_string(json_array(items.iter().map(|i| i.as_ref()))).map_err(|e| {
                crate::jira::JiraError::Decode {
                    endpoint: which.path().into(),
                    message: e.to_string(),
                }
            })?;
        entries.push(entry(
            Category::Field,
            which.list_key().to_string(),
            &list,
            ctx.ttl.field,
            now,
        ));
        keep.insert(which.list_key().to_string());
        super::stamp_fetch_ms(&mut entries, fetch_ms);
        write_page_of(ctx, Some((&listing, 0)), entries, report).await?;
        let scope = super::freshness::metadata_scope(which);
        // The list entry of fields is not in the NotGlob scope; the others' are
        // not in their prefix: `list:*` entries are only ever overwritten.
        finish_listing(ctx, listing, keep, Some((scope, HashSet::new())), report).await?;
        report.parts_ok += 1;
    }
    Ok(())
}
