//! Upstream identity providers against real parts: Ory Hydra v2.3.0 (built from the Go module
//! proxy, `support::hydra`) as the OpenID Connect provider, whose login and consent challenges
//! the test's acceptor accepts through Hydra's admin API; the real server, controllers and API
//! server. GitHub has no local server: `GitHubServer` below is a small test server inside the
//! suite reproducing its token endpoint and REST API (`/user`, `/user/emails`, GitHub
//! Enterprise Server paths) — the linking rules are tested through it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use centralauth_operator::crd::{Organization, User, provider_label, user_name};
use centralauth_operator::oauth::upstream::jwt::{self, Expect, Jwks, TokenError};

use crate::oauth_attacks::{V, authorize, exchange};
use crate::organization::{events_for, ready_of, wait_for};
use crate::support;
use crate::support::hydra::{Hydra, Identity};
use crate::support::oauth::{Server, Tenant, hidden, json_of, location_param, open_login};
use crate::support::process::Operator;

const HYDRA_SECRET: &str = "hydra-client-secret-0123456789";
const ADA: (&str, &str) = ("ada@example.com", "pw-ada-1");

/// A server, Hydra, a Hydra client and organization `acme` with provider `hydra` (plus
/// passwords for [`ADA`]); `extra` is merged into the spec.
struct Setup {
    server: Server,
    t: Tenant,
    hydra: Hydra,
    client_id: String,
}

async fn provider_secret(server: &Server, name: &str, key: &str, value: &str) {
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {key: value}})).unwrap();
    Api::<Secret>::namespaced(server.client.clone(), &server.ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

fn hydra_provider(client_id: &str, issuer: &str) -> Value {
    json!({"name": "hydra", "type": "OIDC", "clientId": client_id, "issuer": issuer,
           "clientSecretRef": {"name": "hydra-client", "key": "secret"}, "displayName": "Hydra"})
}

async fn setup(test: &str, extra: Value) -> Setup {
    let server = Server::start(test).await;
    let hydra = Hydra::start().await;
    let client_id = hydra.client(HYDRA_SECRET, &["http://127.0.0.1:1/cb".to_string()]).await;
    provider_secret(&server, "hydra-client", "secret", HYDRA_SECRET).await;
    let mut spec = json!({
        "allowLocalhost": true,
        "loginMethods": {"passwords": {"secretName": "acme-users"},
                         "providers": [hydra_provider(&client_id, &hydra.issuer)]},
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        spec[k] = v;
    }
    let mut t = server.tenant("acme", spec, &[ADA]).await;
    t.activate_secret(&server, "acme-secret").await;
    register_callback(
        &hydra,
        &client_id,
        &format!("{}/oauth/providers/hydra/callback", t.issuer),
    )
    .await;
    wait_secret(&server, "hydra-client", "secret").await;
    Setup {
        server,
        t,
        hydra,
        client_id,
    }
}

/// Sets the client's redirect URIs at Hydra to `callback` (known once the tenant exists).
async fn register_callback(hydra: &Hydra, client_id: &str, callback: &str) {
    let patch = json!([{"op": "replace", "path": "/redirect_uris", "value": [callback]}]);
    let r = reqwest::Client::new()
        .patch(format!("{}/admin/clients/{client_id}", hydra.admin_url()))
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn wait_secret(server: &Server, name: &str, key: &str) {
    let state = server.state.clone();
    let ns = server.ns.clone();
    let seen = support::wait_until(Duration::from_secs(20), || {
        let (state, ns) = (state.clone(), ns.clone());
        async move { state.secrets.value(&ns, name, key) }
    })
    .await;
    assert!(seen.is_some(), "the server never saw Secret {name}");
}

fn identity(subject: &str, email: &str, verified: bool) -> Identity {
    Identity {
        subject: subject.into(),
        email: email.into(),
        verified,
    }
}

/// Opens the login form of `authorize_url` and presses provider `name`'s button: the CSRF
/// cookie and where the server sends the browser.
async fn press(http: &reqwest::Client, t: &Tenant, authorize_url: &str, name: &str) -> (String, reqwest::Response) {
    let (cookie, html) = open_login(http, authorize_url).await;
    assert!(
        html.contains(&format!("id=\"provider-{name}\"")),
        "no button for {name}: {html}"
    );
    let form = [
        ("login", hidden(&html, "login").unwrap()),
        ("csrf", hidden(&html, "csrf").unwrap()),
        ("provider", name.to_string()),
    ];
    let resp = http
        .post(format!("{}/login/provider", t.origin()))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    (cookie, resp)
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location ({})", resp.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// Up to the callback: the CSRF cookie and the callback URL Hydra redirected to.
async fn to_callback(s: &Setup, http: &reqwest::Client) -> (String, String) {
    let (cookie, resp) = press(http, &s.t, &authorize(&s.t, &[]), "hydra").await;
    assert_eq!(resp.status(), 303);
    let at_hydra = location(&resp);
    assert!(at_hydra.starts_with(&s.hydra.issuer), "{at_hydra}");
    (cookie, s.hydra.follow(&at_hydra).await)
}

async fn get_with(http: &reqwest::Client, url: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = http.get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

/// A whole provider login as `who`: the final answer of the callback.
async fn provider_login(s: &Setup, who: Identity) -> reqwest::Response {
    s.hydra.set_identity(&s.client_id, who);
    let http = s.server.http(&[]);
    let (cookie, callback) = to_callback(s, &http).await;
    get_with(&http, &callback, Some(&cookie)).await
}

/// The `sub` of the ID token our server issues for a completed login.
async fn sub_of(s: &Setup, resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let code = location_param(&resp, "code").expect("a code for the app");
    let (status, body) = exchange(&s.server, &s.t, &code, V).await;
    assert_eq!(status, 200, "{body}");
    let id_token = body["id_token"].as_str().unwrap();
    claims(id_token)["sub"].as_str().unwrap().to_string()
}

fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn page(resp: reqwest::Response) -> (u16, String) {
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn users(server: &Server) -> Api<User> {
    Api::namespaced(server.client.clone(), &server.ns)
}

#[tokio::test]
async fn a_hydra_login_links_by_verified_address_and_later_finds_the_user_by_subject() {
    let s = setup("prov-hydra-login", json!({})).await;
    // Ada has logged in with her password before: the same user, the same ID.
    let pw = crate::support::oauth::login(&s.server.http(&[]), &authorize(&s.t, &[]), ADA.0, ADA.1).await;
    let pw_sub = sub_of(&s, pw).await;

    let resp = provider_login(&s, identity("hydra-ada", "Ada@Example.com", true)).await;
    assert_eq!(sub_of(&s, resp).await, pw_sub, "linked to the existing user");
    let user = users(&s.server).get(&user_name("acme", ADA.0)).await.unwrap();
    assert!(
        user.labels().contains_key(&provider_label("hydra")),
        "{:?}",
        user.labels()
    );
    let conn = user
        .status
        .as_ref()
        .unwrap()
        .connections
        .iter()
        .find(|c| c.type_ == "hydra")
        .cloned();
    assert_eq!(conn.unwrap().subject.as_deref(), Some("hydra-ada"));

    // The provider's address changes (even to an unverified one): the subject still finds Ada.
    let resp = provider_login(&s, identity("hydra-ada", "ada.new@example.com", false)).await;
    assert_eq!(sub_of(&s, resp).await, pw_sub, "found by subject");
    assert!(
        users(&s.server)
            .get_opt(&user_name("acme", "ada.new@example.com"))
            .await
            .unwrap()
            .is_none()
    );

    // Another account at the provider claiming Ada's address without verifying it: refused,
    // and not linked.
    let (status, body) = page(provider_login(&s, identity("hydra-mallory", ADA.0, false)).await).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("did not confirm that your e-mail address is verified"),
        "{body}"
    );
    // Another verified account of the same provider for Ada's address: her user is linked to
    // another Hydra account, so it is refused.
    let (status, body) = page(provider_login(&s, identity("hydra-other", ADA.0, true)).await).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already linked to another Hydra account"), "{body}");

    // A new verified address is recorded as a new user (Open).
    let resp = provider_login(&s, identity("hydra-bob", "bob@example.com", true)).await;
    let bob_sub = sub_of(&s, resp).await;
    assert_ne!(bob_sub, pw_sub);
    let bob = users(&s.server)
        .get(&user_name("acme", "bob@example.com"))
        .await
        .unwrap();
    assert!(bob.labels().contains_key(&provider_label("hydra")));
}

#[tokio::test]
async fn provider_state_is_single_use_and_bound_to_the_browser() {
    let s = setup("prov-state", json!({})).await;
    s.hydra.set_identity(&s.client_id, identity("hydra-ada", ADA.0, true));
    let http = s.server.http(&[]);

    // A wrong state finds no login.
    let (cookie, callback) = to_callback(&s, &http).await;
    let forged = replace_param(&callback, "state", "forged-state");
    let (status, body) = page(get_with(&http, &forged, Some(&cookie)).await).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("expired or was already used"), "{body}");

    // The right state in another browser (no CSRF cookie of this login) is refused.
    let (status, body) = page(get_with(&http, &callback, None).await).await;
    assert_eq!(status, 403, "{body}");

    // A callback completes once; its replay, even in the same browser, finds nothing.
    let (cookie, callback) = to_callback(&s, &http).await;
    let first = get_with(&http, &callback, Some(&cookie)).await;
    assert_eq!(first.status(), 303);
    assert!(location_param(&first, "code").is_some());
    let (status, body) = page(get_with(&http, &callback, Some(&cookie)).await).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("expired or was already used"), "{body}");
}

fn replace_param(url: &str, name: &str, value: &str) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| (k.to_string(), if k == name { value.to_string() } else { v.to_string() }))
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

#[tokio::test]
async fn a_changed_nonce_and_a_code_or_id_token_of_another_client_are_refused() {
    let s = setup("prov-nonce-aud", json!({})).await;
    s.hydra.set_identity(&s.client_id, identity("hydra-ada", ADA.0, true));
    let http = s.server.http(&[]);

    // The nonce is changed on the way to the provider: Hydra signs the changed one.
    let (cookie, resp) = press(&http, &s.t, &authorize(&s.t, &[]), "hydra").await;
    let changed = replace_param(&location(&resp), "nonce", "a-nonce-of-the-attacker");
    let callback = s.hydra.follow(&changed).await;
    let (status, body) = page(get_with(&http, &callback, Some(&cookie)).await).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("could not be verified"), "{body}");

    // A second client at the same provider: a code issued to it cannot be redeemed by ours.
    let other_cb = "http://127.0.0.1:1/other-cb".to_string();
    let other = s
        .hydra
        .client("other-client-secret-0123", std::slice::from_ref(&other_cb))
        .await;
    s.hydra.set_identity(&other, identity("hydra-ada", ADA.0, true));
    let (cookie, resp) = press(&http, &s.t, &authorize(&s.t, &[]), "hydra").await;
    let swapped = replace_param(&location(&resp), "client_id", &other);
    let swapped = replace_param(&swapped, "redirect_uri", &other_cb);
    let at_other = s.hydra.follow(&swapped).await;
    let code = reqwest::Url::parse(&at_other)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let state = reqwest::Url::parse(&location(&resp))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let injected = format!(
        "{}/oauth/providers/hydra/callback?code={code}&state={state}",
        s.t.issuer
    );
    let (status, body) = page(get_with(&http, &injected, Some(&cookie)).await).await;
    assert_eq!(status, 502, "{body}");

    // An ID token Hydra really issued to the other client fails our audience check.
    let (cookie_unused, resp) = press(&http, &s.t, &authorize(&s.t, &[]), "hydra").await;
    drop(cookie_unused);
    let at_hydra = location(&resp);
    let nonce = query(&at_hydra, "nonce");
    let verifier = "other-client-verifier-0123456789-0123456789abc";
    let mut direct = replace_param(&at_hydra, "client_id", &other);
    direct = replace_param(&direct, "redirect_uri", &other_cb);
    direct = replace_param(
        &direct,
        "code_challenge",
        &centralauth_operator::oauth::pkce::s256(verifier),
    );
    let code = query(&s.hydra.follow(&direct).await, "code");
    let redeem = reqwest::Client::new()
        .post(format!("{}/oauth2/token", s.hydra.issuer))
        .basic_auth(&other, Some("other-client-secret-0123"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &other_cb),
            ("code_verifier", verifier),
        ]);
    let tokens = json_of(redeem).await;
    let id_token = tokens["id_token"].as_str().expect("hydra issued an ID token");
    let jwks: Jwks = serde_json::from_value(s.hydra.jwks().await).unwrap();
    let expect = |audience| Expect {
        issuer: &s.hydra.issuer,
        audience,
        nonce: &nonce,
        now: centralauth_operator::oauth::now(),
    };
    assert!(
        jwt::verify(&jwks, id_token, &expect(&other)).is_ok(),
        "valid for its own client"
    );
    assert_eq!(
        jwt::verify(&jwks, id_token, &expect(&s.client_id)),
        Err(TokenError::Audience)
    );
}

fn query(url: &str, name: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name} in {url}"))
        .1
        .to_string()
}

#[tokio::test]
async fn hydra_rotating_its_signing_key_is_followed() {
    let s = setup("prov-rotation", json!({})).await;
    let resp = provider_login(&s, identity("hydra-ada", ADA.0, true)).await;
    let sub = sub_of(&s, resp).await;
    let before = s.server.state.upstreams.cache.cached_kids(&s.hydra.issuer);
    assert!(!before.is_empty());

    let new_kid = s.hydra.rotate_keys().await;
    assert!(!before.contains(&new_kid));
    let resp = provider_login(&s, identity("hydra-ada", ADA.0, true)).await;
    assert_eq!(sub_of(&s, resp).await, sub, "the login after the rotation works");
    let after = s.server.state.upstreams.cache.cached_kids(&s.hydra.issuer);
    assert!(after.contains(&new_kid), "the JWKS was read again: {after:?}");
}

#[tokio::test]
async fn a_provider_that_is_down_or_silent_gives_a_clear_page_and_not_ready() {
    let mut s = setup("prov-down", json!({})).await;
    let orgs: Api<Organization> = Api::namespaced(s.server.client.clone(), &s.server.ns);
    wait_for(&orgs, "acme", "Ready", |o| {
        ready_of(o.status.as_ref().map(|s| &s.conditions)).is_some_and(|r| r.0 == "True")
    })
    .await;
    s.hydra.set_identity(&s.client_id, identity("hydra-ada", ADA.0, true));
    let http = s.server.http(&[]);

    // Hydra goes down while the user is at its page: the callback cannot redeem the code.
    let (cookie, callback) = to_callback(&s, &http).await;
    s.hydra.stop();
    let (status, body) = page(get_with(&http, &callback, Some(&cookie)).await).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("Hydra cannot be reached right now"), "{body}");

    // A provider that accepts connections and never answers: a page within the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let mut providers = vec![hydra_provider(&s.client_id, &s.hydra.issuer)];
    let mut silent_provider = hydra_provider("silent-client", &silent_url);
    silent_provider["name"] = json!("silent");
    silent_provider["displayName"] = json!("Silent IdP");
    providers.push(silent_provider);
    let patch = json!({"spec": {"loginMethods": {"providers": providers}}});
    orgs.patch("acme", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    // The controller waits for the silent provider's timeout (10 s): allow a loaded machine more.
    let message = support::wait_until(Duration::from_secs(90), || async {
        let org = orgs.get("acme").await.ok()?;
        let (_, reason, message) = ready_of(org.status.as_ref().map(|s| &s.conditions))?;
        (reason == "ProviderDiscoveryFailed").then_some(message)
    })
    .await
    .expect("the organization never became Ready=False/ProviderDiscoveryFailed");
    assert!(
        message.contains("provider hydra") && message.contains("cannot be reached"),
        "{message}"
    );
    assert!(
        !events_for(&s.server.client, &s.server.ns, "acme", "ProviderDiscoveryFailed")
            .await
            .is_empty()
    );
    let seen = support::wait_until(Duration::from_secs(10), || async {
        let org = s.server.state.org_by_client_id(&s.t.client_id)?;
        (org.spec.login_methods.providers.len() == 2).then_some(())
    })
    .await;
    assert!(seen.is_some());
    let started = Instant::now();
    let (_, resp) = press(&http, &s.t, &authorize(&s.t, &[]), "silent").await;
    let (status, body) = page(resp).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("Silent IdP cannot be reached right now"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    // The server still serves.
    let (_, html) = open_login(&http, &authorize(&s.t, &[])).await;
    assert!(html.contains("provider-hydra"));
    drop(silent);
}

#[tokio::test]
async fn invite_only_allowed_domains_and_blocking_apply_to_provider_logins() {
    let s = setup(
        "prov-policies",
        json!({"userCreation": "InviteOnly", "allowedEmailDomains": ["example.com"]}),
    )
    .await;
    let (status, body) = page(provider_login(&s, identity("h-carol", "carol@example.com", true)).await).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("invited users only"), "{body}");
    let (status, body) = page(provider_login(&s, identity("h-dan", "dan@other.example", true)).await).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("addresses of other.example may not log in"), "{body}");

    let carol = User::invite(Some(&s.server.ns), "acme", "carol@example.com");
    users(&s.server).create(&PostParams::default(), &carol).await.unwrap();
    let resp = provider_login(&s, identity("h-carol", "carol@example.com", true)).await;
    assert_eq!(resp.status(), 303);
    let patch = json!({"spec": {"blocked": true}});
    users(&s.server)
        .patch(&carol.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    // Found by subject now, and still refused.
    let (status, body) = page(provider_login(&s, identity("h-carol", "carol.new@example.com", false)).await).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("this account is blocked"), "{body}");
}

// ---- GitHub -------------------------------------------------------------------------------

/// A GitHub account of the test server.
#[derive(Clone)]
struct GitHubAccount {
    id: u64,
    emails: Value,
}

/// A code the GitHub stand-in issued: the account, the PKCE challenge and the redirect URI.
type IssuedCode = (GitHubAccount, String, String);

#[derive(Clone, Default)]
struct GitHubState {
    client_id: String,
    client_secret: String,
    /// The account the next authorization logs in as.
    next: Arc<Mutex<Option<GitHubAccount>>>,
    /// code → (account, code_challenge, redirect_uri)
    codes: Arc<Mutex<HashMap<String, IssuedCode>>>,
    /// access token → account
    tokens: Arc<Mutex<HashMap<String, GitHubAccount>>>,
}

/// A stand-in for GitHub (no local GitHub exists): `GET /login/oauth/authorize` approves at
/// once as the chosen account (what GitHub does after the user clicks "Authorize"), `POST
/// /login/oauth/access_token` checks the client secret and the PKCE verifier, and the REST API
/// under `/api/v3` (GitHub Enterprise Server's layout) answers `/user` and `/user/emails`.
struct GitHubServer {
    url: String,
    state: GitHubState,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GitHubServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GitHubServer {
    async fn start(client_id: &str, client_secret: &str) -> GitHubServer {
        let state = GitHubState {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            ..Default::default()
        };
        let app = axum::Router::new()
            .route("/login/oauth/authorize", axum::routing::get(gh_authorize))
            .route("/login/oauth/access_token", axum::routing::post(gh_token))
            .route("/api/v3/user", axum::routing::get(gh_user))
            .route("/api/v3/user/emails", axum::routing::get(gh_emails))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        GitHubServer { url, state, task }
    }
}

async fn gh_authorize(State(s): State<GitHubState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let account = s.next.lock().unwrap().clone().unwrap();
    assert_eq!(q.get("client_id"), Some(&s.client_id));
    assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
    let code = centralauth_operator::oauth::grant::random_token();
    let redirect = q["redirect_uri"].clone();
    s.codes
        .lock()
        .unwrap()
        .insert(code.clone(), (account, q["code_challenge"].clone(), redirect.clone()));
    Redirect::to(&format!("{redirect}?code={code}&state={}", q["state"])).into_response()
}

async fn gh_token(State(s): State<GitHubState>, axum::Form(f): axum::Form<HashMap<String, String>>) -> Response {
    let bad = || axum::Json(json!({"error": "bad_verification_code"})).into_response();
    if f.get("client_id") != Some(&s.client_id) || f.get("client_secret") != Some(&s.client_secret) {
        return axum::Json(json!({"error": "incorrect_client_credentials"})).into_response();
    }
    let Some((account, challenge, redirect)) = s.codes.lock().unwrap().remove(&f["code"]) else {
        return bad();
    };
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    if centralauth_operator::oauth::pkce::s256(&verifier) != challenge || f.get("redirect_uri") != Some(&redirect) {
        return bad();
    }
    let token = centralauth_operator::oauth::grant::random_token();
    s.tokens.lock().unwrap().insert(token.clone(), account);
    axum::Json(json!({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"})).into_response()
}

fn gh_account(s: &GitHubState, headers: &axum::http::HeaderMap) -> Option<GitHubAccount> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let token = auth.strip_prefix("Bearer ")?;
    s.tokens.lock().unwrap().get(token).cloned()
}

async fn gh_user(State(s): State<GitHubState>, headers: axum::http::HeaderMap) -> Response {
    match gh_account(&s, &headers) {
        Some(a) => axum::Json(json!({"id": a.id, "login": format!("user{}", a.id)})).into_response(),
        None => (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "Bad credentials"})),
        )
            .into_response(),
    }
}

async fn gh_emails(State(s): State<GitHubState>, headers: axum::http::HeaderMap) -> Response {
    match gh_account(&s, &headers) {
        Some(a) => axum::Json(a.emails).into_response(),
        None => (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "Bad credentials"})),
        )
            .into_response(),
    }
}

#[tokio::test]
async fn github_links_only_a_primary_verified_address() {
    let server = Server::start("prov-github").await;
    let gh = GitHubServer::start("gh-client-id", "gh-client-secret-0123456789").await;
    provider_secret(&server, "gh-client", "secret", "gh-client-secret-0123456789").await;
    let spec = json!({
        "allowLocalhost": true,
        "loginMethods": {"passwords": {"secretName": "acme-users"}, "providers": [{
            "name": "github", "type": "GitHub", "clientId": "gh-client-id", "enterpriseUrl": gh.url,
            "clientSecretRef": {"name": "gh-client", "key": "secret"}}]},
    });
    let mut t = server.tenant("acme", spec, &[ADA]).await;
    t.activate_secret(&server, "acme-secret").await;
    wait_secret(&server, "gh-client", "secret").await;
    let http = server.http(&[]);
    let login_as = |account: GitHubAccount| {
        *gh.state.next.lock().unwrap() = Some(account);
        let (http, t, gh_url) = (http.clone(), t.clone(), gh.url.clone());
        async move {
            let (cookie, resp) = press(&http, &t, &authorize(&t, &[]), "github").await;
            let to = location(&resp);
            assert!(to.starts_with(&format!("{gh_url}/login/oauth/authorize")), "{to}");
            let at_gh = http.get(&to).send().await.unwrap();
            get_with(&http, &location(&at_gh), Some(&cookie)).await
        }
    };
    // The primary address is unverified (a verified secondary one does not count).
    let unverified = GitHubAccount {
        id: 1001,
        emails: json!([{"email": ADA.0, "primary": true, "verified": false},
                       {"email": "ada.other@example.com", "primary": false, "verified": true}]),
    };
    let (status, body) = page(login_as(unverified).await).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("GitHub did not confirm that your e-mail address is verified"),
        "{body}"
    );
    let ada = users(&server).get_opt(&user_name("acme", ADA.0)).await.unwrap();
    assert!(ada.is_none_or(|u| !u.labels().contains_key(&provider_label("github"))));
    assert!(
        users(&server)
            .get_opt(&user_name("acme", "ada.other@example.com"))
            .await
            .unwrap()
            .is_none()
    );

    // Primary and verified: linked to Ada, who logs in.
    let verified = GitHubAccount {
        id: 1002,
        emails: json!([{"email": ADA.0, "primary": true, "verified": true}]),
    };
    let resp = login_as(verified).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let ada = users(&server).get(&user_name("acme", ADA.0)).await.unwrap();
    let conn = ada
        .status
        .unwrap()
        .connections
        .into_iter()
        .find(|c| c.type_ == "github");
    assert_eq!(conn.and_then(|c| c.subject).as_deref(), Some("1002"));
}

// ---- validation ---------------------------------------------------------------------------

#[tokio::test]
async fn provider_settings_are_validated_at_apply_and_a_missing_secret_is_reported() {
    let client = support::client().await;
    let ns = support::namespace(&client, "prov-validation").await;
    let resource = kube::discovery::ApiResource::erase::<Organization>(&());
    let orgs: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
    let p = |extra: Value| {
        let mut p = json!({"name": "corp", "type": "OIDC", "clientId": "c", "issuer": "https://idp.example.com",
                           "clientSecretRef": {"name": "idp", "key": "secret"}});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                p.as_object_mut().unwrap().remove(k);
            } else {
                p[k] = v.clone();
            }
        }
        p
    };
    let cases: Vec<(Vec<Value>, bool, &str)> = vec![
        (vec![p(json!({})), p(json!({}))], false, "Duplicate value"),
        (
            vec![p(json!({"name": "email"}))],
            false,
            "cannot be password, email or passkey",
        ),
        (vec![p(json!({"name": "Corp"}))], false, "must be a DNS label"),
        (
            vec![p(json!({"issuer": null}))],
            false,
            "issuer is required for type OIDC",
        ),
        (vec![p(json!({"type": "Google"}))], false, "not allowed for Google"),
        (
            vec![p(json!({"issuer": "ftp://idp.example.com"}))],
            false,
            "issuer must be an https:// URL",
        ),
        (
            vec![p(json!({"issuer": "http://127.0.0.1:4444"}))],
            false,
            "only with allowLocalhost",
        ),
        (vec![p(json!({"issuer": "http://127.0.0.1:4444"}))], true, ""),
        (
            vec![p(json!({"tenant": "contoso.com"}))],
            false,
            "tenant is only allowed for type Microsoft",
        ),
        (vec![p(json!({"clientSecretRef": null}))], false, "clientSecretRef"),
    ];
    for (i, (providers, localhost, expected)) in cases.into_iter().enumerate() {
        let org: kube::api::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization",
            "metadata": {"name": format!("o{i}")},
            "spec": {"displayName": "x", "allowLocalhost": localhost, "loginMethods": {"providers": providers}},
        }))
        .unwrap();
        let result = orgs.create(&PostParams::default(), &org).await;
        match (expected, result) {
            ("", Ok(_)) => {}
            ("", Err(e)) => panic!("case {i} refused: {e}"),
            (want, Ok(_)) => panic!("case {i} accepted, expected {want:?}"),
            (want, Err(e)) => assert!(e.to_string().contains(want), "case {i}: {e}"),
        }
    }

    // An organization with only a provider is valid; its missing Secret is reported.
    let server = Server::start("prov-missing-secret").await;
    let orgs: Api<Organization> = Api::namespaced(server.client.clone(), &server.ns);
    let org: Organization = serde_json::from_value(json!({
        "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization", "metadata": {"name": "acme"},
        "spec": {"displayName": "x", "loginMethods": {"providers": [{"name": "gh", "type": "GitHub", "clientId": "c",
                 "clientSecretRef": {"name": "gh-client", "key": "secret"}}]}},
    }))
    .unwrap();
    orgs.create(&PostParams::default(), &org).await.unwrap();
    let acme = wait_for(&orgs, "acme", "SecretNotFound", |o| {
        ready_of(o.status.as_ref().map(|s| &s.conditions)).is_some_and(|r| r.1 == "SecretNotFound")
    })
    .await;
    let message = ready_of(acme.status.as_ref().map(|s| &s.conditions)).unwrap().2;
    assert!(message.contains("gh-client"), "{message}");
    assert!(
        !events_for(&server.client, &server.ns, "acme", "SecretNotFound")
            .await
            .is_empty()
    );
    provider_secret(&server, "gh-client", "secret", "value-never-shown-0123").await;
    let acme = wait_for(&orgs, "acme", "Ready", |o| {
        ready_of(o.status.as_ref().map(|s| &s.conditions)).is_some_and(|r| r.0 == "True")
    })
    .await;
    assert!(
        !serde_json::to_string(&acme.status)
            .unwrap()
            .contains("value-never-shown")
    );
}

// ---- logs ---------------------------------------------------------------------------------

#[tokio::test]
async fn provider_secrets_codes_and_state_never_reach_the_logs() {
    let s = setup("prov-logs", json!({})).await;
    s.hydra
        .set_identity(&s.client_id, identity("hydra-liz", "liz@example.com", true));
    let operator = Operator::start_on_localhost(&s.server.ns, "debug");
    let port = operator.public;
    let mut bin = s.t.clone();
    bin.port = port;
    bin.issuer = format!("http://localhost:{port}/o/{}", s.t.client_id);
    register_callback(
        &s.hydra,
        &s.client_id,
        &format!("{}/oauth/providers/hydra/callback", bin.issuer),
    )
    .await;
    let http = s.server.http(&[]);
    let login_once = || async {
        let (cookie, resp) = press(&http, &bin, &authorize(&bin, &[]), "hydra").await;
        let callback = s.hydra.follow(&location(&resp)).await;
        (callback.clone(), get_with(&http, &callback, Some(&cookie)).await)
    };
    // The binary's caches and Secret follower may still be starting: retry the whole login.
    let (callback, done) = support::wait_until(Duration::from_secs(30), || async {
        let _ = reqwest::get(format!("{}/.well-known/openid-configuration", bin.issuer))
            .await
            .ok()?;
        let (callback, resp) = login_once().await;
        (resp.status() == 303).then_some((callback, resp))
    })
    .await
    .expect("the binary never completed a provider login");
    let app_code = location_param(&done, "code").unwrap();
    // A wrong client secret: the provider refuses the code, and the reason is logged.
    let wrong = "wrong-provider-secret-4711";
    let patch = json!({"stringData": {"secret": wrong}});
    Api::<Secret>::namespaced(s.server.client.clone(), &s.server.ns)
        .patch("hydra-client", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let refused = support::wait_until(Duration::from_secs(20), || async {
        let (_, resp) = login_once().await;
        (resp.status() == 502).then_some(())
    })
    .await;
    assert!(refused.is_some(), "the wrong secret was never used");
    let output = operator.stop_and_read_logs().await;
    assert!(output.contains("login sent to the provider"), "debug logs were written");
    assert!(output.contains("refused the code"), "the refusal's reason is logged");
    let upstream_code = query(&callback, "code");
    let state = query(&callback, "state");
    for (what, value) in [
        ("client secret", HYDRA_SECRET),
        ("wrong client secret", wrong),
        ("provider code", upstream_code.as_str()),
        ("state", state.as_str()),
        ("app code", app_code.as_str()),
    ] {
        assert!(!output.contains(value), "the {what} reached the logs");
    }
}

// ---- Chromium -----------------------------------------------------------------------------

/// An app on a loopback port with the callback `/cb`; its port and callback URL.
async fn app_callback() -> (u16, String) {
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = app.local_addr().unwrap().port();
    let cb = axum::routing::get(|| async { axum::response::Html("<h1>Callback reached</h1>") });
    let router = axum::Router::new().route("/cb", cb);
    tokio::spawn(async move { axum::serve(app, router).await.unwrap() });
    (port, format!("http://localhost:{port}/cb"))
}

/// Chromium through `provider_login.mjs` on the CentralAuth login URL of `t`.
async fn chromium(t: &Tenant, callback: &str, shots: &str) -> Value {
    let url = reqwest::Url::parse_with_params(
        &format!("{}/login", t.origin()),
        &[
            ("client_id", t.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", callback),
            ("state", "browser-state"),
        ],
    )
    .unwrap();
    let artifacts = support::repo_root().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let input = json!({"url": url.as_str(), "provider": "hydra", "callbackPrefix": callback,
                       "artifacts": artifacts, "shots": shots});
    crate::oauth_clients::node("provider_login.mjs", &input).await
}

#[tokio::test]
async fn chromium_logs_in_through_hydra_and_is_refused_when_not_invited_or_blocked() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "install Debian's chromium (`apt-get install chromium`; .ci/run does)"
    );
    let (app_port, callback) = app_callback().await;
    let s = setup(
        "prov-chromium",
        json!({"subdomain": "provbrow", "userCreation": "InviteOnly",
               "allowedOrigins": [format!("http://localhost:{app_port}")],
               "redirectUris": [callback.clone()]}),
    )
    .await;
    s.hydra
        .set_identity(&s.client_id, identity("hydra-uma", "uma@example.com", true));

    // Not invited: Hydra's login and consent, back, and a page saying why.
    let out = chromium(&s.t, &callback, "provider-refused-").await;
    assert_eq!(out["buttons"], json!(["Log in with Hydra"]), "{out}");
    assert_eq!(out["scripts"], 0, "the login page needs no JavaScript");
    assert_eq!(out["status"], 403, "{out}");
    assert!(out["text"].as_str().unwrap().contains("invited users only"), "{out}");

    // Invited: logged in, on the app's callback with a code.
    let uma = User::invite(Some(&s.server.ns), "acme", "uma@example.com");
    users(&s.server).create(&PostParams::default(), &uma).await.unwrap();
    let out = chromium(&s.t, &callback, "provider-").await;
    assert_eq!(out["landed"], callback.as_str(), "{out}");
    assert!(out["code"].as_str().is_some_and(|c| c.len() >= 43), "{out}");
    assert_eq!(out["state"], "browser-state");

    // Blocked: refused with a page.
    let patch = json!({"spec": {"blocked": true}});
    users(&s.server)
        .patch(&uma.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let out = chromium(&s.t, &callback, "provider-blocked-").await;
    assert_eq!(out["status"], 403, "{out}");
    assert!(
        out["text"].as_str().unwrap().contains("this account is blocked"),
        "{out}"
    );
    let artifacts = support::repo_root().join("tests/artifacts");
    assert!(artifacts.join("provider-login-page.png").exists());
}
