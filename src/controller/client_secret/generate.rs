//! Minting a client secret: 64 characters of `[A-Za-z0-9]` from the OS CSPRNG, and its public
//! fingerprint.
//!
//! 64 alphanumerics carry 64 · log2(62) ≈ 381 bits of entropy, and as UTF-8 they are exactly 64
//! bytes: the key size of JWE `dir` + `A256CBC-HS512`, which is how the CentralAuth web client
//! decrypts its access tokens (the secret's UTF-8 bytes are the key). Characters are drawn by
//! rejection sampling (bytes ≥ 248 = 4 · 62 are discarded), so every character is uniform.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};

/// Length of a generated client secret, in characters (= bytes).
pub const SECRET_LENGTH: usize = 64;

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Largest multiple of 62 that fits in a byte: bytes at or above it are rejected.
const REJECT_FROM: u8 = 248;

/// The OS random source failed (it practically never does; the reconcile is retried).
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed; the operator retries")]
pub struct RandomError;

/// A plaintext client secret. Its `Debug` output is redacted and it has no `Display`, so it
/// cannot end up in a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext(String);

impl Plaintext {
    /// Wraps a secret read back from its Kubernetes Secret.
    pub fn new(value: String) -> Plaintext {
        Plaintext(value)
    }

    /// The secret itself: only for writing it into a Kubernetes Secret or hashing it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The public fingerprint of this secret.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.0.as_bytes())
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Plaintext(<redacted>)")
    }
}

/// Mints a new secret from the OS CSPRNG.
pub fn generate_secret() -> Result<Plaintext, RandomError> {
    let rng = SystemRandom::new();
    let mut secret = String::with_capacity(SECRET_LENGTH);
    let mut buf = [0u8; SECRET_LENGTH];
    while secret.len() < SECRET_LENGTH {
        rng.fill(&mut buf).map_err(|_| RandomError)?;
        for byte in buf.iter().filter(|b| **b < REJECT_FROM) {
            if secret.len() == SECRET_LENGTH {
                break;
            }
            secret.push(ALPHABET[usize::from(byte % 62)] as char);
        }
    }
    Ok(Plaintext(secret))
}

/// The public, non-reversible identifier of a secret: `sha256:<lowercase hex>`.
///
/// Safe to show anywhere: the secret has ~381 bits of entropy, so its SHA-256 cannot be
/// inverted by guessing.
pub fn fingerprint(secret: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest.as_ref() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn secrets_are_64_alphanumerics_and_distinct() {
        let secrets: HashSet<String> = (0..200).map(|_| generate_secret().unwrap().0).collect();
        assert_eq!(secrets.len(), 200);
        for s in &secrets {
            assert_eq!(s.len(), SECRET_LENGTH);
            assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()), "{s}");
        }
    }

    #[test]
    fn every_character_of_the_alphabet_occurs_roughly_uniformly() {
        // 2,000 secrets = 128,000 characters, ~2,065 per symbol; a biased modulo (without
        // rejection) would give the first 8 symbols ~25 % more.
        let mut counts = [0u32; 128];
        for _ in 0..2000 {
            for b in generate_secret().unwrap().0.bytes() {
                counts[usize::from(b)] += 1;
            }
        }
        let expected = 2000.0 * 64.0 / 62.0;
        for &c in ALPHABET {
            let n = f64::from(counts[usize::from(c)]);
            assert!(
                (n - expected).abs() < expected * 0.12,
                "{} occurred {n} times",
                c as char
            );
        }
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        assert_eq!(
            fingerprint(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn debug_output_is_redacted() {
        let secret = generate_secret().unwrap();
        let debug = format!("{secret:?}");
        assert!(!debug.contains(secret.expose()));
        assert_eq!(debug, "Plaintext(<redacted>)");
    }
}
