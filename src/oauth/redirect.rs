//! Redirect URI rules.
//!
//! - Standard endpoints (`/oauth2/authorize`): the redirect URI must equal, byte for byte, one
//!   of the organization's `redirectUris` (RFC 9700 §4.1.3), or a native app's registered
//!   `status.redirectUri` (then the client is public).
//! - CentralAuth `/login`: the web client appends `?return_to=…` to its callback URL, so the
//!   rule is the origin (scheme, host, port) in `allowedOrigins` — and, when `redirectUris` is
//!   set, the path equal to one of theirs; native apps: same origin as the app link and a path
//!   under the app link's path.
//! - Desktop apps, on both protocols ([`check_loopback`]): the registered loopback redirect
//!   with any port (RFC 8252 §7.3): scheme `http`, the same IP literal (`127.0.0.1` or
//!   `[::1]`; `localhost` is never accepted, RFC 8252 §8.3), the same path byte for byte, no
//!   query.
//!
//! Origins match `allowedOrigins` through [`crate::origin`], the one matcher of the crate
//! (which never matches a wildcard on a public suffix).
//!
//! URLs are parsed strictly and compared as written, never normalised: userinfo (`a@evil`),
//! backslashes, fragments, dot segments (also percent-encoded), percent-encoded or upper-case
//! hosts, whitespace and control characters are refused outright.

/// A redirect URI split into its raw parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrictUrl<'a> {
    /// `https` or `http`.
    pub scheme: &'a str,
    /// Lower-case host name or `[::1]`.
    pub host: &'a str,
    /// Explicit port, when written and not the scheme's default.
    pub port: Option<u16>,
    /// Raw path (`/` when empty).
    pub path: &'a str,
    /// Raw query without `?`.
    pub query: Option<&'a str>,
}

impl StrictUrl<'_> {
    /// `scheme://host[:port]` with the scheme's default port left out.
    pub fn origin(&self) -> String {
        match self.port {
            Some(p) => format!("{}://{}:{p}", self.scheme, self.host),
            None => format!("{}://{}", self.scheme, self.host),
        }
    }

    /// Origin and path, without the query: what the CentralAuth client repeats at `/api/v1/verify`.
    pub fn without_query(&self) -> String {
        format!("{}{}", self.origin(), self.path)
    }

    fn is_loopback(&self) -> bool {
        matches!(self.host, "localhost" | "127.0.0.1" | "[::1]")
    }
}

/// Why a redirect URI was refused. The message never repeats the URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    /// Not a URL this server accepts at all.
    #[error("redirect_uri is malformed: {0}")]
    Malformed(&'static str),
    /// Well-formed but not registered for this client.
    #[error("redirect_uri is not registered for this client: {0}")]
    NotRegistered(&'static str),
}

/// Parses `raw` strictly (see the module documentation).
pub fn parse(raw: &str) -> Result<StrictUrl<'_>, RedirectError> {
    use RedirectError::Malformed;
    if raw.len() > 2048 {
        return Err(Malformed("longer than 2048 characters"));
    }
    if raw
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\' || b >= 0x80)
    {
        return Err(Malformed(
            "contains whitespace, control characters, backslashes or non-ASCII",
        ));
    }
    if raw.contains('#') {
        return Err(Malformed("contains a fragment"));
    }
    let (scheme, rest) = raw.split_once("://").ok_or(Malformed("not an absolute http(s) URL"))?;
    if scheme != "https" && scheme != "http" {
        return Err(Malformed("the scheme must be https"));
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(Malformed("contains userinfo"));
    }
    let (host, port) = split_port(authority, scheme)?;
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    let dot_segment = |s: &str| {
        let lower = s.to_ascii_lowercase().replace("%2e", ".");
        lower == "." || lower == ".."
    };
    if path.split('/').any(dot_segment) || path.to_ascii_lowercase().contains("%2f") {
        return Err(Malformed("contains dot segments or encoded slashes"));
    }
    Ok(StrictUrl {
        scheme,
        host,
        port,
        path,
        query,
    })
}

fn split_port<'a>(authority: &'a str, scheme: &str) -> Result<(&'a str, Option<u16>), RedirectError> {
    use RedirectError::Malformed;
    let (host, port) = if authority.starts_with('[') {
        match authority.split_once(']') {
            Some((h, rest)) => (&authority[..h.len() + 1], rest.strip_prefix(':')),
            None => return Err(Malformed("bad IPv6 host")),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let host_ok = host == "[::1]"
        || (!host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            }));
    if !host_ok {
        return Err(Malformed("the host must be a lower-case DNS name"));
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            let p: u16 = p.parse().map_err(|_| Malformed("bad port"))?;
            let default = if scheme == "https" { 443 } else { 80 };
            (p != default).then_some(p)
        }
        Some(_) => return Err(Malformed("bad port")),
    };
    Ok((host, port))
}

/// What the organization allows, as the redirect checks need it.
#[derive(Clone, Copy, Debug)]
pub struct WebPolicy<'a> {
    /// `spec.allowedOrigins`.
    pub allowed_origins: &'a [String],
    /// `spec.redirectUris`.
    pub redirect_uris: &'a [String],
    /// `spec.allowLocalhost`.
    pub allow_localhost: bool,
}

/// The CentralAuth `/login` rule for web clients: whitelisted origin (and registered path when
/// `redirectUris` is set). `http://` only for loopback with `allowLocalhost`.
pub fn check_centralauth_web(raw: &str, policy: WebPolicy<'_>) -> Result<(), RedirectError> {
    let url = parse(raw)?;
    scheme_allowed(&url, policy.allow_localhost)?;
    if !crate::origin::origin_allowed(&url.origin(), policy.allowed_origins) {
        return Err(RedirectError::NotRegistered("its origin is not in allowedOrigins"));
    }
    if policy.redirect_uris.is_empty() {
        return Ok(());
    }
    let registered = policy
        .redirect_uris
        .iter()
        .filter_map(|r| parse(r).ok())
        .any(|r| r.origin() == url.origin() && r.path == url.path);
    if registered {
        Ok(())
    } else {
        Err(RedirectError::NotRegistered("its path is not one of redirectUris"))
    }
}

/// The native-app rule: same origin as the app link, path equal to or under the app link's.
pub fn check_native(raw: &str, app_link: &str) -> Result<(), RedirectError> {
    let url = parse(raw)?;
    let link = parse(app_link).map_err(|_| RedirectError::NotRegistered("the app link is malformed"))?;
    if url.scheme != "https" || url.origin() != link.origin() {
        return Err(RedirectError::NotRegistered("it is not on the app's App Link origin"));
    }
    let base = link.path.trim_end_matches('/');
    let under = base.is_empty() || url.path == base || url.path.starts_with(&format!("{base}/"));
    if under {
        Ok(())
    } else {
        Err(RedirectError::NotRegistered(
            "its path is not under the app's App Link path",
        ))
    }
}

/// The desktop rule: the loopback redirect `app_link` with any port (or none), the same IP
/// literal and path, no query.
pub fn check_loopback(raw: &str, app_link: &str) -> Result<(), RedirectError> {
    let url = parse(raw)?;
    let link = parse(app_link).map_err(|_| RedirectError::NotRegistered("the app link is malformed"))?;
    if url.scheme != "http" || url.host != link.host {
        return Err(RedirectError::NotRegistered(
            "a desktop app must redirect to its loopback IP literal (http://127.0.0.1 or http://[::1], as registered; not localhost)",
        ));
    }
    if url.path != link.path || url.query.is_some() {
        return Err(RedirectError::NotRegistered(
            "its path differs from the desktop app's appLink (only the port may differ; no query)",
        ));
    }
    Ok(())
}

/// The standard rule: byte-exact equality with a registered URI.
pub fn check_exact(raw: &str, registered: &[String]) -> Result<(), RedirectError> {
    parse(raw)?;
    if registered.iter().any(|r| r == raw) {
        Ok(())
    } else {
        Err(RedirectError::NotRegistered(
            "it does not exactly equal one of redirectUris",
        ))
    }
}

fn scheme_allowed(url: &StrictUrl<'_>, allow_localhost: bool) -> Result<(), RedirectError> {
    if url.scheme == "https" || (allow_localhost && url.is_loopback()) {
        Ok(())
    } else {
        Err(RedirectError::NotRegistered(
            "http:// is only allowed for localhost with allowLocalhost",
        ))
    }
}

/// `uri` with `params` appended to its query (after any query it already has).
pub fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    let sep = match uri.find('?') {
        None => "?",
        Some(i) if i + 1 == uri.len() || uri.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{uri}{sep}{}", query.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn exact_matching_refuses_every_variant() {
        let reg = s(&["https://app.example.com/cb"]);
        assert!(check_exact("https://app.example.com/cb", &reg).is_ok());
        for bad in [
            "https://app.example.com/cb/",
            "https://app.example.com/CB",
            "https://app.example.com/cb?x=1",
            "https://app.example.com/cb/../cb",
            "https://app.example.com/x/%2e%2e/cb",
            "https://app.example.com:8443/cb",
            "http://app.example.com/cb",
            "https://app.example.com@evil.com/cb",
            "https://app.ex@evil.com/cb",
            "https://app.example.com/c%62",
            "https://app%2eexample.com/cb",
            "https://APP.example.com/cb",
            "https://app.example.com/cb#x",
            "https://app.example.com\\@evil.com/cb",
            "myapp://cb",
        ] {
            assert!(check_exact(bad, &reg).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn centralauth_web_matches_origin_and_registered_path() {
        let origins = s(&["https://example.com", "https://*.example.com", "http://localhost:3000"]);
        let none: Vec<String> = vec![];
        let p = WebPolicy {
            allowed_origins: &origins,
            redirect_uris: &none,
            allow_localhost: true,
        };
        assert!(check_centralauth_web("https://example.com/api/cb?return_to=https%3A%2F%2Fexample.com%2Fx", p).is_ok());
        assert!(check_centralauth_web("https://a.b.example.com/cb", p).is_ok());
        assert!(check_centralauth_web("http://localhost:3000/cb", p).is_ok());
        assert!(check_centralauth_web("https://example.com.evil.com/cb", p).is_err());
        assert!(check_centralauth_web("https://evilexample.com/cb", p).is_err());
        assert!(check_centralauth_web("https://example.com:444/cb", p).is_err());
        assert!(check_centralauth_web("http://example.com/cb", p).is_err());
        assert!(
            check_centralauth_web(
                "http://localhost:3000/cb",
                WebPolicy {
                    allow_localhost: false,
                    ..p
                }
            )
            .is_err()
        );
        let reg = s(&["https://example.com/api/cb"]);
        let p = WebPolicy {
            redirect_uris: &reg,
            ..p
        };
        assert!(check_centralauth_web("https://example.com/api/cb?return_to=x", p).is_ok());
        assert!(check_centralauth_web("https://example.com/api/CB", p).is_err());
        assert!(check_centralauth_web("https://example.com/api/cb/", p).is_err());
    }

    #[test]
    fn native_redirects_stay_under_the_app_link() {
        let link = "https://app.example.com/auth";
        assert!(check_native("https://app.example.com/auth", link).is_ok());
        assert!(check_native("https://app.example.com/auth/callback", link).is_ok());
        assert!(check_native("https://app.example.com/authx", link).is_err());
        assert!(check_native("https://app.example.com/other", link).is_err());
        assert!(check_native("https://evil.example.com/auth", link).is_err());
        assert!(check_native("https://app.example.com/auth/../x", link).is_err());
        assert!(check_native("myapp://auth", link).is_err());
    }

    #[test]
    fn loopback_redirects_ignore_the_port_and_compare_host_and_path() {
        let v4 = "http://127.0.0.1/callback";
        for ok in [
            "http://127.0.0.1:53412/callback",
            "http://127.0.0.1:1/callback",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:80/callback",
        ] {
            assert!(check_loopback(ok, v4).is_ok(), "{ok}");
        }
        for bad in [
            "http://localhost:53412/callback",
            "http://[::1]:53412/callback",
            "https://127.0.0.1:53412/callback",
            "http://127.0.0.2:53412/callback",
            "http://127.0.0.1:53412/callback/",
            "http://127.0.0.1:53412/Callback",
            "http://127.0.0.1:53412/callback/x",
            "http://127.0.0.1:53412/callback?x=1",
            "http://127.0.0.1:53412/callback#x",
            "http://127.0.0.1:53412/x/../callback",
            "http://evil.example:53412/callback",
            "http://127.0.0.1@evil.example/callback",
            "http://127.0.0.1:99999/callback",
            "myapp://callback",
        ] {
            assert!(check_loopback(bad, v4).is_err(), "{bad} was accepted");
        }
        let v6 = "http://[::1]/cb";
        assert!(check_loopback("http://[::1]:4000/cb", v6).is_ok());
        assert!(check_loopback("http://127.0.0.1:4000/cb", v6).is_err());
        assert!(
            check_loopback("http://[::1]:4000/", "http://[::1]").is_ok(),
            "an empty path is /"
        );
    }

    #[test]
    fn params_are_appended_after_an_existing_query() {
        assert_eq!(
            with_params("https://a.b/cb", &[("code", "x y")]),
            "https://a.b/cb?code=x+y"
        );
        assert_eq!(
            with_params("https://a.b/cb?return_to=z", &[("code", "c"), ("state", "s&")]),
            "https://a.b/cb?return_to=z&code=c&state=s%26"
        );
    }
}
