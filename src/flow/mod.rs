//! The protocol layer: every login and token flow of both protocols, between the HTTP adapter
//! ([`crate::http`]: extraction and rendering only) and the protocol library ([`crate::oauth`]:
//! plain functions) and the store ([`crate::store`]).
//!
//! - [`directory`]: which organization a host or client ID names; an organization's secrets
//!   and apps (the routing index over the caches).
//! - [`clients`]: client authentication as the endpoints use it, and the pre-warm loop.
//! - [`authorize`]: the authorization request of both protocols, validated once, and the
//!   start of its login (reused session, `login_required`, or the stored form).
//! - [`login`]: the pending login (the stored request) and the steps after the form: CSRF,
//!   failure counters, password, completion.
//! - [`email`]: the `email` login method: send a one-time code, check it.
//! - [`providers`]: logging in with an upstream identity provider (OIDC, Google, Microsoft,
//!   GitHub): the redirect, the callback, linking the provider account to a user.
//! - [`direct`]: `authenticate_direct`, an e-mail login started by the app's server.
//! - [`passkey`]: passkeys (WebAuthn): the offer after an e-mail login, registration, login.
//! - [`token`]: the standard token endpoint's grants, introspection, revocation, userinfo.
//! - [`users`]: the user directory on the login path (a `User` per address), and sessions
//!   that end when their user is blocked or deleted.
//! - [`centralauth`]: the CentralAuth API: verify, userinfo, logout.
//! - [`error`]: what a flow can fail with; [`crate::oauth::error`] turns it into the wire
//!   errors of both protocols (one `From` impl each).
//!
//! A token request, for instance, is `http::oauth2::token` (parse the form and credentials) →
//! [`token`] (authenticate, redeem, sign, store) → `http::oauth2` (render JSON or the error).

pub mod authorize;
pub mod centralauth;
pub mod clients;
pub mod desktop;
pub mod direct;
pub mod directory;
pub mod email;
pub mod email_link;
pub mod error;
pub mod login;
pub mod passkey;
pub mod providers;
pub mod token;
pub mod users;

use std::sync::Arc;

use crate::forwarded::{AddressHeader, TrustedProxies};
use crate::mail::{Mailer, SmtpSettings};
use crate::oauth::client_auth::{ClientAuthPolicy, Lanes};
use crate::oauth::keys::RotationPolicy;
use crate::oauth::otp::OtpPolicy;
use crate::oauth::throttle::Limits;
use crate::oauth::verifier::SecretVerifier;
use crate::runtime::cache::Caches;
use crate::runtime::keys::KeyRing;
use crate::runtime::secrets::SecretsView;
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

/// The protocol service: what every flow needs — the store, signing keys, the secret verifier,
/// the settings and a read-only directory of organizations (the routing index over the caches).
/// Flows read organizations, secrets and apps from the caches, never from the API server.
pub struct Flows {
    /// Reflector caches of the three kinds.
    pub caches: Caches,
    /// How the public server is reached.
    pub public: PublicBase,
    /// Sessions, codes, refresh tokens, counters.
    pub store: Arc<dyn Store>,
    /// Signing keys.
    pub keys: KeyRing,
    /// argon2id verification and the client-secret cache.
    pub verifier: Arc<SecretVerifier>,
    /// One queue per organization for uncached client-secret verifications.
    pub lanes: Arc<Lanes>,
    /// Watched Secrets (passwords, client-secret plaintext for native tokens).
    pub secrets: SecretsView,
    /// Tunables.
    pub settings: Arc<Settings>,
    /// Metrics (login successes and failures per method).
    pub metrics: crate::runtime::metrics::Metrics,
    /// Sends the code e-mails of the `email` login method.
    pub mailer: Arc<Mailer>,
    /// Lookup tables over the caches (host, client ID, an organization's secrets and apps).
    pub index: directory::SharedIndex,
    /// The Kubernetes client the login path reads and writes `User`s with (by name).
    pub kube: kube::Client,
    /// Upstream identity providers: the HTTP client and the discovery/JWKS cache.
    pub upstreams: providers::SharedUpstreams,
}

impl Flows {
    /// Opens the store `settings.store` names (without connecting: [`Store::ping`] tells when
    /// it is reachable), starts the Secret watchers and the signing-key loop; the caches must
    /// already run. Logins and requests are counted in `metrics`.
    pub fn start(
        client: kube::Client,
        caches: Caches,
        public: PublicBase,
        settings: Settings,
        metrics: crate::runtime::metrics::Metrics,
    ) -> Result<Flows, StoreError> {
        let store = crate::store::open(
            &settings.store,
            &settings.store_key_prefix,
            settings.store_ca_pem.as_deref(),
        )?;
        let keys = KeyRing::start(
            client.clone(),
            &settings.namespace,
            &settings.signing_key_secret,
            settings.rotation,
        );
        let mailer = Arc::new(Mailer::new(settings.smtp.clone(), &public.base_domain));
        Ok(Flows {
            secrets: SecretsView::start(client.clone(), caches.clone()),
            kube: client,
            caches,
            public,
            store,
            keys,
            verifier: Arc::new(SecretVerifier::new(settings.max_parallel_verifications)),
            lanes: Arc::default(),
            mailer,
            settings: Arc::new(settings),
            metrics,
            index: directory::SharedIndex::default(),
            upstreams: Arc::default(),
        })
    }
}
