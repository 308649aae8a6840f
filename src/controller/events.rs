//! Publishing Kubernetes Events about the objects the controllers reconcile.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::runtime::events::{Event, EventType};

use super::Context;
use crate::crd::condition::Status;

/// Queues an Event on `obj` (see [`super::recorder::Recorder::send`]); a failed write is logged,
/// never fatal (events are best effort).
/// `note` is cut to the API's 1 kB limit.
pub fn publish<K: Resource<DynamicType = ()>>(ctx: &Context, obj: &K, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    ctx.recorder.send(&event, &obj.object_ref(&()));
}

/// Publishes the new state of a condition: a Warning when it is `False`, else Normal.
pub fn publish_condition<K: Resource<DynamicType = ()>>(ctx: &Context, obj: &K, condition: &Condition) {
    let type_ = if condition.status == Status::False.as_str() {
        EventType::Warning
    } else {
        EventType::Normal
    };
    publish(ctx, obj, type_, &condition.reason, &condition.message);
}
