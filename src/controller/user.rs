//! Reconciler of `User` (leader only): ends the access of blocked and deleted users, and flags
//! Users the login server cannot use.
//!
//! Per reconcile:
//! 1. **Finalizer** [`USER_FINALIZER`]: the login path creates Users with it; one an admin
//!    made without it gets it here. A deleted User keeps existing until step 3 ran, so a
//!    deletion while the operator is down is handled when it is back.
//! 2. **Blocked** (`spec.blocked`): records in the session store that the user's access ended
//!    at `T` ([`access::end`]) — every session, refresh token and access token of the user
//!    from before `T` is refused from then on, on every replica. `T` is `status.blockedAt`: the
//!    time this controller first saw the block (kept while the same generation stays blocked,
//!    so a restart does not move it; the record is written again on every reconcile, so a
//!    flushed Redis is repaired). Unblocking clears `blockedAt`; old tokens stay ended.
//! 3. **Deleted**: records the end at the deletion timestamp, then removes the finalizer.
//! 4. **Conditions**: `Ready=False` with reason `NameMismatch` (the name is not the one derived
//!    from organization and address: the login server would never read this object; the
//!    message names the expected one), `OrganizationMissing`, or `Blocked`, each with an
//!    event. A healthy user that never had a condition gets none from here (the login path
//!    writes `Ready=True` at the first login), so a first login costs the controller no write.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{self, Event};
use kube::runtime::reflector::{self, ObjectRef, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::Serialize;

use super::{Context, events, related, status};
use crate::crd::condition::{self, READY};
use crate::crd::user::UserProblem;
use crate::crd::{FIELD_MANAGER, Organization, USER_FINALIZER, User, UserStatus, user_name};
use crate::oauth::{access, tokens};
use crate::runtime::cache::slim;
use crate::runtime::metrics::Kind;
use crate::runtime::scope::WatchScope;
use crate::store::StoreError;

/// How often a blocked or flagged user is looked at again (the access-ended record is
/// re-written, a missing organization may have appeared).
const RECHECK: Duration = Duration::from_secs(300);

/// Why a reconcile failed (retried after a short delay).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The session store could not record the end of the user's access.
    #[error("cannot record in the session store that the user's access ended (retrying): {0}")]
    Store(#[from] StoreError),
    /// The process has no session store (the server part was not started).
    #[error("no session store is attached to the controllers; the User controller cannot end access")]
    NoStore,
    /// The status could not be written.
    #[error(transparent)]
    WriteStatus(#[from] status::ApplyError),
    /// Adding or removing the finalizer failed, or the step it guards did.
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// The variant name: the fixed `reason` label of the reconcile-error metric.
    fn reason(&self) -> &'static str {
        match self {
            Error::Store(_) => "Store",
            Error::NoStore => "NoStore",
            Error::WriteStatus(_) => "WriteStatus",
            Error::Finalizer(f) => match f.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.reason(),
                _ => "Finalizer",
            },
        }
    }
}

/// The part of a User status this controller owns (server-side apply).
#[derive(Serialize, PartialEq, Debug)]
#[serde(rename_all = "camelCase")]
struct Owned {
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked_at: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_generation: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    conditions: Vec<Condition>,
}

/// Runs this controller, once per watched unit, until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    ctx.scope.clone().for_each(|unit| run_in(ctx.clone(), unit)).await;
}

async fn run_in(ctx: Arc<Context>, unit: WatchScope) {
    if ctx.store.get().is_none() {
        tracing::error!(?unit, "no session store is attached; User controller not started");
        return;
    }
    ctx.caches();
    // Its own store of the unit's Users (only the leader runs this), slimmed like the shared
    // caches: the managed fields of the login path's writes are most of a User's size.
    let (store, writer) = reflector::store();
    let users = watcher(unit.api::<User>(&ctx.client), watcher::Config::default())
        .default_backoff()
        .modify(slim);
    let controller = Controller::for_stream(reflector(writer, users).applied_objects(), store)
        .with_config(super::controller_config());
    related::drain(controller.run(reconcile, error_policy, ctx)).await;
}

fn error_policy(user: Arc<User>, err: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(user = %qualified(&user), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

fn qualified(user: &User) -> String {
    format!("{}/{}", user.namespace().unwrap_or_default(), user.name_any())
}

async fn reconcile(user: Arc<User>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = tracing::info_span!("reconcile", kind = "User", namespace = user.namespace(), name = %user.name_any());
    let metrics = ctx.metrics.clone();
    let work = async move {
        let api: Api<User> = Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default());
        finalizer::finalizer(&api, USER_FINALIZER, user, |event| async {
            match event {
                Event::Apply(user) => apply(&user, &ctx).await,
                Event::Cleanup(user) => cleanup(&user, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    };
    crate::runtime::metrics::Metrics::instrument(&metrics, Kind::User, Error::reason, span, work).await
}

/// The user's Organization, from the shared cache.
fn organization(user: &User, ctx: &Context) -> Option<Arc<Organization>> {
    let r = ObjectRef::new(&user.spec.organization).within(&user.namespace().unwrap_or_default());
    ctx.caches().organizations.get(&r)
}

/// The ID the user's tokens carry: the recorded one, else derived from the organization.
fn user_id(user: &User, org: Option<&Organization>) -> Option<String> {
    let recorded = user.status.as_ref().and_then(|s| s.id.clone());
    recorded.or_else(|| org.map(|o| tokens::user_id(&crate::flow::directory::org_key(o), &user.spec.email)))
}

/// Steps 2 and 4.
async fn apply(user: &User, ctx: &Context) -> Result<Action, Error> {
    let store = ctx.store.get().ok_or(Error::NoStore)?;
    let org = organization(user, ctx);
    let current = user.status.clone().unwrap_or_default();
    let generation = user.metadata.generation;
    let problem = if !user.name_matches() {
        let expected = user_name(&user.spec.organization, &user.spec.email);
        Some(UserProblem::NameMismatch { expected })
    } else if org.is_none() {
        Some(UserProblem::OrganizationMissing)
    } else if user.spec.blocked {
        Some(UserProblem::Blocked)
    } else {
        None
    };
    let blocked_at = if user.spec.blocked {
        let at = blocked_since(&current, generation);
        if let Some(id) = user_id(user, org.as_deref()) {
            access::end(store.as_ref(), &id, at.0.as_second()).await?;
        }
        Some(at)
    } else {
        None
    };
    let mut conditions = current.conditions.clone();
    if problem.is_some() || !conditions.is_empty() {
        condition::set(
            &mut conditions,
            User::ready(problem.as_ref().map(|p| (p, user)), generation),
        );
    }
    write_status(user, &current, blocked_at, conditions, ctx).await?;
    Ok(match problem {
        Some(_) => Action::requeue(RECHECK),
        None => Action::await_change(),
    })
}

/// When the block of this generation began: the recorded `blockedAt` when the status already
/// describes this generation (a restart does not move it), else now (a new block, or an
/// unblock and re-block the controller did not see in between).
fn blocked_since(current: &UserStatus, generation: Option<i64>) -> Time {
    match &current.blocked_at {
        Some(at) if current.observed_generation == generation => at.clone(),
        _ => Time(k8s_openapi::jiff::Timestamp::now()),
    }
}

/// Writes the owned part of the status when it changed, with an event per changed condition.
async fn write_status(
    user: &User,
    current: &UserStatus,
    blocked_at: Option<Time>,
    conditions: Vec<Condition>,
    ctx: &Context,
) -> Result<(), Error> {
    let observed_generation = if conditions.is_empty() && blocked_at.is_none() {
        current.observed_generation
    } else {
        user.metadata.generation
    };
    let desired = Owned {
        blocked_at,
        observed_generation,
        conditions,
    };
    let before = Owned {
        blocked_at: current.blocked_at.clone(),
        observed_generation: current.observed_generation,
        conditions: current.conditions.clone(),
    };
    if desired == before {
        return Ok(());
    }
    status::apply(&ctx.client, user, FIELD_MANAGER, &desired).await?;
    let (old, new) = (
        condition::find(&before.conditions, READY),
        condition::find(&desired.conditions, READY),
    );
    if let Some(new) = new
        && old.map(|o| (&o.status, &o.reason)) != Some((&new.status, &new.reason))
    {
        events::publish_condition(ctx, user, new);
    }
    Ok(())
}

/// Step 3: the user was deleted; their access ends at the deletion time.
async fn cleanup(user: &User, ctx: &Context) -> Result<Action, Error> {
    let store = ctx.store.get().ok_or(Error::NoStore)?;
    let at = user
        .meta()
        .deletion_timestamp
        .as_ref()
        .map_or_else(crate::oauth::now, |t| t.0.as_second());
    let org = organization(user, ctx);
    if let Some(id) = user_id(user, org.as_deref()) {
        access::end(store.as_ref(), &id, at).await?;
        let note = "the User was deleted: the user's sessions and tokens have ended";
        events::publish(ctx, user, kube::runtime::events::EventType::Normal, "AccessEnded", note);
        tracing::info!(user = %qualified(user), "user deleted; access ended");
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_keeps_its_time_within_one_generation_only() {
        let at = Time(k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap());
        let status = UserStatus {
            blocked_at: Some(at.clone()),
            observed_generation: Some(2),
            ..Default::default()
        };
        assert_eq!(blocked_since(&status, Some(2)), at);
        assert!(
            blocked_since(&status, Some(4)).0.as_second() > 1_000,
            "re-blocked meanwhile"
        );
        assert!(blocked_since(&UserStatus::default(), Some(1)).0.as_second() > 1_000);
    }
}
