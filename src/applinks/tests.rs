use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::verify::glob;
use super::*;
use crate::crd::{NativeAppSpec, OrganizationRef, Platform};

const FP1: &str = "14:6D:E9:83:C5:73:06:50:D8:EE:B9:95:2F:34:FC:64:16:A0:83:42:E6:1D:BE:A8:8A:04:96:B2:3F:CF:44:E5";
const FP2: &str = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99";

fn stamp(meta: &mut kube::api::ObjectMeta, ns: &str, name: &str, secs: i64) {
    meta.name = Some(name.into());
    meta.namespace = Some(ns.into());
    meta.uid = Some(format!("uid-{ns}-{name}"));
    meta.creation_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap()));
}

pub(crate) fn org(ns: &str, name: &str, origins: &[&str]) -> Arc<Organization> {
    let mut o = crate::tenant::tests::org(None, None);
    o.spec.allowed_origins = origins.iter().map(|s| s.to_string()).collect();
    stamp(&mut o.metadata, ns, name, 1);
    Arc::new(o)
}

fn app(ns: &str, name: &str, org: &str, link: &str, secs: i64, platform: Platform) -> NativeApp {
    let mut a = NativeApp::new(
        name,
        NativeAppSpec {
            organization_ref: OrganizationRef { name: org.into() },
            display_name: name.into(),
            platform,
            bundle_id: None,
            team_id: None,
            package_name: None,
            sha256_cert_fingerprints: vec![],
            app_link: link.into(),
            certificate_thumbprint: None,
        },
    );
    stamp(&mut a.metadata, ns, name, secs);
    a
}

pub(crate) fn ios(ns: &str, name: &str, org: &str, bundle: &str, link: &str, secs: i64) -> Arc<NativeApp> {
    let mut a = app(ns, name, org, link, secs, Platform::Ios);
    a.spec.bundle_id = Some(bundle.into());
    a.spec.team_id = Some("ABCDE12345".into());
    Arc::new(a)
}

pub(crate) fn android(
    ns: &str,
    name: &str,
    org: &str,
    pkg: &str,
    fps: &[&str],
    link: &str,
    secs: i64,
) -> Arc<NativeApp> {
    let mut a = app(ns, name, org, link, secs, Platform::Android);
    a.spec.package_name = Some(pkg.into());
    a.spec.sha256_cert_fingerprints = fps.iter().map(|s| s.to_string()).collect();
    Arc::new(a)
}

pub(crate) fn desktop(ns: &str, name: &str, org: &str, bundle: &str, link: &str, secs: i64) -> Arc<NativeApp> {
    let mut a = app(ns, name, org, link, secs, Platform::Desktop);
    a.spec.bundle_id = Some(bundle.into());
    a.spec.certificate_thumbprint = Some("ab".repeat(32));
    Arc::new(a)
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn set<'a>(items: &[&'a str]) -> BTreeSet<&'a str> {
    items.iter().copied().collect()
}

/// Asserts the AASA has exactly the keys Apple documents for the current format and returns
/// `(appIDs, components)` per details entry.
fn aasa_entries(text: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let v: Value = serde_json::from_str(text).unwrap();
    assert_eq!(keys(&v), set(&["applinks"]));
    assert_eq!(keys(&v["applinks"]), set(&["details"]));
    v["applinks"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(keys(d), set(&["appIDs", "components"]));
            let ids = d["appIDs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap().to_string());
            let comps = d["components"].as_array().unwrap().iter().map(|c| {
                assert_eq!(keys(c), set(&["/"]));
                c["/"].as_str().unwrap().to_string()
            });
            (ids.collect(), comps.collect())
        })
        .collect()
}

/// Asserts assetlinks.json has exactly the fields Google documents and returns
/// `(package, fingerprints)` per statement.
fn assetlink_entries(text: &str) -> Vec<(String, Vec<String>)> {
    let v: Value = serde_json::from_str(text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(keys(s), set(&["relation", "target"]));
            assert_eq!(s["relation"], json!([HANDLE_ALL_URLS]));
            let t = &s["target"];
            assert_eq!(keys(t), set(&["namespace", "package_name", "sha256_cert_fingerprints"]));
            assert_eq!(t["namespace"], "android_app");
            let fps = t["sha256_cert_fingerprints"].as_array().unwrap();
            let fps = fps.iter().map(|f| f.as_str().unwrap().to_string()).collect();
            (t["package_name"].as_str().unwrap().to_string(), fps)
        })
        .collect()
}

/// Six apps of organization ns/acme: on app.acme.com two iOS apps and an Android build share
/// `/shop` and one iOS app takes the root; pay.acme.com has one app on both platforms.
fn apps_on_two_hosts() -> Vec<Arc<NativeApp>> {
    vec![
        ios(
            "ns",
            "shop-ios",
            "acme",
            "com.acme.shop",
            "https://app.acme.com/shop",
            10,
        ),
        android(
            "ns",
            "shop-android",
            "acme",
            "com.acme.shop",
            &[FP1, FP2],
            "https://app.acme.com/shop",
            11,
        ),
        ios(
            "ns",
            "news-ios",
            "acme",
            "com.acme.news",
            "https://app.acme.com/shop/",
            12,
        ),
        ios("ns", "root-ios", "acme", "com.acme.root", "https://app.acme.com", 13),
        android(
            "ns",
            "pay-android",
            "acme",
            "com.acme.pay",
            &[FP2],
            "https://pay.acme.com/auth",
            14,
        ),
        ios("ns", "pay-ios", "acme", "com.acme.pay", "https://pay.acme.com/auth", 15),
    ]
}

#[test]
fn mixed_apps_on_two_hosts_give_exactly_the_documented_files() {
    let orgs = vec![org("ns", "acme", &["https://acme.com"])];
    let apps = apps_on_two_hosts();
    let first = listed_on("APP.acme.com", &OrgsByName::new(&orgs), &apps);
    assert_eq!(first.len(), 4);
    let files = host_files(&first);
    assert_eq!(
        aasa_entries(&files.aasa),
        vec![
            (vec!["ABCDE12345.com.acme.root".to_string()], vec!["/*".to_string()]),
            (
                vec![
                    "ABCDE12345.com.acme.news".to_string(),
                    "ABCDE12345.com.acme.shop".to_string()
                ],
                vec!["/shop/*".to_string()]
            ),
        ]
    );
    assert_eq!(
        assetlink_entries(&files.assetlinks),
        vec![("com.acme.shop".to_string(), vec![FP1.to_string(), FP2.to_string()])]
    );

    let second = host_files(&listed_on("pay.acme.com", &OrgsByName::new(&orgs), &apps));
    assert_eq!(
        aasa_entries(&second.aasa),
        vec![(vec!["ABCDE12345.com.acme.pay".to_string()], vec!["/auth/*".to_string()])]
    );
    assert_eq!(
        assetlink_entries(&second.assetlinks),
        vec![("com.acme.pay".to_string(), vec![FP2.to_string()])]
    );
    assert!(listed_on("elsewhere.acme.com", &OrgsByName::new(&orgs), &apps).is_empty());

    // What is generated is what the association check accepts.
    verify_aasa(files.aasa.as_bytes(), "ABCDE12345.com.acme.shop", "/shop/callback").unwrap();
    verify_aasa(files.aasa.as_bytes(), "ABCDE12345.com.acme.root", "/callback").unwrap();
    verify_assetlinks(files.assetlinks.as_bytes(), "com.acme.shop", &[FP1.into(), FP2.into()]).unwrap();
}

#[test]
fn app_id_redirect_uri_and_coverage() {
    let a = ios("ns", "a", "acme", "com.acme.shop", "https://app.acme.com/shop/", 1);
    let link = AppLink::parse(&a.spec.app_link).unwrap();
    assert_eq!(app_id(&a), Some("com.acme.shop"));
    assert_eq!(apple_app_id(&a).as_deref(), Some("ABCDE12345.com.acme.shop"));
    assert_eq!(link.redirect_uri(), "https://app.acme.com/shop/callback");
    assert!(link.covers("https://app.acme.com/shop/callback?x=1"));
    assert!(link.covers("https://APP.acme.com:443/shop"));
    assert!(!link.covers("https://app.acme.com/shopping/callback"));
    assert!(!link.covers("https://app.acme.com:8443/shop/callback"));
    let root = AppLink::parse("https://app.acme.com:8443").unwrap();
    assert_eq!(root.redirect_uri(), "https://app.acme.com:8443/callback");
    assert_eq!(root.component(), "/*");
    assert_eq!(AppLink::parse("myapp://x/y"), Err(AppLinkError::NotHttps));
    assert_eq!(AppLink::parse("https://u@x.com/y"), Err(AppLinkError::Malformed));
    assert_eq!(AppLink::parse("https://127.0.0.1/y"), Err(AppLinkError::Malformed));
}

/// Two organizations, and apps registered with every kind of problem (and without): on the
/// website, on a wildcard origin, of no organization, clashing app IDs, a squatted host.
fn registrations() -> (Vec<Arc<Organization>>, Vec<Arc<NativeApp>>) {
    let orgs = vec![
        org("ns", "acme", &["https://acme.com", "https://*.acme.com"]),
        org("ns", "other", &[]),
    ];
    let apps = vec![
        ios("ns", "site", "acme", "com.acme.site", "https://acme.com/app", 1),
        ios("ns", "wild", "acme", "com.acme.wild", "https://app.acme.com/x", 2),
        ios("ns", "orphan", "nobody", "com.acme.orphan", "https://app.acme.com/o", 3),
        android(
            "ns",
            "dup-a",
            "acme",
            "com.acme.dup",
            &[FP1],
            "https://app.acme.com/d",
            4,
        ),
        android(
            "ns",
            "dup-b",
            "acme",
            "com.acme.dup",
            &[FP2],
            "https://app.acme.com/d",
            5,
        ),
        ios("ns", "dup-ios", "acme", "com.acme.dup", "https://app.acme.com/d", 6),
        ios(
            "ns",
            "dup-ios-elsewhere",
            "acme",
            "com.acme.wild",
            "https://app.acme.com/y",
            7,
        ),
        ios("ns", "squatter", "other", "com.other.app", "https://app.acme.com/z", 8),
    ];
    (orgs, apps)
}

#[test]
fn registration_problems() {
    let (orgs, apps) = registrations();
    let problem = |name: &str| {
        let a = apps.iter().find(|a| a.metadata.name.as_deref() == Some(name)).unwrap();
        check(a, &OrgsByName::new(&orgs), &apps).err().map(|p| p.reason())
    };
    assert_eq!(problem("site"), Some("AppLinkIsWebsite"));
    assert_eq!(
        problem("wild"),
        None,
        "an origin only covered by a wildcard is accepted"
    );
    assert_eq!(problem("orphan"), Some("OrganizationNotFound"));
    assert_eq!(problem("dup-a"), None);
    assert_eq!(problem("dup-b"), Some("AppIdConflict"), "same platform, same ID");
    assert_eq!(problem("dup-ios"), None, "iOS + Android builds of one app on one link");
    assert_eq!(problem("dup-ios-elsewhere"), Some("AppIdConflict"));
    assert_eq!(problem("squatter"), Some("AppLinkHostTaken"));
    let msg = check(&apps[7], &OrgsByName::new(&orgs), &apps).unwrap_err().to_string();
    assert!(msg.contains("ns/acme") && msg.contains("app.acme.com"), "{msg}");
    let listed: Vec<_> = listed_on("app.acme.com", &OrgsByName::new(&orgs), &apps)
        .iter()
        .map(|a| a.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(listed, ["dup-ios", "dup-a", "wild"]);
}

#[test]
fn verification_reports_what_is_missing() {
    let current = json!({"applinks": {"details": [
        {"appIDs": ["T.a"], "components": [{"/": "/auth/private/*", "exclude": true}, {"/": "/auth/*"}]},
    ]}})
    .to_string();
    assert_eq!(verify_aasa(current.as_bytes(), "T.a", "/auth/callback"), Ok(()));
    assert!(matches!(
        verify_aasa(current.as_bytes(), "T.a", "/auth/private/callback"),
        Err(Missing::PathNotCovered { .. })
    ));
    assert!(matches!(
        verify_aasa(current.as_bytes(), "T.b", "/auth/callback"),
        Err(Missing::NotListed { .. })
    ));
    let legacy = json!({"applinks": {"apps": [], "details": [{"appID": "T.a", "paths": ["NOT /x/*", "/*"]}]}});
    assert_eq!(
        verify_aasa(legacy.to_string().as_bytes(), "T.a", "/auth/callback"),
        Ok(())
    );
    assert!(verify_aasa(legacy.to_string().as_bytes(), "T.a", "/x/callback").is_err());
    let html = b"<html>not found</html>";
    assert!(matches!(verify_aasa(html, "T.a", "/"), Err(Missing::NotJson { .. })));
    assert!(matches!(
        verify_assetlinks(html, "p.q", &[]),
        Err(Missing::NotJson { .. })
    ));

    let links = json!([{"relation": [HANDLE_ALL_URLS], "target": {"namespace": "android_app",
        "package_name": "com.acme", "sha256_cert_fingerprints": [FP1.to_lowercase()]}}])
    .to_string();
    assert_eq!(verify_assetlinks(links.as_bytes(), "com.acme", &[FP1.into()]), Ok(()));
    let err = verify_assetlinks(links.as_bytes(), "com.acme", &[FP1.into(), FP2.into()]).unwrap_err();
    assert!(err.to_string().contains(FP2), "{err}");
    assert!(matches!(
        verify_assetlinks(links.as_bytes(), "com.other", &[FP1.into()]),
        Err(Missing::NotListed { .. })
    ));
}

#[test]
fn globs_and_hosts() {
    assert!(glob("/a/*", "/a/b/c", true));
    assert!(glob("/a/?", "/a/b", true));
    assert!(!glob("/a/?", "/a/bc", true));
    assert!(glob("*", "", true));
    assert!(!glob("/A/*", "/a/b", true));
    assert!(glob("/A/*", "/a/b", false));
    assert_eq!(normalize_host("App.Acme.com:8443"), "app.acme.com");
    assert_eq!(normalize_host("app.acme.com."), "app.acme.com");
    assert_eq!(configmap_name("app.acme.com"), "applinks-app.acme.com");
    let long = format!("{}.com", "a".repeat(250));
    assert!(configmap_name(&long).len() <= 253);
}

#[test]
fn the_host_prefilter_never_drops_a_link_on_the_host() {
    assert!(super::may_be_on("https://APP.Example.com/auth", "app.example.com"));
    assert!(super::may_be_on("https://bücher.example/auth", "xn--bcher-kva.example"));
    assert!(super::may_be_on("https://%61pp.example.com/auth", "app.example.com"));
    assert!(!super::may_be_on("https://other.example.com/auth", "app.example.com"));
}

#[test]
fn desktop_apps_register_a_loopback_redirect_and_no_host() {
    let orgs = vec![org("ns", "acme", &["https://acme.com"])];
    let apps = vec![
        desktop("ns", "desk", "acme", "com.acme.desk", "http://127.0.0.1/callback", 1),
        desktop("ns", "desk6", "acme", "com.acme.desk6", "http://[::1]/cb", 2),
        desktop(
            "ns",
            "same-loopback",
            "acme",
            "com.acme.other",
            "http://127.0.0.1/callback",
            3,
        ),
        ios("ns", "mobile", "acme", "com.acme.desk", "https://app.acme.com/d", 4),
        desktop("ns", "with-port", "acme", "com.acme.p", "http://127.0.0.1:8080/cb", 5),
        desktop("ns", "named", "acme", "com.acme.n", "http://localhost/cb", 6),
        desktop("ns", "https", "acme", "com.acme.h", "https://app.acme.com/cb", 7),
        desktop("ns", "query", "acme", "com.acme.q", "http://127.0.0.1/cb?x=1", 8),
    ];
    let verdict = |name: &str| {
        let a = apps.iter().find(|a| a.metadata.name.as_deref() == Some(name)).unwrap();
        check(a, &OrgsByName::new(&orgs), &apps)
    };
    assert_eq!(
        verdict("desk").unwrap().redirect_uri(),
        "http://127.0.0.1/callback",
        "the redirect is the app link itself"
    );
    assert_eq!(
        verdict("desk6").unwrap(),
        Registration::Loopback("http://[::1]/cb".into())
    );
    let taken = verdict("same-loopback").unwrap_err();
    assert_eq!(taken.reason(), "LoopbackRedirectTaken");
    assert!(taken.to_string().contains("ns/desk"), "{taken}");
    assert_eq!(
        verdict("mobile").unwrap_err().reason(),
        "AppIdConflict",
        "a desktop app's bundle ID is its own"
    );
    for name in ["with-port", "named", "https", "query"] {
        let err = verdict(name).unwrap_err();
        assert_eq!(err.reason(), "InvalidAppLink", "{name}");
        assert!(err.to_string().contains("http://127.0.0.1/<path>"), "{err}");
    }
    assert!(
        listed_on("127.0.0.1", &OrgsByName::new(&orgs), &apps).is_empty(),
        "desktop apps are in no association file"
    );
}
