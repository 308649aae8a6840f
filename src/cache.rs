//! Reflector caches of the three kinds, run by every replica (leader or not): the HTTP server
//! answers from them and never calls the API server on the request path.
//!
//! With a namespace-restricted [`Scope`] each namespace has its own watch (the operator may not
//! list cluster-wide), and the per-namespace streams are combined into one [`Store`] per kind,
//! so readers see the same type whatever the scope.
//!
//! [`Caches::generation`] counts the changes applied to any of the three: lookup tables built
//! from the caches (`http::routing::Index`) are rebuilt only when it moved.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::crd::{ClientSecret, NativeApp, Organization};
use crate::scope::Scope;

/// Read handles on the caches.
#[derive(Clone)]
pub struct Caches {
    /// Every Organization the operator watches.
    pub organizations: Store<Organization>,
    /// Every ClientSecret the operator watches.
    pub client_secrets: Store<ClientSecret>,
    /// Every NativeApp the operator watches.
    pub native_apps: Store<NativeApp>,
    /// Bumped after every change applied to any of the stores.
    generation: Arc<AtomicU64>,
}

impl Caches {
    /// Starts one cluster-wide reflector per kind on the tokio runtime and returns the read
    /// handles. Same as [`Caches::start_scoped`] with [`Scope::Cluster`].
    pub fn start(client: &Client) -> Caches {
        Caches::start_scoped(client, &Scope::Cluster)
    }

    /// Starts the reflectors of the three kinds for the watched namespaces of `scope`.
    pub fn start_scoped(client: &Client, scope: &Scope) -> Caches {
        let generation = Arc::new(AtomicU64::new(0));
        Caches {
            organizations: spawn_reflector(client, scope, generation.clone()),
            client_secrets: spawn_reflector(client, scope, generation.clone()),
            native_apps: spawn_reflector(client, scope, generation.clone()),
            generation,
        }
    }

    /// How many changes the stores have taken. It moves only after a change is visible in
    /// its store, so whatever is read from the stores after reading `n` reflects change `n`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Resolves once every cache has listed its objects (in every watched namespace).
    pub async fn wait_until_ready(&self) {
        let _ = tokio::join!(
            self.organizations.wait_until_ready(),
            self.client_secrets.wait_until_ready(),
            self.native_apps.wait_until_ready(),
        );
    }
}

fn spawn_reflector<K>(client: &Client, scope: &Scope, generation: Arc<AtomicU64>) -> Store<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    match scope {
        Scope::Cluster => {
            let api = Api::<K>::all(client.clone());
            let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
            // The reflector has applied each event to the store before it is yielded here.
            tokio::spawn(stream.for_each(move |event| {
                match event {
                    Ok(_) => bump(&generation),
                    Err(err) => warn_watch_failed::<K>(&err),
                }
                std::future::ready(())
            }));
        }
        Scope::Namespaces(_) => {
            tokio::spawn(combine_namespaces(scope.apis::<K>(client), writer, generation));
        }
    }
    reader
}

fn bump(generation: &AtomicU64) {
    generation.fetch_add(1, Ordering::Release);
}

fn warn_watch_failed<K: Resource<DynamicType = ()>>(err: &watcher::Error) {
    tracing::warn!(kind = K::kind(&()).as_ref(), error = %err, "cache watch failed; retrying");
}

/// Feeds one store from one watch per namespace. Each namespace also has a private store;
/// changes pass straight through, and whenever a namespace finishes a (re)list the combined
/// store is rebuilt from all private stores — the store's own list semantics would otherwise
/// let one namespace's relist wipe the others. The combined store becomes ready only once
/// every namespace has listed.
async fn combine_namespaces<K>(apis: Vec<Api<K>>, mut combined: Writer<K>, generation: Arc<AtomicU64>)
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned + Send + Sync + 'static,
{
    let mut private: Vec<Writer<K>> = apis.iter().map(|_| Writer::default()).collect();
    let mut listed = vec![false; apis.len()];
    let streams = apis.into_iter().enumerate().map(|(i, api)| {
        watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |event| (i, event))
            .boxed()
    });
    let mut events = futures::stream::select_all(streams);
    while let Some((i, event)) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                warn_watch_failed::<K>(&err);
                continue;
            }
        };
        private[i].apply_watcher_event(&event);
        match event {
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => combined.apply_watcher_event(&event),
            watcher::Event::InitDone => {
                listed[i] = true;
                if listed.iter().all(|l| *l) {
                    rebuild(&mut combined, &private);
                }
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => continue,
        }
        bump(&generation);
    }
}

fn rebuild<K>(combined: &mut Writer<K>, private: &[Writer<K>])
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    combined.apply_watcher_event(&watcher::Event::Init);
    for store in private {
        for obj in store.as_reader().state() {
            combined.apply_watcher_event(&watcher::Event::InitApply((*obj).clone()));
        }
    }
    combined.apply_watcher_event(&watcher::Event::InitDone);
}
