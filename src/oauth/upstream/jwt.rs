//! Verification of an upstream provider's ID token (OpenID Connect Core §3.1.3.7): the
//! signature against the provider's JWKS with an algorithm allow-list (RS256, ES256, EdDSA:
//! never `none` or a shared-secret HMAC), then `iss`, `aud` (and `azp`), `exp`, `iat` and
//! `nonce`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::Value;

/// Signature algorithms accepted on ID tokens.
pub const ALLOWED_ALGS: [&str; 3] = ["RS256", "ES256", "EdDSA"];
/// Clock skew tolerated on `exp` and `iat`, seconds.
const LEEWAY: i64 = 60;

/// Why an ID token was refused (for the log; never carries the token).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    #[error("the ID token is not a well-formed JWS")]
    Malformed,
    /// `alg` outside [`ALLOWED_ALGS`].
    #[error("the ID token is signed with {0}, which is not allowed (RS256, ES256, EdDSA)")]
    Algorithm(String),
    /// No key of the JWKS has this `kid` (the caller refreshes the JWKS once and retries).
    #[error("no key of the provider's JWKS has the ID token's kid {0:?}")]
    UnknownKey(Option<String>),
    /// The signature does not verify with the key.
    #[error("the ID token's signature does not verify")]
    Signature,
    /// `iss` is not the provider's issuer.
    #[error("the ID token's issuer {found:?} is not the provider's ({expected})")]
    Issuer {
        /// Expected.
        expected: String,
        /// Found.
        found: Option<String>,
    },
    /// `aud` does not hold the client ID, or `azp` names another client.
    #[error("the ID token was issued to another client (audience), not this organization's client ID")]
    Audience,
    /// Expired (or `exp` missing).
    #[error("the ID token has expired")]
    Expired,
    /// `iat` in the future.
    #[error("the ID token was issued in the future (check the clocks)")]
    IssuedInFuture,
    /// `nonce` is not the one this login sent.
    #[error("the ID token's nonce is not the one this login sent")]
    Nonce,
    /// No `sub`.
    #[error("the ID token has no subject")]
    NoSubject,
}

/// One key of a JWKS (the members this verifier reads).
#[derive(Deserialize, Clone, Debug, Default)]
pub struct Jwk {
    /// `RSA`, `EC` or `OKP`.
    #[serde(default)]
    pub kty: String,
    /// Key ID.
    #[serde(default)]
    pub kid: Option<String>,
    /// Intended algorithm, if stated.
    #[serde(default)]
    pub alg: Option<String>,
    /// `sig` or `enc`, if stated.
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    /// Curve (`P-256`, `Ed25519`).
    #[serde(default)]
    pub crv: Option<String>,
    /// RSA modulus.
    #[serde(default)]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(default)]
    pub e: Option<String>,
    /// EC / OKP x coordinate.
    #[serde(default)]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(default)]
    pub y: Option<String>,
}

/// A JSON Web Key Set.
#[derive(Deserialize, Clone, Debug, Default)]
pub struct Jwks {
    /// Its keys.
    #[serde(default)]
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The key IDs of the set (for tests and logs).
    pub fn kids(&self) -> Vec<String> {
        self.keys.iter().filter_map(|k| k.kid.clone()).collect()
    }
}

/// What an ID token must show.
pub struct Expect<'a> {
    /// The provider's issuer (Microsoft's multi-tenant `{tenantid}` replaced by the token's `tid`).
    pub issuer: &'a str,
    /// This organization's client ID at the provider.
    pub audience: &'a str,
    /// The nonce the login sent.
    pub nonce: &'a str,
    /// Unix seconds.
    pub now: i64,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The parts of a compact JWS: header, claims, signing input and signature.
struct Parts<'a> {
    header: Header,
    claims: Value,
    signing_input: &'a str,
    signature: Vec<u8>,
}

fn split(token: &str) -> Result<Parts<'_>, TokenError> {
    let compact = crate::oauth::jws::parse(token).ok_or(TokenError::Malformed)?;
    Ok(Parts {
        header: serde_json::from_value(compact.header).map_err(|_| TokenError::Malformed)?,
        claims: compact.claims,
        signing_input: compact.signing_input,
        signature: compact.signature,
    })
}

/// The `kid` of a token's header, when the token is well-formed (to decide on a JWKS refresh).
pub fn kid_of(token: &str) -> Option<String> {
    split(token).ok()?.header.kid
}

/// Verifies `token`'s signature with `jwks` and its claims against `expect`; its claims.
pub fn verify(jwks: &Jwks, token: &str, expect: &Expect<'_>) -> Result<Value, TokenError> {
    let parts = split(token)?;
    let alg = parts.header.alg.as_str();
    if !ALLOWED_ALGS.contains(&alg) {
        return Err(TokenError::Algorithm(alg.to_string()));
    }
    let key = find_key(jwks, alg, parts.header.kid.as_deref())
        .ok_or_else(|| TokenError::UnknownKey(parts.header.kid.clone()))?;
    check_signature(key, alg, parts.signing_input.as_bytes(), &parts.signature)?;
    check_claims(&parts.claims, expect)?;
    Ok(parts.claims)
}

/// The key of `jwks` for `alg` with `kid` (or the only fitting key when the token names none).
fn find_key<'a>(jwks: &'a Jwks, alg: &str, kid: Option<&str>) -> Option<&'a Jwk> {
    let kty = match alg {
        "RS256" => "RSA",
        "ES256" => "EC",
        _ => "OKP",
    };
    let mut fitting = jwks.keys.iter().filter(|k| {
        k.kty == kty && k.alg.as_deref().is_none_or(|a| a == alg) && k.use_.as_deref().is_none_or(|u| u == "sig")
    });
    match kid {
        Some(kid) => fitting.find(|k| k.kid.as_deref() == Some(kid)),
        None => {
            let first = fitting.next();
            fitting.next().is_none().then_some(first).flatten()
        }
    }
}

fn b64(value: &Option<String>) -> Result<Vec<u8>, TokenError> {
    let v = value.as_deref().ok_or(TokenError::Signature)?;
    URL_SAFE_NO_PAD.decode(v).map_err(|_| TokenError::Signature)
}

fn check_signature(key: &Jwk, alg: &str, message: &[u8], sig: &[u8]) -> Result<(), TokenError> {
    let ok = match alg {
        "RS256" => RsaPublicKeyComponents {
            n: b64(&key.n)?,
            e: b64(&key.e)?,
        }
        .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
        .is_ok(),
        "ES256" if key.crv.as_deref() == Some("P-256") => {
            let mut point = vec![0x04];
            point.extend(b64(&key.x)?);
            point.extend(b64(&key.y)?);
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, sig)
                .is_ok()
        }
        "EdDSA" if key.crv.as_deref() == Some("Ed25519") => UnparsedPublicKey::new(&signature::ED25519, b64(&key.x)?)
            .verify(message, sig)
            .is_ok(),
        _ => false,
    };
    ok.then_some(()).ok_or(TokenError::Signature)
}

fn check_claims(claims: &Value, expect: &Expect<'_>) -> Result<(), TokenError> {
    let iss = claims["iss"].as_str();
    if iss != Some(expect.issuer) {
        return Err(TokenError::Issuer {
            expected: expect.issuer.to_string(),
            found: iss.map(str::to_string),
        });
    }
    let audiences: Vec<&str> = match &claims["aud"] {
        Value::String(a) => vec![a.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let azp = claims["azp"].as_str();
    if !audiences.contains(&expect.audience) || azp.is_some_and(|a| a != expect.audience) {
        return Err(TokenError::Audience);
    }
    if claims["exp"].as_i64().is_none_or(|exp| exp + LEEWAY <= expect.now) {
        return Err(TokenError::Expired);
    }
    if claims["iat"].as_i64().is_some_and(|iat| iat > expect.now + LEEWAY) {
        return Err(TokenError::IssuedInFuture);
    }
    let nonce = claims["nonce"].as_str().unwrap_or_default();
    if !crate::oauth::ct_eq(nonce.as_bytes(), expect.nonce.as_bytes()) {
        return Err(TokenError::Nonce);
    }
    if claims["sub"].as_str().is_none_or(str::is_empty) {
        return Err(TokenError::NoSubject);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::json;

    fn enc(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn es256() -> (EcdsaKeyPair, Jwk) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        let jwk = Jwk {
            kty: "EC".into(),
            kid: Some("k1".into()),
            crv: Some("P-256".into()),
            x: Some(URL_SAFE_NO_PAD.encode(&point[1..33])),
            y: Some(URL_SAFE_NO_PAD.encode(&point[33..])),
            ..Default::default()
        };
        (pair, jwk)
    }

    fn sign_es256(pair: &EcdsaKeyPair, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", enc(header), enc(claims));
        let sig = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn claims(now: i64) -> Value {
        json!({"iss": "https://idp.example", "aud": "client-a", "exp": now + 300, "iat": now, "nonce": "n-1", "sub": "u-1"})
    }

    fn expect(now: i64) -> Expect<'static> {
        Expect {
            issuer: "https://idp.example",
            audience: "client-a",
            nonce: "n-1",
            now,
        }
    }

    #[test]
    fn a_good_es256_token_verifies_and_every_claim_is_checked() {
        let (pair, jwk) = es256();
        let jwks = Jwks { keys: vec![jwk] };
        let header = json!({"alg": "ES256", "kid": "k1"});
        let now = 1_800_000_000;
        assert!(verify(&jwks, &sign_es256(&pair, &header, &claims(now)), &expect(now)).is_ok());
        let cases: Vec<(&str, Value, TokenError)> = vec![
            (
                "iss",
                json!("https://evil.example"),
                TokenError::Issuer {
                    expected: "https://idp.example".into(),
                    found: Some("https://evil.example".into()),
                },
            ),
            ("aud", json!("client-b"), TokenError::Audience),
            ("aud", json!(["client-b", "client-c"]), TokenError::Audience),
            ("azp", json!("client-b"), TokenError::Audience),
            ("exp", json!(now - 61), TokenError::Expired),
            ("iat", json!(now + 3600), TokenError::IssuedInFuture),
            ("nonce", json!("n-2"), TokenError::Nonce),
            ("sub", json!(""), TokenError::NoSubject),
        ];
        for (claim, value, error) in cases {
            let mut c = claims(now);
            c[claim] = value;
            assert_eq!(
                verify(&jwks, &sign_es256(&pair, &header, &c), &expect(now)),
                Err(error),
                "{claim}"
            );
        }
    }

    #[test]
    fn forged_unknown_and_disallowed_signatures_are_refused() {
        let (pair, jwk) = es256();
        let (other, _) = es256();
        let jwks = Jwks { keys: vec![jwk] };
        let now = 1_800_000_000;
        let header = json!({"alg": "ES256", "kid": "k1"});
        let forged = sign_es256(&other, &header, &claims(now));
        assert_eq!(verify(&jwks, &forged, &expect(now)), Err(TokenError::Signature));
        let unknown = sign_es256(&pair, &json!({"alg": "ES256", "kid": "k9"}), &claims(now));
        assert_eq!(
            verify(&jwks, &unknown, &expect(now)),
            Err(TokenError::UnknownKey(Some("k9".into())))
        );
        assert_eq!(kid_of(&unknown).as_deref(), Some("k9"));
        let none = format!("{}.{}.", enc(&json!({"alg": "none"})), enc(&claims(now)));
        assert_eq!(
            verify(&jwks, &none, &expect(now)),
            Err(TokenError::Algorithm("none".into()))
        );
        let hs = format!("{}.{}.AAAA", enc(&json!({"alg": "HS256"})), enc(&claims(now)));
        assert_eq!(
            verify(&jwks, &hs, &expect(now)),
            Err(TokenError::Algorithm("HS256".into()))
        );
        assert_eq!(verify(&jwks, "a.b", &expect(now)), Err(TokenError::Malformed));
    }

    #[test]
    fn eddsa_tokens_verify() {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())),
            ..Default::default()
        };
        let now = 1_800_000_000;
        let input = format!("{}.{}", enc(&json!({"alg": "EdDSA"})), enc(&claims(now)));
        let token = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(pair.sign(input.as_bytes()).as_ref())
        );
        assert!(verify(&Jwks { keys: vec![jwk] }, &token, &expect(now)).is_ok());
    }
}
