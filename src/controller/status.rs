//! Writing a controller's part of a status subresource.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The status of an object could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the status of {kind} {name}: {source}")]
pub struct ApplyError {
    /// Kind of the object.
    pub kind: String,
    /// `namespace/name`.
    pub name: String,
    /// The API error.
    #[source]
    pub source: kube::Error,
}

/// Server-side applies `status` to the status subresource of `obj` as field manager
/// `manager` (forced: this manager owns these fields). Only the fields present in `status`
/// are claimed, so several managers can share one status.
pub async fn apply<K>(client: &kube::Client, obj: &K, manager: &str, status: &impl Serialize) -> Result<(), ApplyError>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|source| ApplyError {
        kind: K::kind(&()).to_string(),
        name: format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()),
        source,
    })
}
