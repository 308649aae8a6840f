//! A load generator of logins against several replicas behind imagined Service endpoints:
//! each request goes to the next replica (round robin) whose `/readyz` answered 200 at its last
//! poll (every 100 ms), as endpoints follow readiness. Workers run whole logins with real
//! requests — OAuth (authorize, login form, code exchange, refresh, userinfo) and CentralAuth
//! (login, `/api/v1/verify`, `/api/v1/userinfo`) — and record every request that does not get
//! the expected answer. Used by the rolling-upgrade tests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, Response};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::support::oauth::hidden;
use crate::support::process::http_get;
use centralauth_operator::oauth::pkce::s256;

pub const CB: &str = "https://app.example.com/cb";
const VERIFIER: &str = "rolling-upgrade-verifier-0123456789-abcdefghijklmnop";
const UUID_VERIFIER: &str = "7b0c5f2e-3d1a-4c8b-9e6f-1a2b3c4d5e6f";
pub const USERS: [(&str, &str); 4] = [
    ("ann@example.com", "pw-ann-1"),
    ("bob@example.com", "pw-bob-2"),
    ("cyd@example.com", "pw-cyd-3"),
    ("dee@example.com", "pw-dee-4"),
];

/// The replicas a Service would send to: those whose `/readyz` answered 200 at the last poll.
#[derive(Clone, Default)]
pub struct Endpoints {
    ready: Arc<Mutex<Vec<(String, u16)>>>,
    next: Arc<AtomicUsize>,
    probes: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Endpoints {
    /// Polls `admin`'s `/readyz` every 100 ms (until [`Endpoints::stop`]) and keeps `name` in
    /// the set while it answers 200.
    pub fn follow(&self, name: &str, public: u16, admin: u16) {
        let (ready, name) = (self.ready.clone(), name.to_string());
        let probe = tokio::spawn(async move {
            loop {
                let up = http_get(&format!("http://127.0.0.1:{admin}/readyz")).await.map(|r| r.0) == Some(200);
                {
                    let mut ready = ready.lock().unwrap();
                    let listed = ready.iter().any(|(n, _)| *n == name);
                    if up && !listed {
                        ready.push((name.clone(), public));
                    } else if !up && listed {
                        ready.retain(|(n, _)| *n != name);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        self.probes.lock().unwrap().push(probe);
    }

    /// Stops polling.
    pub fn stop(&self) {
        for probe in self.probes.lock().unwrap().drain(..) {
            probe.abort();
        }
    }

    /// Endpoints holding one replica.
    pub fn only(name: &str, public: u16) -> Endpoints {
        let endpoints = Endpoints::default();
        endpoints.ready.lock().unwrap().push((name.to_string(), public));
        endpoints
    }

    /// The next ready replica, round robin.
    fn pick(&self) -> Option<(String, u16)> {
        let ready = self.ready.lock().unwrap();
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (!ready.is_empty()).then(|| ready[n % ready.len()].clone())
    }
}

/// What the load generator saw.
#[derive(Default)]
pub struct Stats {
    /// Requests sent.
    pub requests: AtomicU64,
    /// Logins completed through every step.
    pub flows: AtomicU64,
    /// What failed: step, replica, status or error.
    pub failures: Mutex<Vec<String>>,
    /// Requests per replica.
    pub per_replica: Mutex<BTreeMap<String, u64>>,
    /// Requests sent to a replica after it got SIGTERM (during its shutdown delay).
    pub after_sigterm: AtomicU64,
    /// Replicas that got SIGTERM.
    pub terminated: Mutex<Vec<String>>,
}

/// Logins against the replicas of `endpoints`, for the organization `client_id`.
#[derive(Clone)]
pub struct Load {
    endpoints: Endpoints,
    /// What it saw.
    pub stats: Arc<Stats>,
    http: reqwest::Client,
    client_id: String,
    secret: String,
    /// Failures recorded through this clone (one per worker).
    recorded: Arc<AtomicUsize>,
}

impl Load {
    /// A load against the replicas of `endpoints`, for the organization `client_id` with its
    /// client `secret`.
    pub fn new(endpoints: Endpoints, client_id: &str, secret: &str) -> Load {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Load {
            endpoints,
            stats: Arc::default(),
            http,
            client_id: client_id.to_string(),
            secret: secret.to_string(),
            recorded: Arc::default(),
        }
    }

    /// Sends one request to the next ready replica; `None` (and a recorded failure) unless it
    /// answers `expect`.
    async fn send(
        &self,
        step: &str,
        expect: u16,
        build: impl FnOnce(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Option<Response> {
        let Some((name, port)) = self.endpoints.pick() else {
            self.fail(format!("{step}: no ready replica"));
            return None;
        };
        let request = build(&self.http, &format!("http://127.0.0.1:{port}"));
        let result = request.header(reqwest::header::HOST, "auth.test").send().await;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        *self.stats.per_replica.lock().unwrap().entry(name.clone()).or_default() += 1;
        if self.stats.terminated.lock().unwrap().contains(&name) {
            self.stats.after_sigterm.fetch_add(1, Ordering::Relaxed);
        }
        match result {
            Ok(r) if r.status().as_u16() == expect => Some(r),
            Ok(r) => {
                let status = r.status();
                let body: String = r.text().await.unwrap_or_default().chars().take(160).collect();
                self.fail(format!("{step} at {name}: {status} {body}"));
                None
            }
            Err(e) => {
                self.fail(format!("{step} at {name}: {e}"));
                None
            }
        }
    }

    fn fail(&self, what: String) {
        self.recorded.fetch_add(1, Ordering::Relaxed);
        self.stats.failures.lock().unwrap().push(what);
    }

    /// GET of an authorization URL, then the login form: the code, if every step worked.
    async fn login(&self, path_and_query: String, user: (&str, &str)) -> Option<String> {
        let page = self
            .send("login page", 200, |h, base| h.get(format!("{base}{path_and_query}")))
            .await?;
        let cookie = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("ca_csrf="))?
            .split(';')
            .next()?
            .to_string();
        let html = page.text().await.ok()?;
        let form = [
            ("login", hidden(&html, "login")?),
            ("csrf", hidden(&html, "csrf")?),
            ("email", user.0.to_string()),
            ("password", user.1.to_string()),
        ];
        let done = self
            .send("login", 303, |h, base| {
                h.post(format!("{base}/login")).header("cookie", cookie).form(&form)
            })
            .await?;
        let location = reqwest::Url::parse(done.headers().get("location")?.to_str().ok()?).ok()?;
        let code = location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned());
        if code.is_none() {
            self.fail(format!("login: no code in {}", location.path()));
        }
        code
    }

    /// The query of an authorization request with PKCE (S256 of `verifier`) and `extra`.
    fn authorize_query(&self, verifier: &str, extra: &[(&str, &str)]) -> String {
        let challenge = s256(verifier);
        let common = [
            ("client_id", self.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", CB),
            ("state", "st"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(common.iter().chain(extra))
            .finish()
    }

    /// OAuth: authorize + login, code exchange, refresh, userinfo.
    pub async fn oauth_flow(&self, user: (&str, &str)) -> Option<()> {
        let issuer = format!("/o/{}", self.client_id);
        let query = self.authorize_query(VERIFIER, &[("scope", "openid email")]);
        let code = self.login(format!("{issuer}/oauth2/authorize?{query}"), user).await?;
        let exchange = [
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ];
        let tokens = self.token("code exchange", &issuer, &exchange).await?;
        let refresh = [
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str()?),
        ];
        let tokens = self.token("refresh", &issuer, &refresh).await?;
        let access = tokens["access_token"].as_str()?.to_string();
        self.send("userinfo", 200, |h, base| {
            h.get(format!("{base}{issuer}/oauth2/userinfo")).bearer_auth(access)
        })
        .await?;
        Some(())
    }

    async fn token(&self, step: &str, issuer: &str, form: &[(&str, &str)]) -> Option<Value> {
        let (cid, secret) = (&self.client_id, &self.secret);
        let response = self
            .send(step, 200, |h, base| {
                h.post(format!("{base}{issuer}/oauth2/token"))
                    .basic_auth(cid, Some(secret))
                    .form(form)
            })
            .await?;
        response.json().await.ok()
    }

    /// CentralAuth: /login, /api/v1/verify, /api/v1/userinfo.
    async fn centralauth_flow(&self, user: (&str, &str)) -> Option<()> {
        let query = self.authorize_query(UUID_VERIFIER, &[]);
        let code = self.login(format!("/login?{query}"), user).await?;
        let (cid, secret) = (&self.client_id, &self.secret);
        let verified = self
            .send("verify", 200, |h, base| {
                let form = reqwest::multipart::Form::new()
                    .text("code", code)
                    .text("redirect_uri", CB)
                    .text("code_verifier", UUID_VERIFIER);
                h.post(format!("{base}/api/v1/verify"))
                    .basic_auth(cid, Some(secret))
                    .multipart(form)
            })
            .await?;
        let token = verified.json::<Value>().await.ok()?["access_token"]
            .as_str()?
            .to_string();
        self.send("centralauth userinfo", 200, |h, base| {
            h.post(format!("{base}/api/v1/userinfo"))
                .basic_auth(cid, Some(secret))
                .body(token)
        })
        .await?;
        Some(())
    }

    /// Starts `workers` workers that run flows, alternating the protocols, until stopped.
    pub fn start(&self, workers: usize) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..workers)
            .map(|i| {
                let worker = Load {
                    recorded: Arc::default(),
                    ..self.clone()
                };
                tokio::spawn(worker.run(i, stop.clone()))
            })
            .collect();
        Running {
            stop,
            tasks,
            started: Instant::now(),
        }
    }

    async fn run(self, worker: usize, stop: Arc<AtomicBool>) {
        let user = USERS[worker % USERS.len()];
        let mut n = worker;
        while !stop.load(Ordering::Relaxed) {
            let (protocol, before) = (["OAuth", "CentralAuth"][n % 2], self.recorded.load(Ordering::Relaxed));
            let done = if n.is_multiple_of(2) {
                self.oauth_flow(user).await
            } else {
                self.centralauth_flow(user).await
            };
            match done {
                Some(()) => {
                    self.stats.flows.fetch_add(1, Ordering::Relaxed);
                }
                // A login cut short by an answer that lacked what the next step needs (a
                // cookie, a form field, a token) fails too, though its status was expected.
                None if self.recorded.load(Ordering::Relaxed) == before => {
                    self.fail(format!("{protocol} login: an answer lacked what the next step needs"))
                }
                None => {}
            }
            n += 1;
        }
    }
}

/// Workers started by [`Load::start`].
pub struct Running {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Running {
    /// Lets every worker finish its flow; returns how long they ran.
    pub async fn stop(self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        self.started.elapsed()
    }
}
