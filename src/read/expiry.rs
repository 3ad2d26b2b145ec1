//! How long a value fetched on a read stays fresh: the category's TTL from
//! the profile, and for issues the same recent/old choice the issues stage
//! makes (`issue_recent` for issues updated within
//! [`RECENT_ISSUE_WINDOW`], `issue_old` for older ones), so that an entry
//! written by a read and one written by a warm expire alike.

use serde::Deserialize;

use crate::Category;
use crate::cache::NewEntry;
use crate::profile::{RECENT_ISSUE_WINDOW, Ttls};
use crate::warm::parse_jira_time;

/// The cache entry of a value fetched at `now_ms` in `fetch_ms`.
pub(super) fn new_entry(
    category: Category,
    key: &str,
    value: String,
    now_ms: i64,
    fetch_ms: i64,
    ttl: &Ttls,
) -> NewEntry {
    let (recent, project, updated_at) = match category {
        Category::Issue => {
            let facts = issue_facts(&value);
            let recent = facts
                .updated
                .is_none_or(|u| now_ms.saturating_sub(u) <= RECENT_ISSUE_WINDOW.as_millis() as i64);
            let project = facts
                .project
                .or_else(|| key.rsplit_once('-').map(|(p, _)| p.to_string()));
            (recent, project, facts.updated)
        }
        _ => (false, None, None),
    };
    let ttl_ms = i64::try_from(ttl.ttl_for(category, recent).as_millis()).unwrap_or(i64::MAX);
    NewEntry {
        category,
        key: key.to_string(),
        value,
        fetched_at: now_ms,
        expires_at: now_ms.saturating_add(ttl_ms),
        fetch_ms,
        project,
        updated_at,
    }
}

#[derive(Default)]
struct IssueFacts {
    project: Option<String>,
    updated: Option<i64>,
}

/// An issue's project key and `updated` (unix ms), where the JSON has them.
fn issue_facts(value: &str) -> IssueFacts {
    #[derive(Deserialize)]
    struct Issue {
        fields: Option<Fields>,
    }
    #[derive(Deserialize)]
    struct Fields {
        updated: Option<String>,
        project: Option<Project>,
    }
    #[derive(Deserialize)]
    struct Project {
        key: Option<String>,
    }
    let Ok(Issue {
        fields: Some(fields),
    }) = serde_json::from_str::<Issue>(value)
    else {
        return IssueFacts::default();
    };
    IssueFacts {
        project: fields.project.and_then(|p| p.key),
        updated: fields.updated.as_deref().and_then(parse_jira_time),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const DAY: i64 = 86_400_000;

    #[test]
    fn a_category_gets_its_ttl_and_the_fetch_time() {
        let ttl = Ttls::default();
        let e = new_entry(Category::Project, "PROJ", "{}".into(), NOW, 120, &ttl);
        assert_eq!(e.expires_at - e.fetched_at, DAY);
        assert_eq!(e.fetch_ms, 120);
        assert_eq!(e.project, None);
    }

    #[test]
    fn issues_get_the_recent_or_old_ttl_by_their_updated_time() {
        let ttl = Ttls::default();
        let issue = |updated_ms: i64| {
            let t = chrono::DateTime::from_timestamp_millis(updated_ms)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3f%z");
            format!(r#"{{"key":"PROJ-1","fields":{{"updated":"{t}","project":{{"key":"PROJ"}}}}}}"#)
        };
        let recent = new_entry(Category::Issue, "PROJ-1", issue(NOW - DAY), NOW, 5, &ttl);
        assert_eq!(recent.expires_at - NOW, 5 * 60 * 1000);
        assert_eq!(recent.updated_at, Some(NOW - DAY));
        assert_eq!(recent.project.as_deref(), Some("PROJ"));
        let old = new_entry(
            Category::Issue,
            "PROJ-1",
            issue(NOW - 30 * DAY),
            NOW,
            5,
            &ttl,
        );
        assert_eq!(old.expires_at - NOW, 60 * 60 * 1000);
        // Without `fields`, the project comes from the key and the TTL is the short one.
        let bare = new_entry(Category::Issue, "OPS-7", "{}".into(), NOW, 5, &ttl);
        assert_eq!(bare.project.as_deref(), Some("OPS"));
        assert_eq!(bare.expires_at - NOW, 5 * 60 * 1000);
    }
}
