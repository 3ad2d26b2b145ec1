//! `--check-auth`: one authenticated request, and what it says about the
//! profile's site and user.

use anyhow::Context as _;
use jira_cache::exit;
use jira_cache::profile::Profile;
use jira_cache::site;

use crate::common;

pub async fn check_auth(profile: &Profile) -> anyhow::Result<u8> {
    let connection = match site::connect(profile, profile.deployment, common::retry_policy()).await
    {
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
    println!("Profile     {}", profile.name);
    println!("Site        {}", profile.url);
    println!("User        {}", me.describe());
    println!("Deployment  {}", connection.deployment);
    println!(
        "Version     {}",
        info.version.as_deref().unwrap_or("unknown")
    );
    Ok(exit::OK)
}
