//! `--clear` and its `--dry-run` count: remove cached entries by category
//! and key pattern, or count what would go without writing anything.

use jira_cache::cache::{Cache, CacheWriter};
use jira_cache::profile::Profile;

pub async fn clear(
    writer: &CacheWriter,
    categories: &[jira_cache::Category],
    pattern: Option<String>,
) -> anyhow::Result<()> {
    let scopes: Vec<Option<jira_cache::Category>> = if categories.is_empty() {
        vec![None]
    } else {
        categories.iter().copied().map(Some).collect()
    };
    let mut total = 0;
    for category in scopes {
        total += writer.remove(category, pattern.clone(), false).await?;
    }
    crate::common::outln!(
        "Removed {total} {}",
        clear_what(categories, pattern.as_deref())
    );
    Ok(())
}

/// What `--clear` covers, in words: `issue entries matching PROJ-*`.
pub fn clear_what(categories: &[jira_cache::Category], pattern: Option<&str>) -> String {
    match (categories.is_empty(), pattern) {
        (true, None) => "entries".to_string(),
        (true, Some(p)) => format!("entries matching {p}"),
        (false, None) => format!("{} entries", list(categories)),
        (false, Some(p)) => format!("{} entries matching {p}", list(categories)),
    }
}

/// How many entries `--clear` would remove, read without writing anything.
pub fn count_matching(
    profile: &Profile,
    categories: &[jira_cache::Category],
    pattern: Option<&str>,
) -> anyhow::Result<u64> {
    let reader = match Cache::open_read_only(profile.cache_location()?) {
        Ok(r) => r,
        Err(jira_cache::cache::CacheError::Missing { .. }) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let scope: &[jira_cache::Category] = if categories.is_empty() {
        &jira_cache::Category::ALL
    } else {
        categories
    };
    let mut n = 0;
    for &category in scope {
        n += reader.count_keys(category, pattern)?;
    }
    Ok(n)
}

fn list(categories: &[jira_cache::Category]) -> String {
    categories
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
