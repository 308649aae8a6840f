//! The in-process ClientSecret controller harness shared by `client_secret.rs`,
//! `client_secret_rollout.rs` and `client_secret_crash.rs`: a namespace, its clients, the
//! controller and its captured log output, and the invariant watch.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use centralauth_operator::controller::Context;
use centralauth_operator::controller::client_secret::secret::{CLIENT_SECRET_KEY, MANAGED_BY_LABEL};
use centralauth_operator::controller::client_secret::{self as controller};
use centralauth_operator::crd::{ClientSecret, ClientSecretPhase, Organization};
use centralauth_operator::tenant::PublicBase;

use crate::support;

/// Base domain the tests' operator serves.
pub const BASE_DOMAIN: &str = "auth.test";

/// A test namespace, its clients, an in-process controller and the captured log output.
pub struct Harness {
    pub client: Client,
    pub ns: String,
    logs: Arc<Mutex<Vec<u8>>>,
    _log_guard: tracing::subscriber::DefaultGuard,
    controller: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Clone)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Harness {
    /// A fresh namespace with the controller running on it.
    pub async fn start(test: &str) -> Harness {
        let mut h = Harness::without_controller(test).await;
        h.start_controller();
        h
    }

    /// A fresh namespace, controller not started. Logs of this thread (the test's current-thread
    /// runtime, where the controller runs) are captured from now on.
    pub async fn without_controller(test: &str) -> Harness {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = SharedBuf(logs.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        let client = support::client().await;
        let ns = support::namespace(&client, test).await;
        Harness {
            client,
            ns,
            logs,
            _log_guard: guard,
            controller: None,
        }
    }

    /// Starts the controller (scoped to this namespace) on the test's runtime.
    pub fn start_controller(&mut self) {
        let public = PublicBase {
            scheme: "https".into(),
            base_domain: BASE_DOMAIN.into(),
            port: None,
        };
        let ctx = Context::new(self.client.clone(), public, Some("integration-test".into()));
        self.controller = Some(tokio::spawn(controller::run_in(ctx, Some(self.ns.clone()))));
    }

    /// Starts a second, independent controller on the same namespace: its own caches and its
    /// own per-organization locks, as a second operator process without leader election.
    pub fn start_second_controller(&mut self) -> tokio::task::JoinHandle<()> {
        let public = PublicBase {
            scheme: "https".into(),
            base_domain: BASE_DOMAIN.into(),
            port: None,
        };
        let ctx = Context::new(self.client.clone(), public, Some("integration-test-2".into()));
        tokio::spawn(controller::run_in(ctx, Some(self.ns.clone())))
    }

    /// Stops the controller as a crash would (its task is dropped wherever it was).
    pub fn stop_controller(&mut self) {
        if let Some(c) = self.controller.take() {
            c.abort();
        }
    }

    /// Nudges ClientSecret `name` (an annotation the operator does not read) and waits until
    /// the controller has run a whole reconcile of it that started after the nudge: the
    /// positive signal that it looked again, after which "nothing changed" means something.
    pub async fn looked_again(&self, name: &str) {
        let mark = self.logs().len();
        let nudge = json!({"metadata": {"annotations": {"test.centralauth.io/nudge": mark.to_string()}}});
        self.client_secrets()
            .patch(name, &PatchParams::default(), &Patch::Merge(&nudge))
            .await
            .unwrap();
        let span = format!("kind=\"ClientSecret\" namespace=\"{}\" name={name}}}", self.ns);
        let reconciled = support::wait_until(Duration::from_secs(30), || async {
            let logs = self.logs();
            let mut later = logs
                .get(mark..)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(&span));
            later.find(|l| l.contains("reconcile started"))?;
            later.any(|l| l.contains("reconcile finished")).then_some(())
        })
        .await;
        assert!(
            reconciled.is_some(),
            "the controller did not reconcile ClientSecret {name} after a nudge"
        );
    }

    /// Everything logged so far.
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&self.logs.lock().unwrap()).into_owned()
    }

    pub fn client_secrets(&self) -> Api<ClientSecret> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn orgs(&self) -> Api<Organization> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub async fn create_org(
        &self,
        name: &str,
        client_id: Option<&str>,
        grace: &str,
        credentials: Option<&str>,
    ) -> Organization {
        self.orgs()
            .create(&PostParams::default(), &org(name, client_id, grace, credentials))
            .await
            .unwrap()
    }

    pub async fn create_cs(&self, name: &str, org: &str, activation: &str, extra: Value) -> ClientSecret {
        self.client_secrets()
            .create(&PostParams::default(), &client_secret(name, org, activation, extra))
            .await
            .unwrap()
    }

    /// Waits (up to `secs`) until the ClientSecret satisfies `pred`; panics with its last state.
    pub async fn wait_cs(
        &self,
        name: &str,
        secs: u64,
        what: &str,
        pred: impl Fn(&ClientSecret) -> bool,
    ) -> ClientSecret {
        let api = self.client_secrets();
        let found = support::wait_until(Duration::from_secs(secs), || async {
            api.get_opt(name).await.ok().flatten().filter(|cs| pred(cs))
        })
        .await;
        match found {
            Some(cs) => cs,
            None => panic!(
                "ClientSecret {name}: {what} did not happen within {secs}s; last state: {:#?}",
                api.get_opt(name).await.ok().flatten().map(|c| c.status)
            ),
        }
    }

    /// Waits until the ClientSecret has this phase.
    pub async fn wait_phase(&self, name: &str, phase: ClientSecretPhase, secs: u64) -> ClientSecret {
        self.wait_cs(name, secs, &format!("phase {phase:?}"), |cs| {
            cs.status.as_ref().and_then(|s| s.phase) == Some(phase)
        })
        .await
    }

    /// Waits until one of the ClientSecret's conditions has this reason.
    pub async fn wait_reason(&self, name: &str, reason: &str) -> ClientSecret {
        self.wait_cs(name, 30, &format!("a condition with reason {reason}"), |cs| {
            cs.status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.reason == reason))
        })
        .await
    }

    /// The plaintext in the Secret of a ClientSecret.
    pub async fn plaintext_of(&self, secret_name: &str) -> String {
        let s = self.secrets().get(secret_name).await.unwrap();
        data(&s, CLIENT_SECRET_KEY)
    }

    /// Every event in the namespace, as JSON text.
    pub async fn events(&self) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        api.list(&ListParams::default()).await.unwrap().items
    }

    /// Waits for an event with `reason` about the object `name`.
    pub async fn wait_event(&self, name: &str, reason: &str) -> Event {
        let found = support::wait_until(Duration::from_secs(20), || async {
            self.events().await.into_iter().find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            })
        })
        .await;
        found.unwrap_or_else(|| panic!("no {reason} event about {name}"))
    }

    /// Asserts that none of `secrets` appears in any ClientSecret (other than in the
    /// annotations of `except_annotations_of`), any Organization, any Event or the log output.
    pub async fn assert_no_plaintext(&self, secrets: &[String], except_annotations_of: Option<&str>) {
        assert!(!secrets.is_empty(), "no secrets to look for");
        let mut haystacks: Vec<(String, String)> = vec![];
        for mut cs in self.client_secrets().list(&ListParams::default()).await.unwrap() {
            if cs.metadata.name.as_deref() == except_annotations_of {
                cs.metadata.annotations = None;
                cs.metadata.managed_fields = None;
            }
            haystacks.push((
                format!("ClientSecret {}", cs.name_any()),
                serde_json::to_string(&cs).unwrap(),
            ));
        }
        for org in self.orgs().list(&ListParams::default()).await.unwrap() {
            haystacks.push((
                format!("Organization {}", org.name_any()),
                serde_json::to_string(&org).unwrap(),
            ));
        }
        for e in self.events().await {
            haystacks.push((format!("Event {}", e.name_any()), serde_json::to_string(&e).unwrap()));
        }
        haystacks.push(("the log output".into(), self.logs()));
        for secret in secrets {
            assert_eq!(secret.len(), 64);
            for (what, text) in &haystacks {
                assert!(!text.contains(secret.as_str()), "a generated secret appears in {what}");
            }
        }
        assert!(
            self.logs().contains(&self.ns),
            "the log capture saw nothing of this namespace"
        );
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop_controller();
    }
}

/// An Organization with a pinned client ID (the Organization controller, which generates them,
/// is not running here).
pub fn org(name: &str, client_id: Option<&str>, grace: &str, credentials: Option<&str>) -> Organization {
    let mut spec = json!({
        "displayName": name,
        "loginMethods": {"passwords": {"secretName": "users"}},
        "secretRotation": {"previousSecretGracePeriod": grace},
    });
    if let Some(id) = client_id {
        spec["clientId"] = json!(id);
    }
    if let Some(c) = credentials {
        spec["credentialsSecretName"] = json!(c);
    }
    serde_json::from_value(json!({
        "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

/// A ClientSecret; `extra` is merged into its spec (and `metadata` into its metadata).
pub fn client_secret(name: &str, org: &str, activation: &str, extra: Value) -> ClientSecret {
    let mut obj = json!({
        "apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret",
        "metadata": {"name": name},
        "spec": {"organizationRef": {"name": org}, "activation": activation},
    });
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            if k == "metadata" {
                obj["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .extend(v.as_object().unwrap().clone());
            } else {
                obj["spec"][k] = v;
            }
        }
    }
    serde_json::from_value(obj).unwrap()
}

/// A string key of a Secret.
pub fn data(secret: &Secret, key: &str) -> String {
    let bytes = &secret.data.as_ref().unwrap()[key].0;
    String::from_utf8(bytes.clone()).unwrap()
}

pub fn phase(cs: &ClientSecret) -> Option<ClientSecretPhase> {
    cs.status.as_ref().and_then(|s| s.phase)
}

pub fn fp(cs: &ClientSecret) -> String {
    cs.status.as_ref().and_then(|s| s.fingerprint.clone()).unwrap()
}

pub fn condition<'a>(
    cs: &'a ClientSecret,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    cs.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("{} has no {type_} condition", cs.name_any()))
}

pub async fn annotate(api: &Api<ClientSecret>, name: &str, key: &str, value: &str) {
    let patch = json!({"metadata": {"annotations": {key: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Watches the namespace from now on and records every violation of the invariants, in the
/// API server's order of events: at most one ClientSecret per Organization whose status says
/// Active; Revoked never left; a ClientSecret's fingerprint and its Secret's `client_secret`
/// never change once set; the listed foreign Secrets never change.
pub struct Invariants {
    pub violations: Arc<Mutex<Vec<String>>>,
    /// Every `client_secret` value seen in a ClientSecret's Secret (credentials Secrets only
    /// ever hold copies of these).
    pub secrets: Arc<Mutex<BTreeMap<String, String>>>,
    /// The highest number of simultaneously Active secrets seen per organization.
    pub max_active: Arc<Mutex<HashMap<String, usize>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Invariants {
    pub async fn watch(client: &Client, ns: &str, foreign: &[&str]) -> Invariants {
        let mut inv = Invariants {
            violations: Arc::default(),
            secrets: Arc::default(),
            max_active: Arc::default(),
            tasks: vec![],
        };
        let cs_api: Api<ClientSecret> = Api::namespaced(client.clone(), ns);
        let sec_api: Api<Secret> = Api::namespaced(client.clone(), ns);
        let (cs_rv, sec_rv) = (current_rv(&cs_api).await, current_rv(&sec_api).await);
        let (violations, max_active) = (inv.violations.clone(), inv.max_active.clone());
        let t1 = tokio::spawn(watch_client_secrets(cs_api, cs_rv, violations, max_active));
        let (violations, secrets) = (inv.violations.clone(), inv.secrets.clone());
        let foreign: Vec<String> = foreign.iter().map(|s| s.to_string()).collect();
        let t2 = tokio::spawn(watch_secrets(sec_api, sec_rv, violations, secrets, foreign));
        inv.tasks = vec![t1, t2];
        inv
    }

    pub fn assert_clean(&self) {
        for t in &self.tasks {
            assert!(!t.is_finished(), "an invariant watch stopped early");
        }
        let v = self.violations.lock().unwrap();
        assert!(v.is_empty(), "invariant violations:\n{}", v.join("\n"));
    }

    pub fn secret_values(&self) -> Vec<String> {
        self.secrets.lock().unwrap().values().cloned().collect()
    }
}

impl Drop for Invariants {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The resourceVersion to watch `api` from: now.
pub async fn current_rv<K>(api: &Api<K>) -> String
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    list.metadata.resource_version.unwrap()
}

/// Follows every change of `api` from `rv` on, in the API server's order, forever.
pub async fn follow<K>(api: Api<K>, mut rv: String, mut on_event: impl FnMut(&str, K))
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    loop {
        let mut stream = api
            .watch(&WatchParams::default().timeout(240), &rv)
            .await
            .unwrap()
            .boxed();
        while let Some(event) = stream.try_next().await.unwrap() {
            let (obj, kind) = match event {
                WatchEvent::Added(o) => (o, "added"),
                WatchEvent::Modified(o) => (o, "modified"),
                WatchEvent::Deleted(o) => (o, "deleted"),
                WatchEvent::Bookmark(b) => {
                    rv = b.metadata.resource_version;
                    continue;
                }
                WatchEvent::Error(e) => panic!("watch failed: {e:?}"),
            };
            rv = obj.meta().resource_version.clone().unwrap();
            on_event(kind, obj);
        }
    }
}

/// One ClientSecret as the invariant watch tracks it: organization, phase, fingerprint.
type Tracked = (String, Option<ClientSecretPhase>, Option<String>);

async fn watch_client_secrets(
    api: Api<ClientSecret>,
    rv: String,
    violations: Arc<Mutex<Vec<String>>>,
    max_active: Arc<Mutex<HashMap<String, usize>>>,
) {
    let mut state: HashMap<String, Tracked> = HashMap::new();
    follow(api, rv, move |kind, cs: ClientSecret| {
        let (name, rv) = (cs.name_any(), cs.resource_version().unwrap_or_default());
        let fingerprint = cs.status.as_ref().and_then(|s| s.fingerprint.clone());
        let now = (cs.spec.organization_ref.name.clone(), phase(&cs), fingerprint);
        let mut v = violations.lock().unwrap();
        if let Some((_, old_phase, old_fp)) = state.get(&name) {
            if *old_phase == Some(ClientSecretPhase::Revoked) && now.1 != Some(ClientSecretPhase::Revoked) {
                v.push(format!("{name} left Revoked for {:?} (rv {rv})", now.1));
            }
            if old_fp.is_some() && now.2.is_some() && *old_fp != now.2 {
                v.push(format!("{name} changed its fingerprint (rv {rv})"));
            }
        }
        if kind == "deleted" {
            state.remove(&name);
        } else {
            state.insert(name, now);
        }
        let mut per_org: HashMap<&str, usize> = HashMap::new();
        for (org, p, _) in state.values() {
            if *p == Some(ClientSecretPhase::Active) {
                *per_org.entry(org).or_default() += 1;
            }
        }
        let mut max = max_active.lock().unwrap();
        for (org, n) in per_org {
            let m = max.entry(org.to_string()).or_default();
            *m = (*m).max(n);
            if n > 1 {
                v.push(format!("Organization {org} had {n} Active ClientSecrets at rv {rv}"));
            }
        }
    })
    .await;
}

async fn watch_secrets(
    api: Api<Secret>,
    rv: String,
    violations: Arc<Mutex<Vec<String>>>,
    secrets: Arc<Mutex<BTreeMap<String, String>>>,
    foreign: Vec<String>,
) {
    // uid → the first client_secret seen
    let mut seen: HashMap<String, String> = HashMap::new();
    follow(api, rv, move |kind, s: Secret| {
        let name = s.name_any();
        let mut v = violations.lock().unwrap();
        if foreign.contains(&name) && kind != "added" {
            v.push(format!("the foreign Secret {name} was {kind}"));
        }
        let managed = s.labels().contains_key(MANAGED_BY_LABEL);
        let credentials = s.labels().contains_key("centralauth.io/credentials");
        let value = s
            .data
            .as_ref()
            .and_then(|d| d.get(CLIENT_SECRET_KEY))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned());
        if let (true, false, Some(value)) = (managed, credentials, value) {
            let uid = s.uid().unwrap();
            let first = seen.entry(uid.clone()).or_insert_with(|| value.clone());
            if *first != value {
                v.push(format!(
                    "the client_secret of Secret {name} changed after it was written"
                ));
            }
            secrets.lock().unwrap().insert(format!("{name}/{uid}"), value);
        }
    })
    .await;
}
