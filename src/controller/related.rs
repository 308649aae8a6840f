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
use std::sync::Arc;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures::{Stream, StreamExt};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::cache::{Change, Feed};
use crate::scope::WatchScope;

/// A watched kind whose siblings are re-queued: the store, the primary trigger stream for
/// `Controller::for_shared_stream`, the sibling queue for `Controller::reconcile_on`, and a sender
/// into that queue for the reconciler's own use.
pub struct Watched<K: kube::Resource<DynamicType = ()> + Clone + 'static, S> {
    /// The shared cache's store of the unit (already updated when a trigger fires).
    pub store: Store<K>,
    /// Objects that changed.
    pub changed: S,
    /// Siblings to reconcile again.
    pub siblings: UnboundedReceiver<ObjectRef<K>>,
    /// More siblings can be queued here.
    pub queue: UnboundedSender<ObjectRef<K>>,
}

/// Follows the unit `unit` of the shared cache `feed` (see [`crate::cache::Feed`]); every
/// change also queues the siblings sharing a key (see the module doc). `None` when the caches
/// do not watch that unit.
pub fn follow<K>(
    feed: &Feed<K>,
    unit: &WatchScope,
    keys: impl Fn(&K) -> Vec<String> + Send + 'static,
) -> Option<Watched<K, impl Stream<Item = Arc<K>> + Send + 'static>>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, changes) = feed.subscribe(unit)?;
    let (queue, siblings) = futures::channel::mpsc::unbounded();
    let mut related = Related::new(store.clone(), keys, queue.clone());
    let changed = changes.map(move |change| {
        related.on_change(&change);
        change.object().clone()
    });
    Some(Watched {
        store,
        changed,
        siblings,
        queue,
    })
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

    /// Handles one change (call it after the store has applied it).
    pub fn on_change(&mut self, change: &Change<K>) {
        match change {
            Change::Listed(obj) => {
                // Everything is reconciled after a (re)list anyway: only remember the keys.
                self.previous.insert(Self::id(obj), (self.keys)(obj));
            }
            Change::Applied(obj) => {
                let now = (self.keys)(obj);
                let before = self.previous.insert(Self::id(obj), now.clone()).unwrap_or_default();
                self.queue_sharing(obj, now.into_iter().chain(before).collect());
            }
            Change::Deleted(obj) => {
                let before = self.previous.remove(&Self::id(obj)).unwrap_or_default();
                self.queue_sharing(obj, (self.keys)(obj).into_iter().chain(before).collect());
            }
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
