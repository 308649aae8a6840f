//! The user directory against the real API server: a first login records the `User` (its ID
//! the one apps already had), later logins the same day write nothing, invite-only and allowed
//! e-mail domains refuse with a clear page, and blocking or deleting a user ends their
//! sessions, access and refresh tokens within seconds (through the real User controller).

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use centralauth_operator::crd::{Organization, USER_FINALIZER, User, user_name};
use centralauth_operator::oauth::grant::OrgKey;
use centralauth_operator::oauth::{profile, tokens};

use crate::oauth_attacks::{CB, V, authorize, exchange, token};
use crate::support;
use crate::support::oauth::{Server, Tenant, location_param, login};
use crate::support::smtp::{EmailLogin, Security, SmtpServer};

/// How long the User controller may take to set a condition or publish an event.
const USER_READY_TIMEOUT: Duration = Duration::from_secs(10);

const ADA: (&str, &str) = ("ada@example.com", "pw-ada-1");
const BOB: (&str, &str) = ("bob@example.com", "pw-bob-1");

async fn setup(test: &str, extra: Value, users: &[(&str, &str)]) -> (Server, Tenant) {
    let server = Server::start(test).await;
    let mut t = server.tenant("acme", extra, users).await;
    t.activate_secret(&server, "acme-secret").await;
    (server, t)
}

fn users(server: &Server) -> Api<User> {
    Api::namespaced(server.client.clone(), &server.ns)
}

/// The ID apps saw before users were recorded: `user_id` of the organization and address.
async fn previous_id(server: &Server, email: &str) -> String {
    let org = Api::<Organization>::namespaced(server.client.clone(), &server.ns)
        .get("acme")
        .await
        .unwrap();
    let key = OrgKey {
        namespace: server.ns.clone(),
        name: "acme".into(),
        uid: org.metadata.uid.unwrap(),
    };
    tokens::user_id(&key, email)
}

/// A standard login with a password and its code exchange: the token response.
async fn oauth_tokens(server: &Server, t: &Tenant, email: &str, password: &str) -> Value {
    let resp = login(&server.http(&[]), &authorize(t, &[]), email, password).await;
    let code = location_param(&resp, "code").expect("the login succeeds");
    let (status, body) = exchange(server, t, &code, V).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A CentralAuth login and `/api/v1/verify`: the access token.
async fn centralauth_token(server: &Server, t: &Tenant, email: &str, password: &str) -> String {
    let http = server.http(&[]);
    let resp = login(&http, &t.login_url(CB, &[("state", "s")]), email, password).await;
    let code = location_param(&resp, "code").expect("the login succeeds");
    let verified = t.verify(&http, &code, CB, None).await;
    verified["access_token"].as_str().expect("a token").to_string()
}

/// What a login page says when the login is refused: (status, page).
async fn refused(server: &Server, t: &Tenant, email: &str, password: &str) -> (u16, String) {
    let resp = login(&server.http(&[]), &authorize(t, &[]), email, password).await;
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn introspect_active(server: &Server, t: &Tenant, tok: &str) -> bool {
    let r = server
        .http(&[])
        .post(format!("{}/oauth2/introspect", t.issuer))
        .basic_auth(&t.client_id, Some(&t.secret))
        .form(&[("token", tok)])
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["active"] == true
}

async fn oidc_userinfo(server: &Server, t: &Tenant, tok: &str) -> (u16, Value) {
    let r = server
        .http(&[])
        .get(format!("{}/oauth2/userinfo", t.issuer))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn claims(jwt: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn gravatar_of(email: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, email.as_bytes());
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("https://www.gravatar.com/avatar/{hex}")
}

#[tokio::test]
async fn a_first_login_records_the_user_with_the_previous_id_and_later_logins_that_day_write_nothing() {
    let (server, t) = setup("users-first", json!({}), &[ADA]).await;
    let tokens = oauth_tokens(&server, &t, "Ada@Example.com", ADA.1).await;
    let id = previous_id(&server, ADA.0).await;
    assert_eq!(claims(tokens["id_token"].as_str().unwrap())["sub"], id.as_str());

    let name = user_name("acme", ADA.0);
    let user = users(&server)
        .get(&name)
        .await
        .expect("the first login created the User");
    let status = user.status.clone().expect("and wrote its status");
    assert_eq!(status.id.as_deref(), Some(id.as_str()), "the ID apps already hold");
    assert_eq!(user.spec.email, ADA.0);
    assert!(status.verified && !user.spec.blocked);
    let today = profile::day(centralauth_operator::oauth::now());
    assert_eq!(status.last_login.as_deref(), Some(today.as_str()));
    let types: Vec<&str> = status.connections.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, ["password"]);
    assert_eq!(user.metadata.finalizers, Some(vec![USER_FINALIZER.to_string()]));
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "Active"));

    // A second login the same day, by the other protocol: nothing is written.
    let rv = user.metadata.resource_version.clone();
    let ca_token = centralauth_token(&server, &t, ADA.0, ADA.1).await;
    let user_object = t
        .userinfo(&server.http(&[]), &ca_token, "https://app.example.com")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = users(&server).get(&name).await.unwrap();
    assert_eq!(
        again.metadata.resource_version, rv,
        "a second login the same day writes nothing"
    );

    // The user object comes from the directory.
    assert_eq!(user_object["id"], id.as_str());
    assert_eq!(user_object["email"], ADA.0);
    assert_eq!(user_object["gravatar"], gravatar_of(ADA.0).as_str());
    assert_eq!(user_object["verified"], true);
    assert_eq!(user_object["blocked"], false);
    assert_eq!(user_object["organizationId"], t.client_id.as_str());
    assert_eq!(user_object["lastLogin"], today.as_str());
    assert_eq!(user_object["connections"][0]["type"], "password");
    assert!(user_object["created"].as_str().unwrap().ends_with('Z'));
    let (code, info) = oidc_userinfo(&server, &t, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(code, 200);
    assert_eq!(info["sub"], id.as_str());
    assert_eq!(info["user"]["connections"][0]["type"], "password");
}

#[tokio::test]
async fn invite_only_refuses_an_unknown_address_with_a_clear_page_and_admits_an_invited_user() {
    let (server, t) = setup("users-invite", json!({"userCreation": "InviteOnly"}), &[ADA, BOB]).await;
    let (status, page) = refused(&server, &t, BOB.0, BOB.1).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("has not been invited"), "{page}");
    let name = user_name("acme", BOB.0);
    assert!(
        users(&server).get_opt(&name).await.unwrap().is_none(),
        "nothing was created"
    );

    // An admin invites with what `centralauth-operator user` prints (`| kubectl apply -f -`).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_centralauth-operator"))
        .args([
            "user",
            "--organization",
            "acme",
            "--email",
            " Bob@Example.com",
            "-n",
            &server.ns,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let invitation: User = serde_norway::from_slice(&out.stdout).unwrap();
    assert_eq!(invitation.metadata.name.as_deref(), Some(name.as_str()));
    users(&server)
        .create(&PostParams::default(), &invitation)
        .await
        .unwrap();
    let tokens = oauth_tokens(&server, &t, BOB.0, BOB.1).await;
    assert!(tokens["access_token"].is_string());
    let status = users(&server).get(&name).await.unwrap().status.unwrap();
    assert_eq!(status.id, Some(previous_id(&server, BOB.0).await));
    assert_eq!(status.connections.len(), 1);
}

#[tokio::test]
async fn allowed_email_domains_refuse_other_domains_on_password_and_email_code_logins() {
    let mut smtp = SmtpServer::start(Security::None, None, None).await;
    let server = Server::start("users-domains").await;
    let other = ("mal@other.example", "pw-mal-1");
    let methods = json!({"email": smtp.login_method(Security::None, None), "passwords": {"secretName": "acme-users"}});
    let extra = json!({"allowedEmailDomains": ["example.com"], "loginMethods": methods});
    let t = server.tenant("acme", extra, &[ADA, other]).await;

    let (status, page) = refused(&server, &t, other.0, other.1).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("addresses of other.example may not log in"), "{page}");

    let flow = EmailLogin::start(&server.http(&[]), &authorize(&t, &[])).await;
    let sent = flow.send("Zed@Other.Example").await;
    assert_eq!(sent.status(), 403);
    assert!(
        sent.text()
            .await
            .unwrap()
            .contains("addresses of other.example may not log in")
    );
    assert_eq!(smtp.received(), 0, "no code went to a refused domain");
    let sent = flow.send(ADA.0).await;
    assert_eq!(sent.status(), 200, "an allowed domain still gets its code");
    smtp.next_mail().await;
    let resp = login(&server.http(&[]), &authorize(&t, &[]), ADA.0, ADA.1).await;
    assert!(location_param(&resp, "code").is_some(), "an allowed domain logs in");
}

/// Waits until `gone` holds, at most 5 seconds; how long it took.
async fn within_seconds<F, Fut>(mut gone: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let done = support::wait_until(Duration::from_secs(5), || {
        let fut = gone();
        async move { fut.await.then_some(()) }
    })
    .await;
    assert!(done.is_some(), "access did not end within 5 seconds");
    started.elapsed()
}

/// Everything `tokens` and `ca_token` stood for is refused.
async fn assert_all_refused(server: &Server, t: &Tenant, tokens: &Value, ca_token: &str) {
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert!(!introspect_active(server, t, refresh).await, "refresh token inactive");
    assert_eq!(oidc_userinfo(server, t, access).await.0, 401);
    let (status, body) = token(
        server,
        t,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let r = server
        .http(&[])
        .post(format!("{}/api/v1/userinfo", t.origin()))
        .basic_auth(&t.client_id, Some(&t.secret))
        .body(ca_token.to_string())
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_client_error(),
        "CentralAuth userinfo refused: {}",
        r.status()
    );
}

/// A server where Ada logged in twice: standard tokens (active) and a CentralAuth token.
async fn logged_in(test: &str) -> (Server, Tenant, Value, String) {
    let (server, t) = setup(test, json!({}), &[ADA]).await;
    let tokens = oauth_tokens(&server, &t, ADA.0, ADA.1).await;
    let ca_token = centralauth_token(&server, &t, ADA.0, ADA.1).await;
    assert!(introspect_active(&server, &t, tokens["access_token"].as_str().unwrap()).await);
    (server, t, tokens, ca_token)
}

#[tokio::test]
async fn blocking_ends_sessions_tokens_and_refresh_within_seconds_and_unblocking_admits_again() {
    let (server, t, tokens, ca_token) = logged_in("users-block").await;
    let access = tokens["access_token"].as_str().unwrap().to_string();

    let name = user_name("acme", ADA.0);
    let block = |blocked: bool| json!({"spec": {"blocked": blocked}});
    users(&server)
        .patch(&name, &PatchParams::default(), &Patch::Merge(&block(true)))
        .await
        .unwrap();
    let took = within_seconds(|| async { !introspect_active(&server, &t, &access).await }).await;
    assert!(took < Duration::from_secs(3), "access ended after {took:?}");
    assert_all_refused(&server, &t, &tokens, &ca_token).await;
    let (status, page) = refused(&server, &t, ADA.0, ADA.1).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("this account is blocked"), "{page}");
    let user = users(&server).get(&name).await.unwrap();
    let status = user.status.unwrap();
    assert!(status.blocked_at.is_some());
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "Blocked"));

    // Unblocked: the user logs in again; the old tokens stay dead.
    users(&server)
        .patch(&name, &PatchParams::default(), &Patch::Merge(&block(false)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = oauth_tokens(&server, &t, ADA.0, ADA.1).await;
    assert!(introspect_active(&server, &t, fresh["access_token"].as_str().unwrap()).await);
    assert!(!introspect_active(&server, &t, &access).await, "old tokens stay ended");
    let cleared = support::wait_until(Duration::from_secs(5), || async {
        let s = users(&server).get(&name).await.ok()?.status?;
        s.blocked_at.is_none().then_some(s)
    })
    .await
    .expect("the controller clears blockedAt");
    let ready = cleared.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
    assert!(introspect_active(&server, &t, fresh["access_token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn deleting_a_user_ends_access_within_seconds_and_a_new_login_gets_the_same_id() {
    let (server, t, tokens, ca_token) = logged_in("users-delete").await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let name = user_name("acme", ADA.0);
    users(&server).delete(&name, &DeleteParams::default()).await.unwrap();
    let took = within_seconds(|| async { !introspect_active(&server, &t, &access).await }).await;
    assert!(took < Duration::from_secs(3), "access ended after {took:?}");
    assert_all_refused(&server, &t, &tokens, &ca_token).await;
    let removed = support::wait_until(Duration::from_secs(5), || async {
        users(&server).get_opt(&name).await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(removed.is_some(), "the controller removed its finalizer");

    // userCreation: Open — a new login records the user again, with the same ID.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = oauth_tokens(&server, &t, ADA.0, ADA.1).await;
    assert!(introspect_active(&server, &t, fresh["access_token"].as_str().unwrap()).await);
    let status = users(&server).get(&name).await.unwrap().status.unwrap();
    assert_eq!(status.id, Some(previous_id(&server, ADA.0).await));
}

/// The `Ready` condition the controller gives User `name`, once it has one.
async fn ready_of(server: &Server, name: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    support::wait_until(USER_READY_TIMEOUT, || async {
        let status = users(server).get(name).await.ok()?.status?;
        status.conditions.into_iter().find(|c| c.type_ == "Ready")
    })
    .await
    .expect("the controller sets Ready")
}

/// The notes of the Warning events with `reason` in the server's namespace.
async fn warnings(server: &Server, reason: &str) -> Vec<String> {
    use k8s_openapi::api::events::v1::Event;
    let events = Api::<Event>::namespaced(server.client.clone(), &server.ns);
    let found = support::wait_until(USER_READY_TIMEOUT, || async {
        let list = events.list(&Default::default()).await.ok()?;
        let notes: Vec<String> = list
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some("Warning"))
            .filter_map(|e| e.note)
            .collect();
        (!notes.is_empty()).then_some(notes)
    })
    .await;
    found.unwrap_or_default()
}

#[tokio::test]
async fn a_misnamed_user_and_one_without_organization_are_flagged_with_what_to_fix() {
    let (server, _t) = setup("users-misnamed", json!({}), &[]).await;
    let mut user = User::invite(Some(&server.ns), "acme", ADA.0);
    user.metadata.name = Some("ada".into());
    users(&server).create(&PostParams::default(), &user).await.unwrap();
    let expected = user_name("acme", ADA.0);
    let ready = ready_of(&server, "ada").await;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "NameMismatch")
    );
    assert!(ready.message.contains(&expected), "{}", ready.message);
    let notes = warnings(&server, "NameMismatch").await;
    assert!(
        notes.iter().any(|n| n.contains(&expected)),
        "an event names {expected}: {notes:?}"
    );

    let orphan = User::invite(Some(&server.ns), "ghost", ADA.0);
    let name = orphan.metadata.name.clone().unwrap();
    users(&server).create(&PostParams::default(), &orphan).await.unwrap();
    let ready = ready_of(&server, &name).await;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "OrganizationMissing")
    );
    assert!(
        ready.message.contains("Organization ghost does not exist"),
        "{}",
        ready.message
    );
}

#[tokio::test]
async fn blocking_at_the_leader_ends_access_at_another_replica_sharing_redis() {
    use crate::store_replicas::{issuer_at, shared_redis, two_replicas};
    let (a, b, t) = two_replicas("users-replicas", shared_redis()).await;
    let mut at_b = t.clone();
    at_b.issuer = issuer_at(&t, &b);
    at_b.port = b.port;
    let tokens = oauth_tokens(&b, &at_b, ADA.0, ADA.1).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    assert!(introspect_active(&b, &at_b, &access).await);
    let name = user_name("acme", ADA.0);
    let patch = json!({"spec": {"blocked": true}});
    users(&a)
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let took = within_seconds(|| async { !introspect_active(&b, &at_b, &access).await }).await;
    assert!(
        took < Duration::from_secs(3),
        "access ended at the other replica after {took:?}"
    );
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _) = token(
        &b,
        &at_b,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(status, 400, "refresh refused at the other replica");
}
