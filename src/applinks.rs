//! Native-app registration rules and the app-link association files, as plain functions.
//!
//! The NativeApp controller (status, ConfigMaps), the HTTP server (`/.well-known/…`) and the
//! association check all use these, so what is validated, what is served and what is checked
//! can never disagree.
//!
//! Decisions (see also docs/resources.md, "Native apps"):
//! - `appId` — what the app sends as `app_id` — is the iOS bundle ID or the Android package
//!   name, as CentralAuth's own clients do. One organization may register the same ID twice
//!   only as the iOS and Android builds of one app sharing one app link; anything else makes the
//!   later registration not Ready, so `(organization, app_id)` always names one app link.
//! - The redirect URI an app must use is `<appLink>/callback`; the server accepts any URL
//!   under the app link's path on its origin.
//! - An app-link host serves the files of ONE organization: the organization of the earliest
//!   registered app on that host. An app of another organization on that host is not Ready and
//!   not listed, so one tenant can never make its app claim another tenant's links.
//! - An app link must not be one of the organization's `allowedOrigins` exactly (it is not
//!   the website). An origin covered only by a wildcard entry (`https://*.example.com`) is
//!   accepted: the seed's own example puts the app link on a subdomain of the website.
//! - Desktop apps (a loopback redirect, docs/desktop-apps.md) have no app-link host and no
//!   files; two desktop apps of one organization may not share a loopback redirect, since the
//!   standard `/oauth2/authorize` (which has no `app_id`) finds the app by it.
//! - The files list each app once: the AASA in Apple's current `applinks.details` format (one
//!   entry per app-link path, `appIDs` + `components`), assetlinks.json one statement per
//!   Android app. Nothing else (no comments, no legacy keys).
//!
//! Layout: the registration rules are here; the app link and app identities in `link.rs`, the
//! served files in `files.rs`, the checks of fetched files in `verify.rs` (all re-exported).

mod files;
mod link;
mod verify;

use std::collections::HashMap;
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

pub use self::files::{
    AASA_PATH, ASSETLINKS_PATH, AndroidTarget, AppLinksComponent, AppLinksDetail, AppLinksSection,
    AppleAppSiteAssociation, AssetStatement, HANDLE_ALL_URLS, HostFiles, apple_app_site_association, assetlinks,
    configmap_name, host_files, normalize_host,
};
pub use self::link::{AppLink, AppLinkError, CALLBACK_SEGMENT, Registration, app_id, apple_app_id};
pub use self::verify::{Missing, verify_aasa, verify_assetlinks};
use crate::crd::{NativeApp, Organization, Platform};
use crate::origin;

/// `namespace/name` of an object, for messages.
pub fn qualified<K: ResourceExt>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Why a NativeApp is not Ready (and not listed in any association file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppProblem {
    /// The app link is unusable.
    #[error("{0}")]
    AppLink(#[from] AppLinkError),
    /// Platform identity fields are missing (the schema normally refuses this).
    #[error("the app has no bundleId/teamId (iOS), packageName (Android) or bundleId (Desktop); add them")]
    NoIdentity,
    /// `organizationRef` names no Organization.
    #[error(
        "Organization {namespace}/{name} does not exist: create it, or fix spec.organizationRef.name (the app becomes Ready by itself when it exists)"
    )]
    OrganizationNotFound {
        /// Namespace looked in.
        namespace: String,
        /// Name looked for.
        name: String,
    },
    /// The app link's origin is one of the organization's websites.
    #[error(
        "appLink origin {origin} is one of the organization's allowedOrigins: the app link must not be your main website; use a dedicated host such as https://app.example.com"
    )]
    AppLinkIsWebsite {
        /// The offending origin.
        origin: String,
    },
    /// Another app of the organization already uses this app ID.
    #[error(
        "app ID {app_id} is already registered by NativeApp {other} (app link {other_link}) of the same organization; the same ID may only be shared by the iOS and Android builds of one app with the same appLink: change the appLink to {other_link} or delete one of them (a Desktop app needs an ID of its own)"
    )]
    AppIdTaken {
        /// The contested app ID.
        app_id: String,
        /// `namespace/name` of the earlier app.
        other: String,
        /// The earlier app's app link.
        other_link: String,
    },
    /// Another desktop app of the organization already uses this loopback redirect.
    #[error(
        "loopback redirect {redirect} is already registered by Desktop NativeApp {other} of the same organization; give this app its own path, e.g. http://127.0.0.1/<app>/callback"
    )]
    LoopbackTaken {
        /// The contested redirect.
        redirect: String,
        /// `namespace/name` of the earlier app.
        other: String,
    },
    /// Another organization's apps already own this app-link host.
    #[error(
        "app-link host {host} already serves the association files of Organization {organization} (NativeApp {other} was registered first); use a host of your own"
    )]
    HostTaken {
        /// The contested host.
        host: String,
        /// `namespace/name` of the owning organization.
        organization: String,
        /// `namespace/name` of its earliest app on the host.
        other: String,
    },
}

impl AppProblem {
    /// CamelCase reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        match self {
            AppProblem::AppLink(_) => "InvalidAppLink",
            AppProblem::NoIdentity => "InvalidIdentity",
            AppProblem::OrganizationNotFound { .. } => "OrganizationNotFound",
            AppProblem::AppLinkIsWebsite { .. } => "AppLinkIsWebsite",
            AppProblem::AppIdTaken { .. } => "AppIdConflict",
            AppProblem::HostTaken { .. } => "AppLinkHostTaken",
            AppProblem::LoopbackTaken { .. } => "LoopbackRedirectTaken",
        }
    }
}

/// The order that settles clashes between apps: earliest creation, then namespace, then name.
fn seniority(app: &NativeApp) -> (Option<k8s_openapi::jiff::Timestamp>, String, String) {
    (
        app.metadata.creation_timestamp.as_ref().map(|t| t.0),
        app.namespace().unwrap_or_default(),
        app.name_any(),
    )
}

fn same_object(a: &NativeApp, b: &NativeApp) -> bool {
    match (a.uid(), b.uid()) {
        (Some(x), Some(y)) => x == y,
        _ => a.namespace() == b.namespace() && a.name_any() == b.name_any(),
    }
}

/// `(namespace, organization name)` an app belongs to.
fn org_key(app: &NativeApp) -> (String, String) {
    (
        app.namespace().unwrap_or_default(),
        app.spec.organization_ref.name.clone(),
    )
}

/// The Organization an app refers to, among `orgs`.
pub fn organization_of(app: &NativeApp, orgs: &impl Orgs) -> Option<Arc<Organization>> {
    let ns = app.metadata.namespace.as_deref().unwrap_or_default();
    orgs.find(ns, &app.spec.organization_ref.name)
}

/// Where the checks look up an app's Organization by `(namespace, name)`: one lookup per app
/// instead of a scan, so checking every app of N tenants is not O(N²) (it stalled the operator
/// at 1,000 tenants). The cache's store is such an index already; building one from a list
/// costs O(N) per check, which at 10,000 tenants was a third of the operator's CPU.
pub trait Orgs {
    /// The Organization `namespace/name`.
    fn find(&self, namespace: &str, name: &str) -> Option<Arc<Organization>>;
}

impl Orgs for Store<Organization> {
    fn find(&self, namespace: &str, name: &str) -> Option<Arc<Organization>> {
        self.get(&ObjectRef::new(name).within(namespace))
    }
}

/// Organizations of a list, by `(namespace, name)`.
pub struct OrgsByName<'a>(HashMap<(&'a str, &'a str), &'a Arc<Organization>>);

impl<'a> OrgsByName<'a> {
    /// Indexes `orgs`.
    pub fn new(orgs: &'a [Arc<Organization>]) -> Self {
        OrgsByName(crate::crd::organization::by_name(orgs))
    }
}

impl Orgs for OrgsByName<'_> {
    fn find(&self, namespace: &str, name: &str) -> Option<Arc<Organization>> {
        self.0.get(&(namespace, name)).map(|o| Arc::clone(o))
    }
}

/// Whether app link `raw` may be on `host` (lowercase): a cheap filter before parsing that
/// never drops a match (links that are not plain ASCII, or percent-encode, are always parsed).
/// Allocates nothing: it runs for every app on every check.
fn may_be_on(raw: &str, host: &str) -> bool {
    if !raw.is_ascii() || raw.contains('%') || host.is_empty() {
        return true;
    }
    if raw.contains(host) {
        return true;
    }
    let host = host.as_bytes();
    raw.bytes().any(|b| b.is_ascii_uppercase())
        && raw.as_bytes().windows(host.len()).any(|w| w.eq_ignore_ascii_case(host))
}

/// Checks one app against its organization and every other app; on success returns where it
/// receives the login result. `orgs` and `apps` are everything the caller knows (a cache or a
/// list).
pub fn check(app: &NativeApp, orgs: &impl Orgs, apps: &[Arc<NativeApp>]) -> Result<Registration, AppProblem> {
    let registration = Registration::of(app)?;
    let id = app_id(app).ok_or(AppProblem::NoIdentity)?;
    let org = organization_of(app, orgs).ok_or_else(|| AppProblem::OrganizationNotFound {
        namespace: app.namespace().unwrap_or_default(),
        name: app.spec.organization_ref.name.clone(),
    })?;
    check_app_id(app, id, &registration, apps)?;
    match &registration {
        Registration::AppLink(link) => {
            let origin = link.origin();
            if org.spec.allowed_origins.iter().any(|o| origin::equals(o, &origin)) {
                return Err(AppProblem::AppLinkIsWebsite {
                    origin: origin.to_string(),
                });
            }
            check_host(app, link, orgs, apps)?;
        }
        Registration::Loopback(redirect) => check_loopback(app, redirect, apps)?,
    }
    Ok(registration)
}

/// A desktop app's loopback redirect is its own within the organization.
fn check_loopback(app: &NativeApp, redirect: &str, apps: &[Arc<NativeApp>]) -> Result<(), AppProblem> {
    let mine = seniority(app);
    let earlier = apps
        .iter()
        .filter(|o| o.spec.platform == Platform::Desktop && o.spec.app_link == redirect)
        .filter(|o| org_key(o) == org_key(app) && !same_object(o, app) && seniority(o) < mine)
        .min_by_key(|o| seniority(o));
    match earlier {
        Some(other) => Err(AppProblem::LoopbackTaken {
            redirect: redirect.to_string(),
            other: qualified(other.as_ref()),
        }),
        None => Ok(()),
    }
}

fn check_app_id(app: &NativeApp, id: &str, mine_at: &Registration, apps: &[Arc<NativeApp>]) -> Result<(), AppProblem> {
    let mine = seniority(app);
    let earlier = apps
        .iter()
        .filter(|o| app_id(o) == Some(id) && org_key(o) == org_key(app) && !same_object(o, app))
        .filter(|o| seniority(o) < mine)
        .filter(|o| o.spec.platform == app.spec.platform || Registration::of(o).ok().as_ref() != Some(mine_at))
        .min_by_key(|o| seniority(o));
    match earlier {
        Some(other) => Err(AppProblem::AppIdTaken {
            app_id: id.to_string(),
            other: qualified(other.as_ref()),
            other_link: other.spec.app_link.clone(),
        }),
        None => Ok(()),
    }
}

fn check_host(app: &NativeApp, link: &AppLink, orgs: &impl Orgs, apps: &[Arc<NativeApp>]) -> Result<(), AppProblem> {
    let first = apps
        .iter()
        .filter(|o| may_be_on(&o.spec.app_link, &link.host))
        .filter(|o| organization_of(o, orgs).is_some())
        .filter(|o| AppLink::parse(&o.spec.app_link).is_ok_and(|l| l.host == link.host))
        .min_by_key(|o| seniority(o));
    match first {
        Some(first) if org_key(first) != org_key(app) && seniority(first) < seniority(app) => {
            Err(AppProblem::HostTaken {
                host: link.host.clone(),
                organization: format!(
                    "{}/{}",
                    first.namespace().unwrap_or_default(),
                    first.spec.organization_ref.name
                ),
                other: qualified(first.as_ref()),
            })
        }
        _ => Ok(()),
    }
}

/// Every app listed in the association files of `host` (valid apps only), sorted by app ID.
pub fn listed_on<'a>(host: &str, orgs: &impl Orgs, apps: &'a [Arc<NativeApp>]) -> Vec<&'a NativeApp> {
    let host = host.to_ascii_lowercase();
    // Cheap host filter first: O(apps) string checks, then O(apps on host × apps).
    let mut listed: Vec<&NativeApp> = apps
        .iter()
        .filter(|a| may_be_on(&a.spec.app_link, &host))
        .filter(|a| AppLink::parse(&a.spec.app_link).is_ok_and(|l| l.host == host))
        .filter(|a| check(a, orgs, apps).is_ok())
        .map(Arc::as_ref)
        .collect();
    listed.sort_by(|a, b| (app_id(a), a.spec.platform as u8).cmp(&(app_id(b), b.spec.platform as u8)));
    listed
}

#[cfg(test)]
pub(crate) mod tests;
