//! The passkey offer after an e-mail login, and the registration it leads to.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kube::ResourceExt;
use kube::api::Patch;
use serde::{Deserialize, Serialize};

use super::patches::{append_patch, passkey_manager, patch_refused};
use super::webauthn::{self, Party, PasskeyError};
use super::{OFFER_TTL, credential};
use crate::crd::{Organization, PasskeyCredential, user_name};
use crate::flow::Flows;
use crate::flow::login::{LoginError, LoginRequest};
use crate::flow::users::read;
use crate::oauth::grant::{self, Session};
use crate::store::{hashed, json};

fn offer_key(offer_id: &str) -> String {
    format!("passkey:offer:{}", hashed(offer_id))
}

fn registration_key(offer_id: &str) -> String {
    format!("passkey:reg:{}", hashed(offer_id))
}

/// A passkey offer after an e-mail login, as stored.
#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    /// The login whose code is issued when the offer ends.
    pub login: LoginRequest,
    /// The session the login created (the offer works only with its cookie).
    pub session_id: String,
    /// The user's address.
    pub email: String,
}

impl Flows {
    /// Stores the offer of an e-mail login's `session`; the page to send the browser to.
    pub(crate) async fn offer_passkey(&self, login: &LoginRequest, session: &Session) -> Result<String, LoginError> {
        let offer_id = grant::random_token();
        let offer = Offer {
            login: login.clone(),
            session_id: session.id.clone(),
            email: session.email.clone(),
        };
        json::put(self.store.as_ref(), &offer_key(&offer_id), &offer, OFFER_TTL).await?;
        Ok(format!("/login/passkey/offer?o={offer_id}"))
    }

    /// The offer `offer_id`, when `session_cookie` is the session its login created.
    pub async fn offered(&self, offer_id: &str, session_cookie: Option<&str>) -> Result<Offer, LoginError> {
        let offer: Offer = json::get(self.store.as_ref(), &offer_key(offer_id))
            .await?
            .ok_or(LoginError::Expired)?;
        bound(&offer, session_cookie)?;
        Ok(offer)
    }

    /// Ends offer `offer_id` without a passkey: the client's redirect with the code.
    pub async fn skip_offer(&self, offer_id: &str, session_cookie: Option<&str>) -> Result<String, LoginError> {
        let offer = self.take_offer(offer_id, session_cookie).await?;
        self.finish_offer(&offer).await
    }

    async fn take_offer(&self, offer_id: &str, session_cookie: Option<&str>) -> Result<Offer, LoginError> {
        let store = self.store.as_ref();
        let offer: Offer = json::get(store, &offer_key(offer_id))
            .await?
            .ok_or(LoginError::Expired)?;
        bound(&offer, session_cookie)?;
        json::take::<Offer>(store, &offer_key(offer_id))
            .await?
            .ok_or(LoginError::Used)
    }

    async fn finish_offer(&self, offer: &Offer) -> Result<String, LoginError> {
        let org = self.org_by_key(&offer.login.request.org).ok_or(LoginError::OrgGone)?;
        let idle = org.max_inactivity();
        let session = self
            .user_session(&offer.session_id, idle, crate::oauth::now())
            .await?
            .ok_or(LoginError::Expired)?;
        self.finish(&offer.login, &session).await
    }

    /// The creation options of a passkey for the user of offer `offer_id` (their handle is
    /// made now if they have none); the ceremony is kept for [`Flows::register_passkey`].
    pub async fn registration_options(
        &self,
        offer_id: &str,
        session_cookie: Option<&str>,
    ) -> Result<serde_json::Value, LoginError> {
        let offer = self.offered(offer_id, session_cookie).await?;
        let org = self.org_by_key(&offer.login.request.org).ok_or(LoginError::OrgGone)?;
        let (rp_id, origin) = self.party_of(&org).ok_or(PasskeyError::NotOffered)?;
        let api = self.users_api(&org);
        let (user, _) = read(&api, &user_name(&org.name_any(), &offer.email)).await?;
        let user = user.ok_or(LoginError::Blocked)?;
        let existing = user.spec.passkeys.clone().unwrap_or_default();
        let handle =
            credential::user_handle_from_hex(&existing.user_handle).unwrap_or_else(credential::new_user_handle);
        let party = Party {
            rp_id: &rp_id,
            origin: &origin,
            top_origins: &org.spec.allowed_origins,
        };
        let started = webauthn::start_registration(&party, handle, &offer.email, &existing.credentials)?;
        let record = Registering {
            handle: credential::hex(&handle),
            state: URL_SAFE_NO_PAD.encode(&started.state),
        };
        json::put(
            self.store.as_ref(),
            &registration_key(offer_id),
            &record,
            webauthn::CEREMONY_TTL,
        )
        .await?;
        Ok(started.options)
    }

    /// Verifies the browser's new passkey (`response`, its `toJSON()`) for offer `offer_id`,
    /// records it in the User's spec, and ends the offer: the client's redirect with the code.
    pub async fn register_passkey(
        &self,
        offer_id: &str,
        session_cookie: Option<&str>,
        response: &[u8],
    ) -> Result<String, LoginError> {
        let offer = self.offered(offer_id, session_cookie).await?;
        let org = self.org_by_key(&offer.login.request.org).ok_or(LoginError::OrgGone)?;
        let (rp_id, origin) = self.party_of(&org).ok_or(PasskeyError::NotOffered)?;
        let record: Registering = json::take(self.store.as_ref(), &registration_key(offer_id))
            .await?
            .ok_or(PasskeyError::NoCeremony)?;
        let state = URL_SAFE_NO_PAD
            .decode(&record.state)
            .map_err(|_| PasskeyError::NoCeremony)?;
        let party = Party {
            rp_id: &rp_id,
            origin: &origin,
            top_origins: &org.spec.allowed_origins,
        };
        let now = crate::oauth::now();
        let name = format!("Passkey of {}", crate::oauth::profile::day(now));
        let credential = webauthn::finish_registration(&party, &state, response, &name, now)?;
        self.record_passkey(&org, &offer.email, &record.handle, credential)
            .await?;
        tracing::info!(org = %org.name_any(), "passkey registered");
        let offer = self.take_offer(offer_id, session_cookie).await?;
        self.finish_offer(&offer).await
    }

    /// Appends `credential` to the User of `email` (with the handle and its label), refusing a
    /// user who reached the limit meanwhile. One JSON patch that tests the list's length, so a
    /// concurrent edit (a revocation) is never overwritten.
    async fn record_passkey(
        &self,
        org: &Organization,
        email: &str,
        handle: &str,
        credential: PasskeyCredential,
    ) -> Result<(), LoginError> {
        let api = self.users_api(org);
        let name = user_name(&org.name_any(), email);
        let (user, _) = read(&api, &name).await?;
        let user = user.ok_or(LoginError::Blocked)?;
        if user.spec.blocked || user.metadata.deletion_timestamp.is_some() {
            return Err(LoginError::Blocked);
        }
        let patch = append_patch(&user, handle, credential)?;
        api.patch(&name, &passkey_manager(), &Patch::Json::<()>(patch))
            .await
            .map_err(patch_refused)?;
        Ok(())
    }
}

/// A registration under way, as stored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registering {
    /// The user handle (hex) the options carried.
    handle: String,
    /// The crate's server state, base64url.
    state: String,
}

/// Refuses an offer used without the session cookie of its login.
fn bound(offer: &Offer, session_cookie: Option<&str>) -> Result<(), LoginError> {
    match session_cookie {
        Some(c) if crate::oauth::ct_eq(c.as_bytes(), offer.session_id.as_bytes()) => Ok(()),
        _ => Err(LoginError::Expired),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_needs_the_session_cookie_of_its_login() {
        let login: LoginRequest = serde_json::from_value(serde_json::json!({
            "org": {"namespace": "ns", "name": "acme", "uid": "u"}, "clientId": "cid",
            "protocol": "OAuth", "redirectUri": "https://app.example.com/cb",
            "csrfHash": "h", "embed": false, "translations": {}
        }))
        .unwrap();
        let offer = Offer {
            login,
            session_id: "session-1".into(),
            email: "ada@example.com".into(),
        };
        assert!(bound(&offer, Some("session-1")).is_ok());
        assert!(bound(&offer, Some("session-2")).is_err());
        assert!(bound(&offer, None).is_err());
    }
}
