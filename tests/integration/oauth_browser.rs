//! A real browser: headless Debian Chromium (playwright-core) logs in through the HTML form of
//! an organization's own host (`<subdomain>.localhost`, which Chromium resolves to loopback)
//! — with a password, and with a code e-mailed through a real SMTP server — and lands on the
//! redirect URI with a code — also inside an iframe of another site (`embed=1`).
//! Screenshots: `tests/artifacts/`.

use serde_json::{Value, json};

use crate::oauth_clients::node;
use crate::support;
use crate::support::oauth::{Server, Tenant};
use crate::support::smtp::{Security, SmtpServer};

/// The app: a bare axum server on another loopback port with the callback `/cb`, and
/// `/embed?src=<url>`, a page that shows `<url>` in an iframe (which may use passkeys, as the
/// official client's iframe allows). Returns its port and the callback URL.
pub(crate) async fn callback_app() -> (u16, String) {
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = app.local_addr().unwrap().port();
    let embed = |q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
        let src = q["src"].replace('&', "&amp;").replace('"', "&quot;");
        axum::response::Html(format!(
            "<h1>The app</h1><iframe src=\"{src}\" width=\"600\" height=\"600\" \
             allow=\"publickey-credentials-get *; publickey-credentials-create *\"></iframe>"
        ))
    };
    let handler = axum::Router::new()
        .route(
            "/cb",
            axum::routing::get(|| async { axum::response::Html("<h1>Callback reached</h1>") }),
        )
        .route("/embed", axum::routing::get(embed));
    tokio::spawn(async move { axum::serve(app, handler).await.unwrap() });
    (app_port, format!("http://localhost:{app_port}/cb"))
}

/// The organization's spec for a callback on `app_port`, with `methods` if given.
fn spec(app_port: u16, methods: Option<Value>) -> Value {
    let mut spec = json!({"subdomain": "brow", "allowLocalhost": true,
        "allowedOrigins": [format!("http://localhost:{app_port}")],
        "redirectUris": [format!("http://localhost:{app_port}/cb")]});
    if let Some(m) = methods {
        spec["loginMethods"] = m;
    }
    spec
}

/// The CentralAuth login URL of `t` for `callback`.
fn login_url(t: &Tenant, callback: &str) -> String {
    reqwest::Url::parse_with_params(
        &format!("{}/login", t.origin()),
        &[
            ("client_id", t.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", callback),
            ("state", "browser-state"),
        ],
    )
    .unwrap()
    .to_string()
}

/// What every browser login must show: the callback reached with code, state and iss, and the
/// page's headers.
fn assert_landed(out: &Value, t: &Tenant, callback: &str) {
    assert_eq!(out["landed"], callback);
    assert!(out["code"].as_str().is_some_and(|c| c.len() >= 43), "{out}");
    assert_eq!(out["state"], "browser-state");
    assert_eq!(out["iss"], t.issuer.as_str());
    assert_eq!(out["referrerPolicy"], "no-referrer");
    assert!(out["csp"].as_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(out["scripts"], 0, "the login page needs no JavaScript");
}

#[tokio::test]
async fn chromium_logs_in_through_the_form_and_lands_on_the_callback_with_a_code() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "install Debian's chromium (`apt-get install chromium`; .ci/run does)"
    );
    let server = Server::start("browser").await;
    let (app_port, callback) = callback_app().await;
    let mut t = server
        .tenant("brow", spec(app_port, None), &[("tim@example.com", "pw-tim-1")])
        .await;
    t.activate_secret(&server, "brow-secret").await;
    let artifacts = support::repo_root().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let out = node(
        "browser_login.mjs",
        &json!({"url": login_url(&t, &callback), "email": "tim@example.com", "password": "pw-tim-1",
                "callbackPrefix": callback, "artifacts": artifacts}),
    )
    .await;
    assert_landed(&out, &t, &callback);
    assert!(artifacts.join("login-page.png").exists() && artifacts.join("callback.png").exists());
}

#[tokio::test]
async fn chromium_logs_in_with_a_code_from_a_real_e_mail() {
    let server = Server::start("browser-email").await;
    let smtp = SmtpServer::start(Security::None, None, None).await;
    let (app_port, callback) = callback_app().await;
    let methods = json!({"email": smtp.login_method(Security::None, None)});
    let t = server.tenant("browmail", spec(app_port, Some(methods)), &[]).await;
    let artifacts = support::repo_root().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let out = node(
        "browser_login.mjs",
        &json!({"url": login_url(&t, &callback), "email": "uma@example.com", "maildir": smtp.maildir,
                "shots": "email-", "callbackPrefix": callback, "artifacts": artifacts}),
    )
    .await;
    assert_landed(&out, &t, &callback);
    assert_eq!(smtp.received(), 1);
    assert!(artifacts.join("email-code-page.png").exists());
}

#[tokio::test]
async fn chromium_logs_in_inside_an_iframe_of_an_allowed_site_with_embed() {
    let server = Server::start("browser-embed").await;
    let (app_port, callback) = callback_app().await;
    // 127.0.0.1 is another site than `<subdomain>.localhost`: the frame is cross-site, where
    // browsers drop `SameSite=Lax` cookies (the CSRF cookie would never come back).
    let parent = format!("http://127.0.0.1:{app_port}");
    let mut spec = spec(app_port, None);
    spec["allowedOrigins"].as_array_mut().unwrap().push(json!(parent));
    let t = server.tenant("embed", spec, &[("eve@example.com", "pw-eve-1")]).await;
    let url = format!("{}&embed=1", login_url(&t, &callback));
    let embed_url = reqwest::Url::parse_with_params(&format!("{parent}/embed"), &[("src", &url)]).unwrap();
    let artifacts = support::repo_root().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let out = node(
        "browser_login.mjs",
        &json!({"url": url, "embedUrl": embed_url.as_str(), "email": "eve@example.com",
                "password": "pw-eve-1", "shots": "embed-", "callbackPrefix": callback,
                "artifacts": artifacts}),
    )
    .await;
    assert_eq!(out["landed"], callback.as_str());
    assert!(out["code"].as_str().is_some_and(|c| c.len() >= 43), "{out}");
    assert_eq!(out["iss"], t.issuer.as_str());
    let csp = out["csp"].as_str().unwrap();
    assert!(
        csp.contains(&format!("frame-ancestors http://localhost:{app_port} {parent}")),
        "{csp}"
    );
    assert_eq!(
        out["xFrameOptions"],
        Value::Null,
        "CSP frame-ancestors alone governs framing"
    );
    assert!(artifacts.join("embed-callback.png").exists());
}
