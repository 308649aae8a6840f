//! The association check's host lookups: the system resolver (`getaddrinfo`, so `/etc/hosts`,
//! search domains and `nsswitch.conf` behave as everywhere else in the pod), at most
//! [`MAX_LOOKUPS`] at once.
//!
//! Why a bound: `getaddrinfo` blocks the thread it runs on, so every lookup takes a thread of
//! tokio's blocking pool. reqwest's default resolver starts one per connection, with no limit:
//! 10,000 NativeApps checked at once grew the pool to 43 threads (`tests/bench/tenants.py`), and
//! as the periodic re-checks keep coming (one per app per interval) none of them ever sat idle
//! long enough to exit, each keeping its stack and allocator caches. The pool is also where
//! argon2id verifications run: a tenant whose app-link hosts resolve slowly (a DNS server that
//! does not answer costs 5 s per try) must not take the threads other tenants' logins need.
//!
//! A check that times out stops waiting, but its lookup keeps its thread and its permit until
//! `getaddrinfo` returns ([`run_bounded`]).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::Semaphore;

use crate::runtime::blocking::run_bounded;

/// Most host lookups of association checks running at once (each holds a blocking thread).
pub const MAX_LOOKUPS: usize = 4;

/// Looks up one host name; port 0 (the connector sets the port of the URL).
type Lookup = fn(&str) -> io::Result<Vec<SocketAddr>>;

/// A reqwest resolver: [`Lookup`] on the blocking pool, behind a semaphore.
pub(super) struct BoundedResolver {
    permits: Arc<Semaphore>,
    lookup: Lookup,
}

impl BoundedResolver {
    /// The system resolver, at most [`MAX_LOOKUPS`] at once.
    pub(super) fn system() -> BoundedResolver {
        BoundedResolver::new(MAX_LOOKUPS, system_lookup)
    }

    fn new(max: usize, lookup: Lookup) -> BoundedResolver {
        BoundedResolver {
            permits: Arc::new(Semaphore::new(max)),
            lookup,
        }
    }
}

fn system_lookup(host: &str) -> io::Result<Vec<SocketAddr>> {
    Ok((host, 0).to_socket_addrs()?.collect())
}

impl Resolve for BoundedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let permits = self.permits.clone();
        let lookup = self.lookup;
        Box::pin(async move {
            let addrs = run_bounded(&permits, move || lookup(name.as_str())).await??;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static MOST: AtomicUsize = AtomicUsize::new(0);

    /// A lookup that takes a while and records how many ran at once.
    fn slow_lookup(host: &str) -> io::Result<Vec<SocketAddr>> {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        MOST.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        match host {
            "nowhere.invalid" => Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
            _ => Ok(vec![SocketAddr::from(([127, 0, 0, 1], 0))]),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookups_beyond_the_bound_wait_and_all_complete() {
        let resolver = Arc::new(BoundedResolver::new(3, slow_lookup));
        let lookups = (0..12).map(|i| {
            let resolver = resolver.clone();
            let host = if i == 5 { "nowhere.invalid" } else { "app.example" };
            tokio::spawn(async move { resolver.resolve(host.parse().unwrap()).await.map(|a| a.count()) })
        });
        let results: Vec<_> = futures::future::join_all(lookups).await;
        let found = results.iter().filter(|r| matches!(r, Ok(Ok(1)))).count();
        assert_eq!(found, 11, "every lookup but the failing one answers");
        assert!(matches!(&results[5], Ok(Err(e)) if e.to_string().contains("no such host")));
        assert_eq!(MOST.load(Ordering::SeqCst), 3, "never more than the bound at once");
    }

    #[tokio::test]
    async fn the_system_resolver_answers_for_localhost() {
        let addrs = BoundedResolver::system()
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap();
        assert!(addrs.map(|a| a.ip()).any(|ip| ip.is_loopback()));
    }
}
