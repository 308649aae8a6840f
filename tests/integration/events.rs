//! The operator's own event recorder (`controller::recorder`) against the real API server: a
//! first occurrence creates an `events.k8s.io/v1` Event, a repeat within the series window
//! patches that Event's `series` (count 2, then 3) instead of creating another, and another
//! reason is another Event.

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::Resource;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

use centralauth_operator::controller::recorder::Recorder;

use crate::support;

fn event(reason: &str, note: &str) -> Event {
    Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note.into()),
        action: "Reconcile".into(),
        secondary: None,
    }
}

#[tokio::test]
async fn repeats_count_on_one_event_and_other_reasons_make_new_ones() {
    let client = support::client().await;
    let ns = support::namespace(&client, "events").await;
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "subject"}})).unwrap();
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let reference: ObjectReference = cm.object_ref(&());
    let reporter = Reporter {
        controller: "centralauth-operator".into(),
        instance: Some("events-test".into()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    for _ in 0..3 {
        recorder
            .publish(&event("SecretMissing", "no Secret"), &reference)
            .await
            .unwrap();
    }
    recorder.publish(&event("Ready", "fine"), &reference).await.unwrap();

    let events = Api::<K8sEvent>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let of =
        |reason: &str| -> Vec<&K8sEvent> { events.iter().filter(|e| e.reason.as_deref() == Some(reason)).collect() };
    let missing = of("SecretMissing");
    assert_eq!(missing.len(), 1, "one Event for three occurrences: {events:?}");
    let series = missing[0].series.as_ref().expect("a repeated Event carries a series");
    assert_eq!(series.count, 3);
    assert_eq!(missing[0].note.as_deref(), Some("no Secret"));
    assert_eq!(missing[0].type_.as_deref(), Some("Warning"));
    assert_eq!(missing[0].reporting_instance.as_deref(), Some("events-test"));
    assert_eq!(
        missing[0].regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("subject")
    );
    let ready = of("Ready");
    assert_eq!(ready.len(), 1);
    assert!(ready[0].series.is_none(), "a first occurrence has no series");
}
