//! Cold argon2id verification vs. a cached verification of a client secret, through the same
//! `SecretVerifier` the server uses. Prints both and the ratio. `bench_verify [iterations]`.

use std::sync::Arc;
use std::time::Instant;

use centralauth_operator::crd::{ClientSecret, Organization};
use centralauth_operator::oauth::verifier::SecretVerifier;

#[tokio::main]
async fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(20);
    let secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let org: Organization = serde_json::from_value(serde_json::json!({
        "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization",
        "metadata": {"name": "acme", "namespace": "ns"},
        "spec": {"displayName": "Acme", "loginMethods": {"passwords": {"secretName": "u"}}},
        "status": {"activeSecret": {"name": "s1", "uid": "uid-1", "fingerprint": "sha256:x"}}
    }))
    .expect("org");
    let cs: ClientSecret = serde_json::from_value(serde_json::json!({
        "apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret",
        "metadata": {"name": "s1", "namespace": "ns", "uid": "uid-1"},
        "spec": {"organizationRef": {"name": "acme"}},
        "status": {"phase": "Active", "secretHash": centralauth_operator::crypto::hash(secret.as_bytes()).expect("hash")}
    }))
    .expect("secret");
    let secrets = vec![Arc::new(cs)];
    let mut cold = std::time::Duration::ZERO;
    for _ in 0..n {
        let v = SecretVerifier::new(1);
        let t = Instant::now();
        assert!(
            v.authenticate_client(Some(&org), "cid", secret, &secrets)
                .await
                .is_some()
        );
        cold += t.elapsed();
    }
    let v = SecretVerifier::new(1);
    v.authenticate_client(Some(&org), "cid", secret, &secrets)
        .await
        .expect("warm up");
    let hits = n * 1000;
    let t = Instant::now();
    for _ in 0..hits {
        assert!(
            v.authenticate_client(Some(&org), "cid", secret, &secrets)
                .await
                .is_some()
        );
    }
    let cached = t.elapsed();
    let cold_us = cold.as_secs_f64() * 1e6 / f64::from(n);
    let cached_us = cached.as_secs_f64() * 1e6 / f64::from(hits);
    println!("cold argon2id verify : {cold_us:>10.1} µs/op  ({n} runs)");
    println!("cached verify        : {cached_us:>10.2} µs/op  ({hits} runs)");
    println!("ratio cold/cached    : {:>10.0}x", cold_us / cached_us);
}
