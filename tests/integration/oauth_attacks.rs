//! The attack suite: one test per attack, each against the real server and control plane,
//! each asserting the refusal (and for redirects: a 400 page with no `Location`).

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::support::oauth::{Server, Tenant, json_of, location_param, login};
use centralauth_operator::oauth::pkce::s256;

/// The PKCE verifier of the suite's authorization requests.
pub const V: &str = "attack-suite-verifier-0123456789-abcdefghijklmnop";
/// The registered callback.
pub const CB: &str = "https://app.example.com/cb";
/// The account of the suite's organizations.
pub const USER: (&str, &str) = ("eve@example.com", "pw-eve-1");

/// A server and organization `acme` with [`USER`] and an active client secret.
pub async fn setup(test: &str) -> (Server, Tenant) {
    let server = Server::start(test).await;
    let mut t = server.tenant("acme", json!({}), &[USER]).await;
    t.activate_secret(&server, "acme-secret").await;
    (server, t)
}

/// An `/oauth2/authorize` URL of `t` with PKCE, `state=s` and `scope=openid email`; `extra`
/// replaces (or with an empty value removes) parameters.
pub fn authorize(t: &Tenant, extra: &[(&str, &str)]) -> String {
    let challenge = s256(V);
    let mut q: Vec<(&str, &str)> = vec![
        ("client_id", &t.client_id),
        ("response_type", "code"),
        ("redirect_uri", CB),
        ("state", "s"),
        ("scope", "openid email"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        q.retain(|(qk, _)| qk != k);
        if !v.is_empty() {
            q.push((k, v));
        }
    }
    reqwest::Url::parse_with_params(&format!("{}/oauth2/authorize", t.issuer), &q)
        .unwrap()
        .to_string()
}

/// Logs in through `/oauth2/authorize` and returns the code.
pub async fn code(server: &Server, t: &Tenant) -> String {
    let resp = login(&server.http(&[]), &authorize(t, &[]), USER.0, USER.1).await;
    location_param(&resp, "code").expect("a code")
}

/// `POST /oauth2/token` with `client_secret_basic`: status and body.
pub async fn token(server: &Server, t: &Tenant, form: &[(&str, &str)]) -> (u16, Value) {
    let r = server
        .http(&[])
        .post(format!("{}/oauth2/token", t.issuer))
        .basic_auth(&t.client_id, Some(&t.secret))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Exchanges `code` with `verifier` at the token endpoint.
pub async fn exchange(server: &Server, t: &Tenant, code: &str, verifier: &str) -> (u16, Value) {
    token(
        server,
        t,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CB),
            ("code_verifier", verifier),
        ],
    )
    .await
}

#[tokio::test]
async fn attack_wrong_verifier() {
    let (server, t) = setup("atk-wrong-verifier").await;
    let c = code(&server, &t).await;
    let (status, body) = exchange(&server, &t, &c, &"w".repeat(50)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn attack_code_of_client_a_with_client_b() {
    let server = Server::start("atk-code-swap").await;
    let mut a = server.tenant("alpha", json!({}), &[USER]).await;
    a.activate_secret(&server, "alpha-secret").await;
    let mut b = server.tenant("beta", json!({}), &[USER]).await;
    b.activate_secret(&server, "beta-secret").await;
    let c = code(&server, &a).await;
    let (status, body) = exchange(&server, &b, &c, V).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    // And A's code presented at A's endpoint with B's credentials: B is not A's client.
    let r = server
        .http(&[])
        .post(format!("{}/oauth2/token", a.issuer))
        .basic_auth(&b.client_id, Some(&b.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", c.as_str()),
            ("redirect_uri", CB),
            ("code_verifier", V),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn attack_public_client_without_challenge() {
    let (server, t) = setup("atk-public-no-pkce").await;
    let (app_id, redirect) = t
        .native_app(&server, "acme-app", "https://links.example.com/auth")
        .await;
    let http = server.http(&[]);
    let url = reqwest::Url::parse_with_params(
        &format!("{}/login", t.origin()),
        &[
            ("client_id", t.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", &redirect),
            ("state", "s"),
            ("app_id", &app_id),
        ],
    )
    .unwrap();
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location_param(&r, "error").as_deref(), Some("codeChallengeMissing"));
    assert!(location_param(&r, "code").is_none());
    let r = http
        .get(authorize(&t, &[("redirect_uri", &redirect), ("code_challenge", "")]))
        .send()
        .await
        .unwrap();
    assert_eq!(location_param(&r, "error").as_deref(), Some("invalid_request"));
    assert!(location_param(&r, "code").is_none());
}

#[tokio::test]
async fn attack_verifier_for_a_code_issued_without_challenge() {
    let (server, t) = setup("atk-pkce-downgrade").await;
    let http = server.http(&[]);
    let url = reqwest::Url::parse_with_params(
        &format!("{}/login", t.origin()),
        &[
            ("client_id", t.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", CB),
            ("state", "s"),
        ],
    )
    .unwrap();
    let resp = login(&http, url.as_str(), USER.0, USER.1).await;
    let c = location_param(&resp, "code").unwrap();
    let form = reqwest::multipart::Form::new()
        .text("code", c)
        .text("redirect_uri", CB)
        .text("code_verifier", V);
    let r = http
        .post(format!("{}/api/v1/verify", t.origin()))
        .basic_auth(&t.client_id, Some(&t.secret))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "codeChallengeInvalid");
}

#[tokio::test]
async fn attack_plain_method() {
    let (server, t) = setup("atk-plain").await;
    let http = server.http(&[]);
    let r = http
        .get(authorize(
            &t,
            &[("code_challenge", V), ("code_challenge_method", "plain")],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(location_param(&r, "error").as_deref(), Some("invalid_request"));
    assert!(location_param(&r, "code").is_none());
    let r = http
        .get(authorize(&t, &[("code_challenge_method", "")]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        location_param(&r, "error").as_deref(),
        Some("invalid_request"),
        "a missing method means plain"
    );
}

#[tokio::test]
async fn attack_verifier_of_42_or_129_characters_or_with_plus() {
    let (server, t) = setup("atk-verifier-shape").await;
    for verifier in ["a".repeat(42), "a".repeat(129), format!("{}+", "a".repeat(45))] {
        // The challenge matches the bad verifier, so only its shape can refuse it.
        let challenge = s256(&verifier);
        let resp = login(
            &server.http(&[]),
            &authorize(&t, &[("code_challenge", &challenge)]),
            USER.0,
            USER.1,
        )
        .await;
        let c = location_param(&resp, "code").unwrap();
        let (status, body) = exchange(&server, &t, &c, &verifier).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{} chars",
            verifier.len()
        );
    }
}

#[tokio::test]
async fn attack_redirect_variants_get_400_and_no_location() {
    let (server, t) = setup("atk-redirects").await;
    let http = server.http(&[]);
    for bad in [
        "https://app.example.com/cb/",
        "https://app.example.com/CB",
        "https://app.example.com/cb?x=1",
        "https://app.example.com/x/../cb",
        "https://app.example.com:8443/cb",
        "http://app.example.com/cb",
        "https://app.ex@evil.com/cb",
        "https://app.example.com@evil.com/cb",
        "https://app.example.com/%63b",
        "https://app%2eexample.com/cb",
    ] {
        let r = http.get(authorize(&t, &[("redirect_uri", bad)])).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.headers().get("location").is_none(), "{bad} redirected");
    }
    // The CentralAuth endpoint matches on origin (+ registered path): its variants too.
    for bad in [
        "https://app.example.com/CB",
        "https://app.example.com:8443/cb",
        "http://app.example.com/cb",
        "https://app.ex@evil.com/cb",
        "https://app.example.com/x/../cb",
    ] {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/login", t.origin()),
            &[
                ("client_id", t.client_id.as_str()),
                ("response_type", "code"),
                ("redirect_uri", bad),
            ],
        )
        .unwrap();
        let r = http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 400, "/login {bad}");
        assert!(r.headers().get("location").is_none());
    }
}

#[tokio::test]
async fn attack_unknown_client_with_evil_redirect_is_not_redirected() {
    let (server, t) = setup("atk-unknown-client").await;
    let http = server.http(&[]);
    let r = http
        .get(authorize(
            &t,
            &[("client_id", "no-such-client"), ("redirect_uri", "https://evil.com/cb")],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    let url = format!(
        "{}/login?client_id=no-such-client&response_type=code&redirect_uri=https%3A%2F%2Fevil.com%2Fcb",
        t.origin()
    );
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test]
async fn attack_org_a_code_at_org_b() {
    let server = Server::start("atk-org-swap").await;
    let mut a = server.tenant("orga", json!({}), &[USER]).await;
    a.activate_secret(&server, "orga-secret").await;
    let mut b = server.tenant("orgb", json!({"subdomain": "orgb"}), &[USER]).await;
    b.activate_secret(&server, "orgb-secret").await;
    let http = server.http(&[b.host.as_str()]);
    let url = reqwest::Url::parse_with_params(
        &format!("{}/login", a.origin()),
        &[
            ("client_id", a.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", CB),
            ("code_challenge", &s256(V)),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let c = location_param(&login(&http, url.as_str(), USER.0, USER.1).await, "code").unwrap();
    let form = reqwest::multipart::Form::new()
        .text("code", c)
        .text("redirect_uri", CB)
        .text("code_verifier", V);
    let r = http
        .post(format!("{}/api/v1/verify", b.origin()))
        .basic_auth(&b.client_id, Some(&b.secret))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "sessionInvalid");
}

#[tokio::test]
async fn attack_state_is_echoed_byte_exact() {
    let (server, t) = setup("atk-state").await;
    let state = "a b+c/d?e=f&g%20h~ü\"<x>'";
    let resp = login(&server.http(&[]), &authorize(&t, &[("state", state)]), USER.0, USER.1).await;
    assert_eq!(location_param(&resp, "state").as_deref(), Some(state));
    assert_eq!(location_param(&resp, "iss").as_deref(), Some(t.issuer.as_str()));
}

#[tokio::test]
async fn attack_code_replay_twenty_concurrent_one_wins_and_its_tokens_are_revoked() {
    let (server, t) = setup("atk-replay").await;
    let c = code(&server, &t).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (http, issuer, cid, secret, c) = (
                server.http(&[]),
                t.issuer.clone(),
                t.client_id.clone(),
                t.secret.clone(),
                c.clone(),
            );
            tokio::spawn(async move {
                let r = http
                    .post(format!("{issuer}/oauth2/token"))
                    .basic_auth(cid, Some(secret))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", c.as_str()),
                        ("redirect_uri", CB),
                        ("code_verifier", V),
                    ])
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut wins = vec![];
    for task in tasks {
        let (status, body) = task.await.unwrap();
        if status == 200 {
            wins.push(body);
        } else {
            assert_eq!(body["error"], "invalid_grant");
        }
    }
    assert_eq!(wins.len(), 1, "exactly one redemption succeeds");
    let http = server.http(&[]);
    let ui = http
        .get(format!("{}/oauth2/userinfo", t.issuer))
        .bearer_auth(wins[0]["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 401, "the replays revoked the winner's access token");
    let rt = wins[0]["refresh_token"].as_str().unwrap();
    let (status, _) = token(&server, &t, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!(status, 400, "and its refresh token");
}

#[tokio::test]
async fn attack_refresh_token_replay_revokes_the_family() {
    let (server, t) = setup("atk-refresh-replay").await;
    let c = code(&server, &t).await;
    let (_, first) = exchange(&server, &t, &c, V).await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    let (status, second) = token(&server, &t, &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await;
    assert_eq!(status, 200);
    let rt2 = second["refresh_token"].as_str().unwrap().to_string();
    let (status, body) = token(&server, &t, &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let (status, _) = token(&server, &t, &[("grant_type", "refresh_token"), ("refresh_token", &rt2)]).await;
    assert_eq!(status, 400, "the rotated token of the same family is revoked too");
    let ui = server
        .http(&[])
        .get(format!("{}/oauth2/userinfo", t.issuer))
        .bearer_auth(second["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 401);
}

#[tokio::test]
async fn attack_misplaced_or_repeated_client_credentials_are_invalid_request() {
    let (server, t) = setup("atk-credentials").await;
    let http = server.http(&[]);
    let url = format!("{}/oauth2/token", t.issuer);
    let cc = [("grant_type", "client_credentials")];
    let in_query = http
        .post(format!("{url}?client_secret={}", t.secret))
        .basic_auth(&t.client_id, Some(&t.secret))
        .form(&cc)
        .send()
        .await
        .unwrap();
    let both = http
        .post(&url)
        .basic_auth(&t.client_id, Some(&t.secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &t.client_id),
            ("client_secret", &t.secret),
        ])
        .send()
        .await
        .unwrap();
    let repeated = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={0}&client_id={0}&client_secret={1}",
            t.client_id, t.secret
        ))
        .send()
        .await
        .unwrap();
    for r in [in_query, both, repeated] {
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    }
}

#[tokio::test]
async fn attack_public_client_using_client_credentials() {
    let (server, t) = setup("atk-public-cc").await;
    let r = server
        .http(&[])
        .post(format!("{}/oauth2/token", t.issuer))
        .form(&[("grant_type", "client_credentials"), ("client_id", &t.client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized_client");
}

#[tokio::test]
async fn attack_jwt_alg_none_and_hs256_signed_with_the_public_key() {
    let (server, t) = setup("atk-jwt-alg").await;
    let c = code(&server, &t).await;
    let (_, tokens) = exchange(&server, &t, &c, V).await;
    let real = tokens["access_token"].as_str().unwrap();
    let http = server.http(&[]);
    let jwks = json_of(http.get(format!("{}/oauth2/jwks", t.issuer))).await;
    let kid = jwks["keys"][0]["kid"].as_str().unwrap();
    let payload = real.split('.').nth(1).unwrap();
    let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{payload}.",
        b64(json!({"alg": "none", "typ": "at+jwt", "kid": kid}))
    );
    let header = b64(json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, jwks["keys"][0].to_string().as_bytes());
    let sig = ring::hmac::sign(&key, format!("{header}.{payload}").as_bytes());
    let hs256 = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
    let ok = http
        .get(format!("{}/oauth2/userinfo", t.issuer))
        .bearer_auth(real)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "the genuine token works");
    for forged in [none, hs256] {
        let r = http
            .get(format!("{}/oauth2/userinfo", t.issuer))
            .bearer_auth(&forged)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let intro = http
            .post(format!("{}/oauth2/introspect", t.issuer))
            .basic_auth(&t.client_id, Some(&t.secret))
            .form(&[("token", forged.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(intro.json::<Value>().await.unwrap()["active"], false);
    }
}

#[tokio::test]
async fn attack_jwks_holds_no_private_members() {
    let (server, t) = setup("atk-jwks").await;
    let jwks: Value = server
        .http(&[])
        .get(format!("{}/oauth2/jwks", t.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        assert_eq!(key["kty"], "EC");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
            assert!(key.get(private).is_none(), "{private} published");
        }
    }
}

#[tokio::test]
async fn attack_unknown_client_and_wrong_secret_fail_alike() {
    let (server, t) = setup("atk-client-auth").await;
    let http = server.http(&[]);
    let mut answers = vec![];
    for (id, secret) in [
        (t.client_id.as_str(), "wrong-secret"),
        ("no-such-client", "wrong-secret"),
    ] {
        let verified_before = server.state.verifier.verifications();
        let r = http
            .post(format!("{}/oauth2/token", t.issuer))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let status = r.status();
        let www = r.headers().get("www-authenticate").cloned();
        answers.push((
            status,
            www,
            r.json::<Value>().await.unwrap(),
            // Counted, not timed: a generated secret's hash (m = 8 KiB) verifies in microseconds.
            server.state.verifier.verifications() - verified_before,
        ));
    }
    // The counter is the verifier's: a background pre-warm of the organization's own secret
    // may land inside either window, so each ran at least one verify (never zero: an unknown
    // client is not answered before an argon2id run).
    let wire = |i: usize| (answers[i].0, answers[i].1.clone(), answers[i].2.clone());
    assert_eq!(wire(0), wire(1), "same status, header and body");
    for (answer, what) in answers.iter().zip(["wrong secret", "unknown client"]) {
        assert!(answer.3 >= 1, "the {what} was answered without an argon2id verify");
    }
    assert_eq!(answers[0].0, 401);
}

#[tokio::test]
async fn attack_old_secret_is_refused_within_a_second_of_activating_a_new_one() {
    let (server, mut t) = setup("atk-rotation").await;
    let http = server.http(&[]);
    let (issuer, client_id) = (t.issuer.clone(), t.client_id.clone());
    let cc = |secret: String| {
        http.post(format!("{issuer}/oauth2/token"))
            .basic_auth(&client_id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let old = t.secret.clone();
    assert_eq!(cc(old.clone()).await.unwrap().status(), 200, "verified and cached");
    t.activate_secret(&server, "acme-secret-2").await;
    let activated = Instant::now();
    let refused = crate::support::wait_until(Duration::from_secs(5), || {
        let f = cc(old.clone());
        async move { (f.await.unwrap().status() == 401).then_some(()) }
    })
    .await;
    assert!(refused.is_some());
    assert!(
        activated.elapsed() < Duration::from_secs(1),
        "refused after {:?}",
        activated.elapsed()
    );
    assert_eq!(cc(t.secret.clone()).await.unwrap().status(), 200);
}
