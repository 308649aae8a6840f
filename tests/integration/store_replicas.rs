//! Two replicas of the public server behind one (imagined) load balancer: the same namespace,
//! signing keys and public URL, each its own listener, caches and store connection — and only
//! the first runs the controllers, as only the leader does.
//!
//! With one Redis (`--store redis://…`, the same key prefix) every replica sees every code,
//! session and refresh token: a code issued at A is redeemed at B once, its replay at A revokes
//! what it issued, a logout at A ends the session at B, and a refresh-token replay at A revokes
//! the family B rotated. The same scenarios with each replica on its own memory store show why
//! the chart refuses `replicas > 1` without Redis: a login that crosses replicas fails, and —
//! worse — a replay or a logout at one replica does not reach the other, which goes on
//! honouring the tokens and the session.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::oauth::{Server, Tenant, location_param, login};
use crate::support::redis_server;
use centralauth_operator::oauth::pkce::s256;
use centralauth_operator::store::StoreUrl;

const V: &str = "replicas-test-verifier-0123456789-abcdefghijklmnop";
const UUID_V: &str = "0d5c2f7e-6d1b-4c1a-9b1e-2f7d8e9a0b1c";
const CB: &str = "https://app.example.com/cb";
const USER: (&str, &str) = ("ada@example.com", "pw-ada-1");

/// Replica A (with the controllers) and replica B, each on `store` under one key prefix, and an
/// organization with an active secret that both see.
pub(crate) async fn two_replicas(test: &str, store: StoreUrl) -> (Server, Server, Tenant) {
    let prefix = redis_server::unique_prefix(test);
    let (s, p) = (store.clone(), prefix.clone());
    let a = Server::start_with(test, move |settings| {
        settings.store = s;
        settings.store_key_prefix = p;
    })
    .await;
    let b = a.replica(store, &prefix).await;
    let mut t = a.tenant("acme", json!({}), &[USER]).await;
    t.activate_secret(&a, "acme-secret").await;
    t.wait_seen_by(&b, "acme-secret").await;
    (a, b, t)
}

pub(crate) fn shared_redis() -> StoreUrl {
    redis_server::shared().url().parse().expect("a redis URL")
}

/// The tenant's issuer as reached at `server` (same path, that replica's port).
pub(crate) fn issuer_at(t: &Tenant, server: &Server) -> String {
    t.issuer
        .replace(&format!(":{}/", t.port), &format!(":{}/", server.port))
}

/// The tenant's CentralAuth origin as reached at `server`.
fn origin_at(t: &Tenant, server: &Server) -> String {
    format!("http://{}:{}", t.host, server.port)
}

/// Logs in at `server` through `/oauth2/authorize` and returns the code.
async fn oauth_code(server: &Server, t: &Tenant) -> String {
    let challenge = s256(V);
    let q = [("scope", "openid email"), ("code_challenge", challenge.as_str())];
    login_for_code(server, t, &format!("{}/oauth2/authorize", issuer_at(t, server)), &q).await
}

/// Logs in at `server` through the CentralAuth `/login` and returns the code.
async fn centralauth_code(server: &Server, t: &Tenant) -> String {
    let challenge = s256(UUID_V);
    let q = [("code_challenge", challenge.as_str())];
    login_for_code(server, t, &format!("{}/login", origin_at(t, server)), &q).await
}

/// Logs in at the authorization endpoint `endpoint` with the common parameters and `extra`.
async fn login_for_code(server: &Server, t: &Tenant, endpoint: &str, extra: &[(&str, &str)]) -> String {
    let mut q = vec![
        ("client_id", t.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", CB),
        ("state", "st"),
        ("code_challenge_method", "S256"),
    ];
    q.extend_from_slice(extra);
    let url = reqwest::Url::parse_with_params(endpoint, &q).unwrap();
    let resp = login(&server.http(&[]), url.as_str(), USER.0, USER.1).await;
    location_param(&resp, "code").expect("a code")
}

/// `POST /oauth2/token` at `server`.
async fn token(server: &Server, t: &Tenant, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r = server
        .http(&[])
        .post(format!("{}/oauth2/token", issuer_at(t, server)))
        .basic_auth(&t.client_id, Some(&t.secret))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn exchange(server: &Server, t: &Tenant, code: &str) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CB),
        ("code_verifier", V),
    ];
    token(server, t, &form).await
}

async fn refresh(server: &Server, t: &Tenant, rt: &str) -> (StatusCode, Value) {
    token(server, t, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await
}

/// `GET /oauth2/userinfo` at `server` with the access token of `tokens`.
async fn oauth_userinfo(server: &Server, t: &Tenant, tokens: &Value) -> StatusCode {
    let access = tokens["access_token"].as_str().expect("an access token");
    let r = server
        .http(&[])
        .get(format!("{}/oauth2/userinfo", issuer_at(t, server)))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    r.status()
}

/// `POST /api/v1/verify` at `server`: the access token, if the code was accepted.
async fn verify(server: &Server, t: &Tenant, code: &str) -> Option<String> {
    let form = reqwest::multipart::Form::new()
        .text("code", code.to_string())
        .text("redirect_uri", CB)
        .text("code_verifier", UUID_V);
    let r = server
        .http(&[])
        .post(format!("{}/api/v1/verify", origin_at(t, server)))
        .basic_auth(&t.client_id, Some(&t.secret))
        .multipart(form)
        .send()
        .await
        .unwrap();
    if r.status() != StatusCode::OK {
        return None;
    }
    let body: Value = r.json().await.unwrap();
    Some(body["access_token"].as_str().unwrap().to_string())
}

/// `POST /api/v1/<what>` (userinfo or logout) at `server` with the token as body.
async fn centralauth_call(server: &Server, t: &Tenant, what: &str, access: &str) -> StatusCode {
    server
        .http(&[])
        .post(format!("{}/api/v1/{what}", origin_at(t, server)))
        .basic_auth(&t.client_id, Some(&t.secret))
        .header("content-type", "text/plain")
        .body(access.to_string())
        .send()
        .await
        .unwrap()
        .status()
}

/// What crossed from one replica to the other.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    /// A code issued at A was redeemed at B.
    code_redeemed_at_other_replica: bool,
    /// The replay of a redeemed code at the other replica revoked the winner's tokens.
    code_replay_revoked_the_tokens: bool,
    /// A CentralAuth code from `/login` at A was accepted by `/api/v1/verify` at B.
    centralauth_code_verified_at_other_replica: bool,
    /// A logout at one replica ended the session at the other.
    logout_ended_the_session_everywhere: bool,
    /// A refresh token from A was rotated at B.
    refresh_rotated_at_other_replica: bool,
    /// Replaying the rotated refresh token at the other replica revoked its family.
    refresh_replay_revoked_the_family: bool,
}

/// The same scenarios on any pair of replicas. Each step that works only with a shared store
/// falls back to the replica that has the data, so the later steps still run and show what a
/// non-shared store lets through.
async fn cross_replica_scenarios(a: &Server, b: &Server, t: &Tenant) -> Observed {
    // 1. A code issued at A, redeemed at B (else at A); replayed at the other replica.
    let code = oauth_code(a, t).await;
    let (status, at_b) = exchange(b, t, &code).await;
    let code_redeemed_at_other_replica = status == StatusCode::OK;
    let (winner, loser, tokens) = if code_redeemed_at_other_replica {
        (b, a, at_b)
    } else {
        let (status, at_a) = exchange(a, t, &code).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the code works at the replica that issued it: {at_a}"
        );
        (a, b, at_a)
    };
    assert_eq!(
        oauth_userinfo(winner, t, &tokens).await,
        StatusCode::OK,
        "the winner's token works"
    );
    let (status, replay) = exchange(loser, t, &code).await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let code_replay_revoked_the_tokens = oauth_userinfo(winner, t, &tokens).await == StatusCode::UNAUTHORIZED;
    if code_replay_revoked_the_tokens {
        let (status, _) = refresh(winner, t, tokens["refresh_token"].as_str().unwrap()).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "the replay revoked the refresh token too"
        );
    }

    // 2. CentralAuth: /login at A, /api/v1/verify at B (else at A); logout at the other
    //    replica; the session must be gone where the token was verified.
    let code = centralauth_code(a, t).await;
    let verified_at_b = verify(b, t, &code).await;
    let centralauth_code_verified_at_other_replica = verified_at_b.is_some();
    let (home, other, access) = match verified_at_b {
        Some(access) => (b, a, access),
        None => (
            a,
            b,
            verify(a, t, &code).await.expect("the code works where it was issued"),
        ),
    };
    assert_eq!(centralauth_call(home, t, "userinfo", &access).await, StatusCode::OK);
    let logout = centralauth_call(other, t, "logout", &access).await;
    let gone = centralauth_call(home, t, "userinfo", &access).await == StatusCode::UNAUTHORIZED;
    let logout_ended_the_session_everywhere = logout == StatusCode::OK && gone;

    // 3. A refresh token from A rotated at B (else at A); the used one replayed at the other
    //    replica; the family's newest token must then be refused.
    let (status, first) = exchange(a, t, &oauth_code(a, t).await).await;
    assert_eq!(status, StatusCode::OK);
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    let (status, at_b) = refresh(b, t, &rt1).await;
    let refresh_rotated_at_other_replica = status == StatusCode::OK;
    let (rotator, replayer, second) = if refresh_rotated_at_other_replica {
        (b, a, at_b)
    } else {
        let (status, at_a) = refresh(a, t, &rt1).await;
        assert_eq!(status, StatusCode::OK, "{at_a}");
        (a, b, at_a)
    };
    let (status, replay) = refresh(replayer, t, &rt1).await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, _) = refresh(rotator, t, second["refresh_token"].as_str().unwrap()).await;
    let refresh_replay_revoked_the_family = status == StatusCode::BAD_REQUEST;

    Observed {
        code_redeemed_at_other_replica,
        code_replay_revoked_the_tokens,
        centralauth_code_verified_at_other_replica,
        logout_ended_the_session_everywhere,
        refresh_rotated_at_other_replica,
        refresh_replay_revoked_the_family,
    }
}

#[tokio::test]
async fn replicas_sharing_redis_hold_replays_and_logouts_across_replicas() {
    let (a, b, t) = two_replicas("replicas-redis", shared_redis()).await;
    let observed = cross_replica_scenarios(&a, &b, &t).await;
    assert_eq!(
        observed,
        Observed {
            code_redeemed_at_other_replica: true,
            code_replay_revoked_the_tokens: true,
            centralauth_code_verified_at_other_replica: true,
            logout_ended_the_session_everywhere: true,
            refresh_rotated_at_other_replica: true,
            refresh_replay_revoked_the_family: true,
        }
    );

    // Twenty redemptions of one code at once, half at each replica: at most one gets tokens
    // (none when a replay revokes the family before the winner answers, which the token
    // endpoint checks last), and any tokens it got are revoked by the replays.
    let code = oauth_code(&a, &t).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let server = if i % 2 == 0 { &a } else { &b };
            let (http, url) = (server.http(&[]), format!("{}/oauth2/token", issuer_at(&t, server)));
            let (cid, secret, code) = (t.client_id.clone(), t.secret.clone(), code.clone());
            tokio::spawn(async move {
                let form = [
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", CB),
                    ("code_verifier", V),
                ];
                let r = http
                    .post(url)
                    .basic_auth(cid, Some(secret))
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut wins = vec![];
    for task in tasks {
        match task.await.unwrap() {
            (StatusCode::OK, body) => wins.push(body),
            (status, body) => assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_grant"))
            ),
        }
    }
    assert!(
        wins.len() <= 1,
        "{} of twenty redemptions across two replicas got tokens",
        wins.len()
    );
    for tokens in &wins {
        assert_eq!(oauth_userinfo(&a, &t, tokens).await, StatusCode::UNAUTHORIZED);
        assert_eq!(oauth_userinfo(&b, &t, tokens).await, StatusCode::UNAUTHORIZED);
    }
}

/// Why the chart refuses `replicas > 1` with `store.type: memory`: each replica has its own
/// store, so nothing crosses — including the replay detection and the logout.
#[tokio::test]
async fn replicas_on_memory_stores_let_replays_and_logouts_miss_the_other_replica() {
    let (a, b, t) = two_replicas("replicas-memory", StoreUrl::Memory).await;
    let observed = cross_replica_scenarios(&a, &b, &t).await;
    assert_eq!(
        observed,
        Observed {
            code_redeemed_at_other_replica: false,
            code_replay_revoked_the_tokens: false,
            centralauth_code_verified_at_other_replica: false,
            logout_ended_the_session_everywhere: false,
            refresh_rotated_at_other_replica: false,
            refresh_replay_revoked_the_family: false,
        }
    );
}
