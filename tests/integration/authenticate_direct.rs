//! `POST /api/v1/authenticate_direct` with the official client's wire format (Basic client
//! authentication, JSON `{email, state, redirect_uri, translations}`) against the real SMTP
//! server: the code e-mail goes out, the answer carries `{loginAttemptId, token, sentence,
//! allowedDate}`, the user's browser continues at `/login/direct`, and the code ends in the
//! usual redirect and `/api/v1/verify`. Errors are `{errorCode, message}` with their statuses.

use serde_json::{Value, json};

use crate::support::oauth::{Server, Tenant, location_param};
use crate::support::smtp::{EmailLogin, Security, SmtpServer, code_of};

const CB: &str = "https://app.example.com/cb";

async fn call(server: &Server, t: &Tenant, secret: &str, body: &Value) -> (u16, Value) {
    let resp = server
        .http(&[])
        .post(format!("{}/api/v1/authenticate_direct", t.origin()))
        .basic_auth(&t.client_id, Some(secret))
        .json(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn authenticate_direct_emails_a_code_that_the_browser_enters_and_the_app_redeems() {
    let server = Server::start("direct").await;
    let mut smtp = SmtpServer::start(Security::None, None, None).await;
    let extra = json!({"loginMethods": {"email": smtp.login_method(Security::None, None)},
                       "allowedEmailDomains": ["example.com"]});
    let mut t = server.tenant("acme", extra, &[]).await;
    t.activate_secret(&server, "acme-secret").await;
    let body = json!({"email": "Ann@Example.com", "state": "st-1", "redirect_uri": CB,
                      "translations": {"emailChallengeText": "Wir haben einen Code gesendet an"}});
    let before = centralauth_operator::oauth::now();
    let (status, attempt) = call(&server, &t, &t.secret, &body).await;
    assert_eq!(status, 200, "{attempt}");
    let sentence = attempt["sentence"].as_str().unwrap();
    assert!(
        sentence.starts_with("Wir haben einen Code gesendet an ann@example.com"),
        "{sentence}"
    );
    let allowed = attempt["allowedDate"].as_str().unwrap();
    let allowed: k8s_openapi::jiff::Timestamp = allowed.parse().expect("RFC 3339");
    assert!(allowed.as_second() > before, "a new code is allowed later: {attempt}");
    let code = code_of(&smtp.next_mail().await);

    let http = server.http(&[]);
    let id = attempt["loginAttemptId"].as_str().unwrap();
    let flow = EmailLogin::direct(&http, &t.origin(), id, attempt["token"].as_str().unwrap()).await;
    assert!(flow.page.contains("ann@example.com"), "the code form names the address");
    let done = flow.code(&code).await;
    assert_eq!(done.status(), 303);
    assert_eq!(location_param(&done, "state").as_deref(), Some("st-1"));
    let code = location_param(&done, "code").expect("a code");
    let tokens = t.verify(&http, &code, CB, None).await;
    assert!(tokens["access_token"].is_string(), "{tokens}");

    let again = call(&server, &t, &t.secret, &body).await;
    assert_eq!(
        (again.0, again.1["errorCode"].as_str()),
        (429, Some("tooManyRequests")),
        "the cool-down"
    );
    for (secret, body, expected) in [
        (
            "wrong",
            json!({"email": "bo@example.com", "redirect_uri": CB}),
            (401, "noPermission"),
        ),
        (
            t.secret.as_str(),
            json!({"email": "bo@other.example", "redirect_uri": CB}),
            (401, "noPermission"),
        ),
        (
            t.secret.as_str(),
            json!({"email": "bo@example.com", "redirect_uri": "https://evil.example/cb"}),
            (400, "callbackUrlInvalid"),
        ),
        (t.secret.as_str(), json!({"redirect_uri": CB}), (400, "missingFields")),
        (
            t.secret.as_str(),
            json!({"email": "not-an-address", "redirect_uri": CB}),
            (400, "missingFields"),
        ),
    ] {
        let (status, err) = call(&server, &t, secret, &body).await;
        assert_eq!((status, err["errorCode"].as_str().unwrap()), expected, "{body}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(smtp.received(), 1, "no other e-mail went out");
    let forged = http
        .get(format!("{}/login/direct?loginAttemptId={id}&token=forged", t.origin()))
        .send()
        .await
        .unwrap();
    assert_ne!(forged.status(), 200, "the token is needed to continue");
}
