//! Which Secrets the request path needs (named by the caches, with the keys read from each:
//! passwords, SMTP credentials, upstream providers' client secrets, client secrets),
//! and which of a unit's two watches delivers each.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::watcher;

use crate::controller::client_secret::secret::{CLIENT_SECRET_KEY, CLIENT_SECRET_LABEL};
use crate::runtime::cache::Caches;

/// Field selector of the user watch: Secrets of these types never hold logins.
const USER_FIELDS: &str = "type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token";
/// Page size of the user watch's lists.
const USER_PAGE_SIZE: u32 = 100;

/// `(namespace, name)` of a Secret, as shared strings: the follower holds each named Secret in
/// several maps (named, held, delivered by, named since), where a clone is a reference count,
/// and every Secret of a namespace shares one namespace string.
pub type SecretRef = (Arc<str>, Arc<str>);

/// The [`SecretRef`] of Secret `namespace/name`.
pub fn secret_ref(namespace: &str, name: &str) -> SecretRef {
    (namespace.into(), name.into())
}

/// The Secrets the caches name, with the keys the server reads from each (one to three: a
/// list, not a set — a `BTreeSet` node costs ~300 bytes whatever it holds).
pub type Wanted = HashMap<SecretRef, Vec<String>>;

/// Adds `key` of Secret `r` to `refs`, once.
fn want(refs: &mut Wanted, r: SecretRef, key: &str) {
    let keys = refs.entry(r).or_default();
    if !keys.iter().any(|k| k == key) {
        keys.push(key.to_string());
    }
}

/// The Secrets the current organizations and client secrets need, with the keys read from each.
pub fn wanted(caches: &Caches) -> Wanted {
    let mut refs = Wanted::new();
    let mut namespaces: HashSet<Arc<str>> = HashSet::new();
    let mut shared = |ns: &str| -> Arc<str> {
        if let Some(known) = namespaces.get(ns) {
            return Arc::clone(known);
        }
        let new: Arc<str> = ns.into();
        namespaces.insert(Arc::clone(&new));
        new
    };
    let orgs = caches.organizations.state();
    for org in &orgs {
        let Some(ns) = org.metadata.namespace.as_deref() else {
            continue;
        };
        let ns = shared(ns);
        let methods = &org.spec.login_methods;
        if let Some(pw) = &methods.passwords {
            want(&mut refs, (ns.clone(), pw.secret_name.as_str().into()), &pw.key);
        }
        if let Some(name) = methods
            .email
            .as_ref()
            .and_then(|e| e.credentials_secret_name.as_deref())
        {
            let name: Arc<str> = name.into();
            want(&mut refs, (ns.clone(), name.clone()), "username");
            want(&mut refs, (ns.clone(), name), "password");
        }
        for p in &methods.providers {
            let r = &p.client_secret_ref;
            want(&mut refs, (ns.clone(), r.name.as_str().into()), &r.key);
        }
    }
    let by_name = crate::crd::organization::by_name(&orgs);
    for cs in caches.client_secrets.state() {
        let Some(ns) = cs.metadata.namespace.as_deref() else {
            continue;
        };
        let org = by_name.get(&(ns, cs.spec.organization_ref.name.as_str()));
        if org.is_some_and(|org| cs.authenticates_for(org)) {
            let name = cs
                .status
                .as_ref()
                .and_then(|s| s.secret_name.clone())
                .unwrap_or_else(|| cs.secret_name());
            want(&mut refs, (shared(ns), name.into()), CLIENT_SECRET_KEY);
        }
    }
    refs
}

/// Which of a unit's two watches delivered an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The label-selected watch of the ClientSecret Secrets the operator writes.
    Operator,
    /// The watch of every other Secret (user-provided ones).
    User,
}

impl Source {
    /// The label selector of this watch.
    pub fn selector(self) -> String {
        match self {
            Source::Operator => CLIENT_SECRET_LABEL.to_string(),
            Source::User => format!("!{CLIENT_SECRET_LABEL}"),
        }
    }

    /// The watch's configuration. The user watch skips the two kinds of Secret that are large
    /// or numerous and never hold logins (Helm release records, service-account tokens), and
    /// lists in small pages: everything it lists is decoded, then dropped unless named, so the
    /// page size bounds the memory a (re)list takes.
    pub fn config(self) -> watcher::Config {
        let config = watcher::Config::default().labels(&self.selector());
        match self {
            Source::Operator => config,
            Source::User => config.fields(USER_FIELDS).page_size(USER_PAGE_SIZE),
        }
    }

    /// The watch that delivers the events of `secret`, by its labels.
    pub fn of(secret: &Secret) -> Source {
        if secret.labels().contains_key(CLIENT_SECRET_LABEL) {
            Source::Operator
        } else {
            Source::User
        }
    }
}
