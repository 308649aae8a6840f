//! Upstream identity providers: the client side of OpenID Connect (any provider, and the
//! Google and Microsoft presets) and of GitHub's OAuth 2 + REST API. Plain functions over an
//! HTTP client ([`fetch::Http`]) and a discovery/JWKS cache ([`oidc::Cache`]); the login flow
//! that uses them is [`crate::flow::providers`].
//!
//! What a provider proves is an [`Identity`]: its stable subject, and an address only when the
//! provider asserts it is verified (the per-provider rules are in [`oidc::identity`] and
//! [`github::identity`], and `docs/providers.md`).

pub mod fetch;
pub mod github;
pub mod jwt;
pub mod oidc;

/// Why talking to a provider failed. Messages name the URL (never its query) and what to
/// check; they never carry a code, token or secret.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No answer (connection refused, DNS, TLS, timeout).
    #[error("{url} cannot be reached: {detail}")]
    Unreachable {
        /// The URL, without query.
        url: String,
        /// Why.
        detail: String,
    },
    /// A 3xx or 5xx answer.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL, without query.
        url: String,
        /// The status code.
        status: u16,
    },
    /// Over [`fetch::MAX_BODY`].
    #[error("{url} answered more than {} KiB", fetch::MAX_BODY / 1024)]
    TooLarge {
        /// The URL, without query.
        url: String,
    },
    /// Not the JSON expected.
    #[error("{url} answered HTTP {status} without the JSON expected")]
    NotJson {
        /// The URL, without query.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The discovery document names another issuer, or lacks an endpoint.
    #[error("the discovery document of {issuer} is unusable: {problem}")]
    Discovery {
        /// The configured issuer.
        issuer: String,
        /// What is wrong.
        problem: String,
    },
    /// The token endpoint refused the code (its `error`, never the code).
    #[error("the provider's token endpoint refused the code: {0}")]
    TokenRefused(String),
    /// The ID token did not verify.
    #[error(transparent)]
    IdToken(#[from] jwt::TokenError),
    /// The user data lacks what identifies the user.
    #[error("the provider's answer lacks {0}")]
    Incomplete(&'static str),
}

/// Who the provider says the user is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The provider's stable identifier of the user (`sub`; GitHub's numeric ID).
    pub subject: String,
    /// The address, only when the provider asserts it is verified (normalised).
    pub verified_email: Option<String>,
}

/// The provider's authorization endpoint and what to ask it for.
pub struct Authorization<'a> {
    /// This organization's client ID at the provider.
    pub client_id: &'a str,
    /// Our callback URL.
    pub redirect_uri: &'a str,
    /// Space-separated scopes.
    pub scope: &'a str,
    /// `state`.
    pub state: &'a str,
    /// PKCE S256 challenge.
    pub code_challenge: &'a str,
    /// `nonce` (OIDC only).
    pub nonce: Option<&'a str>,
}

impl Authorization<'_> {
    /// The URL that sends the browser to `endpoint` with these parameters.
    pub fn url(&self, endpoint: &str) -> String {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", self.client_id),
            ("redirect_uri", self.redirect_uri),
            ("scope", self.scope),
            ("state", self.state),
            ("code_challenge", self.code_challenge),
            ("code_challenge_method", "S256"),
        ];
        if let Some(n) = self.nonce {
            params.push(("nonce", n));
        }
        crate::oauth::redirect::with_params(endpoint, &params)
    }
}

/// Which claim says the ID token's address is verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailRule {
    /// `email_verified` (OpenID Connect Core; generic providers and Google).
    EmailVerified,
    /// Microsoft Entra ID: only `xms_edov` (the tenant verified the address's domain), never
    /// the mutable `email` claim alone.
    Microsoft,
}

/// The normalised form of an address (as the user directory compares them).
pub fn normalize(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}
