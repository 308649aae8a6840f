//! Client authentication as the endpoints use it: throttle check, then the argon2id verifier
//! (which answers an unknown client after a dummy verification, so both fail alike), then the
//! failure counters.

use std::net::IpAddr;
use std::sync::Arc;

use super::AppState;
use crate::crd::{ClientSecret, Organization};
use crate::oauth::throttle;

/// Why a client failed to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Unknown client or wrong secret (indistinguishable on purpose).
    Invalid,
    /// Too many recent failures for this client or address.
    Throttled,
    /// The store is unavailable.
    Unavailable,
}

impl AppState {
    /// Authenticates `client_id`/`secret` against `org` (None when no organization has that
    /// client ID, or the client ID does not belong to the organization the request is for).
    pub async fn authenticate_client(
        &self,
        org: Option<&Organization>,
        client_id: &str,
        secret: &str,
        addr: IpAddr,
    ) -> Result<Arc<ClientSecret>, AuthFailure> {
        let store = self.store.as_ref();
        let limits = self.settings.client_limits;
        match throttle::is_throttled(store, limits, "client", client_id, addr).await {
            Ok(false) => {}
            Ok(true) => return Err(AuthFailure::Throttled),
            Err(_) => return Err(AuthFailure::Unavailable),
        }
        let org = org.filter(|o| o.client_id() == Some(client_id));
        let secrets = org.map(|o| self.client_secrets_of(o)).unwrap_or_default();
        match self
            .verifier
            .authenticate_client(org, client_id, secret, &secrets)
            .await
        {
            Some(cs) => Ok(cs),
            None => {
                let _ = throttle::record_failure(store, limits, "client", client_id, addr).await;
                tracing::info!(client_id, "client authentication failed");
                Err(AuthFailure::Invalid)
            }
        }
    }
}
