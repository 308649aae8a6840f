//! `/metrics` of a real operator process: valid Prometheus text, and the numbers move as the
//! test acts (HTTP requests, ClientSecrets per phase, age of the active secret).

use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support;
use crate::support::process::{Operator, OperatorOptions, centralauth_api as api, http_get};

async fn create_secret(client: &kube::Client, ns: &str, name: &str) {
    let cs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret", "metadata": {"name": name},
        "spec": {"organizationRef": {"name": "acme"}}
    }))
    .unwrap();
    api(client, ns, "ClientSecret")
        .create(&PostParams::default(), &cs)
        .await
        .unwrap();
}

/// Waits until the operator reports `n` Pending ClientSecrets of organization `acme` in `ns`.
async fn pending(operator: &Operator, ns: &str, n: f64) -> bool {
    let labels = [("namespace", ns), ("organization", "acme"), ("phase", "Pending")];
    support::wait_until(Duration::from_secs(10), || async {
        (operator.metrics().await.value("centralauth_client_secrets", &labels) == Some(n)).then_some(())
    })
    .await
    .is_some()
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_move_as_things_happen() {
    support::init_crypto();
    let client = support::client().await;
    let ns = support::namespace(&client, "metrics").await;
    let org: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization", "metadata": {"name": "acme"},
        "spec": {"displayName": "Acme", "loginMethods": {"passwords": {"secretName": "users"}}}
    }))
    .unwrap();
    api(&client, &ns, "Organization")
        .create(&PostParams::default(), &org)
        .await
        .unwrap();
    let operator = Operator::start(OperatorOptions {
        pod_name: "metrics-op",
        kubeconfig: None,
        args: [
            "--watch-namespace",
            &ns,
            "--lease-name",
            "metrics-test",
            "--namespace",
            &ns,
        ]
        .map(String::from)
        .into(),
    });
    operator.wait_ready().await;
    // Ready means the caches are synced; the lease may take a moment longer.
    let leading = support::wait_until(Duration::from_secs(20), || async {
        (operator.is_leader().await == Some(true)).then_some(())
    })
    .await;
    assert!(
        leading.is_some(),
        "the only replica never took the lease:\n{}",
        operator.logs()
    );

    // Families appear once they have a sample (reconciles and logins need the controllers and
    // the login handlers; the unit tests in src/metrics.rs cover their encoding).
    let metrics = operator.metrics().await;
    for (family, kind) in [
        ("centralauth_leader", "gauge"),
        ("centralauth_leadership_changes_total", "counter"),
        ("centralauth_runtime_alive_tasks", "gauge"),
        ("centralauth_client_secrets", "gauge"),
        ("centralauth_active_secret_age_seconds", "gauge"),
    ] {
        assert_eq!(metrics.types.get(family).map(String::as_str), Some(kind), "{family}");
    }

    // HTTP requests, labelled with the matched route — never the raw path.
    let secret_looking_path = "/callback-code-Zx81Qa";
    for _ in 0..2 {
        let (status, _) = http_get(&format!("http://127.0.0.1:{}{secret_looking_path}", operator.public))
            .await
            .unwrap();
        assert_eq!(status, 404);
    }
    let (_, body) = operator.admin_get("/metrics").await.unwrap();
    assert!(!body.contains("Zx81Qa"), "a raw request path leaked into a label");
    let metrics = operator.metrics().await;
    assert_eq!(metrics.types["centralauth_http_requests_total"], "counter");
    assert_eq!(metrics.types["centralauth_http_request_duration_seconds"], "histogram");
    let labels = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(
        operator
            .metrics()
            .await
            .value("centralauth_http_requests_total", &labels),
        Some(2.0)
    );
    let count = operator.metrics().await.value(
        "centralauth_http_request_duration_seconds_count",
        &[("route", "unmatched")],
    );
    assert_eq!(count, Some(2.0));

    // ClientSecrets per phase follow the cache.
    assert!(
        pending(&operator, &ns, 0.0).await,
        "an organization without secrets reports 0"
    );
    create_secret(&client, &ns, "acme-1").await;
    create_secret(&client, &ns, "acme-2").await;
    assert!(pending(&operator, &ns, 2.0).await, "two Pending ClientSecrets");
    api(&client, &ns, "ClientSecret")
        .delete("acme-2", &DeleteParams::default())
        .await
        .unwrap();
    assert!(pending(&operator, &ns, 1.0).await, "one left after a delete");

    // Seconds since activation, computed at scrape time from the organization's status.
    let activated = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(120);
    let status = json!({"status": {"activeSecret": {"name": "acme-1", "fingerprint": "sha256:00", "activatedAt": activated.to_string()}}});
    api(&client, &ns, "Organization")
        .patch_status("acme", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let age = support::wait_until(Duration::from_secs(10), || async {
        let labels = [("namespace", ns.as_str()), ("organization", "acme")];
        operator
            .metrics()
            .await
            .value("centralauth_active_secret_age_seconds", &labels)
    })
    .await
    .expect("the active secret's age is reported");
    assert!((120.0..180.0).contains(&age), "age {age}");
}
