//! The `email` login method against a real SMTP server (aiosmtpd, see `support::smtp`): the code
//! is read from the received message, on both protocols; wrong codes are counted and burn the
//! code; used and expired codes are refused; SMTP AUTH uses the credentials Secret; STARTTLS and
//! implicit TLS are verified against a test CA; every SMTP failure shows a retry message.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use centralauth_operator::association::TrustRoots;
use centralauth_operator::oauth::pkce::s256;

use crate::support;
use crate::support::oauth::{Server, Tenant, location_param, location_params};
use crate::support::pki::TestPki;
use crate::support::smtp::{EmailLogin, Security, SmtpServer, code_of, set_smtp_password, smtp_secret, wrong};

const CB: &str = "https://app.example.com/cb";
const VERIFIER: &str = "email-login-verifier-0123456789-abcdefghijklmnop";

/// The CentralAuth `/login` URL of tenant `t` with `state`.
pub fn centralauth_url(t: &Tenant, state: &str) -> String {
    reqwest::Url::parse_with_params(
        &format!("{}/login", t.origin()),
        &[
            ("client_id", t.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", CB),
            ("state", state),
        ],
    )
    .unwrap()
    .to_string()
}

fn oauth2_url(t: &Tenant) -> String {
    let challenge = s256(VERIFIER);
    reqwest::Url::parse_with_params(
        &format!("{}/oauth2/authorize", t.issuer),
        &[
            ("client_id", t.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", CB),
            ("state", "std-state"),
            ("scope", "openid email"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap()
    .to_string()
}

fn logins(server: &Server, outcome: &str) -> u64 {
    let text = server.state.metrics.render();
    let metric = format!("centralauth_logins_total{{method=\"email\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&metric))
        .map_or(0, |n| n.parse().unwrap())
}

/// Sends a code to `email` and returns it as read from the received message.
async fn emailed_code(flow: &EmailLogin, smtp: &mut SmtpServer, email: &str) -> String {
    let sent = flow.send(email).await;
    assert_eq!(sent.status(), 200, "{}", sent.text().await.unwrap());
    code_of(&smtp.next_mail().await)
}

#[tokio::test]
async fn an_emailed_code_logs_in_over_starttls_with_smtp_auth_on_both_protocols() {
    let pki = TestPki::new(&["localhost".to_string()]);
    let ca = pki.ca_pem.clone();
    let server = Server::start_with("email-login", |s| s.smtp.roots = TrustRoots::Only(vec![ca])).await;
    let mut smtp = SmtpServer::start(Security::StartTls, Some(&pki), Some(("mailer", "smtp-pw-1"))).await;
    smtp_secret(&server.client, &server.ns, "mail-creds", "mailer", "smtp-pw-1").await;
    let method = smtp.login_method(Security::StartTls, Some("mail-creds"));
    let mut t = server
        .tenant("mailco", json!({"loginMethods": {"email": method}}), &[])
        .await;
    t.activate_secret(&server, "mailco-secret").await;
    let http = server.http(&[]);

    // The first page offers only the code, with the login page's security headers.
    let page = http.get(centralauth_url(&t, "st-1")).send().await.unwrap();
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let flow = EmailLogin::start(&http, &centralauth_url(&t, "st-1")).await;
    assert!(flow.page.contains(r#"action="/login/email""#), "{}", flow.page);
    assert!(!flow.page.contains("password"), "no password form: {}", flow.page);

    // The address is normalized; the code page names it and carries no code.
    let sent = flow.send(" Mia@Example.com ").await;
    assert_eq!(sent.status(), 200);
    let code_page = sent.text().await.unwrap();
    assert!(code_page.contains("<strong>mia@example.com</strong>"), "{code_page}");
    let mail = smtp.next_mail().await;
    let code = code_of(&mail);
    assert!(!code_page.contains(&code));
    assert_eq!(mail["to"], json!(["mia@example.com"]));
    assert_eq!(mail["from"], "login@example.com");
    assert_eq!(
        mail["auth"], "mailer",
        "SMTP AUTH with the Secret's username and password"
    );
    assert_eq!(mail["tls"], true, "STARTTLS");
    let data = mail["data"].as_str().unwrap();
    assert!(data.contains("Subject: Your login code for mailco Inc."), "{data}");
    assert!(!data.lines().any(|l| l.starts_with("Subject:") && l.contains(&code)));

    // The right code completes the login like a password does.
    let done = flow.code(&code).await;
    assert_eq!(done.status(), 303);
    assert_eq!(location_param(&done, "state").as_deref(), Some("st-1"));
    assert_eq!(location_param(&done, "iss").as_deref(), Some(t.issuer.as_str()));
    let grant = location_param(&done, "code").unwrap();
    let verified = t.verify(&http, &grant, CB, None).await;
    let token = verified["access_token"].as_str().expect("a CentralAuth token");
    let user = t.userinfo(&http, token, "https://app.example.com").await;
    assert_eq!(user["email"], "mia@example.com");

    // The standard endpoint, in another browser (no session cookie): ID token for the address.
    let other = server.http(&[]);
    let flow = EmailLogin::start(&other, &oauth2_url(&t)).await;
    let code = emailed_code(&flow, &mut smtp, "noah@example.com").await;
    let done = flow.code(&code).await;
    assert_eq!(done.status(), 303);
    let params = location_params(&done);
    assert!(params.contains(&("iss".into(), t.issuer.clone())), "{params:?}");
    let grant = location_param(&done, "code").unwrap();
    let tokens = t
        .token(
            &other,
            &[
                ("grant_type", "authorization_code"),
                ("code", grant.as_str()),
                ("redirect_uri", CB),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    let id_token = tokens["id_token"].as_str().expect("an ID token");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(id_token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["email"], "noah@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!((logins(&server, "success"), logins(&server, "failure")), (2, 0));
}

#[tokio::test]
async fn wrong_codes_are_counted_and_burn_the_code_and_a_used_code_is_refused() {
    // The resend window runs from the first send: long enough that the immediate second send
    // lands in it on a loaded machine (300 ms did not, once), short enough to wait out below.
    const RESEND_AFTER: Duration = Duration::from_secs(3);
    let server = Server::start_with("email-wrong", |s| s.email_codes.resend_after = RESEND_AFTER).await;
    let mut smtp = SmtpServer::start(Security::None, None, None).await;
    let method = smtp.login_method(Security::None, None);
    let users_secret = "both-users";
    let t = server
        .tenant(
            "both",
            json!({"loginMethods": {"email": method, "passwords": {"secretName": users_secret}}}),
            &[("ola@example.com", "pw-ola-1")],
        )
        .await;
    let http = server.http(&[]);
    let flow = EmailLogin::start(&http, &centralauth_url(&t, "s")).await;
    // Both methods: one form, the code button posts elsewhere and skips the password check.
    assert!(flow.page.contains(r#"id="password""#), "{}", flow.page);
    assert!(
        flow.page.contains(r#"formaction="/login/email" formnovalidate"#),
        "{}",
        flow.page
    );

    let first_sent = tokio::time::Instant::now();
    let code = emailed_code(&flow, &mut smtp, "pia@example.com").await;
    // A second code right away is throttled; the page still asks for the first one.
    let again = flow.send("pia@example.com").await;
    assert_eq!(again.status(), 429);
    let again = again.text().await.unwrap();
    assert!(
        again.contains("moments ago") && again.contains(r#"id="code""#),
        "{again}"
    );
    assert_eq!(flow.code("12ab").await.status(), 400, "not 5 digits: not counted");
    for left in ["4 attempts", "3 attempts", "2 attempts", "1 attempt "] {
        let r = flow.code(&wrong(&code)).await;
        assert_eq!(r.status(), 401);
        let page = r.text().await.unwrap();
        assert!(
            page.contains(&format!("The code is wrong. {}", left.trim_end())),
            "{page}"
        );
    }
    let burned = flow.code(&wrong(&code)).await;
    assert_eq!(burned.status(), 401);
    assert!(burned.text().await.unwrap().contains("no longer works"));
    let after = flow.code(&code).await;
    assert_eq!(after.status(), 401, "the right code after the fifth wrong one");
    assert!(after.text().await.unwrap().contains("expired or was already used"));
    assert_eq!(logins(&server, "failure"), 6);

    // A new code works; the login it completes cannot be replayed, nor its code reused.
    tokio::time::sleep_until(first_sent + RESEND_AFTER + Duration::from_millis(100)).await;
    let fresh = emailed_code(&flow, &mut smtp, "pia@example.com").await;
    let done = flow.code(&fresh).await;
    assert_eq!(done.status(), 303);
    assert_eq!(flow.code(&fresh).await.status(), 400, "the login is used up");
    let other = EmailLogin::start(&http, &centralauth_url(&t, "s2")).await;
    let replay = other.code(&fresh).await;
    assert_eq!(replay.status(), 401, "a code belongs to the login that asked for it");
    assert_eq!(logins(&server, "success"), 1);
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let server = Server::start_with("email-expiry", |s| s.email_codes.ttl = Duration::from_secs(2)).await;
    let mut smtp = SmtpServer::start(Security::None, None, None).await;
    let method = smtp.login_method(Security::None, None);
    let t = server
        .tenant("expco", json!({"loginMethods": {"email": method}}), &[])
        .await;
    let http = server.http(&[]);
    let flow = EmailLogin::start(&http, &centralauth_url(&t, "s")).await;
    let code = emailed_code(&flow, &mut smtp, "quinn@example.com").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let late = flow.code(&code).await;
    assert_eq!(late.status(), 401);
    assert!(late.text().await.unwrap().contains("expired or was already used"));
}

#[tokio::test]
async fn smtp_failures_show_a_retry_message_and_tls_is_verified() {
    let trusted = TestPki::new(&["localhost".to_string()]);
    let untrusted = TestPki::new(&["localhost".to_string()]);
    let ca = trusted.ca_pem.clone();
    let server = Server::start_with("email-fail", |s| {
        s.smtp.roots = TrustRoots::Only(vec![ca]);
        s.smtp.timeout = Duration::from_secs(2);
    })
    .await;
    let http = server.http(&[]);
    let retry = "could not be sent. Try again";

    // A wrong SMTP password: refused cleanly, no code left behind; fixing the Secret heals it.
    let mut smtp = SmtpServer::start(Security::None, None, Some(("mailer", "right-pw"))).await;
    smtp_secret(&server.client, &server.ns, "creds", "mailer", "wrong-pw").await;
    let method = smtp.login_method(Security::None, Some("creds"));
    let t = server
        .tenant("authco", json!({"loginMethods": {"email": method}}), &[])
        .await;
    let flow = EmailLogin::start(&http, &centralauth_url(&t, "s")).await;
    let failed = flow.send("rae@example.com").await;
    assert_eq!(failed.status(), 503);
    let page = failed.text().await.unwrap();
    assert!(
        page.contains(retry) && page.contains(r#"value="rae@example.com""#),
        "{page}"
    );
    assert_eq!(flow.code("00000").await.status(), 401, "no code is pending");
    set_smtp_password(&server.client, &server.ns, "creds", "right-pw").await;
    let (state, ns) = (server.state.clone(), server.ns.clone());
    support::wait_until(Duration::from_secs(20), || {
        let (state, ns) = (state.clone(), ns.clone());
        async move { (state.secrets.value(&ns, "creds", "password")? == b"right-pw").then_some(()) }
    })
    .await
    .expect("the server never saw the fixed password");
    let code = emailed_code(&flow, &mut smtp, "rae@example.com").await;
    assert_eq!(flow.code(&code).await.status(), 303);

    // Implicit TLS with the trusted CA works; a certificate of an unknown CA is refused.
    let mut tls = SmtpServer::start(Security::Tls, Some(&trusted), None).await;
    let bad_tls = SmtpServer::start(Security::StartTls, Some(&untrusted), None).await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let tenant = |name: &'static str, method: Value| {
        let server = &server;
        async move {
            server
                .tenant(name, json!({"loginMethods": {"email": method}}), &[])
                .await
        }
    };
    let ok = tenant("tlsco", tls.login_method(Security::Tls, None)).await;
    let flow = EmailLogin::start(&http, &centralauth_url(&ok, "s")).await;
    let code = emailed_code(&flow, &mut tls, "sam@example.com").await;
    assert_eq!(tls.received(), 1);
    assert_eq!(flow.code(&code).await.status(), 303);

    let mut unreachable = bad_tls.login_method(Security::StartTls, None);
    let untrusted_org = tenant("badtlsco", unreachable.clone()).await;
    unreachable["smtpPort"] = json!(silent_port);
    let silent_org = tenant("silentco", unreachable.clone()).await;
    unreachable["smtpPort"] = json!(support::free_port());
    let closed_org = tenant("closedco", unreachable).await;
    for org in [&untrusted_org, &silent_org, &closed_org] {
        let flow = EmailLogin::start(&http, &centralauth_url(org, "s")).await;
        let started = std::time::Instant::now();
        let failed = flow.send("tom@example.com").await;
        assert_eq!(failed.status(), 503, "{}", org.name);
        assert!(failed.text().await.unwrap().contains(retry));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "bounded by the SMTP timeout"
        );
    }
    assert_eq!(bad_tls.received(), 0);
    hold.abort();
}
