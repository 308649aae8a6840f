//! Passkeys (WebAuthn) as plain functions over the `webauthn_rp` crate: the relying-party ID
//! of an organization, the ceremonies' options and server state, the verification of a
//! registration or an assertion, and the conversion between the crate's credential and the
//! public record kept in a User's `spec.passkeys` ([`PasskeyCredential`]).
//!
//! Nothing here touches the store or the API server ([`crate::flow::passkey`] does). The
//! ceremony state this module encodes (the challenge, the user verification asked, the
//! expiry, for e-mail-first logins the allowed credential IDs) is opaque bytes the flow keeps
//! in the store, single use.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use webauthn_rp::bin::{Decode, Encode};
use webauthn_rp::request::auth::{
    AllowedCredentials, AuthenticationVerificationOptions, DiscoverableCredentialRequestOptions,
    NonDiscoverableCredentialRequestOptions, SignatureCounterEnforcement,
};
use webauthn_rp::request::register::{
    CredProtect, PublicKeyCredentialCreationOptions, PublicKeyCredentialUserEntity, RegistrationVerificationOptions,
    UserHandle16, Username,
};
use webauthn_rp::request::{AsciiDomain, Credentials, ExtensionInfo, RpId};
use webauthn_rp::response::register::{CompressedPubKey, StaticState};
use webauthn_rp::response::{Backup, CredentialId, Origin};
use webauthn_rp::{
    AuthenticatedCredential, DiscoverableAuthentication16, DiscoverableAuthenticationServerState,
    NonDiscoverableAuthentication16, NonDiscoverableAuthenticationServerState, Registration, RegistrationServerState,
};

use super::credential::{
    USER_HANDLE_LEN, algorithm, attachment_name, descriptor, dynamic_state, hex, sign_count_ok, transport_names,
    uuid_of,
};
use crate::crd::{Organization, PasskeyCredential};
use crate::tenant::PublicBase;

/// How long a started ceremony (its challenge) may be completed: the crate's 5-minute timeout.
pub const CEREMONY_TTL: Duration = Duration::from_secs(5 * 60);

/// Why a passkey step failed. Messages name no credential, key or challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyError {
    /// The organization has no host of its own, or passkeys are not enabled.
    #[error(
        "passkeys are offered only on the organization's own host (customDomain or subdomain) with loginMethods.passkeys enabled"
    )]
    NotOffered,
    /// The browser's answer is not a WebAuthn response this server can read.
    #[error("the browser's passkey answer could not be read; try again")]
    Malformed,
    /// The ceremony state does not decode (another version wrote it, or it was tampered with).
    #[error("this passkey step has expired or was already used; start again")]
    NoCeremony,
    /// The response did not verify (challenge, origin, signature, flags): the crate's reason,
    /// which names no data.
    #[error("the passkey was not accepted ({0}); try again or log in another way")]
    Refused(String),
    /// No passkey of this user has the credential ID (unknown or revoked).
    #[error("this passkey is not registered here, or it was revoked; log in another way")]
    UnknownCredential,
    /// The authenticator's signature counter went backwards: it may be cloned.
    #[error(
        "the passkey's signature counter went backwards, so the authenticator may have been copied; this passkey is refused: log in another way and ask an administrator to check it"
    )]
    SignCountRegressed,
    /// Too many refused passkey logins from this address (429).
    #[error("too many failed passkey logins from this network address; wait a few minutes and try again")]
    Throttled,
    /// A stored credential does not decode (edited by hand).
    #[error(
        "a stored passkey of this user cannot be read; an administrator must delete it from the User's spec.passkeys"
    )]
    StoredCredential,
}

/// The crate's reason, cut before any detail it quotes (a parser's message may repeat what the
/// browser sent): "clientDataJSON could not be parsed", "signature counter …".
fn reason(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    text.split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(120)
        .collect()
}

/// The relying-party ID of `org`'s passkeys: its own host (`customDomain`, else
/// `<subdomain>.<base>`), when passkeys are enabled. `None` on the shared base domain: an RP ID
/// shared by every tenant would let one tenant's page ask for another tenant's credentials.
pub fn rp_id(org: &Organization, public: &PublicBase) -> Option<String> {
    org.spec.login_methods.passkeys.as_ref()?;
    crate::tenant::own_host(org, public).filter(|h| parse_rp_id(h).is_ok())
}

fn parse_rp_id(host: &str) -> Result<RpId, PasskeyError> {
    AsciiDomain::try_from(host.to_string())
        .map(RpId::Domain)
        .map_err(|_| PasskeyError::NotOffered)
}

/// The origin the ceremonies of `rp_id` must come from: `scheme://rp_id[:port]` of this server.
pub fn expected_origin(rp_id: &str, public: &PublicBase) -> String {
    public.origin(rp_id)
}

/// Where a ceremony runs: the RP ID, the page's origin, and the sites that may embed the page
/// (the organization's `allowedOrigins`, for `embed=1`).
pub struct Party<'a> {
    /// The relying-party ID ([`rp_id`]).
    pub rp_id: &'a str,
    /// The origin of the login page ([`expected_origin`]).
    pub origin: &'a str,
    /// `allowedOrigins` patterns a cross-origin frame's top origin may match.
    pub top_origins: &'a [String],
}

/// One exact origin, compared with what the browser signed.
struct Exact<'a>(&'a str);

impl PartialEq<Origin<'_>> for Exact<'_> {
    fn eq(&self, other: &Origin<'_>) -> bool {
        self.0 == other.0
    }
}

/// One `allowedOrigins` pattern (wildcards as in [`crate::origin::matches`]).
struct Pattern<'a>(&'a str);

impl PartialEq<Origin<'_>> for Pattern<'_> {
    fn eq(&self, other: &Origin<'_>) -> bool {
        crate::origin::origin_allowed(&other.0, std::slice::from_ref(&self.0.to_string()))
    }
}

impl Party<'_> {
    fn rp(&self) -> Result<RpId, PasskeyError> {
        parse_rp_id(self.rp_id)
    }

    fn patterns(&self) -> Vec<Pattern<'_>> {
        crate::origin::usable(self.top_origins).map(|p| Pattern(p)).collect()
    }
}

/// A started ceremony: the opaque server state to keep, and the options (JSON) for the
/// browser's `PublicKeyCredential.parse…OptionsFromJSON`.
pub struct Started {
    /// The crate's encoded server state (challenge, expiry, …).
    pub state: Vec<u8>,
    /// The options for the browser.
    pub options: serde_json::Value,
}

/// Starts registering a passkey for the user with `handle` and address `email`, excluding the
/// credentials the user already has (so one authenticator is not registered twice).
pub fn start_registration(
    party: &Party<'_>,
    handle: [u8; USER_HANDLE_LEN],
    email: &str,
    existing: &[PasskeyCredential],
) -> Result<Started, PasskeyError> {
    let rp = party.rp()?;
    let id = UserHandle16::from(handle);
    let name = Username::try_from(email).map_err(|_| PasskeyError::Malformed)?;
    let user = PublicKeyCredentialUserEntity {
        name,
        id: &id,
        display_name: None,
    };
    let exclude = existing.iter().filter_map(descriptor).collect();
    let mut options = PublicKeyCredentialCreationOptions::passkey(&rp, user, exclude);
    // Ask for credProtect (user verification required) but let authenticators without the
    // extension register: user verification is required at every login anyway.
    options.extensions.cred_protect = CredProtect::UserVerificationRequired(ExtensionInfo::AllowDontEnforceValue);
    let (server, client) = options
        .start_ceremony()
        .map_err(|e| PasskeyError::Refused(reason(&e)))?;
    let state = server.encode().map_err(|e| PasskeyError::Refused(reason(&e)))?;
    let options = serde_json::to_value(&client).map_err(|_| PasskeyError::Malformed)?;
    Ok(Started { state, options })
}

/// Verifies a registration (`response`: the browser's `credential.toJSON()`) against the
/// ceremony `state`; the record to keep, named `name`, created `now` (Unix seconds).
pub fn finish_registration(
    party: &Party<'_>,
    state: &[u8],
    response: &[u8],
    name: &str,
    now: i64,
) -> Result<PasskeyCredential, PasskeyError> {
    let rp = party.rp()?;
    let server = RegistrationServerState::<USER_HANDLE_LEN>::decode(state).map_err(|_| PasskeyError::NoCeremony)?;
    let registration = Registration::from_json_relaxed(response).map_err(|_| PasskeyError::Malformed)?;
    let origins = [Exact(party.origin)];
    let patterns = party.patterns();
    let options = RegistrationVerificationOptions {
        allowed_origins: &origins,
        allowed_top_origins: Some(patterns.as_slice()),
        ..Default::default()
    };
    let credential = server
        .verify(&rp, &registration, &options)
        .map_err(|e| PasskeyError::Refused(reason(&e)))?;
    let (id, transports, _user, static_state, dynamic, metadata) = credential.into_parts();
    let public_key = static_state.encode().map_err(|_| PasskeyError::Malformed)?;
    Ok(PasskeyCredential {
        id: URL_SAFE_NO_PAD.encode(id.as_ref()),
        name: name.chars().take(64).collect(),
        public_key: URL_SAFE_NO_PAD.encode(public_key),
        algorithm: algorithm(&static_state.credential_public_key).to_string(),
        sign_count: dynamic.sign_count,
        backup_eligible: !matches!(dynamic.backup, Backup::NotEligible),
        backed_up: matches!(dynamic.backup, Backup::Exists),
        user_verified: dynamic.user_verified,
        attachment: attachment_name(dynamic.authenticator_attachment).to_string(),
        transports: transport_names(transports),
        aaguid: uuid_of(metadata.aaguid.data()),
        created_at: Time(k8s_openapi::jiff::Timestamp::from_second(now).unwrap_or_default()),
        last_used_at: Some(crate::oauth::profile::day(now)),
    })
}

/// How a login asks for a passkey: any of the organization's (discoverable: the browser offers
/// the passkeys it holds for the RP ID), or one of a named user's (e-mail first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// "Log in with a passkey" without an address.
    Discoverable,
    /// The address was typed first: `allowCredentials` lists that user's passkeys.
    EmailFirst,
}

/// Starts a login ceremony. E-mail first with `allowed` credentials (the user's, or — for an
/// address without passkeys — a decoy, see [`decoy_credential`]).
pub fn start_login(
    party: &Party<'_>,
    request: Request,
    allowed: &[PasskeyCredential],
) -> Result<Started, PasskeyError> {
    let rp = party.rp()?;
    let refused = |e: &dyn std::fmt::Display| PasskeyError::Refused(reason(&e));
    let (state, options) = match request {
        Request::Discoverable => {
            let (server, client) = DiscoverableCredentialRequestOptions::passkey(&rp)
                .start_ceremony()
                .map_err(|e| refused(&e))?;
            let options = serde_json::to_value(&client).map_err(|_| PasskeyError::Malformed)?;
            (server.encode().map_err(|e| refused(&e))?, options)
        }
        Request::EmailFirst => {
            let mut creds = AllowedCredentials::with_capacity(allowed.len());
            for d in allowed.iter().filter_map(descriptor) {
                creds.push(d.into());
            }
            let mut request = NonDiscoverableCredentialRequestOptions::second_factor(&rp, creds)
                .map_err(|_| PasskeyError::UnknownCredential)?;
            request.options().user_verification = webauthn_rp::request::UserVerificationRequirement::Required;
            let (server, client) = request.start_ceremony().map_err(|e| refused(&e))?;
            let options = serde_json::to_value(&client).map_err(|_| PasskeyError::Malformed)?;
            (server.encode().map_err(|e| refused(&e))?, options)
        }
    };
    Ok(Started { state, options })
}

/// What a browser's assertion names before it is verified.
pub struct Assertion {
    request: Request,
    discoverable: Option<DiscoverableAuthentication16>,
    email_first: Option<NonDiscoverableAuthentication16>,
}

impl Assertion {
    /// Reads the browser's `credential.toJSON()` of a login of kind `request`.
    pub fn parse(request: Request, response: &[u8]) -> Result<Assertion, PasskeyError> {
        let mut a = Assertion {
            request,
            discoverable: None,
            email_first: None,
        };
        match request {
            Request::Discoverable => {
                a.discoverable = Some(
                    DiscoverableAuthentication16::from_json_relaxed(response).map_err(|_| PasskeyError::Malformed)?,
                )
            }
            Request::EmailFirst => {
                a.email_first = Some(
                    NonDiscoverableAuthentication16::from_json_relaxed(response)
                        .map_err(|_| PasskeyError::Malformed)?,
                )
            }
        }
        Ok(a)
    }

    /// The credential ID, base64url (as stored in [`PasskeyCredential::id`]).
    pub fn credential_id(&self) -> String {
        let raw = match (&self.discoverable, &self.email_first) {
            (Some(d), _) => d.raw_id(),
            (_, Some(n)) => n.raw_id(),
            _ => return String::new(),
        };
        URL_SAFE_NO_PAD.encode(raw.as_ref())
    }

    /// The user handle a discoverable assertion carries (hex), if any.
    pub fn user_handle(&self) -> Option<String> {
        match (&self.discoverable, &self.email_first) {
            (Some(d), _) => Some(hex(d.response().user_handle().as_ref())),
            (_, Some(n)) => n.response().user_handle().map(|h| hex(h.as_ref())),
            _ => None,
        }
    }
}

/// What a verified login changes on its credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Used {
    /// The signature counter the authenticator presented.
    pub sign_count: u32,
    /// Backed up (synced) now.
    pub backed_up: bool,
    /// The user was verified.
    pub user_verified: bool,
}

/// Verifies `assertion` against the ceremony `state` and the stored credential `stored` of the
/// user whose handle is `handle`. The signature counter must not go backwards
/// ([`sign_count_ok`]).
pub fn verify_login(
    party: &Party<'_>,
    state: &[u8],
    assertion: &Assertion,
    stored: &PasskeyCredential,
    handle: [u8; USER_HANDLE_LEN],
) -> Result<Used, PasskeyError> {
    let rp = party.rp()?;
    let id = URL_SAFE_NO_PAD
        .decode(&stored.id)
        .map_err(|_| PasskeyError::StoredCredential)?;
    let key = URL_SAFE_NO_PAD
        .decode(&stored.public_key)
        .map_err(|_| PasskeyError::StoredCredential)?;
    let static_state = StoredKey::decode(key.as_slice()).map_err(|_| PasskeyError::StoredCredential)?;
    let dynamic = dynamic_state(stored);
    let user = UserHandle16::from(handle);
    let cred_id = CredentialId::try_from(id.as_slice()).map_err(|_| PasskeyError::StoredCredential)?;
    let mut cred = AuthenticatedCredential::new(cred_id, &user, static_state, dynamic)
        .map_err(|_| PasskeyError::StoredCredential)?;
    let origins = [Exact(party.origin)];
    let patterns = party.patterns();
    let options = AuthenticationVerificationOptions {
        allowed_origins: &origins,
        allowed_top_origins: Some(patterns.as_slice()),
        backup_requirement: Some(webauthn_rp::request::BackupReq::None),
        update_uv: true,
        sig_counter_enforcement: SignatureCounterEnforcement::Fail,
        ..Default::default()
    };
    let refused = |e: webauthn_rp::response::auth::error::AuthCeremonyErr| match e {
        webauthn_rp::response::auth::error::AuthCeremonyErr::SignatureCounter => PasskeyError::SignCountRegressed,
        e => PasskeyError::Refused(reason(&e)),
    };
    match assertion.request {
        Request::Discoverable => {
            let server = DiscoverableAuthenticationServerState::decode(state).map_err(|_| PasskeyError::NoCeremony)?;
            let response = assertion.discoverable.as_ref().ok_or(PasskeyError::Malformed)?;
            server.verify(&rp, response, &mut cred, &options).map_err(refused)?;
        }
        Request::EmailFirst => {
            let server =
                NonDiscoverableAuthenticationServerState::decode(state).map_err(|_| PasskeyError::NoCeremony)?;
            let response = assertion.email_first.as_ref().ok_or(PasskeyError::Malformed)?;
            server.verify(&rp, response, &mut cred, &options).map_err(refused)?;
        }
    }
    let after = cred.dynamic_state();
    if !sign_count_ok(stored.sign_count, after.sign_count) {
        return Err(PasskeyError::SignCountRegressed);
    }
    Ok(Used {
        sign_count: after.sign_count,
        backed_up: matches!(after.backup, Backup::Exists),
        user_verified: after.user_verified,
    })
}

/// The stored public key as the crate decodes it.
type StoredKey = StaticState<CompressedPubKey<[u8; 32], [u8; 32], [u8; 48], Vec<u8>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_the_crate_reason_without_what_the_browser_sent() {
        let parse = "clientDataJSON could not be parsed: invalid type: string \"secret-ish\"";
        assert_eq!(reason(&parse), "clientDataJSON could not be parsed");
        assert_eq!(
            reason(&"signature counter did not increase"),
            "signature counter did not increase"
        );
    }

    #[test]
    fn allowed_origin_patterns_match_as_allowed_origins_do() {
        let p = Pattern("https://*.example.com");
        assert!(p == Origin("https://app.example.com".into()));
        assert!(p != Origin("https://example.com".into()));
        assert!(Exact("http://acme.localhost:8080") == Origin("http://acme.localhost:8080".into()));
        assert!(Exact("http://acme.localhost:8080") != Origin("http://evil.localhost:8080".into()));
    }
}
