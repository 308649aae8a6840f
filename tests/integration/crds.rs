//! The CRDs: generated YAML matches the Rust types, they install and become Established on a
//! real API server, every sample is accepted, and invalid resources are refused at create time
//! with a message naming the field — and nothing invalid is stored.

use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use crate::support;

#[test]
fn crds_directory_matches_the_rust_types() {
    for (name, crd) in centralauth_operator::crd::all_crds() {
        let path = support::repo_root().join(format!("crds/{name}.yaml"));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == centralauth_operator::crd::crd_yaml(&crd),
            "{} is out of date with the Rust types: run `cargo run -- crds --out-dir crds`",
            path.display()
        );
    }
    let files = support::crd_files();
    assert_eq!(files.len(), 4, "crds/ must hold exactly one file per CRD: {files:?}");
}

#[test]
fn crds_subcommand_prints_the_crds_directory() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_centralauth-operator"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(out.status.success());
    let expected: String = ["organization", "clientsecret", "nativeapp", "user"]
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(support::repo_root().join(format!("crds/{n}.yaml"))).unwrap();
            format!("---\n{text}")
        })
        .collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

#[tokio::test]
async fn crds_install_and_become_established() {
    let client = support::client().await;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client);
    for (plural, short) in [
        ("organizations", "org"),
        ("clientsecrets", "csec"),
        ("nativeapps", "na"),
        ("users", "causer"),
    ] {
        let crd = crds.get(&format!("{plural}.centralauth.io")).await.unwrap();
        let conditions = crd.status.unwrap().conditions.unwrap();
        for wanted in ["Established", "NamesAccepted"] {
            assert!(
                conditions.iter().any(|c| c.type_ == wanted && c.status == "True"),
                "{plural}: {wanted} is not True: {conditions:?}"
            );
        }
        assert_eq!(crd.spec.names.short_names, Some(vec![short.to_string()]));
        let version = &crd.spec.versions[0];
        assert!(
            version.subresources.as_ref().unwrap().status.is_some(),
            "{plural} has no status subresource"
        );
        assert!(
            version
                .additional_printer_columns
                .as_ref()
                .is_some_and(|c| c.len() >= 4)
        );
    }
}

#[tokio::test]
async fn every_sample_is_accepted() {
    let client = support::client().await;
    let ns = support::namespace(&client, "samples").await;
    let mut samples: Vec<_> = std::fs::read_dir(support::repo_root().join("config/samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    samples.sort();
    assert!(
        samples.len() >= 6,
        "expected samples for every kind and mode, found {samples:?}"
    );
    for path in samples {
        for obj in support::yaml_documents(&path) {
            let types = obj.types.clone().expect("sample has apiVersion and kind");
            let gvk = GroupVersionKind::try_from(&types).unwrap();
            let (api, _) = support::dynamic_api(&client, &gvk, &ns).await;
            api.create(&PostParams::default(), &obj)
                .await
                .unwrap_or_else(|e| panic!("{} was refused: {e}", path.display()));
        }
    }
}

/// One invalid object: what it is, its kind, its spec, and what the refusal must name.
struct Invalid {
    case: &'static str,
    kind: &'static str,
    spec: Value,
    field: &'static str,
    says: &'static str,
}

fn org_spec(extra: Value) -> Value {
    let mut spec = json!({
        "displayName": "Example",
        "allowedOrigins": ["https://example.com"],
        "loginMethods": {"passwords": {"secretName": "users"}}
    });
    merge(&mut spec, extra);
    spec
}

fn ios_app(extra: Value) -> Value {
    let mut spec = json!({
        "organizationRef": {"name": "example"},
        "displayName": "App",
        "platform": "iOS",
        "bundleId": "com.example.app",
        "teamId": "ABCDE12345",
        "appLink": "https://app.example.com/auth"
    });
    merge(&mut spec, extra);
    spec
}

fn android_app(extra: Value) -> Value {
    let mut spec = json!({
        "organizationRef": {"name": "example"},
        "displayName": "App",
        "platform": "Android",
        "packageName": "com.example.app",
        "sha256CertFingerprints": ["14:6D:E9:83:C5:73:06:50:D8:EE:B9:95:2F:34:FC:64:16:A0:83:42:E6:1D:BE:A8:8A:04:96:B2:3F:CF:44:E5"],
        "appLink": "https://app.example.com/auth"
    });
    merge(&mut spec, extra);
    spec
}

fn merge(base: &mut Value, extra: Value) {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        for (k, v) in extra {
            if v.is_null() {
                base.remove(&k);
            } else {
                base.insert(k, v);
            }
        }
    }
}

fn invalid_table() -> Vec<Invalid> {
    vec![
        Invalid {
            case: "unknown userCreation",
            kind: "Organization",
            spec: org_spec(json!({"userCreation": "Closed"})),
            field: "spec.userCreation",
            says: "supported values: \"Open\", \"InviteOnly\"",
        },
        Invalid {
            case: "unknown email attemptType",
            kind: "Organization",
            spec: org_spec(json!({"loginMethods": {"email": {
                "smtpHost": "smtp.example.com", "from": "login@example.com", "attemptType": "Magic"
            }}})),
            field: "spec.loginMethods.email.attemptType",
            says: "supported values: \"Code\", \"Link\", \"Challenge\"",
        },
        Invalid {
            case: "an address in allowedEmailDomains",
            kind: "Organization",
            spec: org_spec(json!({"allowedEmailDomains": ["@example.com"]})),
            field: "spec.allowedEmailDomains",
            says: "must be a lowercase domain such as example.com",
        },
        Invalid {
            case: "an upper-case user address",
            kind: "User",
            spec: json!({"organization": "acme", "email": "Ada@Example.com"}),
            field: "spec.email",
            says: "email must be one lower-case e-mail address",
        },
        Invalid {
            case: "a user without organization",
            kind: "User",
            spec: json!({"email": "ada@example.com"}),
            field: "spec.organization",
            says: "Required value",
        },
        Invalid {
            case: "custom-scheme app link",
            kind: "NativeApp",
            spec: ios_app(json!({"appLink": "myapp://callback"})),
            field: "spec.appLink",
            says: "custom URL schemes (like myapp://) are not allowed",
        },
        Invalid {
            case: "custom scheme without slashes",
            kind: "NativeApp",
            spec: ios_app(json!({"appLink": "com.example.app:/oauth"})),
            field: "spec.appLink",
            says: "custom URL schemes",
        },
        Invalid {
            case: "http:// app link",
            kind: "NativeApp",
            spec: ios_app(json!({"appLink": "http://app.example.com/auth"})),
            field: "spec.appLink",
            says: "must use https://, not http://",
        },
        Invalid {
            case: "app link with userinfo",
            kind: "NativeApp",
            spec: ios_app(json!({"appLink": "https://app.example@evil.com/auth"})),
            field: "spec.appLink",
            says: "userinfo",
        },
        Invalid {
            case: "app link with fragment",
            kind: "NativeApp",
            spec: android_app(json!({"appLink": "https://app.example.com/auth#x"})),
            field: "spec.appLink",
            says: "query or fragment",
        },
        Invalid {
            case: "malformed bundle ID",
            kind: "NativeApp",
            spec: ios_app(json!({"bundleId": "com example app"})),
            field: "spec.bundleId",
            says: "reverse-DNS bundle ID",
        },
        Invalid {
            case: "single-part bundle ID",
            kind: "NativeApp",
            spec: ios_app(json!({"bundleId": "exampleapp"})),
            field: "spec.bundleId",
            says: "reverse-DNS bundle ID",
        },
        Invalid {
            case: "lowercase team ID",
            kind: "NativeApp",
            spec: ios_app(json!({"teamId": "abcde12345"})),
            field: "spec.teamId",
            says: "Apple Team ID",
        },
        Invalid {
            case: "malformed package name",
            kind: "NativeApp",
            spec: android_app(json!({"packageName": "com.1example.app"})),
            field: "spec.packageName",
            says: "Java package rules",
        },
        Invalid {
            case: "package name with hyphen",
            kind: "NativeApp",
            spec: android_app(json!({"packageName": "com.exam-ple"})),
            field: "spec.packageName",
            says: "Java package rules",
        },
        Invalid {
            case: "malformed cert fingerprint",
            kind: "NativeApp",
            spec: android_app(json!({"sha256CertFingerprints": ["14:6d:e9"]})),
            field: "spec.sha256CertFingerprints",
            says: "32 uppercase hex bytes",
        },
        Invalid {
            case: "iOS app without team ID",
            kind: "NativeApp",
            spec: ios_app(json!({"teamId": null})),
            field: "spec.bundleId",
            says: "platform iOS needs bundleId and teamId",
        },
        Invalid {
            case: "Android app with a bundle ID",
            kind: "NativeApp",
            spec: android_app(json!({"bundleId": "com.example.app"})),
            field: "spec.bundleId",
            says: "iOS fields",
        },
        Invalid {
            case: "unknown platform",
            kind: "NativeApp",
            spec: ios_app(json!({"platform": "Windows"})),
            field: "spec.platform",
            says: "Unsupported value",
        },
        Invalid {
            case: "origin with a path",
            kind: "Organization",
            spec: org_spec(json!({"allowedOrigins": ["https://example.com/app"]})),
            field: "spec.allowedOrigins",
            says: "no path, query, fragment",
        },
        Invalid {
            case: "origin with trailing slash",
            kind: "Organization",
            spec: org_spec(json!({"allowedOrigins": ["https://example.com/"]})),
            field: "spec.allowedOrigins",
            says: "no path",
        },
        Invalid {
            case: "origin with a query",
            kind: "Organization",
            spec: org_spec(json!({"allowedOrigins": ["https://example.com?x=1"]})),
            field: "spec.allowedOrigins",
            says: "no path, query",
        },
        Invalid {
            case: "wildcard on a top-level domain",
            kind: "Organization",
            spec: org_spec(json!({"allowedOrigins": ["https://*.com"]})),
            field: "spec.allowedOrigins",
            says: "at least two labels",
        },
        Invalid {
            case: "wildcard on a top-level domain with a port",
            kind: "Organization",
            spec: org_spec(json!({"allowedOrigins": ["https://example.com", "https://*.io:8443"]})),
            field: "spec.allowedOrigins",
            says: "at least two labels",
        },
        Invalid {
            case: "wildcard on an IP address",
            kind: "Organization",
            spec: org_spec(json!({"allowedOrigins": ["https://*.10.0.0.1"]})),
            field: "spec.allowedOrigins",
            says: "cannot stand on an IP address",
        },
        Invalid {
            case: "http origin without allowLocalhost",
            kind: "Organization",
            spec: org_spec(json!({"allowedOrigins": ["http://localhost:3000"]})),
            field: "spec.allowedOrigins",
            says: "allowLocalhost",
        },
        Invalid {
            case: "http origin that is not loopback",
            kind: "Organization",
            spec: org_spec(json!({"allowLocalhost": true, "allowedOrigins": ["http://example.com"]})),
            field: "spec.allowedOrigins",
            says: "https://host[:port]",
        },
        Invalid {
            case: "redirect URI with a fragment",
            kind: "Organization",
            spec: org_spec(json!({"redirectUris": ["https://example.com/cb#x"]})),
            field: "spec.redirectUris",
            says: "without fragment",
        },
        Invalid {
            case: "logo over http",
            kind: "Organization",
            spec: org_spec(json!({"logoUrl": "http://example.com/logo.png"})),
            field: "spec.logoUrl",
            says: "https:// URL",
        },
        Invalid {
            case: "subdomain that is not a DNS label",
            kind: "Organization",
            spec: org_spec(json!({"subdomain": "Bad_Label"})),
            field: "spec.subdomain",
            says: "DNS label",
        },
        Invalid {
            case: "custom domain with a scheme",
            kind: "Organization",
            spec: org_spec(json!({"customDomain": "https://login.example.com"})),
            field: "spec.customDomain",
            says: "lowercase hostname",
        },
        Invalid {
            case: "no login method",
            kind: "Organization",
            spec: org_spec(json!({"loginMethods": {}})),
            field: "spec.loginMethods",
            says: "at least one login method",
        },
        Invalid {
            case: "grace period that is not a duration",
            kind: "Organization",
            spec: org_spec(json!({"secretRotation": {"previousSecretGracePeriod": "forever"}})),
            field: "spec.secretRotation.previousSecretGracePeriod",
            says: "duration such as",
        },
        Invalid {
            case: "grace period too long",
            kind: "Organization",
            spec: org_spec(json!({"secretRotation": {"previousSecretGracePeriod": "1000h"}})),
            field: "spec.secretRotation.previousSecretGracePeriod",
            says: "at most 720h",
        },
        Invalid {
            case: "inactivity longer than session",
            kind: "Organization",
            spec: org_spec(json!({"maxSessionSeconds": 3600, "maxInactivitySeconds": 7200})),
            field: "spec.maxInactivitySeconds",
            says: "must not exceed",
        },
        Invalid {
            case: "missing displayName",
            kind: "Organization",
            spec: org_spec(json!({"displayName": null})),
            field: "spec.displayName",
            says: "Required value",
        },
        Invalid {
            case: "unknown activation mode",
            kind: "ClientSecret",
            spec: json!({"organizationRef": {"name": "example"}, "activation": "Sometimes"}),
            field: "spec.activation",
            says: "Unsupported value",
        },
        Invalid {
            case: "missing organizationRef",
            kind: "ClientSecret",
            spec: json!({"activation": "Manual"}),
            field: "spec.organizationRef",
            says: "Required value",
        },
        Invalid {
            case: "OnRollout without workloads",
            kind: "ClientSecret",
            spec: json!({"organizationRef": {"name": "example"}, "activation": "OnRollout"}),
            field: "spec.rollout",
            says: "OnRollout needs rollout.workloads",
        },
        Invalid {
            case: "rollout with Manual activation",
            kind: "ClientSecret",
            spec: json!({"organizationRef": {"name": "example"}, "activation": "Manual", "rollout": {"workloads": [{"kind": "Deployment", "name": "web"}]}}),
            field: "spec.rollout",
            says: "only used with activation: OnRollout",
        },
        Invalid {
            case: "unknown workload kind",
            kind: "ClientSecret",
            spec: json!({"organizationRef": {"name": "example"}, "activation": "OnRollout", "rollout": {"workloads": [{"kind": "CronJob", "name": "web"}]}}),
            field: "spec.rollout.workloads[0].kind",
            says: "Unsupported value",
        },
        Invalid {
            case: "invalid secret name",
            kind: "ClientSecret",
            spec: json!({"organizationRef": {"name": "example"}, "secretName": "Not_A_Name"}),
            field: "spec.secretName",
            says: "valid Secret name",
        },
        Invalid {
            case: "organizationRef without name",
            kind: "NativeApp",
            spec: ios_app(json!({"organizationRef": {}})),
            field: "spec.organizationRef.name",
            says: "Required value",
        },
    ]
}

#[tokio::test]
async fn invalid_resources_are_refused_with_the_field_named_and_nothing_is_stored() {
    let client = support::client().await;
    let ns = support::namespace(&client, "invalid").await;
    let mut failures = vec![];
    for (i, case) in invalid_table().into_iter().enumerate() {
        let gvk = GroupVersionKind::gvk("centralauth.io", "v1alpha1", case.kind);
        let (api, ar) = support::dynamic_api(&client, &gvk, &ns).await;
        let mut obj = DynamicObject::new(&format!("invalid-{i}"), &ar);
        obj.data = json!({"spec": case.spec});
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => failures.push(format!("{}: accepted", case.case)),
            Err(kube::Error::Api(status)) => {
                let msg = &status.message;
                if status.code != 422 || !msg.contains(case.field) || !msg.contains(case.says) {
                    failures.push(format!(
                        "{}: expected 422 naming `{}` and saying `{}`, got {}: {msg}",
                        case.case, case.field, case.says, status.code
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: unexpected error {e}", case.case)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for kind in ["Organization", "ClientSecret", "NativeApp", "User"] {
        let gvk = GroupVersionKind::gvk("centralauth.io", "v1alpha1", kind);
        let (api, _): (Api<DynamicObject>, _) = support::dynamic_api(&client, &gvk, &ns).await;
        let stored = api.list(&ListParams::default()).await.unwrap();
        assert!(stored.items.is_empty(), "invalid {kind} objects were stored");
    }
}

#[tokio::test]
async fn immutable_fields_cannot_change() {
    let client = support::client().await;
    let ns = support::namespace(&client, "immutable").await;
    let orgs: Api<DynamicObject> = support::dynamic_api(
        &client,
        &GroupVersionKind::gvk("centralauth.io", "v1alpha1", "Organization"),
        &ns,
    )
    .await
    .0;
    let mut org: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization",
        "metadata": {"name": "pinned"},
        "spec": org_spec(json!({"clientId": "pinned-client-id"}))
    }))
    .unwrap();
    org = orgs.create(&PostParams::default(), &org).await.unwrap();
    org.data["spec"]["clientId"] = json!("another-client-id");
    let err = orgs.replace("pinned", &PostParams::default(), &org).await.unwrap_err();
    assert!(err.to_string().contains("clientId cannot be changed"), "{err}");

    let secrets: Api<DynamicObject> = support::dynamic_api(
        &client,
        &GroupVersionKind::gvk("centralauth.io", "v1alpha1", "ClientSecret"),
        &ns,
    )
    .await
    .0;
    let mut cs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret",
        "metadata": {"name": "s1"},
        "spec": {"organizationRef": {"name": "pinned"}}
    }))
    .unwrap();
    cs = secrets.create(&PostParams::default(), &cs).await.unwrap();
    assert_eq!(
        cs.data["spec"]["activation"],
        json!("Manual"),
        "activation defaults to Manual"
    );
    cs.data["spec"]["organizationRef"]["name"] = json!("other");
    let err = secrets.replace("s1", &PostParams::default(), &cs).await.unwrap_err();
    assert!(err.to_string().contains("organizationRef is immutable"), "{err}");
}
