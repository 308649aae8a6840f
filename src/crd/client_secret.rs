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
