//! HTTP servers: the public login/OAuth server and the admin listener.
//!
//! The public server speaks two protocols from the same binary, for every Organization,
//! host-routed (see [`routing`]):
//! - CentralAuth: `GET|POST /login` (and the e-mail code steps `POST /login/email`, `/login/code`), `POST /api/v1/verify`, `/api/v1/userinfo`, `/api/v1/logout`.
//! - OAuth 2.1 / OIDC: discovery, `/oauth2/{authorize,token,revoke,introspect,userinfo,jwks}`,
//!   at the root of an organization's own host, or under `/o/<clientId>` on the base domain.
//!
//! Handlers are thin over [`crate::oauth`] and read organizations, secrets and apps from the
//! reflector caches, Secrets from [`secrets::SecretsView`] and keys from [`keys::KeyRing`] —
//! never from the API server. Every response carries `Cache-Control: no-store`; every request
//! runs in a `tracing` span with method and path (never the query, which holds codes).

pub mod admin;
pub mod centralauth;
pub mod clients;
pub mod email_login;
pub mod error;
pub mod form;
pub mod keys;
pub mod login;
pub mod oauth2;
pub mod routing;
pub mod secrets;
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

use crate::cache::Caches;
use crate::forwarded::{AddressHeader, TrustedProxies};
use crate::mail::{Mailer, SmtpSettings};
use crate::oauth::client_auth::{ClientAuthPolicy, Lanes};
use crate::oauth::keys::RotationPolicy;
use crate::oauth::otp::OtpPolicy;
use crate::oauth::throttle::Limits;
use crate::oauth::verifier::SecretVerifier;
use crate::store::{Store, StoreError, StoreUrl};
use crate::tenant::PublicBase;

/// Tunables of the public server.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace of the signing-keys Secret (the operator's own).
    pub namespace: String,
    /// Name of the signing-keys Secret.
    pub signing_key_secret: String,
    /// Rotation of the signing keys.
    pub rotation: RotationPolicy,
    /// Lifetime of JWT access and ID tokens, seconds.
    pub access_token_ttl: i64,
    /// Lifetime of refresh tokens, seconds (never past the session).
    pub refresh_token_ttl: i64,
    /// How uncached client-secret verifications are rationed (failure counters, pace, wait).
    pub client_auth: ClientAuthPolicy,
    /// Failure limits of password logins (per account and address, or per device cookie).
    pub login_limits: Limits,
    /// Reverse proxies whose `client_address_header` names the client (`--trusted-proxies`).
    pub trusted_proxies: TrustedProxies,
    /// The header trusted proxies write the client address into.
    pub client_address_header: AddressHeader,
    /// Most argon2id verifications running at once.
    pub max_parallel_verifications: usize,
    /// One-time e-mail codes: lifetime, guesses, sending and failure throttles.
    pub email_codes: OtpPolicy,
    /// How SMTP servers are reached (timeout, trusted roots).
    pub smtp: SmtpSettings,
    /// Where sessions, codes and tokens live (`--store`): memory (one replica) or Redis.
    pub store: StoreUrl,
    /// Prefix of every Redis key (`--store-key-prefix`).
    pub store_key_prefix: String,
    /// PEM CA certificates a `rediss://` store must be signed by (`--store-ca-file`); `None`:
    /// the system's trust store.
    pub store_ca_pem: Option<Vec<u8>>,
}

impl Settings {
    /// Defaults: 15-minute access tokens, 30-day refresh tokens, keys rotated every
    /// `rotate_after` seconds (published an hour — or a tenth of the period — ahead).
    pub fn new(namespace: String, rotate_after: i64) -> Settings {
        let access_token_ttl = 900;
        Settings {
            namespace,
            signing_key_secret: "centralauth-signing-keys".into(),
            rotation: RotationPolicy {
                rotate_after,
                publish_ahead: (rotate_after / 10).min(3600),
                retain_after: access_token_ttl + 300,
            },
            access_token_ttl,
            refresh_token_ttl: 30 * 24 * 3600,
            client_auth: ClientAuthPolicy::default(),
            login_limits: Limits::default(),
            trusted_proxies: TrustedProxies::default(),
            client_address_header: AddressHeader::default(),
            max_parallel_verifications: 4,
            email_codes: OtpPolicy::default(),
            smtp: SmtpSettings::default(),
            store: StoreUrl::Memory,
            store_key_prefix: "centralauth:".into(),
            store_ca_pem: None,
        }
    }
}

/// What the public handlers share, behind one `Arc`: axum clones the state for every
/// middleware and handler of every request, so a clone must cost one atomic increment (a
/// struct of a dozen `Arc`s and strings cost ~3 µs per request, a tenth of a token request).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`]. Handlers read organizations, secrets and apps from the caches,
/// never from the API server.
pub struct Shared {
    /// Reflector caches of the three kinds.
    pub caches: Caches,
    /// How the public server is reached.
    pub public: PublicBase,
    /// Sessions, codes, refresh tokens, counters.
    pub store: Arc<dyn Store>,
    /// Signing keys.
    pub keys: keys::KeyRing,
    /// argon2id verification and the client-secret cache.
    pub verifier: Arc<SecretVerifier>,
    /// One queue per organization for uncached client-secret verifications.
    pub lanes: Arc<Lanes>,
    /// Watched Secrets (passwords, client-secret plaintext for native tokens).
    pub secrets: secrets::SecretsView,
    /// Tunables.
    pub settings: Arc<Settings>,
    /// Metrics (login successes and failures per method).
    pub metrics: crate::metrics::Metrics,
    /// Sends the code e-mails of the `email` login method.
    pub mailer: Arc<Mailer>,
    /// Lookup tables over the caches (host, client ID, an organization's secrets and apps).
    pub index: routing::SharedIndex,
}

impl AppState {
    /// Opens the store `settings.store` names (without connecting: [`Store::ping`] tells when
    /// it is reachable), starts the Secret watchers and the signing-key loop; the caches must
    /// already run. Logins and requests are counted in `metrics`.
    pub fn start(
        client: kube::Client,
        caches: Caches,
        public: PublicBase,
        settings: Settings,
        metrics: crate::metrics::Metrics,
    ) -> Result<AppState, StoreError> {
        let store = crate::store::open(
            &settings.store,
            &settings.store_key_prefix,
            settings.store_ca_pem.as_deref(),
        )?;
        let keys = keys::KeyRing::start(
            client.clone(),
            &settings.namespace,
            &settings.signing_key_secret,
            settings.rotation,
        );
        let mailer = Arc::new(Mailer::new(settings.smtp.clone(), &public.base_domain));
        let state = AppState(Arc::new(Shared {
            secrets: secrets::SecretsView::start(client, caches.clone()),
            caches,
            public,
            store,
            keys,
            verifier: Arc::new(SecretVerifier::new(settings.max_parallel_verifications)),
            lanes: Arc::default(),
            mailer,
            settings: Arc::new(settings),
            metrics,
            index: routing::SharedIndex::default(),
        }));
        tokio::spawn(clients::prewarm(state.clone()));
        Ok(state)
    }
}

/// The public router (login and OAuth endpoints). Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so throttling sees client addresses.
/// Every answer under `/api/` — unknown paths and wrong methods too — is a CentralAuth JSON
/// error `{errorCode, message}` ([`error::api_errors`]).
pub fn public_router(state: AppState) -> Router {
    let std_routes = Router::new()
        .route("/.well-known/openid-configuration", get(oauth2::discovery))
        .route("/.well-known/oauth-authorization-server", get(oauth2::discovery))
        .route("/oauth2/authorize", get(oauth2::authorize))
        .route("/oauth2/token", post(oauth2::token))
        .route("/oauth2/revoke", post(oauth2::revoke))
        .route("/oauth2/introspect", post(oauth2::introspect))
        .route("/oauth2/userinfo", get(oauth2::userinfo).post(oauth2::userinfo))
        .route("/oauth2/jwks", get(oauth2::jwks));
    Router::new()
        .route("/login", get(login::get_login).post(login::post_login))
        .route("/login/email", post(email_login::send_code))
        .route("/login/code", post(email_login::check_code))
        .merge(api_routes())
        // RFC 8414 §3 inserts the well-known segment before the issuer's path.
        .route("/.well-known/openid-configuration/o/{cid}", get(oauth2::discovery))
        .route(
            "/.well-known/oauth-authorization-server/o/{cid}",
            get(oauth2::discovery),
        )
        .nest("/o/{cid}", std_routes.clone())
        .merge(std_routes)
        .merge(well_known::router())
        .layer(middleware::from_fn_with_state(state.clone(), client_address))
        .layer(middleware::from_fn(common))
        .with_state(state)
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
        .route("/api", any(error::api_not_found))
        .route("/api/", any(error::api_not_found))
        .route("/api/{*rest}", any(error::api_not_found))
        .layer(middleware::map_response(error::api_errors))
}

/// The client address of the request ([`crate::forwarded`]: the socket peer, or what trusted
/// proxies say), as the [`ClientAddr`] extension the handlers read.
async fn client_address(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let settings = &state.settings;
    let addr = settings
        .trusted_proxies
        .client_address(peer, req.headers(), settings.client_address_header);
    req.extensions_mut().insert(ClientAddr(addr));
    next.run(req).await
}

/// The client address of a request (see [`crate::forwarded`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Span per request, and `no-store` on every answer (tokens, codes, login pages).
async fn common(req: Request, next: Next) -> Response {
    let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path());
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
