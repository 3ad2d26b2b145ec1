//! What happens to every request before and after its endpoint, in one
//! place and in a fixed order: record it, apply the rate limit, apply the
//! faults, wait out the latency, check the credentials (all but
//! `serverInfo`, which Jira answers anonymously unless the fake plays a
//! site behind SSO), refuse forbidden projects' resources with 403, run
//! the endpoint, then record the status sent.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};

use crate::api::ApiError;
use crate::faults::FaultKind;
use crate::rate_limit::Admission;
use crate::record::RecordedRequest;
use crate::server::{App, ConnectionKill};

/// Bodies larger than this are refused with 413.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The `from_fn` middleware wrapped around every route.
pub(crate) async fn pipeline(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let at = app.clock.now();
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, MAX_BODY).await;
    app.validate(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or_default(),
        bytes.as_ref().map_or(&[][..], |b| &b[..]),
    );
    let serial = app.log.push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        body: match &bytes {
            Ok(b) if !b.is_empty() => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        },
        authorization: parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        at,
        status: 0,
    });
    let response = match bytes {
        Ok(bytes) => {
            let body = bytes.clone();
            answer(
                &app,
                Request::from_parts(parts, Body::from(bytes)),
                &body,
                next,
                at,
            )
            .await
        }
        Err(_) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large.",
        )
        .into_response(),
    };
    app.log.set_status(serial, response.status().as_u16());
    response
}

async fn answer(app: &App, mut req: Request, body: &Bytes, next: Next, at: Instant) -> Response {
    let admission = app
        .limiter
        .as_ref()
        .map(|l| l.lock().unwrap_or_else(PoisonError::into_inner).admit(at));
    if let Some(Admission::Limited { wait }) = admission {
        pause(app.latency).await;
        return too_many_requests(app, wait);
    }

    let path = req.uri().path().to_owned();
    let verdict = app.faults.judge(
        req.method().as_str(),
        &path,
        req.uri().query().unwrap_or_default(),
    );
    pause(app.latency + verdict.delay).await;
    for gate in &verdict.holds {
        gate.pass().await;
    }
    match verdict.answer {
        Some(FaultKind::Status {
            code,
            retry_after,
            body,
        }) => return status_fault(code, retry_after, body),
        Some(FaultKind::HtmlLogin) => return html_login(),
        Some(FaultKind::Redirect { origin }) => {
            let target = match req.uri().path_and_query() {
                Some(pq) => format!("{origin}{pq}"),
                None => format!("{origin}{path}"),
            };
            return redirect(&target);
        }
        Some(FaultKind::Reset) => {
            if let Some(kill) = req.extensions().get::<ConnectionKill>() {
                kill.fire();
            }
            std::future::pending::<()>().await;
        }
        Some(FaultKind::Hang) => std::future::pending::<()>().await,
        _ => {}
    }

    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let anonymous_ok = path.ends_with("/serverInfo") && !app.server_info_needs_auth;
    if !anonymous_ok && !app.credentials.accepts(authorization) {
        return unauthorized(authorization.is_some());
    }
    let query = req.uri().query().unwrap_or_default();
    if let Some(project) = app.forbidden.reached(&app.site, &path, query, body) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!("You do not have the permission to see the specified project '{project}'."),
        )
        .into_response();
    }

    for key in &verdict.updates {
        app.site.touch_issue(key);
    }
    req.extensions_mut().insert(verdict.lies);
    let mut response = next.run(req).await;
    if let (Some(Admission::Allowed { remaining }), Some(limiter), true) =
        (admission, &app.limiter, app.atlassian_headers)
    {
        let limit = limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .limit();
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", limit.into());
        headers.insert("x-ratelimit-remaining", remaining.into());
        if f64::from(remaining) < 0.2 * f64::from(limit) {
            headers.insert("x-ratelimit-nearlimit", HeaderValue::from_static("true"));
        }
    }
    if verdict.truncate {
        response = truncate(response).await;
    }
    response
}

/// Waits `d`, to within a tenth of a millisecond.
///
/// tokio's timer fires on whole milliseconds, after the deadline: a
/// `sleep(20 ms)` took 21.3 ms on average here, so every answer of a site
/// set to 20 ms came 6% late, and `bench_warm`'s ratio to the network
/// floor (requests × latency / concurrency) counted the fake's lateness as
/// the client's. The timer now sleeps to 2 ms short of the deadline, and
/// a blocking thread sleeps the rest.
async fn pause(d: Duration) {
    if d.is_zero() {
        return;
    }
    let deadline = tokio::time::Instant::now() + d;
    if let Some(coarse) = d.checked_sub(PRECISE_TAIL) {
        tokio::time::sleep(coarse).await;
    }
    let rest = deadline.saturating_duration_since(tokio::time::Instant::now());
    if !rest.is_zero() {
        // Should the blocking pool be gone (the runtime shutting down), the
        // answer is just not sent; nothing waits on it.
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// The part of a latency slept on a blocking thread rather than tokio's
/// millisecond timer.
const PRECISE_TAIL: Duration = Duration::from_millis(2);

fn too_many_requests(app: &App, wait: Duration) -> Response {
    let seconds = app
        .retry_after
        .unwrap_or_else(|| wait.as_secs_f64().ceil().max(1.0) as u64);
    let mut response =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded.").into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, seconds.into());
    if !app.atlassian_headers {
        return response;
    }
    let reset = Utc::now() + wait;
    let limit = app.limiter.as_ref().map_or(0, |l| {
        l.lock().unwrap_or_else(PoisonError::into_inner).limit()
    });
    headers.insert("x-ratelimit-limit", limit.into());
    headers.insert("x-ratelimit-remaining", 0.into());
    headers.insert("x-ratelimit-nearlimit", HeaderValue::from_static("true"));
    if let Ok(v) = HeaderValue::from_str(&reset.to_rfc3339_opts(SecondsFormat::Millis, true)) {
        headers.insert("x-ratelimit-reset", v);
    }
    headers.insert(
        "ratelimit-reason",
        HeaderValue::from_static("jira-burst-based"),
    );
    headers.insert("beta-retry-after", seconds.into());
    response
}

fn status_fault(code: u16, retry_after: Option<String>, body: Option<String>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match body {
        Some(body) => (
            status,
            [(header::CONTENT_TYPE, crate::api::JSON_TYPE)],
            body,
        )
            .into_response(),
        None => ApiError::new(status, default_message(status)).into_response(),
    };
    if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn default_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => NOT_AUTHENTICATED,
        403 => "You do not have permission to perform this operation.",
        404 => "The requested resource could not be found.",
        429 => "Rate limit exceeded.",
        503 => "Service unavailable. Please try again later.",
        _ => "Internal server error.",
    }
}

const NOT_AUTHENTICATED: &str =
    "You are not authenticated. Authentication required to perform this operation.";

fn unauthorized(had_credentials: bool) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, NOT_AUTHENTICATED).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"protected-area\""),
    );
    if had_credentials {
        headers.insert(
            "x-seraph-loginreason",
            HeaderValue::from_static("AUTHENTICATED_FAILED"),
        );
    }
    response
}

fn redirect(location: &str) -> Response {
    let mut response = (StatusCode::FOUND, "").into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

fn html_login() -> Response {
    const PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
        <title>Log in with Atlassian account</title></head>\n<body>\
        <form id=\"form-login\" action=\"/login\" method=\"post\">\
        <input name=\"username\" type=\"email\"><input name=\"password\" type=\"password\">\
        <button type=\"submit\">Log in</button></form></body></html>\n";
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
        PAGE,
    )
        .into_response()
}

/// The endpoint's answer with its body cut in half (mid-JSON), and a
/// `Content-Length` that matches the cut body.
async fn truncate(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let cut = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, cut.len().into());
    Response::from_parts(parts, Body::from(cut))
}
