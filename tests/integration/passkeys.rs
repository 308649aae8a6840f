//! Passkeys (WebAuthn) end to end: headless Chromium with a CDP virtual authenticator
//! (`tests/clients/node/passkey.mjs`: CTAP2, resident keys, user verification) against the
//! login server and a real SMTP server. A passkey is registered after an e-mail code, then
//! used with no address typed (discoverable) and e-mail first; the OAuth code flow completes
//! and the ID token's and userinfo's `user.connections` carry `passkey`; the credential is in
//! the User's spec. Refused: a credential deleted from the spec, a blocked user, a counter that
//! went backwards, a replayed assertion, an assertion for another challenge, another
//! organization's passkey. Absent: without `loginMethods.passkeys`, and on the shared base
//! domain. Inside a cross-site iframe (`embed=1`). The real binary keeps passkeys across a
//! restart (memory store gone) and logs none of their data.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use centralauth_operator::crd::{User, user_name};
use centralauth_operator::oauth::pkce::s256;

use crate::oauth_browser::callback_app;
use crate::oauth_clients::node;
use crate::support;
use crate::support::oauth::{Server, Tenant, open_login_with};
use crate::support::process::Operator;
use crate::support::smtp::{Security, SmtpServer};

const VERIFIER: &str = "passkey-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";

/// An organization on its own subdomain with e-mail codes and (unless `passkeys` is false)
/// passkeys, redirecting to `callback`.
fn spec(sub: &str, smtp: &SmtpServer, app_port: u16, passkeys: bool) -> Value {
    let mut methods = json!({"email": smtp.login_method(Security::None, None)});
    if passkeys {
        methods["passkeys"] = json!({});
    }
    json!({"subdomain": sub, "allowLocalhost": true,
           "allowedOrigins": [format!("http://localhost:{app_port}"), format!("http://127.0.0.1:{app_port}")],
           "redirectUris": [format!("http://localhost:{app_port}/cb")],
           "loginMethods": methods})
}

/// The OAuth authorization URL of `t` (code + PKCE, `openid`) at its issuer.
fn authorize_url(t: &Tenant, callback: &str) -> String {
    reqwest::Url::parse_with_params(
        &format!("{}/oauth2/authorize", t.issuer),
        &[
            ("client_id", t.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", callback),
            ("state", "pk-state"),
            ("scope", "openid email"),
            ("code_challenge", s256(VERIFIER).as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap()
    .to_string()
}

/// One test's parts.
struct Fixture {
    server: Server,
    smtp: SmtpServer,
    t: Tenant,
    callback: String,
    app_port: u16,
    mails: usize,
}

async fn fixture(test: &str, sub: &str) -> Fixture {
    let server = Server::start(test).await;
    let smtp = SmtpServer::start(Security::None, None, None).await;
    let (app_port, callback) = callback_app().await;
    let mut t = server.tenant(sub, spec(sub, &smtp, app_port, true), &[]).await;
    t.activate_secret(&server, &format!("{sub}-secret")).await;
    Fixture {
        server,
        smtp,
        t,
        callback,
        app_port,
        mails: 0,
    }
}

impl Fixture {
    /// Chromium logs `email` in with an e-mailed code and creates a passkey on the offer page.
    async fn register(&mut self, email: &str, credentials: &Value) -> Value {
        self.mails += 1;
        let out = self
            .browser(json!({"action": "register", "email": email, "credentials": credentials,
                            "maildir": self.smtp.maildir, "mailIndex": self.mails}))
            .await;
        assert_eq!(out["outcome"], "landed", "{out}");
        out
    }

    /// Chromium logs in with a passkey of `credentials` (the address typed first when given).
    async fn login(&self, credentials: &Value, email: Option<&str>, hold: bool) -> Value {
        self.browser(json!({"action": "login", "email": email, "credentials": credentials, "hold": hold}))
            .await
    }

    /// [`Fixture::browser`] at the login page of `t`.
    async fn login_at(&self, t: &Tenant, mut input: Value) -> Value {
        input["url"] = json!(authorize_url(t, &self.callback));
        self.browser(input).await
    }

    async fn browser(&self, mut input: Value) -> Value {
        let artifacts = support::repo_root().join("tests/artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        if input.get("url").is_none() {
            input["url"] = json!(authorize_url(&self.t, &self.callback));
        }
        input["callbackPrefix"] = json!(self.callback);
        input["artifacts"] = json!(artifacts);
        node("passkey.mjs", &input).await
    }

    /// Redeems a code at the token endpoint; the tokens.
    async fn redeem(&self, code: &str) -> Value {
        let http = self.server.http(&[&self.t.host]);
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.callback.as_str()),
            ("code_verifier", VERIFIER),
        ];
        self.t.token(&http, &form).await
    }

    /// `/oauth2/userinfo` with the access token of `tokens`.
    async fn userinfo(&self, tokens: &Value) -> Value {
        let r = self
            .server
            .http(&[&self.t.host])
            .get(format!("{}/oauth2/userinfo", self.t.issuer))
            .bearer_auth(tokens["access_token"].as_str().expect("an access token"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    fn users(&self) -> Api<User> {
        Api::namespaced(self.server.client.clone(), &self.server.ns)
    }

    async fn user(&self, email: &str) -> User {
        self.users().get(&user_name(&self.t.name, email)).await.unwrap()
    }

    async fn patch_user(&self, email: &str, patch: Value) {
        let name = user_name(&self.t.name, email);
        self.users()
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// A new login of `t` over HTTP with `http` (hidden fields and cookie), with a ceremony
    /// started by `POST /login/passkey/options` (the address typed when given).
    async fn http_login(&self, http: &reqwest::Client, t: &Tenant, email: Option<&str>) -> (String, String, String) {
        let (cookie, page) = open_login_with(http, &authorize_url(t, &self.callback), &[]).await;
        let login = support::oauth::hidden(&page, "login").unwrap();
        let csrf = support::oauth::hidden(&page, "csrf").unwrap();
        let r = http
            .post(format!("{}/login/passkey/options", t.origin()))
            .header("cookie", &cookie)
            .form(&[
                ("login", &login),
                ("csrf", &csrf),
                ("email", &email.unwrap_or_default().to_string()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        (login, csrf, cookie)
    }
}

/// Posts an assertion to `POST /login/passkey` of `t`.
async fn post_assertion(
    http: &reqwest::Client,
    t: &Tenant,
    cookie: &str,
    login: &str,
    csrf: &str,
    assertion: &str,
) -> reqwest::Response {
    http.post(format!("{}/login/passkey", t.origin()))
        .header("cookie", cookie)
        .form(&[("login", login), ("csrf", csrf), ("credential", assertion)])
        .send()
        .await
        .unwrap()
}

/// A CDP `Binary` (standard base64) as base64url without padding, as the server writes it.
fn url_safe(cdp: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cdp.as_str().unwrap())
        .unwrap();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn claims(jwt: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn connection_types(user: &Value) -> Vec<String> {
    user["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_passkey_registered_after_an_e_mail_code_logs_in_discoverable_and_e_mail_first() {
    let mut f = fixture("passkeys-flow", "pk").await;
    let email = "pia@example.com";
    let registered = f.register(email, &json!([])).await;
    let tokens = f.redeem(registered["code"].as_str().unwrap()).await;
    assert_eq!(connection_types(&f.userinfo(&tokens).await["user"]), ["email"]);
    let credentials = registered["credentials"].clone();
    assert_eq!(credentials.as_array().unwrap().len(), 1, "{registered}");
    assert_eq!(
        credentials[0]["rpId"],
        f.t.host.as_str(),
        "the RP ID is the organization's own host"
    );

    let user = f.user(email).await;
    let passkeys = user.spec.passkeys.clone().expect("the passkey is in the User's spec");
    let stored = &passkeys.credentials[0];
    assert_eq!(stored.id, url_safe(&credentials[0]["credentialId"]));
    assert_eq!(
        (stored.algorithm.as_str(), stored.user_verified),
        ("EdDSA", true),
        "the first of the crate's algorithms the authenticator has"
    );
    assert!(!stored.public_key.is_empty() && stored.aaguid.len() == 36, "{stored:?}");
    let handle = URL_SAFE_NO_PAD
        .encode(centralauth_operator::flow::passkey::credential::user_handle_from_hex(&passkeys.user_handle).unwrap());
    assert_eq!(url_safe(&credentials[0]["userHandle"]), handle);
    assert_eq!(
        user.metadata.labels.unwrap()["centralauth.io/passkey-user-handle"],
        passkeys.user_handle,
        "the label a discoverable login finds the user by"
    );
    let yaml = serde_json::to_string(&user.spec).unwrap();
    assert!(
        !yaml.contains(credentials[0]["privateKey"].as_str().unwrap()),
        "public data only"
    );

    // A fresh browser profile each time: no session, so every login below is a new one.
    let discoverable = f.login(&credentials, None, false).await;
    assert_eq!(discoverable["outcome"], "landed", "{discoverable}");
    let tokens = f.redeem(discoverable["code"].as_str().unwrap()).await;
    let id_token = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        (id_token["email"].as_str(), id_token["iss"].as_str()),
        (Some(email), Some(f.t.issuer.as_str()))
    );
    let info = f.userinfo(&tokens).await;
    assert_eq!(info["sub"], id_token["sub"]);
    assert_eq!(connection_types(&info["user"]), ["email", "passkey"]);
    assert_eq!(info["user"]["email"], email);

    let email_first = f.login(&discoverable["credentials"], Some(email), false).await;
    assert_eq!(email_first["outcome"], "landed", "{email_first}");
    assert!(f.redeem(email_first["code"].as_str().unwrap()).await["id_token"].is_string());

    let stored = f.user(email).await.spec.passkeys.unwrap().credentials[0].clone();
    let today = centralauth_operator::oauth::profile::day(centralauth_operator::oauth::now());
    assert_eq!(stored.last_used_at.as_deref(), Some(today.as_str()));
    assert_eq!(
        u64::from(stored.sign_count),
        email_first["credentials"][0]["signCount"].as_u64().unwrap(),
        "the counter the authenticator last showed"
    );
}

#[tokio::test]
async fn a_revoked_passkey_a_blocked_user_and_a_counter_that_went_back_are_refused() {
    let mut f = fixture("passkeys-refused", "pkr").await;
    let email = "rex@example.com";
    let credentials = f.register(email, &json!([])).await["credentials"].clone();

    // Blocked: the assertion is good, the user is not.
    f.patch_user(email, json!({"spec": {"blocked": true}})).await;
    let blocked = f.login(&credentials, None, false).await;
    assert_eq!(blocked["outcome"], "error", "{blocked}");
    assert!(blocked["error"].as_str().unwrap().contains("blocked"), "{blocked}");
    f.patch_user(email, json!({"spec": {"blocked": false}})).await;
    let again = f.login(&credentials, None, false).await;
    assert_eq!(again["outcome"], "landed", "unblocked: {again}");

    // A counter that goes back: the stored count is ahead of the authenticator's.
    let mut user = f.user(email).await;
    let mut passkeys = user.spec.passkeys.take().unwrap();
    let good_count = passkeys.credentials[0].sign_count;
    passkeys.credentials[0].sign_count = good_count + 1000;
    f.patch_user(email, json!({"spec": {"passkeys": passkeys}})).await;
    let cloned = f.login(&again["credentials"], None, false).await;
    assert_eq!(cloned["outcome"], "error", "{cloned}");
    assert!(
        cloned["error"].as_str().unwrap().contains("counter went backwards"),
        "{cloned}"
    );

    // Revoked: the entry is deleted from the spec (as `kubectl edit` or a commit would).
    f.patch_user(
        email,
        json!({"spec": {"passkeys": {"userHandle": passkeys.user_handle, "credentials": []}}}),
    )
    .await;
    let revoked = f.login(&cloned["credentials"], None, false).await;
    assert_eq!(revoked["outcome"], "error", "{revoked}");
    assert!(revoked["error"].as_str().unwrap().contains("revoked"), "{revoked}");
    let email_first = f.login(&cloned["credentials"], Some(email), false).await;
    assert_ne!(email_first["outcome"], "landed", "{email_first}");
}

#[tokio::test]
async fn a_replayed_assertion_and_an_assertion_for_another_challenge_are_refused() {
    let mut f = fixture("passkeys-replay", "pkp").await;
    let credentials = f.register("ray@example.com", &json!([])).await["credentials"].clone();
    let held = f.login(&credentials, None, true).await;
    assert_eq!(held["outcome"], "held", "{held}");
    let h = &held["held"];
    let (login, csrf, cookie, assertion) = (
        h["login"].as_str().unwrap(),
        h["csrf"].as_str().unwrap(),
        h["cookies"].as_str().unwrap(),
        h["credential"].as_str().unwrap(),
    );
    let http = f.server.http(&[&f.t.host]);

    // Another login with its own challenge: the held assertion signed another one.
    let (other_login, other_csrf, other_cookie) = f.http_login(&http, &f.t, None).await;
    let r = post_assertion(&http, &f.t, &other_cookie, &other_login, &other_csrf, assertion).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("not accepted"));

    // Its own login: once, then never again.
    let first = post_assertion(&http, &f.t, cookie, login, csrf, assertion).await;
    assert_eq!(first.status(), 303, "{}", first.text().await.unwrap());
    let replay = post_assertion(&http, &f.t, cookie, login, csrf, assertion).await;
    assert_ne!(replay.status(), 303, "a replay does not log in");

    // A ceremony is used up by the first answer, even a wrong one.
    let (login2, csrf2, cookie2) = f.http_login(&http, &f.t, None).await;
    let garbage = post_assertion(&http, &f.t, &cookie2, &login2, &csrf2, "{}").await;
    assert_eq!(garbage.status(), 401);
    let after = post_assertion(&http, &f.t, &cookie2, &login2, &csrf2, assertion).await;
    assert_eq!(after.status(), 401);
    assert!(after.text().await.unwrap().contains("expired or was already used"));
}

#[tokio::test]
async fn refused_passkey_logins_throttle_their_address_and_not_the_user() {
    let mut f = fixture("passkeys-throttle", "pkt").await;
    let credentials = f.register("tia@example.com", &json!([])).await["credentials"].clone();
    // A stranger on another address posts 30 answers that are refused.
    let stranger = f.server.http_from([127, 0, 0, 2], &[&f.t.host]);
    let (login, csrf, cookie) = f.http_login(&stranger, &f.t, Some("tia@example.com")).await;
    for _ in 0..30 {
        let r = post_assertion(&stranger, &f.t, &cookie, &login, &csrf, "{}").await;
        assert_eq!(r.status(), 401);
    }
    let r = post_assertion(&stranger, &f.t, &cookie, &login, &csrf, "{}").await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("too many failed passkey logins"));
    let options = stranger
        .post(format!("{}/login/passkey/options", f.t.origin()))
        .header("cookie", &cookie)
        .form(&[
            ("login", &login),
            ("csrf", &csrf),
            ("email", &"tia@example.com".to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), 429, "no more directory reads for that address");
    // The user, from their own address, is not locked out.
    let out = f.login(&credentials, None, false).await;
    assert_eq!(out["outcome"], "landed", "{out}");
}

#[tokio::test]
async fn a_passkey_of_another_organization_is_refused() {
    let mut f = fixture("passkeys-tenants", "pka").await;
    let b = f
        .server
        .tenant("pkb", spec("pkb", &f.smtp, f.app_port, true), &[])
        .await;
    let credentials = f.register("ann@example.com", &json!([])).await["credentials"].clone();
    // In the browser, the passkey belongs to A's RP ID: B's page cannot even ask for it.
    let at_b = f
        .login_at(&b, json!({"action": "login", "credentials": credentials}))
        .await;
    assert_ne!(at_b["outcome"], "landed", "{at_b}");
    // An assertion made at A, posted to B's login with a ceremony of B's: refused.
    let held = f.login(&credentials, None, true).await;
    let assertion = held["held"]["credential"].as_str().unwrap().to_string();
    let http = f.server.http(&[&b.host]);
    let (login, csrf, cookie) = f.http_login(&http, &b, None).await;
    let r = post_assertion(&http, &b, &cookie, &login, &csrf, &assertion).await;
    assert_eq!(r.status(), 401);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("not registered here") || page.contains("not accepted"),
        "{page}"
    );
}

#[tokio::test]
async fn the_login_page_offers_a_passkey_then_email_then_providers() {
    let server = Server::start("passkeys-order").await;
    let smtp = SmtpServer::start(Security::None, None, None).await;
    let (app_port, callback) = callback_app().await;
    let mut with_provider = spec("pkord", &smtp, app_port, true);
    with_provider["loginMethods"]["providers"] = json!([{"name": "github", "type": "GitHub", "clientId": "gh-id",
        "clientSecretRef": {"name": "gh-client", "key": "secret"}}]);
    let t = server.tenant("pkord", with_provider, &[]).await;
    let (_, page) = open_login_with(&server.http(&[&t.host]), &authorize_url(&t, &callback), &[]).await;
    let at = |needle: &str| {
        page.find(needle)
            .unwrap_or_else(|| panic!("no {needle} on the page: {page}"))
    };
    let (passkey, email, provider) = (
        at("id=\"passkey-login\""),
        at("id=\"email\""),
        at("id=\"provider-github\""),
    );
    assert!(
        passkey < email && email < provider,
        "CentralAuth's order is passkey, e-mail, providers: {page}"
    );
    assert!(
        at("<script") > email,
        "the script comes after the e-mail field it reads"
    );
}

#[tokio::test]
async fn passkeys_are_absent_when_not_enabled_and_on_the_shared_domain() {
    let server = Server::start("passkeys-absent").await;
    let smtp = SmtpServer::start(Security::None, None, None).await;
    let (app_port, callback) = callback_app().await;
    let off = server.tenant("pkoff", spec("pkoff", &smtp, app_port, false), &[]).await;
    let http = server.http(&[&off.host]);
    let (cookie, page) = open_login_with(&http, &authorize_url(&off, &callback), &[]).await;
    assert!(!page.contains("passkey") && !page.contains("<script"), "{page}");
    let (login, csrf) = (
        support::oauth::hidden(&page, "login").unwrap(),
        support::oauth::hidden(&page, "csrf").unwrap(),
    );
    let r = http
        .post(format!("{}/login/passkey/options", off.origin()))
        .header("cookie", &cookie)
        .form(&[("login", &login), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("passkey login is not enabled"));

    // Enabled, but the CentralAuth login on the shared base domain (by client_id): no passkeys.
    let on = server.tenant("pkon", spec("pkon", &smtp, app_port, true), &[]).await;
    let shared = reqwest::Url::parse_with_params(
        &format!("{}/login", server.base()),
        &[
            ("client_id", on.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", callback.as_str()),
        ],
    )
    .unwrap();
    let (_, page) = open_login_with(&server.http(&[]), shared.as_str(), &[]).await;
    assert!(page.contains("id=\"email\"") && !page.contains("passkey"), "{page}");
    let own = server.http(&[&on.host]);
    let (_, page) = open_login_with(&own, &authorize_url(&on, &callback), &[]).await;
    assert!(
        page.contains("id=\"passkey-login\" class=\"secondary\" hidden"),
        "hidden until the script shows it"
    );

    // Refused at apply: passkeys without the e-mail method they register through.
    let orgs = support::process::centralauth_api(&server.client, &server.ns, "Organization");
    let bad: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization", "metadata": {"name": "pkbad"},
        "spec": {"displayName": "Bad", "subdomain": "pkbad", "redirectUris": ["https://app.example.com/cb"],
                 "loginMethods": {"passwords": {"secretName": "x"}, "passkeys": {}}}
    }))
    .unwrap();
    let err = orgs.create(&Default::default(), &bad).await.unwrap_err().to_string();
    assert!(err.contains("passkeys need the email login method"), "{err}");
}

#[tokio::test]
async fn passkeys_register_and_log_in_inside_a_cross_site_iframe() {
    let mut f = fixture("passkeys-embed", "pke").await;
    // 127.0.0.1 is another site than `<subdomain>.localhost`: a cross-site frame.
    let parent = format!("http://127.0.0.1:{}", f.app_port);
    let embed = |url: String| {
        let url = url.replace("/oauth2/authorize?", "/login?") + "&embed=1";
        reqwest::Url::parse_with_params(&format!("{parent}/embed"), &[("src", &url)])
            .unwrap()
            .to_string()
    };
    let login_url = f.t.login_url(&f.callback, &[("state", "pk-state")]);
    f.mails += 1;
    let registered = f
        .browser(
            json!({"action": "register", "email": "eda@example.com", "credentials": [],
                        "maildir": f.smtp.maildir, "mailIndex": f.mails, "shots": "embed-",
                        "url": login_url, "embedUrl": embed(login_url.clone())}),
        )
        .await;
    assert_eq!(registered["outcome"], "landed", "{registered}");
    let out = f
        .browser(
            json!({"action": "login", "credentials": registered["credentials"], "shots": "embed-",
                        "url": login_url, "embedUrl": embed(login_url.clone())}),
        )
        .await;
    assert_eq!(out["outcome"], "landed", "{out}");
    assert!(
        out["csp"].as_str().unwrap().contains(&parent),
        "framed by the allowed site"
    );
}

#[tokio::test]
async fn the_binary_keeps_passkeys_across_a_restart_and_logs_none_of_their_data() {
    let mut f = fixture("passkeys-binary", "pkbin").await;
    let ns = f.server.ns.clone();
    let first = Operator::start_on_localhost(&ns, "debug");
    first.wait_ready().await;
    // The binary serves the same organization on its own port.
    f.t.port = first.public;
    f.t.issuer = format!("http://{}:{}", f.t.host, first.public);
    let registered = f.register("bea@example.com", &json!([])).await;
    let held = f.login(&registered["credentials"], None, true).await;
    let logs_before = first.stop_and_read_logs().await;

    // A new process: the store (memory) is gone; the passkey lives in the User.
    let second = Operator::start_on_localhost(&ns, "debug");
    second.wait_ready().await;
    f.t.port = second.public;
    f.t.issuer = format!("http://{}:{}", f.t.host, second.public);
    let after = f
        .login(&registered["credentials"], Some("bea@example.com"), false)
        .await;
    assert_eq!(after["outcome"], "landed", "after a restart: {after}");
    let logs = format!("{logs_before}{}", second.stop_and_read_logs().await);
    assert!(logs.contains("passkey registered"), "the binary logged at debug level");

    let user = f.user("bea@example.com").await;
    let passkeys = user.spec.passkeys.unwrap();
    let assertion: Value = serde_json::from_str(held["held"]["credential"].as_str().unwrap()).unwrap();
    let mut secrets = vec![
        passkeys.user_handle.clone(),
        passkeys.credentials[0].id.clone(),
        passkeys.credentials[0].public_key.clone(),
        assertion["response"]["signature"].as_str().unwrap().to_string(),
        assertion["response"]["clientDataJSON"].as_str().unwrap().to_string(),
        assertion["response"]["authenticatorData"].as_str().unwrap().to_string(),
        registered["credentials"][0]["privateKey"].as_str().unwrap().to_string(),
    ];
    secrets.push(url_safe(&registered["credentials"][0]["userHandle"]));
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "passkey data in the logs: {s}");
    }
}
