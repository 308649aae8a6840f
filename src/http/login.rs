//! The login page and the authorization step shared by both protocols.
//!
//! `GET /login` (CentralAuth) and `GET /oauth2/authorize` (standard) validate the request —
//! unknown client or bad redirect URI: an error page, never a redirect — then, as
//! [`crate::oauth::prompt`] decides, finish at once (a live session cookie for this
//! organization), redirect with `login_required` (`prompt=none`), or store the request under a
//! random login ID (keyed by its SHA-256) and render the form of the organization's login
//! methods. Every post of a login ([`posted`]) checks the CSRF token (hidden field equal to the
//! `ca_csrf` cookie set with the form: login CSRF needs the victim's browser to carry the
//! attacker's cookie, which it cannot). `POST /login` counts failures per account and address
//! of the organization — or per device cookie, for a browser that logged the account in before
//! ([`Attempter`]) — and verifies the password; the e-mail code steps live in
//! [`super::email_login`]. Both end in [`complete`]: the session, the device cookie, and a
//! redirect with `code`, `state` (byte-exact), `iss` (RFC 9207) and, after `affirm=1`,
//! `affirm=1`.
//!
//! The pages are plain server-rendered HTML: no JavaScript, `Referrer-Policy: no-referrer`,
//! `Content-Security-Policy: frame-ancestors 'none'` (or the organization's `allowedOrigins`
//! with `embed=1`), `X-Frame-Options: DENY` unless embedded. `translations` (base64 JSON, the
//! official client's `Translations` keys `loginPageIntro`, `emailAddress`, `login`, plus
//! `password`, `loginPagePasswordError` and the e-mail steps' keys listed in the README)
//! replaces the texts it names.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ErrorPage;
use super::form::Params;
use super::routing::{Site, host, org_key};
use crate::crd::Organization;
use crate::metrics::{LoginMethod, LoginOutcome};
use crate::oauth::grant::{self, CodeGrant, OrgKey, Protocol, Session};
use crate::oauth::prompt::{Decision, Prompt};
use crate::oauth::throttle::{self, Counters, Limits, Tally};
use crate::oauth::{device, pkce, redirect};
use crate::store::{hashed, json};

/// How long a rendered login form stays usable (renewed when a code e-mail is sent).
pub const LOGIN_TTL: Duration = Duration::from_secs(15 * 60);
/// Name of the session cookie (single sign-on across logins of one organization).
pub const SESSION_COOKIE: &str = "ca_session";
const CSRF_COOKIE: &str = "ca_csrf";

/// A validated authorization request waiting for the user.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    /// Organization.
    pub org: OrgKey,
    /// Client ID.
    pub client_id: String,
    /// Which protocol started it.
    pub protocol: Protocol,
    /// Redirect URI, as sent.
    pub redirect_uri: String,
    /// `state`, as sent.
    pub state: Option<String>,
    /// S256 challenge.
    pub code_challenge: Option<String>,
    /// Native app.
    pub app_id: Option<String>,
    /// Native device.
    pub device_id: Option<String>,
    /// Scope (standard endpoints).
    pub scope: Option<String>,
    /// OIDC nonce.
    pub nonce: Option<String>,
    /// SHA-256 of the CSRF token.
    pub csrf_hash: String,
    /// `embed=1` was asked and the organization has `allowedOrigins` that may frame the page.
    pub embed: bool,
    /// Decoded `translations`.
    pub translations: BTreeMap<String, String>,
    /// `email` hint.
    pub email: Option<String>,
    /// `error_description` to show.
    pub message: Option<String>,
    /// CentralAuth `affirm=1`: the user must log in again, and the callback says so.
    #[serde(default)]
    pub affirm: bool,
}

/// The client address: what the router's middleware found ([`super::ClientAddr`]: the socket
/// peer, or what trusted proxies say), else the socket peer.
pub fn client_addr(req: &Request) -> IpAddr {
    let ext = req.extensions();
    ext.get::<super::ClientAddr>()
        .map(|a| a.0)
        .or_else(|| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// `GET /login`: the CentralAuth authorization request.
pub async fn get_login(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let params = match Params::from_urlencoded(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return ErrorPage::bad_request(e.to_string()).into_response(),
    };
    match centralauth_request(&state, &headers, &params) {
        Ok(Ok(req)) => {
            let prompt = if req.affirm { Prompt::login() } else { Prompt::default() };
            start(&state, &headers, req, prompt).await
        }
        Ok(Err(redirect_to)) => redirect_to,
        Err(page) => page.into_response(),
    }
}

/// Validates a CentralAuth authorization request. `Err` is an error page (no redirect),
/// `Ok(Err)` an error redirect to the (validated) redirect URI.
fn centralauth_request(
    state: &AppState,
    headers: &HeaderMap,
    p: &Params,
) -> Result<Result<LoginRequest, Response>, ErrorPage> {
    let org = centralauth_org(state, headers, p.get("client_id"))?;
    let redirect_uri = p
        .get("redirect_uri")
        .ok_or_else(|| ErrorPage::bad_request("redirect_uri is missing"))?;
    let app_id = p.get("app_id");
    match app_id {
        Some(app_id) => {
            let app = state
                .native_apps_of(&org)
                .into_iter()
                .find(|a| a.status.as_ref().and_then(|s| s.app_id.as_deref()) == Some(app_id))
                .ok_or_else(|| ErrorPage::bad_request("app_id is not a registered native app of this organization"))?;
            redirect::check_native(redirect_uri, &app.spec.app_link)
        }
        None => redirect::check_centralauth_web(redirect_uri, web_policy(&org)),
    }
    .map_err(|e| ErrorPage::bad_request(e.to_string()))?;
    let issuer = state.issuer(&org);
    let fail = |error: &str, description: &str| {
        Ok(Err(error_redirect(
            redirect_uri,
            error,
            description,
            p.get("state"),
            &issuer,
        )))
    };
    if p.get("response_type") != Some("code") {
        return fail("missingFields", "response_type must be code");
    }
    let challenge = p.get("code_challenge");
    match challenge {
        Some(c) => {
            if let Err(e) = pkce::check_challenge(c, p.get("code_challenge_method")) {
                return fail("codeChallengeInvalid", &e.to_string());
            }
        }
        None if app_id.is_some() => return fail("codeChallengeMissing", "native apps must send a S256 code_challenge"),
        None => {}
    }
    Ok(Ok(LoginRequest {
        org: org_key(&org),
        client_id: org.client_id().unwrap_or_default().to_string(),
        protocol: Protocol::CentralAuth,
        redirect_uri: redirect_uri.to_string(),
        state: p.get("state").map(String::from),
        code_challenge: challenge.map(String::from),
        app_id: app_id.map(String::from),
        device_id: p.get("device_id").map(String::from),
        scope: None,
        nonce: None,
        csrf_hash: String::new(),
        embed: p.get("embed") == Some("1") && crate::origin::usable(&org.spec.allowed_origins).next().is_some(),
        translations: p.get("translations").map(decode_translations).unwrap_or_default(),
        email: p.get("email").map(String::from),
        message: p.get("error_description").map(String::from),
        affirm: p.get("affirm") == Some("1"),
    }))
}

/// The organization of a CentralAuth request: its own host, or `client_id` on the base domain.
pub fn centralauth_org(
    state: &AppState,
    headers: &HeaderMap,
    client_id: Option<&str>,
) -> Result<Arc<Organization>, ErrorPage> {
    let unknown = || ErrorPage::bad_request("unknown client_id: no organization of this server has it");
    match host(headers).and_then(|h| state.site(&h)) {
        Some(Site::Own(org)) => match client_id {
            Some(cid) if org.client_id() != Some(cid) => Err(unknown()),
            _ => Ok(org),
        },
        Some(Site::Base) => {
            let cid = client_id.ok_or_else(|| ErrorPage::bad_request("client_id is missing"))?;
            state.org_by_client_id(cid).ok_or_else(unknown)
        }
        None => Err(ErrorPage {
            status: StatusCode::NOT_FOUND,
            message: "this host is not served here".into(),
        }),
    }
}

/// The redirect rules of an organization.
pub fn web_policy(org: &Organization) -> redirect::WebPolicy<'_> {
    redirect::WebPolicy {
        allowed_origins: &org.spec.allowed_origins,
        redirect_uris: &org.spec.redirect_uris,
        allow_localhost: org.spec.allow_localhost,
    }
}

/// An error redirect (after the redirect URI was validated), with `state` and `iss`.
pub fn error_redirect(uri: &str, error: &str, description: &str, state: Option<&str>, issuer: &str) -> Response {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", issuer));
    Redirect::to(&redirect::with_params(uri, &params)).into_response()
}

fn decode_translations(b64: &str) -> BTreeMap<String, String> {
    let cleaned = b64.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(cleaned)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cleaned))
        .unwrap_or_default();
    let parsed: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&bytes).unwrap_or_default();
    parsed
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_str()?.chars().take(500).collect())))
        .collect()
}

/// Finishes at once with a live session of the organization when `prompt` allows it,
/// redirects with `login_required` when it must not show a page, or renders the form.
pub async fn start(state: &AppState, headers: &HeaderMap, mut req: LoginRequest, prompt: Prompt) -> Response {
    let now = crate::oauth::now();
    let session = match prompt.reauthenticate {
        true => None,
        false => live_session(state, headers, &req.org, now).await,
    };
    match (prompt.decide(session.as_ref().map(|s| s.created_at), now), session) {
        (Decision::Reuse, Some(session)) => return finish(state, &req, &session, vec![]).await,
        (Decision::LoginRequired, _) => {
            let issuer = state.org_by_key(&req.org).map(|o| state.issuer(&o)).unwrap_or_default();
            let description = "the user must log in, and prompt=none forbids showing the login page";
            return error_redirect(
                &req.redirect_uri,
                "login_required",
                description,
                req.state.as_deref(),
                &issuer,
            );
        }
        _ => {}
    }
    let csrf = grant::random_token();
    req.csrf_hash = hashed(&csrf);
    let login_id = grant::random_token();
    if json::put(state.store.as_ref(), &login_key(&login_id), &req, LOGIN_TTL)
        .await
        .is_err()
    {
        return ErrorPage {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the session store is unavailable; retry later".into(),
        }
        .into_response();
    }
    let mut resp = form_response(state, &req, &login_id, &csrf, None, StatusCode::OK);
    set_cookie(
        &mut resp,
        &format!(
            "{CSRF_COOKIE}={csrf}; Path=/; HttpOnly{}",
            cookie_attributes(state, req.embed)
        ),
    );
    resp
}

/// The browser's live session of organization `org`, if its cookie names one.
async fn live_session(state: &AppState, headers: &HeaderMap, org: &OrgKey, now: i64) -> Option<Session> {
    let sid = cookie(headers, SESSION_COOKIE)?;
    let session = grant::use_session(state.store.as_ref(), &sid, idle(state, org), now)
        .await
        .ok()??;
    (session.org == *org).then_some(session)
}

/// The `SameSite` and `Secure` attributes of the login cookies. An embedded login (`embed=1`,
/// shown only to the organization's `allowedOrigins`) runs in a cross-site frame, where
/// browsers neither store nor send `SameSite=Lax` cookies: there the cookies are
/// `SameSite=None; Secure; Partitioned` (CHIPS: kept apart per embedding site), which
/// browsers accept over https and on `localhost`.
fn cookie_attributes(state: &AppState, embed: bool) -> &'static str {
    match (embed, state.public.scheme == "https") {
        (true, _) => "; SameSite=None; Secure; Partitioned",
        (false, true) => "; SameSite=Lax; Secure",
        (false, false) => "; SameSite=Lax",
    }
}

fn set_cookie(resp: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A cookie of the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn idle(state: &AppState, org: &OrgKey) -> Duration {
    state
        .org_by_key(org)
        .map_or(Duration::from_secs(7 * 24 * 3600), |o| o.max_inactivity())
}

/// The store key of a pending login: the SHA-256 of its ID (the ID is a bearer value that
/// the browser holds; it is also the key of the login's e-mail code, see [`crate::oauth::otp`]).
pub fn login_key(login_id: &str) -> String {
    format!("login:{}", hashed(login_id))
}

/// A posted login form whose login ID and CSRF token check out.
pub struct Posted {
    /// The login ID (hidden field `login`).
    pub login_id: String,
    /// The CSRF token (hidden field `csrf`, equal to the `ca_csrf` cookie).
    pub csrf: String,
    /// The pending authorization request.
    pub login: LoginRequest,
    /// Its organization.
    pub org: Arc<Organization>,
    /// Every field of the form.
    pub form: Params,
    /// The client address.
    pub addr: IpAddr,
    /// The request's headers (cookies).
    pub headers: HeaderMap,
}

/// Reads a login form post and checks its login ID and CSRF token; `Err` is the error page.
pub async fn posted(state: &AppState, req: Request) -> Result<Posted, Response> {
    let addr = client_addr(&req);
    let headers = req.headers().clone();
    let form = Params::from_request(req)
        .await
        .map_err(|e| ErrorPage::bad_request(e.to_string()).into_response())?;
    let (Some(login_id), Some(csrf)) = (form.get("login"), form.get("csrf")) else {
        return Err(ErrorPage::bad_request("the login form is incomplete; start the login again").into_response());
    };
    let (login_id, csrf) = (login_id.to_string(), csrf.to_string());
    let Ok(Some(login)) = json::get::<LoginRequest>(state.store.as_ref(), &login_key(&login_id)).await else {
        return Err(
            ErrorPage::bad_request("this login has expired or was already used; start the login again").into_response(),
        );
    };
    let cookie_ok = cookie(&headers, CSRF_COOKIE).is_some_and(|c| crate::oauth::ct_eq(c.as_bytes(), csrf.as_bytes()));
    if !cookie_ok || !crate::oauth::ct_eq(hashed(&csrf).as_bytes(), login.csrf_hash.as_bytes()) {
        return Err(csrf_refused(state, &login));
    }
    let Some(org) = state.org_by_key(&login.org) else {
        return Err(ErrorPage::bad_request("the organization no longer exists").into_response());
    };
    Ok(Posted {
        login_id,
        csrf,
        login,
        org,
        form,
        addr,
        headers,
    })
}

/// Who makes a login step for an account: anyone from an address, or the browser holding
/// the account's device cookie ([`crate::oauth::device`]). Says which failure counters count
/// the step.
pub struct Attempter {
    tenant: String,
    email: String,
    addr: IpAddr,
    /// The device ID of the browser's device cookie, when it names this account.
    pub device: Option<String>,
}

impl Attempter {
    /// The attempter of a step of `p` for `email`.
    pub fn of(state: &AppState, p: &Posted, email: &str) -> Attempter {
        Attempter {
            tenant: p.login.org.uid.clone(),
            email: email.to_string(),
            addr: p.addr,
            device: trusted_device(state, &p.org, &p.headers, email),
        }
    }

    /// The counters of `tally` this attempter's steps are counted in.
    pub fn counters(&self, tally: Tally, limits: Limits) -> Counters {
        match &self.device {
            Some(d) => tally.device(limits, &self.tenant, d),
            None => tally.untrusted(limits, &self.tenant, &self.email, self.addr),
        }
    }

    /// The cool-down key of code e-mails this attempter asks for.
    pub fn cooldown_key(&self) -> String {
        crate::oauth::otp::cooldown_key(&self.tenant, &self.email, self.device.as_deref())
    }
}

/// The device ID of the browser's device cookie for organization `org`, when the cookie is
/// valid and names `email`.
fn trusted_device(state: &AppState, org: &Organization, headers: &HeaderMap, email: &str) -> Option<String> {
    let key = org_key(org);
    let token = cookie(headers, &device::cookie_name(&key))?;
    let claims = state
        .keys
        .get()
        .verify(&token, Some(device::TYP), crate::oauth::now())
        .ok()?;
    device::device_of(&claims, &state.issuer(org), &key, email)
}

/// The answer to a post whose CSRF token is not the browser's. Embedded, the page stays
/// framable and names the likely cause: a browser that blocks cookies in frames.
fn csrf_refused(state: &AppState, login: &LoginRequest) -> Response {
    if !login.embed {
        let message = "the form's CSRF token does not match this browser; start the login again";
        return ErrorPage {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
        .into_response();
    }
    let message = "This browser did not send the login cookie back to the embedded page (it may \
        block cookies in frames). Open the login in its own window instead.";
    let content = format!("<p class=\"error\">{}</p>", escape(message));
    login_page(state, login, &content, StatusCode::FORBIDDEN)
}

/// An error page saying that a login method is not enabled.
pub fn method_disabled(method: &str) -> Response {
    ErrorPage::bad_request(format!("{method} login is not enabled for this organization")).into_response()
}

/// The e-mail address of a form, normalized as accounts are (trimmed, ASCII lowercase).
pub fn form_email(form: &Params) -> String {
    form.get("email").unwrap_or_default().trim().to_ascii_lowercase()
}

/// `POST /login`: the password form.
pub async fn post_login(State(state): State<AppState>, req: Request) -> Response {
    let p = match posted(&state, req).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    if p.org.spec.login_methods.passwords.is_none() {
        return method_disabled("password");
    }
    let store = state.store.as_ref();
    let email = form_email(&p.form);
    let counters = Attempter::of(&state, &p, &email).counters(throttle::LOGIN, state.settings.login_limits);
    if counters.over(store).await.unwrap_or(true) {
        let msg = "Too many failed attempts. Wait a few minutes and try again.";
        return form_response(
            &state,
            &p.login,
            &p.login_id,
            &p.csrf,
            Some(msg),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let password = p.form.get("password").unwrap_or_default();
    if !check_password(&state, &p.org, &email, password).await {
        state.metrics.login(LoginMethod::password, LoginOutcome::failure);
        let _ = counters.record(store).await;
        let msg = text(
            &p.login,
            "loginPagePasswordError",
            "The e-mail address or password is wrong.",
        );
        return form_response(
            &state,
            &p.login,
            &p.login_id,
            &p.csrf,
            Some(&msg),
            StatusCode::UNAUTHORIZED,
        );
    }
    complete(&state, &p, email, LoginMethod::password).await
}

/// The user proved to be `email` with `method`: uses up the pending login, creates the session
/// and redirects to the client with a code.
pub async fn complete(state: &AppState, p: &Posted, email: String, method: LoginMethod) -> Response {
    let store = state.store.as_ref();
    let Ok(Some(login)) = json::take::<LoginRequest>(store, &login_key(&p.login_id)).await else {
        return ErrorPage::bad_request("this login was already used; start the login again").into_response();
    };
    state.metrics.login(method, LoginOutcome::success);
    let now = crate::oauth::now();
    let max = p.org.max_session().as_secs() as i64;
    let session = Session {
        id: grant::random_token(),
        org: login.org.clone(),
        email,
        created_at: now,
        expires_at: now + max,
        app_id: login.app_id.clone(),
        device_id: login.device_id.clone(),
        affirmed_at: login.affirm.then_some(now),
    };
    if grant::create_session(store, &session, p.org.max_inactivity())
        .await
        .is_err()
    {
        return ErrorPage::bad_request("the session store is unavailable; retry later").into_response();
    }
    let attributes = cookie_attributes(state, login.embed);
    let mut cookies = vec![format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; Max-Age={max}{attributes}",
        session.id
    )];
    let claims = device::claims(
        &state.issuer(&p.org),
        &login.org,
        &session.email,
        &grant::random_token(),
        now,
    );
    if let Ok(token) = state.keys.get().sign(&claims, device::TYP, now) {
        let name = device::cookie_name(&login.org);
        cookies.push(format!(
            "{name}={token}; Path=/; HttpOnly; Max-Age={}{attributes}",
            device::TTL
        ));
    }
    finish(state, &login, &session, cookies).await
}

async fn check_password(state: &AppState, org: &Organization, email: &str, password: &str) -> bool {
    let hash = org.spec.login_methods.passwords.as_ref().and_then(|pw| {
        let ns = org.metadata.namespace.as_deref()?;
        let data = state.secrets.value(ns, &pw.secret_name, &pw.key)?;
        String::from_utf8_lossy(&data)
            .lines()
            .filter_map(|l| l.trim().split_once(':'))
            .find(|(e, _)| !e.starts_with('#') && e.trim().eq_ignore_ascii_case(email))
            .map(|(_, h)| h.trim().to_string())
    });
    let hashes = hash.into_iter().collect();
    !email.is_empty() && state.verifier.verify_any(hashes, password).await.is_some()
}

/// Issues the code and redirects to the client (with `affirm=1` after an affirmation, so the
/// CentralAuth client compares the affirmed user with the one it had), setting `cookies`.
async fn finish(state: &AppState, login: &LoginRequest, session: &Session, cookies: Vec<String>) -> Response {
    let Some(org) = state.org_by_key(&login.org) else {
        return ErrorPage::bad_request("the organization no longer exists").into_response();
    };
    let now = crate::oauth::now();
    let code_grant = CodeGrant {
        org: login.org.clone(),
        client_id: login.client_id.clone(),
        protocol: login.protocol,
        redirect_uri: login.redirect_uri.clone(),
        code_challenge: login.code_challenge.clone(),
        app_id: login.app_id.clone(),
        session_id: session.id.clone(),
        email: session.email.clone(),
        scope: login.scope.clone(),
        nonce: login.nonce.clone(),
        auth_time: session.created_at,
        issued_at: now,
        family_id: grant::random_token(),
        jti: grant::random_token(),
    };
    let Ok(code) = grant::issue_code(state.store.as_ref(), &code_grant).await else {
        return ErrorPage::bad_request("the session store is unavailable; retry later").into_response();
    };
    let issuer = state.issuer(&org);
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &login.state {
        params.push(("state", s));
    }
    params.push(("iss", &issuer));
    if login.affirm {
        params.push(("affirm", "1"));
    }
    tracing::info!(org = %login.org.name, protocol = ?login.protocol, "login succeeded; code issued");
    let mut resp = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, redirect::with_params(&login.redirect_uri, &params))],
    )
        .into_response();
    for c in cookies {
        set_cookie(&mut resp, &c);
    }
    resp
}

/// The first page of a login: the password form, the "e-mail me a code" form, or one form
/// with both buttons when both methods are enabled (no JavaScript: the code button posts to
/// `/login/email` with `formaction` and skips the password's `required` with
/// `formnovalidate`).
pub fn form_response(
    state: &AppState,
    login: &LoginRequest,
    login_id: &str,
    csrf: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let methods = state
        .org_by_key(&login.org)
        .map(|o| o.spec.login_methods.clone())
        .unwrap_or_default();
    let t = |key: &str, default: &str| escape(&text(login, key, default));
    let password = methods.passwords.is_some().then(|| {
        format!(
            r#"<label for="password">{label}</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{submit}</button>"#,
            label = t("password", "Password"),
            submit = t("login", "Log in"),
        )
    });
    let code_button = |extra: &str| {
        format!(
            r#"<button type="submit" id="send-code"{extra}>{}</button>"#,
            t("sendCode", "E-mail me a code")
        )
    };
    let (action, buttons) = match (password, methods.email.is_some()) {
        (Some(pw), true) => (
            "/login",
            format!(
                r#"{pw}<p class="or">{or}</p>{code}"#,
                or = t("or", "or"),
                code = code_button(r#" class="secondary" formaction="/login/email" formnovalidate"#)
            ),
        ),
        (Some(pw), false) => ("/login", pw),
        (None, _) => ("/login/email", code_button("")),
    };
    let content = format!(
        r#"<p>{intro}</p>{message}
<form method="post" action="{action}">
{hidden}
<label for="email">{email_label}</label><input id="email" name="email" type="email" autocomplete="username" required value="{email}">
{buttons}
</form>"#,
        intro = match login.affirm {
            true => t("loginPageAffirmIntro", "Confirm it is you: log in again to continue."),
            false => t("loginPageIntro", "Log in to continue."),
        },
        message = alert(error.or(login.message.as_deref())),
        hidden = hidden_fields(login_id, csrf),
        email_label = t("emailAddress", "E-mail address"),
        email = escape(login.email.as_deref().unwrap_or_default()),
    );
    login_page(state, login, &content, status)
}

/// The text of `key` from the login's `translations`, else `default` (not escaped).
pub fn text(login: &LoginRequest, key: &str, default: &str) -> String {
    login
        .translations
        .get(key)
        .map(String::as_str)
        .unwrap_or(default)
        .to_string()
}

/// An error paragraph (`role="alert"`), or nothing.
pub fn alert(message: Option<&str>) -> String {
    message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(m)))
        .unwrap_or_default()
}

/// The hidden fields every step of a login posts back.
pub fn hidden_fields(login_id: &str, csrf: &str) -> String {
    format!(
        r#"<input type="hidden" name="login" value="{}"><input type="hidden" name="csrf" value="{}">"#,
        escape(login_id),
        escape(csrf)
    )
}

/// A page of a login: the organization's logo and name above `content`, with the security
/// headers (framing only by the organization's `allowedOrigins` with `embed=1`).
pub fn login_page(state: &AppState, login: &LoginRequest, content: &str, status: StatusCode) -> Response {
    let org = state.org_by_key(&login.org);
    let name = org.as_ref().map(|o| o.spec.display_name.clone()).unwrap_or_default();
    let logo = org
        .as_ref()
        .and_then(|o| o.spec.logo_url.clone())
        .map(|u| format!("<img src=\"{}\" alt=\"\" height=\"48\">", escape(&u)))
        .unwrap_or_default();
    let body = format!("{logo}<h1>{}</h1>{content}", escape(&name));
    // Only entries that can match: `https://*.com` must not let every .com site frame the page.
    let framers: Vec<&str> = match (&org, login.embed) {
        (Some(o), true) => crate::origin::usable(&o.spec.allowed_origins)
            .map(String::as_str)
            .collect(),
        _ => vec![],
    };
    let ancestors = if framers.is_empty() {
        "'none'".to_string()
    } else {
        framers.join(" ")
    };
    (status, html_headers(&ancestors), page(&name, &body)).into_response()
}

/// Security headers of every HTML page; `frame_ancestors` is the CSP source list. A page that
/// may be framed sends no `X-Frame-Options`: it cannot name other origins, and browsers that
/// know CSP obey `frame-ancestors` instead.
pub fn html_headers(frame_ancestors: &str) -> HeaderMap {
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src https:; base-uri 'none'; frame-ancestors {frame_ancestors}"
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("frame-ancestors 'none'")),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if frame_ancestors == "'none'" {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers
}

/// A whole HTML page.
pub fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem;color:#222}}label{{display:block;margin-top:1rem}}input{{width:100%;padding:.5rem;box-sizing:border-box}}button{{margin-top:1.5rem;width:100%;padding:.6rem;background:#2457d6;color:#fff;border:0;border-radius:4px}}.error{{color:#b00020}}.or{{text-align:center;color:#666;margin:1rem 0 0}}button.secondary{{margin-top:.5rem;background:none;color:#2457d6;border:1px solid #2457d6}}</style>
</head><body>{body}</body></html>"#,
        escape(title)
    )
}

/// HTML-escapes text for element content and quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translations_accept_both_base64_alphabets_and_ignore_non_strings() {
        let json = r#"{"login":"Inloggen","emailAddress":"E-mailadres ?>","x":1}"#;
        let std = base64::engine::general_purpose::STANDARD.encode(json);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        for encoded in [std, url] {
            let t = decode_translations(&encoded);
            assert_eq!(t.get("login").map(String::as_str), Some("Inloggen"));
            assert!(!t.contains_key("x"));
        }
        assert!(decode_translations("not base64!").is_empty());
        assert_eq!(escape("<a href=\"x\">'&"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;");
    }

    #[test]
    fn only_pages_that_refuse_framing_send_x_frame_options() {
        let closed = html_headers("'none'");
        assert_eq!(closed[header::X_FRAME_OPTIONS], "DENY");
        let open = html_headers("https://app.example.com");
        assert!(open.get(header::X_FRAME_OPTIONS).is_none());
        let csp = open[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.ends_with("frame-ancestors https://app.example.com"), "{csp}");
        assert_eq!(open[header::REFERRER_POLICY], "no-referrer");
    }
}
