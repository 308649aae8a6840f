//! The Helm chart: lint, render, schema, drift against `crds/` and `config/`, and a real
//! `helm install` into the test control plane.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use crate::support;
use crate::support::process::{CHART, helm};

const HA_VALUES: &str = "charts/centralauth-operator/ci/ha-values.yaml";

/// The documents of a multi-document YAML string (empty ones dropped).
fn documents(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .filter_map(|doc| {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap();
            (!value.is_null()).then_some(value)
        })
        .collect()
}

async fn template(extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", "ca", CHART, "--namespace", "centralauth"];
    args.extend_from_slice(extra);
    let (ok, out, err) = helm(&args).await;
    assert!(ok, "helm template {extra:?} failed: {err}");
    documents(&out)
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter().map(|d| d["kind"].as_str().unwrap().to_string()).collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

fn env<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("env {name} missing"))
}

#[tokio::test]
async fn chart_lints_with_default_and_ha_values() {
    for extra in [vec![], vec!["-f", HA_VALUES]] {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend(extra.iter().copied());
        let (ok, out, err) = helm(&args).await;
        assert!(ok, "helm lint {extra:?} failed:\n{out}\n{err}");
    }
}

#[tokio::test]
async fn default_values_render_a_hardened_single_replica_install() {
    let docs = template(&[]).await;
    let expected: BTreeSet<String> = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "CustomResourceDefinition",
    ]
    .map(String::from)
    .into();
    assert_eq!(kinds(&docs), expected);

    let deployment = find(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 1);
    // Exactly what tests/image/build.sh tags: an image built or loaded locally runs as is.
    assert_eq!(
        container["image"],
        format!("localhost/centralauth-operator:{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(container["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(
        env(deployment, "POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env(deployment, "POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(env(deployment, "CENTRALAUTH_STORE")["value"], "memory");
    assert_eq!(env(deployment, "CENTRALAUTH_BASE_DOMAIN")["value"], "auth.example.com");
    assert_eq!(
        env(deployment, "CENTRALAUTH_TRUSTED_PROXIES")["value"],
        "",
        "no proxy is trusted by default"
    );
    // The signing-keys Secret and the lease the Role grants are the ones the operator uses.
    let role = find(&docs, "Role");
    let signing_keys = env(deployment, "CENTRALAUTH_SIGNING_KEY_SECRET")["value"].clone();
    assert_eq!(role["rules"][0]["resources"], json!(["secrets"]));
    assert_eq!(role["rules"][0]["resourceNames"], json!([signing_keys]));
    let lease_name = env(deployment, "CENTRALAUTH_LEASE_NAME")["value"].clone();
    assert_eq!(role["rules"][2]["resources"], json!(["leases"]));
    assert_eq!(role["rules"][2]["resourceNames"], json!([lease_name]));

    let ports: Vec<&str> = find(&docs, "Service")["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(ports, ["http", "admin"]);
}

#[tokio::test]
async fn ha_values_render_replicas_redis_ingress_and_service_monitor() {
    let docs = template(&["-f", HA_VALUES]).await;
    for kind in ["Ingress", "ServiceMonitor", "PodDisruptionBudget", "NetworkPolicy"] {
        find(&docs, kind);
    }
    let deployment = find(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert_eq!(
        env(deployment, "CENTRALAUTH_STORE")["value"],
        "redis://redis.centralauth.svc:6379/0"
    );
    assert_eq!(
        env(deployment, "CENTRALAUTH_STORE_KEY_PREFIX")["value"],
        "centralauth/ca-centralauth-operator:",
        "each release keeps its own keys in a shared Redis"
    );
    let hosts: Vec<&str> = find(&docs, "Ingress")["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["auth.example.com", "*.auth.example.com", "login.example.org"]);
    assert_eq!(
        env(deployment, "CENTRALAUTH_TRUSTED_PROXIES")["value"],
        "10.0.0.0/8",
        "behind its Ingress, the HA install trusts the controller's addresses"
    );
    assert_eq!(
        env(deployment, "CENTRALAUTH_CLIENT_ADDRESS_HEADER")["value"],
        "x-forwarded-for"
    );
    let two = template(&["--set", "trustedProxies={10.0.0.0/8,fd00::/8}"]).await;
    assert_eq!(
        env(find(&two, "Deployment"), "CENTRALAUTH_TRUSTED_PROXIES")["value"],
        "10.0.0.0/8,fd00::/8"
    );
    assert_eq!(find(&docs, "ServiceMonitor")["spec"]["endpoints"][0]["port"], "admin");

    // Restricted to namespaces: Roles there, no ClusterRole at all.
    let docs = template(&["--set", "watchNamespaces={team-a,team-b}"]).await;
    assert!(!kinds(&docs).contains("ClusterRole"));
    let role_namespaces: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "Role" && !d["metadata"]["name"].as_str().unwrap().ends_with("own-namespace"))
        .map(|d| d["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(role_namespaces, ["team-a", "team-b"].into());
    assert_eq!(
        env(find(&docs, "Deployment"), "CENTRALAUTH_WATCH_NAMESPACES")["value"],
        "team-a,team-b"
    );
}

#[tokio::test]
async fn redis_url_from_a_secret_with_a_ca_and_a_key_prefix() {
    let docs = template(&[
        "--set",
        "replicas=2",
        "--set",
        "store.type=redis",
        "--set",
        "store.redis.existingSecret.name=redis-url",
        "--set",
        "store.redis.keyPrefix=prod:",
        "--set",
        "store.redis.caSecret.name=redis-ca",
        "--set",
        "store.redis.caSecret.key=tls.ca",
    ])
    .await;
    let deployment = find(&docs, "Deployment");
    let store = env(deployment, "CENTRALAUTH_STORE");
    assert_eq!(
        store["valueFrom"]["secretKeyRef"],
        json!({"name": "redis-url", "key": "url"})
    );
    assert!(store.get("value").is_none(), "the URL is not in the manifest");
    assert_eq!(env(deployment, "CENTRALAUTH_STORE_KEY_PREFIX")["value"], "prod:");
    let ca_file = env(deployment, "CENTRALAUTH_STORE_CA_FILE")["value"].as_str().unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "redis-ca")
        .expect("the CA is mounted");
    assert_eq!(format!("{}/ca.crt", mount["mountPath"].as_str().unwrap()), ca_file);
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "redis-ca")
        .unwrap();
    assert_eq!(
        volume["secret"],
        json!({"secretName": "redis-ca", "items": [{"key": "tls.ca", "path": "ca.crt"}]})
    );
}

#[tokio::test]
async fn an_image_pushed_to_your_registry_is_set_by_tag_or_by_digest() {
    let repository = "registry.example.com:5000/platform/centralauth-operator";
    let image = |docs: &[Value]| find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"].clone();
    let by_tag = template(&[
        "--set",
        &format!("image.repository={repository}"),
        "--set",
        "image.tag=0.1.0-rc.1",
    ])
    .await;
    assert_eq!(image(&by_tag), format!("{repository}:0.1.0-rc.1"));
    let digest = format!("sha256:{}", "ab".repeat(32));
    let by_digest = template(&[
        "--set",
        &format!("image.repository={repository}"),
        "--set",
        "image.tag=ignored",
        "--set",
        &format!("image.digest={digest}"),
    ])
    .await;
    assert_eq!(image(&by_digest), format!("{repository}@{digest}"));
}

#[tokio::test]
async fn the_values_schema_refuses_bad_values_with_clear_messages() {
    let cases: [(&[&str], &str); 14] = [
        (&["--set", "trustedProxies={10.0.0.0/33}"], "at '/trustedProxies/0'"),
        (&["--set", "trustedProxies={ingress-nginx}"], "at '/trustedProxies/0'"),
        (&["--set", "clientAddressHeader=x-real-ip"], "at '/clientAddressHeader'"),
        (&["--set", "replicas=two"], "at '/replicas': got string, want integer"),
        (&["--set", "logFormat=xml"], "at '/logFormat'"),
        (&["--set", "baseDomain=https://auth.example.com"], "at '/baseDomain'"),
        (&["--set", "watchNamespaces={Team_A}"], "at '/watchNamespaces/0'"),
        (&["--set", "replica=3"], "additional properties 'replica' not allowed"),
        (
            &["--set", "replicas=3"],
            "replicas > 1 needs store.type: redis (with store.redis.url or store.redis.existingSecret)",
        ),
        (
            &["--set", "store.redis.keyPrefix=team a:"],
            "at '/store/redis/keyPrefix'",
        ),
        (
            &[
                "--set",
                "image.repository=registry.example.com/centralauth-operator:0.1.0",
            ],
            "at '/image/repository'",
        ),
        (&["--set", "image.tag=0.1.0 beta"], "at '/image/tag'"),
        (&["--set", "image.digest=sha256:abc"], "at '/image/digest'"),
        (
            &[
                "--set",
                "store.type=redis",
                "--set",
                "store.redis.url=redis://cache:6379/0",
                "--set",
                "store.redis.caSecret.name=ca",
            ],
            "store.redis.caSecret is for TLS: use a rediss:// URL",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["template", "ca", CHART];
        all.extend_from_slice(args);
        let (ok, _, err) = helm(&all).await;
        assert!(!ok, "{args:?} was accepted");
        assert!(err.contains(message), "{args:?}: expected {message:?} in:\n{err}");
    }
}

#[tokio::test]
async fn chart_crds_do_not_drift_from_the_crds_directory() {
    let chart_dir = support::repo_root().join(CHART).join("files/crds");
    for file in support::crd_files() {
        let copy = chart_dir.join(file.file_name().unwrap());
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            std::fs::read_to_string(&copy).unwrap_or_default(),
            "{} differs from {}: run `cp crds/*.yaml {CHART}/files/crds/`",
            copy.display(),
            file.display()
        );
    }
    let copies = std::fs::read_dir(&chart_dir).unwrap().count();
    assert_eq!(
        copies,
        support::crd_files().len(),
        "{} has extra files",
        chart_dir.display()
    );

    // What the chart renders is exactly crds/, plus the keep policy.
    let rendered: Vec<Value> = template(&[])
        .await
        .into_iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(rendered.len(), support::crd_files().len());
    for file in support::crd_files() {
        let mut expected = documents(&std::fs::read_to_string(&file).unwrap()).remove(0);
        expected["metadata"]["annotations"] = json!({"helm.sh/resource-policy": "keep"});
        let name = &expected["metadata"]["name"];
        let got = rendered.iter().find(|d| &d["metadata"]["name"] == name).unwrap();
        assert!(
            numbers_as_floats(got.clone()) == numbers_as_floats(expected.clone()),
            "the chart renders {name} differently from {}",
            file.display()
        );
    }
    let without = template(&["--set", "crds.install=false"]).await;
    assert!(!kinds(&without).contains("CustomResourceDefinition"));
}

/// `65535` and `65535.0` are the same number in YAML; Helm's round trip may write either.
fn numbers_as_floats(value: Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, numbers_as_floats(v))).collect()),
        other => other,
    }
}

#[test]
fn config_manifests_are_what_the_chart_renders_with_default_values() {
    let out = std::process::Command::new(support::repo_root().join("config/generate.sh"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "config/ drifted from the chart (run config/generate.sh):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A stand-in for the Prometheus Operator's ServiceMonitor CRD (the real one is not in the test
/// control plane): same group, version and kind, schema left open.
async fn install_service_monitor_crd(client: &kube::Client) {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {"kind": "ServiceMonitor", "listKind": "ServiceMonitorList", "plural": "servicemonitors", "singular": "servicemonitor"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        "servicemonitors.monitoring.coreos.com",
        &PatchParams::apply("centralauth-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    support::wait_until(Duration::from_secs(30), || async {
        let crd = api.get("servicemonitors.monitoring.coreos.com").await.ok()?;
        let established = crd
            .status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        established.then_some(())
    })
    .await
    .expect("the ServiceMonitor CRD became Established");
}

/// Lets the release own the CRDs that the test helper installed, as Helm's adoption rules
/// require (the CRDs are cluster-wide and shared by every test).
async fn let_release_adopt_crds(client: &kube::Client, release: &str, namespace: &str) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for file in support::crd_files() {
        let name = documents(&std::fs::read_to_string(&file).unwrap())[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let patch = json!({"metadata": {
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace}
        }});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn helm_install_with_ha_values_creates_every_object_and_uninstall_keeps_the_crds() {
    let client = support::client().await;
    let ns = support::namespace(&client, "helm-install").await;
    install_service_monitor_crd(&client).await;
    let release = ns.as_str();
    let_release_adopt_crds(&client, release, &ns).await;

    let (ok, out, err) = helm(&[
        "install",
        release,
        CHART,
        "--namespace",
        &ns,
        "-f",
        HA_VALUES,
        "--wait",
        "--timeout",
        "180s",
    ])
    .await;
    assert!(ok, "helm install failed:\n{out}\n{err}");

    let (ok, manifest, err) = helm(&["get", "manifest", release, "--namespace", &ns]).await;
    assert!(ok, "{err}");
    let objects = documents(&manifest);
    let expected: BTreeSet<String> = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "CustomResourceDefinition",
        "Ingress",
        "ServiceMonitor",
    ]
    .map(String::from)
    .into();
    assert_eq!(kinds(&objects), expected);
    for object in &objects {
        let (group, version) = match object["apiVersion"].as_str().unwrap().split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", object["apiVersion"].as_str().unwrap()),
        };
        let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap());
        let object_ns = object["metadata"]["namespace"].as_str().unwrap_or(&ns);
        let (api, _) = support::dynamic_api(&client, &gvk, object_ns).await;
        let name = object["metadata"]["name"].as_str().unwrap();
        let found: Option<DynamicObject> = api.get_opt(name).await.unwrap();
        assert!(found.is_some(), "{gvk:?} {name} was not created");
    }

    // --wait returned: the three replicas are scheduled (on the KWOK node) and available.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), &ns);
    let name = format!("{release}-centralauth-operator");
    let status = deployments.get(&name).await.unwrap().status.unwrap();
    assert_eq!(status.available_replicas, Some(3));

    let (ok, _, err) = helm(&["uninstall", release, "--namespace", &ns, "--wait"]).await;
    assert!(ok, "{err}");
    assert!(deployments.get_opt(&name).await.unwrap().is_none());
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [
        "organizations.centralauth.io",
        "clientsecrets.centralauth.io",
        "nativeapps.centralauth.io",
        "users.centralauth.io",
    ] {
        assert!(
            crds.get_opt(crd).await.unwrap().is_some(),
            "helm uninstall deleted {crd}"
        );
    }
}
