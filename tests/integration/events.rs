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

/// A namespace named after `prefix` with a ConfigMap `subject` to publish about, and a recorder
/// reporting as instance `<prefix>-test`.
async fn subject(prefix: &str) -> (kube::Client, String, ObjectReference, Recorder) {
    let client = support::client().await;
    let ns = support::namespace(&client, prefix).await;
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "subject"}})).unwrap();
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let reporter = Reporter {
        controller: "centralauth-operator".into(),
        instance: Some(format!("{prefix}-test")),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    (client, ns, cm.object_ref(&()), recorder)
}

#[tokio::test]
async fn repeats_count_on_one_event_and_other_reasons_make_new_ones() {
    let (client, ns, reference, recorder) = subject("events").await;
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

/// The path the controllers use: `send` queues the writes and returns at once; the background
/// writer writes them in order (the create before the repeats that patch it), so the series
/// still counts 3.
#[tokio::test]
async fn queued_events_are_written_in_order() {
    let (client, ns, reference, recorder) = subject("events-queued").await;
    for _ in 0..3 {
        recorder.send(&event("SecretMissing", "no Secret"), &reference);
    }
    recorder.send(&event("Ready", "fine"), &reference);

    let api = Api::<K8sEvent>::namespaced(client.clone(), &ns);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let events = api.list(&ListParams::default()).await.unwrap().items;
        let count = |reason: &str| events.iter().filter(|e| e.reason.as_deref() == Some(reason)).count();
        let series = events
            .iter()
            .find(|e| e.reason.as_deref() == Some("SecretMissing"))
            .and_then(|e| e.series.as_ref().map(|s| s.count));
        if count("SecretMissing") == 1 && series == Some(3) && count("Ready") == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queued Events were not written as one series of 3 and one Ready within 30 s: {events:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
