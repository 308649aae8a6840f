//! The stored side of a passkey: the user handle, the record in a User's `spec.passkeys`
//! ([`PasskeyCredential`]) as the crate's types (descriptor, dynamic state), the signature
//! counter rules, and the decoy of e-mail-first logins.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use webauthn_rp::bin::Decode;
use webauthn_rp::request::PublicKeyCredentialDescriptor;
use webauthn_rp::response::register::{DynamicState, UncompressedPubKey};
use webauthn_rp::response::{AuthTransports, AuthenticatorAttachment, AuthenticatorTransport, Backup, CredentialId};

use crate::crd::PasskeyCredential;

/// Length of a WebAuthn user handle, bytes.
pub const USER_HANDLE_LEN: usize = 16;

/// A new random user handle.
pub fn new_user_handle() -> [u8; USER_HANDLE_LEN] {
    let mut handle = [0u8; USER_HANDLE_LEN];
    handle.copy_from_slice(&crate::oauth::grant::random_bytes::<USER_HANDLE_LEN>());
    handle
}

/// A user handle from its hex form (`spec.passkeys.userHandle`).
pub fn user_handle_from_hex(hex: &str) -> Option<[u8; USER_HANDLE_LEN]> {
    let bytes = from_hex(hex)?;
    bytes.try_into().ok()
}

/// The hex form of a user handle.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A decoy credential for an address without passkeys, so e-mail first answers alike for
/// every address: its ID is derived from the organization's UID and the address (stable, so
/// two requests for one address agree), and no authenticator holds it.
pub fn decoy_credential(org_uid: &str, email: &str) -> PasskeyCredential {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("passkey-decoy\n{org_uid}\n{email}").as_bytes(),
    );
    PasskeyCredential {
        id: URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]),
        name: String::new(),
        public_key: String::new(),
        algorithm: String::new(),
        sign_count: 0,
        backup_eligible: false,
        backed_up: false,
        user_verified: false,
        attachment: String::new(),
        transports: vec![],
        aaguid: String::new(),
        created_at: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        last_used_at: None,
    }
}

/// Whether an authenticator presenting signature counter `presented` may log in when `stored`
/// was recorded: a counter must grow, unless the authenticator keeps none (both 0). A stored 0
/// accepts anything (the first count an authenticator shows); a count that stays or goes back
/// means two copies of one key exist — a cloned authenticator — and is refused.
pub fn sign_count_ok(stored: u32, presented: u32) -> bool {
    stored == 0 || presented > stored
}

/// The signature counter to write after a login: the presented one when it is non-zero and
/// differs from the stored one; `None` (no write) otherwise.
pub fn sign_count_to_write(stored: u32, presented: u32) -> Option<u32> {
    (presented != 0 && presented != stored).then_some(presented)
}

pub(super) fn dynamic_state(stored: &PasskeyCredential) -> DynamicState {
    DynamicState {
        user_verified: stored.user_verified,
        backup: match (stored.backup_eligible, stored.backed_up) {
            (false, _) => Backup::NotEligible,
            (true, false) => Backup::Eligible,
            (true, true) => Backup::Exists,
        },
        sign_count: stored.sign_count,
        authenticator_attachment: match stored.attachment.as_str() {
            "platform" => AuthenticatorAttachment::Platform,
            "cross-platform" => AuthenticatorAttachment::CrossPlatform,
            _ => AuthenticatorAttachment::None,
        },
    }
}

/// The descriptor (ID and transports) of a stored credential, for `allowCredentials` and
/// `excludeCredentials`.
pub(super) fn descriptor(stored: &PasskeyCredential) -> Option<PublicKeyCredentialDescriptor<Vec<u8>>> {
    let id = URL_SAFE_NO_PAD.decode(&stored.id).ok()?;
    let id = CredentialId::try_from(id.as_slice()).ok()?;
    let mask = stored
        .transports
        .iter()
        .filter_map(|n| transport(n))
        .fold(0u8, |mask, t| mask | transport_bit(t));
    Some(PublicKeyCredentialDescriptor {
        id: id.into(),
        transports: AuthTransports::decode(mask).unwrap_or(AuthTransports::NONE),
    })
}

const TRANSPORTS: [(AuthenticatorTransport, &str); 6] = [
    (AuthenticatorTransport::Ble, "ble"),
    (AuthenticatorTransport::Hybrid, "hybrid"),
    (AuthenticatorTransport::Internal, "internal"),
    (AuthenticatorTransport::Nfc, "nfc"),
    (AuthenticatorTransport::SmartCard, "smart-card"),
    (AuthenticatorTransport::Usb, "usb"),
];

fn transport(name: &str) -> Option<AuthenticatorTransport> {
    TRANSPORTS.iter().find(|(_, n)| *n == name).map(|(t, _)| *t)
}

/// The bit of `t` in the crate's encoding of [`AuthTransports`].
fn transport_bit(t: AuthenticatorTransport) -> u8 {
    (0..8)
        .map(|i| 1u8 << i)
        .find(|b| AuthTransports::decode(*b).is_ok_and(|x| x.contains(t)))
        .unwrap_or(0)
}

pub(super) fn transport_names(transports: AuthTransports) -> Vec<String> {
    TRANSPORTS
        .iter()
        .filter(|(t, _)| transports.contains(*t))
        .map(|(_, n)| n.to_string())
        .collect()
}

pub(super) fn attachment_name(a: AuthenticatorAttachment) -> &'static str {
    match a {
        AuthenticatorAttachment::Platform => "platform",
        AuthenticatorAttachment::CrossPlatform => "cross-platform",
        AuthenticatorAttachment::None => "",
    }
}

pub(super) fn algorithm(key: &UncompressedPubKey<'_>) -> &'static str {
    match key {
        UncompressedPubKey::Ed25519(_) => "EdDSA",
        UncompressedPubKey::P256(_) => "ES256",
        UncompressedPubKey::P384(_) => "ES384",
        UncompressedPubKey::Rsa(_) => "RS256",
    }
}

pub(super) fn uuid_of(bytes: &[u8]) -> String {
    uuid::Uuid::from_slice(bytes).map(|u| u.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_counter_must_grow_unless_the_authenticator_keeps_none() {
        assert!(sign_count_ok(0, 0), "no counter at all");
        assert!(sign_count_ok(0, 7), "the first count shown");
        assert!(sign_count_ok(5, 6));
        assert!(!sign_count_ok(5, 5), "a count that stays: a copy used the same count");
        assert!(!sign_count_ok(5, 4), "a count that goes back: cloned");
        assert!(!sign_count_ok(5, 0), "a counter that stops counting is refused too");
    }

    #[test]
    fn only_a_changed_non_zero_counter_is_written() {
        assert_eq!(sign_count_to_write(0, 0), None, "no counter: nothing to write");
        assert_eq!(sign_count_to_write(3, 3), None);
        assert_eq!(sign_count_to_write(3, 4), Some(4));
        assert_eq!(sign_count_to_write(0, 1), Some(1));
    }

    #[test]
    fn user_handles_round_trip_through_hex() {
        let h = new_user_handle();
        assert_ne!(h, new_user_handle(), "random");
        assert_eq!(user_handle_from_hex(&hex(&h)), Some(h));
        assert_eq!(user_handle_from_hex("abc"), None);
        assert_eq!(user_handle_from_hex(&"zz".repeat(16)), None);
        assert_eq!(user_handle_from_hex(&"ab".repeat(15)), None);
    }

    #[test]
    fn transports_round_trip() {
        let mut c = decoy_credential("uid", "ada@example.com");
        c.transports = vec!["hybrid".into(), "internal".into(), "bogus".into()];
        let d = descriptor(&c).unwrap();
        assert_eq!(transport_names(d.transports), ["hybrid", "internal"]);
    }

    #[test]
    fn a_decoy_is_stable_per_address_and_differs_across_addresses() {
        let a = decoy_credential("uid", "ada@example.com");
        assert_eq!(a.id, decoy_credential("uid", "ada@example.com").id);
        assert_ne!(a.id, decoy_credential("uid", "bob@example.com").id);
        assert_ne!(a.id, decoy_credential("uid2", "ada@example.com").id);
        assert!(descriptor(&a).is_some(), "it is a well-formed credential ID");
    }
}
