//! HTTP servers: the public login/OAuth server and the admin listener.

pub mod admin;

use axum::Router;

/// The public router (login and OAuth endpoints).
pub fn public_router() -> Router {
    Router::new()
}
