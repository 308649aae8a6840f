//! Abuse of the guards themselves (part of the attack suite): what an outsider's failures can
//! no longer do — lock an organization out of its client secret, lock a user out at another
//! tenant or in a browser they logged in with, or lock out everyone behind one proxy.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::oauth_attacks::{CB, USER, V, authorize};
use crate::support::oauth::{Server, Tenant, cookie_set, hidden, location_param, login, login_with, open_login};
use centralauth_operator::crd::ClientSecret;
use centralauth_operator::forwarded::TrustedProxies;
use centralauth_operator::oauth::pkce::s256;
use centralauth_operator::oauth::verifier::SecretId;

/// The official client's verifier shape (a UUID) for the CentralAuth endpoints.
const UUID: &str = "0d5c2f7e-6d1b-4c1a-9b1e-2f7d8e9a0b1c";

async fn server_with(test: &str, tweak: impl FnOnce(&mut centralauth_operator::http::Settings)) -> (Server, Tenant) {
    let server = Server::start_with(test, tweak).await;
    let mut t = server.tenant("acme", json!({}), &[USER]).await;
    t.activate_secret(&server, "acme-secret").await;
    (server, t)
}

/// A password login at `t` from loopback address `127.0.0.<last>`.
async fn login_from(server: &Server, last: u8, t: &Tenant, email: &str, password: &str) -> reqwest::Response {
    login(
        &server.http_from([127, 0, 0, last], &[]),
        &authorize(t, &[]),
        email,
        password,
    )
    .await
}

/// A wrong-secret `client_credentials` request from loopback address `127.0.0.<last>`.
async fn wrong_secret(server: &Server, t: &Tenant, last: u8) -> u16 {
    let r = server
        .http_from([127, 0, 0, last], &[])
        .post(format!("{}/oauth2/token", t.issuer))
        .basic_auth(&t.client_id, Some(format!("wrong-{last}")))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// The owner's right secret on every endpoint that authenticates clients, each call timed:
/// (endpoint, status, how long it took).
async fn owner_on_every_endpoint(server: &Server, t: &Tenant) -> Vec<(&'static str, u16, Duration)> {
    let http = server.http(&[]);
    let mut calls = vec![];
    let mut timed = async |name: &'static str, req: reqwest::RequestBuilder| {
        let started = Instant::now();
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        calls.push((name, status, started.elapsed()));
        resp.bytes()
            .await
            .map(|b| serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null))
            .unwrap()
    };
    let token_url = format!("{}/oauth2/token", t.issuer);
    let cc = [("grant_type", "client_credentials")];
    timed(
        "token: client_credentials, basic",
        http.post(&token_url)
            .basic_auth(&t.client_id, Some(&t.secret))
            .form(&cc),
    )
    .await;
    let post = [
        ("grant_type", "client_credentials"),
        ("client_id", &t.client_id),
        ("client_secret", &t.secret),
    ];
    timed("token: client_credentials, post", http.post(&token_url).form(&post)).await;
    let code = location_param(&login(&http, &authorize(t, &[]), USER.0, USER.1).await, "code").unwrap();
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", CB),
        ("code_verifier", V),
    ];
    let tokens = timed(
        "token: authorization_code",
        http.post(&token_url)
            .basic_auth(&t.client_id, Some(&t.secret))
            .form(&exchange),
    )
    .await;
    let rt = tokens["refresh_token"].as_str().unwrap_or_default().to_string();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", &rt),
        ("client_id", &t.client_id),
        ("client_secret", &t.secret),
    ];
    let tokens = timed("token: refresh_token, post", http.post(&token_url).form(&refresh)).await;
    let access = tokens["access_token"].as_str().unwrap_or_default().to_string();
    let introspect = http
        .post(format!("{}/oauth2/introspect", t.issuer))
        .basic_auth(&t.client_id, Some(&t.secret));
    timed("introspect", introspect.form(&[("token", &access)])).await;
    let rt = tokens["refresh_token"].as_str().unwrap_or_default().to_string();
    let revoke = http
        .post(format!("{}/oauth2/revoke", t.issuer))
        .basic_auth(&t.client_id, Some(&t.secret));
    timed("revoke", revoke.form(&[("token", &rt)])).await;
    let login_url = t.login_url(
        CB,
        &[("code_challenge", &s256(UUID)), ("code_challenge_method", "S256")],
    );
    let code = location_param(&login(&http, &login_url, USER.0, USER.1).await, "code").unwrap();
    let form = reqwest::multipart::Form::new()
        .text("code", code)
        .text("redirect_uri", CB)
        .text("code_verifier", UUID);
    let verify = http
        .post(format!("{}/api/v1/verify", t.origin()))
        .basic_auth(&t.client_id, Some(&t.secret));
    let ca = timed("/api/v1/verify", verify.multipart(form)).await;
    let ca_token = ca["access_token"].as_str().unwrap_or_default().to_string();
    for (name, path) in [("/api/v1/userinfo", "userinfo"), ("/api/v1/logout", "logout")] {
        let req = http
            .post(format!("{}/api/v1/{path}", t.origin()))
            .basic_auth(&t.client_id, Some(&t.secret));
        timed(name, req.body(ca_token.clone())).await;
    }
    calls
}

fn assert_all_ok(calls: &[(&'static str, u16, Duration)], bound: Duration) {
    assert_eq!(calls.len(), 9);
    for (name, status, took) in calls {
        assert_eq!(*status, 200, "{name} refused the owner's right secret");
        assert!(took < &bound, "{name} took {took:?}");
    }
}

#[tokio::test]
async fn abuse_wrong_secrets_from_many_addresses_never_lock_the_organization_out() {
    // Default limits (50 failures per client, 30 per address, in 5 minutes). A shorter pace
    // keeps the test short, and a longer queue wait keeps every attacker in the queue on a
    // loaded machine (by default one that waits 10 s is told to retry, a 429).
    let (server, t) = server_with("abuse-org-lockout", |s| {
        s.client_auth.pace = Duration::from_millis(500);
        s.client_auth.max_wait = Duration::from_secs(300);
    })
    .await;
    // The server pre-warms the owner's secret from its Secret in the background.
    let css: kube::Api<ClientSecret> = kube::Api::namespaced(server.client.clone(), &server.ns);
    let owner_secret = SecretId::of(&css.get("acme-secret").await.unwrap());
    let state = server.state.clone();
    let warmed = crate::support::wait_until(Duration::from_secs(30), || {
        let (state, id, cid) = (state.clone(), owner_secret.clone(), t.client_id.clone());
        async move { state.verifier.is_pinned(&id, &cid).then_some(()) }
    })
    .await;
    assert!(warmed.is_some(), "the owner's secret was never pre-warmed");
    // 60 failures from 60 addresses, all in flight at once: they queue in the organization's
    // lane, the last ten paced, while the owner works normally.
    let attack = async {
        let statuses = futures::future::join_all((2..62).map(|last| wrong_secret(&server, &t, last))).await;
        (statuses, Instant::now())
    };
    let owner = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        (owner_on_every_endpoint(&server, &t).await, Instant::now())
    };
    let ((statuses, attack_ended), (during, owner_done)) = tokio::join!(attack, owner);
    assert!(
        statuses.iter().all(|s| *s == 401),
        "wrong secrets are refused as such: {statuses:?}"
    );
    assert!(
        owner_done < attack_ended,
        "the owner's calls ran while the attack was queued: {during:?}"
    );
    assert_all_ok(&during, Duration::from_secs(5));
    let after = owner_on_every_endpoint(&server, &t).await;
    assert_all_ok(&after, Duration::from_secs(5));
}

#[tokio::test]
async fn abuse_wrong_passwords_at_one_organization_do_not_lock_the_account_at_another() {
    let server = Server::start("abuse-cross-tenant").await;
    let victim = ("victim@example.org", "pw-victim-1");
    let b = server.tenant("orgb", json!({}), &[USER]).await;
    let c = server.tenant("orgc", json!({}), &[victim]).await;
    // 50 wrong passwords for the victim's address at B (not even an account there), from 50
    // addresses, and 30 failures for other accounts from one address.
    for last in 10..60 {
        let r = login_from(&server, last, &b, victim.0, "guess").await;
        assert_eq!(r.status(), 401);
    }
    for i in 0..30 {
        let r = login_from(&server, 9, &b, &format!("u{i}@example.org"), "guess").await;
        assert_eq!(r.status(), 401);
    }
    let at_b = login_from(&server, 200, &b, victim.0, "guess").await;
    assert_eq!(at_b.status(), 429, "B's account counter is full");
    let at_b = login_from(&server, 9, &b, USER.0, USER.1).await;
    assert_eq!(at_b.status(), 429, "B's address counter is full");
    // At C, from the same address, the right password works.
    let at_c = login_from(&server, 9, &c, victim.0, victim.1).await;
    assert_eq!(at_c.status(), 303, "a failure at B counted at C");
    assert!(location_param(&at_c, "code").is_some());
}

#[tokio::test]
async fn abuse_a_strangers_failures_do_not_lock_out_a_browser_the_user_logged_in_with() {
    let server = Server::start("abuse-device-cookie").await;
    let ann = ("ann@example.org", "pw-ann-1");
    let t = server.tenant("acme", json!({}), &[ann, USER]).await;
    let browser = server.http(&[]);
    let first = login(&browser, &authorize(&t, &[]), ann.0, ann.1).await;
    assert_eq!(first.status(), 303);
    let device = cookie_set(&first, "ca_device_").expect("a device cookie after the login");
    // A stranger guesses Ann's password 50 times from 50 addresses: her account is locked
    // for browsers she never used.
    for last in 10..60 {
        let r = login_from(&server, last, &t, ann.0, "guess").await;
        assert_eq!(r.status(), 401);
    }
    let fresh = login(&server.http(&[]), &authorize(&t, &[]), ann.0, ann.1).await;
    assert_eq!(
        fresh.status(),
        429,
        "a new browser waits (the residual lockout, see docs/abuse-and-limits.md)"
    );
    // Her own browser (without its session) still logs her in, and gets a new device cookie.
    let again = login_with(
        &browser,
        &authorize(&t, &[]),
        ann.0,
        ann.1,
        std::slice::from_ref(&device),
    )
    .await;
    assert_eq!(again.status(), 303, "the device cookie exempts her browser");
    assert!(cookie_set(&again, "ca_device_").is_some());
    // The cookie names Ann: it does not exempt another account.
    for last in 60..110 {
        let r = login_from(&server, last, &t, USER.0, "guess").await;
        assert_eq!(r.status(), 401);
    }
    let other = login_with(&browser, &authorize(&t, &[]), USER.0, USER.1, &[device]).await;
    assert_eq!(other.status(), 429);
}

/// A password login whose form post carries `X-Forwarded-For: forwarded`: its status.
async fn login_forwarded(server: &Server, t: &Tenant, email: &str, password: &str, forwarded: &str) -> u16 {
    let http = server.http(&[]);
    let (cookie, html) = open_login(&http, &authorize(t, &[])).await;
    let form = [
        ("login", hidden(&html, "login").unwrap()),
        ("csrf", hidden(&html, "csrf").unwrap()),
        ("email", email.to_string()),
        ("password", password.to_string()),
    ];
    let r = http
        .post(format!("{}/login", t.origin()))
        .header("cookie", cookie)
        .header("x-forwarded-for", forwarded)
        .form(&form)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// 30 failed logins of different accounts, each forwarded for `forwarded(i)`.
async fn thirty_failures(server: &Server, t: &Tenant, forwarded: impl Fn(u8) -> String) {
    for i in 0..30 {
        let status = login_forwarded(server, t, &format!("user{i}@example.org"), "guess", &forwarded(i)).await;
        assert_eq!(status, 401);
    }
}

#[tokio::test]
async fn abuse_behind_a_trusted_proxy_failures_lock_out_only_the_attacking_client() {
    let proxies: TrustedProxies = "127.0.0.1/32".parse().unwrap();
    let (server, t) = server_with("abuse-trusted-proxy", |s| s.trusted_proxies = proxies).await;
    thirty_failures(&server, &t, |_| "203.0.113.7".into()).await;
    let (email, password) = USER;
    let attacker = login_forwarded(&server, &t, email, password, "203.0.113.7").await;
    assert_eq!(attacker, 429, "the attacking address is locked out");
    let forged = login_forwarded(&server, &t, email, password, "198.51.100.4, 203.0.113.7").await;
    assert_eq!(forged, 429, "a forged hop left of the proxy's entry changes nothing");
    let other = login_forwarded(&server, &t, email, password, "198.51.100.4").await;
    assert_eq!(other, 303, "another user behind the same proxy is not locked out");
}

#[tokio::test]
async fn abuse_an_untrusted_peer_cannot_choose_its_address_with_x_forwarded_for() {
    let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
    let (server, t) = server_with("abuse-untrusted-xff", |s| s.trusted_proxies = proxies).await;
    thirty_failures(&server, &t, |i| format!("198.51.100.{i}")).await;
    let status = login_forwarded(&server, &t, USER.0, USER.1, "198.51.100.250").await;
    assert_eq!(status, 429, "every failure counted for the socket peer");
}
