//! The provider login's endpoints ([`crate::flow::providers`] has the steps): `POST
//! /login/provider` (a provider's button on the login form) redirects to the provider, and
//! `GET /oauth/providers/<name>/callback` (also under `/o/<clientId>` for organizations on
//! the shared domain) completes the login, or shows why not.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::form::Params;
use super::html;
use super::login::{self, CSRF_COOKIE};
use crate::flow::login::LoginError;
use crate::flow::providers::{Callback, CallbackBrowser};

/// `POST /login/provider`: the button of provider `provider` of the login form.
pub async fn start(State(state): State<AppState>, req: Request) -> Response {
    let p = match login::posted(&state, req).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let name = p.form.get("provider").unwrap_or_default().to_string();
    match state.start_provider(&p, &name).await {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(e) => html::login_error(&state, e),
    }
}

/// `GET /oauth/providers/<name>/callback`: the provider's answer.
pub async fn callback(
    State(state): State<AppState>,
    Path(path): Path<HashMap<String, String>>,
    addr: super::ClientAddr,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(name) = path.get("name") else {
        return html::login_error(&state, LoginError::ProviderUnknown);
    };
    let q = Params::from_urlencoded(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let cb = Callback {
        state: q.get("state").map(str::to_string),
        code: q.get("code").map(str::to_string),
        error: q.get("error").map(str::to_string),
    };
    let browser = CallbackBrowser {
        csrf_cookie: login::cookie(&headers, CSRF_COOKIE),
        addr: addr.0,
        user_agent: login::user_agent(&headers),
    };
    match state.provider_callback(name, cb, browser).await {
        Ok(done) => login::completed(&state, done),
        Err(e) => html::login_error(&state, e),
    }
}
