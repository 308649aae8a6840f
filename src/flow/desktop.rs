//! The Desktop app's check at the code exchange, shared by `/oauth2/token` and
//! `/api/v1/verify`: a code that came with a `desktop_challenge` is exchanged only with a
//! client assertion over it, signed with the key of the app's pinned certificate
//! ([`crate::oauth::desktop`]); any other code is exchanged without one.

use super::Flows;
use super::error::{FlowError, FlowResult};
use crate::crd::{Organization, Platform};
use crate::oauth::desktop::{self, ASSERTION_TYPE, AssertionError, Expected};
use crate::oauth::grant::CodeGrant;

/// What the exchange request presented: `client_assertion_type` and `client_assertion`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientAssertion<'a> {
    /// `client_assertion_type`.
    pub assertion_type: Option<&'a str>,
    /// `client_assertion`.
    pub assertion: Option<&'a str>,
}

impl ClientAssertion<'_> {
    /// Whether either parameter was sent.
    pub fn sent(&self) -> bool {
        self.assertion_type.is_some() || self.assertion.is_some()
    }
}

impl Flows {
    /// Checks the client assertion of redeemed code `g` of `org`, exchanged at `endpoint` (its
    /// public URL, an accepted `aud`).
    pub(crate) fn check_desktop(
        &self,
        org: &Organization,
        g: &CodeGrant,
        presented: ClientAssertion<'_>,
        endpoint: &str,
    ) -> FlowResult<()> {
        let refuse = |e: AssertionError| Err(FlowError::ClientAssertion(e));
        let Some(challenge_hash) = g.challenge_hash.as_deref() else {
            return match presented.sent() {
                true => refuse(AssertionError::NotDesktop),
                false => Ok(()),
            };
        };
        let Some(assertion) = presented.assertion else {
            return refuse(AssertionError::Missing);
        };
        if presented.assertion_type != Some(ASSERTION_TYPE) {
            return refuse(AssertionError::WrongType);
        }
        let app_id = g.request.app_id.as_deref().unwrap_or_default();
        let apps = self.native_apps_of(org);
        let Some(thumbprint) = apps
            .iter()
            .filter(|a| a.spec.platform == Platform::Desktop)
            .find(|a| a.status.as_ref().and_then(|s| s.app_id.as_deref()) == Some(app_id))
            .and_then(|a| a.spec.certificate_thumbprint.as_deref())
        else {
            return refuse(AssertionError::NotDesktop);
        };
        let issuer = self.issuer(org);
        let expected = Expected {
            app_id,
            thumbprint,
            issuer: &issuer,
            endpoint,
            challenge_hash,
            now: crate::oauth::now(),
        };
        desktop::verify(assertion, &expected).map_err(FlowError::ClientAssertion)
    }
}
