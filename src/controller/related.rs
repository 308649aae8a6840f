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

use crate::runtime::cache::{Change, Feed};
use crate::runtime::scope::WatchScope;

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

/// Follows the unit `unit` of the shared cache `feed` (see [`crate::runtime::cache::Feed`]); every
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

/// An object's ID (its UID), shared by the maps that name it.
type Id = Arc<str>;

/// What an object claims, as comparable strings.
type KeyFn<K> = Box<dyn Fn(&K) -> Vec<String> + Send>;

/// A claim as kept in the index: a 64-bit hash of its string. Two different claims with the
/// same hash only make a change queue an object that shares nothing with it, one needless
/// reconcile; the strings cost more than everything else the index holds per object.
type Key = u64;

fn key_of(claim: &str) -> Key {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    claim.hash(&mut hasher);
    hasher.finish()
}

/// Watches events of `K` and queues siblings that share keys. An index from each key to the
/// objects claiming it makes a change cost what its keys share, not a pass over every object
/// (with 10,000 organizations, each event computed the keys of all 10,000).
pub struct Related<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    keys: KeyFn<K>,
    /// Each object's reference and keys as of its last change, by object ID.
    previous: HashMap<Id, (ObjectRef<K>, Vec<Key>)>,
    /// The IDs of the objects claiming each key (almost always one: a `Vec`, not a set; at
    /// 10,000 tenants a set per key cost more than the keys).
    holders: HashMap<Key, Vec<Id>>,
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
            holders: HashMap::new(),
            queue,
        }
    }

    /// Handles one change (call it after the store has applied it).
    pub fn on_change(&mut self, change: &Change<K>) {
        match change {
            Change::Listed(obj) => {
                // Everything is reconciled after a (re)list anyway: only remember the keys.
                self.remember(obj);
            }
            Change::Applied(obj) => {
                let before = self.remember(obj);
                let now = self
                    .previous
                    .get(&Self::id(obj))
                    .map(|(_, k)| k.clone())
                    .unwrap_or_default();
                self.queue_sharing(obj, now.into_iter().chain(before).collect());
            }
            Change::Deleted(obj) => {
                let before = self.forget(&Self::id(obj));
                self.queue_sharing(obj, self.keys_of(obj).into_iter().chain(before).collect());
            }
        }
    }

    fn keys_of(&self, obj: &K) -> Vec<Key> {
        (self.keys)(obj).iter().map(|claim| key_of(claim)).collect()
    }

    /// Records the keys of `obj`; returns its keys before.
    fn remember(&mut self, obj: &K) -> Vec<Key> {
        let id = Self::id(obj);
        let before = self.forget(&id);
        let now = self.keys_of(obj);
        for key in &now {
            let ids = self.holders.entry(*key).or_default();
            if !ids.contains(&id) {
                ids.push(Id::clone(&id));
            }
        }
        // Name and namespace only: the queue needs no resource version or UID.
        let mut reference = ObjectRef::new(&obj.name_any());
        if let Some(ns) = obj.namespace() {
            reference = reference.within(&ns);
        }
        self.previous.insert(id, (reference, now));
        before
    }

    /// Drops what is recorded of object `id`; returns its keys.
    fn forget(&mut self, id: &str) -> Vec<Key> {
        let Some((_, keys)) = self.previous.remove(id) else {
            return vec![];
        };
        for key in &keys {
            if let Some(ids) = self.holders.get_mut(key) {
                ids.retain(|held| &**held != id);
                if ids.is_empty() {
                    self.holders.remove(key);
                }
            }
        }
        keys
    }

    fn id(obj: &K) -> Id {
        obj.uid()
            .unwrap_or_else(|| format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()))
            .into()
    }

    fn queue_sharing(&self, changed: &K, keys: HashSet<Key>) {
        let me = Self::id(changed);
        let ids: HashSet<&Id> = keys.iter().filter_map(|k| self.holders.get(k)).flatten().collect();
        for id in ids.into_iter().filter(|id| **id != me) {
            let Some((r, _)) = self.previous.get(id) else { continue };
            // Only objects still in the store (a relist may have dropped one without an event).
            if self.store.get(r).is_some() {
                // The receiver lives as long as the controller; a send error means shutdown.
                let _ = self.queue.unbounded_send(r.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    use super::*;

    fn cm(name: &str, host: &str) -> Arc<ConfigMap> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
                "data": {"host": host},
            }))
            .unwrap(),
        )
    }

    fn host(cm: &ConfigMap) -> Vec<String> {
        cm.data
            .as_ref()
            .and_then(|d| d.get("host"))
            .map(|h| vec![h.clone()])
            .unwrap_or_default()
    }

    fn drained(rx: &mut UnboundedReceiver<ObjectRef<ConfigMap>>) -> Vec<String> {
        let mut names = vec![];
        while let Ok(r) = rx.try_recv() {
            names.push(r.name);
        }
        names.sort();
        names
    }

    #[test]
    fn a_change_queues_the_holders_of_its_new_and_previous_keys_only() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let (tx, mut rx) = futures::channel::mpsc::unbounded();
        let mut related = Related::new(store, host, tx);
        let (a, b, c) = (cm("a", "one"), cm("b", "one"), cm("c", "two"));
        for obj in [&a, &b, &c] {
            writer.apply_watcher_event(&Event::Apply((**obj).clone()));
            related.on_change(&Change::Listed(obj.clone()));
        }
        assert!(drained(&mut rx).is_empty(), "a list queues nothing");
        // `a` moves from "one" to "two": `b` (old key) and `c` (new key) are queued, not `a`.
        let moved = cm("a", "two");
        writer.apply_watcher_event(&Event::Apply((*moved).clone()));
        related.on_change(&Change::Applied(moved.clone()));
        assert_eq!(drained(&mut rx), ["b", "c"]);
        // Now only `c` shares a key with `a`; deleting `c` queues `a`.
        writer.apply_watcher_event(&Event::Delete((*c).clone()));
        related.on_change(&Change::Deleted(c.clone()));
        assert_eq!(drained(&mut rx), ["a"]);
        // `b` alone on "one": changing it queues nobody.
        related.on_change(&Change::Applied(b.clone()));
        assert!(drained(&mut rx).is_empty());
    }
}
