//! The pages of e-mail links and challenges ([`crate::flow::email_link`] has the steps):
//! - `GET /login/wait?loginAttemptId=…` (with the login's CSRF cookie): the starting device
//!   waits, showing the token or number; reloading it (or its script, which polls
//!   `…&poll=1`) completes the login once the e-mail confirmed it.
//! - `GET /login/mail?t=…`: the e-mail's link shows a button, and `POST /login/mail` does
//!   what the link does. A mail scanner that fetches links therefore uses nothing up.

use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::AppState;
use super::form::Params;
use super::html::{self, escape};
use super::login::{self, CSRF_COOKIE};
use crate::flow::email_link::{LinkOpened, LinkStatus};
use crate::flow::login::{LoginError, Pending};
use crate::oauth::maillink::{Action, Attempt, Kind};

/// The wait page's script: polls, and reloads the page once the login was confirmed.
const POLL_SCRIPT: &str = "setInterval(function(){fetch(location.href+'&poll=1',{credentials:'same-origin'}).then(function(r){return r.json()}).then(function(j){if(j.done)location.reload()})},2000)";

/// Where the starting device waits for login `login_id` (URL-safe base64, no escaping needed).
pub fn wait_location(login_id: &str) -> String {
    format!("/login/wait?loginAttemptId={login_id}")
}

/// `GET /login/wait`: see the module documentation.
pub async fn wait(State(state): State<AppState>, req: Request) -> Response {
    let q = Params::from_urlencoded(req.uri().query().unwrap_or_default().as_bytes()).unwrap_or_default();
    let headers = req.headers();
    let csrf = login::cookie(headers, CSRF_COOKIE).unwrap_or_default();
    let Some(id) = q.get("loginAttemptId") else {
        return html::login_error(&state, LoginError::Incomplete);
    };
    let mut p = match state.pending(id, &csrf, Some(&csrf)).await {
        Ok(p) => p,
        Err(e) => return html::login_error(&state, e),
    };
    if q.get("poll").is_some() {
        let done = state.link_confirmed(&p).await.unwrap_or(false);
        let mut resp = axum::Json(serde_json::json!({ "done": done })).into_response();
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return resp;
    }
    p.addr = Some(login::client_addr(&req));
    p.user_agent = Some(login::user_agent(headers));
    match state.link_status(&p).await {
        Ok(LinkStatus::Completed(done)) => login::completed(&state, done),
        Ok(LinkStatus::Waiting(a)) => wait_page(&state, &p, &a),
        Ok(LinkStatus::Gone) => {
            let msg = html::text(
                &p.login,
                "loginPageLinkExpired",
                "This login link has expired, was used or no longer works. Ask for a new e-mail.",
            );
            html::form_response(
                &state,
                &p.login,
                &p.login_id,
                &p.csrf,
                Some(&msg),
                StatusCode::UNAUTHORIZED,
            )
        }
        Err(e) => html::login_error(&state, e),
    }
}

fn wait_page(state: &AppState, p: &Pending, a: &Attempt) -> Response {
    let t = |key: &str, default: &str| escape(&html::text(&p.login, key, default));
    let check = match a.kind {
        Kind::Challenge => t(
            "emailChallengeNumber",
            "The e-mail shows three numbers. Click the one shown here:",
        ),
        _ => t(
            "emailLinkToken",
            "Open the link in the e-mail after checking that it shows:",
        ),
    };
    let content = format!(
        r#"<p>{sent} <strong>{email}</strong>.</p><p>{check}</p>
<p class="shown" id="shown"><strong>{shown}</strong></p>
<p>{then}</p>
<p><a href="{again}" id="continue">{continue_}</a></p>
<script>{POLL_SCRIPT}</script>"#,
        sent = t("emailLinkSent", "We sent an e-mail to"),
        email = escape(&a.email),
        shown = escape(&a.shown),
        then = t(
            "emailLinkThen",
            "This page continues by itself once you did; without JavaScript, reload it."
        ),
        again = escape(&wait_location(&p.login_id)),
        continue_ = t("continue", "Continue"),
    );
    let mut resp = html::login_page(state, &p.login, &content, StatusCode::OK);
    html::allow_script(&mut resp, POLL_SCRIPT);
    resp
}

/// `GET /login/mail?t=…`: the button that does what the e-mail's link does.
pub async fn link_page(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let q = Params::from_urlencoded(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let secret = q.get("t").unwrap_or_default();
    let label = match state.peek_link(secret).await {
        Ok(None) => return gone(),
        Ok(Some(Action::Here)) => "Log in on this device",
        Ok(Some(_)) => "Confirm the login",
        Err(e) => return html::login_error(&state, e),
    };
    let body = format!(
        r#"<h1>Log in</h1><form method="post" action="/login/mail"><input type="hidden" name="t" value="{}"><button type="submit" id="open-link">{label}</button></form>"#,
        escape(secret)
    );
    plain(StatusCode::OK, "Log in", &body)
}

/// `POST /login/mail`: does what the e-mail's link does (see the module documentation).
pub async fn open_link(State(state): State<AppState>, req: Request) -> Response {
    let addr = login::client_addr(&req);
    let user_agent = login::user_agent(req.headers());
    let Ok(form) = Params::from_request(req).await else {
        return gone();
    };
    let secret = form.get("t").unwrap_or_default();
    match state.open_link(secret, addr, user_agent).await {
        Ok(LinkOpened::Completed(done)) => login::completed(&state, done),
        Ok(LinkOpened::ConfirmedThere) => plain(
            StatusCode::OK,
            "Confirmed",
            r#"<h1 id="confirmed">Confirmed</h1><p>Go back to the device where you started: it logs you in.</p>"#,
        ),
        Ok(LinkOpened::Burned) => plain(
            StatusCode::UNAUTHORIZED,
            "Wrong number",
            r#"<h1 id="burned">Wrong number</h1><p class="error">That was not the number the login page showed. This login attempt no longer works: start again on your device.</p>"#,
        ),
        Ok(LinkOpened::Gone) => gone(),
        Err(e) => html::login_error(&state, e),
    }
}

/// The page of an unknown, expired or used link.
fn gone() -> Response {
    plain(
        StatusCode::GONE,
        "Link expired",
        r#"<h1 id="link-gone">This link no longer works</h1><p class="error">It has expired or was already used. Go back to the login page and ask for a new e-mail.</p>"#,
    )
}

fn plain(status: StatusCode, title: &str, body: &str) -> Response {
    let mut headers = html::html_headers("'none'");
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (status, headers, html::page(title, body)).into_response()
}

/// The answer to a sent link e-mail: the starting device goes to its wait page.
pub fn to_wait(login_id: &str) -> Response {
    Redirect::to(&wait_location(login_id)).into_response()
}
