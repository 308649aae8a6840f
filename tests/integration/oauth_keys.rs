//! Signing-key rotation on a live server: the key Secret gains a new key on schedule, tokens
//! switch to it, the JWKS keeps the previous key while its tokens may still be in use — a
//! resource server verifying with the `jose` library accepts old and new tokens — and drops it
//! afterwards, when tokens it signed are refused everywhere.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::{Value, json};

use centralauth_operator::oauth::keys::{RotationPolicy, StoredKey};

use crate::oauth_clients::node;
use crate::support;
use crate::support::oauth::{Server, Tenant, json_of};

/// Rotate every 4 s, publish 1 s ahead, keep a replaced key 12 s.
const POLICY: RotationPolicy = RotationPolicy {
    rotate_after: 4,
    publish_ahead: 1,
    retain_after: 12,
};

/// A client_credentials access token and the `kid` in its header.
async fn token(http: &reqwest::Client, t: &Tenant) -> (String, String) {
    let body = t.token(http, &[("grant_type", "client_credentials")]).await;
    let token = body["access_token"].as_str().expect("an access token").to_string();
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    (token, header["kid"].as_str().unwrap().to_string())
}

async fn jwks_kids(http: &reqwest::Client, t: &Tenant) -> Vec<String> {
    let jwks = json_of(http.get(format!("{}/oauth2/jwks", t.issuer))).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert!(keys.iter().all(|k| k.get("d").is_none()), "no private members: {jwks}");
    keys.iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()
}

/// `jose` verifying `tokens` against the published JWKS.
async fn jose_verify(t: &Tenant, tokens: &[&str]) -> Vec<Value> {
    let input = json!({"jwksUri": format!("{}/oauth2/jwks", t.issuer), "issuer": t.issuer, "tokens": tokens});
    node("jose_verify.mjs", &input).await.as_array().unwrap().clone()
}

async fn introspect_active(http: &reqwest::Client, t: &Tenant, token: &str) -> bool {
    let req = http
        .post(format!("{}/oauth2/introspect", t.issuer))
        .basic_auth(&t.client_id, Some(&t.secret))
        .form(&[("token", token)]);
    json_of(req).await["active"] == true
}

#[tokio::test]
async fn signing_keys_rotate_and_the_previous_key_verifies_until_retired() {
    let server = Server::start_with("key-rotation", |s| s.rotation = POLICY).await;
    let mut t = server.tenant("keys", json!({}), &[]).await;
    t.activate_secret(&server, "keys-secret").await;
    let http = server.http(&[]);
    let (old, old_kid) = token(&http, &t).await;

    let rotated = support::wait_until(Duration::from_secs(30), || async {
        let (new, kid) = token(&http, &t).await;
        (kid != old_kid).then_some((new, kid))
    })
    .await;
    let (new, new_kid) = rotated.expect("tokens were signed with a new key within 30 s");
    let kids = jwks_kids(&http, &t).await;
    assert!(kids.contains(&old_kid) && kids.contains(&new_kid), "{kids:?}");
    let secrets: Api<Secret> = Api::namespaced(server.client.clone(), &server.ns);
    let stored = secrets.get(&server.state.settings.signing_key_secret).await.unwrap();
    let stored: Vec<StoredKey> = serde_json::from_slice(&stored.data.unwrap()["keys.json"].0).unwrap();
    assert!(stored.iter().any(|k| k.kid == old_kid) && stored.iter().any(|k| k.kid == new_kid));

    let verified = jose_verify(&t, &[&old, &new]).await;
    assert_eq!(
        verified[0]["kid"],
        old_kid.as_str(),
        "the old token still verifies: {verified:?}"
    );
    assert_eq!(verified[1]["kid"], new_kid.as_str(), "{verified:?}");
    assert!(introspect_active(&http, &t, &old).await);

    let retired = support::wait_until(Duration::from_secs(40), || async {
        (!jwks_kids(&http, &t).await.contains(&old_kid)).then_some(())
    })
    .await;
    assert!(retired.is_some(), "the old key left the JWKS after its retention");
    let verified = jose_verify(&t, &[&old]).await;
    assert_eq!(verified[0]["error"], "ERR_JWKS_NO_MATCHING_KEY", "{verified:?}");
    assert!(
        !introspect_active(&http, &t, &old).await,
        "introspection refuses it too"
    );
}
