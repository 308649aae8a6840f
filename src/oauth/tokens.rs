//! What tokens say: the CentralAuth user object and JWE payloads, and the claims of the
//! standard JWT access tokens (RFC 9068) and OIDC ID tokens.

use serde_json::{Value, json};

use super::grant::{OrgKey, Session};

/// A stable, opaque user ID for `email` in organization `org` (UUID-shaped, from SHA-256 of
/// the organization UID and the lower-cased address): the same user gets the same ID across
/// logins, replicas and restarts, and IDs of two organizations never collide.
pub fn user_id(org: &OrgKey, email: &str) -> String {
    let input = format!("{}\n{}", org.uid, email.to_ascii_lowercase());
    let d = ring::digest::digest(&ring::digest::SHA256, input.as_bytes());
    let h = hex(&d.as_ref()[..16]);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Lower-case hex of `bytes` (one allocation; a `format!` per byte cost 16 of them per user
/// ID, on every token a user gets).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Gravatar URL of an address: `https://www.gravatar.com/avatar/<SHA-256 hex of the trimmed,
/// lower-cased address>` (the SHA-256 form Gravatar accepts).
pub fn gravatar(email: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, email.trim().to_ascii_lowercase().as_bytes());
    format!("https://www.gravatar.com/avatar/{}", hex(d.as_ref()))
}

/// RFC 3339 UTC time of a Unix timestamp.
pub fn rfc3339(unix: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S.000Z").to_string())
        .unwrap_or_default()
}

/// The CentralAuth user object (`/api/v1/userinfo`, and `user` in the ID token), from the
/// directory's record taken at login ([`Session::user`]). A session of an older replica, without
/// that record, describes a verified user whose times are the session's. `blocked` is always
/// false here: a blocked user's sessions end (see [`super::access`]), so no token of theirs
/// reaches this. `affirmationDate` is the time of the login that affirmed the user
/// (`affirm=1`), when this session comes from one.
pub fn centralauth_user(session: &Session, organization_id: &str) -> Value {
    let login = rfc3339(session.created_at);
    let mut user = match &session.user {
        Some(p) => json!({
            "id": p.id,
            "email": p.email,
            "gravatar": gravatar(&p.email),
            "verified": p.verified,
            "blocked": false,
            "organizationId": organization_id,
            "created": rfc3339(p.created),
            "updated": rfc3339(p.updated),
            "lastLogin": p.last_login,
            "connections": p.connections.iter().map(|c| json!({"type": c.type_, "created": rfc3339(c.created)})).collect::<Vec<_>>(),
        }),
        None => json!({
            "id": user_id(&session.org, &session.email),
            "email": session.email,
            "gravatar": gravatar(&session.email),
            "verified": true,
            "blocked": false,
            "organizationId": organization_id,
            "created": login,
            "updated": login,
            "lastLogin": login,
            "connections": [],
        }),
    };
    if let Some(at) = session.affirmed_at {
        user["affirmationDate"] = json!(rfc3339(at));
    }
    user
}

/// Claims of an RFC 9068 access token.
pub struct AccessClaims<'a> {
    /// Issuer.
    pub issuer: &'a str,
    /// Subject (user ID, or the client ID for client_credentials).
    pub subject: &'a str,
    /// Client ID (also the audience).
    pub client_id: &'a str,
    /// Granted scope.
    pub scope: Option<&'a str>,
    /// Token ID.
    pub jti: &'a str,
    /// Session ID, for user tokens.
    pub session_id: Option<&'a str>,
    /// Refresh family, for user tokens.
    pub family_id: Option<&'a str>,
    /// Login time, for user tokens.
    pub auth_time: Option<i64>,
    /// Issued at.
    pub now: i64,
    /// Lifetime in seconds.
    pub ttl: i64,
}

/// The JSON claims, serialised straight from the borrowed fields: a token request builds no
/// intermediate JSON value.
impl serde::Serialize for AccessClaims<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = serializer.serialize_map(None)?;
        m.serialize_entry("iss", self.issuer)?;
        m.serialize_entry("sub", self.subject)?;
        m.serialize_entry("aud", self.client_id)?;
        m.serialize_entry("client_id", self.client_id)?;
        m.serialize_entry("iat", &self.now)?;
        m.serialize_entry("nbf", &self.now)?;
        m.serialize_entry("exp", &(self.now + self.ttl))?;
        m.serialize_entry("jti", self.jti)?;
        let optional = [("scope", self.scope), ("sid", self.session_id), ("fid", self.family_id)];
        for (name, value) in optional {
            if let Some(v) = value {
                m.serialize_entry(name, v)?;
            }
        }
        if let Some(t) = self.auth_time {
            m.serialize_entry("auth_time", &t)?;
        }
        m.end()
    }
}

/// Claims of an OIDC ID token.
#[allow(clippy::too_many_arguments)]
pub fn id_token_claims(
    issuer: &str,
    session: &Session,
    client_id: &str,
    nonce: Option<&str>,
    auth_time: i64,
    now: i64,
    ttl: i64,
) -> Value {
    let mut v = json!({
        "iss": issuer, "sub": user_id(&session.org, &session.email), "aud": client_id,
        "iat": now, "exp": now + ttl, "auth_time": auth_time, "sid": session.id,
        "email": session.email, "email_verified": true,
    });
    if let Some(n) = nonce {
        v["nonce"] = json!(n);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_claims_name_every_field_and_omit_absent_ones() {
        let mut claims = AccessClaims {
            issuer: "https://i",
            subject: "s",
            client_id: "c",
            scope: Some("openid"),
            jti: "j",
            session_id: Some("sess"),
            family_id: Some("fam"),
            auth_time: Some(5),
            now: 10,
            ttl: 900,
        };
        assert_eq!(
            serde_json::to_value(&claims).unwrap(),
            json!({"iss": "https://i", "sub": "s", "aud": "c", "client_id": "c", "iat": 10, "nbf": 10,
                   "exp": 910, "jti": "j", "scope": "openid", "sid": "sess", "fid": "fam", "auth_time": 5})
        );
        (claims.scope, claims.session_id, claims.family_id, claims.auth_time) = (None, None, None, None);
        assert_eq!(
            serde_json::to_value(&claims).unwrap(),
            json!({"iss": "https://i", "sub": "s", "aud": "c", "client_id": "c", "iat": 10, "nbf": 10,
                   "exp": 910, "jti": "j"})
        );
    }

    fn org(uid: &str) -> OrgKey {
        OrgKey {
            namespace: "n".into(),
            name: "a".into(),
            uid: uid.into(),
        }
    }

    #[test]
    fn user_ids_are_stable_per_org_and_case_insensitive() {
        let a = org("1");
        let b = OrgKey {
            uid: "2".into(),
            ..a.clone()
        };
        assert_eq!(user_id(&a, "X@y.z"), user_id(&a, "x@y.z"));
        assert_ne!(user_id(&a, "x@y.z"), user_id(&b, "x@y.z"));
        assert_eq!(user_id(&a, "x@y.z").len(), 36);
        // Stored in Users and tokens: the format never changes (SHA-256("1\nx@y.z")[..16]).
        assert_eq!(user_id(&a, "X@y.z"), "54ff3f13-78a6-8724-1a5c-a5c1749ca985");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_gravatar_url_is_the_sha256_of_the_trimmed_lower_cased_address() {
        let url = gravatar(" Ada@Example.COM ");
        assert_eq!(url, gravatar("ada@example.com"));
        let hex = url.strip_prefix("https://www.gravatar.com/avatar/").unwrap();
        assert_eq!(hex.len(), 64);
        assert!(hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        assert_eq!(
            &hex[..16],
            &crate::store::hashed("ada@example.com")[..16],
            "SHA-256 hex of the address"
        );
    }

    #[test]
    fn the_user_object_comes_from_the_directory_record() {
        use crate::oauth::profile::{Connection, UserProfile};
        let org = org("1");
        let profile = UserProfile {
            id: user_id(&org, "ada@example.com"),
            email: "ada@example.com".into(),
            verified: true,
            created: 0,
            updated: 60,
            last_login: "1970-01-01".into(),
            connections: vec![Connection {
                type_: "email".into(),
                created: 0,
            }],
        };
        let session = Session {
            id: "s".into(),
            org,
            email: "Ada@Example.com".into(),
            created_at: 30,
            expires_at: 100,
            app_id: None,
            device_id: None,
            affirmed_at: None,
            user: Some(profile.clone()),
            binding: None,
        };
        let user = centralauth_user(&session, "client");
        assert_eq!(
            user,
            json!({"id": profile.id, "email": "ada@example.com", "gravatar": gravatar("ada@example.com"),
                   "verified": true, "blocked": false, "organizationId": "client",
                   "created": "1970-01-01T00:00:00.000Z", "updated": "1970-01-01T00:01:00.000Z",
                   "lastLogin": "1970-01-01", "connections": [{"type": "email", "created": "1970-01-01T00:00:00.000Z"}]})
        );
    }
}
