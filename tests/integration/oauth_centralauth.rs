//! The CentralAuth wire protocol end to end, driven as the official client drives it
//! (multipart verify with Basic auth and a UUID verifier, text/plain userinfo/logout).

use serde_json::{Value, json};

use crate::oauth_clients::node;
use crate::support::oauth::{Server, Tenant, location_param, login};
use crate::support::redis_server::{self, RedisServer};
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
    let wrong = login(&http, url.as_str(), "ada@example.com", "not-her-password").await;
    assert_eq!(wrong.status(), 401);
    let resp = login(&http, url.as_str(), "ada@example.com", "pw-ada-1").await;
    assert_eq!(resp.status(), 303);
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(&format!("{redirect}&code=")), "{loc}");
    let metrics = server.state.metrics.render();
    for outcome in ["failure", "success"] {
        let line = format!("centralauth_logins_total{{method=\"password\",outcome=\"{outcome}\"}} 1");
        assert!(metrics.contains(&line), "no `{line}` in:\n{metrics}");
    }
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
    // The official client decrypts both tokens with `jose` and the client secret as the key.
    let decrypted = node(
        "jose_decrypt.mjs",
        &json!({"secret": t.secret, "tokens": [access, body["id_token"]]}),
    )
    .await;
    assert_eq!(
        decrypted[0]["protectedHeader"],
        json!({"alg": "dir", "enc": "A256CBC-HS512"})
    );
    assert!(decrypted[0]["payload"]["sessionId"].is_string());
    assert_eq!(decrypted[1]["payload"]["user"]["email"], "ada@example.com");
    assert_eq!(
        decrypted[0]["payload"]["sessionId"],
        decrypted[1]["payload"]["sessionId"]
    );
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

/// A native app: `app_id` + `device_id` at `/login`, the redirect on its App Link, PKCE with
/// the UUID verifier, no secret at `/api/v1/verify`; its backend (which holds the secret)
/// decrypts the token with `jose` and asks `/api/v1/userinfo`.
#[tokio::test]
async fn centralauth_native_app_flow_without_a_secret() {
    let server = Server::start("ca-native").await;
    let mut t = server
        .tenant("mobi", json!({}), &[("kay@example.com", "pw-kay-1")])
        .await;
    t.activate_secret(&server, "mobi-secret-1").await;
    let (app_id, callback) = t
        .native_app(&server, "mobi-ios", "https://links.example.com/auth")
        .await;
    let http = server.http(&[]);
    let start = |redirect: &str, challenge: Option<String>| {
        let mut q = vec![
            ("client_id", t.client_id.clone()),
            ("response_type", "code".into()),
            ("redirect_uri", redirect.to_string()),
            ("state", "native-state".into()),
            ("app_id", app_id.clone()),
            ("device_id", "device-123".into()),
        ];
        if let Some(c) = challenge {
            q.push(("code_challenge", c));
            q.push(("code_challenge_method", "S256".into()));
        }
        reqwest::Url::parse_with_params(&format!("{}/login", t.origin()), &q)
            .unwrap()
            .to_string()
    };
    // Custom schemes and other origins are refused without a redirect.
    for bad in [
        "myapp://auth/callback",
        "https://evil.example.com/auth/callback",
        "https://links.example.com/other",
    ] {
        let r = http.get(start(bad, Some(s256(VERIFIER)))).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.headers().get("location").is_none());
    }
    let resp = login(
        &http,
        &start(&callback, Some(s256(VERIFIER))),
        "kay@example.com",
        "pw-kay-1",
    )
    .await;
    assert_eq!(resp.status(), 303);
    let code = location_param(&resp, "code").unwrap();
    let form = reqwest::multipart::Form::new()
        .text("code", code)
        .text("redirect_uri", callback.clone())
        .text("code_verifier", VERIFIER);
    let verify = http
        .post(format!("{}/api/v1/verify", t.origin()))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
    let body: Value = verify.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    let decrypted = node("jose_decrypt.mjs", &json!({"secret": t.secret, "tokens": [access]})).await;
    assert!(decrypted[0]["payload"]["sessionId"].is_string());
    let user: Value = http
        .post(format!("{}/api/v1/userinfo?domain=https://app.example.com", t.origin()))
        .basic_auth(&t.client_id, Some(&t.secret))
        .header("device-id", "device-123")
        .body(access.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["email"], "kay@example.com");
}

/// The idle timeout of `session` as Redis holds it, in seconds.
fn session_ttl(redis: &RedisServer, prefix: &str, session: &str) -> i64 {
    let reply = redis
        .raw(&format!("PTTL {prefix}session:{session}"))
        .expect("redis answers");
    reply
        .trim()
        .trim_start_matches(':')
        .parse::<i64>()
        .expect("an integer reply")
        / 1000
}

#[tokio::test]
async fn every_use_of_a_session_keeps_the_organizations_idle_limit() {
    let redis = RedisServer::start(&[]);
    let (url, prefix) = (redis.url(), redis_server::unique_prefix("idle"));
    let p = prefix.clone();
    let server = Server::start_with("ca-idle", move |s| {
        s.store = url.parse().unwrap();
        s.store_key_prefix = p;
    })
    .await;
    let spec = json!({"maxInactivitySeconds": 120});
    let mut t = server.tenant("idle", spec, &[("ida@example.com", "pw-ida-1")]).await;
    t.activate_secret(&server, "idle-secret").await;
    let http = server.http(&[]);
    let callback = "https://app.example.com/cb";
    let url = reqwest::Url::parse_with_params(
        &format!("{}/login", t.origin()),
        &[
            ("client_id", t.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", callback),
            ("code_challenge", &s256(VERIFIER)),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let resp = login(&http, url.as_str(), "ida@example.com", "pw-ida-1").await;
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|c| c.to_str().ok()?.strip_prefix("ca_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    assert!((1..=120).contains(&session_ttl(&redis, &prefix, &session)));

    let code = location_param(&resp, "code").unwrap();
    let verified = t.verify(&http, &code, callback, Some(VERIFIER)).await;
    assert!(verified["access_token"].is_string(), "{verified}");
    let ttl = session_ttl(&redis, &prefix, &session);
    assert!(
        (1..=120).contains(&ttl),
        "verify extended the session to {ttl} s, past maxInactivitySeconds"
    );
}

/// `embed=1` loosens framing and cookies only for organizations with `allowedOrigins` (the
/// sites that may frame the page); a native-app-only organization has none.
#[tokio::test]
async fn embed_loosens_framing_and_cookies_only_for_organizations_with_allowed_origins() {
    let server = Server::start("ca-embed").await;
    let web = server.tenant("webby", json!({}), &[]).await;
    let native_only = json!({"allowedOrigins": [], "redirectUris": []});
    let native = server.tenant("appy", native_only, &[]).await;
    let (app_id, callback) = native
        .native_app(&server, "appy-ios", "https://links.example.com/auth")
        .await;
    let http = server.http(&[]);
    let login_page = |t: &crate::support::oauth::Tenant, redirect: &str, extra: &[(&str, &str)]| {
        let mut q = vec![
            ("client_id", t.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", redirect),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
            ("embed", "1"),
        ];
        q.extend_from_slice(extra);
        let url = reqwest::Url::parse_with_params(&format!("{}/login", t.origin()), &q).unwrap();
        http.get(url).send()
    };
    let headers = |r: &reqwest::Response| {
        // The attributes only: the value is a CSRF token, which has no place in test output.
        let cookie = r.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split_once(';').unwrap().1.to_string();
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
        (cookie, csp)
    };
    let framed = login_page(&web, "https://app.example.com/cb", &[]).await.unwrap();
    let (cookie, csp) = headers(&framed);
    assert!(cookie.contains("SameSite=None; Secure; Partitioned"), "{cookie}");
    assert!(csp.ends_with("frame-ancestors https://app.example.com"), "{csp}");

    let extra = [("app_id", app_id.as_str()), ("device_id", "device-1")];
    let unframed = login_page(&native, &format!("{callback}/done"), &extra).await.unwrap();
    assert_eq!(unframed.status(), 200);
    let (cookie, csp) = headers(&unframed);
    assert!(
        cookie.contains("SameSite=Lax") && !cookie.contains("Partitioned"),
        "{cookie}"
    );
    assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");
    assert_eq!(unframed.headers()["x-frame-options"], "DENY");
}

/// `/login` of `t` as the official web client builds it (UUID verifier), plus `extra`.
fn ca_login_url(t: &Tenant, extra: &[(&str, &str)]) -> String {
    let challenge = s256(VERIFIER);
    let mut q = vec![
        ("state", "st"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    q.extend_from_slice(extra);
    t.login_url("https://app.example.com/cb", &q)
}

/// A server and organization `acme` (user ada@example.com) with an active secret, and a client.
async fn ca_setup(test: &str) -> (Server, Tenant, reqwest::Client) {
    let server = Server::start(test).await;
    let mut t = server
        .tenant("acme", json!({}), &[("ada@example.com", "pw-ada-1")])
        .await;
    t.activate_secret(&server, "acme-secret-1").await;
    let http = server.http(&[]);
    (server, t, http)
}

/// `POST /api/v1/<endpoint>` with `token` as the body, as the official client does.
async fn ca_post(http: &reqwest::Client, t: &Tenant, endpoint: &str, token: &str) -> (u16, Value) {
    let r = http
        .post(format!(
            "{}/api/v1/{endpoint}?domain=https://app.example.com",
            t.origin()
        ))
        .basic_auth(&t.client_id, Some(&t.secret))
        .header("content-type", "text/plain")
        .body(token.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// With `unsafeIncludeUser: true` the official client keeps the ID token instead of the access
/// token and sends it to userinfo (also to compare users after `affirm`) and to logout.
#[tokio::test]
async fn centralauth_the_id_token_works_for_userinfo_and_logout() {
    let (_server, t, http) = ca_setup("ca-id-token").await;
    let resp = login(&http, &ca_login_url(&t, &[]), "ada@example.com", "pw-ada-1").await;
    let code = location_param(&resp, "code").unwrap();
    let tokens = t
        .verify(&http, &code, "https://app.example.com/cb", Some(VERIFIER))
        .await;
    let (access, id) = (
        tokens["access_token"].as_str().unwrap(),
        tokens["id_token"].as_str().unwrap(),
    );
    let decrypted = node("jose_decrypt.mjs", &json!({"secret": t.secret, "tokens": [id]})).await;
    assert_eq!(decrypted[0]["payload"]["user"]["email"], "ada@example.com");
    let (status, user) = ca_post(&http, &t, "userinfo", id).await;
    assert_eq!((status, &user["email"]), (200, &json!("ada@example.com")), "{user}");
    let (status, out) = ca_post(&http, &t, "logout", id).await;
    assert_eq!((status, &out["success"]), (200, &json!(true)), "{out}");
    let (status, err) = ca_post(&http, &t, "userinfo", access).await;
    assert_eq!(
        (status, &err["errorCode"]),
        (401, &json!("sessionInvalid")),
        "logout ended the session"
    );
}

/// `affirm=1`: the password is asked again, the callback says `affirm=1` (so the client
/// compares the affirmed user with the one it had), and the user carries `affirmationDate`.
#[tokio::test]
async fn centralauth_affirm_is_echoed_on_the_callback_and_dated_in_the_user() {
    let (_server, t, http) = ca_setup("ca-affirm").await;
    let first = login(&http, &ca_login_url(&t, &[]), "ada@example.com", "pw-ada-1").await;
    assert_eq!(location_param(&first, "affirm"), None);
    let session = crate::support::oauth::cookie_set(&first, "ca_session=").unwrap();
    let code = location_param(&first, "code").unwrap();
    let tokens = t
        .verify(&http, &code, "https://app.example.com/cb", Some(VERIFIER))
        .await;
    let (_, user) = ca_post(&http, &t, "userinfo", tokens["access_token"].as_str().unwrap()).await;
    assert!(user.get("affirmationDate").is_none(), "not affirmed yet: {user}");

    let before = centralauth_operator::oauth::now();
    let url = ca_login_url(&t, &[("affirm", "1")]);
    let affirmed = crate::support::oauth::login_with(&http, &url, "ada@example.com", "pw-ada-1", &[session]).await;
    assert_eq!(
        affirmed.status(),
        303,
        "the form was shown despite the session, and accepted"
    );
    assert_eq!(location_param(&affirmed, "affirm").as_deref(), Some("1"));
    assert_eq!(location_param(&affirmed, "state").as_deref(), Some("st"));
    let code = location_param(&affirmed, "code").unwrap();
    let tokens = t
        .verify(&http, &code, "https://app.example.com/cb", Some(VERIFIER))
        .await;
    let (_, user) = ca_post(&http, &t, "userinfo", tokens["access_token"].as_str().unwrap()).await;
    let date = user["affirmationDate"]
        .as_str()
        .expect("affirmationDate after affirm=1")
        .to_string();
    let at: k8s_openapi::jiff::Timestamp = date.parse().expect("an ISO-8601 time");
    assert!(at.as_second() >= before, "{date}");
    let decrypted = node(
        "jose_decrypt.mjs",
        &json!({"secret": t.secret, "tokens": [tokens["id_token"]]}),
    )
    .await;
    assert_eq!(decrypted[0]["payload"]["user"]["affirmationDate"], json!(date));
}
