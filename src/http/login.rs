//! The login endpoints of both protocols, over [`crate::flow::authorize`] and
//! [`crate::flow::login`]: extraction (query, form, cookies) and rendering only.
//!
//! `GET /login` (CentralAuth) — and `GET /oauth2/authorize` ([`super::oauth2`]) — validate the
//! request, then finish at once, redirect with an error, or render the form of the
//! organization's login methods ([`super::html::form_response`]) and set the `ca_csrf` cookie.
//! Every post of a login ([`posted`]) reads the login ID and CSRF token of the form; `POST
//! /login` is the password step; the e-mail code steps live in [`super::email_login`]. A
//! completed login sets the session and device cookies and redirects to the client.
//!
//! `translations` (base64 JSON, the official client's `Translations` keys `loginPageIntro`,
//! `emailAddress`, `login`, plus `password`, `loginPagePasswordError` and the e-mail steps'
//! keys listed in `docs/login-server.md`) replaces the texts it names.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::AppState;
use super::form::Params;
use super::html::{self, ErrorPage};
use super::routing::host;
use crate::flow::authorize::{Arrival, ErrorRedirect, Refusal, Started};
use crate::flow::login::{Browser, Completed, LoginError, LoginRequest, PasswordOutcome, Pending};
use crate::oauth::device;
use crate::oauth::grant::Protocol;
use crate::oauth::hijack::Shown;
use crate::oauth::prompt::Prompt;

/// Name of the session cookie (single sign-on across logins of one organization).
pub const SESSION_COOKIE: &str = "ca_session";
pub const CSRF_COOKIE: &str = "ca_csrf";

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
pub async fn get_login(
    State(state): State<AppState>,
    addr: super::ClientAddr,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match Params::from_urlencoded(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return ErrorPage::bad_request(e.to_string()).into_response(),
    };
    let host = host(&headers);
    let at = Arrival {
        host: host.as_deref(),
        path_client_id: None,
        addr: addr.0,
    };
    authorize(&state, &headers, Protocol::CentralAuth, at, &params).await
}

/// Validates an authorization request of `protocol` and starts its login.
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    protocol: Protocol,
    at: Arrival<'_>,
    params: &Params,
) -> Response {
    let addr = at.addr;
    match state.authorize(protocol, at, params) {
        Ok((req, prompt)) => start(state, headers, addr, req, prompt).await,
        Err(refusal) => refused(refusal),
    }
}

/// The answer to a refused authorization request: an error page, or a redirect.
fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page(message) => ErrorPage::bad_request(message).into_response(),
        Refusal::HostNotServed => ErrorPage {
            status: StatusCode::NOT_FOUND,
            message: "this host is not served here".into(),
        }
        .into_response(),
        Refusal::Redirect(r) => error_redirect(&r),
    }
}

/// An error redirect (after the redirect URI was validated), with `state` and `iss`.
pub fn error_redirect(r: &ErrorRedirect) -> Response {
    Redirect::to(&r.location()).into_response()
}

/// Starts the login of a validated request: the redirect of a reused session, the
/// `login_required` redirect, or the form with its CSRF cookie.
async fn start(state: &AppState, headers: &HeaderMap, addr: IpAddr, req: LoginRequest, prompt: Prompt) -> Response {
    let session_cookie = cookie(headers, SESSION_COOKIE);
    let user_agent = user_agent(headers);
    let browser = Shown {
        addr: Some(addr),
        user_agent: Some(&user_agent),
        device_id: None,
    };
    match state.start_login(req, prompt, session_cookie.as_deref(), browser).await {
        Ok(Started::Finished(location)) => see_other(&location),
        Ok(Started::LoginRequired(r)) => error_redirect(&r),
        Ok(Started::Form { login, login_id, csrf }) => {
            let mut resp = html::form_response(state, &login, &login_id, &csrf, None, StatusCode::OK);
            set_csrf_cookie(state, &mut resp, &csrf, login.embed);
            resp
        }
        Err(e) => html::login_error(state, e),
    }
}

fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
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

/// A posted login form whose login ID and CSRF token check out.
pub struct Posted {
    /// The pending login.
    pub pending: Pending,
    /// Every field of the form.
    pub form: Params,
    /// The client address.
    pub addr: IpAddr,
    /// The browser's device cookie of the organization, if sent.
    pub device_cookie: Option<String>,
}

impl std::ops::Deref for Posted {
    type Target = Pending;

    fn deref(&self) -> &Pending {
        &self.pending
    }
}

impl Posted {
    /// The browser making this step.
    pub fn browser(&self) -> Browser<'_> {
        Browser {
            addr: self.addr,
            device_cookie: self.device_cookie.as_deref(),
        }
    }
}

/// Reads a login form post and checks its login ID and CSRF token; `Err` is the error page.
pub async fn posted(state: &AppState, req: Request) -> Result<Posted, Response> {
    let addr = client_addr(&req);
    let headers = req.headers().clone();
    let form = Params::from_request(req)
        .await
        .map_err(|e| html::login_error(state, LoginError::Form(e.to_string().into())))?;
    let (Some(login_id), Some(csrf)) = (form.get("login"), form.get("csrf")) else {
        return Err(html::login_error(state, LoginError::Incomplete));
    };
    let csrf_cookie = cookie(&headers, CSRF_COOKIE);
    let pending = state
        .pending(login_id, csrf, csrf_cookie.as_deref())
        .await
        .map_err(|e| html::login_error(state, e))?;
    let device_cookie = cookie(&headers, &device::cookie_name(&pending.login.request.org));
    let mut pending = pending;
    pending.addr = Some(addr);
    pending.user_agent = Some(user_agent(&headers));
    Ok(Posted {
        pending,
        form,
        addr,
        device_cookie,
    })
}

/// Sets the login's CSRF cookie (`ca_csrf`) on `resp`.
pub fn set_csrf_cookie(state: &AppState, resp: &mut Response, csrf: &str, embed: bool) {
    let attributes = cookie_attributes(state, embed);
    set_cookie(resp, &format!("{CSRF_COOKIE}={csrf}; Path=/; HttpOnly{attributes}"));
}

/// The `User-Agent` of a browser request (empty when it sent none).
pub fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
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
    let email = form_email(&p.form);
    let password = p.form.get("password").unwrap_or_default();
    let (msg, status) = match state.password_login(&p, p.browser(), email, password).await {
        Ok(PasswordOutcome::Completed(done)) => return completed(&state, done),
        Ok(PasswordOutcome::Throttled) => (
            "Too many failed attempts. Wait a few minutes and try again.".to_string(),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Ok(PasswordOutcome::Wrong) => (
            html::text(
                &p.login,
                "loginPagePasswordError",
                "The e-mail address or password is wrong.",
            ),
            StatusCode::UNAUTHORIZED,
        ),
        Err(e) => return html::login_error(&state, e),
    };
    html::form_response(&state, &p.login, &p.login_id, &p.csrf, Some(&msg), status)
}

/// The redirect of a completed login, with the session and device cookies.
pub fn completed(state: &AppState, done: Completed) -> Response {
    let attributes = cookie_attributes(state, done.embed);
    let mut resp = see_other(&done.location);
    set_cookie(
        &mut resp,
        &format!(
            "{SESSION_COOKIE}={}; Path=/; HttpOnly; Max-Age={}{attributes}",
            done.session_id, done.max_age
        ),
    );
    if let Some(token) = done.device_token {
        let name = device::cookie_name(&done.org);
        set_cookie(
            &mut resp,
            &format!("{name}={token}; Path=/; HttpOnly; Max-Age={}{attributes}", device::TTL),
        );
    }
    resp
}
