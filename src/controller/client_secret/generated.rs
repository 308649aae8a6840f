//! What one reconcile knows about the generated secret ([`Generated`]), and what a lifecycle
//! step leaves to do ([`Stepped`]): shared by the steps (activation, pending, retirement) and
//! the reconcile that runs them.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;

use super::api::secrets;
use super::secret::Markers;
use super::status::{self, Cond, SecretFacts, Verdict};
use super::{Error, State};
use crate::crd::{ClientSecret, ClientSecretPhase};

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

    /// Records `markers` on the owned Secret, then returns the verdict `phase` with them, the
    /// `Activated` condition `activated` and this secret's own `Ready`.
    pub async fn marked_verdict(
        &self,
        state: &State,
        cs: &ClientSecret,
        phase: ClientSecretPhase,
        markers: Markers,
        activated: Cond,
    ) -> Result<Verdict, Error> {
        self.record_markers(state, cs, &markers).await?;
        Ok(Verdict {
            phase,
            markers,
            ready: self.ready(),
            activated,
        })
    }
}

/// A step either leaves the status to write, or wrote it itself.
pub enum Stepped {
    /// Write this verdict, then act.
    Write(Verdict, Action),
    /// The status is written already.
    Done(Action),
}
