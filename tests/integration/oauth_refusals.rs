//! The attack suite, continued: revocation and introspection only for the client a token was
//! issued to (RFC 7009 / 7662 client authentication), JSON errors everywhere under `/api/`,
//! and `allowedOrigins` wildcards on public suffixes that match nothing.

use serde_json::{Value, json};

use crate::oauth_attacks::{CB, USER, V, authorize, code, exchange, setup};
use crate::support::oauth::{Server, Tenant, location_param, login};
use centralauth_operator::oauth::pkce::s256;

/// `POST <issuer>/oauth2/<endpoint>` with `token`, authenticated by `auth` (`None`: no client
/// authentication at all): status, `WWW-Authenticate`, body.
async fn post_token(
    server: &Server,
    issuer: &str,
    endpoint: &str,
    token: &str,
    auth: Option<(&str, Option<&str>)>,
) -> (u16, Option<String>, Value) {
    let mut form = vec![("token", token)];
    let mut req = server.http(&[]).post(format!("{issuer}/oauth2/{endpoint}"));
    match auth {
        Some((id, Some(secret))) => req = req.basic_auth(id, Some(secret)),
        Some((id, None)) => form.push(("client_id", id)),
        None => {}
    }
    let r = req.form(&form).send().await.unwrap();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), www, r.json().await.unwrap_or(Value::Null))
}

/// A 401 `invalid_client` with a `WWW-Authenticate` challenge (RFC 6749 §5.2), nothing else.
fn assert_invalid_client((status, www, body): (u16, Option<String>, Value), auth: Option<(&str, Option<&str>)>) {
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{auth:?}"
    );
    assert!(www.is_some_and(|w| w.starts_with("Basic")), "{auth:?}");
    assert!(body.get("active").is_none(), "{auth:?}");
}

async fn active(server: &Server, t: &Tenant, token: &str) -> bool {
    let (_, _, body) = post_token(
        server,
        &t.issuer,
        "introspect",
        token,
        Some((&t.client_id, Some(&t.secret))),
    )
    .await;
    body["active"] == true
}

#[tokio::test]
async fn attack_revoke_by_another_client_or_without_a_secret_changes_nothing() {
    let (server, a) = setup("atk-revoke").await;
    let mut b = server.tenant("beta", json!({}), &[USER]).await;
    b.activate_secret(&server, "beta-secret").await;
    let (_, tokens) = exchange(&server, &a, &code(&server, &a).await, V).await;
    let (rt, at) = (
        tokens["refresh_token"].as_str().unwrap(),
        tokens["access_token"].as_str().unwrap(),
    );
    let b_creds = Some((b.client_id.as_str(), Some(b.secret.as_str())));
    // B's credentials at B's endpoint, and A's client ID without a secret: 200, nothing changes.
    for (issuer, auth) in [(&b.issuer, b_creds), (&a.issuer, Some((a.client_id.as_str(), None)))] {
        for token in [rt, at] {
            let (status, _, _) = post_token(&server, issuer, "revoke", token, auth).await;
            assert_eq!(status, 200);
        }
    }
    assert!(
        active(&server, &a, rt).await,
        "another client revoked A's refresh token"
    );
    assert!(active(&server, &a, at).await, "another client revoked A's access token");
    // Failed or missing client authentication: 401 invalid_client with WWW-Authenticate.
    for auth in [b_creds, Some((a.client_id.as_str(), Some("wrong"))), None] {
        assert_invalid_client(post_token(&server, &a.issuer, "revoke", rt, auth).await, auth);
    }
    assert!(active(&server, &a, rt).await);
    // The client the tokens were issued to revokes them.
    let a_creds = Some((a.client_id.as_str(), Some(a.secret.as_str())));
    for token in [at, rt] {
        assert_eq!(post_token(&server, &a.issuer, "revoke", token, a_creds).await.0, 200);
        assert!(!active(&server, &a, token).await);
    }
}

#[tokio::test]
async fn attack_a_public_client_revokes_only_its_own_refresh_tokens() {
    let (server, t) = setup("atk-revoke-public").await;
    let (_, redirect) = t
        .native_app(&server, "acme-app", "https://links.example.com/auth")
        .await;
    let resp = login(
        &server.http(&[]),
        &authorize(&t, &[("redirect_uri", &redirect)]),
        USER.0,
        USER.1,
    )
    .await;
    let native_code = location_param(&resp, "code").unwrap();
    let r = server
        .http(&[])
        .post(format!("{}/oauth2/token", t.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", native_code.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("code_verifier", V),
            ("client_id", t.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let native: Value = r.json().await.unwrap();
    let native_rt = native["refresh_token"].as_str().expect("a refresh token for the app");
    let public = Some((t.client_id.as_str(), None));
    assert_eq!(post_token(&server, &t.issuer, "revoke", native_rt, public).await.0, 200);
    assert!(
        !active(&server, &t, native_rt).await,
        "the app revoked its own refresh token"
    );
    let native_at = native["access_token"].as_str().unwrap();
    assert!(
        !active(&server, &t, native_at).await,
        "and with it the access tokens of its family"
    );
}

#[tokio::test]
async fn attack_introspection_without_client_authentication_is_invalid_client() {
    let (server, t) = setup("atk-introspect").await;
    let (_, tokens) = exchange(&server, &t, &code(&server, &t).await, V).await;
    let at = tokens["access_token"].as_str().unwrap();
    for auth in [
        None,
        Some((t.client_id.as_str(), None)),
        Some((t.client_id.as_str(), Some("wrong"))),
    ] {
        assert_invalid_client(post_token(&server, &t.issuer, "introspect", at, auth).await, auth);
    }
    assert!(active(&server, &t, at).await);
}

#[tokio::test]
async fn attack_every_api_answer_is_json_even_unknown_paths_and_methods() {
    let (server, t) = setup("atk-api-json").await;
    let http = server.http(&[]);
    let origin = t.origin();
    let cases = [
        (http.post(format!("{origin}/api/v1/nope")), 404, "entityMissing"),
        (http.get(format!("{origin}/api/v2/userinfo")), 404, "entityMissing"),
        (http.get(format!("{origin}/api")), 404, "entityMissing"),
        (http.get(format!("{origin}/api/")), 404, "entityMissing"),
        (http.get(format!("{origin}/api/v1/verify")), 405, "genericError"),
        (http.put(format!("{origin}/api/v1/userinfo")), 405, "genericError"),
        (http.delete(format!("{origin}/api/v1/logout")), 405, "genericError"),
        (
            http.post(format!("{origin}/api/v1/verify")).body("x"),
            400,
            "missingFields",
        ),
    ];
    for (req, status, code) in cases {
        let r = req.send().await.unwrap();
        let what = format!("{} {}", r.status(), r.url());
        assert_eq!(r.status().as_u16(), status, "{what}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{what}"
        );
        if status == 405 {
            assert_eq!(r.headers()["allow"], "POST");
        }
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errorCode"], code, "{what}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}");
    }
}

#[tokio::test]
async fn attack_a_wildcard_on_a_public_suffix_never_receives_a_code() {
    let server = Server::start("atk-public-suffix").await;
    // (`https://*.com` is refused at `kubectl apply` already: see crds.rs.) The server matches
    // nothing below these entries whatever the controller says about the organization.
    let spec = json!({
        "allowedOrigins": ["https://app.example.com", "https://*.co.uk", "https://*.github.io"],
        "redirectUris": [],
    });
    let t = server.tenant("psl", spec, &[USER]).await;
    let http = server.http(&[]);
    let challenge = s256(V);
    for evil in ["https://attacker.co.uk/cb", "https://attacker.github.io/cb"] {
        let pkce = [
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let r = http.get(t.login_url(evil, &pkce)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{evil}");
        assert!(r.headers().get("location").is_none(), "{evil} got a redirect");
    }
    // Nor may those sites frame the login page.
    let page = http.get(t.login_url(CB, &[("embed", "1")])).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.ends_with("frame-ancestors https://app.example.com"), "{csp}");
}
