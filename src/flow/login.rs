//! The login steps after the form was shown: every post of a login ([`Flows::pending`]) names
//! the stored request by its login ID and proves the browser with the CSRF token (the hidden
//! field equal to the `ca_csrf` cookie and to the hash stored with the request: login CSRF
//! needs the victim's browser to carry the attacker's cookie, which it cannot). Failures are
//! counted per account and address of the organization — or per device cookie, for a browser
//! that logged the account in before ([`Attempter`]). A proven user ends in
//! [`Flows::complete`]: the pending login is used up, the session created, a device token
//! signed, and the code issued ([`Flows::finish`]) for a redirect with `code`, `state`
//! (byte-exact), `iss` (RFC 9207) and, after `affirm=1`, `affirm=1`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Flows;
use super::directory::org_key;
use crate::crd::{HijackProtection, Organization};
use crate::oauth::grant::{self, AuthRequest, CodeGrant, OrgKey, Session};
use crate::oauth::profile::UserProfile;
use crate::oauth::throttle::{Counters, Limits, Tally};
use crate::oauth::{desktop, device, hijack, redirect};
use crate::runtime::metrics::{LoginMethod, LoginOutcome};
use crate::store::{StoreError, hashed, json};

/// How long a rendered login form stays usable (renewed when a code e-mail is sent).
pub const LOGIN_TTL: Duration = Duration::from_secs(15 * 60);

/// How long a session may idle when its organization is gone.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The store key of a pending login: the SHA-256 of its ID (the ID is a bearer value that
/// the browser holds; it is also the key of the login's e-mail code, see [`crate::oauth::otp`]).
pub fn login_key(login_id: &str) -> String {
    format!("login:{}", hashed(login_id))
}

/// A validated authorization request waiting for the user: what its code will carry, and what
/// the login pages need.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    /// What the code will carry (organization, client, protocol, redirect URI, PKCE, app,
    /// scope, nonce).
    #[serde(flatten)]
    pub request: AuthRequest,
    /// `state`, as sent.
    pub state: Option<String>,
    /// Native device.
    pub device_id: Option<String>,
    /// SHA-256 of the CSRF token.
    pub csrf_hash: String,
    /// `embed=1` was asked and the organization has `allowedOrigins` that may frame the page.
    pub embed: bool,
    /// Decoded `translations`.
    pub translations: BTreeMap<String, String>,
    /// `email` hint.
    pub email: Option<String>,
    /// `error_description` to show.
    pub message: Option<String>,
    /// CentralAuth `affirm=1`: the user must log in again, and the callback says so.
    #[serde(default)]
    pub affirm: bool,
    /// The request arrived at the organization's own host (passkeys, whose relying-party ID
    /// is that host, are offered only there).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub own_host: bool,
    /// The app is a Desktop NativeApp: the code comes with a `desktop_challenge` that the app
    /// signs at the exchange ([`crate::oauth::desktop`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub desktop: bool,
}

/// Why a login step cannot go on (shown as an error page).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoginError {
    /// The session store cannot serve the request now (503).
    #[error("the session store is unavailable; retry later")]
    Unavailable,
    /// The form lacks its login ID or CSRF token.
    #[error("the login form is incomplete; start the login again")]
    Incomplete,
    /// No pending login has this ID.
    #[error("this login has expired or was already used; start the login again")]
    Expired,
    /// The pending login was used up by another post meanwhile.
    #[error("this login was already used; start the login again")]
    Used,
    /// The CSRF token is not this browser's (403; embedded logins get a framable page).
    #[error("the form's CSRF token does not match this browser; start the login again")]
    Csrf(Box<LoginRequest>),
    /// The organization was deleted meanwhile.
    #[error("the organization no longer exists")]
    OrgGone,
    /// The login method is not enabled for the organization.
    #[error("{0} login is not enabled for this organization")]
    MethodDisabled(&'static str),
    /// The form could not be read.
    #[error("{0}")]
    Form(Cow<'static, str>),
    /// The address's domain is not in the organization's `allowedEmailDomains` (403).
    #[error("addresses of {0} may not log in to this organization; use an address of an allowed domain")]
    DomainNotAllowed(String),
    /// `userCreation: InviteOnly` and no User of this address exists (403).
    #[error(
        "this organization admits invited users only, and this address has not been invited; ask an administrator to invite you"
    )]
    NotInvited,
    /// The user is blocked or being removed (403).
    #[error("this account is blocked; ask an administrator of the organization")]
    Blocked,
    /// The User object of the derived name belongs to another address (a hand-made object).
    #[error("the user directory holds a User named {0} for another address; an administrator must rename or delete it")]
    DirectoryConflict(String),
    /// The user directory (the Kubernetes API) cannot be read or written now (503).
    #[error("the user directory is unavailable; retry later")]
    DirectoryUnavailable,
    /// A passkey step failed.
    #[error(transparent)]
    Passkey(#[from] crate::flow::passkey::webauthn::PasskeyError),
    /// The form names a provider the organization does not have.
    #[error("this organization has no login provider of that name; start the login again")]
    ProviderUnknown,
    /// The provider cannot be reached or answered garbage (502); the log says what.
    #[error("{0} cannot be reached right now; try again in a moment, or log in another way")]
    ProviderUnavailable(String),
    /// The provider's answer did not verify (wrong token, audience, nonce…; the log says what).
    #[error("the answer of {0} could not be verified, so you are not logged in; start the login again")]
    ProviderRefused(String),
    /// The user declined, or the provider refused the login, at the provider.
    #[error("{0} did not confirm the login; start the login again to retry")]
    ProviderDenied(String),
    /// The provider does not assert a verified address, and no user is linked to this
    /// provider account yet (403).
    #[error(
        "{0} did not confirm that your e-mail address is verified, so it cannot be linked to an account here; verify the address at {0}, or log in another way"
    )]
    ProviderEmailUnverified(String),
    /// The user with this address is already linked to another account of the provider (409).
    #[error(
        "the account with this e-mail address is already linked to another {0} account; log in with that one, or another way"
    )]
    ProviderAccountConflict(String),
}

impl LoginError {
    /// The refusal of `email` because its domain is not allowed (names the domain only).
    pub fn domain_refused(email: &str) -> LoginError {
        let domain = email.rsplit_once('@').map_or(email, |(_, d)| d);
        LoginError::DomainNotAllowed(domain.to_string())
    }
}

impl From<StoreError> for LoginError {
    fn from(_: StoreError) -> LoginError {
        LoginError::Unavailable
    }
}

/// What [`Flows::admit`] (`flow::users`) found: the user may log in.
pub struct Admitted {
    /// The session's copy of the user.
    pub user: UserProfile,
    /// Unix second taken just before the directory was read: the session's `created_at`.
    pub read_at: i64,
    /// How many passkeys the user has (a registration is offered below the limit).
    pub passkeys: usize,
}

/// The browser making a step: its address and its device cookie of the organization.
pub struct Browser<'a> {
    /// The client address.
    pub addr: IpAddr,
    /// The device token of the organization's device cookie, if sent.
    pub device_cookie: Option<&'a str>,
}

/// A pending login whose login ID and CSRF token check out.
pub struct Pending {
    /// The login ID (hidden field `login`).
    pub login_id: String,
    /// The CSRF token (hidden field `csrf`, equal to the `ca_csrf` cookie).
    pub csrf: String,
    /// The pending authorization request.
    pub login: LoginRequest,
    /// Its organization.
    pub org: Arc<Organization>,
    /// The client address of the post (what `hijackProtection.ip` binds the session to).
    pub addr: Option<IpAddr>,
    /// The post's `User-Agent` (what `hijackProtection.userAgent` binds the session to).
    pub user_agent: Option<String>,
}

/// The result of a completed login: where to send the browser, and the cookie values.
pub struct Completed {
    /// The client's redirect URI with `code`, `state`, `iss` (and `affirm`).
    pub location: String,
    /// The new session's ID (the session cookie).
    pub session_id: String,
    /// The session cookie's `Max-Age`, seconds.
    pub max_age: i64,
    /// The signed device token (the device cookie), unless no signing key is loaded.
    pub device_token: Option<String>,
    /// Whether the login runs embedded (cookie attributes).
    pub embed: bool,
    /// The organization (the device cookie's name).
    pub org: OrgKey,
}

/// What the password step decided.
pub enum PasswordOutcome {
    /// Too many failures from this attempter: wait.
    Throttled,
    /// Wrong e-mail address or password (counted).
    Wrong,
    /// Logged in.
    Completed(Completed),
}

impl Flows {
    /// The pending login `login_id`, when `csrf` is the one stored with it and the browser's
    /// `csrf_cookie`.
    pub async fn pending(&self, login_id: &str, csrf: &str, csrf_cookie: Option<&str>) -> Result<Pending, LoginError> {
        let login: LoginRequest = json::get(self.store.as_ref(), &login_key(login_id))
            .await?
            .ok_or(LoginError::Expired)?;
        let cookie_ok = csrf_cookie.is_some_and(|c| crate::oauth::ct_eq(c.as_bytes(), csrf.as_bytes()));
        if !cookie_ok || !crate::oauth::ct_eq(hashed(csrf).as_bytes(), login.csrf_hash.as_bytes()) {
            return Err(LoginError::Csrf(Box::new(login)));
        }
        let org = self.org_by_key(&login.request.org).ok_or(LoginError::OrgGone)?;
        Ok(Pending {
            login_id: login_id.to_string(),
            csrf: csrf.to_string(),
            login,
            org,
            addr: None,
            user_agent: None,
        })
    }

    /// The password step of `p` for `email` from `from`.
    pub async fn password_login(
        &self,
        p: &Pending,
        from: Browser<'_>,
        email: String,
        password: &str,
    ) -> Result<PasswordOutcome, LoginError> {
        if p.org.spec.login_methods.passwords.is_none() {
            return Err(LoginError::MethodDisabled("password"));
        }
        if !p.org.email_domain_allowed(&email) {
            return Err(LoginError::domain_refused(email.trim()));
        }
        let attempter = Attempter::of(self, p, &email, from.addr, from.device_cookie);
        let store = self.store.as_ref();
        let counters = attempter.counters(crate::oauth::throttle::LOGIN, self.settings.login_limits);
        if counters.over(store).await.unwrap_or(true) {
            return Ok(PasswordOutcome::Throttled);
        }
        if !self.check_password(&p.org, &email, password).await {
            self.metrics.login(LoginMethod::password, LoginOutcome::failure);
            let _ = counters.record(store).await;
            return Ok(PasswordOutcome::Wrong);
        }
        Ok(PasswordOutcome::Completed(
            self.complete(p, email, LoginMethod::password).await?,
        ))
    }

    /// Whether `password` is the one of `email` in the organization's password Secret.
    async fn check_password(&self, org: &Organization, email: &str, password: &str) -> bool {
        let hash = org.spec.login_methods.passwords.as_ref().and_then(|pw| {
            let ns = org.metadata.namespace.as_deref()?;
            let data = self.secrets.value(ns, &pw.secret_name, &pw.key)?;
            String::from_utf8_lossy(&data)
                .lines()
                .filter_map(|l| l.trim().split_once(':'))
                .find(|(e, _)| !e.starts_with('#') && e.trim().eq_ignore_ascii_case(email))
                .map(|(_, h)| h.trim().to_string())
        });
        let hashes = hash.into_iter().collect();
        !email.is_empty() && self.verifier.verify_any(hashes, password).await.is_some()
    }

    /// The user proved to be `email` with `method`: admits them through the user directory
    /// ([`Flows::admit`]), uses up the pending login, creates the session and the device token,
    /// and issues the code.
    pub async fn complete(&self, p: &Pending, email: String, method: LoginMethod) -> Result<Completed, LoginError> {
        self.complete_at(p, &login_key(&p.login_id), email, method).await
    }

    /// [`Flows::complete`] of the pending login stored at `key` (an e-mail link opened on
    /// another device knows the login's key, not its ID).
    pub async fn complete_at(
        &self,
        p: &Pending,
        key: &str,
        email: String,
        method: LoginMethod,
    ) -> Result<Completed, LoginError> {
        let connection = match method {
            LoginMethod::password => crate::crd::user::PASSWORD_CONNECTION,
            LoginMethod::passkey => crate::crd::user::PASSKEY_CONNECTION,
            // A provider login is admitted with its own connection (`flow::providers`).
            LoginMethod::email | LoginMethod::provider => crate::crd::user::EMAIL_CONNECTION,
        };
        let admitted = self.admit(&p.org, &email, connection).await.inspect_err(|e| {
            if !matches!(e, LoginError::DirectoryUnavailable) {
                self.metrics.login(method, LoginOutcome::failure);
            }
        })?;
        self.complete_admitted(p, key, admitted, method).await
    }

    /// The rest of [`Flows::complete_at`] once the user directory admitted the user: uses up
    /// the pending login at `key`, creates the session and the device token, and issues the
    /// code — or, after an e-mail login where passkeys are offered, sends the browser to the
    /// passkey offer first.
    pub async fn complete_admitted(
        &self,
        p: &Pending,
        key: &str,
        admitted: Admitted,
        method: LoginMethod,
    ) -> Result<Completed, LoginError> {
        let offer = method == LoginMethod::email && self.offers_registration(&p.org, &p.login, admitted.passkeys);
        let email = admitted.user.email.clone();
        let store = self.store.as_ref();
        let login = json::take::<LoginRequest>(store, key).await?.ok_or(LoginError::Used)?;
        self.metrics.login(method, LoginOutcome::success);
        let now = crate::oauth::now();
        let max_age = p.org.max_session().as_secs() as i64;
        let session = Session {
            id: grant::random_token(),
            org: login.request.org.clone(),
            email,
            // The directory read, not now: a block recorded since then ends this session.
            created_at: admitted.read_at,
            expires_at: now + max_age,
            app_id: login.request.app_id.clone(),
            device_id: login.device_id.clone(),
            affirmed_at: login.affirm.then_some(now),
            user: Some(admitted.user),
            binding: hijack::bind(
                HijackProtection::aspects(p.org.spec.hijack_protection.as_ref()),
                hijack::Shown {
                    addr: p.addr,
                    user_agent: p.user_agent.as_deref(),
                    device_id: None,
                },
            ),
        };
        grant::create_session(store, &session, p.org.max_inactivity()).await?;
        let claims = device::claims(
            &self.issuer(&p.org),
            &login.request.org,
            &session.email,
            &grant::random_token(),
            now,
        );
        let device_token = self.keys.get().sign(&claims, device::TYP, now).ok();
        let location = match offer {
            true => self.offer_passkey(&login, &session).await?,
            false => self.finish(&login, &session).await?,
        };
        Ok(Completed {
            location,
            session_id: session.id,
            max_age,
            device_token,
            embed: login.embed,
            org: login.request.org,
        })
    }

    /// Issues the code of `session` for `login`; the URL to redirect to (with `affirm=1` after
    /// an affirmation, so the CentralAuth client compares the affirmed user with the one it had).
    pub async fn finish(&self, login: &LoginRequest, session: &Session) -> Result<String, LoginError> {
        let org = self.org_by_key(&login.request.org).ok_or(LoginError::OrgGone)?;
        let now = crate::oauth::now();
        let challenge = login.desktop.then(grant::random_token);
        let code_grant = CodeGrant {
            request: login.request.clone(),
            session_id: session.id.clone(),
            email: session.email.clone(),
            auth_time: session.created_at,
            issued_at: now,
            family_id: grant::random_token(),
            jti: grant::random_token(),
            challenge_hash: challenge.as_deref().map(hashed),
        };
        let code = grant::issue_code(self.store.as_ref(), &code_grant).await?;
        let issuer = self.issuer(&org);
        let mut params = vec![("code", code.as_str())];
        if let Some(c) = &challenge {
            params.push((desktop::CHALLENGE_PARAM, c));
        }
        if let Some(s) = &login.state {
            params.push(("state", s));
        }
        params.push(("iss", &issuer));
        if login.affirm {
            params.push(("affirm", "1"));
        }
        let request = &login.request;
        tracing::info!(org = %request.org.name, protocol = ?request.protocol, "login succeeded; code issued");
        Ok(redirect::with_params(&request.redirect_uri, &params))
    }
}

/// Who makes a login step for an account: anyone from an address, or the browser holding
/// the account's device cookie ([`crate::oauth::device`]). Says which failure counters count
/// the step.
pub struct Attempter {
    tenant: String,
    email: String,
    addr: IpAddr,
    /// The device ID of the browser's device cookie, when it names this account.
    pub device: Option<String>,
}

impl Attempter {
    /// The attempter of a step of `p` for `email` from `addr`, with the browser's device
    /// cookie of the organization (named [`device::cookie_name`]), if any.
    pub fn of(flows: &Flows, p: &Pending, email: &str, addr: IpAddr, device_cookie: Option<&str>) -> Attempter {
        Attempter {
            tenant: p.login.request.org.uid.clone(),
            email: email.to_string(),
            addr,
            device: device_cookie.and_then(|token| flows.trusted_device(&p.org, token, email)),
        }
    }

    /// The counters of `tally` this attempter's steps are counted in.
    pub fn counters(&self, tally: Tally, limits: Limits) -> Counters {
        match &self.device {
            Some(d) => tally.device(limits, &self.tenant, d),
            None => tally.untrusted(limits, &self.tenant, &self.email, self.addr),
        }
    }

    /// The cool-down key of code e-mails this attempter asks for.
    pub fn cooldown_key(&self) -> String {
        crate::oauth::otp::cooldown_key(&self.tenant, &self.email, self.device.as_deref())
    }
}

impl Flows {
    /// The device ID of device token `token` for organization `org`, when it is valid and
    /// names `email`.
    fn trusted_device(&self, org: &Organization, token: &str, email: &str) -> Option<String> {
        let key = org_key(org);
        let claims = self
            .keys
            .get()
            .verify(token, Some(device::TYP), crate::oauth::now())
            .ok()?;
        device::device_of(&claims, &self.issuer(org), &key, email)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_login_request_is_one_flat_object_as_before() {
        // As a replica stored it before the request was a struct of its own (no `affirm` yet).
        let older = serde_json::json!({
            "org": {"namespace": "ns", "name": "acme", "uid": "u"}, "clientId": "cid",
            "protocol": "OAuth", "redirectUri": "https://app.example.com/cb", "state": "s",
            "codeChallenge": "c", "appId": null, "deviceId": null, "scope": "openid", "nonce": "n",
            "csrfHash": "h", "embed": false, "translations": {}, "email": null, "message": null
        });
        let login: LoginRequest = serde_json::from_value(older.clone()).unwrap();
        assert_eq!(login.request.scope.as_deref(), Some("openid"));
        assert!(!login.affirm);
        let mut stored = serde_json::to_value(&login).unwrap();
        assert_eq!(stored.as_object_mut().unwrap().remove("affirm"), Some(false.into()));
        assert_eq!(stored, older);
    }
}
