//! The Kubernetes Secret a ClientSecret owns: its shape, ownership, and the lifecycle markers
//! kept on it.
//!
//! The Secret is written once, with a plain create (POST): the API server refuses a second
//! create of the same name, so two racing reconciles (or two operator processes) can never both
//! mint a secret — the loser re-reads the winner's Secret. Afterwards only non-secret parts
//! change (`issuer`, labels, marker annotations), by JSON merge patches that name only those
//! keys.
//!
//! Lifecycle markers (`centralauth.io/activated-at`, `…/retired-at`, `…/revoked-at`) are
//! annotations on the owned Secret, written before the matching status change. A ClientSecret
//! status is therefore derivable from objects that outlive it: a wiped status (a restore from a
//! backup without status, a `kubectl replace --subresource=status`) never turns a Retiring or
//! Revoked secret back into a Pending one that could be activated again.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use serde_json::{Value, json};

use super::generate::Plaintext;
use crate::crd::ClientSecret;

/// Secret key holding the organization's OAuth client ID.
pub const CLIENT_ID_KEY: &str = "client_id";
/// Secret key holding the client secret itself.
pub const CLIENT_SECRET_KEY: &str = "client_secret";
/// Secret key holding the organization's issuer URL.
pub const ISSUER_KEY: &str = "issuer";
/// Secret key holding the public fingerprint of the secret.
pub const FINGERPRINT_KEY: &str = "fingerprint";

/// Standard label naming the tool that manages an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on every Secret the operator writes.
pub const MANAGED_BY: &str = "centralauth-operator";
/// Label on an owned Secret naming its ClientSecret.
pub const CLIENT_SECRET_LABEL: &str = "centralauth.io/client-secret";
/// Label on an owned Secret (and on a credentials Secret) naming the Organization.
pub const ORGANIZATION_LABEL: &str = "centralauth.io/organization";

/// Annotation on an owned Secret: when its ClientSecret became Active.
pub const ACTIVATED_AT_ANNOTATION: &str = "centralauth.io/activated-at";
/// Annotation on an owned Secret: when a newer secret replaced it.
pub const RETIRED_AT_ANNOTATION: &str = "centralauth.io/retired-at";
/// Annotation on an owned Secret: when it was revoked (terminal).
pub const REVOKED_AT_ANNOTATION: &str = "centralauth.io/revoked-at";
/// Annotation on an owned Secret: UID of the Organization it was generated for, so a secret
/// of a deleted Organization never becomes valid for a new one of the same name.
pub const ORGANIZATION_UID_ANNOTATION: &str = "centralauth.io/organization-uid";

/// Lifecycle milestones of one ClientSecret, as recorded on its Secret or in its status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Markers {
    /// When it became Active.
    pub activated_at: Option<Timestamp>,
    /// When a newer secret replaced it.
    pub retired_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

impl Markers {
    /// The markers recorded in a Secret's annotations.
    pub fn from_meta(meta: &ObjectMeta) -> Markers {
        let read = |key: &str| {
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .and_then(|v| v.parse::<Timestamp>().ok())
        };
        Markers {
            activated_at: read(ACTIVATED_AT_ANNOTATION),
            retired_at: read(RETIRED_AT_ANNOTATION),
            revoked_at: read(REVOKED_AT_ANNOTATION),
        }
    }

    /// Each marker from `self`, else from `other`.
    pub fn or(&self, other: &Markers) -> Markers {
        Markers {
            activated_at: self.activated_at.or(other.activated_at),
            retired_at: self.retired_at.or(other.retired_at),
            revoked_at: self.revoked_at.or(other.revoked_at),
        }
    }

    /// A merge patch adding the markers of `self` that `current` does not carry yet, or `None`
    /// when there is nothing to add. Existing markers are never moved.
    pub fn patch_missing(&self, current: &ObjectMeta) -> Option<Value> {
        let have = Markers::from_meta(current);
        let mut add = serde_json::Map::new();
        for (key, want, had) in [
            (ACTIVATED_AT_ANNOTATION, self.activated_at, have.activated_at),
            (RETIRED_AT_ANNOTATION, self.retired_at, have.retired_at),
            (REVOKED_AT_ANNOTATION, self.revoked_at, have.revoked_at),
        ] {
            if let (Some(t), None) = (want, had) {
                add.insert(key.to_string(), Value::String(t.to_string()));
            }
        }
        (!add.is_empty()).then(|| json!({"metadata": {"annotations": add}}))
    }
}

/// Whether `meta` carries a controller owner reference to the object with `uid`.
pub fn owned_by(meta: &ObjectMeta, uid: Option<&str>) -> bool {
    let Some(uid) = uid else { return false };
    meta.owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == uid && r.controller == Some(true)))
}

/// The non-secret keys of an owned Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeys {
    /// The organization's client ID.
    pub client_id: String,
    /// The organization's issuer.
    pub issuer: String,
}

/// The Secret to create for `cs`, holding `plaintext`.
pub fn build(cs: &ClientSecret, org_uid: Option<&str>, keys: &PublicKeys, plaintext: &Plaintext) -> Secret {
    let mut annotations = BTreeMap::new();
    if let Some(uid) = org_uid {
        annotations.insert(ORGANIZATION_UID_ANNOTATION.to_string(), uid.to_string());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(cs.secret_name()),
            namespace: cs.metadata.namespace.clone(),
            labels: Some(labels(cs)),
            annotations: Some(annotations),
            owner_references: cs.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(data(keys, plaintext)),
        ..Default::default()
    }
}

/// The four keys of an owned (or credentials) Secret.
pub fn data(keys: &PublicKeys, plaintext: &Plaintext) -> BTreeMap<String, ByteString> {
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    BTreeMap::from([
        (CLIENT_ID_KEY.to_string(), bytes(&keys.client_id)),
        (CLIENT_SECRET_KEY.to_string(), bytes(plaintext.expose())),
        (ISSUER_KEY.to_string(), bytes(&keys.issuer)),
        (FINGERPRINT_KEY.to_string(), bytes(&plaintext.fingerprint())),
    ])
}

fn labels(cs: &ClientSecret) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        (
            CLIENT_SECRET_LABEL.to_string(),
            cs.metadata.name.clone().unwrap_or_default(),
        ),
        (ORGANIZATION_LABEL.to_string(), cs.spec.organization_ref.name.clone()),
    ])
}

/// The plaintext held by a Secret, if it holds a valid UTF-8 `client_secret`.
pub fn plaintext(secret: &Secret) -> Option<Plaintext> {
    let bytes = secret.data.as_ref()?.get(CLIENT_SECRET_KEY)?;
    String::from_utf8(bytes.0.clone()).ok().map(Plaintext::new)
}

/// A string key of a Secret's data.
pub fn data_str<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    let bytes = secret.data.as_ref()?.get(key)?;
    std::str::from_utf8(&bytes.0).ok()
}

/// A merge patch bringing the non-secret keys, the fingerprint key and the labels of an owned
/// Secret up to date, or `None` when they already are. Never touches `client_secret`.
pub fn sync_patch(cs: &ClientSecret, secret: &Secret, keys: &PublicKeys, fingerprint: &str) -> Option<Value> {
    let mut data = serde_json::Map::new();
    for (key, want) in [
        (CLIENT_ID_KEY, keys.client_id.as_str()),
        (ISSUER_KEY, keys.issuer.as_str()),
        (FINGERPRINT_KEY, fingerprint),
    ] {
        if data_str(secret, key) != Some(want) {
            data.insert(key.to_string(), json!(ByteString(want.as_bytes().to_vec())));
        }
    }
    let want_labels = labels(cs);
    let have_labels = secret.metadata.labels.clone().unwrap_or_default();
    let missing_labels: serde_json::Map<String, Value> = want_labels
        .into_iter()
        .filter(|(k, v)| have_labels.get(k) != Some(v))
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    if data.is_empty() && missing_labels.is_empty() {
        return None;
    }
    let mut patch = json!({});
    if !data.is_empty() {
        patch["data"] = Value::Object(data);
    }
    if !missing_labels.is_empty() {
        patch["metadata"] = json!({"labels": missing_labels});
    }
    Some(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::client_secret::generate::generate_secret;

    fn cs() -> ClientSecret {
        serde_json::from_value(json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret",
            "metadata": {"name": "gen-1", "namespace": "ns", "uid": "cs-uid"},
            "spec": {"organizationRef": {"name": "acme"}, "secretName": "acme-secret"}
        }))
        .unwrap()
    }

    fn keys() -> PublicKeys {
        PublicKeys {
            client_id: "client-123".into(),
            issuer: "https://acme.auth.test".into(),
        }
    }

    #[test]
    fn built_secret_is_owned_labelled_and_complete() {
        let plaintext = generate_secret().unwrap();
        let s = build(&cs(), Some("org-uid"), &keys(), &plaintext);
        assert_eq!(s.metadata.name.as_deref(), Some("acme-secret"));
        assert!(owned_by(&s.metadata, Some("cs-uid")));
        assert!(!owned_by(&s.metadata, Some("other")));
        let labels = s.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(labels[CLIENT_SECRET_LABEL], "gen-1");
        assert_eq!(labels[ORGANIZATION_LABEL], "acme");
        assert_eq!(data_str(&s, FINGERPRINT_KEY), Some(plaintext.fingerprint().as_str()));
        assert_eq!(super::plaintext(&s).unwrap(), plaintext);
        assert_eq!(sync_patch(&cs(), &s, &keys(), &plaintext.fingerprint()), None);
    }

    #[test]
    fn sync_patch_names_only_changed_public_keys() {
        let plaintext = generate_secret().unwrap();
        let s = build(&cs(), None, &keys(), &plaintext);
        let moved = PublicKeys {
            issuer: "https://login.acme.com".into(),
            ..keys()
        };
        let patch = sync_patch(&cs(), &s, &moved, &plaintext.fingerprint()).unwrap();
        let data = patch["data"].as_object().unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["issuer"]);
        assert!(!patch.to_string().contains(plaintext.expose()));
    }

    #[test]
    fn markers_patch_adds_only_missing_ones() {
        let t1: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let t2: Timestamp = "2030-01-02T00:00:00Z".parse().unwrap();
        let meta = ObjectMeta {
            annotations: Some(BTreeMap::from([(ACTIVATED_AT_ANNOTATION.to_string(), t1.to_string())])),
            ..Default::default()
        };
        assert_eq!(Markers::from_meta(&meta).activated_at, Some(t1));
        let want = Markers {
            activated_at: Some(t2),
            retired_at: Some(t2),
            revoked_at: None,
        };
        let patch = want.patch_missing(&meta).unwrap();
        assert_eq!(
            patch,
            json!({"metadata": {"annotations": {RETIRED_AT_ANNOTATION: t2.to_string()}}})
        );
        assert_eq!(Markers::default().patch_missing(&meta), None);
    }
}
