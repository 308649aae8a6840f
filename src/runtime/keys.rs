//! The signing keys at run time: one Kubernetes Secret (`keys.json`, see
//! [`crate::oauth::keys::StoredKey`]) in the operator's namespace, created if absent, rotated
//! on a schedule, and loaded into memory by a watcher — the request path only reads memory.
//!
//! Every replica runs the same loop. Creation uses `create` (an `AlreadyExists` means another
//! replica won), rotation uses `replace` with the resourceVersion that was read (a conflict
//! means another replica rotated first), so several replicas never overwrite each other's keys.
//! RBAC: `get`, `list`, `watch`, `create`, `update` on `secrets` in the operator's namespace.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

use crate::oauth::keys::{KeySet, RotationPolicy, StoredKey, plan_rotation};

/// Key of the Secret's data holding the keys.
pub const KEYS_DATA_KEY: &str = "keys.json";

/// The loaded key set, swapped whole when the Secret changes.
#[derive(Clone, Default)]
pub struct KeyRing {
    current: Arc<RwLock<Arc<KeySet>>>,
}

impl KeyRing {
    /// The keys in use now.
    pub fn get(&self) -> Arc<KeySet> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, set: KeySet) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }

    /// Starts the watcher and the create/rotate loop for Secret `namespace/name`.
    pub fn start(client: Client, namespace: &str, name: &str, policy: RotationPolicy) -> KeyRing {
        let ring = KeyRing::default();
        let api: Api<Secret> = Api::namespaced(client, namespace);
        tokio::spawn(watch(api.clone(), name.to_string(), ring.clone()));
        tokio::spawn(maintain(api, name.to_string(), policy));
        ring
    }
}

fn stored_keys(secret: &Secret) -> Vec<StoredKey> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEYS_DATA_KEY))
        .and_then(|v| serde_json::from_slice(&v.0).ok())
        .unwrap_or_default()
}

async fn watch(api: Api<Secret>, name: String, ring: KeyRing) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let secret = match event {
            Ok(Event::Apply(s) | Event::InitApply(s)) => s,
            Ok(_) => continue,
            Err(err) => {
                tracing::warn!(secret = %name, error = %err, "watching the signing keys failed; retrying");
                continue;
            }
        };
        match KeySet::load(&stored_keys(&secret)) {
            Ok(set) => {
                tracing::info!(secret = %name, keys = set.jwks()["keys"].as_array().map_or(0, Vec::len), "signing keys loaded");
                ring.set(set);
            }
            Err(err) => {
                tracing::error!(secret = %name, error = %err, "signing keys not loaded; keeping the previous ones")
            }
        }
    }
}

async fn maintain(api: Api<Secret>, name: String, policy: RotationPolicy) {
    let period = Duration::from_secs((policy.publish_ahead.min(policy.rotate_after) / 4).clamp(1, 60) as u64);
    loop {
        if let Err(err) = maintain_once(&api, &name, policy).await {
            tracing::warn!(secret = %name, error = %err, "signing key maintenance failed; retrying");
        }
        tokio::time::sleep(period).await;
    }
}

async fn maintain_once(api: &Api<Secret>, name: &str, policy: RotationPolicy) -> Result<(), kube::Error> {
    let now = crate::oauth::now();
    let existing = api.get_opt(name).await?;
    let stored = existing.as_ref().map(stored_keys).unwrap_or_default();
    let Some(keys) = plan_rotation(&stored, now, policy).map_err(|e| kube::Error::Service(e.to_string().into()))?
    else {
        return Ok(());
    };
    let mut data = std::collections::BTreeMap::new();
    let json = serde_json::to_vec(&keys).map_err(kube::Error::SerdeError)?;
    data.insert(KEYS_DATA_KEY.to_string(), ByteString(json));
    let result = match existing {
        None => {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    labels: Some(
                        [(
                            "app.kubernetes.io/managed-by".to_string(),
                            "centralauth-operator".to_string(),
                        )]
                        .into(),
                    ),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            };
            api.create(&PostParams::default(), &secret).await.map(|_| "created")
        }
        Some(mut secret) => {
            secret.data = Some(data);
            api.replace(name, &PostParams::default(), &secret)
                .await
                .map(|_| "rotated")
        }
    };
    match result {
        Ok(what) => {
            tracing::info!(secret = %name, keys = keys.len(), "signing keys {what}");
            Ok(())
        }
        // Another replica created or rotated first: its keys stand; the watcher loads them.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
