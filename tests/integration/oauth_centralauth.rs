//! The CentralAuth wire protocol end to end, driven as the official client drives it
//! (multipart verify with Basic auth and a UUID verifier, text/plain userinfo/logout).

use serde_json::{Value, json};

use crate::oauth_support::{Server, location_param, login};
use centralauth_operator::oauth::pkce::s256;

const VERIFIER: &str = "0d5c2f7e-6d1b-4c1a-9b1e-2f7d8e9a0b1c";

#[tokio::test]
async fn centralauth_web_flow_with_userinfo_and_logout() {
    let server = Server::start("ca-web").await;
    let mut t = server
        .tenant("acme", json!({}), &[("ada@example.com", "pw-ada-1")])
        .await;
    t.activate_secret(&server, "acme-secret-1").await;
    let http = server.http(&[]);
    let callback = "https://app.example.com/cb";
    let redirect = format!("{callback}?return_to=https%3A%2F%2Fapp.example.com%2Fdash");
    let url = reqwest::Url::parse_with_params(
        &format!("{}/login", t.origin()),
        &[
            ("client_id", t.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", redirect.as_str()),
            ("state", "st-1"),
            ("code_challenge", &s256(VERIFIER)),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let resp = login(&http, url.as_str(), "ada@example.com", "pw-ada-1").await;
    assert_eq!(resp.status(), 303);
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(&format!("{redirect}&code=")), "{loc}");
    assert_eq!(location_param(&resp, "state").as_deref(), Some("st-1"));
    assert_eq!(location_param(&resp, "iss").as_deref(), Some(t.issuer.as_str()));
    let code = location_param(&resp, "code").unwrap();
    let form = reqwest::multipart::Form::new()
        .text("code", code)
        .text("redirect_uri", callback)
        .text("code_verifier", VERIFIER);
    let verify = http
        .post(format!("{}/api/v1/verify", t.origin()))
        .basic_auth(&t.client_id, Some(&t.secret))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
    assert_eq!(verify.headers()["cache-control"], "no-store");
    let body: Value = verify.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    let payload = centralauth_operator::oauth::jwe::decrypt(t.secret.as_bytes(), access).unwrap();
    let payload: Value = serde_json::from_slice(&payload).unwrap();
    assert!(payload["sessionId"].is_string());
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    let userinfo = |token: String| {
        http.post(format!("{}/api/v1/userinfo?domain=https://app.example.com", t.origin()))
            .basic_auth(&t.client_id, Some(&t.secret))
            .header("content-type", "text/plain")
            .body(token)
            .send()
    };
    let user: Value = userinfo(access.to_string()).await.unwrap().json().await.unwrap();
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["organizationId"], t.client_id.as_str());
    let out = http
        .post(format!("{}/api/v1/logout", t.origin()))
        .basic_auth(&t.client_id, Some(&t.secret))
        .body(access.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let after = userinfo(access.to_string()).await.unwrap();
    assert_eq!(after.status(), 401);
    let err: Value = after.json().await.unwrap();
    assert_eq!(err["errorCode"], "sessionInvalid");
}
