//! Sites built from the captured fixtures (`shared/jira/fixtures`), so the
//! client is held to real answers and not only to the shapes we invent.
//! Fixture values are served exactly as captured; what a set lacks is filled
//! with small generated data:
//!
//! | | Cloud (`cloud/`) | Data Center (`server/`) |
//! |---|---|---|
//! | serverInfo | `serverinfo.json` | generated (`Server`, 10.3) |
//! | myself | `myself.json` | generated |
//! | projects | `projects.json`, plus a bare `{key, name}` for each issue-key prefix with no listed project (`TEST`) | `all_projects.json` (567 Apache projects) |
//! | fields | `fields.json` | `all_fields.json` |
//! | issue types | generated | `issueTypes` of `project.json` |
//! | priorities, statuses, resolutions | generated | `all_priorities.json`, `all_statuses.json`, `all_resolutions.json`, `all_statuscategories.json` |
//! | users | `users.json` | 150 generated, plus myself |
//! | assignable | every project: the active users | every project: 20 active users |
//! | issues | `search.json`, with `issue.json` in place of its `TEST-1` | 2 generated per project |

use std::io;
use std::path::Path;

use serde_json::{Value, json};

use super::generate::{self, Rng};
use super::{Site, issue_key, issue_project_key, str_field};
use crate::flavor::Flavor;

pub(super) fn load(flavor: Flavor, dir: &Path) -> io::Result<Site> {
    match flavor {
        Flavor::Cloud => cloud(&dir.join("cloud")),
        Flavor::DataCenter => server(&dir.join("server")),
    }
}

fn cloud(dir: &Path) -> io::Result<Site> {
    let mut site = generate::empty(Flavor::Cloud);
    generate::standard_metadata(&mut site);
    let info = read(dir, "serverinfo.json")?;
    if let Some(v) = str_field(&info, "version") {
        site.version = v.to_owned();
    }
    if let Some(t) = str_field(&info, "deploymentType") {
        site.deployment_type = t.to_owned();
    }
    if let Some(t) = str_field(&info, "serverTitle") {
        site.server_title = t.to_owned();
    }
    site.myself = read(dir, "myself.json")?;
    site.projects = read_array(dir, "projects.json")?;
    site.fields = read_array(dir, "fields.json")?;
    site.users = read_array(dir, "users.json")?;

    let search = read(dir, "search.json")?;
    let full = read(dir, "issue.json")?;
    site.issues = search
        .get("issues")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| invalid(dir, "search.json", "no `issues` array"))?;
    for issue in &mut site.issues {
        if issue_key(issue).is_some() && issue_key(issue) == issue_key(&full) {
            *issue = full.clone();
        }
    }
    let orphans: Vec<String> = site
        .issues
        .iter()
        .filter_map(issue_project_key)
        .filter(|p| site.project(p).is_none())
        .map(str::to_owned)
        .collect();
    for key in orphans {
        if site.project(&key).is_none() {
            site.projects.push(json!({"key": key, "name": key}));
        }
    }

    let active: Vec<String> = active_ids(&site);
    site.assignable = site
        .projects
        .iter()
        .filter_map(|p| str_field(p, "key"))
        .map(|k| (k.to_owned(), active.clone()))
        .collect();
    Ok(site)
}

fn server(dir: &Path) -> io::Result<Site> {
    let mut site = generate::empty(Flavor::DataCenter);
    site.server_title = "ASF JIRA".into();
    site.projects = read_array(dir, "all_projects.json")?;
    site.fields = read_array(dir, "all_fields.json")?;
    site.priorities = read_array(dir, "all_priorities.json")?;
    site.resolutions = read_array(dir, "all_resolutions.json")?;
    site.statuses = read_array(dir, "all_statuses.json")?;
    site.status_categories = read_array(dir, "all_statuscategories.json")?;
    let project = read(dir, "project.json")?;
    site.issue_types = project
        .get("issueTypes")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| invalid(dir, "project.json", "no `issueTypes` array"))?;
    site.users
        .extend(generate::users(Flavor::DataCenter, 1, 150));

    let active = active_ids(&site);
    let mut rng = Rng::new(0x6173_7369);
    site.assignable = site
        .projects
        .iter()
        .filter_map(|p| str_field(p, "key"))
        .map(|k| {
            let start = rng.below(active.len() as u64) as usize;
            let ids = (0..active.len().min(20))
                .map(|i| active[(start + i) % active.len()].clone())
                .collect();
            (k.to_owned(), ids)
        })
        .collect();
    site.issues = generate::issues_for(&site, 2);
    Ok(site)
}

fn active_ids(site: &Site) -> Vec<String> {
    site.users
        .iter()
        .filter(|u| u.get("active").and_then(Value::as_bool).unwrap_or(true))
        .filter_map(|u| Site::user_id(u).map(str::to_owned))
        .collect()
}

fn read(dir: &Path, name: &str) -> io::Result<Value> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| invalid(dir, name, &e.to_string()))
}

fn read_array(dir: &Path, name: &str) -> io::Result<Vec<Value>> {
    match read(dir, name)? {
        Value::Array(items) => Ok(items),
        _ => Err(invalid(dir, name, "not a JSON array")),
    }
}

fn invalid(dir: &Path, name: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {why}", dir.join(name).display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> Option<std::path::PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/jira/fixtures");
        if dir.is_dir() {
            Some(dir)
        } else {
            eprintln!("skipped: no fixtures at {}", dir.display());
            None
        }
    }

    #[test]
    fn cloud_fixtures_load_with_a_project_for_the_search_issues() {
        let Some(dir) = fixtures() else { return };
        let site = load(Flavor::Cloud, &dir).expect("cloud fixtures load");
        assert_eq!(site.deployment_type, "Cloud");
        assert_eq!(site.version, "1001.0.0-SNAPSHOT");
        let keys: Vec<&str> = site
            .projects
            .iter()
            .filter_map(|p| str_field(p, "key"))
            .collect();
        assert_eq!(keys, ["PRJ1", "PRJ2", "PRJ3", "TEST"]);
        assert_eq!(site.fields.len(), 3);
        assert_eq!(site.users.len(), 2);
        assert_eq!(site.issues.len(), 3);
        assert!(site.issue("TEST-1").expect("TEST-1")["fields"]["description"].is_object());
        assert!(
            site.issues.iter().all(|i| i.get("id").is_none()),
            "served as trimmed"
        );
    }

    #[test]
    fn server_fixtures_load_the_apache_projects() {
        let Some(dir) = fixtures() else { return };
        let site = load(Flavor::DataCenter, &dir).expect("server fixtures load");
        assert_eq!(site.projects.len(), 567);
        for reserved in ["FOR", "EXEC", "TRANSACTION"] {
            assert!(site.project(reserved).is_some(), "{reserved}");
        }
        assert_eq!(site.fields.len(), 2);
        assert!(!site.issue_types.is_empty());
        assert!(!site.statuses.is_empty());
        assert_eq!(site.status_categories.len(), 4);
        assert_eq!(site.users.len(), 151);
        assert_eq!(site.issues.len(), 567 * 2);
        assert_eq!(site.assignable.len(), 567);
    }

    #[test]
    fn a_missing_fixture_directory_is_an_error_naming_the_file() {
        let err = load(Flavor::Cloud, Path::new("/nonexistent")).expect_err("fails");
        assert!(err.to_string().contains("serverinfo.json"), "{err}");
    }
}
