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
//!
//! Publishing never waits for the API server: [`Recorder::send`] decides the Event (create or
//! count a repeat) and queues the write for one of [`WRITERS`] background writers, chosen by the
//! object, so the Events of one object are written in order (a repeat's patch after the create
//! it counts on). A reconcile used to wait for each Event it published: one more round trip
//! between, say, demoting the old secret and marking the new one Active. At most
//! [`QUEUE_PER_WRITER`] writes wait per writer; beyond that an Event is dropped and logged, as
//! client-go's broadcaster does — an Event is worth neither blocking a reconcile nor unbounded
//! memory. Events queued when the process ends are lost, as with client-go.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use serde_json::json;
use tokio::sync::mpsc;

/// How long a repeat joins the series of an earlier Event (kube's and client-go's choice).
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);
/// How many published Events are remembered for series at most.
pub const MAX_REMEMBERED: usize = 4096;
/// How many background writers write Events (each in order, for the objects it is given).
pub const WRITERS: usize = 4;
/// How many Event writes may wait per writer before further Events are dropped.
pub const QUEUE_PER_WRITER: usize = 512;

/// At most one "Events were dropped" line per this period.
pub const DROP_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Events dropped since the last line that reported drops, and when that line was written.
#[derive(Default)]
struct Dropped {
    since_logged: u64,
    logged_at: Option<std::time::Instant>,
}

impl Dropped {
    /// Counts one drop; returns the count to report when a line is due.
    fn count(&mut self, now: std::time::Instant) -> Option<u64> {
        self.since_logged += 1;
        if self.logged_at.is_some_and(|at| now.duration_since(at) < DROP_LOG_EVERY) {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.since_logged))
    }
}

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
    /// The writers' queues, started on the first Event.
    writers: Arc<OnceLock<Vec<mpsc::Sender<Write>>>>,
    /// Dropped Events not reported yet.
    dropped: Arc<Mutex<Dropped>>,
}

/// A queued Event write.
struct Write {
    namespace: String,
    step: Step,
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
            writers: Arc::default(),
            dropped: Arc::default(),
        }
    }

    /// Queues `ev` about `regarding` (in its namespace, `default` for cluster objects) for a
    /// background writer and returns at once; a failed write is logged by the writer. Must be
    /// called on the tokio runtime (the first call starts the writers).
    pub fn send(&self, ev: &Event, regarding: &ObjectReference) {
        let write = Write {
            namespace: regarding.namespace.clone().unwrap_or_else(|| "default".into()),
            step: self.step(ev, regarding, Timestamp::now()),
        };
        let writers = self.writers.get_or_init(|| start_writers(&self.client));
        if let Err(full) = writers[writer_of(regarding)].try_send(write) {
            if matches!(full.into_inner().step, Step::Create(_)) {
                // Never written: a repeat must create the Event, not count on one that is not there.
                self.forget(ev, regarding);
            }
            let due = self
                .dropped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .count(std::time::Instant::now());
            if let Some(dropped) = due {
                tracing::warn!(dropped, reason = %ev.reason, "too many Events are waiting to be written; dropped some");
            }
        }
    }

    /// Publishes `ev` about `regarding` (in its namespace, `default` for cluster objects) and
    /// waits for the API server: for callers that must know the Event was written. Controllers
    /// use [`Recorder::send`].
    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let write = Write {
            namespace: regarding.namespace.clone().unwrap_or_else(|| "default".into()),
            step: self.step(ev, regarding, Timestamp::now()),
        };
        write.run(&self.client).await
    }

    fn forget(&self, ev: &Event, regarding: &ObjectReference) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.remove(&key_of(ev, regarding));
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

impl Write {
    async fn run(self, client: &Client) -> Result<(), kube::Error> {
        let api: Api<K8sEvent> = Api::namespaced(client.clone(), &self.namespace);
        match self.step {
            Step::Create(event) => api.create(&PostParams::default(), &event).await.map(drop),
            Step::Repeat(seen) => {
                let series = EventSeries {
                    count: seen.count,
                    last_observed_time: MicroTime(seen.last),
                };
                let patch = Patch::Merge(json!({ "series": series }));
                api.patch(&seen.name, &PatchParams::default(), &patch).await.map(drop)
            }
        }
    }
}

/// Starts the background writers; each ends when every [`Recorder`] sharing it is gone.
fn start_writers(client: &Client) -> Vec<mpsc::Sender<Write>> {
    (0..WRITERS)
        .map(|_| {
            let (tx, mut rx) = mpsc::channel::<Write>(QUEUE_PER_WRITER);
            let client = client.clone();
            tokio::spawn(async move {
                while let Some(write) = rx.recv().await {
                    if let Err(err) = write.run(&client).await {
                        tracing::warn!(error = %err, "cannot publish an event");
                    }
                }
            });
            tx
        })
        .collect()
}

/// The writer of the Events about `regarding`: always the same one, so they are written in order.
fn writer_of(regarding: &ObjectReference) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&regarding.uid, &regarding.namespace, &regarding.name).hash(&mut h);
    (h.finish() % WRITERS as u64) as usize
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

    #[test]
    fn drops_are_reported_once_per_period_with_their_count() {
        let t0 = std::time::Instant::now();
        let mut dropped = Dropped::default();
        assert_eq!(dropped.count(t0), Some(1), "the first drop is reported at once");
        for i in 1..1000 {
            assert_eq!(dropped.count(t0 + std::time::Duration::from_millis(i)), None);
        }
        assert_eq!(dropped.count(t0 + DROP_LOG_EVERY), Some(1000));
    }

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
    async fn a_dropped_first_event_is_created_by_its_repeat() {
        // Single-threaded: the writers cannot drain the queue before this test yields.
        let r = recorder();
        for i in 0..QUEUE_PER_WRITER {
            r.send(&event(&format!("Filler{i}")), &object("a"));
        }
        r.send(&event("Activated"), &object("a"));
        let Step::Create(_) = r.step(&event("Activated"), &object("a"), Timestamp::now()) else {
            panic!("the first Event was never written: its repeat must create it, not patch it")
        };
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
