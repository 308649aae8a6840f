//! The authorization request of both protocols — `GET /login` (CentralAuth) and
//! `GET /oauth2/authorize` (standard) — validated by one function, [`Flows::authorize`]: the
//! organization and client, the redirect URI (an unknown client or a bad redirect URI is an
//! error page, never a redirect), then `response_type`, PKCE and `prompt` (errors redirect to
//! the validated redirect URI with `state` and `iss`). [`Flows::start_login`] then, as
//! [`crate::oauth::prompt`] decides, finishes at once with a live session of the organization,
//! refuses with `login_required` (`prompt=none`), or stores the request under a random login
//! ID ([`super::login::login_key`]) for the login form.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;

use super::Flows;
use super::directory::{Site, org_key};
use super::login::{LOGIN_TTL, LoginError, LoginRequest, login_key};
use crate::crd::condition::{self, READY};
use crate::crd::{Organization, Platform};
use crate::oauth::grant::{self, AuthRequest, OrgKey, Protocol, Session};
use crate::oauth::hijack::{Mismatch, Shown};
use crate::oauth::prompt::{Decision, Prompt};
use crate::oauth::{pkce, redirect};
use crate::store::{hashed, json};

/// The named parameters of a request (the HTTP adapter's query or form).
pub trait Query {
    /// The value of parameter `name`, if sent once.
    fn get(&self, name: &str) -> Option<&str>;
}

/// Where an authorization request arrived.
pub struct Arrival<'a> {
    /// The request's host.
    pub host: Option<&'a str>,
    /// The client ID of the path (`/o/<clientId>/oauth2/authorize` on the base domain).
    pub path_client_id: Option<&'a str>,
    /// The client address (`hijackProtection.ip`).
    pub addr: std::net::IpAddr,
}

/// An error sent back to a validated redirect URI, with `state` and `iss`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRedirect {
    /// The redirect URI.
    pub uri: String,
    /// The `error` code.
    pub error: &'static str,
    /// The `error_description`.
    pub description: Cow<'static, str>,
    /// `state`, as sent.
    pub state: Option<String>,
    /// The issuer (RFC 9207 `iss`).
    pub issuer: String,
}

impl ErrorRedirect {
    /// The URL to redirect to.
    pub fn location(&self) -> String {
        let mut params: Vec<(&str, &str)> =
            vec![("error", self.error), ("error_description", self.description.as_ref())];
        if let Some(s) = &self.state {
            params.push(("state", s.as_str()));
        }
        params.push(("iss", self.issuer.as_str()));
        redirect::with_params(&self.uri, &params)
    }
}

/// Why an authorization request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Shown as an error page: the client or redirect URI cannot be trusted with a redirect.
    #[error("{0}")]
    Page(Cow<'static, str>),
    /// The request's host is not served here (an error page, 404).
    #[error("this host is not served here")]
    HostNotServed,
    /// Sent back to the validated redirect URI.
    #[error("{}", .0.description)]
    Redirect(ErrorRedirect),
}

fn page(message: impl Into<Cow<'static, str>>) -> Refusal {
    Refusal::Page(message.into())
}

/// What [`Flows::start_login`] decided.
pub enum Started {
    /// A live session of the organization was reused: redirect with the code.
    Finished(String),
    /// `prompt=none` and no usable session.
    LoginRequired(ErrorRedirect),
    /// The form must be shown; the request is stored under `login_id`.
    Form {
        /// The stored request (boxed: the other variants are small).
        login: Box<LoginRequest>,
        /// The login ID (a bearer value the browser holds).
        login_id: String,
        /// The CSRF token (the form's hidden field and the `ca_csrf` cookie).
        csrf: String,
    },
}

/// The organization, redirect URI and app of a request whose client and redirect checked out.
struct Client<'a> {
    org: Arc<Organization>,
    redirect_uri: &'a str,
    app_id: Option<String>,
    /// The app is a Desktop NativeApp (loopback redirect, signed exchange).
    desktop: bool,
    issuer: String,
}

impl Flows {
    /// Validates an authorization request of `protocol`; `Ok` is the request and how its
    /// prompt treats a live session.
    pub fn authorize(
        &self,
        protocol: Protocol,
        at: Arrival<'_>,
        q: &dyn Query,
    ) -> Result<(LoginRequest, Prompt), Refusal> {
        let host = at.host.map(str::to_string);
        let client = match protocol {
            Protocol::OAuth => self.oauth_client(at, q)?,
            Protocol::CentralAuth => self.centralauth_client(at, q)?,
        };
        let fail = |error: &'static str, description: Cow<'static, str>| {
            Refusal::Redirect(ErrorRedirect {
                uri: client.redirect_uri.to_string(),
                error,
                description,
                state: q.get("state").map(String::from),
                issuer: client.issuer.clone(),
            })
        };
        let oauth = protocol == Protocol::OAuth;
        if q.get("response_type") != Some("code") {
            let error = if oauth {
                "unsupported_response_type"
            } else {
                "missingFields"
            };
            return Err(fail(error, "response_type must be code".into()));
        }
        let challenge = q.get("code_challenge");
        match challenge {
            Some(c) => pkce::check_challenge(c, q.get("code_challenge_method")).map_err(|e| {
                fail(
                    if oauth {
                        "invalid_request"
                    } else {
                        "codeChallengeInvalid"
                    },
                    e.to_string().into(),
                )
            })?,
            None if oauth => return Err(fail("invalid_request", "code_challenge (S256) is required".into())),
            None if client.app_id.is_some() => {
                return Err(fail(
                    "codeChallengeMissing",
                    "native apps must send a S256 code_challenge".into(),
                ));
            }
            None => {}
        }
        let prompt = match oauth {
            true => Prompt::parse(q.get("prompt"), q.get("max_age"))
                .map_err(|e| fail("invalid_request", e.to_string().into()))?,
            false if q.get("affirm") == Some("1") => Prompt::login(),
            false => Prompt::default(),
        };
        let mut login = login_request(protocol, &client, q);
        login.own_host = host.is_some() && host == crate::tenant::own_host(&client.org, &self.public);
        Ok((login, prompt))
    }

    /// The organization and redirect URI of a standard request: the organization of the
    /// address, its client ID, and a native app's redirect URI or a registered one.
    fn oauth_client<'q>(&self, at: Arrival<'_>, q: &'q dyn Query) -> Result<Client<'q>, Refusal> {
        let org = self
            .standard_org(at.host, at.path_client_id)
            .ok_or_else(|| page("no organization is served at this address"))?;
        if q.get("client_id").is_none() || q.get("client_id") != org.client_id() {
            return Err(page("unknown client_id"));
        }
        let redirect_uri = q.get("redirect_uri").ok_or_else(|| page("redirect_uri is missing"))?;
        let app = self.native_apps_of(&org).into_iter().find(|a| {
            let registered = a.status.as_ref().and_then(|s| s.redirect_uri.as_deref());
            match a.spec.platform {
                // Only a Ready desktop app: its loopback redirect is its own in the organization.
                Platform::Desktop => {
                    registered.is_some_and(|r| redirect::check_loopback(redirect_uri, r).is_ok())
                        && a.status
                            .as_ref()
                            .is_some_and(|s| condition::is_true(&s.conditions, READY))
                }
                Platform::Ios | Platform::Android => registered == Some(redirect_uri),
            }
        });
        let app_id = app.as_ref().and_then(|a| a.status.as_ref()?.app_id.clone());
        if app_id.is_none() {
            redirect::check_exact(redirect_uri, &org.spec.redirect_uris).map_err(|e| page(e.to_string()))?;
        }
        let issuer = self.issuer(&org);
        Ok(Client {
            org,
            redirect_uri,
            desktop: app_id.is_some() && app.is_some_and(|a| a.spec.platform == Platform::Desktop),
            app_id,
            issuer,
        })
    }

    /// The organization and redirect URI of a CentralAuth request: a native app's link, or
    /// the organization's web redirect rules.
    fn centralauth_client<'q>(&self, at: Arrival<'_>, q: &'q dyn Query) -> Result<Client<'q>, Refusal> {
        let org = self.login_org(at.host, q.get("client_id"))?;
        let redirect_uri = q.get("redirect_uri").ok_or_else(|| page("redirect_uri is missing"))?;
        let app_id = q.get("app_id");
        let mut desktop = false;
        match app_id {
            Some(app_id) => {
                let app = self
                    .native_apps_of(&org)
                    .into_iter()
                    .find(|a| a.status.as_ref().and_then(|s| s.app_id.as_deref()) == Some(app_id))
                    .ok_or_else(|| page("app_id is not a registered native app of this organization"))?;
                desktop = app.spec.platform == Platform::Desktop;
                match desktop {
                    true => redirect::check_loopback(redirect_uri, &app.spec.app_link),
                    false => redirect::check_native(redirect_uri, &app.spec.app_link),
                }
            }
            None => redirect::check_centralauth_web(redirect_uri, web_policy(&org)),
        }
        .map_err(|e| page(e.to_string()))?;
        let issuer = self.issuer(&org);
        Ok(Client {
            org,
            redirect_uri,
            app_id: app_id.map(String::from),
            desktop,
            issuer,
        })
    }

    /// The organization of a CentralAuth login: its own host, or `client_id` on the base domain.
    pub fn login_org(&self, host: Option<&str>, client_id: Option<&str>) -> Result<Arc<Organization>, Refusal> {
        let unknown = || page("unknown client_id: no organization of this server has it");
        match host.and_then(|h| self.site(h)) {
            Some(Site::Own(org)) => match client_id {
                Some(cid) if org.client_id() != Some(cid) => Err(unknown()),
                _ => Ok(org),
            },
            Some(Site::Base) => {
                let cid = client_id.ok_or_else(|| page("client_id is missing"))?;
                self.org_by_client_id(cid).ok_or_else(unknown)
            }
            None => Err(Refusal::HostNotServed),
        }
    }

    /// Finishes at once with the browser's live session (`session_cookie`) when `prompt`
    /// allows it, refuses with `login_required` when it must not show a page, or stores the
    /// request for the form. `browser` is what the request shows of the client
    /// (`hijackProtection`: a session bound to another client is ended, and the form says why).
    pub async fn start_login(
        &self,
        mut req: LoginRequest,
        prompt: Prompt,
        session_cookie: Option<&str>,
        browser: Shown<'_>,
    ) -> Result<Started, LoginError> {
        let now = crate::oauth::now();
        let browser = Shown {
            device_id: req.device_id.as_deref(),
            ..browser
        };
        let session = match (prompt.reauthenticate, session_cookie) {
            (false, Some(sid)) => match self.live_session(sid, &req.request.org, browser, now).await {
                Ok(session) => session,
                Err(mismatch) => {
                    req.message = Some(mismatch.to_string());
                    None
                }
            },
            _ => None,
        };
        match (prompt.decide(session.as_ref().map(|s| s.created_at), now), session) {
            (Decision::Reuse, Some(session)) => return Ok(Started::Finished(self.finish(&req, &session).await?)),
            (Decision::LoginRequired, _) => {
                let issuer = self
                    .org_by_key(&req.request.org)
                    .map(|o| self.issuer(&o))
                    .unwrap_or_default();
                return Ok(Started::LoginRequired(ErrorRedirect {
                    uri: req.request.redirect_uri.clone(),
                    error: "login_required",
                    description: "the user must log in, and prompt=none forbids showing the login page".into(),
                    state: req.state.clone(),
                    issuer,
                }));
            }
            _ => {}
        }
        let csrf = grant::random_token();
        req.csrf_hash = hashed(&csrf);
        let login_id = grant::random_token();
        json::put(self.store.as_ref(), &login_key(&login_id), &req, LOGIN_TTL).await?;
        Ok(Started::Form {
            login: Box::new(req),
            login_id,
            csrf,
        })
    }

    /// Session `sid` of organization `org`, if it lives (a store failure counts as none: the
    /// form is shown, whose storing then reports the outage). A session bound to another
    /// client than `browser` shows is ended: why.
    async fn live_session(
        &self,
        sid: &str,
        org: &OrgKey,
        browser: Shown<'_>,
        now: i64,
    ) -> Result<Option<Session>, Mismatch> {
        let organization = self.org_by_key(org);
        let idle = organization
            .as_ref()
            .map_or(super::login::DEFAULT_IDLE, |o| o.max_inactivity());
        let Some(session) = self.user_session(sid, idle, now).await.ok().flatten() else {
            return Ok(None);
        };
        if session.org != *org {
            return Ok(None);
        }
        self.hijack_check(organization.as_deref(), &session, browser).await?;
        Ok(Some(session))
    }
}

/// The request to store, from the validated client and the parameters of `protocol`.
fn login_request(protocol: Protocol, client: &Client<'_>, q: &dyn Query) -> LoginRequest {
    let org = &client.org;
    let oauth = protocol == Protocol::OAuth;
    LoginRequest {
        request: AuthRequest {
            org: org_key(org),
            client_id: org.client_id().unwrap_or_default().to_string(),
            protocol,
            redirect_uri: client.redirect_uri.to_string(),
            code_challenge: q.get("code_challenge").map(String::from),
            app_id: client.app_id.clone(),
            scope: oauth.then(|| super::token::filter_scope(q.get("scope"))).flatten(),
            nonce: oauth.then(|| q.get("nonce").map(String::from)).flatten(),
        },
        state: q.get("state").map(String::from),
        device_id: (!oauth).then(|| q.get("device_id").map(String::from)).flatten(),
        csrf_hash: String::new(),
        embed: !oauth
            && q.get("embed") == Some("1")
            && crate::origin::usable(&org.spec.allowed_origins).next().is_some(),
        translations: match oauth {
            true => BTreeMap::new(),
            false => q.get("translations").map(decode_translations).unwrap_or_default(),
        },
        email: q.get(if oauth { "login_hint" } else { "email" }).map(String::from),
        message: (!oauth).then(|| q.get("error_description").map(String::from)).flatten(),
        affirm: !oauth && q.get("affirm") == Some("1"),
        own_host: false,
        desktop: client.desktop,
    }
}

/// The redirect rules of an organization.
pub fn web_policy(org: &Organization) -> redirect::WebPolicy<'_> {
    redirect::WebPolicy {
        allowed_origins: &org.spec.allowed_origins,
        redirect_uris: &org.spec.redirect_uris,
        allow_localhost: org.spec.allow_localhost,
    }
}

/// The `translations` parameter: base64 (either alphabet) JSON of strings, each cut at 500
/// characters; anything else is ignored.
pub fn decode_translations(b64: &str) -> BTreeMap<String, String> {
    let cleaned = b64.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(cleaned)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cleaned))
        .unwrap_or_default();
    let parsed: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&bytes).unwrap_or_default();
    parsed
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_str()?.chars().take(500).collect())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translations_accept_both_base64_alphabets_and_ignore_non_strings() {
        let json = r#"{"login":"Inloggen","emailAddress":"E-mailadres ?>","x":1}"#;
        let std = base64::engine::general_purpose::STANDARD.encode(json);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        for encoded in [std, url] {
            let t = decode_translations(&encoded);
            assert_eq!(t.get("login").map(String::as_str), Some("Inloggen"));
            assert!(!t.contains_key("x"));
        }
        assert!(decode_translations("not base64!").is_empty());
    }

    #[test]
    fn an_error_redirect_carries_state_and_issuer() {
        let r = ErrorRedirect {
            uri: "https://app.example.com/cb".into(),
            error: "login_required",
            description: "log in".into(),
            state: Some("s 1".into()),
            issuer: "https://acme.example.net".into(),
        };
        let location = r.location();
        assert!(
            location.starts_with("https://app.example.com/cb?error=login_required"),
            "{location}"
        );
        assert!(location.contains("state=s"), "{location}");
        assert!(location.contains("iss=https"), "{location}");
    }
}
