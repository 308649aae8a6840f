//! The `email` login method: a 5-digit one-time code sent over SMTP.
//!
//! 1. [`Flows::send_code`]: any valid address gets a code — with e-mail login the user *is*
//!    whoever controls the mailbox, so there is no account to reveal and every address gets
//!    the same answer. Sending is throttled per address and per client within the
//!    organization, or per device cookie for a browser that logged the account in before
//!    ([`otp::may_send`]). The code is stored for this login only ([`otp`]) and e-mailed
//!    through the organization's SMTP server ([`crate::mail`]); a send failure withdraws the
//!    code and logs why (never the code, the body or a credential).
//! 2. [`Flows::check_code`]: wrong codes are counted per code (burned after `max_attempts`)
//!    and per address and client of the organization, or per device cookie
//!    ([`crate::oauth::throttle`]); the right one is taken once and the login completes
//!    exactly as a password login does ([`Flows::complete`]).

use lettre::transport::smtp::authentication::Credentials;

use super::Flows;
use super::login::{Attempter, Browser, Completed, LOGIN_TTL, LoginError, Pending, login_key};
use crate::crd::{EmailAttemptType, EmailLogin, Organization};
use crate::mail::{self, CodeMail, MailError};
use crate::oauth::otp::{self, SendGate, Verdict};
use crate::oauth::throttle::{self, Counters};
use crate::runtime::metrics::{LoginMethod, LoginOutcome};

/// What asking for a code led to.
pub enum SendOutcome {
    /// The address is not a valid e-mail address.
    InvalidAddress,
    /// The code went to `email`.
    Sent {
        /// The normalized address.
        email: String,
    },
    /// Sending is throttled; `code_pending` says whether a code of this login already went
    /// to that address (it still works).
    Throttled {
        /// The normalized address.
        email: String,
        /// Why.
        gate: SendGate,
        /// A code of this login waits for this address.
        code_pending: bool,
    },
    /// The e-mail could not be sent; the code was withdrawn.
    SendFailed {
        /// The normalized address.
        email: String,
    },
}

/// What a guessed code led to.
pub enum CodeOutcome {
    /// Logged in.
    Completed(Completed),
    /// Too many wrong codes from this attempter.
    Throttled {
        /// The address the code went to.
        email: String,
    },
    /// Not 5 digits (not counted).
    Malformed {
        /// The address the pending code went to (empty when none is pending).
        email: String,
    },
    /// The code did not log the user in, as [`otp::verify`] judged it: [`Verdict::Wrong`]
    /// (counted), [`Verdict::Burned`] or [`Verdict::Missing`] (no code waits for this login:
    /// expired, used, or never sent).
    Refused(Verdict),
}

impl Flows {
    /// Sends a code for login `p` to the address `raw_email` (see the module documentation).
    pub async fn send_code(&self, p: &Pending, from: Browser<'_>, raw_email: &str) -> Result<SendOutcome, LoginError> {
        self.send_code_within(p, from, raw_email, self.settings.email_codes.sends)
            .await
    }

    /// [`Flows::send_code`] with the given limits of codes sent per address and per client.
    pub async fn send_code_within(
        &self,
        p: &Pending,
        from: Browser<'_>,
        raw_email: &str,
        limits: throttle::Limits,
    ) -> Result<SendOutcome, LoginError> {
        let config = p
            .org
            .spec
            .login_methods
            .email
            .clone()
            .ok_or(LoginError::MethodDisabled("e-mail"))?;
        let Some(email) = mail::recipient(raw_email) else {
            return Ok(SendOutcome::InvalidAddress);
        };
        if !p.org.email_domain_allowed(&email) {
            return Err(LoginError::domain_refused(&email));
        }
        let store = self.store.as_ref();
        let policy = &self.settings.email_codes;
        let attempter = Attempter::of(self, p, &email, from.addr, from.device_cookie);
        let (sends, cooldown) = (
            attempter.counters(throttle::CODE_SENDS, limits),
            attempter.cooldown_key(),
        );
        match otp::may_send(store, policy, &sends, &cooldown).await? {
            SendGate::Allowed => {}
            gate => {
                let code_pending = self.pending_address(&config, &p.login_id).await?.as_deref() == Some(email.as_str());
                return Ok(SendOutcome::Throttled {
                    email,
                    gate,
                    code_pending,
                });
            }
        }
        if config.attempt_type != EmailAttemptType::Code {
            return self.send_link(p, &config, email, &sends, &cooldown).await;
        }
        let code = otp::issue(store, policy, &p.login_id, &email).await?;
        let _ = store.touch(&login_key(&p.login_id), LOGIN_TTL).await;
        let sent = self.deliver(&p.org, &config, &email, &code).await;
        drop(code);
        if let Err(e) = sent {
            tracing::warn!(org = %p.login.request.org.name, error = %e, "the login code e-mail could not be sent");
            let _ = otp::withdraw(store, &p.login_id, &cooldown).await;
            return Ok(SendOutcome::SendFailed { email });
        }
        let _ = sends.record(store).await;
        tracing::info!(org = %p.login.request.org.name, "login code e-mail sent");
        Ok(SendOutcome::Sent { email })
    }

    /// The address a code, link or challenge of login `login_id` waits for, if any.
    async fn pending_address(&self, config: &EmailLogin, login_id: &str) -> Result<Option<String>, LoginError> {
        let store = self.store.as_ref();
        Ok(match config.attempt_type {
            EmailAttemptType::Code => otp::pending_email(store, login_id).await?,
            _ => crate::oauth::maillink::pending(store, login_id).await?.map(|a| a.email),
        })
    }

    /// Checks the guessed `code` of login `p` (see the module documentation).
    pub async fn check_code(&self, p: &Pending, from: Browser<'_>, code: &str) -> Result<CodeOutcome, LoginError> {
        if p.org.spec.login_methods.email.is_none() {
            return Err(LoginError::MethodDisabled("e-mail"));
        }
        let store = self.store.as_ref();
        let policy = &self.settings.email_codes;
        let Some(email) = otp::pending_email(store, &p.login_id).await? else {
            self.metrics.login(LoginMethod::email, LoginOutcome::failure);
            return Ok(CodeOutcome::Refused(Verdict::Missing));
        };
        let attempter = Attempter::of(self, p, &email, from.addr, from.device_cookie);
        let failures = attempter.counters(throttle::EMAIL_CODE, policy.failures);
        if failures.over(store).await.unwrap_or(true) {
            self.metrics.login(LoginMethod::email, LoginOutcome::failure);
            return Ok(CodeOutcome::Throttled { email });
        }
        let verdict = otp::verify(store, policy, &p.login_id, code).await?;
        if let Verdict::Accepted { email } = verdict {
            return Ok(CodeOutcome::Completed(
                self.complete(p, email, LoginMethod::email).await?,
            ));
        }
        Ok(self.refuse(p, verdict, &failures).await)
    }

    /// The outcome of a code that did not log the user in; wrong guesses count in `failures`.
    async fn refuse(&self, p: &Pending, verdict: Verdict, failures: &Counters) -> CodeOutcome {
        let store = self.store.as_ref();
        if !matches!(verdict, Verdict::Malformed) {
            self.metrics.login(LoginMethod::email, LoginOutcome::failure);
        }
        if matches!(verdict, Verdict::Wrong { .. } | Verdict::Burned { .. }) {
            let _ = failures.record(store).await;
        }
        match verdict {
            Verdict::Malformed => {
                let email = otp::pending_email(store, &p.login_id)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                CodeOutcome::Malformed { email }
            }
            Verdict::Accepted { .. } => CodeOutcome::Refused(Verdict::Missing),
            refused => CodeOutcome::Refused(refused),
        }
    }

    /// Sends the code through the organization's SMTP server.
    async fn deliver(&self, org: &Organization, config: &EmailLogin, email: &str, code: &str) -> Result<(), MailError> {
        let credentials = self.smtp_credentials(org, config)?;
        let mail = CodeMail {
            to: email,
            organization: &org.spec.display_name,
            code,
            valid_for: self.settings.email_codes.ttl,
        };
        self.mailer.send_code(config, credentials, &mail).await
    }

    /// `username` and `password` of the credentials Secret, exactly as stored (no trimming),
    /// from the watched Secrets in memory.
    pub(super) fn smtp_credentials(
        &self,
        org: &Organization,
        config: &EmailLogin,
    ) -> Result<Option<Credentials>, MailError> {
        let Some(name) = &config.credentials_secret_name else {
            return Ok(None);
        };
        let ns = org.metadata.namespace.as_deref().unwrap_or_default();
        let value = |key: &str| {
            self.secrets
                .value(ns, name, key)
                .and_then(|v| String::from_utf8(v).ok())
        };
        match (value("username"), value("password")) {
            (Some(user), Some(password)) => Ok(Some(Credentials::new(user, password))),
            _ => Err(MailError::Credentials(format!("{ns}/{name}"))),
        }
    }
}
