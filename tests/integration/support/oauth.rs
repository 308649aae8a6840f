//! Test support for the OAuth server: starts the public server in-process against the real
//! control plane (reflector caches, Secret watchers and signing keys exactly as `run` wires
//! them) together with the real controllers, restricted to the test's namespace, and creates
//! organizations, secrets, users and native apps. Client secrets are minted and activated by
//! the ClientSecret controller and read back from the Kubernetes Secret it writes, as an app
//! would; native apps get their `appId` and `redirectUri` from the NativeApp controller.
//! Organizations pin `spec.clientId` so tests know it before the controller runs.
//!
//! Host names: the base domain is `localhost` (every client resolves it, and `*.localhost` in
//! Chromium), so shared-domain issuers are `http://localhost:<port>/o/<clientId>`; tests of
//! own hosts (`<sub>.localhost`) pin the name to 127.0.0.1 in reqwest (`resolve`).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use std::sync::Arc;

use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::events::Reporter;
use serde_json::{Value, json};

use centralauth_operator::controller::{self, Context};
use centralauth_operator::crd::{ClientSecret, ClientSecretPhase, NativeApp, Organization};
use centralauth_operator::flow::Flows;
use centralauth_operator::http::{AppState, Settings};
use centralauth_operator::oauth::grant::random_token;
use centralauth_operator::runtime::cache::Caches;
use centralauth_operator::runtime::scope::Scope;
use centralauth_operator::store::StoreUrl;
use centralauth_operator::tenant::PublicBase;

use crate::support;

/// A running public server.
pub struct Server {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Its state (caches, store), for white-box waits.
    pub state: AppState,
    /// Kubernetes client.
    pub client: Client,
    /// Namespace of the test (also the signing keys' namespace).
    pub ns: String,
    task: tokio::task::JoinHandle<()>,
    controllers: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(controllers) = &self.controllers {
            controllers.abort();
        }
    }
}

impl Server {
    /// Starts a server for a fresh namespace named after `test`.
    pub async fn start(test: &str) -> Server {
        Server::start_with(test, |_| {}).await
    }

    /// Starts a server, letting `tweak` change the settings.
    pub async fn start_with(test: &str, tweak: impl FnOnce(&mut Settings)) -> Server {
        support::init_crypto();
        let client = support::client().await;
        let ns = support::namespace(&client, test).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let public = PublicBase {
            scheme: "http".into(),
            base_domain: "localhost".into(),
            port: Some(port),
        };
        let mut settings = Settings::new(ns.clone(), 30 * 24 * 3600);
        tweak(&mut settings);
        let reporter = Reporter {
            controller: "centralauth-operator".into(),
            instance: Some(test.into()),
        };
        let mut ctx = Context::plain(client.clone(), reporter, public.clone());
        ctx.scope = Scope::from_namespaces([ns.clone()]);
        Server::serve(client, ns, listener, public, settings, Some(Arc::new(ctx))).await
    }

    /// Another replica of this server: the same namespace (organizations, signing keys) and
    /// public base URL (as behind one load balancer), its own listener, caches and `store`, no
    /// controllers (only the leader reconciles).
    pub async fn replica(&self, store: StoreUrl, store_key_prefix: &str) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut settings = Settings::new(self.ns.clone(), 30 * 24 * 3600);
        settings.store = store;
        settings.store_key_prefix = store_key_prefix.into();
        let public = self.state.public.clone();
        Server::serve(self.client.clone(), self.ns.clone(), listener, public, settings, None).await
    }

    async fn serve(
        client: Client,
        ns: String,
        listener: tokio::net::TcpListener,
        public: PublicBase,
        settings: Settings,
        controllers: Option<Arc<Context>>,
    ) -> Server {
        let port = listener.local_addr().unwrap().port();
        // The test's namespace only, as a namespace-scoped operator: the server pre-warms every
        // authenticating client secret it sees, and earlier tests leave theirs behind.
        let caches = Caches::start_scoped(&client, &Scope::from_namespaces([ns.clone()]));
        caches.wait_until_ready().await;
        let flows =
            Flows::start(client.clone(), caches, public, settings, Default::default()).expect("the store opens");
        // The controllers (the leader's) record ended access in this server's store.
        let controllers = controllers.map(|ctx| {
            let _ = ctx.store.set(flows.store.clone());
            tokio::spawn(controller::run(ctx))
        });
        let state = AppState::start(flows);
        state.store.ping().await.expect("the store answers");
        let router = centralauth_operator::http::public_router(state.clone());
        let task = tokio::spawn(async move {
            centralauth_operator::http::serve(listener, router, std::future::pending())
                .await
                .unwrap();
        });
        let keys = support::wait_until(Duration::from_secs(20), || async {
            (!state.keys.get().is_empty()).then_some(())
        })
        .await;
        assert!(keys.is_some(), "the signing keys were never loaded");
        Server {
            port,
            state,
            client,
            ns,
            task,
            controllers,
        }
    }

    /// `http://localhost:<port>`.
    pub fn base(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    /// A reqwest client that does not follow redirects and resolves `hosts` to this server.
    pub fn http(&self, hosts: &[&str]) -> reqwest::Client {
        self.http_from([127, 0, 0, 1], hosts)
    }

    /// Like [`Server::http`], connecting from the loopback address `source` (any of
    /// 127.0.0.0/8), so the server sees another client address.
    pub fn http_from(&self, source: [u8; 4], hosts: &[&str]) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(std::net::IpAddr::from(source));
        for h in hosts {
            b = b.resolve(h, SocketAddr::from(([127, 0, 0, 1], self.port)));
        }
        b.build().unwrap()
    }

    /// Creates an organization with a pinned client ID, a passwords Secret with `users`, and
    /// `extra` merged into its spec (top-level keys replace the defaults, so an `extra` with
    /// `loginMethods` decides the methods); waits until the server sees it and the Secrets its
    /// login methods name.
    pub async fn tenant(&self, name: &str, extra: Value, users: &[(&str, &str)]) -> Tenant {
        let client_id = format!("{name}-{}", &random_token()[..10])
            .to_lowercase()
            .replace('_', "x");
        let users_secret = format!("{name}-users");
        let lines: String = users
            .iter()
            .map(|(e, p)| format!("{e}:{}\n", centralauth_operator::crypto::hash(p.as_bytes()).unwrap()))
            .collect();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": users_secret}, "stringData": {"users": lines}
        }))
        .unwrap();
        secrets.create(&PostParams::default(), &secret).await.unwrap();
        let mut spec = json!({
            "displayName": format!("{name} Inc."),
            "clientId": client_id,
            "allowedOrigins": ["https://app.example.com"],
            "redirectUris": ["https://app.example.com/cb"],
            "loginMethods": {"passwords": {"secretName": users_secret}},
        });
        merge(&mut spec, extra);
        // Subdomains are unique across the cluster, and earlier test runs leave their
        // namespaces behind: make each one unique.
        if let Some(sub) = spec.get("subdomain").and_then(Value::as_str) {
            // The random part of a client ID is base64url: keep only what a DNS label allows,
            // so the label never ends with '-' nor holds '_'.
            let suffix: String = client_id[name.len() + 1..]
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(6)
                .collect();
            spec["subdomain"] = json!(format!("{sub}-{suffix}").to_lowercase());
        }
        let orgs: Api<Organization> = Api::namespaced(self.client.clone(), &self.ns);
        let org: Organization = serde_json::from_value(json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        orgs.create(&PostParams::default(), &org).await.unwrap();
        // Wait for every Secret the login methods name (an `extra` replacing `loginMethods`
        // may name others than the users Secret).
        let mut needed = vec![];
        if let Some(name) = spec
            .pointer("/loginMethods/passwords/secretName")
            .and_then(Value::as_str)
        {
            needed.push((name.to_string(), "users"));
        }
        if let Some(name) = spec
            .pointer("/loginMethods/email/credentialsSecretName")
            .and_then(Value::as_str)
        {
            needed.push((name.to_string(), "password"));
        }
        let state = self.state.clone();
        let (ns, cid) = (self.ns.clone(), client_id.clone());
        let seen = support::wait_until(Duration::from_secs(20), || {
            let (state, ns, cid, needed) = (state.clone(), ns.clone(), cid.clone(), needed.clone());
            async move {
                let org = state.org_by_client_id(&cid)?;
                for (name, key) in &needed {
                    state.secrets.value(&ns, name, key)?;
                }
                Some(org)
            }
        })
        .await
        .expect("the server never saw the organization and its users");
        let own = centralauth_operator::tenant::own_host(&seen, &self.state.public);
        Tenant {
            name: name.into(),
            client_id: client_id.clone(),
            issuer: self.state.issuer(&seen),
            host: own.unwrap_or_else(|| "localhost".into()),
            secret: String::new(),
            port: self.port,
        }
    }
}

fn merge(a: &mut Value, b: Value) {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        for (k, v) in b {
            a.insert(k, v);
        }
    }
}

/// An organization as the tests use it.
#[derive(Clone, Debug)]
pub struct Tenant {
    /// Organization name.
    pub name: String,
    /// Its client ID.
    pub client_id: String,
    /// Its issuer.
    pub issuer: String,
    /// The host its CentralAuth endpoints are reached on.
    pub host: String,
    /// The active client secret (after `activate_secret`).
    pub secret: String,
    /// Server port.
    pub port: u16,
}

impl Tenant {
    /// `http://<host>:<port>`: where `/login` and `/api/v1/*` are.
    pub fn origin(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// The CentralAuth `/login` URL of this organization for `redirect_uri`, with
    /// `response_type=code` and `extra` parameters (PKCE, `state`, `app_id`, `affirm`…).
    pub fn login_url(&self, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
        let mut q = vec![
            ("client_id", self.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", redirect_uri),
        ];
        q.extend_from_slice(extra);
        reqwest::Url::parse_with_params(&format!("{}/login", self.origin()), &q)
            .unwrap()
            .to_string()
    }

    /// `POST /api/v1/verify` as the CentralAuth web client does (multipart, Basic auth), with
    /// the PKCE `verifier` when the login had a challenge.
    pub async fn verify(
        &self,
        http: &reqwest::Client,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Value {
        let mut form = reqwest::multipart::Form::new()
            .text("code", code.to_string())
            .text("redirect_uri", redirect_uri.to_string());
        if let Some(v) = verifier {
            form = form.text("code_verifier", v.to_string());
        }
        let resp = http
            .post(format!("{}/api/v1/verify", self.origin()))
            .basic_auth(&self.client_id, Some(&self.secret))
            .multipart(form);
        json_of(resp).await
    }

    /// `POST /api/v1/userinfo?domain=<origin>` with a CentralAuth access token.
    pub async fn userinfo(&self, http: &reqwest::Client, token: &str, domain: &str) -> Value {
        let resp = http
            .post(format!("{}/api/v1/userinfo?domain={domain}", self.origin()))
            .basic_auth(&self.client_id, Some(&self.secret))
            .body(token.to_string());
        resp.send().await.unwrap().json().await.unwrap()
    }

    /// `POST <issuer>/oauth2/token` with `client_secret_basic`.
    pub async fn token(&self, http: &reqwest::Client, form: &[(&str, &str)]) -> Value {
        let resp = http
            .post(format!("{}/oauth2/token", self.issuer))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(form);
        resp.send().await.unwrap().json().await.unwrap()
    }

    /// Creates a ClientSecret with `activation: Immediate`, waits until its controller has
    /// minted and activated it, reads the secret from the Kubernetes Secret it wrote, and waits
    /// until the server accepts it.
    pub async fn activate_secret(&mut self, server: &Server, cs_name: &str) {
        let ns = &server.ns;
        let css: Api<ClientSecret> = Api::namespaced(server.client.clone(), ns);
        let cs: ClientSecret = serde_json::from_value(json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret",
            "metadata": {"name": cs_name},
            "spec": {"organizationRef": {"name": self.name}, "activation": "Immediate"},
        }))
        .unwrap();
        css.create(&PostParams::default(), &cs).await.unwrap();
        let active = support::wait_until(Duration::from_secs(30), || async {
            let cs = css.get(cs_name).await.ok()?;
            (cs.phase() == ClientSecretPhase::Active).then_some(())
        })
        .await;
        assert!(active.is_some(), "ClientSecret {cs_name} never became Active");
        let secrets: Api<Secret> = Api::namespaced(server.client.clone(), ns);
        let data = secrets.get(cs_name).await.unwrap().data.unwrap();
        let secret = String::from_utf8(data["client_secret"].0.clone()).unwrap();
        self.wait_seen_by(server, cs_name).await;
        self.secret = secret;
    }

    /// Waits until `server` (this tenant's, or a replica) sees the organization with the
    /// activated ClientSecret `cs_name` and its Secret.
    pub async fn wait_seen_by(&self, server: &Server, cs_name: &str) {
        let state = server.state.clone();
        let (cid, name, ns) = (self.client_id.clone(), cs_name.to_string(), server.ns.clone());
        support::wait_until(Duration::from_secs(20), || {
            let (state, cid, name, ns) = (state.clone(), cid.clone(), name.clone(), ns.clone());
            async move {
                let org = state.org_by_client_id(&cid)?;
                state.secrets.value(&ns, &name, "client_secret")?;
                let ok = state
                    .client_secrets_of(&org)
                    .iter()
                    .any(|cs| cs.metadata.name.as_deref() == Some(&name) && cs.authenticates_for(&org));
                ok.then_some(())
            }
        })
        .await
        .expect("the server never saw the activated secret");
    }

    /// Registers an iOS native app and waits for its controller to write `appId` and
    /// `redirectUri`. Returns (app_id, redirect_uri).
    pub async fn native_app(&self, server: &Server, name: &str, app_link: &str) -> (String, String) {
        let bundle_id = format!("com.example.{}", name.replace('-', ""));
        let apps: Api<NativeApp> = Api::namespaced(server.client.clone(), &server.ns);
        let app: NativeApp = serde_json::from_value(json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "NativeApp", "metadata": {"name": name},
            "spec": {"organizationRef": {"name": self.name}, "displayName": name, "platform": "iOS",
                     "bundleId": bundle_id, "teamId": "ABCDE12345", "appLink": app_link},
        }))
        .unwrap();
        apps.create(&PostParams::default(), &app).await.unwrap();
        let registered = support::wait_until(Duration::from_secs(30), || async {
            let status = apps.get(name).await.ok()?.status?;
            Some((status.app_id?, status.redirect_uri?))
        })
        .await;
        let (app_id, redirect_uri) = registered.expect("the NativeApp controller never registered the app");
        let state = server.state.clone();
        let cid = self.client_id.clone();
        let id = app_id.clone();
        support::wait_until(Duration::from_secs(20), || {
            let (state, cid, id) = (state.clone(), cid.clone(), id.clone());
            async move {
                let org = state.org_by_client_id(&cid)?;
                state
                    .native_apps_of(&org)
                    .iter()
                    .any(|a| a.status.as_ref().and_then(|s| s.app_id.as_deref()) == Some(&id))
                    .then_some(())
            }
        })
        .await
        .expect("the server never saw the native app");
        (app_id, redirect_uri)
    }
}

/// The value of a hidden form field in an HTML page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..].split('"').next()?.to_string())
}

/// Scripted login as a browser without JavaScript would do it: GET the authorization URL,
/// read the form, POST the credentials with the CSRF cookie. Returns the final response.
pub async fn login(http: &reqwest::Client, authorize_url: &str, email: &str, password: &str) -> reqwest::Response {
    login_with(http, authorize_url, email, password, &[]).await
}

/// [`login`] from a browser that also holds `cookies` (`name=value`: a session, a device
/// cookie), sent with both requests.
pub async fn login_with(
    http: &reqwest::Client,
    authorize_url: &str,
    email: &str,
    password: &str,
    cookies: &[String],
) -> reqwest::Response {
    let (csrf, html) = open_login_with(http, authorize_url, cookies).await;
    let url = reqwest::Url::parse(authorize_url).unwrap();
    let form = [
        ("login", hidden(&html, "login").unwrap()),
        ("csrf", hidden(&html, "csrf").unwrap()),
        ("email", email.to_string()),
        ("password", password.to_string()),
    ];
    let post = format!("{}://{}/login", url.scheme(), url.authority());
    let mut all = cookies.to_vec();
    all.push(csrf);
    http.post(post)
        .header("cookie", all.join("; "))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// The first cookie a response sets whose name starts with `prefix` (`ca_session`,
/// `ca_device_`), as `name=value`.
pub fn cookie_set(resp: &reqwest::Response, prefix: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap_or_default())
        .find(|c| c.starts_with(prefix))
        .map(String::from)
}

/// GETs an authorization URL that must render the login page; returns the CSRF cookie
/// (`ca_csrf=…`) and the page.
pub async fn open_login(http: &reqwest::Client, authorize_url: &str) -> (String, String) {
    open_login_with(http, authorize_url, &[]).await
}

/// [`open_login`] from a browser holding `cookies`.
pub async fn open_login_with(http: &reqwest::Client, authorize_url: &str, cookies: &[String]) -> (String, String) {
    let mut get = http.get(authorize_url);
    if !cookies.is_empty() {
        get = get.header("cookie", cookies.join("; "));
    }
    let page = get.send().await.unwrap();
    assert_eq!(page.status(), 200, "the login page did not render for {authorize_url}");
    let cookie = cookie_set(&page, "ca_csrf=").expect("the login page set no CSRF cookie");
    (cookie, page.text().await.unwrap())
}

/// The query parameters of a `Location` header.
pub fn location_params(resp: &reqwest::Response) -> Vec<(String, String)> {
    let loc = resp
        .headers()
        .get("location")
        .expect("no Location header")
        .to_str()
        .unwrap();
    reqwest::Url::parse(loc).unwrap().query_pairs().into_owned().collect()
}

/// One query parameter of the `Location` header.
pub fn location_param(resp: &reqwest::Response, name: &str) -> Option<String> {
    location_params(resp)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Sends `req` and parses the answer as JSON.
pub async fn json_of(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}
