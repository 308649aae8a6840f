//! The standard endpoints: OAuth 2.1 + OIDC discovery, authorize, token, revoke (RFC 7009),
//! introspect (RFC 7662), userinfo and JWKS.
//!
//! Clients: the organization's client ID is one confidential client (its ClientSecrets);
//! its native apps are public clients of the same client ID, recognised at `/oauth2/authorize`
//! by a redirect URI equal to a NativeApp's `status.redirectUri`, and at `/oauth2/token` by
//! sending no secret. A request without a secret is a public client's: it may redeem codes
//! and refresh tokens issued to a native app, never use `client_credentials`.
//! Client authentication: `client_secret_basic` or `client_secret_post` (exactly one); a
//! secret in the query string, or Basic plus body credentials, is `invalid_request`. Desktop
//! apps add `private_key_jwt`-style `client_assertion` at the code exchange (and nowhere else).

use std::sync::Arc;

use axum::extract::{RawPathParams, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::form::{Params, basic};
use super::html::ErrorPage;
use super::login::client_addr;
use super::routing::host;
use crate::crd::Organization;
use crate::flow::authorize::Arrival;
use crate::flow::desktop::ClientAssertion;
use crate::flow::token::{Caller, Presented, SCOPES};
use crate::oauth::error::OAuthError;
use crate::oauth::grant::Protocol;

/// The organization of a standard endpoint: its own host, or `/o/<clientId>` on the base domain.
fn std_org(state: &AppState, headers: &HeaderMap, params: &RawPathParams) -> Option<Arc<Organization>> {
    let cid = params.iter().find(|(k, _)| *k == "cid").map(|(_, v)| v);
    state.standard_org(host(headers).as_deref(), cid)
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not_found", "error_description": "no organization is served at this address"})),
    )
        .into_response()
}

/// `GET /.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`.
pub async fn discovery(State(state): State<AppState>, headers: HeaderMap, params: RawPathParams) -> Response {
    let Some(org) = std_org(&state, &headers, &params) else {
        return not_found();
    };
    let iss = state.issuer(&org);
    axum::Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth2/authorize"),
        "token_endpoint": format!("{iss}/oauth2/token"),
        "revocation_endpoint": format!("{iss}/oauth2/revoke"),
        "introspection_endpoint": format!("{iss}/oauth2/introspect"),
        "userinfo_endpoint": format!("{iss}/oauth2/userinfo"),
        "jwks_uri": format!("{iss}/oauth2/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": crate::oauth::desktop::ALGORITHMS,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": SCOPES,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "email", "email_verified"],
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

/// `GET /oauth2/jwks`: public keys only.
pub async fn jwks(State(state): State<AppState>, headers: HeaderMap, params: RawPathParams) -> Response {
    if std_org(&state, &headers, &params).is_none() {
        return not_found();
    }
    axum::Json(state.keys.get().jwks()).into_response()
}

/// `GET /oauth2/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    addr: super::ClientAddr,
    headers: HeaderMap,
    params: RawPathParams,
    RawQuery(query): RawQuery,
) -> Response {
    let p = match Params::from_urlencoded(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return ErrorPage::bad_request(e.to_string()).into_response(),
    };
    let host = host(&headers);
    let at = Arrival {
        host: host.as_deref(),
        path_client_id: params.iter().find(|(k, _)| *k == "cid").map(|(_, v)| v),
        addr: addr.0,
    };
    super::login::authorize(&state, &headers, Protocol::OAuth, at, &p).await
}

/// Reads the client credentials (see the module documentation) and authenticates the caller.
async fn caller(
    state: &AppState,
    org: &Organization,
    req: &RequestParts,
    require_secret: bool,
) -> Result<Caller, OAuthError> {
    if req.query.as_deref().is_some_and(|q| q.contains("client_secret")) {
        return Err(OAuthError::request(
            "client_secret must not be sent in the query string",
        ));
    }
    let basic = basic(&req.headers).map_err(|_| OAuthError::request("malformed Authorization header"))?;
    let (body_id, body_secret) = (req.form.get("client_id"), req.form.get("client_secret"));
    let assertion = req.form.get("client_assertion").is_some() || req.form.get("client_assertion_type").is_some();
    if assertion && (basic.is_some() || body_secret.is_some()) {
        return Err(OAuthError::request(
            "use exactly one client authentication method: a client secret or a client_assertion (Desktop apps), not both",
        ));
    }
    if assertion && req.form.get("grant_type") != Some("authorization_code") {
        return Err(OAuthError::request(
            "client_assertion is only accepted at the authorization_code exchange of Desktop apps",
        ));
    }
    let presented = match &basic {
        Some(_) if body_secret.is_some() => {
            return Err(OAuthError::request(
                "use exactly one client authentication method: Basic or body, not both",
            ));
        }
        Some(b) if body_id.is_some_and(|id| id != b.client_id) => {
            return Err(OAuthError::request(
                "client_id in the body differs from the Basic credentials",
            ));
        }
        Some(b) => Presented {
            client_id: b.client_id.clone(),
            secret: Some(&b.secret),
            addr: req.addr,
        },
        // No client authentication at all (RFC 6749 §5.2).
        None => Presented {
            client_id: body_id.ok_or(OAuthError::InvalidClient)?.to_string(),
            secret: body_secret,
            addr: req.addr,
        },
    };
    Ok(state.caller(org, presented, require_secret).await?)
}

/// The parts of a POST request the token-style endpoints need.
struct RequestParts {
    headers: HeaderMap,
    query: Option<String>,
    form: Params,
    addr: std::net::IpAddr,
}

async fn parts(req: Request) -> Result<RequestParts, OAuthError> {
    let addr = client_addr(&req);
    let query = req.uri().query().map(String::from);
    // The headers move out (no copy on the hot path); the body reader needs only the type.
    let (mut head, body) = req.into_parts();
    let headers = std::mem::take(&mut head.headers);
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        head.headers.insert(header::CONTENT_TYPE, content_type.clone());
    }
    let form = Params::from_request(Request::from_parts(head, body))
        .await
        .map_err(|e| OAuthError::InvalidRequest(e.to_string().into()))?;
    Ok(RequestParts {
        headers,
        query,
        form,
        addr,
    })
}

/// `POST /oauth2/token`.
pub async fn token(State(state): State<AppState>, params: RawPathParams, req: Request) -> Result<Response, OAuthError> {
    let org = std_org(&state, req.headers(), &params).ok_or(OAuthError::InvalidClient)?;
    let rp = parts(req).await?;
    let form = &rp.form;
    let json = match form.get("grant_type") {
        Some("authorization_code") => {
            let c = caller(&state, &org, &rp, false).await?;
            let (Some(code), Some(redirect_uri)) = (form.get("code"), form.get("redirect_uri")) else {
                return Err(OAuthError::request("code and redirect_uri are required"));
            };
            let verifier = form.get("code_verifier");
            let assertion = ClientAssertion {
                assertion_type: form.get("client_assertion_type"),
                assertion: form.get("client_assertion"),
            };
            token_json(
                &state
                    .exchange_code(&org, &c, code, redirect_uri, verifier, assertion)
                    .await?,
            )
        }
        Some("refresh_token") => {
            let c = caller(&state, &org, &rp, false).await?;
            let token = form
                .get("refresh_token")
                .ok_or_else(|| OAuthError::request("refresh_token is required"))?;
            token_json(&state.refresh(&org, &c, token, rp.addr).await?)
        }
        Some("client_credentials") => {
            let c = caller(&state, &org, &rp, false).await?;
            token_json(&state.client_credentials(&org, &c, form.get("scope"))?)
        }
        Some(_) => return Err(OAuthError::UnsupportedGrantType),
        None => return Err(OAuthError::request("grant_type is required")),
    };
    Ok(json)
}

/// A token answer as JSON, serialised into one buffer sized for signed tokens (axum's `Json`
/// starts at 128 bytes and grows it three times for a `client_credentials` answer).
fn token_json(body: &impl serde::Serialize) -> Response {
    let mut buf = Vec::with_capacity(2048);
    match serde_json::to_writer(&mut buf, body) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], buf).into_response(),
        Err(_) => OAuthError::ServerError.into_response(),
    }
}

/// `POST /oauth2/introspect` (confidential clients only).
pub async fn introspect(
    State(state): State<AppState>,
    params: RawPathParams,
    req: Request,
) -> Result<Response, OAuthError> {
    let org = std_org(&state, req.headers(), &params).ok_or(OAuthError::InvalidClient)?;
    let rp = parts(req).await?;
    let c = caller(&state, &org, &rp, true).await?;
    let token = rp
        .form
        .get("token")
        .ok_or_else(|| OAuthError::request("token is required"))?;
    Ok(axum::Json(state.introspect(&org, &c, token).await?).into_response())
}

/// `POST /oauth2/revoke` (RFC 7009): the client authenticates (a confidential client with
/// its secret; a request without one is a public client's), and only tokens issued to it are
/// revoked. The answer is 200 whether or not the token was known or the client's, so it says
/// nothing about other clients' tokens.
pub async fn revoke(
    State(state): State<AppState>,
    params: RawPathParams,
    req: Request,
) -> Result<Response, OAuthError> {
    let org = std_org(&state, req.headers(), &params).ok_or(OAuthError::InvalidClient)?;
    let rp = parts(req).await?;
    let c = caller(&state, &org, &rp, false).await?;
    let token = rp
        .form
        .get("token")
        .ok_or_else(|| OAuthError::request("token is required"))?;
    state.revoke(&org, &c, token).await?;
    Ok(StatusCode::OK.into_response())
}

/// `GET|POST /oauth2/userinfo` with a Bearer access token.
pub async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: RawPathParams,
) -> Result<Response, OAuthError> {
    let org = std_org(&state, &headers, &params).ok_or(OAuthError::InvalidToken)?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(OAuthError::InvalidToken)?;
    Ok(axum::Json(state.oidc_userinfo(&org, token).await?).into_response())
}
