//! PKCE (RFC 7636), S256 only. `plain` is refused everywhere: it protects nothing against an
//! attacker who can read the authorization request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;

/// Which verifier rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifierRules {
    /// RFC 7636 §4.1: 43–128 characters of `[A-Za-z0-9-._~]`. The standard endpoints.
    Strict,
    /// The CentralAuth endpoint: the strict rules, or a 36-character UUID — the official
    /// CentralAuth client uses `crypto.randomUUID()` as its verifier (122 random bits).
    CentralAuth,
}

/// Why a PKCE parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// `code_challenge_method` other than `S256`.
    #[error("code_challenge_method must be S256 (plain is not accepted)")]
    MethodNotS256,
    /// The challenge is not a base64url SHA-256 digest.
    #[error("code_challenge must be the base64url SHA-256 of the verifier: 43 characters of A-Z a-z 0-9 - _")]
    MalformedChallenge,
    /// The verifier breaks the length or alphabet rules.
    #[error("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~")]
    MalformedVerifier,
    /// The verifier does not hash to the challenge.
    #[error("code_verifier does not match the code_challenge of the authorization request")]
    Mismatch,
    /// A verifier for a code issued without a challenge, or none for a code issued with one.
    #[error("code_verifier must be sent exactly when the authorization request carried a code_challenge")]
    Downgrade,
}

/// Checks `code_challenge` and `code_challenge_method` of an authorization request. A missing
/// method means `plain` (RFC 7636 §4.3), which is refused.
pub fn check_challenge(challenge: &str, method: Option<&str>) -> Result<(), PkceError> {
    if method != Some("S256") {
        return Err(PkceError::MethodNotS256);
    }
    let well_formed = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && URL_SAFE_NO_PAD.decode(challenge).is_ok_and(|d| d.len() == 32);
    if well_formed {
        Ok(())
    } else {
        Err(PkceError::MalformedChallenge)
    }
}

/// Whether `verifier` satisfies `rules` (length and alphabet).
pub fn verifier_well_formed(verifier: &str, rules: VerifierRules) -> bool {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    let strict = (43..=128).contains(&verifier.len()) && verifier.bytes().all(unreserved);
    strict || (rules == VerifierRules::CentralAuth && is_uuid(verifier))
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// The S256 challenge of a verifier: `BASE64URL(SHA256(verifier))`.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// Checks the verifier of a token request against the challenge stored with the code.
/// Both absent is fine (a confidential client that sent no challenge, CentralAuth endpoint
/// only — the caller decides whether that is allowed); one without the other is a downgrade.
pub fn verify(challenge: Option<&str>, verifier: Option<&str>, rules: VerifierRules) -> Result<(), PkceError> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (Some(_), None) | (None, Some(_)) => Err(PkceError::Downgrade),
        (Some(challenge), Some(verifier)) => {
            if !verifier_well_formed(verifier, rules) {
                return Err(PkceError::MalformedVerifier);
            }
            let computed = s256(verifier);
            if super::ct_eq(computed.as_bytes(), challenge.as_bytes()) {
                Ok(())
            } else {
                Err(PkceError::Mismatch)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V43: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(s256(V43), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(verify(Some(&s256(V43)), Some(V43), VerifierRules::Strict), Ok(()));
    }

    #[test]
    fn plain_and_missing_method_are_refused() {
        let c = s256(V43);
        assert_eq!(check_challenge(&c, Some("S256")), Ok(()));
        assert_eq!(check_challenge(&c, Some("plain")), Err(PkceError::MethodNotS256));
        assert_eq!(check_challenge(&c, None), Err(PkceError::MethodNotS256));
        assert_eq!(
            check_challenge("short", Some("S256")),
            Err(PkceError::MalformedChallenge)
        );
        assert_eq!(
            check_challenge(&format!("{}+", &c[..42]), Some("S256")),
            Err(PkceError::MalformedChallenge)
        );
    }

    #[test]
    fn verifier_lengths_and_alphabet() {
        let ok = |v: &str, r| verifier_well_formed(v, r);
        assert!(ok(&"a".repeat(43), VerifierRules::Strict));
        assert!(ok(&"a".repeat(128), VerifierRules::Strict));
        assert!(!ok(&"a".repeat(42), VerifierRules::Strict));
        assert!(!ok(&"a".repeat(129), VerifierRules::Strict));
        assert!(!ok(&format!("{}+", "a".repeat(43)), VerifierRules::Strict));
        let uuid = "0d5c2f7e-6d1b-4c1a-9b1e-2f7d8e9a0b1c";
        assert!(!ok(uuid, VerifierRules::Strict), "the UUID quirk is CentralAuth-only");
        assert!(ok(uuid, VerifierRules::CentralAuth));
        assert!(!ok("0d5c2f7e+6d1b-4c1a-9b1e-2f7d8e9a0b1c", VerifierRules::CentralAuth));
        assert!(!ok(&"a".repeat(42), VerifierRules::CentralAuth));
    }

    #[test]
    fn downgrade_both_ways_and_mismatch() {
        let c = s256(V43);
        assert_eq!(verify(Some(&c), None, VerifierRules::Strict), Err(PkceError::Downgrade));
        assert_eq!(
            verify(None, Some(V43), VerifierRules::Strict),
            Err(PkceError::Downgrade)
        );
        assert_eq!(verify(None, None, VerifierRules::Strict), Ok(()));
        let other = "x".repeat(43);
        assert_eq!(
            verify(Some(&c), Some(&other), VerifierRules::Strict),
            Err(PkceError::Mismatch)
        );
    }
}
