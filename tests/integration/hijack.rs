//! `hijackProtection` against the real server: a session used from another address (as the
//! server sees it: the socket peer here, `--trusted-proxies` in production), another browser or
//! another native device is ended with a page saying why; the same client keeps it. The
//! setting is validated at apply.

use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use centralauth_operator::crd::Organization;

use centralauth_operator::oauth::pkce::s256;

use crate::oauth_attacks::{CB, V, authorize};
use crate::support::oauth::{Server, Tenant, cookie_set, location_param, login};

const ADA: (&str, &str) = ("ada@example.com", "pw-ada-1");
const HOME: [u8; 4] = [127, 0, 0, 1];
const ELSEWHERE: [u8; 4] = [127, 0, 0, 2];

async fn setup(test: &str, protection: Value) -> (Server, Tenant) {
    let server = Server::start(test).await;
    let mut t = server
        .tenant("acme", json!({"hijackProtection": protection}), &[ADA])
        .await;
    t.activate_secret(&server, "acme-secret").await;
    (server, t)
}

/// Logs in from `HOME` without a `User-Agent`: the session cookie.
async fn session(server: &Server, url: &str) -> String {
    let resp = login(&server.http_from(HOME, &[]), url, ADA.0, ADA.1).await;
    assert_eq!(resp.status(), 303, "the login succeeds");
    cookie_set(&resp, "ca_session=").expect("a session cookie")
}

/// Comes back to `url` with the session from `source` (and `user_agent`): the code of a
/// reused session, or the page shown instead.
async fn reuse(
    server: &Server,
    url: &str,
    cookie: &str,
    source: [u8; 4],
    user_agent: Option<&str>,
) -> Result<String, String> {
    let mut get = server.http_from(source, &[]).get(url).header("cookie", cookie);
    if let Some(ua) = user_agent {
        get = get.header("user-agent", ua);
    }
    let resp = get.send().await.unwrap();
    if resp.status() == 303 {
        return Ok(location_param(&resp, "code").expect("a code"));
    }
    assert_eq!(resp.status(), 200);
    Err(resp.text().await.unwrap())
}

#[tokio::test]
async fn hijack_another_address_or_browser_ends_the_session_and_the_same_client_keeps_it() {
    let (server, t) = setup("hijack-web", json!({"ip": true, "userAgent": true})).await;
    let url = authorize(&t, &[]);
    let cookie = session(&server, &url).await;
    assert!(
        reuse(&server, &url, &cookie, HOME, None).await.is_ok(),
        "the same client keeps it"
    );
    let page = reuse(&server, &url, &cookie, ELSEWHERE, None).await.unwrap_err();
    assert!(page.contains("hijackProtection.ip"), "the page says why: {page}");
    let after = reuse(&server, &url, &cookie, HOME, None).await;
    assert!(after.is_err(), "the session is ended, also for its own client");

    let cookie = session(&server, &url).await;
    let page = reuse(&server, &url, &cookie, HOME, Some("Other/1.0"))
        .await
        .unwrap_err();
    assert!(page.contains("hijackProtection.userAgent"), "{page}");
    assert!(reuse(&server, &url, &cookie, HOME, None).await.is_err());
}

/// [`setup`] with a native app: (server, tenant, app ID, callback).
async fn setup_native(test: &str, protection: Value) -> (Server, Tenant, String, String) {
    let (server, t) = setup(test, protection).await;
    let (app_id, callback) = t
        .native_app(&server, "acme-ios", "https://links.example.com/auth")
        .await;
    (server, t, app_id, callback)
}

/// The `/login` URL of a native app on `device`, with a PKCE challenge of [`V`].
fn native_login_url(t: &Tenant, app_id: &str, callback: &str, device: &str) -> String {
    let challenge = s256(V);
    let q = [
        ("app_id", app_id),
        ("device_id", device),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    t.login_url(callback, &q)
}

#[tokio::test]
async fn hijack_a_native_session_is_bound_to_its_device_id() {
    let (server, t, app_id, callback) = setup_native("hijack-native", json!({"deviceId": true})).await;
    let url = |device: &str| native_login_url(&t, &app_id, &callback, device);
    let cookie = session(&server, &url("device-1")).await;
    assert!(
        reuse(&server, &url("device-1"), &cookie, ELSEWHERE, Some("x"))
            .await
            .is_ok(),
        "only the device is bound"
    );
    let page = reuse(&server, &url("device-2"), &cookie, HOME, None).await.unwrap_err();
    assert!(page.contains("hijackProtection.deviceId"), "{page}");
    assert!(reuse(&server, &url("device-1"), &cookie, HOME, None).await.is_err());
    // The setting off: nothing is compared.
    let off = t.login_url(CB, &[]);
    let cookie = session(&server, &off).await;
    assert!(reuse(&server, &off, &cookie, ELSEWHERE, Some("y")).await.is_ok());
}

/// `/api/v1/verify` of a native app (no secret) from `source`: (status, body).
async fn native_verify(server: &Server, t: &Tenant, code: String, callback: &str, source: [u8; 4]) -> (u16, Value) {
    // As the official client sends it: multipart, no Authorization header.
    let form = reqwest::multipart::Form::new()
        .text("code", code)
        .text("redirect_uri", callback.to_string())
        .text("code_verifier", V);
    let url = format!("{}/api/v1/verify", t.origin());
    let resp = server
        .http_from(source, &[])
        .post(url)
        .multipart(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn hijack_a_native_code_redeemed_from_another_address_ends_the_session() {
    let (server, t, app_id, callback) = setup_native("hijack-native-ip", json!({"ip": true})).await;
    let url = native_login_url(&t, &app_id, &callback, "device-1");
    for (source, expected) in [(HOME, 200), (ELSEWHERE, 401)] {
        let resp = login(&server.http_from(HOME, &[]), &url, ADA.0, ADA.1).await;
        let code = location_param(&resp, "code").expect("a code");
        let (status, body) = native_verify(&server, &t, code, &callback, source).await;
        assert_eq!(status, expected, "{body}");
        if expected == 401 {
            assert_eq!(body["errorCode"], "sessionInvalid");
            assert!(
                body["message"].as_str().unwrap().contains("hijackProtection.ip"),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn hijack_protection_is_validated_at_apply() {
    let (server, _t) = setup("hijack-apply", json!({"ip": true})).await;
    let orgs: Api<Organization> = Api::namespaced(server.client.clone(), &server.ns);
    let bad = json!({"spec": {"hijackProtection": {"ip": "yes"}}});
    let err = orgs
        .patch("acme", &PatchParams::default(), &Patch::Merge(&bad))
        .await
        .expect_err("a string is not a boolean");
    assert!(err.to_string().contains("hijackProtection.ip"), "{err}");
}
