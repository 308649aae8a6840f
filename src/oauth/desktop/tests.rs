//! The fixtures in `testdata/` are self-signed test certificates made with `openssl req -x509`
//! (P-256 `ec`, P-256 `other`, RSA-2048 `rsa`) and their PKCS#8 keys; they sign nothing else.

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use serde_json::{Value, json};

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const EC_CERT: &[u8] = include_bytes!("testdata/ec.der");
const EC_KEY: &[u8] = include_bytes!("testdata/ec.pk8");
const OTHER_CERT: &[u8] = include_bytes!("testdata/other.der");
const OTHER_KEY: &[u8] = include_bytes!("testdata/other.pk8");
const RSA_CERT: &[u8] = include_bytes!("testdata/rsa.der");
const RSA_KEY: &[u8] = include_bytes!("testdata/rsa.pk8");
const NOW: i64 = 1_800_000_000;
const ISSUER: &str = "https://login.example.com";
const ENDPOINT: &str = "https://login.example.com/oauth2/token";
const CHALLENGE: &str = "c2VydmVyLWlzc3VlZCBjaGFsbGVuZ2U";

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A JWS of `alg` over `header` + `claims` with `key`.
fn sign(alg: &str, key: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let rng = SystemRandom::new();
    let signature = match alg {
        "ES256" => EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, key, &rng)
            .unwrap()
            .sign(&rng, input.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec(),
        _ => {
            let pair = RsaKeyPair::from_pkcs8(key).unwrap();
            let mut out = vec![0; pair.public().modulus_len()];
            let padding: &dyn signature::RsaEncoding = match alg {
                "RS256" => &signature::RSA_PKCS1_SHA256,
                _ => &signature::RSA_PSS_SHA256,
            };
            pair.sign(padding, &rng, input.as_bytes(), &mut out).unwrap();
            out
        }
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn claims() -> Value {
    json!({"iss": "com.example.desk", "sub": "com.example.desk", "aud": ENDPOINT,
           "jti": "j-1", "exp": NOW + 60, "challenge": CHALLENGE})
}

fn header(alg: &str, cert: &[u8]) -> Value {
    json!({"alg": alg, "typ": "JWT", "x5c": [STANDARD.encode(cert)]})
}

fn expected(thumb: &str, challenge_hash: &str) -> Expected<'static> {
    Expected {
        app_id: "com.example.desk",
        thumbprint: Box::leak(thumb.to_string().into_boxed_str()),
        issuer: ISSUER,
        endpoint: ENDPOINT,
        challenge_hash: Box::leak(challenge_hash.to_string().into_boxed_str()),
        now: NOW,
    }
}

fn ok_expected(cert: &[u8]) -> Expected<'static> {
    expected(&thumbprint(cert), &crate::store::hashed(CHALLENGE))
}

#[test]
fn the_thumbprint_is_the_sha256_of_the_der_certificate_in_lowercase_hex() {
    // `openssl x509 -in ec.pem -outform DER | sha256sum` printed this for the fixture.
    assert_eq!(
        thumbprint(EC_CERT),
        "276b27d129a5c0f816e8a43eafb7d9e3204735ec8199e6a761580f5bd441b9e1"
    );
    assert_eq!(thumbprint(EC_CERT).len(), 64);
    assert_ne!(thumbprint(EC_CERT), thumbprint(OTHER_CERT));
}

#[test]
fn es256_rs256_and_ps256_assertions_with_the_pinned_certificate_verify() {
    for (alg, cert, key) in [
        ("ES256", EC_CERT, EC_KEY),
        ("RS256", RSA_CERT, RSA_KEY),
        ("PS256", RSA_CERT, RSA_KEY),
    ] {
        let jws = sign(alg, key, &header(alg, cert), &claims());
        assert_eq!(verify(&jws, &ok_expected(cert)), Ok(()), "{alg}");
    }
}

#[test]
fn an_uppercase_registered_thumbprint_matches() {
    let jws = sign("ES256", EC_KEY, &header("ES256", EC_CERT), &claims());
    let upper = thumbprint(EC_CERT).to_ascii_uppercase();
    assert_eq!(
        verify(&jws, &expected(&upper, &crate::store::hashed(CHALLENGE))),
        Ok(())
    );
}

#[test]
fn another_certificate_is_refused_even_when_its_signature_is_valid() {
    let jws = sign("ES256", OTHER_KEY, &header("ES256", OTHER_CERT), &claims());
    let err = verify(&jws, &ok_expected(EC_CERT)).unwrap_err();
    assert!(matches!(err, AssertionError::WrongCertificate { .. }), "{err}");
    assert!(err.to_string().contains(&thumbprint(OTHER_CERT)), "{err}");
}

#[test]
fn the_pinned_certificate_with_another_key_does_not_verify() {
    let jws = sign("ES256", OTHER_KEY, &header("ES256", EC_CERT), &claims());
    assert_eq!(
        verify(&jws, &ok_expected(EC_CERT)),
        Err(AssertionError::Signature("ES256"))
    );
}

#[test]
fn a_tampered_claim_breaks_the_signature() {
    let jws = sign("ES256", EC_KEY, &header("ES256", EC_CERT), &claims());
    let mut parts: Vec<&str> = jws.split('.').collect();
    let mut c = claims();
    c["sub"] = json!("com.example.evil");
    let forged = b64(&c);
    parts[1] = &forged;
    assert_eq!(
        verify(&parts.join("."), &ok_expected(EC_CERT)),
        Err(AssertionError::Signature("ES256"))
    );
}

#[test]
fn algorithms_outside_the_list_and_mismatched_keys_are_refused() {
    for alg in ["none", "HS256", "ES384", "EdDSA"] {
        let jws = sign("ES256", EC_KEY, &header(alg, EC_CERT), &claims());
        assert_eq!(
            verify(&jws, &ok_expected(EC_CERT)),
            Err(AssertionError::Algorithm),
            "{alg}"
        );
    }
    // An RSA signature labelled ES256, and an EC key claimed as RS256.
    let jws = sign("RS256", RSA_KEY, &header("ES256", RSA_CERT), &claims());
    assert_eq!(
        verify(&jws, &ok_expected(RSA_CERT)),
        Err(AssertionError::Signature("ES256"))
    );
    let jws = sign("ES256", EC_KEY, &header("RS256", EC_CERT), &claims());
    assert_eq!(
        verify(&jws, &ok_expected(EC_CERT)),
        Err(AssertionError::Signature("RS256"))
    );
}

#[test]
fn malformed_assertions_and_missing_certificates_are_refused() {
    let e = ok_expected(EC_CERT);
    for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!", &"a".repeat(MAX_ASSERTION + 1)] {
        assert_eq!(verify(bad, &e), Err(AssertionError::Malformed), "{bad:.20}");
    }
    let no_x5c = sign("ES256", EC_KEY, &json!({"alg": "ES256"}), &claims());
    assert_eq!(verify(&no_x5c, &e), Err(AssertionError::NoCertificate));
    let junk = json!({"alg": "ES256", "x5c": [STANDARD.encode(b"not a certificate")]});
    let mut pinned = e;
    let junk_thumb = thumbprint(b"not a certificate");
    pinned.thumbprint = &junk_thumb;
    let jws = sign("ES256", EC_KEY, &junk, &claims());
    assert_eq!(verify(&jws, &pinned), Err(AssertionError::BadCertificate));
}

#[test]
fn claims_are_checked_one_by_one() {
    let e = ok_expected(EC_CERT);
    let cases: Vec<(&str, Value, AssertionError)> = vec![
        (
            "iss",
            json!("com.example.other"),
            AssertionError::Subject("com.example.desk".into()),
        ),
        (
            "sub",
            json!("someone"),
            AssertionError::Subject("com.example.desk".into()),
        ),
        (
            "aud",
            json!("https://evil.example.com/oauth2/token"),
            AssertionError::Audience {
                issuer: ISSUER.into(),
                endpoint: ENDPOINT.into(),
            },
        ),
        ("exp", json!("soon"), AssertionError::MissingClaims),
        ("jti", json!(""), AssertionError::MissingClaims),
        ("exp", json!(NOW - LEEWAY - 1), AssertionError::Expired),
        ("exp", json!(NOW + MAX_LIFETIME + LEEWAY + 1), AssertionError::TooLong),
        (
            "challenge",
            json!("another login's challenge"),
            AssertionError::Challenge,
        ),
        ("challenge", Value::Null, AssertionError::Challenge),
    ];
    for (claim, value, want) in cases {
        let mut c = claims();
        c[claim] = value;
        let jws = sign("ES256", EC_KEY, &header("ES256", EC_CERT), &c);
        assert_eq!(verify(&jws, &e), Err(want), "{claim}");
    }
}

#[test]
fn the_issuer_and_an_audience_array_are_accepted() {
    for aud in [json!(ISSUER), json!(["https://other.example", ENDPOINT])] {
        let mut c = claims();
        c["aud"] = aud;
        let jws = sign("ES256", EC_KEY, &header("ES256", EC_CERT), &c);
        assert_eq!(verify(&jws, &ok_expected(EC_CERT)), Ok(()));
    }
}

#[test]
fn es256_signatures_are_reencoded_as_der_integers() {
    let mut fixed = [0u8; 64];
    fixed[0] = 0x80; // r needs a leading zero byte
    fixed[63] = 1; // s is 1 after stripping leading zeros
    let der = ecdsa_der(&fixed).unwrap();
    assert_eq!(&der[..4], &[0x30, 2 + 33 + 3, 0x02, 33]);
    assert_eq!(der[4], 0);
    assert_eq!(&der[der.len() - 3..], &[0x02, 1, 1]);
    assert!(ecdsa_der(&[0; 63]).is_none());
}

#[test]
fn no_error_repeats_the_assertion() {
    let jws = sign("ES256", OTHER_KEY, &header("ES256", OTHER_CERT), &claims());
    let err = verify(&jws, &ok_expected(EC_CERT)).unwrap_err().to_string();
    for part in jws.split('.') {
        assert!(!err.contains(part), "{err}");
    }
}
