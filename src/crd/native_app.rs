//! `NativeApp`: an iOS or Android app that logs in with PKCE (no client secret) and receives
//! the login result on its App Link / Universal Link — never on a custom URL scheme — or a
//! desktop app that receives it on a loopback redirect (`http://127.0.0.1:<any port>/…`, RFC
//! 8252 §7.3) and proves at the code exchange that it is the registered build by signing with
//! the key of its pinned certificate (docs/desktop-apps.md).

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
    doc = "A NativeApp: an iOS or Android app of an Organization that logs in with PKCE and receives the result on its https App Link / Universal Link, or a desktop app that receives it on a loopback redirect and signs the code exchange with its pinned certificate's key.",
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
#[x_kube(validation = Rule::new("self.platform != 'Desktop' || (has(self.bundleId) && has(self.certificateThumbprint))")
    .message("platform Desktop needs bundleId and certificateThumbprint").field_path(".certificateThumbprint"))]
#[x_kube(validation = Rule::new("self.platform != 'Desktop' || (!has(self.teamId) && !has(self.packageName) && (!has(self.sha256CertFingerprints) || size(self.sha256CertFingerprints) == 0))")
    .message("teamId, packageName and sha256CertFingerprints are iOS and Android fields; remove them for platform Desktop").field_path(".teamId"))]
#[x_kube(validation = Rule::new("self.platform == 'Desktop' || !has(self.certificateThumbprint)")
    .message("certificateThumbprint is a Desktop field; iOS apps are identified by teamId, Android apps by sha256CertFingerprints").field_path(".certificateThumbprint"))]
#[x_kube(validation = Rule::new("self.platform == 'Desktop' || !self.appLink.startsWith('http://')")
    .message("appLink must use https://, not http://: App Links and Universal Links are verified over HTTPS (only platform Desktop uses a loopback http:// redirect)").field_path(".appLink"))]
#[x_kube(validation = Rule::new("self.platform == 'Desktop' || (self.appLink.matches('^https://[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+(:[0-9]{1,5})?(/[^?#]*)?$') && isURL(self.appLink))")
    .message("appLink must be an https:// URL with a lowercase domain name host, e.g. https://app.example.com/auth").field_path(".appLink"))]
#[x_kube(validation = Rule::new("self.platform != 'Desktop' || self.appLink.matches('^http://(127\\\\.0\\\\.0\\\\.1|\\\\[::1\\\\])(/[^?#]*)?$')")
    .message("a Desktop appLink must be a loopback redirect without a port, http://127.0.0.1/<path> or http://[::1]/<path>: the app listens on any free port at login, which is not compared (RFC 8252 §7.3); use the IP literal, not localhost or another host").field_path(".appLink"))]
#[x_kube(validation = Rule::new("self.organizationRef == oldSelf.organizationRef")
    .message("organizationRef is immutable").field_path(".organizationRef"))]
pub struct NativeAppSpec {
    /// The Organization (same namespace) this app logs in to.
    pub organization_ref: OrganizationRef,

    /// Name of the app, shown on the login page.
    #[schemars(length(min = 1, max = 128))]
    pub display_name: String,

    /// `iOS`, `Android` or `Desktop`.
    pub platform: Platform,

    /// iOS or desktop bundle ID in reverse-DNS form, e.g. `com.example.app` (a desktop app's
    /// `app_id`, and the `iss` and `sub` of its client assertion).
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

    /// iOS and Android: the App Link / Universal Link, an `https://` URL that opens in a
    /// browser and that the app claims, e.g. `https://app.example.com/auth`. It hosts
    /// `apple-app-site-association` and `assetlinks.json`; the login result is delivered to a URL
    /// under it; `http://` is refused, and it must not be one of the organization's
    /// allowedOrigins. Desktop: the loopback redirect, `http://127.0.0.1/<path>` or
    /// `http://[::1]/<path>` without a port; at login the app sends it with the port its
    /// listener got, and only the port may differ (RFC 8252 §7.3). Custom schemes (`myapp://`)
    /// are refused on every platform (any app can claim them), and so are userinfo, queries and
    /// fragments.
    #[schemars(length(min = 9, max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://') || !self.matches('^[a-zA-Z][a-zA-Z0-9+.-]*:')")
        .message("custom URL schemes (like myapp://) are not allowed: any app can register the same scheme and intercept the login; use an https:// App Link / Universal Link (iOS, Android) or a loopback http://127.0.0.1/<path> redirect (Desktop)"))]
    #[x_kube(validation = Rule::new("!self.matches('^https?://[^/?#]*@')")
        .message("appLink must not contain userinfo (user@host)"))]
    #[x_kube(validation = Rule::new("!self.contains('#') && !self.contains('?')")
        .message("appLink must not contain a query or fragment"))]
    pub app_link: String,

    /// Desktop only: the SHA-256 thumbprint of the app's signing certificate (the DER
    /// certificate whose key signs the code exchange), as 64 hexadecimal digits without
    /// separators, either case — what `openssl x509 -in app.pem -outform DER | sha256sum`
    /// prints. The certificate is not chain-validated: this pin is the trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 64, max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-fA-F]{64}$')")
        .message("certificateThumbprint must be the SHA-256 of the DER certificate as 64 hex digits without ':' or spaces, e.g. the output of: openssl x509 -in app.pem -outform DER | sha256sum"))]
    pub certificate_thumbprint: Option<String>,
}

/// Platform of a NativeApp.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// Apple iOS / iPadOS: Universal Links, `apple-app-site-association`.
    #[serde(rename = "iOS")]
    Ios,
    /// Android: App Links, `assetlinks.json`.
    Android,
    /// Windows, macOS or Linux: a loopback redirect and a pinned signing certificate; no
    /// association files.
    Desktop,
}

/// Observed state of a NativeApp.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NativeAppStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: `Ready`, and for iOS and Android `AssociationVerified` (the
    /// app-link host serves association files that list this app; desktop apps have none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The value the app sends as `app_id` when it starts a login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,

    /// The redirect URI the app must use: a URL under its app link (Desktop: the app link
    /// itself, with the port of the app's loopback listener added at login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
}
