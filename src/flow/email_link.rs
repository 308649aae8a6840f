//! The `email` login method with `attemptType: Link | Challenge` ([`crate::oauth::maillink`]
//! keeps the attempts): the e-mail carries one-time links instead of a code.
//!
//! 1. [`Flows::send_link`] (from [`Flows::send_code`], after the same address checks and
//!    throttles): issues the attempt and e-mails its links; a failed send withdraws it.
//! 2. [`Flows::open_link`]: a link from the e-mail, opened on any device. The first link of
//!    an attempt opened uses it up: `Here` logs in on that device, `There` lets the starting
//!    device complete, a wrong challenge number burns the attempt.
//! 3. [`Flows::link_status`]: the starting device looks (reload or script) whether the login
//!    was confirmed from the e-mail, and completes it if so.
//!
//! Every completion goes through [`Flows::complete_at`]: `allowedEmailDomains` (checked when
//! sending), invite-only and blocked users ([`Flows::admit`]), the `email` connection.

use std::net::IpAddr;

use super::Flows;
use super::email::SendOutcome;
use super::login::{Completed, LOGIN_TTL, LoginError, LoginRequest, Pending, login_key};
use crate::crd::{EmailAttemptType, EmailLogin};
use crate::mail::LinkMail;
use crate::oauth::maillink::{self, Action, Attempt, Kind, Opened};
use crate::oauth::throttle::Counters;
use crate::runtime::metrics::{LoginMethod, LoginOutcome};
use crate::store::json;

/// What opening an e-mail link led to.
pub enum LinkOpened {
    /// Unknown, expired or already used.
    Gone,
    /// A wrong challenge number: the attempt no longer works.
    Burned,
    /// Logged in on this device.
    Completed(Completed),
    /// The device that started the login completes it.
    ConfirmedThere,
}

/// Where the starting device's login stands.
pub enum LinkStatus {
    /// Confirmed from the e-mail: logged in.
    Completed(Completed),
    /// Waiting for the user to open the e-mail.
    Waiting(Attempt),
    /// No attempt waits (expired, burned, used on another device, never sent).
    Gone,
}

impl Flows {
    /// Issues a link or challenge for `p` to `email` and e-mails it; counts it in `sends`
    /// once sent, withdraws it (and the cool-down `cooldown`) when the e-mail could not go.
    pub(super) async fn send_link(
        &self,
        p: &Pending,
        config: &EmailLogin,
        email: String,
        sends: &Counters,
        cooldown: &str,
    ) -> Result<SendOutcome, LoginError> {
        let store = self.store.as_ref();
        let ttl = self.settings.email_codes.link_ttl;
        let kind = match config.attempt_type {
            EmailAttemptType::Challenge => Kind::Challenge,
            _ => Kind::Link,
        };
        let issued = maillink::issue(store, &p.login_id, &email, kind, ttl).await?;
        let _ = store.touch(&login_key(&p.login_id), LOGIN_TTL).await;
        let issuer = self.issuer(&p.org);
        let origin = issuer.find("/o/").map_or(issuer.as_str(), |i| &issuer[..i]);
        let mail = LinkMail {
            to: &email,
            organization: &p.org.spec.display_name,
            kind: config.attempt_type,
            token: &issued.shown,
            links: issued
                .links
                .iter()
                .map(|(label, _, secret)| (label.clone(), format!("{origin}/login/mail?t={secret}")))
                .collect(),
            valid_for: ttl,
        };
        let credentials = self.smtp_credentials(&p.org, config);
        let sent = match credentials {
            Ok(c) => self.mailer.send_link(config, c, &mail).await,
            Err(e) => Err(e),
        };
        drop(mail);
        drop(issued);
        if let Err(e) = sent {
            tracing::warn!(org = %p.login.request.org.name, error = %e, "the login link e-mail could not be sent");
            let _ = maillink::withdraw(store, &p.login_id).await;
            let _ = store.delete(cooldown).await;
            return Ok(SendOutcome::SendFailed { email });
        }
        let _ = sends.record(store).await;
        tracing::info!(org = %p.login.request.org.name, "login link e-mail sent");
        Ok(SendOutcome::Sent { email })
    }

    /// Opens the e-mail link `secret` from a browser at `addr` with `user_agent` (see the
    /// module documentation).
    pub async fn open_link(&self, secret: &str, addr: IpAddr, user_agent: String) -> Result<LinkOpened, LoginError> {
        let store = self.store.as_ref();
        match maillink::open(store, secret).await? {
            Opened::Gone => Ok(LinkOpened::Gone),
            Opened::Burned => {
                self.metrics.login(LoginMethod::email, LoginOutcome::failure);
                Ok(LinkOpened::Burned)
            }
            Opened::There => Ok(LinkOpened::ConfirmedThere),
            Opened::Here { login_key, email } => {
                let Some(login) = json::get::<LoginRequest>(store, &login_key).await? else {
                    return Ok(LinkOpened::Gone);
                };
                let org = self.org_by_key(&login.request.org).ok_or(LoginError::OrgGone)?;
                let p = Pending {
                    login_id: String::new(),
                    csrf: String::new(),
                    login,
                    org,
                    addr: Some(addr),
                    user_agent: Some(user_agent),
                };
                let done = self.complete_at(&p, &login_key, email, LoginMethod::email).await?;
                Ok(LinkOpened::Completed(done))
            }
        }
    }

    /// The starting device's look at its link login `p` (see the module documentation).
    pub async fn link_status(&self, p: &Pending) -> Result<LinkStatus, LoginError> {
        let store = self.store.as_ref();
        if let Some(email) = maillink::confirmed(store, &p.login_id).await? {
            return Ok(LinkStatus::Completed(
                self.complete(p, email, LoginMethod::email).await?,
            ));
        }
        Ok(match maillink::pending(store, &p.login_id).await? {
            Some(a) => LinkStatus::Waiting(a),
            None => LinkStatus::Gone,
        })
    }

    /// Whether the login of `p` was confirmed from the e-mail (the page's script polls this).
    pub async fn link_confirmed(&self, p: &Pending) -> Result<bool, LoginError> {
        Ok(maillink::is_confirmed(self.store.as_ref(), &p.login_id).await?)
    }

    /// What link `secret` does, to label its confirmation page (`None`: gone). Every number
    /// of a challenge says [`Action::There`]: the page must not tell the right one.
    pub async fn peek_link(&self, secret: &str) -> Result<Option<Action>, LoginError> {
        Ok(maillink::peek(self.store.as_ref(), secret)
            .await?
            .map(|(kind, action)| match kind {
                Kind::Challenge => Action::There,
                _ => action,
            }))
    }
}
