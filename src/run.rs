//! Wiring of `centralauth-operator run`: connect to Kubernetes, check the CRDs, start the
//! caches (every replica), the controllers (the leader only, see [`crate::runtime::leader`]), the admin
//! and public listeners, and stop cleanly on SIGTERM / Ctrl-C.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::cli::{LogFormat, RunArgs};
use crate::controller;
use crate::crd::GROUP;
use crate::http::admin::{self, Health};
use crate::runtime::cache::Caches;
use crate::runtime::leader::{self, LeaseConfig, LeaseConfigError};
use crate::runtime::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Interval between checks of the session store while it answers.
const STORE_CHECK_EVERY: Duration = Duration::from_secs(5);
/// Interval between checks while it does not (so readiness returns quickly).
const STORE_RETRY_EVERY: Duration = Duration::from_secs(1);

/// Why `run` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No usable Kubernetes client configuration.
    #[error("{0}")]
    KubeConfig(#[source] crate::runtime::kube_client::KubeClientError),
    /// The API server could not be asked which resources it serves.
    #[error("cannot reach the Kubernetes API server: {0}")]
    Discovery(#[source] kube::Error),
    /// Some of the CRDs are not installed.
    #[error(
        "the CentralAuth CRDs are not installed (missing: {missing}); install them with `kubectl apply -f crds/` or `centralauth-operator crds | kubectl apply -f -`"
    )]
    CrdsMissing {
        /// Comma-separated kinds that the API server does not serve.
        missing: String,
    },
    /// The leader-election flags cannot work.
    #[error("invalid leader election settings: {0}")]
    Lease(#[source] LeaseConfigError),
    /// `--store` is malformed (the message never repeats it: it may hold a password).
    #[error("invalid --store: {0}")]
    StoreUrl(String),
    /// `--store-ca-file` cannot be read.
    #[error("cannot read --store-ca-file {path}: {source}")]
    StoreCa {
        /// The path from the command line.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be set up.
    #[error("{0}")]
    Store(#[source] StoreError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the command line.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A server failed while running.
    #[error("{what} server failed: {source}")]
    Serve {
        /// Which server.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl RunError {
    /// Whether a flag's value is malformed: exit code 2, as for the flags the argument parser
    /// checks itself.
    pub fn is_usage_error(&self) -> bool {
        matches!(self, RunError::StoreUrl(_))
    }
}

/// Sets up `tracing` output; `RUST_LOG` overrides the default `info` level.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: escape codes in a log file are noise, and styling every
    // request span's fields cost about a microsecond per request.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the operator until SIGTERM or Ctrl-C, then shuts down gracefully: `/readyz` turns
/// unready at once, the leader stops its controllers and releases the lease, the listeners keep
/// serving for `--shutdown-delay`, then stop accepting and finish the requests in flight.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let store_url = args.store.url().map_err(RunError::StoreUrl)?;
    let store_ca_pem = read_store_ca(&args)?;
    let (kube_config, client) = connect(&args).await?;
    let lease = lease_config(&args, &client)?;
    let namespace = own_namespace(&args, &client);
    check_crds(&client).await?;
    let scope = args.scope();
    tracing::info!(base_domain = %args.base_domain, watching = %scope.describe(), "CentralAuth CRDs found");

    let health = Arc::new(Health::default());
    let admin_listener = bind(args.admin_listen).await?;
    let public_listener = bind(args.listen).await?;
    tracing::info!(public = %args.listen, admin = %args.admin_listen, "listening");

    let started = tokio::time::Instant::now();
    let caches = Caches::start_scoped(&client, &scope);
    let metrics = Metrics::new(Some(caches.clone()));
    let ctx = controller_context(&args, &client, scope, &caches, &metrics);

    let (terminating, stop_serving) = shutdown_phases(health.clone(), args.shutdown_delay);
    let controllers = run_controllers(kube_config, lease, ctx.clone(), metrics.clone(), wait_for(terminating));
    let admin = serve(
        admin_listener,
        admin::router(health.clone(), metrics.clone()),
        wait_for(stop_serving.clone()),
    );
    let settings = server_settings(&args, namespace, store_url, store_ca_pem);
    let flows = crate::flow::Flows::start(
        client.clone(),
        caches.clone(),
        args.public_base(),
        settings,
        metrics.clone(),
    )
    .map_err(RunError::Store)?;
    // The User controller records ended access in the server's own store (polled only below).
    let _ = ctx.store.set(flows.store.clone());
    let state = crate::http::AppState::start(flows);
    tokio::spawn(mark_ready_when_loaded(
        caches.clone(),
        state.clone(),
        health.clone(),
        started,
    ));
    tokio::spawn(watch_store(state.store.clone(), health.clone()));
    let public_router = metrics.http_layer(crate::http::public_router(state));
    let public = crate::http::serve(public_listener, public_router, wait_for(stop_serving));
    let ((), a, p) = tokio::join!(controllers, admin, public);
    a.map_err(|source| RunError::Serve { what: "admin", source })?;
    p.map_err(|source| RunError::Serve { what: "public", source })?;
    tracing::info!("stopped");
    Ok(())
}

/// The public server's settings from the command line.
fn server_settings(
    args: &RunArgs,
    namespace: String,
    store_url: crate::store::StoreUrl,
    store_ca_pem: Option<Vec<u8>>,
) -> crate::http::Settings {
    let mut settings = crate::http::Settings::new(namespace, args.signing_key_rotation_seconds);
    settings.signing_key_secret = args.signing_key_secret.clone();
    settings.store = store_url;
    settings.store_key_prefix = args.store_key_prefix.clone();
    settings.store_ca_pem = store_ca_pem;
    settings.trusted_proxies = args.trusted_proxies.clone();
    settings.client_address_header = args.client_address_header;
    tracing::info!(store = ?settings.store, "session store");
    tracing::info!(trusted_proxies = ?settings.trusted_proxies, header = ?settings.client_address_header, "client addresses");
    settings
}

/// The contents of `--store-ca-file`, if given.
fn read_store_ca(args: &RunArgs) -> Result<Option<Vec<u8>>, RunError> {
    let Some(path) = &args.store_ca_file else {
        return Ok(None);
    };
    std::fs::read(path).map(Some).map_err(|source| RunError::StoreCa {
        path: path.clone(),
        source,
    })
}

/// The Kubernetes configuration (kubeconfig or in-cluster) and the main client, sized for the
/// number of watched units.
async fn connect(args: &RunArgs) -> Result<(kube::Config, Client), RunError> {
    let kube_config = kube::Config::infer()
        .await
        .map_err(|e| RunError::KubeConfig(crate::runtime::kube_client::KubeClientError::Config(e)))?;
    let client = crate::runtime::kube_client::for_units(kube_config.clone(), args.scope().units().len())
        .map_err(RunError::KubeConfig)?;
    Ok((kube_config, client))
}

/// What the controllers share, over the caches every replica keeps.
fn controller_context(
    args: &RunArgs,
    client: &Client,
    scope: crate::runtime::scope::Scope,
    caches: &Caches,
    metrics: &Metrics,
) -> Arc<controller::Context> {
    let pod_name = std::env::var("POD_NAME").ok();
    controller::Context::build(
        client.clone(),
        args.public_base(),
        pod_name,
        scope,
        metrics.clone(),
        Some(caches.clone()),
    )
}

/// The operator's own namespace (`--namespace` / `POD_NAMESPACE`, else the kubeconfig's).
fn own_namespace(args: &RunArgs, client: &Client) -> String {
    args.namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string())
}

/// The lease settings from the flags, validated; `None` with `--leader-elect=false`.
fn lease_config(args: &RunArgs, client: &Client) -> Result<Option<LeaseConfig>, RunError> {
    if !args.leader_elect {
        return Ok(None);
    }
    let config = LeaseConfig {
        name: args.lease_name.clone(),
        namespace: own_namespace(args, client),
        identity: leader::identity(std::env::var("POD_NAME").ok().as_deref()),
        duration: args.lease_duration,
        renew_deadline: args.lease_renew_deadline,
        retry_period: args.lease_retry_period,
    };
    config.validate().map_err(RunError::Lease)?;
    Ok(Some(config))
}

/// Runs the controllers while this replica leads (or always, without leader election) until
/// `shutdown` resolves.
async fn run_controllers(
    kube_config: kube::Config,
    lease: Option<LeaseConfig>,
    ctx: Arc<controller::Context>,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) {
    match lease {
        Some(config) => {
            tracing::info!(lease = %config.name, namespace = %config.namespace, identity = %config.identity, "leader election on");
            leader::lead(kube_config, config, metrics, shutdown, move || {
                controller::run(ctx.clone())
            })
            .await;
        }
        None => {
            tracing::info!("leader election off; starting the controllers");
            metrics.set_leader(true, "acquired");
            tokio::select! {
                () = shutdown => {}
                () = controller::run(ctx) => {}
            }
        }
    }
}

/// Marks the replica loaded once it can answer what its caches describe: the caches have
/// listed, every Secret they name (passwords, SMTP credentials, client-secret values) has been
/// listed, and the signing keys are loaded. A replica that reported ready after its caches alone
/// (as it did) got logins it refused as wrong passwords, and token requests it could not sign,
/// for the fraction of a second in between: failed logins in every rolling update.
async fn mark_ready_when_loaded(
    caches: Caches,
    state: crate::http::AppState,
    health: Arc<Health>,
    started: tokio::time::Instant,
) {
    let report = |what: &'static str| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        tracing::info!(after = ?started.elapsed(), "not ready: waiting for {what}");
        std::future::pending::<()>().await
    };
    tokio::select! {
        () = caches.wait_until_ready() => {}
        () = report("the caches to list") => {}
    }
    state.secrets.wait_loaded(&caches).await;
    tokio::select! {
        () = wait_for_keys(&state.keys) => {}
        () = report("the signing keys") => {}
    }
    tracing::info!(after = ?started.elapsed(), "caches, Secrets and signing keys loaded");
    health.set_loaded();
}

async fn wait_for_keys(keys: &crate::runtime::keys::KeyRing) {
    while keys.get().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks the session store every few seconds and reports it in `/readyz`: a replica that
/// cannot reach Redis must not get traffic (it could neither log anyone in nor see a logout).
/// It keeps running and retrying rather than exiting, so a Redis that starts after the operator
/// (or comes back after a failover) makes it ready without a restart; `/healthz` stays up.
/// Logs each change, with the cause and what to fix.
pub async fn watch_store(store: Arc<dyn Store>, health: Arc<Health>) {
    let mut last: Option<bool> = None;
    loop {
        let result = match tokio::time::timeout(STORE_RETRY_EVERY * 5, store.ping()).await {
            Ok(result) => result,
            Err(_) => Err(StoreError("no answer within 5 s".into())),
        };
        let ok = result.is_ok();
        match (&result, last) {
            (Ok(()), Some(true)) | (Err(_), Some(false)) => {}
            (Ok(()), _) => tracing::info!("session store reachable"),
            (Err(err), _) => tracing::warn!(error = %err, "session store unreachable: not ready until it answers"),
        }
        health.set_store_reachable(ok);
        last = Some(ok);
        tokio::time::sleep(if ok { STORE_CHECK_EVERY } else { STORE_RETRY_EVERY }).await;
    }
}

/// Two signals derived from SIGTERM / Ctrl-C: `terminating` fires at once (and `/readyz` turns
/// unready), `stop_serving` after `delay`.
fn shutdown_phases(health: Arc<Health>, delay: Duration) -> (watch::Receiver<bool>, watch::Receiver<bool>) {
    let (terminating_tx, terminating) = watch::channel(false);
    let (stop_tx, stop_serving) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!(delay = ?delay, "shutting down: not ready; stopping the controllers");
        health.set_terminating();
        let _ = terminating_tx.send(true);
        tokio::time::sleep(delay).await;
        tracing::info!("closing the listeners; finishing requests in flight");
        let _ = stop_tx.send(true);
    });
    (terminating, stop_serving)
}

/// Resolves once `rx` holds `true` (or its sender is gone).
pub async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting connections
/// and returns once every request in flight has been answered.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })
}

/// Fails unless the API server serves all four kinds of `centralauth.io`.
pub async fn check_crds(client: &Client) -> Result<(), RunError> {
    let wanted = ["Organization", "ClientSecret", "NativeApp", "User"];
    let served: Vec<String> = match kube::discovery::group(client, GROUP).await {
        Ok(group) => group
            .recommended_resources()
            .into_iter()
            .map(|(ar, _)| ar.kind)
            .collect(),
        Err(kube::Error::Discovery(_)) => vec![],
        Err(err) => return Err(RunError::Discovery(err)),
    };
    let missing: Vec<&str> = wanted.into_iter().filter(|k| !served.iter().any(|s| s == k)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RunError::CrdsMissing {
            missing: missing.join(", "),
        })
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
