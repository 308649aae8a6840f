//! The Organization controller against the real API server: client IDs (generated once,
//! surviving a wiped status and a restart, pinned), addresses, uniqueness conflicts (the later
//! organization is marked, and recovers by itself), login-method Secrets, redirect URIs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use centralauth_operator::association::AssociationSettings;
use centralauth_operator::controller::{Context, native_app, organization};
use centralauth_operator::crd::{CLIENT_ID_ANNOTATION, Organization};
use centralauth_operator::tenant::PublicBase;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::Reporter;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::support;

/// The public base the in-process controllers use.
pub fn public() -> PublicBase {
    PublicBase {
        scheme: "https".into(),
        base_domain: "auth.test".into(),
        port: None,
    }
}

/// The Organization and NativeApp controllers running in this process, scoped to one
/// namespace (tests run in parallel, each in its own namespace). Dropping it stops them,
/// like stopping the operator.
pub struct Operator(tokio::task::JoinHandle<()>);

impl Drop for Operator {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the two controllers of this issue for namespace `ns`.
pub fn start_operator(client: &Client, ns: &str, association: AssociationSettings) -> Operator {
    let reporter = Reporter {
        controller: "centralauth-operator".into(),
        instance: Some(format!("test-{ns}")),
    };
    let mut ctx = Context::plain(client.clone(), reporter, public());
    ctx.scope = centralauth_operator::runtime::scope::Scope::from_namespaces([ns.to_string()]);
    ctx.association = association;
    let ctx = Arc::new(ctx);
    Operator(tokio::spawn(async move {
        tokio::join!(organization::run(ctx.clone()), native_app::run(ctx));
    }))
}

/// An Organization with a password login whose Secret is `users`, plus `spec` merged in.
pub fn org(name: &str, spec: Value) -> Organization {
    let mut doc = json!({
        "apiVersion": "centralauth.io/v1alpha1",
        "kind": "Organization",
        "metadata": {"name": name},
        "spec": {"displayName": name, "loginMethods": {"passwords": {"secretName": "users"}}},
    });
    for (k, v) in spec.as_object().unwrap() {
        doc["spec"][k] = v.clone();
    }
    serde_json::from_value(doc).unwrap()
}

/// Creates the `users` Secret the organizations of [`org`] need, holding `content`.
pub async fn users_secret(client: &Client, ns: &str, content: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "users"},
        "stringData": {"users": content},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// The Ready condition's `(status, reason, message)`.
pub fn ready_of(
    conditions: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
) -> Option<(String, String, String)> {
    let c = conditions?.iter().find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn org_ready(o: &Organization) -> Option<(String, String, String)> {
    ready_of(o.status.as_ref().map(|s| &s.conditions))
}

/// Waits (30 s) until `probe` accepts the object, which it returns; panics with the last one.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, probe: impl Fn(&K) -> bool) -> K
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let last = std::sync::Mutex::new(None);
    let found = support::wait_until(Duration::from_secs(30), || async {
        let obj = api.get_opt(name).await.ok().flatten()?;
        *last.lock().unwrap() = Some(obj.clone());
        probe(&obj).then_some(obj)
    })
    .await;
    found.unwrap_or_else(|| panic!("{name}: never {what}; last seen: {:#?}", last.lock().unwrap()))
}

/// Events about object `name` in `ns` with `reason`. Events are published right after the
/// status is written, so this waits up to 10 s for the first one (empty if none came).
pub async fn events_for(client: &Client, ns: &str, name: &str, reason: &str) -> Vec<Event> {
    let api = Api::<Event>::namespaced(client.clone(), ns);
    let found = support::wait_until(std::time::Duration::from_secs(10), || async {
        let events: Vec<Event> = api
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.reason.as_deref() == Some(reason)
            })
            .collect();
        (!events.is_empty()).then_some(events)
    })
    .await;
    found.unwrap_or_default()
}

async fn is_ready(api: &Api<Organization>, name: &str) -> Organization {
    wait_for(api, name, "Ready=True", |o| org_ready(o).is_some_and(|r| r.0 == "True")).await
}

async fn not_ready(api: &Api<Organization>, name: &str, reason: &str) -> Organization {
    wait_for(api, name, &format!("Ready=False/{reason}"), |o| {
        org_ready(o).is_some_and(|r| r.0 == "False" && r.1 == reason)
    })
    .await
}

async fn setup(test: &str) -> (Client, String, Api<Organization>, Operator) {
    let client = support::client().await;
    let ns = support::namespace(&client, test).await;
    users_secret(
        &client,
        &ns,
        "someone@example.com:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA\n",
    )
    .await;
    let operator = start_operator(&client, &ns, AssociationSettings::default());
    let api = Api::namespaced(client.clone(), &ns);
    (client, ns, api, operator)
}

#[tokio::test]
async fn client_id_is_generated_once_and_survives_a_wiped_status_and_a_restart() {
    let (client, ns, api, operator) = setup("org-client-id").await;
    api.create(
        &PostParams::default(),
        &org("acme", json!({"subdomain": format!("acme-{ns}")})),
    )
    .await
    .unwrap();
    let ready = is_ready(&api, "acme").await;
    let status = ready.status.clone().unwrap();
    let id = status.client_id.clone().unwrap();
    assert_eq!(
        ready.annotations().get(CLIENT_ID_ANNOTATION),
        Some(&id),
        "recorded in the annotation"
    );
    assert!(uuid_v4(&id), "generated client IDs are UUID v4: {id}");
    assert_eq!(
        status.issuer.as_deref(),
        Some(format!("https://acme-{ns}.auth.test").as_str())
    );
    assert_eq!(
        status.login_url.as_deref(),
        Some(format!("https://acme-{ns}.auth.test/login").as_str())
    );
    assert_eq!(
        status.domains,
        [format!("acme-{ns}.auth.test"), "auth.test".to_string()]
    );
    assert_eq!(status.observed_generation, ready.metadata.generation);
    assert!(
        !events_for(&client, &ns, "acme", "Ready").await.is_empty(),
        "an event for Ready"
    );

    // Wipe the status through the API: the controller restores it with the same ID.
    wipe_status(&api, "acme").await;
    let restored = wait_for(&api, "acme", "restored", |o| {
        o.status.as_ref().is_some_and(|s| s.client_id.is_some())
    })
    .await;
    assert_eq!(restored.status.unwrap().client_id, Some(id.clone()));

    // Stop the operator, wipe the status while it is down, start a new one.
    drop(operator);
    tokio::time::sleep(Duration::from_millis(300)).await;
    wipe_status(&api, "acme").await;
    let _operator = start_operator(&client, &ns, AssociationSettings::default());
    let restored = is_ready(&api, "acme").await;
    assert_eq!(restored.status.clone().unwrap().client_id, Some(id.clone()));
    assert_eq!(restored.annotations().get(CLIENT_ID_ANNOTATION), Some(&id));
}

fn uuid_v4(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && id
            .chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        && groups[2].starts_with('4')
}

async fn wipe_status(api: &Api<Organization>, name: &str) {
    // The answer to the patch is the object right after it (the controller may restore the
    // status a moment later, which is the point).
    let wiped = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": null})))
        .await
        .unwrap();
    assert!(
        wiped.status.as_ref().is_none_or(|s| s.client_id.is_none()),
        "status was wiped"
    );
}

#[tokio::test]
async fn a_pinned_client_id_wins_and_shared_domain_issuers_carry_it() {
    let (_client, ns, api, _operator) = setup("org-pinned").await;
    let pinned = format!("pinned-{ns}");
    api.create(&PostParams::default(), &org("pinned", json!({"clientId": pinned})))
        .await
        .unwrap();
    let ready = is_ready(&api, "pinned").await;
    let status = ready.status.clone().unwrap();
    assert_eq!(status.client_id.as_deref(), Some(pinned.as_str()));
    assert_eq!(ready.annotations().get(CLIENT_ID_ANNOTATION), None, "nothing generated");
    assert_eq!(status.issuer, Some(format!("https://auth.test/o/{pinned}")));
    assert_eq!(status.domains, ["auth.test"]);
}

#[tokio::test]
async fn a_subdomain_conflict_marks_the_later_organization_until_the_earlier_lets_go() {
    let (client, ns, api, _operator) = setup("org-subdomain-conflict").await;
    let sub = format!("shared-{ns}");
    api.create(&PostParams::default(), &org("first", json!({"subdomain": sub})))
        .await
        .unwrap();
    is_ready(&api, "first").await;
    api.create(&PostParams::default(), &org("second", json!({"subdomain": sub})))
        .await
        .unwrap();
    let second = not_ready(&api, "second", "SubdomainConflict").await;
    let message = org_ready(&second).unwrap().2;
    assert!(
        message.contains(&format!("{ns}/first")) && message.contains("choose another subdomain"),
        "{message}"
    );
    assert!(!events_for(&client, &ns, "second", "SubdomainConflict").await.is_empty());
    is_ready(&api, "first").await;

    // The earlier organization moves away: the later one becomes Ready by itself.
    let patch = json!({"spec": {"subdomain": format!("moved-{ns}")}});
    api.patch("first", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    is_ready(&api, "second").await;
    is_ready(&api, "first").await;
}

#[tokio::test]
async fn a_custom_domain_conflict_clears_when_the_earlier_organization_is_deleted() {
    let (_client, ns, api, _operator) = setup("org-custom-domain-conflict").await;
    let domain = format!("login.{ns}.example.com");
    api.create(&PostParams::default(), &org("first", json!({"customDomain": domain})))
        .await
        .unwrap();
    is_ready(&api, "first").await;
    api.create(&PostParams::default(), &org("second", json!({"customDomain": domain})))
        .await
        .unwrap();
    let second = not_ready(&api, "second", "CustomDomainConflict").await;
    assert!(org_ready(&second).unwrap().2.contains(&format!("{ns}/first")));
    // The domain stays with "first" however often "second" is reconciled.
    api.patch(
        "second",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"displayName": "again"}})),
    )
    .await
    .unwrap();
    let second = wait_for(&api, "second", "generation 2 observed", |o| {
        o.status.as_ref().is_some_and(|s| s.observed_generation == Some(2))
    })
    .await;
    assert_eq!(org_ready(&second).unwrap().1, "CustomDomainConflict");
    is_ready(&api, "first").await;

    api.delete("first", &DeleteParams::default()).await.unwrap();
    is_ready(&api, "second").await;
}

#[tokio::test]
async fn a_client_id_conflict_names_the_earlier_organization() {
    let (_client, ns, api, _operator) = setup("org-client-id-conflict").await;
    api.create(&PostParams::default(), &org("first", json!({})))
        .await
        .unwrap();
    let id = is_ready(&api, "first").await.status.unwrap().client_id.unwrap();
    api.create(&PostParams::default(), &org("second", json!({"clientId": id})))
        .await
        .unwrap();
    let second = not_ready(&api, "second", "ClientIdConflict").await;
    let message = org_ready(&second).unwrap().2;
    assert!(
        message.contains(&format!("{ns}/first")) && message.contains("recreate"),
        "{message}"
    );
    is_ready(&api, "first").await;
    // A copied annotation is a conflict too, with the fix for that case.
    // (Named so that it is also the later one when created in the same second: creation times
    // have one-second precision and ties fall back to the name.)
    let mut copy = org("third", json!({}));
    copy.metadata.annotations = Some([(CLIENT_ID_ANNOTATION.to_string(), id.clone())].into());
    api.create(&PostParams::default(), &copy).await.unwrap();
    let copy = not_ready(&api, "third", "ClientIdConflict").await;
    assert!(org_ready(&copy).unwrap().2.contains("remove the annotation"));

    api.delete("first", &DeleteParams::default()).await.unwrap();
    is_ready(&api, "second").await;
    // "third" still clashes with "second" (which now holds the ID as the earliest left).
    let holder = format!("{ns}/second");
    let copy = wait_for(&api, "third", "in conflict with second", |o| {
        org_ready(o).is_some_and(|r| r.1 == "ClientIdConflict" && r.2.contains(&holder))
    })
    .await;
    assert_eq!(org_ready(&copy).unwrap().0, "False");
}

#[tokio::test]
async fn a_missing_login_secret_is_reported_until_it_appears() {
    let client = support::client().await;
    let ns = support::namespace(&client, "org-missing-secret").await;
    let _operator = start_operator(&client, &ns, AssociationSettings::default());
    let api: Api<Organization> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &org("acme", json!({})))
        .await
        .unwrap();
    let acme = not_ready(&api, "acme", "SecretNotFound").await;
    assert!(org_ready(&acme).unwrap().2.contains(&format!("Secret {ns}/users")));
    assert!(!events_for(&client, &ns, "acme", "SecretNotFound").await.is_empty());

    // A Secret without the key is not enough.
    let wrong: Secret =
        serde_json::from_value(json!({"metadata": {"name": "users"}, "stringData": {"other": "x"}})).unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets.create(&PostParams::default(), &wrong).await.unwrap();
    not_ready(&api, "acme", "SecretKeyMissing").await;
    let marker = format!("marker-{ns}@example.com:$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA");
    let patch = json!({"stringData": {"users": marker}});
    secrets
        .patch("users", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    let acme = is_ready(&api, "acme").await;

    // Nothing of the Secret's content reaches the status or the events.
    let status = serde_json::to_string(&acme.status).unwrap();
    let events = Api::<Event>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let events = serde_json::to_string(&events.items).unwrap();
    for text in [status, events] {
        assert!(!text.contains(&marker) && !text.contains("argon2id"), "{text}");
    }
}

#[tokio::test]
async fn redirect_uris_must_lie_inside_allowed_origins() {
    let (_client, _ns, api, _operator) = setup("org-redirect-uris").await;
    let spec = json!({
        "allowedOrigins": ["https://*.example.com"],
        "redirectUris": ["https://app.example.com/cb", "https://example.com/cb"],
    });
    api.create(&PostParams::default(), &org("acme", spec)).await.unwrap();
    let acme = not_ready(&api, "acme", "RedirectUriNotAllowed").await;
    let message = org_ready(&acme).unwrap().2;
    assert!(
        message.contains("https://example.com/cb") && !message.contains("app.example.com"),
        "{message}"
    );
    let fix = json!({"spec": {"allowedOrigins": ["https://*.example.com", "https://example.com"]}});
    api.patch("acme", &PatchParams::default(), &Patch::Merge(fix))
        .await
        .unwrap();
    is_ready(&api, "acme").await;
}

#[tokio::test]
async fn two_racing_operators_record_one_client_id_per_organization() {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let client = support::client().await;
    let ns = support::namespace(&client, "org-racing-operators").await;
    users_secret(&client, &ns, "").await;
    let api: Api<Organization> = Api::namespaced(client.clone(), &ns);
    // Record every client-ID annotation value any version of any organization ever carried.
    let seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        String,
        BTreeSet<String>,
    >::new()));
    // And the generation each one's status last said it had observed.
    let observed = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<String, i64>::new()));
    let recorder = tokio::spawn({
        let (api, seen, observed) = (api.clone(), seen.clone(), observed.clone());
        async move {
            let mut stream = watcher(api, watcher::Config::default()).applied_objects().boxed();
            while let Some(Ok(o)) = stream.next().await {
                if let Some(id) = o.annotations().get(CLIENT_ID_ANNOTATION) {
                    seen.lock().unwrap().entry(o.name_any()).or_default().insert(id.clone());
                }
                if let Some(g) = o.status.as_ref().and_then(|s| s.observed_generation) {
                    observed.lock().unwrap().insert(o.name_any(), g);
                }
            }
        }
    });
    let _one = start_operator(&client, &ns, AssociationSettings::default());
    let _two = start_operator(&client, &ns, AssociationSettings::default());
    let names: Vec<String> = (0..6).map(|i| format!("org-{i}")).collect();
    for name in &names {
        api.create(&PostParams::default(), &org(name, json!({}))).await.unwrap();
    }
    for name in &names {
        let ready = is_ready(&api, name).await;
        assert_eq!(
            ready.annotations().get(CLIENT_ID_ANNOTATION),
            ready.status.as_ref().and_then(|s| s.client_id.as_ref())
        );
    }
    // Both operators look again (a spec change), and the recorder has seen the result: no
    // client ID changed afterwards either.
    for name in &names {
        let nudge = json!({"spec": {"displayName": format!("{name} again")}});
        let nudged = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&nudge))
            .await
            .unwrap();
        let generation = nudged.metadata.generation;
        wait_for(&api, name, "the nudge observed", |o| {
            o.status.as_ref().and_then(|s| s.observed_generation) == generation
        })
        .await;
        let recorded = support::wait_until(Duration::from_secs(30), || async {
            observed
                .lock()
                .unwrap()
                .get(name)
                .is_some_and(|g| Some(*g) == generation)
                .then_some(())
        })
        .await;
        assert!(
            recorded.is_some(),
            "the recorder never saw {name} reconciled after the nudge"
        );
    }
    recorder.abort();
    let seen = seen.lock().unwrap();
    for name in &names {
        assert_eq!(
            seen.get(name).map(BTreeSet::len),
            Some(1),
            "{name} carried {:?}",
            seen.get(name)
        );
    }
}

#[tokio::test]
async fn an_e_mail_sender_that_is_not_an_address_is_reported() {
    let (_client, _ns, api, _operator) = setup("org-email-sender").await;
    let email = |from: &str| json!({"smtpHost": "smtp.example.com", "tls": "None", "from": from});
    let spec = json!({"loginMethods": {"email": email("Acme login")}});
    api.create(&PostParams::default(), &org("acme", spec)).await.unwrap();
    let acme = not_ready(&api, "acme", "InvalidSender").await;
    let message = org_ready(&acme).unwrap().2;
    assert!(
        message.contains("\"Acme login\"") && message.contains("login@example.com"),
        "{message}"
    );
    let fix = json!({"spec": {"loginMethods": {"email": email("Acme <login@acme.example>")}}});
    api.patch("acme", &PatchParams::default(), &Patch::Merge(fix))
        .await
        .unwrap();
    is_ready(&api, "acme").await;
}

#[tokio::test]
async fn a_wildcard_on_a_public_suffix_is_reported_with_an_event() {
    let (client, ns, api, _operator) = setup("org-public-suffix").await;
    let spec = json!({"allowedOrigins": ["https://example.com", "https://*.co.uk", "https://*.github.io"]});
    api.create(&PostParams::default(), &org("acme", spec)).await.unwrap();
    let acme = not_ready(&api, "acme", "WildcardOnPublicSuffix").await;
    let message = org_ready(&acme).unwrap().2;
    assert!(
        message.contains("public suffix co.uk") && message.contains("public suffix github.io"),
        "{message}"
    );
    assert!(
        !events_for(&client, &ns, "acme", "WildcardOnPublicSuffix")
            .await
            .is_empty(),
        "a Warning event says so"
    );
    let fix = json!({"spec": {"allowedOrigins": ["https://example.com", "https://*.example.co.uk"]}});
    api.patch("acme", &PatchParams::default(), &Patch::Merge(fix))
        .await
        .unwrap();
    is_ready(&api, "acme").await;
}
