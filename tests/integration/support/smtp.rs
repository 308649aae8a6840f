//! A real SMTP server for the e-mail login tests: `tests/clients/python/smtp_server.py`
//! (aiosmtpd) as a subprocess on a free loopback port, writing each received message as a
//! JSON file into a directory the test reads. Plus a scripted browser for the e-mail steps.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support;
use crate::support::oauth::{hidden, open_login};
use crate::support::pki::TestPki;

/// Transport security of the test server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Plaintext.
    None,
    /// STARTTLS required.
    StartTls,
    /// TLS from the first byte.
    Tls,
}

/// A running aiosmtpd.
pub struct SmtpServer {
    /// Its loopback port.
    pub port: u16,
    /// Where it writes messages.
    pub maildir: PathBuf,
    seen: usize,
    _child: tokio::process::Child,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.maildir).ok();
    }
}

impl SmtpServer {
    /// Starts a server; `pki` is its certificate (for `StartTls` and `Tls`), `auth` the only
    /// username and password it accepts (AUTH is then required).
    pub async fn start(security: Security, pki: Option<&TestPki>, auth: Option<(&str, &str)>) -> SmtpServer {
        let python = support::repo_root().join("tests/clients/python");
        let venv = python.join(".venv/bin/python");
        assert!(
            venv.exists(),
            "create tests/clients/python/.venv from requirements.txt (tests/clients/install.sh; .ci/run does)"
        );
        let maildir = std::env::temp_dir().join(format!(
            "centralauth-mail-{}-{}",
            std::process::id(),
            centralauth_operator::oauth::grant::random_token()
        ));
        std::fs::create_dir_all(&maildir).unwrap();
        let mut config = json!({"maildir": maildir, "tls": match security {
            Security::None => "none", Security::StartTls => "starttls", Security::Tls => "tls",
        }});
        if let Some(pki) = pki {
            std::fs::write(maildir.join(".cert.pem"), &pki.cert_pem).unwrap();
            std::fs::write(maildir.join(".key.pem"), &pki.key_pem).unwrap();
            config["cert"] = json!(maildir.join(".cert.pem"));
            config["key"] = json!(maildir.join(".key.pem"));
        }
        if let Some((user, password)) = auth {
            config["username"] = json!(user);
            config["password"] = json!(password);
        }
        let mut child = tokio::process::Command::new(venv)
            .arg(python.join("smtp_server.py"))
            .arg(config.to_string())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the test SMTP server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the test SMTP server printed its port in time")
            .unwrap()
            .expect("the test SMTP server printed its port");
        let port = serde_json::from_str::<Value>(&line).unwrap()["port"].as_u64().unwrap() as u16;
        SmtpServer {
            port,
            maildir,
            seen: 0,
            _child: child,
        }
    }

    /// How many messages arrived so far.
    pub fn received(&self) -> usize {
        std::fs::read_dir(&self.maildir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .count()
    }

    /// Waits for the next message (in order of arrival).
    pub async fn next_mail(&mut self) -> Value {
        let path = self.maildir.join(format!("{}.json", self.seen + 1));
        let found = support::wait_until(Duration::from_secs(20), || {
            let path = path.clone();
            async move { std::fs::read(&path).ok() }
        })
        .await
        .expect("no e-mail arrived at the test SMTP server");
        self.seen += 1;
        serde_json::from_slice(&found).unwrap()
    }

    /// `loginMethods.email` pointing at this server.
    pub fn login_method(&self, security: Security, credentials_secret: Option<&str>) -> Value {
        let mut m = json!({
            "smtpHost": "localhost", "smtpPort": self.port, "from": "Login <login@example.com>",
            "tls": match security { Security::None => "None", Security::StartTls => "StartTls", Security::Tls => "Tls" },
        });
        if let Some(name) = credentials_secret {
            m["credentialsSecretName"] = json!(name);
        }
        m
    }
}

/// The code in a received message (the line of 5 digits in its body).
pub fn code_of(mail: &Value) -> String {
    let data = mail["data"].as_str().unwrap();
    data.lines()
        .map(str::trim)
        .find(|l| l.len() == 5 && l.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in {data}"))
        .to_string()
}

/// Creates the SMTP credentials Secret (keys `username`, `password`).
pub async fn smtp_secret(client: &kube::Client, ns: &str, name: &str, user: &str, password: &str) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name}, "stringData": {"username": user, "password": password},
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();
}

/// Replaces the `password` of the SMTP credentials Secret.
pub async fn set_smtp_password(client: &kube::Client, ns: &str, name: &str, password: &str) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let fix = json!({"stringData": {"password": password}});
    secrets
        .patch(name, &PatchParams::default(), &Patch::Merge(&fix))
        .await
        .unwrap();
}

/// A login in progress, driven like a browser without JavaScript: the first page's hidden
/// fields and CSRF cookie are posted back by every step.
pub struct EmailLogin {
    http: reqwest::Client,
    origin: String,
    /// The CSRF cookie (`ca_csrf=…`), sent with every step.
    pub cookie: String,
    /// The login ID.
    pub login: String,
    /// The CSRF token.
    pub csrf: String,
    /// The first page.
    pub page: String,
}

impl EmailLogin {
    /// Opens the authorization URL (it must render the login page).
    pub async fn start(http: &reqwest::Client, authorize_url: &str) -> EmailLogin {
        let (cookie, html) = open_login(http, authorize_url).await;
        let url = reqwest::Url::parse(authorize_url).unwrap();
        EmailLogin {
            http: http.clone(),
            origin: format!("{}://{}", url.scheme(), url.authority()),
            cookie,
            login: hidden(&html, "login").unwrap(),
            csrf: hidden(&html, "csrf").unwrap(),
            page: html,
        }
    }

    /// Continues in this browser a login started by `authenticate_direct`: `GET /login/direct`
    /// (it must render the code form and set the CSRF cookie).
    pub async fn direct(http: &reqwest::Client, origin: &str, attempt: &str, token: &str) -> EmailLogin {
        let url = reqwest::Url::parse_with_params(
            &format!("{origin}/login/direct"),
            &[("loginAttemptId", attempt), ("token", token)],
        )
        .unwrap();
        let page = http.get(url).send().await.unwrap();
        assert_eq!(page.status(), 200, "the code form did not render");
        let cookie = super::oauth::cookie_set(&page, "ca_csrf=").expect("no CSRF cookie");
        let html = page.text().await.unwrap();
        EmailLogin {
            http: http.clone(),
            origin: origin.to_string(),
            cookie,
            login: hidden(&html, "login").unwrap(),
            csrf: hidden(&html, "csrf").unwrap(),
            page: html,
        }
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form = vec![("login", self.login.as_str()), ("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        self.http
            .post(format!("{}{path}", self.origin))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// `POST /login/email`: asks for a code.
    pub async fn send(&self, email: &str) -> reqwest::Response {
        self.post("/login/email", &[("email", email)]).await
    }

    /// `POST /login/code`: enters a code.
    pub async fn code(&self, code: &str) -> reqwest::Response {
        self.post("/login/code", &[("code", code)]).await
    }
}

/// Another code than `code` (same length).
pub fn wrong(code: &str) -> String {
    format!("{:05}", (code.parse::<u32>().unwrap() + 1) % 100_000)
}
