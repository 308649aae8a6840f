//! OIDC `prompt` and `max_age` at `/oauth2/authorize` with real requests: when the browser's
//! session is reused, when the login form is shown, and when the client gets `login_required`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::oauth_attacks::{CB, USER, V, authorize, exchange, setup};
use crate::support::oauth::{Server, Tenant, cookie_set, location_param, location_params, login, login_with};

/// GETs an authorization URL with `extra` parameters from a browser holding `cookie`.
async fn ask(server: &Server, t: &Tenant, extra: &[(&str, &str)], cookie: Option<&str>) -> reqwest::Response {
    let mut req = server.http(&[]).get(authorize(t, extra));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

/// The claims of the ID token a code exchanges for.
async fn id_token_claims(server: &Server, t: &Tenant, code: &str) -> Value {
    let (status, tokens) = exchange(server, t, code, V).await;
    assert_eq!(status, 200, "{tokens}");
    let payload = tokens["id_token"].as_str().unwrap().split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A redirect to the client with `error`, `state` and `iss`, and no code.
fn assert_error_redirect(r: &reqwest::Response, t: &Tenant, error: &str) {
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(CB), "{location}");
    assert_eq!(location_param(r, "error").as_deref(), Some(error));
    assert_eq!(location_param(r, "state").as_deref(), Some("s"));
    assert_eq!(location_param(r, "iss").as_deref(), Some(t.issuer.as_str()));
    assert!(location_param(r, "code").is_none());
}

#[tokio::test]
async fn prompt_none_never_shows_a_page() {
    let (server, t) = setup("prompt-none").await;
    let r = ask(&server, &t, &[("prompt", "none")], None).await;
    assert_error_redirect(&r, &t, "login_required");
    for bad in [[("prompt", "none login")], [("max_age", "soon")]] {
        let r = ask(&server, &t, &bad, None).await;
        assert_error_redirect(&r, &t, "invalid_request");
    }
    let first = login(&server.http(&[]), &authorize(&t, &[]), USER.0, USER.1).await;
    let session = cookie_set(&first, "ca_session=").expect("a session cookie");
    let r = ask(&server, &t, &[("prompt", "none")], Some(&session)).await;
    assert_eq!(r.status(), 303);
    let params = location_params(&r);
    assert!(params.iter().any(|(k, _)| k == "code"), "{params:?}");
    assert!(!params.iter().any(|(k, _)| k == "error"), "{params:?}");
}

#[tokio::test]
async fn prompt_login_select_account_and_max_age_ask_again_consent_does_not() {
    let (server, t) = setup("prompt-values").await;
    let first = login(&server.http(&[]), &authorize(&t, &[]), USER.0, USER.1).await;
    let session = cookie_set(&first, "ca_session=").unwrap();
    let auth_time = id_token_claims(&server, &t, &location_param(&first, "code").unwrap()).await["auth_time"]
        .as_i64()
        .expect("auth_time in the ID token");
    for (prompt, shows_form) in [
        ("login", true),
        ("select_account", true),
        ("consent", false),
        ("", false),
    ] {
        let r = ask(&server, &t, &[("prompt", prompt)], Some(&session)).await;
        let expected = if shows_form { 200 } else { 303 };
        assert_eq!(r.status(), expected, "prompt={prompt}");
    }
    let r = ask(&server, &t, &[("max_age", "3600")], Some(&session)).await;
    let claims = id_token_claims(&server, &t, &location_param(&r, "code").unwrap()).await;
    assert_eq!(
        claims["auth_time"], auth_time,
        "a young enough session is reused: {claims}"
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = ask(&server, &t, &[("max_age", "1")], Some(&session)).await;
    assert_eq!(r.status(), 200, "an older session asks for the password again");
    let r = ask(&server, &t, &[("max_age", "1"), ("prompt", "none")], Some(&session)).await;
    assert_error_redirect(&r, &t, "login_required");
    let again = login_with(
        &server.http(&[]),
        &authorize(&t, &[("max_age", "1")]),
        USER.0,
        USER.1,
        &[session],
    )
    .await;
    let claims = id_token_claims(&server, &t, &location_param(&again, "code").unwrap()).await;
    assert!(claims["auth_time"].as_i64().unwrap() >= auth_time + 2, "{claims}");
}
