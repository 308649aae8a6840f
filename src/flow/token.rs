//! The token flows of the standard endpoints: `authorization_code`, `refresh_token` and
//! `client_credentials` at `/oauth2/token`, and the token checks of introspect, revoke and
//! userinfo.
//!
//! Clients: the organization's client ID is one confidential client (its ClientSecrets); its
//! native apps are public clients of the same client ID, which send no secret. A public client
//! may redeem codes and refresh tokens issued to a native app, never use `client_credentials`.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::Flows;
use super::desktop::ClientAssertion;
use super::directory::org_key;
use super::error::{FlowError, FlowResult};
use crate::crd::Organization;
use crate::oauth::grant::{self, CodeGrant, Protocol, RefreshGrant, Session};
use crate::oauth::hijack::Shown;
use crate::oauth::{pkce, tokens};

/// Scopes this server knows; others are dropped from requests.
pub const SCOPES: [&str; 4] = ["openid", "email", "profile", "offline_access"];

/// The known scopes of a requested `scope`, or `None` when none is left.
pub fn filter_scope(requested: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = requested?.split(' ').filter(|s| SCOPES.contains(s)).collect();
    (!kept.is_empty()).then(|| kept.join(" "))
}

/// What a caller of a token-style endpoint presented: its client ID and, for the
/// confidential client, the secret.
pub struct Presented<'a> {
    /// The client ID (Basic or body).
    pub client_id: String,
    /// The secret; `None` for a public client.
    pub secret: Option<&'a str>,
    /// The client address (failure counters).
    pub addr: IpAddr,
}

/// An authenticated token-endpoint caller.
pub struct Caller {
    /// Its client ID.
    pub client_id: String,
    /// Whether it authenticated with a secret (else: a public client, a native app).
    pub confidential: bool,
}

/// The answer to a code or refresh-token exchange.
#[derive(Serialize)]
pub struct UserTokens {
    /// The JWT access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Lifetime of the access token, seconds.
    pub expires_in: i64,
    /// The new refresh token.
    pub refresh_token: String,
    /// The granted scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The OIDC ID token (code exchanges with `openid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// The answer to a `client_credentials` request.
#[derive(Serialize)]
pub struct ServiceToken {
    /// The JWT access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Lifetime, seconds.
    pub expires_in: i64,
    /// The granted scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl Flows {
    /// Authenticates a caller of `org`: with a secret, the confidential client; without one
    /// (unless `require_secret`), the public clients of the organization's client ID.
    pub async fn caller(&self, org: &Organization, p: Presented<'_>, require_secret: bool) -> FlowResult<Caller> {
        match p.secret {
            Some(secret) => {
                self.authenticate_client(Some(org), &p.client_id, secret, p.addr)
                    .await?;
                Ok(Caller {
                    client_id: p.client_id,
                    confidential: true,
                })
            }
            None if !require_secret && org.client_id() == Some(p.client_id.as_str()) => Ok(Caller {
                client_id: p.client_id,
                confidential: false,
            }),
            None => Err(FlowError::ClientInvalid),
        }
    }

    /// `authorization_code`: redeems `code` once, checks it against the caller, the
    /// `redirect_uri`, the PKCE verifier and, for a Desktop app's code, its client assertion, and
    /// issues the tokens of its session.
    pub async fn exchange_code(
        &self,
        org: &Organization,
        c: &Caller,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
        assertion: ClientAssertion<'_>,
    ) -> FlowResult<UserTokens> {
        let now = crate::oauth::now();
        let g = grant::redeem_code(self.store.as_ref(), code, now).await?;
        check_code(&g, org, c, redirect_uri, verifier)?;
        self.check_desktop(org, &g, assertion, &format!("{}/oauth2/token", self.issuer(org)))?;
        let session = self.live_grant_session(org, &g.session_id, now).await?;
        let rg = RefreshGrant {
            org: g.request.org.clone(),
            client_id: g.request.client_id.clone(),
            family_id: g.family_id.clone(),
            session_id: g.session_id.clone(),
            email: g.email.clone(),
            scope: g.request.scope.clone(),
            auth_time: g.auth_time,
            app_id: g.request.app_id.clone(),
        };
        let mut body = self.user_tokens(org, &rg, &g.jti, now).await?;
        if g.request
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|x| x == "openid"))
        {
            body.id_token = Some(self.id_token(org, &g, &session, now)?);
        }
        // A replay that raced this redemption may have revoked the family meanwhile.
        if grant::is_revoked(self.store.as_ref(), Some(&g.family_id), Some(&g.jti)).await? {
            return Err(FlowError::CodeReplayed);
        }
        Ok(body)
    }

    /// `refresh_token`: rotates the refresh token (a replay revokes its family) and issues new
    /// tokens while the session lives.
    /// A public client (a native app on the user's device) shows its address `addr` to
    /// `hijackProtection.ip`; a confidential client's server does not stand for the user.
    pub async fn refresh(&self, org: &Organization, c: &Caller, token: &str, addr: IpAddr) -> FlowResult<UserTokens> {
        let rg = grant::rotate_refresh(self.store.as_ref(), token).await?;
        if rg.org != org_key(org) || rg.client_id != c.client_id || (!c.confidential && rg.app_id.is_none()) {
            return Err(FlowError::RefreshNotIssuedHere);
        }
        let now = crate::oauth::now();
        let session = self.live_grant_session(org, &rg.session_id, now).await?;
        if !c.confidential {
            let device = Shown {
                addr: Some(addr),
                ..Shown::default()
            };
            self.hijack_check(Some(org), &session, device)
                .await
                .map_err(FlowError::SessionHijacked)?;
        }
        self.user_tokens(org, &rg, &grant::random_token(), now).await
    }

    /// `client_credentials`: an access token for the confidential client itself.
    pub fn client_credentials(&self, org: &Organization, c: &Caller, scope: Option<&str>) -> FlowResult<ServiceToken> {
        if !c.confidential {
            return Err(FlowError::PublicClient);
        }
        let now = crate::oauth::now();
        let iss = self.issuer(org);
        let scope = filter_scope(scope);
        let ttl = self.settings.access_token_ttl;
        let claims = tokens::AccessClaims {
            issuer: &iss,
            subject: &c.client_id,
            client_id: &c.client_id,
            scope: scope.as_deref(),
            jti: &grant::random_token(),
            session_id: None,
            family_id: None,
            auth_time: None,
            now,
            ttl,
        };
        Ok(ServiceToken {
            access_token: self.sign(&claims, "at+jwt", now)?,
            token_type: "Bearer",
            expires_in: ttl,
            scope,
        })
    }

    /// The session of a grant, used now (its idle timer restarts).
    async fn live_grant_session(&self, org: &Organization, id: &str, now: i64) -> FlowResult<Session> {
        self.user_session(id, org.max_inactivity(), now)
            .await?
            .ok_or(FlowError::SessionEnded)
    }

    /// The signed OIDC ID token of a code exchange.
    fn id_token(&self, org: &Organization, g: &CodeGrant, session: &Session, now: i64) -> FlowResult<String> {
        let claims = tokens::id_token_claims(
            &self.issuer(org),
            session,
            &g.request.client_id,
            g.request.nonce.as_deref(),
            g.auth_time,
            now,
            self.settings.access_token_ttl,
        );
        self.sign(&claims, "JWT", now)
    }

    /// Signs `claims` with the current signing key as a JWT of type `typ`.
    pub(crate) fn sign(&self, claims: &impl Serialize, typ: &str, now: i64) -> FlowResult<String> {
        self.keys
            .get()
            .sign(claims, typ, now)
            .map_err(|_| FlowError::Unavailable("no signing key is loaded"))
    }

    /// Access + refresh token for a user grant.
    async fn user_tokens(&self, org: &Organization, rg: &RefreshGrant, jti: &str, now: i64) -> FlowResult<UserTokens> {
        let iss = self.issuer(org);
        let sub = tokens::user_id(&rg.org, &rg.email);
        let ttl = self.settings.access_token_ttl;
        let claims = tokens::AccessClaims {
            issuer: &iss,
            subject: &sub,
            client_id: &rg.client_id,
            scope: rg.scope.as_deref(),
            jti,
            session_id: Some(&rg.session_id),
            family_id: Some(&rg.family_id),
            auth_time: Some(rg.auth_time),
            now,
            ttl,
        };
        let access_token = self.sign(&claims, "at+jwt", now)?;
        let refresh_ttl = Duration::from_secs(self.settings.refresh_token_ttl as u64);
        let refresh_token = grant::issue_refresh(self.store.as_ref(), rg, refresh_ttl).await?;
        Ok(UserTokens {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            refresh_token,
            scope: rg.scope.clone(),
            id_token: None,
        })
    }

    /// The claims of an active access token of `org` (signature, issuer, revocation, live
    /// session); `None` when it is not active.
    pub async fn active_claims(&self, org: &Organization, token: &str) -> FlowResult<Option<Value>> {
        let now = crate::oauth::now();
        let Ok(claims) = self.keys.get().verify(token, Some("at+jwt"), now) else {
            return Ok(None);
        };
        if claims["iss"].as_str() != Some(self.issuer(org).as_str()) {
            return Ok(None);
        }
        let store = self.store.as_ref();
        if grant::is_revoked(store, claims["fid"].as_str(), claims["jti"].as_str()).await? {
            return Ok(None);
        }
        if let Some(sid) = claims["sid"].as_str() {
            let idle = org.max_inactivity();
            if self.user_session(sid, idle, now).await?.is_none() {
                return Ok(None);
            }
        }
        Ok(Some(claims))
    }

    /// RFC 7662 introspection of an access or refresh token by the confidential client `c`.
    pub async fn introspect(&self, org: &Organization, c: &Caller, token: &str) -> FlowResult<Value> {
        if let Some(claims) = self.active_claims(org, token).await? {
            let mut v = json!({"active": true, "token_type": "Bearer"});
            for k in ["scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti"] {
                if let Some(x) = claims.get(k) {
                    v[k] = x.clone();
                }
            }
            return Ok(v);
        }
        let store = self.store.as_ref();
        if let Some(rg) = grant::refresh_grant(store, token)
            .await?
            .filter(|rg| issued_to(rg, org, c))
            && !grant::is_revoked(store, Some(&rg.family_id), None).await?
            && self
                .user_session(&rg.session_id, org.max_inactivity(), crate::oauth::now())
                .await?
                .is_some()
        {
            return Ok(json!({
                "active": true, "token_type": "refresh_token", "client_id": rg.client_id,
                "sub": tokens::user_id(&rg.org, &rg.email), "scope": rg.scope, "iss": self.issuer(org),
            }));
        }
        Ok(json!({"active": false}))
    }

    /// RFC 7009 revocation: only tokens issued to caller `c` are revoked; whether the token was
    /// known or the caller's is not told.
    pub async fn revoke(&self, org: &Organization, c: &Caller, token: &str) -> FlowResult<()> {
        let store = self.store.as_ref();
        if let Some(rg) = grant::refresh_grant(store, token).await? {
            if issued_to(&rg, org, c) {
                grant::revoke_family(store, &rg.family_id).await?;
            }
        } else if c.confidential
            && let Some(claims) = self.active_claims(org, token).await?
            && claims["client_id"].as_str() == Some(c.client_id.as_str())
            && let Some(jti) = claims["jti"].as_str()
        {
            grant::revoke_jti(store, jti).await?;
        }
        Ok(())
    }

    /// The OIDC userinfo of an active access token of `org` with a session.
    pub async fn oidc_userinfo(&self, org: &Organization, token: &str) -> FlowResult<Value> {
        let claims = self.active_claims(org, token).await?.ok_or(FlowError::TokenInvalid)?;
        let sid = claims["sid"].as_str().ok_or(FlowError::TokenInvalid)?;
        let session = self
            .user_session(sid, org.max_inactivity(), crate::oauth::now())
            .await?
            .ok_or(FlowError::TokenInvalid)?;
        let email = session.user.as_ref().map_or(&session.email, |u| &u.email);
        Ok(json!({
            "sub": tokens::user_id(&session.org, &session.email),
            "email": email,
            "email_verified": true,
            "user": tokens::centralauth_user(&session, org.client_id().unwrap_or_default()),
        }))
    }
}

/// Whether the redeemed code `g` may be exchanged by caller `c` of `org`: a standard code of
/// this organization and client (public clients only for native apps), the exact
/// `redirect_uri` of the authorization request, and the S256 verifier of its challenge.
fn check_code(
    g: &CodeGrant,
    org: &Organization,
    c: &Caller,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> FlowResult<()> {
    let r = &g.request;
    if r.protocol != Protocol::OAuth || r.org != org_key(org) || r.client_id != c.client_id {
        return Err(FlowError::CodeNotIssuedHere);
    }
    if !c.confidential && r.app_id.is_none() {
        return Err(FlowError::ClientInvalid);
    }
    if r.redirect_uri != redirect_uri {
        return Err(FlowError::RedirectMismatch);
    }
    pkce::verify(r.code_challenge.as_deref(), verifier, pkce::VerifierRules::Strict)
        .map_err(|e| FlowError::Pkce(e.to_string()))
}

/// Whether refresh grant `rg` was issued to caller `c` of `org`: same organization and client
/// ID, and for a public caller (no secret) only a native app's grant — the only way a public
/// client gets refresh tokens. Access tokens are revoked by confidential callers only (a public
/// client revokes its refresh token, whose family takes the access tokens with it).
fn issued_to(rg: &RefreshGrant, org: &Organization, c: &Caller) -> bool {
    rg.org == org_key(org) && rg.client_id == c.client_id && (c.confidential || rg.app_id.is_some())
}

#[cfg(test)]
mod tests;
