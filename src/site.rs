//! Connecting to a profile's site: settle Cloud or Data Center (from the
//! profile, else from the cache's memory of an earlier probe, else by
//! probing `serverInfo` once), pick the credentials, build the client.

use crate::Deployment;
use crate::cache::{CacheError, CacheReader, CacheWriter};
use crate::jira::{Auth, ClientConfig, JiraClient, JiraError, RetryPolicy, ServerInfo};
use crate::profile::{Credentials, Profile, ProfileError};

/// Why the site could not be connected to.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The profile is incomplete (e.g. the token is missing).
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The probe failed.
    #[error(transparent)]
    Jira(#[from] JiraError),
}

/// A client ready for a run, and what was learnt on the way.
#[derive(Debug)]
pub struct Connection {
    /// The client.
    pub client: JiraClient,
    /// Cloud or Data Center.
    pub deployment: Deployment,
    /// The `serverInfo` answer, when this call probed it.
    pub probed: Option<ServerInfo>,
}

/// Builds the run's client. `remembered` is the deployment an earlier probe
/// of this same site found (the cache keeps it), used when the profile does
/// not state one.
pub async fn connect(
    profile: &Profile,
    remembered: Option<Deployment>,
    retry: RetryPolicy,
) -> Result<Connection, ConnectError> {
    let mut probed = None;
    let deployment = match profile.deployment.or(remembered) {
        Some(d) => d,
        None => {
            // serverInfo answers without credentials, on both deployments.
            let anonymous = JiraClient::new(config(
                profile,
                Deployment::DataCenter,
                Auth::None,
                retry.clone(),
            ))?;
            let info = anonymous.server_info().await?;
            tracing::info!(deployment_type = ?info.deployment_type, version = ?info.version, "probed the site");
            let d = info.deployment();
            probed = Some(info);
            d
        }
    };
    let auth = match profile.credentials_async(deployment).await? {
        Credentials::Basic { email, token } => Auth::Basic {
            email,
            token: token.expose().to_string(),
        },
        Credentials::Bearer(token) => Auth::Bearer {
            token: token.expose().to_string(),
        },
    };
    let client = JiraClient::new(config(profile, deployment, auth, retry))?;
    Ok(Connection {
        client,
        deployment,
        probed,
    })
}

fn config(
    profile: &Profile,
    deployment: Deployment,
    auth: Auth,
    retry: RetryPolicy,
) -> ClientConfig {
    ClientConfig {
        site: profile.url.clone(),
        deployment,
        auth,
        rate_limit: profile.rate_limit.per_second(),
        burst: profile.burst,
        concurrency: profile.concurrency,
        timeout: profile.timeout,
        ca_file: profile.ca_file.clone(),
        max_response: profile.max_response,
        retry,
    }
}

/// The `meta` key holding the URL of the site the probe asked.
const META_SITE_URL: &str = "site_url";
/// The `meta` key holding the deployment the probe found.
const META_DEPLOYMENT: &str = "deployment";

/// The deployment of this profile: the one it states, else the one an
/// earlier probe of this same site URL found and the cache remembers.
pub fn remembered_deployment(
    reader: &CacheReader,
    profile: &Profile,
) -> Result<Option<Deployment>, CacheError> {
    if profile.deployment.is_some() {
        return Ok(profile.deployment);
    }
    if reader.meta(META_SITE_URL)?.as_deref() != Some(profile.url.as_str()) {
        return Ok(None);
    }
    Ok(reader.meta(META_DEPLOYMENT)?.and_then(|d| d.parse().ok()))
}

/// Remembers what a probe of the profile's site found, so the next run
/// need not probe again (a profile pointed at another URL probes anew).
pub async fn remember_deployment(
    writer: &CacheWriter,
    profile: &Profile,
    deployment: Deployment,
) -> Result<(), CacheError> {
    writer
        .set_meta(META_SITE_URL.into(), profile.url.to_string())
        .await?;
    writer
        .set_meta(META_DEPLOYMENT.into(), deployment.as_str().into())
        .await
}
