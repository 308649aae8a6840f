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
use crate::crd::{LoginMethods, Provider, ProviderType};
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
        LoginError::DirectoryConflict(_) | LoginError::ProviderAccountConflict(_) => StatusCode::CONFLICT,
        LoginError::ProviderEmailUnverified(_) | LoginError::ProviderDenied(_) => StatusCode::FORBIDDEN,
        LoginError::ProviderUnavailable(_) | LoginError::ProviderRefused(_) => StatusCode::BAD_GATEWAY,
        LoginError::Passkey(crate::flow::passkey::webauthn::PasskeyError::Throttled) => StatusCode::TOO_MANY_REQUESTS,
        LoginError::Passkey(_) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The first page of a login: the password form, the "e-mail me a code" form, or one form
/// with both buttons when both methods are enabled (no JavaScript: the code button posts to
/// `/login/email` with `formaction` and skips the password's `required` with
/// `formnovalidate`); above it the passkey button when passkeys are offered, below it the
/// providers' buttons.
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
    let providers = provider_buttons(login, login_id, csrf, &methods.providers);
    let Some((action, buttons)) = address_form(login, &methods) else {
        return providers_only(state, login, &providers, error, status);
    };
    // CentralAuth's order: passkey, e-mail (and password), providers. The script comes last:
    // it reads the e-mail field the passkey login may use.
    let passkey = passkeys_offered(state, login).then(|| passkey_form(login, login_id, csrf));
    let content = format!(
        r#"<p>{intro}</p>{message}{passkey}
<form method="post" action="{action}">
{hidden}
<label for="email">{email_label}</label><input id="email" name="email" type="email" autocomplete="username" required value="{email}">
{buttons}
</form>{providers}{script}"#,
        intro = match login.affirm {
            true => t("loginPageAffirmIntro", "Confirm it is you: log in again to continue."),
            false => t("loginPageIntro", "Log in to continue."),
        },
        message = alert(error.or(login.message.as_deref())),
        passkey = passkey.as_deref().unwrap_or_default(),
        hidden = hidden_fields(login_id, csrf),
        email_label = t("emailAddress", "E-mail address"),
        email = escape(login.email.as_deref().unwrap_or_default()),
        script = if passkey.is_some() {
            format!("<script>{SCRIPT}</script>")
        } else {
            String::new()
        },
    );
    let mut resp = login_page(state, login, &content, status);
    if passkey.is_some() {
        allow_script(&mut resp, SCRIPT);
    }
    resp
}

/// The action and buttons of the address form: the password field and button, the "e-mail me
/// a code" button, or both; `None` when neither method is enabled.
fn address_form(login: &LoginRequest, methods: &LoginMethods) -> Option<(&'static str, String)> {
    let t = |key: &str, default: &str| escape(&text(login, key, default));
    let password = methods.passwords.is_some().then(|| {
        format!(
            r#"<label for="password">{label}</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{submit}</button>"#,
            label = t("password", "Password"),
            submit = t("login", "Log in"),
        )
    });
    let code_button = |extra: &str| code_button(&t("sendCode", "E-mail me a code"), extra);
    Some(match (password, methods.email.is_some()) {
        (Some(pw), true) => (
            "/login",
            format!(
                r#"{pw}<p class="or">{or}</p>{code}"#,
                or = t("or", "or"),
                code = code_button(r#" class="secondary" formaction="/login/email" formnovalidate"#)
            ),
        ),
        (Some(pw), false) => ("/login", pw),
        (None, true) => ("/login/email", code_button("")),
        (None, false) => return None,
    })
}

/// Whether the login page of `login` offers passkeys (the organization enables them and the
/// login is on its own host).
fn passkeys_offered(state: &AppState, login: &LoginRequest) -> bool {
    state
        .org_by_key(&login.request.org)
        .is_some_and(|o| state.passkeys_offered(&o, login))
}

/// The passkey part of the login page: a form the script submits with the assertion, and its
/// button (hidden until the script shows it).
fn passkey_form(login: &LoginRequest, login_id: &str, csrf: &str) -> String {
    let t = |key: &str, default: &str| escape(&text(login, key, default));
    format!(
        r#"<form id="passkey-form" method="post" action="/login/passkey">{hidden}<input type="hidden" name="email" value=""><input type="hidden" name="credential" value="">
<button type="button" id="passkey-login" class="secondary" hidden>{label}</button>
<p class="error" id="passkey-error" role="alert" data-cancelled="{cancelled}" hidden></p></form>"#,
        hidden = hidden_fields(login_id, csrf),
        label = t("passkeyLogin", "Log in with a passkey"),
        cancelled = t(
            "passkeyCancelled",
            "The passkey was not used. Try again, or log in another way."
        ),
    )
}

/// The "e-mail me a code" button with `extra` attributes.
fn code_button(label: &str, extra: &str) -> String {
    format!(r#"<button type="submit" id="send-code"{extra}>{label}</button>"#)
}

/// The first page of an organization whose only login methods are providers.
fn providers_only(
    state: &AppState,
    login: &LoginRequest,
    buttons: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let intro = escape(&text(login, "loginPageIntro", "Log in to continue."));
    let message = alert(error.or(login.message.as_deref()));
    login_page(state, login, &format!("<p>{intro}</p>{message}{buttons}"), status)
}

/// The providers' buttons, after the other methods (CentralAuth's order: passkey, e-mail,
/// providers): one form posting to `/login/provider`, one submit button per provider with its
/// icon (inline SVG, no script) and text.
pub fn provider_buttons(login: &LoginRequest, login_id: &str, csrf: &str, providers: &[Provider]) -> String {
    if providers.is_empty() {
        return String::new();
    }
    let with = text(login, "loginWith", "Log in with");
    let items: String = providers
        .iter()
        .map(|p| {
            format!(
                r#"<button type="submit" class="provider secondary" name="provider" value="{name}" id="provider-{name}">{icon}<span>{with} {label}</span></button>"#,
                name = escape(&p.name),
                icon = icon(p.type_),
                with = escape(&with),
                label = escape(&p.label()),
            )
        })
        .collect();
    format!(
        r#"<form method="post" action="/login/provider" class="providers">{hidden}{items}</form>"#,
        hidden = hidden_fields(login_id, csrf)
    )
}

/// A small inline SVG per provider type (decorative: the text names the provider).
fn icon(kind: ProviderType) -> &'static str {
    match kind {
        ProviderType::Google => {
            r##"<svg aria-hidden="true" width="18" height="18" viewBox="0 0 18 18" style="vertical-align:middle;margin-right:.5rem"><path fill="#4285F4" d="M17.6 9.2c0-.6-.1-1.2-.2-1.7H9v3.3h4.8a4.1 4.1 0 0 1-1.8 2.7v2.2h2.9c1.7-1.6 2.7-3.9 2.7-6.5z"/><path fill="#34A853" d="M9 18c2.4 0 4.5-.8 5.9-2.2l-2.9-2.2c-.8.5-1.8.9-3 .9-2.3 0-4.3-1.6-5-3.7H1v2.3A9 9 0 0 0 9 18z"/><path fill="#FBBC05" d="M4 10.8a5.4 5.4 0 0 1 0-3.5V5H1a9 9 0 0 0 0 8.1z"/><path fill="#EA4335" d="M9 3.6c1.3 0 2.5.5 3.4 1.3l2.6-2.6A9 9 0 0 0 1 5l3 2.3c.7-2.1 2.7-3.7 5-3.7z"/></svg>"##
        }
        ProviderType::Microsoft => {
            r##"<svg aria-hidden="true" width="18" height="18" viewBox="0 0 18 18" style="vertical-align:middle;margin-right:.5rem"><path fill="#F25022" d="M0 0h8.5v8.5H0z"/><path fill="#7FBA00" d="M9.5 0H18v8.5H9.5z"/><path fill="#00A4EF" d="M0 9.5h8.5V18H0z"/><path fill="#FFB900" d="M9.5 9.5H18V18H9.5z"/></svg>"##
        }
        ProviderType::GitHub => {
            r##"<svg aria-hidden="true" width="18" height="18" viewBox="0 0 16 16" style="vertical-align:middle;margin-right:.5rem"><path fill="#181717" d="M8 0a8 8 0 0 0-2.5 15.6c.4 0 .5-.2.5-.4v-1.5c-2.2.5-2.7-1-2.7-1-.4-.9-.9-1.2-.9-1.2-.7-.5.1-.5.1-.5.8.1 1.2.8 1.2.8.7 1.3 1.9.9 2.3.7.1-.5.3-.9.5-1.1-1.8-.2-3.6-.9-3.6-4 0-.9.3-1.6.8-2.1-.1-.2-.4-1 .1-2.1 0 0 .7-.2 2.2.8a7.5 7.5 0 0 1 4 0c1.5-1 2.2-.8 2.2-.8.4 1.1.2 1.9.1 2.1.5.6.8 1.3.8 2.1 0 3.1-1.9 3.8-3.6 4 .3.3.6.8.6 1.5v2.2c0 .2.1.5.6.4A8 8 0 0 0 8 0z"/></svg>"##
        }
        ProviderType::Oidc => {
            r##"<svg aria-hidden="true" width="18" height="18" viewBox="0 0 18 18" style="vertical-align:middle;margin-right:.5rem"><circle cx="6" cy="9" r="4" fill="none" stroke="#555" stroke-width="2"/><path d="M10 9h7M14 9v3M17 9v2" stroke="#555" stroke-width="2" fill="none"/></svg>"##
        }
    }
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
    fn provider_buttons_are_escaped_and_carry_the_login() {
        let login: LoginRequest = serde_json::from_value(serde_json::json!({
            "org": {"namespace": "ns", "name": "acme", "uid": "u"}, "clientId": "cid",
            "protocol": "OAuth", "redirectUri": "https://app.example.com/cb", "csrfHash": "h",
            "embed": false, "translations": {"loginWith": "Sign in with"}
        }))
        .unwrap();
        let provider: Provider = serde_json::from_value(serde_json::json!({
            "name": "corp", "type": "OIDC", "clientId": "c", "issuer": "https://idp.example",
            "clientSecretRef": {"name": "s", "key": "k"}, "displayName": "<Corp & Co>"
        }))
        .unwrap();
        let html = provider_buttons(&login, "login-1", "csrf-1", &[provider]);
        assert!(html.contains(r#"action="/login/provider""#), "{html}");
        assert!(
            html.contains(r#"name="provider" value="corp" id="provider-corp""#),
            "{html}"
        );
        assert!(html.contains("Sign in with &lt;Corp &amp; Co&gt;"), "{html}");
        assert!(html.contains(r#"name="login" value="login-1""#) && html.contains(r#"value="csrf-1""#));
        assert!(!html.contains("<script"), "no script");
        assert_eq!(provider_buttons(&login, "l", "c", &[]), "");
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
