//! Strict request parsing shared by the endpoints: form bodies (urlencoded or multipart) where
//! a repeated parameter is an error (RFC 6749 §3.1/§3.2: "parameters MUST NOT be included more
//! than once"), and HTTP Basic client credentials (RFC 6749 §2.3.1: form-urlencoded inside).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{HeaderMap, header};
use base64::Engine;

/// Why a request body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A parameter appears more than once.
    #[error("parameter {0} is repeated; send each parameter once")]
    Repeated(String),
    /// Not a form body, or malformed.
    #[error("the body must be application/x-www-form-urlencoded or multipart/form-data")]
    Malformed,
}

/// Parameters of a form, each present at most once.
#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` bytes (a query string too).
    pub fn from_urlencoded(bytes: &[u8]) -> Result<Params, FormError> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(FormError::Repeated(k.to_string()));
            }
        }
        Ok(Params(map))
    }

    /// A parameter; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Whether a parameter is present (even empty).
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Reads a form body, urlencoded or multipart.
    pub async fn from_request(req: Request) -> Result<Params, FormError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(req, &())
                .await
                .map_err(|_| FormError::Malformed)?;
            let mut map = HashMap::new();
            while let Some(field) = multipart.next_field().await.map_err(|_| FormError::Malformed)? {
                let name = field.name().unwrap_or_default().to_string();
                let value = field.text().await.map_err(|_| FormError::Malformed)?;
                if map.insert(name.clone(), value).is_some() {
                    return Err(FormError::Repeated(name));
                }
            }
            Ok(Params(map))
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            let bytes = Bytes::from_request(req, &()).await.map_err(|_| FormError::Malformed)?;
            Params::from_urlencoded(&bytes)
        } else {
            Err(FormError::Malformed)
        }
    }
}

/// Client credentials from an `Authorization: Basic` header.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// The client ID.
    pub client_id: String,
    /// The client secret.
    pub secret: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The Basic credentials of a request: `Ok(None)` without an Authorization header,
/// `Err` for a malformed one.
pub fn basic(headers: &HeaderMap) -> Result<Option<BasicCredentials>, FormError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| FormError::Malformed)?;
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else {
        return Err(FormError::Malformed);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| FormError::Malformed)?;
    let decoded = String::from_utf8(decoded).map_err(|_| FormError::Malformed)?;
    let (id, secret) = decoded.split_once(':').ok_or(FormError::Malformed)?;
    Ok(Some(BasicCredentials {
        client_id: form_unescape(id),
        secret: form_unescape(secret),
    }))
}

/// `s` form-urlencoding-decoded (`+` is a space, `%XX` a byte, `&` ends the value); copied
/// as it is when it has none of them, as generated client IDs and secrets do.
fn form_unescape(s: &str) -> String {
    if !s.contains(['%', '+', '&']) {
        return s.to_string();
    }
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

impl crate::flow::authorize::Query for Params {
    fn get(&self, name: &str) -> Option<&str> {
        Params::get(self, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(Params::from_urlencoded(b"a=1&b=2").is_ok());
        assert_eq!(
            Params::from_urlencoded(b"a=1&a=2").unwrap_err(),
            FormError::Repeated("a".into())
        );
        let p = Params::from_urlencoded(b"a=&b=x").unwrap();
        assert_eq!(p.get("a"), None);
        assert!(p.has("a"));
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode("my%3Aid:s%2Bcret");
        h.insert(header::AUTHORIZATION, format!("Basic {v}").parse().unwrap());
        let c = basic(&h).unwrap().unwrap();
        assert_eq!((c.client_id.as_str(), c.secret.as_str()), ("my:id", "s+cret"));
        h.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert!(basic(&h).is_err());
        let v = base64::engine::general_purpose::STANDARD.encode("plain-id:a=b&c");
        h.insert(header::AUTHORIZATION, format!("Basic {v}").parse().unwrap());
        let c = basic(&h).unwrap().unwrap();
        assert_eq!((c.client_id.as_str(), c.secret.as_str()), ("plain-id", "a=b"));
    }
}
