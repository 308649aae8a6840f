//! What a flow can fail with, in the terms of the domain. [`crate::oauth::error`] turns each
//! failure into the wire error of either protocol (`From<FlowError>` for `OAuthError` and
//! `CaError`), so one failure answers with one status on every path: a store outage is 503
//! everywhere. Messages never contain codes, tokens or secrets.

use crate::oauth::client_auth::AuthFailure;
use crate::oauth::grant::GrantError;
use crate::store::StoreError;

/// A failed flow step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// The session store or the signing keys cannot serve the request now.
    #[error("the server cannot complete the request right now: {0}")]
    Unavailable(&'static str),
    /// The client is unknown, its secret is wrong, or it may not act without a secret.
    #[error("client authentication failed: check the client ID and secret")]
    ClientInvalid,
    /// Too many client authentications wait to be verified.
    #[error("too many client authentications are waiting to be verified; retry in a moment")]
    ClientBusy,
    /// A public client (no secret) asked for what only the confidential client may.
    #[error("public clients cannot use client_credentials")]
    PublicClient,
    /// The code or refresh token is unknown or expired.
    #[error("the code or refresh token is invalid or expired")]
    GrantUnknown,
    /// The code or refresh token was used before; its tokens are revoked.
    #[error("the code or refresh token was already used; its tokens are revoked")]
    GrantReplayed,
    /// The grant was revoked.
    #[error("the grant has been revoked")]
    GrantRevoked,
    /// The code belongs to another protocol, organization or client.
    #[error("the code was not issued to this client")]
    CodeNotIssuedHere,
    /// The refresh token belongs to another organization or client.
    #[error("the refresh token was not issued to this client")]
    RefreshNotIssuedHere,
    /// A web client's CentralAuth code was presented without client authentication.
    #[error("this code was issued to a web client: authenticate with HTTP Basic client_id:secret")]
    WebCodeUnauthenticated,
    /// The redirect URI differs from the authorization request's.
    #[error("redirect_uri differs from the authorization request")]
    RedirectMismatch,
    /// The PKCE verifier does not match the challenge (why, without the values).
    #[error("PKCE verification failed: {0}")]
    Pkce(String),
    /// The login session behind the grant or token has ended.
    #[error("the login session has ended")]
    SessionEnded,
    /// Hijack protection ended the session: it was used by another client than its login's.
    #[error("{0}")]
    SessionHijacked(crate::oauth::hijack::Mismatch),
    /// The code was replayed while it was being redeemed; its tokens are revoked.
    #[error("the code was replayed; its tokens are revoked")]
    CodeReplayed,
    /// No token was sent.
    #[error("send the access token as the request body")]
    TokenMissing,
    /// The access token is invalid, expired, revoked or another organization's.
    #[error("the access token is invalid, expired or revoked")]
    TokenInvalid,
    /// The `domain` asked about is not one of the organization's origins.
    #[error("domain is not one of the organization's allowedOrigins")]
    DomainNotAllowed,
    /// The organization has no active client secret whose plaintext the server can read.
    #[error("the organization has no active client secret that the server can read; activate one")]
    NoReadableSecret,
    /// The request's host is not served here.
    #[error("this host is not served here")]
    HostNotServed,
    /// A Desktop app's client assertion is missing or wrong (what to fix; never the assertion).
    #[error("{0}")]
    ClientAssertion(crate::oauth::desktop::AssertionError),
}

impl From<StoreError> for FlowError {
    fn from(_: StoreError) -> FlowError {
        FlowError::Unavailable("the session store is unavailable")
    }
}

impl From<AuthFailure> for FlowError {
    fn from(f: AuthFailure) -> FlowError {
        match f {
            AuthFailure::Invalid => FlowError::ClientInvalid,
            AuthFailure::Busy => FlowError::ClientBusy,
        }
    }
}

impl From<GrantError> for FlowError {
    fn from(e: GrantError) -> FlowError {
        match e {
            GrantError::Unknown => FlowError::GrantUnknown,
            GrantError::Replayed => FlowError::GrantReplayed,
            GrantError::Revoked => FlowError::GrantRevoked,
            GrantError::Store(e) => e.into(),
        }
    }
}

/// The result of a flow step.
pub type FlowResult<T> = Result<T, FlowError>;
