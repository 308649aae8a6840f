//! Secrets, codes, passwords and tokens never reach the logs: the real binary runs with
//! `RUST_LOG=debug` through a password login, an e-mail code login (with a failed send first,
//! whose reason is logged), a code exchange, userinfo and client credentials, and its whole
//! output is searched for every generated value, the SMTP passwords and the e-mail body.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support;
use crate::support::oauth::{Server, location_param, login};
use crate::support::process::Operator;
use crate::support::smtp::{EmailLogin, Security, SmtpServer, code_of, set_smtp_password, smtp_secret};

#[tokio::test]
async fn no_secret_code_password_or_token_in_the_logs() {
    // The in-process server only provides the fixtures; the binary serves the requests.
    let fixtures = Server::start("logs").await;
    let mut smtp = SmtpServer::start(Security::None, None, Some(("mailer", "smtp-pw-right-7"))).await;
    smtp_secret(
        &fixtures.client,
        &fixtures.ns,
        "logco-smtp",
        "mailer",
        "smtp-pw-wrong-3",
    )
    .await;
    let methods = json!({"passwords": {"secretName": "logco-users"},
                         "email": smtp.login_method(Security::None, Some("logco-smtp"))});
    let mut t = fixtures
        .tenant(
            "logco",
            json!({"loginMethods": methods}),
            &[("liz@example.com", "pw-liz-secret-1")],
        )
        .await;
    t.activate_secret(&fixtures, "logco-secret").await;
    let operator = Operator::start_on_localhost(&fixtures.ns, "debug");
    let port = operator.public;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("http://localhost:{port}");
    let issuer = format!("{base}/o/{}", t.client_id);
    let ready = support::wait_until(Duration::from_secs(30), || {
        let (http, issuer, cid, secret) = (http.clone(), issuer.clone(), t.client_id.clone(), t.secret.clone());
        async move {
            let r = http
                .post(format!("{issuer}/oauth2/token"))
                .basic_auth(cid, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(r.json::<Value>().await.ok()?)
        }
    })
    .await
    .expect("the binary never served client_credentials");
    let url = format!(
        "{base}/login?client_id={}&response_type=code&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&state=st",
        t.client_id
    );
    // The binary's watcher of the passwords Secret may still be starting: retry the login.
    let code = support::wait_until(Duration::from_secs(20), || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let resp = login(&http, &url, "liz@example.com", "pw-liz-secret-1").await;
            (resp.status() == 303).then(|| location_param(&resp, "code")).flatten()
        }
    })
    .await
    .expect("the binary never accepted the password");
    let form = reqwest::multipart::Form::new()
        .text("code", code.clone())
        .text("redirect_uri", "https://app.example.com/cb");
    let verified: Value = http
        .post(format!("{base}/api/v1/verify"))
        .basic_auth(&t.client_id, Some(&t.secret))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = verified["access_token"].as_str().expect("a token").to_string();
    let user = http
        .post(format!("{base}/api/v1/userinfo"))
        .basic_auth(&t.client_id, Some(&t.secret))
        .body(access.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 200);
    let email_code = email_login(&fixtures, &http, &url, &mut smtp).await;
    let output = operator.stop_and_read_logs().await;
    assert!(
        output.contains("client authentication") || output.contains("code issued"),
        "debug logs were written"
    );
    assert!(
        output.contains("the login code e-mail could not be sent") && output.contains("535"),
        "the failed send is logged with the server's reason"
    );
    for (what, value) in [
        ("client secret", t.secret.as_str()),
        ("password", "pw-liz-secret-1"),
        ("code", code.as_str()),
        ("CentralAuth token", access.as_str()),
        ("JWT access token", ready["access_token"].as_str().unwrap()),
        ("wrong SMTP password", "smtp-pw-wrong-3"),
        ("SMTP password", "smtp-pw-right-7"),
        ("e-mail subject", "Your login code for"),
        ("e-mail body", "nobody can log in"),
    ] {
        assert!(!output.contains(value), "the {what} appears in the logs");
    }
    // Five digits occur inside timestamps and durations by chance (a clean-clone CI run failed
    // on that): the code must not appear as a number of its own.
    assert!(
        !contains_number(&output, &email_code),
        "the e-mail login code appears in the logs"
    );
}

/// Whether `digits` occurs in `text` with no digit right before or after it.
fn contains_number(text: &str, digits: &str) -> bool {
    text.match_indices(digits).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + digits.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

#[test]
fn a_number_of_its_own_is_found_and_digits_inside_a_longer_number_are_not() {
    assert!(contains_number("code=04217 sent", "04217"));
    assert!(contains_number("04217", "04217"));
    assert!(!contains_number("2026-12-02T07:18:59.604217Z", "04217"));
    assert!(!contains_number("took 1042173 ns", "04217"));
}

/// An e-mail code login against the binary: the first send fails (the Secret holds a wrong
/// SMTP password, or the binary has not loaded it yet), the password is fixed, the next send
/// succeeds and the code logs in. Returns the code.
async fn email_login(fixtures: &Server, http: &reqwest::Client, url: &str, smtp: &mut SmtpServer) -> String {
    let flow = EmailLogin::start(http, url).await;
    assert_eq!(flow.send("max@example.com").await.status(), 503);
    set_smtp_password(&fixtures.client, &fixtures.ns, "logco-smtp", "smtp-pw-right-7").await;
    support::wait_until(Duration::from_secs(20), || async {
        (flow.send("max@example.com").await.status() == 200).then_some(())
    })
    .await
    .expect("the binary never sent the code with the fixed SMTP password");
    let mail = smtp.next_mail().await;
    let code = code_of(&mail);
    let resp = flow.code(&code).await;
    assert_eq!(resp.status(), 303);
    assert!(mail["data"].as_str().unwrap().contains("nobody can log in"));
    code
}
