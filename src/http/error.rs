//! HTTP answers for the protocol errors: RFC 6749 JSON for the standard endpoints, the
//! CentralAuth `{errorCode, message}` object for the CentralAuth ones — every answer under
//! `/api/`, also for unknown paths (404) and methods (405), because the official client parses
//! every error body as JSON. Errors a browser sees are HTML pages ([`super::html::ErrorPage`]).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::oauth::error::{CaCode, CaError, OAuthError};

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = json!({"error": self.code(), "error_description": self.to_string()});
        let mut resp = (status, axum::Json(body)).into_response();
        if matches!(self, OAuthError::InvalidClient) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"centralauth\""),
            );
        }
        if matches!(self, OAuthError::InvalidToken) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        if matches!(self, OAuthError::SlowDown) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        resp
    }
}

impl IntoResponse for CaError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST);
        ca_json(status, self.code, &self.message)
    }
}

fn ca_json(status: StatusCode, code: CaCode, message: &str) -> Response {
    (status, axum::Json(json!({"errorCode": code, "message": message}))).into_response()
}

/// A path under `/api/` that does not exist: 404 `entityMissing`.
pub async fn api_not_found() -> Response {
    let message = "no such endpoint: the CentralAuth API has POST /api/v1/verify, /api/v1/userinfo and /api/v1/logout";
    ca_json(StatusCode::NOT_FOUND, CaCode::EntityMissing, message)
}

/// A CentralAuth endpoint called with another method than POST: 405 with `Allow: POST`.
pub async fn api_method_not_allowed() -> Response {
    let mut resp = ca_json(
        StatusCode::METHOD_NOT_ALLOWED,
        CaCode::GenericError,
        "this endpoint only answers POST",
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    resp
}

/// Turns any error under `/api/` that is not JSON yet (an extractor's rejection, a body too
/// large) into a CentralAuth error with the same status.
pub async fn api_errors(resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let status = resp.status();
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let code = match status {
        StatusCode::NOT_FOUND => CaCode::EntityMissing,
        StatusCode::TOO_MANY_REQUESTS => CaCode::TooManyRequests,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => CaCode::NoPermission,
        s if s.is_server_error() => CaCode::GenericError,
        _ => CaCode::MissingFields,
    };
    ca_json(status, code, status.canonical_reason().unwrap_or("error"))
}
