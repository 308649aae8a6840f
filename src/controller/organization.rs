//! Reconciler of `Organization`: client ID, addresses, and the checks the schema cannot do.
//!
//! Per reconcile, in this order (each step is correct whatever a previous, interrupted
//! reconcile did):
//! 1. **Client ID.** Pinned `spec.clientId` wins. Otherwise the ID recorded in the
//!    `centralauth.io/client-id` annotation is used. Otherwise one is generated (a random UUID
//!    v4; a status that still carries one is adopted) and recorded in the annotation FIRST, with
//!    a `metadata.resourceVersion` precondition: of two processes racing, only one write
//!    succeeds and the other retries and reads the winner's ID. The annotation lives on the
//!    object itself, so a lost status or an operator restart never changes the ID.
//! 2. **Addresses** from [`crate::tenant::address`]: `issuer`, `loginUrl`, `domains`.
//! 3. **Checks** → `Ready`: client ID, subdomain host and custom domain are unique across the
//!    organizations the operator serves (the later organization is not Ready and is told which
//!    earlier one holds the claim; the earlier is unaffected); `customDomain` is not the shared
//!    base domain; every login-method Secret exists with the keys it needs; the e-mail
//!    sender `loginMethods.email.from` is an address; every OpenID Connect provider's discovery
//!    and JWKS can be read (`ProviderDiscoveryFailed`, checked again every minute while failing); no `allowedOrigins` wildcard stands on a
//!    public suffix or an IP address ([`origin::pattern_problem`]); every `redirectUris` entry
//!    lies inside `allowedOrigins`.
//! 4. **Status** by server-side apply under [`ORG_STATUS_MANAGER`]: only `clientId`, `issuer`,
//!    `loginUrl`, `domains`, `observedGeneration` and the `Ready` condition; `activeSecret` and
//!    its conditions belong to the ClientSecret controller. Written only when it changes; an
//!    Event on every change of `Ready`.
//!
//! Watches: Organizations (a change re-queues the organizations it shares or shared a claim
//! with) and Secrets, metadata only (a Secret appearing re-queues the organizations naming it).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use super::related;
use super::{Context, events, status};
use crate::crd::condition::{self, READY, Status};
use crate::crd::{CLIENT_ID_ANNOTATION, FIELD_MANAGER, ORG_STATUS_MANAGER, Organization, OrganizationStatus};
use crate::origin;
use crate::runtime::metrics::Kind;
use crate::runtime::scope::WatchScope;
use crate::tenant::{self, Claim, Conflict};

/// Re-check period of an organization with upstream providers when nothing changes: their
/// discovery documents are not watched. Everything else an organization depends on (itself, its
/// siblings' claims, its login-method Secrets) is, so one without providers waits for a change
/// and holds no timer: at 10,000 organizations a timer each was ~4 MiB of the scheduler.
const RESYNC: Duration = Duration::from_secs(30 * 60);
/// Re-check period while a provider's discovery fails (it may come back by itself).
const PROVIDER_RETRY: Duration = Duration::from_secs(60);

/// Why a reconcile failed (it is retried with a short delay).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Recording the generated client ID failed (often a conflict with a concurrent writer).
    #[error("cannot record the client ID of Organization {name} in its annotation (retrying): {source}")]
    RecordClientId {
        /// `namespace/name`.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A login-method Secret could not be read.
    #[error("cannot read Secret {name}: {source}")]
    ReadSecret {
        /// `namespace/name`.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The status could not be written.
    #[error(transparent)]
    WriteStatus(#[from] status::ApplyError),
}

impl Error {
    /// The variant name, the fixed `reason` label of the reconcile-error metric.
    fn reason(&self) -> &'static str {
        match self {
            Error::RecordClientId { .. } => "RecordClientId",
            Error::ReadSecret { .. } => "ReadSecret",
            Error::WriteStatus(_) => "WriteStatus",
        }
    }
}

struct Data {
    ctx: Arc<Context>,
    orgs: Store<Organization>,
}

/// Runs this controller, once per watched unit (see [`crate::runtime::scope`]), until the future is
/// dropped.
pub async fn run(ctx: Arc<Context>) {
    ctx.scope.clone().for_each(|unit| run_in(ctx.clone(), unit)).await;
}

async fn run_in(ctx: Arc<Context>, unit: WatchScope) {
    let public = ctx.public.clone();
    let Some(orgs) = related::follow(ctx.caches().organization_feed(), &unit, move |o| claim_keys(o, &public)) else {
        tracing::error!(
            ?unit,
            "the caches do not watch this unit; Organization controller not started"
        );
        return;
    };
    // Metadata only: Secret data is never cached by this controller.
    let secrets = watcher(
        unit.api::<PartialObjectMeta<Secret>>(&ctx.client),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    let store = orgs.store.clone();
    let data = Arc::new(Data {
        ctx,
        orgs: orgs.store.clone(),
    });
    let controller = Controller::for_shared_stream(orgs.changed, orgs.store)
        .with_config(super::controller_config())
        .watches_stream(secrets, move |secret| referencing(&store, &secret))
        .reconcile_on(orgs.siblings);
    related::drain(controller.run(reconcile, error_policy, data)).await;
}

/// The keys [`related`] compares: a client ID or a host (whichever field gives it).
fn claim_keys(org: &Organization, base: &tenant::PublicBase) -> Vec<String> {
    tenant::claims(org, base)
        .into_iter()
        .map(|c| match c {
            Claim::ClientId(id) => format!("client-id:{id}"),
            Claim::CustomDomain(h) | Claim::Subdomain(h) => format!("host:{h}"),
        })
        .collect()
}

/// Login-method Secrets an organization needs, with the keys each must hold.
fn required_secrets(org: &Organization) -> Vec<(String, Vec<String>)> {
    let methods = &org.spec.login_methods;
    let mut secrets = vec![];
    if let Some(p) = &methods.passwords {
        secrets.push((p.secret_name.clone(), vec![p.key.clone()]));
    }
    if let Some(name) = methods.email.as_ref().and_then(|e| e.credentials_secret_name.clone()) {
        secrets.push((name, vec!["username".into(), "password".into()]));
    }
    for p in &methods.providers {
        let r = &p.client_secret_ref;
        match secrets.iter_mut().find(|(n, _)| *n == r.name) {
            Some((_, keys)) if !keys.contains(&r.key) => keys.push(r.key.clone()),
            Some(_) => {}
            None => secrets.push((r.name.clone(), vec![r.key.clone()])),
        }
    }
    secrets
}

/// Whether `org` names Secret `name` as a login-method Secret ([`required_secrets`], without
/// building it: every Secret event asks this of every organization).
fn names_secret(org: &Organization, name: &str) -> bool {
    let methods = &org.spec.login_methods;
    methods.passwords.as_ref().is_some_and(|p| p.secret_name == name)
        || methods
            .email
            .as_ref()
            .is_some_and(|e| e.credentials_secret_name.as_deref() == Some(name))
        || methods.providers.iter().any(|p| p.client_secret_ref.name == name)
}

/// Organizations in the Secret's namespace that name it as a login-method Secret.
fn referencing(store: &Store<Organization>, secret: &PartialObjectMeta<Secret>) -> Vec<ObjectRef<Organization>> {
    let (ns, name) = (secret.namespace(), secret.name_any());
    store
        .state()
        .iter()
        .filter(|o| o.metadata.namespace == ns && names_secret(o, &name))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

fn error_policy(org: Arc<Organization>, err: &Error, _data: Arc<Data>) -> Action {
    tracing::warn!(organization = %crate::applinks::qualified(org.as_ref()), error = %err, "reconcile failed; retrying");
    match err {
        Error::RecordClientId { .. } => Action::requeue(Duration::from_millis(500)),
        _ => Action::requeue(Duration::from_secs(5)),
    }
}

async fn reconcile(org: Arc<Organization>, data: Arc<Data>) -> Result<Action, Error> {
    let span =
        tracing::info_span!("reconcile", kind = "Organization", namespace = org.namespace(), name = %org.name_any());
    let metrics = data.ctx.metrics.clone();
    let work = async move {
        let org = ensure_client_id(&org, &data.ctx).await?;
        let verdict = check(&org, &data).await?;
        // A provider's discovery may fail for a while and come back by itself.
        let retry_soon = verdict.is_err() && !org.spec.login_methods.providers.is_empty();
        write_status(&org, verdict, &data.ctx).await?;
        Ok(next_check(&org, retry_soon))
    };
    crate::runtime::metrics::Metrics::instrument(&metrics, Kind::Organization, Error::reason, span, work).await
}

/// When to reconcile again without a change: see [`RESYNC`] and [`PROVIDER_RETRY`].
fn next_check(org: &Organization, retry_soon: bool) -> Action {
    match (retry_soon, org.spec.login_methods.providers.is_empty()) {
        (true, _) => Action::requeue(PROVIDER_RETRY),
        (false, true) => Action::await_change(),
        (false, false) => Action::requeue(RESYNC),
    }
}

/// Step 1: the organization with a client ID, recording a new one in the annotation first.
async fn ensure_client_id(org: &Organization, ctx: &Context) -> Result<Organization, Error> {
    if org.spec.client_id.is_some() || org.annotations().contains_key(CLIENT_ID_ANNOTATION) {
        return Ok(org.clone());
    }
    let adopted = org.status.as_ref().and_then(|s| s.client_id.clone());
    let id = adopted.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let patch = json!({"metadata": {
        "resourceVersion": org.resource_version(),
        "annotations": {CLIENT_ID_ANNOTATION: id},
    }});
    let api: Api<Organization> = Api::namespaced(ctx.client.clone(), &org.namespace().unwrap_or_default());
    let updated = api
        .patch(
            &org.name_any(),
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|source| Error::RecordClientId {
            name: crate::applinks::qualified(org),
            source,
        })?;
    tracing::info!(client_id = %id, "client ID recorded");
    Ok(updated)
}

/// What step 3 found: `Ok` or the reason and message of `Ready=False`.
type Verdict = Result<(), (&'static str, String)>;

/// Step 3: every check; all problems are reported together, the first one gives the reason.
async fn check(org: &Organization, data: &Data) -> Result<Verdict, Error> {
    let mut problems: Vec<(&'static str, String)> = vec![];
    let base = &data.ctx.public;
    if org.spec.custom_domain.as_deref() == Some(base.base_domain.as_str()) {
        problems.push((
            "CustomDomainIsBaseDomain",
            format!(
                "customDomain {} is the shared base domain every organization answers on; use a host of your own",
                base.base_domain
            ),
        ));
    }
    let all = data.orgs.state();
    let others: Vec<&Organization> = all.iter().map(Arc::as_ref).collect();
    for conflict in tenant::conflicts(org, &others, base) {
        problems.push(describe_conflict(org, &conflict));
    }
    problems.extend(missing_secrets(org, &data.ctx).await?);
    problems.extend(setting_problems(org));
    problems.extend(provider_problems(org).await);
    Ok(match problems.first() {
        None => Ok(()),
        Some((reason, _)) => Err((
            reason,
            problems.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; "),
        )),
    })
}

/// The checks of step 3 that look at this organization's spec alone: the e-mail sender, the
/// allowed origins and the redirect URIs.
fn setting_problems(org: &Organization) -> Vec<(&'static str, String)> {
    let mut problems: Vec<(&'static str, String)> = vec![];
    if let Some(problem) = org
        .spec
        .login_methods
        .email
        .as_ref()
        .and_then(crate::mail::config_problem)
    {
        problems.push(("InvalidSender", problem));
    }
    let unusable: Vec<String> = org
        .spec
        .allowed_origins
        .iter()
        .filter_map(|o| origin::pattern_problem(o))
        .map(|p| p.to_string())
        .collect();
    if !unusable.is_empty() {
        problems.push((
            "WildcardOnPublicSuffix",
            format!("{}; such entries match nothing", unusable.join("; ")),
        ));
    }
    let outside: Vec<&str> = org
        .spec
        .redirect_uris
        .iter()
        .filter(|u| !origin::url_allowed(u, &org.spec.allowed_origins))
        .map(String::as_str)
        .collect();
    if !outside.is_empty() {
        problems.push((
            "RedirectUriNotAllowed",
            format!(
                "redirectUris {} are not inside allowedOrigins: add their origin to allowedOrigins or remove them",
                outside.join(", ")
            ),
        ));
    }
    problems
}

/// Reads the discovery document and JWKS of every OpenID Connect provider of `org` (not
/// cached: the controller checks what the provider serves now); GitHub has none.
async fn provider_problems(org: &Organization) -> Vec<(&'static str, String)> {
    static HTTP: std::sync::OnceLock<crate::oauth::upstream::fetch::Http> = std::sync::OnceLock::new();
    let http = HTTP.get_or_init(crate::oauth::upstream::fetch::Http::new);
    let checks = org.spec.login_methods.providers.iter().filter_map(|p| {
        let issuer = crate::flow::providers::issuer(p)?;
        Some(async move { (p, crate::oauth::upstream::oidc::read(http, &issuer).await) })
    });
    // Concurrently: one silent provider costs one timeout, not one per provider.
    futures::future::join_all(checks)
        .await
        .into_iter()
        .filter_map(|(p, result)| {
            let e = result.err()?;
            Some((
                "ProviderDiscoveryFailed",
                format!(
                    "provider {}: {e}; check its issuer and that the operator can reach it (the organization is checked again within a minute)",
                    p.name
                ),
            ))
        })
        .collect()
}

fn describe_conflict(org: &Organization, c: &Conflict<'_>) -> (&'static str, String) {
    let holder = crate::applinks::qualified(c.holder);
    let held = match &c.held_as {
        Claim::ClientId(_) => "client ID",
        Claim::CustomDomain(_) => "customDomain",
        Claim::Subdomain(_) => "subdomain host",
    };
    match &c.claim {
        Claim::ClientId(id) if org.spec.client_id.is_some() => (
            "ClientIdConflict",
            format!(
                "spec.clientId {id} is already the client ID of Organization {holder} (created earlier); client IDs must be unique and spec.clientId cannot be changed: recreate this Organization with another clientId, or without one to get a generated ID"
            ),
        ),
        Claim::ClientId(id) => (
            "ClientIdConflict",
            format!(
                "client ID {id} (annotation {CLIENT_ID_ANNOTATION}) is already the client ID of Organization {holder} (created earlier), probably copied with its metadata: remove the annotation from this Organization and a new client ID is generated"
            ),
        ),
        Claim::CustomDomain(host) => (
            "CustomDomainConflict",
            format!(
                "customDomain {host} is already the {held} of Organization {holder} (created earlier): choose another customDomain"
            ),
        ),
        Claim::Subdomain(host) => (
            "SubdomainConflict",
            format!(
                "subdomain {} (host {host}) is already the {held} of Organization {holder} (created earlier): choose another subdomain",
                org.spec.subdomain.as_deref().unwrap_or_default()
            ),
        ),
    }
}

/// Login-method Secrets that are absent or lack a key. Reads each Secret once, uncached; its
/// data is only tested for the presence of keys, never kept or logged.
async fn missing_secrets(org: &Organization, ctx: &Context) -> Result<Vec<(&'static str, String)>, Error> {
    let ns = org.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut problems = vec![];
    for (name, keys) in required_secrets(org) {
        let secret = api.get_opt(&name).await.map_err(|source| Error::ReadSecret {
            name: format!("{ns}/{name}"),
            source,
        })?;
        let Some(secret) = secret else {
            problems.push(("SecretNotFound", format!(
                "Secret {ns}/{name} named by loginMethods does not exist: create it (the organization becomes Ready by itself)"
            )));
            continue;
        };
        let has = |k: &String| {
            secret.data.as_ref().is_some_and(|d| d.contains_key(k))
                || secret.string_data.as_ref().is_some_and(|d| d.contains_key(k))
        };
        let lacking: Vec<&str> = keys.iter().filter(|k| !has(k)).map(String::as_str).collect();
        if !lacking.is_empty() {
            problems.push((
                "SecretKeyMissing",
                format!(
                    "Secret {ns}/{name} named by loginMethods has no key {}: add it",
                    lacking.join(", ")
                ),
            ));
        }
    }
    Ok(problems)
}

/// Step 4: apply this controller's part of the status when it changed, and report a change
/// of `Ready` as an Event.
async fn write_status(org: &Organization, verdict: Verdict, ctx: &Context) -> Result<(), Error> {
    // ensure_client_id guarantees an ID; the fallback is never used.
    let client_id = org.client_id().unwrap_or_default().to_string();
    let address = tenant::address(org, &client_id, &ctx.public);
    let generation = org.metadata.generation;
    let ready = match &verdict {
        Ok(()) => condition::new(
            READY,
            Status::True,
            "Ready",
            format!("serving logins at {}", address.login_url),
            generation,
        ),
        Err((reason, message)) => condition::new(READY, Status::False, reason, message.clone(), generation),
    };
    let current = org.status.clone().unwrap_or_default();
    let mut conditions = current.conditions.clone();
    let condition_changed = condition::set(&mut conditions, ready);
    let ready = condition::find(&conditions, READY).cloned().expect("just set");
    let desired = OrganizationStatus {
        observed_generation: generation,
        conditions: vec![ready.clone()],
        client_id: Some(client_id),
        issuer: Some(address.issuer),
        login_url: Some(address.login_url),
        domains: address.domains,
        active_secret: None,
    };
    let unchanged = !condition_changed
        && current.observed_generation == desired.observed_generation
        && current.client_id == desired.client_id
        && current.issuer == desired.issuer
        && current.login_url == desired.login_url
        && current.domains == desired.domains;
    if unchanged {
        return Ok(());
    }
    status::apply(&ctx.client, org, ORG_STATUS_MANAGER, &desired).await?;
    let before = condition::find(&current.conditions, READY);
    if before.map(|c| (&c.status, &c.reason)) != Some((&ready.status, &ready.reason)) {
        events::publish_condition(ctx, org, &ready);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_organizations_with_providers_are_checked_again_without_a_change() {
        let mut org = crate::tenant::tests::org(Some("acme"), None);
        assert_eq!(next_check(&org, false), Action::await_change());
        org.spec.login_methods.providers = vec![
            serde_json::from_value(json!({
                "name": "corp", "type": "OIDC", "clientId": "c", "issuer": "https://idp.example.com",
                "clientSecretRef": {"name": "corp-oidc", "key": "secret"},
            }))
            .expect("a valid provider"),
        ];
        assert_eq!(next_check(&org, false), Action::requeue(RESYNC));
        assert_eq!(next_check(&org, true), Action::requeue(PROVIDER_RETRY));
    }
}
