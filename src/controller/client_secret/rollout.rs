//! `OnRollout` activation: reading the listed Deployments, StatefulSets and DaemonSets (the
//! fingerprint on their pod template, whether their rollout completed) and stamping them.
//!
//! A rollout is complete when the workload controller has observed the workload's latest
//! generation and every desired replica is updated, ready and available, with no replica of an
//! older revision left. Until then, pods holding the previous secret may still be serving, so
//! the previous secret stays Retiring.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::crd::{FIELD_MANAGER, ROLLOUT_FINGERPRINT_ANNOTATION, WorkloadKind, WorkloadRef};

/// How far a workload's rollout is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Every replica runs the current pod template and is ready and available.
    Complete,
    /// Still rolling; the text says what is missing.
    Rolling(String),
}

/// A listed workload as the operator sees it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Which workload.
    pub workload: WorkloadRef,
    /// `None` when it does not exist.
    pub state: Option<WorkloadState>,
}

/// What matters about an existing workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadState {
    /// The fingerprint annotation on its pod template.
    pub fingerprint: Option<String>,
    /// Its rollout.
    pub progress: Progress,
}

/// `kind/name` as users write it (`Deployment/web`).
pub fn describe(w: &WorkloadRef) -> String {
    format!("{:?}/{}", w.kind, w.name)
}

/// Reads every listed workload.
pub async fn observe(client: &Client, namespace: &str, workloads: &[WorkloadRef]) -> kube::Result<Vec<Observed>> {
    let mut out = Vec::with_capacity(workloads.len());
    for w in workloads {
        let state = match w.kind {
            WorkloadKind::Deployment => read::<Deployment>(client, namespace, &w.name).await?,
            WorkloadKind::StatefulSet => read::<StatefulSet>(client, namespace, &w.name).await?,
            WorkloadKind::DaemonSet => read::<DaemonSet>(client, namespace, &w.name).await?,
        };
        out.push(Observed {
            workload: w.clone(),
            state,
        });
    }
    Ok(out)
}

/// Whether every listed workload exists and finished rolling out; otherwise what is missing.
pub fn rollouts_complete(observed: &[Observed]) -> Result<(), String> {
    let pending: Vec<String> = observed
        .iter()
        .filter_map(|o| match &o.state {
            None => Some(format!("{} does not exist", describe(&o.workload))),
            Some(WorkloadState {
                progress: Progress::Rolling(why),
                ..
            }) => Some(format!("{}: {why}", describe(&o.workload))),
            Some(_) => None,
        })
        .collect();
    if pending.is_empty() {
        Ok(())
    } else {
        Err(pending.join("; "))
    }
}

/// Puts `fingerprint` on the workload's pod template (which starts its rollout). A merge patch
/// naming only that annotation, so nothing else of the workload is touched or owned.
pub async fn stamp(client: &Client, namespace: &str, w: &WorkloadRef, fingerprint: &str) -> kube::Result<()> {
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        ROLLOUT_FINGERPRINT_ANNOTATION: fingerprint
    }}}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    let patch = Patch::Merge(&patch);
    match w.kind {
        WorkloadKind::Deployment => drop(
            api::<Deployment>(client, namespace)
                .patch(&w.name, &params, &patch)
                .await?,
        ),
        WorkloadKind::StatefulSet => drop(
            api::<StatefulSet>(client, namespace)
                .patch(&w.name, &params, &patch)
                .await?,
        ),
        WorkloadKind::DaemonSet => drop(
            api::<DaemonSet>(client, namespace)
                .patch(&w.name, &params, &patch)
                .await?,
        ),
    }
    Ok(())
}

fn api<K>(client: &Client, namespace: &str) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(client.clone(), namespace)
}

async fn read<K>(client: &Client, namespace: &str, name: &str) -> kube::Result<Option<WorkloadState>>
where
    K: Workload
        + Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let found = api::<K>(client, namespace).get_opt(name).await?;
    Ok(found.map(|w| WorkloadState {
        fingerprint: w.template_fingerprint(),
        progress: w.progress(),
    }))
}

/// What the three workload kinds have in common here.
pub trait Workload {
    /// The pod template.
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// Its rollout.
    fn progress(&self) -> Progress;

    /// The fingerprint annotation on the pod template.
    fn template_fingerprint(&self) -> Option<String> {
        self.template()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(ROLLOUT_FINGERPRINT_ANNOTATION))
            .cloned()
    }
}

/// The generation check every kind shares.
fn generation_seen(meta: &ObjectMeta, observed: Option<i64>) -> Result<(), String> {
    let generation = meta.generation.unwrap_or(0);
    match observed {
        Some(seen) if seen >= generation => Ok(()),
        _ => Err(format!("its controller has not observed generation {generation} yet")),
    }
}

/// The replica-count checks every kind shares: `(what, have)` pairs that must reach `desired`,
/// and the total that must not exceed it (older replicas still running).
fn replicas_done(desired: i32, counts: &[(&str, i32)], total: i32) -> Result<(), String> {
    for (what, have) in counts {
        if *have < desired {
            return Err(format!("{have} of {desired} replicas {what}"));
        }
    }
    if total > desired {
        return Err(format!(
            "{} replicas of an older revision still running",
            total - desired
        ));
    }
    Ok(())
}

fn progress_of(result: Result<(), String>) -> Progress {
    match result {
        Ok(()) => Progress::Complete,
        Err(why) => Progress::Rolling(why),
    }
}

impl Workload for Deployment {
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }

    fn progress(&self) -> Progress {
        let spec = self.spec.clone().unwrap_or_default();
        let st = self.status.clone().unwrap_or_default();
        let desired = spec.replicas.unwrap_or(1);
        progress_of((|| {
            if spec.paused == Some(true) {
                return Err("the Deployment is paused".to_string());
            }
            generation_seen(&self.metadata, st.observed_generation)?;
            let counts = [
                ("updated", st.updated_replicas.unwrap_or(0)),
                ("ready", st.ready_replicas.unwrap_or(0)),
                ("available", st.available_replicas.unwrap_or(0)),
            ];
            replicas_done(desired, &counts, st.replicas.unwrap_or(0))
        })())
    }
}

impl Workload for StatefulSet {
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }

    fn progress(&self) -> Progress {
        let spec = self.spec.clone().unwrap_or_default();
        let st = self.status.clone().unwrap_or_default();
        let desired = spec.replicas.unwrap_or(1);
        progress_of((|| {
            generation_seen(&self.metadata, st.observed_generation)?;
            if st.update_revision.is_some() && st.current_revision != st.update_revision {
                let on_delete = spec.update_strategy.and_then(|s| s.type_).as_deref() == Some("OnDelete");
                return Err(if on_delete {
                    "pods of the previous revision remain (updateStrategy OnDelete: delete them to roll out)".into()
                } else {
                    "pods of the previous revision remain".into()
                });
            }
            let counts = [
                ("updated", st.updated_replicas.unwrap_or(0)),
                ("ready", st.ready_replicas.unwrap_or(0)),
                ("available", st.available_replicas.unwrap_or(0)),
            ];
            replicas_done(desired, &counts, st.replicas)
        })())
    }
}

impl Workload for DaemonSet {
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }

    fn progress(&self) -> Progress {
        let st = self.status.clone().unwrap_or_default();
        let desired = st.desired_number_scheduled;
        progress_of((|| {
            generation_seen(&self.metadata, st.observed_generation)?;
            let counts = [
                ("updated", st.updated_number_scheduled.unwrap_or(0)),
                ("ready", st.number_ready),
                ("available", st.number_available.unwrap_or(0)),
            ];
            replicas_done(desired, &counts, st.current_number_scheduled)
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"annotations": {ROLLOUT_FINGERPRINT_ANNOTATION: "sha256:ab"}}}
            },
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn deployment_rollout_needs_every_replica_updated_ready_available_and_no_old_one() {
        let done = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3});
        assert_eq!(deployment(2, done.clone()).progress(), Progress::Complete);
        assert_eq!(deployment(2, done).template_fingerprint().as_deref(), Some("sha256:ab"));
        let stale = json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3});
        assert!(matches!(deployment(2, stale).progress(), Progress::Rolling(w) if w.contains("generation 2")));
        let surge = json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3});
        assert!(matches!(deployment(2, surge).progress(), Progress::Rolling(w) if w.contains("older revision")));
        let unready = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2});
        assert!(
            matches!(deployment(2, unready).progress(), Progress::Rolling(w) if w.contains("2 of 3 replicas ready"))
        );
    }

    #[test]
    fn statefulset_rollout_waits_for_the_update_revision() {
        let sts = |current: &str| -> StatefulSet {
            serde_json::from_value(json!({
                "metadata": {"name": "db", "generation": 1},
                "spec": {"replicas": 2, "selector": {}, "serviceName": "db", "template": {},
                         "updateStrategy": {"type": "OnDelete"}},
                "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
                           "availableReplicas": 2, "currentRevision": current, "updateRevision": "db-2"}
            }))
            .unwrap()
        };
        assert_eq!(sts("db-2").progress(), Progress::Complete);
        assert!(matches!(sts("db-1").progress(), Progress::Rolling(w) if w.contains("OnDelete")));
    }

    #[test]
    fn daemonset_rollout_counts_scheduled_pods() {
        let ds = |updated: i32| -> DaemonSet {
            serde_json::from_value(json!({
                "metadata": {"name": "agent", "generation": 3},
                "spec": {"selector": {}, "template": {}},
                "status": {"observedGeneration": 3, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                           "numberMisscheduled": 0, "numberReady": 2, "numberAvailable": 2,
                           "updatedNumberScheduled": updated}
            }))
            .unwrap()
        };
        assert_eq!(ds(2).progress(), Progress::Complete);
        assert!(matches!(ds(1).progress(), Progress::Rolling(w) if w.contains("1 of 2 replicas updated")));
    }

    #[test]
    fn missing_and_rolling_workloads_are_listed() {
        let observed = vec![
            Observed {
                workload: WorkloadRef {
                    kind: WorkloadKind::Deployment,
                    name: "web".into(),
                },
                state: None,
            },
            Observed {
                workload: WorkloadRef {
                    kind: WorkloadKind::DaemonSet,
                    name: "agent".into(),
                },
                state: Some(WorkloadState {
                    fingerprint: None,
                    progress: Progress::Rolling("1 of 2 replicas updated".into()),
                }),
            },
        ];
        assert_eq!(
            rollouts_complete(&observed),
            Err("Deployment/web does not exist; DaemonSet/agent: 1 of 2 replicas updated".into())
        );
        assert_eq!(rollouts_complete(&[]), Ok(()));
    }
}
