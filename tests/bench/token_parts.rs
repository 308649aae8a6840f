//! What a token request spends its CPU on, per operation, through the functions the server
//! uses: an ES256 signature of RFC 9068 access-token claims, a first verification of a token,
//! a verification of a token the key set remembers (introspection of a token already seen),
//! and a random token ID. `bench_token_parts [iterations]` prints µs per operation.

use std::time::Instant;

use centralauth_operator::oauth::grant::random_token;
use centralauth_operator::oauth::keys::{KeySet, SigningKey};
use centralauth_operator::oauth::tokens::AccessClaims;

fn per_op(label: &str, n: u32, mut f: impl FnMut(u32)) {
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    println!(
        "{label:<38}: {:>8.2} µs/op",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
}

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(20_000);
    let set = KeySet::load(&[SigningKey::generate(0, 0).expect("key")]).expect("key set");
    let jti = random_token();
    let claims = AccessClaims {
        issuer: "https://auth.example.com/o/0b6f0c4e-8e7e-4c35-9a54-3f3c2d1f7a10",
        subject: "0b6f0c4e-8e7e-4c35-9a54-3f3c2d1f7a10",
        client_id: "0b6f0c4e-8e7e-4c35-9a54-3f3c2d1f7a10",
        scope: None,
        jti: &jti,
        session_id: None,
        family_id: None,
        auth_time: None,
        now: 1_000,
        ttl: 900,
    };
    per_op("ES256 sign (access-token claims)", n, |_| {
        set.sign(&claims, "at+jwt", 1_000).expect("sign");
    });
    // Every signature is another token (ECDSA nonces are random).
    let tokens: Vec<String> = (0..n)
        .map(|_| set.sign(&claims, "at+jwt", 1_000).expect("sign"))
        .collect();
    per_op("ES256 verify, first time", n, |i| {
        set.verify(&tokens[i as usize], Some("at+jwt"), 1_000).expect("verify");
    });
    per_op("ES256 verify, remembered token", n, |i| {
        set.verify(&tokens[i as usize], Some("at+jwt"), 1_000).expect("verify");
    });
    per_op("random token ID (OS random source)", n, |_| {
        random_token();
    });
}
