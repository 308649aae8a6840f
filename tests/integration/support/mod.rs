//! Test support: a real kube-apiserver (started once per test run by `tests/testenv/testenv.sh`,
//! or reused when already up), the CRDs installed from `crds/`, and one namespace per test so
//! tests run in parallel without seeing each other.

#![allow(dead_code)]

pub mod client_secret;
pub mod hydra;
pub mod oauth;
pub mod pki;
pub mod process;
pub mod redis_server;
pub mod smtp;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::{Client, Config};

/// Root of the checkout.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of the kubeconfig of the test control plane, starting it on first use in this process.
pub fn kubeconfig_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let script = repo_root().join("tests/testenv/testenv.sh");
        let out = std::process::Command::new(&script)
            .arg("up")
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "testenv.sh up failed:\n{stdout}");
        let last = stdout.lines().last().unwrap_or_default();
        let path = last
            .strip_prefix("export KUBECONFIG=")
            .unwrap_or_else(|| panic!("testenv.sh up did not end with `export KUBECONFIG=…`: {last:?}"));
        PathBuf::from(path)
    })
}

/// A client for the test control plane as cluster admin. Each test gets its own client: a
/// client's connection pool belongs to the tokio runtime that created it.
pub async fn client() -> Client {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(path).expect("read the testenv kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig of the testenv is valid");
    let client = Client::try_from(config).expect("build a kube client");
    install_crds(&client).await;
    client
}

/// Server-side applies every file of `crds/` and waits until each CRD is Established.
/// Idempotent, cheap after the first call.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("centralauth-tests").force();
    for file in crd_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let crd: CustomResourceDefinition = serde_norway::from_str(&text).unwrap();
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("the API server refused {}: {e}", file.display()));
        wait_until(Duration::from_secs(30), || async {
            let crd = crds.get(&name).await.ok()?;
            let conds = crd.status?.conditions?;
            conds
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("CRD {name} did not become Established"));
    }
}

/// The YAML files under `crds/`, sorted.
pub fn crd_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Creates a fresh namespace named after the test and returns its name.
pub async fn namespace(client: &Client, test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let slug: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let name = format!("{}-{:x}{n}", slug.trim_matches('-'), nanos % 0xfffff);
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some([("centralauth.io/test".to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create test namespace");
    name
}

/// Polls `probe` every 100 ms until it returns `Some`, or `timeout` passes.
pub async fn wait_until<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An API handle for whatever kind `gvk` is, in `namespace` when the kind is namespaced.
pub async fn dynamic_api(
    client: &Client,
    gvk: &GroupVersionKind,
    namespace: &str,
) -> (Api<DynamicObject>, ApiResource) {
    let discovery = Discovery::new(client.clone()).run().await.expect("API discovery");
    let (ar, caps): (ApiResource, ApiCapabilities) = discovery
        .resolve_gvk(gvk)
        .unwrap_or_else(|| panic!("the API server does not serve {gvk:?}"));
    let api = match caps.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, &ar),
        Scope::Cluster => Api::all_with(client.clone(), &ar),
    };
    (api, ar)
}

/// Parses a multi-document YAML file into objects.
pub fn yaml_documents(path: &Path) -> Vec<DynamicObject> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .filter_map(|doc| {
            let value: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            (!value.is_null()).then(|| serde_json::from_value(value).unwrap())
        })
        .collect()
}

/// Installs rustls' ring provider as the process default (reqwest is built without one, like
/// kube, so the test binary carries a single crypto backend).
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A free TCP port on loopback for a server the test starts (see [`redis_server::free_port`]).
pub fn free_port() -> u16 {
    redis_server::free_port()
}
