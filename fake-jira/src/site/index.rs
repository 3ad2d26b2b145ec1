//! A search index over a site's issues, so that a JQL page over 100,000
//! issues does not re-read every issue's JSON: each issue's key, project,
//! number and times are read once, and rebuilt only after the site changes.

use std::collections::HashMap;

use serde_json::Value;

use super::{issue_key, issue_project_key, str_field};
use crate::timestamp::parse_jira_time;

/// What search needs to know about one issue, at the issue's position in
/// [`Site::issues`](super::Site::issues).
#[derive(Debug, Clone)]
pub(crate) struct IndexedIssue {
    /// The issue key, upper-cased.
    pub(crate) key: String,
    /// The project key, upper-cased.
    pub(crate) project: String,
    /// The number after the dash in the key (0 if none).
    pub(crate) number: u64,
    /// The numeric issue id, if the issue has one.
    pub(crate) id: Option<u64>,
    /// `updated` in milliseconds since the epoch; `i64::MIN` if absent.
    pub(crate) updated: i64,
    /// `created` in milliseconds since the epoch; `i64::MIN` if absent.
    pub(crate) created: i64,
}

/// Issues by position, by project and by key.
#[derive(Debug, Default)]
pub(crate) struct IssueIndex {
    pub(crate) issues: Vec<IndexedIssue>,
    by_project: HashMap<String, Vec<usize>>,
    by_key: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
}

impl IssueIndex {
    pub(crate) fn build(issues: &[Value]) -> IssueIndex {
        let mut index = IssueIndex::default();
        for (pos, issue) in issues.iter().enumerate() {
            let key = issue_key(issue).unwrap_or_default().to_ascii_uppercase();
            let project = issue_project_key(issue)
                .unwrap_or_default()
                .to_ascii_uppercase();
            let number = key
                .rsplit_once('-')
                .and_then(|(_, n)| n.parse().ok())
                .unwrap_or(0);
            let id_text = match issue.get("id") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            let time = |name: &str| {
                issue
                    .get("fields")
                    .and_then(|f| str_field(f, name))
                    .and_then(parse_jira_time)
                    .map_or(i64::MIN, |t| t.timestamp_millis())
            };
            index
                .by_project
                .entry(project.clone())
                .or_default()
                .push(pos);
            index.by_key.insert(key.clone(), pos);
            if let Some(id) = &id_text {
                index.by_id.insert(id.clone(), pos);
            }
            index.issues.push(IndexedIssue {
                id: id_text.and_then(|s| s.parse().ok()),
                updated: time("updated"),
                created: time("created"),
                key,
                project,
                number,
            });
        }
        index
    }

    /// Positions of the issues of a project (upper-case key).
    pub(crate) fn in_project(&self, project: &str) -> &[usize] {
        self.by_project.get(project).map_or(&[], Vec::as_slice)
    }

    /// The position of an issue by key (any case) or id.
    pub(crate) fn find(&self, key_or_id: &str) -> Option<usize> {
        self.by_key
            .get(&key_or_id.to_ascii_uppercase())
            .or_else(|| self.by_id.get(key_or_id))
            .copied()
    }
}
