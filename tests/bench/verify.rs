//! Cold argon2id verification vs. a cached verification of a client secret, through the same
//! `SecretVerifier` the server uses: cold at the cost of generated secrets (m = 8 KiB, t = 1)
//! and at the password cost secrets were minted with before (m = 19 MiB, t = 2). Prints each
//! and the ratio. `bench_verify [iterations]`.

use std::time::Instant;

use centralauth_operator::oauth::verifier::{Candidate, SecretVerifier};

#[tokio::main]
async fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(20);
    let secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let old_hash = centralauth_operator::crypto::hash(secret.as_bytes()).expect("hash");
    let new_hash = centralauth_operator::crypto::hash_secret(secret.as_bytes()).expect("hash");
    let (old, secrets) = (with_hash(&old_hash), with_hash(&new_hash));
    let cold_old = cold_verifications(secret, &old, n).await;
    let cold_new = cold_verifications(secret, &secrets, n * 100).await;
    let v = SecretVerifier::new(1);
    v.authenticate_client("cid", secret, &secrets).await.expect("warm up");
    let hits = n * 1000;
    let t = Instant::now();
    for _ in 0..hits {
        assert!(v.authenticate_client("cid", secret, &secrets).await.is_some());
    }
    let cached = t.elapsed();
    let cold_old_us = cold_old.as_secs_f64() * 1e6 / f64::from(n);
    let cold_us = cold_new.as_secs_f64() * 1e6 / f64::from(n * 100);
    let cached_us = cached.as_secs_f64() * 1e6 / f64::from(hits);
    println!("cold argon2id verify, m=19 MiB t=2 (before) : {cold_old_us:>10.1} µs/op  ({n} runs)");
    println!(
        "cold argon2id verify, m=8 KiB t=1           : {cold_us:>10.1} µs/op  ({} runs)",
        n * 100
    );
    println!("cached verify                               : {cached_us:>10.2} µs/op  ({hits} runs)");
    println!(
        "ratio cold (m=8 KiB)/cached                 : {:>10.0}x",
        cold_us / cached_us
    );
}

/// Total time of `n` cold verifications (another client ID each, so the cache never hits).
async fn cold_verifications(secret: &str, secrets: &[Candidate<'_>], n: u32) -> std::time::Duration {
    let v = SecretVerifier::new(1);
    let t = Instant::now();
    for i in 0..n {
        let client_id = format!("cold-{i}");
        assert!(v.authenticate_client(&client_id, secret, secrets).await.is_some());
    }
    t.elapsed()
}

/// The Active ClientSecret `ns/s1` of the organization with `hash`, as the verifier sees it.
fn with_hash(hash: &str) -> Vec<Candidate<'_>> {
    vec![Candidate {
        namespace: "ns",
        name: "s1",
        uid: "uid-1",
        hash,
    }]
}
