//! The Secrets the server keeps in memory (`runtime::secrets`) against the real API server: two
//! watches per namespace whatever the number of tenants, only the Secrets the caches name and
//! only the keys the server reads, a Secret created after (or before) the Organization naming
//! it, a key changed, a Secret deleted.

use std::time::Duration;

use centralauth_operator::runtime::cache::Caches;
use centralauth_operator::runtime::scope::Scope;
use centralauth_operator::runtime::secrets::SecretsView;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::organization::org;
use crate::support;

async fn put_secret(client: &Client, ns: &str, name: &str, data: serde_json::Value) {
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap();
    let api = Api::<Secret>::namespaced(client.clone(), ns);
    api.patch(
        name,
        &PatchParams::apply("secrets-watch-test").force(),
        &Patch::Apply(&secret),
    )
    .await
    .unwrap();
}

async fn value_becomes(view: &SecretsView, ns: &str, name: &str, key: &str, want: Option<&str>) {
    let seen = support::wait_until(Duration::from_secs(20), || async {
        let v = view.value(ns, name, key);
        (v.as_deref() == want.map(str::as_bytes)).then_some(())
    })
    .await;
    assert!(seen.is_some(), "{ns}/{name} key {key} never became {want:?}");
}

#[tokio::test]
async fn named_secrets_follow_the_api_server_and_nothing_else_is_held() {
    let client = support::client().await;
    let ns = support::namespace(&client, "secrets-watch").await;
    let orgs = Api::<centralauth_operator::crd::Organization>::namespaced(client.clone(), &ns);
    // Named before it exists.
    let mut acme = org("acme", json!({}));
    acme.spec.login_methods.passwords.as_mut().unwrap().secret_name = "acme-users".into();
    orgs.create(&PostParams::default(), &acme).await.unwrap();
    // Exists before anyone names it.
    put_secret(&client, &ns, "beta-users", json!({"users": "bob:b", "unread": "x"})).await;

    let caches = Caches::start_scoped(&client, &Scope::from_namespaces([ns.clone()]));
    caches.wait_until_ready().await;
    let view = SecretsView::start(client.clone(), caches.clone());
    tokio::time::timeout(Duration::from_secs(30), view.wait_loaded(&caches))
        .await
        .expect("a named Secret that does not exist still lets the view load");
    assert_eq!(view.value(&ns, "acme-users", "users"), None);
    assert!(!view.holds(&ns, "beta-users"), "nobody names beta-users yet");

    // Created after the Organization: the watch brings it.
    put_secret(&client, &ns, "stranger", json!({"users": "x"})).await;
    put_secret(&client, &ns, "acme-users", json!({"users": "alice:a", "unread": "y"})).await;
    value_becomes(&view, &ns, "acme-users", "users", Some("alice:a")).await;
    assert_eq!(
        view.value(&ns, "acme-users", "unread"),
        None,
        "keys the server does not read are dropped"
    );
    // The watch delivered `stranger` before `acme-users`: it was seen, and dropped.
    assert!(!view.holds(&ns, "stranger"), "a Secret nobody names is not held");

    // A key changed.
    put_secret(&client, &ns, "acme-users", json!({"users": "alice:new"})).await;
    value_becomes(&view, &ns, "acme-users", "users", Some("alice:new")).await;

    // Named after it was created: read once.
    let mut beta = org("beta", json!({}));
    beta.spec.login_methods.passwords.as_mut().unwrap().secret_name = "beta-users".into();
    orgs.create(&PostParams::default(), &beta).await.unwrap();
    value_becomes(&view, &ns, "beta-users", "users", Some("bob:b")).await;
    assert_eq!(view.value(&ns, "beta-users", "unread"), None);

    // Deleted.
    Api::<Secret>::namespaced(client.clone(), &ns)
        .delete("acme-users", &DeleteParams::default())
        .await
        .unwrap();
    value_becomes(&view, &ns, "acme-users", "users", None).await;

    // No longer named: forgotten.
    orgs.delete(&beta.name_any(), &DeleteParams::default()).await.unwrap();
    let forgotten = support::wait_until(Duration::from_secs(20), || async {
        (!view.holds(&ns, "beta-users")).then_some(())
    })
    .await;
    assert!(forgotten.is_some(), "a Secret no longer named is dropped");
    assert_eq!(view.held_count(), 0);
}
