//! Hijack protection (the Organization's `hijackProtection`, CentralAuth's setting): a session
//! is bound at login to what the client showed — its address, its `User-Agent` (stored as a
//! SHA-256, never the header itself) and, for native logins, the app's `device_id` — and a
//! later use of the session that shows something else ends it.
//!
//! Only requests made by the user's own device are compared, and only in what they carry: the
//! browser coming back to the authorization endpoints (address, user agent, the `device_id`
//! of a native login), a public client's refresh (address). A confidential client's server
//! calls carry the server's address, not the user's, and are not compared.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Which aspects of a client a session is bound to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aspects {
    /// The client address.
    pub ip: bool,
    /// The `User-Agent` header.
    pub user_agent: bool,
    /// The native app's device ID.
    pub device_id: bool,
}

/// What a session was bound to at login: only the aspects enabled then.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// The client address at login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Hex SHA-256 of the `User-Agent` header at login (of the empty string when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// What a request shows of its client; `None`: the request does not carry that aspect.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shown<'a> {
    /// The client address (from the trusted-proxy logic of [`crate::forwarded`]).
    pub addr: Option<IpAddr>,
    /// The `User-Agent` header (`Some("")` when a browser request has none).
    pub user_agent: Option<&'a str>,
    /// The `device_id` of a native authorization request.
    pub device_id: Option<&'a str>,
}

/// Why a session was ended: it was used by another client than the one it is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Another address.
    Address,
    /// Another user agent.
    UserAgent,
    /// Another device.
    Device,
}

impl Mismatch {
    /// What the user (or the app) is told.
    pub fn message(self) -> &'static str {
        match self {
            Mismatch::Address => {
                "the session was ended: it was used from another network address than the one it was logged in from, and this organization binds sessions to it (hijackProtection.ip); log in again"
            }
            Mismatch::UserAgent => {
                "the session was ended: it was used from another browser than the one it was logged in with, and this organization binds sessions to it (hijackProtection.userAgent); log in again"
            }
            Mismatch::Device => {
                "the session was ended: it was used by another device than the one it was logged in on, and this organization binds sessions to it (hijackProtection.deviceId); log in again"
            }
        }
    }
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Mismatch {}

fn ua_hash(user_agent: &str) -> String {
    crate::store::hashed(user_agent)
}

/// The binding of a session logged in by `shown`, for the enabled `aspects` (`None`: none).
pub fn bind(aspects: Aspects, shown: Shown<'_>) -> Option<Binding> {
    let binding = Binding {
        ip: shown.addr.filter(|_| aspects.ip).map(|a| a.to_canonical()),
        user_agent: shown.user_agent.filter(|_| aspects.user_agent).map(ua_hash),
    };
    (binding != Binding::default()).then_some(binding)
}

/// Whether a use of a session bound to `binding` (and logged in on `device`) by `shown` may
/// go on, for the aspects enabled now. An aspect the session was not bound to (a login before
/// it was enabled) or the request does not carry is not compared.
pub fn check(
    aspects: Aspects,
    binding: Option<&Binding>,
    device: Option<&str>,
    shown: Shown<'_>,
) -> Result<(), Mismatch> {
    let bound = binding.cloned().unwrap_or_default();
    if aspects.ip
        && let (Some(at_login), Some(now)) = (bound.ip, shown.addr)
        && at_login != now.to_canonical()
    {
        return Err(Mismatch::Address);
    }
    if aspects.user_agent
        && let (Some(at_login), Some(now)) = (&bound.user_agent, shown.user_agent)
        && *at_login != ua_hash(now)
    {
        return Err(Mismatch::UserAgent);
    }
    if aspects.device_id
        && let (Some(at_login), Some(now)) = (device, shown.device_id)
        && at_login != now
    {
        return Err(Mismatch::Device);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Aspects = Aspects {
        ip: true,
        user_agent: true,
        device_id: true,
    };

    fn shown<'a>(addr: &str, ua: &'a str, device: Option<&'a str>) -> Shown<'a> {
        Shown {
            addr: Some(addr.parse().unwrap()),
            user_agent: Some(ua),
            device_id: device,
        }
    }

    #[test]
    fn a_session_is_ended_by_another_address_browser_or_device_and_kept_otherwise() {
        let login = shown("203.0.113.7", "Firefox/140", Some("dev-1"));
        let b = bind(ALL, login).unwrap();
        assert_ne!(b.user_agent.as_deref(), Some("Firefox/140"), "only a hash is stored");
        let check = |s| check(ALL, Some(&b), Some("dev-1"), s);
        assert_eq!(check(login), Ok(()));
        assert_eq!(check(shown("::ffff:203.0.113.7", "Firefox/140", None)), Ok(()));
        assert_eq!(
            check(shown("198.51.100.1", "Firefox/140", None)),
            Err(Mismatch::Address)
        );
        assert_eq!(check(shown("203.0.113.7", "curl/8", None)), Err(Mismatch::UserAgent));
        assert_eq!(
            check(shown("203.0.113.7", "Firefox/140", Some("dev-2"))),
            Err(Mismatch::Device)
        );
        let server_call = Shown::default();
        assert_eq!(
            check(server_call),
            Ok(()),
            "what a request does not carry is not compared"
        );
    }

    #[test]
    fn only_enabled_aspects_are_bound_and_compared() {
        let ip_only = Aspects {
            ip: true,
            ..Aspects::default()
        };
        let b = bind(ip_only, shown("203.0.113.7", "Firefox/140", None)).unwrap();
        assert!(b.user_agent.is_none());
        assert_eq!(
            check(ip_only, Some(&b), None, shown("203.0.113.7", "curl/8", Some("x"))),
            Ok(())
        );
        assert!(bind(Aspects::default(), shown("203.0.113.7", "a", None)).is_none());
        assert_eq!(
            check(Aspects::default(), Some(&b), None, shown("198.51.100.1", "a", None)),
            Ok(()),
            "turned off: no longer compared"
        );
        assert_eq!(
            check(ALL, None, None, shown("198.51.100.1", "a", None)),
            Ok(()),
            "an unbound session"
        );
    }
}
