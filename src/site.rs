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
    /// `serverInfo` refused both the anonymous probe and the profile's
    /// credentials: the credentials are refused (exit 3).
    #[error(
        "{site}: serverInfo refused an anonymous request (HTTP {anonymous}) and the profile's {tried} credentials (HTTP {with_credentials}); check the token{}, or set `deployment` in the profile",
        if .tried.starts_with("basic") { " and the email it belongs to" } else { "" }
    )]
    ProbeRefused {
        /// The site's URL.
        site: String,
        /// The status of the anonymous probe.
        anonymous: u16,
        /// Which credentials were tried: `basic (email + token)` or `bearer`.
        tried: String,
        /// The status of the probe with credentials.
        with_credentials: u16,
    },
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
            let info = probe(profile, &retry).await?;
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

/// Asks `serverInfo` anonymously, as a stock site answers it; a site behind
/// an SSO plugin or proxy answers 401/403 to anything anonymous, so then
/// again with the profile's credentials: its stated `auth`, else Basic when
/// it has an email, else Bearer.
async fn probe(profile: &Profile, retry: &RetryPolicy) -> Result<ServerInfo, ConnectError> {
    let anonymous = JiraClient::new(config(
        profile,
        Deployment::DataCenter,
        Auth::None,
        retry.clone(),
    ))?;
    let first = match anonymous.server_info().await {
        Ok(info) => return Ok(info),
        Err(e) => match refused_status(&e) {
            Some(status) => status,
            None => return Err(e.into()),
        },
    };
    let basic = match profile.auth {
        Some(kind) => kind == crate::profile::AuthKind::Basic,
        None => profile.email.is_some(),
    };
    let token = profile.resolve_token()?.expose().to_string();
    let (auth, tried) = match (basic, profile.email.clone()) {
        (true, Some(email)) => (Auth::Basic { email, token }, "basic (email + token)"),
        _ => (Auth::Bearer { token }, "bearer"),
    };
    tracing::info!(
        status = first,
        tried,
        "serverInfo refused an anonymous request; probing with the profile's credentials"
    );
    let with = JiraClient::new(config(profile, Deployment::DataCenter, auth, retry.clone()))?;
    match with.server_info().await {
        Ok(info) => Ok(info),
        Err(e) => match refused_status(&e) {
            Some(second) => Err(ConnectError::ProbeRefused {
                site: profile.url.as_str().trim_end_matches('/').to_string(),
                anonymous: first,
                tried: tried.to_string(),
                with_credentials: second,
            }),
            None => Err(e.into()),
        },
    }
}

/// 401 or 403: the status of a refused request.
fn refused_status(e: &JiraError) -> Option<u16> {
    match e {
        JiraError::Unauthorized { .. } => Some(401),
        JiraError::Forbidden { .. } => Some(403),
        _ => None,
    }
}

/// Starts building the HTTP transport of `profile`'s site on a thread of
/// its own, for [`connect`] to take ([`crate::jira::Transport::prepare`]).
pub fn prepare(profile: &Profile) {
    crate::jira::Transport::new(
        profile.url.clone(),
        profile.timeout,
        profile.concurrency,
        profile.ca_file.clone(),
    )
    .prepare();
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
