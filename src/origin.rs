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

/// Whether `origin` equals the `allowedOrigins` entry `pattern`, a leading `*.` in the
/// pattern's host matching any subdomain (see the module doc).
pub fn matches(pattern: &str, origin: &Origin) -> bool {
    let (wildcard, concrete) = match pattern.split_once("://*.") {
        Some((scheme, rest)) => (true, format!("{scheme}://{rest}")),
        None => (false, pattern.to_string()),
    };
    let Some(p) = Origin::parse(&concrete) else {
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
    fn urls_without_a_host_belong_nowhere() {
        let allowed = vec!["https://example.com".to_string()];
        assert!(url_allowed("https://example.com/callback", &allowed));
        assert!(!url_allowed("myapp://example.com/callback", &allowed));
        assert!(!url_allowed("not a url", &allowed));
    }
}
