//! The CentralAuth access token: a compact JWE with `alg: dir` and `enc: A256CBC-HS512`
//! (RFC 7516 / RFC 7518 §5.2.5), whose key is the UTF-8 bytes of the organization's
//! 64-character client secret. The official client decrypts it with `jose`'s `jwtDecrypt`
//! and its own secret; `jose` refuses PBES2 by default, which is why the secret is the key.
//!
//! Built on RustCrypto `aes` + `cbc` and `ring`'s HMAC-SHA-512: no maintained Rust JOSE crate
//! offers `dir` + `A256CBC-HS512` without pulling in OpenSSL (josekit) or a second crypto
//! stack, and the construction is twenty lines that the `jose` round-trip test pins down.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Protected header of every token this module makes.
const HEADER: &str = r#"{"alg":"dir","enc":"A256CBC-HS512"}"#;

/// Why encryption or decryption failed. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JweError {
    /// The key is not 64 bytes.
    #[error(
        "the client secret must be 64 characters to encrypt CentralAuth tokens (A256CBC-HS512 needs a 64-byte key)"
    )]
    KeyLength,
    /// Not a compact JWE this server made, a wrong key, or tampered.
    #[error("the token is not a valid CentralAuth token for this client")]
    Invalid,
}

/// Encrypts `plaintext` (a JSON payload) under `key`.
pub fn encrypt(key: &[u8], plaintext: &[u8]) -> Result<String, JweError> {
    let (mac_key, enc_key) = split_key(key)?;
    let header = URL_SAFE_NO_PAD.encode(HEADER);
    let mut iv = [0u8; 16];
    SystemRandom::new().fill(&mut iv).map_err(|_| JweError::Invalid)?;
    let ciphertext =
        cbc::Encryptor::<aes::Aes256>::new(enc_key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let tag = tag(mac_key, header.as_bytes(), &iv, &ciphertext);
    Ok(format!(
        "{header}..{}.{}.{}",
        URL_SAFE_NO_PAD.encode(iv),
        URL_SAFE_NO_PAD.encode(&ciphertext),
        URL_SAFE_NO_PAD.encode(tag)
    ))
}

/// Decrypts a compact JWE made by [`encrypt`] with the same key; refuses any other header.
pub fn decrypt(key: &[u8], token: &str) -> Result<Vec<u8>, JweError> {
    let (mac_key, enc_key) = split_key(key)?;
    let parts: Vec<&str> = token.split('.').collect();
    let [header, encrypted_key, iv, ciphertext, tag_b64] = parts[..] else {
        return Err(JweError::Invalid);
    };
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| JweError::Invalid);
    let header_json: serde_json::Value = serde_json::from_slice(&decode(header)?).map_err(|_| JweError::Invalid)?;
    let expected: serde_json::Value = serde_json::from_str(HEADER).map_err(|_| JweError::Invalid)?;
    if header_json != expected || !encrypted_key.is_empty() {
        return Err(JweError::Invalid);
    }
    let (iv, ciphertext, given_tag) = (decode(iv)?, decode(ciphertext)?, decode(tag_b64)?);
    let iv: [u8; 16] = iv.try_into().map_err(|_| JweError::Invalid)?;
    let computed = tag(mac_key, header.as_bytes(), &iv, &ciphertext);
    if !super::ct_eq(&computed, &given_tag) {
        return Err(JweError::Invalid);
    }
    cbc::Decryptor::<aes::Aes256>::new(enc_key.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext)
        .map_err(|_| JweError::Invalid)
}

fn split_key(key: &[u8]) -> Result<(&[u8], &[u8; 32]), JweError> {
    if key.len() != 64 {
        return Err(JweError::KeyLength);
    }
    let (mac, enc) = key.split_at(32);
    Ok((mac, enc.try_into().map_err(|_| JweError::KeyLength)?))
}

/// RFC 7518 §5.2.2.1: HMAC-SHA-512 over AAD ‖ IV ‖ ciphertext ‖ AL, truncated to 32 bytes.
fn tag(mac_key: &[u8], aad: &[u8], iv: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA512, mac_key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(aad);
    ctx.update(iv);
    ctx.update(ciphertext);
    ctx.update(&((aad.len() as u64) * 8).to_be_bytes());
    ctx.sign().as_ref()[..32].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8; 64] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip_and_tamper_detection() {
        let token = encrypt(KEY, br#"{"sessionId":"s"}"#).unwrap();
        assert_eq!(token.split('.').count(), 5);
        assert_eq!(decrypt(KEY, &token).unwrap(), br#"{"sessionId":"s"}"#);
        let mut other = *KEY;
        other[0] = b'X';
        assert_eq!(decrypt(&other, &token), Err(JweError::Invalid));
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        parts[3] = URL_SAFE_NO_PAD.encode(b"0123456789abcdef");
        assert_eq!(decrypt(KEY, &parts.join(".")), Err(JweError::Invalid));
        assert_eq!(encrypt(b"short", b"{}"), Err(JweError::KeyLength));
    }

    /// RFC 7518 Appendix B.3 test vector for A256CBC-HS512 (the MAC half of the key first).
    #[test]
    fn rfc7518_b3_tag() {
        let key: Vec<u8> = (0u8..64).collect();
        let aad = b"The second principle of Auguste Kerckhoffs";
        let iv = hex(b"1af38c2dc2b96ffdd86694092341bc04");
        let ciphertext = hex(b"4affaaadb78c31c5da4b1b590d10ffbd3dd8d5d302423526912da037ecbcc7bd822c301dd67c373bccb584ad3e9279c2e6d12a1374b77f077553df829410446b36ebd97066296ae6427ea75c2e0846a11a09ccf5370dc80bfecbad28c73f09b3a3b75e662a2594410ae496b2e2e6609e31e6e02cc837f053d21f37ff4f51950bbe2638d09dd7a4930930806d0703b1f6");
        let expected = hex(b"4dd3b4c088a7f45c216839645b2012bf2e6269a8c56a816dbc1b267761955bc5");
        assert_eq!(tag(&key[..32], aad, &iv, &ciphertext), expected);
    }

    fn hex(s: &[u8]) -> Vec<u8> {
        s.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }
}
