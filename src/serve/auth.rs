//! Who may read the cache: it holds what the profile's account may see, so
//! a client must present that account's own credentials (the same
//! `Authorization` header the profile sends to Jira), or the separate
//! `serve_token` (as `Bearer <token>`, or as the password of Basic auth with
//! any user name, for tools that only speak Basic).
//!
//! The check is a layer in front of every route: a request without an
//! accepted credential gets 401 before any cache or site access. Secrets are
//! compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::profile::{Credentials, Secret};

/// The `Authorization` header value of these credentials.
pub(crate) fn header_of(credentials: &Credentials) -> String {
    match credentials {
        Credentials::Basic { email, token } => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{email}:{}", token.expose()).as_bytes())
        ),
        Credentials::Bearer(token) => format!("Bearer {}", token.expose()),
    }
}

/// The credentials `cache_serve` accepts.
pub struct Gate {
    /// The scheme of the profile's own `Authorization` value (`basic ` or
    /// `bearer `; schemes are case-insensitive), and what follows it.
    own_scheme: &'static [u8],
    own: Vec<u8>,
    /// The `serve_token`, if any.
    serve_token: Option<Vec<u8>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field(
                "serve_token",
                &self.serve_token.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// Accepts the profile's credentials and, when given, the serve token.
    pub fn new(own: &Credentials, serve_token: Option<&Secret>) -> Gate {
        let (own_scheme, value): (&'static [u8], _) = match own {
            Credentials::Basic { .. } => (b"basic ", header_of(own)),
            Credentials::Bearer(_) => (b"bearer ", header_of(own)),
        };
        Gate {
            own_scheme,
            own: value.as_bytes()[own_scheme.len()..].to_vec(),
            serve_token: serve_token.map(|t| t.expose().as_bytes().to_vec()),
        }
    }

    /// Whether an `Authorization` header value is accepted.
    pub fn accepts(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(value) = authorization.map(HeaderValue::as_bytes) else {
            return false;
        };
        let mut ok = strip_scheme(value, self.own_scheme).is_some_and(|own| ct_eq(own, &self.own));
        if let Some(token) = &self.serve_token {
            if let Some(bearer) = strip_scheme(value, b"bearer ") {
                ok |= ct_eq(bearer, token);
            }
            if let Some(basic) = strip_scheme(value, b"basic ")
                && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic)
                && let Some(colon) = decoded.iter().position(|b| *b == b':')
            {
                ok |= ct_eq(&decoded[colon + 1..], token);
            }
        }
        ok
    }
}

/// Equality that takes as long whatever the first differing byte.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn strip_scheme<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    (value.len() > scheme.len() && value[..scheme.len()].eq_ignore_ascii_case(scheme))
        .then(|| value[scheme.len()..].trim_ascii())
}

/// The layer: 401 in Jira's shape unless the credentials are accepted.
pub async fn require(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    if gate.accepts(request.headers().get(header::AUTHORIZATION)) {
        return next.run(request).await;
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, super::JSON_TYPE)],
        r#"{"errorMessages":["cache_serve: present the profile's credentials or its serve_token"],"errors":{}}"#,
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"cache_serve\""),
    );
    response
        .headers_mut()
        .insert(super::X_CACHE, HeaderValue::from_static("BYPASS"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn only_the_profiles_credentials_or_the_serve_token_pass() {
        let own = Credentials::Basic {
            email: "bot@example.com".into(),
            token: Secret::new("t0ken"),
        };
        let gate = Gate::new(&own, Some(&Secret::new("serve-secret")));
        assert!(gate.accepts(Some(&header(&header_of(&own)))));
        assert!(gate.accepts(Some(&header("Bearer serve-secret"))));
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:serve-secret");
        assert!(gate.accepts(Some(&header(&format!("Basic {basic}")))));
        assert!(!gate.accepts(None));
        // Schemes are case-insensitive (RFC 9110), the credentials not.
        let lower = header_of(&own).replacen("Basic", "basic", 1);
        assert!(gate.accepts(Some(&header(&lower))));
        assert!(gate.accepts(Some(&header(&format!("BASIC {basic}")))));
        assert!(!gate.accepts(Some(&header(&header_of(&own).to_lowercase()))));
        assert!(!gate.accepts(Some(&header("Bearer t0ken"))));
        assert!(!gate.accepts(Some(&header("Bearer serve-secreT"))));
        let wrong = base64::engine::general_purpose::STANDARD.encode("bot@example.com:other");
        assert!(!gate.accepts(Some(&header(&format!("Basic {wrong}")))));
    }

    #[test]
    fn without_a_serve_token_a_bearer_guess_fails() {
        let gate = Gate::new(&Credentials::Bearer(Secret::new("pat")), None);
        assert!(gate.accepts(Some(&header("Bearer pat"))));
        assert!(gate.accepts(Some(&header("bearer pat"))));
        assert!(!gate.accepts(Some(&header("bearer PAT"))));
        assert!(!gate.accepts(Some(&header("Bearer "))));
        assert!(!gate.accepts(Some(&header("Basic Og=="))));
    }
}
