//! How an organization is addressed on the web: the hosts it answers on, its issuer and its
//! login URL. The Organization controller writes these into the status; the HTTP server routes
//! requests with the same functions, so the two can never disagree.
//!
//! - An organization with `customDomain` or `subdomain` has a host of its own, and its issuer is
//!   that origin (`https://login.example.com`).
//! - Otherwise it lives on the shared base domain, and its issuer carries its client ID in the
//!   path (`https://auth.example.net/o/<clientId>`), so OIDC discovery stays per-organization.
//! - Every organization also answers on the shared base domain, where the CentralAuth endpoints
//!   pick it by `client_id`.

use std::fmt;

use crate::crd::Organization;

/// How the public server is reached from outside: scheme, base domain and port, as given on the
/// command line (`--base-domain`, `--public-scheme`, `--public-port`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicBase {
    /// `https` in production; `http` for local development and tests.
    pub scheme: String,
    /// The shared login domain.
    pub base_domain: String,
    /// Port in public URLs, when not the scheme's default.
    pub port: Option<u16>,
}

impl PublicBase {
    /// `scheme://host[:port]` for a host of this deployment.
    pub fn origin(&self, host: &str) -> String {
        match self.port {
            Some(port) => format!("{}://{host}:{port}", self.scheme),
            None => format!("{}://{host}", self.scheme),
        }
    }
}

/// The public addresses of one organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgAddress {
    /// Every host the organization answers on, its own host first, the base domain last.
    pub domains: Vec<String>,
    /// OAuth/OIDC issuer identifier.
    pub issuer: String,
    /// Where apps send users to log in.
    pub login_url: String,
}

impl fmt::Display for OrgAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.issuer)
    }
}

/// The organization's own host (custom domain, else `<subdomain>.<base>`), if it has one.
pub fn own_host(org: &Organization, base: &PublicBase) -> Option<String> {
    org.spec
        .custom_domain
        .clone()
        .or_else(|| org.spec.subdomain.as_ref().map(|s| format!("{s}.{}", base.base_domain)))
}

/// Every host an organization answers on: custom domain, subdomain host, base domain.
pub fn domains(org: &Organization, base: &PublicBase) -> Vec<String> {
    let mut hosts = vec![];
    if let Some(custom) = &org.spec.custom_domain {
        hosts.push(custom.clone());
    }
    if let Some(sub) = &org.spec.subdomain {
        hosts.push(format!("{sub}.{}", base.base_domain));
    }
    hosts.push(base.base_domain.clone());
    hosts
}

/// The addresses of an organization whose client ID is `client_id`.
pub fn address(org: &Organization, client_id: &str, base: &PublicBase) -> OrgAddress {
    let (issuer, login_url) = match own_host(org, base) {
        Some(host) => {
            let origin = base.origin(&host);
            (origin.clone(), format!("{origin}/login"))
        }
        None => {
            let origin = base.origin(&base.base_domain);
            (format!("{origin}/o/{client_id}"), format!("{origin}/login"))
        }
    };
    OrgAddress {
        domains: domains(org, base),
        issuer,
        login_url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{LoginMethods, OrganizationSpec, SecretRotation};

    fn org(subdomain: Option<&str>, custom: Option<&str>) -> Organization {
        Organization::new(
            "acme",
            OrganizationSpec {
                display_name: "Acme".into(),
                logo_url: None,
                custom_domain: custom.map(Into::into),
                subdomain: subdomain.map(Into::into),
                client_id: None,
                allowed_origins: vec![],
                redirect_uris: vec![],
                allow_localhost: false,
                max_session_seconds: None,
                max_inactivity_seconds: None,
                login_methods: LoginMethods::default(),
                secret_rotation: SecretRotation::default(),
                credentials_secret_name: None,
            },
        )
    }

    fn base(port: Option<u16>) -> PublicBase {
        PublicBase {
            scheme: "https".into(),
            base_domain: "auth.example.net".into(),
            port,
        }
    }

    #[test]
    fn custom_domain_wins_and_every_host_is_listed() {
        let a = address(&org(Some("acme"), Some("login.acme.com")), "cid", &base(None));
        assert_eq!(a.issuer, "https://login.acme.com");
        assert_eq!(a.login_url, "https://login.acme.com/login");
        assert_eq!(
            a.domains,
            ["login.acme.com", "acme.auth.example.net", "auth.example.net"]
        );
    }

    #[test]
    fn subdomain_gives_an_own_origin_with_port() {
        let a = address(&org(Some("acme"), None), "cid", &base(Some(8443)));
        assert_eq!(a.issuer, "https://acme.auth.example.net:8443");
        assert_eq!(a.domains, ["acme.auth.example.net", "auth.example.net"]);
    }

    #[test]
    fn shared_domain_issuer_carries_the_client_id() {
        let a = address(&org(None, None), "cid-123", &base(None));
        assert_eq!(a.issuer, "https://auth.example.net/o/cid-123");
        assert_eq!(a.login_url, "https://auth.example.net/login");
        assert_eq!(a.domains, ["auth.example.net"]);
    }
}
