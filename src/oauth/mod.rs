//! The protocol library: plain functions and types that the HTTP handlers call, each tested
//! without a server.
//!
//! - [`pkce`]: S256 challenges and verifiers (strict, and the CentralAuth UUID quirk).
//! - [`redirect`]: strict parsing and the redirect URI rules of both protocols.
//! - [`grant`]: codes, sessions, refresh-token families in the store.
//! - [`random`]: the OS random bytes behind every token, code and link (batched per thread).
//! - [`hijack`]: sessions bound to the client's address, user agent or device (`hijackProtection`).
//! - [`access`]: when a blocked or deleted user's access ended (what every session use checks).
//! - [`profile`]: the user as the directory recorded them at login (carried by the session).
//! - [`verifier`]: bounded argon2id verification and the (pre-warmed) cache of client-secret
//!   successes.
//! - [`client_auth`]: client authentication that rations uncached verifications and never
//!   refuses the owner.
//! - [`otp`]: one-time e-mail login codes (issue, throttle sending, count guesses, burn).
//! - [`throttle`]: failure counters per organization: per client/account and address, or per
//!   device cookie.
//! - [`desktop`]: desktop apps' client assertions (RFC 7523 style, pinned certificate).
//! - [`device`]: device cookies that exempt a known browser from an account's lockout.
//! - [`prompt`]: OIDC `prompt` / `max_age` and CentralAuth `affirm`: when a session is reused.
//! - [`tokens`]: user IDs, the CentralAuth user object, JWT claims.
//! - [`jwe`]: the CentralAuth access token (`dir` + `A256CBC-HS512`).
//! - [`keys`]: ES256 signing keys, JWS, JWKS and the rotation plan.
//! - [`upstream`]: the client side of upstream identity providers (OIDC, Google, Microsoft,
//!   GitHub): discovery, JWKS, ID token verification, what each provider proves.
//! - [`error`]: the error answers of both protocols.

pub mod access;
pub mod client_auth;
pub mod desktop;
pub mod device;
pub mod error;
pub mod grant;
pub mod hijack;
pub mod jwe;
pub mod jws;
pub mod keys;
pub mod maillink;
pub mod otp;
pub mod pkce;
pub mod profile;
pub mod prompt;
pub mod random;
pub mod redirect;
pub mod throttle;
pub mod tokens;
pub mod upstream;
pub mod verifier;

/// Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Constant-time equality of two byte strings (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
