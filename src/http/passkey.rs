//! The passkey pages and calls ([`crate::flow::passkey`] has the steps). Passkeys need
//! JavaScript: one inline [`SCRIPT`], allowed by its CSP hash, shows the passkey buttons only
//! when the browser has WebAuthn; without it every other method works as before.
//!
//! - `POST /login/passkey/options` (the login's hidden fields, `email` for e-mail first): the
//!   request options (JSON) of a new ceremony of this login.
//! - `POST /login/passkey` (the hidden fields and `credential`, the assertion's JSON): logs in.
//! - `GET /login/passkey/offer?o=…` (with the session cookie the e-mail login set): "Create a
//!   passkey" or "Not now".
//! - `POST /login/passkey/register/options` (`offer`): the creation options (JSON).
//! - `POST /login/passkey/register` (`offer`, `credential`): records the passkey, then goes on
//!   to the client like `POST /login/passkey/skip` (`offer`) does without one.

use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::AppState;
use super::form::Params;
use super::html::{self, escape, text};
use super::login::{self, SESSION_COOKIE};
use super::passkey_script::SCRIPT;
use crate::flow::login::LoginError;

/// `POST /login/passkey/options`: see the module documentation.
pub async fn login_options(State(state): State<AppState>, req: Request) -> Response {
    let p = match login::posted(&state, req).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let email = p.form.get("email").filter(|e| !e.trim().is_empty());
    json_answer(state.passkey_options(&p, email).await)
}

/// `POST /login/passkey`: see the module documentation.
pub async fn login(State(state): State<AppState>, req: Request) -> Response {
    let p = match login::posted(&state, req).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let credential = p.form.get("credential").unwrap_or_default();
    match state.passkey_login(&p, credential.as_bytes()).await {
        Ok(done) => login::completed(&state, done),
        Err(e @ LoginError::Passkey(_)) => html::form_response(
            &state,
            &p.login,
            &p.login_id,
            &p.csrf,
            Some(&e.to_string()),
            html::status_of(&e),
        ),
        Err(e) => html::login_error(&state, e),
    }
}

/// `GET /login/passkey/offer?o=…`: see the module documentation.
pub async fn offer(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let q = Params::from_urlencoded(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let offer_id = q.get("o").unwrap_or_default();
    let session = login::cookie(&headers, SESSION_COOKIE);
    let offer = match state.offered(offer_id, session.as_deref()).await {
        Ok(offer) => offer,
        Err(e) => return html::login_error(&state, e),
    };
    let t = |key: &str, default: &str| escape(&text(&offer.login, key, default));
    let hidden = format!(r#"<input type="hidden" name="offer" value="{}">"#, escape(offer_id));
    let content = format!(
        r#"<p>{logged_in} <strong>{email}</strong>.</p><p>{intro}</p>
<form id="passkey-register" method="post" action="/login/passkey/register">{hidden}<input type="hidden" name="credential" value="">
<button type="button" id="passkey-create" hidden>{create}</button></form>
<p class="error" id="passkey-error" role="alert" data-cancelled="{cancelled}" hidden></p>
<form method="post" action="/login/passkey/skip">{hidden}<button type="submit" id="passkey-skip" class="secondary">{skip}</button></form>
<script>{SCRIPT}</script>"#,
        logged_in = t("passkeyLoggedIn", "You are logged in as"),
        email = escape(&offer.email),
        intro = t(
            "passkeyOfferIntro",
            "Create a passkey to log in next time with your fingerprint, face or screen lock, without waiting for an e-mail."
        ),
        create = t("passkeyCreate", "Create a passkey"),
        cancelled = t(
            "passkeyNotCreated",
            "No passkey was created. Try again, or continue without one."
        ),
        skip = t("passkeySkip", "Not now"),
    );
    let mut resp = html::login_page(&state, &offer.login, &content, StatusCode::OK);
    html::allow_script(&mut resp, SCRIPT);
    resp
}

/// `POST /login/passkey/register/options`: see the module documentation.
pub async fn registration_options(State(state): State<AppState>, req: Request) -> Response {
    let (session, form) = match session_form(req).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let offer_id = form.get("offer").unwrap_or_default();
    json_answer(state.registration_options(offer_id, session.as_deref()).await)
}

/// `POST /login/passkey/register`: see the module documentation.
pub async fn register(State(state): State<AppState>, req: Request) -> Response {
    let (session, form) = match session_form(req).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let offer_id = form.get("offer").unwrap_or_default();
    let credential = form.get("credential").unwrap_or_default();
    match state
        .register_passkey(offer_id, session.as_deref(), credential.as_bytes())
        .await
    {
        Ok(location) => Redirect::to(&location).into_response(),
        Err(e) => html::login_error(&state, e),
    }
}

/// `POST /login/passkey/skip`: see the module documentation.
pub async fn skip(State(state): State<AppState>, req: Request) -> Response {
    let (session, form) = match session_form(req).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let offer_id = form.get("offer").unwrap_or_default();
    match state.skip_offer(offer_id, session.as_deref()).await {
        Ok(location) => Redirect::to(&location).into_response(),
        Err(e) => html::login_error(&state, e),
    }
}

/// The session cookie and the posted form of an offer step.
async fn session_form(req: Request) -> Result<(Option<String>, Params), Response> {
    let session = login::cookie(req.headers(), SESSION_COOKIE);
    let form = Params::from_request(req)
        .await
        .map_err(|e| json_error(StatusCode::BAD_REQUEST, &e.to_string()))?;
    Ok((session, form))
}

/// Options as JSON, or `{message}` with the error's status.
fn json_answer(result: Result<serde_json::Value, LoginError>) -> Response {
    match result {
        Ok(options) => no_store(axum::Json(options).into_response()),
        Err(e) => json_error(html::status_of(&e), &e.to_string()),
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    no_store((status, axum::Json(serde_json::json!({ "message": message }))).into_response())
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
