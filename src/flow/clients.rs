//! Client authentication as the endpoints use it ([`crate::oauth::client_auth`]: a cache hit
//! proceeds, other secrets are rationed, the owner is never refused), and the loop that
//! pre-warms the verified-secret cache from the plaintext of every authenticating
//! ClientSecret.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Flows;
use crate::crd::{ClientSecret, Organization};
use crate::oauth::client_auth::{self, Attempt, AuthFailure};
use crate::oauth::verifier::{Candidate, Presented, SecretId};
use crate::runtime::pace::Pace;

/// How often the pre-warm loop looks for secrets to warm.
const PREWARM_EVERY: Duration = Duration::from_millis(200);

impl Flows {
    /// Authenticates `client_id`/`secret` against `org` (None when no organization has that
    /// client ID, or the client ID does not belong to the organization the request is for).
    pub async fn authenticate_client(
        &self,
        org: Option<&Organization>,
        client_id: &str,
        secret: &str,
        addr: IpAddr,
    ) -> Result<Arc<ClientSecret>, AuthFailure> {
        let org = org.filter(|o| o.client_id() == Some(client_id));
        let secrets: Vec<Arc<ClientSecret>> = match org {
            Some(o) => self
                .client_secrets_of(o)
                .into_iter()
                .filter(|cs| cs.authenticates_for(o))
                .collect(),
            None => vec![],
        };
        let candidates: Vec<Candidate<'_>> = secrets.iter().map(|cs| candidate(cs)).collect();
        let presented = Presented {
            client_id,
            secret,
            candidates: &candidates,
        };
        let tenant = org.and_then(|o| o.metadata.uid.as_deref());
        let attempt = Attempt {
            presented,
            tenant,
            addr,
        };
        let policy = &self.settings.client_auth;
        let result = client_auth::authenticate(&self.verifier, &self.lanes, self.store.as_ref(), policy, attempt)
            .await
            .map(|i| secrets[i].clone());
        match result {
            Err(AuthFailure::Invalid) => tracing::info!(client_id, "client authentication failed"),
            Err(AuthFailure::Busy) => {
                tracing::warn!(client_id, "client authentication queued too long; asked to retry")
            }
            Ok(_) => {}
        }
        result
    }

    /// Plaintext of ClientSecret `cs` of `org`, from its watched Secret.
    pub fn secret_plaintext(&self, org: &Organization, cs: &ClientSecret) -> Option<String> {
        let name = cs
            .status
            .as_ref()
            .and_then(|s| s.secret_name.clone())
            .unwrap_or_else(|| cs.secret_name());
        let bytes = self
            .secrets
            .value(org.metadata.namespace.as_deref()?, &name, "client_secret")?;
        String::from_utf8(bytes).ok()
    }

    /// Every authenticating ClientSecret with its organization.
    fn authenticating(&self) -> Vec<(Arc<Organization>, Arc<ClientSecret>)> {
        let mut all = vec![];
        // One index for the whole pass: asking per organization would rebuild it after every
        // change that lands meanwhile (thousands of times per pass while tenants are created).
        let index = self.index();
        for org in self.caches.organizations.state() {
            for cs in index.client_secrets_of(&org) {
                if cs.authenticates_for(&org) {
                    all.push((org.clone(), cs));
                }
            }
        }
        all
    }
}

/// Keeps the verifier's pinned entries equal to the authenticating ClientSecrets whose
/// plaintext the server holds: after a cache change it unpins the secrets that left and
/// looks for new ones; every `PREWARM_EVERY` (200 ms) it warms those whose Secret has arrived (one
/// argon2id run each, one at a time). A plaintext that does not match its hash (a modified
/// Secret) is not tried again until it changes.
pub async fn prewarm(state: Arc<Flows>) {
    let mut seen = None;
    let mut pending: Vec<(Arc<Organization>, Arc<ClientSecret>)> = vec![];
    let mut mismatched: HashMap<SecretId, String> = HashMap::new();
    let mut pace = Pace::new(Instant::now());
    loop {
        let generation = state.caches.generation();
        // O(tenants): only after a change, and paced.
        if seen != Some(generation) && pace.ready(Instant::now()) {
            seen = Some(generation);
            pending = pace.run(|| {
                let all = state.authenticating();
                let ids: HashSet<SecretId> = all.iter().map(|(_, cs)| SecretId::of(cs.as_ref())).collect();
                state.verifier.retain_pinned(|id| ids.contains(id));
                mismatched.retain(|id, _| ids.contains(id));
                all
            });
        }
        pending.retain(|(org, cs)| {
            !state
                .verifier
                .is_pinned(&SecretId::of(cs.as_ref()), org.client_id().unwrap_or_default())
        });
        for (org, cs) in &pending {
            let (Some(client_id), Some(plaintext)) = (org.client_id(), state.secret_plaintext(org, cs)) else {
                continue;
            };
            let id = SecretId::of(cs.as_ref());
            let digest = crate::store::hashed(&plaintext);
            if mismatched.get(&id) == Some(&digest) {
                continue;
            }
            if !state.verifier.warm(client_id, candidate(cs), &plaintext).await {
                tracing::warn!(namespace = %id.namespace, client_secret = %id.name, "the Secret's client_secret does not match the ClientSecret's hash; not pre-warmed");
                mismatched.insert(id, digest);
            }
        }
        tokio::time::sleep(PREWARM_EVERY).await;
    }
}

/// A ClientSecret as the verifier sees it: its identity and the hash of its status.
fn candidate(cs: &ClientSecret) -> Candidate<'_> {
    let m = &cs.metadata;
    Candidate {
        namespace: m.namespace.as_deref().unwrap_or_default(),
        name: m.name.as_deref().unwrap_or_default(),
        uid: m.uid.as_deref().unwrap_or_default(),
        hash: cs
            .status
            .as_ref()
            .and_then(|s| s.secret_hash.as_deref())
            .unwrap_or_default(),
    }
}
