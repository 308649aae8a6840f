//! Re-reconciling the *other* objects of a kind when one changes.
//!
//! Uniqueness rules (two organizations on one subdomain, two apps on one app-link host) make
//! an object's status depend on its siblings: when the earlier holder of a subdomain changes
//! it or is deleted, the later one must become Ready by itself. Each object has "keys" (the
//! things it claims); on every watch event the siblings sharing a key with the object's new
//! OR previous keys are queued. Previous keys are remembered here, because a watch event
//! only carries the new object. The hook runs after the event reached the reflector store, so
//! the queued reconciles see the change (a deleted object is already gone from the store).

use std::collections::{HashMap, HashSet};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde::de::DeserializeOwned;

/// A watched kind whose siblings are re-queued: the store, the primary trigger stream for
/// `Controller::for_stream`, the sibling queue for `Controller::reconcile_on`, and a sender
/// into that queue for the reconciler's own use.
pub struct Watched<K: kube::Resource<DynamicType = ()> + Clone + 'static, S> {
    /// The reflector store (already updated when a trigger fires).
    pub store: Store<K>,
    /// Objects that changed.
    pub changed: S,
    /// Siblings to reconcile again.
    pub siblings: UnboundedReceiver<ObjectRef<K>>,
    /// More siblings can be queued here.
    pub queue: UnboundedSender<ObjectRef<K>>,
}

/// Watches `api` into a store; every change also queues the siblings sharing a key (see the
/// module doc).
pub fn watch<K>(
    api: Api<K>,
    keys: impl Fn(&K) -> Vec<String> + Send + 'static,
) -> Watched<K, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let (queue, siblings) = futures::channel::mpsc::unbounded();
    let mut related = Related::new(store.clone(), keys, queue.clone());
    let changed = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(event) = event {
                related.on_event(event);
            }
        })
        .touched_objects();
    Watched {
        store,
        changed,
        siblings,
        queue,
    }
}

/// Drains a controller's result stream, logging failures at debug level (the error policy
/// already logged them with context).
pub async fn drain<T, E: std::fmt::Display>(results: impl Stream<Item = Result<T, E>>) {
    results
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "reconcile failed");
            }
        })
        .await;
}

/// What an object claims, as comparable strings.
type KeyFn<K> = Box<dyn Fn(&K) -> Vec<String> + Send>;

/// Watches events of `K` and queues siblings that share keys.
pub struct Related<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    keys: KeyFn<K>,
    previous: HashMap<String, Vec<String>>,
    queue: UnboundedSender<ObjectRef<K>>,
}

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Related<K> {
    /// A hook over `store` that sends the siblings to reconcile into `queue`.
    pub fn new(
        store: Store<K>,
        keys: impl Fn(&K) -> Vec<String> + Send + 'static,
        queue: UnboundedSender<ObjectRef<K>>,
    ) -> Self {
        Related {
            store,
            keys: Box::new(keys),
            previous: HashMap::new(),
            queue,
        }
    }

    /// Handles one watch event (call it after the store has applied the event).
    pub fn on_event(&mut self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::InitApply(obj) => {
                // Everything is reconciled after a (re)list anyway: only remember the keys.
                self.previous.insert(Self::id(obj), (self.keys)(obj));
            }
            watcher::Event::Apply(obj) => {
                let now = (self.keys)(obj);
                let before = self.previous.insert(Self::id(obj), now.clone()).unwrap_or_default();
                self.queue_sharing(obj, now.into_iter().chain(before).collect());
            }
            watcher::Event::Delete(obj) => {
                let before = self.previous.remove(&Self::id(obj)).unwrap_or_default();
                self.queue_sharing(obj, (self.keys)(obj).into_iter().chain(before).collect());
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }

    fn id(obj: &K) -> String {
        obj.uid()
            .unwrap_or_else(|| format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()))
    }

    fn queue_sharing(&self, changed: &K, keys: HashSet<String>) {
        if keys.is_empty() {
            return;
        }
        let me = Self::id(changed);
        for other in self.store.state() {
            if Self::id(&other) != me && (self.keys)(&other).iter().any(|k| keys.contains(k)) {
                // The receiver lives as long as the controller; a send error means shutdown.
                let _ = self.queue.unbounded_send(ObjectRef::from_obj(other.as_ref()));
            }
        }
    }
}
