//! GitHub (github.com, or a GitHub Enterprise Server by `enterpriseUrl`): OAuth 2 with PKCE,
//! then its REST API — `GET /user` for the stable numeric ID, `GET /user/emails` for the
//! address. Only the primary address counts, and only when GitHub marks it verified.

use serde::Deserialize;

use super::fetch::Http;
use super::{Identity, UpstreamError};

/// github.com's web and API roots.
const GITHUB_WEB: &str = "https://github.com";
const GITHUB_API: &str = "https://api.github.com";

/// A GitHub's endpoints.
pub struct Endpoints {
    /// Where the browser authorizes.
    pub authorize: String,
    /// Where the code is redeemed.
    pub token: String,
    /// The REST API root.
    pub api: String,
}

/// github.com's endpoints, or those of the Enterprise Server at `enterpriseUrl` (API under
/// `/api/v3`).
pub fn endpoints(enterprise_url: Option<&str>) -> Endpoints {
    let (web, api) = match enterprise_url {
        Some(base) => {
            let base = base.trim_end_matches('/');
            (base.to_string(), format!("{base}/api/v3"))
        }
        None => (GITHUB_WEB.to_string(), GITHUB_API.to_string()),
    };
    Endpoints {
        authorize: format!("{web}/login/oauth/authorize"),
        token: format!("{web}/login/oauth/access_token"),
        api,
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct GitHubUser {
    id: u64,
}

/// One entry of `GET /user/emails`.
#[derive(Deserialize, Clone, Debug)]
pub struct GitHubEmail {
    /// The address.
    pub email: String,
    /// The account's primary address.
    #[serde(default)]
    pub primary: bool,
    /// GitHub verified it.
    #[serde(default)]
    pub verified: bool,
}

/// One code exchange at GitHub.
pub struct Exchange<'a> {
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
}

/// Redeems the code and reads who the user is.
pub async fn exchange(http: &Http, endpoints: &Endpoints, x: &Exchange<'_>) -> Result<Identity, UpstreamError> {
    let form = [
        ("client_id", x.client_id),
        ("client_secret", x.client_secret),
        ("code", x.code),
        ("redirect_uri", x.redirect_uri),
        ("code_verifier", x.verifier),
    ];
    let answer: TokenAnswer = http.post_form(&endpoints.token, &form, None).await?;
    if let Some(error) = answer.error {
        return Err(UpstreamError::TokenRefused(error.chars().take(64).collect()));
    }
    let token = answer
        .access_token
        .ok_or(UpstreamError::Incomplete("an access_token"))?;
    let user: GitHubUser = http.get_json(&format!("{}/user", endpoints.api), Some(&token)).await?;
    let emails: Vec<GitHubEmail> = http
        .get_json(&format!("{}/user/emails", endpoints.api), Some(&token))
        .await?;
    Ok(identity(user.id, &emails))
}

/// The identity of GitHub user `id` with `emails`: the primary address, when verified.
pub fn identity(id: u64, emails: &[GitHubEmail]) -> Identity {
    Identity {
        subject: id.to_string(),
        verified_email: emails
            .iter()
            .find(|e| e.primary && e.verified)
            .map(|e| super::normalize(&e.email)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(email: &str, primary: bool, verified: bool) -> GitHubEmail {
        GitHubEmail {
            email: email.into(),
            primary,
            verified,
        }
    }

    #[test]
    fn only_the_primary_verified_address_counts() {
        let emails = [
            email("other@example.com", false, true),
            email("Ada@Example.com", true, true),
        ];
        assert_eq!(identity(7, &emails).verified_email.as_deref(), Some("ada@example.com"));
        assert_eq!(identity(7, &emails).subject, "7");
        let unverified = [
            email("ada@example.com", true, false),
            email("other@example.com", false, true),
        ];
        assert_eq!(identity(7, &unverified).verified_email, None);
    }
}
