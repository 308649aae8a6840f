//! `loginMethods.email.attemptType: Link | Challenge` against the real SMTP server: the links
//! are read from the received message and opened in a second HTTP client (another device,
//! its own cookies); the starting client completes by reloading its wait page. Used, expired
//! and wrong links are refused with a clear page. The same end to end in two headless
//! Chromiums (`tests/clients/node/email_link_browser.mjs`): the starting browser's page script
//! polls and continues by itself once the other browser opened the link or clicked the number.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::email_login::centralauth_url;
use crate::support::oauth::{Server, Tenant, location_param};
use crate::support::smtp::{EmailLogin, Security, SmtpServer};

const CB: &str = "https://app.example.com/cb";

/// The body of a received message, decoded (7bit, quoted-printable or base64).
fn body_of(mail: &Value) -> String {
    let data = mail["data"].as_str().unwrap().replace("\r\n", "\n");
    let (head, body) = data.split_once("\n\n").unwrap();
    let head = head.to_ascii_lowercase();
    if head.contains("content-transfer-encoding: quoted-printable") {
        let unfolded = body.replace("=\n", "");
        let mut out = Vec::new();
        let bytes = unfolded.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    } else if head.contains("content-transfer-encoding: base64") {
        let joined: String = body.split_whitespace().collect();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(joined).unwrap()).unwrap()
    } else {
        body.to_string()
    }
}

/// The e-mail's links as `(label, secret)`: for a link the token twice ("this device", then
/// "the starting device"), for a challenge each number.
fn links_of(body: &str) -> Vec<(String, String)> {
    let mut label = String::new();
    let mut out = vec![];
    for line in body.lines().map(str::trim) {
        if let Some((_, secret)) = line.split_once("/login/mail?t=") {
            let l = line
                .split_once(':')
                .filter(|(n, _)| n.len() == 2)
                .map(|(n, _)| n.to_string());
            out.push((l.unwrap_or_else(|| label.clone()), secret.to_string()));
        } else if let Some(rest) = line.strip_prefix("To log in to ") {
            label = rest
                .split("shows ")
                .nth(1)
                .unwrap_or_default()
                .trim_end_matches(", then:")
                .to_string();
        }
    }
    out
}

struct Device {
    http: reqwest::Client,
    origin: String,
}

impl Device {
    /// A device with cookies of its own.
    fn new(server: &Server, t: &Tenant) -> Device {
        Device {
            http: server.http(&[]),
            origin: t.origin(),
        }
    }

    /// Opens the link with `secret` as a person does: the page, then its button.
    async fn open(&self, secret: &str) -> reqwest::Response {
        let page = self
            .http
            .get(format!("{}/login/mail?t={secret}", self.origin))
            .send()
            .await
            .unwrap();
        if page.status() == 200 {
            let html = page.text().await.unwrap();
            assert!(html.contains(r#"id="open-link""#), "{html}");
        }
        self.http
            .post(format!("{}/login/mail", self.origin))
            .form(&[("t", secret)])
            .send()
            .await
            .unwrap()
    }
}

/// The starting device's wait page (a reload of it).
async fn wait(http: &reqwest::Client, t: &Tenant, flow: &EmailLogin, poll: bool) -> reqwest::Response {
    let poll = if poll { "&poll=1" } else { "" };
    http.get(format!("{}/login/wait?loginAttemptId={}{poll}", t.origin(), flow.login))
        .header("cookie", &flow.cookie)
        .send()
        .await
        .unwrap()
}

async fn setup(test: &str, kind: &str, link_ttl: Option<Duration>) -> (Server, SmtpServer, Tenant) {
    let server = Server::start_with(test, |s| {
        if let Some(ttl) = link_ttl {
            s.email_codes.link_ttl = ttl;
        }
    })
    .await;
    let smtp = SmtpServer::start(Security::None, None, None).await;
    let mut method = smtp.login_method(Security::None, None);
    method["attemptType"] = json!(kind);
    let mut t = server
        .tenant("linkco", json!({"loginMethods": {"email": method}}), &[])
        .await;
    t.activate_secret(&server, "linkco-secret").await;
    (server, smtp, t)
}

/// Starts a login on `http` and asks for the e-mail to `email`: the flow, the wait page's
/// text, and the received message's body.
async fn start(http: &reqwest::Client, t: &Tenant, smtp: &mut SmtpServer, email: &str) -> (EmailLogin, String, String) {
    let flow = EmailLogin::start(http, &centralauth_url(t, "st-1")).await;
    let sent = flow.send(email).await;
    assert_eq!(sent.status(), 303, "{}", sent.text().await.unwrap());
    let waiting = wait(http, t, &flow, false).await;
    assert_eq!(waiting.status(), 200);
    let csp = waiting.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    let page = waiting.text().await.unwrap();
    let body = body_of(&smtp.next_mail().await);
    (flow, page, body)
}

async fn assert_logged_in(t: &Tenant, http: &reqwest::Client, done: &reqwest::Response, email: &str) {
    assert_eq!(done.status(), 303);
    assert_eq!(location_param(done, "state").as_deref(), Some("st-1"));
    let grant = location_param(done, "code").unwrap();
    let verified = t.verify(http, &grant, CB, None).await;
    let token = verified["access_token"].as_str().expect("a CentralAuth token");
    let user = t.userinfo(http, token, "https://app.example.com").await;
    assert_eq!(user["email"], email);
}

#[tokio::test]
async fn a_link_logs_in_the_device_that_opens_it_once() {
    let (server, mut smtp, t) = setup("email-link-here", "Link", None).await;
    let http = server.http(&[]);
    let (flow, page, body) = start(&http, &t, &mut smtp, "ann@example.com").await;
    let links = links_of(&body);
    assert_eq!(links.len(), 2, "{body}");
    let token = &links[0].0;
    assert_eq!(token.len(), 6, "{body}");
    assert!(
        page.contains(&format!("<strong>{token}</strong>")),
        "the page shows the token: {page}"
    );
    assert!(
        !page.contains(&links[0].1) && !page.contains(&links[1].1),
        "no secret on the page"
    );

    // Another device (no cookies of the first) opens the first link and is logged in there.
    let other = Device::new(&server, &t);
    let done = other.open(&links[0].1).await;
    assert_logged_in(&t, &other.http, &done, "ann@example.com").await;

    // Used: both links now show the clear page; the first device's attempt is over.
    for (_, secret) in &links {
        let again = other.open(secret).await;
        assert_eq!(again.status(), 410);
        assert!(again.text().await.unwrap().contains("This link no longer works"));
    }
    let reload = wait(&http, &t, &flow, false).await;
    assert_ne!(reload.status(), 303, "the login was used on the other device");
}

#[tokio::test]
async fn a_link_completes_the_login_on_the_device_that_started_it() {
    let (server, mut smtp, t) = setup("email-link-there", "Link", None).await;
    let http = server.http(&[]);
    let (flow, _, body) = start(&http, &t, &mut smtp, "bo@example.com").await;
    let links = links_of(&body);
    let poll: Value = wait(&http, &t, &flow, true).await.json().await.unwrap();
    assert_eq!(poll["done"], false);

    let other = Device::new(&server, &t);
    let confirmed = other.open(&links[1].1).await;
    assert_eq!(confirmed.status(), 200);
    assert!(
        confirmed
            .text()
            .await
            .unwrap()
            .contains("Go back to the device where you started")
    );
    assert!(other.open(&links[1].1).await.status() == 410, "single use");

    let poll: Value = wait(&http, &t, &flow, true).await.json().await.unwrap();
    assert_eq!(poll["done"], true);
    let done = wait(&http, &t, &flow, false).await;
    assert_logged_in(&t, &http, &done, "bo@example.com").await;
}

#[tokio::test]
async fn an_expired_link_is_refused_with_a_clear_page() {
    let (server, mut smtp, t) = setup("email-link-expiry", "Link", Some(Duration::from_secs(2))).await;
    let http = server.http(&[]);
    let (flow, _, body) = start(&http, &t, &mut smtp, "cy@example.com").await;
    let links = links_of(&body);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let other = Device::new(&server, &t);
    for (_, secret) in &links {
        let late = other.open(secret).await;
        assert_eq!(late.status(), 410);
        assert!(
            late.text()
                .await
                .unwrap()
                .contains("It has expired or was already used")
        );
    }
    let reload = wait(&http, &t, &flow, false).await;
    assert_eq!(reload.status(), 401);
    assert!(
        reload
            .text()
            .await
            .unwrap()
            .contains("has expired, was used or no longer works")
    );
}

#[tokio::test]
async fn a_challenge_burns_on_a_wrong_number_and_completes_on_the_right_one() {
    let (server, mut smtp, t) = setup("email-challenge", "Challenge", None).await;
    let other = Device::new(&server, &t);

    // A wrong number burns the attempt: the right one no longer works.
    let http = server.http(&[]);
    let (flow, page, body) = start(&http, &t, &mut smtp, "di@example.com").await;
    let links = links_of(&body);
    assert_eq!(links.len(), 3, "{body}");
    let shown: Vec<&(String, String)> = links
        .iter()
        .filter(|(n, _)| page.contains(&format!("<strong>{n}</strong>")))
        .collect();
    assert_eq!(shown.len(), 1, "the page shows one of the numbers: {page}");
    let right = shown[0].1.clone();
    let wrong = links.iter().find(|(_, s)| *s != right).unwrap();
    let burned = other.open(&wrong.1).await;
    assert_eq!(burned.status(), 401);
    assert!(burned.text().await.unwrap().contains("no longer works"));
    assert_eq!(other.open(&right).await.status(), 410);
    assert_eq!(wait(&http, &t, &flow, false).await.status(), 401);

    // The right number completes on the starting device.
    let http = server.http(&[]);
    let (flow, page, body) = start(&http, &t, &mut smtp, "eve@example.com").await;
    let links = links_of(&body);
    let (_, right) = links
        .iter()
        .find(|(n, _)| page.contains(&format!("<strong>{n}</strong>")))
        .unwrap();
    let confirmed = other.open(right).await;
    assert_eq!(confirmed.status(), 200);
    let done = wait(&http, &t, &flow, false).await;
    assert_logged_in(&t, &http, &done, "eve@example.com").await;
}

#[tokio::test]
async fn authenticate_direct_answers_with_the_number_and_invite_only_refuses_at_completion() {
    let server = Server::start("email-challenge-direct").await;
    let mut smtp = SmtpServer::start(Security::None, None, None).await;
    let mut method = smtp.login_method(Security::None, None);
    method["attemptType"] = json!("Challenge");
    let extra = json!({"loginMethods": {"email": method}, "userCreation": "InviteOnly"});
    let mut t = server.tenant("chalco", extra, &[]).await;
    t.activate_secret(&server, "chalco-secret").await;
    let resp = server
        .http(&[])
        .post(format!("{}/api/v1/authenticate_direct", t.origin()))
        .basic_auth(&t.client_id, Some(&t.secret))
        .json(&json!({"email": "fay@example.com", "state": "st-1", "redirect_uri": CB}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let attempt: Value = resp.json().await.unwrap();
    let sentence = attempt["sentence"].as_str().unwrap();
    let links = links_of(&body_of(&smtp.next_mail().await));
    let (number, right) = links
        .iter()
        .find(|(n, _)| sentence.contains(&format!("Click the number {n} ")))
        .unwrap_or_else(|| panic!("the sentence names one of the numbers: {sentence}"));
    assert!(!sentence.contains(right.as_str()));

    // The browser the app hands the attempt to waits for the click, then is refused: not invited.
    let http = server.http(&[]);
    let id = attempt["loginAttemptId"].as_str().unwrap();
    let token = attempt["token"].as_str().unwrap();
    let direct = http
        .get(format!("{}/login/direct?loginAttemptId={id}&token={token}", t.origin()))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 303);
    let look = || {
        http.get(format!("{}/login/wait?loginAttemptId={id}", t.origin()))
            .header("cookie", format!("ca_csrf={token}"))
            .send()
    };
    let waiting = look().await.unwrap();
    assert!(
        waiting
            .text()
            .await
            .unwrap()
            .contains(&format!("<strong>{number}</strong>"))
    );
    assert_eq!(Device::new(&server, &t).open(right).await.status(), 200);
    let refused = look().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("has not been invited"));
}

/// A server and an organization of `kind` whose callback is a local app (so a browser lands on
/// a page that answers), with `link_ttl` when given; the SMTP server; the callback URL.
async fn browser_setup(test: &str, kind: &str, link_ttl: Option<Duration>) -> (Server, SmtpServer, Tenant, String) {
    let server = Server::start_with(test, |s| {
        if let Some(ttl) = link_ttl {
            s.email_codes.link_ttl = ttl;
        }
    })
    .await;
    let smtp = SmtpServer::start(Security::None, None, None).await;
    let (app_port, callback) = crate::oauth_browser::callback_app().await;
    let mut method = smtp.login_method(Security::None, None);
    method["attemptType"] = json!(kind);
    let spec = json!({"allowLocalhost": true, "allowedOrigins": [format!("http://localhost:{app_port}")],
                      "redirectUris": [callback], "loginMethods": {"email": method}});
    let mut t = server.tenant("linkbrow", spec, &[]).await;
    t.activate_secret(&server, "linkbrow-secret").await;
    (server, smtp, t, callback)
}

/// Runs `tests/clients/node/email_link_browser.mjs`: device A asks for the e-mail to `email`
/// (the `index`th message) on the CentralAuth login page and waits; device B opens a link.
async fn two_browsers(t: &Tenant, callback: &str, smtp: &SmtpServer, email: &str, index: usize, extra: Value) -> Value {
    let artifacts = crate::support::repo_root().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let mut input = json!({"url": t.login_url(callback, &[("state", "st-1")]), "email": email,
                           "maildir": smtp.maildir, "mailIndex": index, "callbackPrefix": callback,
                           "artifacts": artifacts});
    for (k, v) in extra.as_object().unwrap() {
        input[k] = v.clone();
    }
    crate::oauth_clients::node("email_link_browser.mjs", &input).await
}

#[tokio::test]
async fn chromium_opens_an_e_mail_link_on_either_device_and_only_once() {
    let (server, smtp, t, cb) = browser_setup("email-link-chromium", "Link", None).await;
    let there = two_browsers(
        &t,
        &cb,
        &smtp,
        "ida@example.com",
        1,
        json!({"mode": "there", "reopen": true, "shots": "link-"}),
    )
    .await;
    assert_eq!(
        there["shown"], there["mailShows"],
        "the page and the e-mail show one token: {there}"
    );
    assert_eq!(
        (there["opened"].as_str(), there["landedOn"].as_str()),
        (Some("confirmed"), Some("A")),
        "{there}"
    );
    assert_eq!(there["state"], "st-1");
    assert_eq!(there["reopened"], "gone", "a link works once");
    let http = server.http(&[]);
    let verified = t.verify(&http, there["code"].as_str().unwrap(), &cb, None).await;
    let app_origin = cb.trim_end_matches("/cb");
    let user = t
        .userinfo(&http, verified["access_token"].as_str().unwrap(), app_origin)
        .await;
    assert_eq!(user["email"], "ida@example.com", "{user}");

    let here = two_browsers(&t, &cb, &smtp, "ivo@example.com", 2, json!({"mode": "here"})).await;
    assert_eq!(
        (here["opened"].as_str(), here["landedOn"].as_str()),
        (Some("landed"), Some("B")),
        "{here}"
    );
}

#[tokio::test]
async fn chromium_answers_a_challenge_wrongly_then_rightly() {
    let (_server, smtp, t, cb) = browser_setup("email-challenge-chromium", "Challenge", None).await;
    let wrong = two_browsers(
        &t,
        &cb,
        &smtp,
        "jo@example.com",
        1,
        json!({"mode": "challenge", "wrong": true}),
    )
    .await;
    assert_eq!(wrong["numbers"].as_array().unwrap().len(), 3, "{wrong}");
    assert_eq!(wrong["opened"], "burned", "{wrong}");
    assert!(
        wrong["aAfter"]
            .as_str()
            .unwrap()
            .contains("expired, was used or no longer works"),
        "{wrong}"
    );

    let right = two_browsers(
        &t,
        &cb,
        &smtp,
        "jan@example.com",
        2,
        json!({"mode": "challenge", "shots": "challenge-"}),
    )
    .await;
    assert!(
        right["numbers"].as_array().unwrap().contains(&right["shown"]),
        "{right}"
    );
    assert_eq!(
        (right["opened"].as_str(), right["landedOn"].as_str()),
        (Some("confirmed"), Some("A")),
        "{right}"
    );
    assert!(right["code"].is_string());
}

#[tokio::test]
async fn chromium_finds_an_expired_link_refused() {
    let (_server, smtp, t, cb) =
        browser_setup("email-link-chromium-expired", "Link", Some(Duration::from_secs(2))).await;
    let late = two_browsers(
        &t,
        &cb,
        &smtp,
        "kim@example.com",
        1,
        json!({"mode": "there", "delayMs": 3500}),
    )
    .await;
    assert_eq!(late["opened"], "gone", "{late}");
    assert!(
        late["aAfter"]
            .as_str()
            .unwrap()
            .contains("expired, was used or no longer works"),
        "{late}"
    );
}
