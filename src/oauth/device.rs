//! Device cookies (OWASP's answer to account lockout): after a browser logs an account in, it
//! gets a signed cookie naming that account of that organization. Later attempts for the
//! account from that browser are counted on the cookie's own counter instead of the account's
//! and the address's ([`super::throttle::Tally::device`]), so a stranger who fails fifty times
//! for `ann@example.org` cannot keep Ann out of a browser she has logged in with before.
//!
//! The cookie is a JWS by the server's signing keys (`typ: ca-device+jwt`, never accepted as an
//! access or ID token) with `iss` (the organization's issuer), `sub` (the user ID of the account
//! in that organization, not the address), a random `jti` (the device ID its counter is keyed
//! by), `iat` and `exp`. Every replica verifies it without the store. It stops working when it
//! expires ([`TTL`]) or when the key that signed it leaves the key set after a rotation; the
//! next successful login gives a new one. One cookie per organization (its name carries a hash
//! of the organization's UID), naming the account that logged in last.

use serde_json::{Value, json};

use super::grant::OrgKey;
use super::tokens::user_id;
use crate::store::hashed;

/// JWS `typ` of device cookies.
pub const TYP: &str = "ca-device+jwt";
/// Lifetime of a device cookie, seconds (90 days).
pub const TTL: i64 = 90 * 24 * 3600;

/// The cookie name for organization `org`.
pub fn cookie_name(org: &OrgKey) -> String {
    format!("ca_device_{}", &hashed(&org.uid)[..16])
}

/// The claims of a new device cookie for `email` of `org`, issued by `issuer`, device `jti`.
pub fn claims(issuer: &str, org: &OrgKey, email: &str, jti: &str, now: i64) -> Value {
    json!({"iss": issuer, "sub": user_id(org, email), "jti": jti, "iat": now, "exp": now + TTL})
}

/// The device ID of verified cookie `claims` when they were issued by `issuer` for `email` of
/// `org`; `None` for any other account or organization.
pub fn device_of(claims: &Value, issuer: &str, org: &OrgKey, email: &str) -> Option<String> {
    let same = claims["iss"].as_str() == Some(issuer) && claims["sub"].as_str() == Some(user_id(org, email).as_str());
    same.then(|| claims["jti"].as_str().map(String::from)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(uid: &str) -> OrgKey {
        OrgKey {
            namespace: "ns".into(),
            name: "acme".into(),
            uid: uid.into(),
        }
    }

    #[test]
    fn a_cookie_names_one_account_of_one_organization() {
        let c = claims("https://login.acme.test", &org("u1"), "Ann@example.org", "dev-1", 100);
        assert_eq!(c["exp"], 100 + TTL);
        assert!(
            !c.to_string().contains("example.org"),
            "the address is not in the cookie"
        );
        let issuer = "https://login.acme.test";
        assert_eq!(
            device_of(&c, issuer, &org("u1"), "ann@example.org").as_deref(),
            Some("dev-1")
        );
        assert_eq!(device_of(&c, issuer, &org("u1"), "bo@example.org"), None);
        assert_eq!(device_of(&c, issuer, &org("u2"), "ann@example.org"), None);
        assert_eq!(device_of(&c, "https://other.test", &org("u1"), "ann@example.org"), None);
        assert_ne!(cookie_name(&org("u1")), cookie_name(&org("u2")));
    }
}
