//! HTTP servers: the public login/OAuth server and the admin listener.
//!
//! The public server speaks two protocols from the same binary, for every Organization,
//! host-routed (see [`crate::flow::directory`]):
//! - CentralAuth: `GET|POST /login` (and the e-mail code steps `POST /login/email`, `/login/code`; a provider's button `POST /login/provider` and its callback `GET /oauth/providers/<name>/callback`), `POST /api/v1/verify`, `/api/v1/userinfo`, `/api/v1/logout`, `/api/v1/authenticate_direct` (and `GET /login/direct`, where its attempt continues in the browser).
//! - OAuth 2.1 / OIDC: discovery, `/oauth2/{authorize,token,revoke,introspect,userinfo,jwks}`,
//!   at the root of an organization's own host, or under `/o/<clientId>` on the base domain.
//!
//! Handlers only extract and render: each parses its request, calls a flow of
//! [`crate::flow`] (which reads organizations, secrets and apps from the reflector caches,
//! Secrets from [`crate::runtime::secrets::SecretsView`] and keys from [`crate::runtime::keys::KeyRing`] — never from the API
//! server) and renders the result ([`html`] for pages, [`error`] for error answers). Every response carries `Cache-Control: no-store`; every request
//! runs in a `tracing` span with method and path (never the query, which holds codes).

pub mod admin;
pub mod centralauth;
pub mod email_link;
pub mod email_login;
pub mod error;
pub mod form;
pub mod html;
pub mod login;
pub mod oauth2;
pub mod passkey;
pub mod passkey_script;
pub mod providers;
pub mod routing;
pub mod theme;
pub mod well_known;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use tracing::Instrument;

use crate::flow::Flows;
pub use crate::flow::Settings;

/// What the public handlers share, behind one `Arc`: axum clones the state for every
/// middleware and handler of every request, so a clone must cost one atomic increment (a
/// struct of a dozen `Arc`s and strings cost ~3 µs per request, a tenth of a token request).
#[derive(Clone)]
pub struct AppState(Arc<Flows>);

impl std::ops::Deref for AppState {
    type Target = Flows;

    fn deref(&self) -> &Flows {
        &self.0
    }
}

impl AppState {
    /// Serves `flows` (see [`Flows::start`]: store, Secret watchers, signing keys) and starts
    /// the pre-warm loop of its client-secret cache.
    pub fn start(flows: Flows) -> AppState {
        let flows = Arc::new(flows);
        tokio::spawn(crate::flow::clients::prewarm(flows.clone()));
        AppState(flows)
    }
}

/// The public router (login and OAuth endpoints). Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so throttling sees client addresses.
/// Every answer under `/api/` — unknown paths and wrong methods too — is a CentralAuth JSON
/// error `{errorCode, message}` ([`error::api_errors`]).
pub fn public_router(state: AppState) -> Router {
    let router = Router::new()
        .route("/login", get(login::get_login).post(login::post_login))
        .route("/login/email", post(email_login::send_code))
        .route("/login/direct", get(email_login::direct))
        .route("/login/code", post(email_login::check_code))
        .route("/login/provider", post(providers::start))
        .route("/login/wait", get(email_link::wait))
        .route("/login/mail", get(email_link::link_page).post(email_link::open_link))
        .route("/login/passkey", post(passkey::login))
        .route("/login/passkey/options", post(passkey::login_options))
        .route("/login/passkey/offer", get(passkey::offer))
        .route("/login/passkey/register/options", post(passkey::registration_options))
        .route("/login/passkey/register", post(passkey::register))
        .route("/login/passkey/skip", post(passkey::skip))
        .merge(api_routes())
        // RFC 8414 §3 inserts the well-known segment before the issuer's path.
        .route("/.well-known/openid-configuration/o/{cid}", get(oauth2::discovery))
        .route(
            "/.well-known/oauth-authorization-server/o/{cid}",
            get(oauth2::discovery),
        );
    std_routes(std_routes(router, ""), "/o/{cid}")
        .merge(well_known::router())
        .layer(middleware::from_fn_with_state(state.clone(), common))
        .with_state(state)
}

/// The standard endpoints under `prefix`: the organization's own host (`""`) or
/// `/o/{cid}` on the base domain. Routed flat rather than nested: a nested router strips the
/// prefix and routes a second time, on every request.
fn std_routes(router: Router<AppState>, prefix: &str) -> Router<AppState> {
    let at = |path: &str| format!("{prefix}{path}");
    router
        .route(&at("/.well-known/openid-configuration"), get(oauth2::discovery))
        .route(&at("/.well-known/oauth-authorization-server"), get(oauth2::discovery))
        .route(&at("/oauth2/authorize"), get(oauth2::authorize))
        .route(&at("/oauth2/token"), post(oauth2::token))
        .route(&at("/oauth2/revoke"), post(oauth2::revoke))
        .route(&at("/oauth2/introspect"), post(oauth2::introspect))
        .route(&at("/oauth2/userinfo"), get(oauth2::userinfo).post(oauth2::userinfo))
        .route(&at("/oauth2/jwks"), get(oauth2::jwks))
        .route(&at("/oauth/providers/{name}/callback"), get(providers::callback))
}

/// The CentralAuth API: its endpoints, and JSON errors for every other path and method.
fn api_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/verify",
            post(centralauth::verify).fallback(error::api_method_not_allowed),
        )
        .route(
            "/api/v1/userinfo",
            post(centralauth::userinfo).fallback(error::api_method_not_allowed),
        )
        .route(
            "/api/v1/logout",
            post(centralauth::logout).fallback(error::api_method_not_allowed),
        )
        .route(
            "/api/v1/authenticate_direct",
            post(centralauth::authenticate_direct).fallback(error::api_method_not_allowed),
        )
        .route("/api", any(error::api_not_found))
        .route("/api/", any(error::api_not_found))
        .route("/api/{*rest}", any(error::api_not_found))
        .layer(middleware::map_response(error::api_errors))
}

/// The client address of a request (see [`crate::forwarded`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<ClientAddr, Self::Rejection> {
        let ext = &parts.extensions;
        Ok(ext.get::<ClientAddr>().copied().unwrap_or_else(|| {
            ClientAddr(
                ext.get::<ConnectInfo<SocketAddr>>()
                    .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip()),
            )
        }))
    }
}

/// Per request: a span with method and path, the client address (the socket peer, or what
/// trusted proxies say: [`crate::forwarded`]) as the [`ClientAddr`] extension the handlers
/// read, and `no-store` on every answer (tokens, codes, login pages). One middleware, not
/// one per concern: each layer costs a service clone and a boxed future per request.
async fn common(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path());
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let settings = &state.settings;
    let addr = settings
        .trusted_proxies
        .client_address(peer, req.headers(), settings.client_address_header);
    req.extensions_mut().insert(ClientAddr(addr));
    async move {
        let mut resp = next.run(req).await;
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        tracing::debug!(status = resp.status().as_u16(), "answered");
        resp
    }
    .instrument(span)
    .await
}

/// Serves `router` on `listener` with client addresses, until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
