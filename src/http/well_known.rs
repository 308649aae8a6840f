//! `/.well-known/apple-app-site-association` and `/.well-known/assetlinks.json` for app-link
//! hosts, answered from the caches (never the API server).
//!
//! The request's `Host` (port ignored) selects the apps, with the same rules as the NativeApp
//! controller ([`applinks::listed_on`]): so what is served is what the ConfigMap holds and
//! what the association check expects. Both files are `application/json`, served directly
//! (no redirect; the AASA has no extension); a host with no listed app gets 404.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::applinks::{self, AASA_PATH, ASSETLINKS_PATH};

/// The two routes, to merge into the public router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(AASA_PATH, get(apple_app_site_association))
        .route(ASSETLINKS_PATH, get(assetlinks))
}

#[derive(Clone, Copy)]
enum File {
    Aasa,
    AssetLinks,
}

async fn apple_app_site_association(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    serve(&state, &headers, &uri, File::Aasa)
}

async fn assetlinks(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    serve(&state, &headers, &uri, File::AssetLinks)
}

fn serve(state: &AppState, headers: &HeaderMap, uri: &Uri, file: File) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.host())
        .map(applinks::normalize_host)
        .unwrap_or_default();
    let apps = state.caches.native_apps.state();
    let listed = applinks::listed_on(&host, &state.caches.organizations, &apps);
    tracing::debug!(host, apps = listed.len(), "association file requested");
    if listed.is_empty() {
        return (StatusCode::NOT_FOUND, "no app links are registered for this host\n").into_response();
    }
    let files = applinks::host_files(&listed);
    let body = match file {
        File::Aasa => files.aasa,
        File::AssetLinks => files.assetlinks,
    };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}
