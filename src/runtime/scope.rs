//! Which namespaces the operator watches: the whole cluster (the default, with a ClusterRole), or
//! a fixed list of namespaces (`--watch-namespace`, with one Role per namespace and no
//! cluster-wide read access at all).
//!
//! Everything that lists or watches — the reflector caches ([`crate::runtime::cache`]) and the
//! controllers — goes through this type, so a restricted operator never asks the API server for
//! something its RBAC does not grant. A controller runs once per [`WatchScope`]:
//!
//! ```ignore
//! pub async fn run(ctx: Arc<Context>) {
//!     ctx.scope.for_each(|scope| {
//!         let ctx = ctx.clone();
//!         async move {
//!             Controller::new(scope.api::<ClientSecret>(&ctx.client), Config::default())
//!                 .owns(scope.api::<Secret>(&ctx.client), Config::default())
//!                 .run(reconcile, error_policy, ctx)
//!                 .for_each(|_| async {})
//!                 .await
//!         }
//!     })
//!     .await
//! }
//! ```

use std::collections::BTreeSet;
use std::future::Future;

use k8s_openapi::NamespaceResourceScope;
use kube::{Api, Client, Resource};

/// The namespaces the operator watches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (needs cluster-wide list/watch RBAC).
    #[default]
    Cluster,
    /// Only these namespaces (never empty).
    Namespaces(BTreeSet<String>),
}

/// One unit of watching: the whole cluster, or one namespace. Controllers and caches run one
/// watch per unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchScope {
    /// Every namespace at once.
    Cluster,
    /// One namespace.
    Namespace(String),
}

impl Scope {
    /// The scope for `--watch-namespace` values: an empty list means the whole cluster.
    pub fn from_namespaces<I: IntoIterator<Item = String>>(namespaces: I) -> Scope {
        let set: BTreeSet<String> = namespaces.into_iter().filter(|n| !n.is_empty()).collect();
        if set.is_empty() {
            Scope::Cluster
        } else {
            Scope::Namespaces(set)
        }
    }

    /// Whether objects of `namespace` are watched.
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Scope::Cluster => true,
            Scope::Namespaces(set) => set.contains(namespace),
        }
    }

    /// The units to watch: `[Cluster]`, or one per namespace.
    pub fn units(&self) -> Vec<WatchScope> {
        match self {
            Scope::Cluster => vec![WatchScope::Cluster],
            Scope::Namespaces(set) => set.iter().cloned().map(WatchScope::Namespace).collect(),
        }
    }

    /// One API handle per unit: `Api::all`, or one `Api::namespaced` per watched namespace.
    pub fn apis<K>(&self, client: &Client) -> Vec<Api<K>>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        self.units().iter().map(|unit| unit.api(client)).collect()
    }

    /// Runs `f` once per unit, concurrently, until all of them end (or the future is dropped,
    /// which drops them all).
    pub async fn for_each<F, Fut>(&self, f: F)
    where
        F: FnMut(WatchScope) -> Fut,
        Fut: Future<Output = ()>,
    {
        futures::future::join_all(self.units().into_iter().map(f)).await;
    }

    /// A short description for logs: `all namespaces` or `namespaces a, b`.
    pub fn describe(&self) -> String {
        match self {
            Scope::Cluster => "all namespaces".to_string(),
            Scope::Namespaces(set) => format!("namespaces {}", set.iter().cloned().collect::<Vec<_>>().join(", ")),
        }
    }
}

impl WatchScope {
    /// An API handle for namespaced kind `K` in this unit.
    pub fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match self {
            WatchScope::Cluster => Api::all(client.clone()),
            WatchScope::Namespace(ns) => Api::namespaced(client.clone(), ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_is_the_whole_cluster() {
        assert_eq!(Scope::from_namespaces(Vec::<String>::new()), Scope::Cluster);
        assert_eq!(Scope::from_namespaces(vec![String::new()]), Scope::Cluster);
        assert!(Scope::Cluster.contains("anything"));
        assert_eq!(Scope::Cluster.units(), vec![WatchScope::Cluster]);
    }

    #[test]
    fn namespaces_are_deduplicated_and_sorted() {
        let scope = Scope::from_namespaces(["b", "a", "b"].map(String::from));
        assert_eq!(
            scope.units(),
            vec![WatchScope::Namespace("a".into()), WatchScope::Namespace("b".into())]
        );
        assert!(scope.contains("a"));
        assert!(!scope.contains("c"));
        assert_eq!(scope.describe(), "namespaces a, b");
    }
}
