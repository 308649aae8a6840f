//! HTTP servers: the public login/OAuth server and the admin listener.

pub mod admin;
pub mod well_known;

use axum::Router;

use crate::cache::Caches;
use crate::tenant::PublicBase;

/// What the public handlers share. Handlers read organizations, secrets and apps from the
/// caches, never from the API server.
#[derive(Clone)]
pub struct AppState {
    /// Reflector caches of the three kinds.
    pub caches: Caches,
    /// How the public server is reached.
    pub public: PublicBase,
}

/// The public router (login and OAuth endpoints).
pub fn public_router(state: AppState) -> Router {
    Router::new().merge(well_known::router()).with_state(state)
}
