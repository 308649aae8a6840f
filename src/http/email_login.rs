//! The `email` login method's pages ([`crate::flow::email`] has the steps): `POST /login/email`
//! sends a code to the address of the first page's form ([`super::html::form_response`]) and
//! shows the code form; `POST /login/code` checks the code and completes the login, or shows
//! why not. Both steps carry the login ID and CSRF token of the first page, so they only work
//! in the browser that started the login.

use axum::extract::{RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::AppState;
use super::form::Params;
use super::html::{self, alert, escape, hidden_fields, text};
use super::login::{self, Posted};
use crate::flow::email::{CodeOutcome, SendOutcome};
use crate::flow::login::{LoginError, LoginRequest};
use crate::oauth::otp::{SendGate, Verdict};

/// `POST /login/email`: sends a code to the address of the form and shows the code form.
pub async fn send_code(State(state): State<AppState>, req: Request) -> Response {
    let p = match login::posted(&state, req).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let raw = p.form.get("email").unwrap_or_default();
    match state.send_code(&p, p.browser(), raw).await {
        Ok(SendOutcome::Sent { email }) => code_page(&state, &p, &email, None, StatusCode::OK),
        Ok(SendOutcome::InvalidAddress) => {
            let msg = text(&p.login, "loginPageEmailInvalid", "Enter a valid e-mail address.");
            first_page(&state, &p, None, &msg, StatusCode::BAD_REQUEST)
        }
        Ok(SendOutcome::Throttled {
            email,
            gate,
            code_pending,
        }) => throttled(&state, &p, &email, gate, code_pending),
        Ok(SendOutcome::SendFailed { email }) => {
            let msg = text(
                &p.login,
                "loginPageEmailSendError",
                "The e-mail with your code could not be sent. Try again in a moment.",
            );
            first_page(&state, &p, Some(&email), &msg, StatusCode::SERVICE_UNAVAILABLE)
        }
        Err(e) => html::login_error(&state, e),
    }
}

/// `GET /login/direct?loginAttemptId=…&token=…`: the browser continues a login started by
/// `authenticate_direct` ([`crate::flow::direct`]): the code form, with the token as the
/// login's CSRF cookie.
pub async fn direct(State(state): State<AppState>, addr: super::ClientAddr, RawQuery(query): RawQuery) -> Response {
    let q = Params::from_urlencoded(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let (Some(id), Some(token)) = (q.get("loginAttemptId"), q.get("token")) else {
        return html::login_error(&state, LoginError::Incomplete);
    };
    let pending = match state.pending(id, token, Some(token)).await {
        Ok(p) => p,
        Err(e) => return html::login_error(&state, e),
    };
    let email = pending.login.email.clone().unwrap_or_default();
    let p = Posted {
        pending,
        form: Params::default(),
        addr: addr.0,
        device_cookie: None,
    };
    let mut resp = code_page(&state, &p, &email, None, StatusCode::OK);
    login::set_csrf_cookie(&state, &mut resp, token, p.login.embed);
    resp
}

/// `POST /login/code`: checks the code and completes the login.
pub async fn check_code(State(state): State<AppState>, req: Request) -> Response {
    let p = match login::posted(&state, req).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let code = p.form.get("code").unwrap_or_default();
    match state.check_code(&p, p.browser(), code).await {
        Ok(outcome) => refused_or_done(&state, &p, outcome),
        Err(e) => html::login_error(&state, e),
    }
}

/// The page of a code check: the redirect of a completed login, or why not.
fn refused_or_done(state: &AppState, p: &Posted, outcome: CodeOutcome) -> Response {
    match outcome {
        CodeOutcome::Completed(done) => login::completed(state, done),
        CodeOutcome::Throttled { email } => {
            let msg = "Too many wrong codes. Wait a few minutes, then ask for a new code.";
            code_page(state, p, &email, Some(msg), StatusCode::TOO_MANY_REQUESTS)
        }
        CodeOutcome::Malformed { email } => {
            let msg = text(
                &p.login,
                "loginPageCodeInvalid",
                "Enter the 5-digit code from the e-mail.",
            );
            code_page(state, p, &email, Some(&msg), StatusCode::BAD_REQUEST)
        }
        CodeOutcome::Refused(Verdict::Wrong { email, attempts_left }) => {
            let msg = match p.login.translations.get("loginPageEmailError") {
                Some(t) => t.clone(),
                None if attempts_left == 1 => "The code is wrong. 1 attempt left.".to_string(),
                None => format!("The code is wrong. {attempts_left} attempts left."),
            };
            code_page(state, p, &email, Some(&msg), StatusCode::UNAUTHORIZED)
        }
        CodeOutcome::Refused(Verdict::Burned { email }) => {
            let msg = text(
                &p.login,
                "loginPageCodeBurned",
                "The code was entered wrongly too often and no longer works. Ask for a new code.",
            );
            first_page(state, p, Some(&email), &msg, StatusCode::UNAUTHORIZED)
        }
        CodeOutcome::Refused(Verdict::Missing | Verdict::Malformed | Verdict::Accepted { .. }) => {
            first_page(state, p, None, &expired(&p.login), StatusCode::UNAUTHORIZED)
        }
    }
}

/// Whether the organization e-mails links or challenges rather than codes.
fn link_type(p: &Posted) -> bool {
    let email = p.org.spec.login_methods.email.as_ref();
    email.is_some_and(|e| e.attempt_type != crate::crd::EmailAttemptType::Code)
}

fn expired(login: &LoginRequest) -> String {
    text(
        login,
        "loginPageCodeExpired",
        "This code has expired or was already used. Ask for a new code.",
    )
}

/// The answer when sending is throttled: the code form if a code of this login already went
/// to that address (it still works), else the first page.
fn throttled(state: &AppState, p: &Posted, email: &str, gate: SendGate, code_pending: bool) -> Response {
    let msg = match gate {
        SendGate::TooSoon => text(
            &p.login,
            "emailWaitUntil",
            "A code was sent to this address moments ago. Check your inbox, or wait a minute and ask again.",
        ),
        _ => "Too many codes were asked for. Wait a while, then try again.".to_string(),
    };
    if code_pending {
        return code_page(state, p, email, Some(&msg), StatusCode::TOO_MANY_REQUESTS);
    }
    first_page(state, p, Some(email), &msg, StatusCode::TOO_MANY_REQUESTS)
}

/// The first page again with `message`, the address filled in when given.
fn first_page(state: &AppState, p: &Posted, email: Option<&str>, message: &str, status: StatusCode) -> Response {
    let mut login = p.login.clone();
    if let Some(e) = email {
        login.email = Some(e.to_string());
    }
    html::form_response(state, &login, &p.login_id, &p.csrf, Some(message), status)
}

/// The page asking for the code, with a button that sends a new one; with
/// `attemptType: Link | Challenge`, the redirect to the page that waits for the e-mail's link.
fn code_page(state: &AppState, p: &Posted, email: &str, message: Option<&str>, status: StatusCode) -> Response {
    if link_type(p) {
        return super::email_link::to_wait(&p.login_id);
    }
    let t = |key: &str, default: &str| escape(&text(&p.login, key, default));
    let minutes = state.settings.email_codes.ttl.as_secs().div_ceil(60);
    let hidden = hidden_fields(&p.login_id, &p.csrf);
    let content = format!(
        r#"<p>{sent} <strong>{email}</strong>. {valid}</p>{message}
<form method="post" action="/login/code">
{hidden}
<label for="code">{code_label}</label><input id="code" name="code" type="text" inputmode="numeric" pattern="[0-9]{{5}}" maxlength="5" autocomplete="one-time-code" required autofocus>
<button type="submit">{submit}</button>
</form>
<form method="post" action="/login/email">
{hidden}<input type="hidden" name="email" value="{email}">
<button type="submit" id="resend-code" class="secondary">{resend}</button>
</form>"#,
        sent = t("emailChallengeText", "We sent a 5-digit code to"),
        email = escape(email),
        valid = escape(&format!("It works for {minutes} minutes.")),
        message = alert(message),
        code_label = t("code", "Code"),
        submit = t("login", "Log in"),
        resend = t("resendCode", "Send a new code"),
    );
    html::login_page(state, &p.login, &content, status)
}
