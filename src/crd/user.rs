//! `User`: one person of an Organization's user directory — the address they log in with,
//! whether they are blocked, and what the login server recorded about them (their stable ID,
//! first and last login, the methods they used).
//!
//! The object's name is derived from the organization and the normalised address
//! ([`user_name`]), so the login path reads exactly one object by name and never needs a copy
//! of every user. See `docs/users.md`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::DNS_SUBDOMAIN_RULE;

/// Finalizer the login path and the User controller put on every User, so that a deletion —
/// even while the operator is down — ends the user's sessions and tokens before the object goes.
pub const USER_FINALIZER: &str = "centralauth.io/end-access";

/// Connection type of the password login method.
pub const PASSWORD_CONNECTION: &str = "password";
/// Connection type of the e-mail code login method.
pub const EMAIL_CONNECTION: &str = "email";
/// Connection type of the passkey (WebAuthn) login method.
pub const PASSKEY_CONNECTION: &str = "passkey";
/// Label carrying a user's WebAuthn user handle (`spec.passkeys.userHandle`): a discoverable
/// passkey login knows only the handle, and finds its User by this label.
pub const USER_HANDLE_LABEL: &str = "centralauth.io/passkey-user-handle";
/// Most passkeys one user may have.
pub const MAX_PASSKEYS: usize = 10;

/// A user of an Organization.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "centralauth.io",
    version = "v1alpha1",
    kind = "User",
    namespaced,
    doc = "A User of an Organization: the address they log in with and whether they are blocked. The login server creates it at the first login (userCreation: Open) or an admin creates it (`centralauth-operator user --organization <org> --email <address>`); its name is derived from the organization and the address.",
    status = "UserStatus",
    shortname = "causer",
    category = "centralauth",
    printcolumn = r#"{"name":"E-mail","type":"string","jsonPath":".spec.email"}"#,
    printcolumn = r#"{"name":"Organization","type":"string","jsonPath":".spec.organization"}"#,
    printcolumn = r#"{"name":"Blocked","type":"boolean","jsonPath":".spec.blocked"}"#,
    printcolumn = r#"{"name":"Last login","type":"string","jsonPath":".status.lastLogin"}"#,
    printcolumn = r#"{"name":"ID","type":"string","jsonPath":".status.id","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.organization == oldSelf.organization && self.email == oldSelf.email")
    .message("organization and email are immutable: the object's name is derived from them; create a new User instead"))]
pub struct UserSpec {
    /// Name of the Organization (same namespace) this user belongs to.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message(
        "organization must be the metadata.name of an Organization (a lowercase DNS subdomain name)"
    ))]
    pub organization: String,

    /// The address the user logs in with, normalised: trimmed and lower-cased.
    #[schemars(length(min = 3, max = 320))]
    #[x_kube(validation = Rule::new("self.matches('^[^@\\\\s]+@[^@\\\\s]+$') && self.lowerAscii() == self").message(
        "email must be one lower-case e-mail address without spaces, e.g. ada@example.com"
    ))]
    pub email: String,

    /// A blocked user cannot log in, and their sessions, refresh tokens and access tokens end
    /// within seconds of blocking. Unblocking lets them log in again (old tokens stay ended).
    #[serde(default)]
    pub blocked: bool,

    /// The user's passkeys (WebAuthn credentials), written by the login server when the user
    /// registers one; public data only. Delete an entry of `credentials` to revoke that passkey:
    /// the next login with it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkeys: Option<UserPasskeys>,
}

/// A user's passkeys: the WebAuthn user handle and the registered credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserPasskeys {
    /// The WebAuthn user handle: 16 random bytes, hex. It names no personal data; the object
    /// also carries it in the label `centralauth.io/passkey-user-handle`, by which a
    /// discoverable login finds the user.
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-f]{32}$')").message(
        "userHandle must be 32 lower-case hex digits (16 random bytes); it is written by the login server"
    ))]
    #[schemars(length(min = 32, max = 32))]
    pub user_handle: String,

    /// The registered passkeys; delete an entry to revoke it.
    #[serde(default)]
    #[schemars(length(max = 10))]
    pub credentials: Vec<PasskeyCredential>,
}

/// One registered passkey (public data only).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyCredential {
    /// The credential ID, base64url without padding.
    #[schemars(length(min = 22, max = 1366))]
    pub id: String,

    /// A name for people: the authenticator's kind and the day it was registered.
    #[schemars(length(max = 64))]
    pub name: String,

    /// The public key: its signature algorithm and key bytes, base64url of webauthn_rp's
    /// `StaticState` encoding (see docs/passkeys.md).
    #[schemars(length(min = 1, max = 2800))]
    pub public_key: String,

    /// `EdDSA`, `ES256`, `ES384` or `RS256`.
    pub algorithm: String,

    /// The signature counter of the last login (0: the authenticator keeps none). A lower
    /// count at a login is refused as a cloned authenticator.
    #[serde(default)]
    pub sign_count: u32,

    /// The passkey may be synced to other devices (backup eligible).
    #[serde(default)]
    pub backup_eligible: bool,

    /// The passkey was backed up (synced) at its last use.
    #[serde(default)]
    pub backed_up: bool,

    /// The authenticator verified the user (PIN, biometrics).
    #[serde(default)]
    pub user_verified: bool,

    /// `platform`, `cross-platform`, or empty when the browser did not say.
    #[serde(default)]
    pub attachment: String,

    /// How the browser may reach the authenticator (`internal`, `hybrid`, `usb`, `nfc`, `ble`,
    /// `smart-card`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub transports: Vec<String>,

    /// The authenticator model's AAGUID (all zeros when it does not say).
    #[serde(default)]
    pub aaguid: String,

    /// When it was registered.
    pub created_at: Time,

    /// The day (UTC, `YYYY-MM-DD`) of its last login: written at most once a day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
}

/// What the login server and the User controller recorded about a user.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// The stable user ID apps see (`id` of the CentralAuth user object, `sub` of the OAuth
    /// tokens): a UUID derived from the organization's UID and the address, the same as before
    /// users were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,

    /// The user proved they control the address (every login method does).
    #[serde(default)]
    pub verified: bool,

    /// When the user was recorded (first login, or the controller's first look at an invited
    /// user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,

    /// When this record last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<Time>,

    /// The day (UTC, `YYYY-MM-DD`) of the last login: written at most once per user per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login: Option<String>,

    /// The login methods the user has used, each with the time of its first use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub connections: Vec<UserConnection>,

    /// When the User controller saw the user blocked: sessions and tokens from before it are
    /// refused. Cleared when the user is unblocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_at: Option<Time>,

    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions; `Ready` says whether the user can log in (False with reason
    /// `Blocked`, `NameMismatch` or `OrganizationMissing` otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// A login method a user has used.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserConnection {
    /// `password`, `email`, `passkey`, or an upstream provider's name.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 63))]
    pub type_: String,

    /// When the user first logged in with it.
    pub created: Time,

    /// For an upstream provider: the provider's stable identifier of the user (`sub`, or
    /// GitHub's numeric user ID). A later login with the same subject finds this user through
    /// the label [`provider_label`] even when the provider's address changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub subject: Option<String>,
}

/// The label key under which a User carries the hash of its `provider` subject
/// (`<provider>.providers.centralauth.io/subject`).
pub fn provider_label(provider: &str) -> String {
    format!("{provider}.providers.centralauth.io/subject")
}

/// The label value of `subject` at `provider` of `organization`: the first 40 hex digits of
/// SHA-256(`<organization>\n<provider>\n<subject>`) (a label value holds at most 63
/// characters and the subject is the provider's, not ours to print).
pub fn provider_subject_hash(organization: &str, provider: &str, subject: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{organization}\n{provider}\n{subject}").as_bytes(),
    );
    digest.as_ref()[..20].iter().map(|b| format!("{b:02x}")).collect()
}

/// The normalised form of an address: trimmed and ASCII-lower-cased (as the user ID derivation
/// compares addresses).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// The name of the User object of `email` in `organization` (same namespace): the address
/// made readable as a DNS label (lower-cased; every run of characters other than `a-z`, `0-9`
/// becomes one `-`, `@` becomes `-at-`; at most 40 characters), then `-` and the first 10 hex
/// digits of SHA-256 of `<organization>\n<normalised address>`. Two organizations of one
/// namespace, or two addresses that read alike, get different names; the result is always a
/// valid object name (at most 51 characters).
pub fn user_name(organization: &str, email: &str) -> String {
    let email = normalize_email(email);
    let readable = email.replace('@', "-at-");
    let mut label = String::with_capacity(readable.len());
    for c in readable.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            label.push(c);
        } else if !label.ends_with('-') {
            label.push('-');
        }
    }
    let mut label: String = label.trim_matches('-').chars().take(40).collect();
    while label.ends_with('-') {
        label.pop();
    }
    if label.is_empty() {
        label.push_str("user");
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{organization}\n{email}").as_bytes());
    let hash: String = digest.as_ref()[..5].iter().map(|b| format!("{b:02x}")).collect();
    format!("{label}-{hash}")
}

/// Why a user cannot log in, as the `Ready` condition says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserProblem {
    /// `spec.blocked` is true.
    Blocked,
    /// The object's name is not the one derived from its spec.
    NameMismatch {
        /// The derived name.
        expected: String,
    },
    /// No Organization `spec.organization` exists in the namespace.
    OrganizationMissing,
}

impl UserProblem {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            UserProblem::Blocked => "Blocked",
            UserProblem::NameMismatch { .. } => "NameMismatch",
            UserProblem::OrganizationMissing => "OrganizationMissing",
        }
    }

    /// The condition message: what is wrong and what to do.
    pub fn message(&self, user: &User) -> String {
        let (org, email) = (&user.spec.organization, &user.spec.email);
        match self {
            UserProblem::Blocked => "blocked: the user cannot log in, and their sessions and tokens have ended; set spec.blocked to false to let them log in again".into(),
            UserProblem::NameMismatch { expected } => format!(
                "the login server looks this user up as {expected} (derived from organization {org} and {email}); recreate it under that name, e.g. `centralauth-operator user --organization {org} --email {email}`"
            ),
            UserProblem::OrganizationMissing => format!("Organization {org} does not exist in this namespace"),
        }
    }
}

impl User {
    /// The `Ready` condition of this user with `problem` (or none), for `generation`.
    pub fn ready(problem: Option<(&UserProblem, &User)>, generation: Option<i64>) -> Condition {
        use super::condition::{self, READY, Status};
        match problem {
            None => condition::new(READY, Status::True, "Active", "the user can log in", generation),
            Some((p, user)) => condition::new(READY, Status::False, p.reason(), p.message(user), generation),
        }
    }

    /// A new User of `organization` for `email` (normalised), named by [`user_name`], with the
    /// [`USER_FINALIZER`]: what an admin applies to invite someone, and what the login path
    /// creates.
    pub fn invite(namespace: Option<&str>, organization: &str, email: &str) -> User {
        let email = normalize_email(email);
        let mut user = User::new(
            &user_name(organization, &email),
            UserSpec {
                organization: organization.to_string(),
                email,
                blocked: false,
                passkeys: None,
            },
        );
        user.metadata.namespace = namespace.map(str::to_string);
        user.metadata.finalizers = Some(vec![USER_FINALIZER.to_string()]);
        user
    }

    /// Whether the object's name is the one [`user_name`] derives from its spec.
    pub fn name_matches(&self) -> bool {
        self.metadata.name.as_deref() == Some(user_name(&self.spec.organization, &self.spec.email).as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_subdomain(name: &str) -> bool {
        name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    }

    #[test]
    fn names_are_readable_stable_and_normalised() {
        let name = user_name("acme", " Ada.Lovelace@Example.com ");
        assert!(name.starts_with("ada-lovelace-at-example-com-"), "{name}");
        assert_eq!(name.len(), "ada-lovelace-at-example-com-".len() + 10);
        assert_eq!(name, user_name("acme", "ada.lovelace@example.com"));
        assert!(name[name.len() - 10..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn names_differ_across_organizations_and_lookalike_addresses() {
        assert_ne!(user_name("acme", "a@b.c"), user_name("other", "a@b.c"));
        let (dot, plus) = (user_name("acme", "a.b@c.d"), user_name("acme", "a+b@c.d"));
        assert_eq!(dot[..dot.len() - 10], plus[..plus.len() - 10], "they read alike");
        assert_ne!(dot, plus, "but the hash tells them apart");
    }

    #[test]
    fn names_are_always_valid_object_names() {
        let long = format!("{}@example.com", "x".repeat(300));
        for email in ["ü@ß.de", "--@--", "a@b", "_x_@y.z", &long, "@", "Ω@x.y"] {
            let name = user_name("acme", email);
            assert!(is_dns_subdomain(&name) && name.len() <= 51, "{email:?} → {name:?}");
        }
        assert!(user_name("acme", "ü@ß.de").starts_with("at-"));
        assert!(user_name("acme", "@").starts_with("at-"));
    }

    #[test]
    fn an_invitation_carries_the_derived_name_and_the_finalizer() {
        let user = User::invite(Some("ns"), "acme", "Ada@Example.com");
        assert!(user.name_matches());
        assert_eq!(user.spec.email, "ada@example.com");
        assert_eq!(user.metadata.finalizers, Some(vec![USER_FINALIZER.to_string()]));
        let mut other = user.clone();
        other.metadata.name = Some("ada".into());
        assert!(!other.name_matches());
    }
}
