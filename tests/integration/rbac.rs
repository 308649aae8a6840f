//! Least privilege: the operator runs as the chart's ServiceAccount (a real token from the
//! TokenRequest API), restricted to one watched namespace, does its whole job, and the API
//! server refuses it everything else.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use crate::support;
use crate::support::process::{CHART, Operator, OperatorOptions, centralauth_api as api, helm};

/// A token for `namespace/name` from the TokenRequest API (what the kubelet mounts in a pod).
async fn service_account_token(client: &Client, namespace: &str, name: &str) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let response: TokenRequest = api
        .create_subresource("token", name, &PostParams::default(), &request)
        .await
        .expect("the TokenRequest API issues a token for the chart's ServiceAccount");
    response.status.expect("a token").token
}

/// A kubeconfig for the test API server that authenticates with `token`.
fn token_kubeconfig(token: &str, path: &std::path::Path) {
    let admin = Kubeconfig::read_from(support::kubeconfig_path()).unwrap();
    let cluster = admin.clusters[0].cluster.clone().unwrap();
    let text = serde_norway::to_string(&json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data,
        }}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "testenv", "user": "operator"}}],
        "current-context": "operator",
    }))
    .unwrap();
    std::fs::write(path, text).unwrap();
}

async fn client_from(path: &std::path::Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// Whether the API server's authorizer lets `user` do `verb` on `resource`.
async fn allowed(client: &Client, user: &str, verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> bool {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            groups: Some(vec!["system:serviceaccounts".into(), "system:authenticated".into()]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource: (!subresource.is_empty()).then(|| subresource.into()),
                namespace: (!ns.is_empty()).then(|| ns.into()),
                name: (!name.is_empty()).then(|| name.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await.unwrap();
    answer.status.unwrap().allowed
}

async fn create(client: &Client, ns: &str, kind: &str, object: serde_json::Value) {
    let api = api(client, ns, kind);
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();
}

async fn create_org_and_secret(client: &Client, ns: &str) {
    create(
        client,
        ns,
        "Organization",
        json!({"apiVersion": "centralauth.io/v1alpha1", "kind": "Organization", "metadata": {"name": "acme"},
               "spec": {"displayName": "Acme", "loginMethods": {"passwords": {"secretName": "users"}}}}),
    )
    .await;
    create(
        client,
        ns,
        "ClientSecret",
        json!({"apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret", "metadata": {"name": "acme-1"},
               "spec": {"organizationRef": {"name": "acme"}, "activation": "Immediate"}}),
    )
    .await;
}

#[tokio::test]
async fn operator_as_the_charts_service_account_does_its_job_and_nothing_more() {
    support::init_crypto();
    let admin = support::client().await;
    let op_ns = support::namespace(&admin, "rbac-operator").await;
    let watched = support::namespace(&admin, "rbac-watched").await;
    let other = support::namespace(&admin, "rbac-other").await;
    let release = op_ns.as_str();
    let fullname = format!("{release}-centralauth-operator");
    let signing_keys = format!("{fullname}-signing-keys");
    let (ok, out, err) = helm(&[
        "install",
        release,
        CHART,
        "--namespace",
        &op_ns,
        "--set",
        "crds.install=false",
        "--set",
        &format!("watchNamespaces={{{watched}}}"),
    ])
    .await;
    assert!(ok, "helm install failed:\n{out}\n{err}");

    let token = service_account_token(&admin, &op_ns, &fullname).await;
    let kubeconfig = std::env::temp_dir().join(format!("{op_ns}.kubeconfig"));
    token_kubeconfig(&token, &kubeconfig);
    create_org_and_secret(&admin, &watched).await;
    create_org_and_secret(&admin, &other).await;

    let operator = Operator::start(OperatorOptions {
        pod_name: "rbac-op",
        kubeconfig: Some(&kubeconfig),
        args: [
            "--watch-namespace",
            &watched,
            "--lease-name",
            &fullname,
            "--namespace",
            &op_ns,
            "--signing-key-secret",
            &signing_keys,
        ]
        .map(String::from)
        .into(),
    });
    // Starts, checks the CRDs, syncs its caches of the watched namespace only, takes the lease.
    operator.wait_ready().await;
    let leases: Api<Lease> = Api::namespaced(admin.clone(), &op_ns);
    let holder = support::wait_until(Duration::from_secs(20), || async {
        let lease = leases.get_opt(&fullname).await.ok()??;
        lease.spec?.holder_identity.filter(|h| h.starts_with("rbac-op_"))
    })
    .await;
    assert!(
        holder.is_some(),
        "the operator did not take its lease:\n{}",
        operator.logs()
    );
    assert_eq!(operator.is_leader().await, Some(true));
    let metrics = operator.metrics().await;
    // The ClientSecret is in the cache, Pending or already Active (readiness waits for the
    // Secrets the caches name, by which time the controllers may have activated it).
    let cached = |ns: &str| -> Option<f64> {
        let phases = ["Pending", "Active"].map(|phase| {
            metrics.value(
                "centralauth_client_secrets",
                &[("namespace", ns), ("organization", "acme"), ("phase", phase)],
            )
        });
        phases.iter().flatten().copied().reduce(|a, b| a + b)
    };
    assert_eq!(
        cached(&watched),
        Some(1.0),
        "the watched namespace is cached: {metrics:?}"
    );
    assert_eq!(
        cached(&other),
        None,
        "a namespace outside watchNamespaces is not cached"
    );
    // The controllers did their job with this identity: a client ID, a minted and activated
    // secret in its own Kubernetes Secret — and nothing in the namespace it does not watch.
    let orgs = api(&admin, &watched, "Organization");
    let active = support::wait_until(Duration::from_secs(30), || async {
        let org = orgs.get("acme").await.ok()?;
        org.data["status"]["activeSecret"]["name"].as_str().map(String::from)
    })
    .await;
    assert_eq!(
        active.as_deref(),
        Some("acme-1"),
        "no secret was activated:\n{}",
        operator.logs()
    );
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(admin.clone(), &watched);
    assert!(
        secrets.get_opt("acme-1").await.unwrap().is_some(),
        "the minted Secret is missing"
    );
    let untouched = api(&admin, &other, "Organization").get("acme").await.unwrap();
    assert!(
        untouched.data.get("status").is_none(),
        "an unwatched namespace was reconciled"
    );
    let logs = operator.logs();
    assert!(
        !logs.to_lowercase().contains("forbidden"),
        "the operator was refused something it needs:\n{logs}"
    );

    // The authorizer's view: everything the controllers need, nothing else.
    let user = format!("system:serviceaccount:{op_ns}:{fullname}");
    let expectations: &[(bool, &str, &str, &str, &str, &str)] = &[
        (true, "watch", "centralauth.io", "clientsecrets", &watched, ""),
        (true, "patch", "centralauth.io", "organizations/status", &watched, ""),
        (
            true,
            "update",
            "centralauth.io",
            "clientsecrets/finalizers",
            &watched,
            "",
        ),
        (true, "get", "centralauth.io", "users", &watched, ""),
        (true, "create", "centralauth.io", "users", &watched, ""),
        (true, "patch", "centralauth.io", "users/status", &watched, ""),
        (true, "watch", "centralauth.io", "users", &watched, ""),
        (false, "update", "centralauth.io", "users", &watched, ""),
        (false, "delete", "centralauth.io", "users", &watched, ""),
        (false, "get", "centralauth.io", "users", &other, ""),
        (true, "create", "", "secrets", &watched, ""),
        (true, "delete", "", "configmaps", &watched, ""),
        (true, "create", "events.k8s.io", "events", &watched, ""),
        (true, "patch", "apps", "deployments", &watched, ""),
        (true, "update", "coordination.k8s.io", "leases", &op_ns, &fullname),
        (true, "create", "coordination.k8s.io", "leases", &op_ns, ""),
        (true, "get", "", "secrets", &op_ns, &signing_keys),
        (true, "update", "", "secrets", &op_ns, &signing_keys),
        (false, "get", "", "secrets", &op_ns, "another-secret"),
        (false, "delete", "", "secrets", &op_ns, &signing_keys),
        (false, "get", "", "secrets", &other, ""),
        (false, "list", "", "secrets", "", ""),
        (false, "watch", "centralauth.io", "clientsecrets", &other, ""),
        (false, "list", "centralauth.io", "organizations", "", ""),
        (false, "delete", "centralauth.io", "clientsecrets", &watched, ""),
        (
            false,
            "update",
            "coordination.k8s.io",
            "leases",
            &op_ns,
            "someone-elses-lease",
        ),
        (false, "update", "coordination.k8s.io", "leases", &watched, &fullname),
        (false, "create", "apps", "deployments", &watched, ""),
        (false, "delete", "apps", "deployments", &watched, ""),
        (false, "get", "", "pods", &watched, ""),
        (
            false,
            "create",
            "rbac.authorization.k8s.io",
            "rolebindings",
            &watched,
            "",
        ),
        (false, "list", "", "namespaces", "", ""),
        (false, "create", "", "events", &watched, ""),
    ];
    for &(expected, verb, group, resource, ns, name) in expectations {
        let got = allowed(&admin, &user, verb, group, resource, ns, name).await;
        assert_eq!(
            got, expected,
            "{verb} {group}/{resource} in {ns:?} {name:?}: allowed={got}, expected {expected}"
        );
    }

    // And for real, with the operator's own token.
    let as_operator = client_from(&kubeconfig).await;
    let err = Api::<Secret>::namespaced(as_operator.clone(), &other)
        .get("anything")
        .await
        .unwrap_err();
    assert!(matches!(&err, kube::Error::Api(e) if e.code == 403), "{err}");
    let err = Api::<Secret>::all(as_operator.clone())
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(matches!(&err, kube::Error::Api(e) if e.code == 403), "{err}");
    assert!(
        Api::<Secret>::namespaced(as_operator, &watched)
            .list(&ListParams::default())
            .await
            .is_ok()
    );
    std::fs::remove_file(&kubeconfig).ok();
}
