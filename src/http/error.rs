//! HTTP answers for the protocol errors: RFC 6749 JSON for the standard endpoints, the
//! CentralAuth `{errorCode, message}` object for the CentralAuth ones, and an HTML page for
//! errors a browser sees (never a redirect: a bad client or redirect URI must not bounce the
//! user anywhere).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::oauth::error::{CaError, OAuthError};

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
        (
            status,
            axum::Json(json!({"errorCode": self.code, "message": self.message})),
        )
            .into_response()
    }
}

/// An error page shown in the browser (status 400 unless said otherwise); never redirects.
pub struct ErrorPage {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong and what to fix (no secrets).
    pub message: String,
}

impl ErrorPage {
    /// A 400 page.
    pub fn bad_request(message: impl Into<String>) -> ErrorPage {
        ErrorPage {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let body = super::login::page(
            "Login error",
            &format!("<p class=\"error\">{}</p>", super::login::escape(&self.message)),
        );
        (self.status, super::login::html_headers("'none'"), body).into_response()
    }
}
