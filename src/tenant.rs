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
    let host = own_host(org, base).unwrap_or_else(|| base.base_domain.clone());
    OrgAddress {
        domains: domains(org, base),
        issuer: issuer(org, client_id, base),
        login_url: format!("{}/login", base.origin(&host)),
    }
}

/// The organization's issuer alone (what every token request needs): its own host's origin,
/// or `<base origin>/o/<client_id>`.
pub fn issuer(org: &Organization, client_id: &str, base: &PublicBase) -> String {
    match own_host(org, base) {
        Some(host) => base.origin(&host),
        None => format!("{}/o/{client_id}", base.origin(&base.base_domain)),
    }
}

/// Something an organization holds exclusively across the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Its client ID (pinned, annotated or generated).
    ClientId(String),
    /// A host it answers on through `spec.customDomain`.
    CustomDomain(String),
    /// A host it answers on through `spec.subdomain` (`<subdomain>.<base-domain>`).
    Subdomain(String),
}

impl Claim {
    /// The contested value: the client ID or the host.
    pub fn value(&self) -> &str {
        match self {
            Claim::ClientId(v) | Claim::CustomDomain(v) | Claim::Subdomain(v) => v,
        }
    }

    /// Whether two claims contend for the same thing (hosts clash whichever field gave them).
    pub fn clashes_with(&self, other: &Claim) -> bool {
        let host = |c: &Claim| !matches!(c, Claim::ClientId(_));
        self.value() == other.value() && host(self) == host(other)
    }
}

/// Everything `org` claims: its client ID (once it has one) and its own hosts.
pub fn claims(org: &Organization, base: &PublicBase) -> Vec<Claim> {
    let mut claims = vec![];
    if let Some(id) = org.client_id() {
        claims.push(Claim::ClientId(id.to_string()));
    }
    if let Some(custom) = &org.spec.custom_domain {
        claims.push(Claim::CustomDomain(custom.clone()));
    }
    if let Some(sub) = &org.spec.subdomain {
        claims.push(Claim::Subdomain(format!("{sub}.{}", base.base_domain)));
    }
    claims
}

/// The order that settles a clash: the organization created first keeps the claim; equal
/// creation times (they have one-second precision) fall back to namespace, then name.
pub fn seniority(org: &Organization) -> (Option<k8s_openapi::jiff::Timestamp>, String, String) {
    use kube::ResourceExt;
    (
        org.metadata.creation_timestamp.as_ref().map(|t| t.0),
        org.namespace().unwrap_or_default(),
        org.name_any(),
    )
}

/// A claim of one organization already held by an earlier one.
#[derive(Clone, Debug)]
pub struct Conflict<'a> {
    /// What this organization asks for.
    pub claim: Claim,
    /// The earlier organization holding it, and how it holds it.
    pub holder: &'a Organization,
    /// The holder's claim (tells whether the host is its subdomain or its custom domain).
    pub held_as: Claim,
}

/// The claims of `org` that an *earlier* organization among `all` already holds. The earlier
/// one keeps them and is unaffected; `org` (the later) is the one to fix. `all` may include
/// `org` itself (it is skipped by UID, or by namespace/name when UIDs are absent).
pub fn conflicts<'a>(org: &Organization, all: &[&'a Organization], base: &PublicBase) -> Vec<Conflict<'a>> {
    use kube::ResourceExt;
    let mine = seniority(org);
    let same = |o: &Organization| match (o.uid(), org.uid()) {
        (Some(a), Some(b)) => a == b,
        _ => o.namespace() == org.namespace() && o.name_any() == org.name_any(),
    };
    let mut found = vec![];
    for claim in claims(org, base) {
        // The clash test first: it allocates nothing (thousands of organizations per check).
        let holder = all
            .iter()
            .filter_map(|o| held_as(o, &claim, base).map(|c| (*o, c)))
            .filter(|(o, _)| !same(o) && seniority(o) < mine)
            .min_by_key(|(o, _)| seniority(o));
        if let Some((holder, held_as)) = holder {
            found.push(Conflict { claim, holder, held_as });
        }
    }
    found
}

/// How `o` holds what `claim` contends for, if it does: the first of [`claims`] of `o` that
/// [`Claim::clashes_with`] it, found without building them.
fn held_as(o: &Organization, claim: &Claim, base: &PublicBase) -> Option<Claim> {
    match claim {
        Claim::ClientId(id) => (o.client_id() == Some(id.as_str())).then(|| claim.clone()),
        Claim::CustomDomain(host) | Claim::Subdomain(host) => {
            if o.spec.custom_domain.as_deref() == Some(host.as_str()) {
                return Some(Claim::CustomDomain(host.clone()));
            }
            let sub = host.strip_suffix(base.base_domain.as_str())?.strip_suffix('.')?;
            (o.spec.subdomain.as_deref() == Some(sub)).then(|| Claim::Subdomain(host.clone()))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crd::{LoginMethods, OrganizationSpec, SecretRotation};

    /// A minimal organization for unit tests.
    pub(crate) fn org(subdomain: Option<&str>, custom: Option<&str>) -> Organization {
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
                user_creation: Default::default(),
                allowed_email_domains: vec![],
                hijack_protection: None,
                theme: None,
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

    pub(crate) fn created(mut o: Organization, name: &str, secs: i64, client_id: Option<&str>) -> Organization {
        o.metadata.name = Some(name.into());
        o.metadata.namespace = Some("ns".into());
        o.metadata.uid = Some(format!("uid-{name}"));
        o.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(secs).unwrap(),
        ));
        o.spec.client_id = client_id.map(Into::into);
        o
    }

    #[test]
    fn the_later_organization_gets_the_conflict_and_hosts_clash_across_fields() {
        let first = created(org(Some("acme"), None), "first", 100, Some("client-aaaa"));
        let second = created(
            org(Some("acme"), Some("login.acme.com")),
            "second",
            200,
            Some("client-aaaa"),
        );
        // A custom domain equal to another organization's subdomain host is a clash too.
        let third = created(org(None, Some("acme.auth.example.net")), "third", 300, None);
        let all = [&first, &second, &third];
        assert!(conflicts(&first, &all, &base(None)).is_empty());
        let c = conflicts(&second, &all, &base(None));
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].claim, Claim::ClientId("client-aaaa".into()));
        assert_eq!(c[1].claim, Claim::Subdomain("acme.auth.example.net".into()));
        assert!(c.iter().all(|c| c.holder.metadata.name.as_deref() == Some("first")));
        let c = conflicts(&third, &all, &base(None));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].claim, Claim::CustomDomain("acme.auth.example.net".into()));
        assert_eq!(c[0].held_as, Claim::Subdomain("acme.auth.example.net".into()));
        assert_eq!(c[0].holder.metadata.name.as_deref(), Some("first"));
    }

    #[test]
    fn equal_creation_times_fall_back_to_the_name() {
        let b = created(org(Some("x"), None), "b", 100, None);
        let a = created(org(Some("x"), None), "a", 100, None);
        let all = [&b, &a];
        assert!(conflicts(&a, &all, &base(None)).is_empty());
        assert_eq!(conflicts(&b, &all, &base(None)).len(), 1);
    }
}
