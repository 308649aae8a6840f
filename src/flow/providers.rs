//! Logging in with an upstream identity provider (`loginMethods.providers`):
//!
//! 1. [`Flows::start_provider`]: the provider's button was pressed on the login form (login ID
//!    and CSRF token checked like every step). A fresh `state`, `nonce` and PKCE verifier are
//!    stored under the hash of `state` with the login's ID, and the browser is sent to the
//!    provider's authorization endpoint.
//! 2. [`Flows::provider_callback`]: the provider sends the browser back to
//!    `<issuer>/oauth/providers/<name>/callback`. The stored attempt is *taken* (single use: a
//!    replayed callback finds nothing), and it only continues in the browser that started the
//!    login — the one whose `ca_csrf` cookie hashes to the login's CSRF hash. The code is
//!    redeemed with the verifier, the ID token checked ([`crate::oauth::upstream`]), and the
//!    identity admitted by [`Flows::admit_provider`]: the user linked to this provider subject,
//!    else the user of the address the provider asserts is verified (invite-only, allowed
//!    domains and blocking apply as for every method).

use std::net::IpAddr;
use std::sync::Arc;

use kube::{Resource, ResourceExt};
use serde::{Deserialize, Serialize};

use super::Flows;
use super::login::Admitted;
use super::login::{Completed, LOGIN_TTL, LoginError, login_key};
use super::users::Link;
use crate::crd::{Organization, Provider, ProviderType, User, provider_label, provider_subject_hash};
use crate::oauth::grant::random_token;
use crate::oauth::upstream::fetch::Http;
use crate::oauth::upstream::{Authorization, EmailRule, Identity, UpstreamError, github, oidc};
use crate::oauth::{pkce, upstream::oidc::Cache};
use crate::runtime::metrics::{LoginMethod, LoginOutcome};
use crate::store::{hashed, json};

/// The client side of upstream providers: one HTTP client and one discovery/JWKS cache.
pub struct Upstreams {
    /// The HTTP client.
    pub http: Http,
    /// Discovery and JWKS per issuer.
    pub cache: Cache,
}

impl Default for Upstreams {
    /// A client and an empty cache.
    fn default() -> Upstreams {
        Upstreams {
            http: Http::new(),
            cache: Cache::default(),
        }
    }
}

/// A login waiting at a provider, stored under the hash of its `state`.
#[derive(Serialize, Deserialize)]
struct Attempt {
    login_id: String,
    provider: String,
    nonce: String,
    verifier: String,
    redirect_uri: String,
}

fn attempt_key(state: &str) -> String {
    format!("upstream:{}", hashed(state))
}

/// What the provider sent back to the callback.
#[derive(Default)]
pub struct Callback {
    /// `state`.
    pub state: Option<String>,
    /// `code`.
    pub code: Option<String>,
    /// `error` (the user declined, or the provider refused).
    pub error: Option<String>,
}

/// The browser at the callback: its `ca_csrf` cookie, address and `User-Agent`.
pub struct CallbackBrowser {
    /// The `ca_csrf` cookie.
    pub csrf_cookie: Option<String>,
    /// The client address.
    pub addr: IpAddr,
    /// The `User-Agent`.
    pub user_agent: String,
}

/// The provider `name` of `org`.
pub fn provider<'a>(org: &'a Organization, name: &str) -> Option<&'a Provider> {
    org.spec.login_methods.providers.iter().find(|p| p.name == name)
}

impl Flows {
    /// Our callback URL for provider `name` of `org`: what to register at the provider.
    pub fn provider_callback_url(&self, org: &Organization, name: &str) -> String {
        format!("{}/oauth/providers/{name}/callback", self.issuer(org))
    }

    /// Step 1 (see the module documentation): the URL of the provider's authorization endpoint.
    pub async fn start_provider(&self, p: &super::login::Pending, name: &str) -> Result<String, LoginError> {
        let provider = provider(&p.org, name).ok_or(LoginError::ProviderUnknown)?;
        let endpoint = self.authorization_endpoint(provider).await?;
        let (state, nonce, verifier) = (random_token(), random_token(), random_token());
        let attempt = Attempt {
            login_id: p.login_id.clone(),
            provider: name.to_string(),
            nonce,
            verifier,
            redirect_uri: self.provider_callback_url(&p.org, name),
        };
        json::put(self.store.as_ref(), &attempt_key(&state), &attempt, LOGIN_TTL).await?;
        let is_oidc = provider.type_ != ProviderType::GitHub;
        let request = Authorization {
            client_id: &provider.client_id,
            redirect_uri: &attempt.redirect_uri,
            scope: &scopes(provider),
            state: &state,
            code_challenge: &pkce::s256(&attempt.verifier),
            nonce: is_oidc.then_some(attempt.nonce.as_str()),
        };
        tracing::info!(org = %p.org.name_any(), provider = name, "login sent to the provider");
        Ok(request.url(&endpoint))
    }

    async fn authorization_endpoint(&self, provider: &Provider) -> Result<String, LoginError> {
        let Some(issuer) = issuer(provider) else {
            return Ok(github_endpoints(provider).authorize);
        };
        let up = &self.upstreams;
        match up.cache.get(&up.http, &issuer).await {
            Ok(entry) => Ok(entry.discovery.authorization_endpoint.clone()),
            Err(e) => Err(unavailable(provider, &e)),
        }
    }

    /// Step 2 (see the module documentation): the completed login, or why not.
    pub async fn provider_callback(
        &self,
        name: &str,
        cb: Callback,
        browser: CallbackBrowser,
    ) -> Result<Completed, LoginError> {
        let state = cb.state.ok_or(LoginError::Expired)?;
        let store = self.store.as_ref();
        let attempt: Attempt = json::take(store, &attempt_key(&state))
            .await?
            .ok_or(LoginError::Expired)?;
        if attempt.provider != name {
            return Err(LoginError::Expired);
        }
        let cookie = browser.csrf_cookie.as_deref().unwrap_or_default();
        let mut p = self.pending(&attempt.login_id, cookie, Some(cookie)).await?;
        p.addr = Some(browser.addr);
        p.user_agent = Some(browser.user_agent);
        let provider = provider(&p.org, name).ok_or(LoginError::ProviderUnknown)?.clone();
        let failed = |e: LoginError| {
            self.metrics.login(LoginMethod::provider, LoginOutcome::failure);
            e
        };
        if let Some(error) = cb.error {
            let error: String = error.chars().filter(char::is_ascii_alphanumeric).take(40).collect();
            tracing::info!(provider = name, error, "the provider did not confirm the login");
            return Err(failed(LoginError::ProviderDenied(provider.label())));
        }
        let code = cb.code.ok_or(LoginError::Incomplete)?;
        let identity = self.redeem(&p.org, &provider, &attempt, &code).await.map_err(failed)?;
        let admitted = self
            .admit_provider(&p.org, &provider, &identity)
            .await
            .map_err(|e| match e {
                LoginError::DirectoryUnavailable => e,
                e => failed(e),
            })?;
        self.complete_admitted(&p, &login_key(&attempt.login_id), admitted, LoginMethod::provider)
            .await
    }

    /// Redeems `code` at `provider` and says who the user is.
    async fn redeem(
        &self,
        org: &Organization,
        provider: &Provider,
        attempt: &Attempt,
        code: &str,
    ) -> Result<Identity, LoginError> {
        let secret = self.provider_secret(org, provider)?;
        let up = &self.upstreams;
        let result = match issuer(provider) {
            Some(issuer) => {
                let x = oidc::Exchange {
                    rule: email_rule(provider.type_),
                    issuer: &issuer,
                    client_id: &provider.client_id,
                    client_secret: &secret,
                    redirect_uri: &attempt.redirect_uri,
                    code,
                    verifier: &attempt.verifier,
                    nonce: &attempt.nonce,
                };
                oidc::exchange(&up.http, &up.cache, &x).await
            }
            None => {
                let x = github::Exchange {
                    client_id: &provider.client_id,
                    client_secret: &secret,
                    redirect_uri: &attempt.redirect_uri,
                    code,
                    verifier: &attempt.verifier,
                };
                github::exchange(&up.http, &github_endpoints(provider), &x).await
            }
        };
        result.map_err(|e| refused(provider, &e))
    }

    /// The client secret of `provider` from the watched Secret (never read from the API
    /// server on a request).
    fn provider_secret(&self, org: &Organization, provider: &Provider) -> Result<String, LoginError> {
        let r = &provider.client_secret_ref;
        let ns = org.namespace().unwrap_or_default();
        let value = self.secrets.value(&ns, &r.name, &r.key).ok_or_else(|| {
            tracing::warn!(provider = %provider.name, secret = %r.name, key = %r.key, "the provider's client secret is not available: the Secret or key is missing");
            LoginError::ProviderUnavailable(provider.label())
        })?;
        Ok(String::from_utf8_lossy(&value).into_owned())
    }

    /// The directory step of a provider login: the user already linked to this provider
    /// subject (found by its label, whatever address the provider shows now), else the user
    /// of the address the provider asserts is verified — linked from now on. No verified
    /// address and no linked user: refused.
    pub async fn admit_provider(
        &self,
        org: &Organization,
        provider: &Provider,
        identity: &Identity,
    ) -> Result<Admitted, LoginError> {
        let org_name = org.name_any();
        let key = provider_label(&provider.name);
        let hash = provider_subject_hash(&org_name, &provider.name, &identity.subject);
        let linked = self.linked_user(org, &key, &hash).await?;
        let email = match (linked, &identity.verified_email) {
            (Some(user), _) => user.spec.email,
            (None, Some(email)) => email.clone(),
            (None, None) => return Err(LoginError::ProviderEmailUnverified(provider.label())),
        };
        let link = Link {
            type_: &provider.name,
            subject: Some(&identity.subject),
            label: Some((key, hash)),
        };
        self.admit_with(org, &email, &link).await.map_err(|e| match e {
            LoginError::ProviderAccountConflict(_) => LoginError::ProviderAccountConflict(provider.label()),
            e => e,
        })
    }

    /// The User of `org` carrying label `key=hash` ([`Flows::users_labelled`]), not being
    /// deleted (one label-selected list of the namespace's Users).
    async fn linked_user(&self, org: &Organization, key: &str, hash: &str) -> Result<Option<User>, LoginError> {
        let users = self.users_labelled(org, key, hash).await?;
        let org_name = org.name_any();
        Ok(users
            .into_iter()
            .find(|u| u.spec.organization == org_name && u.meta().deletion_timestamp.is_none()))
    }
}

/// The page for a provider that cannot be reached; the log says why.
fn unavailable(provider: &Provider, e: &UpstreamError) -> LoginError {
    tracing::warn!(provider = %provider.name, error = %e, "the provider cannot be used");
    LoginError::ProviderUnavailable(provider.label())
}

/// The page for a provider whose answer did not verify (or could not be fetched).
fn refused(provider: &Provider, e: &UpstreamError) -> LoginError {
    match e {
        UpstreamError::Unreachable { .. }
        | UpstreamError::Status { .. }
        | UpstreamError::TooLarge { .. }
        | UpstreamError::NotJson { .. }
        | UpstreamError::Discovery { .. } => unavailable(provider, e),
        _ => {
            tracing::warn!(provider = %provider.name, error = %e, "the provider's answer was refused");
            LoginError::ProviderRefused(provider.label())
        }
    }
}

/// Shared [`Upstreams`] for [`Flows`].
pub type SharedUpstreams = Arc<Upstreams>;

/// The scopes to ask `provider` for: its `scopes`, else the type's default; `openid` always
/// for the OpenID Connect types.
pub fn scopes(provider: &Provider) -> String {
    let mut scopes: Vec<&str> = provider.scopes.iter().map(String::as_str).collect();
    if scopes.is_empty() {
        scopes = match provider.type_ {
            ProviderType::GitHub => vec!["read:user", "user:email"],
            _ => vec!["openid", "email", "profile"],
        };
    }
    if provider.type_ != ProviderType::GitHub && !scopes.contains(&"openid") {
        scopes.insert(0, "openid");
    }
    scopes.join(" ")
}

/// The issuer of an OpenID Connect provider: `issuer`, Google's, or Microsoft's for its
/// tenant (default `organizations`); `None` for GitHub.
pub fn issuer(provider: &Provider) -> Option<String> {
    match provider.type_ {
        ProviderType::Oidc => provider.issuer.as_ref().map(|i| i.trim_end_matches('/').to_string()),
        ProviderType::Google => Some(oidc::GOOGLE_ISSUER.to_string()),
        ProviderType::Microsoft => Some(format!(
            "https://login.microsoftonline.com/{}/v2.0",
            provider.tenant.as_deref().unwrap_or("organizations")
        )),
        ProviderType::GitHub => None,
    }
}

/// Which claim says a provider's address is verified (Microsoft: `xms_edov` only).
pub fn email_rule(kind: ProviderType) -> EmailRule {
    match kind {
        ProviderType::Microsoft => EmailRule::Microsoft,
        _ => EmailRule::EmailVerified,
    }
}

/// The endpoints of a GitHub provider (github.com, or its `enterpriseUrl`).
fn github_endpoints(provider: &Provider) -> github::Endpoints {
    github::endpoints(provider.enterprise_url.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::SecretKeyRef;

    fn provider(type_: ProviderType) -> Provider {
        Provider {
            name: "p".into(),
            type_,
            client_id: "c".into(),
            client_secret_ref: SecretKeyRef {
                name: "s".into(),
                key: "k".into(),
            },
            issuer: Some("https://idp.example/".into()),
            tenant: None,
            enterprise_url: None,
            scopes: vec![],
            display_name: None,
        }
    }

    #[test]
    fn presets_give_issuers_scopes_and_claim_rules() {
        assert_eq!(issuer(&provider(ProviderType::Oidc)).unwrap(), "https://idp.example");
        assert_eq!(
            issuer(&provider(ProviderType::Google)).unwrap(),
            "https://accounts.google.com"
        );
        let mut ms = provider(ProviderType::Microsoft);
        assert_eq!(
            issuer(&ms).unwrap(),
            "https://login.microsoftonline.com/organizations/v2.0"
        );
        ms.tenant = Some("contoso.onmicrosoft.com".into());
        assert_eq!(
            issuer(&ms).unwrap(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
        );
        assert_eq!(email_rule(ProviderType::Microsoft), EmailRule::Microsoft);
        assert_eq!(email_rule(ProviderType::Google), EmailRule::EmailVerified);
        assert_eq!(issuer(&provider(ProviderType::GitHub)), None);
        assert_eq!(scopes(&provider(ProviderType::GitHub)), "read:user user:email");
        let mut custom = provider(ProviderType::Oidc);
        custom.scopes = vec!["email".into()];
        assert_eq!(scopes(&custom), "openid email");
        assert_eq!(scopes(&provider(ProviderType::Google)), "openid email profile");
        let mut gh = provider(ProviderType::GitHub);
        assert_eq!(github_endpoints(&gh).api, "https://api.github.com");
        gh.enterprise_url = Some("https://github.example.com/".into());
        let e = github_endpoints(&gh);
        assert_eq!(e.api, "https://github.example.com/api/v3");
        assert_eq!(e.token, "https://github.example.com/login/oauth/access_token");
    }
}
