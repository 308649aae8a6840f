//! Password hashing shared by client secrets and password logins: argon2id at (at least) the
//! OWASP minimum parameters, m = 19 MiB, t = 2, p = 1.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory cost in KiB (19 MiB, the OWASP minimum for argon2id).
pub const ARGON2_M_COST: u32 = 19 * 1024;
/// Iterations.
pub const ARGON2_T_COST: u32 = 2;
/// Lanes.
pub const ARGON2_P_COST: u32 = 1;

/// Hashing failed (only possible with an exhausted OS random source).
#[derive(Debug, thiserror::Error)]
#[error("argon2id hashing failed: {0}")]
pub struct HashError(String);

fn argon2id() -> Argon2<'static> {
    // The constants above are valid parameters, so this cannot fail.
    let params = Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `secret` with a fresh random salt into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
/// CPU-heavy (tens of milliseconds): call it from a blocking thread on async paths.
pub fn hash(secret: &[u8]) -> Result<String, HashError> {
    argon2id()
        .hash_password(secret)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `secret` matches the PHC string. A malformed PHC string never matches. The
/// parameters are read from the PHC string, as the PHC format intends.
pub fn verify(phc: &str, secret: &[u8]) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2id().verify_password(secret, &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash(b"correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(&phc, b"correct horse"));
        assert!(!verify(&phc, b"correct horsE"));
        assert!(!verify("not a hash", b"correct horse"));
    }
}
