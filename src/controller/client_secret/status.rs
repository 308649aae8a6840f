//! Writing a ClientSecret's status, and the Kubernetes Events that go with its transitions.
//!
//! Every write is a JSON merge patch of the status subresource carrying the
//! `metadata.resourceVersion` it was decided from: if anyone changed the object since (another
//! reconcile demoted it, a second operator process), the write fails with 409 and the decision
//! is made again from fresh reads. Nothing is written when nothing changed, so a reconcile that
//! finds its own last write is quiet. Events are published after the write succeeded, one per
//! transition; a Warning when a condition turns to a problem reason.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::secret::Markers;
use super::{ACTIVATED_CONDITION, Error, State};
use crate::crd::condition::{self, READY, Status};
use crate::crd::{ClientSecret, ClientSecretPhase, ClientSecretStatus, FIELD_MANAGER};

/// One condition as decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// True, False or Unknown.
    pub status: Status,
    /// CamelCase reason.
    pub reason: String,
    /// What it means and, when something is wrong, what to do.
    pub message: String,
}

impl Cond {
    /// The condition of `type_` currently on `cs`, if any.
    pub fn current(cs: &ClientSecret, type_: &str) -> Option<Cond> {
        let c = condition::find(&cs.status.as_ref()?.conditions, type_)?;
        let status = match c.status.as_str() {
            "True" => Status::True,
            "False" => Status::False,
            _ => Status::Unknown,
        };
        Some(Cond {
            status,
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
    }

    /// A `True` condition.
    pub fn yes(reason: &str, message: impl Into<String>) -> Cond {
        Cond {
            status: Status::True,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// A `False` condition.
    pub fn no(reason: &str, message: impl Into<String>) -> Cond {
        Cond {
            status: Status::False,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Reasons that are problems a user must act on: they get a Warning event.
const WARNING_REASONS: &[&str] = &[
    "OrganizationNotFound",
    "SecretNameTaken",
    "SecretMissing",
    "SecretModified",
    "FingerprintMismatch",
    "SecretExposed",
    "WorkloadNotFound",
    "CredentialsSecretTaken",
    "NoCredentialsSecret",
    "OrganizationReplaced",
];

/// What the generated secret is, as far as the status shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretFacts {
    /// `sha256:<hex>`.
    pub fingerprint: Option<String>,
    /// argon2id PHC string.
    pub hash: Option<String>,
    /// Name of the Secret holding it.
    pub secret_name: Option<String>,
    /// When it was generated.
    pub generated_at: Option<Time>,
}

/// The decided state of one ClientSecret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Lifecycle phase.
    pub phase: ClientSecretPhase,
    /// Milestones (copied into the status timestamps).
    pub markers: Markers,
    /// The `Ready` condition.
    pub ready: Cond,
    /// The `Activated` condition.
    pub activated: Cond,
}

/// The status `verdict` and `facts` describe, on top of the current one. Facts left `None` keep
/// their current value; timestamps are only ever added.
pub fn desired(cs: &ClientSecret, facts: &SecretFacts, verdict: &Verdict) -> ClientSecretStatus {
    let current = cs.status.clone().unwrap_or_default();
    let generation = cs.metadata.generation;
    let mut conditions = current.conditions.clone();
    for (type_, c) in [(READY, &verdict.ready), (ACTIVATED_CONDITION, &verdict.activated)] {
        condition::set(
            &mut conditions,
            condition::new(type_, c.status, &c.reason, c.message.clone(), generation),
        );
    }
    let time = |t: Option<Timestamp>, cur: Option<Time>| cur.or(t.map(Time));
    ClientSecretStatus {
        observed_generation: generation,
        conditions,
        phase: Some(verdict.phase),
        fingerprint: facts.fingerprint.clone().or(current.fingerprint),
        secret_hash: facts.hash.clone().or(current.secret_hash),
        secret_name: facts.secret_name.clone().or(current.secret_name),
        generated_at: current.generated_at.or(facts.generated_at.clone()),
        activated_at: time(verdict.markers.activated_at, current.activated_at),
        retired_at: time(verdict.markers.retired_at, current.retired_at),
        revoked_at: time(verdict.markers.revoked_at, current.revoked_at),
    }
}

/// Writes the status (if it changed) with a resourceVersion precondition, then publishes the
/// events of the transition. Returns the object as written.
pub async fn write(
    state: &State,
    cs: &ClientSecret,
    facts: &SecretFacts,
    verdict: &Verdict,
) -> Result<ClientSecret, Error> {
    let new = desired(cs, facts, verdict);
    if cs.status.as_ref() == Some(&new) {
        return Ok(cs.clone());
    }
    let ns = cs.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<ClientSecret> = Api::namespaced(state.ctx.client.clone(), &ns);
    let patch = json!({
        "metadata": {"resourceVersion": cs.resource_version()},
        "status": changed_fields(cs.status.as_ref(), &new),
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    let written = match api.patch_status(&cs.name_any(), &params, &Patch::Merge(&patch)).await {
        Ok(written) => written,
        Err(kube::Error::Api(s)) if s.is_conflict() => {
            return Err(Error::Conflict(format!("ClientSecret {}/{}", ns, cs.name_any())));
        }
        Err(e) => return Err(e.into()),
    };
    publish_transition(state, cs, &written);
    state.own.wrote(cs, &written);
    Ok(written)
}

/// The top-level status fields that differ between `current` and `new`, as a JSON merge patch
/// (a field that disappeared is `null`): an activation or demotion sends its phase, conditions
/// and timestamps, not the hash and fingerprint again. Valid because the patch carries the
/// resourceVersion `current` was read at.
fn changed_fields(current: Option<&ClientSecretStatus>, new: &ClientSecretStatus) -> serde_json::Value {
    let to_map = |s: Option<&ClientSecretStatus>| match s.map(serde_json::to_value) {
        Some(Ok(serde_json::Value::Object(map))) => map,
        _ => serde_json::Map::new(),
    };
    let (old, new) = (to_map(current), to_map(Some(new)));
    let mut patch: serde_json::Map<String, serde_json::Value> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for gone in old.keys().filter(|k| !new.contains_key(*k)) {
        patch.insert(gone.clone(), serde_json::Value::Null);
    }
    serde_json::Value::Object(patch)
}

/// The events between the `before` and `after` versions of one ClientSecret.
pub fn transition_events(before: &ClientSecret, after: &ClientSecret) -> Vec<Event> {
    let (old, new) = (
        before.status.clone().unwrap_or_default(),
        after.status.clone().unwrap_or_default(),
    );
    let mut events = vec![];
    let activated = condition::find(&new.conditions, ACTIVATED_CONDITION);
    let note = |c: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>| c.map(|c| c.message.clone());
    if old.fingerprint.is_none() && new.fingerprint.is_some() {
        events.push(normal(
            "Generated",
            "Generate",
            format!(
                "the client secret (fingerprint {}) is in Secret {}",
                new.fingerprint.as_deref().unwrap_or_default(),
                new.secret_name.as_deref().unwrap_or_default()
            ),
        ));
    }
    if old.phase != new.phase
        && new.phase.is_some()
        && (old.phase.is_some() || new.phase != Some(ClientSecretPhase::Pending))
    {
        let (reason, action) = match new.phase {
            Some(ClientSecretPhase::Active) => ("Activated", "Activate"),
            Some(ClientSecretPhase::Retiring) => ("Retiring", "Retire"),
            Some(ClientSecretPhase::Revoked) => ("Revoked", "Revoke"),
            _ => ("Pending", "Reconcile"),
        };
        events.push(normal(reason, action, note(activated).unwrap_or_default()));
    }
    for type_ in [READY, ACTIVATED_CONDITION] {
        let (Some(c), old_c) = (
            condition::find(&new.conditions, type_),
            condition::find(&old.conditions, type_),
        ) else {
            continue;
        };
        let is_new = old_c.is_none_or(|o| o.reason != c.reason);
        if is_new && c.status != "True" && WARNING_REASONS.contains(&c.reason.as_str()) {
            events.push(Event {
                type_: EventType::Warning,
                reason: c.reason.clone(),
                note: Some(c.message.clone()),
                action: "Reconcile".into(),
                secondary: None,
            });
        }
    }
    events
}

fn normal(reason: &str, action: &str, note: String) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    }
}

fn publish_transition(state: &State, before: &ClientSecret, after: &ClientSecret) {
    let reference = after.object_ref(&());
    for event in transition_events(before, after) {
        state.ctx.recorder.send(&event, &reference);
    }
}

/// Publishes one event about any object (e.g. the Organization), logging failures.
pub fn publish<K: Resource<DynamicType = ()>>(state: &State, obj: &K, event: Event) {
    state.ctx.recorder.send(&event, &obj.object_ref(&()));
}

/// The secret facts of a ClientSecret's own Secret.
pub fn facts_of(fingerprint: &str, hash: &str, secret: Option<&Secret>, secret_name: &str) -> SecretFacts {
    SecretFacts {
        fingerprint: Some(fingerprint.to_string()),
        hash: Some(hash.to_string()),
        secret_name: Some(secret_name.to_string()),
        generated_at: secret.and_then(|s| s.metadata.creation_timestamp.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(status: Option<ClientSecretStatus>) -> ClientSecret {
        let mut cs: ClientSecret = serde_json::from_value(json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret",
            "metadata": {"name": "gen-1", "namespace": "ns", "uid": "u", "generation": 2},
            "spec": {"organizationRef": {"name": "acme"}}
        }))
        .unwrap();
        cs.status = status;
        cs
    }

    fn verdict(phase: ClientSecretPhase, reason: &'static str) -> Verdict {
        Verdict {
            phase,
            markers: Markers::default(),
            ready: Cond::yes("SecretGenerated", "ok"),
            activated: Cond::no(reason, "why"),
        }
    }

    fn facts() -> SecretFacts {
        SecretFacts {
            fingerprint: Some("sha256:ab".into()),
            hash: Some("$argon2id$x".into()),
            secret_name: Some("gen-1".into()),
            generated_at: None,
        }
    }

    #[test]
    fn a_repeated_decision_changes_nothing() {
        let first = cs(None);
        let status = desired(
            &first,
            &facts(),
            &verdict(ClientSecretPhase::Pending, "WaitingForActivation"),
        );
        let second = cs(Some(status.clone()));
        assert_eq!(
            desired(
                &second,
                &SecretFacts::default(),
                &verdict(ClientSecretPhase::Pending, "WaitingForActivation")
            ),
            status
        );
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(status.fingerprint.as_deref(), Some("sha256:ab"));
    }

    #[test]
    fn a_status_write_sends_only_the_fields_that_changed() {
        let pending = desired(
            &cs(None),
            &facts(),
            &verdict(ClientSecretPhase::Pending, "WaitingForActivation"),
        );
        let first = changed_fields(None, &pending);
        assert!(first.get("secretHash").is_some() && first.get("fingerprint").is_some());
        let mut active = pending.clone();
        active.phase = Some(ClientSecretPhase::Active);
        let patch = changed_fields(Some(&pending), &active);
        assert_eq!(patch, json!({"phase": "Active"}));
        let mut wiped = active.clone();
        wiped.secret_name = None;
        assert_eq!(changed_fields(Some(&active), &wiped), json!({"secretName": null}));
    }

    #[test]
    fn transitions_produce_one_event_each_and_warnings_for_problems() {
        let before = cs(None);
        let after = cs(Some(desired(
            &before,
            &facts(),
            &verdict(ClientSecretPhase::Pending, "FingerprintMismatch"),
        )));
        let reasons: Vec<String> = transition_events(&before, &after)
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons, ["Generated", "FingerprintMismatch"]);
        let active = cs(Some(desired(
            &after,
            &facts(),
            &verdict(ClientSecretPhase::Active, "Active"),
        )));
        let reasons: Vec<String> = transition_events(&after, &active)
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons, ["Activated"]);
        assert!(transition_events(&active, &active).is_empty());
    }
}
