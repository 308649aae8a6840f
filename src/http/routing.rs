//! Host-based routing: which organization a request is for.
//!
//! - An organization's own host (`customDomain`, `<subdomain>.<base-domain>`) serves the
//!   CentralAuth endpoints and the standard endpoints at the root (`/oauth2/…`), and its
//!   issuer is that origin.
//! - The shared base domain serves every organization: the CentralAuth endpoints pick it by
//!   `client_id` (or, at `/api/v1/verify` for native apps, by the code), and the standard
//!   endpoints live under `/o/<clientId>/…` for organizations without a host of their own —
//!   whose issuer is `<base>/o/<clientId>`. An organization with its own host is not served
//!   under `/o/…`: its issuer is its own origin, and one issuer has one set of endpoints.

use std::sync::Arc;

use axum::http::HeaderMap;

use crate::crd::{ClientSecret, NativeApp, Organization};
use crate::oauth::grant::OrgKey;

use super::AppState;

/// Which kind of host a request came to.
pub enum Site {
    /// An organization's own host.
    Own(Arc<Organization>),
    /// The shared base domain.
    Base,
}

/// The request's host name, lower-cased, without port.
pub fn host(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(axum::http::header::HOST)?.to_str().ok()?;
    let name = if raw.starts_with('[') {
        raw.split_inclusive(']').next()?
    } else {
        raw.split(':').next()?
    };
    Some(name.to_ascii_lowercase())
}

impl AppState {
    /// The site a host belongs to; `None` for hosts this server does not serve.
    pub fn site(&self, host: &str) -> Option<Site> {
        if host == self.public.base_domain {
            return Some(Site::Base);
        }
        self.caches
            .organizations
            .state()
            .into_iter()
            .find(|org| {
                crate::tenant::own_host(org, &self.public).as_deref() == Some(host)
                    || org.spec.custom_domain.as_deref() == Some(host)
            })
            .map(Site::Own)
    }

    /// The organization whose client ID is `client_id`.
    pub fn org_by_client_id(&self, client_id: &str) -> Option<Arc<Organization>> {
        self.caches
            .organizations
            .state()
            .into_iter()
            .find(|org| org.client_id() == Some(client_id))
    }

    /// The organization `key` names, if it still exists (same UID).
    pub fn org_by_key(&self, key: &OrgKey) -> Option<Arc<Organization>> {
        let r = kube::runtime::reflector::ObjectRef::new(&key.name).within(&key.namespace);
        self.caches
            .organizations
            .get(&r)
            .filter(|org| org.metadata.uid.as_deref() == Some(key.uid.as_str()))
    }

    /// The organization's issuer identifier.
    pub fn issuer(&self, org: &Organization) -> String {
        crate::tenant::address(org, org.client_id().unwrap_or_default(), &self.public).issuer
    }

    /// The organization's ClientSecrets.
    pub fn client_secrets_of(&self, org: &Organization) -> Vec<Arc<ClientSecret>> {
        self.caches
            .client_secrets
            .state()
            .into_iter()
            .filter(|cs| {
                cs.metadata.namespace == org.metadata.namespace
                    && Some(&cs.spec.organization_ref.name) == org.metadata.name.as_ref()
            })
            .collect()
    }

    /// The organization's NativeApps.
    pub fn native_apps_of(&self, org: &Organization) -> Vec<Arc<NativeApp>> {
        self.caches
            .native_apps
            .state()
            .into_iter()
            .filter(|na| {
                na.metadata.namespace == org.metadata.namespace
                    && Some(&na.spec.organization_ref.name) == org.metadata.name.as_ref()
            })
            .collect()
    }
}

/// The store identity of an organization.
pub fn org_key(org: &Organization) -> OrgKey {
    OrgKey {
        namespace: org.metadata.namespace.clone().unwrap_or_default(),
        name: org.metadata.name.clone().unwrap_or_default(),
        uid: org.metadata.uid.clone().unwrap_or_default(),
    }
}
