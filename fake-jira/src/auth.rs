//! Which credentials the fake accepts, and the check every endpoint but
//! `serverInfo` runs: a client must be refused the way Jira refuses it
//! (401 with Jira's error body), or its "credentials refused" path is never
//! exercised.

use crate::flavor::Flavor;

/// The credentials the fake accepts.
///
/// A request passes if it carries `Authorization: Basic` with exactly
/// `basic`, or `Authorization: Bearer` with exactly `bearer`. With both
/// `None` ([`Credentials::any`]) any non-empty Basic or Bearer credential
/// passes; a request without one is still refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Accepted HTTP Basic credential: (email or user name, API token or password).
    pub basic: Option<(String, String)>,
    /// Accepted Bearer token (a Data Center personal access token).
    pub bearer: Option<String>,
}

impl Credentials {
    /// The default of each flavor: Cloud accepts Basic
    /// `bot@example.com:cloud-token-123`; Data Center accepts
    /// `Bearer dc-token-456`.
    pub fn default_for(flavor: Flavor) -> Self {
        match flavor {
            Flavor::Cloud => Credentials::basic("bot@example.com", "cloud-token-123"),
            Flavor::DataCenter => Credentials::bearer("dc-token-456"),
        }
    }

    /// Accepts any non-empty Basic or Bearer credential.
    pub fn any() -> Self {
        Credentials {
            basic: None,
            bearer: None,
        }
    }

    /// Accepts exactly this Basic credential.
    pub fn basic(user: impl Into<String>, token: impl Into<String>) -> Self {
        Credentials {
            basic: Some((user.into(), token.into())),
            bearer: None,
        }
    }

    /// Accepts exactly this Bearer token.
    pub fn bearer(token: impl Into<String>) -> Self {
        Credentials {
            basic: None,
            bearer: Some(token.into()),
        }
    }

    /// Whether an `Authorization` header value passes.
    pub(crate) fn accepts(&self, authorization: Option<&str>) -> bool {
        let Some(header) = authorization.map(str::trim) else {
            return false;
        };
        let any = self.basic.is_none() && self.bearer.is_none();
        if let Some(encoded) = strip_scheme(header, "Basic") {
            let Some((user, token)) = decode_basic(encoded) else {
                return false;
            };
            return match &self.basic {
                Some((u, t)) => *u == user && *t == token,
                None => any && !user.is_empty() && !token.is_empty(),
            };
        }
        if let Some(token) = strip_scheme(header, "Bearer") {
            return match &self.bearer {
                Some(t) => t == token,
                None => any && !token.is_empty(),
            };
        }
        false
    }

    /// What is accepted, in a few words (secrets included: this is a fake),
    /// for start-up notes such as the binary's.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((user, token)) = &self.basic {
            parts.push(format!("basic {user}:{token}"));
        }
        if let Some(token) = &self.bearer {
            parts.push(format!("bearer {token}"));
        }
        if parts.is_empty() {
            "any non-empty basic or bearer credential".to_owned()
        } else {
            parts.join(" or ")
        }
    }
}

/// `"Basic xyz"` → `Some("xyz")`; the scheme name is case-insensitive.
fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, rest) = header.split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// Decodes the base64 `user:secret` of a Basic credential.
fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let bytes = decode_base64(encoded)?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, secret) = text.split_once(':')?;
    Some((user.to_owned(), secret.to_owned()))
}

/// Standard base64 with optional padding; `None` on anything else. Small
/// enough not to warrant a dependency.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // "bot@example.com:cloud-token-123"
    const CLOUD_DEFAULT: &str = "Basic Ym90QGV4YW1wbGUuY29tOmNsb3VkLXRva2VuLTEyMw==";

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_base64("YWI").as_deref(), Some(&b"ab"[..]));
        assert_eq!(decode_base64("YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(decode_base64("Y"), None);
        assert_eq!(decode_base64("Y!=="), None);
    }

    #[test]
    fn cloud_default_accepts_its_basic_credential_only() {
        let creds = Credentials::default_for(Flavor::Cloud);
        assert!(creds.accepts(Some(CLOUD_DEFAULT)));
        assert!(!creds.accepts(Some("Basic Ym90QGV4YW1wbGUuY29tOndyb25n")));
        assert!(!creds.accepts(Some("Bearer cloud-token-123")));
        assert!(!creds.accepts(None));
    }

    #[test]
    fn data_center_default_accepts_its_bearer_token_only() {
        let creds = Credentials::default_for(Flavor::DataCenter);
        assert!(creds.accepts(Some("Bearer dc-token-456")));
        assert!(creds.accepts(Some("bearer dc-token-456")));
        assert!(!creds.accepts(Some("Bearer other")));
        assert!(!creds.accepts(Some(CLOUD_DEFAULT)));
    }

    #[test]
    fn any_accepts_any_non_empty_credential_but_not_none() {
        let creds = Credentials::any();
        assert!(creds.accepts(Some(CLOUD_DEFAULT)));
        assert!(creds.accepts(Some("Bearer x")));
        assert!(!creds.accepts(Some("Bearer ")));
        assert!(!creds.accepts(Some("Digest abc")));
        assert!(!creds.accepts(None));
    }
}
