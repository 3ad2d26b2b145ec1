//! Jira Cloud or Data Center: the one fact that decides base path, auth,
//! user identity and the endpoints of every warm stage (`JIRA_API.md`).

use std::fmt;
use std::str::FromStr;

/// Which kind of Jira site a profile talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Deployment {
    /// Jira Cloud: REST v3, Basic `email:api_token`, users by `accountId`.
    Cloud,
    /// Jira Data Center or Server: REST v2, Bearer personal access token,
    /// users by `key`.
    #[serde(rename = "datacenter")]
    DataCenter,
}

impl Deployment {
    /// The name used in profiles and JSON: `cloud` or `datacenter`.
    pub fn as_str(self) -> &'static str {
        match self {
            Deployment::Cloud => "cloud",
            Deployment::DataCenter => "datacenter",
        }
    }

    /// The REST base path: `/rest/api/3` on Cloud, `/rest/api/2` on Data Center.
    pub fn api_base(self) -> &'static str {
        match self {
            Deployment::Cloud => "/rest/api/3",
            Deployment::DataCenter => "/rest/api/2",
        }
    }

    /// Reads `serverInfo`'s `deploymentType`: `"Cloud"` is Cloud, anything
    /// else (`"Server"`, `"Data Center"`, `"DataCenter"`, absent) is Data Center.
    pub fn from_server_info_type(deployment_type: Option<&str>) -> Deployment {
        match deployment_type {
            Some(t) if t.eq_ignore_ascii_case("cloud") => Deployment::Cloud,
            _ => Deployment::DataCenter,
        }
    }
}

impl fmt::Display for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Deployment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cloud" => Ok(Deployment::Cloud),
            "datacenter" => Ok(Deployment::DataCenter),
            other => Err(format!(
                "unknown deployment `{other}`: expected \"cloud\" or \"datacenter\""
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_info_cloud_is_cloud_and_everything_else_is_data_center() {
        assert_eq!(
            Deployment::from_server_info_type(Some("Cloud")),
            Deployment::Cloud
        );
        for other in ["Server", "Data Center", "DataCenter"] {
            assert_eq!(
                Deployment::from_server_info_type(Some(other)),
                Deployment::DataCenter
            );
        }
        assert_eq!(
            Deployment::from_server_info_type(None),
            Deployment::DataCenter
        );
    }
}
