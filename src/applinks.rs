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
//! - The files list each app once: the AASA in Apple's current `applinks.details` format (one
//!   entry per app-link path, `appIDs` + `components`), assetlinks.json one statement per
//!   Android app. Nothing else (no comments, no legacy keys).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::crd::{NativeApp, Organization, Platform};
use crate::origin::{self, Origin};

/// Path of Apple's association file (served without extension and without redirect).
pub const AASA_PATH: &str = "/.well-known/apple-app-site-association";
/// Path of Google's Digital Asset Links file.
pub const ASSETLINKS_PATH: &str = "/.well-known/assetlinks.json";
/// The Digital Asset Links relation that makes Android open App Links in the app.
pub const HANDLE_ALL_URLS: &str = "delegate_permission/common.handle_all_urls";
/// Last path segment of the redirect URI under the app link.
pub const CALLBACK_SEGMENT: &str = "callback";

/// A parsed app link: `https://host[:port][/path]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppLink {
    /// Lowercase host name.
    pub host: String,
    /// Explicit non-default port.
    pub port: Option<u16>,
    /// Path without trailing `/`; empty for the host root.
    pub path: String,
}

/// Why an app link cannot be used (the CRD's CEL rules refuse these first; this is the
/// controller's second line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppLinkError {
    /// Not an absolute URL.
    #[error("appLink is not an absolute URL: {0}")]
    NotUrl(String),
    /// Not `https`.
    #[error("appLink must be an https:// URL (custom schemes and http:// are refused)")]
    NotHttps,
    /// Userinfo, query or fragment present, or no domain host.
    #[error("appLink must be https://host[:port][/path] with a domain name, no userinfo, query or fragment")]
    Malformed,
}

impl AppLink {
    /// Parses and checks an app link.
    pub fn parse(link: &str) -> Result<AppLink, AppLinkError> {
        let url = Url::parse(link).map_err(|e| AppLinkError::NotUrl(e.to_string()))?;
        if url.scheme() != "https" {
            return Err(AppLinkError::NotHttps);
        }
        let clean =
            url.username().is_empty() && url.password().is_none() && url.query().is_none() && url.fragment().is_none();
        let Some(url::Host::Domain(host)) = url.host() else {
            return Err(AppLinkError::Malformed);
        };
        if !clean {
            return Err(AppLinkError::Malformed);
        }
        Ok(AppLink {
            host: host.to_ascii_lowercase(),
            port: url.port(),
            path: url.path().trim_end_matches('/').to_string(),
        })
    }

    /// The app link's origin.
    pub fn origin(&self) -> Origin {
        Origin {
            scheme: "https".into(),
            host: self.host.clone(),
            port: self.port,
        }
    }

    /// `https://host[:port]` + path (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("{}{}", self.origin(), self.path)
    }

    /// The redirect URI the app must use: `<appLink>/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("{}/{CALLBACK_SEGMENT}", self.base_url())
    }

    /// The AASA component pattern that claims the app link's subtree.
    pub fn component(&self) -> String {
        format!("{}/*", self.path)
    }

    /// Whether `url` lies on this app link: same origin, path equal to or under its path.
    pub fn covers(&self, url: &str) -> bool {
        let Ok(u) = Url::parse(url) else { return false };
        Origin::of_url(&u).is_some_and(|o| o == self.origin())
            && (self.path.is_empty() || u.path() == self.path || u.path().starts_with(&format!("{}/", self.path)))
    }
}

/// The value the app sends as `app_id`: its bundle ID (iOS) or package name (Android).
pub fn app_id(app: &NativeApp) -> Option<&str> {
    match app.spec.platform {
        Platform::Ios => app.spec.bundle_id.as_deref(),
        Platform::Android => app.spec.package_name.as_deref(),
    }
}

/// Apple's application identifier `TEAMID.bundleId` (iOS apps only).
pub fn apple_app_id(app: &NativeApp) -> Option<String> {
    match (&app.spec.platform, &app.spec.team_id, &app.spec.bundle_id) {
        (Platform::Ios, Some(team), Some(bundle)) => Some(format!("{team}.{bundle}")),
        _ => None,
    }
}

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
    #[error("the app has no bundleId/teamId (iOS) or packageName (Android); add them")]
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
        "app ID {app_id} is already registered by NativeApp {other} (app link {other_link}) of the same organization; the same ID may only be shared by the iOS and Android builds of one app with the same appLink: change the appLink to {other_link} or delete one of them"
    )]
    AppIdTaken {
        /// The contested app ID.
        app_id: String,
        /// `namespace/name` of the earlier app.
        other: String,
        /// The earlier app's app link.
        other_link: String,
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
pub fn organization_of<'a>(app: &NativeApp, orgs: &'a [Arc<Organization>]) -> Option<&'a Organization> {
    let (ns, name) = org_key(app);
    orgs.iter()
        .map(Arc::as_ref)
        .find(|o| o.namespace().unwrap_or_default() == ns && o.name_any() == name)
}

/// Checks one app against its organization and every other app; on success returns its
/// parsed app link. `orgs` and `apps` are everything the caller knows (a cache or a list).
pub fn check(app: &NativeApp, orgs: &[Arc<Organization>], apps: &[Arc<NativeApp>]) -> Result<AppLink, AppProblem> {
    let link = AppLink::parse(&app.spec.app_link)?;
    let id = app_id(app).ok_or(AppProblem::NoIdentity)?;
    let org = organization_of(app, orgs).ok_or_else(|| AppProblem::OrganizationNotFound {
        namespace: app.namespace().unwrap_or_default(),
        name: app.spec.organization_ref.name.clone(),
    })?;
    let origin = link.origin();
    if org.spec.allowed_origins.iter().any(|o| origin::equals(o, &origin)) {
        return Err(AppProblem::AppLinkIsWebsite {
            origin: origin.to_string(),
        });
    }
    check_app_id(app, id, &link, apps)?;
    check_host(app, &link, orgs, apps)?;
    Ok(link)
}

fn check_app_id(app: &NativeApp, id: &str, link: &AppLink, apps: &[Arc<NativeApp>]) -> Result<(), AppProblem> {
    let mine = seniority(app);
    let earlier = apps
        .iter()
        .filter(|o| !same_object(o, app) && org_key(o) == org_key(app) && app_id(o) == Some(id))
        .filter(|o| seniority(o) < mine)
        .filter(|o| {
            o.spec.platform == app.spec.platform || AppLink::parse(&o.spec.app_link).ok().as_ref() != Some(link)
        })
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

fn check_host(
    app: &NativeApp,
    link: &AppLink,
    orgs: &[Arc<Organization>],
    apps: &[Arc<NativeApp>],
) -> Result<(), AppProblem> {
    let first = apps
        .iter()
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
pub fn listed_on<'a>(host: &str, orgs: &[Arc<Organization>], apps: &'a [Arc<NativeApp>]) -> Vec<&'a NativeApp> {
    let host = host.to_ascii_lowercase();
    // Cheap host filter first: `check` looks at every app, so this stays O(apps on host × apps).
    let mut listed: Vec<&NativeApp> = apps
        .iter()
        .filter(|a| AppLink::parse(&a.spec.app_link).is_ok_and(|l| l.host == host))
        .filter(|a| check(a, orgs, apps).is_ok())
        .map(Arc::as_ref)
        .collect();
    listed.sort_by(|a, b| (app_id(a), a.spec.platform as u8).cmp(&(app_id(b), b.spec.platform as u8)));
    listed
}

/// `apple-app-site-association` in Apple's current format.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct AppleAppSiteAssociation {
    /// Universal Links.
    pub applinks: AppLinksSection,
}

/// The `applinks` dictionary.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct AppLinksSection {
    /// One entry per group of apps claiming the same paths.
    pub details: Vec<AppLinksDetail>,
}

/// One `applinks.details` entry.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct AppLinksDetail {
    /// `TEAMID.bundleId` of every app claiming these components.
    #[serde(rename = "appIDs")]
    pub app_ids: Vec<String>,
    /// URL components the apps open.
    pub components: Vec<AppLinksComponent>,
}

/// A component pattern (only the path is used).
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct AppLinksComponent {
    /// Path pattern: `*` any characters, `?` one character.
    #[serde(rename = "/")]
    pub path: String,
}

/// One Digital Asset Links statement.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct AssetStatement {
    /// Relations granted; always `delegate_permission/common.handle_all_urls`.
    pub relation: Vec<String>,
    /// The Android app.
    pub target: AndroidTarget,
}

/// Target of a statement.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct AndroidTarget {
    /// Always `android_app`.
    pub namespace: String,
    /// Application ID.
    pub package_name: String,
    /// SHA-256 fingerprints of the signing certificates (`AB:CD:…`).
    pub sha256_cert_fingerprints: Vec<String>,
}

/// The `apple-app-site-association` document listing the iOS apps among `apps`.
pub fn apple_app_site_association(apps: &[&NativeApp]) -> AppleAppSiteAssociation {
    let mut by_path: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for app in apps {
        if let (Some(id), Ok(link)) = (apple_app_id(app), AppLink::parse(&app.spec.app_link)) {
            by_path.entry(link.component()).or_default().insert(id);
        }
    }
    AppleAppSiteAssociation {
        applinks: AppLinksSection {
            details: by_path
                .into_iter()
                .map(|(path, ids)| AppLinksDetail {
                    app_ids: ids.into_iter().collect(),
                    components: vec![AppLinksComponent { path }],
                })
                .collect(),
        },
    }
}

/// The `assetlinks.json` statements for the Android apps among `apps`.
pub fn assetlinks(apps: &[&NativeApp]) -> Vec<AssetStatement> {
    apps.iter()
        .filter(|a| a.spec.platform == Platform::Android)
        .filter_map(|a| {
            Some(AssetStatement {
                relation: vec![HANDLE_ALL_URLS.to_string()],
                target: AndroidTarget {
                    namespace: "android_app".into(),
                    package_name: a.spec.package_name.clone()?,
                    sha256_cert_fingerprints: a.spec.sha256_cert_fingerprints.clone(),
                },
            })
        })
        .collect()
}

/// Both files of a host, serialized as served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFiles {
    /// `apple-app-site-association` JSON.
    pub aasa: String,
    /// `assetlinks.json` JSON.
    pub assetlinks: String,
}

/// Serializes both files for `apps` (as returned by [`listed_on`]).
pub fn host_files(apps: &[&NativeApp]) -> HostFiles {
    // Serializing plain structs of strings cannot fail.
    HostFiles {
        aasa: serde_json::to_string_pretty(&apple_app_site_association(apps)).expect("AASA serializes"),
        assetlinks: serde_json::to_string_pretty(&assetlinks(apps)).expect("assetlinks serializes"),
    }
}

/// Name of the ConfigMap holding a host's files: `applinks-<host>` (a host name is a valid
/// DNS subdomain), or `applinks-<hash>` for hosts too long for an object name.
pub fn configmap_name(host: &str) -> String {
    let name = format!("applinks-{host}");
    if name.len() <= 253 {
        return name;
    }
    // FNV-1a: stable across versions and platforms, only used to shorten a name.
    let hash = host.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("applinks-{hash:016x}")
}

/// What an association file lacks for one app.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    /// The body is not JSON of the documented shape.
    #[error("{file} is not valid JSON: {detail}")]
    NotJson {
        /// File name.
        file: &'static str,
        /// Parser message.
        detail: String,
    },
    /// No entry names the app.
    #[error("{file} does not list {app}")]
    NotListed {
        /// File name.
        file: &'static str,
        /// `TEAMID.bundleId` or the package name.
        app: String,
    },
    /// The app is listed but its components do not cover the redirect path.
    #[error("apple-app-site-association lists {app} but none of its components matches the redirect path {path}")]
    PathNotCovered {
        /// `TEAMID.bundleId`.
        app: String,
        /// Path of the redirect URI.
        path: String,
    },
    /// The package is listed without some of the app's certificate fingerprints.
    #[error("assetlinks.json lists {package} without the certificate fingerprints {missing}")]
    FingerprintsMissing {
        /// Package name.
        package: String,
        /// Comma-separated missing fingerprints.
        missing: String,
    },
}

const AASA_FILE: &str = "apple-app-site-association";
const ASSETLINKS_FILE: &str = "assetlinks.json";

/// Checks that an `apple-app-site-association` body lets `apple_app_id` open `path`.
/// Understands the current `components` format and the legacy `appID`/`paths` one.
pub fn verify_aasa(body: &[u8], apple_app_id: &str, path: &str) -> Result<(), Missing> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| Missing::NotJson {
        file: AASA_FILE,
        detail: e.to_string(),
    })?;
    let details = doc
        .pointer("/applinks/details")
        .and_then(Value::as_array)
        .ok_or_else(|| Missing::NotJson {
            file: AASA_FILE,
            detail: "no applinks.details array".into(),
        })?;
    let names_app = |d: &&Value| {
        let in_list = d
            .get("appIDs")
            .and_then(Value::as_array)
            .is_some_and(|ids| ids.iter().any(|i| i.as_str() == Some(apple_app_id)));
        in_list || d.get("appID").and_then(Value::as_str) == Some(apple_app_id)
    };
    let entries: Vec<&Value> = details.iter().filter(names_app).collect();
    if entries.is_empty() {
        return Err(Missing::NotListed {
            file: AASA_FILE,
            app: apple_app_id.to_string(),
        });
    }
    if entries.iter().any(|d| detail_covers(d, path)) {
        Ok(())
    } else {
        Err(Missing::PathNotCovered {
            app: apple_app_id.to_string(),
            path: path.to_string(),
        })
    }
}

/// Apple's rule: the first component (or legacy path) that matches decides; `exclude` (or a
/// `NOT ` prefix) means the URL does not open the app.
fn detail_covers(detail: &Value, path: &str) -> bool {
    if let Some(components) = detail.get("components").and_then(Value::as_array) {
        for c in components {
            let pattern = c.get("/").and_then(Value::as_str).unwrap_or("*");
            let case_sensitive = c.get("caseSensitive").and_then(Value::as_bool).unwrap_or(true);
            if glob(pattern, path, case_sensitive) {
                return !c.get("exclude").and_then(Value::as_bool).unwrap_or(false);
            }
        }
        return false;
    }
    for p in detail.get("paths").and_then(Value::as_array).into_iter().flatten() {
        let Some(p) = p.as_str() else { continue };
        let (exclude, pattern) = p.strip_prefix("NOT ").map_or((false, p), |rest| (true, rest));
        if glob(pattern, path, true) {
            return !exclude;
        }
    }
    false
}

/// Apple's pattern syntax: `*` matches any run of characters, `?` exactly one.
fn glob(pattern: &str, text: &str, case_sensitive: bool) -> bool {
    let fold = |s: &str| {
        if case_sensitive {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let (p, t): (Vec<char>, Vec<char>) = (fold(pattern).chars().collect(), fold(text).chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Checks that an `assetlinks.json` body grants `handle_all_urls` to `package` with every one
/// of `fingerprints` (compared case-insensitively).
pub fn verify_assetlinks(body: &[u8], package: &str, fingerprints: &[String]) -> Result<(), Missing> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| Missing::NotJson {
        file: ASSETLINKS_FILE,
        detail: e.to_string(),
    })?;
    let statements = doc.as_array().ok_or_else(|| Missing::NotJson {
        file: ASSETLINKS_FILE,
        detail: "the top level is not an array of statements".into(),
    })?;
    let grants = |s: &&Value| {
        s.get("relation")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|r| r.as_str() == Some(HANDLE_ALL_URLS)))
            && s.pointer("/target/namespace").and_then(Value::as_str) == Some("android_app")
            && s.pointer("/target/package_name").and_then(Value::as_str) == Some(package)
    };
    let listed: BTreeSet<String> = statements
        .iter()
        .filter(grants)
        .filter_map(|s| s.pointer("/target/sha256_cert_fingerprints").and_then(Value::as_array))
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_ascii_uppercase))
        .collect();
    if !statements.iter().any(|s| grants(&s)) {
        return Err(Missing::NotListed {
            file: ASSETLINKS_FILE,
            app: package.to_string(),
        });
    }
    let missing: Vec<&str> = fingerprints
        .iter()
        .filter(|f| !listed.contains(&f.to_ascii_uppercase()))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Missing::FingerprintsMissing {
            package: package.to_string(),
            missing: missing.join(", "),
        })
    }
}

/// The host name of a request's `Host` value: port and trailing dot removed, lowercase.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    let without_port = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    };
    without_port.to_ascii_lowercase()
}

impl fmt::Display for AppLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base_url())
    }
}

#[cfg(test)]
mod tests;
