//! Which Jira the fake impersonates: the one switch that decides the REST
//! base path, the endpoints served, user identity and the default credentials.

use std::fmt;
use std::str::FromStr;

/// The kind of Jira site to impersonate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// Jira Cloud: REST v3 under `/rest/api/3`, users by `accountId`,
    /// `/search/jql` token paging, the old `/search` answers 410.
    Cloud,
    /// Jira Data Center / Server: REST v2 under `/rest/api/2`, users by `key`
    /// and `name`, offset-paged `/search`, capped user listings.
    DataCenter,
}

impl Flavor {
    /// The REST base path of this flavor: `/rest/api/3` or `/rest/api/2`.
    pub fn api_base(self) -> &'static str {
        match self {
            Flavor::Cloud => "/rest/api/3",
            Flavor::DataCenter => "/rest/api/2",
        }
    }

    /// The name used on the command line: `cloud` or `datacenter`.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Cloud => "cloud",
            Flavor::DataCenter => "datacenter",
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Flavor {
    type Err = String;

    /// Accepts `cloud`, `datacenter` (also `dc`, `server`, `data-center`), any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cloud" => Ok(Flavor::Cloud),
            "datacenter" | "data-center" | "dc" | "server" => Ok(Flavor::DataCenter),
            other => Err(format!(
                "unknown flavor `{other}`: expected \"cloud\" or \"datacenter\""
            )),
        }
    }
}
