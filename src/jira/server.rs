//! Who and what the site is: `serverInfo` (deployment probe, version) and
//! `myself` (whose token this is), for `--check-auth` and the probe.

use serde::{Deserialize, Serialize};

use super::client::JiraClient;
use super::error::JiraError;
use crate::Deployment;

/// The parts of `GET /rest/api/2/serverInfo` we use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The base URL the site believes it has.
    #[serde(rename = "baseUrl")]
    pub base_url: Option<String>,
    /// The version string, e.g. `10.3.1` or `1001.0.0-SNAPSHOT`.
    pub version: Option<String>,
    /// `"Cloud"`, `"Server"`, `"Data Center"` or `"DataCenter"`.
    #[serde(rename = "deploymentType")]
    pub deployment_type: Option<String>,
    /// The site's title.
    #[serde(rename = "serverTitle")]
    pub server_title: Option<String>,
}

impl ServerInfo {
    /// `"Cloud"` is Cloud; anything else is Data Center.
    pub fn deployment(&self) -> Deployment {
        Deployment::from_server_info_type(self.deployment_type.as_deref())
    }
}

/// The parts of `GET /myself` we show.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Myself {
    /// The user's display name.
    #[serde(rename = "displayName")]
    pub display_name: Option<String>,
    /// The email, where privacy settings show it.
    #[serde(rename = "emailAddress")]
    pub email_address: Option<String>,
    /// Cloud's account id.
    #[serde(rename = "accountId")]
    pub account_id: Option<String>,
    /// Data Center's user name.
    pub name: Option<String>,
    /// Data Center's user key.
    pub key: Option<String>,
}

impl Myself {
    /// The best one-line name of the user, control characters escaped (the
    /// server chooses it and it is printed for a person) and secrets
    /// scrubbed (a site may echo the credentials it got in any member).
    pub fn describe(&self) -> String {
        crate::scrub::for_terminal(&crate::scrub::scrub(&self.describe_raw())).into_owned()
    }

    fn describe_raw(&self) -> String {
        let name = self
            .display_name
            .clone()
            .unwrap_or_else(|| "(no display name)".into());
        let id = self
            .email_address
            .clone()
            .or_else(|| self.name.clone())
            .or_else(|| self.account_id.clone())
            .or_else(|| self.key.clone());
        match id {
            Some(id) => format!("{name} <{id}>"),
            None => name,
        }
    }
}

impl JiraClient {
    /// `GET /rest/api/2/serverInfo`: answered on Cloud and Data Center alike,
    /// without credentials.
    pub async fn server_info(&self) -> Result<ServerInfo, JiraError> {
        self.get("/rest/api/2/serverInfo", &[]).await
    }

    /// `GET /myself`: the user the credentials belong to.
    pub async fn myself(&self) -> Result<Myself, JiraError> {
        self.get(&self.api("/myself"), &[]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_display_name_with_escape_sequences_is_described_escaped() {
        let me: Myself = serde_json::from_str(
            r#"{"displayName":"Eve\u001b]0;owned\u0007","accountId":"5b10ac8d82e05b22cc7d4ef5"}"#,
        )
        .unwrap();
        let shown = me.describe();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.starts_with("Eve\\u{1b}]0;owned"), "{shown:?}");
    }
}
