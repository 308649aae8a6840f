//! One reconcile of a ClientSecret: find (or mint, once) its secret, then — under the
//! organization's lock, from fresh reads — take the next lifecycle step and write the status.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;

use super::activate::{self, named};
use super::generate::{Plaintext, generate_secret};
use super::lifecycle::{self, Facts, Named, Retirement, Step};
use super::secret::{self, Markers, PublicKeys, owned_by};
use super::status::{self, Cond, SecretFacts, Verdict};
use super::{ACTIVATED_CONDITION, Error, State, credentials, pending, rollout};
use crate::crd::{ACTIVATE_ANNOTATION, ActivationMode, ClientSecret, ClientSecretPhase, FIELD_MANAGER, Organization};

/// What the operator knows about the secret generated for one ClientSecret.
#[derive(Clone, Debug)]
pub struct Generated {
    /// Its public fingerprint.
    pub fingerprint: String,
    /// Its argon2id hash.
    pub hash: String,
    /// Name of the Secret holding it.
    pub secret_name: String,
    /// The owned Secret, unless it was deleted.
    pub secret: Option<Secret>,
    /// Lifecycle milestones from the status and the Secret's annotations.
    pub markers: Markers,
    /// UID of the Organization it was generated for.
    pub org_uid: Option<String>,
    /// Why it cannot be used any more, as a `Ready=False` condition.
    pub problem: Option<Cond>,
    /// Whether the Secret was read (or created) under the organization's lock: then no other
    /// reconcile of this process changed its markers since, and activation need not re-read it.
    pub read_under_lock: bool,
}

impl Generated {
    /// The status facts of this secret.
    pub fn facts(&self) -> SecretFacts {
        status::facts_of(&self.fingerprint, &self.hash, self.secret.as_ref(), &self.secret_name)
    }

    /// The `Ready` condition as far as the secret itself goes.
    pub fn ready(&self) -> Cond {
        self.problem.clone().unwrap_or_else(|| {
            Cond::yes(
                "SecretGenerated",
                format!(
                    "the client secret is in Secret {} (keys client_id, client_secret, issuer, fingerprint)",
                    self.secret_name
                ),
            )
        })
    }

    /// Adds the markers of `markers` that the owned Secret does not carry yet.
    pub async fn record_markers(&self, state: &State, cs: &ClientSecret, markers: &Markers) -> Result<(), Error> {
        let Some(secret) = &self.secret else { return Ok(()) };
        if let Some(patch) = markers.patch_missing(&secret.metadata) {
            secrets(state, cs)
                .patch(&self.secret_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Ok(())
    }
}

/// The outcome of looking for the secret.
enum Obtained {
    Ready(Box<Generated>),
    /// Not generated and not generatable now: the `Ready=False` condition and when to look again.
    Blocked(Cond, Action),
}

fn secrets(state: &State, cs: &ClientSecret) -> Api<Secret> {
    Api::namespaced(state.ctx.client.clone(), &cs.namespace().unwrap_or_default())
}

fn client_secrets(state: &State, cs: &ClientSecret) -> Api<ClientSecret> {
    Api::namespaced(state.ctx.client.clone(), &cs.namespace().unwrap_or_default())
}

fn organizations(state: &State, cs: &ClientSecret) -> Api<Organization> {
    Api::namespaced(state.ctx.client.clone(), &cs.namespace().unwrap_or_default())
}

/// The non-secret keys the Secrets carry for `org`, once it has a client ID.
fn public_keys(state: &State, org: &Organization) -> Option<PublicKeys> {
    let client_id = org.client_id()?;
    Some(PublicKeys {
        client_id: client_id.to_string(),
        issuer: crate::tenant::address(org, client_id, &state.ctx.public).issuer,
    })
}

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
    let Some(org) = organizations(state, cs).get_opt(&org_name).await? else {
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

/// Finds the secret of `cs`, or mints it if it never was.
async fn obtain(state: &State, cs: &ClientSecret, org: &Organization) -> Result<Obtained, Error> {
    let name = cs.secret_name();
    for _ in 0..3 {
        if let Some(existing) = secrets(state, cs).get_opt(&name).await? {
            return adopt(state, cs, org, existing).await;
        }
        if let Some(lost) = lost(cs, org) {
            return Ok(lost);
        }
        let Some(keys) = public_keys(state, org) else {
            let cond = Cond::no(
                "WaitingForClientId",
                format!(
                    "Organization {} has no client ID yet (the operator generates one, or pin it in spec.clientId); the secret is generated once it has",
                    org.name_any()
                ),
            );
            return Ok(Obtained::Blocked(cond, Action::await_change()));
        };
        if let Some(generated) = mint(state, cs, org, &keys).await? {
            return Ok(Obtained::Ready(Box::new(generated)));
        }
        // Lost the create race: the next round adopts the winner's Secret.
    }
    Err(Error::Conflict(format!("Secret {name}")))
}

/// The secret was generated before, but its Secret is gone: never mint again.
fn lost(cs: &ClientSecret, org: &Organization) -> Option<Obtained> {
    let status = cs.status.clone().unwrap_or_default();
    let message = format!(
        "Secret {} holding this client secret was deleted; the operator never generates a second secret for one ClientSecret: create a new ClientSecret",
        cs.secret_name()
    );
    match (status.fingerprint, status.secret_hash) {
        (Some(fingerprint), Some(hash)) => Some(Obtained::Ready(Box::new(Generated {
            fingerprint,
            hash,
            secret_name: cs.secret_name(),
            secret: None,
            markers: activate::status_markers(cs),
            org_uid: None,
            problem: Some(Cond::no("SecretMissing", message)),
            read_under_lock: false,
        }))),
        (Some(_), None) => Some(Obtained::Blocked(
            Cond::no("SecretMissing", message),
            Action::await_change(),
        )),
        _ if named(org, cs) == Named::Me => Some(Obtained::Blocked(
            Cond::no("SecretMissing", message),
            Action::await_change(),
        )),
        _ => None,
    }
}

/// Creates the Secret with a new secret. `None` when a Secret of that name appeared first.
async fn mint(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    keys: &PublicKeys,
) -> Result<Option<Generated>, Error> {
    let plaintext = generate_secret()?;
    let desired = secret::build(cs, org.uid().as_deref(), keys, &plaintext);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    let created = match secrets(state, cs).create(&params, &desired).await {
        Ok(created) => created,
        Err(kube::Error::Api(s)) if s.is_already_exists() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(secret = %cs.secret_name(), fingerprint = %plaintext.fingerprint(), "generated a client secret");
    let hash = hash(&plaintext)?;
    Ok(Some(Generated {
        fingerprint: plaintext.fingerprint(),
        hash,
        secret_name: cs.secret_name(),
        markers: Markers::default(),
        org_uid: org.uid(),
        secret: Some(created),
        problem: None,
        read_under_lock: false,
    }))
}

/// Hashes a generated secret at [`crate::crypto::SECRET_COST`]: microseconds of CPU and 8 KiB,
/// so it runs in place (a blocking-pool hop would cost more than the hash).
fn hash(plaintext: &Plaintext) -> Result<String, Error> {
    Ok(crate::crypto::hash_secret(plaintext.expose().as_bytes())?)
}

/// Takes over the existing Secret `existing` if this ClientSecret owns it.
async fn adopt(state: &State, cs: &ClientSecret, org: &Organization, existing: Secret) -> Result<Obtained, Error> {
    if !owned_by(&existing.metadata, cs.metadata.uid.as_deref()) {
        let cond = Cond::no(
            "SecretNameTaken",
            format!(
                "Secret {} already exists and is not owned by this ClientSecret; the operator never overwrites it: delete it or set spec.secretName to an unused name",
                cs.secret_name()
            ),
        );
        // Foreign Secrets are not watched: look again in a while.
        return Ok(Obtained::Blocked(
            cond,
            Action::requeue(std::time::Duration::from_secs(30)),
        ));
    }
    let status = cs.status.clone().unwrap_or_default();
    let markers = Markers::from_meta(&existing.metadata);
    let org_uid = existing.annotations().get(secret::ORGANIZATION_UID_ANNOTATION).cloned();
    let modified = Cond::no(
        "SecretModified",
        format!(
            "Secret {} no longer holds the generated client secret (someone changed its client_secret); the operator never rewrites a secret: create a new ClientSecret",
            cs.secret_name()
        ),
    );
    let (fingerprint, hash, problem) = match (secret::plaintext(&existing), status.fingerprint, status.secret_hash) {
        (Some(p), Some(fp), Some(hash)) if p.fingerprint() == fp => (fp, hash, None),
        (Some(p), None, _) => (p.fingerprint(), hash(&p)?, None),
        (Some(p), Some(fp), None) if p.fingerprint() == fp => (fp, hash(&p)?, None),
        (_, Some(fp), Some(hash)) => (fp, hash, Some(modified)),
        _ => return Ok(Obtained::Blocked(modified, Action::await_change())),
    };
    sync_public_keys(state, cs, org, &existing, &fingerprint, problem.is_none()).await?;
    Ok(Obtained::Ready(Box::new(Generated {
        fingerprint,
        hash,
        secret_name: cs.secret_name(),
        secret: Some(existing),
        markers,
        org_uid,
        problem,
        read_under_lock: false,
    })))
}

fn status_fp(cs: &ClientSecret) -> Option<String> {
    cs.status.as_ref().and_then(|s| s.fingerprint.clone())
}

/// Keeps `client_id`, `issuer`, `fingerprint` and the labels of the owned Secret current.
async fn sync_public_keys(
    state: &State,
    cs: &ClientSecret,
    org: &Organization,
    existing: &Secret,
    fingerprint: &str,
    intact: bool,
) -> Result<(), Error> {
    let Some(keys) = public_keys(state, org).filter(|_| intact) else {
        return Ok(());
    };
    if let Some(patch) = secret::sync_patch(cs, existing, &keys, fingerprint) {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        secrets(state, cs)
            .patch(&cs.secret_name(), &params, &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

/// A step either leaves the status to write, or wrote it itself.
pub enum Stepped {
    /// Write this verdict, then act.
    Write(Verdict, Action),
    /// The status is written already.
    Done(Action),
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

/// Revoked stays Revoked; a record still naming it is cleared.
async fn settle_revoked(
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
    generated.record_markers(state, cs, &markers).await?;
    let verdict = Verdict {
        phase: ClientSecretPhase::Revoked,
        markers,
        ready: generated.ready(),
        activated,
    };
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
async fn retire(state: &State, cs: &ClientSecret, org: &Organization, generated: &Generated) -> Result<Stepped, Error> {
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
    generated.record_markers(state, cs, &markers).await?;
    let verdict = Verdict {
        phase: ClientSecretPhase::Retiring,
        markers,
        ready: generated.ready(),
        activated: Cond::no("Retiring", message),
    };
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
async fn resign(state: &State, cs: &ClientSecret, org: &Organization) -> Result<Stepped, Error> {
    let successor = Successor::of(state, org).await?;
    let name = successor.name.as_deref().unwrap_or("(none)");
    activate::demote(state, cs, org, name, successor.on_rollout).await?;
    Ok(Stepped::Done(Action::await_change()))
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
