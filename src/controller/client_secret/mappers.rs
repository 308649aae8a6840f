//! Which ClientSecrets a change of something else wakes: an Organization, a credentials
//! Secret, a workload.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::secret;
use crate::crd::{ClientSecret, ClientSecretPhase, Organization, WorkloadKind, WorkloadRef};

/// An Organization change wakes the ClientSecrets that care: all of them when what they derive
/// from it changed (client ID, addresses, policy), else only the Active and Retiring ones and
/// the one the record names (an activation only concerns them). Keeps an activation in an
/// organization with many secrets from waking every one of them: Pending secrets wait for their
/// own trigger, and a Revoked one is terminal — only a record naming it concerns it. (Waking
/// every Revoked sibling cost a read of the Organization each: 12 per activation in the
/// benchmark, most of the reads an activation cost.)
pub(super) fn org_mapper(
    store: Store<ClientSecret>,
) -> impl Fn(Arc<Organization>) -> Vec<ObjectRef<ClientSecret>> + Send + Sync {
    let seen: Mutex<HashMap<String, u64>> = Mutex::default();
    move |org| {
        let key = org.uid().unwrap_or_default();
        let fingerprint = org_fingerprint(&org);
        let changed = {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.insert(key, fingerprint) != Some(fingerprint)
        };
        let named = org.active_secret().map(|a| a.name.clone());
        store
            .state()
            .into_iter()
            // Runs over every ClientSecret on every Organization event: compares without allocating.
            .filter(|cs| {
                Some(&cs.spec.organization_ref.name) == org.metadata.name.as_ref()
                    && cs.metadata.namespace == org.metadata.namespace
            })
            .filter(|cs| {
                changed
                    || matches!(cs.phase(), ClientSecretPhase::Active | ClientSecretPhase::Retiring)
                    || cs.metadata.name == named
            })
            .map(|cs| ObjectRef::from_obj(&*cs))
            .collect()
    }
}

/// A change of a credentials Secret (say, its deletion) wakes the organization's Active secret,
/// which puts it back.
pub(super) fn credentials_mapper(
    store: Store<ClientSecret>,
) -> impl Fn(PartialObjectMeta<Secret>) -> Vec<ObjectRef<ClientSecret>> + Send + Sync {
    move |secret| {
        let org = secret.labels().get(secret::ORGANIZATION_LABEL).cloned();
        store
            .state()
            .into_iter()
            .filter(|cs| {
                Some(&cs.spec.organization_ref.name) == org.as_ref()
                    && cs.metadata.namespace == secret.metadata.namespace
            })
            .filter(|cs| cs.phase() == ClientSecretPhase::Active)
            .map(|cs| ObjectRef::from_obj(&*cs))
            .collect()
    }
}

/// What ClientSecrets derive from an Organization besides the record.
fn org_fingerprint(org: &Organization) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    org.client_id().hash(&mut h);
    org.spec.custom_domain.hash(&mut h);
    org.spec.subdomain.hash(&mut h);
    org.spec.credentials_secret_name.hash(&mut h);
    org.spec.secret_rotation.previous_secret_grace_period.hash(&mut h);
    org.metadata.deletion_timestamp.is_some().hash(&mut h);
    h.finish()
}

/// A workload change wakes the ClientSecrets that list it, and the Retiring secrets of their
/// organizations (which wait for its rollout).
pub(super) fn workload_mapper<W: Resource>(
    store: Store<ClientSecret>,
    kind: WorkloadKind,
) -> impl Fn(W) -> Vec<ObjectRef<ClientSecret>> + Send + Sync {
    move |workload| {
        let wanted = WorkloadRef {
            kind,
            name: workload.meta().name.clone().unwrap_or_default(),
        };
        let ns = workload.meta().namespace.clone();
        let all = store.state();
        let listing: Vec<&Arc<ClientSecret>> = all
            .iter()
            .filter(|cs| cs.metadata.namespace == ns)
            .filter(|cs| cs.spec.rollout.as_ref().is_some_and(|r| r.workloads.contains(&wanted)))
            .collect();
        let orgs: Vec<&String> = listing.iter().map(|cs| &cs.spec.organization_ref.name).collect();
        all.iter()
            .filter(|cs| {
                cs.metadata.namespace == ns
                    && (listing.iter().any(|l| l.metadata.uid == cs.metadata.uid)
                        || (cs.phase() == ClientSecretPhase::Retiring
                            && orgs.contains(&&cs.spec.organization_ref.name)))
            })
            .map(|cs| ObjectRef::from_obj(&**cs))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::runtime::watcher;
    use serde_json::json;

    use super::*;

    fn cs(name: &str, org: &str, phase: &str, workloads: &[&str]) -> ClientSecret {
        let mut spec = json!({"organizationRef": {"name": org}});
        if !workloads.is_empty() {
            spec["activation"] = json!("OnRollout");
            spec["rollout"] = json!({"workloads": workloads.iter().map(|w| json!({"kind": "Deployment", "name": w})).collect::<Vec<_>>()});
        }
        serde_json::from_value(json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": spec,
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    fn store_of(items: Vec<ClientSecret>) -> Store<ClientSecret> {
        let (reader, mut writer) = kube::runtime::reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for item in items {
            writer.apply_watcher_event(&watcher::Event::InitApply(item));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        reader
    }

    fn names(refs: Vec<ObjectRef<ClientSecret>>) -> Vec<String> {
        let mut n: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        n.sort();
        n
    }

    #[test]
    fn a_workload_wakes_its_listers_and_the_retiring_secrets_of_their_orgs() {
        let store = store_of(vec![
            cs("new", "acme", "Pending", &["web"]),
            cs("old", "acme", "Retiring", &[]),
            cs("older", "acme", "Revoked", &[]),
            cs("elsewhere", "other", "Retiring", &[]),
        ]);
        let mapper = workload_mapper::<Deployment>(store, WorkloadKind::Deployment);
        let web: Deployment = serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "ns"}})).unwrap();
        assert_eq!(names(mapper(web)), ["new", "old"]);
        let api: Deployment = serde_json::from_value(json!({"metadata": {"name": "api", "namespace": "ns"}})).unwrap();
        assert!(mapper(api).is_empty());
    }

    #[test]
    fn an_org_record_change_wakes_only_the_secrets_it_concerns() {
        let store = store_of(vec![
            cs("a", "acme", "Pending", &[]),
            cs("b", "acme", "Active", &[]),
            cs("c", "acme", "Pending", &[]),
            cs("d", "acme", "Revoked", &[]),
            cs("e", "acme", "Retiring", &[]),
        ]);
        let mapper = org_mapper(store);
        let mut org: Organization = serde_json::from_value(json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization",
            "metadata": {"name": "acme", "namespace": "ns", "uid": "org-uid"},
            "spec": {"displayName": "Acme", "clientId": "client-1", "loginMethods": {"passwords": {"secretName": "u"}}}
        }))
        .unwrap();
        assert_eq!(names(mapper(Arc::new(org.clone()))), ["a", "b", "c", "d", "e"]);
        org.status = Some(crate::crd::OrganizationStatus {
            active_secret: Some(crate::crd::ActiveSecretRef {
                name: "c".into(),
                uid: Some("uid-c".into()),
                fingerprint: "sha256:x".into(),
                activated_at: None,
            }),
            ..Default::default()
        });
        assert_eq!(names(mapper(Arc::new(org.clone()))), ["b", "c", "e"]);
        org.status.as_mut().unwrap().active_secret.as_mut().unwrap().name = "d".into();
        assert_eq!(
            names(mapper(Arc::new(org.clone()))),
            ["b", "d", "e"],
            "a record naming a Revoked secret wakes it"
        );
        org.spec.subdomain = Some("acme".into());
        assert_eq!(names(mapper(Arc::new(org))), ["a", "b", "c", "d", "e"]);
    }
}
