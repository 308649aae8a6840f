//! The ClientSecret controller against the real API server: generation, the three activation
//! modes, retiring and revoking, deletion, conflicts, recovery from lost state — and that no
//! generated secret ever shows up in a ClientSecret, an Organization, an Event or a log line.
//!
//! Each test runs the controller in-process, scoped to its own namespace, and captures the
//! process's log output (at TRACE) for the plaintext check. `client_secret_rollout.rs` covers
//! `OnRollout` with real Deployment rollouts, `client_secret_crash.rs` SIGKILLs the operator binary.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use centralauth_operator::controller::client_secret::secret::{
    CLIENT_ID_KEY, CLIENT_SECRET_KEY, FINGERPRINT_KEY, ISSUER_KEY,
};
use centralauth_operator::controller::client_secret::{self as controller, fingerprint};
use centralauth_operator::crd::{ClientSecret, ClientSecretPhase, Organization};

use crate::support;
use crate::support::client_secret::*;

/// The Secret holds a well-formed secret for this org and is owned by the ClientSecret.
async fn assert_secret_delivered(h: &Harness, cs: &ClientSecret, client_id: &str, issuer: &str) -> String {
    let secret = h.secrets().get(&cs.secret_name()).await.unwrap();
    let plaintext = data(&secret, CLIENT_SECRET_KEY);
    assert_eq!(plaintext.len(), 64);
    assert!(plaintext.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(data(&secret, CLIENT_ID_KEY), client_id);
    assert_eq!(data(&secret, ISSUER_KEY), issuer);
    assert_eq!(data(&secret, FINGERPRINT_KEY), fingerprint(plaintext.as_bytes()));
    assert_eq!(fp(cs), fingerprint(plaintext.as_bytes()));
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("ClientSecret", cs.uid().unwrap().as_str(), Some(true))
    );
    let labels = secret.labels();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "centralauth-operator");
    assert_eq!(labels["centralauth.io/client-secret"], cs.name_any());
    assert_eq!(labels["centralauth.io/organization"], cs.spec.organization_ref.name);
    let status = cs.status.as_ref().unwrap();
    let hash = status.secret_hash.as_deref().unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{hash}");
    assert!(centralauth_operator::crypto::verify(hash, plaintext.as_bytes()));
    assert_eq!(status.secret_name.as_deref(), Some(cs.secret_name().as_str()));
    assert!(status.generated_at.is_some());
    plaintext
}

fn active_name(org: &Organization) -> Option<String> {
    org.active_secret().map(|a| a.name.clone())
}

fn org_condition(org: &Organization, type_: &str) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    org.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

#[tokio::test]
async fn immediate_secret_is_generated_delivered_activated_and_replaced() {
    let h = Harness::start("cs-immediate").await;
    let inv = Invariants::watch(&h.client, &h.ns, &[]).await;
    h.create_org("acme", Some("acme-client-0001"), "0s", Some("acme-credentials"))
        .await;
    h.create_cs("first", "acme", "Immediate", json!({})).await;
    let first = h.wait_phase("first", ClientSecretPhase::Active, 30).await;
    let issuer = format!("https://{BASE_DOMAIN}/o/acme-client-0001");
    let first_secret = assert_secret_delivered(&h, &first, "acme-client-0001", &issuer).await;
    assert!(first.finalizers().contains(&controller::FINALIZER.to_string()));
    assert_eq!(condition(&first, "Ready").status, "True");
    assert_eq!(condition(&first, "Activated").status, "True");
    let status = first.status.clone().unwrap();
    assert!(status.activated_at.is_some() && status.retired_at.is_none());
    assert_eq!(status.observed_generation, first.metadata.generation);

    let org = h.orgs().get("acme").await.unwrap();
    let record = org.active_secret().unwrap();
    assert_eq!(
        (record.name.as_str(), record.uid.as_deref()),
        ("first", first.uid().as_deref())
    );
    assert_eq!(record.fingerprint, fp(&first));
    let cond = org_condition(&org, controller::ORG_ACTIVE_SECRET_CONDITION).unwrap();
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("True", "Activated"));
    let creds = h.secrets().get("acme-credentials").await.unwrap();
    assert_eq!(data(&creds, CLIENT_SECRET_KEY), first_secret);
    assert_eq!(creds.owner_references()[0].uid, org.uid().unwrap());
    h.wait_event("first", "Generated").await;
    h.wait_event("first", "Activated").await;
    // A deleted credentials Secret comes back, with the active secret.
    h.secrets()
        .delete("acme-credentials", &DeleteParams::default())
        .await
        .unwrap();
    let back = support::wait_until(Duration::from_secs(30), || async {
        let s = h.secrets().get_opt("acme-credentials").await.ok()??;
        (s.uid() != creds.uid()).then_some(s)
    })
    .await
    .expect("the credentials Secret was not recreated");
    assert_eq!(data(&back, CLIENT_SECRET_KEY), first_secret);

    // A second Immediate secret replaces it; grace 0s revokes the first at once.
    h.create_cs("second", "acme", "Immediate", json!({"secretName": "acme-second"}))
        .await;
    let second = h.wait_phase("second", ClientSecretPhase::Active, 30).await;
    let second_secret = assert_secret_delivered(&h, &second, "acme-client-0001", &issuer).await;
    let first = h.wait_phase("first", ClientSecretPhase::Revoked, 30).await;
    let status = first.status.clone().unwrap();
    assert!(status.revoked_at.is_some() && status.retired_at.is_some());
    assert!(
        condition(&first, "Activated")
            .message
            .contains("replaced by ClientSecret second")
    );
    assert_eq!(
        active_name(&h.orgs().get("acme").await.unwrap()).as_deref(),
        Some("second")
    );
    let creds = h.secrets().get("acme-credentials").await.unwrap();
    assert_eq!(data(&creds, CLIENT_SECRET_KEY), second_secret);
    h.wait_event("first", "Revoked").await;
    // The first secret's Secret records the terminal state (survives a wiped status).
    let kept = h.secrets().get("first").await.unwrap();
    assert!(kept.annotations().contains_key("centralauth.io/revoked-at"));
    assert_eq!(data(&kept, CLIENT_SECRET_KEY), first_secret);

    inv.assert_clean();
    h.assert_no_plaintext(&[first_secret, second_secret], None).await;
}

#[tokio::test]
async fn manual_activation_needs_the_fingerprint_and_a_wrong_one_changes_nothing() {
    let h = Harness::start("cs-manual").await;
    let inv = Invariants::watch(&h.client, &h.ns, &[]).await;
    h.create_org("acme", Some("acme-client-0002"), "3s", None).await;
    h.create_cs("old", "acme", "Immediate", json!({})).await;
    h.wait_phase("old", ClientSecretPhase::Active, 30).await;
    h.create_cs("new", "acme", "Manual", json!({})).await;
    let new = h.wait_reason("new", "WaitingForActivation").await;
    assert_eq!(phase(&new), Some(ClientSecretPhase::Pending));
    assert!(
        condition(&new, "Activated").message.contains(&fp(&new)),
        "the condition says what to set"
    );

    let wrong = format!("sha256:{}", "0".repeat(64));
    annotate(&h.client_secrets(), "new", "centralauth.io/activate", &wrong).await;
    let refused = h
        .wait_cs("new", 30, "FingerprintMismatch", |cs| {
            condition(cs, "Activated").reason == "FingerprintMismatch"
        })
        .await;
    assert_eq!(phase(&refused), Some(ClientSecretPhase::Pending));
    let message = &condition(&refused, "Activated").message;
    assert!(!message.contains(&wrong), "the wrong value is echoed: {message}");
    let warning = h.wait_event("new", "FingerprintMismatch").await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert!(!serde_json::to_string(&warning).unwrap().contains(&wrong));
    assert_eq!(
        active_name(&h.orgs().get("acme").await.unwrap()).as_deref(),
        Some("old")
    );
    assert_eq!(
        phase(&h.client_secrets().get("old").await.unwrap()),
        Some(ClientSecretPhase::Active)
    );

    annotate(&h.client_secrets(), "new", "centralauth.io/activate", &fp(&new)).await;
    h.wait_phase("new", ClientSecretPhase::Active, 30).await;
    let old = h.wait_phase("old", ClientSecretPhase::Retiring, 30).await;
    let retired_at = old.status.as_ref().unwrap().retired_at.clone().unwrap();
    // Grace 3s: revoked by a requeue at the deadline, not before.
    let old = h.wait_phase("old", ClientSecretPhase::Revoked, 30).await;
    let revoked_at = old.status.as_ref().unwrap().revoked_at.clone().unwrap();
    assert!(
        revoked_at.0.as_second() - retired_at.0.as_second() >= 3,
        "{retired_at:?} → {revoked_at:?}"
    );
    h.wait_event("old", "Retiring").await;

    inv.assert_clean();
    let secrets = vec![h.plaintext_of("old").await, h.plaintext_of("new").await];
    h.assert_no_plaintext(&secrets, None).await;
}

#[tokio::test]
async fn pasting_the_secret_itself_into_the_annotation_revokes_it_without_echoing_it() {
    let h = Harness::start("cs-exposed").await;
    h.create_org("acme", Some("acme-client-0003"), "0s", None).await;
    h.create_cs("leaky", "acme", "Manual", json!({})).await;
    h.wait_phase("leaky", ClientSecretPhase::Pending, 30).await;
    let secret = h.plaintext_of("leaky").await;
    annotate(&h.client_secrets(), "leaky", "centralauth.io/activate", &secret).await;
    let revoked = h.wait_phase("leaky", ClientSecretPhase::Revoked, 30).await;
    assert_eq!(condition(&revoked, "Activated").reason, "SecretExposed");
    assert!(h.orgs().get("acme").await.unwrap().active_secret().is_none());
    h.wait_event("leaky", "SecretExposed").await;
    h.assert_no_plaintext(&[secret], Some("leaky")).await;
}

/// An Immediate secret older than the active one never replaces it: it is revoked, never active.
#[tokio::test]
async fn an_immediate_secret_never_replaces_a_newer_active_one() {
    let h = Harness::start("cs-superseded").await;
    let inv = Invariants::watch(&h.client, &h.ns, &[]).await;
    h.create_org("acme", Some("acme-client-0009"), "0s", None).await;
    h.create_cs("older", "acme", "Manual", json!({})).await;
    h.wait_reason("older", "WaitingForActivation").await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // a later creation second
    h.create_cs("newer", "acme", "Immediate", json!({})).await;
    h.wait_phase("newer", ClientSecretPhase::Active, 30).await;
    let patch = json!({"spec": {"activation": "Immediate"}});
    h.client_secrets()
        .patch("older", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let older = h.wait_phase("older", ClientSecretPhase::Revoked, 30).await;
    assert_eq!(condition(&older, "Activated").reason, "Superseded");
    assert!(
        older.status.unwrap().activated_at.is_none(),
        "the older secret was activated"
    );
    assert_eq!(
        active_name(&h.orgs().get("acme").await.unwrap()),
        Some("newer".to_string())
    );
    h.wait_event("older", "Revoked").await;
    inv.assert_clean();
}

#[tokio::test]
async fn twenty_secrets_activated_at_once_leave_exactly_one_active() {
    let h = Harness::start("cs-twenty").await;
    twenty_at_once(&h).await;
}

/// The same with two controllers racing on one namespace (two operator processes without
/// leader election): the resourceVersion preconditions alone keep the invariant.
#[tokio::test]
async fn twenty_secrets_activated_at_once_by_two_racing_controllers_leave_exactly_one_active() {
    let mut h = Harness::start("cs-twenty-two").await;
    let second = h.start_second_controller();
    twenty_at_once(&h).await;
    second.abort();
}

async fn twenty_at_once(h: &Harness) {
    let inv = Invariants::watch(&h.client, &h.ns, &[]).await;
    h.create_org("acme", Some("acme-client-0004"), "0s", Some("acme-credentials"))
        .await;
    let creates = (0..20).map(|i| {
        let api = h.client_secrets();
        let cs = client_secret(&format!("gen-{i:02}"), "acme", "Immediate", json!({}));
        async move { api.create(&PostParams::default(), &cs).await.unwrap() }
    });
    futures::future::join_all(creates).await;
    let api = h.client_secrets();
    let settled = support::wait_until(Duration::from_secs(120), || async {
        let all = api.list(&ListParams::default()).await.ok()?.items;
        let pending = all
            .iter()
            .filter(|c| !matches!(phase(c), Some(ClientSecretPhase::Active | ClientSecretPhase::Revoked)))
            .count();
        let active = all
            .iter()
            .filter(|c| phase(c) == Some(ClientSecretPhase::Active))
            .count();
        (all.len() == 20 && pending == 0 && active == 1).then_some(all)
    })
    .await
    .expect("the 20 secrets did not settle into one Active and 19 Revoked");
    let active: Vec<&ClientSecret> = settled
        .iter()
        .filter(|c| phase(c) == Some(ClientSecretPhase::Active))
        .collect();
    let revoked = settled
        .iter()
        .filter(|c| phase(c) == Some(ClientSecretPhase::Revoked))
        .count();
    assert_eq!((active.len(), revoked), (1, 19));
    // Whatever order they were reconciled in, the newest (creation time, then name) won.
    let newest = settled
        .iter()
        .max_by_key(|c| (c.metadata.creation_timestamp.clone().map(|t| t.0), c.name_any()))
        .unwrap();
    assert_eq!(
        active[0].name_any(),
        newest.name_any(),
        "an older secret replaced a newer one"
    );
    let org = h.orgs().get("acme").await.unwrap();
    let record = org.active_secret().unwrap();
    assert_eq!(record.name, active[0].name_any());
    assert_eq!(record.uid, active[0].uid());
    let creds = h.secrets().get("acme-credentials").await.unwrap();
    assert_eq!(data(&creds, FINGERPRINT_KEY), fp(active[0]));
    // Settled means settled: once the controller has looked again, nothing has moved.
    h.looked_again(&active[0].name_any()).await;
    assert_eq!(
        active_name(&h.orgs().get("acme").await.unwrap()),
        Some(active[0].name_any())
    );
    inv.assert_clean();
    assert_eq!(inv.max_active.lock().unwrap().get("acme"), Some(&1));
    assert_eq!(inv.secret_values().len(), 20, "one secret per ClientSecret");
    h.assert_no_plaintext(&inv.secret_values(), None).await;
}

#[tokio::test]
async fn the_record_is_switched_only_from_the_version_that_was_read() {
    // What the activation relies on: a server-side apply of the status carrying a stale
    // metadata.resourceVersion is refused with 409.
    let h = Harness::without_controller("cs-cas").await;
    let org = h.create_org("acme", Some("acme-client-0009"), "0s", None).await;
    let stale = org.resource_version().unwrap();
    let apply = |rv: &str, name: &str| {
        json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization",
            "metadata": {"name": "acme", "resourceVersion": rv},
            "status": {"activeSecret": {"name": name, "fingerprint": "sha256:00"}}
        })
    };
    let params = PatchParams::apply(centralauth_operator::crd::ACTIVATION_MANAGER).force();
    let first = h
        .orgs()
        .patch_status("acme", &params, &Patch::Apply(apply(&stale, "a")))
        .await
        .unwrap();
    let err = h
        .orgs()
        .patch_status("acme", &params, &Patch::Apply(apply(&stale, "b")))
        .await
        .unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 409), "{err:?}");
    assert_eq!(active_name(&h.orgs().get("acme").await.unwrap()).as_deref(), Some("a"));
    let rv = first.resource_version().unwrap();
    h.orgs()
        .patch_status("acme", &params, &Patch::Apply(apply(&rv, "c")))
        .await
        .unwrap();
    assert_eq!(active_name(&h.orgs().get("acme").await.unwrap()).as_deref(), Some("c"));
}

#[tokio::test]
async fn deleting_the_active_secret_removes_its_secret_and_says_so_on_the_organization() {
    let h = Harness::start("cs-delete").await;
    h.create_org("acme", Some("acme-client-0005"), "0s", None).await;
    h.create_cs("only", "acme", "Immediate", json!({"secretName": "only-secret"}))
        .await;
    h.wait_phase("only", ClientSecretPhase::Active, 30).await;
    let secret = h.plaintext_of("only-secret").await;
    h.client_secrets()
        .delete("only", &DeleteParams::default())
        .await
        .unwrap();
    let gone = support::wait_until(Duration::from_secs(30), || async {
        h.client_secrets()
            .get_opt("only")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(gone.is_some(), "the ClientSecret was not deleted");
    // Deleted by the finalizer before the ClientSecret went away, not later by garbage collection.
    assert!(h.secrets().get_opt("only-secret").await.unwrap().is_none());
    let org = h.orgs().get("acme").await.unwrap();
    assert!(org.active_secret().is_none());
    let cond = org_condition(&org, controller::ORG_ACTIVE_SECRET_CONDITION).unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "NoActiveSecret")
    );
    assert!(cond.message.contains("only"));
    h.wait_event("acme", "NoActiveSecret").await;
    h.assert_no_plaintext(&[secret], None).await;
}

#[tokio::test]
async fn a_secret_name_taken_by_someone_else_is_never_touched() {
    let h = Harness::start("cs-taken").await;
    let foreign = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("taken".into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([("client_secret".to_string(), "not-ours".to_string())])),
        ..Default::default()
    };
    let before = h.secrets().create(&PostParams::default(), &foreign).await.unwrap();
    let inv = Invariants::watch(&h.client, &h.ns, &["taken"]).await;
    h.create_org("acme", Some("acme-client-0006"), "0s", None).await;
    h.create_cs("wants-taken", "acme", "Immediate", json!({"secretName": "taken"}))
        .await;
    let cs = h.wait_reason("wants-taken", "SecretNameTaken").await;
    assert_eq!(condition(&cs, "Ready").status, "False");
    assert!(cs.status.as_ref().unwrap().fingerprint.is_none());
    let warning = h.wait_event("wants-taken", "SecretNameTaken").await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    h.looked_again("wants-taken").await;
    let after = h.secrets().get("taken").await.unwrap();
    assert_eq!(after.resource_version(), before.resource_version());
    assert!(after.owner_references().is_empty());
    assert!(h.orgs().get("acme").await.unwrap().active_secret().is_none());
    // Deleting the ClientSecret leaves the foreign Secret alone too.
    h.client_secrets()
        .delete("wants-taken", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_until(Duration::from_secs(30), || async {
        h.client_secrets()
            .get_opt("wants-taken")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        h.secrets().get("taken").await.unwrap().resource_version(),
        before.resource_version()
    );
    inv.assert_clean();
}

#[tokio::test]
async fn lost_state_is_recovered_and_never_mints_a_second_secret() {
    let mut h = Harness::without_controller("cs-recover").await;
    h.create_org("acme", Some("acme-client-0007"), "0s", None).await;
    // A crash right after the Secret was created, before the status was written: the Secret
    // exists (owned by the ClientSecret), the status does not.
    let planted_cs = h.create_cs("planted", "acme", "Manual", json!({})).await;
    let planted_value = "P".repeat(32) + &"q".repeat(32);
    let planted = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("planted".into()),
            owner_references: Some(vec![kube::Resource::controller_owner_ref(&planted_cs, &()).unwrap()]),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "centralauth-operator".to_string(),
            )])),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([("client_secret".to_string(), planted_value.clone())])),
        ..Default::default()
    };
    h.secrets().create(&PostParams::default(), &planted).await.unwrap();
    h.start_controller();
    let adopted = h
        .wait_cs("planted", 30, "status derived from the Secret", |cs| {
            cs.status.as_ref().is_some_and(|s| s.fingerprint.is_some())
        })
        .await;
    assert_eq!(fp(&adopted), fingerprint(planted_value.as_bytes()));
    assert_eq!(h.plaintext_of("planted").await, planted_value);
    assert_eq!(
        data(&h.secrets().get("planted").await.unwrap(), FINGERPRINT_KEY),
        fp(&adopted)
    );

    // Wiped status of an Active secret: recovered from the Secret and the record, same secret.
    h.create_cs("active", "acme", "Immediate", json!({})).await;
    let active = h.wait_phase("active", ClientSecretPhase::Active, 30).await;
    let active_secret = h.plaintext_of("active").await;
    wipe_status(&h.client_secrets(), "active").await;
    let recovered = h.wait_phase("active", ClientSecretPhase::Active, 30).await;
    assert_eq!(fp(&recovered), fp(&active));
    assert!(centralauth_operator::crypto::verify(
        recovered.status.as_ref().unwrap().secret_hash.as_deref().unwrap(),
        active_secret.as_bytes()
    ));
    assert_eq!(h.plaintext_of("active").await, active_secret);

    // Wiped status of a Revoked Immediate secret: stays Revoked, is never activated again.
    h.create_cs("newer", "acme", "Immediate", json!({})).await;
    h.wait_phase("newer", ClientSecretPhase::Active, 30).await;
    h.wait_phase("active", ClientSecretPhase::Revoked, 30).await;
    wipe_status(&h.client_secrets(), "active").await;
    h.wait_phase("active", ClientSecretPhase::Revoked, 30).await;
    h.looked_again("active").await;
    assert_eq!(
        active_name(&h.orgs().get("acme").await.unwrap()).as_deref(),
        Some("newer")
    );
    assert_eq!(
        phase(&h.client_secrets().get("newer").await.unwrap()),
        Some(ClientSecretPhase::Active)
    );

    // A wiped Organization status: the Active secret records itself again.
    let wipe = json!({"status": null});
    h.orgs()
        .patch_status("acme", &PatchParams::default(), &Patch::Merge(&wipe))
        .await
        .unwrap();
    let org = support::wait_until(Duration::from_secs(30), || async {
        h.orgs()
            .get("acme")
            .await
            .ok()
            .filter(|o| active_name(o).as_deref() == Some("newer"))
    })
    .await;
    assert!(org.is_some(), "the record was not restored");

    // The Secret deleted after generation: nothing is regenerated.
    let newer_secret = h.plaintext_of("newer").await;
    h.secrets().delete("newer", &DeleteParams::default()).await.unwrap();
    let missing = h
        .wait_cs("newer", 30, "SecretMissing", |cs| {
            condition(cs, "Ready").reason == "SecretMissing"
        })
        .await;
    assert_eq!(
        phase(&missing),
        Some(ClientSecretPhase::Active),
        "losing the Secret does not revoke the secret"
    );
    h.looked_again("newer").await;
    assert!(
        h.secrets().get_opt("newer").await.unwrap().is_none(),
        "a second secret was minted"
    );
    h.wait_event("newer", "SecretMissing").await;

    h.assert_no_plaintext(&[planted_value, active_secret, newer_secret], None)
        .await;
}

#[tokio::test]
async fn an_activation_interrupted_after_the_record_switched_is_completed() {
    // The narrowest crash window: the record already names the new secret, its status is still
    // Pending and the previous one's status still says Active. Set that state up by hand.
    let mut h = Harness::start("cs-interrupted").await;
    let inv = Invariants::watch(&h.client, &h.ns, &[]).await;
    h.create_org("acme", Some("acme-client-0010"), "0s", Some("acme-credentials"))
        .await;
    h.create_cs("old", "acme", "Immediate", json!({})).await;
    h.wait_phase("old", ClientSecretPhase::Active, 30).await;
    h.create_cs("new", "acme", "Manual", json!({})).await;
    let new = h.wait_reason("new", "WaitingForActivation").await;
    h.stop_controller();
    let org = h.orgs().get("acme").await.unwrap();
    let record = json!({
        "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization",
        "metadata": {"name": "acme", "resourceVersion": org.resource_version()},
        "status": {"activeSecret": {"name": "new", "uid": new.uid(), "fingerprint": fp(&new)}}
    });
    let params = PatchParams::apply(centralauth_operator::crd::ACTIVATION_MANAGER).force();
    h.orgs()
        .patch_status("acme", &params, &Patch::Apply(record))
        .await
        .unwrap();
    assert_eq!(
        phase(&h.client_secrets().get("old").await.unwrap()),
        Some(ClientSecretPhase::Active)
    );
    h.start_controller();
    h.wait_phase("new", ClientSecretPhase::Active, 30).await;
    h.wait_phase("old", ClientSecretPhase::Revoked, 30).await;
    let creds = h.secrets().get("acme-credentials").await.unwrap();
    assert_eq!(
        data(&creds, FINGERPRINT_KEY),
        fp(&new),
        "the credentials Secret follows the completed activation"
    );
    assert_eq!(
        active_name(&h.orgs().get("acme").await.unwrap()).as_deref(),
        Some("new")
    );
    inv.assert_clean();
}

async fn wipe_status(api: &Api<ClientSecret>, name: &str) {
    let wipe = json!({"status": null});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&wipe))
        .await
        .unwrap();
}

#[tokio::test]
async fn waits_for_the_organization_and_its_client_id_then_follows_its_issuer() {
    let h = Harness::start("cs-waits").await;
    h.create_cs("early", "later", "Immediate", json!({})).await;
    let waiting = h.wait_reason("early", "OrganizationNotFound").await;
    assert_eq!(condition(&waiting, "Ready").status, "False");
    h.wait_event("early", "OrganizationNotFound").await;
    h.create_org("later", None, "0s", None).await;
    h.wait_cs("early", 30, "WaitingForClientId", |cs| {
        condition(cs, "Ready").reason == "WaitingForClientId"
    })
    .await;
    assert!(h.secrets().get_opt("early").await.unwrap().is_none());
    let pin = json!({"spec": {"clientId": "later-client-0008"}});
    h.orgs()
        .patch("later", &PatchParams::default(), &Patch::Merge(&pin))
        .await
        .unwrap();
    let active = h.wait_phase("early", ClientSecretPhase::Active, 30).await;
    let secret = assert_secret_delivered(
        &h,
        &active,
        "later-client-0008",
        &format!("https://{BASE_DOMAIN}/o/later-client-0008"),
    )
    .await;
    // A subdomain gives the organization its own issuer; the Secret follows, the secret stays.
    let sub = json!({"spec": {"subdomain": "later"}});
    h.orgs()
        .patch("later", &PatchParams::default(), &Patch::Merge(&sub))
        .await
        .unwrap();
    let moved = support::wait_until(Duration::from_secs(30), || async {
        let s = h.secrets().get("early").await.ok()?;
        (data(&s, ISSUER_KEY) == format!("https://later.{BASE_DOMAIN}")).then_some(s)
    })
    .await
    .expect("the Secret's issuer did not follow the organization");
    assert_eq!(data(&moved, CLIENT_SECRET_KEY), secret);
    h.assert_no_plaintext(&[secret], None).await;
}
