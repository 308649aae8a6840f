//! ES256 signing keys: the key set, JWS signing and verification, the JWKS, and the rotation
//! plan. The keys live in one Kubernetes Secret (see `crate::runtime::keys` for the watcher that loads
//! it); this module is pure and tested without a cluster.
//!
//! ES256 (P-256): accepted by `openid-client`, `authlib` and every OIDC library, short tokens,
//! fast signing with `ring` (already in the dependency tree through rustls), and no RSA key
//! generation on a request or startup path.
//!
//! Verification accepts exactly `alg: ES256` with a `kid` of this set: `alg: none`, `HS256`
//! (the classic "sign with the public key as HMAC secret" attack) and every other algorithm
//! are refused before any cryptography runs.
//!
//! A resource server introspects the same access token on every API call it serves, and an
//! ES256 verification costs ~50 µs — most of an introspection. A key set therefore remembers
//! the SHA-256 of the tokens whose signature it verified ([`VERIFIED_CAPACITY`] at most,
//! forgotten all at once when full): a known digest skips only the signature check; the
//! header, `typ`, `kid`, `exp` and `nbf` are checked on every call, and the caller's issuer
//! and revocation checks are untouched. A new key set (every change of the Secret) starts
//! with an empty memory, so no token outlives the key that signed it. The memory holds
//! digests, never tokens.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Mutex;

/// Most token digests a key set remembers as verified (32 bytes each, ~2 MiB in all).
pub const VERIFIED_CAPACITY: usize = 32_768;

/// One key as stored in the Secret (`keys.json` is a JSON array of these).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoredKey {
    /// Key ID: the RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// Unix seconds when the key was made.
    pub created_at: i64,
    /// Unix seconds from when it signs (published in the JWKS before that, so clients that
    /// cache the JWKS already know it).
    pub activates_at: i64,
    /// PKCS#8 private key, base64.
    pub pkcs8: String,
}

/// Timing of rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    /// A signing key older than this is replaced.
    pub rotate_after: i64,
    /// A new key is published this long before it signs.
    pub publish_ahead: i64,
    /// A replaced key stays in the JWKS this long after it stopped signing: the longest
    /// lifetime of a token it signed (plus clock skew).
    pub retain_after: i64,
}

/// Why a key or token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The stored key material is broken.
    #[error(
        "signing key {0} in the signing-keys Secret is not a valid P-256 PKCS#8 key; delete the Secret to regenerate it"
    )]
    BadKey(String),
    /// No key can sign yet.
    #[error("no signing key is loaded yet")]
    NoKey,
    /// A JWT failed verification.
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
}

/// A loaded key.
pub struct SigningKey {
    stored: StoredKey,
    pair: EcdsaKeyPair,
}

impl SigningKey {
    /// Generates a new P-256 key that signs from `activates_at`.
    pub fn generate(now: i64, activates_at: i64) -> Result<StoredKey, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError::BadKey("new".into()))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| KeyError::BadKey("new".into()))?;
        Ok(StoredKey {
            kid: thumbprint(pair.public_key().as_ref()),
            created_at: now,
            activates_at,
            pkcs8: STANDARD.encode(pkcs8.as_ref()),
        })
    }

    fn load(stored: &StoredKey) -> Result<SigningKey, KeyError> {
        let bad = || KeyError::BadKey(stored.kid.clone());
        let der = STANDARD.decode(&stored.pkcs8).map_err(|_| bad())?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
            .map_err(|_| bad())?;
        Ok(SigningKey {
            stored: stored.clone(),
            pair,
        })
    }

    /// The public JWK (no private members).
    pub fn public_jwk(&self) -> Value {
        let (x, y) = xy(self.pair.public_key().as_ref());
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": self.stored.kid, "use": "sig", "alg": "ES256"})
    }
}

fn xy(point: &[u8]) -> (String, String) {
    // Uncompressed SEC1 point: 0x04 ‖ X(32) ‖ Y(32).
    (
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..65]),
    )
}

/// RFC 7638 JWK thumbprint of a P-256 public key.
fn thumbprint(point: &[u8]) -> String {
    let (x, y) = xy(point);
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()))
}

/// The loaded key set.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<SigningKey>,
    /// SHA-256 of tokens whose signature verified under these keys.
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl KeySet {
    /// Loads the stored keys; a broken key fails the whole set (the old set stays in use).
    pub fn load(stored: &[StoredKey]) -> Result<KeySet, KeyError> {
        let keys = stored.iter().map(SigningKey::load).collect::<Result<Vec<_>, _>>()?;
        Ok(KeySet {
            keys,
            verified: Mutex::default(),
        })
    }

    /// Whether no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key that signs at `now`: the newest active one.
    pub fn signer(&self, now: i64) -> Option<&SigningKey> {
        self.keys
            .iter()
            .filter(|k| k.stored.activates_at <= now)
            .max_by_key(|k| (k.stored.activates_at, k.stored.created_at))
    }

    /// The JWKS document: every loaded key's public half.
    pub fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().map(SigningKey::public_jwk).collect::<Vec<_>>()})
    }

    /// Signs `claims` as a compact JWS with header `typ` (a fixed token type such as
    /// `at+jwt`, never request data).
    pub fn sign(&self, claims: &impl Serialize, typ: &str, now: i64) -> Result<String, KeyError> {
        let key = self.signer(now).ok_or(KeyError::NoKey)?;
        // `kid` is base64url and `typ` a constant: neither needs JSON escaping.
        let header = format!(r#"{{"alg":"ES256","typ":"{typ}","kid":"{}"}}"#, key.stored.kid);
        let claims = serde_json::to_vec(claims).map_err(|_| KeyError::NoKey)?;
        let mut token = String::with_capacity(4 * (header.len() + claims.len() + 64) / 3 + 8);
        URL_SAFE_NO_PAD.encode_string(header, &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut token);
        let sig = key
            .pair
            .sign(&SystemRandom::new(), token.as_bytes())
            .map_err(|_| KeyError::NoKey)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut token);
        Ok(token)
    }

    /// Verifies a compact JWS made by this set and returns its claims. Checks `alg`, `kid`,
    /// the signature, `typ` when `typ` is given, and `exp`/`nbf` against `now`. The caller
    /// checks `iss`/`aud` and revocation.
    pub fn verify(&self, token: &str, typ: Option<&str>, now: i64) -> Result<Value, KeyError> {
        use KeyError::InvalidToken as Bad;
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(Bad("not a compact JWS"));
        };
        let header: Value = decode_json(h).ok_or(Bad("malformed header"))?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(Bad("only ES256 is accepted"));
        }
        if let Some(typ) = typ
            && header.get("typ").and_then(Value::as_str) != Some(typ)
        {
            return Err(Bad("wrong token type"));
        }
        let kid = header.get("kid").and_then(Value::as_str).ok_or(Bad("no kid"))?;
        let key = self
            .keys
            .iter()
            .find(|k| k.stored.kid == kid)
            .ok_or(Bad("unknown kid"))?;
        self.check_signature(key, token, h.len() + 1 + p.len(), s)?;
        let claims: Value = decode_json(p).ok_or(Bad("malformed claims"))?;
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or(Bad("no exp"))?;
        if exp <= now {
            return Err(Bad("expired"));
        }
        if claims
            .get("nbf")
            .and_then(Value::as_i64)
            .is_some_and(|nbf| nbf > now + 60)
        {
            return Err(Bad("not yet valid"));
        }
        Ok(claims)
    }

    /// Verifies the signature `s` of `token`'s first `signed_len` bytes under `key`, unless
    /// this set verified the same token before.
    fn check_signature(&self, key: &SigningKey, token: &str, signed_len: usize, s: &str) -> Result<(), KeyError> {
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| KeyError::InvalidToken("digest"))?;
        if self.remembered().contains(&digest) {
            return Ok(());
        }
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| KeyError::InvalidToken("malformed signature"))?;
        let public = ring::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.pair.public_key().as_ref());
        public
            .verify(&token.as_bytes()[..signed_len], &sig)
            .map_err(|_| KeyError::InvalidToken("bad signature"))?;
        let mut verified = self.remembered();
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(digest);
        Ok(())
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of token digests remembered as verified.
    pub fn verified_len(&self) -> usize {
        self.remembered().len()
    }
}

fn decode_json(part: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// What the Secret should hold at `now`, or `None` when it is fine as it is: a first key when
/// empty; a new (pre-published) key when the signing key is older than `rotate_after` and no
/// newer key is waiting; without keys whose successor has signed for `retain_after`.
pub fn plan_rotation(
    stored: &[StoredKey],
    now: i64,
    policy: RotationPolicy,
) -> Result<Option<Vec<StoredKey>>, KeyError> {
    if stored.is_empty() {
        return Ok(Some(vec![SigningKey::generate(now, now)?]));
    }
    let mut keys = stored.to_vec();
    keys.sort_by_key(|k| (k.activates_at, k.created_at));
    let mut changed = false;
    let newest = keys.last().map(|k| (k.activates_at, k.created_at)).unwrap_or_default();
    if newest.0 <= now && now - newest.0 >= policy.rotate_after {
        keys.push(SigningKey::generate(now, now + policy.publish_ahead)?);
        changed = true;
    }
    // Drop a key once the key after it has been signing for `retain_after`.
    let successors: Vec<i64> = keys.iter().skip(1).map(|k| k.activates_at).collect();
    let before = keys.len();
    let mut i = 0;
    keys.retain(|_| {
        let keep = successors.get(i).is_none_or(|&next| now - next < policy.retain_after);
        i += 1;
        keep
    });
    changed |= keys.len() != before;
    Ok(changed.then_some(keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RotationPolicy = RotationPolicy {
        rotate_after: 1000,
        publish_ahead: 100,
        retain_after: 500,
    };

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn sign_verify_and_jwks_has_no_private_members() {
        let set = KeySet::load(&[SigningKey::generate(0, 0).unwrap()]).unwrap();
        let token = set.sign(&json!({"sub": "u", "exp": 100}), "JWT", 10).unwrap();
        assert_eq!(set.verify(&token, Some("JWT"), 10).unwrap()["sub"], "u");
        assert!(set.verify(&token, Some("at+jwt"), 10).is_err());
        assert!(set.verify(&token, None, 100).is_err(), "expired");
        let jwks = set.jwks();
        for key in jwks["keys"].as_array().unwrap() {
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(key.get(private).is_none());
            }
        }
    }

    #[test]
    fn a_remembered_signature_skips_only_the_signature_check() {
        let stored = [SigningKey::generate(0, 0).unwrap()];
        let set = KeySet::load(&stored).unwrap();
        let token = set.sign(&json!({"sub": "u", "exp": 100}), "at+jwt", 10).unwrap();
        assert!(set.verify(&token, Some("at+jwt"), 10).is_ok());
        assert!(set.verify(&token, Some("at+jwt"), 11).is_ok());
        assert_eq!(set.verified_len(), 1, "verified once, remembered");
        // Every other check still runs on a remembered token.
        assert!(set.verify(&token, Some("JWT"), 11).is_err(), "typ");
        assert!(set.verify(&token, Some("at+jwt"), 100).is_err(), "exp");
        // Another signature over the same header and claims is another token.
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let mut forged = URL_SAFE_NO_PAD.decode(sig).unwrap();
        forged[0] ^= 1;
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(forged));
        assert_eq!(
            set.verify(&forged, Some("at+jwt"), 11),
            Err(KeyError::InvalidToken("bad signature"))
        );
        // A reloaded key set (every Secret change) starts with an empty memory.
        assert_eq!(KeySet::load(&stored).unwrap().verified_len(), 0);
    }

    #[test]
    fn alg_none_and_hs256_with_the_public_key_are_refused() {
        let set = KeySet::load(&[SigningKey::generate(0, 0).unwrap()]).unwrap();
        let token = set.sign(&json!({"sub": "u", "exp": 100}), "JWT", 10).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let kid = set.signer(10).unwrap().stored.kid.clone();
        let none = format!("{}.{payload}.", b64(&json!({"alg": "none", "kid": kid})));
        assert_eq!(
            set.verify(&none, None, 10),
            Err(KeyError::InvalidToken("only ES256 is accepted"))
        );
        let header = b64(&json!({"alg": "HS256", "kid": kid, "typ": "JWT"}));
        let jwk = set.jwks()["keys"][0].to_string();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, jwk.as_bytes());
        let sig = ring::hmac::sign(&key, format!("{header}.{payload}").as_bytes());
        let hs = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
        assert!(set.verify(&hs, None, 10).is_err());
        let tampered = format!(
            "{}.{}.{}",
            token.split('.').next().unwrap(),
            b64(&json!({"sub": "admin", "exp": 100})),
            token.split('.').nth(2).unwrap()
        );
        assert_eq!(
            set.verify(&tampered, None, 10),
            Err(KeyError::InvalidToken("bad signature"))
        );
    }

    #[test]
    fn rotation_publishes_ahead_and_retains_the_previous_key() {
        let first = plan_rotation(&[], 0, POLICY).unwrap().unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(plan_rotation(&first, 999, POLICY).unwrap(), None);
        let rotated = plan_rotation(&first, 1000, POLICY).unwrap().unwrap();
        assert_eq!(rotated.len(), 2);
        assert_eq!(rotated[1].activates_at, 1100);
        let set = KeySet::load(&rotated).unwrap();
        assert_eq!(
            set.signer(1050).unwrap().stored.kid,
            first[0].kid,
            "new key only published"
        );
        assert_eq!(set.signer(1100).unwrap().stored.kid, rotated[1].kid);
        assert_eq!(set.jwks()["keys"].as_array().unwrap().len(), 2);
        assert_eq!(
            plan_rotation(&rotated, 1599, POLICY).unwrap(),
            None,
            "old key kept while its tokens live"
        );
        let pruned = plan_rotation(&rotated, 1600, POLICY).unwrap().unwrap();
        assert_eq!(pruned, vec![rotated[1].clone()]);
    }
}
