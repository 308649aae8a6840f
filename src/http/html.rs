//! HTML rendering: the login pages (the organization's logo and name, the forms of its login
//! methods, texts replaced by `translations`) and error pages (a login step's
//! [`LoginError`] becomes its page in [`login_error`], the one place), with the security headers of
//! every page. Plain server-rendered HTML: no JavaScript, `Referrer-Policy: no-referrer`,
//! `Content-Security-Policy: frame-ancestors 'none'` (or the organization's `allowedOrigins`
//! with `embed=1`), `X-Frame-Options: DENY` unless embedded.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::passkey_script::SCRIPT;
use crate::flow::login::LoginError;
use crate::flow::login::LoginRequest;

/// An error page shown in the browser (status 400 unless said otherwise); never redirects.
pub struct ErrorPage {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong and what to fix (no secrets).
    pub message: String,
}

impl ErrorPage {
    /// A 400 page.
    pub fn bad_request(message: impl Into<String>) -> ErrorPage {
        ErrorPage {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let body = page(
            "Login error",
            &format!("<p class=\"error\">{}</p>", escape(&self.message)),
        );
        (self.status, html_headers("'none'"), body).into_response()
    }
}

/// The page of a login step that cannot go on. A CSRF mismatch in an embedded login keeps
/// the page framable and names the likely cause: a browser that blocks cookies in frames.
pub fn login_error(state: &AppState, e: LoginError) -> Response {
    let status = status_of(&e);
    if let LoginError::Csrf(login) = &e
        && login.embed
    {
        let message = "This browser did not send the login cookie back to the embedded page (it may \
            block cookies in frames). Open the login in its own window instead.";
        let content = format!("<p class=\"error\">{}</p>", escape(message));
        return login_page(state, login, &content, StatusCode::FORBIDDEN);
    }
    ErrorPage {
        status,
        message: e.to_string(),
    }
    .into_response()
}

/// The HTTP status of a login step that cannot go on.
pub fn status_of(e: &LoginError) -> StatusCode {
    match e {
        LoginError::Unavailable | LoginError::DirectoryUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        LoginError::Csrf(_) | LoginError::DomainNotAllowed(_) | LoginError::NotInvited | LoginError::Blocked => {
            StatusCode::FORBIDDEN
        }
        LoginError::DirectoryConflict(_) => StatusCode::CONFLICT,
        LoginError::Passkey(crate::flow::passkey::webauthn::PasskeyError::Throttled) => StatusCode::TOO_MANY_REQUESTS,
        LoginError::Passkey(_) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    }
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
        .org_by_key(&login.request.org)
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
    with_passkeys(state, login, login_id, csrf, content, status)
}

/// The login page with `content`, plus the passkey form and its script when the organization
/// offers passkeys on this host.
fn with_passkeys(
    state: &AppState,
    login: &LoginRequest,
    login_id: &str,
    csrf: &str,
    content: String,
    status: StatusCode,
) -> Response {
    let offered = state
        .org_by_key(&login.request.org)
        .is_some_and(|o| state.passkeys_offered(&o, login));
    if !offered {
        return login_page(state, login, &content, status);
    }
    let content = format!("{content}{}", passkey_form(login, login_id, csrf));
    let mut resp = login_page(state, login, &content, status);
    allow_script(&mut resp, SCRIPT);
    resp
}

/// The passkey part of the login page: a form the script submits with the assertion, and its
/// button (hidden until the script shows it).
fn passkey_form(login: &LoginRequest, login_id: &str, csrf: &str) -> String {
    let t = |key: &str, default: &str| escape(&text(login, key, default));
    format!(
        r#"<form id="passkey-form" method="post" action="/login/passkey">{hidden}<input type="hidden" name="email" value=""><input type="hidden" name="credential" value="">
<button type="button" id="passkey-login" class="secondary" hidden>{label}</button>
<p class="error" id="passkey-error" role="alert" data-cancelled="{cancelled}" hidden></p></form>
<script>{SCRIPT}</script>"#,
        hidden = hidden_fields(login_id, csrf),
        label = t("passkeyLogin", "Log in with a passkey"),
        cancelled = t(
            "passkeyCancelled",
            "The passkey was not used. Try again, or log in another way."
        ),
    )
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
    let org = state.org_by_key(&login.request.org);
    let name = org.as_ref().map(|o| o.spec.display_name.clone()).unwrap_or_default();
    let logo = org
        .as_ref()
        .and_then(|o| o.spec.logo_url.clone())
        .map(|u| format!("<img src=\"{}\" alt=\"\" height=\"48\">", escape(&u)))
        .unwrap_or_default();
    let look = super::theme::look(org.as_ref().and_then(|o| o.spec.theme.as_ref()));
    let body = format!(
        r#"{image}<main class="block">{logo}<h1>{}</h1>{content}</main>"#,
        escape(&name),
        image = look.image_url.map_or(String::new(), |u| {
            format!(r#"<div class="image"><img src="{}" alt=""></div>"#, escape(&u))
        })
    );
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
    (status, html_headers(&ancestors), styled_page(&name, &look.css, &body)).into_response()
}

/// Lets `resp`'s page run the inline `script` (and fetch from its own origin): its SHA-256 is
/// added to the page's CSP, so no other script runs. The page is not cached.
pub fn allow_script(resp: &mut Response, script: &str) {
    use base64::Engine;
    let digest = ring::digest::digest(&ring::digest::SHA256, script.as_bytes());
    let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
    let headers = resp.headers_mut();
    if let Some(csp) = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
    {
        let csp = csp.replacen(
            "default-src 'none';",
            &format!("default-src 'none'; script-src 'sha256-{hash}'; connect-src 'self';"),
            1,
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
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

/// A whole HTML page with the style sheet `css` (a login page's theme, [`super::theme`]).
pub fn styled_page(title: &str, css: &str, body: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{}</title>
<style>{css}</style>
</head><body>{body}</body></html>"#,
        escape(title)
    )
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
    fn text_is_escaped_for_elements_and_attributes() {
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
