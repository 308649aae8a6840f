//! The user directory on the login path, and the end of a blocked or deleted user's access.
//!
//! [`Flows::admit`] runs when a login method has proven an address, before the session is
//! created: it refuses addresses outside `allowedEmailDomains`, then reads the one `User` named
//! by [`user_name`] (a GET by name: no cache of every user). Absent, it is created (with the
//! finalizer, so its deletion is never missed) under `userCreation: Open`, or the login is
//! refused under `InviteOnly`; blocked, or being deleted, the login is refused. The status is
//! then brought up to date in one merge patch — the ID, `verified`, the connection on its first
//! use, `lastLogin` once per day — and only when something changed. API writes per login:
//! first login 2 (create, status), later logins 0 the same day, 1 on a new day or a new method.
//!
//! [`Flows::user_session`] is how every flow uses a session: the live session, unless its
//! user's access ended after it started ([`access`]), in which case it is ended too.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::Flows;
use super::login::{Admitted, LoginError};
use crate::crd::{
    HijackProtection, Organization, User, UserConnection, UserCreation, UserStatus, normalize_email, user_name,
};
use crate::oauth::grant::{self, Session};
use crate::oauth::hijack::{self, Mismatch, Shown};
use crate::oauth::profile::{self, Connection, UserProfile};
use crate::oauth::{access, tokens};
use crate::store::StoreResult;

/// Field manager of the login path's writes to a User status.
pub const LOGIN_MANAGER: &str = "centralauth-operator/login";

impl Flows {
    /// The live session `id` of a user whose access has not ended since it started, its idle
    /// timer restarted (see the module documentation).
    pub async fn user_session(&self, id: &str, idle: Duration, now: i64) -> StoreResult<Option<Session>> {
        let store = self.store.as_ref();
        let Some(session) = grant::use_session(store, id, idle, now).await? else {
            return Ok(None);
        };
        let user_id = tokens::user_id(&session.org, &session.email);
        if access::ended_since(store, &user_id, session.created_at).await? {
            grant::end_session(store, id).await?;
            return Ok(None);
        }
        Ok(Some(session))
    }

    /// Ends `session` of `org` and says why when `hijackProtection` binds it to another client
    /// than the request shows (see [`crate::oauth::hijack`]).
    pub async fn hijack_check(
        &self,
        org: Option<&Organization>,
        session: &Session,
        shown: Shown<'_>,
    ) -> Result<(), Mismatch> {
        let aspects = HijackProtection::aspects(org.and_then(|o| o.spec.hijack_protection.as_ref()));
        let Err(mismatch) = hijack::check(aspects, session.binding.as_ref(), session.device_id.as_deref(), shown)
        else {
            return Ok(());
        };
        if let Err(e) = grant::end_session(self.store.as_ref(), &session.id).await {
            tracing::warn!(error = %e, "a session refused by hijack protection could not be ended");
        }
        tracing::warn!(org = %session.org.name, reason = ?mismatch, "session ended by hijack protection");
        Err(mismatch)
    }

    /// The directory step of a login: `email` proved itself with `connection` (`password`,
    /// `email`) at `org`. The user's record and when the directory was read — the session's
    /// reference time (see [`read`]) — or why they may not log in.
    pub async fn admit(&self, org: &Organization, email: &str, connection: &str) -> Result<Admitted, LoginError> {
        self.admit_with(org, email, &Link::connection(connection)).await
    }

    /// [`Flows::admit`] with the connection `link`: a provider's subject is recorded on the
    /// connection and, by its label, on the User (created with it, or patched once).
    pub async fn admit_with(&self, org: &Organization, email: &str, link: &Link<'_>) -> Result<Admitted, LoginError> {
        let email = normalize_email(email);
        if !org.email_domain_allowed(&email) {
            return Err(LoginError::domain_refused(&email));
        }
        let api = self.users_api(org);
        let (found, read_at) = read(&api, &user_name(&org.name_any(), &email)).await?;
        self.admit_read(org, &email, found, read_at, link).await
    }

    /// The User API of `org`'s namespace.
    pub(super) fn users_api(&self, org: &Organization) -> Api<User> {
        Api::namespaced(self.kube.clone(), &org.namespace().unwrap_or_default())
    }

    /// The Users of `org`'s namespace carrying the label `key=value`: one label-selected LIST
    /// (served from the API server's watch cache). The caller checks what else must hold.
    pub(super) async fn users_labelled(
        &self,
        org: &Organization,
        key: &str,
        value: &str,
    ) -> Result<Vec<User>, LoginError> {
        let params = ListParams::default().labels(&format!("{key}={value}"));
        let list = self.users_api(org).list(&params).await.map_err(directory_down)?;
        Ok(list.items)
    }

    /// [`Flows::admit_with`] of the normalised `email` whose User the login read (`found`, at
    /// `read_at`): a passkey login reads it itself, to find the credential.
    pub(super) async fn admit_read(
        &self,
        org: &Organization,
        email: &str,
        found: Option<User>,
        read_at: i64,
        link: &Link<'_>,
    ) -> Result<Admitted, LoginError> {
        let email = email.to_string();
        if !org.email_domain_allowed(&email) {
            return Err(LoginError::domain_refused(&email));
        }
        let (ns, org_name) = (org.namespace().unwrap_or_default(), org.name_any());
        let api = self.users_api(org);
        let name = user_name(&org_name, &email);
        let user = match found {
            Some(user) => user,
            None if org.spec.user_creation == UserCreation::InviteOnly => return Err(LoginError::NotInvited),
            None => create(&api, &ns, &org_name, &email, link.label.as_ref()).await?,
        };
        if user.spec.organization != org_name || user.spec.email != email {
            tracing::error!(user = %name, "a User has the derived name of another address; the login is refused");
            return Err(LoginError::DirectoryConflict(name));
        }
        if user.spec.blocked || user.metadata.deletion_timestamp.is_some() {
            return Err(LoginError::Blocked);
        }
        if let Some(label) = &link.label {
            ensure_label(&api, &user, link, label).await?;
        }
        let now = crate::oauth::now();
        let id = tokens::user_id(&crate::flow::directory::org_key(org), &email);
        let (status, changed) = recorded(&user, id, link, now);
        if changed {
            let mut owned = json!({
                "id": status.id, "verified": status.verified, "created": status.created,
                "updated": status.updated, "lastLogin": status.last_login, "connections": status.connections,
            });
            if before_conditions_empty(&user) {
                owned["observedGeneration"] = json!(status.observed_generation);
                owned["conditions"] = json!(status.conditions);
            }
            let patch = json!({"status": owned});
            api.patch_status(&name, &login_manager(), &Patch::Merge(&patch))
                .await
                .map_err(directory_down)?;
        }
        Ok(Admitted {
            user: snapshot(&user, &status),
            read_at,
            passkeys: user.spec.passkeys.as_ref().map_or(0, |p| p.credentials.len()),
        })
    }
}

/// The login method a login used: its connection type (`password`, `email`, a provider's
/// name), and for a provider the subject and its label (key, value).
pub struct Link<'a> {
    /// The connection type.
    pub type_: &'a str,
    /// The provider's subject.
    pub subject: Option<&'a str>,
    /// The label that finds the user by the subject ([`crate::crd::provider_label`]).
    pub label: Option<(String, String)>,
}

impl<'a> Link<'a> {
    /// The link of a login method without a subject (`password`, `email`, `passkey`).
    pub fn connection(type_: &'a str) -> Link<'a> {
        Link {
            type_,
            subject: None,
            label: None,
        }
    }
}

/// Adds the provider label `label` of `link` to `user` (one metadata patch, on the first
/// login with this provider account), unless the user is linked to another account of the
/// same provider: then the login is refused.
async fn ensure_label(
    api: &Api<User>,
    user: &User,
    link: &Link<'_>,
    label: &(String, String),
) -> Result<(), LoginError> {
    let (key, value) = label;
    let conflict = || LoginError::ProviderAccountConflict(link.type_.to_string());
    match user.labels().get(key) {
        Some(v) if v == value => return Ok(()),
        Some(_) => return Err(conflict()),
        None => {}
    }
    let connections = user
        .status
        .as_ref()
        .map(|s| s.connections.as_slice())
        .unwrap_or_default();
    let other = connections
        .iter()
        .any(|c| c.type_ == link.type_ && c.subject.is_some() && c.subject.as_deref() != link.subject);
    if other {
        return Err(conflict());
    }
    let patch = json!({"metadata": {"labels": {key: value}}});
    api.patch(&user.name_any(), &login_manager(), &Patch::Merge(&patch))
        .await
        .map_err(directory_down)?;
    tracing::info!(user = %user.name_any(), provider = link.type_, "provider account linked to the user");
    Ok(())
}

/// Reads the User `name`, with the Unix second taken *before* the read. A session is refused
/// when it started at or before its user's access ended (`T`); the User controller records `T`
/// after the block is visible in the API, so a login whose read saw the user unblocked read
/// before `T` — and a session dated by that read is refused however late it is written.
pub(super) async fn read(api: &Api<User>, name: &str) -> Result<(Option<User>, i64), LoginError> {
    let read_at = crate::oauth::now();
    let user = api.get_opt(name).await.map_err(directory_down)?;
    Ok((user, read_at))
}

/// Creates the User of `email` (with its finalizer); a concurrent first login that created it
/// first is fine.
async fn create(
    api: &Api<User>,
    ns: &str,
    org: &str,
    email: &str,
    label: Option<&(String, String)>,
) -> Result<User, LoginError> {
    let mut user = User::invite(Some(ns), org, email);
    if let Some((k, v)) = label {
        user.labels_mut().insert(k.clone(), v.clone());
    }
    match api.create(&PostParams::default(), &user).await {
        Ok(created) => {
            tracing::info!(org, user = %created.name_any(), "user recorded at first login");
            Ok(created)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => api.get(&user.name_any()).await.map_err(directory_down),
        Err(e) => Err(directory_down(e)),
    }
}

/// The status after this login, and whether it differs from the recorded one.
fn recorded(user: &User, id: String, link: &Link<'_>, now: i64) -> (UserStatus, bool) {
    let before = user.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let now_time = Time(k8s_openapi::jiff::Timestamp::from_second(now).unwrap_or_default());
    status.id = Some(id);
    status.verified = true;
    if status.created.is_none() {
        status.created = user.meta().creation_timestamp.clone().or(Some(now_time.clone()));
    }
    match status.connections.iter_mut().find(|c| c.type_ == link.type_) {
        Some(c) if c.subject.is_none() => c.subject = link.subject.map(str::to_string),
        Some(_) => {}
        None => status.connections.push(UserConnection {
            type_: link.type_.to_string(),
            created: now_time.clone(),
            subject: link.subject.map(str::to_string),
        }),
    }
    status.last_login = Some(profile::day(now));
    if status.conditions.is_empty() {
        status.observed_generation = user.metadata.generation;
        status.conditions = vec![User::ready(None, user.metadata.generation)];
    }
    let changed = status != before;
    if changed {
        status.updated = Some(now_time);
    }
    (status, changed)
}

/// Whether the User had no condition yet (the first login writes `Ready=True`).
fn before_conditions_empty(user: &User) -> bool {
    user.status.as_ref().is_none_or(|s| s.conditions.is_empty())
}

/// The session's copy of the user.
fn snapshot(user: &User, status: &UserStatus) -> UserProfile {
    let secs = |t: &Option<Time>| t.as_ref().map_or(0, |t| t.0.as_second());
    UserProfile {
        id: status.id.clone().unwrap_or_default(),
        email: user.spec.email.clone(),
        verified: status.verified,
        created: secs(&status.created),
        updated: secs(&status.updated),
        last_login: status.last_login.clone().unwrap_or_default(),
        connections: status
            .connections
            .iter()
            .map(|c| Connection {
                type_: c.type_.clone(),
                created: c.created.0.as_second(),
            })
            .collect(),
    }
}

fn login_manager() -> PatchParams {
    PatchParams {
        field_manager: Some(LOGIN_MANAGER.to_string()),
        ..Default::default()
    }
}

pub(super) fn directory_down(e: kube::Error) -> LoginError {
    tracing::warn!(error = %e, "the user directory (the Kubernetes API) cannot be read or written");
    LoginError::DirectoryUnavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_login_the_same_day_with_the_same_method_changes_nothing() {
        let mut user = User::invite(Some("ns"), "acme", "ada@example.com");
        user.metadata.generation = Some(1);
        let link = |type_| Link {
            type_,
            subject: None,
            label: None,
        };
        let (first, changed) = recorded(&user, "id-1".into(), &link("password"), 86_400 * 10 + 5);
        assert!(changed);
        assert_eq!(first.last_login.as_deref(), Some("1970-01-11"));
        assert_eq!(first.connections.len(), 1);
        assert!(first.verified && first.updated.is_some());
        user.status = Some(first.clone());
        let (_, changed) = recorded(&user, "id-1".into(), &link("password"), 86_400 * 10 + 500);
        assert!(!changed, "same day, same method: no write");
        let (next, changed) = recorded(&user, "id-1".into(), &link("email"), 86_400 * 10 + 600);
        assert!(changed && next.connections.len() == 2, "a new method is recorded");
        let (next, changed) = recorded(&user, "id-1".into(), &link("password"), 86_400 * 11);
        assert!(changed && next.last_login.as_deref() == Some("1970-01-12"), "a new day");
        assert_eq!(snapshot(&user, &next).connections.len(), 1);
    }

    /// A block recorded while the login reads the directory (the read saw the user unblocked)
    /// ends the session the login writes afterwards, however late: the session is dated by
    /// the read, not by its writing.
    #[tokio::test]
    async fn a_block_recorded_during_the_directory_read_ends_the_session() {
        use crate::store::{MemoryStore, Store};
        use std::sync::Arc;
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let user = User::invite(Some("ns"), "acme", "ada@example.com");
        let body = serde_json::to_vec(&user).unwrap();
        let recorder = store.clone();
        let api_server = tower::service_fn(move |_req: axum::http::Request<kube::client::Body>| {
            let (store, body) = (recorder.clone(), body.clone());
            async move {
                // The block lands while the GET is under way, in a later second than the read
                // began, and the controller records it before the answer (unblocked) arrives.
                let start = crate::oauth::now();
                while crate::oauth::now() == start {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                access::end(store.as_ref(), "user-id", crate::oauth::now())
                    .await
                    .unwrap();
                Ok::<_, std::convert::Infallible>(axum::http::Response::new(kube::client::Body::from(body)))
            }
        });
        let api: Api<User> = Api::namespaced(kube::Client::new(api_server, "ns"), "ns");
        let (found, read_at) = read(&api, &user.name_any()).await.unwrap();
        assert!(!found.unwrap().spec.blocked, "the read saw the user unblocked");
        let written_at = crate::oauth::now();
        assert!(written_at > read_at);
        assert!(
            access::ended_since(store.as_ref(), "user-id", read_at).await.unwrap(),
            "a session dated by the read is refused"
        );
    }

    #[test]
    fn refusals_name_the_domain_only() {
        let e = LoginError::domain_refused("ada@other.example");
        assert!(e.to_string().contains("other.example"), "{e}");
        assert!(!e.to_string().contains("ada"), "{e}");
    }
}
