//! One reconcile of a ClientSecret: find (or mint, once) its secret ([`super::obtain`]), then —
//! under the organization's lock, from fresh reads — take the next lifecycle step and write the
//! status; and the cleanup when it is deleted.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;

use super::activate::{self, named};
use super::api::{client_secrets, organizations, secrets};
use super::generated::{Generated, Stepped};
use super::lifecycle::{self, Facts, Named, Step};
use super::obtain::{Obtained, obtain};
use super::retire::{resign, retire, revoke, settle_revoked};
use super::secret::owned_by;
use super::status::{self, Cond, SecretFacts, Verdict};
use super::{ACTIVATED_CONDITION, Error, State, credentials, pending};
use crate::crd::{ACTIVATE_ANNOTATION, ActivationMode, ClientSecret, ClientSecretPhase, Organization};

/// `Event::Apply` of the finalizer.
///
/// A reconcile that will probably touch the activation record (see [`likely_needs_lock`]) takes
/// the organization's lock first and reads everything under it: the ClientSecret, the
/// Organization, the Secret — three reads. Otherwise it reads without the lock and takes it only
/// if the step turns out to need it, reading the ClientSecret and the Organization again.
pub async fn apply(cs: &ClientSecret, state: &State) -> Result<Action, Error> {
    if !likely_needs_lock(cs) {
        return apply_read(state, cs, false).await;
    }
    let ns = cs.namespace().unwrap_or_default();
    let _guard = state.locks.lock(&ns, &cs.spec.organization_ref.name).await;
    match reread(state, cs).await? {
        Some(fresh) => apply_read(state, &fresh, true).await,
        None => Ok(Action::await_change()),
    }
}

/// Whether the step `cs` (as cached) is heading for probably runs under the organization's lock:
/// an Active secret (completing its activation, or resigning), and a Pending one whose mode asks
/// for activation. A wrong guess costs either a lock held for nothing or two more reads.
fn likely_needs_lock(cs: &ClientSecret) -> bool {
    match cs.phase() {
        ClientSecretPhase::Active => true,
        ClientSecretPhase::Retiring | ClientSecretPhase::Revoked => false,
        ClientSecretPhase::Pending => match cs.spec.activation {
            ActivationMode::Immediate | ActivationMode::OnRollout => true,
            ActivationMode::Manual => {
                let wanted = cs.annotations().get(ACTIVATE_ANNOTATION).map(|v| v.trim());
                wanted.is_some() && wanted == status_fp(cs).as_deref()
            }
        },
    }
}

/// The latest version of `cs`; `None` when it is gone, or was deleted and recreated under the
/// same name meanwhile (its own events follow).
async fn reread(state: &State, cs: &ClientSecret) -> Result<Option<ClientSecret>, Error> {
    let fresh = client_secrets(state, cs).get_opt(&cs.name_any()).await?;
    Ok(fresh.filter(|f| f.metadata.uid == cs.metadata.uid))
}

/// Reads the Organization and the Secret, then takes the next step. `locked`: the caller holds
/// the organization's lock and read `cs` under it.
async fn apply_read(state: &State, cs: &ClientSecret, locked: bool) -> Result<Action, Error> {
    let org_name = cs.spec.organization_ref.name.clone();
    let Some(org) = read_org(state, cs, locked).await? else {
        return org_not_found(state, cs).await;
    };
    if settled_revoked(cs, &org) {
        return Ok(Action::await_change());
    }
    let generated = match obtain(state, cs, &org).await? {
        Obtained::Ready(g) => *g,
        Obtained::Blocked(cond, action) => return blocked(state, cs, cond, action).await,
    };
    let generated = Generated {
        markers: activate::status_markers(cs).or(&generated.markers),
        read_under_lock: locked,
        ..generated
    };
    if locked || !needs_lock(cs, &org, &generated) {
        return execute(state, cs, &org, &generated).await;
    }
    let ns = cs.namespace().unwrap_or_default();
    let _guard = state.locks.lock(&ns, &org_name).await;
    let Some(cs) = reread(state, cs).await? else {
        return Ok(Action::await_change());
    };
    let Some(org) = organizations(state, &cs).get_opt(&org_name).await? else {
        return org_not_found(state, &cs).await;
    };
    let generated = Generated {
        markers: activate::status_markers(&cs).or(&generated.markers),
        ..generated
    };
    execute(state, &cs, &org, &generated).await
}

/// The Organization of `cs`: from the cache for a Pending secret whose step needs no lock —
/// minting, or waiting for its trigger: such a step writes only this ClientSecret, conditional
/// on its version, and a change of the Organization wakes it again — else (and when the cache
/// has not seen it yet) read from the API server. The later phases read it fresh: whether the
/// record still names a Retiring or Revoked secret decides what it does, and a cache that has not
/// seen the latest switch made them take the long way round (measured in
/// `tests/bench/client-secrets.sh`: more reads and status writes per activation).
async fn read_org(state: &State, cs: &ClientSecret, locked: bool) -> Result<Option<Organization>, Error> {
    let cached = (!locked && cs.phase() == ClientSecretPhase::Pending)
        .then(|| state.cached_org(cs))
        .flatten();
    if let Some(org) = cached {
        return Ok(Some(org));
    }
    Ok(organizations(state, cs).get_opt(&cs.spec.organization_ref.name).await?)
}

/// Takes the next step and writes the status it decided.
async fn execute(state: &State, cs: &ClientSecret, org: &Organization, generated: &Generated) -> Result<Action, Error> {
    match take_step(state, cs, org, generated).await? {
        Stepped::Write(verdict, action) => {
            status::write(state, cs, &generated.facts(), &verdict).await?;
            Ok(action)
        }
        Stepped::Done(action) => Ok(action),
    }
}

/// Whether the next step may touch the activation record or another ClientSecret: then it runs
/// under the organization's lock, on fresh reads. Steps that only write this ClientSecret's own
/// status and its Secret's markers (waiting, settling, retiring on schedule) run without — their
/// writes are conditional on the version read anyway — so a reconcile that finds nothing to do
/// costs two reads.
fn needs_lock(cs: &ClientSecret, org: &Organization, generated: &Generated) -> bool {
    let facts = facts(cs, org, generated);
    let named_me = facts.named == Named::Me;
    match lifecycle::decide(&facts) {
        Step::SettleRevoked | Step::RevokeOrgReplaced | Step::Retire => named_me,
        Step::CompleteActivation | Step::Reclaim | Step::Resign => true,
        Step::Pending => pending::may_activate(cs, generated),
    }
}

fn facts(cs: &ClientSecret, org: &Organization, generated: &Generated) -> Facts {
    Facts {
        status_phase: cs.status.as_ref().and_then(|s| s.phase),
        markers: generated.markers.clone(),
        named: named(org, cs),
        org_replaced: generated.org_uid.is_some() && generated.org_uid != org.uid(),
    }
}

/// Nothing can happen to a secret that is Revoked (terminal; its marker was written before its
/// status said so), fully described for its generation and not named by the record: a restart
/// goes over such secrets with one read each.
fn settled_revoked(cs: &ClientSecret, org: &Organization) -> bool {
    let Some(status) = &cs.status else { return false };
    status.phase == Some(ClientSecretPhase::Revoked)
        && status.fingerprint.is_some()
        && status.secret_hash.is_some()
        && status.revoked_at.is_some()
        && status.observed_generation == cs.metadata.generation
        && named(org, cs) != Named::Me
}

async fn org_not_found(state: &State, cs: &ClientSecret) -> Result<Action, Error> {
    let cond = Cond::no(
        "OrganizationNotFound",
        format!(
            "Organization {} does not exist in namespace {}: create it or fix spec.organizationRef.name",
            cs.spec.organization_ref.name,
            cs.namespace().unwrap_or_default()
        ),
    );
    blocked(state, cs, cond, Action::await_change()).await
}

/// Writes a `Ready=False` condition, leaving the lifecycle as it is.
async fn blocked(state: &State, cs: &ClientSecret, ready: Cond, action: Action) -> Result<Action, Error> {
    let verdict = Verdict {
        phase: cs.phase(),
        markers: activate::status_markers(cs),
        activated: Cond::current(cs, ACTIVATED_CONDITION).unwrap_or_else(|| {
            Cond::no(
                "WaitingForSecret",
                "nothing can be activated before the secret is generated: see the Ready condition",
            )
        }),
        ready,
    };
    status::write(state, cs, &SecretFacts::default(), &verdict).await?;
    Ok(action)
}

fn status_fp(cs: &ClientSecret) -> Option<String> {
    cs.status.as_ref().and_then(|s| s.fingerprint.clone())
}

async fn take_step(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    generated: &Generated,
) -> Result<Stepped, Error> {
    let step = lifecycle::decide(&facts(cs, org, generated));
    tracing::debug!(?step, "lifecycle step");
    match step {
        Step::SettleRevoked => settle_revoked(state, cs, org, generated).await,
        Step::RevokeOrgReplaced => {
            let cond = Cond::no(
                "OrganizationReplaced",
                format!(
                    "this secret was generated for an earlier Organization {} that was deleted; it is revoked: create a new ClientSecret",
                    org.name_any()
                ),
            );
            revoke(state, cs, org, generated, cond).await
        }
        Step::Retire => retire(state, cs, org, generated).await,
        Step::CompleteActivation => Ok(Stepped::Write(
            activate::complete(state, cs, org, generated, None).await?,
            Action::await_change(),
        )),
        Step::Reclaim => Ok(Stepped::Write(
            activate::reclaim(state, cs, org, generated).await?,
            Action::await_change(),
        )),
        Step::Resign => resign(state, cs, org).await,
        Step::Pending => pending::step(state, cs, org, generated).await,
    }
}

/// `Event::Cleanup` of the finalizer: clear the record if this was the active secret, put the
/// credentials Secret back if this secret had been staged in it, delete the owned Secret.
pub async fn cleanup(cs: &ClientSecret, state: &State) -> Result<Action, Error> {
    let ns = cs.namespace().unwrap_or_default();
    let org_name = cs.spec.organization_ref.name.clone();
    let _guard = state.locks.lock(&ns, &org_name).await;
    if let Some(org) = organizations(state, cs).get_opt(&org_name).await? {
        if named(&org, cs) == Named::Me {
            let message = format!(
                "the active ClientSecret {} was deleted; no client secret is accepted for Organization {org_name} until another ClientSecret is activated",
                cs.name_any()
            );
            activate::clear_record(
                state,
                &org,
                &cs.name_any(),
                cs.metadata.uid.as_deref(),
                "NoActiveSecret",
                &message,
            )
            .await?;
        } else {
            restore_credentials(state, cs, &org).await?;
        }
    }
    delete_owned_secret(state, cs).await?;
    Ok(Action::await_change())
}

/// If the credentials Secret holds this (never-activated) secret — staged for a rollout that
/// did not happen — put the active secret back into it.
async fn restore_credentials(state: &State, cs: &ClientSecret, org: &Organization) -> Result<(), Error> {
    let mine = status_fp(cs);
    if mine.is_none() || credentials::held_fingerprint(&state.ctx.client, org).await? != mine {
        return Ok(());
    }
    let Some(active) = org.active_secret() else {
        return Ok(());
    };
    let Some(active_cs) = client_secrets(state, cs)
        .get_opt(&active.name)
        .await?
        .filter(|c| c.metadata.uid == active.uid)
    else {
        return Ok(());
    };
    let source = secrets(state, cs)
        .get_opt(&active_cs.secret_name())
        .await?
        .filter(|s| owned_by(&s.metadata, active_cs.metadata.uid.as_deref()));
    if let Some(source) = source {
        credentials::ensure(&state.ctx.client, org, &source, credentials::Mode::Switch).await?;
    }
    Ok(())
}

async fn delete_owned_secret(state: &State, cs: &ClientSecret) -> Result<(), Error> {
    let api: Api<PartialObjectMeta<Secret>> =
        Api::namespaced(state.ctx.client.clone(), &cs.namespace().unwrap_or_default());
    let Some(meta) = api.get_opt(&cs.secret_name()).await? else {
        return Ok(());
    };
    if !owned_by(&meta.metadata, cs.metadata.uid.as_deref()) {
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: meta.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match secrets(state, cs).delete(&cs.secret_name(), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}
