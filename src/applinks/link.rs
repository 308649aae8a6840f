//! App links: parsing and checking `https://host[:port][/path]`, the redirect URI under it,
//! desktop apps' loopback redirects (`http://127.0.0.1/path`, `http://[::1]/path`), and the
//! identities (app ID, Apple app ID) an app is known by.

use std::fmt;

use url::Url;

use crate::crd::{NativeApp, Platform};
use crate::origin::Origin;

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
    /// A desktop app's link is not a loopback redirect.
    #[error(
        "a Desktop appLink must be http://127.0.0.1/<path> or http://[::1]/<path>, without port, userinfo, query or fragment"
    )]
    NotLoopback,
}

/// Where an app receives the login result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    /// iOS and Android: an https App Link / Universal Link with association files.
    AppLink(AppLink),
    /// Desktop: a loopback redirect (the app link as written); any port at login.
    Loopback(String),
}

impl Registration {
    /// The app's registration from its platform and app link.
    pub fn of(app: &NativeApp) -> Result<Registration, AppLinkError> {
        match app.spec.platform {
            Platform::Desktop => loopback(&app.spec.app_link).map(Registration::Loopback),
            Platform::Ios | Platform::Android => AppLink::parse(&app.spec.app_link).map(Registration::AppLink),
        }
    }

    /// The redirect URI the app uses (Desktop: the port of its listener is added at login).
    pub fn redirect_uri(&self) -> String {
        match self {
            Registration::AppLink(link) => link.redirect_uri(),
            Registration::Loopback(uri) => uri.clone(),
        }
    }
}

/// Checks a desktop app link: `http://127.0.0.1[/path]` or `http://[::1][/path]`, no port.
fn loopback(link: &str) -> Result<String, AppLinkError> {
    let url = crate::oauth::redirect::parse(link).map_err(|_| AppLinkError::NotLoopback)?;
    // The authority exactly as written: an IP literal and nothing else (no port, no userinfo).
    let authority = link
        .strip_prefix("http://")
        .and_then(|rest| rest.split(['/', '?']).next());
    if url.scheme != "http" || !matches!(authority, Some("127.0.0.1" | "[::1]")) || url.query.is_some() {
        return Err(AppLinkError::NotLoopback);
    }
    Ok(link.to_string())
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

/// The value the app sends as `app_id`: its bundle ID (iOS, Desktop) or package name (Android).
pub fn app_id(app: &NativeApp) -> Option<&str> {
    match app.spec.platform {
        Platform::Ios | Platform::Desktop => app.spec.bundle_id.as_deref(),
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

impl fmt::Display for AppLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base_url())
    }
}
