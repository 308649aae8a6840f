//! Revocation and retirement: a Revoked secret stays Revoked, a Retiring one is revoked after
//! its grace period and the successor's rollout, an Active one the record no longer names resigns.

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::activate::{self, named};
use super::generated::{Generated, Stepped};
use super::lifecycle::{self, Named, Retirement};
use super::secret::Markers;
use super::status::Cond;
use super::{ACTIVATED_CONDITION, Error, State, rollout};
use crate::crd::{ActivationMode, ClientSecret, ClientSecretPhase, Organization};

/// Revoked stays Revoked; a record still naming it is cleared.
pub async fn settle_revoked(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    generated: &Generated,
) -> Result<Stepped, Error> {
    let keep = Cond::current(cs, ACTIVATED_CONDITION)
        .filter(|c| cs.phase() == ClientSecretPhase::Revoked && c.status != crate::crd::condition::Status::True);
    let since = generated.markers.revoked_at.unwrap_or_else(lifecycle::now);
    let cond = keep.unwrap_or_else(|| Cond::no("Revoked", format!("revoked at {since}; no longer accepted")));
    revoke(state, cs, org, generated, cond).await
}

/// Makes `cs` Revoked (terminal), clearing the record first if it names `cs`.
pub async fn revoke(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    generated: &Generated,
    activated: Cond,
) -> Result<Stepped, Error> {
    clear_if_named(state, cs, org, "ActiveSecretRevoked", "revoked").await?;
    let now = lifecycle::now();
    let markers = Markers {
        retired_at: generated.markers.retired_at.or(Some(now)),
        revoked_at: generated.markers.revoked_at.or(Some(now)),
        ..generated.markers.clone()
    };
    let verdict = generated
        .marked_verdict(state, cs, ClientSecretPhase::Revoked, markers, activated)
        .await?;
    Ok(Stepped::Write(verdict, Action::await_change()))
}

/// Clears a record that names `cs` although `cs` is `what` (retiring, revoked): a restored
/// backup or a split brain. Fail closed; the secret whose status says Active records itself again.
async fn clear_if_named(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    reason: &str,
    what: &str,
) -> Result<(), Error> {
    if named(org, cs) != Named::Me {
        return Ok(());
    }
    let message = format!(
        "the activation record named ClientSecret {}, which is {what}; the record was cleared",
        cs.name_any()
    );
    let uid = cs.metadata.uid.as_deref();
    activate::clear_record(state, org, &cs.name_any(), uid, reason, &message).await
}

/// A Retiring secret: revoked when its grace period passed and the active secret's workloads
/// rolled out; until then requeued at the end of the grace period (rollouts wake it by watch).
pub async fn retire(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    generated: &Generated,
) -> Result<Stepped, Error> {
    clear_if_named(state, cs, org, "ActiveSecretRetiring", "retiring").await?;
    let now = lifecycle::now();
    let retired_at = generated.markers.retired_at.unwrap_or(now);
    let grace = activate::grace(org);
    let successor = Successor::of(state, org).await?;
    let rollouts = successor.rollouts.clone();
    let retirement = lifecycle::retirement(retired_at, grace, now, rollouts.is_ok());
    let rollout_of = successor.name.as_deref().filter(|_| successor.on_rollout);
    let message = activate::retiring_message(retired_at, grace, rollout_of);
    let (message, action) = match retirement {
        Retirement::Due => {
            let cond = Cond::no(
                "Revoked",
                format!("retiring since {retired_at}; revoked at {now}, after its grace period and the rollout"),
            );
            return revoke(state, cs, org, generated, cond).await;
        }
        Retirement::WaitUntil(deadline) => {
            let wait = deadline.duration_since(now).unsigned_abs();
            (
                message,
                Action::requeue(wait.max(std::time::Duration::from_millis(100))),
            )
        }
        Retirement::WaitForRollout => (
            format!("{message}; waiting for: {}", rollouts.err().unwrap_or_default()),
            Action::await_change(),
        ),
    };
    let markers = Markers {
        retired_at: Some(retired_at),
        ..generated.markers.clone()
    };
    let activated = Cond::no("Retiring", message);
    let verdict = generated
        .marked_verdict(state, cs, ClientSecretPhase::Retiring, markers, activated)
        .await?;
    Ok(Stepped::Write(verdict, action))
}

/// The secret the record names now, and whether its workloads finished rolling out.
struct Successor {
    /// `None` when the record names nobody.
    name: Option<String>,
    on_rollout: bool,
    rollouts: Result<(), String>,
}

impl Successor {
    async fn of(state: &State, org: &Organization) -> Result<Successor, Error> {
        let Some(active) = org.active_secret() else {
            return Ok(Successor {
                name: None,
                on_rollout: false,
                rollouts: Ok(()),
            });
        };
        let api: Api<ClientSecret> = Api::namespaced(state.ctx.client.clone(), &org.namespace().unwrap_or_default());
        let found = api
            .get_opt(&active.name)
            .await?
            .filter(|c| c.metadata.uid == active.uid);
        let workloads = found
            .filter(|c| c.spec.activation == ActivationMode::OnRollout)
            .and_then(|c| c.spec.rollout.map(|r| r.workloads));
        let rollouts = match &workloads {
            Some(w) => {
                let observed = rollout::observe(&state.ctx.client, &org.namespace().unwrap_or_default(), w).await?;
                rollout::rollouts_complete(&observed)
            }
            None => Ok(()),
        };
        Ok(Successor {
            name: Some(active.name.clone()),
            on_rollout: workloads.is_some(),
            rollouts,
        })
    }
}

/// This secret was Active and the record names another one now.
pub async fn resign(state: &State, cs: &ClientSecret, org: &Organization) -> Result<Stepped, Error> {
    let successor = Successor::of(state, org).await?;
    let name = successor.name.as_deref().unwrap_or("(none)");
    activate::demote(state, cs, org, name, successor.on_rollout).await?;
    Ok(Stepped::Done(Action::await_change()))
}
