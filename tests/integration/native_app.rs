//! The NativeApp controller, the `/.well-known` files and the association check against the
//! real API server (and, for the check, real HTTPS servers with a test CA made by openssl).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use centralauth_operator::association::{AssociationSettings, TrustRoots};
use centralauth_operator::crd::NativeApp;
use centralauth_operator::flow::Flows;
use centralauth_operator::http::{AppState, public_router};
use centralauth_operator::runtime::cache::Caches;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::organization::{events_for, org, public, ready_of, start_operator, users_secret, wait_for};
use crate::support;
use crate::support::pki::TestPki;

const TEAM: &str = "ABCDE12345";
const FP1: &str = "14:6D:E9:83:C5:73:06:50:D8:EE:B9:95:2F:34:FC:64:16:A0:83:42:E6:1D:BE:A8:8A:04:96:B2:3F:CF:44:E5";
const FP2: &str = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99";

fn ios(name: &str, org: &str, bundle: &str, link: &str) -> NativeApp {
    app(
        name,
        json!({"organizationRef": {"name": org}, "displayName": name, "platform": "iOS",
        "bundleId": bundle, "teamId": TEAM, "appLink": link}),
    )
}

fn android(name: &str, org: &str, package: &str, fps: &[&str], link: &str) -> NativeApp {
    app(
        name,
        json!({"organizationRef": {"name": org}, "displayName": name, "platform": "Android",
        "packageName": package, "sha256CertFingerprints": fps, "appLink": link}),
    )
}

fn app(name: &str, spec: Value) -> NativeApp {
    serde_json::from_value(json!({
        "apiVersion": "centralauth.io/v1alpha1", "kind": "NativeApp",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

fn condition(app: &NativeApp, type_: &str) -> Option<(String, String, String)> {
    let conditions = app.status.as_ref().map(|s| &s.conditions)?;
    let c = conditions.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn app_state(api: &Api<NativeApp>, name: &str, type_: &str, status: &str, reason: &str) -> NativeApp {
    wait_for(api, name, &format!("{type_}={status}/{reason}"), |a| {
        condition(a, type_).is_some_and(|c| c.0 == status && c.1 == reason)
    })
    .await
}

async fn setup(
    test: &str,
    association: AssociationSettings,
) -> (Client, String, Api<NativeApp>, crate::organization::Operator) {
    let client = support::client().await;
    let ns = support::namespace(&client, test).await;
    users_secret(&client, &ns, "").await;
    let operator = start_operator(&client, &ns, association);
    (client.clone(), ns.clone(), Api::namespaced(client, &ns), operator)
}

async fn create<K>(client: &Client, ns: &str, objects: Vec<K>)
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
    K: Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    for o in objects {
        api.create(&PostParams::default(), &o).await.unwrap();
    }
}

#[tokio::test]
async fn an_app_becomes_ready_by_itself_when_its_organization_appears() {
    let (client, ns, apps, _operator) = setup("app-org-appears", AssociationSettings::default()).await;
    let link = format!("https://app.{ns}.test/auth");
    create(&client, &ns, vec![ios("shop", "late", "com.acme.shop", &link)]).await;
    let shop = app_state(&apps, "shop", "Ready", "False", "OrganizationNotFound").await;
    assert!(condition(&shop, "Ready").unwrap().2.contains(&format!("{ns}/late")));
    let status = shop.status.unwrap();
    assert_eq!(status.app_id.as_deref(), Some("com.acme.shop"));
    assert_eq!(status.redirect_uri, Some(format!("{link}/callback")));
    assert!(
        !events_for(&client, &ns, "shop", "OrganizationNotFound")
            .await
            .is_empty()
    );

    create(&client, &ns, vec![org("late", json!({}))]).await;
    let shop = app_state(&apps, "shop", "Ready", "True", "Ready").await;
    assert_eq!(shop.status.unwrap().observed_generation, Some(1));
}

#[tokio::test]
async fn an_app_link_equal_to_the_website_is_refused() {
    let (client, ns, apps, _operator) = setup("app-link-is-website", AssociationSettings::default()).await;
    let origins = json!({"allowedOrigins": [format!("https://www.{ns}.test"), format!("https://*.{ns}.test")]});
    create(&client, &ns, vec![org("acme", origins)]).await;
    create(
        &client,
        &ns,
        vec![
            ios("site", "acme", "com.acme.site", &format!("https://www.{ns}.test/app")),
            ios("sub", "acme", "com.acme.sub", &format!("https://app.{ns}.test/app")),
        ],
    )
    .await;
    let site = app_state(&apps, "site", "Ready", "False", "AppLinkIsWebsite").await;
    assert!(
        condition(&site, "Ready")
            .unwrap()
            .2
            .contains("must not be your main website")
    );
    assert!(!events_for(&client, &ns, "site", "AppLinkIsWebsite").await.is_empty());
    // Covered only by the wildcard origin: accepted (decision documented in src/applinks.rs).
    app_state(&apps, "sub", "Ready", "True", "Ready").await;

    let fix = json!({"spec": {"appLink": format!("https://links.{ns}.test/site")}});
    apps.patch("site", &PatchParams::default(), &Patch::Merge(fix))
        .await
        .unwrap();
    let site = app_state(&apps, "site", "Ready", "True", "Ready").await;
    assert_eq!(site.status.unwrap().observed_generation, Some(2));
}

/// `(appIDs per details entry, packages)` of a host's files, checking the exact documented keys.
fn summarize(aasa: &str, assetlinks: &str) -> (Vec<Vec<String>>, Vec<String>) {
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<BTreeSet<String>>();
    let set = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<BTreeSet<String>>();
    let aasa: Value = serde_json::from_str(aasa).unwrap();
    assert_eq!(keys(&aasa), set(&["applinks"]));
    assert_eq!(keys(&aasa["applinks"]), set(&["details"]));
    let mut ids = vec![];
    for d in aasa["applinks"]["details"].as_array().unwrap() {
        assert_eq!(keys(d), set(&["appIDs", "components"]));
        for c in d["components"].as_array().unwrap() {
            assert_eq!(keys(c), set(&["/"]));
        }
        ids.push(
            d["appIDs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap().to_string())
                .collect(),
        );
    }
    let links: Value = serde_json::from_str(assetlinks).unwrap();
    let mut packages = vec![];
    for s in links.as_array().unwrap() {
        assert_eq!(keys(s), set(&["relation", "target"]));
        assert_eq!(s["relation"], json!(["delegate_permission/common.handle_all_urls"]));
        assert_eq!(
            keys(&s["target"]),
            set(&["namespace", "package_name", "sha256_cert_fingerprints"])
        );
        assert_eq!(s["target"]["namespace"], "android_app");
        packages.push(s["target"]["package_name"].as_str().unwrap().to_string());
    }
    (ids, packages)
}

type HostFiles = (Vec<Vec<String>>, Vec<String>, BTreeSet<String>);

/// The ConfigMap of `host` summarized, with its owners' names; `None` while absent.
async fn configmap(cms: &Api<ConfigMap>, host: &str) -> Option<HostFiles> {
    let cm = cms.get_opt(&format!("applinks-{host}")).await.unwrap()?;
    let data = cm.data.clone().unwrap();
    let (ids, packages) = summarize(&data["apple-app-site-association"], &data["assetlinks.json"]);
    let owners = cm.owner_references().iter().map(|o| o.name.clone()).collect();
    Some((ids, packages, owners))
}

async fn wait_configmap(cms: &Api<ConfigMap>, host: &str, expected: Option<HostFiles>) {
    let last = std::sync::Mutex::new(None);
    let reached = support::wait_until(Duration::from_secs(30), || async {
        let now = configmap(cms, host).await;
        *last.lock().unwrap() = Some(now.clone());
        (now == expected).then_some(())
    })
    .await;
    assert!(
        reached.is_some(),
        "ConfigMap of {host}: wanted {expected:?}, last {:?}",
        last.lock().unwrap()
    );
}

fn owners(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn one_configmap_per_host_aggregates_its_apps_and_follows_changes() {
    let (client, ns, apps, _operator) = setup("app-configmaps", AssociationSettings::default()).await;
    let (h1, h2) = (format!("one.{ns}.test"), format!("two.{ns}.test"));
    create(&client, &ns, vec![org("acme", json!({}))]).await;
    create(
        &client,
        &ns,
        vec![
            ios("shop-ios", "acme", "com.acme.shop", &format!("https://{h1}/shop")),
            android(
                "shop-android",
                "acme",
                "com.acme.shop",
                &[FP1],
                &format!("https://{h1}/shop"),
            ),
            ios("pay-ios", "acme", "com.acme.pay", &format!("https://{h2}/pay")),
            android(
                "pay-android",
                "acme",
                "com.acme.pay",
                &[FP1, FP2],
                &format!("https://{h2}/pay"),
            ),
            ios("news-ios", "acme", "com.acme.news", &format!("https://{h2}/news")),
        ],
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let id = |bundle: &str| strings(&[&format!("{TEAM}.{bundle}")]);
    let h1_files = (
        vec![id("com.acme.shop")],
        strings(&["com.acme.shop"]),
        owners(&["shop-ios", "shop-android"]),
    );
    wait_configmap(&cms, &h1, Some(h1_files)).await;
    let h2_files = (
        vec![id("com.acme.news"), id("com.acme.pay")],
        strings(&["com.acme.pay"]),
        owners(&["pay-ios", "pay-android", "news-ios"]),
    );
    wait_configmap(&cms, &h2, Some(h2_files)).await;

    // A remaining app rewrites the file when another leaves.
    apps.delete("shop-android", &DeleteParams::default()).await.unwrap();
    wait_configmap(
        &cms,
        &h1,
        Some((vec![id("com.acme.shop")], vec![], owners(&["shop-ios"]))),
    )
    .await;

    // An app moving to another host leaves the old host's file and joins the new one.
    let moved = json!({"spec": {"appLink": format!("https://{h1}/news")}});
    apps.patch("news-ios", &PatchParams::default(), &Patch::Merge(moved))
        .await
        .unwrap();
    let h1_files = (
        vec![id("com.acme.news"), id("com.acme.shop")],
        vec![],
        owners(&["shop-ios", "news-ios"]),
    );
    wait_configmap(&cms, &h1, Some(h1_files)).await;
    let h2_files = (
        vec![id("com.acme.pay")],
        strings(&["com.acme.pay"]),
        owners(&["pay-ios", "pay-android"]),
    );
    wait_configmap(&cms, &h2, Some(h2_files.clone())).await;

    // A deleted ConfigMap comes back; the last app leaving takes it away.
    cms.delete(&format!("applinks-{h2}"), &DeleteParams::default())
        .await
        .unwrap();
    wait_configmap(&cms, &h2, Some(h2_files)).await;
    apps.delete("pay-ios", &DeleteParams::default()).await.unwrap();
    apps.delete("pay-android", &DeleteParams::default()).await.unwrap();
    wait_configmap(&cms, &h2, None).await;
}

#[tokio::test]
async fn well_known_files_are_served_per_host_from_the_caches() {
    support::init_crypto();
    let (client, ns, _apps, _operator) = setup("app-well-known", AssociationSettings::default()).await;
    let (h1, h2) = (format!("one.{ns}.test"), format!("two.{ns}.test"));
    create(&client, &ns, vec![org("acme", json!({}))]).await;
    create(
        &client,
        &ns,
        vec![
            ios("a-ios", "acme", "com.acme.a", &format!("https://{h1}/a")),
            ios("b-ios", "acme", "com.acme.b", &format!("https://{h1}/a")),
            android("a-android", "acme", "com.acme.a", &[FP1], &format!("https://{h1}/a")),
            android("c-android", "acme", "com.acme.c", &[FP2], &format!("https://{h2}/c")),
        ],
    )
    .await;
    let addr = serve_http(public_router(app_state_for(&client, &ns).await)).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let expected_h1 = (
        vec![strings(&[&format!("{TEAM}.com.acme.a"), &format!("{TEAM}.com.acme.b")])],
        strings(&["com.acme.a"]),
    );
    let expected_h2 = (vec![], strings(&["com.acme.c"]));
    for (host, expected) in [(&h1, expected_h1), (&h2, expected_h2)] {
        // Wait until the cache holds every app, then compare with the ConfigMap too.
        let files = support::wait_until(Duration::from_secs(30), || async {
            let aasa = fetch(&http, addr, host, "/.well-known/apple-app-site-association").await?;
            let links = fetch(&http, addr, &host.to_uppercase(), "/.well-known/assetlinks.json").await?;
            (summarize(&aasa, &links) == expected).then_some((aasa, links))
        })
        .await
        .unwrap_or_else(|| panic!("{host} never served {expected:?}"));
        // The ConfigMap converges to exactly what is served.
        wait_for(&cms, &format!("applinks-{host}"), "equal to the served files", |cm| {
            let data = cm.data.clone().unwrap_or_default();
            data.get("apple-app-site-association") == Some(&files.0) && data.get("assetlinks.json") == Some(&files.1)
        })
        .await;
    }
    let unknown = http
        .get(format!("http://{addr}/.well-known/apple-app-site-association"))
        .header(header::HOST, format!("nothing.{ns}.test"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

async fn app_state_for(client: &Client, ns: &str) -> AppState {
    let caches = Caches::start(client);
    caches.wait_until_ready().await;
    let settings = centralauth_operator::http::Settings::new(ns.to_string(), 30 * 24 * 3600);
    let flows = Flows::start(client.clone(), caches, public(), settings, Default::default());
    AppState::start(flows.expect("the memory store opens"))
}

/// GETs `path` from `addr` with `Host: host`; `None` unless 200 + application/json.
async fn fetch(http: &reqwest::Client, addr: SocketAddr, host: &str, path: &str) -> Option<String> {
    let response = http
        .get(format!("http://{addr}{path}"))
        .header(header::HOST, host)
        .send()
        .await
        .unwrap();
    if response.status() != 200 {
        return None;
    }
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    Some(response.text().await.unwrap())
}

async fn serve_http(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

#[tokio::test]
async fn the_association_check_fetches_both_files_over_https() {
    support::init_crypto();
    let client = support::client().await;
    let ns = support::namespace(&client, "app-association").await;
    let host = |h: &str| format!("{h}.{ns}.test");
    let hosts = [host("good"), host("wrong"), host("missing"), host("html")];
    let pki = TestPki::new(&hosts);
    // The operator's own server (from the caches) for the good host; a hand-made one for the rest.
    let operator_server = serve_https(public_router(app_state_for(&client, &ns).await), &pki).await;
    let other_server = serve_https(other_files(host("wrong"), host("html")), &pki).await;
    let settings = AssociationSettings {
        roots: TrustRoots::Only(vec![pki.ca_pem.clone()]),
        resolve: vec![
            (host("good"), operator_server),
            (host("wrong"), other_server),
            (host("missing"), other_server),
            (host("html"), other_server),
        ],
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
    };
    users_secret(&client, &ns, "").await;
    let _operator = start_operator(&client, &ns, settings);
    create(&client, &ns, vec![org("acme", json!({}))]).await;
    create(
        &client,
        &ns,
        vec![
            ios(
                "good-ios",
                "acme",
                "com.acme.good",
                &format!("https://{}/auth", host("good")),
            ),
            android(
                "good-android",
                "acme",
                "com.acme.good",
                &[FP1, FP2],
                &format!("https://{}/auth", host("good")),
            ),
            ios(
                "wrong-ios",
                "acme",
                "com.acme.wrong",
                &format!("https://{}/auth", host("wrong")),
            ),
            android(
                "wrong-android",
                "acme",
                "com.acme.listed",
                &[FP1, FP2],
                &format!("https://{}", host("wrong")),
            ),
            ios(
                "missing-ios",
                "acme",
                "com.acme.missing",
                &format!("https://{}/x", host("missing")),
            ),
            android(
                "html-android",
                "acme",
                "com.acme.html",
                &[FP1],
                &format!("https://{}", host("html")),
            ),
        ],
    )
    .await;
    let apps: Api<NativeApp> = Api::namespaced(client.clone(), &ns);
    let verified = "AssociationVerified";
    app_state(&apps, "good-ios", verified, "True", "Verified").await;
    app_state(&apps, "good-android", verified, "True", "Verified").await;
    let wrong = app_state(&apps, "wrong-ios", verified, "False", "AppNotListed").await;
    assert!(
        condition(&wrong, verified)
            .unwrap()
            .2
            .contains(&format!("does not list {TEAM}.com.acme.wrong"))
    );
    let wrong = app_state(&apps, "wrong-android", verified, "False", "AppNotListed").await;
    assert!(
        condition(&wrong, verified).unwrap().2.contains(FP2),
        "names the missing fingerprint"
    );
    let missing = app_state(&apps, "missing-ios", verified, "False", "FileAbsent").await;
    assert!(condition(&missing, verified).unwrap().2.contains("HTTP 404"));
    app_state(&apps, "html-android", verified, "False", "WrongContentType").await;
    assert!(!events_for(&client, &ns, "missing-ios", "FileAbsent").await.is_empty());
    for name in ["good-ios", "wrong-ios", "missing-ios"] {
        let app = apps.get(name).await.unwrap();
        assert_eq!(
            ready_of(app.status.as_ref().map(|s| &s.conditions)).unwrap().0,
            "True",
            "{name}"
        );
    }
}

/// The "other team's" server: a wrong AASA and assetlinks on `wrong`, HTML on `html`, 404
/// elsewhere.
fn other_files(wrong: String, html: String) -> Router {
    let route = move |file: &'static str| {
        let (wrong, html) = (wrong.clone(), html.clone());
        get(move |headers: HeaderMap| async move {
            let host = headers[header::HOST]
                .to_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string();
            if host == html {
                return ([(header::CONTENT_TYPE, "text/html")], "<html>hello</html>").into_response();
            }
            if host != wrong {
                return StatusCode::NOT_FOUND.into_response();
            }
            let body = if file == "aasa" {
                json!({"applinks": {"details": [{"appIDs": [format!("{TEAM}.com.acme.other")], "components": [{"/": "/*"}]}]}})
            } else {
                json!([{"relation": ["delegate_permission/common.handle_all_urls"],
                    "target": {"namespace": "android_app", "package_name": "com.acme.listed", "sha256_cert_fingerprints": [FP1]}}])
            };
            ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        })
    };
    Router::new()
        .route("/.well-known/apple-app-site-association", route("aasa"))
        .route("/.well-known/assetlinks.json", route("assetlinks"))
}

/// Serves `router` over TLS with the test certificate on a loopback port.
async fn serve_https(router: Router, pki: &TestPki) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(&pki.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(&pki.key_pem).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    };
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
