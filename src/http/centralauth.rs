//! The CentralAuth wire protocol: `POST /api/v1/verify`, `/api/v1/userinfo`, `/api/v1/logout`.
//! `GET /login` is in [`super::login`]; the flows are in [`crate::flow::centralauth`].
//!
//! What the official client does, and what this server therefore accepts:
//! - verify: `multipart/form-data` (or urlencoded) `code`, `redirect_uri` (its callback URL
//!   *without* the `return_to` it added at `/login`, so the comparison is origin + path),
//!   `code_verifier` (a UUID); web apps send HTTP Basic `client_id:secret`, native apps nothing
//!   (their code names the organization) and an empty `code_verifier` when they have none;
//!   Desktop apps add `client_assertion_type` and `client_assertion` (docs/desktop-apps.md).
//! - Tokens (`token_type: Bearer` is added so generic OAuth clients such as the `oauth2`
//!   crate parse the answer): `access_token` and `id_token` are compact JWEs (`dir`, `A256CBC-HS512`) under the
//!   UTF-8 bytes of the client secret — the client decrypts both with `jwtDecrypt` (the ID
//!   token when `unsafeIncludeUser` is on, which expects `user` inside). Payload: `sessionId`,
//!   `iat`, `exp`, and `user` in the ID token. Native tokens are encrypted under the active
//!   secret, since the app's backend decrypts them with the secret it holds.
//! - userinfo/logout: Basic auth, the access token — or, with `unsafeIncludeUser`, the ID
//!   token, which the client then keeps instead — as a `text/plain` body. The server looks the
//!   token up by its SHA-256 (both are recorded at issuance), so a token keeps working across a
//!   secret rotation for as long as its session lives, and logout ends the session for every
//!   replica.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::form::{BasicCredentials, Params, basic};
use super::login::client_addr;
use super::routing::host;
use crate::flow::centralauth::{TokenCall, VerifyRequest};
use crate::flow::desktop::ClientAssertion;
use crate::flow::direct::DirectRequest;
use crate::oauth::error::{CaCode, CaError};

fn missing(message: impl Into<std::borrow::Cow<'static, str>>) -> CaError {
    CaError {
        code: CaCode::MissingFields,
        message: message.into(),
    }
}

/// `POST /api/v1/verify`.
pub async fn verify(State(state): State<AppState>, req: Request) -> Result<Response, CaError> {
    let addr = client_addr(&req);
    let headers = req.headers().clone();
    let creds = basic(&headers).map_err(|_| missing("the Authorization header must be Basic client_id:secret"))?;
    let form = Params::from_request(req).await.map_err(|e| missing(e.to_string()))?;
    let (Some(code), Some(redirect_uri)) = (form.get("code"), form.get("redirect_uri")) else {
        return Err(missing("code and redirect_uri are required"));
    };
    let host = host(&headers);
    let request = VerifyRequest {
        host: host.as_deref(),
        credentials: creds.as_ref().map(|c| (c.client_id.as_str(), c.secret.as_str())),
        client_id: form.get("client_id"),
        code,
        redirect_uri,
        verifier: form.get("code_verifier"),
        assertion: ClientAssertion {
            assertion_type: form.get("client_assertion_type"),
            assertion: form.get("client_assertion"),
        },
        addr,
    };
    Ok(axum::Json(state.ca_verify(request).await?).into_response())
}

/// The Basic credentials, the host, the token of the body and the query of a userinfo or
/// logout call.
struct TokenParts {
    creds: BasicCredentials,
    host: Option<String>,
    token: String,
    query: Option<String>,
    addr: std::net::IpAddr,
}

impl TokenParts {
    async fn of(req: Request) -> Result<TokenParts, CaError> {
        let addr = client_addr(&req);
        let host = host(req.headers());
        let query = req.uri().query().map(String::from);
        let creds = basic(req.headers())
            .ok()
            .flatten()
            .ok_or_else(|| CaError::new(CaCode::NoPermission, "authenticate with HTTP Basic client_id:secret"))?;
        let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        let token = String::from_utf8_lossy(&body).trim().to_string();
        Ok(TokenParts {
            creds,
            host,
            token,
            query,
            addr,
        })
    }

    /// The call to the flow.
    fn call(&self) -> TokenCall<'_> {
        TokenCall {
            host: self.host.as_deref(),
            client_id: &self.creds.client_id,
            secret: &self.creds.secret,
            token: &self.token,
            addr: self.addr,
        }
    }
}

/// `POST /api/v1/userinfo?domain=<origin>`.
pub async fn userinfo(State(state): State<AppState>, req: Request) -> Result<Response, CaError> {
    let parts = TokenParts::of(req).await?;
    let (org, session) = state.ca_token_session(parts.call()).await?;
    let params = Params::from_urlencoded(parts.query.as_deref().unwrap_or_default().as_bytes())
        .map_err(|e| missing(e.to_string()))?;
    let user = state.ca_user(&org, &session, params.get("domain"))?;
    Ok(axum::Json(user).into_response())
}

/// `POST /api/v1/logout`: ends the token's session everywhere.
pub async fn logout(State(state): State<AppState>, req: Request) -> Result<Response, CaError> {
    let parts = TokenParts::of(req).await?;
    state.ca_logout(parts.call()).await?;
    Ok(axum::Json(json!({"success": true})).into_response())
}

/// The JSON body of `authenticate_direct`. `translations` is the official client's object, or
/// the base64 JSON of `/login`.
#[derive(serde::Deserialize)]
struct DirectBody {
    email: Option<String>,
    state: Option<String>,
    redirect_uri: Option<String>,
    #[serde(default)]
    translations: Option<serde_json::Value>,
}

/// `POST /api/v1/authenticate_direct` ([`crate::flow::direct`]).
pub async fn authenticate_direct(State(state): State<AppState>, req: Request) -> Result<Response, CaError> {
    let addr = client_addr(&req);
    let headers = req.headers().clone();
    let creds = basic(&headers)
        .ok()
        .flatten()
        .ok_or_else(|| CaError::new(CaCode::NoPermission, "authenticate with HTTP Basic client_id:secret"))?;
    let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|_| missing("the body must be JSON of at most 64 KiB"))?;
    let body: DirectBody = serde_json::from_slice(&bytes).map_err(|e| {
        missing(format!(
            "the body must be JSON {{email, state, redirect_uri, translations}}: {e}"
        ))
    })?;
    let (Some(email), Some(redirect_uri)) = (body.email.as_deref(), body.redirect_uri.as_deref()) else {
        return Err(missing("email and redirect_uri are required"));
    };
    let host = host(&headers);
    let request = DirectRequest {
        host: host.as_deref(),
        client_id: &creds.client_id,
        secret: &creds.secret,
        addr,
        email,
        state: body.state.as_deref(),
        redirect_uri,
        translations: translations(body.translations),
    };
    Ok(axum::Json(state.authenticate_direct(request).await?).into_response())
}

/// The strings of a translations object (or of its base64 JSON), each at most 500 characters.
fn translations(value: Option<serde_json::Value>) -> std::collections::BTreeMap<String, String> {
    match value {
        Some(serde_json::Value::String(b64)) => crate::flow::authorize::decode_translations(&b64),
        Some(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.chars().take(500).collect())))
            .collect(),
        _ => Default::default(),
    }
}
