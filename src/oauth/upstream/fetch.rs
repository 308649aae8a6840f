//! The HTTP client towards upstream providers: rustls with `ring` and the platform's trust
//! store, no redirects followed, a timeout on every request and a size limit on every answer,
//! so a provider that is slow, down or answering garbage costs a bounded wait and a clear
//! error, never a hang.

use std::time::Duration;

use reqwest::header;
use serde::de::DeserializeOwned;

use super::UpstreamError;

/// Longest wait for a provider's answer (connect included).
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read from a provider (discovery, JWKS, tokens, user data).
pub const MAX_BODY: usize = 256 * 1024;

/// The client (connections pooled across requests and organizations).
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
}

impl Default for Http {
    fn default() -> Http {
        Http::new()
    }
}

impl Http {
    /// Builds the client; installs rustls' `ring` provider as the process default if none is.
    /// (Building fails only when TLS cannot be set up at all, which the kube client needs too:
    /// then reqwest's default client is used and its own error surfaces at the first request.)
    pub fn new() -> Http {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TIMEOUT)
            .user_agent(concat!("centralauth-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot build the HTTP client for upstream providers");
                reqwest::Client::default()
            });
        Http { client }
    }

    /// GET `url` (with `bearer` when given) and decode its JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str, bearer: Option<&str>) -> Result<T, UpstreamError> {
        let mut req = self.client.get(url).header(header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        self.json(url, req).await
    }

    /// POST `form` to `url` (with Basic `basic` credentials when given) and decode the JSON
    /// answer, also from a 4xx (token endpoints answer errors as JSON).
    pub async fn post_form<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<T, UpstreamError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .client
            .post(url)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let Some((id, secret)) = basic {
            // RFC 6749 §2.3.1: both parts form-urlencoded before Basic encoding.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(id), Some(enc(secret)));
        }
        self.json(url, req).await
    }

    async fn json<T: DeserializeOwned>(&self, url: &str, req: reqwest::RequestBuilder) -> Result<T, UpstreamError> {
        let unreachable = |e: reqwest::Error| UpstreamError::Unreachable {
            url: without_query(url),
            detail: crate::association::error_chain(&e),
        };
        let mut resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        if status.is_server_error() || status.is_redirection() || status.is_informational() {
            return Err(UpstreamError::Status {
                url: without_query(url),
                status: status.as_u16(),
            });
        }
        let mut body = vec![];
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(UpstreamError::TooLarge {
                    url: without_query(url),
                });
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| UpstreamError::NotJson {
            url: without_query(url),
            status: status.as_u16(),
        })
    }
}

/// `url` without its query (which may carry a code): what errors and logs name.
fn without_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or_default().to_string()
}
