//! The four cache categories of the contract (`CONVENTIONS.md`), named the
//! same in the CLI, TOML, JSON and the database.

use std::fmt;
use std::str::FromStr;

/// A category of cache entries. There are exactly four; `issue_recent` and
/// `issue_old` are TTL names, not categories.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Projects, keyed by project key (`PROJ`); the whole list as `list:projects`.
    Project,
    /// Fields and field metadata: field ids, `issuetype:<id>`, `priority:<id>`,
    /// `status:<id>`, `resolution:<id>`, and the `list:*` entries.
    Field,
    /// Users: Cloud `accountId`, Data Center `key`; `assignable:<PROJ>`.
    User,
    /// Issues, keyed by issue key (`PROJ-123`).
    Issue,
}

impl Category {
    /// Every category, in warm priority order.
    pub const ALL: [Category; 4] = [
        Category::Project,
        Category::Field,
        Category::User,
        Category::Issue,
    ];

    /// The name used everywhere: `project`, `field`, `user`, `issue`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Project => "project",
            Category::Field => "field",
            Category::User => "user",
            Category::Issue => "issue",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest key a server may hand us (Jira's own keys and ids are far
/// shorter; a longer one is a sign of a broken or hostile answer).
pub const MAX_KEY_LEN: usize = 255;

impl Category {
    /// Why `key`, as a server sent it, cannot be a key of this category
    /// (`None`: it can). Checked before a key is stored or printed:
    /// - every key: not empty, at most [`MAX_KEY_LEN`] bytes, no control
    ///   character, no bidirectional override, no whitespace, no `/` or `\`,
    ///   (a plain space is allowed in a user key), not `.` or `..` (keys end up in paths, URLs and terminals);
    /// - `project`: Jira's shape `[A-Z][A-Z0-9_]+`, or `list:projects`;
    /// - `issue`: a project key, `-`, a number without leading zero (`PROJ-123`);
    /// - `field` and `user`: ids and accountIds / user keys are otherwise
    ///   free-form (`customfield_10010`, `557058:f581…`, `JIRAUSER10100`).
    pub fn key_problem(self, key: &str) -> Option<&'static str> {
        if key.is_empty() {
            return Some("an empty key");
        }
        if key.len() > MAX_KEY_LEN {
            return Some("a key longer than 255 bytes");
        }
        // A Data Center user key may hold a plain space (an old user name);
        // no other key has any.
        let space_ok = self == Category::User;
        if key.chars().any(|c| {
            c.is_control()
                || (c.is_whitespace() && !(space_ok && c == ' '))
                || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        }) {
            return Some("a key with control, space or text-direction characters");
        }
        if key.contains('/') || key.contains('\\') || key == "." || key == ".." {
            return Some("a key with a path separator");
        }
        let project = |k: &str| {
            let mut chars = k.chars();
            k.len() >= 2
                && chars.next().is_some_and(|c| c.is_ascii_uppercase())
                && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        };
        match self {
            Category::Project if key == "list:projects" || project(key) => None,
            Category::Project => Some("not a project key (`PROJ`: capitals, digits and `_`)"),
            Category::Issue => {
                let ok = key.rsplit_once('-').is_some_and(|(p, n)| {
                    project(p)
                        && !n.is_empty()
                        && !n.starts_with('0')
                        && n.chars().all(|c| c.is_ascii_digit())
                });
                (!ok).then_some("not an issue key (`PROJ-123`)")
            }
            Category::Field | Category::User => None,
        }
    }
}

/// The error for a name that is not one of the four categories.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown category `{0}`: expected one of project, field, user, issue")]
pub struct UnknownCategory(pub String);

impl FromStr for Category {
    type Err = UnknownCategory;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "project" => Ok(Category::Project),
            "field" => Ok(Category::Field),
            "user" => Ok(Category::User),
            "issue" => Ok(Category::Issue),
            other => Err(UnknownCategory(other.to_string())),
        }
    }
}

impl clap::ValueEnum for Category {
    fn value_variants<'a>() -> &'a [Self] {
        &Category::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_a_hostile_server_sends_are_refused_and_real_ones_kept() {
        for (category, key) in [
            (Category::Issue, ""),
            (Category::Issue, "ALPHA-\n4"),
            (Category::Issue, "../ALPHA-2"),
            (Category::Issue, "ALPHA-\u{202e}2"),
            (Category::Issue, "ALPHA-02"),
            (Category::Issue, "alpha-2"),
            (Category::Project, "AL\x1b[2J"),
            (Category::Project, "A"),
            (Category::Project, "lower"),
            (Category::User, "a/../b"),
            (Category::User, "x\u{7}y"),
            (Category::Field, ".."),
        ] {
            assert!(category.key_problem(key).is_some(), "{category} {key:?}");
        }
        assert!(Category::User.key_problem(&"u".repeat(256)).is_some());
        for (category, key) in [
            (Category::Issue, "ALPHA-2"),
            (Category::Issue, "AB_1-1234"),
            (Category::Project, "ANY23"),
            (Category::Project, "list:projects"),
            (Category::Field, "customfield_10010"),
            (Category::Field, "issuetype:10001"),
            (Category::Field, "list:fields"),
            (
                Category::User,
                "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077",
            ),
            (Category::User, "JIRAUSER10100"),
            (Category::User, "rooneg"),
            (Category::User, "assignable:PROJ"),
            (Category::User, "bot@example.com"),
        ] {
            assert_eq!(category.key_problem(key), None, "{category} {key:?}");
        }
    }

    #[test]
    fn names_round_trip_through_from_str() {
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>().unwrap(), c);
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{c}\""));
        }
    }

    #[test]
    fn issue_recent_is_a_ttl_name_not_a_category() {
        assert!("issue_recent".parse::<Category>().is_err());
    }
}
