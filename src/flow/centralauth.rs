//! The CentralAuth API flows: verify (a code for the two JWE tokens), userinfo and logout.
//!
//! - verify: web apps authenticate with their secret, native apps send none (their code names
//!   the organization); the code must be a CentralAuth code of that organization, for the same
//!   callback (origin and path: the official client adds `return_to` at `/login` only), with
//!   the verifier of its challenge (the client's 36-character UUID allowed). Both tokens are
//!   compact JWEs (`dir`, `A256CBC-HS512`) under the UTF-8 bytes of the client secret — for a
//!   native app the active secret, which the app's backend holds. A Desktop app's code also
//!   needs its client assertion ([`super::desktop`]), `aud` the issuer or this endpoint's URL.
//! - Both tokens are recorded under their SHA-256 ([`token_key`]) for the session's lifetime,
//!   so userinfo and logout find the session by the token (across a secret rotation), and
//!   logout ends the session for every replica.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Flows;
use super::desktop::ClientAssertion;
use super::directory::org_key;
use super::error::{FlowError, FlowResult};
use crate::crd::Organization;
use crate::oauth::grant::{self, CodeGrant, OrgKey, Protocol, Session};
use crate::oauth::hijack::Shown;
use crate::oauth::{jwe, pkce, redirect, tokens};
use crate::store::{hashed, json};

/// The store key of a CentralAuth token: the SHA-256 of the token.
pub fn token_key(token: &str) -> String {
    format!("catoken:{}", hashed(token))
}

/// What a CentralAuth access (or ID) token stands for, stored under [`token_key`].
#[derive(Serialize, Deserialize)]
struct TokenRecord {
    org: OrgKey,
    session_id: String,
}

/// A `POST /api/v1/verify` request.
pub struct VerifyRequest<'a> {
    /// The request's host.
    pub host: Option<&'a str>,
    /// HTTP Basic `(client_id, secret)` of a web client; `None` for a native app.
    pub credentials: Option<(&'a str, &'a str)>,
    /// `client_id` of the form (native apps on the base domain).
    pub client_id: Option<&'a str>,
    /// The code.
    pub code: &'a str,
    /// The `redirect_uri` sent.
    pub redirect_uri: &'a str,
    /// The `code_verifier` sent.
    pub verifier: Option<&'a str>,
    /// A Desktop app's client assertion.
    pub assertion: ClientAssertion<'a>,
    /// The client address (failure counters).
    pub addr: IpAddr,
}

/// The answer to a verify: both JWEs and when they expire.
#[derive(Serialize)]
pub struct CaTokens {
    /// The access token (JWE).
    pub access_token: String,
    /// Always `Bearer` (generic OAuth clients parse the answer too).
    pub token_type: &'static str,
    /// The ID token (JWE, with `user`).
    pub id_token: String,
    /// Seconds until the session's end.
    pub expires_in: i64,
    /// The session's end, RFC 3339.
    pub expires_at: String,
}

/// A userinfo or logout call: HTTP Basic credentials and the token of the body.
pub struct TokenCall<'a> {
    /// The request's host.
    pub host: Option<&'a str>,
    /// The client ID of the Basic credentials.
    pub client_id: &'a str,
    /// The secret of the Basic credentials.
    pub secret: &'a str,
    /// The access (or ID) token.
    pub token: &'a str,
    /// The client address (failure counters).
    pub addr: IpAddr,
}

/// What a verify presents for a redeemed code.
struct Exchange<'a> {
    /// The organization the request's host or client ID names, if any.
    site_org: Option<OrgKey>,
    /// Whether the caller authenticated as a web client (HTTP Basic).
    authenticated: bool,
    /// The `redirect_uri` sent.
    redirect_uri: &'a str,
    /// The `code_verifier` sent.
    verifier: Option<&'a str>,
}

impl Exchange<'_> {
    /// Whether the redeemed code `g` may be exchanged by this request (see the module
    /// documentation).
    fn check(&self, g: &CodeGrant) -> FlowResult<()> {
        let r = &g.request;
        if r.protocol != Protocol::CentralAuth || self.site_org.as_ref().is_some_and(|o| *o != r.org) {
            return Err(FlowError::CodeNotIssuedHere);
        }
        if !self.authenticated && r.app_id.is_none() {
            return Err(FlowError::WebCodeUnauthenticated);
        }
        let same_target = match (redirect::parse(self.redirect_uri), redirect::parse(&r.redirect_uri)) {
            (Ok(a), Ok(b)) => a.without_query() == b.without_query(),
            _ => false,
        };
        if !same_target {
            return Err(FlowError::RedirectMismatch);
        }
        pkce::verify(
            r.code_challenge.as_deref(),
            self.verifier,
            pkce::VerifierRules::CentralAuth,
        )
        .map_err(|e| FlowError::Pkce(e.to_string()))
    }
}

/// The public URL of `/api/v1/verify` of an organization with `issuer`: the issuer's origin
/// (the path of a base-domain issuer, `/o/<clientId>`, is not part of it).
fn verify_endpoint(issuer: &str) -> String {
    let origin = url::Url::parse(issuer).map_or_else(|_| issuer.to_string(), |u| u.origin().ascii_serialization());
    format!("{origin}/api/v1/verify")
}

impl Flows {
    /// `POST /api/v1/verify`: authenticates a web client, redeems the code once, checks it and
    /// mints the two tokens of its session.
    pub async fn ca_verify(&self, r: VerifyRequest<'_>) -> FlowResult<CaTokens> {
        let site_org = self.api_org(r.host, r.credentials.map(|c| c.0).or(r.client_id))?;
        if let Some((client_id, secret)) = r.credentials {
            self.authenticate_client(site_org.as_deref(), client_id, secret, r.addr)
                .await?;
        }
        let now = crate::oauth::now();
        let g = grant::redeem_code(self.store.as_ref(), r.code, now).await?;
        let org = self.org_by_key(&g.request.org).ok_or(FlowError::CodeNotIssuedHere)?;
        let exchange = Exchange {
            site_org: site_org.as_ref().map(|o| org_key(o)),
            authenticated: r.credentials.is_some(),
            redirect_uri: r.redirect_uri,
            verifier: r.verifier,
        };
        exchange.check(&g)?;
        self.check_desktop(&org, &g, r.assertion, &verify_endpoint(&self.issuer(&org)))?;
        let session = self
            .user_session(&g.session_id, org.max_inactivity(), now)
            .await?
            .ok_or(FlowError::SessionEnded)?;
        if r.credentials.is_none() {
            // A native app redeems its code from the user's device: its address is the user's.
            let device = Shown {
                addr: Some(r.addr),
                ..Shown::default()
            };
            self.hijack_check(Some(&org), &session, device)
                .await
                .map_err(FlowError::SessionHijacked)?;
        }
        let key = match r.credentials {
            Some((_, secret)) => secret.to_string(),
            None => self.active_secret_plaintext(&org).ok_or(FlowError::NoReadableSecret)?,
        };
        self.mint(&org, &session, key.as_bytes(), now).await
    }

    /// Plaintext of the organization's active client secret, from its watched Secret.
    fn active_secret_plaintext(&self, org: &Organization) -> Option<String> {
        let active = org.active_secret()?;
        let cs = self
            .client_secrets_of(org)
            .into_iter()
            .find(|cs| cs.metadata.name.as_deref() == Some(active.name.as_str()) && cs.authenticates_for(org))?;
        self.secret_plaintext(org, &cs)
    }

    /// Encrypts the access and ID token of `session` under `key` and records both.
    async fn mint(&self, org: &Organization, session: &Session, key: &[u8], now: i64) -> FlowResult<CaTokens> {
        let expires_at = session.expires_at;
        let user = tokens::centralauth_user(session, org.client_id().unwrap_or_default());
        let access = json!({"sessionId": session.id, "iat": now, "exp": expires_at});
        let id = json!({"sessionId": session.id, "user": user, "iat": now, "exp": expires_at});
        let encrypt = |v: &Value| {
            jwe::encrypt(key, v.to_string().as_bytes())
                .map_err(|_| FlowError::Unavailable("the token could not be encrypted"))
        };
        let (access_token, id_token) = (encrypt(&access)?, encrypt(&id)?);
        let record = TokenRecord {
            org: session.org.clone(),
            session_id: session.id.clone(),
        };
        let ttl = Duration::from_secs((expires_at - now).max(1) as u64);
        // Both tokens stand for the session: the official client keeps the ID token instead of
        // the access token with `unsafeIncludeUser`, and sends that one to userinfo and logout.
        for token in [&access_token, &id_token] {
            json::put(self.store.as_ref(), &token_key(token), &record, ttl).await?;
        }
        tracing::info!(org = %session.org.name, "CentralAuth code redeemed");
        Ok(CaTokens {
            access_token,
            token_type: "Bearer",
            id_token,
            expires_in: expires_at - now,
            expires_at: tokens::rfc3339(expires_at),
        })
    }

    /// Authenticates a userinfo/logout call and finds the session its token stands for.
    pub async fn ca_token_session(&self, call: TokenCall<'_>) -> FlowResult<(Arc<Organization>, Session)> {
        let org = self.api_org(call.host, Some(call.client_id))?;
        self.authenticate_client(org.as_deref(), call.client_id, call.secret, call.addr)
            .await?;
        let org = org.ok_or(FlowError::ClientInvalid)?;
        if call.token.is_empty() {
            return Err(FlowError::TokenMissing);
        }
        let record: TokenRecord = json::get(self.store.as_ref(), &token_key(call.token))
            .await?
            .ok_or(FlowError::TokenInvalid)?;
        if record.org != org_key(&org) {
            return Err(FlowError::TokenInvalid);
        }
        let idle = org.max_inactivity();
        let session = self
            .user_session(&record.session_id, idle, crate::oauth::now())
            .await?
            .ok_or(FlowError::SessionEnded)?;
        Ok((org, session))
    }

    /// `POST /api/v1/userinfo`: the user of `session` (from [`Flows::ca_token_session`]), when
    /// `domain` (if given) is one of the organization's origins or a native app's.
    pub fn ca_user(&self, org: &Organization, session: &Session, domain: Option<&str>) -> FlowResult<Value> {
        if let Some(domain) = domain {
            let allowed = crate::origin::origin_allowed(domain, &org.spec.allowed_origins)
                || self
                    .native_apps_of(org)
                    .iter()
                    .any(|a| redirect::parse(&a.spec.app_link).is_ok_and(|l| l.origin() == domain));
            if !allowed {
                return Err(FlowError::DomainNotAllowed);
            }
        }
        Ok(tokens::centralauth_user(session, org.client_id().unwrap_or_default()))
    }

    /// `POST /api/v1/logout`: ends the token's session everywhere.
    pub async fn ca_logout(&self, call: TokenCall<'_>) -> FlowResult<()> {
        let (_, session) = self.ca_token_session(call).await?;
        grant::end_session(self.store.as_ref(), &session.id).await?;
        tracing::info!(org = %session.org.name, "session ended by logout");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
