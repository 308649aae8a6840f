//! The activation record (the Organization's `status.activeSecret`) and the steps around it:
//! switching it, completing an activation, demoting the secrets it replaced, clearing it.
//!
//! Order of an activation, so a crash anywhere is recovered by the next reconcile:
//! 1. switch the record (server-side apply of the status subresource as
//!    [`ACTIVATION_MANAGER`], with the resourceVersion that was read: a concurrent change fails
//!    with 409 and the step is decided again);
//! 2. switch the credentials Secret (`Immediate`, `Manual`; `OnRollout` with stamping did it
//!    before stamping);
//! 3. demote the secret the record named before, and every other secret of the organization
//!    whose status still says Active;
//! 4. mark this one Active (marker on its Secret, then its status).
//!
//! After a crash between 1 and 4 the record names this secret, so its next reconcile runs 2–4
//! again (each idempotent). The one named before 1 is then found by its Active status.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::credentials::{self, Mode, Outcome};
use super::generated::Generated;
use super::lifecycle::{self, Demotion, Named};
use super::secret::{Markers, owned_by};
use super::status::{self, Cond, SecretFacts, Verdict};
use super::{Error, ORG_ACTIVE_SECRET_CONDITION, State};
use crate::crd::condition::{self, READY};
use crate::crd::{ACTIVATION_MANAGER, ActivationMode, ActiveSecretRef, ClientSecret, ClientSecretPhase, Organization};

/// How many times a step is re-decided after a conflicting write before the reconcile gives up
/// (and is retried shortly).
const ATTEMPTS: usize = 5;

/// Whom the record of `org` names, relative to `cs`.
pub fn named(org: &Organization, cs: &ClientSecret) -> Named {
    match org.active_secret() {
        None => Named::Nobody,
        Some(a) if Some(&a.name) == cs.metadata.name.as_ref() && a.uid == cs.metadata.uid => Named::Me,
        Some(_) => Named::Other,
    }
}

/// The organization's grace period for replaced secrets (`0s` when unparseable: the schema
/// refuses malformed values, so this only guards against a schema bypass — and fails closed).
pub fn grace(org: &Organization) -> std::time::Duration {
    lifecycle::parse_grace(&org.spec.secret_rotation.previous_secret_grace_period).unwrap_or_default()
}

fn orgs(state: &State, org: &Organization) -> Api<Organization> {
    Api::namespaced(state.ctx.client.clone(), &org.namespace().unwrap_or_default())
}

fn client_secrets(state: &State, ns: &str) -> Api<ClientSecret> {
    Api::namespaced(state.ctx.client.clone(), ns)
}

/// Writes the record of `org`: `Some` names a secret, `None` clears it. Fails with
/// [`Error::Conflict`] when `org` is not the latest version.
pub async fn write_record(
    state: &State,
    org: &Organization,
    record: Option<&ActiveSecretRef>,
    cond: &Cond,
) -> Result<Organization, Error> {
    let api = orgs(state, org);
    let name = org.name_any();
    let mut conditions = org.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    condition::set(
        &mut conditions,
        condition::new(
            ORG_ACTIVE_SECRET_CONDITION,
            cond.status,
            &cond.reason,
            cond.message.clone(),
            org.metadata.generation,
        ),
    );
    let ours = condition::find(&conditions, ORG_ACTIVE_SECRET_CONDITION).cloned();
    let mut status = json!({"conditions": [ours]});
    if let Some(record) = record {
        status["activeSecret"] = json!(record);
    }
    let patch = json!({
        "apiVersion": Organization::api_version(&()),
        "kind": Organization::kind(&()),
        "metadata": {"name": name, "resourceVersion": org.resource_version()},
        "status": status,
    });
    let params = PatchParams::apply(ACTIVATION_MANAGER).force();
    let written = conflict_aware(api.patch_status(&name, &params, &Patch::Apply(&patch)).await, &name)?;
    if record.is_some() || written.active_secret().is_none() {
        return Ok(written);
    }
    // Another field manager co-owns `activeSecret`, so leaving it out of the apply did not
    // remove it: remove it explicitly, still conditional on the version just written.
    let null = json!({"metadata": {"resourceVersion": written.resource_version()}, "status": {"activeSecret": null}});
    let params = PatchParams {
        field_manager: Some(ACTIVATION_MANAGER.to_string()),
        ..Default::default()
    };
    conflict_aware(api.patch_status(&name, &params, &Patch::Merge(&null)).await, &name)
}

fn conflict_aware<T>(result: kube::Result<T>, name: &str) -> Result<T, Error> {
    match result {
        Err(kube::Error::Api(s)) if s.is_conflict() => Err(Error::Conflict(format!("Organization {name}"))),
        other => Ok(other?),
    }
}

/// The record entry naming `cs`.
pub fn record_for(cs: &ClientSecret, fingerprint: &str, activated_at: Timestamp) -> ActiveSecretRef {
    ActiveSecretRef {
        name: cs.name_any(),
        uid: cs.metadata.uid.clone(),
        fingerprint: fingerprint.to_string(),
        activated_at: Some(Time(activated_at)),
    }
}

fn activated_cond(cs: &ClientSecret, fingerprint: &str) -> Cond {
    Cond::yes(
        "Activated",
        format!("ClientSecret {} ({fingerprint}) is the active secret", cs.name_any()),
    )
}

/// Activates a Pending `cs`: switches the record from whatever it names to `cs`, then
/// completes the activation.
pub async fn activate(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    generated: &Generated,
) -> Result<Verdict, Error> {
    let mut org = org.clone();
    for _ in 0..ATTEMPTS {
        let prev = org.active_secret().cloned();
        let record = record_for(cs, &generated.fingerprint, lifecycle::now());
        match write_record(state, &org, Some(&record), &activated_cond(cs, &generated.fingerprint)).await {
            Ok(written) => return complete(state, cs, &written, generated, prev).await,
            Err(Error::Conflict(_)) => org = refetch_same_record(state, &org).await?,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Conflict(format!("Organization {}", org.name_any())))
}

/// The Organization again after a lost write, to retry on — unless another activation changed
/// its record meanwhile: the caller decided on the old record (e.g. that no newer secret is
/// active), so the reconcile must decide again rather than overwrite the new one.
async fn refetch_same_record(state: &State, org: &Organization) -> Result<Organization, Error> {
    let fresh = refetch(state, org).await?;
    let id = |o: &Organization| o.active_secret().map(|a| (a.name.clone(), a.uid.clone()));
    if id(&fresh) != id(org) {
        return Err(Error::Conflict(format!(
            "the active secret of Organization {}",
            org.name_any()
        )));
    }
    Ok(fresh)
}

/// Records `cs` again in an empty record (its status says Active: the Organization's status was
/// wiped, or a record naming a revoked secret was cleared), keeping its activation time.
pub async fn reclaim(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    generated: &Generated,
) -> Result<Verdict, Error> {
    let since = generated.markers.activated_at.unwrap_or_else(lifecycle::now);
    let record = record_for(cs, &generated.fingerprint, since);
    let written = write_record(state, org, Some(&record), &activated_cond(cs, &generated.fingerprint)).await?;
    publish_org(
        state,
        &written,
        EventType::Normal,
        "ActiveSecretRecorded",
        format!(
            "the activation record was empty; ClientSecret {} (whose status says Active) is recorded again",
            cs.name_any()
        ),
    );
    complete(state, cs, &written, generated, None).await
}

async fn refetch(state: &State, org: &Organization) -> Result<Organization, Error> {
    orgs(state, org)
        .get_opt(&org.name_any())
        .await?
        .ok_or_else(|| Error::Conflict(format!("Organization {} (deleted meanwhile)", org.name_any())))
}

/// Steps 2–4 for the secret the record names. `prev` is what the record named before, when known.
pub async fn complete(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    generated: &Generated,
    prev: Option<ActiveSecretRef>,
) -> Result<Verdict, Error> {
    let creds = match &generated.secret {
        Some(source) => {
            let mode = if cs.phase() == ClientSecretPhase::Active {
                Mode::Keep
            } else {
                Mode::Switch
            };
            credentials::ensure(&state.ctx.client, org, source, mode).await?
        }
        None => Outcome::NotConfigured,
    };
    let me = cs.name_any();
    let on_rollout = cs.spec.activation == ActivationMode::OnRollout;
    if let Some(prev) = prev.filter(|p| p.name != me) {
        demote_named(state, org, &prev.name, prev.uid.as_deref(), &me, on_rollout).await?;
    }
    for other in still_active_others(state, cs) {
        demote_named(
            state,
            org,
            &other.name_any(),
            other.metadata.uid.as_deref(),
            &me,
            on_rollout,
        )
        .await?;
    }
    let since = generated
        .markers
        .activated_at
        .or_else(|| org.active_secret().and_then(|a| a.activated_at.as_ref()).map(|t| t.0))
        .unwrap_or_else(lifecycle::now);
    let markers = Markers {
        activated_at: Some(since),
        ..generated.markers.clone()
    };
    generated.record_markers(state, cs, &markers).await?;
    Ok(Verdict {
        phase: ClientSecretPhase::Active,
        markers,
        ready: credentials_ready(org, &creds).unwrap_or_else(|| generated.ready()),
        activated: Cond::yes(
            "Active",
            format!("the active secret of Organization {} since {since}", org.name_any()),
        ),
    })
}

/// A `Ready=False` condition when the credentials Secret could not be written.
pub fn credentials_ready(org: &Organization, outcome: &Outcome) -> Option<Cond> {
    match outcome {
        Outcome::Foreign(name) => Some(Cond::no(
            "CredentialsSecretTaken",
            format!(
                "Secret {name} (spec.credentialsSecretName of Organization {}) exists and is not owned by the operator, so it was not overwritten: delete it or choose another credentialsSecretName",
                org.name_any()
            ),
        )),
        _ => None,
    }
}

/// Other secrets of the same organization whose status (in the cache) still says Active.
fn still_active_others(state: &State, cs: &ClientSecret) -> Vec<std::sync::Arc<ClientSecret>> {
    let mut others = state.siblings(cs);
    others.retain(|o| o.phase() == ClientSecretPhase::Active);
    others
}

/// Demotes the ClientSecret `name` (if it still exists with `uid` and is not demoted yet),
/// re-reading it on conflicts.
pub async fn demote_named(
    state: &State,
    org: &Organization,
    name: &str,
    uid: Option<&str>,
    successor: &str,
    successor_on_rollout: bool,
) -> Result<(), Error> {
    let ns = org.namespace().unwrap_or_default();
    let api = client_secrets(state, &ns);
    // The first attempt starts from the cached copy: its status write carries the version read,
    // so a stale copy costs a conflict and a fresh read, and a current one saves the read.
    let mut cached = state.store.get(&ObjectRef::new(name).within(&ns));
    for _ in 0..ATTEMPTS {
        let target = match cached.take() {
            Some(target) => Some((*target).clone()),
            None => api.get_opt(name).await?,
        };
        let Some(target) = target else {
            return Ok(());
        };
        let demoted = matches!(target.phase(), ClientSecretPhase::Retiring | ClientSecretPhase::Revoked);
        if target.metadata.uid.as_deref() != uid || demoted {
            return Ok(());
        }
        match demote(state, &target, org, successor, successor_on_rollout).await {
            // A conflict, or a cached copy of an object deleted meanwhile: decide on a fresh read.
            Err(Error::Conflict(_)) => continue,
            Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 => continue,
            other => return other,
        }
    }
    Err(Error::Conflict(format!("ClientSecret {name}")))
}

/// Moves `target` (the latest version) to Retiring or Revoked because `successor` replaced it.
pub async fn demote(
    state: &State,
    target: &ClientSecret,
    org: &Organization,
    successor: &str,
    successor_on_rollout: bool,
) -> Result<(), Error> {
    let grace = grace(org);
    let now = lifecycle::now();
    let secret = target_secret_meta(state, target).await?;
    let current = target_markers(target, secret.as_ref());
    let retired_at = current.retired_at.unwrap_or(now);
    let demotion = lifecycle::demotion(grace, successor_on_rollout);
    let markers = Markers {
        retired_at: Some(retired_at),
        revoked_at: match demotion {
            Demotion::Revoke => Some(current.revoked_at.unwrap_or(now)),
            Demotion::Retire => current.revoked_at,
        },
        ..current
    };
    write_target_markers(state, target, secret.as_ref(), &markers).await?;
    let (phase, message) = match demotion {
        Demotion::Revoke => (
            ClientSecretPhase::Revoked,
            format!(
                "replaced by ClientSecret {successor} at {retired_at} and no longer accepted (grace period {})",
                org.spec.secret_rotation.previous_secret_grace_period
            ),
        ),
        Demotion::Retire => (
            ClientSecretPhase::Retiring,
            format!(
                "replaced by ClientSecret {successor}; {}",
                retiring_message(retired_at, grace, Some(successor).filter(|_| successor_on_rollout))
            ),
        ),
    };
    let verdict = Verdict {
        phase,
        markers,
        ready: Cond::current(target, READY).unwrap_or_else(|| Cond::yes("SecretGenerated", "the secret was generated")),
        activated: Cond::no(
            if phase == ClientSecretPhase::Revoked {
                "Revoked"
            } else {
                "Retiring"
            },
            message,
        ),
    };
    status::write(state, target, &SecretFacts::default(), &verdict).await?;
    Ok(())
}

/// The Activated message of a Retiring secret: since when, until when, and — when the active
/// secret was activated by a rollout — whose workloads it waits for.
pub fn retiring_message(retired_at: Timestamp, grace: std::time::Duration, rollout_of: Option<&str>) -> String {
    let until = lifecycle::deadline(retired_at, grace);
    let rollout = rollout_of
        .map(|name| format!(" and until the workloads of the active ClientSecret {name} finished rolling out"))
        .unwrap_or_default();
    format!("retiring since {retired_at}; still accepted until {until}{rollout}")
}

/// The markers of another ClientSecret: its status timestamps, else the annotations of its
/// Secret (`secret`, its metadata as read).
fn target_markers(target: &ClientSecret, secret: Option<&PartialObjectMeta<Secret>>) -> Markers {
    let from_status = status_markers(target);
    match secret {
        Some(meta) => from_status.or(&Markers::from_meta(&meta.metadata)),
        None => from_status,
    }
}

/// The timestamps in a ClientSecret's status, as markers.
pub fn status_markers(cs: &ClientSecret) -> Markers {
    let s = cs.status.clone().unwrap_or_default();
    Markers {
        activated_at: s.activated_at.map(|t| t.0),
        retired_at: s.retired_at.map(|t| t.0),
        revoked_at: s.revoked_at.map(|t| t.0),
    }
}

async fn target_secret_meta(state: &State, target: &ClientSecret) -> Result<Option<PartialObjectMeta<Secret>>, Error> {
    let api: Api<PartialObjectMeta<Secret>> =
        Api::namespaced(state.ctx.client.clone(), &target.namespace().unwrap_or_default());
    let meta = api.get_opt(&target.secret_name()).await?;
    Ok(meta.filter(|m| owned_by(&m.metadata, target.metadata.uid.as_deref())))
}

/// Adds the markers the target's Secret (`secret`, its metadata as read for the same decision)
/// does not carry yet.
async fn write_target_markers(
    state: &State,
    target: &ClientSecret,
    secret: Option<&PartialObjectMeta<Secret>>,
    markers: &Markers,
) -> Result<(), Error> {
    let Some(meta) = secret else {
        return Ok(());
    };
    if let Some(patch) = markers.patch_missing(&meta.metadata) {
        let api: Api<Secret> = Api::namespaced(state.ctx.client.clone(), &target.namespace().unwrap_or_default());
        api.patch(&target.secret_name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

/// Clears the record of `org` if it names the ClientSecret `name`/`uid`, with the Organization
/// condition `ActiveSecret=False` and `reason`; re-reads on conflicts.
pub async fn clear_record(
    state: &State,
    org: &Organization,
    name: &str,
    uid: Option<&str>,
    reason: &str,
    message: &str,
) -> Result<(), Error> {
    let mut org = org.clone();
    for _ in 0..ATTEMPTS {
        let names_it = org
            .active_secret()
            .is_some_and(|a| a.name == name && a.uid.as_deref() == uid);
        if !names_it {
            return Ok(());
        }
        match write_record(state, &org, None, &Cond::no(reason, message)).await {
            Ok(_) => {
                publish_org(state, &org, EventType::Warning, reason, message.to_string());
                return Ok(());
            }
            Err(Error::Conflict(_)) => org = refetch(state, &org).await?,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Conflict(format!("Organization {}", org.name_any())))
}

fn publish_org(state: &State, org: &Organization, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: "Activate".into(),
        secondary: None,
    };
    status::publish(state, org, event);
}
