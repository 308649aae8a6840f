//! The `email` login method: a 5-digit one-time code sent over SMTP.
//!
//! 1. The first login page (see [`super::login::form_response`]) posts the address to
//!    `POST /login/email`. Any valid address gets a code — with e-mail login the user *is*
//!    whoever controls the mailbox, so there is no account to reveal and every address gets the
//!    same answer. Sending is throttled per address and per client within the organization,
//!    or per device cookie for a browser that logged the account in before ([`otp::may_send`]).
//! 2. The code is stored for this login only ([`otp`]), e-mailed through the organization's
//!    SMTP server ([`crate::mail`]), and the page asks for it. A send failure withdraws the
//!    code, logs why (never the code, the body or a credential) and asks the user to retry.
//! 3. `POST /login/code` checks the guess: wrong codes are counted per code (burned after
//!    `max_attempts`) and per address and client of the organization, or per device cookie
//!    ([`throttle`]); the right one is taken once
//!    and the login completes exactly as a password login does (session, code, `state`, `iss`).
//!
//! Both steps carry the login ID and CSRF token of the first page, so they only work in the
//! browser that started the login.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lettre::transport::smtp::authentication::Credentials;

use super::AppState;
use super::error::ErrorPage;
use super::login::{self, Attempter, LoginRequest, Posted, alert, escape, hidden_fields, text};
use crate::crd::{EmailLogin, Organization};
use crate::mail::{self, CodeMail, MailError};
use crate::metrics::{LoginMethod, LoginOutcome};
use crate::oauth::otp::{self, SendGate, Verdict};
use crate::oauth::throttle::{self, Counters};

/// `POST /login/email`: sends a code to the address of the form and shows the code form.
pub async fn send_code(State(state): State<AppState>, req: Request) -> Response {
    let p = match login::posted(&state, req).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let Some(config) = p.org.spec.login_methods.email.clone() else {
        return login::method_disabled("e-mail");
    };
    let Some(email) = mail::recipient(p.form.get("email").unwrap_or_default()) else {
        let msg = text(&p.login, "loginPageEmailInvalid", "Enter a valid e-mail address.");
        return first_page(&state, &p, None, &msg, StatusCode::BAD_REQUEST);
    };
    let store = state.store.as_ref();
    let policy = &state.settings.email_codes;
    let attempter = Attempter::of(&state, &p, &email);
    let (sends, cooldown) = (
        attempter.counters(throttle::CODE_SENDS, policy.sends),
        attempter.cooldown_key(),
    );
    match otp::may_send(store, policy, &sends, &cooldown).await {
        Ok(SendGate::Allowed) => {}
        Ok(gate) => return throttled(&state, &p, &email, gate).await,
        Err(_) => return unavailable(),
    }
    let Ok(code) = otp::issue(store, policy, &p.login_id, &email).await else {
        return unavailable();
    };
    let _ = store.touch(&login::login_key(&p.login_id), login::LOGIN_TTL).await;
    let sent = deliver(&state, &p.org, &config, &email, &code).await;
    drop(code);
    if let Err(e) = sent {
        tracing::warn!(org = %p.login.org.name, error = %e, "the login code e-mail could not be sent");
        let _ = otp::withdraw(store, &p.login_id, &cooldown).await;
        let msg = text(
            &p.login,
            "loginPageEmailSendError",
            "The e-mail with your code could not be sent. Try again in a moment.",
        );
        return first_page(&state, &p, Some(&email), &msg, StatusCode::SERVICE_UNAVAILABLE);
    }
    let _ = sends.record(store).await;
    tracing::info!(org = %p.login.org.name, "login code e-mail sent");
    code_page(&state, &p, &email, None, StatusCode::OK)
}

/// `POST /login/code`: checks the code and completes the login.
pub async fn check_code(State(state): State<AppState>, req: Request) -> Response {
    let p = match login::posted(&state, req).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    if p.org.spec.login_methods.email.is_none() {
        return login::method_disabled("e-mail");
    }
    let store = state.store.as_ref();
    let policy = &state.settings.email_codes;
    let Ok(pending) = otp::pending_email(store, &p.login_id).await else {
        return unavailable();
    };
    let Some(email) = pending else {
        state.metrics.login(LoginMethod::email, LoginOutcome::failure);
        return first_page(&state, &p, None, &expired(&p.login), StatusCode::UNAUTHORIZED);
    };
    let failures = Attempter::of(&state, &p, &email).counters(throttle::EMAIL_CODE, policy.failures);
    if failures.over(store).await.unwrap_or(true) {
        state.metrics.login(LoginMethod::email, LoginOutcome::failure);
        let msg = "Too many wrong codes. Wait a few minutes, then ask for a new code.";
        return code_page(&state, &p, &email, Some(msg), StatusCode::TOO_MANY_REQUESTS);
    }
    let verdict = match otp::verify(store, policy, &p.login_id, p.form.get("code").unwrap_or_default()).await {
        Ok(v) => v,
        Err(_) => return unavailable(),
    };
    if let Verdict::Accepted { email } = verdict {
        return login::complete(&state, &p, email, LoginMethod::email).await;
    }
    refuse(&state, &p, verdict, &failures).await
}

/// The answer to a code that did not log the user in; wrong guesses count in `failures`.
async fn refuse(state: &AppState, p: &Posted, verdict: Verdict, failures: &Counters) -> Response {
    let failed = || {
        state.metrics.login(LoginMethod::email, LoginOutcome::failure);
        failures.record(state.store.as_ref())
    };
    match verdict {
        Verdict::Malformed => {
            let email = otp::pending_email(state.store.as_ref(), &p.login_id)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            let msg = text(
                &p.login,
                "loginPageCodeInvalid",
                "Enter the 5-digit code from the e-mail.",
            );
            code_page(state, p, &email, Some(&msg), StatusCode::BAD_REQUEST)
        }
        Verdict::Wrong { email, attempts_left } => {
            let _ = failed().await;
            let msg = match p.login.translations.get("loginPageEmailError") {
                Some(t) => t.clone(),
                None if attempts_left == 1 => "The code is wrong. 1 attempt left.".to_string(),
                None => format!("The code is wrong. {attempts_left} attempts left."),
            };
            code_page(state, p, &email, Some(&msg), StatusCode::UNAUTHORIZED)
        }
        Verdict::Burned { email } => {
            let _ = failed().await;
            let msg = text(
                &p.login,
                "loginPageCodeBurned",
                "The code was entered wrongly too often and no longer works. Ask for a new code.",
            );
            first_page(state, p, Some(&email), &msg, StatusCode::UNAUTHORIZED)
        }
        Verdict::Missing | Verdict::Accepted { .. } => {
            state.metrics.login(LoginMethod::email, LoginOutcome::failure);
            first_page(state, p, None, &expired(&p.login), StatusCode::UNAUTHORIZED)
        }
    }
}

fn expired(login: &LoginRequest) -> String {
    text(
        login,
        "loginPageCodeExpired",
        "This code has expired or was already used. Ask for a new code.",
    )
}

/// Sends the code through the organization's SMTP server.
async fn deliver(
    state: &AppState,
    org: &Arc<Organization>,
    config: &EmailLogin,
    email: &str,
    code: &str,
) -> Result<(), MailError> {
    let credentials = smtp_credentials(state, org, config)?;
    let mail = CodeMail {
        to: email,
        organization: &org.spec.display_name,
        code,
        valid_for: state.settings.email_codes.ttl,
    };
    state.mailer.send_code(config, credentials, &mail).await
}

/// `username` and `password` of the credentials Secret, exactly as stored (no trimming),
/// from the watched Secrets in memory.
fn smtp_credentials(
    state: &AppState,
    org: &Organization,
    config: &EmailLogin,
) -> Result<Option<Credentials>, MailError> {
    let Some(name) = &config.credentials_secret_name else {
        return Ok(None);
    };
    let ns = org.metadata.namespace.as_deref().unwrap_or_default();
    let value = |key: &str| {
        state
            .secrets
            .value(ns, name, key)
            .and_then(|v| String::from_utf8(v).ok())
    };
    match (value("username"), value("password")) {
        (Some(user), Some(password)) => Ok(Some(Credentials::new(user, password))),
        _ => Err(MailError::Credentials(format!("{ns}/{name}"))),
    }
}

/// The answer when sending is throttled: the code form if a code of this login already went
/// to that address (it still works), else the first page.
async fn throttled(state: &AppState, p: &Posted, email: &str, gate: SendGate) -> Response {
    let msg = match gate {
        SendGate::TooSoon => text(
            &p.login,
            "emailWaitUntil",
            "A code was sent to this address moments ago. Check your inbox, or wait a minute and ask again.",
        ),
        _ => "Too many codes were asked for. Wait a while, then try again.".to_string(),
    };
    let pending = otp::pending_email(state.store.as_ref(), &p.login_id)
        .await
        .ok()
        .flatten();
    if pending.as_deref() == Some(email) {
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
    login::form_response(state, &login, &p.login_id, &p.csrf, Some(message), status)
}

/// The page asking for the code, with a button that sends a new one.
fn code_page(state: &AppState, p: &Posted, email: &str, message: Option<&str>, status: StatusCode) -> Response {
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
    login::login_page(state, &p.login, &content, status)
}

fn unavailable() -> Response {
    ErrorPage {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "the session store is unavailable; retry later".into(),
    }
    .into_response()
}
