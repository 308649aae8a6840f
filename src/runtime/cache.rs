//! Reflector caches of the three kinds, run by every replica (leader or not): the HTTP server
//! answers from them and never calls the API server on the request path.
//!
//! With a namespace-restricted [`Scope`] each namespace has its own watch (the operator may not
//! list cluster-wide), and the per-namespace streams are combined into one [`Store`] per kind,
//! so readers see the same type whatever the scope. With one unit (the cluster, or a single
//! namespace) that unit's store is the combined store: each object is held once.
//!
//! [`Caches::generation`] counts the changes applied to any of the three: lookup tables built
//! from the caches (`flow::directory::Index`) are rebuilt only when it moved.
//!
//! Readiness: kube's `Store::wait_until_ready` wakes only one of several concurrent waiters
//! (its `DelayedInit` polls a futures `oneshot::Receiver`, which keeps the last waker only),
//! and kube's controller runner waits on its store that way. So nothing here waits on a
//! store: the task that feeds a store sees its first complete list go by and publishes that on
//! a `tokio::sync::watch`, which wakes every waiter. [`Caches::wait_until_ready`] waits on
//! those; the controllers' runners stay the only waiters kube's stores have.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::crd::{ClientSecret, NativeApp, Organization};
use crate::runtime::scope::{Scope, WatchScope};

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
    /// The watched namespaces.
    scope: Scope,
    /// Per-unit stores and change feeds, for the controllers.
    feeds: Arc<Feeds>,
    /// Turns `true` once every store has listed (see the module documentation).
    ready: watch::Receiver<bool>,
}

/// The per-unit stores and changes of the three kinds.
struct Feeds {
    organizations: Feed<Organization>,
    client_secrets: Feed<ClientSecret>,
    native_apps: Feed<NativeApp>,
}

/// A change applied to a unit's store, as a controller sees it (after the store has it).
#[derive(Debug)]
pub enum Change<K> {
    /// Listed by a (re)list, or already in the store when the subscription started.
    Listed(Arc<K>),
    /// Created or modified.
    Applied(Arc<K>),
    /// Deleted.
    Deleted(Arc<K>),
}

impl<K> Change<K> {
    /// The object, as listed, applied or last seen before deletion.
    pub fn object(&self) -> &Arc<K> {
        match self {
            Change::Listed(o) | Change::Applied(o) | Change::Deleted(o) => o,
        }
    }
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Listed(o) => Change::Listed(o.clone()),
            Change::Applied(o) => Change::Applied(o.clone()),
            Change::Deleted(o) => Change::Deleted(o.clone()),
        }
    }
}

/// One kind's store per watch unit, and the subscribers to each unit's changes. The
/// controllers run on these instead of watches of their own: one watch per kind and unit for
/// the whole process, and one copy of each object in memory.
pub struct Feed<K: Resource<DynamicType = ()> + Clone + 'static> {
    units: Vec<WatchScope>,
    stores: Vec<Store<K>>,
    subscribers: Subscribers<K>,
}

/// The open subscriptions of a kind: unit index and sender.
type Subscribers<K> = Arc<Mutex<Vec<(usize, UnboundedSender<Change<K>>)>>>;

impl<K: Resource<DynamicType = ()> + Clone + 'static> Feed<K> {
    /// The store of `unit` and every change applied to it from now on, starting with one
    /// [`Change::Listed`] per object already in it. `None` for a unit these caches do not watch.
    /// Dropping the receiver ends the subscription.
    pub fn subscribe(&self, unit: &WatchScope) -> Option<(Store<K>, UnboundedReceiver<Change<K>>)> {
        let i = self.units.iter().position(|u| u == unit)?;
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subscribers.retain(|(_, s)| !s.is_closed());
        // Under the lock: no change is published between the snapshot and the registration.
        for obj in self.stores[i].state() {
            let _ = tx.unbounded_send(Change::Listed(obj));
        }
        subscribers.push((i, tx));
        Some((self.stores[i].clone(), rx))
    }

    /// How many subscriptions are open (closed ones are dropped at the next change).
    pub fn subscriptions(&self) -> usize {
        let subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subscribers.iter().filter(|(_, s)| !s.is_closed()).count()
    }
}

/// The publishing side of a [`Feed`], moved into the reflector task.
struct Publisher<K: Resource<DynamicType = ()> + 'static> {
    subscribers: Subscribers<K>,
    /// Each unit's store: a change hands subscribers the store's own copy of the object.
    stores: Vec<Store<K>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Publisher<K> {
    /// Sends the change of `event` in unit `unit` to its subscribers (call it once the unit's
    /// store has the event).
    fn publish(&self, unit: usize, event: &watcher::Event<K>) {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        if subscribers.is_empty() {
            return;
        }
        let change = match event {
            watcher::Event::InitApply(o) => Change::Listed(Arc::new(o.clone())),
            watcher::Event::Apply(o) => Change::Applied(self.stored(unit, o)),
            watcher::Event::Delete(o) => Change::Deleted(Arc::new(o.clone())),
            watcher::Event::Init | watcher::Event::InitDone => return,
        };
        subscribers.retain(|(u, s)| *u != unit || s.unbounded_send(change.clone()).is_ok());
    }

    /// The store's copy of `obj` (the same version), else a copy of it. Sharing the store's
    /// copy keeps a burst of changes queued for a busy controller from holding a second copy
    /// of every object. (A (re)list's objects enter the store only when the list completes,
    /// so those are copied.)
    fn stored(&self, unit: usize, obj: &K) -> Arc<K> {
        self.stores[unit]
            .get(&ObjectRef::from_obj(obj))
            .filter(|held| held.resource_version() == obj.resource_version())
            .unwrap_or_else(|| Arc::new(obj.clone()))
    }
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
        let (organizations, org_feed, orgs_listed) = spawn_reflector(client, scope, generation.clone());
        let (client_secrets, cs_feed, secrets_listed) = spawn_reflector(client, scope, generation.clone());
        let (native_apps, app_feed, apps_listed) = spawn_reflector(client, scope, generation.clone());
        let ready = signal_when(async move {
            for mut listed in [orgs_listed, secrets_listed, apps_listed] {
                // An error means the feeding task is gone: never ready.
                if listed.wait_for(|l| *l).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        });
        Caches {
            organizations,
            client_secrets,
            native_apps,
            generation,
            scope: scope.clone(),
            feeds: Arc::new(Feeds {
                organizations: org_feed,
                client_secrets: cs_feed,
                native_apps: app_feed,
            }),
            ready,
        }
    }

    /// Per-unit Organization stores and changes (for controllers).
    pub fn organization_feed(&self) -> &Feed<Organization> {
        &self.feeds.organizations
    }

    /// Per-unit ClientSecret stores and changes (for controllers).
    pub fn client_secret_feed(&self) -> &Feed<ClientSecret> {
        &self.feeds.client_secrets
    }

    /// Per-unit NativeApp stores and changes (for controllers).
    pub fn native_app_feed(&self) -> &Feed<NativeApp> {
        &self.feeds.native_apps
    }

    /// The namespaces these caches watch.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// How many changes the stores have taken. It moves only after a change is visible in
    /// its store, so whatever is read from the stores after reading `n` reflects change `n`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Resolves once every cache has listed its objects (in every watched namespace). Any
    /// number of tasks may wait at once (unlike kube's `Store::wait_until_ready`).
    pub async fn wait_until_ready(&self) {
        let mut ready = self.ready.clone();
        // An error means the signalling task is gone without signalling: never ready.
        if ready.wait_for(|r| *r).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A flag that turns `true` once `done` completes: `done` runs in its own task, the only one
/// to await what it awaits, and the flag wakes every task that waits on it.
pub fn signal_when(done: impl std::future::Future<Output = ()> + Send + 'static) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        done.await;
        tx.send_replace(true);
    });
    rx
}

/// Starts feeding one kind's store from the watches of `scope`; returns the store, the
/// per-unit feed and a flag that turns `true` once the store holds a complete list.
fn spawn_reflector<K>(
    client: &Client,
    scope: &Scope,
    generation: Arc<AtomicU64>,
) -> (Store<K>, Feed<K>, watch::Receiver<bool>)
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
    let (listed, listed_rx) = watch::channel(false);
    let subscribers: Subscribers<K> = Arc::default();
    let units = scope.units();
    let mut apis = scope.apis::<K>(client);
    let stores = if apis.len() == 1 {
        // One unit (the cluster, or one namespace): its store is the combined store.
        let stores = vec![reader.clone()];
        let publisher = Publisher {
            subscribers: Arc::clone(&subscribers),
            stores: stores.clone(),
        };
        tokio::spawn(follow_one_unit(apis.remove(0), writer, listed, generation, publisher));
        stores
    } else {
        let private: Vec<Writer<K>> = units.iter().map(|_| Writer::default()).collect();
        let stores: Vec<Store<K>> = private.iter().map(Writer::as_reader).collect();
        let publisher = Publisher {
            subscribers: Arc::clone(&subscribers),
            stores: stores.clone(),
        };
        let combined = Combined {
            writer,
            listed,
            generation,
            publisher,
        };
        tokio::spawn(combine_namespaces(apis, private, combined));
        stores
    };
    let feed = Feed {
        units,
        stores,
        subscribers,
    };
    (reader, feed, listed_rx)
}

/// Feeds the store of the only watched unit from its watch.
async fn follow_one_unit<K>(
    api: Api<K>,
    writer: Writer<K>,
    listed: watch::Sender<bool>,
    generation: Arc<AtomicU64>,
    publisher: Publisher<K>,
) where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned + Send + Sync + 'static,
{
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff().modify(slim),
    );
    // The reflector has applied each event to the store before it is yielded here.
    stream
        .for_each(move |event| {
            match event {
                Ok(event) => {
                    publisher.publish(0, &event);
                    if matches!(event, watcher::Event::InitDone) {
                        listed.send_replace(true);
                    }
                    bump(&generation);
                }
                Err(err) => warn_watch_failed::<K>(&err),
            }
            std::future::ready(())
        })
        .await;
}

/// Drops what no reader needs before an object enters a store: managed fields (often the
/// largest part of an object) and the last-applied annotation `kubectl apply` writes.
pub fn slim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
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
async fn combine_namespaces<K>(apis: Vec<Api<K>>, mut private: Vec<Writer<K>>, mut combined: Combined<K>)
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned + Send + Sync + 'static,
{
    let mut listed = vec![false; apis.len()];
    let streams = apis.into_iter().enumerate().map(|(i, api)| {
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(slim)
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
        combined.publisher.publish(i, &event);
        match event {
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => combined.writer.apply_watcher_event(&event),
            watcher::Event::InitDone => {
                listed[i] = true;
                if listed.iter().all(|l| *l) {
                    rebuild(&mut combined.writer, &private);
                    combined.listed.send_replace(true);
                }
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => continue,
        }
        bump(&combined.generation);
    }
}

/// The combined store of several namespaces and what its feeding task reports to.
struct Combined<K: Resource<DynamicType = ()> + Clone + 'static> {
    writer: Writer<K>,
    listed: watch::Sender<bool>,
    generation: Arc<AtomicU64>,
    publisher: Publisher<K>,
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    /// Three tasks wait for one store through [`signal_when`]: all three wake once it lists.
    /// (Awaiting kube's `Store::wait_until_ready` from three tasks wakes only one of them.)
    #[tokio::test]
    async fn every_waiter_wakes_when_the_store_lists() {
        let (reader, mut writer) = reflector::store::<ConfigMap>();
        let ready = signal_when(async move {
            let _ = reader.wait_until_ready().await;
        });
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let mut ready = ready.clone();
                tokio::spawn(async move { ready.wait_for(|r| *r).await.is_ok() })
            })
            .collect();
        tokio::task::yield_now().await;
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        for waiter in waiters {
            let woke = tokio::time::timeout(Duration::from_secs(10), waiter).await;
            assert!(matches!(woke, Ok(Ok(true))), "a waiter was never woken");
        }
    }
}
