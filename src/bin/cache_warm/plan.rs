//! `--dry-run`'s plan: what a warm would send, from the profile and what
//! the cache knows, without sending or writing anything.

use jira_cache::Deployment;
use jira_cache::cache::Cache;
use jira_cache::profile::Profile;
use jira_cache::site;
use jira_cache::warm::{self, Stage};

use crate::cli::Cli;
use crate::common;
use crate::schedule;

/// `--dry-run`: the plan, from the profile and what the cache knows; no
/// request is sent and nothing is written.
pub fn print_plan(cli: &Cli, profile: &Profile, stages: &[Stage]) -> anyhow::Result<()> {
    let reader = match Cache::open_read_only(profile.cache_location()?) {
        Ok(r) => Some(r),
        Err(jira_cache::cache::CacheError::Missing { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    // Items cached in a category, not counting its list entries
    // (`list:projects`, `assignable:<KEY>`). Keys themselves may hold a colon
    // (Cloud account ids do), so the list entries are counted apart.
    let cached = |c: jira_cache::Category| -> anyhow::Result<usize> {
        let Some(r) = &reader else { return Ok(0) };
        let lists = match c {
            jira_cache::Category::User => r.count_keys(c, Some("assignable:*"))?,
            _ => r.count_keys(c, Some("list:*"))?,
        };
        Ok((r.count_keys(c, None)? - lists) as usize)
    };
    let projects: Vec<String> = if !cli.project.is_empty() {
        cli.project.clone()
    } else if !profile.projects.is_empty() {
        profile.projects.clone()
    } else {
        Vec::new()
    };
    let scope_size = if projects.is_empty() {
        cached(jira_cache::Category::Project)?
    } else {
        projects.len()
    };
    let deployment = profile.deployment.or(match &reader {
        Some(r) => site::remembered_deployment(r, profile)?,
        None => None,
    });
    crate::common::outln!(
        "Plan for profile `{}` ({}), {}:",
        profile.name,
        profile.url,
        match deployment {
            Some(d) => d.to_string(),
            None => "deployment to be probed (1 request)".into(),
        }
    );
    if projects.is_empty() {
        crate::common::outln!("  scope: all projects ({scope_size} cached)");
    } else {
        crate::common::outln!("  scope: {}", projects.join(", "));
    }
    let fresh = schedule::fresh_policy(profile, cli.full, reader.as_ref());
    let assignable_scope: Vec<String> = match (&reader, projects.is_empty()) {
        (_, false) => projects.clone(),
        (Some(r), true) => r
            .keys(jira_cache::Category::Project, None)?
            .into_iter()
            .filter(|k| !k.starts_with("list:"))
            .collect(),
        (None, true) => Vec::new(),
    };
    let mut total = 0;
    for stage in stages {
        let verdicts = match &reader {
            Some(r) if fresh.skip_fresh => fresh.verdicts(
                r,
                *stage,
                &projects,
                &assignable_scope,
                &profile.ttl,
                warm::now_ms(),
            )?,
            _ => Vec::new(),
        };
        let skips = |name: &str| verdicts.iter().any(|v| v.skip && v.listing == name);
        let skipped_assignable = verdicts
            .iter()
            .filter(|v| v.skip && v.listing.starts_with("assignable:"))
            .count();
        let (estimate, how) = match stage {
            Stage::Projects if verdicts.first().is_some_and(|v| v.skip) => {
                (0, "still fresh".to_string())
            }
            Stage::Projects => match deployment {
                Some(Deployment::DataCenter) => (1, "one /project listing".to_string()),
                _ => (
                    (scope_size.max(1)).div_ceil(100),
                    "/project/search at 100 a page".to_string(),
                ),
            },
            Stage::Fields => (
                5 - verdicts.iter().filter(|v| v.skip).count(),
                "fields, issue types, priorities, statuses, resolutions".to_string(),
            ),
            Stage::Users => {
                let users = cached(jira_cache::Category::User)?;
                let listing = match skips("users") {
                    true => 0,
                    false => users.div_ceil(1000) + 1,
                };
                let assignable = scope_size.saturating_sub(skipped_assignable);
                (
                    listing + assignable,
                    format!("users ({users} cached) and assignable users of {assignable} projects"),
                )
            }
            Stage::Issues => {
                let per = (cli.max_issues as usize).div_ceil(100).max(1);
                (
                    scope_size * (per + 1),
                    format!(
                        "up to {} issues per project, updated in the last {}, plus a key census",
                        cli.max_issues,
                        common::duration(cli.since)
                    ),
                )
            }
        };
        total += estimate;
        let unit = if estimate == 1 { "request" } else { "requests" };
        crate::common::outln!("  {:<9} ~{estimate} {unit}: {how}", stage.as_str());
        print_verdicts(&verdicts);
    }
    crate::common::outln!(
        "  total     ~{total} requests; nothing was sent and nothing written (dry run)"
    );
    Ok(())
}

/// The dry run's word on each listing: skipped or fetched, and why; the
/// assignable lists, one per project, in two lines at most.
fn print_verdicts(verdicts: &[warm::ListingVerdict]) {
    let what = |skip: bool| if skip { "skip" } else { "fetch" };
    let (assignable, others): (Vec<_>, Vec<_>) = verdicts
        .iter()
        .partition(|v| v.listing.starts_with("assignable:"));
    for v in others {
        crate::common::outln!("    {} {}: {}", what(v.skip), v.listing, v.reason);
    }
    for skip in [true, false] {
        let group: Vec<_> = assignable.iter().filter(|v| v.skip == skip).collect();
        if let Some(first) = group.first() {
            crate::common::outln!(
                "    {} {} assignable lists (e.g. {}: {})",
                what(skip),
                group.len(),
                first.listing,
                first.reason
            );
        }
    }
}
