//! What a request is, as far as the cache is concerned: a path that is safe
//! to send to the site, and for reads the cache has answers for, the
//! category and key its answer is kept under.
//!
//! Keys: `serve:<version>/<path>?<query>` (`serve:3/field`,
//! `serve:2/issue/PROJ-1?fields=summary`). Such an answer is only ever
//! served to a request of the same API version and the same query it was
//! fetched with, so a v2 client never receives the ADF documents of a v3
//! answer. (The warm's own entries answer some requests first, under the
//! rules of [`super::warmed`].)

use crate::{Category, Deployment};

/// Why a path is not sent anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRefusal {
    /// `..`, `.`, an empty segment, a backslash, or an encoded `/`, `\`, `.`.
    Unsafe,
    /// Not under `/rest/` of this deployment.
    NotJira,
}

/// A request path that may go to the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafePath {
    /// The path as received (already checked), starting with `/rest/`.
    pub path: String,
    /// The REST API version for `/rest/api/N/…`, else `None`.
    pub version: Option<u8>,
    /// The path under `/rest/api/N/`, for versioned paths.
    pub rest: String,
}

/// Checks a request path: only `/rest/…`, no dot segments, no empty
/// segments, no backslash, no percent-encoded `/`, `\` or `.`. Versions:
/// `2` everywhere, `3` on Cloud only.
pub fn check_path(path: &str, deployment: Deployment) -> Result<SafePath, PathRefusal> {
    if !path.starts_with('/') || path.contains('\\') {
        return Err(PathRefusal::Unsafe);
    }
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "%2e", "%00"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return Err(PathRefusal::Unsafe);
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    if segments
        .iter()
        .enumerate()
        .any(|(i, s)| *s == ".." || *s == "." || (s.is_empty() && i + 1 != segments.len()))
    {
        return Err(PathRefusal::Unsafe);
    }
    if segments.first() != Some(&"rest") || segments.len() < 2 {
        return Err(PathRefusal::NotJira);
    }
    let version = match (segments.get(1), segments.get(2)) {
        (Some(&"api"), Some(&"2")) => Some(2),
        (Some(&"api"), Some(&"3")) if deployment == Deployment::Cloud => Some(3),
        (Some(&"api"), _) => return Err(PathRefusal::NotJira),
        _ => None,
    };
    let rest = match version {
        Some(_) => segments.get(3..).map(|s| s.join("/")).unwrap_or_default(),
        None => String::new(),
    };
    Ok(SafePath {
        path: path.to_string(),
        version,
        rest,
    })
}

/// The category and key a GET's answer is cached under, or `None` for a
/// read that always goes to the site (search and anything not listed).
pub fn cache_key(path: &SafePath, query: Option<&str>) -> Option<(Category, String)> {
    let version = path.version?;
    let rest = path.rest.trim_end_matches('/');
    let parts: Vec<&str> = rest.split('/').collect();
    let category = match parts.as_slice() {
        ["serverInfo"]
        | ["field"]
        | ["issuetype"]
        | ["priority"]
        | ["priority", "search"]
        | ["status"]
        | ["resolution"]
        | ["resolution", "search"] => Category::Field,
        ["project"] | ["project", "search"] | ["project", _] => Category::Project,
        ["myself"]
        | ["user"]
        | ["user", "search"]
        | ["users", "search"]
        | ["user", "assignable", "search"] => Category::User,
        ["issue", key] if !key.is_empty() && *key != "bulkfetch" => Category::Issue,
        _ => return None,
    };
    let key = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{SERVE_PREFIX}{version}/{rest}?{q}"),
        None => format!("{SERVE_PREFIX}{version}/{rest}"),
    };
    Some((category, key))
}

/// Whether `path` is an issue search in the API version the warmed issue
/// entries were fetched in (Cloud `/rest/api/3/search/jql`, Data Center
/// `/rest/api/2/search`), whose answers may refresh those entries. Cloud's
/// v2 search gives rich text as wiki markup where the entries hold ADF:
/// `false`.
pub fn is_entry_version_search(path: &SafePath, deployment: Deployment) -> bool {
    let rest = path.rest.trim_end_matches('/');
    match (deployment, path.version) {
        (Deployment::Cloud, Some(3)) => rest == "search/jql",
        (Deployment::DataCenter, Some(2)) => rest == "search",
        _ => false,
    }
}

/// Whether `path` is an issue search of any version, or another read Jira
/// takes by POST (a bulk fetch, a count, a JQL parse): a read, whatever its
/// method, which drops nothing.
pub fn is_search(path: &SafePath) -> bool {
    path.version.is_some()
        && matches!(
            path.rest.trim_end_matches('/'),
            "search"
                | "search/jql"
                | "search/approximate-count"
                | "issue/bulkfetch"
                | "jql/parse"
                | "jql/match"
                | "jql/sanitize"
        )
}

/// The prefix of every key `cache_serve` writes.
pub use crate::cache::SERVE_PREFIX;

/// The entries a successful write makes wrong: (category, GLOB pattern).
/// Issue writes drop that issue's entries (any version, any query, and the
/// warm's own entry); project, field and user writes drop the answers
/// `cache_serve` keeps for that category, and the warmed lists it answers
/// from (`list:projects` and the project's own entry, `list:fields`).
pub fn invalidated_by_write(path: &SafePath) -> Vec<(Category, String)> {
    if path.version.is_none() {
        return Vec::new();
    }
    let parts: Vec<&str> = path.rest.split('/').collect();
    match parts.as_slice() {
        ["issue", key, ..] if !key.is_empty() => {
            let by_id = key.chars().all(|c| c.is_ascii_digit());
            let mut drop = invalidated_by_issue_write(key);
            // The same issue asked the other way (by its numeric id, or for
            // a write by id, by its key): which answers those are is not
            // known here, so all of them go. (The warm's entry of an issue
            // written by id is found by the caller: [`issue_id`].)
            drop.push(match by_id {
                true => (Category::Issue, format!("{SERVE_PREFIX}*/issue/*")),
                false => (Category::Issue, format!("{SERVE_PREFIX}*/issue/[0-9]*")),
            });
            drop
        }
        ["project", rest @ ..] => {
            let mut drop = vec![
                (Category::Project, format!("{SERVE_PREFIX}*")),
                (Category::Project, super::warmed::PROJECTS_LIST.to_string()),
            ];
            if let Some(key) = rest.first().filter(|k| !k.is_empty()) {
                drop.push((Category::Project, glob_escape(&key.to_ascii_uppercase())));
            }
            drop
        }
        // A link changes two issues the path does not name; a version or a
        // component (renamed, merged, deleted) shows in every issue and
        // project answer that lists it. The answers kept for those go; the
        // warm's entries hold the default `issue_fields` (no `issuelinks`),
        // and their `fixVersions`/`components` follow at the next warm.
        ["issueLink", ..] => vec![(Category::Issue, format!("{SERVE_PREFIX}*/issue/*"))],
        ["version", ..] | ["component", ..] => vec![
            (Category::Issue, format!("{SERVE_PREFIX}*/issue/*")),
            (Category::Project, format!("{SERVE_PREFIX}*")),
        ],
        ["field", ..] => vec![
            (Category::Field, format!("{SERVE_PREFIX}*")),
            (Category::Field, super::warmed::FIELDS_LIST.to_string()),
        ],
        ["issuetype", ..] | ["priority", ..] | ["status", ..] | ["resolution", ..] => {
            vec![(Category::Field, format!("{SERVE_PREFIX}*"))]
        }
        ["user", ..] | ["users", ..] | ["myself", ..] => {
            vec![(Category::User, format!("{SERVE_PREFIX}*"))]
        }
        _ => Vec::new(),
    }
}

/// What a write to the issue `key` (or id) makes wrong: the warm's entry
/// and the answers kept for it, in any letter case (Jira reads an issue key
/// in any case, and answers are kept under the case they were asked in).
pub fn invalidated_by_issue_write(key: &str) -> Vec<(Category, String)> {
    let key = glob_any_case(key);
    vec![
        (Category::Issue, key.clone()),
        (Category::Issue, format!("{SERVE_PREFIX}*/issue/{key}")),
        (Category::Issue, format!("{SERVE_PREFIX}*/issue/{key}[?/]*")),
    ]
}

/// The numeric id of the issue `path` addresses (`issue/10003[/…]`), if it
/// addresses one by id.
pub fn issue_id(path: &SafePath) -> Option<&str> {
    path.version?;
    let mut parts = path.rest.split('/');
    match (parts.next(), parts.next()) {
        (Some("issue"), Some(id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
            Some(id)
        }
        _ => None,
    }
}

/// A key as a GLOB that matches only itself, in any ASCII letter case.
fn glob_any_case(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            c if c.is_ascii_alphabetic() => {
                format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
            }
            c => glob_escape(c.encode_utf8(&mut [0; 4])),
        })
        .collect()
}

/// A key as a GLOB that matches only itself.
pub(crate) fn glob_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '*' | '?' | '[' | ']' => format!("[{c}]"),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_encoded_slashes_are_refused() {
        for path in [
            "/rest/api/2/../../admin",
            "/rest/api/2/issue/%2e%2e/x",
            "/rest/api/2/issue/A%2FB",
            "/rest/api/2/issue/A%5cB",
            "/rest//api/2/field",
            "/rest/api/2/./field",
            "/rest\\api",
        ] {
            assert_eq!(
                check_path(path, Deployment::Cloud),
                Err(PathRefusal::Unsafe),
                "{path}"
            );
        }
        assert_eq!(
            check_path("/secure/Dashboard.jspa", Deployment::Cloud),
            Err(PathRefusal::NotJira)
        );
        assert_eq!(
            check_path("/rest/api/3/field", Deployment::DataCenter),
            Err(PathRefusal::NotJira)
        );
    }

    #[test]
    fn versions_and_queries_key_apart() {
        let v2 = check_path("/rest/api/2/issue/PROJ-1", Deployment::Cloud).unwrap();
        let v3 = check_path("/rest/api/3/issue/PROJ-1", Deployment::Cloud).unwrap();
        let (c2, k2) = cache_key(&v2, None).unwrap();
        let (c3, k3) = cache_key(&v3, Some("fields=summary")).unwrap();
        assert_eq!((c2, c3), (Category::Issue, Category::Issue));
        assert_eq!(k2, "serve:2/issue/PROJ-1");
        assert_eq!(k3, "serve:3/issue/PROJ-1?fields=summary");
        let search = check_path("/rest/api/3/search/jql", Deployment::Cloud).unwrap();
        assert_eq!(cache_key(&search, Some("jql=x")), None);
    }

    #[test]
    fn project_and_field_writes_drop_the_warmed_lists_served_from() {
        let edit = check_path("/rest/api/3/project/alpha", Deployment::Cloud).unwrap();
        let patterns = invalidated_by_write(&edit);
        assert!(patterns.contains(&(Category::Project, "list:projects".to_string())));
        assert!(patterns.contains(&(Category::Project, "ALPHA".to_string())));
        let field = check_path("/rest/api/3/field", Deployment::Cloud).unwrap();
        assert!(
            invalidated_by_write(&field).contains(&(Category::Field, "list:fields".to_string()))
        );
    }

    #[test]
    fn only_searches_in_the_entries_version_may_refresh_them() {
        let path = |p: &str, d| check_path(p, d).unwrap();
        let cloud = Deployment::Cloud;
        let dc = Deployment::DataCenter;
        assert!(is_entry_version_search(
            &path("/rest/api/3/search/jql", cloud),
            cloud
        ));
        assert!(!is_entry_version_search(
            &path("/rest/api/2/search/jql", cloud),
            cloud
        ));
        assert!(!is_entry_version_search(
            &path("/rest/api/3/search", cloud),
            cloud
        ));
        assert!(is_entry_version_search(&path("/rest/api/2/search", dc), dc));
        assert!(!is_entry_version_search(
            &path("/rest/api/2/issue/P-1", dc),
            dc
        ));
        assert!(is_search(&path("/rest/api/2/search/jql", cloud)));
        assert!(is_search(&path("/rest/api/3/issue/bulkfetch", cloud)));
        assert!(!is_search(&path("/rest/api/2/issue/P-1", cloud)));
    }

    /// The keys of `keys` that one of `patterns` matches, by SQLite's GLOB.
    fn dropped<'a>(patterns: &[(Category, String)], keys: &[&'a str]) -> Vec<&'a str> {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        keys.iter()
            .copied()
            .filter(|k| {
                patterns.iter().any(|(_, p)| {
                    conn.query_row("SELECT ?1 GLOB ?2", [k, p.as_str()], |r| r.get(0))
                        .unwrap()
                })
            })
            .collect()
    }

    #[test]
    fn an_issue_write_drops_that_issue_only_in_any_case_and_the_answers_asked_by_id() {
        let keys = [
            "PROJ-1",
            "PROJ-10",
            "PROJ-2",
            "serve:3/issue/PROJ-1",
            "serve:3/issue/proj-1?fields=summary",
            "serve:2/issue/Proj-1/comment",
            "serve:3/issue/PROJ-12",
            "serve:3/issue/10003",
            "serve:3/issue/10003?fields=summary",
        ];
        let edit = check_path("/rest/api/2/issue/proj-1/comment", Deployment::Cloud).unwrap();
        let patterns = invalidated_by_write(&edit);
        assert!(patterns.iter().all(|(c, _)| *c == Category::Issue));
        assert_eq!(
            dropped(&patterns, &keys),
            vec![
                "PROJ-1",
                "serve:3/issue/PROJ-1",
                "serve:3/issue/proj-1?fields=summary",
                "serve:2/issue/Proj-1/comment",
                "serve:3/issue/10003",
                "serve:3/issue/10003?fields=summary",
            ]
        );
        // A write by id drops every answer kept for an issue (which key
        // the id names is not known here).
        let by_id = check_path("/rest/api/3/issue/10003", Deployment::Cloud).unwrap();
        assert_eq!(
            dropped(&invalidated_by_write(&by_id), &keys),
            keys[3..].to_vec()
        );
        assert_eq!(issue_id(&by_id), Some("10003"));
        assert_eq!(issue_id(&edit), None);
    }

    #[test]
    fn link_version_and_component_writes_drop_every_kept_issue_answer_but_no_warmed_entry() {
        let keys = [
            "PROJ-1",
            "serve:3/issue/PROJ-1",
            "serve:2/issue/10003?fields=issuelinks",
        ];
        for write in [
            "/rest/api/3/issueLink",
            "/rest/api/2/version/10000",
            "/rest/api/3/component/7",
        ] {
            let path = check_path(write, Deployment::Cloud).unwrap();
            let issues: Vec<_> = invalidated_by_write(&path)
                .into_iter()
                .filter(|(c, _)| *c == Category::Issue)
                .collect();
            assert_eq!(dropped(&issues, &keys), keys[1..].to_vec(), "{write}");
        }
    }
}
