//! Authorization codes, sessions and refresh-token families in the store, as plain functions.
//!
//! - A code is 256 random bits, stored under its SHA-256 for at most [`CODE_TTL`]. Redemption
//!   swaps it for a "used" marker atomically, so of any number of concurrent redemptions
//!   exactly one gets the grant. A redemption that finds the marker is a replay: it revokes
//!   what the code issued (its refresh-token family, its access token's `jti`, and for
//!   CentralAuth codes the login session its tokens stand for), found through a side record
//!   written at issuance — so even a replay that races the first redemption revokes.
//! - Refresh tokens rotate the same way; presenting a used one revokes its whole family.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreResult, hashed, json};

/// Longest life of an authorization code.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long used codes and refresh tokens are remembered (replay detection window).
pub const USED_TTL: Duration = Duration::from_secs(24 * 3600);
const USED: &[u8] = b"\"used\"";

/// Identifies an Organization object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrgKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (a recreated organization is another one).
    pub uid: String,
}

/// Which protocol a grant was issued through.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `/login` + `/api/v1/verify`.
    CentralAuth,
    /// `/oauth2/authorize` + `/oauth2/token`.
    OAuth,
}

/// A login session.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Random session ID.
    pub id: String,
    /// The organization it belongs to.
    pub org: OrgKey,
    /// The user.
    pub email: String,
    /// Unix seconds of the login: when it read the user directory, before the session was
    /// written, so that a block the User controller recorded since then ends the session.
    pub created_at: i64,
    /// Unix seconds after which the session ends whatever its activity.
    pub expires_at: i64,
    /// Native app ID, for native logins.
    pub app_id: Option<String>,
    /// Native device ID, for native logins.
    pub device_id: Option<String>,
    /// Unix seconds of the login that affirmed the user (CentralAuth `affirm=1`), if it was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affirmed_at: Option<i64>,
    /// The user as the directory recorded them at login (absent in sessions of older replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<super::profile::UserProfile>,
    /// What the session is bound to (`hijackProtection`; absent when nothing is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<super::hijack::Binding>,
}

/// A validated authorization request, as far as its code carries it: who asked, through which
/// protocol, where the code goes, and what it may be exchanged for. The stored login request
/// holds it while the user logs in; the code grant it ends in carries it on to the exchange.
/// Both flatten it, so their stored JSON is one flat object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthRequest {
    /// Organization.
    pub org: OrgKey,
    /// Client ID the request (and its code) is for.
    pub client_id: String,
    /// Protocol of the authorization request.
    pub protocol: Protocol,
    /// `redirect_uri` of the authorization request, as sent.
    pub redirect_uri: String,
    /// S256 challenge, if one was sent.
    pub code_challenge: Option<String>,
    /// Native app (public client), if any.
    pub app_id: Option<String>,
    /// Requested scope (standard endpoints).
    pub scope: Option<String>,
    /// OIDC nonce.
    pub nonce: Option<String>,
}

/// What an authorization code stands for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CodeGrant {
    /// The authorization request the code answers.
    #[serde(flatten)]
    pub request: AuthRequest,
    /// The session the login created.
    pub session_id: String,
    /// The user.
    pub email: String,
    /// Unix seconds of the login.
    pub auth_time: i64,
    /// Unix seconds of issuance.
    pub issued_at: i64,
    /// Refresh-token family the redemption will start.
    pub family_id: String,
    /// `jti` of the access token the redemption will mint.
    pub jti: String,
    /// SHA-256 of the `desktop_challenge` issued with the code (Desktop apps only): the
    /// exchange needs a client assertion over it ([`super::desktop`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_hash: Option<String>,
}

#[cfg(test)]
impl CodeGrant {
    /// A code answering `request`, of session `s` for `ada@example.com`, issued at 0.
    pub(crate) fn for_tests(request: AuthRequest) -> CodeGrant {
        CodeGrant {
            request,
            session_id: "s".into(),
            email: "ada@example.com".into(),
            auth_time: 0,
            issued_at: 0,
            family_id: "f".into(),
            jti: "j".into(),
            challenge_hash: None,
        }
    }
}

/// What a redemption would revoke if the code is replayed.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Issued {
    family_id: String,
    jti: String,
    session_id: String,
    protocol: Protocol,
}

/// What a refresh token stands for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RefreshGrant {
    /// Organization.
    pub org: OrgKey,
    /// Client ID.
    pub client_id: String,
    /// Family (all rotations of one code redemption).
    pub family_id: String,
    /// The session it belongs to.
    pub session_id: String,
    /// The user.
    pub email: String,
    /// Granted scope.
    pub scope: Option<String>,
    /// Unix seconds of the login.
    pub auth_time: i64,
    /// Native app, when issued to a public client.
    pub app_id: Option<String>,
}

/// Why a code or refresh token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Unknown or expired.
    #[error("the code or token is invalid or expired")]
    Unknown,
    /// Used before: what it issued has been revoked.
    #[error("the code or token was already used; everything it issued has been revoked")]
    Replayed,
    /// Its family or session was revoked.
    #[error("the grant has been revoked")]
    Revoked,
    /// The store failed.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

pub use super::random::random_bytes;

/// 256 random bits, base64url.
pub fn random_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Stores `grant` and returns the code to hand to the client.
pub async fn issue_code(store: &dyn Store, grant: &CodeGrant) -> StoreResult<String> {
    let code = random_token();
    let h = hashed(&code);
    let issued = Issued {
        family_id: grant.family_id.clone(),
        jti: grant.jti.clone(),
        session_id: grant.session_id.clone(),
        protocol: grant.request.protocol,
    };
    json::put(store, &format!("codeinfo:{h}"), &issued, USED_TTL).await?;
    json::put(store, &format!("code:{h}"), grant, CODE_TTL).await?;
    Ok(code)
}

/// Redeems `code` once (see the module documentation). The caller then checks client,
/// redirect URI and PKCE against the returned grant.
pub async fn redeem_code(store: &dyn Store, code: &str, now: i64) -> Result<CodeGrant, GrantError> {
    let h = hashed(code);
    let old = store.swap(&format!("code:{h}"), USED.to_vec(), USED_TTL).await?;
    match old {
        None => Err(GrantError::Unknown),
        Some(bytes) if bytes == USED => {
            if let Some(issued) = json::get::<Issued>(store, &format!("codeinfo:{h}")).await? {
                revoke_family(store, &issued.family_id).await?;
                revoke_jti(store, &issued.jti).await?;
                if issued.protocol == Protocol::CentralAuth {
                    end_session(store, &issued.session_id).await?;
                }
            }
            Err(GrantError::Replayed)
        }
        Some(bytes) => {
            let grant: CodeGrant = json::decode(Some(bytes)).ok_or(GrantError::Unknown)?;
            if now - grant.issued_at > CODE_TTL.as_secs() as i64 {
                return Err(GrantError::Unknown);
            }
            Ok(grant)
        }
    }
}

/// Marks a refresh-token family revoked.
pub async fn revoke_family(store: &dyn Store, family_id: &str) -> StoreResult<()> {
    store
        .put(&format!("revoked:family:{family_id}"), b"1".to_vec(), USED_TTL * 30)
        .await
}

/// Marks an access token (`jti`) revoked.
pub async fn revoke_jti(store: &dyn Store, jti: &str) -> StoreResult<()> {
    store.put(&format!("revoked:jti:{jti}"), b"1".to_vec(), USED_TTL).await
}

/// Whether a family or `jti` was revoked.
pub async fn is_revoked(store: &dyn Store, family_id: Option<&str>, jti: Option<&str>) -> StoreResult<bool> {
    if let Some(f) = family_id
        && store.get(&format!("revoked:family:{f}")).await?.is_some()
    {
        return Ok(true);
    }
    if let Some(j) = jti
        && store.get(&format!("revoked:jti:{j}")).await?.is_some()
    {
        return Ok(true);
    }
    Ok(false)
}

/// Stores a session; it lives `idle` past each use, never past `expires_at`.
pub async fn create_session(store: &dyn Store, session: &Session, idle: Duration) -> StoreResult<()> {
    json::put(store, &format!("session:{}", session.id), session, idle).await
}

/// The live session `id`, extending its idle timeout (bounded by its absolute expiry).
pub async fn use_session(store: &dyn Store, id: &str, idle: Duration, now: i64) -> StoreResult<Option<Session>> {
    let key = format!("session:{id}");
    let Some(session) = json::get::<Session>(store, &key).await? else {
        return Ok(None);
    };
    if session.expires_at <= now {
        store.delete(&key).await?;
        return Ok(None);
    }
    let remaining = Duration::from_secs((session.expires_at - now) as u64);
    store.touch(&key, idle.min(remaining)).await?;
    Ok(Some(session))
}

/// Ends a session everywhere.
pub async fn end_session(store: &dyn Store, id: &str) -> StoreResult<()> {
    store.delete(&format!("session:{id}")).await
}

/// Stores a refresh grant and returns the token.
pub async fn issue_refresh(store: &dyn Store, grant: &RefreshGrant, ttl: Duration) -> StoreResult<String> {
    let token = random_token();
    let h = hashed(&token);
    store
        .put(&format!("rtfamily:{h}"), grant.family_id.as_bytes().to_vec(), USED_TTL)
        .await?;
    json::put(store, &format!("rt:{h}"), grant, ttl).await?;
    Ok(token)
}

/// Uses a refresh token once: returns its grant, or on reuse revokes the whole family.
pub async fn rotate_refresh(store: &dyn Store, token: &str) -> Result<RefreshGrant, GrantError> {
    let h = hashed(token);
    match store.swap(&format!("rt:{h}"), USED.to_vec(), USED_TTL).await? {
        None => Err(GrantError::Unknown),
        Some(bytes) if bytes == USED => {
            if let Some(family) = store.get(&format!("rtfamily:{h}")).await? {
                revoke_family(store, &String::from_utf8_lossy(&family)).await?;
            }
            Err(GrantError::Replayed)
        }
        Some(bytes) => {
            let grant: RefreshGrant = json::decode(Some(bytes)).ok_or(GrantError::Unknown)?;
            if is_revoked(store, Some(&grant.family_id), None).await? {
                return Err(GrantError::Revoked);
            }
            Ok(grant)
        }
    }
}

/// The grant of a live refresh token, without using it (introspection, RFC 7009 revocation);
/// `None` when it is unknown, expired or already rotated.
pub async fn refresh_grant(store: &dyn Store, token: &str) -> StoreResult<Option<RefreshGrant>> {
    json::get(store, &format!("rt:{}", hashed(token))).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::MemoryStore;

    fn org() -> OrgKey {
        OrgKey {
            namespace: "ns".into(),
            name: "acme".into(),
            uid: "u".into(),
        }
    }

    fn grant(now: i64) -> CodeGrant {
        CodeGrant {
            request: AuthRequest {
                org: org(),
                client_id: "cid".into(),
                protocol: Protocol::CentralAuth,
                redirect_uri: "https://a.example/cb".into(),
                code_challenge: None,
                app_id: None,
                scope: None,
                nonce: None,
            },
            session_id: "sess".into(),
            email: "a@b.c".into(),
            auth_time: now,
            issued_at: now,
            family_id: "fam".into(),
            jti: "jti".into(),
            challenge_hash: None,
        }
    }

    #[tokio::test]
    async fn a_code_redeems_once_and_a_replay_revokes_what_it_issued() {
        let store = MemoryStore::new();
        let session = Session {
            id: "sess".into(),
            org: org(),
            email: "a@b.c".into(),
            created_at: 0,
            expires_at: 10_000,
            app_id: None,
            device_id: None,
            affirmed_at: None,
            user: None,
            binding: None,
        };
        create_session(&store, &session, Duration::from_secs(60)).await.unwrap();
        let code = issue_code(&store, &grant(100)).await.unwrap();
        assert_eq!(redeem_code(&store, &code, 101).await.unwrap(), grant(100));
        assert_eq!(redeem_code(&store, &code, 102).await, Err(GrantError::Replayed));
        assert!(is_revoked(&store, Some("fam"), None).await.unwrap());
        assert!(is_revoked(&store, None, Some("jti")).await.unwrap());
        assert_eq!(
            use_session(&store, "sess", Duration::from_secs(60), 103).await.unwrap(),
            None
        );
        assert_eq!(redeem_code(&store, "nope", 102).await, Err(GrantError::Unknown));
    }

    #[test]
    fn a_code_grant_is_stored_as_one_flat_object_as_before() {
        let stored = serde_json::to_value(grant(100)).unwrap();
        let mut keys: Vec<&str> = stored.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "appId",
                "authTime",
                "clientId",
                "codeChallenge",
                "email",
                "familyId",
                "issuedAt",
                "jti",
                "nonce",
                "org",
                "protocol",
                "redirectUri",
                "scope",
                "sessionId"
            ]
        );
        // A code another replica stored before the request was a struct of its own still redeems.
        let older = serde_json::json!({
            "org": {"namespace": "ns", "name": "acme", "uid": "u"}, "clientId": "cid",
            "protocol": "CentralAuth", "redirectUri": "https://a.example/cb", "codeChallenge": null,
            "appId": null, "sessionId": "sess", "email": "a@b.c", "scope": null, "nonce": null,
            "authTime": 100, "issuedAt": 100, "familyId": "fam", "jti": "jti"
        });
        assert_eq!(serde_json::from_value::<CodeGrant>(older).unwrap(), grant(100));
    }

    #[tokio::test]
    async fn an_expired_code_is_refused() {
        let store = MemoryStore::new();
        let code = issue_code(&store, &grant(100)).await.unwrap();
        assert_eq!(redeem_code(&store, &code, 161).await, Err(GrantError::Unknown));
    }

    #[tokio::test]
    async fn twenty_concurrent_redemptions_one_winner() {
        let store = Arc::new(MemoryStore::new());
        let code = issue_code(store.as_ref(), &grant(100)).await.unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (store, code) = (store.clone(), code.clone());
                tokio::spawn(async move { redeem_code(store.as_ref(), &code, 101).await })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.unwrap().is_ok());
        }
        assert_eq!(ok, 1);
        assert!(is_revoked(store.as_ref(), Some("fam"), None).await.unwrap());
    }

    #[tokio::test]
    async fn refresh_rotation_and_reuse_revokes_the_family() {
        let store = MemoryStore::new();
        let rg = RefreshGrant {
            org: org(),
            client_id: "cid".into(),
            family_id: "fam2".into(),
            session_id: "s".into(),
            email: "a@b.c".into(),
            scope: None,
            auth_time: 0,
            app_id: None,
        };
        let t1 = issue_refresh(&store, &rg, Duration::from_secs(600)).await.unwrap();
        assert_eq!(rotate_refresh(&store, &t1).await.unwrap(), rg);
        let t2 = issue_refresh(&store, &rg, Duration::from_secs(600)).await.unwrap();
        assert_eq!(rotate_refresh(&store, &t1).await, Err(GrantError::Replayed));
        assert_eq!(rotate_refresh(&store, &t2).await, Err(GrantError::Revoked));
    }
}
