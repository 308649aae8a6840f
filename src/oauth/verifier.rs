//! Verification of argon2id-hashed secrets (client secrets and login passwords) without
//! letting them stall the server:
//!
//! - every argon2id verify runs on tokio's blocking pool, at most `max_parallel` at once (a
//!   semaphore): argon2id at OWASP parameters costs ~20 MiB and tens of milliseconds, so an
//!   unbounded fan-out would be a memory and CPU denial of service;
//! - an unknown client or e-mail still costs one verify against a dummy hash, so the answer and
//!   its timing are the same as for a wrong secret;
//! - successful client-secret verifications are cached in memory under an HMAC-SHA-256 of
//!   (client_id, secret) with a per-process random key, so the cache holds nothing that could
//!   be replayed or brute-forced offline. A hit is only honoured while the ClientSecret it
//!   names is still among the [`Candidate`]s the caller presents — the secrets that
//!   authenticate for the organization now (checked on every hit, which costs a map lookup) —
//!   so a revoked secret is refused as soon as the reflector cache sees the change;
//! - the server pre-warms the cache ([`SecretVerifier::warm`]): for every authenticating
//!   ClientSecret whose plaintext it holds (it watches those Secrets anyway, for the native
//!   JWE key) it verifies the plaintext against the status hash once and *pins* the entry,
//!   which the capacity limit never clears. The owner's secret is therefore a cheap hit from
//!   the start, and only secrets that are not the owner's cost argon2id work — which
//!   [`crate::oauth::client_auth`] rations without ever refusing the owner.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::Semaphore;

use crate::runtime::blocking::run_bounded;

/// Upper bound of cached verifications; the cache is cleared when it is full.
const CACHE_CAPACITY: usize = 10_000;

/// Identifies a ClientSecret object (a recreated object of the same name is another secret).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretId {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

impl SecretId {
    /// The identity of a ClientSecret (any object: namespace, name, UID).
    pub fn of(object: &impl kube::Resource) -> SecretId {
        let m = object.meta();
        SecretId {
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
        }
    }

    /// Whether candidate `c` is this secret (compared in place: the cache-hit path copies
    /// nothing).
    pub fn is(&self, c: &Candidate<'_>) -> bool {
        c.uid == self.uid && c.name == self.name && c.namespace == self.namespace
    }
}

/// A client secret as the verifier sees it: which ClientSecret object, and the argon2id hash
/// of its status. Callers present only the secrets that authenticate for the organization now.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    /// Namespace of the ClientSecret.
    pub namespace: &'a str,
    /// Name of the ClientSecret.
    pub name: &'a str,
    /// UID of the ClientSecret.
    pub uid: &'a str,
    /// The argon2id hash (empty, which never verifies, when missing).
    pub hash: &'a str,
}

impl Candidate<'_> {
    /// The owned identity.
    pub fn id(&self) -> SecretId {
        SecretId {
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
            uid: self.uid.to_string(),
        }
    }
}

/// The cached verifications: pinned (pre-warmed from the plaintext the server holds, one per
/// authenticating ClientSecret) and learnt from requests (cleared when full).
#[derive(Default)]
struct Cache {
    pinned: HashMap<Vec<u8>, SecretId>,
    /// The client ID each pinned secret was warmed for.
    warmed: HashMap<SecretId, String>,
    learnt: HashMap<Vec<u8>, SecretId>,
}

/// Bounded argon2id verification plus the cache of client-secret successes.
pub struct SecretVerifier {
    permits: Arc<Semaphore>,
    cache_key: hmac::Key,
    cache: Mutex<Cache>,
    dummy_hash: Arc<str>,
    /// Dummy at the cost of generated client secrets: an unknown client costs what a known
    /// one does.
    dummy_secret_hash: Arc<str>,
    verifications: Arc<AtomicU64>,
}

impl SecretVerifier {
    /// A verifier running at most `max_parallel` argon2id verifications at once. Hashes a
    /// dummy secret once (tens of milliseconds).
    pub fn new(max_parallel: usize) -> SecretVerifier {
        let rng = SystemRandom::new();
        let mut key = [0u8; 32];
        let mut dummy = [0u8; 32];
        // The OS random source failing is unrecoverable for an authorization server.
        rng.fill(&mut key).expect("OS random source");
        rng.fill(&mut dummy).expect("OS random source");
        SecretVerifier {
            permits: Arc::new(Semaphore::new(max_parallel.max(1))),
            cache_key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            cache: Mutex::new(Cache::default()),
            dummy_hash: crate::crypto::hash(&dummy).expect("argon2id hashing").into(),
            dummy_secret_hash: crate::crypto::hash_secret(&dummy).expect("argon2id hashing").into(),
            verifications: Arc::default(),
        }
    }

    /// How many argon2id verifications this verifier has run (what an attacker can make the
    /// server spend).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Verifies `secret` against `hashes` on the blocking pool and returns the index of the
    /// first match. With no hashes, verifies against the dummy hash (and never matches).
    pub async fn verify_any(&self, hashes: Vec<String>, secret: &str) -> Option<usize> {
        self.verify_any_or(hashes, secret, self.dummy_hash.clone()).await
    }

    /// [`Self::verify_any`] with `dummy` (a hash at the cost of the expected hashes) for an
    /// empty `hashes`.
    async fn verify_any_or(&self, hashes: Vec<String>, secret: &str, dummy: Arc<str>) -> Option<usize> {
        let secret = secret.as_bytes().to_vec();
        let verifications = self.verifications.clone();
        run_bounded(&self.permits, move || {
            verifications.fetch_add(1, Ordering::Relaxed);
            if hashes.is_empty() {
                let _ = crate::crypto::verify(&dummy, &secret);
                return None;
            }
            hashes.iter().position(|h| crate::crypto::verify(h, &secret))
        })
        .await
        .ok()
        .flatten()
    }

    /// Authenticates `client_id:secret` against `candidates` (none: unknown client): a cache
    /// hit, else one argon2id verification. Returns the index of the candidate that matched.
    pub async fn authenticate_client(
        &self,
        client_id: &str,
        secret: &str,
        candidates: &[Candidate<'_>],
    ) -> Option<usize> {
        let p = Presented {
            client_id,
            secret,
            candidates,
        };
        match self.cached_client(p) {
            Some(i) => Some(i),
            None => self.verify_client(p).await,
        }
    }

    /// The candidate a cached verification of what `p` presents names, if it is still
    /// presented; a stale entry is dropped. Costs an HMAC and a map lookup.
    pub fn cached_client(&self, p: Presented<'_>) -> Option<usize> {
        let key = self.cache_key(p.client_id, p.secret);
        let id = self.cached(&key)?;
        let found = p.candidates.iter().position(|c| id.is(c));
        if found.is_none() {
            self.evict(&key);
        }
        found
    }

    /// Verifies what `p` presents against the hashes of its candidates with argon2id (a dummy
    /// hash when there are none); caches a success.
    pub async fn verify_client(&self, p: Presented<'_>) -> Option<usize> {
        let hashes = p.candidates.iter().map(|c| c.hash.to_string()).collect();
        let index = self
            .verify_any_or(hashes, p.secret, self.dummy_secret_hash.clone())
            .await?;
        self.remember(self.cache_key(p.client_id, p.secret), p.candidates[index].id());
        Some(index)
    }

    /// Pre-warms the cache with the plaintext of `c` (an authenticating secret of the
    /// organization with `client_id`): verifies it against its hash once and pins the entry.
    /// False when the plaintext does not match the hash (someone changed the Secret).
    pub async fn warm(&self, client_id: &str, c: Candidate<'_>, plaintext: &str) -> bool {
        let ok = self.verify_any(vec![c.hash.to_string()], plaintext).await.is_some();
        if ok {
            let key = self.cache_key(client_id, plaintext);
            let mut cache = self.lock();
            cache.pinned.insert(key, c.id());
            cache.warmed.insert(c.id(), client_id.to_string());
        }
        ok
    }

    /// Whether secret `id` is pinned for `client_id`.
    pub fn is_pinned(&self, id: &SecretId, client_id: &str) -> bool {
        self.lock().warmed.get(id).is_some_and(|c| c == client_id)
    }

    /// Unpins the entries of secrets that no longer authenticate (`still_valid` false).
    pub fn retain_pinned(&self, still_valid: impl Fn(&SecretId) -> bool) {
        let mut cache = self.lock();
        cache.pinned.retain(|_, id| still_valid(id));
        cache.warmed.retain(|id, _| still_valid(id));
    }

    /// Drops cached verifications whose secret no longer authenticates. The server does not
    /// call it: a stale entry is dropped on its next hit (see `authenticate_client`) or when
    /// the cache reaches its capacity (10,000 entries), which bounds its memory.
    pub fn retain(&self, still_valid: impl Fn(&SecretId) -> bool) {
        self.lock().learnt.retain(|_, id| still_valid(id));
    }

    /// Number of cached verifications (pinned and learnt).
    pub fn cached_len(&self) -> usize {
        let cache = self.lock();
        cache.pinned.len() + cache.learnt.len()
    }

    fn cache_key(&self, client_id: &str, secret: &str) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.cache_key);
        ctx.update(&(client_id.len() as u64).to_be_bytes());
        ctx.update(client_id.as_bytes());
        ctx.update(secret.as_bytes());
        ctx.sign().as_ref().to_vec()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, key: &[u8]) -> Option<SecretId> {
        let cache = self.lock();
        cache.pinned.get(key).or_else(|| cache.learnt.get(key)).cloned()
    }

    fn evict(&self, key: &[u8]) {
        let mut cache = self.lock();
        cache.pinned.remove(key);
        cache.learnt.remove(key);
    }

    fn remember(&self, key: Vec<u8>, id: SecretId) {
        let mut cache = self.lock();
        if cache.learnt.len() >= CACHE_CAPACITY {
            cache.learnt.clear();
        }
        cache.learnt.insert(key, id);
    }
}

/// What a client presents to authenticate.
#[derive(Clone, Copy)]
pub struct Presented<'a> {
    /// The client ID sent.
    pub client_id: &'a str,
    /// The secret sent.
    pub secret: &'a str,
    /// The secrets that authenticate for the client's organization now (none: no organization
    /// has the client ID).
    pub candidates: &'a [Candidate<'a>],
}

/// Client secrets for the tests of client authentication.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::Candidate;

    /// A ClientSecret `name` of namespace `ns` (UID `uid-<name>`) and the hash of `plaintext`.
    pub struct Secret {
        name: String,
        uid: String,
        hash: String,
    }

    impl Secret {
        /// As the verifier sees it.
        pub fn candidate(&self) -> Candidate<'_> {
            Candidate {
                namespace: "ns",
                name: &self.name,
                uid: &self.uid,
                hash: &self.hash,
            }
        }
    }

    /// Secret `name` hashing `plaintext`.
    pub fn secret(name: &str, plaintext: &str) -> Secret {
        Secret {
            name: name.into(),
            uid: format!("uid-{name}"),
            hash: crate::crypto::hash_secret(plaintext.as_bytes()).unwrap(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::secret;
    use super::*;

    #[tokio::test]
    async fn caches_successes_and_honours_revocation_on_the_next_hit() {
        let v = SecretVerifier::new(2);
        let (one, two) = (secret("one", "s1"), secret("two", "s2"));
        // What the organization presents while "one", then "two", is its active secret.
        let (while_one, while_two) = ([one.candidate()], [two.candidate()]);
        assert!(v.authenticate_client("cid", "s1", &while_one).await.is_some());
        assert_eq!(v.cached_len(), 1);
        assert!(v.authenticate_client("cid", "s2", &while_one).await.is_none());
        assert!(v.authenticate_client("cid", "s1", &while_one).await.is_some());
        // Activation moves to "two": the cached success for "one" must not count any more.
        assert!(v.authenticate_client("cid", "s1", &while_two).await.is_none());
        assert_eq!(v.cached_len(), 0, "the stale entry was evicted");
        assert_eq!(v.authenticate_client("cid", "s2", &while_two).await, Some(0));
        assert!(v.authenticate_client("other", "s2", &[]).await.is_none());
        v.retain(|_| false);
        assert_eq!(v.cached_len(), 0);
    }

    #[tokio::test]
    async fn a_warmed_secret_is_a_hit_without_argon2id_and_survives_a_full_cache() {
        let v = SecretVerifier::new(2);
        let one = secret("one", "s1");
        let candidates = [one.candidate()];
        assert!(!v.warm("cid", one.candidate(), "not-the-plaintext").await);
        assert!(v.warm("cid", one.candidate(), "s1").await);
        assert!(v.is_pinned(&one.candidate().id(), "cid"));
        assert!(!v.is_pinned(&one.candidate().id(), "another-client-id"));
        let before = v.verifications();
        for i in 0..CACHE_CAPACITY + 1 {
            v.remember(vec![i as u8, (i >> 8) as u8, (i >> 16) as u8], one.candidate().id());
        }
        let presented = |client_id| Presented {
            client_id,
            secret: "s1",
            candidates: &candidates,
        };
        assert!(v.cached_client(presented("cid")).is_some());
        assert_eq!(v.verifications(), before, "a hit runs no argon2id");
        assert!(v.cached_client(presented("other-client")).is_none());
        v.retain_pinned(|_| false);
        assert!(v.cached_client(presented("cid")).is_none());
    }
}
