//! One reconciler per kind: [`organization`], [`client_secret`], [`native_app`], [`user`].
//!
//! Every reconciler follows the same shape (after kube-rs `controller-rs`): `run` builds a
//! `kube::runtime::Controller` with its watches, `reconcile` is idempotent and correct whatever
//! the previous reconcile did before the process died, and `error_policy` requeues with backoff.

pub mod client_secret;
pub mod events;
pub mod native_app;
pub mod organization;
pub mod recorder;
pub mod related;
pub mod status;
pub mod user;

use std::sync::{Arc, OnceLock};

use k8s_openapi::NamespaceResourceScope;
use kube::runtime::events::Reporter;
use kube::{Api, Client, Resource};

use self::recorder::Recorder;
use crate::runtime::cache::Caches;
use crate::runtime::metrics::Metrics;
use crate::runtime::scope::Scope;
use crate::tenant::PublicBase;

/// What every reconciler shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// How the public server is reached (issuer and login URLs are derived from it).
    pub public: PublicBase,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// The watched namespaces. Controllers run their watches once per unit with
    /// [`Scope::for_each`] and [`crate::runtime::scope::WatchScope::api`] — never `Api::all` — so a
    /// namespace-restricted operator stays inside its RBAC. Uniqueness rules (subdomains,
    /// custom domains, client IDs, app-link hosts) hold within a unit: the whole cluster, or
    /// each watched namespace.
    pub scope: Scope,
    /// Metrics: wrap each reconcile with [`Metrics::reconcile`] or [`Metrics::instrument`].
    pub metrics: Metrics,
    /// How the NativeApp controller checks app-link association files.
    pub association: crate::association::AssociationSettings,
    /// The reflector caches the controllers run on (the server's own, shared); started on
    /// first use for a context built without them (tests).
    pub caches: OnceLock<Caches>,
    /// The session store the server uses, where the User controller records that a blocked or
    /// deleted user's access ended. Without it the User controller does not start.
    pub store: OnceLock<Arc<dyn crate::store::Store>>,
}

impl Context {
    /// A context whose events are reported as `centralauth-operator` from `instance`, watching
    /// the whole cluster, with metrics nobody scrapes (for tests).
    pub fn new(client: Client, public: PublicBase, instance: Option<String>) -> Arc<Context> {
        Context::build(client, public, instance, Scope::Cluster, Metrics::default(), None)
    }

    /// A context watching `scope` and reporting into `metrics`.
    pub fn build(
        client: Client,
        public: PublicBase,
        instance: Option<String>,
        scope: Scope,
        metrics: Metrics,
        caches: Option<Caches>,
    ) -> Arc<Context> {
        let reporter = Reporter {
            controller: "centralauth-operator".into(),
            instance,
        };
        let mut ctx = Context::plain(client, reporter, public);
        ctx.scope = scope;
        ctx.metrics = metrics;
        if let Some(caches) = caches {
            ctx.caches = OnceLock::from(caches);
        }
        Arc::new(ctx)
    }

    /// A context that is not shared yet (whole cluster, private metrics, default association
    /// settings), so tests can set `scope` and `association` before wrapping it in an `Arc`.
    pub fn plain(client: Client, reporter: Reporter, public: PublicBase) -> Context {
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            public,
            scope: Scope::Cluster,
            metrics: Metrics::default(),
            association: Default::default(),
            caches: OnceLock::new(),
            store: OnceLock::new(),
        }
    }

    /// The caches the controllers run on: the shared ones, or caches of [`Context::scope`]
    /// started now (call it on the tokio runtime). With caches of another scope, a unit they
    /// do not watch gets no controller.
    pub fn caches(&self) -> &Caches {
        self.caches
            .get_or_init(|| Caches::start_scoped(&self.client, &self.scope))
    }

    /// One API handle per watched unit for kind `K` (see [`Scope::apis`]).
    pub fn apis<K>(&self) -> Vec<Api<K>>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        self.scope.apis(&self.client)
    }
}

/// Runs the four controllers until the future is dropped (on shutdown or lost leadership).
pub async fn run(ctx: Arc<Context>) {
    tokio::join!(
        organization::run(ctx.clone()),
        client_secret::run(ctx.clone()),
        native_app::run(ctx.clone()),
        user::run(ctx.clone()),
    );
}

/// How many reconciles of one controller run at once. kube's default is no limit: creating
/// thousands of objects at once started thousands of reconciles, each holding its future (about
/// 15 kB), its API requests and, for NativeApps, an outbound check, at the same moment.
pub const MAX_CONCURRENT_RECONCILES: u16 = 32;

/// The configuration every controller runs with (see [`MAX_CONCURRENT_RECONCILES`]).
pub fn controller_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(MAX_CONCURRENT_RECONCILES)
}
