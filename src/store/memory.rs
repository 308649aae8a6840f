//! In-process store: correct for one replica (several replicas need Redis, where a replayed
//! code or a logout must hold across every replica).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt};

use super::{Store, StoreResult};

/// Expired entries are swept after this many writes.
const SWEEP_EVERY: u64 = 4096;

/// A [`Store`] in process memory. Every operation holds one mutex, which makes each atomic.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, (Vec<u8>, Instant)>,
    writes: u64,
}

impl Inner {
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut (Vec<u8>, Instant)> {
        if self.entries.get(key).is_some_and(|(_, exp)| *exp <= now) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    fn write(&mut self, key: &str, value: Vec<u8>, ttl: Duration, now: Instant) -> Option<Vec<u8>> {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            self.entries.retain(|_, (_, exp)| *exp > now);
        }
        // One hash of the key: the insert hands back the previous entry, live or expired.
        let old = self.entries.insert(key.to_string(), (value, now + ttl));
        old.filter(|(_, exp)| *exp > now).map(|(v, _)| v)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner, Instant) -> T) -> T {
        // A poisoned lock only means another request panicked mid-operation; the map itself
        // is always consistent (every operation is one map call).
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut inner, Instant::now())
    }
}

impl Store for MemoryStore {
    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> BoxFuture<'a, StoreResult<()>> {
        self.with(|i, now| i.write(key, value, ttl, now));
        futures::future::ready(Ok(())).boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        let v = self.with(|i, now| i.live(key, now).map(|(v, _)| v.clone()));
        futures::future::ready(Ok(v)).boxed()
    }

    fn take<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        let v = self.with(|i, now| {
            i.live(key, now)?;
            i.entries.remove(key).map(|(v, _)| v)
        });
        futures::future::ready(Ok(v)).boxed()
    }

    fn swap<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        let old = self.with(|i, now| i.write(key, value, ttl, now));
        futures::future::ready(Ok(old)).boxed()
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        self.with(|i, _| i.entries.remove(key));
        futures::future::ready(Ok(())).boxed()
    }

    fn incr<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, StoreResult<u64>> {
        let n = self.with(|i, now| {
            let current = i
                .live(key, now)
                .and_then(|(v, _)| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
            match current {
                Some(n) => {
                    if let Some(entry) = i.entries.get_mut(key) {
                        entry.0 = (n + 1).to_string().into_bytes();
                    }
                    n + 1
                }
                None => {
                    i.write(key, b"1".to_vec(), ttl, now);
                    1
                }
            }
        });
        futures::future::ready(Ok(n)).boxed()
    }

    fn touch<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, StoreResult<bool>> {
        let found = self.with(|i, now| match i.live(key, now) {
            Some(entry) => {
                entry.1 = now + ttl;
                true
            }
            None => false,
        });
        futures::future::ready(Ok(found)).boxed()
    }
}

// Tests: `super::tests`, the same bodies against this store and the Redis one.
