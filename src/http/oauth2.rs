//! The standard endpoints: OAuth 2.1 + OIDC discovery, authorize, token, revoke (RFC 7009),
//! introspect (RFC 7662), userinfo and JWKS.
//!
//! Clients: the organization's client ID is one confidential client (its ClientSecrets);
//! its native apps are public clients of the same client ID, recognised at `/oauth2/authorize`
//! by a redirect URI equal to a NativeApp's `status.redirectUri`, and at `/oauth2/token` by
//! sending no secret. A request without a secret is a public client's: it may redeem codes
//! and refresh tokens issued to a native app, never use `client_credentials`.
//! Client authentication: `client_secret_basic` or `client_secret_post` (exactly one); a
//! secret in the query string, or Basic plus body credentials, is `invalid_request`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawPathParams, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::clients::AuthFailure;
use super::error::ErrorPage;
use super::form::{Params, basic};
use super::login::{LoginRequest, client_addr, error_redirect, start};
use super::routing::{Site, host, org_key};
use crate::crd::Organization;
use crate::oauth::error::OAuthError;
use crate::oauth::grant::{self, CodeGrant, GrantError, Protocol, RefreshGrant, Session};
use crate::oauth::prompt::Prompt;
use crate::oauth::{pkce, redirect, tokens};

/// Scopes this server knows; others are dropped from requests.
const SCOPES: [&str; 4] = ["openid", "email", "profile", "offline_access"];

/// The organization of a standard endpoint: its own host, or `/o/<clientId>` on the base domain.
fn std_org(state: &AppState, headers: &HeaderMap, params: &RawPathParams) -> Option<Arc<Organization>> {
    let cid = params.iter().find(|(k, _)| *k == "cid").map(|(_, v)| v);
    match (host(headers).and_then(|h| state.site(&h))?, cid) {
        (Site::Own(org), None) => Some(org),
        (Site::Base, Some(cid)) => state
            .org_by_client_id(cid)
            .filter(|org| crate::tenant::own_host(org, &state.public).is_none()),
        _ => None,
    }
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
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
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

fn filter_scope(requested: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = requested?.split(' ').filter(|s| SCOPES.contains(s)).collect();
    (!kept.is_empty()).then(|| kept.join(" "))
}

/// `GET /oauth2/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: RawPathParams,
    RawQuery(query): RawQuery,
) -> Response {
    let p = match Params::from_urlencoded(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return ErrorPage::bad_request(e.to_string()).into_response(),
    };
    let Some(org) = std_org(&state, &headers, &params) else {
        return ErrorPage::bad_request("no organization is served at this address").into_response();
    };
    if p.get("client_id").is_none() || p.get("client_id") != org.client_id() {
        return ErrorPage::bad_request("unknown client_id").into_response();
    }
    let Some(redirect_uri) = p.get("redirect_uri") else {
        return ErrorPage::bad_request("redirect_uri is missing").into_response();
    };
    let app_id = state.native_apps_of(&org).into_iter().find_map(|a| {
        let s = a.status.as_ref()?;
        (s.redirect_uri.as_deref() == Some(redirect_uri))
            .then(|| s.app_id.clone())
            .flatten()
    });
    if app_id.is_none()
        && let Err(e) = redirect::check_exact(redirect_uri, &org.spec.redirect_uris)
    {
        return ErrorPage::bad_request(e.to_string()).into_response();
    }
    let iss = state.issuer(&org);
    let fail = |error: &str, description: &str| error_redirect(redirect_uri, error, description, p.get("state"), &iss);
    if p.get("response_type") != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let Some(challenge) = p.get("code_challenge") else {
        return fail("invalid_request", "code_challenge (S256) is required");
    };
    if let Err(e) = pkce::check_challenge(challenge, p.get("code_challenge_method")) {
        return fail("invalid_request", &e.to_string());
    }
    let prompt = match Prompt::parse(p.get("prompt"), p.get("max_age")) {
        Ok(prompt) => prompt,
        Err(e) => return fail("invalid_request", &e.to_string()),
    };
    let req = LoginRequest {
        org: org_key(&org),
        client_id: org.client_id().unwrap_or_default().to_string(),
        protocol: Protocol::OAuth,
        redirect_uri: redirect_uri.to_string(),
        state: p.get("state").map(String::from),
        code_challenge: Some(challenge.to_string()),
        app_id,
        device_id: None,
        scope: filter_scope(p.get("scope")),
        nonce: p.get("nonce").map(String::from),
        csrf_hash: String::new(),
        embed: false,
        translations: Default::default(),
        email: p.get("login_hint").map(String::from),
        message: None,
        affirm: false,
    };
    start(&state, &headers, req, prompt).await
}

/// A token-endpoint caller: client ID and, for confidential clients, the secret.
struct Caller {
    client_id: String,
    confidential: bool,
}

/// Reads and checks client credentials (see the module documentation).
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
    let (client_id, secret) = match basic {
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
        Some(b) => (b.client_id, Some(b.secret)),
        // No client authentication at all (RFC 6749 §5.2).
        None => (
            body_id.ok_or(OAuthError::InvalidClient)?.to_string(),
            body_secret.map(String::from),
        ),
    };
    match secret {
        Some(secret) => {
            state
                .authenticate_client(Some(org), &client_id, &secret, req.addr)
                .await
                .map_err(|f| match f {
                    AuthFailure::Invalid => OAuthError::InvalidClient,
                    AuthFailure::Busy => OAuthError::SlowDown,
                })?;
            Ok(Caller {
                client_id,
                confidential: true,
            })
        }
        None if require_secret => Err(OAuthError::InvalidClient),
        None if org.client_id() == Some(client_id.as_str()) => Ok(Caller {
            client_id,
            confidential: false,
        }),
        None => Err(OAuthError::InvalidClient),
    }
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
    match rp.form.get("grant_type") {
        Some("authorization_code") => {
            let c = caller(&state, &org, &rp, false).await?;
            code_grant(&state, &org, &c, &rp.form).await
        }
        Some("refresh_token") => {
            let c = caller(&state, &org, &rp, false).await?;
            refresh_grant(&state, &org, &c, &rp.form).await
        }
        Some("client_credentials") => {
            let c = caller(&state, &org, &rp, false).await?;
            if !c.confidential {
                return Err(OAuthError::UnauthorizedClient(
                    "public clients cannot use client_credentials",
                ));
            }
            client_credentials(&state, &org, &c, rp.form.get("scope"))
        }
        Some(_) => Err(OAuthError::UnsupportedGrantType),
        None => Err(OAuthError::request("grant_type is required")),
    }
}

async fn code_grant(state: &AppState, org: &Organization, c: &Caller, form: &Params) -> Result<Response, OAuthError> {
    let (Some(code), Some(redirect_uri)) = (form.get("code"), form.get("redirect_uri")) else {
        return Err(OAuthError::request("code and redirect_uri are required"));
    };
    let now = crate::oauth::now();
    let g = grant::redeem_code(state.store.as_ref(), code, now)
        .await
        .map_err(grant_error)?;
    check_code(&g, org, c, redirect_uri, form.get("code_verifier"))?;
    let session = live_session(state, org, &g.session_id, now).await?;
    let rg = RefreshGrant {
        org: g.org.clone(),
        client_id: g.client_id.clone(),
        family_id: g.family_id.clone(),
        session_id: g.session_id.clone(),
        email: g.email.clone(),
        scope: g.scope.clone(),
        auth_time: g.auth_time,
        app_id: g.app_id.clone(),
    };
    let mut body = user_tokens(state, org, &rg, &g.jti, now).await?;
    if g.scope.as_deref().is_some_and(|s| s.split(' ').any(|x| x == "openid")) {
        body["id_token"] = json!(id_token(state, org, &g, &session, now)?);
    }
    // A replay that raced this redemption may have revoked the family meanwhile.
    if grant::is_revoked(state.store.as_ref(), Some(&g.family_id), Some(&g.jti))
        .await
        .map_err(|_| OAuthError::ServerError)?
    {
        return Err(OAuthError::InvalidGrant(
            "the code was replayed; its tokens are revoked",
        ));
    }
    Ok(axum::Json(body).into_response())
}

/// Whether the redeemed code `g` may be exchanged by caller `c` of `org`: a standard code of
/// this organization and client (public clients only for native apps), the exact
/// `redirect_uri` of the authorization request, and the S256 verifier of its challenge.
fn check_code(
    g: &CodeGrant,
    org: &Organization,
    c: &Caller,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> Result<(), OAuthError> {
    if g.protocol != Protocol::OAuth || g.org != org_key(org) || g.client_id != c.client_id {
        return Err(OAuthError::InvalidGrant("the code was not issued to this client"));
    }
    if !c.confidential && g.app_id.is_none() {
        return Err(OAuthError::InvalidClient);
    }
    if g.redirect_uri != redirect_uri {
        return Err(OAuthError::InvalidGrant(
            "redirect_uri differs from the authorization request",
        ));
    }
    pkce::verify(g.code_challenge.as_deref(), verifier, pkce::VerifierRules::Strict)
        .map_err(|_| OAuthError::InvalidGrant("PKCE verification failed"))
}

/// The signed OIDC ID token of a code exchange.
fn id_token(
    state: &AppState,
    org: &Organization,
    g: &CodeGrant,
    session: &Session,
    now: i64,
) -> Result<String, OAuthError> {
    let claims = tokens::id_token_claims(
        &state.issuer(org),
        session,
        &g.client_id,
        g.nonce.as_deref(),
        g.auth_time,
        now,
        state.settings.access_token_ttl,
    );
    sign(state, &claims, "JWT", now)
}

/// Signs `claims` with the current signing key as a JWT of type `typ`.
fn sign(state: &AppState, claims: &impl serde::Serialize, typ: &str, now: i64) -> Result<String, OAuthError> {
    state
        .keys
        .get()
        .sign(claims, typ, now)
        .map_err(|_| OAuthError::ServerError)
}

async fn refresh_grant(
    state: &AppState,
    org: &Organization,
    c: &Caller,
    form: &Params,
) -> Result<Response, OAuthError> {
    let token = form
        .get("refresh_token")
        .ok_or_else(|| OAuthError::request("refresh_token is required"))?;
    let rg = grant::rotate_refresh(state.store.as_ref(), token)
        .await
        .map_err(grant_error)?;
    if rg.org != org_key(org) || rg.client_id != c.client_id || (!c.confidential && rg.app_id.is_none()) {
        return Err(OAuthError::InvalidGrant(
            "the refresh token was not issued to this client",
        ));
    }
    let now = crate::oauth::now();
    live_session(state, org, &rg.session_id, now).await?;
    let body = user_tokens(state, org, &rg, &grant::random_token(), now).await?;
    Ok(axum::Json(body).into_response())
}

fn grant_error(e: GrantError) -> OAuthError {
    match e {
        GrantError::Unknown => OAuthError::InvalidGrant("the code or refresh token is invalid or expired"),
        GrantError::Replayed => {
            OAuthError::InvalidGrant("the code or refresh token was already used; its tokens are revoked")
        }
        GrantError::Revoked => OAuthError::InvalidGrant("the grant has been revoked"),
        GrantError::Store(_) => OAuthError::ServerError,
    }
}

async fn live_session(state: &AppState, org: &Organization, id: &str, now: i64) -> Result<Session, OAuthError> {
    grant::use_session(state.store.as_ref(), id, org.max_inactivity(), now)
        .await
        .map_err(|_| OAuthError::ServerError)?
        .ok_or(OAuthError::InvalidGrant("the login session has ended"))
}

/// Access + refresh token for a user grant.
async fn user_tokens(
    state: &AppState,
    org: &Organization,
    rg: &RefreshGrant,
    jti: &str,
    now: i64,
) -> Result<Value, OAuthError> {
    let iss = state.issuer(org);
    let sub = tokens::user_id(&rg.org, &rg.email);
    let ttl = state.settings.access_token_ttl;
    let claims = tokens::AccessClaims {
        issuer: &iss,
        subject: &sub,
        client_id: &rg.client_id,
        scope: rg.scope.as_deref(),
        jti,
        session_id: Some(&rg.session_id),
        family_id: Some(&rg.family_id),
        auth_time: Some(rg.auth_time),
        now,
        ttl,
    };
    let access = sign(state, &claims, "at+jwt", now)?;
    let refresh = grant::issue_refresh(
        state.store.as_ref(),
        rg,
        Duration::from_secs(state.settings.refresh_token_ttl as u64),
    )
    .await
    .map_err(|_| OAuthError::ServerError)?;
    let mut body = json!({"access_token": access, "token_type": "Bearer", "expires_in": ttl, "refresh_token": refresh});
    if let Some(s) = &rg.scope {
        body["scope"] = json!(s);
    }
    Ok(body)
}

fn client_credentials(
    state: &AppState,
    org: &Organization,
    c: &Caller,
    scope: Option<&str>,
) -> Result<Response, OAuthError> {
    let now = crate::oauth::now();
    let iss = state.issuer(org);
    let scope = filter_scope(scope);
    let ttl = state.settings.access_token_ttl;
    let claims = tokens::AccessClaims {
        issuer: &iss,
        subject: &c.client_id,
        client_id: &c.client_id,
        scope: scope.as_deref(),
        jti: &grant::random_token(),
        session_id: None,
        family_id: None,
        auth_time: None,
        now,
        ttl,
    };
    let access = sign(state, &claims, "at+jwt", now)?;
    Ok(axum::Json(ServiceToken {
        access_token: access,
        token_type: "Bearer",
        expires_in: ttl,
        scope: scope.as_deref(),
    })
    .into_response())
}

/// The answer to a `client_credentials` request.
#[derive(serde::Serialize)]
struct ServiceToken<'a> {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

/// Verifies an access token of `org` and checks revocation and its session.
async fn active_claims(state: &AppState, org: &Organization, token: &str) -> Option<Value> {
    let now = crate::oauth::now();
    let claims = state.keys.get().verify(token, Some("at+jwt"), now).ok()?;
    if claims["iss"].as_str() != Some(state.issuer(org).as_str()) {
        return None;
    }
    let store = state.store.as_ref();
    if grant::is_revoked(store, claims["fid"].as_str(), claims["jti"].as_str())
        .await
        .unwrap_or(true)
    {
        return None;
    }
    if let Some(sid) = claims["sid"].as_str() {
        live_session(state, org, sid, now).await.ok()?;
    }
    Some(claims)
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
    if let Some(claims) = active_claims(&state, &org, token).await {
        let mut v = json!({"active": true, "token_type": "Bearer"});
        for k in ["scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti"] {
            if let Some(x) = claims.get(k) {
                v[k] = x.clone();
            }
        }
        return Ok(axum::Json(v).into_response());
    }
    let store = state.store.as_ref();
    let rt = grant::refresh_grant(store, token).await.ok().flatten();
    if let Some(rg) = rt.filter(|rg| issued_to(rg, &org, &c))
        && !grant::is_revoked(store, Some(&rg.family_id), None)
            .await
            .unwrap_or(true)
    {
        return Ok(axum::Json(json!({
            "active": true, "token_type": "refresh_token", "client_id": rg.client_id,
            "sub": tokens::user_id(&rg.org, &rg.email), "scope": rg.scope, "iss": state.issuer(&org),
        }))
        .into_response());
    }
    Ok(axum::Json(json!({"active": false})).into_response())
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
    let store = state.store.as_ref();
    let refresh = grant::refresh_grant(store, token)
        .await
        .map_err(|_| OAuthError::ServerError)?;
    if let Some(rg) = refresh {
        if issued_to(&rg, &org, &c) {
            grant::revoke_family(store, &rg.family_id)
                .await
                .map_err(|_| OAuthError::ServerError)?;
        }
    } else if c.confidential
        && let Some(claims) = active_claims(&state, &org, token).await
        && claims["client_id"].as_str() == Some(c.client_id.as_str())
        && let Some(jti) = claims["jti"].as_str()
    {
        grant::revoke_jti(store, jti)
            .await
            .map_err(|_| OAuthError::ServerError)?;
    }
    Ok(StatusCode::OK.into_response())
}

/// Whether refresh grant `rg` was issued to caller `c` of `org`: same organization and client
/// ID, and for a public caller (no secret) only a native app's grant — the only way a public
/// client gets refresh tokens. Access tokens are revoked by confidential callers only (a public
/// client revokes its refresh token, whose family takes the access tokens with it).
fn issued_to(rg: &RefreshGrant, org: &Organization, c: &Caller) -> bool {
    rg.org == org_key(org) && rg.client_id == c.client_id && (c.confidential || rg.app_id.is_some())
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
    let claims = active_claims(&state, &org, token)
        .await
        .ok_or(OAuthError::InvalidToken)?;
    let sid = claims["sid"].as_str().ok_or(OAuthError::InvalidToken)?;
    let session = live_session(&state, &org, sid, crate::oauth::now())
        .await
        .map_err(|_| OAuthError::InvalidToken)?;
    Ok(axum::Json(json!({
        "sub": tokens::user_id(&session.org, &session.email),
        "email": session.email,
        "email_verified": true,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::tests::{created, org};

    const VERIFIER: &str = "oauth2-test-verifier-0123456789-abcdefghijklmnop";
    const CB: &str = "https://app.example.com/cb";

    fn named(name: &str) -> Organization {
        created(org(None, None), name, 100, Some("cid"))
    }

    fn code(org: &Organization) -> CodeGrant {
        CodeGrant {
            org: org_key(org),
            client_id: "cid".into(),
            protocol: Protocol::OAuth,
            redirect_uri: CB.into(),
            code_challenge: Some(pkce::s256(VERIFIER)),
            app_id: None,
            session_id: "s".into(),
            email: "ada@example.com".into(),
            scope: Some("openid".into()),
            nonce: None,
            auth_time: 0,
            issued_at: 0,
            family_id: "f".into(),
            jti: "j".into(),
        }
    }

    fn web() -> Caller {
        Caller {
            client_id: "cid".into(),
            confidential: true,
        }
    }

    #[test]
    fn only_the_client_a_refresh_token_was_issued_to_may_revoke_it() {
        let org = named("acme");
        let rg = |app_id: Option<&str>| RefreshGrant {
            org: org_key(&org),
            client_id: "cid".into(),
            family_id: "f".into(),
            session_id: "s".into(),
            email: "ada@example.com".into(),
            scope: None,
            auth_time: 0,
            app_id: app_id.map(Into::into),
        };
        let public = Caller {
            confidential: false,
            ..web()
        };
        assert!(issued_to(&rg(None), &org, &web()));
        assert!(
            issued_to(&rg(Some("app")), &org, &web()),
            "the confidential client owns the ID"
        );
        assert!(
            issued_to(&rg(Some("app")), &org, &public),
            "a native app revokes its own"
        );
        assert!(!issued_to(&rg(None), &org, &public), "but not the web app's");
        assert!(!issued_to(&rg(None), &named("other"), &web()), "another organization's");
        let other_client = Caller {
            client_id: "other-cid".into(),
            confidential: true,
        };
        assert!(!issued_to(&rg(None), &org, &other_client));
    }

    #[test]
    fn the_exact_exchange_passes_and_each_mismatch_is_refused() {
        let org = named("acme");
        let g = code(&org);
        assert!(check_code(&g, &org, &web(), CB, Some(VERIFIER)).is_ok());
        let public = Caller {
            confidential: false,
            ..web()
        };
        assert!(matches!(
            check_code(&g, &org, &public, CB, Some(VERIFIER)),
            Err(OAuthError::InvalidClient)
        ));
        let other_org = named("other");
        let uuid = "0d5c2f7e-6d1b-4c1a-9b1e-2f7d8e9a0b1c";
        let centralauth = CodeGrant {
            protocol: Protocol::CentralAuth,
            ..code(&org)
        };
        for (g, org, redirect, verifier) in [
            (&g, &other_org, CB, Some(VERIFIER)),
            (&centralauth, &org, CB, Some(VERIFIER)),
            (&g, &org, "https://app.example.com/cb/", Some(VERIFIER)),
            (&g, &org, CB, Some("oauth2-test-verifier-0123456789-abcdefghijklmnoq")),
            (&g, &org, CB, None),
        ] {
            let refused = check_code(g, org, &web(), redirect, verifier);
            assert!(
                matches!(refused, Err(OAuthError::InvalidGrant(_))),
                "{redirect} {verifier:?}"
            );
        }
        // The CentralAuth endpoint's UUID verifier is too short for the standard one.
        let uuid_code = CodeGrant {
            code_challenge: Some(pkce::s256(uuid)),
            ..code(&org)
        };
        assert!(check_code(&uuid_code, &org, &web(), CB, Some(uuid)).is_err());
    }
}
