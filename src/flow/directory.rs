//! The directory: which organization a request is for, read-only over the routing index.
//!
//! - An organization's own host (`customDomain`, `<subdomain>.<base-domain>`) serves the
//!   CentralAuth endpoints and the standard endpoints at the root (`/oauth2/…`), and its
//!   issuer is that origin.
//! - The shared base domain serves every organization: the CentralAuth endpoints pick it by
//!   `client_id` (or, at `/api/v1/verify` for native apps, by the code), and the standard
//!   endpoints live under `/o/<clientId>/…` for organizations without a host of their own —
//!   whose issuer is `<base>/o/<clientId>`. An organization with its own host is not served
//!   under `/o/…`: its issuer is its own origin, and one issuer has one set of endpoints.
//!
//! Lookups go through an [`Index`] of the caches — hash tables rebuilt only after a cache
//! changed — so a request costs the same with one tenant or thousands. When two organizations
//! claim one host or client ID, the index serves the one the Organization controller leaves
//! Ready: the earlier ([`crate::tenant::seniority`]).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, RwLock};

use kube::ResourceExt;

use crate::crd::{ClientSecret, NativeApp, Organization};
use crate::oauth::grant::OrgKey;
use crate::runtime::cache::Caches;
use crate::tenant::{PublicBase, seniority};

use super::Flows;
use super::error::{FlowError, FlowResult};

/// `(namespace, organization name)`: how ClientSecrets and NativeApps refer to their
/// organization.
type OrgName = (String, String);

/// Lookup tables over the caches at one [`Caches::generation`].
#[derive(Default)]
pub struct Index {
    generation: Option<u64>,
    hosts: HashMap<String, Arc<Organization>>,
    client_ids: HashMap<String, Arc<Organization>>,
    client_secrets: HashMap<OrgName, Vec<Arc<ClientSecret>>>,
    native_apps: HashMap<OrgName, Vec<Arc<NativeApp>>>,
}

impl Index {
    fn of(caches: &Caches, public: &PublicBase, generation: u64) -> Index {
        let mut index = Index::build(
            caches.organizations.state(),
            caches.client_secrets.state(),
            caches.native_apps.state(),
            public,
        );
        index.generation = Some(generation);
        index
    }

    fn build(
        orgs: Vec<Arc<Organization>>,
        secrets: Vec<Arc<ClientSecret>>,
        apps: Vec<Arc<NativeApp>>,
        public: &PublicBase,
    ) -> Index {
        let mut index = Index::default();
        for org in orgs {
            if let Some(host) = crate::tenant::own_host(&org, public) {
                keep_senior(&mut index.hosts, host, &org);
            }
            if let Some(id) = org.client_id() {
                keep_senior(&mut index.client_ids, id.to_string(), &org);
            }
        }
        for cs in secrets {
            let key = (
                cs.namespace().unwrap_or_default(),
                cs.spec.organization_ref.name.clone(),
            );
            index.client_secrets.entry(key).or_default().push(cs);
        }
        for app in apps {
            let key = (
                app.namespace().unwrap_or_default(),
                app.spec.organization_ref.name.clone(),
            );
            index.native_apps.entry(key).or_default().push(app);
        }
        index
    }
}

impl Index {
    /// The organization's ClientSecrets, as of this index.
    pub fn client_secrets_of(&self, org: &Organization) -> Vec<Arc<ClientSecret>> {
        self.client_secrets.get(&org_name(org)).cloned().unwrap_or_default()
    }
}

fn keep_senior(map: &mut HashMap<String, Arc<Organization>>, key: String, org: &Arc<Organization>) {
    match map.entry(key) {
        Entry::Vacant(e) => {
            e.insert(org.clone());
        }
        Entry::Occupied(mut e) if seniority(org) < seniority(e.get()) => {
            e.insert(org.clone());
        }
        Entry::Occupied(_) => {}
    }
}

fn org_name(org: &Organization) -> OrgName {
    (org.namespace().unwrap_or_default(), org.name_any())
}

/// The current [`Index`], shared by every request of a server.
#[derive(Clone, Default)]
pub struct SharedIndex(Arc<RwLock<Arc<Index>>>);

impl SharedIndex {
    /// The index of the caches as they are now: the shared one, or — when the caches changed
    /// since it was built — a fresh one. One request rebuilds while the others wait for it.
    pub fn current(&self, caches: &Caches, public: &PublicBase) -> Arc<Index> {
        let generation = caches.generation();
        let fresh = |index: &Index| index.generation.is_some_and(|g| g >= generation);
        let shared = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        if fresh(&shared) {
            return shared;
        }
        let mut slot = self.0.write().unwrap_or_else(|p| p.into_inner());
        if !fresh(&slot) {
            *slot = Arc::new(Index::of(caches, public, generation));
        }
        slot.clone()
    }
}

/// Which kind of host a request came to.
pub enum Site {
    /// An organization's own host.
    Own(Arc<Organization>),
    /// The shared base domain.
    Base,
}

impl Flows {
    pub(super) fn index(&self) -> Arc<Index> {
        self.index.current(&self.caches, &self.public)
    }

    /// The site a host belongs to; `None` for hosts this server does not serve.
    pub fn site(&self, host: &str) -> Option<Site> {
        if host == self.public.base_domain {
            return Some(Site::Base);
        }
        self.index().hosts.get(host).cloned().map(Site::Own)
    }

    /// The organization whose client ID is `client_id`.
    pub fn org_by_client_id(&self, client_id: &str) -> Option<Arc<Organization>> {
        self.index().client_ids.get(client_id).cloned()
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
        crate::tenant::issuer(org, org.client_id().unwrap_or_default(), &self.public)
    }

    /// The organization's ClientSecrets.
    pub fn client_secrets_of(&self, org: &Organization) -> Vec<Arc<ClientSecret>> {
        self.index().client_secrets_of(org)
    }

    /// The organization's NativeApps.
    pub fn native_apps_of(&self, org: &Organization) -> Vec<Arc<NativeApp>> {
        self.index()
            .native_apps
            .get(&org_name(org))
            .cloned()
            .unwrap_or_default()
    }
}

impl Flows {
    /// The organization of a standard endpoint: its own host, or `/o/<clientId>` on the base
    /// domain (only for organizations without a host of their own: one issuer, one set of
    /// endpoints).
    pub fn standard_org(&self, host: Option<&str>, path_client_id: Option<&str>) -> Option<Arc<Organization>> {
        match (self.site(host?)?, path_client_id) {
            (Site::Own(org), None) => Some(org),
            (Site::Base, Some(cid)) => self
                .org_by_client_id(cid)
                .filter(|org| crate::tenant::own_host(org, &self.public).is_none()),
            _ => None,
        }
    }

    /// The organization a CentralAuth API request is for: its own host, else the client ID on
    /// the base domain (`None` when neither names one: native verify finds it through the code).
    pub fn api_org(&self, host: Option<&str>, client_id: Option<&str>) -> FlowResult<Option<Arc<Organization>>> {
        match host.and_then(|h| self.site(h)) {
            Some(Site::Own(org)) => Ok(Some(org)),
            Some(Site::Base) => Ok(client_id.and_then(|c| self.org_by_client_id(c))),
            None => Err(FlowError::HostNotServed),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::tests::{created, org};

    fn base() -> PublicBase {
        PublicBase {
            scheme: "https".into(),
            base_domain: "auth.example.net".into(),
            port: None,
        }
    }

    fn secret(name: &str, org: &str) -> Arc<ClientSecret> {
        let cs = serde_json::json!({"apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret",
            "metadata": {"name": name, "namespace": "ns"}, "spec": {"organizationRef": {"name": org}}});
        Arc::new(serde_json::from_value(cs).unwrap())
    }

    #[test]
    fn a_contested_host_or_client_id_goes_to_the_earlier_organization_in_any_order() {
        let early = Arc::new(created(org(Some("acme"), None), "early", 100, Some("cid-1")));
        let late = Arc::new(created(org(Some("acme"), None), "late", 200, Some("cid-1")));
        let own = Arc::new(created(
            org(Some("own"), Some("login.own.com")),
            "own",
            150,
            Some("cid-2"),
        ));
        for orgs in [
            vec![late.clone(), early.clone(), own.clone()],
            vec![own.clone(), early.clone(), late.clone()],
        ] {
            let index = Index::build(orgs, vec![], vec![], &base());
            let name = |o: Option<&Arc<Organization>>| o.and_then(|o| o.metadata.name.clone());
            assert_eq!(name(index.hosts.get("acme.auth.example.net")).as_deref(), Some("early"));
            assert_eq!(name(index.client_ids.get("cid-1")).as_deref(), Some("early"));
            // The custom domain is the own host; the subdomain host is not served then.
            assert_eq!(name(index.hosts.get("login.own.com")).as_deref(), Some("own"));
            assert!(!index.hosts.contains_key("own.auth.example.net"));
        }
    }

    #[test]
    fn client_secrets_are_grouped_under_their_organization() {
        let secrets = vec![secret("a1", "a"), secret("b1", "b"), secret("a2", "a")];
        let index = Index::build(vec![], secrets, vec![], &base());
        let names = |org: &str| -> Vec<String> {
            let mut v: Vec<String> = index.client_secrets[&("ns".to_string(), org.to_string())]
                .iter()
                .filter_map(|cs| cs.metadata.name.clone())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names("a"), ["a1", "a2"]);
        assert_eq!(names("b"), ["b1"]);
        assert!(
            !index
                .client_secrets
                .contains_key(&("other".to_string(), "a".to_string()))
        );
    }
}
