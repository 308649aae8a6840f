//! The CentralAuth wire protocol: `POST /api/v1/verify`, `/api/v1/userinfo`, `/api/v1/logout`.
//! `GET /login` is in [`super::login`].
//!
//! What the official client does, and what this server therefore accepts:
//! - verify: `multipart/form-data` (or urlencoded) `code`, `redirect_uri` (its callback URL
//!   *without* the `return_to` it added at `/login`, so the comparison is origin + path),
//!   `code_verifier` (a UUID); web apps send HTTP Basic `client_id:secret`, native apps nothing
//!   (their code names the organization) and an empty `code_verifier` when they have none.
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

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::clients::AuthFailure;
use super::form::{BasicCredentials, Params, basic};
use super::login::client_addr;
use super::routing::{Site, host, org_key};
use crate::crd::Organization;
use crate::oauth::error::{CaCode, CaError};
use crate::oauth::grant::{self, GrantError, OrgKey, Protocol, Session};
use crate::oauth::{jwe, pkce, redirect, tokens};
use crate::store::{hashed, json};

/// What a CentralAuth access token stands for, stored under its SHA-256.
#[derive(Serialize, Deserialize)]
struct TokenRecord {
    org: OrgKey,
    session_id: String,
}

fn ca(code: CaCode, message: &'static str) -> CaError {
    CaError::new(code, message)
}

fn auth_error(f: AuthFailure) -> CaError {
    match f {
        AuthFailure::Invalid => ca(
            CaCode::NoPermission,
            "client authentication failed: check the client ID and secret",
        ),
        AuthFailure::Busy => ca(
            CaCode::TooManyRequests,
            "too many client authentications are waiting to be verified; retry in a moment",
        ),
    }
}

/// The secret of a web client that authenticated with HTTP Basic; `None` for a native app,
/// which sends no credentials.
async fn web_client_secret(
    state: &AppState,
    creds: Option<&BasicCredentials>,
    site_org: Option<&Organization>,
    addr: std::net::IpAddr,
) -> Result<Option<String>, CaError> {
    let Some(c) = creds else { return Ok(None) };
    state
        .authenticate_client(site_org, &c.client_id, &c.secret, addr)
        .await
        .map_err(auth_error)?;
    Ok(Some(c.secret.clone()))
}

fn redeem_error(e: GrantError) -> CaError {
    match e {
        GrantError::Store(_) => ca(CaCode::GenericError, "the session store is unavailable; retry later"),
        _ => ca(CaCode::SessionInvalid, "the code is invalid, expired or already used"),
    }
}

/// What a `POST /api/v1/verify` presents for a redeemed code.
struct Exchange<'a> {
    /// The organization the request's host or client ID names, if any.
    site_org: Option<OrgKey>,
    /// Whether the caller authenticated as a web client (HTTP Basic).
    authenticated: bool,
    /// The `redirect_uri` sent.
    redirect_uri: &'a str,
    /// The `code_verifier` sent.
    verifier: Option<&'a str>,
}

impl Exchange<'_> {
    /// Whether the redeemed code `g` may be exchanged by this request: a CentralAuth code of
    /// the organization the request is for; from a web client only with authentication; for
    /// the same callback (origin and path: the client adds `return_to` at `/login` only); and
    /// with the verifier of its challenge (the official client's 36-character UUID allowed).
    fn check(&self, g: &grant::CodeGrant) -> Result<(), CaError> {
        if g.protocol != Protocol::CentralAuth || self.site_org.as_ref().is_some_and(|o| *o != g.org) {
            return Err(ca(
                CaCode::SessionInvalid,
                "the code is invalid, expired or already used",
            ));
        }
        if !self.authenticated && g.app_id.is_none() {
            return Err(ca(
                CaCode::NoPermission,
                "this code was issued to a web client: authenticate with HTTP Basic client_id:secret",
            ));
        }
        let same_target = match (redirect::parse(self.redirect_uri), redirect::parse(&g.redirect_uri)) {
            (Ok(a), Ok(b)) => a.without_query() == b.without_query(),
            _ => false,
        };
        if !same_target {
            return Err(ca(
                CaCode::CallbackUrlInvalid,
                "redirect_uri does not match the one of the login request",
            ));
        }
        pkce::verify(
            g.code_challenge.as_deref(),
            self.verifier,
            pkce::VerifierRules::CentralAuth,
        )
        .map_err(|e| CaError {
            code: CaCode::CodeChallengeInvalid,
            message: e.to_string().into(),
        })
    }
}

/// `POST /api/v1/verify`.
pub async fn verify(State(state): State<AppState>, req: Request) -> Result<Response, CaError> {
    let addr = client_addr(&req);
    let headers = req.headers().clone();
    let creds = basic(&headers).map_err(|_| {
        ca(
            CaCode::MissingFields,
            "the Authorization header must be Basic client_id:secret",
        )
    })?;
    let form = Params::from_request(req).await.map_err(|e| CaError {
        code: CaCode::MissingFields,
        message: e.to_string().into(),
    })?;
    let (Some(code), Some(redirect_uri)) = (form.get("code"), form.get("redirect_uri")) else {
        return Err(ca(CaCode::MissingFields, "code and redirect_uri are required"));
    };
    let site_org = request_org(
        &state,
        &headers,
        creds.as_ref().map(|c| c.client_id.as_str()).or(form.get("client_id")),
    )?;
    let authenticated = web_client_secret(&state, creds.as_ref(), site_org.as_deref(), addr).await?;
    let now = crate::oauth::now();
    let g = grant::redeem_code(state.store.as_ref(), code, now)
        .await
        .map_err(redeem_error)?;
    let org = state
        .org_by_key(&g.org)
        .ok_or_else(|| ca(CaCode::SessionInvalid, "the code is invalid, expired or already used"))?;
    let exchange = Exchange {
        site_org: site_org.as_ref().map(|o| org_key(o)),
        authenticated: authenticated.is_some(),
        redirect_uri,
        verifier: form.get("code_verifier"),
    };
    exchange.check(&g)?;
    let session = grant::use_session(state.store.as_ref(), &g.session_id, org.max_inactivity(), now)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| ca(CaCode::SessionInvalid, "the login session has ended"))?;
    let key = match authenticated {
        Some(secret) => secret,
        None => active_secret_plaintext(&state, &org).ok_or_else(|| {
            ca(
                CaCode::GenericError,
                "the organization has no active client secret that the server can read; activate one",
            )
        })?,
    };
    mint(&state, &org, &session, key.as_bytes(), now).await
}

/// The organization a CentralAuth API request is for: its own host, else the client ID on the
/// base domain (`None` when neither names one: native verify finds it through the code).
fn request_org(
    state: &AppState,
    headers: &HeaderMap,
    client_id: Option<&str>,
) -> Result<Option<Arc<Organization>>, CaError> {
    match host(headers).and_then(|h| state.site(&h)) {
        Some(Site::Own(org)) => Ok(Some(org)),
        Some(Site::Base) => Ok(client_id.and_then(|c| state.org_by_client_id(c))),
        None => Err(ca(CaCode::NoPermission, "this host is not served here")),
    }
}

/// Plaintext of the organization's active client secret, from its watched Secret.
fn active_secret_plaintext(state: &AppState, org: &Organization) -> Option<String> {
    let active = org.active_secret()?;
    let cs = state
        .client_secrets_of(org)
        .into_iter()
        .find(|cs| cs.metadata.name.as_deref() == Some(active.name.as_str()) && cs.authenticates_for(org))?;
    state.secret_plaintext(org, &cs)
}

async fn mint(
    state: &AppState,
    org: &Organization,
    session: &Session,
    key: &[u8],
    now: i64,
) -> Result<Response, CaError> {
    let expires_at = session.expires_at;
    let user = tokens::centralauth_user(session, org.client_id().unwrap_or_default());
    let access = json!({"sessionId": session.id, "iat": now, "exp": expires_at});
    let id = json!({"sessionId": session.id, "user": user, "iat": now, "exp": expires_at});
    let encrypt = |v: &serde_json::Value| {
        jwe::encrypt(key, v.to_string().as_bytes()).map_err(|e| CaError {
            code: CaCode::GenericError,
            message: e.to_string().into(),
        })
    };
    let (access_token, id_token) = (encrypt(&access)?, encrypt(&id)?);
    let record = TokenRecord {
        org: session.org.clone(),
        session_id: session.id.clone(),
    };
    let ttl = Duration::from_secs((expires_at - now).max(1) as u64);
    // Both tokens stand for the session: the official client keeps the ID token instead of the
    // access token with `unsafeIncludeUser`, and sends that one to userinfo and logout.
    for token in [&access_token, &id_token] {
        json::put(
            state.store.as_ref(),
            &format!("catoken:{}", hashed(token)),
            &record,
            ttl,
        )
        .await
        .map_err(|_| ca(CaCode::GenericError, "the session store is unavailable; retry later"))?;
    }
    tracing::info!(org = %session.org.name, "CentralAuth code redeemed");
    Ok(axum::Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "id_token": id_token,
        "expires_in": expires_at - now,
        "expires_at": tokens::rfc3339(expires_at),
    }))
    .into_response())
}

/// Authenticates a userinfo/logout call and finds the session its token stands for.
async fn token_session(
    state: &AppState,
    req: Request,
) -> Result<(Arc<Organization>, Session, Option<String>), CaError> {
    let addr = client_addr(&req);
    let headers = req.headers().clone();
    let query = req.uri().query().map(String::from);
    let creds: BasicCredentials = basic(&headers)
        .ok()
        .flatten()
        .ok_or_else(|| ca(CaCode::NoPermission, "authenticate with HTTP Basic client_id:secret"))?;
    let org = request_org(state, &headers, Some(&creds.client_id))?;
    state
        .authenticate_client(org.as_deref(), &creds.client_id, &creds.secret, addr)
        .await
        .map_err(auth_error)?;
    let org = org.ok_or_else(|| auth_error(AuthFailure::Invalid))?;
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let token = String::from_utf8_lossy(&body).trim().to_string();
    if token.is_empty() {
        return Err(ca(CaCode::MissingFields, "send the access token as the request body"));
    }
    let record: TokenRecord = json::get(state.store.as_ref(), &format!("catoken:{}", hashed(&token)))
        .await
        .ok()
        .flatten()
        .ok_or_else(|| ca(CaCode::TokenInvalid, "the token is invalid or expired"))?;
    if record.org != org_key(&org) {
        return Err(ca(CaCode::TokenInvalid, "the token is invalid or expired"));
    }
    let idle = org.max_inactivity();
    let session = grant::use_session(state.store.as_ref(), &record.session_id, idle, crate::oauth::now())
        .await
        .ok()
        .flatten()
        .ok_or_else(|| ca(CaCode::SessionInvalid, "the session has ended; log in again"))?;
    Ok((org, session, query))
}

/// `POST /api/v1/userinfo?domain=<origin>`.
pub async fn userinfo(State(state): State<AppState>, req: Request) -> Result<Response, CaError> {
    let (org, session, query) = token_session(&state, req).await?;
    let params = Params::from_urlencoded(query.unwrap_or_default().as_bytes()).map_err(|e| CaError {
        code: CaCode::MissingFields,
        message: e.to_string().into(),
    })?;
    if let Some(domain) = params.get("domain") {
        let allowed = crate::origin::origin_allowed(domain, &org.spec.allowed_origins)
            || state
                .native_apps_of(&org)
                .iter()
                .any(|a| redirect::parse(&a.spec.app_link).is_ok_and(|l| l.origin() == domain));
        if !allowed {
            return Err(ca(
                CaCode::DomainInvalid,
                "domain is not one of the organization's allowedOrigins",
            ));
        }
    }
    Ok(axum::Json(tokens::centralauth_user(&session, org.client_id().unwrap_or_default())).into_response())
}

/// `POST /api/v1/logout`: ends the token's session everywhere.
pub async fn logout(State(state): State<AppState>, req: Request) -> Result<Response, CaError> {
    let (_, session, _) = token_session(&state, req).await?;
    grant::end_session(state.store.as_ref(), &session.id)
        .await
        .map_err(|_| ca(CaCode::GenericError, "the session store is unavailable; retry later"))?;
    tracing::info!(org = %session.org.name, "session ended by logout");
    Ok(axum::Json(json!({"success": true})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "0d5c2f7e-6d1b-4c1a-9b1e-2f7d8e9a0b1c";

    fn org(name: &str) -> OrgKey {
        OrgKey {
            namespace: "ns".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        }
    }

    fn code(app_id: Option<&str>) -> grant::CodeGrant {
        grant::CodeGrant {
            org: org("acme"),
            client_id: "cid".into(),
            protocol: Protocol::CentralAuth,
            redirect_uri: "https://app.example.com/cb?return_to=%2Fdash".into(),
            code_challenge: Some(pkce::s256(UUID)),
            app_id: app_id.map(Into::into),
            session_id: "s".into(),
            email: "ada@example.com".into(),
            scope: None,
            nonce: None,
            auth_time: 0,
            issued_at: 0,
            family_id: "f".into(),
            jti: "j".into(),
        }
    }

    fn web() -> Exchange<'static> {
        Exchange {
            site_org: Some(org("acme")),
            authenticated: true,
            redirect_uri: "https://app.example.com/cb",
            verifier: Some(UUID),
        }
    }

    fn refused(e: &Exchange, g: &grant::CodeGrant) -> Option<CaCode> {
        e.check(g).err().map(|err| err.code)
    }

    #[test]
    fn the_official_web_client_exchange_passes() {
        assert_eq!(refused(&web(), &code(None)), None);
        let native = Exchange {
            authenticated: false,
            ..web()
        };
        assert_eq!(refused(&native, &code(Some("app"))), None);
    }

    #[test]
    fn each_mismatch_is_refused_with_its_code() {
        let g = code(None);
        let anonymous = Exchange {
            authenticated: false,
            ..web()
        };
        assert_eq!(refused(&anonymous, &g), Some(CaCode::NoPermission));
        let other_org = Exchange {
            site_org: Some(org("other")),
            ..web()
        };
        assert_eq!(refused(&other_org, &g), Some(CaCode::SessionInvalid));
        let oauth = grant::CodeGrant {
            protocol: Protocol::OAuth,
            ..code(None)
        };
        assert_eq!(refused(&web(), &oauth), Some(CaCode::SessionInvalid));
        let other_path = Exchange {
            redirect_uri: "https://app.example.com/other",
            ..web()
        };
        assert_eq!(refused(&other_path, &g), Some(CaCode::CallbackUrlInvalid));
        let wrong_verifier = Exchange {
            verifier: Some("1d5c2f7e-6d1b-4c1a-9b1e-2f7d8e9a0b1c"),
            ..web()
        };
        assert_eq!(refused(&wrong_verifier, &g), Some(CaCode::CodeChallengeInvalid));
    }
}
