//! Real clients no one here wrote, against the server started by the test (with the real
//! control plane behind it): `openid-client` (npm), `authlib` (PyPI), `jose` (npm) and the
//! `oauth2` crate. The login step is scripted (form post), the redirect read from `Location`.
//!
//! Node and Python projects live in `tests/clients/` with committed lockfiles; `.ci/run`
//! installs them (`npm ci`, a venv from `requirements.txt`).

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support;
use crate::support::oauth::{Server, location_param, login};

fn clients_dir(lang: &str) -> PathBuf {
    support::repo_root().join("tests/clients").join(lang)
}

/// Runs a command that prints one JSON object, failing the test with its stderr otherwise.
pub async fn run_json(mut cmd: tokio::process::Command) -> Value {
    let out = cmd.output().await.expect("spawn the client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("client printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// `node tests/clients/node/<script> '<json>'`.
pub async fn node(script: &str, input: &Value) -> Value {
    let dir = clients_dir("node");
    assert!(
        dir.join("node_modules").exists(),
        "run `npm ci` in tests/clients/node (.ci/run does)"
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(&dir).arg(script).arg(input.to_string());
    run_json(cmd).await
}

/// `tests/clients/python/.venv/bin/python <script> '<json>'`.
pub async fn python(script: &str, input: &Value) -> Value {
    let dir = clients_dir("python");
    let venv = dir.join(".venv/bin/python");
    assert!(
        venv.exists(),
        "create tests/clients/python/.venv from requirements.txt (.ci/run does)"
    );
    let mut cmd = tokio::process::Command::new(venv);
    cmd.current_dir(&dir).arg(script).arg(input.to_string());
    run_json(cmd).await
}

#[tokio::test]
async fn openid_client_discovery_code_pkce_refresh_and_client_credentials() {
    let server = Server::start("openid-client").await;
    let mut t = server
        .tenant("oidc", json!({}), &[("grace@example.com", "pw-grace-1")])
        .await;
    t.activate_secret(&server, "oidc-secret-1").await;
    let out = node(
        "openid_client.mjs",
        &json!({"issuer": t.issuer, "clientId": t.client_id, "clientSecret": t.secret,
                "redirectUri": "https://app.example.com/cb", "email": "grace@example.com", "password": "pw-grace-1"}),
    )
    .await;
    assert_eq!(out["issuer"], t.issuer.as_str());
    assert!(
        t.issuer.ends_with(&format!("/o/{}", t.client_id)),
        "shared-domain issuer: {}",
        t.issuer
    );
    assert_eq!(out["email"], "grace@example.com");
    assert_eq!(out["userinfo"]["email"], "grace@example.com");
    assert_eq!(out["userinfo"]["sub"], out["sub"]);
    assert_eq!(out["introspectionActive"], true);
    assert_eq!(out["refreshed"], true);
    assert_eq!(out["refreshReuse"], "invalid_grant");
    assert_eq!(out["clientCredentials"], true);
    // The reuse of the refresh token revoked its family: the first access token is dead too.
    let http = server.http(&[]);
    let ui = http
        .get(format!("{}/oauth2/userinfo", t.issuer))
        .bearer_auth(out["accessToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 401);
}

#[tokio::test]
async fn openid_client_on_an_own_subdomain_issuer() {
    let server = Server::start("openid-client-sub").await;
    let mut t = server
        .tenant(
            "subco",
            json!({"subdomain": "subco"}),
            &[("lin@example.com", "pw-lin-1")],
        )
        .await;
    t.activate_secret(&server, "subco-secret-1").await;
    assert!(
        t.issuer.starts_with("http://subco-") && t.issuer.ends_with(&format!(".localhost:{}", server.port)),
        "{}",
        t.issuer
    );
    // Node resolves *.localhost through the system resolver, which does not map it: the script
    // reaches the own host through a fetch that pins the name to loopback (see the script).
    let out = node(
        "openid_client.mjs",
        &json!({"issuer": t.issuer, "clientId": t.client_id, "clientSecret": t.secret,
                "redirectUri": "https://app.example.com/cb", "email": "lin@example.com", "password": "pw-lin-1",
                "pinLoopback": true}),
    )
    .await;
    assert_eq!(out["issuer"], t.issuer.as_str());
    assert_eq!(out["userinfo"]["email"], "lin@example.com");
}

#[tokio::test]
async fn authlib_code_pkce_and_client_credentials() {
    let server = Server::start("authlib").await;
    let mut t = server
        .tenant("pyco", json!({}), &[("alan@example.com", "pw-alan-1")])
        .await;
    t.activate_secret(&server, "pyco-secret-1").await;
    let out = python(
        "authlib_flow.py",
        &json!({"issuer": t.issuer, "clientId": t.client_id, "clientSecret": t.secret,
                "redirectUri": "https://app.example.com/cb", "email": "alan@example.com", "password": "pw-alan-1"}),
    )
    .await;
    assert_eq!(out["email"], "alan@example.com");
    assert_eq!(out["userinfo"]["email"], "alan@example.com");
    assert_eq!(out["idTokenAlg"], "ES256");
    assert_eq!(out["clientCredentials"], true);
    assert_eq!(out["ccTokenType"], "Bearer");
}

/// The `oauth2` crate (a generic OAuth 2 client) against the CentralAuth endpoints: its
/// authorization URL goes to `/login`, its token request to `/api/v1/verify`.
#[tokio::test]
async fn oauth2_crate_against_login_and_verify() {
    use oauth2::basic::BasicClient;
    use oauth2::{
        AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl, TokenResponse,
        TokenUrl,
    };

    let server = Server::start("oauth2-crate").await;
    let mut t = server
        .tenant("rustco", json!({}), &[("ferris@example.com", "pw-ferris-1")])
        .await;
    t.activate_secret(&server, "rustco-secret-1").await;
    let client = BasicClient::new(ClientId::new(t.client_id.clone()))
        .set_client_secret(ClientSecret::new(t.secret.clone()))
        .set_auth_uri(AuthUrl::new(format!("{}/login", t.origin())).unwrap())
        .set_token_uri(TokenUrl::new(format!("{}/api/v1/verify", t.origin())).unwrap())
        .set_redirect_uri(RedirectUrl::new("https://app.example.com/cb".into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let http = server.http(&[]);
    let resp = login(&http, url.as_str(), "ferris@example.com", "pw-ferris-1").await;
    assert_eq!(location_param(&resp, "state").as_deref(), Some(csrf.secret().as_str()));
    let code = location_param(&resp, "code").unwrap();
    let http_client = |req: oauth2::HttpRequest| {
        let http = http.clone();
        async move {
            let (parts, body) = req.into_parts();
            let resp = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut builder = oauth2::http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                builder = builder.header(k, v);
            }
            Ok::<_, reqwest::Error>(builder.body(resp.bytes().await?.to_vec()).unwrap())
        }
    };
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .expect("the oauth2 crate's code exchange");
    let payload =
        centralauth_operator::oauth::jwe::decrypt(t.secret.as_bytes(), token.access_token().secret()).unwrap();
    assert!(String::from_utf8(payload).unwrap().contains("sessionId"));
}
