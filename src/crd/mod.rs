//! The four custom resources of group `centralauth.io/v1alpha1` and what they share.
//!
//! Validation lives here first: every rule the OpenAPI schema or a CEL expression can carry is
//! declared on the types, so `kubectl apply` refuses bad input before anything is stored. Rules
//! that need other objects (a duplicate subdomain, an app link equal to the organization's own
//! website) are the controllers' job and surface as a `Ready=False` condition plus an event.

pub mod client_secret;
pub mod condition;
pub mod native_app;
pub mod organization;
pub mod provider;
pub mod theme;
pub mod user;

use kube::{CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

pub use client_secret::{
    ActivationMode, ClientSecret, ClientSecretPhase, ClientSecretSpec, ClientSecretStatus, RolloutSpec, WorkloadKind,
    WorkloadRef,
};
pub use native_app::{NativeApp, NativeAppSpec, NativeAppStatus, Platform};
pub use organization::{
    ActiveSecretRef, EmailAttemptType, EmailLogin, HijackProtection, LoginMethods, Organization, OrganizationSpec,
    OrganizationStatus, PasskeyLogin, PasswordLogin, SecretRotation, SmtpTls, UserCreation,
};
pub use provider::{Provider, ProviderType, SecretKeyRef};
pub use theme::{LoginBlockLayout, LoginPageLayout, Theme};
pub use user::{
    PasskeyCredential, USER_FINALIZER, User, UserConnection, UserPasskeys, UserSpec, UserStatus, normalize_email,
    provider_label, provider_subject_hash, user_name,
};

/// API group of every resource this operator owns.
pub const GROUP: &str = "centralauth.io";
/// API version of every resource this operator owns.
pub const VERSION: &str = "v1alpha1";

/// Annotation on a ClientSecret whose value, when equal to the secret's fingerprint, activates
/// a `Manual` secret ("Activate later": proves which secret without revealing it).
pub const ACTIVATE_ANNOTATION: &str = "centralauth.io/activate";
/// Pod-template annotation that marks a workload as rolled out with a given secret
/// (`OnRollout` activation).
pub const ROLLOUT_FINGERPRINT_ANNOTATION: &str = "centralauth.io/client-secret-fingerprint";
/// Annotation on an Organization that keeps its generated client ID, so the ID survives a lost
/// status and an operator restart.
pub const CLIENT_ID_ANNOTATION: &str = "centralauth.io/client-id";
/// Field manager used for every server-side apply and status patch of the operator, except
/// the two below.
pub const FIELD_MANAGER: &str = "centralauth-operator";
/// Field manager of the Organization controller's part of an Organization status (client ID,
/// issuer, login URL, domains, its conditions).
pub const ORG_STATUS_MANAGER: &str = "centralauth-operator/organization";
/// Field manager of the activation record (`status.activeSecret` of an Organization and the
/// conditions about it), written by the ClientSecret controller with a resourceVersion
/// precondition (optimistic concurrency).
pub const ACTIVATION_MANAGER: &str = "centralauth-operator/activation";

/// A reference to an Organization in the same namespace as the referring object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct OrganizationRef {
    /// Name of the Organization, in the same namespace as this object.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message(
        "organizationRef.name must be a lowercase DNS subdomain name (the metadata.name of an Organization)"
    ))]
    pub name: String,
}

/// CEL rule: a Kubernetes object name (RFC 1123 DNS subdomain).
pub(crate) const DNS_SUBDOMAIN_RULE: &str =
    "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')";

/// All CRDs, in the order they are written to `crds/` and printed by `centralauth-operator crds`.
pub fn all_crds() -> Vec<(
    &'static str,
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
)> {
    vec![
        ("organization", Organization::crd()),
        ("clientsecret", ClientSecret::crd()),
        ("nativeapp", NativeApp::crd()),
        ("user", User::crd()),
    ]
}

/// Renders one CRD as the YAML document stored in `crds/<kind>.yaml`.
pub fn crd_yaml(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> String {
    // Serialising a struct of plain data to YAML cannot fail.
    serde_norway::to_string(crd).expect("a CRD always serialises to YAML")
}

/// Every CRD as one multi-document YAML stream (what `centralauth-operator crds` prints): the
/// files of `crds/` joined with `---` separators.
pub fn all_crds_yaml() -> String {
    all_crds()
        .iter()
        .map(|(_, crd)| format!("---\n{}", crd_yaml(crd)))
        .collect()
}
