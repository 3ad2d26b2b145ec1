//! Skipping listings that are still fresh: the fewest requests that keep
//! the cache current.
//!
//! A metadata or users listing (every project, each kind of field
//! metadata, every user, one project's assignable users) is not fetched
//! again while every entry it holds will stay fresh until well after this
//! run:
//! - more than half of the TTL is left on the entry that expires first, and
//! - that entry is still fresh when the next scheduled warm (the profile's
//!   `schedule`) has had [`FreshPolicy::margin`] to reach it: a daily 6 AM
//!   warm with a 1-day TTL never skips a listing that expires at 6:00:05,
//!   since the next 6 AM warm could not refresh it in time.
//!
//! Only a listing that once completed ([`complete_marker`]) can be
//! skipped: a listing cut short by a failure or a cap may be missing
//! entries however fresh the others are. `--full` fetches everything.

use std::collections::HashSet;
use std::time::Duration;

use super::Stage;
use crate::Category;
use crate::cache::{CacheError, CacheReader, KeyScope};
use crate::jira::Metadata;
use crate::profile::Ttls;

/// When the stages skip fresh listings.
#[derive(Debug, Clone, Default)]
pub struct FreshPolicy {
    /// Skip listings that are fresh enough. Off (fetch everything) by
    /// default and with `--full`.
    pub skip_fresh: bool,
    /// When the next scheduled warm starts (unix ms); `None` if the profile
    /// has no schedule this binary can read ([`FreshPolicy::schedule_problem`]).
    pub next_schedule_ms: Option<i64>,
    /// Why the schedule could not be read, if it could not: then nothing is
    /// skipped, since the next warm's time is unknown.
    pub schedule_problem: Option<String>,
    /// How long after the next scheduled start a listing must still be
    /// fresh: the time that warm may take to reach it.
    pub margin: Duration,
}

/// The least [`FreshPolicy::margin`]: a scheduled warm reaches its later
/// stages minutes after it starts.
pub const MIN_SCHEDULE_MARGIN: Duration = Duration::from_secs(15 * 60);

/// Whether one listing is fetched, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListingVerdict {
    /// The listing: `projects`, `list:fields`, `users`, `assignable:PROJ`, …
    pub listing: String,
    /// Not fetched this run.
    pub skip: bool,
    /// When its first entry goes stale (unix ms), if it has entries.
    #[serde(skip)]
    pub fresh_until_ms: Option<i64>,
    /// Why, in words.
    pub reason: String,
}

/// The `meta` key that records the last complete run of a listing.
pub fn complete_marker(category: Category, name: &str) -> String {
    format!("listing_complete:{}:{name}", category.as_str())
}

/// The listing names of the fields stage's lists (the `listings` names).
pub(crate) fn metadata_name(which: Metadata) -> &'static str {
    which.list_key().trim_start_matches("list:")
}

/// The keys of one metadata list: its per-id entries.
pub(crate) fn metadata_scope(which: Metadata) -> KeyScope {
    match which {
        Metadata::Fields => KeyScope::NotGlob("*:*".into()),
        other => KeyScope::Glob(format!("{}*", other.key_prefix())),
    }
}

fn rfc3339(ms: i64) -> String {
    crate::status::rfc3339(ms)
}

impl FreshPolicy {
    /// The verdict on a listing whose entries expire first at
    /// `fresh_until` (`None`: nothing cached), whose last complete run is
    /// on record (`complete`), with TTL `ttl`, as of `now`.
    pub fn judge(
        &self,
        listing: String,
        complete: bool,
        fresh_until: Option<i64>,
        ttl: Duration,
        now: i64,
    ) -> ListingVerdict {
        let fetch = |reason: String| ListingVerdict {
            listing: listing.clone(),
            skip: false,
            fresh_until_ms: fresh_until,
            reason,
        };
        let Some(until) = fresh_until.filter(|_| complete) else {
            return fetch("never listed completely".into());
        };
        if !self.skip_fresh {
            return fetch("--full: fetched whatever its freshness".into());
        }
        let left = until.saturating_sub(now);
        let half = super::millis(ttl / 2);
        if left <= half {
            return fetch(format!(
                "fresh until {}: half of its TTL ({}) or less left",
                rfc3339(until),
                humantime::format_duration(ttl)
            ));
        }
        if let Some(problem) = &self.schedule_problem {
            return fetch(format!(
                "cannot tell when the next scheduled warm runs ({problem})"
            ));
        }
        if let Some(next) = self.next_schedule_ms {
            let needed = next.saturating_add(super::millis(self.margin));
            if until < needed {
                return fetch(format!(
                    "fresh until {}, before the next scheduled warm ({}) is sure to refresh it",
                    rfc3339(until),
                    rfc3339(next)
                ));
            }
        }
        let after_schedule = match self.next_schedule_ms {
            Some(next) => format!(" and past the next scheduled warm ({})", rfc3339(next)),
            None => String::new(),
        };
        ListingVerdict {
            listing,
            skip: true,
            fresh_until_ms: Some(until),
            reason: format!(
                "fresh until {}: more than half of its TTL left{after_schedule}",
                rfc3339(until)
            ),
        }
    }

    /// The verdicts on the listings of `stage`: `projects` are the plan's
    /// (empty: every project), `scope` the projects whose assignable users
    /// the users stage lists. The issues stage has none here.
    pub fn verdicts(
        &self,
        reader: &CacheReader,
        stage: Stage,
        projects: &[String],
        scope: &[String],
        ttl: &Ttls,
        now: i64,
    ) -> Result<Vec<ListingVerdict>, CacheError> {
        let complete = |category: Category, name: &str| -> Result<bool, CacheError> {
            Ok(reader.meta(&complete_marker(category, name))?.is_some())
        };
        // The earliest expiry of these keys; `None` if one is missing.
        let keys_until = |category: Category, keys: &[String]| -> Result<Option<i64>, CacheError> {
            let mut until: Option<i64> = None;
            for key in keys {
                match reader.peek(category, key)? {
                    Some(e) => until = Some(until.map_or(e.expires_at, |u| u.min(e.expires_at))),
                    None => return Ok(None),
                }
            }
            Ok(until)
        };
        let scope_until =
            |category: Category, scope: &KeyScope| -> Result<Option<i64>, CacheError> {
                Ok(match reader.scope_expiry(category, scope)? {
                    Some((n, until)) if n > 0 => until,
                    _ => None,
                })
            };
        let mut out = Vec::new();
        match stage {
            Stage::Projects if projects.is_empty() => {
                let until = scope_until(Category::Project, &KeyScope::All)?;
                let done = complete(Category::Project, "projects")?;
                out.push(self.judge("projects".into(), done, until, ttl.project, now));
            }
            Stage::Projects => {
                let until = keys_until(Category::Project, projects)?;
                let name = format!("projects {}", projects.join(", "));
                out.push(self.judge(name, true, until, ttl.project, now));
            }
            Stage::Fields => {
                for which in Metadata::ALL {
                    let per_id = scope_until(Category::Field, &metadata_scope(which))?;
                    let list = keys_until(Category::Field, &[which.list_key().to_string()])?;
                    let until = match (per_id, list) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (None, list) => list,
                        (_, None) => None,
                    };
                    let done = complete(Category::Field, metadata_name(which))?;
                    out.push(self.judge(which.list_key().to_string(), done, until, ttl.field, now));
                }
            }
            Stage::Users => {
                let until = scope_until(Category::User, &KeyScope::NotGlob("assignable:*".into()))?;
                let done = complete(Category::User, "users")?;
                out.push(self.judge("users".into(), done, until, ttl.user, now));
                for project in scope {
                    let key = format!("assignable:{project}");
                    let until = keys_until(Category::User, std::slice::from_ref(&key))?;
                    out.push(self.judge(key, true, until, ttl.user, now));
                }
            }
            Stage::Issues => {}
        }
        Ok(out)
    }
}

/// The names of the listings a stage skips.
pub(crate) fn skipped(verdicts: &[ListingVerdict]) -> HashSet<String> {
    verdicts
        .iter()
        .filter(|v| v.skip)
        .map(|v| v.listing.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: Duration = Duration::from_secs(86_400);

    fn policy(next_schedule_ms: Option<i64>) -> FreshPolicy {
        FreshPolicy {
            skip_fresh: true,
            next_schedule_ms,
            schedule_problem: None,
            margin: MIN_SCHEDULE_MARGIN,
        }
    }

    #[test]
    fn a_listing_with_more_than_half_its_ttl_left_is_skipped() {
        let v = policy(None).judge("users".into(), true, Some(20 * HOUR), DAY, 0);
        assert!(v.skip, "{v:?}");
        assert!(v.reason.contains("more than half"), "{}", v.reason);
    }

    #[test]
    fn a_listing_with_half_its_ttl_or_less_left_is_fetched() {
        let v = policy(None).judge("users".into(), true, Some(12 * HOUR), DAY, 0);
        assert!(!v.skip, "{v:?}");
        assert!(v.reason.contains("half of its TTL"), "{}", v.reason);
    }

    #[test]
    fn a_daily_six_am_warm_never_skips_a_listing_that_expires_at_five_past() {
        // Now 17:00; fetched yesterday at 06:00:05 with a 1-day TTL, so it
        // expires at 06:00:05, 13 h from now: more than half its TTL. The
        // next scheduled warm starts at 06:00 and could not refresh it in
        // five seconds.
        let now = 17 * HOUR;
        let next = 30 * HOUR;
        let until = next + 5_000;
        let v = policy(Some(next)).judge("list:fields".into(), true, Some(until), DAY, now);
        assert!(!v.skip, "{v:?}");
        assert!(v.reason.contains("next scheduled warm"), "{}", v.reason);
        // The same listing with another hour to spare is skipped.
        let v = policy(Some(next)).judge("list:fields".into(), true, Some(next + HOUR), DAY, now);
        assert!(v.skip, "{v:?}");
        assert!(
            v.reason.contains("past the next scheduled warm"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn full_incomplete_and_unreadable_schedules_fetch() {
        let mut full = policy(None);
        full.skip_fresh = false;
        assert!(
            !full
                .judge("users".into(), true, Some(20 * HOUR), DAY, 0)
                .skip
        );
        assert!(
            !policy(None)
                .judge("users".into(), false, Some(20 * HOUR), DAY, 0)
                .skip
        );
        assert!(!policy(None).judge("users".into(), true, None, DAY, 0).skip);
        let mut unknown = policy(None);
        unknown.schedule_problem = Some("`0 6 L * *`".into());
        assert!(
            !unknown
                .judge("users".into(), true, Some(20 * HOUR), DAY, 0)
                .skip
        );
    }
}
