//! A search index over a site's issues, so that a JQL page over 100,000
//! issues does not re-read every issue's JSON: each issue's key, project,
//! number and times are read once, and rebuilt only after the site changes.
//! Each issue's `fields` are serialized here once, so that search pages
//! copy that text rather than serialize every issue again. The index also
//! lists each project's assignable users and finds projects by key or id,
//! so that the hundreds of `/user/assignable/search` requests of a warm do
//! not each walk every user of the site.

use std::collections::HashMap;

use serde_json::Value;

use super::{Site, issue_key, issue_project_key, str_field};
use crate::json_text::{MembersText, Names};
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
    /// The issue's `fields` as JSON text, if `fields` is an object.
    pub(crate) fields_text: Option<MembersText>,
}

/// Issues by position, by project and by key; assignable users by project;
/// projects by key and id.
#[derive(Debug, Default)]
pub(crate) struct IssueIndex {
    pub(crate) issues: Vec<IndexedIssue>,
    by_project: HashMap<String, Vec<usize>>,
    by_key: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
    /// For each project key of [`Site::assignable`], the positions in
    /// [`Site::users`] of its assignable users, in the list's order: for
    /// each id the first user with that [`Site::user_id`] (as a scan from
    /// the front finds), ids of no user left out.
    assignable: HashMap<String, Vec<usize>>,
    /// Positions in [`Site::projects`] by upper-cased key (first wins).
    projects_by_key: HashMap<String, usize>,
    /// Positions in [`Site::projects`] by id (first wins).
    projects_by_id: HashMap<String, usize>,
    /// The names of the issues' `fields`, numbered for [`MembersText`].
    field_names: Names,
    /// What Data Center's `/user/search` matches, for each user of
    /// [`Site::users`] at the same position: kept here so that each of the
    /// hundreds of queries of a listing split by prefix does not lower-case
    /// the whole site again.
    user_texts: Vec<UserText>,
}

/// A user's name, display name and email address (those it has),
/// lower-cased, and whether the user is active.
#[derive(Debug, Default)]
pub(crate) struct UserText {
    /// The lower-cased `name` ("" without one): the order of answers.
    pub(crate) name: String,
    /// The lower-cased `name`, `displayName` and `emailAddress` present.
    pub(crate) matched: Vec<String>,
    /// `active`, true when absent.
    pub(crate) active: bool,
}

impl UserText {
    fn of(user: &Value) -> UserText {
        UserText {
            name: str_field(user, "name").unwrap_or_default().to_lowercase(),
            matched: ["name", "displayName", "emailAddress"]
                .iter()
                .filter_map(|f| str_field(user, f))
                .map(str::to_lowercase)
                .collect(),
            active: user.get("active").and_then(Value::as_bool).unwrap_or(true),
        }
    }

    /// Whether the name, display name or email starts with `prefix`
    /// (lower-cased).
    pub(crate) fn starts_with(&self, prefix: &str) -> bool {
        self.matched.iter().any(|t| t.starts_with(prefix))
    }
}

impl IssueIndex {
    pub(crate) fn build(site: &Site) -> IssueIndex {
        let mut index = IssueIndex {
            user_texts: site.users.iter().map(UserText::of).collect(),
            ..IssueIndex::default()
        };
        let mut users_by_id: HashMap<&str, usize> = HashMap::new();
        for (pos, user) in site.users.iter().enumerate() {
            if let Some(id) = Site::user_id(user) {
                users_by_id.entry(id).or_insert(pos);
            }
        }
        for (key, ids) in &site.assignable {
            let positions = ids
                .iter()
                .filter_map(|id| users_by_id.get(id.as_str()).copied())
                .collect();
            index.assignable.insert(key.clone(), positions);
        }
        for (pos, project) in site.projects.iter().enumerate() {
            if let Some(key) = str_field(project, "key") {
                index
                    .projects_by_key
                    .entry(key.to_ascii_uppercase())
                    .or_insert(pos);
            }
            if let Some(id) = str_field(project, "id") {
                index.projects_by_id.entry(id.to_owned()).or_insert(pos);
            }
        }
        for (pos, issue) in site.issues.iter().enumerate() {
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
            let fields_text = match issue.get("fields") {
                Some(Value::Object(fields)) => {
                    Some(MembersText::new(fields, &mut index.field_names))
                }
                _ => None,
            };
            index.issues.push(IndexedIssue {
                id: id_text.and_then(|s| s.parse().ok()),
                fields_text,
                updated: time("updated"),
                created: time("created"),
                key,
                project,
                number,
            });
        }
        // An old key of a moved issue answers with the issue, unless an
        // issue holds that key again.
        for (old, new) in &site.moved {
            if let Some(&pos) = index.by_key.get(&new.to_ascii_uppercase()) {
                index.by_key.entry(old.to_ascii_uppercase()).or_insert(pos);
            }
        }
        index
    }

    /// Every name of the issues' `fields`, at its id in their
    /// [`MembersText`].
    pub(crate) fn field_names(&self) -> &[String] {
        self.field_names.all()
    }

    /// The `fields` text of the issue at `pos`, if it has an object there.
    pub(crate) fn fields_text(&self, pos: usize) -> Option<&MembersText> {
        self.issues.get(pos).and_then(|i| i.fields_text.as_ref())
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

    /// What `/user/search` matches of each user, by position in
    /// [`Site::users`].
    pub(crate) fn user_texts(&self) -> &[UserText] {
        &self.user_texts
    }

    /// The users assignable in a project (its exact key in
    /// [`Site::assignable`]), in the list's order, without looking each up.
    pub(crate) fn assignable<'s>(
        &self,
        site: &'s Site,
        project_key: &str,
    ) -> impl Iterator<Item = &'s Value> {
        self.assignable
            .get(project_key)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|&pos| &site.users[pos])
    }

    /// The positions in [`Site::users`] of a project's assignable users
    /// (its exact key in [`Site::assignable`]), in the list's order.
    pub(crate) fn assignable_positions(&self, project_key: &str) -> &[usize] {
        self.assignable
            .get(project_key)
            .map_or(&[][..], Vec::as_slice)
    }

    /// [`Site::project`] (by key, any case) without the scan.
    pub(crate) fn project_by_key<'s>(&self, site: &'s Site, key: &str) -> Option<&'s Value> {
        self.projects_by_key
            .get(&key.to_ascii_uppercase())
            .map(|&pos| &site.projects[pos])
    }

    /// The first project with this `id`.
    pub(crate) fn project_by_id<'s>(&self, site: &'s Site, id: &str) -> Option<&'s Value> {
        self.projects_by_id.get(id).map(|&pos| &site.projects[pos])
    }

    /// A project by key (any case), else by id, as Jira's `{projectIdOrKey}`
    /// path parameters take it.
    pub(crate) fn project<'s>(&self, site: &'s Site, key_or_id: &str) -> Option<&'s Value> {
        self.project_by_key(site, key_or_id)
            .or_else(|| self.project_by_id(site, key_or_id))
    }
}
