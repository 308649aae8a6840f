//! Desktop apps' proof of identity at the code exchange, modelled on RFC 7523 `private_key_jwt`
//! (the wire format is in docs/desktop-apps.md).
//!
//! A Desktop NativeApp pins the SHA-256 thumbprint of its signing certificate. Its authorization
//! response carries a server-issued `desktop_challenge` next to the code; at the exchange the app
//! sends `client_assertion_type` = [`ASSERTION_TYPE`] and a `client_assertion`: a compact JWS
//! (`ES256`, `RS256` or `PS256`) whose header carries `x5c` (the certificate, leaf first) and whose
//! claims are `iss` = `sub` = the app's bundle ID, `aud` = the issuer or the token endpoint,
//! `exp` at most [`MAX_LIFETIME`] seconds ahead, a `jti`, and `challenge` = the challenge.
//!
//! - **Trust**: the leaf's SHA-256 must equal `certificateThumbprint`; the certificate is not
//!   chain-validated (self-signed is fine) and its validity dates are not read: the pin is the
//!   trust. A new signing certificate means a new thumbprint in the NativeApp.
//! - **Replay**: the challenge is bound to its one code (its SHA-256 is stored in the code
//!   grant), and a code is redeemed once: an assertion works for one exchange only, and an
//!   assertion signed for another login's challenge is refused. `jti` is required but not
//!   remembered (the challenge already makes each assertion single-use).
//! - **Expiry**: `exp` must not have passed (with [`LEEWAY`] for clock skew) nor lie more than
//!   [`MAX_LIFETIME`] ahead.
//! - The certificate is parsed, and the signature verified with its key, by `rustls-webpki`
//!   (the X.509 parser rustls uses, over `ring`); ES256's JWS signature (`r‖s`) is re-encoded
//!   as the DER `ECDSA-Sig-Value` that webpki verifies.
//!
//! Nothing here logs, and no error repeats the assertion.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::{CertificateDer, SignatureVerificationAlgorithm};
use serde_json::Value;

/// `client_assertion_type` of RFC 7523 §2.2.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The authorization-response parameter carrying the challenge.
pub const CHALLENGE_PARAM: &str = "desktop_challenge";
/// The claim of the assertion that repeats the challenge.
pub const CHALLENGE_CLAIM: &str = "challenge";
/// Longest time between the exchange and the assertion's `exp`, seconds.
pub const MAX_LIFETIME: i64 = 300;
/// Clock skew allowed on `exp`, seconds.
pub const LEEWAY: i64 = 30;
/// Largest assertion accepted, bytes (a certificate chain of a few RSA certificates fits).
pub const MAX_ASSERTION: usize = 16 * 1024;
/// Algorithms accepted in the JWS header.
pub const ALGORITHMS: [&str; 3] = ["ES256", "RS256", "PS256"];

/// Why a desktop app's client authentication was refused. Messages say what to fix and never
/// contain the assertion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// A Desktop app's code was presented without an assertion.
    #[error(
        "this code was issued to a Desktop app: send client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer and a client_assertion signed with the key of the app's certificate over the desktop_challenge of the authorization response"
    )]
    Missing,
    /// `client_assertion_type` is not the JWT-bearer URN.
    #[error("client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer")]
    WrongType,
    /// An assertion came with a code of an app that is not (or no longer) a Desktop app.
    #[error(
        "client_assertion is only accepted for codes of Desktop NativeApps; this code's app is not one (or was deleted): start the login again"
    )]
    NotDesktop,
    /// Not a compact JWS with JSON header and payload, or too large.
    #[error("client_assertion must be a compact JWS (three base64url parts, JSON header and claims) of at most 16 KiB")]
    Malformed,
    /// `alg` is not one of [`ALGORITHMS`].
    #[error("client_assertion alg must be ES256, RS256 or PS256")]
    Algorithm,
    /// No usable `x5c`.
    #[error("the client_assertion header must carry x5c: the app's certificate as standard base64 DER, leaf first")]
    NoCertificate,
    /// The leaf is not the pinned certificate.
    #[error(
        "the x5c certificate is not the app's: its SHA-256 thumbprint is {presented} but the NativeApp's certificateThumbprint is {registered}; sign with the key of the registered certificate, or set certificateThumbprint to this build's certificate"
    )]
    WrongCertificate {
        /// Thumbprint of the presented leaf (lowercase hex).
        presented: String,
        /// The registered thumbprint (lowercase hex).
        registered: String,
    },
    /// The pinned certificate cannot be parsed.
    #[error("the x5c certificate is not an X.509 v3 certificate in DER")]
    BadCertificate,
    /// The signature does not verify.
    #[error(
        "the client_assertion signature does not verify with the public key of the x5c certificate under alg {0} (ES256 needs a P-256 key and a 64-byte r||s signature; RS256 and PS256 an RSA key of 2048 bits or more)"
    )]
    Signature(&'static str),
    /// `iss` or `sub` is not the app's bundle ID.
    #[error("client_assertion iss and sub must both be the app's bundle ID {0}")]
    Subject(String),
    /// `aud` names neither the issuer nor the token endpoint.
    #[error("client_assertion aud must be the issuer {issuer} or the token endpoint {endpoint}")]
    Audience {
        /// The organization's issuer.
        issuer: String,
        /// The endpoint the code is exchanged at.
        endpoint: String,
    },
    /// `exp` or `jti` is missing or malformed.
    #[error("client_assertion needs a numeric exp and a non-empty string jti")]
    MissingClaims,
    /// `exp` has passed.
    #[error("client_assertion has expired (exp is in the past): sign a new one right before each exchange")]
    Expired,
    /// `exp` is too far ahead.
    #[error("client_assertion exp is more than 300 seconds ahead: assertions must be short-lived")]
    TooLong,
    /// The challenge is not this code's.
    #[error(
        "client_assertion challenge is not the desktop_challenge that came with this code: sign the challenge of this authorization response (each works for one exchange only)"
    )]
    Challenge,
}

/// What an assertion must show for one code exchange.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The app's bundle ID (`iss` and `sub`).
    pub app_id: &'a str,
    /// The registered `certificateThumbprint` (hex, either case).
    pub thumbprint: &'a str,
    /// The organization's issuer (an accepted `aud`).
    pub issuer: &'a str,
    /// The URL of the endpoint the code is exchanged at (an accepted `aud`).
    pub endpoint: &'a str,
    /// SHA-256 (hex) of the challenge issued with the code ([`crate::store::hashed`]).
    pub challenge_hash: &'a str,
    /// Unix seconds.
    pub now: i64,
}

/// Lowercase hex SHA-256 of a DER certificate: what `certificateThumbprint` pins.
pub fn thumbprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Verifies `assertion` (see the module documentation).
pub fn verify(assertion: &str, e: &Expected<'_>) -> Result<(), AssertionError> {
    let jws = Jws::parse(assertion)?;
    let leaf = jws.leaf()?;
    let presented = thumbprint(&leaf);
    if !crate::oauth::ct_eq(presented.as_bytes(), e.thumbprint.to_ascii_lowercase().as_bytes()) {
        return Err(AssertionError::WrongCertificate {
            presented,
            registered: e.thumbprint.to_ascii_lowercase(),
        });
    }
    jws.verify_signature(&leaf)?;
    check_claims(&jws.claims, e)
}

/// A compact JWS split into what verification needs.
struct Jws<'a> {
    alg: &'static str,
    header: Value,
    claims: Value,
    signing_input: &'a str,
    signature: Vec<u8>,
}

impl<'a> Jws<'a> {
    fn parse(assertion: &'a str) -> Result<Jws<'a>, AssertionError> {
        use AssertionError::Malformed;
        if assertion.len() > MAX_ASSERTION {
            return Err(Malformed);
        }
        let jws = super::jws::parse(assertion).ok_or(Malformed)?;
        let alg = ALGORITHMS
            .into_iter()
            .find(|a| jws.header["alg"].as_str() == Some(a))
            .ok_or(AssertionError::Algorithm)?;
        Ok(Jws {
            alg,
            header: jws.header,
            claims: jws.claims,
            signing_input: jws.signing_input,
            signature: jws.signature,
        })
    }

    /// The DER leaf certificate of `x5c`.
    fn leaf(&self) -> Result<Vec<u8>, AssertionError> {
        let first = self.header["x5c"]
            .as_array()
            .and_then(|chain| chain.first())
            .and_then(Value::as_str)
            .ok_or(AssertionError::NoCertificate)?;
        STANDARD.decode(first).map_err(|_| AssertionError::NoCertificate)
    }

    fn verify_signature(&self, leaf: &[u8]) -> Result<(), AssertionError> {
        let der = CertificateDer::from(leaf);
        let cert = webpki::EndEntityCert::try_from(&der).map_err(|_| AssertionError::BadCertificate)?;
        let (algorithm, signature): (&dyn SignatureVerificationAlgorithm, Vec<u8>) = match self.alg {
            "ES256" => (
                webpki::ring::ECDSA_P256_SHA256,
                ecdsa_der(&self.signature).ok_or(AssertionError::Signature(self.alg))?,
            ),
            "RS256" => (webpki::ring::RSA_PKCS1_2048_8192_SHA256, self.signature.clone()),
            _ => (
                webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
                self.signature.clone(),
            ),
        };
        cert.verify_signature(algorithm, self.signing_input.as_bytes(), &signature)
            .map_err(|_| AssertionError::Signature(self.alg))
    }
}

/// JWS ES256 `r‖s` (64 bytes) as the DER `ECDSA-Sig-Value` (SEQUENCE of two INTEGERs).
fn ecdsa_der(fixed: &[u8]) -> Option<Vec<u8>> {
    if fixed.len() != 64 {
        return None;
    }
    let integer = |x: &[u8]| {
        let start = x.iter().position(|b| *b != 0).unwrap_or(x.len() - 1);
        let x = &x[start..];
        let pad = x[0] & 0x80 != 0;
        let mut out = vec![0x02, (x.len() + usize::from(pad)) as u8];
        if pad {
            out.push(0);
        }
        out.extend_from_slice(x);
        out
    };
    let (r, s) = (integer(&fixed[..32]), integer(&fixed[32..]));
    let mut out = vec![0x30, (r.len() + s.len()) as u8];
    out.extend(r);
    out.extend(s);
    Some(out)
}

/// `iss`, `sub`, `aud`, `exp`, `jti` and the challenge.
fn check_claims(claims: &Value, e: &Expected<'_>) -> Result<(), AssertionError> {
    if claims["iss"].as_str() != Some(e.app_id) || claims["sub"].as_str() != Some(e.app_id) {
        return Err(AssertionError::Subject(e.app_id.to_string()));
    }
    let audience_ok = |v: &Value| v.as_str().is_some_and(|a| a == e.issuer || a == e.endpoint);
    let aud = &claims["aud"];
    if !(audience_ok(aud) || aud.as_array().is_some_and(|all| all.iter().any(audience_ok))) {
        return Err(AssertionError::Audience {
            issuer: e.issuer.to_string(),
            endpoint: e.endpoint.to_string(),
        });
    }
    let exp = claims["exp"].as_f64().ok_or(AssertionError::MissingClaims)? as i64;
    if claims["jti"].as_str().is_none_or(str::is_empty) {
        return Err(AssertionError::MissingClaims);
    }
    if exp + LEEWAY < e.now {
        return Err(AssertionError::Expired);
    }
    if exp - e.now > MAX_LIFETIME + LEEWAY {
        return Err(AssertionError::TooLong);
    }
    let challenge = claims[CHALLENGE_CLAIM].as_str().ok_or(AssertionError::Challenge)?;
    let hash = crate::store::hashed(challenge);
    if !crate::oauth::ct_eq(hash.as_bytes(), e.challenge_hash.as_bytes()) {
        return Err(AssertionError::Challenge);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
