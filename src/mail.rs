//! Sending login codes over SMTP (`lettre`: async on tokio, rustls with `ring`).
//!
//! Each organization's `loginMethods.email` names its SMTP server, port, transport security
//! (`StartTls` = STARTTLS required, `Tls` = TLS from the first byte, `None` = plaintext for
//! trusted relays and tests), sender, and optionally a Secret with `username` and `password`
//! for SMTP AUTH (PLAIN or LOGIN, whichever the server offers). The Secret is read from the
//! in-memory [`crate::runtime::secrets::SecretsView`], never from the API server per request.
//!
//! One connection per e-mail, no pool: codes are rare, and a pooled connection that the server
//! dropped would fail a login. Every send is bounded by [`SmtpSettings::timeout`] (connection,
//! each SMTP command, and the whole exchange). Server certificates are verified against the
//! system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` add a private CA) or, in tests, against
//! [`TrustRoots::Only`]. Nothing here logs: errors carry the server's answer and never the
//! message, its code or the credentials.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::association::TrustRoots;
use crate::crd::{EmailAttemptType, EmailLogin, SmtpTls};

/// How the server reaches SMTP servers.
#[derive(Clone, Debug)]
pub struct SmtpSettings {
    /// Upper bound of one send, connection and every command included.
    pub timeout: Duration,
    /// Certificate authorities trusted for SMTP servers.
    pub roots: TrustRoots,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            timeout: Duration::from_secs(15),
            roots: TrustRoots::System,
        }
    }
}

/// Why a code e-mail was not sent. Messages say what to fix; none contains the code, the
/// e-mail body or a credential.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// `loginMethods.email.from` does not parse.
    #[error(
        "loginMethods.email.from {0:?} is not a valid sender: use an address like login@example.com or `Acme <login@example.com>`"
    )]
    Sender(String),
    /// The user's address does not parse (the form checks it first).
    #[error("the recipient address is not a valid e-mail address")]
    Recipient,
    /// The credentials Secret is missing a key (or not watched yet).
    #[error(
        "the SMTP credentials Secret {0} has no `username` and `password` keys (or the server has not loaded it yet)"
    )]
    Credentials(String),
    /// A configured trust root is not a PEM certificate.
    #[error("a trust root for SMTP is not a PEM certificate: {0}")]
    Root(String),
    /// The message could not be built.
    #[error("cannot build the e-mail: {0}")]
    Build(String),
    /// The server refused, TLS failed, or the connection broke.
    #[error("the SMTP server {server} failed: {detail}")]
    Smtp {
        /// `host:port`.
        server: String,
        /// lettre's description, with the server's reply when there was one.
        detail: String,
    },
    /// No answer in time.
    #[error("the SMTP server {server} did not finish within {seconds} s")]
    Timeout {
        /// `host:port`.
        server: String,
        /// The limit.
        seconds: u64,
    },
}

/// A code e-mail to send.
pub struct CodeMail<'a> {
    /// The recipient (already validated and normalized).
    pub to: &'a str,
    /// Display name of the organization.
    pub organization: &'a str,
    /// The code.
    pub code: &'a str,
    /// How long the code is valid.
    pub valid_for: Duration,
}

/// A link or challenge e-mail to send (`loginMethods.email.attemptType: Link | Challenge`).
pub struct LinkMail<'a> {
    /// The recipient (already validated and normalized).
    pub to: &'a str,
    /// Display name of the organization.
    pub organization: &'a str,
    /// `Link` or `Challenge`.
    pub kind: EmailAttemptType,
    /// The short token of a link (shown on the page too).
    pub token: &'a str,
    /// `(label, URL)`: for a link, "this device" then "the device that started"; for a
    /// challenge, each number.
    pub links: Vec<(String, String)>,
    /// How long the links work.
    pub valid_for: Duration,
}

/// Sends code e-mails; keeps the TLS configuration per SMTP host (loading roots is not free).
pub struct Mailer {
    settings: SmtpSettings,
    hello: String,
    tls: Mutex<HashMap<String, TlsParameters>>,
}

/// Parses a sender or recipient (`addr@host` or `Name <addr@host>`).
pub fn mailbox(text: &str) -> Option<Mailbox> {
    text.trim().parse().ok()
}

/// The address a user typed, if it is one plain address (`local@domain`, no display name, at
/// most 254 characters), trimmed and in ASCII lowercase as accounts are compared.
pub fn recipient(input: &str) -> Option<String> {
    let address = input.trim().to_ascii_lowercase();
    let ok = address.len() <= 254 && address.parse::<lettre::Address>().is_ok();
    ok.then_some(address)
}

/// The problem with an organization's `loginMethods.email`, if any (for its `Ready` condition).
pub fn config_problem(email: &EmailLogin) -> Option<String> {
    mailbox(&email.from)
        .is_none()
        .then(|| MailError::Sender(email.from.clone()).to_string())
}

impl Mailer {
    /// A mailer that greets SMTP servers (`EHLO`) with `hello` (the public base domain).
    pub fn new(settings: SmtpSettings, hello: &str) -> Mailer {
        Mailer {
            settings,
            hello: hello.to_string(),
            tls: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `mail` through the organization's SMTP server, authenticating with `credentials`
    /// (from its Secret) when given.
    pub async fn send_code(
        &self,
        config: &EmailLogin,
        credentials: Option<Credentials>,
        mail: &CodeMail<'_>,
    ) -> Result<(), MailError> {
        self.send(config, credentials, code_message(config, mail)?).await
    }

    /// Sends the link or challenge e-mail `mail` (see [`Mailer::send_code`]).
    pub async fn send_link(
        &self,
        config: &EmailLogin,
        credentials: Option<Credentials>,
        mail: &LinkMail<'_>,
    ) -> Result<(), MailError> {
        self.send(config, credentials, link_message(config, mail)?).await
    }

    async fn send(
        &self,
        config: &EmailLogin,
        credentials: Option<Credentials>,
        message: Message,
    ) -> Result<(), MailError> {
        let transport = self.transport(config, credentials)?;
        let server = format!("{}:{}", config.smtp_host, config.smtp_port);
        match tokio::time::timeout(self.settings.timeout, transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_timeout() => Err(MailError::Timeout {
                server,
                seconds: self.settings.timeout.as_secs(),
            }),
            Ok(Err(e)) => Err(MailError::Smtp {
                server,
                detail: describe(&e),
            }),
            Err(_) => Err(MailError::Timeout {
                server,
                seconds: self.settings.timeout.as_secs(),
            }),
        }
    }

    fn transport(
        &self,
        config: &EmailLogin,
        credentials: Option<Credentials>,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
        let tls = match config.tls {
            SmtpTls::StartTls => Tls::Required(self.tls_parameters(&config.smtp_host)?),
            SmtpTls::Tls => Tls::Wrapper(self.tls_parameters(&config.smtp_host)?),
            SmtpTls::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.smtp_host.as_str())
            .port(config.smtp_port)
            .tls(tls)
            .timeout(Some(self.settings.timeout))
            .hello_name(ClientId::Domain(self.hello.clone()));
        if let Some(c) = credentials {
            builder = builder.credentials(c);
        }
        Ok(builder.build())
    }

    fn tls_parameters(&self, host: &str) -> Result<TlsParameters, MailError> {
        let mut cache = self.tls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.get(host) {
            return Ok(p.clone());
        }
        let mut builder = TlsParameters::builder(host.to_string());
        if let TrustRoots::Only(pems) = &self.settings.roots {
            builder = builder.certificate_store(CertificateStore::None);
            for pem in pems {
                let cert = Certificate::from_pem(pem).map_err(|e| MailError::Root(e.to_string()))?;
                builder = builder.add_root_certificate(cert);
            }
        }
        let params = builder.build_rustls().map_err(|e| MailError::Smtp {
            server: host.to_string(),
            detail: describe(&e),
        })?;
        cache.insert(host.to_string(), params.clone());
        Ok(params)
    }
}

/// lettre's error with its sources (the server's reply, the TLS or I/O reason).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    text
}

/// The plain-text code e-mail, in lines short enough to travel as 7-bit text. Its wording is
/// fixed: the page's `translations` come from the
/// login URL, which anyone can craft, and must not put their text into mail sent from the
/// organization's address.
fn code_message(config: &EmailLogin, mail: &CodeMail<'_>) -> Result<Message, MailError> {
    let from = mailbox(&config.from).ok_or_else(|| MailError::Sender(config.from.clone()))?;
    let to = mailbox(mail.to).ok_or(MailError::Recipient)?;
    let minutes = mail.valid_for.as_secs().div_ceil(60);
    let body = format!(
        "Your login code for {org}:\n\n    {code}\n\n\
         It works once, for {minutes} minutes, on the page where you asked for it.\n\
         If you did not try to log in, ignore this e-mail: nobody can log in\n\
         without the code.\n",
        org = mail.organization,
        code = mail.code,
    );
    let domain = from.email.domain().to_string();
    Message::builder()
        .from(from)
        .to(to)
        .subject(format!("Your login code for {}", mail.organization))
        .message_id(Some(format!("<{}@{domain}>", uuid::Uuid::new_v4())))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| MailError::Build(e.to_string()))
}

fn link_message(config: &EmailLogin, mail: &LinkMail<'_>) -> Result<Message, MailError> {
    let from = mailbox(&config.from).ok_or_else(|| MailError::Sender(config.from.clone()))?;
    let to = mailbox(mail.to).ok_or(MailError::Recipient)?;
    let minutes = mail.valid_for.as_secs().div_ceil(60);
    let org = mail.organization;
    let body = match (mail.kind, mail.links.as_slice()) {
        (EmailAttemptType::Challenge, links) => {
            let numbers: String = links.iter().map(|(n, url)| format!("    {n}: {url}\n")).collect();
            format!(
                "To log in to {org}, open the link of the number the login page shows:\n\n{numbers}\n\
                 Only that number logs you in; any other ends this login attempt.\n\
                 The links work once, for {minutes} minutes. If you did not try to log in,\n\
                 ignore this e-mail.\n"
            )
        }
        (_, [(_, here), (_, there), ..]) => format!(
            "To log in to {org}, check that the login page shows {token}, then:\n\n\
             Log in on this device:\n    {here}\n\n\
             Or log in on the device where you asked for this e-mail:\n    {there}\n\n\
             The link works once, for {minutes} minutes. If you did not try to log in,\n\
             ignore this e-mail: nobody can log in without it.\n",
            token = mail.token,
        ),
        _ => return Err(MailError::Build("a link e-mail needs two links".into())),
    };
    let domain = from.email.domain().to_string();
    Message::builder()
        .from(from)
        .to(to)
        .subject(format!("Log in to {org}"))
        .message_id(Some(format!("<{}@{domain}>", uuid::Uuid::new_v4())))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| MailError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(from: &str) -> EmailLogin {
        EmailLogin {
            smtp_host: "smtp.example.com".into(),
            smtp_port: 587,
            tls: SmtpTls::StartTls,
            from: from.into(),
            credentials_secret_name: None,
            attempt_type: Default::default(),
        }
    }

    #[test]
    fn the_message_carries_the_code_in_the_body_only() {
        let mail = CodeMail {
            to: "ann@example.com",
            organization: "Acme",
            code: "04711",
            valid_for: Duration::from_secs(600),
        };
        let m = code_message(&config("Acme Login <login@acme.example>"), &mail).unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Subject: Your login code for Acme"), "{head}");
        assert!(head.contains("From: \"Acme Login\" <login@acme.example>"), "{head}");
        assert!(
            head.contains("Message-ID: <") && head.contains("@acme.example>"),
            "{head}"
        );
        assert!(!head.contains("04711"));
        assert!(
            body.contains("\r\n    04711\r\n") && body.contains("10 minutes"),
            "{body}"
        );
        assert!(!head.contains("quoted-printable") && !head.contains("base64"), "{head}");
    }

    #[test]
    fn bad_senders_and_recipients_are_refused_with_the_fix() {
        assert!(config_problem(&config("login@acme.example")).is_none());
        assert!(config_problem(&config("Acme <login@acme.example>")).is_none());
        let problem = config_problem(&config("not an address")).unwrap();
        assert!(problem.contains("login@example.com"), "{problem}");
        let mail = CodeMail {
            to: "x\r\nBcc: evil@example.com",
            organization: "Acme",
            code: "00000",
            valid_for: Duration::from_secs(60),
        };
        assert!(matches!(
            code_message(&config("login@acme.example"), &mail),
            Err(MailError::Recipient)
        ));
    }

    #[test]
    fn typed_addresses_are_one_plain_address() {
        assert_eq!(recipient(" Ann@Example.COM "), Some("ann@example.com".into()));
        for bad in [
            "",
            "ann",
            "ann@",
            "Ann <ann@example.com>",
            "a@b.c\r\nBcc: x@y.z",
            "a b@example.com",
        ] {
            assert_eq!(recipient(bad), None, "{bad:?}");
        }
        assert_eq!(recipient(&format!("{}@example.com", "a".repeat(250))), None);
    }
}
