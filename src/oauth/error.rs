//! Errors of both protocols. Each variant maps to an RFC 6749 error (`{error,
//! error_description}`) or a CentralAuth error (`{errorCode, message}`) and an HTTP status.
//! Messages say what to fix and never contain codes, tokens or secrets.

use std::borrow::Cow;

use crate::flow::error::FlowError;

/// RFC 6749 / 7009 / 7662 / 6750 errors of the standard endpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// Malformed request: missing, repeated or misplaced parameters.
    #[error("{0}")]
    InvalidRequest(Cow<'static, str>),
    /// Client authentication failed (unknown client and wrong secret answer the same).
    #[error("client authentication failed")]
    InvalidClient,
    /// A Desktop app's client assertion was refused: what to fix (400, no `WWW-Authenticate`:
    /// the client did not use the Authorization header, RFC 6749 §5.2).
    #[error("{0}")]
    InvalidClientAssertion(String),
    /// The code or refresh token is invalid, expired, replayed, or bound to something else.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// The client may not use this grant.
    #[error("{0}")]
    UnauthorizedClient(&'static str),
    /// Unknown `grant_type`.
    #[error("grant_type must be authorization_code, refresh_token or client_credentials")]
    UnsupportedGrantType,
    /// Unknown `response_type`.
    #[error("response_type must be code")]
    UnsupportedResponseType,
    /// The bearer token is invalid (userinfo).
    #[error("the access token is invalid, expired or revoked")]
    InvalidToken,
    /// Too many failures from this client or address.
    #[error("too many failed attempts; retry later")]
    SlowDown,
    /// Something on the server failed (store or signing keys unavailable).
    #[error("the server cannot complete the request right now; retry later")]
    ServerError,
}

impl OAuthError {
    /// The `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient | OAuthError::InvalidClientAssertion(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::UnsupportedResponseType => "unsupported_response_type",
            OAuthError::InvalidToken => "invalid_token",
            OAuthError::SlowDown => "slow_down",
            OAuthError::ServerError => "server_error",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            OAuthError::InvalidClient | OAuthError::InvalidToken => 401,
            OAuthError::SlowDown => 429,
            OAuthError::ServerError => 503,
            _ => 400,
        }
    }

    /// A request error with a fixed message.
    pub fn request(msg: &'static str) -> OAuthError {
        OAuthError::InvalidRequest(Cow::Borrowed(msg))
    }
}

/// CentralAuth error codes (the `errorCode` values the official client knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CaCode {
    /// A required field is missing or repeated.
    MissingFields,
    /// The client is unknown or its secret is wrong.
    NoPermission,
    /// Too many failures.
    TooManyRequests,
    /// The code or session is unknown, expired, used or ended.
    SessionInvalid,
    /// The token does not decrypt or belongs to someone else.
    TokenInvalid,
    /// The redirect URI is not allowed or does not match.
    CallbackUrlInvalid,
    /// The `domain` parameter is not one of the organization's origins.
    DomainInvalid,
    /// A PKCE challenge is required but missing.
    CodeChallengeMissing,
    /// PKCE failed.
    CodeChallengeInvalid,
    /// The thing asked for (an API path) does not exist.
    EntityMissing,
    /// Something failed on the server, or the request cannot be served (wrong method).
    GenericError,
}

/// A CentralAuth error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CaError {
    /// The error code.
    pub code: CaCode,
    /// What to fix.
    pub message: Cow<'static, str>,
}

impl CaError {
    /// An error with a fixed message.
    pub fn new(code: CaCode, message: &'static str) -> CaError {
        CaError {
            code,
            message: Cow::Borrowed(message),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self.code {
            CaCode::NoPermission => 401,
            CaCode::TooManyRequests => 429,
            CaCode::GenericError => 503,
            CaCode::SessionInvalid | CaCode::TokenInvalid => 401,
            CaCode::EntityMissing => 404,
            _ => 400,
        }
    }
}

/// The one place where a flow's failure becomes an RFC 6749 error: same failure, same answer,
/// on every standard endpoint.
impl From<FlowError> for OAuthError {
    fn from(e: FlowError) -> OAuthError {
        match e {
            FlowError::Unavailable(_) | FlowError::NoReadableSecret => OAuthError::ServerError,
            FlowError::ClientInvalid | FlowError::WebCodeUnauthenticated | FlowError::HostNotServed => {
                OAuthError::InvalidClient
            }
            FlowError::ClientBusy => OAuthError::SlowDown,
            FlowError::PublicClient => OAuthError::UnauthorizedClient("public clients cannot use client_credentials"),
            FlowError::TokenInvalid => OAuthError::InvalidToken,
            FlowError::TokenMissing => OAuthError::request("token is required"),
            FlowError::DomainNotAllowed => {
                OAuthError::request("domain is not one of the organization's allowedOrigins")
            }
            FlowError::Pkce(_) => OAuthError::InvalidGrant("PKCE verification failed"),
            FlowError::GrantUnknown => OAuthError::InvalidGrant("the code or refresh token is invalid or expired"),
            FlowError::GrantReplayed => {
                OAuthError::InvalidGrant("the code or refresh token was already used; its tokens are revoked")
            }
            FlowError::GrantRevoked => OAuthError::InvalidGrant("the grant has been revoked"),
            FlowError::CodeNotIssuedHere => OAuthError::InvalidGrant("the code was not issued to this client"),
            FlowError::RefreshNotIssuedHere => {
                OAuthError::InvalidGrant("the refresh token was not issued to this client")
            }
            FlowError::RedirectMismatch => {
                OAuthError::InvalidGrant("redirect_uri differs from the authorization request")
            }
            FlowError::SessionEnded => OAuthError::InvalidGrant("the login session has ended"),
            FlowError::SessionHijacked(m) => OAuthError::InvalidGrant(m.message()),
            FlowError::CodeReplayed => OAuthError::InvalidGrant("the code was replayed; its tokens are revoked"),
            FlowError::ClientAssertion(e) => OAuthError::InvalidClientAssertion(e.to_string()),
        }
    }
}

/// The one place where a flow's failure becomes a CentralAuth error: same failure, same
/// answer, on every CentralAuth endpoint.
impl From<FlowError> for CaError {
    fn from(e: FlowError) -> CaError {
        let (code, message): (CaCode, &'static str) = match e {
            FlowError::Unavailable(why) => {
                return CaError {
                    code: CaCode::GenericError,
                    message: format!("{why}; retry later").into(),
                };
            }
            FlowError::NoReadableSecret => (
                CaCode::GenericError,
                "the organization has no active client secret that the server can read; activate one",
            ),
            FlowError::ClientInvalid => (
                CaCode::NoPermission,
                "client authentication failed: check the client ID and secret",
            ),
            FlowError::ClientBusy => (
                CaCode::TooManyRequests,
                "too many client authentications are waiting to be verified; retry in a moment",
            ),
            FlowError::WebCodeUnauthenticated => (
                CaCode::NoPermission,
                "this code was issued to a web client: authenticate with HTTP Basic client_id:secret",
            ),
            FlowError::HostNotServed => (CaCode::NoPermission, "this host is not served here"),
            FlowError::RedirectMismatch => (
                CaCode::CallbackUrlInvalid,
                "redirect_uri does not match the one of the login request",
            ),
            FlowError::Pkce(why) => {
                return CaError {
                    code: CaCode::CodeChallengeInvalid,
                    message: why.into(),
                };
            }
            FlowError::ClientAssertion(e) => {
                return CaError {
                    code: CaCode::NoPermission,
                    message: e.to_string().into(),
                };
            }
            FlowError::SessionEnded => (CaCode::SessionInvalid, "the session has ended; log in again"),
            FlowError::SessionHijacked(m) => (CaCode::SessionInvalid, m.message()),
            FlowError::TokenInvalid => (CaCode::TokenInvalid, "the token is invalid or expired"),
            FlowError::TokenMissing => (CaCode::MissingFields, "send the access token as the request body"),
            FlowError::DomainNotAllowed => (
                CaCode::DomainInvalid,
                "domain is not one of the organization's allowedOrigins",
            ),
            FlowError::GrantUnknown
            | FlowError::GrantReplayed
            | FlowError::GrantRevoked
            | FlowError::CodeNotIssuedHere
            | FlowError::RefreshNotIssuedHere
            | FlowError::CodeReplayed
            | FlowError::PublicClient => (CaCode::SessionInvalid, "the code is invalid, expired or already used"),
        };
        CaError::new(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_outage_is_503_in_both_protocols() {
        let e = FlowError::Unavailable("the session store is unavailable");
        assert_eq!(OAuthError::from(e.clone()).status(), 503);
        assert_eq!(CaError::from(e).status(), 503);
        let store = FlowError::from(crate::oauth::grant::GrantError::Store(crate::store::StoreError(
            "down".into(),
        )));
        assert_eq!(OAuthError::from(store.clone()).status(), 503);
        let answer = CaError::from(store);
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.message, "the session store is unavailable; retry later");
    }

    #[test]
    fn client_failures_answer_alike_in_both_protocols() {
        for (e, status) in [(FlowError::ClientInvalid, 401), (FlowError::ClientBusy, 429)] {
            assert_eq!(OAuthError::from(e.clone()).status(), status);
            assert_eq!(CaError::from(e).status(), status);
        }
    }

    #[test]
    fn a_refused_client_assertion_says_what_to_fix_in_both_protocols() {
        let e = FlowError::ClientAssertion(crate::oauth::desktop::AssertionError::Expired);
        let oauth = OAuthError::from(e.clone());
        assert_eq!((oauth.code(), oauth.status()), ("invalid_client", 400));
        assert!(oauth.to_string().contains("expired"), "{oauth}");
        let ca = CaError::from(e);
        assert_eq!((ca.code, ca.status()), (CaCode::NoPermission, 401));
        assert!(ca.message.contains("sign a new one"), "{}", ca.message);
    }
}
