//! The Kubernetes Secrets the request path needs, kept in memory by one watcher per Secret:
//!
//! - each organization's `passwords` Secret (accounts for the password login),
//! - each organization's SMTP credentials Secret (`loginMethods.email.credentialsSecretName`,
//!   keys `username` and `password`), read when a code e-mail is sent, and
//! - the Secret of each ClientSecret that currently authenticates (its plaintext is the key
//!   of the JWE tokens of native apps, which send no secret: the official CentralAuth backend
//!   library decrypts every access token with its client secret, so the server must encrypt
//!   native tokens with the secret the backend holds).
//!
//! A reconciler loop compares the Secrets the caches ask for with the running watchers every
//! [`RESYNC`] and starts or stops watchers (field selector `metadata.name=<name>`), so no
//! request ever calls the API server and no Secret the server does not need is held.
//! RBAC: `get`, `list`, `watch` on `secrets` in the namespaces of Organizations (a ClusterRole
//! when organizations live in many namespaces).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::task::JoinHandle;

use crate::cache::Caches;

/// How often the set of watched Secrets is compared with what the caches need.
pub const RESYNC: Duration = Duration::from_millis(250);

/// `(namespace, name)` of a Secret.
pub type SecretRef = (String, String);

/// The data of one Secret.
type SecretData = Arc<BTreeMap<String, Vec<u8>>>;

/// The data of the watched Secrets.
#[derive(Clone, Default)]
pub struct SecretsView {
    data: Arc<RwLock<HashMap<SecretRef, SecretData>>>,
}

impl SecretsView {
    /// The value of `key` in Secret `namespace/name`, when it is watched and present.
    pub fn value(&self, namespace: &str, name: &str, key: &str) -> Option<Vec<u8>> {
        let data = self.data.read().unwrap_or_else(|p| p.into_inner());
        data.get(&(namespace.to_string(), name.to_string()))?.get(key).cloned()
    }

    fn set(&self, r: &SecretRef, secret: Option<&Secret>) {
        let mut data = self.data.write().unwrap_or_else(|p| p.into_inner());
        match secret.and_then(|s| s.data.as_ref()) {
            Some(d) => {
                let map = d.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
                data.insert(r.clone(), Arc::new(map));
            }
            None => {
                data.remove(r);
            }
        }
    }

    /// Starts the reconciler loop that keeps one watcher per needed Secret.
    pub fn start(client: Client, caches: Caches) -> SecretsView {
        let view = SecretsView::default();
        let this = view.clone();
        tokio::spawn(async move {
            let mut running: HashMap<SecretRef, JoinHandle<()>> = HashMap::new();
            loop {
                let wanted = wanted(&caches);
                running.retain(|r, task| {
                    let keep = wanted.contains(r);
                    if !keep {
                        task.abort();
                        this.set(r, None);
                    }
                    keep
                });
                for r in wanted {
                    running
                        .entry(r.clone())
                        .or_insert_with(|| tokio::spawn(watch_one(client.clone(), this.clone(), r)));
                }
                tokio::time::sleep(RESYNC).await;
            }
        });
        view
    }
}

/// The Secrets the current organizations and client secrets need.
fn wanted(caches: &Caches) -> Vec<SecretRef> {
    let mut refs = vec![];
    let orgs = caches.organizations.state();
    for org in &orgs {
        let Some(ns) = &org.metadata.namespace else { continue };
        let methods = &org.spec.login_methods;
        if let Some(pw) = &methods.passwords {
            refs.push((ns.clone(), pw.secret_name.clone()));
        }
        if let Some(name) = methods.email.as_ref().and_then(|e| e.credentials_secret_name.as_ref()) {
            refs.push((ns.clone(), name.clone()));
        }
    }
    for cs in caches.client_secrets.state() {
        let authenticates = orgs.iter().any(|org| cs.authenticates_for(org));
        if let (true, Some(ns)) = (authenticates, &cs.metadata.namespace) {
            let name = cs
                .status
                .as_ref()
                .and_then(|s| s.secret_name.clone())
                .unwrap_or_else(|| cs.secret_name());
            refs.push((ns.clone(), name));
        }
    }
    refs.sort();
    refs.dedup();
    refs
}

async fn watch_one(client: Client, view: SecretsView, r: SecretRef) {
    let api: Api<Secret> = Api::namespaced(client, &r.0);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", r.1));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut seen_in_list = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Apply(s) | Event::InitApply(s)) => {
                seen_in_list = true;
                view.set(&r, Some(&s));
            }
            Ok(Event::Delete(_)) => view.set(&r, None),
            Ok(Event::Init) => seen_in_list = false,
            Ok(Event::InitDone) if !seen_in_list => view.set(&r, None),
            Ok(Event::InitDone) => {}
            Err(err) => {
                tracing::warn!(namespace = %r.0, secret = %r.1, error = %err, "watching a Secret failed; retrying")
            }
        }
    }
}
