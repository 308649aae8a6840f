//! Web origins (`scheme://host[:port]`) and whether a URL belongs to an organization's
//! `allowedOrigins`.
//!
//! Rules (shared by the Organization controller, which refuses `redirectUris` outside the
//! whitelist, and by the login server):
//! - Origins compare scheme, host and port; a default port (443 for `https`, 80 for `http`)
//!   equals no port, hosts compare case-insensitively.
//! - A pattern `https://*.example.com` matches every host *below* `example.com`, at any depth
//!   (`a.example.com`, `a.b.example.com`) but not `example.com` itself; scheme and port must
//!   still match.
//! - A wildcard whose parent is a public suffix (`https://*.com`, `https://*.co.uk`,
//!   `https://*.github.io`: anyone can register a name below it) or an IP address
//!   (`https://*.10.0.0.1`) matches nothing, ever ([`pattern_problem`] says why): the
//!   Organization controller reports it (`WildcardOnPublicSuffix`), and the login server never
//!   redirects to such an origin even before the controller has looked at the organization.
//!   Public suffixes come from the Public Suffix List compiled into the `psl` crate (ICANN and
//!   private sections; a name under an unknown top-level domain counts as registrable).

use std::net::IpAddr;

use url::Url;

/// The origin of an absolute URL, normalized: lowercase scheme and host, no default port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `https` or `http`.
    pub scheme: String,
    /// Host name (lowercase) or IP literal (IPv6 in brackets).
    pub host: String,
    /// Explicit, non-default port.
    pub port: Option<u16>,
}

impl Origin {
    /// The origin of `url`, or `None` when it has no host (e.g. `mailto:`, `myapp:/x`).
    pub fn of_url(url: &Url) -> Option<Origin> {
        let host = url.host_str()?.to_ascii_lowercase();
        Some(Origin {
            scheme: url.scheme().to_string(),
            host,
            port: url.port(), // `url` already drops a port equal to the scheme's default
        })
    }

    /// Parses a URL string and returns its origin.
    pub fn parse(url: &str) -> Option<Origin> {
        Origin::of_url(&Url::parse(url).ok()?)
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}://{}:{port}", self.scheme, self.host),
            None => write!(f, "{}://{}", self.scheme, self.host),
        }
    }
}

/// Why an `allowedOrigins` entry can never match.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternProblem {
    /// `*.` in front of a public suffix: every host below it belongs to anyone who registers one.
    #[error(
        "{pattern} is a wildcard on the public suffix {parent}: anyone can register a host below it; list your own domain instead (https://*.example.co.uk)"
    )]
    WildcardOnPublicSuffix {
        /// The entry.
        pattern: String,
        /// Its parent (what follows `*.`).
        parent: String,
    },
    /// `*.` in front of an IP address, which has no subdomains.
    #[error(
        "{pattern} is a wildcard on the IP address {parent}, which has no subdomains; list the exact origin instead"
    )]
    WildcardOnIpAddress {
        /// The entry.
        pattern: String,
        /// Its parent (what follows `*.`).
        parent: String,
    },
}

/// A pattern split into whether it is a wildcard and the origin of its parent.
fn split_pattern(pattern: &str) -> Option<(bool, Origin)> {
    match pattern.split_once("://*.") {
        Some((scheme, rest)) => Some((true, Origin::parse(&format!("{scheme}://{rest}"))?)),
        None => Some((false, Origin::parse(pattern)?)),
    }
}

/// Why the `allowedOrigins` entry `pattern` can never match (see the module doc); `None` for a
/// usable entry (malformed entries are the schema's business and simply never match).
pub fn pattern_problem(pattern: &str) -> Option<PatternProblem> {
    let (true, parent) = split_pattern(pattern)? else {
        return None;
    };
    let host = parent.host.trim_start_matches('[').trim_end_matches(']');
    let numeric_tld = host
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if host.parse::<IpAddr>().is_ok() || numeric_tld {
        return Some(PatternProblem::WildcardOnIpAddress {
            pattern: pattern.to_string(),
            parent: host.to_string(),
        });
    }
    psl::domain(host.as_bytes())
        .is_none()
        .then(|| PatternProblem::WildcardOnPublicSuffix {
            pattern: pattern.to_string(),
            parent: host.to_string(),
        })
}

/// The entries of `allowed` that can match (those with a [`pattern_problem`] left out).
pub fn usable(allowed: &[String]) -> impl Iterator<Item = &String> {
    allowed.iter().filter(|p| pattern_problem(p).is_none())
}

/// Whether `origin` equals the `allowedOrigins` entry `pattern`, a leading `*.` in the
/// pattern's host matching any subdomain (see the module doc). An entry with a
/// [`pattern_problem`] matches nothing.
pub fn matches(pattern: &str, origin: &Origin) -> bool {
    if pattern_problem(pattern).is_some() {
        return false;
    }
    let Some((wildcard, p)) = split_pattern(pattern) else {
        return false;
    };
    if p.scheme != origin.scheme || p.port != origin.port {
        return false;
    }
    if wildcard {
        origin
            .host
            .strip_suffix(&p.host)
            .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
    } else {
        p.host == origin.host
    }
}

/// Whether `pattern` is exactly `origin` (no wildcard expansion): used to refuse an app link
/// that *is* one of the organization's websites.
pub fn equals(pattern: &str, origin: &Origin) -> bool {
    !pattern.contains("://*.") && Origin::parse(pattern).is_some_and(|p| &p == origin)
}

/// Whether the absolute URL `url` lies inside one of `allowed` origins.
pub fn url_allowed(url: &str, allowed: &[String]) -> bool {
    Origin::parse(url).is_some_and(|o| allowed.iter().any(|p| matches(p, &o)))
}

/// Whether `origin`, written exactly as an origin (`https://host[:port]`, lowercase, no
/// default port, no path), lies inside one of `allowed` origins.
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    Origin::parse(origin).is_some_and(|o| o.to_string() == origin && allowed.iter().any(|p| matches(p, &o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(url: &str) -> Origin {
        Origin::parse(url).unwrap()
    }

    #[test]
    fn default_ports_and_case_are_normalized() {
        assert_eq!(
            o("https://App.Example.com:443/x").to_string(),
            "https://app.example.com"
        );
        assert_eq!(
            o("https://app.example.com:8443/x").to_string(),
            "https://app.example.com:8443"
        );
        assert!(matches("https://example.com", &o("https://EXAMPLE.com/cb?x=1")));
        assert!(!matches("https://example.com", &o("https://example.com:8443/cb")));
        assert!(!matches("https://example.com", &o("http://example.com/cb")));
        assert!(matches("http://localhost:3000", &o("http://localhost:3000/cb")));
    }

    #[test]
    fn wildcards_match_subdomains_at_any_depth_but_not_the_apex() {
        let p = "https://*.example.com";
        assert!(matches(p, &o("https://a.example.com/cb")));
        assert!(matches(p, &o("https://a.b.example.com/cb")));
        assert!(!matches(p, &o("https://example.com/cb")));
        assert!(!matches(p, &o("https://badexample.com/cb")));
        assert!(!matches(p, &o("https://a.example.com.evil.net/cb")));
        assert!(!matches(p, &o("https://a.example.com:444/cb")));
        assert!(matches("https://*.example.com:8443", &o("https://a.example.com:8443/")));
        assert!(!equals(p, &o("https://a.example.com")));
        assert!(equals("https://example.com", &o("https://example.com/x")));
    }

    #[test]
    fn wildcards_on_public_suffixes_and_ip_addresses_match_nothing() {
        for (pattern, host) in [
            ("https://*.com", "https://attacker-site.com/cb"),
            ("https://*.co.uk", "https://attacker.co.uk/cb"),
            ("https://*.github.io", "https://attacker.github.io/cb"),
            ("https://*.s3.amazonaws.com", "https://bucket.s3.amazonaws.com/cb"),
            ("https://*.localhost", "https://evil.localhost/cb"),
            ("https://*.10.0.0.1", "https://10.0.0.1/cb"),
        ] {
            assert!(pattern_problem(pattern).is_some(), "{pattern}");
            assert!(!matches(pattern, &o(host)), "{pattern} matched {host}");
            assert!(!url_allowed(host, &[pattern.to_string()]));
        }
        let problem = pattern_problem("https://*.co.uk").unwrap();
        assert!(matches!(problem, PatternProblem::WildcardOnPublicSuffix { .. }));
        assert!(problem.to_string().contains("public suffix co.uk"), "{problem}");
        for ip in ["https://*.10.0.0.1", "https://*.0.1:8443"] {
            assert!(
                matches!(pattern_problem(ip), Some(PatternProblem::WildcardOnIpAddress { .. })),
                "{ip}"
            );
        }
        // Registrable domains (also under private suffixes and unknown TLDs) keep working.
        for (pattern, host) in [
            ("https://*.example.co.uk", "https://app.example.co.uk/cb"),
            ("https://*.acme.github.io", "https://docs.acme.github.io/cb"),
            ("https://*.internal.corp", "https://app.internal.corp/cb"),
        ] {
            assert_eq!(pattern_problem(pattern), None, "{pattern}");
            assert!(matches(pattern, &o(host)), "{pattern} {host}");
        }
        assert_eq!(pattern_problem("https://10.0.0.1"), None, "an exact IP origin is fine");
        let allowed = vec!["https://*.com".to_string(), "https://example.com".to_string()];
        assert_eq!(usable(&allowed).collect::<Vec<_>>(), [&allowed[1]]);
    }

    #[test]
    fn origin_allowed_takes_exact_origins_only() {
        let allowed = vec!["https://*.example.com".to_string(), "https://example.com".to_string()];
        assert!(origin_allowed("https://a.example.com", &allowed));
        assert!(origin_allowed("https://example.com", &allowed));
        assert!(!origin_allowed("https://example.com/", &allowed));
        assert!(!origin_allowed("https://example.com:443", &allowed));
        assert!(!origin_allowed("https://evil.com", &allowed));
    }

    #[test]
    fn urls_without_a_host_belong_nowhere() {
        let allowed = vec!["https://example.com".to_string()];
        assert!(url_allowed("https://example.com/callback", &allowed));
        assert!(!url_allowed("myapp://example.com/callback", &allowed));
        assert!(!url_allowed("not a url", &allowed));
    }
}
