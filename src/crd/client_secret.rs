//! `ClientSecret`: one generation of an organization's client secret.
//!
//! The plaintext lives only in the Kubernetes Secret the operator writes; this object carries
//! the public fingerprint, the argon2id hash the server verifies against, and the phase
//! `Pending → Active → (Retiring →) Revoked`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DNS_SUBDOMAIN_RULE, OrganizationRef};

/// One generated client secret of an Organization.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "centralauth.io",
    version = "v1alpha1",
    kind = "ClientSecret",
    namespaced,
    doc = "A ClientSecret: one generated client secret of an Organization, its public fingerprint and its phase Pending, Active, Retiring or Revoked. The secret itself is only in the Kubernetes Secret the operator writes.",
    status = "ClientSecretStatus",
    // Not `cs`: kubectl resolves `cs` to the built-in componentstatuses first.
    shortname = "csec",
    category = "centralauth",
    printcolumn = r#"{"name":"Organization","type":"string","jsonPath":".spec.organizationRef.name"}"#,
    printcolumn = r#"{"name":"Activation","type":"string","jsonPath":".spec.activation"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Fingerprint","type":"string","jsonPath":".status.fingerprint"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.activation != 'OnRollout' || (has(self.rollout) && size(self.rollout.workloads) > 0)")
    .message("activation OnRollout needs rollout.workloads: the Deployments, StatefulSets or DaemonSets that mount this secret")
    .field_path(".rollout"))]
#[x_kube(validation = Rule::new("!has(self.rollout) || self.activation == 'OnRollout'")
    .message("rollout is only used with activation: OnRollout; remove it or set activation: OnRollout")
    .field_path(".rollout"))]
#[x_kube(validation = Rule::new("self.organizationRef == oldSelf.organizationRef")
    .message("organizationRef is immutable: a secret belongs to one organization for its whole life")
    .field_path(".organizationRef"))]
#[x_kube(validation = Rule::new("has(self.secretName) == has(oldSelf.secretName) && (!has(self.secretName) || self.secretName == oldSelf.secretName)")
    .message("secretName is immutable: the generated secret is written once")
    .field_path(".secretName"))]
pub struct ClientSecretSpec {
    /// The Organization (same namespace) this secret authenticates.
    pub organization_ref: OrganizationRef,

    /// Name of the Kubernetes Secret to write the generated secret into (keys `client_id`,
    /// `client_secret`, `issuer`, `fingerprint`). Defaults to this ClientSecret's name. A
    /// Secret of that name that this ClientSecret does not own is never overwritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("secretName must be a valid Secret name (lowercase DNS subdomain)"))]
    pub secret_name: Option<String>,

    /// When this secret becomes the organization's active secret (which revokes the previous
    /// one): `Immediate` ("Activate now"), `Manual` ("Activate later": when the annotation
    /// `centralauth.io/activate` equals the fingerprint) or `OnRollout` (when every workload in
    /// `rollout.workloads` carries the fingerprint on its pod template).
    #[serde(default)]
    pub activation: ActivationMode,

    /// Workloads whose rollout activates this secret (`activation: OnRollout` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
}

/// How a ClientSecret gets activated.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ActivationMode {
    /// Active as soon as it is generated ("Activate now").
    Immediate,
    /// Active when annotation `centralauth.io/activate` equals the fingerprint ("Activate later").
    #[default]
    Manual,
    /// Active when every listed workload's pod template carries
    /// `centralauth.io/client-secret-fingerprint: <fingerprint>`.
    OnRollout,
}

/// Rollout-driven activation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Deployments, StatefulSets and DaemonSets (same namespace) that mount this secret. The
    /// secret activates when all of them carry its fingerprint annotation, and the previous
    /// secret is retired only once all of them finished rolling out.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["kind".into(), "name".into()]))]
    pub workloads: Vec<WorkloadRef>,

    /// When true the operator itself writes the new secret into the organization's
    /// `credentialsSecretName` Secret and then stamps the fingerprint annotation on the listed
    /// pod templates, which starts the rollout. When false the pipeline stamps it.
    #[serde(default)]
    pub stamp: bool,
}

/// A workload in the ClientSecret's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// Kind of the workload.
    pub kind: WorkloadKind,
    /// Name of the workload.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("workload name must be a lowercase DNS subdomain name"))]
    pub name: String,
}

/// Kinds of workloads a rollout can wait for (group `apps/v1`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
}

/// Lifecycle phase of a ClientSecret.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientSecretPhase {
    /// Generated, not yet accepted by the server.
    Pending,
    /// The organization's one active secret.
    Active,
    /// Replaced by a newer secret; still accepted until its grace period and rollout end.
    Retiring,
    /// No longer accepted. Terminal.
    Revoked,
}

/// Observed state of a ClientSecret. Never contains the secret itself.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecretStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: `Ready`, and `Activated` explaining what activation waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClientSecretPhase>,

    /// Public, non-reversible identifier of the secret (`sha256:<hex>`); the value that
    /// activates it through the `centralauth.io/activate` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,

    /// argon2id PHC hash of the secret, what the server verifies client authentication against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,

    /// Name of the Kubernetes Secret holding the plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// When the secret was generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<Time>,

    /// When it became Active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<Time>,

    /// When a newer secret replaced it (start of Retiring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<Time>,

    /// When it stopped being accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Time>,
}

impl ClientSecret {
    /// The lifecycle phase (`Pending` until the status says otherwise).
    pub fn phase(&self) -> ClientSecretPhase {
        self.status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(ClientSecretPhase::Pending)
    }

    /// Name of the Kubernetes Secret holding the plaintext.
    pub fn secret_name(&self) -> String {
        self.spec
            .secret_name
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }

    /// Whether the server may accept this secret for `org` right now: the organization's status
    /// (the single record of activation) names it as active, or it is `Retiring` (inside its
    /// grace period or rollout). A secret whose own status still says `Active` but that the
    /// organization no longer names is refused.
    pub fn authenticates_for(&self, org: &super::Organization) -> bool {
        let same_namespace = self.metadata.namespace == org.metadata.namespace;
        let same_org = Some(&self.spec.organization_ref.name) == org.metadata.name.as_ref();
        let has_hash = self.status.as_ref().is_some_and(|s| s.secret_hash.is_some());
        if !(same_namespace && same_org && has_hash) {
            return false;
        }
        let named_active = org
            .active_secret()
            .is_some_and(|a| Some(&a.name) == self.metadata.name.as_ref() && a.uid == self.metadata.uid);
        named_active || self.phase() == ClientSecretPhase::Retiring
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ActiveSecretRef, Organization, OrganizationStatus};

    fn org(active: Option<(&str, &str)>) -> Organization {
        let mut org: Organization = serde_json::from_value(serde_json::json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization",
            "metadata": {"name": "acme", "namespace": "ns"},
            "spec": {"displayName": "Acme", "loginMethods": {"passwords": {"secretName": "u"}}}
        }))
        .unwrap();
        org.status = Some(OrganizationStatus {
            active_secret: active.map(|(name, uid)| ActiveSecretRef {
                name: name.into(),
                uid: Some(uid.into()),
                fingerprint: "sha256:x".into(),
                activated_at: None,
            }),
            ..Default::default()
        });
        org
    }

    fn secret(name: &str, uid: &str, phase: ClientSecretPhase) -> ClientSecret {
        let mut cs: ClientSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret",
            "metadata": {"name": name, "namespace": "ns", "uid": uid},
            "spec": {"organizationRef": {"name": "acme"}}
        }))
        .unwrap();
        cs.status = Some(ClientSecretStatus {
            phase: Some(phase),
            secret_hash: Some("$argon2id$…".into()),
            ..Default::default()
        });
        cs
    }

    #[test]
    fn only_the_recorded_active_secret_and_retiring_ones_authenticate() {
        let org = org(Some(("new", "uid-new")));
        assert!(secret("new", "uid-new", ClientSecretPhase::Active).authenticates_for(&org));
        // Status not caught up yet: the organization's record decides.
        assert!(secret("new", "uid-new", ClientSecretPhase::Pending).authenticates_for(&org));
        assert!(!secret("old", "uid-old", ClientSecretPhase::Active).authenticates_for(&org));
        assert!(secret("old", "uid-old", ClientSecretPhase::Retiring).authenticates_for(&org));
        assert!(!secret("old", "uid-old", ClientSecretPhase::Revoked).authenticates_for(&org));
        // Same name, recreated object: not the active one.
        assert!(!secret("new", "uid-other", ClientSecretPhase::Active).authenticates_for(&org));
        assert!(!secret("new", "uid-new", ClientSecretPhase::Active).authenticates_for(&self::org(None)));
    }
}
