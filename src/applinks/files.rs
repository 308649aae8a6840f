//! The association files served on an app-link host (`apple-app-site-association`,
//! `assetlinks.json`) and the ConfigMap that holds them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::link::{AppLink, apple_app_id};
use crate::crd::{NativeApp, Platform};

/// Path of Apple's association file (served without extension and without redirect).
pub const AASA_PATH: &str = "/.well-known/apple-app-site-association";
/// Path of Google's Digital Asset Links file.
pub const ASSETLINKS_PATH: &str = "/.well-known/assetlinks.json";
/// The Digital Asset Links relation that makes Android open App Links in the app.
pub const HANDLE_ALL_URLS: &str = "delegate_permission/common.handle_all_urls";

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

/// Serializes both files for `apps` (as returned by [`crate::applinks::listed_on`]).
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

/// The host name of a request's `Host` value: port and trailing dot removed, lowercase.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    let without_port = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    };
    without_port.to_ascii_lowercase()
}
