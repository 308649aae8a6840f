//! The `passkeys` login method (WebAuthn; [`webauthn`] has the crate glue, [`credential`] the
//! stored side, `patches` the writes to the User, `offer` the offer after an e-mail login).
//!
//! **Registration** follows CentralAuth: after an e-mail login proved the address, the
//! browser goes to an offer page instead of the client ([`Flows::offer_passkey`]); the user
//! creates a passkey ([`Flows::registration_options`], [`Flows::register_passkey`]) or skips
//! ([`Flows::skip_offer`]), and the code is issued then. An offer is a bearer ID bound to the
//! session cookie the login just set, single use, 15 minutes.
//!
//! **Login** ([`Flows::passkey_options`], [`Flows::passkey_login`]): discoverable (no address:
//! the browser offers the passkeys it holds for the RP ID, and the assertion names the user by
//! its handle) or e-mail first (`allowCredentials` from that user's passkeys). The ceremony is
//! bound to the pending login (its ID and CSRF cookie), stored under the login's key, and
//! taken once: a second answer to one challenge, or an answer to another login's challenge,
//! is refused. The User is read at every login (a revoked credential stops working at once);
//! the user is then admitted exactly as every other method does ([`Flows::admit`]: blocked,
//! invite-only, allowed domains, hijack binding).
//!
//! **Finding the user of a discoverable assertion**: the user handle is 16 random bytes (no
//! personal data, as WebAuthn asks) kept in `spec.passkeys.userHandle` and in the label
//! [`USER_HANDLE_LABEL`]; the login lists the namespace's Users with that label (one
//! label-selected LIST, answered from the API server's watch cache, then the object itself).
//! The login server's role already holds `list` on Users for the User controller, so this adds
//! no permission. E-mail first reads the User by its derived name, as every method does.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kube::ResourceExt;
use kube::api::Patch;
use serde::{Deserialize, Serialize};

use super::Flows;
use super::login::{Completed, LoginError, LoginRequest, Pending, login_key};
use super::users::{Link, read};
use crate::crd::user::{MAX_PASSKEYS, USER_HANDLE_LABEL};
use crate::crd::{Organization, PasskeyCredential, User, normalize_email, user_name};
use crate::oauth::throttle::{self, Counters};
use crate::runtime::metrics::{LoginMethod, LoginOutcome};
use crate::store::{hashed, json};
use patches::{passkey_manager, patch_refused, use_patch};
use webauthn::{Assertion, Party, PasskeyError, Request};

pub mod credential;
mod offer;
mod patches;
pub mod webauthn;

pub use offer::Offer;

/// How long a passkey offer waits for the user after an e-mail login.
pub const OFFER_TTL: Duration = Duration::from_secs(15 * 60);

/// Field manager of the login path's writes to a User's passkeys.
pub const PASSKEY_MANAGER: &str = "centralauth-operator/passkeys";

/// Store key of the login ceremony of pending login `login_id`.
pub fn ceremony_key(login_id: &str) -> String {
    format!("passkey:auth:{}", hashed(login_id))
}

/// A started login ceremony, as stored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ceremony {
    /// E-mail first: the address typed.
    email: Option<String>,
    /// The crate's server state, base64url.
    state: String,
}

impl Flows {
    /// Where `org`'s passkey ceremonies run, when passkeys are offered at all.
    fn party_of(&self, org: &Organization) -> Option<(String, String)> {
        let rp_id = webauthn::rp_id(org, &self.public)?;
        let origin = webauthn::expected_origin(&rp_id, &self.public);
        Some((rp_id, origin))
    }

    /// Whether the login page of `login` at `org` offers passkeys: enabled, and the request
    /// arrived at the organization's own host (the RP ID).
    pub fn passkeys_offered(&self, org: &Organization, login: &LoginRequest) -> bool {
        login.own_host && self.party_of(org).is_some()
    }

    /// Whether an e-mail login of a user with `count` passkeys is offered to register one.
    pub(crate) fn offers_registration(&self, org: &Organization, login: &LoginRequest, count: usize) -> bool {
        self.passkeys_offered(org, login) && count < MAX_PASSKEYS
    }

    /// The request options of a passkey login of `p`: discoverable, or e-mail first when
    /// `email` is given. The ceremony replaces any earlier one of this login.
    pub async fn passkey_options(&self, p: &Pending, email: Option<&str>) -> Result<serde_json::Value, LoginError> {
        let (rp_id, origin) = self.passkey_party(p)?;
        let party = Party {
            rp_id: &rp_id,
            origin: &origin,
            top_origins: &p.org.spec.allowed_origins,
        };
        let email = email.map(normalize_email).filter(|e| e.contains('@'));
        if self
            .passkey_failures(p, b"")
            .over(self.store.as_ref())
            .await
            .unwrap_or(true)
        {
            return Err(PasskeyError::Throttled.into());
        }
        let started = match &email {
            None => webauthn::start_login(&party, Request::Discoverable, &[])?,
            Some(email) => {
                let allowed = self.allowed_credentials(&p.org, email).await?;
                webauthn::start_login(&party, Request::EmailFirst, &allowed)?
            }
        };
        let ceremony = Ceremony {
            email,
            state: URL_SAFE_NO_PAD.encode(&started.state),
        };
        json::put(
            self.store.as_ref(),
            &ceremony_key(&p.login_id),
            &ceremony,
            webauthn::CEREMONY_TTL,
        )
        .await?;
        Ok(started.options)
    }

    /// The failure counters of a passkey login of `p` with `response`: per credential ID (as
    /// the browser names it) and per client address. The options step checks them too, so an
    /// address that keeps failing stops costing API reads.
    fn passkey_failures(&self, p: &Pending, response: &[u8]) -> Counters {
        let credential = serde_json::from_slice::<serde_json::Value>(response)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_string))
            .unwrap_or_default();
        let addr = p.addr.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        // Without a credential ID (garbage, or the options step) only the address counts.
        let subject = match credential.is_empty() {
            true => format!("addr:{addr}"),
            false => credential,
        };
        let tenant = &p.login.request.org.uid;
        throttle::PASSKEY.untrusted(self.settings.login_limits, tenant, &subject, addr)
    }

    fn passkey_party(&self, p: &Pending) -> Result<(String, String), LoginError> {
        if !self.passkeys_offered(&p.org, &p.login) {
            return Err(LoginError::MethodDisabled("passkey"));
        }
        self.party_of(&p.org).ok_or(LoginError::MethodDisabled("passkey"))
    }

    /// The passkeys of `email` for `allowCredentials`, or a decoy when the address has none (so
    /// the answer does not tell which addresses have passkeys).
    async fn allowed_credentials(&self, org: &Organization, email: &str) -> Result<Vec<PasskeyCredential>, LoginError> {
        let api = self.users_api(org);
        let (user, _) = read(&api, &user_name(&org.name_any(), email)).await?;
        let mut creds = user
            .and_then(|u| u.spec.passkeys)
            .map(|p| p.credentials)
            .unwrap_or_default();
        if creds.is_empty() {
            creds.push(credential::decoy_credential(
                org.metadata.uid.as_deref().unwrap_or_default(),
                email,
            ));
        }
        Ok(creds)
    }

    /// Verifies the assertion `response` (the browser's `toJSON()`) of login `p`, then admits
    /// the user and completes the login as every method does.
    pub async fn passkey_login(&self, p: &Pending, response: &[u8]) -> Result<Completed, LoginError> {
        let (rp_id, origin) = self.passkey_party(p)?;
        let failures = self.passkey_failures(p, response);
        let store = self.store.as_ref();
        let result = match failures.over(store).await.unwrap_or(true) {
            true => Err(PasskeyError::Throttled.into()),
            false => self.verify_passkey(p, &rp_id, &origin, response).await,
        };
        let (user, read_at, credential_id, used) = match result {
            Ok(found) => found,
            Err(e) => {
                if let LoginError::Passkey(reason) = &e {
                    self.metrics.login(LoginMethod::passkey, LoginOutcome::failure);
                    tracing::info!(org = %p.login.request.org.name, %reason, "passkey login refused");
                    if *reason != PasskeyError::Throttled {
                        let _ = failures.record(store).await;
                    }
                }
                return Err(e);
            }
        };
        let email = user.spec.email.clone();
        let link = Link::connection(crate::crd::user::PASSKEY_CONNECTION);
        let admitted = self
            .admit_read(&p.org, &email, Some(user.clone()), read_at, &link)
            .await
            .inspect_err(|_| self.metrics.login(LoginMethod::passkey, LoginOutcome::failure))?;
        self.record_use(&p.org, &user, &credential_id, &used).await?;
        self.complete_admitted(p, &login_key(&p.login_id), admitted, LoginMethod::passkey)
            .await
    }

    /// The verified assertion: the user, when they were read, the credential and its use.
    async fn verify_passkey(
        &self,
        p: &Pending,
        rp_id: &str,
        origin: &str,
        response: &[u8],
    ) -> Result<(User, i64, String, webauthn::Used), LoginError> {
        let ceremony: Ceremony = json::take(self.store.as_ref(), &ceremony_key(&p.login_id))
            .await?
            .ok_or(PasskeyError::NoCeremony)?;
        let state = URL_SAFE_NO_PAD
            .decode(&ceremony.state)
            .map_err(|_| PasskeyError::NoCeremony)?;
        let request = match ceremony.email {
            Some(_) => Request::EmailFirst,
            None => Request::Discoverable,
        };
        let assertion = Assertion::parse(request, response)?;
        let (user, read_at) = match &ceremony.email {
            Some(email) => {
                let (user, read_at) = read(&self.users_api(&p.org), &user_name(&p.org.name_any(), email)).await?;
                (user.ok_or(PasskeyError::UnknownCredential)?, read_at)
            }
            None => self.user_by_handle(&p.org, assertion.user_handle()).await?,
        };
        let passkeys = user.spec.passkeys.clone().unwrap_or_default();
        let credential_id = assertion.credential_id();
        let stored = passkeys
            .credentials
            .iter()
            .find(|c| c.id == credential_id)
            .ok_or(PasskeyError::UnknownCredential)?;
        let handle = credential::user_handle_from_hex(&passkeys.user_handle).ok_or(PasskeyError::StoredCredential)?;
        let party = Party {
            rp_id,
            origin,
            top_origins: &p.org.spec.allowed_origins,
        };
        let used = webauthn::verify_login(&party, &state, &assertion, stored, handle)?;
        Ok((user, read_at, credential_id, used))
    }

    /// The User of `org` whose passkeys carry `handle` (hex): a label-selected list, then the
    /// spec must agree and the organization match.
    async fn user_by_handle(&self, org: &Organization, handle: Option<String>) -> Result<(User, i64), LoginError> {
        let handle = handle
            .filter(|h| credential::user_handle_from_hex(h).is_some())
            .ok_or(PasskeyError::UnknownCredential)?;
        let read_at = crate::oauth::now();
        let users = self.users_labelled(org, USER_HANDLE_LABEL, &handle).await?;
        let mut matching = users.into_iter().filter(|u| {
            u.spec.organization == org.name_any()
                && u.spec.passkeys.as_ref().is_some_and(|p| p.user_handle == handle)
                && u.name_matches()
        });
        match (matching.next(), matching.next()) {
            (Some(user), None) => Ok((user, read_at)),
            _ => Err(PasskeyError::UnknownCredential.into()),
        }
    }

    /// Writes what a login changed on the credential — the signature counter (when non-zero
    /// and changed), the backup state, user verification, the day of use (once a day) — in one
    /// JSON patch that first tests the entry is still this credential: a passkey revoked since
    /// the read is not written back, and the login is refused.
    async fn record_use(
        &self,
        org: &Organization,
        user: &User,
        credential_id: &str,
        used: &webauthn::Used,
    ) -> Result<(), LoginError> {
        let Some(patch) = use_patch(user, credential_id, used, crate::oauth::now()) else {
            return Ok(());
        };
        self.users_api(org)
            .patch(&user.name_any(), &passkey_manager(), &Patch::Json::<()>(patch))
            .await
            .map_err(patch_refused)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{LoginMethods, PasskeyLogin};
    use crate::store::{MemoryStore, Store};
    use crate::tenant::PublicBase;

    fn public() -> PublicBase {
        PublicBase {
            scheme: "https".into(),
            base_domain: "auth.example.net".into(),
            port: None,
        }
    }

    fn org(subdomain: Option<&str>, custom: Option<&str>, passkeys: bool) -> Organization {
        let mut org = crate::tenant::tests::org(subdomain, custom);
        org.spec.login_methods = LoginMethods {
            passkeys: passkeys.then(PasskeyLogin::default),
            ..Default::default()
        };
        org
    }

    #[test]
    fn the_rp_id_is_the_organizations_own_host_and_never_the_shared_domain() {
        let p = public();
        assert_eq!(
            webauthn::rp_id(&org(Some("acme"), None, true), &p).as_deref(),
            Some("acme.auth.example.net")
        );
        assert_eq!(
            webauthn::rp_id(&org(Some("acme"), Some("login.acme.com"), true), &p).as_deref(),
            Some("login.acme.com"),
            "a custom domain wins over the subdomain"
        );
        assert_eq!(
            webauthn::rp_id(&org(None, None, true), &p),
            None,
            "the shared base domain has none"
        );
        assert_eq!(
            webauthn::rp_id(&org(Some("acme"), None, false), &p),
            None,
            "not enabled"
        );
        assert_eq!(
            webauthn::expected_origin(
                "acme.localhost",
                &PublicBase {
                    scheme: "http".into(),
                    base_domain: "localhost".into(),
                    port: Some(8080)
                }
            ),
            "http://acme.localhost:8080"
        );
    }

    /// The ceremony of a login is taken once: a second answer to the same challenge finds
    /// nothing.
    #[tokio::test]
    async fn a_ceremony_is_single_use_and_bound_to_its_login() {
        let store = MemoryStore::new();
        let ceremony = Ceremony {
            email: None,
            state: "s".into(),
        };
        json::put(&store, &ceremony_key("login-1"), &ceremony, webauthn::CEREMONY_TTL)
            .await
            .unwrap();
        assert!(
            json::take::<Ceremony>(&store, &ceremony_key("login-2"))
                .await
                .unwrap()
                .is_none(),
            "another login's key"
        );
        assert!(
            json::take::<Ceremony>(&store, &ceremony_key("login-1"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            json::take::<Ceremony>(&store, &ceremony_key("login-1"))
                .await
                .unwrap()
                .is_none(),
            "used up"
        );
        assert!(
            !ceremony_key("login-1").contains("login-1"),
            "the bearer login ID is not in the key"
        );
        let _ = store.ping().await;
    }
}
