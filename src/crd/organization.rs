//! `Organization`: one tenant of the login service — its domains, client ID, the origins its
//! apps may redirect to, its login methods and its secret-rotation policy.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DNS_SUBDOMAIN_RULE;

/// CEL: an origin `https://host[:port]` (host may start with `*.`), or a loopback `http://`
/// origin; never a path, query, fragment or userinfo. Whether `http://` loopback origins are
/// accepted is decided by `allowLocalhost` in a spec-level rule.
const ORIGIN_RULE: &str = "self.all(o, o.matches('^(https://(\\\\*\\\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*|http://(localhost|127\\\\.0\\\\.0\\\\.1|\\\\[::1\\\\]))(:[0-9]{1,5})?$'))";

/// CEL: a wildcard origin's parent has at least two labels (`https://*.com` would match every
/// `.com` site). Wildcards on multi-label public suffixes (`*.co.uk`, `*.github.io`) need the
/// Public Suffix List, which CEL does not have: the controller reports them
/// (`WildcardOnPublicSuffix`) and the login server never matches them.
const WILDCARD_LABELS_RULE: &str =
    "self.all(o, !o.startsWith('https://*.') || o.matches('^https://[*][.][^.:]+[.][^:]+$'))";

/// CEL: no wildcard on an IP address (a host whose last label is all digits).
const WILDCARD_IP_RULE: &str = "self.all(o, !o.startsWith('https://*.') || !o.matches('[.][0-9]+(:[0-9]+)?$'))";

/// CEL: absolute `https://` (or loopback `http://`) URLs without fragment or userinfo.
const REDIRECT_URI_RULE: &str = "self.all(u, isURL(u) && (u.startsWith('https://') || u.matches('^http://(localhost|127\\\\.0\\\\.0\\\\.1|\\\\[::1\\\\])[:/]')) && !u.contains('#') && !u.matches('^[a-z]+://[^/?#]*@'))";

/// CEL: a lowercase DNS hostname with at least two labels.
const HOSTNAME_RULE: &str = "self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?\\\\.)+[a-z0-9]([-a-z0-9]*[a-z0-9])?$')";

/// An organization: the unit that owns a login domain, a client ID and client secrets.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "centralauth.io",
    version = "v1alpha1",
    kind = "Organization",
    namespaced,
    doc = "An Organization: one tenant of the login service, with its login domains, OAuth client ID, allowed origins, login methods and secret-rotation policy.",
    status = "OrganizationStatus",
    shortname = "org",
    category = "centralauth",
    printcolumn = r#"{"name":"Client ID","type":"string","jsonPath":".status.clientId"}"#,
    printcolumn = r#"{"name":"Login URL","type":"string","jsonPath":".status.loginUrl"}"#,
    printcolumn = r#"{"name":"Active Secret","type":"string","jsonPath":".status.activeSecret.name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.allowedOrigins) || self.allowLocalhost || self.allowedOrigins.all(o, o.startsWith('https://'))"
).message("http:// origins are only allowed for localhost, and only with allowLocalhost: true").field_path(".allowedOrigins"))]
#[x_kube(validation = Rule::new(
    "!has(self.redirectUris) || self.allowLocalhost || self.redirectUris.all(u, u.startsWith('https://'))"
).message("http:// redirect URIs are only allowed for localhost, and only with allowLocalhost: true").field_path(".redirectUris"))]
#[x_kube(validation = Rule::new(super::provider::PROVIDER_LOCALHOST_RULE)
    .message("http:// provider issuers and enterpriseUrls are only allowed for localhost, and only with allowLocalhost: true").field_path(".loginMethods.providers"))]
#[x_kube(validation = Rule::new(
    "!has(self.maxSessionSeconds) || !has(self.maxInactivitySeconds) || self.maxInactivitySeconds <= self.maxSessionSeconds"
).message("maxInactivitySeconds must not exceed maxSessionSeconds").field_path(".maxInactivitySeconds"))]
#[x_kube(validation = Rule::new("!has(oldSelf.clientId) || (has(self.clientId) && self.clientId == oldSelf.clientId)")
    .message("clientId cannot be changed or removed once set: every app using it would stop working; create a new Organization instead"))]
pub struct OrganizationSpec {
    /// Name shown to users on the login page.
    #[schemars(length(min = 1, max = 128))]
    pub display_name: String,

    /// Logo shown on the login page. Must be an `https://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && self.startsWith('https://')").message("logoUrl must be an https:// URL"))]
    pub logo_url: Option<String>,

    /// Your own login domain (e.g. `login.example.com`). The service answers on it in addition
    /// to `<subdomain>.<base-domain>` and the shared base domain. Must be unique in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(HOSTNAME_RULE).message("customDomain must be a lowercase hostname such as login.example.com, without scheme, port or path"))]
    pub custom_domain: Option<String>,

    /// A DNS label: the organization also answers on `<subdomain>.<base-domain>`. Must be unique
    /// across the cluster; a later organization asking for a taken subdomain is not Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("subdomain must be a DNS label: lowercase letters, digits and '-', not starting or ending with '-'"))]
    pub subdomain: Option<String>,

    /// Pins the OAuth client ID instead of letting the operator generate one (useful when
    /// migrating apps that already know their ID). Can be added once, never changed or removed.
    /// Must be unique across the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9][A-Za-z0-9._~-]*$')").message("clientId may only contain letters, digits, '.', '_', '~' and '-'"))]
    pub client_id: Option<String>,

    /// Whitelist of origins that redirect URIs and `return_to` URLs must belong to, each
    /// `https://host[:port]` with no path, query or fragment. A leading `*.` matches any
    /// subdomain (`https://*.example.com`), but never on a public suffix (`https://*.com`,
    /// `https://*.co.uk`, `https://*.github.io`: the organization is not Ready, reason
    /// `WildcardOnPublicSuffix`, and the entry matches nothing) nor on an IP address.
    /// `http://localhost` origins need `allowLocalhost`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 262)))]
    #[x_kube(validation = Rule::new(ORIGIN_RULE).message(
        "each allowedOrigins entry must be an origin https://host[:port] (a leading '*.' is allowed) with no path, query, fragment or trailing slash"
    ))]
    #[x_kube(validation = Rule::new(WILDCARD_LABELS_RULE).message(
        "a wildcard in allowedOrigins needs a parent domain of at least two labels (https://*.example.com): https://*.com would match every site under a top-level domain"
    ))]
    #[x_kube(validation = Rule::new(WILDCARD_IP_RULE).message(
        "a wildcard in allowedOrigins cannot stand on an IP address, which has no subdomains: list the exact origin (https://10.0.0.1:8443)"
    ))]
    pub allowed_origins: Vec<String>,

    /// Exact callback URLs accepted by the standard OAuth endpoints (`/oauth2/authorize`), compared
    /// as exact strings (RFC 9700). Each must lie inside `allowedOrigins`. When set, the
    /// CentralAuth `/login` endpoint also requires the redirect's path to be one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 2048)))]
    #[x_kube(validation = Rule::new(REDIRECT_URI_RULE).message(
        "each redirectUris entry must be an absolute https:// URL without fragment or userinfo"
    ))]
    pub redirect_uris: Vec<String>,

    /// Development only: accept `http://localhost`, `http://127.0.0.1` and `http://[::1]`
    /// origins, redirect URIs and provider issuers.
    #[serde(default)]
    pub allow_localhost: bool,

    /// Longest a login session may last, in seconds, however active the user is. Default: 30 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 31_536_000))]
    pub max_session_seconds: Option<i64>,

    /// A session unused for this many seconds ends. Default: 7 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 31_536_000))]
    pub max_inactivity_seconds: Option<i64>,

    /// How users prove who they are. At least one method must be enabled.
    pub login_methods: LoginMethods,

    /// What happens to the previous client secret when a new one is activated.
    #[serde(default)]
    pub secret_rotation: SecretRotation,

    /// Who may log in: `Open` (default) records anyone who proves an address at their first
    /// login; `InviteOnly` admits only users an admin created (`centralauth-operator user
    /// --organization <name> --email <address> | kubectl apply -f -`).
    #[serde(default)]
    pub user_creation: UserCreation,

    /// Only addresses of these domains may log in, on every method (compared with the part
    /// after `@`, case-insensitively; a subdomain is another domain). Empty: every domain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    #[x_kube(validation = Rule::new("self.all(d, d.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?\\\\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))").message(
        "each allowedEmailDomains entry must be a lowercase domain such as example.com, without '@', scheme or wildcard"
    ))]
    pub allowed_email_domains: Vec<String>,

    /// Binds each session to what the client showed at login (CentralAuth's
    /// `hijackProtection`): a later use of the session from another address, browser or
    /// native device ends it, and the user must log in again. Off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hijack_protection: Option<HijackProtection>,

    /// How the login page looks (CentralAuth's ThemeSettings): colours, layouts, an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<super::theme::Theme>,

    /// Name of a Secret the operator keeps holding the client secret apps should use now
    /// (keys `client_id`, `client_secret`, `issuer`, `fingerprint`), so workloads can mount one
    /// name across rotations. Created and owned by the operator; an existing Secret it does not
    /// own is never overwritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("credentialsSecretName must be a valid Secret name (lowercase DNS subdomain)"))]
    pub credentials_secret_name: Option<String>,
}

/// What sessions are bound to (`docs/users.md`, "Hijack protection").
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HijackProtection {
    /// The client address (as `--trusted-proxies` determines it, never a header a client
    /// sets), compared when the browser comes back to the authorization endpoints and when a
    /// public client refreshes. Users whose address changes (mobile networks) log in again.
    #[serde(default)]
    pub ip: bool,

    /// The browser's `User-Agent` (only its SHA-256 is stored), compared when the browser
    /// comes back to the authorization endpoints.
    #[serde(default)]
    pub user_agent: bool,

    /// The native app's `device_id` of the login, compared when an authorization request
    /// names a device.
    #[serde(default)]
    pub device_id: bool,
}

impl HijackProtection {
    /// The aspects of [`crate::oauth::hijack`] this setting enables.
    pub fn aspects(setting: Option<&HijackProtection>) -> crate::oauth::hijack::Aspects {
        let s = setting.cloned().unwrap_or_default();
        crate::oauth::hijack::Aspects {
            ip: s.ip,
            user_agent: s.user_agent,
            device_id: s.device_id,
        }
    }
}

/// Login methods of an organization.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.email) || has(self.passwords) || (has(self.providers) && size(self.providers) > 0)").message("enable at least one login method: email, passwords or providers"))]
#[x_kube(validation = Rule::new("!has(self.passkeys) || has(self.email)").message("passkeys need the email login method: a user registers a passkey after proving their address with an e-mailed code; add loginMethods.email"))]
pub struct LoginMethods {
    /// One-time 5-digit codes sent by e-mail over SMTP: the login page asks for an address,
    /// mails a code valid for 10 minutes, and logs the user in as that address when the code
    /// is entered (at most 5 tries per code). Any address may log in: the user is whoever
    /// reads its mail; the app decides what that address may do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailLogin>,

    /// Static e-mail/password accounts from a Secret, for air-gapped and test setups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passwords: Option<PasswordLogin>,

    /// Passkeys (WebAuthn), `{}` to enable: after an e-mail login the user is offered to create
    /// a passkey, and the login page offers "Log in with a passkey". Only on the organization's
    /// own host (`customDomain` or `subdomain`), which is the passkeys' relying-party ID; never
    /// on the shared base domain. Needs `email`. See docs/passkeys.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkeys: Option<PasskeyLogin>,

    /// Upstream identity providers (any OpenID Connect provider, Google, Microsoft, GitHub):
    /// one button each on the login page, below the other methods. Names are unique. A
    /// provider login links to an existing user only through an address the provider asserts
    /// is verified (`docs/providers.md`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub providers: Vec<super::provider::Provider>,
}

/// Passkey (WebAuthn) login. No settings yet: the relying-party ID is the organization's own
/// host and the credentials live in each User's `spec.passkeys`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyLogin {}

/// E-mail one-time-code login: where to send the codes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmailLogin {
    /// SMTP server host name.
    #[schemars(length(min = 1, max = 253))]
    pub smtp_host: String,

    /// SMTP server port (587 for STARTTLS, 465 for implicit TLS, 25 for plain relays).
    #[serde(default = "default_smtp_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub smtp_port: u16,

    /// Transport security towards the SMTP server.
    #[serde(default)]
    pub tls: SmtpTls,

    /// Sender address of the code e-mails, e.g. `CentralAuth <login@example.com>` (the
    /// organization is not Ready, reason `InvalidSender`, when it is not an address).
    #[schemars(length(min = 3, max = 320))]
    pub from: String,

    /// Name of a Secret in this namespace with keys `username` and `password` for SMTP
    /// authentication (PLAIN or LOGIN, used exactly as stored: no trailing newline). Omit for
    /// relays without authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret_name: Option<String>,

    /// What the e-mail asks the user to do (CentralAuth's `defaultLoginAttemptType`): `Code`
    /// (default) mails a 5-digit code to type into the page; `Link` mails a one-time link and
    /// a short token shown on the page too; `Challenge` mails three numbers, of which the
    /// user clicks the one the page shows.
    #[serde(default)]
    pub attempt_type: EmailAttemptType,
}

/// How an e-mail login proves the mailbox (CentralAuth's `LoginAttemptType`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EmailAttemptType {
    /// A 5-digit code typed into the login page.
    #[default]
    Code,
    /// A one-time link (single use, 15 minutes) that logs in on the device that opens it, or
    /// completes the login on the device that started it.
    Link,
    /// Three numbers in the e-mail; clicking the one the page shows completes the login on
    /// the device that started it.
    Challenge,
}

fn default_smtp_port() -> u16 {
    587
}

/// Transport security towards the SMTP server.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SmtpTls {
    /// Upgrade the connection with STARTTLS (port 587).
    #[default]
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for relays on a trusted network, and for tests.
    None,
}

/// Whether users are created at their first login.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserCreation {
    /// A user who proves an address is recorded at their first login.
    #[default]
    Open,
    /// Only users an admin created may log in; others see a page saying so.
    InviteOnly,
}

/// Password login: accounts from a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordLogin {
    /// Name of a Secret in this namespace holding the accounts, htpasswd style: one
    /// `email:argon2id-PHC-hash` per line under `key` (e-mail addresses cannot be Secret keys).
    /// Make a hash with `centralauth-operator hash-password`.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("passwords.secretName must be a valid Secret name (lowercase DNS subdomain)"))]
    pub secret_name: String,

    /// Key of the Secret that holds the accounts.
    #[serde(default = "default_users_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_users_key() -> String {
    "users".to_string()
}

/// Secret-rotation policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRotation {
    /// How long the previous client secret keeps working after a new one is activated, as a
    /// duration (`0s`, `90s`, `15m`, `1h`; at most `720h`). The default `0s` means the old
    /// secret stops working at activation. With `OnRollout` activation the previous secret also
    /// lives until every listed workload finished rolling out, whichever is later.
    #[serde(default = "default_grace")]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) <= duration('720h')")
        .message("previousSecretGracePeriod must be a duration such as 0s, 90s, 15m or 1h, at most 720h"))]
    pub previous_secret_grace_period: String,
}

impl Default for SecretRotation {
    fn default() -> Self {
        Self {
            previous_secret_grace_period: default_grace(),
        }
    }
}

fn default_grace() -> String {
    "0s".to_string()
}

/// Observed state of an Organization.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions; `Ready` says whether the organization serves logins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The OAuth client ID apps use. Generated once and stable for the object's life (also kept
    /// in the `centralauth.io/client-id` annotation, so a lost status does not change it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,

    /// The OAuth/OIDC issuer identifier (`iss`) of this organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,

    /// Where apps send users to log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_url: Option<String>,

    /// Every host the login service answers on for this organization.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,

    /// The one ClientSecret that is active now. This field is the single record of activation:
    /// it is changed only with optimistic concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_secret: Option<ActiveSecretRef>,
}

/// Which ClientSecret is active.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ActiveSecretRef {
    /// Name of the ClientSecret.
    pub name: String,
    /// UID of the ClientSecret, so a deleted and recreated object of the same name is not
    /// mistaken for the active one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Public fingerprint of the secret (`sha256:<hex>`).
    pub fingerprint: String,
    /// When it was activated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<Time>,
}

impl Organization {
    /// The organization's client ID: pinned in spec, else the one recorded in the
    /// `centralauth.io/client-id` annotation, else the one in status. `None` until the
    /// Organization controller has generated one.
    pub fn client_id(&self) -> Option<&str> {
        self.spec
            .client_id
            .as_deref()
            .or_else(|| {
                self.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(super::CLIENT_ID_ANNOTATION))
                    .map(String::as_str)
            })
            .or_else(|| self.status.as_ref().and_then(|s| s.client_id.as_deref()))
    }

    /// The ClientSecret this organization's status records as active, if any.
    pub fn active_secret(&self) -> Option<&ActiveSecretRef> {
        self.status.as_ref().and_then(|s| s.active_secret.as_ref())
    }

    /// Whether `email`'s domain may log in (see `allowedEmailDomains`).
    pub fn email_domain_allowed(&self, email: &str) -> bool {
        let domains = &self.spec.allowed_email_domains;
        let domain = email.trim().rsplit_once('@').map_or("", |(_, d)| d);
        domains.is_empty() || domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// `maxSessionSeconds`, or its default of 30 days.
    pub fn max_session(&self) -> std::time::Duration {
        seconds(self.spec.max_session_seconds, 30 * 24 * 3600)
    }

    /// `maxInactivitySeconds`, or its default of 7 days: every use of a session extends its
    /// life by this much (never past [`Organization::max_session`]).
    pub fn max_inactivity(&self) -> std::time::Duration {
        seconds(self.spec.max_inactivity_seconds, 7 * 24 * 3600)
    }
}

fn seconds(value: Option<i64>, default: u64) -> std::time::Duration {
    std::time::Duration::from_secs(value.map_or(default, |v| v.max(0) as u64))
}

/// `orgs` by `(namespace, name)`, for callers that look organizations up by reference (one hash
/// lookup instead of a scan per referring object).
pub fn by_name(
    orgs: &[std::sync::Arc<Organization>],
) -> std::collections::HashMap<(&str, &str), &std::sync::Arc<Organization>> {
    orgs.iter()
        .filter_map(|o| Some(((o.metadata.namespace.as_deref()?, o.metadata.name.as_deref()?), o)))
        .collect()
}
