//! argon2id hashing shared by client secrets and password logins, at two costs:
//!
//! - [`hash`] (passwords, user-chosen and guessable): the OWASP minimum for argon2id,
//!   m = 19 MiB, t = 2, p = 1 (~20 ms of CPU). `centralauth-operator hash-password` prints such
//!   hashes; the `passwords` Secrets hold what their owners put there.
//! - [`hash_secret`] (client secrets the operator minted: 64 characters from the OS CSPRNG,
//!   ≈ 381 bits): [`SECRET_COST`], the smallest argon2id allows, m = 8 KiB, t = 1, p = 1.
//!   Stretching multiplies the work of each guess; it matters when the guesses needed are few
//!   (a password: 2^20–2^40) and buys nothing against 2^380 — no factor brings that within
//!   reach, and 19 MiB · 2 passes add only ~11 bits. Every unit of cost is paid by the server
//!   instead: at minting, at the pre-warm of each active secret, and at every uncached
//!   verification an attacker makes it run. NIST SP 800-63B likewise asks a key-derivation
//!   cost only of low-entropy secrets (≥ 112-bit look-up secrets need just a salted hash).
//!   argon2id stays so that status hashes keep one format and one verifier.
//!
//! [`verify`] reads the parameters from the PHC string, so hashes made with other parameters
//! (client secrets minted before this change: m = 19 MiB, t = 2) verify as they always did.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory cost of password hashes in KiB (19 MiB, the OWASP minimum for argon2id).
pub const ARGON2_M_COST: u32 = 19 * 1024;
/// Iterations of password hashes.
pub const ARGON2_T_COST: u32 = 2;
/// Lanes of password hashes.
pub const ARGON2_P_COST: u32 = 1;

/// argon2id parameters: memory in KiB, iterations, lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// Memory in KiB (at least 8 per lane).
    pub m_kib: u32,
    /// Iterations (at least 1).
    pub t: u32,
    /// Lanes (at least 1).
    pub p: u32,
}

/// Cost of password hashes (low-entropy, user-chosen): see the module documentation.
pub const PASSWORD_COST: Cost = Cost {
    m_kib: ARGON2_M_COST,
    t: ARGON2_T_COST,
    p: ARGON2_P_COST,
};

/// Cost of generated client-secret hashes (≈ 381 bits of entropy): the minimum argon2id
/// allows; see the module documentation for why no stretching is needed.
pub const SECRET_COST: Cost = Cost { m_kib: 8, t: 1, p: 1 };

/// Hashing failed (only possible with an exhausted OS random source).
#[derive(Debug, thiserror::Error)]
#[error("argon2id hashing failed: {0}")]
pub struct HashError(String);

fn argon2id(cost: Cost) -> Argon2<'static> {
    // Both costs above are valid parameters, so this cannot fail.
    let params = Params::new(cost.m_kib, cost.t, cost.p, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `secret` with a fresh random salt at `cost` into a PHC string.
pub fn hash_with(cost: Cost, secret: &[u8]) -> Result<String, HashError> {
    argon2id(cost)
        .hash_password(secret)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Hashes a password (or any low-entropy secret) with a fresh random salt into a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$…`). CPU-heavy (tens of milliseconds): call it from a
/// blocking thread on async paths.
pub fn hash(secret: &[u8]) -> Result<String, HashError> {
    hash_with(PASSWORD_COST, secret)
}

/// Hashes a generated client secret (high entropy) into a PHC string
/// (`$argon2id$v=19$m=8,t=1,p=1$…`). Takes microseconds.
pub fn hash_secret(secret: &[u8]) -> Result<String, HashError> {
    hash_with(SECRET_COST, secret)
}

/// Whether `secret` matches the PHC string. A malformed PHC string never matches. The
/// parameters are read from the PHC string, as the PHC format intends, so the cost a hash was
/// made with is the cost of verifying it.
pub fn verify(phc: &str, secret: &[u8]) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2id(SECRET_COST).verify_password(secret, &parsed).is_ok(),
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

    #[test]
    fn secret_hashes_use_the_secret_cost() {
        let phc = hash_secret(b"a generated secret").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(verify(&phc, b"a generated secret"));
        assert!(!verify(&phc, b"a generated secreT"));
    }

    #[test]
    fn a_hash_made_with_the_old_secret_parameters_still_verifies() {
        // What the operator stored in ClientSecret statuses before SECRET_COST existed
        // (argon2id m=19 MiB, t=2, p=1), made by that version for this secret.
        let secret = b"A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y5z6A7b8C9d0E1f2";
        let old = OLD_HASH;
        assert!(old.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify(old, secret));
        assert!(!verify(
            old,
            b"A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y5z6A7b8C9d0E1f3"
        ));
        let remade = hash_with(PASSWORD_COST, secret).unwrap();
        assert!(verify(&remade, secret), "a fresh old-parameter hash verifies too");
    }

    const OLD_HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$b2yqC0FG8q3XDtDb7dnyeA$oYqAfrbJ+OFkAcCQxjh+UMnJvzqrMbUuFuHS11q3Jjw";
}
