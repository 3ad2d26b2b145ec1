//! `cache_warm --copy-to <cache_url>`: moving a profile's SQLite cache into
//! PostgreSQL, so that a team need not warm from zero.

use jira_cache::cache::{Cache, CacheError, CacheLocation};
use jira_cache::exit;
use jira_cache::lock::WarmLock;
use jira_cache::profile::{Profile, ProfileError};

/// Copies the profile's SQLite cache into the database at `url`, under the
/// profile's warm lock (so no warm changes the file meanwhile). The
/// password comes from the profile's `cache_password_env`/`_cmd`, else
/// `PGPASSWORD`, else `~/.pgpass`, as for `cache_url`.
pub async fn copy_to(profile: &Profile, url: &str) -> anyhow::Result<u8> {
    if profile.cache_url.is_some() {
        crate::common::errln!(
            "cache_warm: profile `{}` already keeps its cache in PostgreSQL (`cache_url`); --copy-to copies a SQLite cache: run it with a profile without `cache_url`",
            profile.name
        );
        return Ok(exit::CONFIG);
    }
    let source = profile.cache_path();
    if !source.exists() {
        return Err(CacheError::Missing { path: source }.into());
    }
    let mut target_profile = profile.clone();
    target_profile.cache_url = Some(url.trim().to_owned());
    let location = match target_profile.cache_location() {
        Ok(location) => location,
        // The URL came from the flag, not from the profile's file.
        Err(ProfileError::Invalid { key, message, .. }) if key == "cache_url" => {
            crate::common::errln!(
                "cache_warm: --copy-to: {}",
                message.replace("`cache_url`", "the URL")
            );
            return Ok(exit::CONFIG);
        }
        Err(e) => return Err(e.into()),
    };
    let CacheLocation::Postgres(target) = location else {
        unreachable!("a profile with cache_url is in PostgreSQL")
    };
    let _lock = WarmLock::acquire(&profile.lock_path())?;
    let cache = Cache::open(&source)?;
    let copy_target = target.clone();
    let outcome = tokio::task::spawn_blocking(move || cache.copy_to(&copy_target)).await??;
    crate::common::outln!(
        "Copied {} entries and {} runs from {} to {}; set `cache_url = \"{}\"` in profile `{}` to use it",
        outcome.entries,
        outcome.runs,
        source.display(),
        target.display(),
        url.trim(),
        profile.name
    );
    Ok(exit::OK)
}
