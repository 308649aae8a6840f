//! Admin listener: `/healthz` (the process is alive), `/readyz` (caches synced, the session
//! store reachable, and not shutting down), `/metrics` (Prometheus text format, see
//! [`crate::metrics`]).
//!
//! Every replica serves it, leader or not; it never calls the API server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::{self, Metrics};

/// Liveness and readiness shared between the wiring and the admin server. Ready means both:
/// the caches are synced and the process is not shutting down ([`Health::set_ready`]), and the
/// session store answered its last check ([`Health::set_store_reachable`]).
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    /// 0: not checked yet, 1: reachable, 2: unreachable.
    store: AtomicU8,
}

impl Health {
    /// Marks the process ready (or not) to serve: caches synced, not shutting down.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
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
        if !self.ready.load(Ordering::SeqCst) {
            return Some("not ready: caches not synced yet, or shutting down");
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
