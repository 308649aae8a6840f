//! `POST /api/v1/authenticate_direct` (the official client's `authenticateDirect`): an app's
//! server, authenticated with its client secret, starts an e-mail login for an address it
//! collected in its own form. The request is validated as a CentralAuth `/login` would be
//! (redirect URI, `state`, `translations`), stored as a pending login, and a code is e-mailed
//! through the existing code flow ([`Flows::send_code_within`]) — same domain rule before
//! sending, same invite and block rules when the code is entered ([`Flows::complete`]).
//!
//! The answer names the attempt (`loginAttemptId`, the pending login's ID) and carries the
//! `token` that lets the user's browser continue it: `GET /login/direct?loginAttemptId=…&token=…`
//! shows the code form (the token becomes the login's CSRF cookie), and the right code ends in
//! the usual redirect to `redirect_uri` with `code` and `state`, which the app redeems at
//! `/api/v1/verify`. `sentence` is the text to show the user; `allowedDate` is when a new code
//! may be asked for this address.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use super::Flows;
use super::authorize::{Arrival, Query, Refusal};
use super::email::SendOutcome;
use super::error::FlowError;
use super::login::{Browser, LOGIN_TTL, LoginError, Pending, login_key};
use crate::oauth::error::{CaCode, CaError};
use crate::oauth::grant::{self, Protocol};
use crate::oauth::throttle::Limits;
use crate::oauth::tokens;
use crate::store::{hashed, json};

/// An `authenticate_direct` call.
pub struct DirectRequest<'a> {
    /// The request's host.
    pub host: Option<&'a str>,
    /// Basic client ID.
    pub client_id: &'a str,
    /// Basic client secret.
    pub secret: &'a str,
    /// The caller's address (the app's server).
    pub addr: IpAddr,
    /// The address to log in.
    pub email: &'a str,
    /// The app's `state`, returned with the code.
    pub state: Option<&'a str>,
    /// Where the code goes (the CentralAuth web rules of `/login`).
    pub redirect_uri: &'a str,
    /// The official client's `Translations` for the pages of this login.
    pub translations: BTreeMap<String, String>,
}

/// The answer of `authenticate_direct`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct DirectAttempt {
    /// The login attempt (the pending login's ID).
    pub login_attempt_id: String,
    /// What lets the user's browser continue the attempt at `/login/direct` (a bearer value:
    /// the app hands it to that browser only).
    pub token: String,
    /// The text to show the user.
    pub sentence: String,
    /// When a new code may be asked for this address (RFC 3339).
    pub allowed_date: String,
}

struct Fields<'a>(Vec<(&'a str, &'a str)>);

impl Query for Fields<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

fn error(code: CaCode, message: impl Into<std::borrow::Cow<'static, str>>) -> CaError {
    CaError {
        code,
        message: message.into(),
    }
}

impl Flows {
    /// `POST /api/v1/authenticate_direct` (see the module documentation).
    pub async fn authenticate_direct(&self, r: DirectRequest<'_>) -> Result<DirectAttempt, CaError> {
        let org = self.api_org(r.host, Some(r.client_id))?;
        self.authenticate_client(org.as_deref(), r.client_id, r.secret, r.addr)
            .await
            .map_err(|e| CaError::from(FlowError::from(e)))?;
        let org = org.ok_or_else(|| error(CaCode::NoPermission, "client authentication failed"))?;
        if org.spec.login_methods.email.is_none() {
            return Err(error(
                CaCode::NoPermission,
                "this organization does not enable e-mail login (loginMethods.email)",
            ));
        }
        let cid = org.client_id().unwrap_or_default();
        let mut q = vec![
            ("client_id", cid),
            ("response_type", "code"),
            ("redirect_uri", r.redirect_uri),
        ];
        q.extend(r.state.map(|s| ("state", s)));
        let at = Arrival {
            host: r.host,
            path_client_id: None,
            addr: r.addr,
        };
        let (mut login, _) = self
            .authorize(Protocol::CentralAuth, at, &Fields(q))
            .map_err(|e| match e {
                Refusal::HostNotServed => error(CaCode::NoPermission, "this host is not served here"),
                Refusal::Page(m) => error(CaCode::CallbackUrlInvalid, m),
                Refusal::Redirect(r) => error(CaCode::MissingFields, r.description),
            })?;
        login.translations = r.translations;
        login.email = Some(crate::crd::normalize_email(r.email));
        let (login_id, csrf) = (grant::random_token(), grant::random_token());
        login.csrf_hash = hashed(&csrf);
        json::put(self.store.as_ref(), &login_key(&login_id), &login, LOGIN_TTL)
            .await
            .map_err(|_| error(CaCode::GenericError, "the session store is unavailable; retry later"))?;
        let pending = Pending {
            login_id,
            csrf,
            login,
            org,
            addr: None,
            user_agent: None,
        };
        self.direct_send(pending, r.addr, r.email).await
    }

    /// The sentence to show for a sent e-mail: the code's, or the link's token or the
    /// challenge's number to compare with the e-mail.
    async fn direct_sentence(&self, p: &Pending, email: &str) -> String {
        let attempt = crate::oauth::maillink::pending(self.store.as_ref(), &p.login_id)
            .await
            .ok()
            .flatten();
        let intro = p.login.translations.get("emailChallengeText");
        let link_minutes = self.settings.email_codes.link_ttl.as_secs().div_ceil(60);
        match attempt {
            Some(a) if a.kind == crate::oauth::maillink::Kind::Challenge => format!(
                "{} {email}. Click the number {} in it. It works for {link_minutes} minutes.",
                intro.map_or("We sent an e-mail to", String::as_str),
                a.shown
            ),
            Some(a) => format!(
                "{} {email}. Open its link if it shows {}. It works for {link_minutes} minutes.",
                intro.map_or("We sent an e-mail to", String::as_str),
                a.shown
            ),
            None => format!(
                "{} {email}. It works for {} minutes.",
                intro.map_or("We sent a 5-digit code to", String::as_str),
                self.settings.email_codes.ttl.as_secs().div_ceil(60)
            ),
        }
    }

    /// Sends the code of a direct attempt. The caller is the organization's own server (it
    /// holds the secret): every user's code comes from its address, so only the limits per
    /// e-mail address (cool-down, codes per hour) apply, not the one per client address.
    async fn direct_send(&self, p: Pending, addr: IpAddr, email: &str) -> Result<DirectAttempt, CaError> {
        let policy = &self.settings.email_codes;
        let limits = Limits {
            per_address: u64::MAX,
            ..policy.sends
        };
        let from = Browser {
            addr,
            device_cookie: None,
        };
        let outcome = self
            .send_code_within(&p, from, email, limits)
            .await
            .map_err(|e| match e {
                LoginError::DomainNotAllowed(_) => error(CaCode::NoPermission, e.to_string()),
                e => error(CaCode::GenericError, e.to_string()),
            })?;
        match outcome {
            SendOutcome::Sent { email } => {
                let now = crate::oauth::now();
                let sentence = self.direct_sentence(&p, &email).await;
                Ok(DirectAttempt {
                    login_attempt_id: p.login_id,
                    token: p.csrf,
                    sentence,
                    allowed_date: tokens::rfc3339(now + policy.resend_after.as_secs() as i64),
                })
            }
            SendOutcome::InvalidAddress => Err(error(CaCode::MissingFields, "email is not a valid e-mail address")),
            SendOutcome::Throttled { .. } => Err(error(
                CaCode::TooManyRequests,
                "too many codes were asked for this address; wait, then try again",
            )),
            SendOutcome::SendFailed { .. } => Err(error(
                CaCode::GenericError,
                "the e-mail with the code could not be sent; retry in a moment",
            )),
        }
    }
}
