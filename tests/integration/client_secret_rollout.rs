//! `OnRollout` activation with real rollouts: kube-controller-manager creates the ReplicaSets
//! and StatefulSet/DaemonSet pods, kube-scheduler places them on the KWOK node, KWOK makes them
//! ready. Nothing here writes a workload status.
//!
//! Ordering claims are checked on the API server's own order of events: resourceVersions of one
//! etcd increase with every write, so the watch events of the workloads, the Secrets and the
//! ClientSecrets are merged by resourceVersion into one history. (resourceVersions are opaque to
//! clients in general; comparing them is sound for this single-etcd test control plane.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use centralauth_operator::controller::client_secret::secret::{CLIENT_SECRET_KEY, FINGERPRINT_KEY};
use centralauth_operator::crd::{ClientSecret, ClientSecretPhase};

use crate::support;
use crate::support::client_secret::{Harness, Invariants, condition, current_rv, data, follow, fp, phase};

const ANNOTATION: &str = "centralauth.io/client-secret-fingerprint";

/// One entry of the merged history.
#[derive(Clone, Debug)]
struct Entry {
    rv: u64,
    what: String,
    /// Workloads: whether the rollout of the current generation is complete, and the template's
    /// fingerprint. ClientSecrets: the phase. Secrets: the fingerprint key.
    complete: Option<bool>,
    value: Option<String>,
}

#[derive(Clone, Default)]
struct History(Arc<Mutex<Vec<Entry>>>);

impl History {
    fn push(&self, rv: Option<String>, what: String, complete: Option<bool>, value: Option<String>) {
        let rv = rv.and_then(|r| r.parse().ok()).unwrap_or(0);
        self.0.lock().unwrap().push(Entry {
            rv,
            what,
            complete,
            value,
        });
    }

    fn sorted(&self) -> Vec<Entry> {
        let mut v = self.0.lock().unwrap().clone();
        v.sort_by_key(|e| e.rv);
        v
    }

    /// The first entry about `what` satisfying `pred`.
    fn first(&self, what: &str, pred: impl Fn(&Entry) -> bool) -> Option<Entry> {
        self.sorted().into_iter().find(|e| e.what == what && pred(e))
    }

    /// The first entry about `what` satisfying `pred`, waiting up to 20 s for it: the
    /// recording watches may lag behind a state the test has already read from the API.
    async fn first_recorded(&self, what: &str, pred: impl Fn(&Entry) -> bool) -> Option<Entry> {
        support::wait_until(Duration::from_secs(20), || async { self.first(what, &pred) }).await
    }

    /// The last entry about `what` before resourceVersion `rv`.
    fn last_before(&self, what: &str, rv: u64) -> Option<Entry> {
        self.sorted().into_iter().rev().find(|e| e.what == what && e.rv < rv)
    }
}

/// Records every change of the namespace's workloads, Secrets and ClientSecrets.
async fn record(client: &Client, ns: &str) -> (History, Vec<tokio::task::JoinHandle<()>>) {
    let history = History::default();
    let tasks = vec![
        record_kind(client, ns, &history, |d: &Deployment| {
            let template = d.spec.as_ref().map(|s| s.template.clone());
            (Some(deployment_complete(d)), template_fp(&template))
        })
        .await,
        record_kind(client, ns, &history, |s: &StatefulSet| {
            let template = s.spec.as_ref().map(|s| s.template.clone());
            (Some(statefulset_complete(s)), template_fp(&template))
        })
        .await,
        record_kind(client, ns, &history, |d: &DaemonSet| {
            let template = d.spec.as_ref().map(|s| s.template.clone());
            (Some(daemonset_complete(d)), template_fp(&template))
        })
        .await,
        record_kind(client, ns, &history, |s: &Secret| {
            let fp = s.data.as_ref().and_then(|d| d.get(FINGERPRINT_KEY));
            (None, fp.map(|b| String::from_utf8_lossy(&b.0).into_owned()))
        })
        .await,
        record_kind(client, ns, &history, |cs: &ClientSecret| {
            (None, phase(cs).map(|p| format!("{p:?}")))
        })
        .await,
    ];
    (history, tasks)
}

/// Follows one kind from now on into `history` as `Kind/name`, described by `describe`.
async fn record_kind<K>(
    client: &Client,
    ns: &str,
    history: &History,
    describe: impl Fn(&K) -> (Option<bool>, Option<String>) + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let rv = current_rv(&api).await;
    let history = history.clone();
    tokio::spawn(follow(api, rv, move |_, obj: K| {
        let (complete, value) = describe(&obj);
        let what = format!("{}/{}", K::kind(&()), obj.name_any());
        history.push(obj.resource_version(), what, complete, value);
    }))
}

fn template_fp(t: &Option<k8s_openapi::api::core::v1::PodTemplateSpec>) -> Option<String> {
    t.as_ref()?
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(ANNOTATION)
        .cloned()
}

// Independent of the operator's own rollout logic, on purpose.
fn deployment_complete(d: &Deployment) -> bool {
    let (Some(spec), Some(st)) = (&d.spec, &d.status) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    st.observed_generation >= d.metadata.generation
        && st.updated_replicas == Some(want)
        && st.ready_replicas == Some(want)
        && st.available_replicas == Some(want)
        && st.replicas == Some(want)
}

fn statefulset_complete(s: &StatefulSet) -> bool {
    let (Some(spec), Some(st)) = (&s.spec, &s.status) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    st.observed_generation >= s.metadata.generation
        && st.update_revision.is_some()
        && st.current_revision == st.update_revision
        && st.ready_replicas == Some(want)
        && st.available_replicas == Some(want)
        && st.replicas == want
}

fn daemonset_complete(d: &DaemonSet) -> bool {
    let Some(st) = &d.status else { return false };
    st.observed_generation >= d.metadata.generation
        && st.desired_number_scheduled > 0
        && st.updated_number_scheduled == Some(st.desired_number_scheduled)
        && st.number_available == Some(st.desired_number_scheduled)
        && st.number_ready == st.desired_number_scheduled
}

fn pod_template(app: &str, credentials: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {
            "containers": [{
                "name": "app", "image": "registry.invalid/app:1",
                "volumeMounts": [{"name": "oauth", "mountPath": "/etc/oauth", "readOnly": true}]
            }],
            "volumes": [{"name": "oauth", "secret": {"secretName": credentials}}]
        }
    })
}

/// Creates a workload of kind `K` named `name` whose pods mount the Secret `credentials`;
/// `spec` adds to the selector and pod template.
async fn create_workload<K>(client: &Client, ns: &str, name: &str, credentials: &str, mut spec: Value)
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    spec["selector"] = json!({"matchLabels": {"app": name}});
    spec["template"] = pod_template(name, credentials);
    // Each new pod must stay ready for a second before it counts as available, so a rollout
    // takes a few seconds, long enough to observe.
    spec["minReadySeconds"] = json!(1);
    let obj: K = serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

async fn create_deployment(client: &Client, ns: &str, name: &str, replicas: i32, credentials: &str) {
    // Old pods go one at a time.
    let spec = json!({"replicas": replicas, "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}});
    create_workload::<Deployment>(client, ns, name, credentials, spec).await;
}

async fn create_statefulset(client: &Client, ns: &str, name: &str, credentials: &str) {
    let spec = json!({"replicas": 2, "serviceName": name});
    create_workload::<StatefulSet>(client, ns, name, credentials, spec).await;
}

async fn create_daemonset(client: &Client, ns: &str, name: &str, credentials: &str) {
    create_workload::<DaemonSet>(client, ns, name, credentials, json!({})).await;
}

/// Waits until the history shows `what` complete.
async fn wait_complete(history: &History, what: &str) {
    let done = support::wait_until(Duration::from_secs(90), || async {
        history.first(what, |e| e.complete == Some(true))
    })
    .await;
    assert!(
        done.is_some(),
        "{what} never finished rolling out (is KWOK running? `tests/testenv/testenv.sh kubectl get nodes`)"
    );
}

/// The previous secret was Retiring while the workload rolled out at the new fingerprint, and
/// was revoked only after every workload had completed that rollout.
async fn assert_retired_after_rollouts(history: &History, old: &str, new_fp: &str, workloads: &[&str]) {
    let cs = format!("ClientSecret/{old}");
    let retiring = history
        .first_recorded(&cs, |e| e.value.as_deref() == Some("Retiring"))
        .await
        .expect("the old secret was never Retiring");
    let revoked = history
        .first_recorded(&cs, |e| e.value.as_deref() == Some("Revoked"))
        .await
        .expect("the old secret was never revoked");
    for w in workloads {
        let before = history
            .last_before(w, revoked.rv)
            .unwrap_or_else(|| panic!("no event of {w} before the revocation"));
        assert_eq!(
            before.value.as_deref(),
            Some(new_fp),
            "{w} did not carry the new fingerprint at revocation"
        );
        assert_eq!(
            before.complete,
            Some(true),
            "{old} was revoked while {w} was still rolling out: {before:?}"
        );
    }
    let rolling_while_retiring = workloads.iter().any(|w| {
        history
            .sorted()
            .iter()
            .any(|e| e.what == *w && e.rv > retiring.rv && e.rv < revoked.rv && e.complete == Some(false))
    });
    assert!(
        rolling_while_retiring,
        "no workload was observed mid-rollout while {old} was Retiring: {:#?}",
        history.sorted()
    );
}

async fn stamp(client: &Client, ns: &str, kind: &str, name: &str, fingerprint: &str) {
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {ANNOTATION: fingerprint}}}}});
    let pp = PatchParams::default();
    match kind {
        "Deployment" => drop(
            Api::<Deployment>::namespaced(client.clone(), ns)
                .patch(name, &pp, &Patch::Merge(&patch))
                .await
                .unwrap(),
        ),
        _ => drop(
            Api::<StatefulSet>::namespaced(client.clone(), ns)
                .patch(name, &pp, &Patch::Merge(&patch))
                .await
                .unwrap(),
        ),
    }
}

#[tokio::test]
async fn on_rollout_with_stamping_writes_credentials_then_stamps_and_retires_after_the_rollout() {
    let h = Harness::start("cs-rollout-stamp").await;
    let inv = Invariants::watch(&h.client, &h.ns, &[]).await;
    let (history, _tasks) = record(&h.client, &h.ns).await;
    h.create_org("shop", Some("shop-client-0001"), "0s", Some("shop-credentials"))
        .await;
    h.create_cs("v1", "shop", "Immediate", json!({})).await;
    h.wait_phase("v1", ClientSecretPhase::Active, 30).await;
    create_deployment(&h.client, &h.ns, "web", 3, "shop-credentials").await;
    create_daemonset(&h.client, &h.ns, "agent", "shop-credentials").await;
    wait_complete(&history, "Deployment/web").await;
    wait_complete(&history, "DaemonSet/agent").await;

    let rollout = json!({"rollout": {"stamp": true, "workloads": [
        {"kind": "Deployment", "name": "web"}, {"kind": "DaemonSet", "name": "agent"}
    ]}});
    h.create_cs("v2", "shop", "OnRollout", rollout).await;
    let v2 = h.wait_phase("v2", ClientSecretPhase::Active, 60).await;
    let new_fp = fp(&v2);
    h.wait_phase("v1", ClientSecretPhase::Revoked, 120).await;

    // The credentials Secret got the new secret before any pod template carried it.
    let creds_switched = history
        .first("Secret/shop-credentials", |e| {
            e.value.as_deref() == Some(new_fp.as_str())
        })
        .expect("the credentials Secret never held the new secret");
    for w in ["Deployment/web", "DaemonSet/agent"] {
        let stamped = history
            .first(w, |e| e.value.as_deref() == Some(new_fp.as_str()))
            .expect("never stamped");
        assert!(
            creds_switched.rv < stamped.rv,
            "{w} was stamped before the credentials Secret switched"
        );
    }
    // v2 became Active only once every template carried it.
    let active = history
        .first_recorded("ClientSecret/v2", |e| e.value.as_deref() == Some("Active"))
        .await
        .unwrap();
    for w in ["Deployment/web", "DaemonSet/agent"] {
        let stamped = history
            .first(w, |e| e.value.as_deref() == Some(new_fp.as_str()))
            .unwrap();
        assert!(
            stamped.rv < active.rv,
            "v2 was Active before {w} carried its fingerprint"
        );
    }
    assert_retired_after_rollouts(&history, "v1", &new_fp, &["Deployment/web", "DaemonSet/agent"]).await;
    let creds = h.secrets().get("shop-credentials").await.unwrap();
    assert_eq!(data(&creds, CLIENT_SECRET_KEY), h.plaintext_of("v2").await);
    h.wait_event("v2", "Stamped").await;
    inv.assert_clean();
    h.assert_no_plaintext(&inv.secret_values(), None).await;
}

#[tokio::test]
async fn on_rollout_without_stamping_waits_for_the_pipeline_and_for_every_workload() {
    let h = Harness::start("cs-rollout-pipeline").await;
    let inv = Invariants::watch(&h.client, &h.ns, &[]).await;
    let (history, _tasks) = record(&h.client, &h.ns).await;
    h.create_org("shop", Some("shop-client-0002"), "0s", None).await;
    h.create_cs("v1", "shop", "Immediate", json!({})).await;
    h.wait_phase("v1", ClientSecretPhase::Active, 30).await;
    create_deployment(&h.client, &h.ns, "api", 2, "v1").await;
    create_statefulset(&h.client, &h.ns, "db", "v1").await;
    wait_complete(&history, "Deployment/api").await;
    wait_complete(&history, "StatefulSet/db").await;

    // A missing workload is named in the condition.
    let typo = json!({"rollout": {"workloads": [{"kind": "Deployment", "name": "apii"}]}});
    h.create_cs("typo", "shop", "OnRollout", typo).await;
    let typo = h.wait_reason("typo", "WorkloadNotFound").await;
    assert!(condition(&typo, "Activated").message.contains("Deployment/apii"));
    h.wait_event("typo", "WorkloadNotFound").await;

    let rollout = json!({"rollout": {"workloads": [
        {"kind": "Deployment", "name": "api"}, {"kind": "StatefulSet", "name": "db"}
    ]}});
    h.create_cs("v2", "shop", "OnRollout", rollout).await;
    let waiting = h.wait_reason("v2", "WaitingForRollout").await;
    let new_fp = fp(&waiting);
    let message = &condition(&waiting, "Activated").message;
    assert!(
        message.contains(&new_fp) && message.contains("Deployment/api") && message.contains("StatefulSet/db"),
        "{message}"
    );
    // The operator does not stamp on its own, not even after looking again.
    h.looked_again("v2").await;
    let api = Api::<Deployment>::namespaced(h.client.clone(), &h.ns)
        .get("api")
        .await
        .unwrap();
    assert_eq!(template_fp(&api.spec.map(|s| s.template)), None);

    // The pipeline rolls the first workload: not enough.
    stamp(&h.client, &h.ns, "Deployment", "api", &new_fp).await;
    let still = h
        .wait_cs("v2", 30, "waiting only for db", |cs| {
            let m = &condition(cs, "Activated").message;
            m.contains("StatefulSet/db") && !m.contains("Deployment/api")
        })
        .await;
    assert_eq!(phase(&still), Some(ClientSecretPhase::Pending));
    assert_eq!(
        phase(&h.client_secrets().get("v1").await.unwrap()),
        Some(ClientSecretPhase::Active)
    );
    // …and the second: active; the old one retires after both rollouts.
    stamp(&h.client, &h.ns, "StatefulSet", "db", &new_fp).await;
    h.wait_phase("v2", ClientSecretPhase::Active, 30).await;
    h.wait_phase("v1", ClientSecretPhase::Revoked, 120).await;
    assert_retired_after_rollouts(&history, "v1", &new_fp, &["Deployment/api", "StatefulSet/db"]).await;
    assert_eq!(
        phase(&h.client_secrets().get("typo").await.unwrap()),
        Some(ClientSecretPhase::Pending)
    );
    inv.assert_clean();
    h.assert_no_plaintext(&inv.secret_values(), None).await;
}

#[tokio::test]
async fn two_stamping_rotations_at_once_take_turns_instead_of_fighting() {
    let h = Harness::start("cs-rollout-two").await;
    let inv = Invariants::watch(&h.client, &h.ns, &[]).await;
    let (history, _tasks) = record(&h.client, &h.ns).await;
    h.create_org("shop", Some("shop-client-0003"), "0s", Some("shop-credentials"))
        .await;
    h.create_cs("v1", "shop", "Immediate", json!({})).await;
    h.wait_phase("v1", ClientSecretPhase::Active, 30).await;
    create_deployment(&h.client, &h.ns, "web", 2, "shop-credentials").await;
    wait_complete(&history, "Deployment/web").await;
    let rollout = json!({"rollout": {"stamp": true, "workloads": [{"kind": "Deployment", "name": "web"}]}});
    let (a, b) = futures::join!(
        h.create_cs("v2a", "shop", "OnRollout", rollout.clone()),
        h.create_cs("v2b", "shop", "OnRollout", rollout.clone())
    );
    let _ = (a, b);
    // Both end up activated in turn: the later one Active, the earlier Revoked after its rollout.
    let api = h.client_secrets();
    let settled = support::wait_until(Duration::from_secs(120), || async {
        let (x, y) = (api.get("v2a").await.ok()?, api.get("v2b").await.ok()?);
        let phases = [phase(&x), phase(&y)];
        let one_active = phases.contains(&Some(ClientSecretPhase::Active));
        let one_revoked = phases.contains(&Some(ClientSecretPhase::Revoked));
        let v1_revoked = phase(&api.get("v1").await.ok()?) == Some(ClientSecretPhase::Revoked);
        (one_active && one_revoked && v1_revoked).then_some((x, y))
    })
    .await
    .expect("the two rotations did not both complete");
    let winner = if phase(&settled.0) == Some(ClientSecretPhase::Active) {
        &settled.0
    } else {
        &settled.1
    };
    // Each stamped once: the template's fingerprint changed exactly twice, ending on the winner.
    let stamps: Vec<Option<String>> = history
        .sorted()
        .into_iter()
        .filter(|e| e.what == "Deployment/web")
        .map(|e| e.value)
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] != w[1])
        .map(|w| w[1].clone())
        .collect();
    assert_eq!(
        stamps.len(),
        2,
        "the template was stamped {} times: {stamps:?}",
        stamps.len()
    );
    assert_eq!(stamps[1].as_deref(), Some(fp(winner).as_str()));
    let creds = h.secrets().get("shop-credentials").await.unwrap();
    assert_eq!(data(&creds, FINGERPRINT_KEY), fp(winner));
    inv.assert_clean();
}
