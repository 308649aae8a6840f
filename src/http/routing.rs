//! The host of a request, the key of host-based routing ([`crate::flow::directory`] says which
//! organization a host or client ID names).

use axum::http::HeaderMap;

/// The request's host name, lower-cased, without port.
pub fn host(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(axum::http::header::HOST)?.to_str().ok()?;
    let name = if raw.starts_with('[') {
        raw.split_inclusive(']').next()?
    } else {
        raw.split(':').next()?
    };
    Some(name.to_ascii_lowercase())
}
