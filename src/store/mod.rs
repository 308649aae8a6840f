//! Sessions, authorization codes, login state, refresh tokens and throttling counters behind
//! one trait.
//!
//! The trait is a small key–value interface whose every operation is a single Redis command,
//! so the Redis implementation (several replicas) keeps exactly the atomicity the memory one
//! has: `put` = `SET … PX`, `get` = `GET`, `take` = `GETDEL`, `swap` = `SET … GET PX`,
//! `delete` = `DEL`, `incr` = `INCR` + `PEXPIRE … NX`, `touch` = `PEXPIRE`. Single-use codes
//! and refresh-token rotation rely on `swap`/`take` being atomic: of any number of concurrent
//! callers exactly one sees the old value.
//!
//! Keys are namespaced strings (`code:…`, `session:…`); secrets (codes, refresh tokens) are
//! never keys themselves, only their SHA-256, so a dump of the store yields nothing usable.
//!
//! [`MemoryStore`] (the default) is correct for one replica only: with several, a logout or a
//! replayed code at one replica would not reach the others. [`RedisStore`] (`--store
//! redis://…`) is shared by every replica; it prefixes every key (`--store-key-prefix`) so
//! several installations can share one Redis. [`open`] picks one from a [`StoreUrl`].

pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};

pub use memory::MemoryStore;
pub use redis::{RedisStore, RedisUrl};

/// The store failed (only the Redis implementation can: connection errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the session store is unavailable: {0}")]
pub struct StoreError(pub String);

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// The key–value operations every store implements atomically.
pub trait Store: Send + Sync + 'static {
    /// Sets `key` to `value`, expiring after `ttl`.
    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> BoxFuture<'a, StoreResult<()>>;
    /// The value of `key`, if present and not expired.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>>;
    /// Removes `key` and returns what it held, atomically.
    fn take<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>>;
    /// Sets `key` to `value` (expiring after `ttl`) and returns what it held before, atomically.
    fn swap<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>>;
    /// Removes `key`.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<()>>;
    /// Increments the counter `key` (created at 0 with expiry `ttl`) and returns the new value.
    fn incr<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, StoreResult<u64>>;
    /// Sets a new expiry on `key`; false when it does not exist.
    fn touch<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, StoreResult<bool>>;
    /// Succeeds when the store is reachable and usable (what `/readyz` waits for). The memory
    /// store always is.
    fn ping(&self) -> BoxFuture<'_, StoreResult<()>> {
        futures::future::ready(Ok(())).boxed()
    }
}

/// Where the store lives: `--store memory` or `--store redis[s]://…`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum StoreUrl {
    /// In process memory: only correct with one replica.
    #[default]
    Memory,
    /// A Redis server shared by every replica.
    Redis(RedisUrl),
}

impl std::str::FromStr for StoreUrl {
    type Err = String;

    /// `memory`, or a `redis://` / `rediss://` URL (see [`RedisUrl`]). Messages never repeat
    /// the value, which may hold a password.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "memory" {
            return Ok(StoreUrl::Memory);
        }
        if !s.starts_with("redis://") && !s.starts_with("rediss://") {
            return Err("expected `memory` or a `redis://host:port[/db]` (or `rediss://…`) URL".to_string());
        }
        s.parse().map(StoreUrl::Redis)
    }
}

/// Opens the store `url` names; Redis keys all start with `prefix`, and `ca_pem` (PEM
/// certificates) replaces the system's trust store for `rediss://`. Nothing is connected yet:
/// [`Store::ping`] tells whether the store is reachable.
pub fn open(url: &StoreUrl, prefix: &str, ca_pem: Option<&[u8]>) -> StoreResult<Arc<dyn Store>> {
    Ok(match url {
        StoreUrl::Memory if ca_pem.is_some() => {
            return Err(StoreError(
                "a CA file for the store is set but the store is `memory`".into(),
            ));
        }
        StoreUrl::Memory => Arc::new(MemoryStore::new()),
        StoreUrl::Redis(url) => Arc::new(RedisStore::new(url, prefix, ca_pem)?),
    })
}

/// SHA-256 hex of a secret value, used in keys instead of the value.
pub fn hashed(secret: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// JSON helpers over any [`Store`].
pub mod json {
    use std::time::Duration;

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::{Store, StoreError, StoreResult};

    fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
        serde_json::to_vec(value).map_err(|e| StoreError(format!("cannot encode a record: {e}")))
    }

    /// Decodes a stored record; a record that does not decode counts as absent.
    pub fn decode<T: DeserializeOwned>(bytes: Option<Vec<u8>>) -> Option<T> {
        bytes.and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Stores `value` as JSON.
    pub async fn put<T: Serialize>(store: &dyn Store, key: &str, value: &T, ttl: Duration) -> StoreResult<()> {
        store.put(key, encode(value)?, ttl).await
    }

    /// Reads a JSON record.
    pub async fn get<T: DeserializeOwned>(store: &dyn Store, key: &str) -> StoreResult<Option<T>> {
        Ok(decode(store.get(key).await?))
    }

    /// Takes (reads and deletes) a JSON record.
    pub async fn take<T: DeserializeOwned>(store: &dyn Store, key: &str) -> StoreResult<Option<T>> {
        Ok(decode(store.take(key).await?))
    }
}
