//! Ory Hydra v2.3.0 as a real upstream OpenID Connect provider: built from the Go module proxy
//! by `tests/peers/hydra-build.sh` (cached in `~/.cache/centralauth-peers`), one process per
//! test on free loopback ports with a SQLite database in /dev/shm (`hydra migrate sql up`,
//! then `hydra serve all --dev`). Hydra delegates login and consent to an app: the
//! [`Acceptor`] here is that app — it accepts every login and consent challenge through
//! Hydra's admin API as the identity the test chose for the client ([`Hydra::set_identity`]),
//! with `email` and `email_verified` in the ID token.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use crate::support;

/// The identity the acceptor logs a Hydra client's users in as.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Hydra's `sub`.
    pub subject: String,
    /// `email` of the ID token.
    pub email: String,
    /// `email_verified` of the ID token.
    pub verified: bool,
}

type Identities = Arc<Mutex<HashMap<String, Identity>>>;

/// A running Hydra with its acceptor.
pub struct Hydra {
    /// Public port (issuer `http://127.0.0.1:<public>`).
    pub public: u16,
    /// Admin port.
    pub admin: u16,
    /// The issuer.
    pub issuer: String,
    proc: Option<Child>,
    db: PathBuf,
    identities: Identities,
    acceptor: tokio::task::JoinHandle<()>,
    acceptor_port: u16,
    http: reqwest::Client,
}

impl Drop for Hydra {
    fn drop(&mut self) {
        self.stop();
        self.acceptor.abort();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.db.display()));
        }
    }
}

/// The Hydra binary, built once (or found in the cache).
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = support::repo_root().join("tests/peers/hydra-build.sh");
        let out = Command::new(&script)
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/peers/hydra-build.sh");
        assert!(out.status.success(), "hydra-build.sh failed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(stdout.lines().last().expect("hydra-build.sh printed the binary path"))
    })
    .clone()
}

impl Hydra {
    /// Starts Hydra and its acceptor; returns once Hydra is ready.
    pub async fn start() -> Hydra {
        let identities: Identities = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let acceptor_port = listener.local_addr().unwrap().port();
        let (public, admin) = (support::free_port(), support::free_port());
        // No pooled connections: Hydra (Go's net/http) closes idle keep-alive connections, and a
        // POST sent on one just as it closes fails with `IncompleteMessage` (reqwest retries no
        // POST) — seen once in CI in `rotate_keys`. A fresh loopback connection costs nothing.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let state = AcceptorState {
            admin: format!("http://127.0.0.1:{admin}"),
            identities: identities.clone(),
            http: http.clone(),
        };
        let app = axum::Router::new()
            .route("/login", axum::routing::get(accept_login))
            .route("/consent", axum::routing::get(accept_consent))
            .with_state(state);
        let acceptor = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let db = PathBuf::from(format!(
            "/dev/shm/centralauth-test-hydra-{}-{public}.db",
            std::process::id()
        ));
        let issuer = format!("http://127.0.0.1:{public}");
        let env = [
            ("DSN", format!("sqlite://{}?_fk=true", db.display())),
            ("SECRETS_SYSTEM", "test-system-secret-0123456789-abcdefghij".into()),
            ("URLS_SELF_ISSUER", issuer.clone()),
            ("URLS_LOGIN", format!("http://127.0.0.1:{acceptor_port}/login")),
            ("URLS_CONSENT", format!("http://127.0.0.1:{acceptor_port}/consent")),
            ("SERVE_PUBLIC_PORT", public.to_string()),
            ("SERVE_PUBLIC_HOST", "127.0.0.1".into()),
            ("SERVE_ADMIN_PORT", admin.to_string()),
            ("SERVE_ADMIN_HOST", "127.0.0.1".into()),
            ("LOG_LEVEL", "warn".into()),
        ];
        let bin = binary();
        let migrated = Command::new(&bin)
            .args(["migrate", "sql", "up", "-e", "--yes"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(migrated.success(), "hydra migrate failed");
        let proc = Command::new(&bin)
            .args(["serve", "all", "--dev"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let hydra = Hydra {
            public,
            admin,
            issuer,
            proc: Some(proc),
            db,
            identities,
            acceptor,
            acceptor_port,
            http,
        };
        let ready = support::wait_until(Duration::from_secs(30), || async {
            let r = hydra
                .http
                .get(format!("{}/health/ready", hydra.admin_url()))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        assert!(ready.is_some(), "hydra never became ready");
        // Hydra makes its ID-token key (RSA 4096) at the first JWKS request, which can take
        // longer than the server's provider timeout on a loaded machine: make it now.
        // Hydra may drop the connection while it works; ask until it answers.
        let url = format!("{}/.well-known/jwks.json", hydra.issuer);
        let keys = support::wait_until(Duration::from_secs(90), || async {
            let keys: Value = hydra.http.get(&url).send().await.ok()?.json().await.ok()?;
            keys["keys"].as_array().is_some_and(|k| !k.is_empty()).then_some(())
        })
        .await;
        assert!(keys.is_some(), "hydra never served its JWKS");
        hydra
    }

    /// `http://127.0.0.1:<admin>`.
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin)
    }

    /// Stops the Hydra process (the provider is down from now on).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    /// Registers an OAuth client with `secret` and `redirect_uris`; its client ID.
    pub async fn client(&self, secret: &str, redirect_uris: &[String]) -> String {
        let body = json!({
            "client_secret": secret,
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "redirect_uris": redirect_uris,
            "scope": "openid email profile",
            "token_endpoint_auth_method": "client_secret_basic",
        });
        let r = self
            .http
            .post(format!("{}/admin/clients", self.admin_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "hydra refused the client: {}",
            r.text().await.unwrap()
        );
        let v: Value = r.json().await.unwrap();
        v["client_id"].as_str().unwrap().to_string()
    }

    /// The acceptor logs users of `client_id` in as `identity` from now on.
    pub fn set_identity(&self, client_id: &str, identity: Identity) {
        self.identities.lock().unwrap().insert(client_id.to_string(), identity);
    }

    /// Hydra's JWKS (public keys of its ID tokens).
    pub async fn jwks(&self) -> Value {
        let url = format!("{}/.well-known/jwks.json", self.issuer);
        self.http.get(url).send().await.unwrap().json().await.unwrap()
    }

    /// Rotates the ID-token signing key: a new RS256 key is created, the others are deleted.
    /// Returns the new key's ID.
    pub async fn rotate_keys(&self) -> String {
        let set = format!("{}/admin/keys/hydra.openid.id-token", self.admin_url());
        let old: Value = self.http.get(&set).send().await.unwrap().json().await.unwrap();
        let r = self
            .http
            .post(&set)
            .json(&json!({"alg": "RS256", "use": "sig", "kid": format!("rotated-{}", self.public)}))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "hydra refused a new key: {}",
            r.text().await.unwrap()
        );
        let new: Value = r.json().await.unwrap();
        let new_kid = new["keys"][0]["kid"].as_str().unwrap().to_string();
        for key in old["keys"].as_array().unwrap() {
            let kid = key["kid"].as_str().unwrap();
            let r = self.http.delete(format!("{set}/{kid}")).send().await.unwrap();
            assert!(r.status().is_success(), "hydra did not delete key {kid}");
        }
        new_kid
    }

    /// Follows `url` through Hydra and the acceptor, as a browser keeping Hydra's cookies,
    /// until a redirect leaves them; returns that URL (the client's callback).
    pub async fn follow(&self, url: &str) -> String {
        let mut url = url.to_string();
        let mut jar: HashMap<String, String> = HashMap::new();
        for _ in 0..12 {
            let cookies: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let r = self
                .http
                .get(&url)
                .header("cookie", cookies.join("; "))
                .send()
                .await
                .unwrap();
            for c in r.headers().get_all("set-cookie") {
                let pair = c.to_str().unwrap().split(';').next().unwrap().to_string();
                if let Some((k, v)) = pair.split_once('=') {
                    jar.insert(k.to_string(), v.to_string());
                }
            }
            let Some(location) = r.headers().get("location") else {
                panic!(
                    "hydra answered {} without a redirect for {url}: {}",
                    r.status(),
                    r.text().await.unwrap()
                );
            };
            let next = reqwest::Url::parse(&url)
                .unwrap()
                .join(location.to_str().unwrap())
                .unwrap()
                .to_string();
            if self.outside(&next) {
                return next;
            }
            url = next;
        }
        panic!("too many redirects at hydra");
    }

    /// Whether `url` is neither Hydra's public port nor the acceptor.
    fn outside(&self, url: &str) -> bool {
        let port = reqwest::Url::parse(url).unwrap().port();
        port != Some(self.public) && port != Some(self.acceptor_port)
    }
}

#[derive(Clone)]
struct AcceptorState {
    admin: String,
    identities: Identities,
    http: reqwest::Client,
}

async fn admin_get(s: &AcceptorState, path: &str) -> Value {
    let r = s.http.get(format!("{}{path}", s.admin)).send().await.unwrap();
    r.json().await.unwrap()
}

async fn admin_put(s: &AcceptorState, path: &str, body: Value) -> String {
    let r = s
        .http
        .put(format!("{}{path}", s.admin))
        .json(&body)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["redirect_to"]
        .as_str()
        .unwrap_or_else(|| panic!("hydra: {v}"))
        .to_string()
}

async fn accept_login(State(s): State<AcceptorState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let challenge = q.get("login_challenge").cloned().unwrap_or_default();
    let path = format!("/admin/oauth2/auth/requests/login?login_challenge={challenge}");
    let request = admin_get(&s, &path).await;
    let client = request["client"]["client_id"].as_str().unwrap_or_default().to_string();
    let identity = s.identities.lock().unwrap().get(&client).cloned();
    let Some(identity) = identity else {
        return (axum::http::StatusCode::FORBIDDEN, "no identity set for this client").into_response();
    };
    let accept = format!("/admin/oauth2/auth/requests/login/accept?login_challenge={challenge}");
    let to = admin_put(&s, &accept, json!({"subject": identity.subject, "remember": false})).await;
    Redirect::to(&to).into_response()
}

async fn accept_consent(State(s): State<AcceptorState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let challenge = q.get("consent_challenge").cloned().unwrap_or_default();
    let path = format!("/admin/oauth2/auth/requests/consent?consent_challenge={challenge}");
    let request = admin_get(&s, &path).await;
    let client = request["client"]["client_id"].as_str().unwrap_or_default().to_string();
    let identity = s.identities.lock().unwrap().get(&client).cloned().unwrap();
    let accept = format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={challenge}");
    let body = json!({
        "grant_scope": request["requested_scope"],
        "grant_access_token_audience": request["requested_access_token_audience"],
        "remember": false,
        "session": {"id_token": {"email": identity.email, "email_verified": identity.verified}},
    });
    Redirect::to(&admin_put(&s, &accept, body).await).into_response()
}
