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
