//! Typed API handles in the namespace of one ClientSecret.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;

use super::State;
use crate::crd::{ClientSecret, Organization};

/// The Secrets of the namespace of `cs`.
pub fn secrets(state: &State, cs: &ClientSecret) -> Api<Secret> {
    Api::namespaced(state.ctx.client.clone(), &cs.namespace().unwrap_or_default())
}

/// The ClientSecrets of the namespace of `cs`.
pub fn client_secrets(state: &State, cs: &ClientSecret) -> Api<ClientSecret> {
    Api::namespaced(state.ctx.client.clone(), &cs.namespace().unwrap_or_default())
}

/// The Organizations of the namespace of `cs`.
pub fn organizations(state: &State, cs: &ClientSecret) -> Api<Organization> {
    Api::namespaced(state.ctx.client.clone(), &cs.namespace().unwrap_or_default())
}
