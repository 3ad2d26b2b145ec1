//! Typed look-ups for what people ask most: a project by key, a field's id
//! by its name, a user by account id (Data Center: key) or by name, an issue
//! by key. Each reads the entry the warm stages write (`CONVENTIONS.md`,
//! "Categories and keys") and, when it is missing or expired, fetches it
//! with the Jira client through [`ReadThrough::get_or_fetch`]'s machinery
//! (single flight, early refresh, leases, stale on error).
//!
//! A resource Jira says does not exist (404, or an issue search that
//! returns nothing) is `Ok(None)`, unless a stale value within `max_stale`
//! is cached, which is then served as for any other failure.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{CachedValue, FetchError, Origin, ReadError, ReadThrough, now_ms};
use crate::cache::CacheReader;
use crate::jira::{JiraError, Metadata};
use crate::{Category, Deployment};

/// The key of the cached list of fields.
const FIELDS_LIST_KEY: &str = "list:fields";

impl ReadThrough {
    /// The project with this key (`PROJ`; ASCII letters are upper-cased),
    /// as Jira's `GET /project/{key}` returns it.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let jira = fake_jira::FakeJira::builder(fake_jira::Flavor::Cloud).start();
    /// # let dir = tempfile::tempdir()?;
    /// # let toml = format!(
    /// #     "[profiles.doc]\nurl = \"{}\"\ndeployment = \"cloud\"\nemail = \"bot@example.com\"\ncache_dir = \"{}\"\n",
    /// #     jira.url(), dir.path().display());
    /// # let env = jira_cache::profile::Env::from_pairs([("JIRA_API_TOKEN", "cloud-token-123")]);
    /// # let profile = jira_cache::profile::parse_str(&toml, &dir.path().join("p.toml"), None, &env)?;
    /// let cache = jira_cache::read::ReadThrough::open(&profile)?;
    /// assert!(cache.project("beta").await?.is_some());
    /// assert!(cache.project("NOSUCH").await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn project(&self, key: &str) -> Result<Option<CachedValue>, ReadError> {
        let key = checked_key(Category::Project, key, is_project_key)?;
        let read = self
            .read_through(Category::Project, &key, || async {
                let client = self.client().await?;
                let path = client.api(&format!("/project/{key}"));
                let project: Box<RawValue> = client.get(&path, &[]).await.map_err(shared)?;
                Ok(project.get().to_string())
            })
            .await;
        found(read)
    }

    /// The id of the field named `name` (`"Story Points"` →
    /// `customfield_10010`), from the cached list of fields (`list:fields`,
    /// fetched with `GET /field` when missing or expired). An exact match of
    /// the name wins over a match ignoring case; among several fields of
    /// the same name, the first in Jira's order.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let jira = fake_jira::FakeJira::builder(fake_jira::Flavor::DataCenter).start();
    /// # let dir = tempfile::tempdir()?;
    /// # let toml = format!(
    /// #     "[profiles.doc]\nurl = \"{}\"\ndeployment = \"datacenter\"\ncache_dir = \"{}\"\n",
    /// #     jira.url(), dir.path().display());
    /// # let env = jira_cache::profile::Env::from_pairs([("JIRA_API_TOKEN", "dc-token-456")]);
    /// # let profile = jira_cache::profile::parse_str(&toml, &dir.path().join("p.toml"), None, &env)?;
    /// let cache = jira_cache::read::ReadThrough::open(&profile)?;
    /// assert_eq!(cache.field_id("story points").await?.as_deref(), Some("customfield_10010"));
    /// assert_eq!(cache.field_id("No such field").await?, None);
    /// # assert_eq!(jira.count_path("/rest/api/2/field"), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn field_id(&self, name: &str) -> Result<Option<String>, ReadError> {
        let read = self
            .read_through(Category::Field, FIELDS_LIST_KEY, || async {
                let client = self.client().await?;
                let (items, _) = client
                    .metadata(Metadata::Fields)
                    .collect_all()
                    .await
                    .map_err(shared)?;
                Ok(crate::warm::json_array(items.iter().map(|i| i.as_ref())))
            })
            .await;
        let Some(list) = found(read)? else {
            return Ok(None);
        };
        #[derive(Deserialize)]
        struct Field {
            id: Option<String>,
            name: Option<String>,
        }
        let fields: Vec<Field> = list.json().map_err(|e| ReadError::Fetch {
            category: Category::Field,
            key: FIELDS_LIST_KEY.to_string(),
            cause: Arc::new(e),
        })?;
        let named = |exact: bool| {
            fields.iter().find_map(|f| {
                let n = f.name.as_deref()?;
                let hit = if exact {
                    n == name
                } else {
                    n.to_lowercase() == name.to_lowercase()
                };
                if hit { f.id.clone() } else { None }
            })
        };
        Ok(named(true).or_else(|| named(false)))
    }

    /// The user with this id: the Cloud `accountId`, or the Data Center
    /// user `key` (`JIRAUSER10100`), fetched with `GET /user?accountId=`
    /// (Cloud) or `GET /user?key=` (Data Center).
    pub async fn user(&self, id: &str) -> Result<Option<CachedValue>, ReadError> {
        let id = checked_key(Category::User, id, |k| !k.starts_with("assignable:"))?;
        let read = self
            .read_through(Category::User, &id, || async {
                let client = self.client().await?;
                let by = match client.deployment() {
                    Deployment::Cloud => "accountId",
                    Deployment::DataCenter => "key",
                };
                let user: Box<RawValue> = client
                    .get(&client.api("/user"), &[(by, id.clone())])
                    .await
                    .map_err(shared)?;
                Ok(user.get().to_string())
            })
            .await;
        found(read)
    }

    /// The cached user whose name is `name`: the Data Center user name
    /// (`name`), else the display name, else the email address, compared
    /// ignoring case; among several, the first by id. Only cached users are
    /// searched (run `cache_warm --users` first): Cloud has no exact look-up
    /// by name, and a display name need not be unique. Returns the entry as
    /// cached, fresh or stale.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<CachedValue>, ReadError> {
        let cache = self.inner.cache.clone();
        let name = name.to_string();
        let found = tokio::task::spawn_blocking(move || {
            let reader = cache.reader()?;
            find_user_by_name(&reader, &name)
        })
        .await;
        let found = match found {
            Ok(found) => found?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => None,
        };
        let now = now_ms();
        Ok(found.map(|(key, entry)| {
            // Counted like any other read of that entry.
            let _ = self.inner.read_counted(Category::User, &key, now);
            CachedValue::from_entry(&entry, now, Origin::Cache)
        }))
    }

    /// The issue with this key (`PROJ-123`; ASCII letters are upper-cased),
    /// with the profile's `issue_fields` (plus `updated` and `project`),
    /// fetched with Cloud `POST /issue/bulkfetch` or Data Center
    /// `GET /issue/{key}`. Its TTL is `issue_recent` or `issue_old` by its
    /// `updated`, as the warm chooses.
    pub async fn issue(&self, key: &str) -> Result<Option<CachedValue>, ReadError> {
        let key = checked_key(Category::Issue, key, is_issue_key)?;
        let read = self
            .read_through(Category::Issue, &key, || async {
                let client = self.client().await?;
                let items = client
                    .issues_by_keys(std::slice::from_ref(&key), &self.issue_fields())
                    .await
                    .map_err(shared)?;
                items
                    .into_iter()
                    .find(|i| crate::jira::by_key(i).is_some_and(|k| k.eq_ignore_ascii_case(&key)))
                    .map(|i| i.get().to_string())
                    .ok_or_else(|| {
                        shared(JiraError::NotFound {
                            endpoint: client.api("/issue"),
                            message: Some(format!("no issue {key}")),
                        })
                    })
            })
            .await;
        found(read)
    }

    /// The issue fields asked for: the options', plus what the cache needs.
    fn issue_fields(&self) -> Vec<String> {
        let mut fields = self.inner.options.issue_fields.clone();
        for needed in ["updated", "project"] {
            if !fields
                .iter()
                .any(|f| f == needed || f == "*all" || f == "*navigable")
            {
                fields.push(needed.to_string());
            }
        }
        fields
    }
}

/// A Jira error as a shared fetch error.
fn shared(e: JiraError) -> FetchError {
    Arc::new(e)
}

/// A read whose "not found" is `None`.
fn found(read: Result<CachedValue, ReadError>) -> Result<Option<CachedValue>, ReadError> {
    match read {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.is_not_found() && matches!(e, ReadError::Fetch { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The key trimmed (and for projects and issues upper-cased), if `valid`.
fn checked_key(
    category: Category,
    key: &str,
    valid: fn(&str) -> bool,
) -> Result<String, ReadError> {
    let key = key.trim();
    let key = match category {
        Category::Project | Category::Issue => key.to_ascii_uppercase(),
        _ => key.to_string(),
    };
    if key.is_empty() || !valid(&key) {
        return Err(ReadError::InvalidKey {
            category,
            reason: match category {
                Category::Project => {
                    "a project key is letters, digits and `_`, starting with a letter"
                }
                Category::Issue => "an issue key is a project key, `-` and a number (`PROJ-123`)",
                _ => "expected a user's accountId (Cloud) or key (Data Center)",
            },
            key,
        });
    }
    Ok(key)
}

fn is_project_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_issue_key(key: &str) -> bool {
    key.rsplit_once('-').is_some_and(|(project, number)| {
        is_project_key(project) && !number.is_empty() && number.chars().all(|c| c.is_ascii_digit())
    })
}

/// Scans the cached users (not the `assignable:*` lists) for `name`.
fn find_user_by_name(
    reader: &CacheReader,
    name: &str,
) -> Result<Option<(String, crate::cache::CachedEntry)>, ReadError> {
    #[derive(Deserialize)]
    struct User {
        name: Option<String>,
        #[serde(rename = "displayName")]
        display_name: Option<String>,
        #[serde(rename = "emailAddress")]
        email_address: Option<String>,
    }
    let wanted = name.trim().to_lowercase();
    // Best match so far: 0 user name, 1 display name, 2 email.
    let mut best: Option<(u8, String, crate::cache::CachedEntry)> = None;
    for key in reader.keys(Category::User, None)? {
        if key.starts_with("assignable:") {
            continue;
        }
        let Some(entry) = reader.peek(Category::User, &key)? else {
            continue;
        };
        let Ok(user) = serde_json::from_str::<User>(&entry.value) else {
            continue;
        };
        let rank = [user.name, user.display_name, user.email_address]
            .iter()
            .position(|n| n.as_deref().is_some_and(|n| n.to_lowercase() == wanted));
        if let Some(rank) = rank.map(|r| r as u8)
            && best.as_ref().is_none_or(|(b, _, _)| rank < *b)
        {
            let done = rank == 0;
            best = Some((rank, key, entry));
            if done {
                break;
            }
        }
    }
    Ok(best.map(|(_, key, entry)| (key, entry)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_project_and_issue_keys_upper_cased() {
        assert_eq!(
            checked_key(Category::Project, " alpha ", is_project_key).unwrap(),
            "ALPHA"
        );
        assert_eq!(
            checked_key(Category::Issue, "proj_2-17", is_issue_key).unwrap(),
            "PROJ_2-17"
        );
        for bad in ["", "A/B", "1AB", "A B", "../x"] {
            assert!(
                checked_key(Category::Project, bad, is_project_key).is_err(),
                "{bad}"
            );
        }
        for bad in ["PROJ", "PROJ-", "PROJ-1a", "-1", "PROJ-1/2"] {
            assert!(
                checked_key(Category::Issue, bad, is_issue_key).is_err(),
                "{bad}"
            );
        }
        assert!(
            checked_key(Category::User, "assignable:PROJ", |k| !k
                .starts_with("assignable:"))
            .is_err()
        );
    }
}
