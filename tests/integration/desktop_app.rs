//! Desktop NativeApps (docs/desktop-apps.md): a loopback redirect on any port and a client
//! assertion signed with the key of the pinned certificate at the code exchange.
//!
//! The desktop app is `tests/clients/python/desktop_client.py` (`cryptography` makes its
//! self-signed certificates; it listens on a random loopback port); the test plays the
//! browser. The operator binary serves the requests at debug level, so the test also searches
//! its whole output for every assertion, code and challenge; the in-process fixtures server
//! runs the controllers that register the apps on the real control plane.

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use centralauth_operator::crd::NativeApp;

use crate::oauth_clients::python;
use crate::support;
use crate::support::oauth::{Server, Tenant, location_param, login};
use crate::support::process::Operator;

const USER: (&str, &str) = ("dora@example.com", "pw-dora-desktop-1");

/// A key and self-signed certificate made by the desktop client.
struct Identity {
    thumbprint: String,
    key: String,
    cert: String,
    alg: &'static str,
}

async fn keygen(dir: &std::path::Path, name: &str, alg: &'static str) -> Identity {
    let out = python("desktop_client.py", &json!({"dir": dir, "name": name, "alg": alg})).await;
    Identity {
        thumbprint: out["thumbprint"].as_str().unwrap().into(),
        key: out["key"].as_str().unwrap().into(),
        cert: out["cert"].as_str().unwrap().into(),
        alg,
    }
}

/// Registers a Desktop app and waits until its controller says it is Ready.
async fn desktop_app(server: &Server, t: &Tenant, name: &str, link: &str, thumbprint: &str) -> String {
    let apps: Api<NativeApp> = Api::namespaced(server.client.clone(), &server.ns);
    let bundle = format!("com.example.{}", name.replace('-', ""));
    let app: NativeApp = serde_json::from_value(json!({
        "apiVersion": "centralauth.io/v1alpha1", "kind": "NativeApp", "metadata": {"name": name},
        "spec": {"organizationRef": {"name": t.name}, "displayName": name, "platform": "Desktop",
                 "bundleId": bundle, "certificateThumbprint": thumbprint.to_uppercase(), "appLink": link},
    }))
    .unwrap();
    apps.create(&PostParams::default(), &app).await.unwrap();
    let ready = support::wait_until(Duration::from_secs(30), || async {
        let status = apps.get(name).await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.status == "True").then_some(status)
    })
    .await
    .expect("the desktop app never became Ready");
    assert_eq!(ready.redirect_uri.as_deref(), Some(link));
    assert!(
        ready.conditions.iter().all(|c| c.type_ != "AssociationVerified"),
        "a desktop app has no association files to verify"
    );
    bundle
}

/// One login of the desktop client: it prints the authorization URL, the test logs in as the
/// browser would and follows the redirect to the client's loopback listener, the client
/// exchanges the code. Returns the client's report and the redirect's query.
async fn desktop_login(t: &Tenant, app_id: &str, path: &str, id: &Identity, knobs: Value) -> (Value, String) {
    let mut input = json!({"issuer": t.issuer, "client_id": t.client_id, "app_id": app_id, "path": path,
                           "key": id.key, "cert": id.cert, "alg": id.alg});
    if let (Some(i), Value::Object(k)) = (input.as_object_mut(), knobs) {
        i.extend(k);
    }
    let dir = support::repo_root().join("tests/clients/python");
    let mut child = tokio::process::Command::new(dir.join(".venv/bin/python"))
        .current_dir(&dir)
        .args(["desktop_client.py", "login", &input.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the Python venv of tests/clients/python (tests/clients/install.sh makes it)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next_line().await.unwrap().expect("the authorization URL")).unwrap();
    let url = first["authorize_url"].as_str().unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let resp = login(&http, url, USER.0, USER.1).await;
    assert_eq!(resp.status(), 303, "the login redirects to the app");
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location_param(&resp, "desktop_challenge").is_some(), "{location}");
    let page = http
        .get(&location)
        .send()
        .await
        .expect("the app's loopback listener answers");
    assert_eq!(page.status(), 200);
    let report: Value = serde_json::from_str(&lines.next_line().await.unwrap().expect("the exchange")).unwrap();
    child.wait().await.unwrap();
    (report, location)
}

/// Asserts an `invalid_client` refusal whose description contains `hint`.
fn refused(report: &Value, hint: &str) {
    assert_eq!(report["status"], 400, "{report}");
    assert_eq!(report["body"]["error"], "invalid_client", "{report}");
    let description = report["body"]["error_description"].as_str().unwrap();
    assert!(description.contains(hint), "{description}");
    let assertion = report["assertion"].as_str().unwrap();
    for part in assertion.split('.') {
        assert!(!description.contains(part), "the description repeats the assertion");
    }
}

#[tokio::test]
async fn a_desktop_app_logs_in_on_a_random_loopback_port_and_wrong_assertions_are_refused() {
    let fixtures = Server::start("desktop").await;
    let t = fixtures.tenant("deskco", json!({}), &[USER]).await;
    let keys = std::env::temp_dir().join(format!("desktop-keys-{}", std::process::id()));
    let (es, other, rsa) = (
        keygen(&keys, "es-app", "ES256").await,
        keygen(&keys, "other-build", "ES256").await,
        keygen(&keys, "rsa-app", "RS256").await,
    );
    let es_id = desktop_app(&fixtures, &t, "desk-es", "http://127.0.0.1/callback", &es.thumbprint).await;
    let rsa_id = desktop_app(&fixtures, &t, "desk-rsa", "http://127.0.0.1/rsa/cb", &rsa.thumbprint).await;
    // The IPv6 loopback where the machine has one (CI machines without IPv6 skip it, loudly).
    let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let v6_id = match v6 {
        true => Some(desktop_app(&fixtures, &t, "desk-v6", "http://[::1]/v6/cb", &other.thumbprint).await),
        false => {
            eprintln!("no IPv6 loopback here: the http://[::1]/ desktop login is not tested");
            None
        }
    };
    let operator = Operator::start_on_localhost(&fixtures.ns, "debug");
    operator.wait_ready().await;
    let issuer = format!("http://localhost:{}/o/{}", operator.public, t.client_id);
    let t = Tenant { issuer, ..t };
    support::wait_until(Duration::from_secs(20), || async {
        let r = reqwest::get(format!("{}/.well-known/openid-configuration", t.issuer))
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await
    .expect("the binary never served discovery");

    let (ok, location) = desktop_login(&t, &es_id, "/callback", &es, json!({})).await;
    assert_eq!(ok["status"], 200, "{ok}");
    assert!(ok["body"]["access_token"].is_string() && ok["body"]["id_token"].is_string());
    let port = location.split(':').nth(2).unwrap().split('/').next().unwrap();
    assert_ne!(port, "80", "the listener's random port");
    let rs = desktop_login(&t, &rsa_id, "/rsa/cb", &rsa, json!({})).await.0;
    assert_eq!(rs["status"], 200, "RS256: {rs}");
    let ps = desktop_login(&t, &rsa_id, "/rsa/cb", &Identity { alg: "PS256", ..rsa }, json!({}))
        .await
        .0;
    assert_eq!(ps["status"], 200, "PS256: {ps}");

    let mut reports = vec![ok.clone(), rs.clone(), ps.clone()];
    if let Some(v6_id) = &v6_id {
        let (six, location) = desktop_login(&t, v6_id, "/v6/cb", &other, json!({"host": "::1"})).await;
        assert!(location.starts_with("http://[::1]:"), "{location}");
        assert_eq!(six["status"], 200, "[::1]: {six}");
        reports.push(six);
    }

    let wrong_cert = desktop_login(&t, &es_id, "/callback", &other, json!({})).await.0;
    refused(&wrong_cert, &other.thumbprint);
    let old_challenge = ok["challenge"].as_str().unwrap();
    let replayed = desktop_login(&t, &es_id, "/callback", &es, json!({"challenge": old_challenge}))
        .await
        .0;
    refused(&replayed, "desktop_challenge");
    let old_assertion = ok["assertion"].as_str().unwrap();
    let resent = desktop_login(&t, &es_id, "/callback", &es, json!({"assertion": old_assertion}))
        .await
        .0;
    refused(&resent, "desktop_challenge");
    let expired = desktop_login(&t, &es_id, "/callback", &es, json!({"exp_offset": -120}))
        .await
        .0;
    refused(&expired, "expired");
    let missing = desktop_login(&t, &es_id, "/callback", &es, json!({"omit_assertion": true}))
        .await
        .0;
    refused(
        &missing,
        "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    );

    let output = operator.stop_and_read_logs().await;
    assert!(output.contains("code issued"), "debug logs were written");
    assert!(
        output.contains("desktop client assertion verified") && output.contains("desktop client assertion refused"),
        "exchanges are logged (without their assertions)"
    );
    reports.extend([wrong_cert, replayed, resent, expired, missing]);
    for report in &reports {
        let assertion = report["assertion"].as_str().unwrap();
        let signature = assertion.rsplit('.').next().unwrap();
        assert!(!output.contains(signature), "an assertion appears in the logs");
        assert!(
            !output.contains(report["challenge"].as_str().unwrap()),
            "a challenge appears in the logs"
        );
    }
    std::fs::remove_dir_all(&keys).ok();
}

/// The test certificate and PKCS#8 key of the unit tests (src/oauth/desktop/testdata).
const EC_CERT: &[u8] = include_bytes!("../../src/oauth/desktop/testdata/ec.der");
const EC_KEY: &[u8] = include_bytes!("../../src/oauth/desktop/testdata/ec.pk8");

/// An ES256 client assertion of app `app_id` for `aud` over `challenge`, made here with `ring`.
fn es256_assertion(app_id: &str, aud: &str, challenge: &str) -> String {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let now = centralauth_operator::oauth::now();
    let header = json!({"alg": "ES256", "x5c": [STANDARD.encode(EC_CERT)]});
    let claims =
        json!({"iss": app_id, "sub": app_id, "aud": aud, "jti": "ca-1", "exp": now + 60, "challenge": challenge});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let rng = ring::rand::SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, EC_KEY, &rng).unwrap();
    let signature = pair.sign(&rng, input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The CentralAuth protocol: `/login` with `app_id` and a loopback redirect on any port
/// (`localhost` and another path refused without a redirect), `/api/v1/verify` with the
/// assertion (`aud` the verify URL) — and without it refused with `noPermission`.
#[tokio::test]
async fn a_desktop_app_logs_in_through_the_centralauth_protocol() {
    let server = Server::start("desktop-ca").await;
    let mut t = server.tenant("deskca", json!({}), &[USER]).await;
    t.activate_secret(&server, "deskca-secret-1").await;
    let thumbprint = centralauth_operator::oauth::desktop::thumbprint(EC_CERT);
    let app_id = desktop_app(&server, &t, "desk-ca", "http://127.0.0.1/done", &thumbprint).await;
    let http = server.http(&[]);
    let verifier = "desktop-centralauth-verifier-0123456789-abcdefghijk";
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
    let pkce = [
        ("app_id", app_id.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for bad in [
        "http://localhost:5123/done",
        "http://127.0.0.1:5123/other",
        "http://[::1]:5123/done",
    ] {
        let r = http.get(t.login_url(bad, &pkce)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.headers().get("location").is_none(), "{bad}");
    }
    let redirect = "http://127.0.0.1:5123/done";
    let mut codes = vec![];
    for _ in 0..2 {
        let resp = login(&http, &t.login_url(redirect, &pkce), USER.0, USER.1).await;
        assert_eq!(resp.status(), 303);
        let code = location_param(&resp, "code").unwrap();
        codes.push((code, location_param(&resp, "desktop_challenge").unwrap()));
    }
    let verify = |code: &str, assertion: Option<String>| {
        let mut form = reqwest::multipart::Form::new()
            .text("code", code.to_string())
            .text("redirect_uri", redirect)
            .text("code_verifier", verifier);
        if let Some(a) = assertion {
            form = form
                .text(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .text("client_assertion", a);
        }
        http.post(format!("{}/api/v1/verify", t.origin()))
            .multipart(form)
            .send()
    };
    let aud = format!("{}/api/v1/verify", t.origin());
    let ok = verify(&codes[0].0, Some(es256_assertion(&app_id, &aud, &codes[0].1)))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert!(body["access_token"].is_string());
    let without = verify(&codes[1].0, None).await.unwrap();
    assert_eq!(without.status(), 401);
    let err: Value = without.json().await.unwrap();
    assert_eq!(err["errorCode"], "noPermission");
    assert!(err["message"].as_str().unwrap().contains("Desktop app"), "{err}");
}

/// Loopback redirects other than `http://127.0.0.1/…` and `http://[::1]/…` without a port,
/// and malformed thumbprints, are refused at apply with a message naming the field.
#[tokio::test]
async fn desktop_app_links_and_thumbprints_are_checked_at_apply() {
    let client = support::client().await;
    let ns = support::namespace(&client, "desktop-cel").await;
    let apps: Api<NativeApp> = Api::namespaced(client, &ns);
    let good_thumb = "ab".repeat(32);
    let spec = |link: &str, thumb: Option<&str>| {
        let mut spec = json!({"organizationRef": {"name": "acme"}, "displayName": "D", "platform": "Desktop",
                              "bundleId": "com.example.desk", "appLink": link});
        if let Some(t) = thumb {
            spec["certificateThumbprint"] = json!(t);
        }
        serde_json::from_value::<NativeApp>(json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "NativeApp", "metadata": {"name": "d"}, "spec": spec,
        }))
        .unwrap()
    };
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    for ok in ["http://127.0.0.1/callback", "http://[::1]/cb", "http://127.0.0.1"] {
        apps.create(&dry, &spec(ok, Some(&good_thumb)))
            .await
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for (link, thumb, field, hint) in [
        (
            "http://app.example.com/cb",
            Some(good_thumb.as_str()),
            "spec.appLink",
            "loopback",
        ),
        (
            "http://localhost/cb",
            Some(&good_thumb),
            "spec.appLink",
            "not localhost",
        ),
        (
            "http://127.0.0.1:8080/cb",
            Some(&good_thumb),
            "spec.appLink",
            "without a port",
        ),
        (
            "myapp://callback",
            Some(&good_thumb),
            "spec.appLink",
            "custom URL schemes",
        ),
        (
            "https://app.example.com/cb",
            Some(&good_thumb),
            "spec.appLink",
            "loopback",
        ),
        (
            "http://127.0.0.1/cb",
            None,
            "spec.certificateThumbprint",
            "needs bundleId and certificateThumbprint",
        ),
        (
            "http://127.0.0.1/cb",
            Some("AB:CD"),
            "spec.certificateThumbprint",
            "64 hex digits",
        ),
    ] {
        let err = apps.create(&dry, &spec(link, thumb)).await.expect_err(link).to_string();
        assert!(err.contains(field) && err.contains(hint), "{link} {thumb:?}: {err}");
    }
    let mut ios = spec("http://127.0.0.1/cb", None);
    ios.spec.platform = centralauth_operator::crd::Platform::Ios;
    ios.spec.team_id = Some("ABCDE12345".into());
    let err = apps.create(&dry, &ios).await.expect_err("iOS on http").to_string();
    assert!(err.contains("appLink must use https://"), "{err}");
}
