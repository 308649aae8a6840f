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
//! A reconciler loop looks every [`RESYNC`] whether the caches changed; if so it compares the
//! Secrets they ask for with the running watchers and starts or stops watchers (field
//! selector `metadata.name=<name>`), so no request ever calls the API server and no Secret the
//! server does not need is held.
//! RBAC: `get`, `list`, `watch` on `secrets` in the namespaces of Organizations (a ClusterRole
//! when organizations live in many namespaces).
//!
//! Readiness waits for [`SecretsView::wait_loaded`]: until every Secret the caches name has
//! been listed once, a login with a right password would be refused as a wrong one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::Caches;
use crate::crd::Organization;

/// How often the loop looks for cache changes.
pub const RESYNC: Duration = Duration::from_millis(250);

/// `(namespace, name)` of a Secret.
pub type SecretRef = (String, String);

/// The data of one Secret.
type SecretData = Arc<BTreeMap<String, Vec<u8>>>;

/// The data of the watched Secrets.
#[derive(Clone)]
pub struct SecretsView {
    data: Arc<RwLock<HashMap<SecretRef, SecretData>>>,
    progress: Arc<watch::Sender<Progress>>,
}

impl Default for SecretsView {
    fn default() -> Self {
        SecretsView {
            data: Arc::default(),
            progress: Arc::new(watch::Sender::new(Progress::default())),
        }
    }
}

/// How far the watchers are: what [`SecretsView::wait_loaded`] waits on.
#[derive(Default)]
struct Progress {
    /// How many times the running watchers were matched to the caches.
    follows: u64,
    /// The Secrets whose running watcher has finished a first list (the Secret may not exist).
    listed: HashSet<SecretRef>,
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

    /// Resolves once every Secret the caches name has been listed once by its watcher (whether
    /// it exists or not): from then on the request path sees what the API server holds. Call
    /// it once the caches are ready. Secrets named later do not delay it; those no longer named
    /// are not waited for.
    pub async fn wait_loaded(&self, caches: &Caches) {
        let mut progress = self.progress.subscribe();
        // Read before the caches: any later match of the watchers is seen below.
        let mut follows = progress.borrow_and_update().follows;
        let mut needed = wanted(caches);
        loop {
            let (latest, done) = {
                let p = progress.borrow_and_update();
                (p.follows, needed.iter().all(|r| p.listed.contains(r)))
            };
            if done {
                return;
            }
            if latest != follows {
                // The watchers follow newer caches: drop what they no longer name.
                follows = latest;
                let now = wanted(caches);
                needed.retain(|r| now.contains(r));
                continue;
            }
            if progress.changed().await.is_err() {
                return;
            }
        }
    }

    fn listed(&self, r: &SecretRef) {
        self.progress.send_modify(|p| {
            p.listed.insert(r.clone());
        });
    }

    /// Starts the reconciler loop that keeps one watcher per needed Secret.
    pub fn start(client: Client, caches: Caches) -> SecretsView {
        let view = SecretsView::default();
        let this = view.clone();
        tokio::spawn(async move {
            let mut running: HashMap<SecretRef, JoinHandle<()>> = HashMap::new();
            let mut seen = None;
            loop {
                // What is wanted follows from the caches alone: recompute only after a change.
                let generation = caches.generation();
                if seen != Some(generation) {
                    seen = Some(generation);
                    this.follow(&client, &mut running, wanted(&caches));
                    this.progress.send_modify(|p| {
                        p.follows += 1;
                        p.listed.retain(|r| running.contains_key(r));
                    });
                }
                tokio::time::sleep(RESYNC).await;
            }
        });
        view
    }

    /// Stops the watchers of Secrets no longer wanted (forgetting their data) and starts the
    /// missing ones.
    fn follow(&self, client: &Client, running: &mut HashMap<SecretRef, JoinHandle<()>>, wanted: HashSet<SecretRef>) {
        running.retain(|r, task| {
            let keep = wanted.contains(r);
            if !keep {
                task.abort();
                self.set(r, None);
            }
            keep
        });
        for r in wanted {
            running
                .entry(r.clone())
                .or_insert_with(|| tokio::spawn(watch_one(client.clone(), self.clone(), r)));
        }
    }
}

/// The Secrets the current organizations and client secrets need.
fn wanted(caches: &Caches) -> HashSet<SecretRef> {
    let mut refs = HashSet::new();
    let orgs = caches.organizations.state();
    for org in &orgs {
        let Some(ns) = &org.metadata.namespace else { continue };
        let methods = &org.spec.login_methods;
        if let Some(pw) = &methods.passwords {
            refs.insert((ns.clone(), pw.secret_name.clone()));
        }
        if let Some(name) = methods.email.as_ref().and_then(|e| e.credentials_secret_name.as_ref()) {
            refs.insert((ns.clone(), name.clone()));
        }
    }
    let by_name: HashMap<(&str, &str), &Organization> = orgs
        .iter()
        .filter_map(|o| {
            Some((
                (o.metadata.namespace.as_deref()?, o.metadata.name.as_deref()?),
                o.as_ref(),
            ))
        })
        .collect();
    for cs in caches.client_secrets.state() {
        let Some(ns) = &cs.metadata.namespace else { continue };
        let org = by_name.get(&(ns.as_str(), cs.spec.organization_ref.name.as_str()));
        if org.is_some_and(|org| cs.authenticates_for(org)) {
            let name = cs
                .status
                .as_ref()
                .and_then(|s| s.secret_name.clone())
                .unwrap_or_else(|| cs.secret_name());
            refs.insert((ns.clone(), name));
        }
    }
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
            Ok(Event::InitDone) => {
                if !seen_in_list {
                    view.set(&r, None);
                }
                view.listed(&r);
            }
            Err(err) => {
                tracing::warn!(namespace = %r.0, secret = %r.1, error = %err, "watching a Secret failed; retrying")
            }
        }
    }
}
