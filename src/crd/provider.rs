//! `loginMethods.providers`: upstream identity providers (any OpenID Connect provider, Google,
//! Microsoft Entra ID, GitHub) a user can log in with. See `docs/providers.md`.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DNS_SUBDOMAIN_RULE;

/// CEL: an `https://` URL, or an `http://` URL on a loopback host (refused unless the
/// Organization has `allowLocalhost: true`, in a spec-level rule); no query, fragment or
/// userinfo.
pub(crate) const PROVIDER_URL_RULE: &str = "isURL(self) && (self.startsWith('https://') || self.matches('^http://(localhost|127\\\\.0\\\\.0\\\\.1|\\\\[::1\\\\])(:[0-9]{1,5})?(/|$)')) && !self.contains('?') && !self.contains('#') && !self.matches('^[a-z]+://[^/]*@')";

/// CEL (spec level): `http://` provider URLs need `allowLocalhost`.
pub(crate) const PROVIDER_LOCALHOST_RULE: &str = "!has(self.loginMethods.providers) || self.allowLocalhost || self.loginMethods.providers.all(p, (!has(p.issuer) || p.issuer.startsWith('https://')) && (!has(p.enterpriseUrl) || p.enterpriseUrl.startsWith('https://')))";

/// One upstream identity provider of an organization.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'OIDC' ? has(self.issuer) : !has(self.issuer)")
    .message("issuer is required for type OIDC and not allowed for Google, Microsoft and GitHub (their issuers are fixed; Microsoft takes tenant, GitHub Enterprise Server enterpriseUrl)"))]
#[x_kube(validation = Rule::new("!has(self.tenant) || self.type == 'Microsoft'")
    .message("tenant is only allowed for type Microsoft"))]
#[x_kube(validation = Rule::new("!has(self.enterpriseUrl) || self.type == 'GitHub'")
    .message("enterpriseUrl is only allowed for type GitHub"))]
pub struct Provider {
    /// A DNS label naming this provider within the organization: the button's key, the
    /// connection type recorded on users, and part of the callback URL
    /// `<issuer>/oauth/providers/<name>/callback` to register at the provider. `password`,
    /// `email` and `passkey` are taken by the built-in methods.
    #[schemars(length(min = 1, max = 40))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message(
        "providers[].name must be a DNS label: lowercase letters, digits and '-', not starting or ending with '-'"
    ))]
    #[x_kube(validation = Rule::new("!(self in ['password', 'email', 'passkey'])").message(
        "providers[].name cannot be password, email or passkey: those name the built-in login methods"
    ))]
    pub name: String,

    /// What the provider speaks: `OIDC` (any OpenID Connect provider, by `issuer`), `Google`,
    /// `Microsoft` (Entra ID, by `tenant`) or `GitHub` (OAuth 2 and its REST API).
    #[serde(rename = "type")]
    pub type_: ProviderType,

    /// The client ID this organization registered at the provider.
    #[schemars(length(min = 1, max = 256))]
    pub client_id: String,

    /// The Secret key (same namespace) holding the client secret registered at the provider;
    /// the organization is not Ready (reason `SecretNotFound` / `SecretKeyMissing`) while it is
    /// missing.
    pub client_secret_ref: SecretKeyRef,

    /// Type `OIDC` only: the issuer identifier; discovery is read from
    /// `<issuer>/.well-known/openid-configuration`. Must be `https://` (`http://localhost`,
    /// `127.0.0.1` or `[::1]` only with `allowLocalhost: true`, for development).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 2048))]
    #[x_kube(validation = Rule::new(PROVIDER_URL_RULE).message(
        "issuer must be an https:// URL without query, fragment or userinfo (http://localhost only with allowLocalhost: true)"
    ))]
    pub issuer: Option<String>,

    /// Type `Microsoft` only: the Entra ID tenant (its ID or a verified domain). Default
    /// `organizations` (any work or school account); `common` also admits personal accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message(
        "tenant must be a tenant ID (a GUID), a verified domain, organizations or common"
    ))]
    pub tenant: Option<String>,

    /// Type `GitHub` only: the address of a GitHub Enterprise Server (`https://github.example.com`;
    /// its API is under `/api/v3`). Absent: github.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 2048))]
    #[x_kube(validation = Rule::new(PROVIDER_URL_RULE).message(
        "enterpriseUrl must be an https:// URL without query, fragment or userinfo (http://localhost only with allowLocalhost: true)"
    ))]
    pub enterprise_url: Option<String>,

    /// Scopes to ask for. Default: `openid email profile` (OIDC, Google, Microsoft), `read:user
    /// user:email` (GitHub); `openid` is always added for the OIDC types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 128)))]
    #[x_kube(validation = Rule::new("self.all(s, s.matches('^[!#-\\\\[\\\\]-~]+$'))").message(
        "each scope must be printable ASCII without spaces, quotes or backslashes"
    ))]
    pub scopes: Vec<String>,

    /// The button's text ("Log in with …"). Default: Google, Microsoft, GitHub, or the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub display_name: Option<String>,
}

/// A key of a Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("clientSecretRef.name must be a valid Secret name (lowercase DNS subdomain)"))]
    pub name: String,

    /// Key of the Secret holding the value (used exactly as stored: no trailing newline).
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[-._a-zA-Z0-9]+$')").message("clientSecretRef.key must be a Secret key: letters, digits, '-', '_' and '.'"))]
    pub key: String,
}

/// The protocol family of a provider.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderType {
    /// Any OpenID Connect provider, by `issuer` (Keycloak, Okta, Auth0, Ory Hydra, Dex…).
    #[serde(rename = "OIDC")]
    Oidc,
    /// Google accounts (OpenID Connect, issuer `https://accounts.google.com`).
    Google,
    /// Microsoft Entra ID (OpenID Connect, issuer
    /// `https://login.microsoftonline.com/<tenant>/v2.0`).
    Microsoft,
    /// GitHub (OAuth 2 and its REST API: `/user`, `/user/emails`).
    GitHub,
}

impl Provider {
    /// The button's text: `displayName`, else the provider's brand, else the name.
    pub fn label(&self) -> String {
        if let Some(d) = &self.display_name {
            return d.clone();
        }
        match self.type_ {
            ProviderType::Google => "Google".into(),
            ProviderType::Microsoft => "Microsoft".into(),
            ProviderType::GitHub => "GitHub".into(),
            ProviderType::Oidc => self.name.clone(),
        }
    }
}
