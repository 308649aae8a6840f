//! The association check: does the app-link host really serve association files that list
//! this app? (No peer does this; it catches the classic "Universal Links silently don't open
//! the app" mistakes before users meet them.)
//!
//! For an iOS app it fetches `https://<host>[:port]/.well-known/apple-app-site-association`
//! and requires an `applinks.details` entry naming `TEAMID.bundleId` whose components match the
//! app's redirect path; for an Android app it fetches `/.well-known/assetlinks.json` and
//! requires a `handle_all_urls` statement for the package with every certificate fingerprint.
//! Only the file of the app's own platform is required: an iOS-only host need not serve
//! assetlinks.json.
//!
//! The fetch follows the platforms' own rules and is bounded: HTTPS with certificate
//! verification, no redirects at all (Apple and Google both refuse redirected files), a
//! `Content-Type` of `application/json`, at most [`MAX_FILE_BYTES`], connect and total
//! timeouts. Production trusts the system's roots (the image needs CA certificates); tests
//! inject their own CA and host resolution through [`AssociationSettings`].

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{StatusCode, header};

use crate::applinks::{self, AASA_PATH, ASSETLINKS_PATH, AppLink};
use crate::crd::{NativeApp, Platform};

mod resolver;
pub use resolver::MAX_LOOKUPS;

/// Largest association file accepted (Apple's own limit for the AASA is 128 KB).
pub const MAX_FILE_BYTES: usize = 128 * 1024;

/// Which certificate authorities the check trusts.
#[derive(Clone, Debug, Default)]
pub enum TrustRoots {
    /// The operating system's roots (production).
    #[default]
    System,
    /// Only these PEM certificates (tests with their own CA).
    Only(Vec<Vec<u8>>),
}

/// How the association check runs.
#[derive(Clone, Debug)]
pub struct AssociationSettings {
    /// Trusted certificate authorities.
    pub roots: TrustRoots,
    /// Host name → address overrides (like `curl --resolve`); empty in production.
    pub resolve: Vec<(String, SocketAddr)>,
    /// How often each app is checked again when nothing changes.
    pub interval: Duration,
    /// Time limit of one fetch, connection included.
    pub timeout: Duration,
}

impl Default for AssociationSettings {
    fn default() -> Self {
        AssociationSettings {
            roots: TrustRoots::System,
            resolve: vec![],
            interval: Duration::from_secs(600),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The check could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CheckerError {
    /// A configured trust root is not a PEM certificate.
    #[error("a trust root of the association check is not a PEM certificate: {0}")]
    Root(#[source] reqwest::Error),
    /// The HTTPS client could not be built (e.g. no system CA certificates).
    #[error("cannot set up the HTTPS client of the association check (are CA certificates installed?): {0}")]
    Client(#[source] reqwest::Error),
}

/// Why an app's association is not verified; the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Connection, TLS or timeout failure.
    #[error("cannot fetch {url}: {detail}")]
    Unreachable {
        /// The URL fetched.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// HTTP 404.
    #[error("{url} is absent (HTTP 404): serve the file there, e.g. from the operator or the applinks ConfigMap")]
    Absent {
        /// The URL fetched.
        url: String,
    },
    /// Any other non-success status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL fetched.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A redirect, which Apple and Google do not follow.
    #[error("{url} redirects (HTTP {status}) to {location}: Apple and Google require the file without any redirect")]
    Redirect {
        /// The URL fetched.
        url: String,
        /// The status code.
        status: u16,
        /// The `Location` header.
        location: String,
    },
    /// Wrong content type.
    #[error("{url} is served as {content_type:?}; it must be application/json")]
    ContentType {
        /// The URL fetched.
        url: String,
        /// The `Content-Type` header.
        content_type: String,
    },
    /// Over [`MAX_FILE_BYTES`].
    #[error("{url} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge {
        /// The URL fetched.
        url: String,
    },
    /// The file does not list the app.
    #[error(transparent)]
    Missing(#[from] applinks::Missing),
    /// The app lacks the fields needed to check it (the schema normally refuses this).
    #[error("the app has no bundleId/teamId or packageName to look for")]
    NoIdentity,
}

impl Failure {
    /// CamelCase reason for the `AssociationVerified` condition.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Unreachable { .. } | Failure::Status { .. } => "FileUnreachable",
            Failure::Absent { .. } => "FileAbsent",
            Failure::Redirect { .. } => "FileRedirected",
            Failure::ContentType { .. } => "WrongContentType",
            Failure::TooLarge { .. } => "FileTooLarge",
            Failure::Missing(applinks::Missing::NotJson { .. }) => "FileNotJson",
            Failure::Missing(_) | Failure::NoIdentity => "AppNotListed",
        }
    }
}

/// Runs association checks with one HTTPS client (connections are pooled across checks; host
/// lookups are bounded, see [`MAX_LOOKUPS`]).
#[derive(Clone)]
pub struct Checker {
    client: reqwest::Client,
}

impl Checker {
    /// Builds the HTTPS client. Installs rustls' `ring` provider as the process default if
    /// none is installed yet (the crate is built with `ring` only, like kube).
    pub fn new(settings: &AssociationSettings) -> Result<Checker, CheckerError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .dns_resolver(resolver::BoundedResolver::system())
            .user_agent(concat!(
                "centralauth-operator/",
                env!("CARGO_PKG_VERSION"),
                " association-check"
            ));
        if let TrustRoots::Only(pems) = &settings.roots {
            let mut certs = vec![];
            for pem in pems {
                certs.extend(reqwest::Certificate::from_pem_bundle(pem).map_err(CheckerError::Root)?);
            }
            builder = builder.tls_certs_only(certs);
        }
        for (host, addr) in &settings.resolve {
            builder = builder.resolve(host, *addr);
        }
        Ok(Checker {
            client: builder.build().map_err(CheckerError::Client)?,
        })
    }

    /// Checks one app; `Ok` carries a sentence saying what was verified.
    pub async fn check(&self, app: &NativeApp, link: &AppLink) -> Result<String, Failure> {
        let redirect_path = url::Url::parse(&link.redirect_uri()).map_or_else(|_| "/".into(), |u| u.path().to_string());
        match app.spec.platform {
            Platform::Ios => {
                let id = applinks::apple_app_id(app).ok_or(Failure::NoIdentity)?;
                let url = format!("{}{AASA_PATH}", link.origin());
                let body = self.fetch(&url).await?;
                applinks::verify_aasa(&body, &id, &redirect_path)?;
                Ok(format!("{url} lists {id} for {redirect_path}"))
            }
            // Desktop apps publish no association files; the controller never asks.
            Platform::Desktop => Err(Failure::NoIdentity),
            Platform::Android => {
                let package = app.spec.package_name.as_deref().ok_or(Failure::NoIdentity)?;
                let url = format!("{}{ASSETLINKS_PATH}", link.origin());
                let body = self.fetch(&url).await?;
                applinks::verify_assetlinks(&body, package, &app.spec.sha256_cert_fingerprints)?;
                Ok(format!("{url} lists {package} with its certificate fingerprints"))
            }
        }
    }

    /// GET with the platforms' rules; returns the body.
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, Failure> {
        let unreachable = |e: reqwest::Error| Failure::Unreachable {
            url: url.to_string(),
            detail: error_chain(&e),
        };
        let mut response = self.client.get(url).send().await.map_err(unreachable)?;
        let status = response.status();
        if status.is_redirection() {
            let location = response.headers().get(header::LOCATION);
            return Err(Failure::Redirect {
                url: url.to_string(),
                status: status.as_u16(),
                location: location
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or("(no Location)")
                    .to_string(),
            });
        }
        if status == StatusCode::NOT_FOUND {
            return Err(Failure::Absent { url: url.to_string() });
        }
        if !status.is_success() {
            return Err(Failure::Status {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let content_type = response.headers().get(header::CONTENT_TYPE);
        let content_type = content_type
            .and_then(|c| c.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if content_type.split(';').next().map(str::trim) != Some("application/json") {
            return Err(Failure::ContentType {
                url: url.to_string(),
                content_type,
            });
        }
        let mut body = vec![];
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_FILE_BYTES {
                return Err(Failure::TooLarge { url: url.to_string() });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// An error and its sources, `: `-joined (reqwest's top-level message alone says little).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
