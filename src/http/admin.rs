//! Admin listener: `/healthz` (the process is alive), `/readyz` (caches, the Secrets they name
//! and the signing keys loaded, the session store reachable, and not shutting down),
//! `/metrics` (Prometheus text format, see [`crate::runtime::metrics`]).
//!
//! Every replica serves it, leader or not; it never calls the API server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::runtime::metrics::{self, Metrics};

/// Liveness and readiness shared between the wiring and the admin server. Ready means all of:
/// everything the request path reads is loaded ([`Health::set_loaded`]: caches, the Secrets
/// they name, signing keys), the process is not shutting down ([`Health::set_terminating`],
/// final), and the session store answered its last check ([`Health::set_store_reachable`]).
#[derive(Debug, Default)]
pub struct Health {
    loaded: AtomicBool,
    terminating: AtomicBool,
    /// 0: not checked yet, 1: reachable, 2: unreachable.
    store: AtomicU8,
}

impl Health {
    /// Records that the caches, the Secrets they name and the signing keys are loaded.
    pub fn set_loaded(&self) {
        self.loaded.store(true, Ordering::SeqCst);
    }

    /// Records that shutdown began: never ready again, whatever finishes loading later.
    pub fn set_terminating(&self) {
        self.terminating.store(true, Ordering::SeqCst);
    }

    /// Records whether the session store answered its last check.
    pub fn set_store_reachable(&self, reachable: bool) {
        self.store.store(if reachable { 1 } else { 2 }, Ordering::SeqCst);
    }

    /// Whether the process is ready to serve.
    pub fn is_ready(&self) -> bool {
        self.not_ready_because().is_none()
    }

    /// Why the process is not ready, if it is not.
    pub fn not_ready_because(&self) -> Option<&'static str> {
        if self.terminating.load(Ordering::SeqCst) {
            return Some("not ready: shutting down");
        }
        if !self.loaded.load(Ordering::SeqCst) {
            return Some("not ready: caches, Secrets or signing keys not loaded yet");
        }
        match self.store.load(Ordering::SeqCst) {
            1 => None,
            0 => Some("not ready: the session store has not answered yet"),
            _ => Some("not ready: the session store is unreachable"),
        }
    }
}

#[derive(Clone)]
struct AdminState {
    health: Arc<Health>,
    metrics: Metrics,
}

/// Routes of the admin listener.
pub fn router(health: Arc<Health>, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(AdminState { health, metrics })
}

async fn readyz(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    match state.health.not_ready_because() {
        None => (StatusCode::OK, "ready"),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn render_metrics(State(state): State<AdminState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.render())
}

#[cfg(test)]
mod tests {
    use super::Health;

    #[test]
    fn ready_needs_everything_loaded_and_the_store_and_shutdown_is_final() {
        let health = Health::default();
        health.set_store_reachable(true);
        assert!(!health.is_ready(), "nothing loaded yet");
        health.set_loaded();
        assert!(health.is_ready());
        health.set_store_reachable(false);
        assert_eq!(
            health.not_ready_because(),
            Some("not ready: the session store is unreachable")
        );
        health.set_store_reachable(true);
        health.set_terminating();
        assert_eq!(health.not_ready_because(), Some("not ready: shutting down"));
        // Loading that finishes after SIGTERM does not make the process ready again.
        let late = Health::default();
        late.set_store_reachable(true);
        late.set_terminating();
        late.set_loaded();
        assert!(!late.is_ready());
    }
}
