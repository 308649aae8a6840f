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
//!   lookup), so a revoked secret is refused as soon as the reflector cache sees the change.

use std::collections::HashMap;
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
}

/// Bounded argon2id verification plus the cache of client-secret successes.
pub struct SecretVerifier {
    permits: Arc<Semaphore>,
    cache_key: hmac::Key,
    cache: Mutex<HashMap<Vec<u8>, SecretId>>,
    dummy_hash: Arc<str>,
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
            cache: Mutex::new(HashMap::new()),
            dummy_hash: crate::crypto::hash(&dummy).expect("argon2id hashing").into(),
        }
    }

    /// Verifies `secret` against `hashes` on the blocking pool and returns the index of the
    /// first match. With no hashes, verifies against the dummy hash (and never matches).
    pub async fn verify_any(&self, hashes: Vec<String>, secret: &str) -> Option<usize> {
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return None;
        };
        let secret = secret.as_bytes().to_vec();
        let dummy = self.dummy_hash.clone();
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

    /// Authenticates `client_id:secret` for `org` (None: unknown client). `secrets` are the
    /// organization's ClientSecrets from the cache. Returns the ClientSecret that matched.
    pub async fn authenticate_client(
        &self,
        org: Option<&Organization>,
        client_id: &str,
        secret: &str,
        secrets: &[Arc<ClientSecret>],
    ) -> Option<Arc<ClientSecret>> {
        let candidates: Vec<Arc<ClientSecret>> = match org {
            Some(org) => secrets.iter().filter(|cs| cs.authenticates_for(org)).cloned().collect(),
            None => vec![],
        };
        let key = self.cache_key(client_id, secret);
        if let Some(id) = self.cached(&key) {
            if let Some(cs) = candidates.iter().find(|cs| SecretId::of(cs) == id) {
                return Some(cs.clone());
            }
            self.evict(&key);
        }
        let hashes = candidates
            .iter()
            .map(|cs| {
                cs.status
                    .as_ref()
                    .and_then(|s| s.secret_hash.clone())
                    .unwrap_or_default()
            })
            .collect();
        let index = self.verify_any(hashes, secret).await?;
        let matched = candidates[index].clone();
        self.remember(key, SecretId::of(&matched));
        Some(matched)
    }

    /// Drops cached verifications whose secret no longer authenticates. The server does not
    /// call it: a stale entry is dropped on its next hit (see `authenticate_client`) or when
    /// the cache reaches its capacity (10,000 entries), which bounds its memory.
    pub fn retain(&self, still_valid: impl Fn(&SecretId) -> bool) {
        self.lock().retain(|_, id| still_valid(id));
    }

    /// Number of cached verifications.
    pub fn cached_len(&self) -> usize {
        self.lock().len()
    }

    fn cache_key(&self, client_id: &str, secret: &str) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.cache_key);
        ctx.update(&(client_id.len() as u64).to_be_bytes());
        ctx.update(client_id.as_bytes());
        ctx.update(secret.as_bytes());
        ctx.sign().as_ref().to_vec()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, SecretId>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, key: &[u8]) -> Option<SecretId> {
        self.lock().get(key).cloned()
    }

    fn evict(&self, key: &[u8]) {
        self.lock().remove(key);
    }

    fn remember(&self, key: Vec<u8>, id: SecretId) {
        let mut cache = self.lock();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(key, id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ActiveSecretRef, ClientSecretPhase, ClientSecretStatus, OrganizationStatus};

    fn org(active: &str) -> Organization {
        let mut org: Organization = serde_json::from_value(serde_json::json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization",
            "metadata": {"name": "acme", "namespace": "ns"},
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

    fn secret(name: &str, plaintext: &str) -> Arc<ClientSecret> {
        let mut cs: ClientSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {"organizationRef": {"name": "acme"}}
        }))
        .unwrap();
        cs.status = Some(ClientSecretStatus {
            phase: Some(ClientSecretPhase::Active),
            secret_hash: Some(crate::crypto::hash(plaintext.as_bytes()).unwrap()),
            ..Default::default()
        });
        Arc::new(cs)
    }

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
}
