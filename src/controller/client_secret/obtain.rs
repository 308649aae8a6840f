//! Getting the secret of a ClientSecret: adopting its owned Secret, or minting it once.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;

use super::activate::{self, named};
use super::api::secrets;
use super::generate::{Plaintext, generate_secret};
use super::generated::Generated;
use super::lifecycle::Named;
use super::secret::{self, Markers, PublicKeys, owned_by};
use super::status::Cond;
use super::{Error, State};
use crate::crd::{ClientSecret, FIELD_MANAGER, Organization};

/// The outcome of looking for the secret.
pub enum Obtained {
    /// Found, or minted now.
    Ready(Box<Generated>),
    /// Not generated and not generatable now: the `Ready=False` condition and when to look again.
    Blocked(Cond, Action),
}

/// The non-secret keys the Secrets carry for `org`, once it has a client ID.
fn public_keys(state: &State, org: &Organization) -> Option<PublicKeys> {
    let client_id = org.client_id()?;
    Some(PublicKeys {
        client_id: client_id.to_string(),
        issuer: crate::tenant::address(org, client_id, &state.ctx.public).issuer,
    })
}

/// Finds the secret of `cs`, or mints it if it never was.
pub async fn obtain(state: &State, cs: &ClientSecret, org: &Organization) -> Result<Obtained, Error> {
    let name = cs.secret_name();
    for attempt in 0..3 {
        // A ClientSecret whose status knows no secret is almost always new: create its Secret
        // without reading first. The create fails if the name is taken (a Secret minted before
        // a status write was lost, or someone else's), and the next round reads and adopts.
        let unread = attempt == 0 && never_generated(cs) && lost(cs, org).is_none();
        if !unread {
            if let Some(existing) = secrets(state, cs).get_opt(&name).await? {
                return adopt(state, cs, org, existing).await;
            }
            if let Some(lost) = lost(cs, org) {
                return Ok(lost);
            }
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

/// Whether the status of `cs` knows of no generated secret.
fn never_generated(cs: &ClientSecret) -> bool {
    cs.status.as_ref().is_none_or(|s| s.fingerprint.is_none())
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
