//! One reconciler per kind: [`organization`], [`client_secret`], [`native_app`].
//!
//! Every reconciler follows the same shape (after kube-rs `controller-rs`): `run` builds a
//! `kube::runtime::Controller` with its watches, `reconcile` is idempotent and correct whatever
//! the previous reconcile did before the process died, and `error_policy` requeues with backoff.

pub mod client_secret;
pub mod events;
pub mod native_app;
pub mod organization;
pub mod related;
pub mod status;

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::tenant::PublicBase;

/// What every reconciler shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// How the public server is reached (issuer and login URLs are derived from it).
    pub public: PublicBase,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Restricts the controllers to one namespace (`None`: the whole cluster). Uniqueness
    /// rules (subdomains, custom domains, client IDs, app-link hosts) then hold within it.
    pub namespace: Option<String>,
    /// How the NativeApp controller checks app-link association files.
    pub association: crate::association::AssociationSettings,
}

impl Context {
    /// A context whose events are reported as `centralauth-operator` from `instance`.
    pub fn new(client: Client, public: PublicBase, instance: Option<String>) -> Arc<Context> {
        let reporter = Reporter {
            controller: "centralauth-operator".into(),
            instance,
        };
        Arc::new(Context::plain(client, reporter, public))
    }

    /// A context that is not shared yet, so tests can set `namespace` and `association`.
    pub fn plain(client: Client, reporter: Reporter, public: PublicBase) -> Context {
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            public,
            namespace: None,
            association: Default::default(),
        }
    }

    /// An API handle for `K` in the controllers' scope (one namespace or the cluster).
    pub fn api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.namespace {
            Some(ns) => kube::Api::namespaced(self.client.clone(), ns),
            None => kube::Api::all(self.client.clone()),
        }
    }
}

/// Runs the three controllers until the future is dropped (on shutdown or lost leadership).
pub async fn run(ctx: Arc<Context>) {
    tokio::join!(
        organization::run(ctx.clone()),
        client_secret::run(ctx.clone()),
        native_app::run(ctx.clone()),
    );
}
