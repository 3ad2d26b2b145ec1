//! Per-resource permissions: projects the account may not see. Real sites
//! refuse one project's resources (a project whose browse permission the
//! account lacks, an assignable list it may not read) while everything
//! else works; a client must treat that 403 as that project's failure, not
//! as refused credentials. A forbidden project stays in the project
//! listings (the account may list it), but its own resources answer 403:
//! `/project/{key}` (and below), `/issue/{key}` of its issues, its
//! `/user/assignable/search`, and any issue search whose JQL names it or
//! one of its issues.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

use crate::api::paging::Params;
use crate::site::{SiteHandle, issue_project_key, str_field};

/// The projects the account may not see, by upper-case key.
#[derive(Debug, Default)]
pub(crate) struct Forbidden(Mutex<BTreeSet<String>>);

impl Forbidden {
    pub(crate) fn new(keys: impl IntoIterator<Item = String>) -> Forbidden {
        Forbidden(Mutex::new(
            keys.into_iter().map(|k| k.to_ascii_uppercase()).collect(),
        ))
    }

    pub(crate) fn set(&self, key: &str, forbidden: bool) {
        let mut keys = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if forbidden {
            keys.insert(key.to_ascii_uppercase());
        } else {
            keys.remove(&key.to_ascii_uppercase());
        }
    }

    /// The forbidden project this request reaches, if any. `api_base` is
    /// `/rest/api/3` or `/rest/api/2`; `/rest/api/2` paths on Cloud count
    /// too, as Cloud serves both.
    pub(crate) fn reached(
        &self,
        site: &SiteHandle,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Option<String> {
        let keys = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if keys.is_empty() {
            return None;
        }
        let rest = path
            .strip_prefix("/rest/api/3")
            .or_else(|| path.strip_prefix("/rest/api/2"))?;
        let params = Params::parse(Some(query)).unwrap_or_default();
        let project_of = |key_or_id: &str| project_key(site, key_or_id);
        let issue_of = |key_or_id: &str| issue_project(site, key_or_id);
        let reached: Vec<String> = if let Some(tail) = rest.strip_prefix("/project/") {
            let first = tail.split('/').next().unwrap_or_default();
            (first != "search")
                .then(|| project_of(first))
                .into_iter()
                .flatten()
                .collect()
        } else if let Some(tail) = rest.strip_prefix("/issue/") {
            let first = tail.split('/').next().unwrap_or_default();
            issue_of(first).into_iter().collect()
        } else if rest == "/user/assignable/search" {
            match (
                params.get("project"),
                params.get("issueKey").or(params.get("issueId")),
            ) {
                (Some(p), _) => project_of(p).into_iter().collect(),
                (None, Some(i)) => issue_of(i).into_iter().collect(),
                (None, None) => Vec::new(),
            }
        } else if rest.starts_with("/search") {
            let jql = params.get("jql").map(str::to_owned).or_else(|| {
                serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|b| b.get("jql").and_then(Value::as_str).map(str::to_owned))
            });
            jql.map(|jql| named_projects(&jql, &keys))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        reached
            .into_iter()
            .find(|k| keys.contains(&k.to_ascii_uppercase()))
    }
}

/// A project's key from its key (any case) or id.
fn project_key(site: &SiteHandle, key_or_id: &str) -> Option<String> {
    site.read(|s, index| {
        index
            .project(s, key_or_id)
            .and_then(|p| str_field(p, "key"))
            .map(str::to_owned)
    })
}

/// The project of an issue, by the issue's key or id; for a key of no
/// issue, the key's prefix.
fn issue_project(site: &SiteHandle, key_or_id: &str) -> Option<String> {
    site.read(|s, index| {
        index
            .find(key_or_id)
            .and_then(|pos| issue_project_key(&s.issues[pos]))
            .map(str::to_owned)
    })
    .or_else(|| key_or_id.rsplit_once('-').map(|(p, _)| p.to_owned()))
}

/// The keys among `keys` that a JQL text names, as a project key or as
/// the prefix of an issue key, bare or quoted, in any case.
fn named_projects(jql: &str, keys: &BTreeSet<String>) -> Vec<String> {
    words(jql)
        .into_iter()
        .filter_map(|w| {
            let w = w.to_ascii_uppercase();
            let project = match w.rsplit_once('-') {
                Some((p, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    p.to_owned()
                }
                _ => w,
            };
            keys.contains(&project).then_some(project)
        })
        .collect()
}

/// The words of a JQL text: quoted strings (without their quotes) and runs
/// of letters, digits, `_` and `-`.
fn words(jql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = jql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' {
            let mut w = String::new();
            while let Some(d) = chars.next() {
                match d {
                    '\\' => w.extend(chars.next()),
                    d if d == c => break,
                    d => w.push(d),
                }
            }
            out.push(w);
        } else if c.is_alphanumeric() || c == '_' {
            let mut w = String::from(c);
            while let Some(&d) = chars.peek() {
                if d.is_alphanumeric() || d == '_' || d == '-' {
                    w.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(w);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jql_names_a_project_by_key_or_by_one_of_its_issues() {
        let keys = BTreeSet::from(["BETA".to_owned(), "FOR".to_owned()]);
        assert_eq!(
            named_projects(r#"project in ("ALPHA", "beta") ORDER BY key"#, &keys),
            ["BETA"]
        );
        assert_eq!(named_projects("key = FOR-12", &keys), ["FOR"]);
        assert!(named_projects("project = ALPHA AND text ~ 'beta-ish'", &keys).is_empty());
        assert!(named_projects("project = BETAMAX", &keys).is_empty());
    }
}
