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

/// The assertion and the challenge hash a code needs: `None` for a code issued without a
/// challenge (not a Desktop app's), which must come without an assertion.
fn required<'a>(g: &'a CodeGrant, p: ClientAssertion<'a>) -> Result<Option<(&'a str, &'a str)>, AssertionError> {
    let Some(challenge_hash) = g.challenge_hash.as_deref() else {
        return match p.sent() {
            true => Err(AssertionError::NotDesktop),
            false => Ok(None),
        };
    };
    let assertion = p.assertion.ok_or(AssertionError::Missing)?;
    if p.assertion_type != Some(ASSERTION_TYPE) {
        return Err(AssertionError::WrongType);
    }
    Ok(Some((assertion, challenge_hash)))
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
        let Some((assertion, challenge_hash)) = required(g, presented).map_err(FlowError::ClientAssertion)? else {
            return Ok(());
        };
        let app_id = g.request.app_id.as_deref().unwrap_or_default();
        let apps = self.native_apps_of(org);
        let Some(thumbprint) = apps
            .iter()
            .filter(|a| a.spec.platform == Platform::Desktop)
            .find(|a| a.status.as_ref().and_then(|s| s.app_id.as_deref()) == Some(app_id))
            .and_then(|a| a.spec.certificate_thumbprint.as_deref())
        else {
            return Err(FlowError::ClientAssertion(AssertionError::NotDesktop));
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
        let verdict = desktop::verify(assertion, &expected);
        match &verdict {
            Ok(()) => tracing::info!(org = %g.request.org.name, app_id, "desktop client assertion verified"),
            Err(e) => {
                tracing::info!(org = %g.request.org.name, app_id, reason = %e, "desktop client assertion refused")
            }
        }
        verdict.map_err(FlowError::ClientAssertion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::grant::{AuthRequest, OrgKey, Protocol};

    fn code(challenge_hash: Option<&str>) -> CodeGrant {
        let mut g = CodeGrant::for_tests(AuthRequest {
            org: OrgKey {
                namespace: "ns".into(),
                name: "acme".into(),
                uid: "u".into(),
            },
            client_id: "cid".into(),
            protocol: Protocol::OAuth,
            redirect_uri: "http://127.0.0.1:5000/cb".into(),
            code_challenge: None,
            app_id: Some("com.acme.desk".into()),
            scope: None,
            nonce: None,
        });
        g.challenge_hash = challenge_hash.map(String::from);
        g
    }

    fn sent<'a>(assertion_type: Option<&'a str>, assertion: Option<&'a str>) -> ClientAssertion<'a> {
        ClientAssertion {
            assertion_type,
            assertion,
        }
    }

    #[test]
    fn a_code_with_a_challenge_needs_a_jwt_bearer_assertion_and_others_none() {
        let (desk, other) = (code(Some("h")), code(None));
        let typ = Some(ASSERTION_TYPE);
        assert_eq!(required(&desk, sent(typ, Some("jws"))), Ok(Some(("jws", "h"))));
        assert_eq!(required(&desk, sent(None, None)), Err(AssertionError::Missing));
        assert_eq!(required(&desk, sent(typ, None)), Err(AssertionError::Missing));
        assert_eq!(
            required(
                &desk,
                sent(
                    Some("urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
                    Some("x")
                )
            ),
            Err(AssertionError::WrongType)
        );
        assert_eq!(required(&desk, sent(None, Some("jws"))), Err(AssertionError::WrongType));
        assert_eq!(required(&other, sent(None, None)), Ok(None));
        assert_eq!(
            required(&other, sent(typ, Some("jws"))),
            Err(AssertionError::NotDesktop)
        );
        assert_eq!(required(&other, sent(typ, None)), Err(AssertionError::NotDesktop));
    }
}
