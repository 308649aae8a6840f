//! The organization's credentials Secret (`spec.credentialsSecretName`): one stable name that
//! always holds the secret apps should use now, so a workload mounts one name across rotations.
//!
//! Created by the operator with the Organization as its controller owner (garbage-collected
//! with it). Its four keys are a copy of the chosen ClientSecret's own Secret. A Secret of that
//! name the operator does not own is never overwritten.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::secret::{
    CLIENT_ID_KEY, CLIENT_SECRET_KEY, FINGERPRINT_KEY, ISSUER_KEY, MANAGED_BY, MANAGED_BY_LABEL, ORGANIZATION_LABEL,
    data_str, owned_by,
};
use crate::crd::{FIELD_MANAGER, Organization};

/// Label marking a credentials Secret.
pub const CREDENTIALS_LABEL: &str = "centralauth.io/credentials";

/// What happened to the credentials Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The organization has no `credentialsSecretName`.
    NotConfigured,
    /// It already held what was asked.
    Unchanged,
    /// Created or switched.
    Written,
    /// A Secret of that name exists that the operator does not own: left alone.
    Foreign(String),
}

/// How far to go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Make it hold the source secret, whatever it held.
    Switch,
    /// Create it when missing, and refresh the public keys when it holds the source secret;
    /// never switch it from another secret (a pending rollout may have staged one).
    Keep,
}

/// Makes the credentials Secret of `org` hold the four keys of `source` (per `mode`).
pub async fn ensure(client: &Client, org: &Organization, source: &Secret, mode: Mode) -> kube::Result<Outcome> {
    let Some(name) = org.spec.credentials_secret_name.clone() else {
        return Ok(Outcome::NotConfigured);
    };
    let ns = org.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let want = copy_keys(source);
    for _ in 0..3 {
        let Some(current) = api.get_opt(&name).await? else {
            match api.create(&post_params(), &build(org, &name, want.clone())).await {
                Ok(_) => return Ok(Outcome::Written),
                Err(kube::Error::Api(s)) if s.is_already_exists() => continue,
                Err(e) => return Err(e),
            }
        };
        if !owned_by(&current.metadata, org.uid().as_deref()) {
            return Ok(Outcome::Foreign(name));
        }
        let same_secret = data_str(&current, FINGERPRINT_KEY) == data_str(source, FINGERPRINT_KEY)
            && current.data.as_ref().and_then(|d| d.get(CLIENT_SECRET_KEY)) == want.get(CLIENT_SECRET_KEY);
        if current.data.as_ref() == Some(&want) || (mode == Mode::Keep && !same_secret) {
            return Ok(Outcome::Unchanged);
        }
        let patch = json!({"data": want});
        api.patch(&name, &patch_params(), &Patch::Merge(&patch)).await?;
        return Ok(Outcome::Written);
    }
    Err(kube::Error::Api(Box::new(kube::core::Status::failure(
        &format!("Secret {ns}/{name} kept appearing and disappearing"),
        "Conflict",
    ))))
}

/// The fingerprint the credentials Secret holds, when it exists and the operator owns it.
pub async fn held_fingerprint(client: &Client, org: &Organization) -> kube::Result<Option<String>> {
    let Some(name) = org.spec.credentials_secret_name.as_deref() else {
        return Ok(None);
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), &org.namespace().unwrap_or_default());
    Ok(api
        .get_opt(name)
        .await?
        .filter(|s| owned_by(&s.metadata, org.uid().as_deref()))
        .and_then(|s| data_str(&s, FINGERPRINT_KEY).map(str::to_string)))
}

fn copy_keys(source: &Secret) -> BTreeMap<String, ByteString> {
    let data = source.data.clone().unwrap_or_default();
    [CLIENT_ID_KEY, CLIENT_SECRET_KEY, ISSUER_KEY, FINGERPRINT_KEY]
        .into_iter()
        .filter_map(|k| data.get(k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

fn build(org: &Organization, name: &str, data: BTreeMap<String, ByteString>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: org.namespace(),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
                (ORGANIZATION_LABEL.to_string(), org.name_any()),
                (CREDENTIALS_LABEL.to_string(), "true".to_string()),
            ])),
            owner_references: org.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(data),
        ..Default::default()
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}
