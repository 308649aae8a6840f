//! A real browser: headless Debian Chromium (playwright-core) logs in through the HTML form of
//! an organization's own host (`<subdomain>.localhost`, which Chromium resolves to loopback)
//! and lands on the redirect URI with a code. Screenshots: `tests/artifacts/`.

use serde_json::json;

use crate::oauth_clients::node;
use crate::oauth_support::Server;
use crate::support;

#[tokio::test]
async fn chromium_logs_in_through_the_form_and_lands_on_the_callback_with_a_code() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "install Debian's chromium (`apt-get install chromium`; .ci/run does)"
    );
    let server = Server::start("browser").await;
    // The app's callback: a bare axum handler on another loopback port.
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = app.local_addr().unwrap().port();
    let handler = axum::Router::new().route(
        "/cb",
        axum::routing::get(|| async { axum::response::Html("<h1>Callback reached</h1>") }),
    );
    tokio::spawn(async move { axum::serve(app, handler).await.unwrap() });
    let mut t = server
        .tenant(
            "brow",
            json!({"subdomain": "brow", "allowLocalhost": true, "allowedOrigins": [format!("http://localhost:{app_port}")],
                   "redirectUris": [format!("http://localhost:{app_port}/cb")]}),
            &[("tim@example.com", "pw-tim-1")],
        )
        .await;
    let callback = format!("http://localhost:{app_port}/cb");
    t.activate_secret(&server, "brow-secret").await;
    let artifacts = support::repo_root().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let url = reqwest::Url::parse_with_params(
        &format!("{}/login", t.origin()),
        &[
            ("client_id", t.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", callback.as_str()),
            ("state", "browser-state"),
        ],
    )
    .unwrap();
    let out = node(
        "browser_login.mjs",
        &json!({"url": url.as_str(), "email": "tim@example.com", "password": "pw-tim-1",
                "callbackPrefix": callback, "artifacts": artifacts}),
    )
    .await;
    assert_eq!(out["landed"], callback.as_str());
    assert!(out["code"].as_str().is_some_and(|c| c.len() >= 43), "{out}");
    assert_eq!(out["state"], "browser-state");
    assert_eq!(out["iss"], t.issuer.as_str());
    assert_eq!(out["referrerPolicy"], "no-referrer");
    assert!(out["csp"].as_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(out["scripts"], 0, "the login page needs no JavaScript");
    assert!(artifacts.join("login-page.png").exists() && artifacts.join("callback.png").exists());
}
