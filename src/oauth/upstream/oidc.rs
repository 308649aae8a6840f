//! OpenID Connect providers (generic, Google, Microsoft): discovery and JWKS, cached per issuer
//! and refreshed on an unknown `kid`; the code exchange (PKCE verifier, client secret by Basic
//! or in the body as the provider's discovery says); the ID token check ([`super::jwt`]); the
//! optional userinfo; and the rules deciding whether the provider's address is verified.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::fetch::Http;
use super::jwt::{self, Expect, Jwks, TokenError};
use super::{EmailRule, Identity, UpstreamError};

/// Google's issuer.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// How long discovery and JWKS are used before they are read again.
pub const FRESH_FOR: Duration = Duration::from_secs(3600);
/// How long a cached entry still serves when the provider cannot be reached.
const STALE_FOR: Duration = Duration::from_secs(24 * 3600);
/// The shortest interval between two JWKS reads of one issuer for unknown `kid`s.
const KID_REFRESH_EVERY: Duration = Duration::from_secs(10);

/// The members of a discovery document this client uses.
#[derive(Deserialize, Clone, Debug)]
pub struct Discovery {
    /// `issuer`.
    pub issuer: String,
    /// `authorization_endpoint`.
    pub authorization_endpoint: String,
    /// `token_endpoint`.
    pub token_endpoint: String,
    /// `jwks_uri`.
    pub jwks_uri: String,
    /// `userinfo_endpoint`.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// `token_endpoint_auth_methods_supported` (absent: `client_secret_basic`).
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

/// One issuer's discovery and keys, with when they were read.
pub struct Entry {
    /// The discovery document.
    pub discovery: Discovery,
    /// The JWKS.
    pub jwks: Jwks,
    fetched: Instant,
    /// When the JWKS was last read again for an unknown key ID.
    keys_refreshed: Option<Instant>,
}

/// Discovery and JWKS per issuer.
#[derive(Default)]
pub struct Cache {
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

impl Cache {
    fn cached(&self, issuer: &str) -> Option<Arc<Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(issuer)
            .cloned()
    }

    fn store(&self, issuer: &str, entry: Entry) -> Arc<Entry> {
        let entry = Arc::new(entry);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(issuer.to_string(), entry.clone());
        entry
    }

    /// The discovery and keys of `issuer`: cached while fresh, read again after
    /// [`FRESH_FOR`]; a stale entry still serves (for a day) while the provider is unreachable.
    pub async fn get(&self, http: &Http, issuer: &str) -> Result<Arc<Entry>, UpstreamError> {
        let cached = self.cached(issuer);
        if let Some(e) = cached.as_ref().filter(|e| e.fetched.elapsed() < FRESH_FOR) {
            return Ok(e.clone());
        }
        match read(http, issuer).await {
            Ok(entry) => Ok(self.store(issuer, entry)),
            Err(e) => match cached.filter(|c| c.fetched.elapsed() < STALE_FOR) {
                Some(stale) => {
                    tracing::warn!(issuer, error = %e, "the provider's discovery could not be read again; using the cached one");
                    Ok(stale)
                }
                None => Err(e),
            },
        }
    }

    /// Reads the JWKS of `issuer` again (a token named a key the cache does not hold), at most
    /// once per [`KID_REFRESH_EVERY`]; the entry to verify with.
    pub async fn refresh_keys(&self, http: &Http, issuer: &str) -> Result<Arc<Entry>, UpstreamError> {
        let cached = self.get(http, issuer).await?;
        if cached.keys_refreshed.is_some_and(|t| t.elapsed() < KID_REFRESH_EVERY) {
            return Ok(cached);
        }
        let jwks: Jwks = http.get_json(&cached.discovery.jwks_uri, None).await?;
        tracing::info!(issuer, kids = ?jwks.kids(), "the provider's JWKS was read again for an unknown key ID");
        Ok(self.store(
            issuer,
            Entry {
                discovery: cached.discovery.clone(),
                jwks,
                fetched: cached.fetched,
                keys_refreshed: Some(Instant::now()),
            },
        ))
    }

    /// The key IDs cached for `issuer` (for tests).
    pub fn cached_kids(&self, issuer: &str) -> Vec<String> {
        self.cached(issuer).map(|e| e.jwks.kids()).unwrap_or_default()
    }
}

/// Reads and checks the discovery document of `issuer`, then its JWKS.
pub async fn read(http: &Http, issuer: &str) -> Result<Entry, UpstreamError> {
    let url = format!("{issuer}/.well-known/openid-configuration");
    let discovery: Discovery = http.get_json(&url, None).await?;
    check_discovery(issuer, &discovery)?;
    let jwks: Jwks = http.get_json(&discovery.jwks_uri, None).await?;
    Ok(Entry {
        discovery,
        jwks,
        fetched: Instant::now(),
        keys_refreshed: None,
    })
}

/// The discovery document must name the configured issuer (Microsoft's multi-tenant documents
/// name `{tenantid}`), and its endpoints must be `https://` unless the issuer itself is `http://`
/// (a development provider on loopback, admitted by `allowLocalhost`).
fn check_discovery(issuer: &str, d: &Discovery) -> Result<(), UpstreamError> {
    let problem = |p: String| UpstreamError::Discovery {
        issuer: issuer.to_string(),
        problem: p,
    };
    let same = d.issuer.trim_end_matches('/') == issuer || microsoft_template_matches(&d.issuer, issuer);
    if !same {
        return Err(problem(format!("it names issuer {}", d.issuer)));
    }
    let scheme_ok = |u: &str| u.starts_with("https://") || issuer.starts_with("http://");
    for (name, url) in [
        ("authorization_endpoint", &d.authorization_endpoint),
        ("token_endpoint", &d.token_endpoint),
        ("jwks_uri", &d.jwks_uri),
    ] {
        if !scheme_ok(url) {
            return Err(problem(format!("{name} {url} is not https://")));
        }
    }
    Ok(())
}

/// Whether `named` is Microsoft's `…/{tenantid}/v2.0` template and `issuer` one of its
/// multi-tenant issuers (`organizations`, `common`, `consumers`).
fn microsoft_template_matches(named: &str, issuer: &str) -> bool {
    let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
    named == template
        && ["organizations", "common", "consumers"]
            .iter()
            .any(|t| issuer == format!("https://login.microsoftonline.com/{t}/v2.0"))
}

/// The issuer an ID token must carry: the discovery's, with Microsoft's `{tenantid}` replaced
/// by the token's own `tid` (Microsoft's documented check for multi-tenant apps).
fn expected_issuer(discovery: &Discovery, token: &str) -> String {
    if !discovery.issuer.contains("{tenantid}") {
        return discovery.issuer.clone();
    }
    let tid = unverified_claims(token)
        .and_then(|c| c["tid"].as_str().map(str::to_string))
        .filter(|t| t.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        .unwrap_or_default();
    discovery.issuer.replace("{tenantid}", &tid)
}

fn unverified_claims(token: &str) -> Option<Value> {
    Some(crate::oauth::jws::parse(token)?.claims)
}

/// One code exchange: the provider, its secret and what the login sent.
pub struct Exchange<'a> {
    /// Which claim says the address is verified.
    pub rule: EmailRule,
    /// Its issuer.
    pub issuer: &'a str,
    /// This organization's client ID there.
    pub client_id: &'a str,
    /// Its client secret.
    pub client_secret: &'a str,
    /// Our callback URL (as sent).
    pub redirect_uri: &'a str,
    /// The code from the callback.
    pub code: &'a str,
    /// The PKCE verifier of the login.
    pub verifier: &'a str,
    /// The nonce of the login.
    pub nonce: &'a str,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// Redeems the code, verifies the ID token and says who the user is.
pub async fn exchange(http: &Http, cache: &Cache, x: &Exchange<'_>) -> Result<Identity, UpstreamError> {
    let entry = cache.get(http, x.issuer).await?;
    let d = &entry.discovery;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", x.code),
        ("redirect_uri", x.redirect_uri),
        ("code_verifier", x.verifier),
    ];
    let methods = &d.token_endpoint_auth_methods_supported;
    let basic = methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic");
    if !basic {
        form.extend([("client_id", x.client_id), ("client_secret", x.client_secret)]);
    }
    let creds = basic.then_some((x.client_id, x.client_secret));
    let answer: TokenAnswer = http.post_form(&d.token_endpoint, &form, creds).await?;
    if let Some(error) = answer.error {
        return Err(UpstreamError::TokenRefused(error.chars().take(64).collect()));
    }
    let id_token = answer.id_token.ok_or(UpstreamError::Incomplete("an id_token"))?;
    let claims = verify_with_refresh(http, cache, x, entry.clone(), &id_token).await?;
    let mut found = identity(x.rule, &claims);
    let ask_userinfo = found.verified_email.is_none() && claims.get("email").is_none();
    if ask_userinfo
        && x.rule == EmailRule::EmailVerified
        && let (Some(url), Some(token)) = (&d.userinfo_endpoint, &answer.access_token)
    {
        found.verified_email = userinfo_email(http, url, token, &found.subject).await;
    }
    Ok(found)
}

/// Verifies `id_token` with the cached keys, reading the JWKS again once when it names a key
/// the cache does not hold (the provider rotated its keys).
async fn verify_with_refresh(
    http: &Http,
    cache: &Cache,
    x: &Exchange<'_>,
    entry: Arc<Entry>,
    id_token: &str,
) -> Result<Value, UpstreamError> {
    let expect = |e: &Entry| (expected_issuer(&e.discovery, id_token), crate::oauth::now());
    let (issuer, now) = expect(&entry);
    let check = |jwks: &Jwks, issuer: &str| {
        let ex = Expect {
            issuer,
            audience: x.client_id,
            nonce: x.nonce,
            now,
        };
        jwt::verify(jwks, id_token, &ex)
    };
    match check(&entry.jwks, &issuer) {
        Err(TokenError::UnknownKey(_)) => {
            let fresh = cache.refresh_keys(http, x.issuer).await?;
            Ok(check(&fresh.jwks, &issuer)?)
        }
        other => Ok(other?),
    }
}

/// The address userinfo asserts as verified, when its `sub` is the ID token's.
async fn userinfo_email(http: &Http, url: &str, token: &str, subject: &str) -> Option<String> {
    let info: Value = match http.get_json(url, Some(token)).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "the provider's userinfo could not be read");
            return None;
        }
    };
    (info["sub"].as_str() == Some(subject))
        .then(|| verified_email(&info, "email_verified"))
        .flatten()
}

/// Whether a claim says yes: `true`, or the strings `"true"` / `"1"` some providers send.
fn yes(v: &Value) -> bool {
    matches!(v, Value::Bool(true)) || matches!(v.as_str(), Some("true" | "1")) || v.as_i64() == Some(1)
}

fn verified_email(claims: &Value, flag: &str) -> Option<String> {
    let email = claims["email"].as_str().filter(|e| e.contains('@'))?;
    yes(&claims[flag]).then(|| super::normalize(email))
}

/// Who verified ID token claims say the user is. The address counts only when the provider
/// asserts it is verified: `email_verified` for generic OIDC and Google; for Microsoft only
/// `xms_edov` (the e-mail domain is verified by the tenant that owns it), never its mutable
/// `email` claim alone — an attacker's tenant can set any `email` (the "nOAuth" takeover).
pub fn identity(rule: EmailRule, claims: &Value) -> Identity {
    let subject = claims["sub"].as_str().unwrap_or_default().to_string();
    let verified_email = match rule {
        EmailRule::Microsoft => verified_email(claims, "xms_edov"),
        EmailRule::EmailVerified => verified_email(claims, "email_verified"),
    };
    Identity {
        subject,
        verified_email,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_address_counts_only_when_the_provider_asserts_it_is_verified() {
        let c = json!({"sub": "s", "email": "Ada@Example.com", "email_verified": true});
        assert_eq!(
            identity(EmailRule::EmailVerified, &c).verified_email.as_deref(),
            Some("ada@example.com")
        );
        let c = json!({"sub": "s", "email": "ada@example.com", "email_verified": false});
        assert_eq!(identity(EmailRule::EmailVerified, &c).verified_email, None);
        let c = json!({"sub": "s", "email": "ada@example.com", "email_verified": "true"});
        assert!(identity(EmailRule::EmailVerified, &c).verified_email.is_some());
        let c = json!({"sub": "s", "email": "ada@example.com"});
        assert_eq!(identity(EmailRule::EmailVerified, &c).verified_email, None);
    }

    #[test]
    fn microsofts_email_claim_alone_never_links() {
        // nOAuth: any tenant admin can set `email` of their users to anyone's address.
        let c = json!({"sub": "s", "email": "ceo@victim.example", "email_verified": true});
        assert_eq!(identity(EmailRule::Microsoft, &c).verified_email, None);
        let c = json!({"sub": "s", "email": "ada@contoso.com", "xms_edov": true});
        assert_eq!(
            identity(EmailRule::Microsoft, &c).verified_email.as_deref(),
            Some("ada@contoso.com")
        );
        let c = json!({"sub": "s", "email": "ada@contoso.com", "xms_edov": "1"});
        assert!(identity(EmailRule::Microsoft, &c).verified_email.is_some());
    }

    fn discovery(issuer: &str) -> Discovery {
        Discovery {
            issuer: issuer.into(),
            authorization_endpoint: "https://idp.example/auth".into(),
            token_endpoint: "https://idp.example/token".into(),
            jwks_uri: "https://idp.example/jwks".into(),
            userinfo_endpoint: None,
            token_endpoint_auth_methods_supported: vec![],
        }
    }

    #[test]
    fn discovery_must_name_the_configured_issuer() {
        assert!(check_discovery("https://idp.example", &discovery("https://idp.example")).is_ok());
        assert!(check_discovery("https://idp.example", &discovery("https://other.example")).is_err());
        let ms = "https://login.microsoftonline.com/{tenantid}/v2.0";
        assert!(check_discovery("https://login.microsoftonline.com/organizations/v2.0", &discovery(ms)).is_ok());
        assert!(check_discovery("https://idp.example", &discovery(ms)).is_err());
        let mut d = discovery("https://idp.example");
        d.token_endpoint = "http://idp.example/token".into();
        assert!(
            check_discovery("https://idp.example", &d).is_err(),
            "plain http endpoint"
        );
    }

    #[test]
    fn microsoft_multi_tenant_tokens_must_carry_their_own_tenant_in_iss() {
        use base64::Engine;
        let claims = json!({"tid": "9188040d-6c67-4c5b-b112-36a304b66dad"});
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
        let token = format!("e30.{body}.sig");
        let d = discovery("https://login.microsoftonline.com/{tenantid}/v2.0");
        assert_eq!(
            expected_issuer(&d, &token),
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
        );
        assert_eq!(
            expected_issuer(&discovery("https://idp.example"), &token),
            "https://idp.example"
        );
    }
}
