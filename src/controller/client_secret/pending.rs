//! A Pending secret: whether (and how) its activation mode asks for activation now.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};

use super::activate;
use super::credentials::{self, Outcome};
use super::generate::fingerprint;
use super::generated::{Generated, Stepped};
use super::retire::revoke;
use super::rollout::{self, Observed};
use super::secret::{Markers, owned_by};
use super::status::{self, Cond, Verdict};
use super::{Error, State};
use crate::crd::{
    ACTIVATE_ANNOTATION, ActivationMode, ClientSecret, ClientSecretPhase, Organization, ROLLOUT_FINGERPRINT_ANNOTATION,
};

/// The step of a Pending secret.
pub async fn step(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    generated: &Generated,
) -> Result<Stepped, Error> {
    if let Some(problem) = &generated.problem {
        let why = format!("cannot be activated: {}", problem.message);
        return Ok(wait(generated, Cond::no("SecretUnavailable", why)));
    }
    match cs.spec.activation {
        ActivationMode::Immediate => match newer_active(state, cs, org).await? {
            Some(newer) => superseded(state, cs, org, generated, &newer).await,
            None => activate_now(state, cs, org, generated).await,
        },
        ActivationMode::Manual => manual(state, cs, org, generated).await,
        ActivationMode::OnRollout => on_rollout(state, cs, org, generated).await,
    }
}

/// Whether the Pending secret's mode may activate it (or stamp for it) now; when it may not, its
/// step only writes its own status.
pub fn may_activate(cs: &ClientSecret, generated: &Generated) -> bool {
    if generated.problem.is_some() {
        return false;
    }
    match cs.spec.activation {
        ActivationMode::Immediate | ActivationMode::OnRollout => true,
        ActivationMode::Manual => {
            cs.annotations().get(ACTIVATE_ANNOTATION).map(|v| v.trim()) == Some(generated.fingerprint.as_str())
        }
    }
}

/// Stay Pending with this `Activated` condition.
fn wait(generated: &Generated, activated: Cond) -> Stepped {
    Stepped::Write(
        Verdict {
            phase: ClientSecretPhase::Pending,
            markers: generated.markers.clone(),
            ready: generated.ready(),
            activated,
        },
        Action::await_change(),
    )
}

/// Activates, after checking the owned Secret's markers once more under the lock (unless they
/// were read under it): a demotion whose status write was lost must not be overtaken by a
/// second activation.
async fn activate_now(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    generated: &Generated,
) -> Result<Stepped, Error> {
    let api: Api<PartialObjectMeta<Secret>> =
        Api::namespaced(state.ctx.client.clone(), &cs.namespace().unwrap_or_default());
    let reread = if generated.read_under_lock {
        None
    } else {
        api.get_opt(&generated.secret_name).await?
    };
    if let Some(meta) = reread {
        let fresh = Markers::from_meta(&meta.metadata);
        if owned_by(&meta.metadata, cs.metadata.uid.as_deref())
            && fresh != Markers::default()
            && fresh != generated.markers
        {
            return Err(Error::Conflict(format!(
                "the lifecycle markers of Secret {}",
                generated.secret_name
            )));
        }
    }
    let verdict = activate::activate(state, cs, org, generated).await?;
    Ok(Stepped::Write(verdict, Action::await_change()))
}

/// The name of the organization's active ClientSecret when it was created after `cs` (creation
/// time, then name: ClientSecrets created in the same second order by name). Read from the
/// cache, or from the API server when the cache has not seen it yet (a burst of creations).
async fn newer_active(state: &State, cs: &ClientSecret, org: &Organization) -> Result<Option<String>, Error> {
    let Some(active) = org.active_secret() else {
        return Ok(None);
    };
    let cached = state
        .siblings(cs)
        .into_iter()
        .find(|s| s.metadata.name.as_ref() == Some(&active.name))
        .map(|s| s.as_ref().clone());
    let named = match cached {
        Some(named) => Some(named),
        None => {
            let api: Api<ClientSecret> = Api::namespaced(state.ctx.client.clone(), &cs.namespace().unwrap_or_default());
            api.get_opt(&active.name).await?
        }
    };
    let Some(named) = named.filter(|n| n.metadata.uid == active.uid) else {
        return Ok(None);
    };
    let age = |c: &ClientSecret| (c.metadata.creation_timestamp.clone().map(|t| t.0), c.name_any());
    Ok((age(&named) > age(cs)).then(|| active.name.clone()))
}

/// `Immediate` never replaces a newer active secret: when several are created at once (a
/// burst of rotations, a restored backup) the newest wins, whatever order they are reconciled
/// in, and the older ones are revoked without ever having been active.
async fn superseded(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    generated: &Generated,
    newer: &str,
) -> Result<Stepped, Error> {
    let why = format!(
        "the newer ClientSecret {newer} is already active and an Immediate secret never replaces a newer one, so this one was revoked without being activated; create a new ClientSecret to rotate again"
    );
    revoke(state, cs, org, generated, Cond::no("Superseded", why)).await
}

/// `Manual`: the annotation must equal the fingerprint.
async fn manual(state: &State, cs: &ClientSecret, org: &Organization, generated: &Generated) -> Result<Stepped, Error> {
    let fp = &generated.fingerprint;
    let value = cs
        .annotations()
        .get(ACTIVATE_ANNOTATION)
        .map(|v| v.trim())
        .unwrap_or("");
    if value.is_empty() {
        let how = format!("set annotation {ACTIVATE_ANNOTATION}: {fp} on this ClientSecret to activate it");
        return Ok(wait(generated, Cond::no("WaitingForActivation", how)));
    }
    if value == fp {
        return activate_now(state, cs, org, generated).await;
    }
    if fingerprint(value.as_bytes()) == *fp {
        let why = format!(
            "annotation {ACTIVATE_ANNOTATION} holds the client secret itself, which exposes it to everyone who can read ClientSecrets; this secret was revoked and is never accepted: create a new ClientSecret and put its fingerprint (status.fingerprint), never the secret, in the annotation"
        );
        return revoke(state, cs, org, generated, Cond::no("SecretExposed", why)).await;
    }
    let why = format!(
        "annotation {ACTIVATE_ANNOTATION} does not match this secret's fingerprint, so nothing was activated: set it to status.fingerprint ({fp})"
    );
    Ok(wait(generated, Cond::no("FingerprintMismatch", why)))
}

/// `OnRollout`: active once every listed workload carries the fingerprint (stamped by the
/// operator first when `rollout.stamp` is set).
async fn on_rollout(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    generated: &Generated,
) -> Result<Stepped, Error> {
    let Some(spec) = cs.spec.rollout.as_ref().filter(|r| !r.workloads.is_empty()) else {
        let why = "activation OnRollout needs rollout.workloads: the Deployments, StatefulSets or DaemonSets that mount this secret";
        return Ok(wait(generated, Cond::no("WorkloadNotFound", why)));
    };
    let ns = cs.namespace().unwrap_or_default();
    let observed = rollout::observe(&state.ctx.client, &ns, &spec.workloads).await?;
    let missing: Vec<String> = observed
        .iter()
        .filter(|o| o.state.is_none())
        .map(|o| rollout::describe(&o.workload))
        .collect();
    if !missing.is_empty() {
        let why = format!(
            "{} not found in namespace {ns}: create them or fix spec.rollout.workloads",
            missing.join(", ")
        );
        return Ok(wait(generated, Cond::no("WorkloadNotFound", why)));
    }
    let fp = &generated.fingerprint;
    let unstamped: Vec<&Observed> = observed
        .iter()
        .filter(|o| o.state.as_ref().and_then(|s| s.fingerprint.as_ref()) != Some(fp))
        .collect();
    if unstamped.is_empty() {
        return activate_now(state, cs, org, generated).await;
    }
    if !spec.stamp {
        let why = format!(
            "activates when the pod templates of {} carry annotation {ROLLOUT_FINGERPRINT_ANNOTATION}: {fp}",
            list(&unstamped)
        );
        return Ok(wait(generated, Cond::no("WaitingForRollout", why)));
    }
    stamp_then_activate(state, cs, org, generated, &unstamped).await
}

/// Fingerprints of the other Pending `OnRollout` secrets of the same organization: a workload
/// carrying one of them is in the middle of that secret's rollout. (A fingerprint of an active,
/// retired or revoked secret on a template is just history and is stamped over.)
fn pending_rollout_fingerprints(state: &State, cs: &ClientSecret) -> Vec<String> {
    state
        .siblings(cs)
        .into_iter()
        .filter(|o| o.spec.activation == ActivationMode::OnRollout && o.phase() == ClientSecretPhase::Pending)
        .filter_map(|o| o.status.as_ref().and_then(|s| s.fingerprint.clone()))
        .collect()
}

fn list(workloads: &[&Observed]) -> String {
    workloads
        .iter()
        .map(|o| rollout::describe(&o.workload))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `rollout.stamp`: credentials Secret first, then the pod templates, then activation.
async fn stamp_then_activate(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    generated: &Generated,
    unstamped: &[&Observed],
) -> Result<Stepped, Error> {
    if let Some(wait) = contested(state, cs, generated, unstamped) {
        return Ok(wait);
    }
    if let Some(blocked) = switch_credentials(state, org, generated).await? {
        return Ok(blocked);
    }
    stamp_all(state, cs, org, generated, unstamped).await?;
    activate_now(state, cs, org, generated).await
}

/// Waits while some of `unstamped` carry the fingerprint of another ClientSecret's pending
/// rollout: stamping over it would abandon that rollout halfway.
fn contested(state: &State, cs: &ClientSecret, generated: &Generated, unstamped: &[&Observed]) -> Option<Stepped> {
    let pending = pending_rollout_fingerprints(state, cs);
    let contested: Vec<&Observed> = unstamped
        .iter()
        .copied()
        .filter(|o| {
            let carried = o.state.as_ref().and_then(|s| s.fingerprint.as_ref());
            carried.is_some_and(|f| pending.contains(f))
        })
        .collect();
    if contested.is_empty() {
        return None;
    }
    let why = format!(
        "{} carry the fingerprint of another ClientSecret's pending rollout; stamping starts when that one is active",
        list(&contested)
    );
    Some(wait(generated, Cond::no("WaitingForOtherRollout", why)))
}

/// Writes the new secret into the organization's credentials Secret, which must happen before
/// any pod template is stamped; the verdict when it cannot.
async fn switch_credentials(
    state: &State,
    org: &Organization,
    generated: &Generated,
) -> Result<Option<Stepped>, Error> {
    let Some(source) = &generated.secret else {
        let missing = Cond::no("SecretUnavailable", "the secret's Secret is missing");
        return Ok(Some(wait(generated, missing)));
    };
    match credentials::ensure(&state.ctx.client, org, source, credentials::Mode::Switch).await? {
        Outcome::NotConfigured => {
            let why = format!(
                "rollout.stamp needs spec.credentialsSecretName on Organization {}: the operator writes the new secret there before stamping the pod templates",
                org.name_any()
            );
            Ok(Some(wait(generated, Cond::no("NoCredentialsSecret", why))))
        }
        outcome @ Outcome::Foreign(_) => {
            let ready = activate::credentials_ready(org, &outcome).unwrap_or_else(|| generated.ready());
            let why = "the credentials Secret cannot be written (see the Ready condition), so nothing was stamped";
            let verdict = Verdict {
                phase: ClientSecretPhase::Pending,
                markers: generated.markers.clone(),
                ready,
                activated: Cond::no("CredentialsSecretTaken", why),
            };
            Ok(Some(Stepped::Write(verdict, Action::await_change())))
        }
        Outcome::Unchanged | Outcome::Written => Ok(None),
    }
}

/// Stamps every workload of `unstamped` with the fingerprint, then says so in an event.
async fn stamp_all(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    generated: &Generated,
    unstamped: &[&Observed],
) -> Result<(), Error> {
    let ns = cs.namespace().unwrap_or_default();
    for o in unstamped {
        rollout::stamp(&state.ctx.client, &ns, &o.workload, &generated.fingerprint).await?;
    }
    let note = format!(
        "wrote the secret into Secret {} and stamped {} with {ROLLOUT_FINGERPRINT_ANNOTATION}",
        org.spec.credentials_secret_name.as_deref().unwrap_or_default(),
        list(unstamped)
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "Stamped".into(),
        note: Some(note),
        action: "Stamp".into(),
        secondary: None,
    };
    status::publish(state, cs, event);
    Ok(())
}
