//! Reconciler of `NativeApp`: registration checks, `appId` / `redirectUri`, the per-host
//! association-file ConfigMap, and the association check.
//!
//! Per reconcile:
//! 1. **Checks** ([`applinks::check`]) → `Ready`: the organization exists (until it does the
//!    app is not Ready; the Organization watch re-queues it when it appears), the app link is
//!    not one of the organization's websites, the app ID is unambiguous in the organization,
//!    and the app-link host is not another organization's.
//! 2. **ConfigMap** `applinks-<host>` in the organization's namespace holding both files
//!    (`apple-app-site-association`, `assetlinks.json`) of every listed app on the host, for
//!    teams who host them elsewhere. Every listed app is a (non-controller) owner, so the
//!    garbage collector deletes the ConfigMap with the last app; a remaining app rewrites it
//!    when one leaves; a ConfigMap that still lists this app under an old host is rewritten
//!    too (looked for only when the spec changed since the last completed reconcile: the
//!    look is a list of every association ConfigMap). All writes are whole-object server-side applies, so a crash anywhere is repaired
//!    by the next reconcile. An existing ConfigMap of that name that the operator did not
//!    create is never touched (a Warning event says so).
//!    Desktop apps have no app-link host, hence no ConfigMap.
//! 3. **Association check** ([`crate::association`]) → `AssociationVerified` (iOS and Android
//!    only: a Desktop app has no such condition), again every
//!    [`AssociationSettings::interval`](crate::association::AssociationSettings) (one timer
//!    queues all apps in turn) and on every change. It does not affect `Ready`: the files may be hosted by another team, later.
//! 4. **Status** (`appId`, `redirectUri`, both conditions, `observedGeneration`) by
//!    server-side apply, only when it changed; an Event on every change of either condition.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::related;
use super::{Context, events, status};
use crate::applinks::{self, AppLink, AppProblem, Registration};
use crate::association::{Checker, Failure};
use crate::crd::condition::{self, READY, Status};
use crate::crd::{FIELD_MANAGER, NativeApp, NativeAppStatus, Organization, Platform};
use crate::runtime::metrics::Kind;
use crate::runtime::scope::WatchScope;

/// Condition type: the app-link host serves association files that list this app.
pub const ASSOCIATION_VERIFIED: &str = "AssociationVerified";
/// Label on every ConfigMap holding association files.
pub const APPLINKS_LABEL: &str = "centralauth.io/applinks";
/// Annotation on such a ConfigMap naming its host.
pub const HOST_ANNOTATION: &str = "centralauth.io/app-link-host";
/// ConfigMap key of the Apple file.
pub const AASA_KEY: &str = "apple-app-site-association";
/// ConfigMap key of the Google file.
pub const ASSETLINKS_KEY: &str = "assetlinks.json";
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "centralauth-operator");

/// Why a reconcile failed (retried after a short delay).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing an applinks ConfigMap failed.
    #[error("cannot update ConfigMap {name} with the association files: {source}")]
    ConfigMap {
        /// `namespace/name`.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The status could not be written.
    #[error(transparent)]
    WriteStatus(#[from] status::ApplyError),
}

impl Error {
    /// The variant name, the fixed `reason` label of the reconcile-error metric.
    fn reason(&self) -> &'static str {
        match self {
            Error::ConfigMap { .. } => "ConfigMap",
            Error::WriteStatus(_) => "WriteStatus",
        }
    }
}

struct Data {
    ctx: Arc<Context>,
    apps: Store<NativeApp>,
    orgs: Store<Organization>,
    checker: Result<Checker, String>,
    queue: UnboundedSender<ObjectRef<NativeApp>>,
}

/// Runs this controller, once per watched unit (see [`crate::runtime::scope`]), until the future is
/// dropped.
pub async fn run(ctx: Arc<Context>) {
    ctx.scope.clone().for_each(|unit| run_in(ctx.clone(), unit)).await;
}

async fn run_in(ctx: Arc<Context>, unit: WatchScope) {
    let caches = ctx.caches();
    let (Some(apps), Some((orgs, org_changes))) = (
        related::follow(caches.native_app_feed(), &unit, app_keys),
        caches.organization_feed().subscribe(&unit),
    ) else {
        tracing::error!(
            ?unit,
            "the caches do not watch this unit; NativeApp controller not started"
        );
        return;
    };
    let org_stream = org_changes.map(|change| change.object().clone());
    let checker = Checker::new(&ctx.association).map_err(|e| e.to_string());
    if let Err(err) = &checker {
        tracing::error!(error = %err, "association checks are disabled");
    }
    let store = apps.store.clone();
    let data = Arc::new(Data {
        apps: apps.store.clone(),
        orgs,
        checker,
        queue: apps.queue,
        ctx: ctx.clone(),
    });
    let controller = Controller::for_shared_stream(apps.changed, apps.store)
        .with_config(super::controller_config())
        .watches_shared_stream(org_stream, move |org| apps_of(&store, &org))
        .owns(
            unit.api::<ConfigMap>(&ctx.client),
            watcher::Config::default().labels(APPLINKS_LABEL),
        )
        .reconcile_on(apps.siblings);
    let recheck = recheck_periodically(data.apps.clone(), data.queue.clone(), ctx.association.interval);
    tokio::select! {
        () = related::drain(controller.run(reconcile, error_policy, data)) => {}
        () = recheck => {}
    }
}

/// Queues every app once per `interval` for its association check, in name order, spread
/// evenly over the interval: one timer for all apps, not a scheduler entry per app (~500 B:
/// 5 MiB at 10,000). A pass works from the names it started with: an app created during it
/// waits for the next (it was reconciled when created). Ends when the controller's queue closes.
async fn recheck_periodically(
    apps: Store<NativeApp>,
    queue: UnboundedSender<ObjectRef<NativeApp>>,
    interval: Duration,
) {
    loop {
        let mut names: Vec<Box<str>> = apps
            .state()
            .iter()
            .map(|a| {
                format!(
                    "{}/{}",
                    a.metadata.namespace.as_deref().unwrap_or_default(),
                    a.name_any()
                )
                .into()
            })
            .collect();
        names.sort_unstable();
        let gap = interval / u32::try_from(names.len().max(1)).unwrap_or(u32::MAX);
        tokio::time::sleep(gap).await;
        for name in names {
            let (ns, name) = name.split_once('/').unwrap_or_default();
            if queue.unbounded_send(ObjectRef::new(name).within(ns)).is_err() {
                return;
            }
            tokio::time::sleep(gap).await;
        }
    }
}

/// Keys shared with sibling apps: the app-link host and the app ID within the organization.
fn app_keys(app: &NativeApp) -> Vec<String> {
    let mut keys = vec![];
    if let Ok(link) = AppLink::parse(&app.spec.app_link) {
        keys.push(format!("host:{}", link.host));
    }
    if let Some(id) = applinks::app_id(app) {
        let ns = app.namespace().unwrap_or_default();
        keys.push(format!("app-id:{ns}/{}/{id}", app.spec.organization_ref.name));
    }
    keys
}

/// Apps referring to `org`. Runs for every app on every Organization change: compares
/// without allocating.
fn apps_of(store: &Store<NativeApp>, org: &Organization) -> Vec<ObjectRef<NativeApp>> {
    let (ns, name) = (
        &org.metadata.namespace,
        org.metadata.name.as_deref().unwrap_or_default(),
    );
    store
        .state()
        .iter()
        .filter(|a| &a.metadata.namespace == ns && a.spec.organization_ref.name == name)
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

fn error_policy(app: Arc<NativeApp>, err: &Error, _data: Arc<Data>) -> Action {
    tracing::warn!(app = %applinks::qualified(app.as_ref()), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(app: Arc<NativeApp>, data: Arc<Data>) -> Result<Action, Error> {
    let span =
        tracing::info_span!("reconcile", kind = "NativeApp", namespace = app.namespace(), name = %app.name_any());
    let metrics = data.ctx.metrics.clone();
    let work = async move {
        let apps = data.apps.state();
        let verdict = applinks::check(&app, &data.orgs, &apps);
        sync_configmaps(&app, &apps, &data).await?;
        let association = match (&verdict, &data.checker) {
            (Ok(Registration::AppLink(link)), Ok(checker)) => Some(checker.check(&app, link).await),
            _ => None,
        };
        write_status(&app, &verdict, association, &data).await?;
        // Checked again by `recheck_periodically`.
        Ok(Action::await_change())
    };
    crate::runtime::metrics::Metrics::instrument(&metrics, Kind::NativeApp, Error::reason, span, work).await
}

/// Step 2: the ConfigMap of this app's host, and of any host that still lists it.
async fn sync_configmaps(app: &NativeApp, apps: &[Arc<NativeApp>], data: &Data) -> Result<(), Error> {
    let ns = app.namespace().unwrap_or_default();
    let host = AppLink::parse(&app.spec.app_link).ok().map(|l| l.host);
    if let Some(host) = &host {
        sync_host(host, &ns, apps, app, data).await?;
    }
    if !may_be_listed_elsewhere(app) {
        return Ok(());
    }
    let api: Api<ConfigMap> = Api::namespaced(data.ctx.client.clone(), &ns);
    let listed = api
        .list_metadata(&ListParams::default().labels(APPLINKS_LABEL))
        .await
        .map_err(|source| Error::ConfigMap {
            name: format!("{ns}/{APPLINKS_LABEL}"),
            source,
        })?;
    let uid = app.uid();
    for cm in listed {
        let stale_host = cm
            .annotations()
            .get(HOST_ANNOTATION)
            .filter(|h| Some(*h) != host.as_ref());
        let lists_me = cm.owner_references().iter().any(|o| Some(&o.uid) == uid.as_ref());
        if let (Some(old), true) = (stale_host, lists_me) {
            sync_host(old, &ns, apps, app, data).await?;
            for owner in cm.owner_references().iter().filter(|o| Some(&o.uid) != uid.as_ref()) {
                let _ = data.queue.unbounded_send(ObjectRef::new(&owner.name).within(&ns));
            }
        }
    }
    Ok(())
}

/// Whether a ConfigMap of another host than the current spec's may still list `app`: only when
/// the spec changed since the last reconcile that completed (its status `observedGeneration`
/// is written after the ConfigMaps were synchronised). A spec never changed (generation 1)
/// can only have been listed under its own host, even if a reconcile died before writing
/// status. Listing every association ConfigMap is the one way to find the others, and its cost
/// grows with the number of apps: at 10,000 apps, a list of 10,000 ConfigMaps on every periodic
/// reconcile kept the operator and the API server busy and its memory high (issue 11).
fn may_be_listed_elsewhere(app: &NativeApp) -> bool {
    let generation = app.metadata.generation;
    let observed = app.status.as_ref().and_then(|s| s.observed_generation);
    match observed {
        Some(observed) => Some(observed) != generation,
        None => generation.is_some_and(|g| g > 1),
    }
}

/// Writes (or deletes, when no app is listed any more) the ConfigMap of `host`. `app` is the
/// app being reconciled, which receives the warning when the name is taken by someone else.
async fn sync_host(
    host: &str,
    app_ns: &str,
    apps: &[Arc<NativeApp>],
    app: &NativeApp,
    data: &Data,
) -> Result<(), Error> {
    let listed = applinks::listed_on(host, &data.orgs, apps);
    let ns = listed
        .first()
        .and_then(|a| a.namespace())
        .unwrap_or_else(|| app_ns.to_string());
    let name = applinks::configmap_name(host);
    let api: Api<ConfigMap> = Api::namespaced(data.ctx.client.clone(), &ns);
    let cm_error = |source| Error::ConfigMap {
        name: format!("{ns}/{name}"),
        source,
    };
    let existing = api.get_opt(&name).await.map_err(cm_error)?;
    let ours = |cm: &ConfigMap| cm.labels().get(MANAGED_BY.0).map(String::as_str) == Some(MANAGED_BY.1);
    if existing.as_ref().is_some_and(|cm| !ours(cm)) {
        let note = format!(
            "ConfigMap {ns}/{name} exists and was not created by centralauth-operator; the association files of {host} are served over HTTP but not written into it (delete or rename it to let the operator manage it)"
        );
        events::publish(&data.ctx, app, EventType::Warning, "ConfigMapNotManaged", &note);
        return Ok(());
    }
    if listed.is_empty() {
        if existing.is_some() {
            api.delete(&name, &DeleteParams::default()).await.map_err(cm_error)?;
        }
        return Ok(());
    }
    let desired = desired_configmap(host, &name, &ns, &listed);
    let same = existing
        .as_ref()
        .is_some_and(|cm| cm.data == desired.data && cm.metadata.owner_references == desired.metadata.owner_references);
    if !same {
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
        .map_err(cm_error)?;
        tracing::info!(host, configmap = %name, apps = listed.len(), "association files written");
    }
    Ok(())
}

fn desired_configmap(host: &str, name: &str, ns: &str, listed: &[&NativeApp]) -> ConfigMap {
    let files = applinks::host_files(listed);
    let owners = listed
        .iter()
        .map(|a| OwnerReference {
            api_version: NativeApp::api_version(&()).into(),
            kind: NativeApp::kind(&()).into(),
            name: a.name_any(),
            uid: a.uid().unwrap_or_default(),
            controller: None,
            block_owner_deletion: None,
        })
        .collect();
    let mut cm = ConfigMap {
        data: Some(BTreeMap::from([
            (AASA_KEY.to_string(), files.aasa),
            (ASSETLINKS_KEY.to_string(), files.assetlinks),
        ])),
        ..Default::default()
    };
    cm.metadata.name = Some(name.to_string());
    cm.metadata.namespace = Some(ns.to_string());
    cm.metadata.labels = Some(BTreeMap::from([
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (APPLINKS_LABEL.to_string(), "true".to_string()),
    ]));
    cm.metadata.annotations = Some(BTreeMap::from([(HOST_ANNOTATION.to_string(), host.to_string())]));
    cm.metadata.owner_references = Some(owners);
    cm
}

fn ready_condition(verdict: &Result<Registration, AppProblem>, generation: Option<i64>) -> Condition {
    let message = |r: &Registration| match r {
        Registration::AppLink(link) => format!("registered; the app logs in with redirect_uri {}", link.redirect_uri()),
        Registration::Loopback(uri) => format!(
            "registered; the app logs in with redirect_uri {uri} plus the port of its loopback listener, and signs the code exchange with the key of the certificate whose SHA-256 is certificateThumbprint"
        ),
    };
    match verdict {
        Ok(registration) => condition::new(READY, Status::True, "Ready", message(registration), generation),
        Err(problem) => condition::new(READY, Status::False, problem.reason(), problem.to_string(), generation),
    }
}

fn association_condition(
    result: Option<Result<String, Failure>>,
    checker: &Result<Checker, String>,
    generation: Option<i64>,
) -> Condition {
    let (status, reason, message) = match (result, checker) {
        (Some(Ok(what)), _) => (Status::True, "Verified", what),
        (Some(Err(failure)), _) => (Status::False, failure.reason(), failure.to_string()),
        (None, Err(err)) => (Status::Unknown, "CheckUnavailable", err.clone()),
        (None, Ok(_)) => (Status::Unknown, "NotReady", "checked once the app is Ready".to_string()),
    };
    condition::new(ASSOCIATION_VERIFIED, status, reason, message, generation)
}

/// Step 4.
async fn write_status(
    app: &NativeApp,
    verdict: &Result<Registration, AppProblem>,
    association: Option<Result<String, Failure>>,
    data: &Data,
) -> Result<(), Error> {
    let generation = app.metadata.generation;
    let current = app.status.clone().unwrap_or_default();
    let mut conditions = current.conditions.clone();
    let mut changed_types = vec![];
    let desktop = app.spec.platform == Platform::Desktop;
    if desktop {
        // No association files: a Desktop app never has this condition (it may have had it
        // as an iOS or Android app before).
        conditions.retain(|c| c.type_ != ASSOCIATION_VERIFIED);
    }
    let association = (!desktop).then(|| association_condition(association, &data.checker, generation));
    for c in std::iter::once(ready_condition(verdict, generation)).chain(association) {
        let (type_, before) = (c.type_.clone(), condition::find(&conditions, &c.type_).cloned());
        condition::set(&mut conditions, c);
        let after = condition::find(&conditions, &type_).cloned().expect("just set");
        if before.as_ref() != Some(&after) {
            changed_types.push((before, after));
        }
    }
    let desired = NativeAppStatus {
        observed_generation: generation,
        conditions,
        app_id: applinks::app_id(app).map(str::to_string),
        redirect_uri: Registration::of(app).ok().map(|r| r.redirect_uri()),
    };
    if desired == current {
        return Ok(());
    }
    status::apply(&data.ctx.client, app, FIELD_MANAGER, &desired).await?;
    for (before, after) in changed_types {
        if before.map(|b| (b.status, b.reason)) != Some((after.status.clone(), after.reason.clone())) {
            events::publish_condition(&data.ctx, app, &after);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::applinks::tests::ios;

    fn at(generation: Option<i64>, observed: Option<Option<i64>>) -> NativeApp {
        let mut app = (*ios("ns", "app", "org", "com.example.app", "https://apps.example.com/a", 1)).clone();
        app.metadata.generation = generation;
        app.status = observed.map(|observed_generation| NativeAppStatus {
            observed_generation,
            ..Default::default()
        });
        app
    }

    #[test]
    fn old_hosts_are_looked_for_only_after_a_spec_change() {
        // Steady state: the last completed reconcile saw this spec.
        assert!(!may_be_listed_elsewhere(&at(Some(3), Some(Some(3)))));
        // A new app, before or after a reconcile that died before writing status.
        assert!(!may_be_listed_elsewhere(&at(Some(1), None)));
        assert!(!may_be_listed_elsewhere(&at(Some(1), Some(None))));
        // The spec changed since (say, the app link): the old host's ConfigMap may list it.
        assert!(may_be_listed_elsewhere(&at(Some(4), Some(Some(3)))));
        // Changed before any status was written (a reconcile died, then the spec changed).
        assert!(may_be_listed_elsewhere(&at(Some(2), None)));
        assert!(may_be_listed_elsewhere(&at(Some(2), Some(None))));
    }

    #[tokio::test]
    async fn one_timer_queues_every_app_once_per_interval_in_name_order() {
        let (store, mut writer) = kube::runtime::reflector::store::<NativeApp>();
        for name in ["c", "a", "b"] {
            let app = ios(
                "ns",
                name,
                "org",
                &format!("com.example.{name}"),
                "https://apps.example.com/a",
                1,
            );
            writer.apply_watcher_event(&watcher::Event::Apply((*app).clone()));
        }
        let (tx, mut rx) = futures::channel::mpsc::unbounded();
        let recheck = tokio::spawn(recheck_periodically(store, tx, Duration::from_millis(300)));
        let mut queued = vec![];
        for _ in 0..6 {
            let next = tokio::time::timeout(Duration::from_secs(10), rx.next()).await;
            let r = next.expect("an app is queued within the interval").expect("queue open");
            assert_eq!(r.namespace.as_deref(), Some("ns"));
            queued.push(r.name);
        }
        assert_eq!(
            queued,
            ["a", "b", "c", "a", "b", "c"],
            "each app once per pass, by name"
        );
        drop(rx);
        // The loop ends once the controller's queue is closed.
        tokio::time::timeout(Duration::from_secs(10), recheck)
            .await
            .expect("ends")
            .expect("no panic");
    }
}
