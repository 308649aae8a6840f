//! Client authentication that bounds what an attacker can cost without ever locking the owner
//! out.
//!
//! Failure limits exist to bound argon2id work (tens of milliseconds and ~19 MiB each), not to
//! punish a client ID: its `client_id` is public, so refusing it after failures would let
//! anyone lock an organization out of every login. Here:
//!
//! 1. A secret in the verified-secret cache proceeds at once: a keyed hash and a map lookup, no
//!    counter, no queue. The owner's secret is there from the start because the server
//!    pre-warms the cache from the plaintext it holds ([`super::verifier`]).
//! 2. Every other secret costs one argon2id verification, rationed: per organization (and one
//!    shared lane for unknown client IDs) at most one runs at a time in this process, later
//!    ones queue in arrival order; while the organization's failure counters
//!    ([`super::throttle::CLIENT`], per client ID and per address within the organization) are
//!    over their limits, each of them first waits [`ClientAuthPolicy::pace`]. Across clients,
//!    the verifier's semaphore bounds the verifications running at once.
//! 3. A queued request is answered "slow down" only after waiting [`ClientAuthPolicy::max_wait`]
//!    for its turn. A cold owner (a secret the server could not pre-warm) queued behind an
//!    attacker therefore succeeds later, or at worst is asked to retry — never refused outright.
//!
//! A queued request re-checks the cache while it waits and when its turn comes, so a burst of
//! cold requests with the right secret costs one verification, and a cold owner queued behind
//! an attack proceeds as soon as the pre-warm has cached its secret.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::throttle::{self, Limits};
use super::verifier::{Presented, SecretVerifier};
use crate::store::Store;

/// How often a queued request looks at the cache again.
const RECHECK: Duration = Duration::from_millis(100);

/// Lane of the client IDs no organization has: one for all, so spraying random client IDs
/// runs one dummy verification at a time.
const UNKNOWN: &str = "unknown client";

/// How uncached client-secret verifications are rationed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAuthPolicy {
    /// Failure counters (per client ID and per address, within the organization); over them,
    /// uncached verifications are paced, never refused.
    pub limits: Limits,
    /// Wait before each uncached verification of a client whose counters are over their limits.
    pub pace: Duration,
    /// Longest wait for a turn in the client's lane before the answer is "slow down".
    pub max_wait: Duration,
}

impl Default for ClientAuthPolicy {
    fn default() -> Self {
        ClientAuthPolicy {
            limits: Limits::default(),
            pace: Duration::from_secs(1),
            max_wait: Duration::from_secs(10),
        }
    }
}

/// Why a client failed to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Unknown client or wrong secret (indistinguishable on purpose).
    Invalid,
    /// The request waited its longest for a turn to be verified: retry later.
    Busy,
}

/// One authentication: what the client presents, for which organization, from where.
pub struct Attempt<'a> {
    /// Client ID, secret, and the secrets that authenticate for the organization now.
    pub presented: Presented<'a>,
    /// The UID of the organization that has the client ID (`None`: none has it).
    pub tenant: Option<&'a str>,
    /// The client address.
    pub addr: IpAddr,
}

/// One queue per organization: at most one uncached verification of it at a time.
#[derive(Default)]
pub struct Lanes(Mutex<HashMap<String, Arc<Semaphore>>>);

/// A turn in a lane; the lane is forgotten when nobody holds or waits for it any more.
pub struct Turn<'a> {
    lanes: &'a Lanes,
    name: String,
    lane: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Lanes {
    /// Waits (in arrival order) for the turn in lane `name`; `None` after `max_wait`.
    pub async fn enter(&self, name: &str, max_wait: Duration) -> Option<Turn<'_>> {
        let lane = self
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(1)))
            .clone();
        // Built before waiting, so a timed-out waiter also forgets an unused lane.
        let mut turn = Turn {
            lanes: self,
            name: name.to_string(),
            lane: lane.clone(),
            permit: None,
        };
        turn.permit = Some(tokio::time::timeout(max_wait, lane.acquire_owned()).await.ok()?.ok()?);
        Some(turn)
    }

    /// Number of lanes in use (held or waited for).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no lane is in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Semaphore>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.permit.take();
        let mut lanes = self.lanes.lock();
        // The map's reference and ours: nobody else holds or waits for this lane.
        if Arc::strong_count(&self.lane) == 2 {
            lanes.remove(&self.name);
        }
    }
}

/// Authenticates `attempt` (see the module documentation); the index of the candidate secret
/// that matched.
pub async fn authenticate(
    verifier: &SecretVerifier,
    lanes: &Lanes,
    store: &dyn Store,
    policy: &ClientAuthPolicy,
    attempt: Attempt<'_>,
) -> Result<usize, AuthFailure> {
    let Attempt {
        presented: p,
        tenant,
        addr,
    } = attempt;
    let hit = || verifier.cached_client(p);
    if let Some(cs) = hit() {
        return Ok(cs);
    }
    let (tenant, subject) = match tenant {
        Some(uid) => (uid, p.client_id),
        None => (UNKNOWN, ""),
    };
    // While it waits, a request looks at the cache again now and then: a cold owner queued
    // behind an attack proceeds as soon as the pre-warm (or another request) has cached it.
    let turn = lanes.enter(tenant, policy.max_wait);
    tokio::pin!(turn);
    let _turn = loop {
        tokio::select! {
            turn = &mut turn => break turn.ok_or(AuthFailure::Busy)?,
            () = tokio::time::sleep(RECHECK) => {
                if let Some(cs) = hit() {
                    return Ok(cs);
                }
            }
        }
    };
    if let Some(cs) = hit() {
        return Ok(cs);
    }
    let counters = throttle::CLIENT.untrusted(policy.limits, tenant, subject, addr);
    // A store that does not answer cannot say whether to pace: the lane still bounds the work.
    if counters.over(store).await.unwrap_or(false) {
        tokio::time::sleep(policy.pace).await;
    }
    match verifier.verify_client(p).await {
        Some(cs) => Ok(cs),
        None => {
            let _ = counters.record(store).await;
            Err(AuthFailure::Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::oauth::verifier::fixtures::{Secret, secret};
    use crate::store::MemoryStore;

    const POLICY: ClientAuthPolicy = ClientAuthPolicy {
        limits: Limits {
            per_subject: 3,
            per_address: 100,
            window: Duration::from_secs(60),
        },
        pace: Duration::from_millis(100),
        max_wait: Duration::from_secs(10),
    };

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    struct Setup {
        verifier: SecretVerifier,
        lanes: Lanes,
        store: MemoryStore,
        secrets: Vec<Secret>,
    }

    impl Setup {
        fn new() -> Setup {
            Setup {
                verifier: SecretVerifier::new(4),
                lanes: Lanes::default(),
                store: MemoryStore::new(),
                secrets: vec![secret("one", "right")],
            }
        }

        async fn auth(&self, policy: &ClientAuthPolicy, secret: &str, addr: IpAddr) -> Result<(), AuthFailure> {
            let candidates: Vec<_> = self.secrets.iter().map(Secret::candidate).collect();
            let presented = Presented {
                client_id: "cid",
                secret,
                candidates: &candidates,
            };
            let attempt = Attempt {
                presented,
                tenant: Some("uid-acme"),
                addr,
            };
            authenticate(&self.verifier, &self.lanes, &self.store, policy, attempt)
                .await
                .map(|_| ())
        }
    }

    #[tokio::test]
    async fn failures_from_many_addresses_never_refuse_the_right_secret_even_cold() {
        let s = Setup::new();
        for i in 0..10 {
            assert_eq!(s.auth(&POLICY, "wrong", ip(i)).await, Err(AuthFailure::Invalid));
        }
        let started = Instant::now();
        assert_eq!(
            s.auth(&POLICY, "right", ip(200)).await,
            Ok(()),
            "cold: paced, not refused"
        );
        assert!(
            started.elapsed() >= POLICY.pace,
            "over the limit, a cold verification waits"
        );
        let started = Instant::now();
        assert_eq!(s.auth(&POLICY, "right", ip(201)).await, Ok(()));
        assert!(started.elapsed() < POLICY.pace, "then it is a cache hit");
        assert!(s.lanes.is_empty(), "lanes are forgotten when unused");
    }

    #[tokio::test]
    async fn a_pre_warmed_owner_goes_first_while_attackers_queue() {
        let s = Arc::new(Setup::new());
        assert!(s.verifier.warm("cid", s.secrets[0].candidate(), "right").await);
        let before = s.verifier.verifications();
        let attackers: Vec<_> = (0..12)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.auth(&POLICY, &format!("wrong-{i}"), ip(i)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        assert_eq!(s.auth(&POLICY, "right", ip(250)).await, Ok(()));
        assert!(started.elapsed() < Duration::from_millis(50), "{:?}", started.elapsed());
        let started = Instant::now();
        for a in attackers {
            assert_eq!(a.await.unwrap(), Err(AuthFailure::Invalid));
        }
        // One at a time, and paced once the client is over its limit: 12 attempts, the last
        // 9 (or more) each after a 100 ms pause.
        assert!(
            started.elapsed() >= Duration::from_millis(700),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(s.verifier.verifications() - before, 12, "one argon2id run per attempt");
    }

    #[tokio::test]
    async fn a_turn_not_given_in_time_is_busy_not_refused_and_other_clients_are_not_queued() {
        let s = Setup::new();
        let short = ClientAuthPolicy {
            max_wait: Duration::from_millis(30),
            ..POLICY
        };
        let held = s.lanes.enter("uid-acme", POLICY.max_wait).await.unwrap();
        assert_eq!(s.auth(&short, "right", ip(1)).await, Err(AuthFailure::Busy));
        let other = s.lanes.enter("uid-other", short.max_wait).await;
        assert!(other.is_some(), "another organization has its own lane");
        drop((held, other));
        assert_eq!(s.auth(&short, "right", ip(1)).await, Ok(()));
    }

    #[tokio::test]
    async fn a_queued_owner_proceeds_as_soon_as_the_cache_is_warmed() {
        let s = Setup::new();
        let held = s.lanes.enter("uid-acme", POLICY.max_wait).await.unwrap();
        let warm = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(s.verifier.warm("cid", s.secrets[0].candidate(), "right").await);
        };
        let started = Instant::now();
        let (result, ()) = tokio::join!(s.auth(&POLICY, "right", ip(1)), warm);
        assert_eq!(result, Ok(()), "not stuck behind the lane it never got");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        drop(held);
    }

    #[tokio::test]
    async fn unknown_client_ids_share_one_lane() {
        let s = Setup::new();
        let held = s.lanes.enter(UNKNOWN, POLICY.max_wait).await.unwrap();
        let short = ClientAuthPolicy {
            max_wait: Duration::from_millis(30),
            ..POLICY
        };
        let presented = Presented {
            client_id: "random-client-id",
            secret: "x",
            candidates: &[],
        };
        let attempt = Attempt {
            presented,
            tenant: None,
            addr: ip(1),
        };
        let r = authenticate(&s.verifier, &s.lanes, &s.store, &short, attempt).await;
        assert_eq!(r.map(|_| ()), Err(AuthFailure::Busy));
        drop(held);
    }
}
