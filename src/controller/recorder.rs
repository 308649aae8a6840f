//! Kubernetes Events (`events.k8s.io/v1`), with repeats counted as a series, in bounded memory.
//!
//! kube's `Recorder` remembers every Event it published, whole, for six minutes, and scans all
//! of them on each publish: creating 10,000 tenants kept tens of thousands of Event objects in
//! memory and made each publish cost a pass over them. This recorder publishes the same
//! Events (same fields, same name scheme, same series semantics: the same type, action and
//! reason on the same object within [`SERIES_WINDOW`] bumps `series.count` of the first Event
//! instead of creating another), but remembers only the name, count and time of each, at most
//! [`MAX_REMEMBERED`] of them: when full, expired entries are dropped in one pass, and if none
//! expired everything is forgotten (a repeat then starts a new Event — a display detail, never
//! a lost Event).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use serde_json::json;

/// How long a repeat joins the series of an earlier Event (kube's and client-go's choice).
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);
/// How many published Events are remembered for series at most.
pub const MAX_REMEMBERED: usize = 4096;

/// What is remembered of a published Event.
#[derive(Clone)]
struct Seen {
    name: String,
    count: i32,
    last: Timestamp,
}

/// Publishes Events as one controller instance (see the module documentation).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
}

/// What one publish does: create a new Event, or count a repeat of an earlier one.
enum Step {
    Create(Box<K8sEvent>),
    Repeat(Seen),
}

impl Recorder {
    /// A recorder reporting as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Recorder {
        Recorder {
            client,
            reporter,
            seen: Arc::default(),
        }
    }

    /// Publishes `ev` about `regarding` (in its namespace, `default` for cluster objects).
    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        match self.step(ev, regarding, now) {
            Step::Create(event) => api.create(&PostParams::default(), &event).await.map(drop),
            Step::Repeat(seen) => {
                let series = EventSeries {
                    count: seen.count,
                    last_observed_time: MicroTime(now),
                };
                let patch = Patch::Merge(json!({ "series": series }));
                api.patch(&seen.name, &PatchParams::default(), &patch).await.map(drop)
            }
        }
    }

    /// Decides what to publish and remembers it.
    fn step(&self, ev: &Event, regarding: &ObjectReference, now: Timestamp) -> Step {
        let key = key_of(ev, regarding);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(earlier) = seen.get_mut(&key).filter(|s| s.last + SERIES_WINDOW > now) {
            earlier.count += 1;
            earlier.last = now;
            return Step::Repeat(earlier.clone());
        }
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, s| s.last + SERIES_WINDOW > now);
            if seen.len() >= MAX_REMEMBERED {
                seen.clear();
            }
        }
        let event = self.event(ev, regarding, now);
        let name = event.metadata.name.clone().unwrap_or_default();
        seen.insert(
            key,
            Seen {
                name,
                count: 1,
                last: now,
            },
        );
        Step::Create(Box::new(event))
    }

    /// The Event object for a first occurrence.
    fn event(&self, ev: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let controller = &self.reporter.controller;
        let prefix = regarding.name.as_ref().unwrap_or(controller);
        K8sEvent {
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!("{prefix}.{:x}", now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            note: ev.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(self.reporter.instance.clone().unwrap_or_else(|| controller.clone())),
            type_: Some(type_name(ev.type_).into()),
            ..K8sEvent::default()
        }
    }
}

/// What makes two Events one series: type, action, reason, the object (by UID, so a deleted
/// and recreated object starts anew) and the related object.
fn key_of(ev: &Event, regarding: &ObjectReference) -> String {
    let object = |r: &ObjectReference| {
        let field = |f: &Option<String>| f.clone().unwrap_or_default();
        format!(
            "{}/{}/{}/{}",
            field(&r.kind),
            field(&r.namespace),
            field(&r.name),
            field(&r.uid)
        )
    };
    let related = ev.secondary.as_ref().map(object).unwrap_or_default();
    format!(
        "{}\n{}\n{}\n{}\n{related}",
        type_name(ev.type_),
        ev.action,
        ev.reason,
        object(regarding)
    )
}

fn type_name(t: EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> Recorder {
        // A client that is never called: `step` makes no API calls.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let reporter = Reporter {
            controller: "centralauth-operator".into(),
            instance: Some("pod-1".into()),
        };
        Recorder::new(client, reporter)
    }

    fn object(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("ClientSecret".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    fn event(reason: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some("a note".into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    #[tokio::test]
    async fn a_repeat_within_the_window_counts_on_the_first_event() {
        let r = recorder();
        let t0 = Timestamp::now();
        let Step::Create(first) = r.step(&event("Activated"), &object("a"), t0) else {
            panic!("the first occurrence must create an Event")
        };
        assert_eq!(first.reporting_instance.as_deref(), Some("pod-1"));
        assert_eq!(first.regarding.as_ref().and_then(|o| o.name.as_deref()), Some("a"));
        let later = t0 + SignedDuration::from_secs(60);
        let Step::Repeat(seen) = r.step(&event("Activated"), &object("a"), later) else {
            panic!("a repeat must join the series")
        };
        assert_eq!(
            (seen.name.as_str(), seen.count),
            (first.metadata.name.as_deref().unwrap(), 2)
        );
        // Another reason, another object, or after the window: a new Event.
        assert!(matches!(
            r.step(&event("Revoked"), &object("a"), later),
            Step::Create(_)
        ));
        assert!(matches!(
            r.step(&event("Activated"), &object("b"), later),
            Step::Create(_)
        ));
        let much_later = later + SERIES_WINDOW;
        assert!(matches!(
            r.step(&event("Activated"), &object("a"), much_later),
            Step::Create(_)
        ));
    }

    #[tokio::test]
    async fn memory_stays_bounded() {
        let r = recorder();
        let now = Timestamp::now();
        for i in 0..(MAX_REMEMBERED * 3) {
            r.step(&event("Created"), &object(&format!("o{i}")), now);
        }
        assert!(r.seen.lock().unwrap().len() <= MAX_REMEMBERED);
    }
}
