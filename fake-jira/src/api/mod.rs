//! The REST endpoints, per flavor: which paths exist (`JIRA_API.md`,
//! "Endpoints for the warm stages"), and the pieces every endpoint shares:
//! Jira's error body, query parameters that answer 400 when malformed, and
//! the paging windows that the paging lies bend.

mod issues;
mod lists;
pub(crate) mod paging;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};

use crate::flavor::Flavor;
use crate::server::App;

/// The content type Jira answers JSON with.
pub(crate) const JSON_TYPE: &str = "application/json;charset=UTF-8";

/// All routes of a fake of `app.flavor`, wrapped in the request pipeline.
pub(crate) fn router(app: Arc<App>) -> Router {
    let v = app.flavor.api_base();
    let mut r = Router::new()
        .route("/rest/api/2/serverInfo", get(lists::server_info))
        .route(&format!("{v}/myself"), get(lists::myself))
        .route(&format!("{v}/project"), get(lists::projects))
        .route(&format!("{v}/project/{{key}}"), get(lists::project))
        .route(&format!("{v}/field"), get(lists::fields))
        .route(&format!("{v}/issuetype"), get(lists::issue_types))
        .route(&format!("{v}/priority"), get(lists::priorities))
        .route(&format!("{v}/status"), get(lists::statuses))
        .route(
            &format!("{v}/statuscategory"),
            get(lists::status_categories),
        )
        .route(&format!("{v}/resolution"), get(lists::resolutions))
        .route(
            &format!("{v}/user/assignable/search"),
            get(users::assignable),
        )
        .route(&format!("{v}/user"), get(users::user))
        .route(&format!("{v}/issue/{{key}}"), get(issues::issue));
    r = match app.flavor {
        Flavor::Cloud => r
            .route("/rest/api/3/serverInfo", get(lists::server_info))
            .route("/rest/api/3/project/search", get(lists::project_search))
            .route("/rest/api/3/priority/search", get(lists::priority_search))
            .route(
                "/rest/api/3/resolution/search",
                get(lists::resolution_search),
            )
            .route("/rest/api/3/users/search", get(users::cloud_users))
            .route(
                "/rest/api/3/search/jql",
                get(issues::search_jql_get).post(issues::search_jql_post),
            )
            .route(
                "/rest/api/3/search/approximate-count",
                post(issues::approximate_count),
            )
            .route("/rest/api/3/issue/bulkfetch", post(issues::bulk_fetch))
            .route("/rest/api/3/search", get(issues::gone).post(issues::gone))
            .route("/rest/api/2/search", get(issues::gone).post(issues::gone)),
        Flavor::DataCenter => r
            .route("/rest/api/2/user/search", get(users::dc_users))
            .route(
                "/rest/api/2/search",
                get(issues::search_get).post(issues::search_post),
            ),
    };
    r.fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            crate::pipeline::pipeline,
        ))
        .with_state(app)
}

/// Jira's answer to a path it does not serve.
async fn not_found(uri: Uri) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"message": format!("null for uri: {uri}"), "status-code": 404}),
    )
}

/// A JSON answer with Jira's content type.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    text_response(status, body.to_string())
}

/// A JSON answer with Jira's content type, from JSON text.
fn text_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, JSON_TYPE)], body).into_response()
}

/// An error answer in Jira's shape: `{"errorMessages": [...], "errors": {}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    status: StatusCode,
    messages: Vec<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            messages: vec![message.into()],
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            &json!({"errorMessages": self.messages, "errors": {}}),
        )
    }
}

/// What endpoints return: JSON or a Jira error.
pub(crate) type ApiResult = Result<Response, ApiError>;

/// A 200 with this JSON.
pub(crate) fn ok(body: &Value) -> ApiResult {
    Ok(json_response(StatusCode::OK, body))
}

/// A 200 with `body` serialized: the answer [`ok`] gives for the equivalent
/// `Value` (a slice of values for an array, say), without building it.
pub(crate) fn ok_serialized<T: Serialize + ?Sized>(body: &T) -> ApiResult {
    let mut text = Vec::new();
    crate::json_text::write_value(&mut text, body);
    ok_text(text)
}

/// A 200 with this JSON text (see [`crate::json_text`]).
pub(crate) fn ok_text(text: Vec<u8>) -> ApiResult {
    Ok(text_response(StatusCode::OK, utf8(text)))
}

/// serde_json writes UTF-8 only, so this never has to repair anything.
fn utf8(text: Vec<u8>) -> String {
    String::from_utf8(text).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
