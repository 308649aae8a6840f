//! Reconciler of `ClientSecret`: generate a secret once, deliver it in a Kubernetes Secret,
//! activate it the way the spec asks (`Immediate`, `Manual`, `OnRollout`), retire and revoke
//! the secrets it replaces, and stay correct if the process dies anywhere.
//!
//! How it stays correct:
//! - **One mint per ClientSecret.** The Secret is created with a plain create (POST), which
//!   the API server performs only if no object of that name exists; a loser of the race re-reads
//!   the winner's Secret. A Secret of that name not owned by this ClientSecret (by UID) is never
//!   touched (`Ready=False`, reason `SecretNameTaken`). The status (fingerprint, argon2id hash,
//!   generatedAt) is derived from the owned Secret whenever it is missing, so a crash between the
//!   create and the status write, or a wiped status, loses nothing and mints nothing. If the
//!   Secret disappears after generation, nothing is regenerated (`SecretMissing`).
//! - **One record of activation.** The Organization's `status.activeSecret` (name, UID,
//!   fingerprint, activatedAt) says which secret is active. It is switched by a server-side apply
//!   of the status subresource as field manager [`crate::crd::ACTIVATION_MANAGER`], carrying the
//!   `metadata.resourceVersion` that was read: a concurrent change makes it fail (409) and the
//!   step is re-decided from fresh reads.
//! - **Ordered activation.** (1) switch the record; (2) demote the secret it named before, and
//!   any other secret whose status still says Active (Retiring, or Revoked at once when the
//!   grace period is 0 and no rollout is awaited); (3) mark this one Active. Every status write
//!   carries the resourceVersion it was decided from. A demotion is written only after the
//!   record stopped naming the secret, and a secret marks itself Active only after the one named
//!   before it was demoted, so two statuses never say Active at once — across crashes, and across
//!   processes as long as none of them crashes mid-activation while another activates. Inside one
//!   process the steps of one organization are serialized by an async mutex, which keeps
//!   conflicts rare.
//! - **Revoked is terminal**, recorded on the owned Secret (annotation
//!   `centralauth.io/revoked-at`) before the status says so, as are activation and retirement:
//!   a wiped status never brings an old secret back. A record naming a Revoked or Retiring secret
//!   (a restored backup) is cleared — fail closed — and the secret whose status says Active
//!   records itself again.
//!
//! Activation modes:
//! - `Immediate`: activated as soon as it is generated.
//! - `Manual`: activated when annotation `centralauth.io/activate` equals the fingerprint. A
//!   different value changes nothing (`FingerprintMismatch`, Warning event; the value is never
//!   echoed). If the value *is* the secret itself, the secret is exposed to everyone who can read
//!   ClientSecrets: a Pending one is revoked (`SecretExposed`).
//! - `OnRollout`: activated when every listed workload's pod template carries
//!   `centralauth.io/client-secret-fingerprint: <fingerprint>`. With `rollout.stamp: true` the
//!   operator first writes the new secret into the organization's credentials Secret, then stamps
//!   the pod templates. It does not stamp over the fingerprint of another pending rollout (it
//!   waits until that one is active), so two rotations never fight over a workload. The previous
//!   secret stays Retiring until every workload of the active secret finished rolling out and
//!   the grace period passed, whichever is later.
//!
//! The credentials Secret (`spec.credentialsSecretName` of the Organization) is created and
//! owned by the operator (owner: the Organization) and switched to the new secret at activation
//! (before stamping with `rollout.stamp`). One the operator does not own is never overwritten.
//!
//! Deletion runs behind the finalizer [`FINALIZER`]: the owned Secret is deleted explicitly (not
//! left to garbage collection), and deleting the active secret clears the record and sets the
//! Organization condition `ActiveSecret=False`, reason `NoActiveSecret`.
//!
//! Watches (no polling): the ClientSecrets, their Secrets and the credentials Secrets (metadata
//! only, by label), the Organizations (mapped to their ClientSecrets) and the Deployments, StatefulSets and
//! DaemonSets (mapped to the ClientSecrets listing them and to the Retiring secrets of those
//! organizations). A Retiring secret is requeued exactly at the end of its grace period.

mod activate;
mod api;
mod credentials;
mod finalize;
pub mod generate;
mod generated;
mod lifecycle;
mod mappers;

use mappers::{credentials_mapper, org_mapper, workload_mapper};
mod obtain;
mod pending;
mod reconcile;
mod retire;
pub mod rollout;
pub mod secret;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use tokio::sync::OwnedMutexGuard;

use super::Context;
use crate::crd::{ClientSecret, Organization, WorkloadKind};
use crate::runtime::cache::Change;
use crate::runtime::metrics::Kind;
use crate::runtime::scope::WatchScope;

pub use generate::{SECRET_LENGTH, fingerprint, generate_secret};

/// Finalizer on every ClientSecret: its Secret is deleted and the organization's record
/// cleared before the object goes away.
pub const FINALIZER: &str = "centralauth.io/client-secret";
/// Condition type on an Organization, written by the activation manager: whether a secret is
/// active (reason `Activated`) or not (`NoActiveSecret`).
pub const ORG_ACTIVE_SECRET_CONDITION: &str = "ActiveSecret";
/// Condition type on a ClientSecret saying what its activation waits for, or its phase.
pub const ACTIVATED_CONDITION: &str = "Activated";

/// Why a reconcile failed. Every one of these is retried with a backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error("Kubernetes API request failed (retrying): {0}")]
    Kube(#[from] kube::Error),
    /// The OS random source failed.
    #[error(transparent)]
    Random(#[from] generate::RandomError),
    /// Hashing failed.
    #[error("hashing the client secret failed (retrying): {0}")]
    Hash(#[from] crate::crypto::HashError),
    /// Adding or removing the finalizer failed.
    #[error("adding or removing the finalizer centralauth.io/client-secret failed (retrying): {0}")]
    Finalizer(#[source] kube::Error),
    /// An object came back from the API server without a field it always sets.
    #[error("the API server returned an object without {0}")]
    MissingField(&'static str),
    /// Another writer changed an object between read and write.
    #[error("{0} was changed by another writer at the same time; re-reading and retrying")]
    Conflict(String),
}

impl Error {
    /// The variant name: the fixed `reason` label of the reconcile-error metric.
    fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "Kube",
            Error::Random(_) => "Random",
            Error::Hash(_) => "Hash",
            Error::Finalizer(_) => "Finalizer",
            Error::MissingField(_) => "MissingField",
            Error::Conflict(_) => "Conflict",
        }
    }

    fn is_conflict(&self) -> bool {
        match self {
            Error::Conflict(_) => true,
            Error::Kube(kube::Error::Api(s)) => s.is_conflict(),
            // The finalizer patch carries the resourceVersion it read; a cache a moment behind
            // the previous reconcile's own writes fails it: only a stale read.
            Error::Finalizer(kube::Error::Api(s)) => s.is_conflict(),
            _ => false,
        }
    }
}

/// Per-organization async mutexes: one activation step of an organization at a time in this
/// process.
#[derive(Default)]
struct OrgLocks(Mutex<HashMap<OrgKey, Arc<tokio::sync::Mutex<()>>>>);

/// Namespace and name of an Organization.
type OrgKey = (String, String);

impl OrgLocks {
    async fn lock(&self, namespace: &str, org: &str) -> OwnedMutexGuard<()> {
        let mutex = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, m| Arc::strong_count(m) > 1);
            map.entry((namespace.to_string(), org.to_string())).or_default().clone()
        };
        mutex.lock_owned().await
    }
}

/// What every reconcile of this controller shares.
pub(crate) struct State {
    ctx: Arc<Context>,
    store: Store<ClientSecret>,
    /// The Organizations of the unit, as cached: read where a step does not need fresh data.
    orgs: Store<Organization>,
    locks: OrgLocks,
    /// What this process last wrote to each ClientSecret, until the cache catches up.
    own: OwnWrites,
}

/// What this process last wrote to each ClientSecret (by UID), until the cache shows it.
///
/// A reconcile that writes (the finalizer, then the status) triggers the next one through the
/// watch events of its own writes, and that one often starts before the cache holds the
/// status just written: it would decide again from the older copy (mint-or-adopt, hash) and
/// lose its status write to a conflict. With this, a reconcile handed a version this process
/// already wrote over starts from what that write returned.
#[derive(Default)]
struct OwnWrites(Mutex<HashMap<String, OwnWrite>>);

/// The versions of one ClientSecret this process wrote over, and what its last write returned.
struct OwnWrite {
    superseded: Vec<String>,
    latest: Arc<ClientSecret>,
}

impl OwnWrites {
    /// Remembers that writing over `before` returned `after`.
    fn wrote(&self, before: &ClientSecret, after: &ClientSecret) {
        let (Some(uid), Some(rv)) = (before.metadata.uid.clone(), before.metadata.resource_version.clone()) else {
            return;
        };
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(uid).or_insert_with(|| OwnWrite {
            superseded: vec![],
            latest: Arc::new(after.clone()),
        });
        entry.superseded.push(rv);
        entry.latest = Arc::new(after.clone());
    }

    /// `cs` as cached, or what this process wrote over it; forgets the entry once the cache
    /// shows a version it did not write over (its own last write, or someone else's newer one).
    fn latest(&self, cs: Arc<ClientSecret>) -> Arc<ClientSecret> {
        let Some(uid) = cs.metadata.uid.as_ref() else { return cs };
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(uid) {
            Some(own) if own.superseded.contains(&cs.resource_version().unwrap_or_default()) => own.latest.clone(),
            Some(_) => {
                map.remove(uid);
                cs
            }
            None => cs,
        }
    }

    /// Forgets `cs` (deleted).
    fn forget(&self, cs: &ClientSecret) {
        if let Some(uid) = cs.metadata.uid.as_ref() {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
        }
    }
}

impl State {
    /// The Organization of `cs` as cached (`None` when the cache has not seen it).
    fn cached_org(&self, cs: &ClientSecret) -> Option<Organization> {
        let key = ObjectRef::new(&cs.spec.organization_ref.name).within(&cs.namespace()?);
        self.orgs.get(&key).map(|org| (*org).clone())
    }

    /// The other ClientSecrets of the same organization, as cached.
    fn siblings(&self, cs: &ClientSecret) -> Vec<Arc<ClientSecret>> {
        self.store
            .state()
            .into_iter()
            .filter(|o| {
                // Runs over every ClientSecret: compares without allocating.
                o.spec.organization_ref == cs.spec.organization_ref
                    && o.metadata.namespace == cs.metadata.namespace
                    && o.metadata.uid != cs.metadata.uid
            })
            .collect()
    }
}

/// Runs this controller, once per watched unit (see [`crate::runtime::scope`]), until the future is
/// dropped.
pub async fn run(ctx: Arc<Context>) {
    ctx.scope.clone().for_each(|unit| run_unit(ctx.clone(), unit)).await;
}

/// Runs this controller over one namespace (`Some`) or all of them (`None`) until the future is
/// dropped. Tests run one per namespace.
pub async fn run_in(ctx: Arc<Context>, namespace: Option<String>) {
    let unit = namespace.map_or(WatchScope::Cluster, WatchScope::Namespace);
    if let (WatchScope::Namespace(ns), None) = (&unit, ctx.caches.get()) {
        // A context without caches (tests): caches of just this namespace. A context whose
        // caches are already set keeps them.
        let scope = crate::runtime::scope::Scope::from_namespaces([ns.clone()]);
        let _ = ctx
            .caches
            .set(crate::runtime::cache::Caches::start_scoped(&ctx.client, &scope));
    }
    run_unit(ctx, unit).await;
}

/// The ClientSecrets a cache feed lists or applies; a deletion is the finalizer's business.
fn applied(
    changes: impl Stream<Item = Change<ClientSecret>> + Send + 'static,
) -> impl Stream<Item = Arc<ClientSecret>> + Send + 'static {
    changes.filter_map(|change| {
        std::future::ready(match change {
            Change::Deleted(_) => None,
            Change::Listed(cs) | Change::Applied(cs) => Some(cs),
        })
    })
}

async fn run_unit(ctx: Arc<Context>, unit: WatchScope) {
    let client = ctx.client.clone();
    // ClientSecrets and Organizations come from the shared caches: no watches of their own.
    let caches = ctx.caches();
    let (Some((store, changes)), Some((orgs, org_changes))) = (
        caches.client_secret_feed().subscribe(&unit),
        caches.organization_feed().subscribe(&unit),
    ) else {
        tracing::error!(
            ?unit,
            "the caches do not watch this unit; ClientSecret controller not started"
        );
        return;
    };
    let changed = applied(changes);
    let org_changes = org_changes.map(|change| change.object().clone());
    let controller = Controller::for_shared_stream(changed, store.clone()).with_config(super::controller_config());
    let secrets_cfg =
        watcher::Config::default().labels(&format!("{}={}", secret::MANAGED_BY_LABEL, secret::MANAGED_BY));
    let credentials_cfg = watcher::Config::default().labels(&format!("{}=true", credentials::CREDENTIALS_LABEL));
    let controller = controller
        .owns(unit.api::<PartialObjectMeta<Secret>>(&client), secrets_cfg)
        .watches(
            unit.api::<PartialObjectMeta<Secret>>(&client),
            credentials_cfg,
            credentials_mapper(store.clone()),
        )
        .watches_shared_stream(org_changes, org_mapper(store.clone()))
        .watches(
            unit.api::<Deployment>(&client),
            watcher::Config::default(),
            workload_mapper(store.clone(), WorkloadKind::Deployment),
        )
        .watches(
            unit.api::<StatefulSet>(&client),
            watcher::Config::default(),
            workload_mapper(store.clone(), WorkloadKind::StatefulSet),
        )
        .watches(
            unit.api::<DaemonSet>(&client),
            watcher::Config::default(),
            workload_mapper(store.clone(), WorkloadKind::DaemonSet),
        );
    let state = Arc::new(State {
        ctx,
        store,
        orgs,
        locks: OrgLocks::default(),
        own: OwnWrites::default(),
    });
    controller
        .run(reconcile, error_policy, state)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "ClientSecret reconcile request failed");
            }
        })
        .await;
}

async fn reconcile(cs: Arc<ClientSecret>, state: Arc<State>) -> Result<Action, Error> {
    let span =
        tracing::info_span!("reconcile", kind = "ClientSecret", namespace = cs.namespace(), name = %cs.name_any());
    let metrics = state.ctx.metrics.clone();
    let work = async move {
        let ns = cs.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
        let api: Api<ClientSecret> = Api::namespaced(state.ctx.client.clone(), &ns);
        let cs = state.own.latest(cs);
        finalize::guarded(&api, &cs, &state).await
    };
    crate::runtime::metrics::Metrics::instrument(&metrics, Kind::ClientSecret, Error::reason, span, work).await
}

fn error_policy(cs: Arc<ClientSecret>, err: &Error, _state: Arc<State>) -> Action {
    if err.is_conflict() {
        tracing::debug!(name = %cs.name_any(), error = %err, "conflict; retrying");
        Action::requeue(Duration::from_millis(200))
    } else {
        tracing::warn!(namespace = cs.namespace().as_deref().unwrap_or(""), name = %cs.name_any(), error = %err, "reconcile failed; retrying");
        Action::requeue(Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rv: &str, phase: Option<&str>) -> ClientSecret {
        let mut value = serde_json::json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret",
            "metadata": {"name": "cs", "namespace": "ns", "uid": "u1", "resourceVersion": rv},
            "spec": {"organizationRef": {"name": "acme"}}
        });
        if let Some(phase) = phase {
            value["status"] = serde_json::json!({"phase": phase});
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_cache_behind_own_writes_yields_the_written_object_until_it_catches_up() {
        let own = OwnWrites::default();
        let (v1, v2, v3) = (at("1", None), at("2", None), at("3", Some("Pending")));
        own.wrote(&v1, &v2); // the finalizer
        own.wrote(&v2, &v3); // the status
        // The cache still at 1 or 2: the reconcile starts from what the status write returned.
        assert_eq!(
            own.latest(Arc::new(v1.clone())).resource_version().as_deref(),
            Some("3")
        );
        assert_eq!(
            own.latest(Arc::new(v2.clone())).resource_version().as_deref(),
            Some("3")
        );
        // The cache at 3 (or anything newer): the cache, and the entry is gone.
        assert_eq!(own.latest(Arc::new(v3)).resource_version().as_deref(), Some("3"));
        assert_eq!(own.latest(Arc::new(v1)).resource_version().as_deref(), Some("1"));
    }

    #[test]
    fn a_deleted_object_is_forgotten() {
        let own = OwnWrites::default();
        own.wrote(&at("1", None), &at("2", Some("Pending")));
        own.forget(&at("2", None));
        assert_eq!(
            own.latest(Arc::new(at("1", None))).resource_version().as_deref(),
            Some("1")
        );
    }
}
