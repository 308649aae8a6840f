//! Benchmark of the ClientSecret controller against a real API server (not a test: it prints
//! figures, it asserts nothing about time). Run it with `tests/bench/client-secrets.sh`.
//!
//! 1. Baseline: bare kube-rs creates N Secrets (the same four keys, 64-character secrets) with
//!    C requests in flight.
//! 2. The operator binary (a subprocess) runs; N ClientSecrets are created with the same C in
//!    flight, spread over O Organizations; measured: time from the first create until all N
//!    Secrets exist (seen by a watch), and until all N statuses carry their fingerprint.
//! 3. Activation latency, from the `centralauth.io/activate` annotation landing (the PATCH
//!    returned) to the watch seeing phase Active: first one at a time (idle operator), then in
//!    bursts (one activation per organization at once, each revoking the previous one).
//!
//! 4. API requests per ClientSecret: the API server's own `apiserver_request_total` counters
//!    (by verb, resource and subresource), read before and after steps 2 and 3, minus the
//!    benchmark's own requests, divided by the number of ClientSecrets (activations).
//!
//! Environment: `KUBECONFIG` (the test control plane), `BENCH_SECRETS` (1000), `BENCH_ORGS`
//! (100), `BENCH_CONCURRENCY` (50), `BENCH_SERIAL` (50 one-at-a-time activations),
//! `BENCH_OPERATOR` (path of the operator binary).

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use centralauth_operator::controller::client_secret::generate_secret;
use centralauth_operator::crd::{ClientSecret, ClientSecretPhase, Organization};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = env_usize("BENCH_SECRETS", 1000);
    let orgs = env_usize("BENCH_ORGS", 100).max(1);
    let concurrency = env_usize("BENCH_CONCURRENCY", 50);
    let serial = env_usize("BENCH_SERIAL", 50);
    let client = Client::try_default().await?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    println!("ClientSecret benchmark: {n} secrets over {orgs} organizations, {concurrency} requests in flight");

    let base_ns = namespace(&client, &format!("bench-baseline-{stamp}")).await?;
    let baseline = bare_secrets(&client, &base_ns, n, concurrency).await?;
    println!("bare kube-rs: {n} Secrets created in {:.2} s", baseline.as_secs_f64());

    let ns = namespace(&client, &format!("bench-operator-{stamp}")).await?;
    let (mut operator, admin) = start_operator()?;
    wait_ready(&mut operator, admin).await?;
    create_orgs(&client, &ns, orgs).await?;
    let watch = PhaseWatch::start(&client, &ns).await?;
    let before = ApiCounts::read(&client).await?;
    let (secrets_done, statuses_done) = create_client_secrets(&client, &ns, n, orgs, concurrency, &watch).await?;
    let created = ApiCounts::settled(&client).await?;
    println!(
        "operator: {n} Secrets exist {:.2} s after the first ClientSecret was created ({:.1}× bare kube-rs); all {n} statuses carry their fingerprint after {:.2} s",
        secrets_done.as_secs_f64(),
        secrets_done.as_secs_f64() / baseline.as_secs_f64(),
        statuses_done.as_secs_f64()
    );

    created.minus(&before).minus_own("POST clientsecrets", n).print(
        &format!("API requests per ClientSecret, creation to Pending with its status (the operator's, over {n})"),
        n,
    );

    let names = pending_by_org(&client, &ns).await?;
    let before_activations = ApiCounts::read(&client).await?;
    let mut one_at_a_time = vec![];
    for (org, list) in names.iter().take(serial.min(names.len())) {
        let _ = org;
        one_at_a_time.push(activate(&client, &ns, &list[0], &watch).await?);
    }
    report("activation, one at a time", &mut one_at_a_time);
    let mut bursts = vec![];
    let rounds = names.values().map(Vec::len).min().unwrap_or(0);
    for round in 1..rounds {
        let batch: Vec<&String> = names.values().map(|l| &l[round]).collect();
        let latencies =
            futures::future::try_join_all(batch.into_iter().map(|name| activate(&client, &ns, name, &watch))).await?;
        bursts.extend(latencies);
    }
    report(
        &format!(
            "activation, {} at once (one per organization, each revoking the previous)",
            names.len()
        ),
        &mut bursts,
    );
    let activations = one_at_a_time.len() + bursts.len();
    ApiCounts::settled(&client)
        .await?
        .minus(&before_activations)
        .minus_own("PATCH clientsecrets", activations)
        .minus_own("LIST clientsecrets", 1)
        .print(
            &format!("API requests per activation (the operator's, over {activations}; each but the first of an organization revokes one)"),
            activations,
        );

    operator.start_kill()?;
    operator.wait().await?;
    for ns in [&base_ns, &ns] {
        // The operator is gone, so the ClientSecrets' finalizers are lifted by hand.
        cleanup(&client, ns).await?;
    }
    Ok(())
}

async fn namespace(client: &Client, name: &str) -> Result<String, Error> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(name.to_string())
}

/// The baseline: what creating the same number of equally shaped Secrets costs by itself.
async fn bare_secrets(client: &Client, ns: &str, n: usize, concurrency: usize) -> Result<Duration, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let value = generate_secret()?;
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(format!("bare-{i:04}")),
                        ..Default::default()
                    },
                    string_data: Some(BTreeMap::from([
                        ("client_id".to_string(), "bench-client-0000".to_string()),
                        ("client_secret".to_string(), value.expose().to_string()),
                        (
                            "issuer".to_string(),
                            "https://auth.bench/o/bench-client-0000".to_string(),
                        ),
                        ("fingerprint".to_string(), value.fingerprint()),
                    ])),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &secret).await?;
                Ok::<(), Error>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(start.elapsed())
}

/// Starts the operator binary; returns it and its admin port.
fn start_operator() -> Result<(tokio::process::Child, u16), Error> {
    let bin = std::env::var("BENCH_OPERATOR").unwrap_or_else(|_| "target/debug/centralauth-operator".into());
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
    };
    let admin = free()?;
    let child = tokio::process::Command::new(&bin)
        .args(["run", "--base-domain", "auth.bench"])
        .arg(format!("--listen=127.0.0.1:{}", free()?))
        .arg(format!("--admin-listen=127.0.0.1:{admin}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {bin}: {e}"))?;
    Ok((child, admin))
}

/// Waits for the operator's `/readyz` (its caches listed), plus a second for the controller's
/// own watches, before the clock starts.
async fn wait_ready(operator: &mut tokio::process::Child, admin: u16) -> Result<(), Error> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = http.get(format!("http://127.0.0.1:{admin}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Ok(());
        }
        if let Some(exit) = operator.try_wait()? {
            return Err(format!("the operator exited ({exit}) before it was ready").into());
        }
        if Instant::now() > deadline {
            return Err("the operator did not become ready within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_orgs(client: &Client, ns: &str, orgs: usize) -> Result<(), Error> {
    let api: Api<Organization> = Api::namespaced(client.clone(), ns);
    for i in 0..orgs {
        let org: Organization = serde_json::from_value(json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization",
            "metadata": {"name": format!("org-{i:03}")},
            "spec": {
                "displayName": format!("Org {i}"), "clientId": format!("bench-client-{i:04}"),
                "loginMethods": {"passwords": {"secretName": "users"}}
            }
        }))?;
        api.create(&PostParams::default(), &org).await?;
    }
    Ok(())
}

/// A watch on the namespace's ClientSecrets that records when each one was first seen with a
/// fingerprint and with phase Active, and a count of the owned Secrets created.
#[derive(Clone, Default)]
struct PhaseWatch {
    fingerprinted: Arc<Mutex<HashMap<String, (Instant, String)>>>,
    active: Arc<Mutex<HashMap<String, Instant>>>,
    secrets: Arc<Mutex<HashMap<String, Instant>>>,
}

impl PhaseWatch {
    async fn start(client: &Client, ns: &str) -> Result<PhaseWatch, Error> {
        let w = PhaseWatch::default();
        let css: Api<ClientSecret> = Api::namespaced(client.clone(), ns);
        let me = w.clone();
        tokio::spawn(async move {
            let mut events = watcher(css, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(cs) = events.next().await {
                if let Ok(cs) = cs {
                    me.saw_client_secret(&cs);
                }
            }
        });
        let secrets: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), ns);
        let me = w.clone();
        let cfg = watcher::Config::default().labels("centralauth.io/client-secret");
        tokio::spawn(async move {
            let mut events = watcher(secrets, cfg).default_backoff().applied_objects().boxed();
            while let Some(secret) = events.next().await {
                if let Ok(secret) = secret {
                    me.secrets
                        .lock()
                        .unwrap()
                        .entry(secret.name_any())
                        .or_insert_with(Instant::now);
                }
            }
        });
        // Both watches list first: start the clock only once they run.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(w)
    }

    fn saw_client_secret(&self, cs: &ClientSecret) {
        let now = Instant::now();
        let status = cs.status.clone().unwrap_or_default();
        if let Some(fp) = status.fingerprint {
            self.fingerprinted
                .lock()
                .unwrap()
                .entry(cs.name_any())
                .or_insert((now, fp));
        }
        if status.phase == Some(ClientSecretPhase::Active) {
            self.active.lock().unwrap().entry(cs.name_any()).or_insert(now);
        }
    }
}

async fn create_client_secrets(
    client: &Client,
    ns: &str,
    n: usize,
    orgs: usize,
    concurrency: usize,
    watch: &PhaseWatch,
) -> Result<(Duration, Duration), Error> {
    let api: Api<ClientSecret> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let cs: ClientSecret = serde_json::from_value(json!({
                    "apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret",
                    "metadata": {"name": format!("cs-{i:04}")},
                    "spec": {"organizationRef": {"name": format!("org-{:03}", i % orgs)}, "activation": "Manual"}
                }))?;
                api.create(&PostParams::default(), &cs).await?;
                Ok::<(), Error>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let secrets = watch.secrets.lock().unwrap().clone();
        let statuses = watch.fingerprinted.lock().unwrap().values().map(|(t, _)| *t).max();
        if secrets.len() >= n && watch.fingerprinted.lock().unwrap().len() >= n {
            let last_secret = secrets.into_values().max().unwrap_or(start);
            return Ok((last_secret - start, statuses.unwrap_or(start) - start));
        }
        if Instant::now() > deadline {
            return Err(format!("only {} of {n} Secrets appeared within 10 minutes", secrets.len()).into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Pending ClientSecrets of each organization, in name order.
async fn pending_by_org(client: &Client, ns: &str) -> Result<BTreeMap<String, Vec<String>>, Error> {
    let api: Api<ClientSecret> = Api::namespaced(client.clone(), ns);
    let mut by_org: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for cs in api.list(&ListParams::default()).await? {
        by_org
            .entry(cs.spec.organization_ref.name.clone())
            .or_default()
            .push(cs.name_any());
    }
    by_org.values_mut().for_each(|v| v.sort());
    Ok(by_org)
}

/// Annotates `name` with its fingerprint; the time from the PATCH returning to the watch
/// seeing it Active.
async fn activate(client: &Client, ns: &str, name: &str, watch: &PhaseWatch) -> Result<Duration, Error> {
    let fp = watch.fingerprinted.lock().unwrap()[name].1.clone();
    let api: Api<ClientSecret> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"annotations": {"centralauth.io/activate": fp}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    let landed = Instant::now();
    let deadline = landed + Duration::from_secs(120);
    loop {
        if let Some(at) = watch.active.lock().unwrap().get(name) {
            return Ok(at.saturating_duration_since(landed));
        }
        if Instant::now() > deadline {
            return Err(format!("{name} was not Active within 2 minutes").into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The API server's request counters (`apiserver_request_total`), summed per "VERB
/// resource[/subresource]". Watches and lease renewals are left out (they say nothing per
/// object).
#[derive(Clone, Debug, Default)]
struct ApiCounts(BTreeMap<String, f64>);

impl ApiCounts {
    async fn read(client: &Client) -> Result<ApiCounts, Error> {
        let req = axum::http::Request::get("/metrics").body(Vec::new())?;
        let text = client.request_text(req).await?;
        let mut counts = BTreeMap::new();
        for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
            let label = |name: &str| {
                let key = format!("{name}=\"");
                line.split(&key)
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or_default()
                    .to_string()
            };
            let (verb, resource, sub) = (label("verb"), label("resource"), label("subresource"));
            // Lease renewals run on their own clock, whatever the operator is doing.
            if verb == "WATCH" || resource.is_empty() || resource == "leases" {
                continue;
            }
            let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let key = if sub.is_empty() {
                format!("{verb} {resource}")
            } else {
                format!("{verb} {resource}/{sub}")
            };
            *counts.entry(key).or_insert(0.0) += value;
        }
        Ok(ApiCounts(counts))
    }

    /// The counters once the operator stopped writing (unchanged over one second, the work it
    /// triggers by its own writes included).
    async fn settled(client: &Client) -> Result<ApiCounts, Error> {
        let mut last = ApiCounts::read(client).await?;
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = ApiCounts::read(client).await?;
            // Reading /metrics is not counted (no resource), so a quiet operator leaves all equal.
            if now.0 == last.0 {
                return Ok(now);
            }
            last = now;
        }
        Ok(last)
    }

    fn minus(mut self, before: &ApiCounts) -> ApiCounts {
        for (k, v) in &before.0 {
            *self.0.entry(k.clone()).or_insert(0.0) -= v;
        }
        self
    }

    fn minus_own(mut self, key: &str, n: usize) -> ApiCounts {
        *self.0.entry(key.to_string()).or_insert(0.0) -= n as f64;
        self
    }

    fn print(&self, what: &str, per: usize) {
        let per = per.max(1) as f64;
        let rows: Vec<(&String, f64)> = self
            .0
            .iter()
            .map(|(k, v)| (k, v / per))
            .filter(|(_, v)| v.abs() >= 0.005)
            .collect();
        let writes: f64 = rows
            .iter()
            .filter(|(k, _)| !k.starts_with("GET ") && !k.starts_with("LIST "))
            .map(|(_, v)| v)
            .sum();
        let total: f64 = rows.iter().map(|(_, v)| v).sum();
        println!("{what}: {total:.2} requests, {writes:.2} writes");
        for (k, v) in rows {
            println!("    {v:>6.2}  {k}");
        }
    }
}

fn report(what: &str, samples: &mut [Duration]) {
    if samples.is_empty() {
        println!("{what}: no samples");
        return;
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "{what}: {} samples, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        samples.len(),
        pct(0.5),
        pct(0.99),
        samples[samples.len() - 1].as_secs_f64() * 1000.0
    );
}

async fn cleanup(client: &Client, ns: &str) -> Result<(), Error> {
    let api: Api<ClientSecret> = Api::namespaced(client.clone(), ns);
    for cs in api.list(&ListParams::default()).await? {
        let patch = json!({"metadata": {"finalizers": null}});
        api.patch(&cs.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await?;
    Ok(())
}
