//! `NativeApp`: an iOS or Android app that logs in with PKCE (no client secret) and receives
//! the login result on its App Link / Universal Link — never on a custom URL scheme.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::OrganizationRef;

/// A native app registration of an Organization.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "centralauth.io",
    version = "v1alpha1",
    kind = "NativeApp",
    namespaced,
    doc = "A NativeApp: an iOS or Android app of an Organization that logs in with PKCE and receives the result on its https App Link / Universal Link.",
    status = "NativeAppStatus",
    shortname = "na",
    category = "centralauth",
    printcolumn = r#"{"name":"Organization","type":"string","jsonPath":".spec.organizationRef.name"}"#,
    printcolumn = r#"{"name":"Platform","type":"string","jsonPath":".spec.platform"}"#,
    printcolumn = r#"{"name":"App Link","type":"string","jsonPath":".spec.appLink"}"#,
    printcolumn = r#"{"name":"App ID","type":"string","jsonPath":".status.appId","priority":1}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Verified","type":"string","jsonPath":".status.conditions[?(@.type==\"AssociationVerified\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.platform != 'iOS' || (has(self.bundleId) && has(self.teamId))")
    .message("platform iOS needs bundleId and teamId").field_path(".bundleId"))]
#[x_kube(validation = Rule::new("self.platform != 'iOS' || (!has(self.packageName) && (!has(self.sha256CertFingerprints) || size(self.sha256CertFingerprints) == 0))")
    .message("packageName and sha256CertFingerprints are Android fields; remove them for platform iOS").field_path(".packageName"))]
#[x_kube(validation = Rule::new("self.platform != 'Android' || (has(self.packageName) && has(self.sha256CertFingerprints) && size(self.sha256CertFingerprints) > 0)")
    .message("platform Android needs packageName and at least one sha256CertFingerprints entry").field_path(".packageName"))]
#[x_kube(validation = Rule::new("self.platform != 'Android' || (!has(self.bundleId) && !has(self.teamId))")
    .message("bundleId and teamId are iOS fields; remove them for platform Android").field_path(".bundleId"))]
#[x_kube(validation = Rule::new("self.organizationRef == oldSelf.organizationRef")
    .message("organizationRef is immutable").field_path(".organizationRef"))]
pub struct NativeAppSpec {
    /// The Organization (same namespace) this app logs in to.
    pub organization_ref: OrganizationRef,

    /// Name of the app, shown on the login page.
    #[schemars(length(min = 1, max = 128))]
    pub display_name: String,

    /// `iOS` or `Android`.
    pub platform: Platform,

    /// iOS bundle ID in reverse-DNS form, e.g. `com.example.app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 155))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9-]+(\\\\.[A-Za-z0-9-]+)+$')")
        .message("bundleId must be a reverse-DNS bundle ID such as com.example.app (letters, digits, '-' and '.', at least two parts)"))]
    pub bundle_id: Option<String>,

    /// Apple Developer Team ID: 10 uppercase letters or digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Z0-9]{10}$')")
        .message("teamId must be the 10-character Apple Team ID, uppercase letters and digits"))]
    #[schemars(length(min = 10, max = 10))]
    pub team_id: Option<String>,

    /// Android application ID (package name), e.g. `com.example.app`: at least two segments,
    /// each starting with a letter, then letters, digits or '_'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 255))]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z][a-zA-Z0-9_]*(\\\\.[a-zA-Z][a-zA-Z0-9_]*)+$')")
        .message("packageName must follow Java package rules, e.g. com.example.app: at least two segments, each starting with a letter, then letters, digits or '_'"))]
    pub package_name: Option<String>,

    /// SHA-256 fingerprints of the app's signing certificates, as printed by `keytool`:
    /// 32 uppercase hex bytes separated by ':'.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 95)))]
    #[x_kube(validation = Rule::new("self.all(f, f.matches('^([0-9A-F]{2}:){31}[0-9A-F]{2}$'))")
        .message("each sha256CertFingerprints entry must be 32 uppercase hex bytes separated by ':' (keytool's SHA256 line)"))]
    pub sha256_cert_fingerprints: Vec<String>,

    /// The App Link / Universal Link: an `https://` URL that opens in a browser and that the
    /// app claims, e.g. `https://app.example.com/auth`. It hosts `apple-app-site-association`
    /// and `assetlinks.json`; the login result is delivered to a URL under it. Custom schemes
    /// (`myapp://`) are refused: any app can claim them. `http://`, userinfo, queries and
    /// fragments are refused too, and it must not be one of the organization's allowedOrigins.
    #[schemars(length(min = 9, max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://') || !self.matches('^[a-zA-Z][a-zA-Z0-9+.-]*:')")
        .message("custom URL schemes (like myapp://) are not allowed: any app can register the same scheme and intercept the login; use an https:// App Link / Universal Link"))]
    #[x_kube(validation = Rule::new("!self.startsWith('http://')")
        .message("appLink must use https://, not http://: App Links and Universal Links are verified over HTTPS"))]
    #[x_kube(validation = Rule::new("!self.matches('^https://[^/?#]*@')")
        .message("appLink must not contain userinfo (user@host)"))]
    #[x_kube(validation = Rule::new("!self.contains('#') && !self.contains('?')")
        .message("appLink must not contain a query or fragment"))]
    #[x_kube(validation = Rule::new("self.matches('^https://[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+(:[0-9]{1,5})?(/[^?#]*)?$') && isURL(self)")
        .message("appLink must be an https:// URL with a lowercase domain name host, e.g. https://app.example.com/auth"))]
    pub app_link: String,
}

/// Mobile platform of a NativeApp.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// Apple iOS / iPadOS: Universal Links, `apple-app-site-association`.
    #[serde(rename = "iOS")]
    Ios,
    /// Android: App Links, `assetlinks.json`.
    Android,
}

/// Observed state of a NativeApp.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NativeAppStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: `Ready`, and `AssociationVerified` (the app-link host serves
    /// association files that list this app).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The value the app sends as `app_id` when it starts a login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,

    /// The redirect URI the app must use: a URL under its app link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
}
