//! `--check-auth`: one authenticated request, and what it says about the
//! profile's site and user.

use anyhow::Context as _;
use jira_cache::exit;
use jira_cache::profile::Profile;
use jira_cache::site;

use crate::common;
use crate::output::{LiveOutput, Mode};

pub async fn check_auth(profile: &Profile) -> anyhow::Result<u8> {
    // On a terminal, each retry of a site it cannot reach is said, as a warm says it.
    let live = std::sync::Arc::new(LiveOutput::new(Mode::Human, 0));
    let retry = jira_cache::jira::RetryPolicy {
        on_connect_retry: live.connect_retry_hook(),
        ..common::retry_policy()
    };
    let connection = match site::connect(profile, profile.deployment, retry).await {
        Ok(c) => c,
        Err(site::ConnectError::Profile(p)) => return Err(p.into()),
        // "cannot connect to URL" names the site itself: once is enough.
        Err(e @ site::ConnectError::Jira(jira_cache::jira::JiraError::Connect { .. })) => {
            return Err(e).with_context(|| format!("profile `{}`", profile.name));
        }
        Err(e) => {
            return Err(e).with_context(|| format!("profile `{}` ({})", profile.name, profile.url));
        }
    };
    let client = &connection.client;
    let me = client
        .myself()
        .await
        .with_context(|| format!("profile `{}`: checking the credentials", profile.name))?;
    let info = match connection.probed {
        Some(info) => info,
        None => client.server_info().await.unwrap_or_default(),
    };
    crate::common::outln!("Profile     {}", profile.name);
    crate::common::outln!("Site        {}", profile.url);
    crate::common::outln!("User        {}", me.describe());
    crate::common::outln!("Deployment  {}", connection.deployment);
    crate::common::outln!(
        "Version     {}",
        info.version.as_deref().unwrap_or("unknown")
    );
    Ok(exit::OK)
}
