//! Turns a raw profile (from the file or the environment) into a
//! validated [`Profile`], value by value.
//!
//! Each value is checked on its own and the first bad one is reported with
//! its key, its line:column in the file (or its variable in the
//! environment) and what a valid value looks like. Messages quote values,
//! except where a value may be a secret: a URL with `@`, a `token_env` that
//! is not a variable name.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use url::Url;

use super::raw::RawProfile;
use super::*;
use crate::Deployment;

pub(super) fn from_environment(env: &Env) -> Result<Profile, ProfileError> {
    let var = |name: &str| {
        env.get_nonempty(name)
            .map(|v| Spanned::new(0..0, v.to_owned()))
    };
    let raw = RawProfile {
        url: var(VAR_SITE_URL),
        email: var(VAR_EMAIL),
        deployment: var(VAR_DEPLOYMENT),
        auth: var(VAR_AUTH_TYPE),
        ..RawProfile::default()
    };
    Resolver {
        origin: ProfileSource::Environment,
        text: None,
        base_dir: None,
        env,
        profile: ENV_PROFILE_NAME,
    }
    .resolve(raw)
}

pub(super) fn resolve_in_file(
    raw: RawProfile,
    name: &str,
    text: &str,
    path: &Path,
    env: &Env,
) -> Result<Profile, ProfileError> {
    Resolver {
        origin: ProfileSource::File(path.to_path_buf()),
        text: Some(text),
        base_dir: Some(path.parent().unwrap_or(Path::new(""))),
        env,
        profile: name,
    }
    .resolve(raw)
}

/// Turns a raw profile into a [`Profile`], value by value, naming the key
/// and position of the first bad one.
struct Resolver<'a> {
    origin: ProfileSource,
    /// The file's text, to turn spans into line:column.
    text: Option<&'a str>,
    /// The directory relative paths are relative to.
    base_dir: Option<&'a Path>,
    env: &'a Env,
    profile: &'a str,
}

impl Resolver<'_> {
    fn invalid(&self, key: &str, span: Option<Range<usize>>, message: String) -> ProfileError {
        let location = self
            .text
            .zip(span)
            .map(|(text, span)| Location::from_offset(text, span.start));
        let key = match (&self.origin, key) {
            (ProfileSource::Environment, "url") => VAR_SITE_URL,
            (ProfileSource::Environment, "email") => VAR_EMAIL,
            (ProfileSource::Environment, "deployment") => VAR_DEPLOYMENT,
            (ProfileSource::Environment, "auth") => VAR_AUTH_TYPE,
            (_, key) => key,
        };
        ProfileError::Invalid {
            origin: self.origin.clone(),
            location,
            profile: self.profile.to_owned(),
            key: key.to_owned(),
            message,
        }
    }

    /// `parse(value)` if the key is present, else `default`.
    fn value<T, U>(
        &self,
        key: &str,
        value: Option<Spanned<T>>,
        default: U,
        parse: impl FnOnce(T) -> Result<U, String>,
    ) -> Result<U, ProfileError> {
        match value {
            None => Ok(default),
            Some(value) => {
                let span = value.span();
                parse(value.into_inner()).map_err(|message| self.invalid(key, Some(span), message))
            }
        }
    }

    fn duration(
        &self,
        key: &str,
        value: Option<Spanned<String>>,
        default: Duration,
    ) -> Result<Duration, ProfileError> {
        self.value(key, value, default, |s| values::parse_duration(&s))
    }

    fn percent(
        &self,
        key: &str,
        value: Option<Spanned<String>>,
        default: f64,
    ) -> Result<f64, ProfileError> {
        self.value(key, value, default, |s| values::parse_percent(&s))
    }

    /// Expands `~/` from the snapshot's HOME and makes a relative path
    /// relative to the profiles file's directory.
    fn path(&self, key: &str, value: Spanned<String>) -> Result<PathBuf, ProfileError> {
        let span = value.span();
        let raw = value.into_inner();
        let fail = |message: String| self.invalid(key, Some(span.clone()), message);
        if raw.is_empty() {
            return Err(fail("empty path; give a path or remove the key".to_owned()));
        }
        let path = if raw == "~" || raw.starts_with("~/") {
            let home = self.env.home_dir().ok_or_else(|| {
                fail(format!(
                    "cannot expand `~` in `{raw}`: HOME is not set; write an absolute path"
                ))
            })?;
            home.join(raw.trim_start_matches('~').trim_start_matches('/'))
        } else {
            PathBuf::from(&raw)
        };
        if path.is_absolute() {
            return Ok(path);
        }
        Ok(match self.base_dir {
            Some(base) => base.join(path),
            None => std::path::absolute(&path).unwrap_or(path),
        })
    }

    fn resolve(&self, raw: RawProfile) -> Result<Profile, ProfileError> {
        let allow_insecure_http =
            self.value("allow_insecure_http", raw.allow_insecure_http, false, Ok)?;
        let url = match raw.url {
            Some(url) => self.value("url", Some(url), None, |s| {
                normalize_url(&s, allow_insecure_http).map(Some)
            })?,
            None => None,
        }
        .ok_or_else(|| {
            self.invalid(
                "url",
                None,
                "missing; add url = \"https://example.atlassian.net\" (the site's base URL)"
                    .to_owned(),
            )
        })?;
        let deployment = self.value("deployment", raw.deployment, None, |s| {
            s.parse::<Deployment>()
                .map(Some)
                .map_err(|e| format!("{e}, or remove it to probe serverInfo"))
        })?;
        let auth = self.value("auth", raw.auth, None, |s| s.parse::<AuthKind>().map(Some))?;
        let email = self.value("email", raw.email, None, |s| {
            let email = s.trim();
            if email.is_empty() {
                Err("empty; give the account's email (the user name on Data Center), or remove the key".to_owned())
            } else {
                Ok(Some(email.to_owned()))
            }
        })?;
        let token_env = self.value("token_env", raw.token_env, None, |s| {
            validate_variable_name(&s).map(|()| Some(s))
        })?;
        let token_cmd = self.value("token_cmd", raw.token_cmd, None, |s| {
            if s.trim().is_empty() {
                Err("empty; give a command that prints the token, or remove the key".to_owned())
            } else {
                Ok(Some(s))
            }
        })?;
        // token_cmd wins over token_env (CONVENTIONS.md).
        let token = match (token_cmd, token_env) {
            (Some(command), _) => TokenSource::Command(command),
            (None, Some(variable)) => TokenSource::Env(variable),
            (None, None) => TokenSource::default(),
        };
        let rate_limit = self.value(
            "rate_limit",
            raw.rate_limit,
            RateLimit::PerSecond(DEFAULT_RATE_LIMIT),
            |v| RateLimit::from_toml(&v),
        )?;
        let burst = self.value("burst", raw.burst, DEFAULT_BURST, |n| {
            u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
                format!("{n} is not a burst; give a whole number ≥ 1 (requests allowed at once above the steady rate)")
            })
        })?;
        let concurrency = self.value("concurrency", raw.concurrency, DEFAULT_CONCURRENCY, |n| {
            usize::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
                format!(
                    "{n} is not a concurrency; give a whole number ≥ 1 (requests in flight at once)"
                )
            })
        })?;
        let timeout =
            self.value(
                "timeout",
                raw.timeout,
                DEFAULT_TIMEOUT,
                |s| match values::parse_duration(&s)? {
                    Duration::ZERO => {
                        Err("a timeout of 0 would fail every request; give e.g. \"30s\"".to_owned())
                    }
                    timeout => Ok(timeout),
                },
            )?;
        let projects = self.value("projects", raw.projects, Vec::new(), |keys| {
            let mut projects: Vec<String> = Vec::with_capacity(keys.len());
            for key in keys {
                values::validate_project_key(&key)?;
                if !projects.contains(&key) {
                    projects.push(key);
                }
            }
            Ok(projects)
        })?;
        let issue_fields = self.value(
            "issue_fields",
            raw.issue_fields,
            DEFAULT_ISSUE_FIELDS.map(str::to_owned).to_vec(),
            |fields| {
                if fields.is_empty() {
                    return Err("empty; list the fields to cache, or remove the key for the default list".to_owned());
                }
                let mut out: Vec<String> = Vec::with_capacity(fields.len());
                for field in fields {
                    if field.is_empty() || field.contains(|c: char| c == ',' || c.is_whitespace()) {
                        return Err(format!(
                            "`{field}` is not a field id; give one id per entry, e.g. \"summary\" or \"customfield_10010\""
                        ));
                    }
                    if !out.contains(&field) {
                        out.push(field);
                    }
                }
                Ok(out)
            },
        )?;
        let max_size =
            self.value(
                "max_size",
                raw.max_size,
                DEFAULT_MAX_SIZE,
                |v| match values::size_from_toml(&v)? {
                    0 => Err("a size cap of 0 would keep nothing; give e.g. \"500MiB\"".to_owned()),
                    size => Ok(size),
                },
            )?;
        let max_response = self.value(
            "max_response",
            raw.max_response,
            super::DEFAULT_MAX_RESPONSE,
            |v| match values::size_from_toml(&v)? {
                0 => Err("a response cap of 0 would read nothing; give e.g. \"64MiB\"".to_owned()),
                size => Ok(size),
            },
        )?;
        let quiet_hours = self.value("quiet_hours", raw.quiet_hours, None, |s| {
            s.parse().map(Some)
        })?;
        let schedule = self.value("schedule", raw.schedule, DEFAULT_SCHEDULE.to_owned(), |s| {
            values::validate_schedule(&s)?;
            Ok(s.split_whitespace().collect::<Vec<_>>().join(" "))
        })?;
        let cache_dir = match raw.cache_dir {
            Some(dir) => self.path("cache_dir", dir)?,
            None => self.env.default_cache_dir().ok_or_else(|| {
                self.invalid(
                    "cache_dir",
                    None,
                    "no default cache directory (neither HOME nor XDG_CACHE_HOME is set); set cache_dir".to_owned(),
                )
            })?,
        };
        let ca_file = match raw.ca_file {
            Some(file) => {
                let span = file.span();
                let path = self.path("ca_file", file)?;
                check_readable_file(&path).map_err(|e| {
                    self.invalid(
                        "ca_file",
                        Some(span),
                        format!(
                            "cannot read {}: {e}; fix the path or remove ca_file",
                            path.display()
                        ),
                    )
                })?;
                Some(path)
            }
            None => None,
        };
        let max_stale = self.duration("max_stale", raw.max_stale, DEFAULT_MAX_STALE)?;
        let serve_listen = self.value("serve_listen", raw.serve_listen, None, |s| {
            s.trim()
                .parse::<std::net::SocketAddr>()
                .map(Some)
                .map_err(|_| "not an address and port; write it like \"127.0.0.1:8765\"".to_owned())
        })?;
        let serve_token_env = self.value("serve_token_env", raw.serve_token_env, None, |s| {
            validate_variable_name(&s).map(|()| Some(s))
        })?;
        let serve_token_cmd = self.value("serve_token_cmd", raw.serve_token_cmd, None, |s| {
            if s.trim().is_empty() {
                Err("empty; give a command that prints the token, or remove the key".to_owned())
            } else {
                Ok(Some(s))
            }
        })?;
        // As for the profile's own token, the command wins over the variable.
        let serve_token = match (serve_token_cmd, serve_token_env) {
            (Some(command), _) => Some(TokenSource::Command(command)),
            (None, Some(variable)) => Some(TokenSource::Env(variable)),
            (None, None) => None,
        };

        // `$JIRA_CACHE_URL` overrides the file's `cache_url`.
        let cache_url = match self.env.get_nonempty("JIRA_CACHE_URL") {
            Some(url) => Some(
                validate_cache_url(url)
                    .map_err(|reason| self.invalid("JIRA_CACHE_URL", None, reason))?,
            ),
            None => self.value("cache_url", raw.cache_url, None, |s| {
                validate_cache_url(&s).map(Some)
            })?,
        };
        let cache_password_env =
            self.value("cache_password_env", raw.cache_password_env, None, |s| {
                validate_variable_name(&s).map(|()| Some(s))
            })?;
        let cache_password_cmd =
            self.value("cache_password_cmd", raw.cache_password_cmd, None, |s| {
                if s.trim().is_empty() {
                    Err(
                        "empty; give a command that prints the password, or remove the key"
                            .to_owned(),
                    )
                } else {
                    Ok(Some(s))
                }
            })?;
        let cache_password = match (cache_password_cmd, cache_password_env) {
            (Some(command), _) => Some(TokenSource::Command(command)),
            (None, Some(variable)) => Some(TokenSource::Env(variable)),
            (None, None) => None,
        };
        let cache_schema = self.value(
            "cache_schema",
            raw.cache_schema,
            DEFAULT_CACHE_SCHEMA.to_owned(),
            |s| {
                crate::cache::PgTarget::new("postgres://check@localhost/check", None, &s, "")
                    .map(|_| s)
            },
        )?;

        let defaults = Ttls::default();
        let ttl = Ttls {
            project: self.duration("ttl.project", raw.ttl.project, defaults.project)?,
            field: self.duration("ttl.field", raw.ttl.field, defaults.field)?,
            user: self.duration("ttl.user", raw.ttl.user, defaults.user)?,
            issue_recent: self.duration(
                "ttl.issue_recent",
                raw.ttl.issue_recent,
                defaults.issue_recent,
            )?,
            issue_old: self.duration("ttl.issue_old", raw.ttl.issue_old, defaults.issue_old)?,
        };

        let defaults = CheckThresholds::default();
        let crit_age_span = raw.check.crit_age.as_ref().map(Spanned::span);
        let crit_expired_span = raw.check.crit_expired.as_ref().map(Spanned::span);
        let check = CheckThresholds {
            warn_age: self.duration("check.warn_age", raw.check.warn_age, defaults.warn_age)?,
            crit_age: self.duration("check.crit_age", raw.check.crit_age, defaults.crit_age)?,
            warn_expired: self.percent(
                "check.warn_expired",
                raw.check.warn_expired,
                defaults.warn_expired,
            )?,
            crit_expired: self.percent(
                "check.crit_expired",
                raw.check.crit_expired,
                defaults.crit_expired,
            )?,
            warn_hit_rate: self.percent(
                "check.warn_hit_rate",
                raw.check.warn_hit_rate,
                defaults.warn_hit_rate,
            )?,
        };
        if check.crit_age < check.warn_age {
            return Err(self.invalid(
                "check.crit_age",
                crit_age_span,
                format!(
                    "{} is below warn_age ({}); critical must not come before warning",
                    humantime::format_duration(check.crit_age),
                    humantime::format_duration(check.warn_age)
                ),
            ));
        }
        if check.crit_expired < check.warn_expired {
            return Err(self.invalid(
                "check.crit_expired",
                crit_expired_span,
                format!(
                    "{}% is below warn_expired ({}%); critical must not come before warning",
                    check.crit_expired * 100.0,
                    check.warn_expired * 100.0
                ),
            ));
        }

        Ok(Profile {
            name: self.profile.to_owned(),
            source: self.origin.clone(),
            url,
            deployment,
            auth,
            email,
            token,
            rate_limit,
            burst,
            concurrency,
            timeout,
            projects,
            issue_fields,
            max_size,
            max_response,
            quiet_hours,
            schedule,
            cache_dir,
            cache_url,
            cache_password,
            cache_schema,
            ca_file,
            allow_insecure_http,
            max_stale,
            serve_listen,
            serve_token,
            ttl,
            check,
            env: self.env.clone(),
        })
    }
}

/// Parses and normalizes a site URL: http(s) only, a host, no credentials,
/// query or fragment, the path kept and ending with `/`. `http://` only for
/// loopback hosts unless `allow_insecure_http`.
fn normalize_url(raw: &str, allow_insecure_http: bool) -> Result<Url, String> {
    let trimmed = raw.trim();
    // A URL with `@` may carry a password: do not repeat it.
    let shown = if trimmed.contains('@') {
        "(value not shown)"
    } else {
        trimmed
    };
    let mut url = Url::parse(trimmed).map_err(|e| {
        format!("`{shown}` is not a URL ({e}); write the site's base URL, e.g. \"https://example.atlassian.net\"")
    })?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http || values::is_loopback(&url) => {}
        "http" => {
            return Err(format!(
                "`{shown}` is http:// to a host that is not loopback, which would send the token in clear text; \
                 use https://, or set allow_insecure_http = true"
            ));
        }
        other => {
            return Err(format!(
                "`{shown}`: scheme `{other}` is not supported; use https://"
            ));
        }
    }
    if url.host().is_none() {
        return Err(format!(
            "`{shown}` has no host; write e.g. \"https://example.atlassian.net\""
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL holds a user name or password; remove it and use email with token_env or token_cmd".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{shown}` has a query or fragment; give only the site's base URL"
        ));
    }
    let path = format!("{}/", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

/// A `token_env` must name a variable. A value that is not a plausible
/// name may be the token itself pasted in the wrong key: it is not quoted.
fn validate_variable_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let plausible = name.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plausible {
        Ok(())
    } else {
        Err("not an environment variable name (value not shown); token_env names the variable that holds \
             the token, e.g. \"JIRA_API_TOKEN\", not the token itself"
            .to_owned())
    }
}

fn check_readable_file(path: &Path) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.is_file() {
        Ok(())
    } else {
        Err(std::io::Error::other("not a regular file"))
    }
}

/// A `cache_url` must be a `postgres://` (or `postgresql://`) URL without a
/// password: the password comes from `cache_password_env`/`_cmd`,
/// `PGPASSWORD` or `~/.pgpass`, never from the file. The value is never
/// repeated in the message (it may hold a password).
fn validate_cache_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
        return Err(
            "not a PostgreSQL URL (value not shown); write it like \"postgres://user@host/db\""
                .to_owned(),
        );
    }
    crate::cache::PgTarget::new(s, None, DEFAULT_CACHE_SCHEMA, "").map(|_| s.to_owned())
}
