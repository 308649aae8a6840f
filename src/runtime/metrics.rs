//! Prometheus metrics, served on the admin listener at `/metrics` in the Prometheus text format
//! (version 0.0.4).
//!
//! Built on `prometheus-client` (the Prometheus project's own Rust client): typed label sets,
//! no global registry, and scrape-time collectors, which the gauges computed from the caches
//! need. Label values are only kinds, phases, matched route templates, status codes, login
//! methods and object names — never a secret, code, token or raw request path.
//!
//! What other modules call:
//! - controllers: [`Metrics::reconcile`] at the top of `reconcile`, keeping the guard alive
//!   until it returns, and [`ReconcileTimer::failed`] on an error (or [`Metrics::instrument`]
//!   around the whole reconcile);
//! - the login handlers: [`Metrics::login`] once per finished login attempt;
//! - the wiring: [`Metrics::http_layer`] on the public router, [`Metrics::set_leader`].
//!
//! ClientSecrets per phase and the age of each organization's active secret are computed on
//! every scrape from the reflector caches, so no controller has to report them.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing::Instrument;

use crate::crd::ClientSecretPhase;
use crate::runtime::cache::Caches;

/// `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The kind a reconcile worked on.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Kind {
    /// `Organization`.
    Organization,
    /// `ClientSecret`.
    ClientSecret,
    /// `NativeApp`.
    NativeApp,
    /// `User`.
    User,
}

/// How a user proved who they are.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum LoginMethod {
    /// One-time code sent by e-mail.
    email,
    /// Password from the organization's accounts Secret.
    password,
    /// A passkey (WebAuthn).
    passkey,
    /// An upstream identity provider (`loginMethods.providers`).
    provider,
}

/// Whether a login attempt succeeded.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum LoginOutcome {
    /// The user is logged in.
    success,
    /// Wrong or expired credentials, throttled, or refused.
    failure,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: Kind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: Kind,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpRouteLabels {
    method: &'static str,
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    method: LoginMethod,
    outcome: LoginOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeadershipLabels {
    event: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the process. Cheap to clone (one shared registry).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_seconds: HistogramFamily<KindLabels>,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: HistogramFamily<HttpRouteLabels>,
    logins: Family<LoginLabels, Counter>,
    leader: Gauge,
    leadership_changes: Family<LeadershipLabels, Counter>,
}

impl Inner {
    /// Registers every metric family under its name and help text, in exposition order.
    fn register_families(&mut self) {
        self.registry
            .register("reconciles", "Reconciles finished, per kind", self.reconciles.clone());
        self.registry.register(
            "reconcile_errors",
            "Reconciles that ended in an error, per kind and error reason",
            self.reconcile_errors.clone(),
        );
        self.registry.register(
            "reconcile_duration_seconds",
            "How long reconciles took, per kind",
            self.reconcile_seconds.clone(),
        );
        self.registry.register(
            "http_requests",
            "Requests answered by the public server, per method, matched route and status",
            self.http_requests.clone(),
        );
        self.registry.register(
            "http_request_duration_seconds",
            "Latency of the public server, per method and matched route",
            self.http_seconds.clone(),
        );
        self.registry.register(
            "logins",
            "Finished login attempts, per method and outcome",
            self.logins.clone(),
        );
        self.registry.register(
            "leader",
            "1 while this replica holds the leader lease and runs the controllers",
            self.leader.clone(),
        );
        self.registry.register(
            "leadership_changes",
            "Leader lease events of this replica: acquired, lost, released",
            self.leadership_changes.clone(),
        );
    }
}

impl Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(None)
    }
}

fn reconcile_histogram() -> Histogram {
    // 5 ms … 41 s
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

fn http_histogram() -> Histogram {
    // 1 ms … 16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    /// A fresh registry. With `caches`, every scrape also reports ClientSecrets per phase and
    /// the age of each organization's active secret, computed from them.
    pub fn new(caches: Option<Caches>) -> Metrics {
        let mut inner = Inner {
            registry: Registry::with_prefix("centralauth"),
            reconciles: Family::<KindLabels, Counter>::default(),
            reconcile_errors: Family::<ErrorLabels, Counter>::default(),
            reconcile_seconds: HistogramFamily::new_with_constructor(reconcile_histogram as fn() -> Histogram),
            http_requests: Family::<HttpLabels, Counter>::default(),
            http_seconds: HistogramFamily::new_with_constructor(http_histogram as fn() -> Histogram),
            logins: Family::<LoginLabels, Counter>::default(),
            leader: Gauge::default(),
            leadership_changes: Family::<LeadershipLabels, Counter>::default(),
        };
        inner.register_families();
        if let Some(caches) = caches {
            inner.registry.register_collector(Box::new(CacheCollector { caches }));
        }
        inner.registry.register_collector(Box::new(RuntimeCollector));
        Metrics { inner: Arc::new(inner) }
    }

    /// Starts timing one reconcile of `kind`. The reconcile is counted, and its duration
    /// observed, when the returned guard is dropped.
    pub fn reconcile(&self, kind: Kind) -> ReconcileTimer {
        ReconcileTimer {
            metrics: self.clone(),
            kind,
            started: Instant::now(),
        }
    }

    /// Runs `reconcile` in `span` under a [`ReconcileTimer`], counting an error with the
    /// reason `reason` returns for it. `reason` must return a fixed name (e.g. the error
    /// variant), never data from the error. It logs, at debug level and in `span`, when the
    /// reconcile starts and finishes (with its outcome): the positive signal that the
    /// controller looked at an object again.
    pub async fn instrument<T, E, F>(
        &self,
        kind: Kind,
        reason: fn(&E) -> &'static str,
        span: tracing::Span,
        reconcile: F,
    ) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        let timer = self.reconcile(kind);
        span.in_scope(|| tracing::debug!("reconcile started"));
        let result = reconcile.instrument(span.clone()).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(err) => {
                timer.failed(reason(err));
                reason(err)
            }
        };
        span.in_scope(|| tracing::debug!(outcome, "reconcile finished"));
        result
    }

    /// Counts one finished login attempt.
    pub fn login(&self, method: LoginMethod, outcome: LoginOutcome) {
        self.inner.logins.get_or_create(&LoginLabels { method, outcome }).inc();
    }

    /// Records whether this replica leads, and counts the `event`
    /// (`acquired`, `lost`, `released`).
    pub fn set_leader(&self, leading: bool, event: &'static str) {
        self.inner.leader.set(i64::from(leading));
        self.inner
            .leadership_changes
            .get_or_create(&LeadershipLabels { event })
            .inc();
    }

    /// Whether this replica leads, as last recorded.
    pub fn is_leader(&self) -> bool {
        self.inner.leader.get() == 1
    }

    /// An axum middleware (apply with `Router::layer(axum::middleware::from_fn_with_state(
    /// metrics, track_http))`) — see [`Metrics::http_layer`].
    pub fn http_layer<S>(&self, router: axum::Router<S>) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), track_http))
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; the collectors only fail on that.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.inner.registry);
        out
    }

    fn observe_http(&self, method: &'static str, route: &'static str, status: u16, seconds: f64) {
        self.inner
            .http_seconds
            .get_or_create(&HttpRouteLabels { method, route })
            .observe(seconds);
        self.inner
            .http_requests
            .get_or_create(&HttpLabels { method, route, status })
            .inc();
    }
}

/// Times one reconcile; counts it (and observes its duration) when dropped.
#[must_use = "the reconcile is measured until the timer is dropped"]
pub struct ReconcileTimer {
    metrics: Metrics,
    kind: Kind,
    started: Instant,
}

impl ReconcileTimer {
    /// Counts this reconcile as failed with a fixed `reason` (an error variant name such as
    /// `"Kube"`; never data from the error).
    pub fn failed(&self, reason: &'static str) {
        let labels = ErrorLabels {
            kind: self.kind,
            reason,
        };
        self.metrics.inner.reconcile_errors.get_or_create(&labels).inc();
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let labels = KindLabels { kind: self.kind };
        self.metrics.inner.reconciles.get_or_create(&labels).inc();
        let seconds = self.started.elapsed().as_secs_f64();
        self.metrics
            .inner
            .reconcile_seconds
            .get_or_create(&labels)
            .observe(seconds);
    }
}

/// The middleware behind [`Metrics::http_layer`]: labels each request with its matched route
/// template (`/oauth2/token`, never the raw path, which may carry codes) or `unmatched`.
pub async fn track_http(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| route_label(p.as_str()));
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe_http(
        method,
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The route template as a `&'static str`, so labelling a request allocates nothing. Templates
/// come from the router's definition, a fixed set: each is leaked once, on its first request.
fn route_label(route: &str) -> &'static str {
    static ROUTES: std::sync::RwLock<Vec<&'static str>> = std::sync::RwLock::new(Vec::new());
    let known = |routes: &[&'static str]| routes.iter().copied().find(|r| *r == route);
    if let Some(r) = known(&ROUTES.read().unwrap_or_else(|p| p.into_inner())) {
        return r;
    }
    let mut routes = ROUTES.write().unwrap_or_else(|p| p.into_inner());
    known(&routes).unwrap_or_else(|| {
        let leaked: &'static str = Box::leak(route.to_owned().into_boxed_str());
        routes.push(leaked);
        leaked
    })
}

fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The tokio runtime serving the scrape, at scrape time: how many tasks are alive (a count
/// that must return to its level after the controllers restart, e.g. on a lost lease).
#[derive(Debug)]
struct RuntimeCollector;

impl Collector for RuntimeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return Ok(());
        };
        let alive = handle.metrics().num_alive_tasks() as i64;
        encoder
            .encode_descriptor(
                "runtime_alive_tasks",
                "Tasks alive on the main tokio runtime",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&alive)?;
        Ok(())
    }
}

/// Gauges computed from the caches at scrape time.
struct CacheCollector {
    caches: Caches,
}

impl Debug for CacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheCollector")
    }
}

const PHASES: [(ClientSecretPhase, &str); 4] = [
    (ClientSecretPhase::Pending, "Pending"),
    (ClientSecretPhase::Active, "Active"),
    (ClientSecretPhase::Retiring, "Retiring"),
    (ClientSecretPhase::Revoked, "Revoked"),
];

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut counts = std::collections::BTreeMap::<(String, String, &'static str), i64>::new();
        for org in self.caches.organizations.state() {
            let key = |phase| (ns_of(&org.metadata), name_of(&org.metadata), phase);
            for (_, label) in PHASES {
                counts.insert(key(label), 0);
            }
        }
        for cs in self.caches.client_secrets.state() {
            let phase = PHASES
                .iter()
                .find(|(p, _)| *p == cs.phase())
                .map_or("Pending", |(_, l)| l);
            let key = (ns_of(&cs.metadata), cs.spec.organization_ref.name.clone(), phase);
            *counts.entry(key).or_default() += 1;
        }
        let mut family = encoder.encode_descriptor(
            "client_secrets",
            "ClientSecrets per namespace, organization and phase (from the cache)",
            None,
            MetricType::Gauge,
        )?;
        for ((namespace, organization, phase), count) in &counts {
            let labels = [
                ("namespace", namespace.as_str()),
                ("organization", organization),
                ("phase", phase),
            ];
            family.encode_family(&labels)?.encode_gauge(count)?;
        }

        let mut family = encoder.encode_descriptor(
            "active_secret_age_seconds",
            "Seconds since each organization's active client secret was activated (from the cache)",
            None,
            MetricType::Gauge,
        )?;
        let now = k8s_openapi::jiff::Timestamp::now();
        for org in self.caches.organizations.state() {
            let Some(activated) = org.active_secret().and_then(|a| a.activated_at.as_ref()) else {
                continue;
            };
            let age = now.duration_since(activated.0).as_secs_f64().max(0.0);
            let (namespace, organization) = (ns_of(&org.metadata), name_of(&org.metadata));
            let labels = [
                ("namespace", namespace.as_str()),
                ("organization", organization.as_str()),
            ];
            family.encode_family(&labels)?.encode_gauge(&age)?;
        }
        Ok(())
    }
}

fn ns_of(meta: &kube::api::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_default()
}

fn name_of(meta: &kube::api::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests;
