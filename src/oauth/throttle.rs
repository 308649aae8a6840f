//! Throttling of failed authentications (client secrets and passwords), counted in the store
//! so every replica sees the same counters: per client (or account) and per address. When a
//! counter is over its limit, the request is refused before any argon2id work.

use std::net::IpAddr;
use std::time::Duration;

use crate::store::{Store, StoreResult};

/// Limits of the failure counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Failures allowed per client ID or account in one window.
    pub per_subject: u64,
    /// Failures allowed per client address in one window.
    pub per_address: u64,
    /// Length of the window.
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_subject: 50,
            per_address: 30,
            window: Duration::from_secs(300),
        }
    }
}

fn keys(kind: &str, subject: &str, addr: IpAddr) -> [String; 2] {
    [
        format!("throttle:{kind}:{}", crate::store::hashed(subject)),
        format!("throttle:addr:{addr}"),
    ]
}

/// Whether `subject` (a client ID or e-mail) from `addr` is currently throttled.
pub async fn is_throttled(
    store: &dyn Store,
    limits: Limits,
    kind: &str,
    subject: &str,
    addr: IpAddr,
) -> StoreResult<bool> {
    let [s, a] = keys(kind, subject, addr);
    let count = |v: Option<Vec<u8>>| {
        v.and_then(|b| String::from_utf8(b).ok()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(count(store.get(&s).await?) >= limits.per_subject || count(store.get(&a).await?) >= limits.per_address)
}

/// Counts one failure of `subject` from `addr`.
pub async fn record_failure(
    store: &dyn Store,
    limits: Limits,
    kind: &str,
    subject: &str,
    addr: IpAddr,
) -> StoreResult<()> {
    for key in keys(kind, subject, addr) {
        store.incr(&key, limits.window).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn per_subject_and_per_address() {
        let store = MemoryStore::new();
        let limits = Limits {
            per_subject: 3,
            per_address: 5,
            window: Duration::from_secs(60),
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(!is_throttled(&store, limits, "client", "c1", a).await.unwrap());
            record_failure(&store, limits, "client", "c1", a).await.unwrap();
        }
        assert!(
            is_throttled(&store, limits, "client", "c1", b).await.unwrap(),
            "per client, any address"
        );
        assert!(!is_throttled(&store, limits, "client", "c2", b).await.unwrap());
        record_failure(&store, limits, "client", "c2", a).await.unwrap();
        record_failure(&store, limits, "client", "c3", a).await.unwrap();
        assert!(
            is_throttled(&store, limits, "client", "c4", a).await.unwrap(),
            "per address, any client"
        );
    }
}
