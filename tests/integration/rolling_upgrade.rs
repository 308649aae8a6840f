//! Upgrades without failed logins. Two replicas of the binary share one Redis; they are replaced
//! one at a time the way a Deployment's rolling update does it with the chart's strategy
//! (maxSurge 1, maxUnavailable 0): start a new process, wait for its `/readyz`, SIGTERM an old
//! one, start the next. All the while a load generator logs users in and exchanges codes and
//! refreshes tokens — OAuth (authorize, login, token, refresh, userinfo) and CentralAuth (login,
//! verify, userinfo) — sending every request to a replica whose `/readyz` answered 200 at its
//! last poll (every 100 ms), as a Service's endpoints follow readiness. Timings are the chart's
//! defaults (shutdown delay 5 s, lease 15 s / 10 s / 2 s).
//!
//! Every request must succeed, the ClientSecret must stay activated once (the same record and
//! `activatedAt`, one `Activated` event), and the lease must end with a new replica after
//! hand-overs on release. Prints the figures the README quotes.
//!
//! What it found: a replica reported ready once its caches had listed, before it had loaded the
//! Secrets they name (the passwords) and the signing keys, so its first logins could be refused.
//! The second test sends a login and a token exchange the moment a new replica turns ready.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use reqwest::{RequestBuilder, Response};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::oauth_support::hidden;
use crate::process::{Operator, OperatorOptions, activated_organization, centralauth_api, http_get};
use crate::support::{self, redis_server};
use centralauth_operator::oauth::pkce::s256;

const SHUTDOWN_DELAY: Duration = Duration::from_secs(5);
const LEASE: &str = "rolling";
const CB: &str = "https://app.example.com/cb";
const VERIFIER: &str = "rolling-upgrade-verifier-0123456789-abcdefghijklmnop";
const UUID_VERIFIER: &str = "7b0c5f2e-3d1a-4c8b-9e6f-1a2b3c4d5e6f";
const USERS: [(&str, &str); 4] = [
    ("ann@example.com", "pw-ann-1"),
    ("bob@example.com", "pw-bob-2"),
    ("cyd@example.com", "pw-cyd-3"),
    ("dee@example.com", "pw-dee-4"),
];

/// The replicas a Service would send to: those whose `/readyz` answered 200 at the last poll.
#[derive(Clone, Default)]
struct Endpoints {
    ready: Arc<Mutex<Vec<(String, u16)>>>,
    next: Arc<AtomicUsize>,
}

impl Endpoints {
    /// Polls `admin`'s `/readyz` every 100 ms and keeps `name` in the set while it answers 200.
    fn follow(&self, name: &str, public: u16, admin: u16) -> JoinHandle<()> {
        let (ready, name) = (self.ready.clone(), name.to_string());
        tokio::spawn(async move {
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
        })
    }

    /// Endpoints holding one replica.
    fn only(name: &str, public: u16) -> Endpoints {
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
struct Stats {
    requests: AtomicU64,
    flows: AtomicU64,
    failures: Mutex<Vec<String>>,
    per_replica: Mutex<BTreeMap<String, u64>>,
    /// Requests answered by a replica after it got SIGTERM (during its shutdown delay).
    after_sigterm: AtomicU64,
    terminated: Mutex<Vec<String>>,
}

/// One load-generating worker's view of the organization.
#[derive(Clone)]
struct Load {
    endpoints: Endpoints,
    stats: Arc<Stats>,
    http: reqwest::Client,
    client_id: String,
    secret: String,
}

impl Load {
    fn new(endpoints: Endpoints, client_id: &str, secret: &str) -> Load {
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
    async fn oauth_flow(&self, user: (&str, &str)) -> Option<()> {
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

    /// Runs flows, alternating the protocols, until `stop` is set.
    async fn run(self, worker: usize, stop: Arc<std::sync::atomic::AtomicBool>) {
        let user = USERS[worker % USERS.len()];
        let mut n = worker;
        while !stop.load(Ordering::Relaxed) {
            let done = if n.is_multiple_of(2) {
                self.oauth_flow(user).await
            } else {
                self.centralauth_flow(user).await
            };
            if done.is_some() {
                self.stats.flows.fetch_add(1, Ordering::Relaxed);
            }
            n += 1;
        }
    }
}

/// One installation: a namespace with the operator's Lease and the organization, and a key
/// prefix in the shared Redis.
struct Installation {
    client: kube::Client,
    ns: String,
    redis: String,
    prefix: String,
}

impl Installation {
    async fn new(test: &str) -> Installation {
        support::init_crypto();
        let client = support::client().await;
        let ns = support::namespace(&client, test).await;
        let (redis, prefix) = (redis_server::shared().url(), redis_server::unique_prefix(test));
        Installation {
            client,
            ns,
            redis,
            prefix,
        }
    }

    /// Starts replica `name` with the chart's default timings.
    fn replica(&self, name: &str) -> Operator {
        let ns = self.ns.as_str();
        let args = [
            "--namespace",
            ns,
            "--watch-namespace",
            ns,
            "--store",
            &self.redis,
            "--store-key-prefix",
            &self.prefix,
            "--lease-name",
            LEASE,
            "--lease-duration",
            "15s",
            "--lease-renew-deadline",
            "10s",
            "--lease-retry-period",
            "2s",
            "--shutdown-delay",
            "5s",
        ];
        Operator::start(OperatorOptions {
            pod_name: name,
            kubeconfig: None,
            args: args.map(String::from).into(),
        })
    }
}

/// The users' passwords Secret and an organization with a pinned client ID and an active
/// ClientSecret: (client ID, secret).
async fn organization(client: &kube::Client, ns: &str) -> (String, String) {
    let lines: String = USERS
        .iter()
        .map(|(e, p)| format!("{e}:{}\n", centralauth_operator::crypto::hash(p.as_bytes()).unwrap()))
        .collect();
    let users: Secret =
        serde_json::from_value(json!({"metadata": {"name": "users"}, "stringData": {"users": lines}})).unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &users)
        .await
        .unwrap();
    let spec = json!({"displayName": "Acme", "clientId": format!("rolling-{}", &ns[ns.len() - 6..]),
                      "allowedOrigins": ["https://app.example.com"], "redirectUris": [CB],
                      "loginMethods": {"passwords": {"secretName": "users"}}});
    activated_organization(client, ns, spec)
        .await
        .expect("acme-1 never became active")
}

/// The organization's activation record and the ClientSecret's `activatedAt`.
async fn activation(client: &kube::Client, ns: &str) -> (Value, Value) {
    let org = centralauth_api(client, ns, "Organization").get("acme").await.unwrap();
    let cs = centralauth_api(client, ns, "ClientSecret").get("acme-1").await.unwrap();
    (
        org.data["status"]["activeSecret"].clone(),
        cs.data["status"]["activatedAt"].clone(),
    )
}

/// How many times the ClientSecret was activated, by its `Activated` events (repeats counted).
async fn activated_events(client: &kube::Client, ns: &str) -> i32 {
    let events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    events
        .items
        .iter()
        .filter(|e| {
            e.reason.as_deref() == Some("Activated")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("acme-1")
        })
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum()
}

/// The lease's holders in turn: (holder or "" when released, acquireTime in ms since the epoch).
type LeaseLog = Arc<Mutex<Vec<(String, i64)>>>;

/// Records every change of the lease's holder.
fn record_lease(client: &kube::Client, ns: &str) -> (LeaseLog, JoinHandle<()>) {
    let log = LeaseLog::default();
    let (api, record) = (Api::<Lease>::namespaced(client.clone(), ns), log.clone());
    let task = tokio::spawn(async move {
        loop {
            if let Ok(Some(lease)) = api.get_opt(LEASE).await {
                let spec = lease.spec.unwrap_or_default();
                let holder = spec.holder_identity.unwrap_or_default();
                let acquired = spec.acquire_time.map_or(0, |t| t.0.as_millisecond());
                let mut log = record.lock().unwrap();
                if log.last().map(|(h, _)| h) != Some(&holder) {
                    log.push((holder, acquired));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (log, task)
}

fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test]
async fn a_rolling_upgrade_of_two_replicas_fails_no_request() {
    let install = Installation::new("rolling").await;
    let (client, ns) = (&install.client, install.ns.as_str());
    let endpoints = Endpoints::default();
    let mut probes = vec![];
    let mut old = vec![];
    for name in ["old-a", "old-b"] {
        let op = install.replica(name);
        op.wait_ready().await;
        probes.push(endpoints.follow(name, op.public, op.admin));
        old.push((name, op));
    }
    let (client_id, secret) = organization(client, ns).await;
    let before = activation(client, ns).await;
    let (lease_log, lease_task) = record_lease(client, ns);

    let load = Load::new(endpoints.clone(), &client_id, &secret);
    let stats = load.stats.clone();
    // Steady state first: both old replicas serve every step (their caches and Secrets are
    // loaded), and the load starts only then.
    let warm_up = Load::new(endpoints.clone(), &client_id, &secret);
    let warm = support::wait_until(Duration::from_secs(20), || async {
        for _ in 0..2 {
            warm_up.oauth_flow(USERS[0]).await?;
        }
        Some(())
    })
    .await;
    assert!(
        warm.is_some(),
        "the old replicas never served a login: {:?}",
        warm_up.stats.failures.lock().unwrap()
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|i| tokio::spawn(load.clone().run(i, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The rolling update: new replica ready, then SIGTERM to an old one, one at a time.
    let mut new = vec![];
    let mut sigterms = vec![];
    for (i, name) in ["new-a", "new-b"].into_iter().enumerate() {
        let starting = Instant::now();
        let op = install.replica(name);
        op.wait_ready().await;
        println!("{name} ready {:?} after start", starting.elapsed());
        probes.push(endpoints.follow(name, op.public, op.admin));
        new.push((name, op));
        // A Deployment terminates the old pod once the new one is ready (the endpoints
        // controller adds it at the same moment: here, at its next readiness poll).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (old_name, old_op) = &old[i];
        stats.terminated.lock().unwrap().push(old_name.to_string());
        sigterms.push((old_name.to_string(), Instant::now(), SystemTime::now()));
        old_op.signal("TERM");
    }
    for ((name, op), (_, at, _)) in old.iter_mut().zip(&sigterms) {
        let code = op.wait_exit(SHUTDOWN_DELAY + Duration::from_secs(10)).await;
        let took = at.elapsed();
        assert_eq!(code, Some(0), "{name} did not exit cleanly:\n{}", op.logs());
        assert!(took >= SHUTDOWN_DELAY, "{name} stopped serving {took:?} after SIGTERM");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    lease_task.abort();
    for probe in probes {
        probe.abort();
    }

    let failures = stats.failures.lock().unwrap().clone();
    let requests = stats.requests.load(Ordering::Relaxed);
    let per_replica = stats.per_replica.lock().unwrap().clone();
    println!(
        "rolling upgrade: {requests} requests, {} failed, {} flows in {elapsed:.1?}; per replica {per_replica:?}; {} answered by a replica after its SIGTERM",
        failures.len(),
        stats.flows.load(Ordering::Relaxed),
        stats.after_sigterm.load(Ordering::Relaxed)
    );
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed: {failures:#?}",
        failures.len()
    );
    for name in ["old-a", "old-b", "new-a", "new-b"] {
        assert!(
            per_replica.get(name).is_some_and(|n| *n > 0),
            "{name} got no traffic: {per_replica:?}"
        );
    }

    // The lease went to a new replica, each hand-over on release (well under the 15 s lease).
    let leases = lease_log.lock().unwrap().clone();
    let holders: Vec<&str> = leases
        .iter()
        .map(|(h, _)| h.as_str())
        .filter(|h| !h.is_empty())
        .collect();
    assert!(
        holders
            .last()
            .is_some_and(|h| h.starts_with("new-a_") || h.starts_with("new-b_")),
        "the lease did not end with a new replica: {leases:?}"
    );
    for (name, _, at) in &sigterms {
        let led = leases.iter().rposition(|(h, _)| h.starts_with(&format!("{name}_")));
        let Some(next) = led.and_then(|i| leases[i + 1..].iter().find(|(h, _)| !h.is_empty())) else {
            continue;
        };
        let handover = next.1 - epoch_ms(*at);
        println!("hand-over from {name}: {handover} ms after its SIGTERM to {}", next.0);
        assert!(
            (0..5000).contains(&handover),
            "hand-over from {name} took {handover} ms: {leases:?}"
        );
    }
    // Activated once: the same record, the same activatedAt, one event.
    assert_eq!(
        activation(client, ns).await,
        before,
        "the ClientSecret was activated again"
    );
    assert_eq!(activated_events(client, ns).await, 1, "Activated events of acme-1");
    for (name, op) in &old {
        if holders.iter().any(|h| h.starts_with(&format!("{name}_"))) {
            assert!(op.logs().contains("leader lease released"), "{name}:\n{}", op.logs());
        }
    }
    drop(new);
}

/// A new replica serves logins and token exchanges from the moment its `/readyz` says so: its
/// first requests, sent as soon as it turns ready, succeed (three new replicas in turn).
#[tokio::test]
async fn a_new_replica_serves_logins_and_tokens_as_soon_as_it_is_ready() {
    let install = Installation::new("first-request").await;
    let (client, ns) = (&install.client, install.ns.as_str());
    let leader = install.replica("leader");
    leader.wait_ready().await;
    let (client_id, secret) = organization(client, ns).await;
    for name in ["first-a", "first-b", "first-c"] {
        let op = install.replica(name);
        let readyz = format!("http://127.0.0.1:{}/readyz", op.admin);
        let ready = support::wait_until(Duration::from_secs(30), || async {
            (http_get(&readyz).await?.0 == 200).then_some(())
        })
        .await;
        assert!(ready.is_some(), "{name} never became ready:\n{}", op.logs());
        let load = Load::new(Endpoints::only(name, op.public), &client_id, &secret);
        let served = load.oauth_flow(USERS[0]).await;
        let failures = load.stats.failures.lock().unwrap().clone();
        assert!(
            served.is_some() && failures.is_empty(),
            "{name}'s first requests: {failures:#?}"
        );
    }
}
