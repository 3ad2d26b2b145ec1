//! The data a fake Jira serves: one [`Site`] per fake, built small
//! ([`Site::small`]), at scale ([`Site::generated`]) or from the captured
//! fixtures ([`Site::from_fixtures`]), and changed while the fake runs
//! through a [`SiteHandle`] (a project deleted, an issue edited) so tests
//! can check what a client does when Jira changes under it.
//!
//! Everything is kept as JSON, the way Jira sent it or would send it: the
//! endpoints serve these values as they are, so a fixture's trimmed shape
//! (no `id` on Cloud projects, for instance) reaches the client unchanged.

mod fixtures;
mod generate;
mod handle;
mod index;

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::Value;

use crate::flavor::Flavor;
use crate::timestamp::{format_jira_time, parse_jira_time};

pub use generate::{GenerateOptions, SiteSize, UserNames};
pub use handle::SiteHandle;
pub(crate) use index::{IndexedIssue, IssueIndex};

/// The data a fake Jira serves. Every list is served in the order held here
/// (Cloud `/project/search` sorts by key, as Jira does).
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// Which Jira this data belongs to; a fake serves the endpoints of its
    /// builder's flavor whatever this says.
    pub flavor: Flavor,
    /// `serverInfo.version`, e.g. `1001.0.0-SNAPSHOT` (Cloud) or `10.3.12`.
    pub version: String,
    /// `serverInfo.deploymentType`: `Cloud`, or on Data Center `Server`
    /// (the default), `Data Center` or `DataCenter` as real sites vary.
    pub deployment_type: String,
    /// `serverInfo.serverTitle`.
    pub server_title: String,
    /// The user the credentials belong to, served by `/myself`.
    pub myself: Value,
    /// Projects: at least `key`; `id` and `name` where known.
    pub projects: Vec<Value>,
    /// Fields (`/field`).
    pub fields: Vec<Value>,
    /// Issue types (`/issuetype`).
    pub issue_types: Vec<Value>,
    /// Priorities (`/priority`, Cloud `/priority/search`).
    pub priorities: Vec<Value>,
    /// Statuses (`/status`).
    pub statuses: Vec<Value>,
    /// Status categories (`/statuscategory`).
    pub status_categories: Vec<Value>,
    /// Resolutions (`/resolution`, Cloud `/resolution/search`).
    pub resolutions: Vec<Value>,
    /// Users: Cloud ones carry `accountId`; Data Center ones `key` and
    /// `name`. Data Center leaves out users with `"active": false` unless
    /// asked for inactive ones.
    pub users: Vec<Value>,
    /// Assignable users per project key, as user ids (`accountId` on Cloud,
    /// `key` on Data Center). A project without an entry has none.
    pub assignable: BTreeMap<String, Vec<String>>,
    /// Issues: `key`, usually `id`, and `fields` with `updated` as a Jira
    /// timestamp. An issue's project is `fields.project.key`, or the prefix
    /// of its key when the issue has no `project` field (trimmed fixtures).
    pub issues: Vec<Value>,
    /// Keys of moved issues: old key (upper case) → the key the issue has
    /// now. Jira answers an old key with the moved issue, under its new key
    /// (`/issue/{key}`, `/issue/bulkfetch`, `key in (…)`).
    pub moved: BTreeMap<String, String>,
}

impl Site {
    /// A site with the server facts and the calling user only: no projects,
    /// no fields, no users but `myself`, no issues.
    pub fn empty(flavor: Flavor) -> Site {
        generate::empty(flavor)
    }

    /// A small site with good defaults for tests: 3 projects (`ALPHA`,
    /// `BETA` and `FOR`, a JQL reserved word), a dozen issues of which some
    /// were updated in the last days and some more than 30 days ago, a few
    /// users (one inactive, one app on Cloud) and the usual metadata.
    pub fn small(flavor: Flavor) -> Site {
        generate::small(flavor)
    }

    /// Deterministic synthetic data at scale (see [`SiteSize`]): the same
    /// size gives the same projects, users, fields and issues, with times
    /// relative to now.
    pub fn generated(flavor: Flavor, size: SiteSize) -> Site {
        generate::generated(flavor, size, &GenerateOptions::default())
    }

    /// [`Site::generated`] with options beyond the size: systematic user
    /// names, the length of each project's assignable list.
    pub fn generated_with(flavor: Flavor, size: SiteSize, options: &GenerateOptions) -> Site {
        generate::generated(flavor, size, options)
    }

    /// The captured fixtures under `dir` (the `shared/jira/fixtures`
    /// directory): `cloud/*.json` for Cloud, `server/*.json` for Data
    /// Center, with what a set lacks filled in by small generated data.
    /// See the `fixtures` module for exactly what comes from where.
    pub fn from_fixtures(flavor: Flavor, dir: &std::path::Path) -> std::io::Result<Site> {
        fixtures::load(flavor, dir)
    }

    /// A user's id: `accountId` on Cloud, `key` on Data Center (whichever
    /// the user has).
    pub fn user_id(user: &Value) -> Option<&str> {
        user.get("accountId")
            .or_else(|| user.get("key"))
            .and_then(Value::as_str)
    }

    /// The project with this key (case-insensitive).
    pub fn project(&self, key: &str) -> Option<&Value> {
        self.projects
            .iter()
            .find(|p| str_field(p, "key").is_some_and(|k| k.eq_ignore_ascii_case(key)))
    }

    /// The issue with this key (case-insensitive).
    pub fn issue(&self, key: &str) -> Option<&Value> {
        self.issues
            .iter()
            .find(|i| issue_key(i).is_some_and(|k| k.eq_ignore_ascii_case(key)))
    }

    /// The issue with this key (case-insensitive) or id, to change it.
    pub fn issue_mut(&mut self, key: &str) -> Option<&mut Value> {
        // Jira takes an issue's numeric id wherever it takes its key.
        self.issues.iter_mut().find(|i| {
            issue_key(i).is_some_and(|k| k.eq_ignore_ascii_case(key))
                || i.get("id").and_then(Value::as_str) == Some(key)
        })
    }

    /// Deletes a project with its issues and its assignable list, as Jira
    /// does. Returns whether it existed.
    pub fn remove_project(&mut self, key: &str) -> bool {
        let before = self.projects.len();
        self.projects
            .retain(|p| !str_field(p, "key").is_some_and(|k| k.eq_ignore_ascii_case(key)));
        if self.projects.len() == before {
            return false;
        }
        self.issues
            .retain(|i| !issue_project_key(i).is_some_and(|p| p.eq_ignore_ascii_case(key)));
        self.assignable.retain(|p, _| !p.eq_ignore_ascii_case(key));
        true
    }

    /// Deletes a user by id (`accountId`, `key` or `name`) and takes them off
    /// every assignable list; issues keep their references. Returns whether
    /// the user existed.
    pub fn remove_user(&mut self, id: &str) -> bool {
        let is_them = |u: &Value| {
            ["accountId", "key", "name"]
                .iter()
                .any(|f| str_field(u, f) == Some(id))
        };
        let removed: Vec<String> = self
            .users
            .iter()
            .filter(|u| is_them(u))
            .filter_map(|u| Site::user_id(u).map(str::to_owned))
            .collect();
        if removed.is_empty() {
            return false;
        }
        self.users.retain(|u| !is_them(u));
        for ids in self.assignable.values_mut() {
            ids.retain(|i| !removed.contains(i));
        }
        true
    }

    /// Deletes an issue. Returns whether it existed.
    pub fn remove_issue(&mut self, key: &str) -> bool {
        let before = self.issues.len();
        self.issues
            .retain(|i| !issue_key(i).is_some_and(|k| k.eq_ignore_ascii_case(key)));
        self.issues.len() != before
    }

    /// Edits an issue: `updated` becomes now (in the issue's own UTC offset)
    /// and the summary changes (` (edit N)` is appended or counted up).
    /// Returns whether the issue exists.
    pub fn touch_issue(&mut self, key: &str) -> bool {
        let Some(issue) = self.issue_mut(key) else {
            return false;
        };
        let Some(fields) = issue.get_mut("fields").and_then(Value::as_object_mut) else {
            return false;
        };
        let offset = fields
            .get("updated")
            .and_then(Value::as_str)
            .and_then(parse_jira_time)
            .map(|t| *t.offset())
            .unwrap_or_else(utc);
        let now = Utc::now().with_timezone(&offset);
        fields.insert("updated".into(), Value::String(format_jira_time(&now)));
        let summary = fields.get("summary").and_then(Value::as_str).unwrap_or("");
        fields.insert("summary".into(), Value::String(next_edit(summary)));
        true
    }

    /// Moves an issue to another project, as Jira does: it gets the next
    /// free number there and `updated` becomes now; its old key (and any
    /// key that pointed to it) keeps answering with it. Returns the new
    /// key, or `None` if the issue or the project does not exist.
    pub fn move_issue(&mut self, key: &str, to_project: &str) -> Option<String> {
        let project = self.project(to_project)?.clone();
        let project_key = str_field(&project, "key")?.to_owned();
        let number = self
            .issues
            .iter()
            .filter_map(issue_key)
            .filter_map(|k| k.rsplit_once('-'))
            .filter(|(p, _)| p.eq_ignore_ascii_case(&project_key))
            .filter_map(|(_, n)| n.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let new_key = format!("{project_key}-{number}");
        let old_key = {
            let issue = self.issue_mut(key)?;
            let old = issue_key(issue)?.to_owned();
            issue["key"] = Value::String(new_key.clone());
            if let Some(fields) = issue.get_mut("fields").and_then(Value::as_object_mut) {
                fields.insert("project".into(), project);
            }
            old
        };
        self.touch_issue(&new_key);
        for target in self.moved.values_mut() {
            if target.eq_ignore_ascii_case(&old_key) {
                *target = new_key.clone();
            }
        }
        self.moved
            .insert(old_key.to_ascii_uppercase(), new_key.clone());
        Some(new_key)
    }

    /// Touches (see [`Site::touch_issue`]) `n` issues picked at random
    /// from those updated within `within` of now (all issues if there are
    /// fewer), the same ones for the same `seed` and site. Returns their keys.
    pub fn touch_random(&mut self, n: usize, within: chrono::Duration, seed: u64) -> Vec<String> {
        let since = Utc::now() - within;
        let mut pool: Vec<String> = self
            .issues
            .iter()
            .filter(|i| {
                i.pointer("/fields/updated")
                    .and_then(Value::as_str)
                    .and_then(parse_jira_time)
                    .is_some_and(|t| t.with_timezone(&Utc) >= since)
            })
            .filter_map(|i| issue_key(i).map(str::to_owned))
            .collect();
        let mut state = seed | 1;
        let mut picked = Vec::with_capacity(n.min(pool.len()));
        while picked.len() < n && !pool.is_empty() {
            // xorshift64: deterministic, no dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = pool.swap_remove((state % pool.len() as u64) as usize);
            picked.push(key);
        }
        for key in &picked {
            self.touch_issue(key);
        }
        picked
    }

    /// Creates an issue in a project, created and updated now, with the next
    /// free number and id. Returns its key, or `None` if there is no such
    /// project.
    pub fn add_issue(&mut self, project_key: &str, summary: &str) -> Option<String> {
        generate::add_issue(self, project_key, summary)
    }
}

/// The key of an issue value.
pub(crate) fn issue_key(issue: &Value) -> Option<&str> {
    str_field(issue, "key")
}

/// The project key of an issue value: `fields.project.key`, else the prefix
/// of the issue key.
pub(crate) fn issue_project_key(issue: &Value) -> Option<&str> {
    issue
        .pointer("/fields/project/key")
        .and_then(Value::as_str)
        .or_else(|| issue_key(issue).and_then(|k| k.rsplit_once('-').map(|(p, _)| p)))
}

/// A string member of a JSON object.
pub(crate) fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

fn utc() -> FixedOffset {
    FixedOffset::east_opt(0).expect("zero is a valid offset")
}

/// `"Fix it"` → `"Fix it (edit 1)"` → `"Fix it (edit 2)"`.
fn next_edit(summary: &str) -> String {
    if let Some((base, rest)) = summary.rsplit_once(" (edit ")
        && let Some(n) = rest.strip_suffix(')').and_then(|n| n.parse::<u64>().ok())
    {
        return format!("{base} (edit {})", n + 1);
    }
    format!("{summary} (edit 1)")
}

/// A Jira timestamp of `t` in `offset`.
pub(crate) fn jira_time_in(t: DateTime<Utc>, offset: FixedOffset) -> String {
    format_jira_time(&t.with_timezone(&offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_counted_in_the_summary() {
        assert_eq!(next_edit("Fix it"), "Fix it (edit 1)");
        assert_eq!(next_edit("Fix it (edit 1)"), "Fix it (edit 2)");
        assert_eq!(next_edit("Odd (edit x)"), "Odd (edit x) (edit 1)");
    }

    #[test]
    fn removing_a_project_removes_its_issues_and_assignable_list() {
        let mut site = Site::small(Flavor::Cloud);
        let issues_before = site.issues.len();
        let alpha_issues = site
            .issues
            .iter()
            .filter(|i| issue_project_key(i) == Some("ALPHA"))
            .count();
        assert!(alpha_issues > 0);
        assert!(site.remove_project("alpha"));
        assert!(site.project("ALPHA").is_none());
        assert_eq!(site.issues.len(), issues_before - alpha_issues);
        assert!(!site.assignable.contains_key("ALPHA"));
        assert!(!site.remove_project("ALPHA"));
    }

    #[test]
    fn removing_a_user_takes_them_off_assignable_lists() {
        let mut site = Site::small(Flavor::DataCenter);
        let id = Site::user_id(&site.users[1]).expect("has a key").to_owned();
        assert!(site.assignable.values().any(|ids| ids.contains(&id)));
        assert!(site.remove_user(&id));
        assert!(site.assignable.values().all(|ids| !ids.contains(&id)));
        assert!(!site.remove_user(&id));
    }

    #[test]
    fn touching_an_issue_moves_updated_to_now_and_changes_the_summary() {
        let mut site = Site::small(Flavor::Cloud);
        let key = issue_key(site.issues.last().expect("issues"))
            .expect("key")
            .to_owned();
        let before = site.issue(&key).expect("exists").clone();
        assert!(site.touch_issue(&key));
        let after = site.issue(&key).expect("exists");
        assert_ne!(after["fields"]["summary"], before["fields"]["summary"]);
        let updated = parse_jira_time(after["fields"]["updated"].as_str().expect("string"))
            .expect("a Jira timestamp");
        assert!((Utc::now() - updated.with_timezone(&Utc)).num_seconds() < 5);
        assert!(!site.touch_issue("NOPE-1"));
    }

    #[test]
    fn an_added_issue_takes_the_next_number_and_id() {
        let mut site = Site::small(Flavor::Cloud);
        let key = site.add_issue("BETA", "New one").expect("BETA exists");
        let max_beta = site
            .issues
            .iter()
            .filter_map(issue_key)
            .filter(|k| k.starts_with("BETA-"))
            .filter_map(|k| k[5..].parse::<u64>().ok())
            .max();
        assert_eq!(Some(key.as_str()), site.issues.last().and_then(issue_key));
        assert_eq!(key, format!("BETA-{}", max_beta.expect("some")));
        let ids: std::collections::HashSet<&str> = site
            .issues
            .iter()
            .filter_map(|i| str_field(i, "id"))
            .collect();
        assert_eq!(ids.len(), site.issues.len(), "ids stay unique");
        assert!(site.add_issue("NOPE", "x").is_none());
    }
}
