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
//!   names still authenticates for the organization (checked on every hit, which costs a map
//!   lookup), so a revoked secret is refused as soon as the reflector cache sees the change;
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

use crate::crd::{ClientSecret, Organization};

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
    /// The identity of a ClientSecret.
    pub fn of(cs: &ClientSecret) -> SecretId {
        SecretId {
            namespace: cs.metadata.namespace.clone().unwrap_or_default(),
            name: cs.metadata.name.clone().unwrap_or_default(),
            uid: cs.metadata.uid.clone().unwrap_or_default(),
        }
    }

    /// Whether `cs` is this ClientSecret (compared in place: the cache-hit path copies nothing).
    pub fn is(&self, cs: &ClientSecret) -> bool {
        let m = &cs.metadata;
        m.uid.as_deref().unwrap_or_default() == self.uid
            && m.name.as_deref().unwrap_or_default() == self.name
            && m.namespace.as_deref().unwrap_or_default() == self.namespace
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
    verifications: AtomicU64,
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
            verifications: AtomicU64::new(0),
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
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return None;
        };
        let secret = secret.as_bytes().to_vec();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
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

    /// Authenticates `client_id:secret` for `org` (None: unknown client): a cache hit, else one
    /// argon2id verification. `secrets` are the organization's ClientSecrets from the cache.
    /// Returns the ClientSecret that matched.
    pub async fn authenticate_client(
        &self,
        org: Option<&Organization>,
        client_id: &str,
        secret: &str,
        secrets: &[Arc<ClientSecret>],
    ) -> Option<Arc<ClientSecret>> {
        let p = Presented {
            org,
            client_id,
            secret,
            secrets,
        };
        match self.cached_client(p) {
            Some(cs) => Some(cs),
            None => self.verify_client(p).await,
        }
    }

    /// The ClientSecret a cached verification of what `p` presents names, if it still
    /// authenticates; a stale entry is dropped. Costs an HMAC and a map lookup.
    pub fn cached_client(&self, p: Presented<'_>) -> Option<Arc<ClientSecret>> {
        let key = self.cache_key(p.client_id, p.secret);
        let id = self.cached(&key)?;
        let found = p.candidates().into_iter().find(|cs| id.is(cs));
        if found.is_none() {
            self.evict(&key);
        }
        found
    }

    /// Verifies what `p` presents against the hashes of its organization's authenticating
    /// ClientSecrets with argon2id (a dummy hash for an unknown client); caches a success.
    pub async fn verify_client(&self, p: Presented<'_>) -> Option<Arc<ClientSecret>> {
        let candidates = p.candidates();
        let hashes = candidates.iter().map(|cs| secret_hash(cs).to_string()).collect();
        let index = self
            .verify_any_or(hashes, p.secret, self.dummy_secret_hash.clone())
            .await?;
        let matched = candidates[index].clone();
        self.remember(self.cache_key(p.client_id, p.secret), SecretId::of(&matched));
        Some(matched)
    }

    /// Pre-warms the cache with the plaintext of `cs` (an authenticating ClientSecret of the
    /// organization with `client_id`): verifies it against the status hash once and pins the
    /// entry. False when the plaintext does not match the hash (someone changed the Secret).
    pub async fn warm(&self, client_id: &str, cs: &ClientSecret, plaintext: &str) -> bool {
        let ok = self
            .verify_any(vec![secret_hash(cs).to_string()], plaintext)
            .await
            .is_some();
        if ok {
            let key = self.cache_key(client_id, plaintext);
            let mut cache = self.lock();
            cache.pinned.insert(key, SecretId::of(cs));
            cache.warmed.insert(SecretId::of(cs), client_id.to_string());
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
    /// The organization the client ID belongs to (`None`: no organization has it).
    pub org: Option<&'a Organization>,
    /// The client ID sent.
    pub client_id: &'a str,
    /// The secret sent.
    pub secret: &'a str,
    /// The organization's ClientSecrets (from the cache).
    pub secrets: &'a [Arc<ClientSecret>],
}

impl Presented<'_> {
    /// The ClientSecrets that authenticate for the organization now (none for an unknown client).
    fn candidates(&self) -> Vec<Arc<ClientSecret>> {
        match self.org {
            Some(org) => self
                .secrets
                .iter()
                .filter(|cs| cs.authenticates_for(org))
                .cloned()
                .collect(),
            None => vec![],
        }
    }
}

/// The argon2id hash in a ClientSecret's status (empty, which never verifies, when missing).
fn secret_hash(cs: &ClientSecret) -> &str {
    cs.status
        .as_ref()
        .and_then(|s| s.secret_hash.as_deref())
        .unwrap_or_default()
}

/// An organization and its ClientSecrets for the tests of client authentication.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::sync::Arc;

    use crate::crd::{
        ActiveSecretRef, ClientSecret, ClientSecretPhase, ClientSecretStatus, Organization, OrganizationStatus,
    };

    /// Organization `acme` (UID `uid-acme`) whose active secret is the ClientSecret `active`.
    pub fn org(active: &str) -> Organization {
        let mut org: Organization = serde_json::from_value(serde_json::json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization",
            "metadata": {"name": "acme", "namespace": "ns", "uid": "uid-acme"},
            "spec": {"displayName": "Acme", "loginMethods": {"passwords": {"secretName": "u"}}}
        }))
        .unwrap();
        org.status = Some(OrganizationStatus {
            active_secret: Some(ActiveSecretRef {
                name: active.into(),
                uid: Some(format!("uid-{active}")),
                fingerprint: "sha256:x".into(),
                activated_at: None,
            }),
            ..Default::default()
        });
        org
    }

    /// An Active ClientSecret `name` of `acme` hashing `plaintext`.
    pub fn secret(name: &str, plaintext: &str) -> Arc<ClientSecret> {
        let mut cs: ClientSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {"organizationRef": {"name": "acme"}}
        }))
        .unwrap();
        cs.status = Some(ClientSecretStatus {
            phase: Some(ClientSecretPhase::Active),
            secret_hash: Some(crate::crypto::hash_secret(plaintext.as_bytes()).unwrap()),
            ..Default::default()
        });
        Arc::new(cs)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{org, secret};
    use super::*;

    #[tokio::test]
    async fn caches_successes_and_honours_revocation_on_the_next_hit() {
        let v = SecretVerifier::new(2);
        let secrets = vec![secret("one", "s1"), secret("two", "s2")];
        let org_one = org("one");
        assert!(
            v.authenticate_client(Some(&org_one), "cid", "s1", &secrets)
                .await
                .is_some()
        );
        assert_eq!(v.cached_len(), 1);
        assert!(
            v.authenticate_client(Some(&org_one), "cid", "s2", &secrets)
                .await
                .is_none()
        );
        assert!(
            v.authenticate_client(Some(&org_one), "cid", "s1", &secrets)
                .await
                .is_some()
        );
        // Activation moves to "two": the cached success for "one" must not count any more.
        let org_two = org("two");
        assert!(
            v.authenticate_client(Some(&org_two), "cid", "s1", &secrets)
                .await
                .is_none()
        );
        assert_eq!(v.cached_len(), 0, "the stale entry was evicted");
        assert!(
            v.authenticate_client(Some(&org_two), "cid", "s2", &secrets)
                .await
                .is_some()
        );
        assert!(v.authenticate_client(None, "other", "s2", &secrets).await.is_none());
        v.retain(|_| false);
        assert_eq!(v.cached_len(), 0);
    }

    #[tokio::test]
    async fn a_warmed_secret_is_a_hit_without_argon2id_and_survives_a_full_cache() {
        let v = SecretVerifier::new(2);
        let secrets = vec![secret("one", "s1")];
        let org_one = org("one");
        assert!(!v.warm("cid", &secrets[0], "not-the-plaintext").await);
        assert!(v.warm("cid", &secrets[0], "s1").await);
        assert!(v.is_pinned(&SecretId::of(&secrets[0]), "cid"));
        assert!(!v.is_pinned(&SecretId::of(&secrets[0]), "another-client-id"));
        let before = v.verifications();
        for i in 0..CACHE_CAPACITY + 1 {
            v.remember(
                vec![i as u8, (i >> 8) as u8, (i >> 16) as u8],
                SecretId::of(&secrets[0]),
            );
        }
        let presented = |client_id| Presented {
            org: Some(&org_one),
            client_id,
            secret: "s1",
            secrets: &secrets,
        };
        assert!(v.cached_client(presented("cid")).is_some());
        assert_eq!(v.verifications(), before, "a hit runs no argon2id");
        assert!(v.cached_client(presented("other-client")).is_none());
        v.retain_pinned(|_| false);
        assert!(v.cached_client(presented("cid")).is_none());
    }
}
