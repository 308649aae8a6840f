//! Wiring of `centralauth-operator run`: connect to Kubernetes, check the CRDs, start the
//! controllers and both HTTP listeners, stop cleanly on SIGTERM / Ctrl-C.

use std::sync::Arc;

use kube::Client;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::cache::Caches;
use crate::cli::{LogFormat, RunArgs};
use crate::controller;
use crate::crd::GROUP;
use crate::http::admin::{self, Health};

/// Why `run` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No usable Kubernetes client configuration.
    #[error("cannot configure a Kubernetes client (set KUBECONFIG or run in a cluster): {0}")]
    KubeConfig(#[source] kube::Error),
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

/// Sets up `tracing` output; `RUST_LOG` overrides the default `info` level.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::KubeConfig)?;
    check_crds(&client).await?;
    tracing::info!(base_domain = %args.base_domain, "CentralAuth CRDs found");

    let health = Arc::new(Health::default());
    let admin_listener = bind(args.admin_listen).await?;
    let public_listener = bind(args.listen).await?;
    tracing::info!(public = %args.listen, admin = %args.admin_listen, "listening");

    let caches = Caches::start(&client);
    let ctx = controller::Context::new(client.clone(), args.public_base(), std::env::var("POD_NAME").ok());
    tokio::spawn(controller::run(ctx));
    tokio::spawn({
        let (caches, health) = (caches.clone(), health.clone());
        async move {
            caches.wait_until_ready().await;
            tracing::info!("caches synced; ready");
            health.set_ready(true);
        }
    });

    let admin = axum::serve(admin_listener, admin::router(health.clone())).with_graceful_shutdown(shutdown_signal());
    let settings = crate::http::Settings::new(args.namespace.clone(), args.signing_key_rotation_seconds);
    let state = crate::http::AppState::start(client.clone(), caches, args.public_base(), settings);
    let public = crate::http::serve(public_listener, crate::http::public_router(state), shutdown_signal());
    let (a, p) = tokio::join!(admin.into_future(), public);
    a.map_err(|source| RunError::Serve { what: "admin", source })?;
    p.map_err(|source| RunError::Serve { what: "public", source })?;
    tracing::info!("stopped");
    Ok(())
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })
}

/// Fails unless the API server serves all three kinds of `centralauth.io`.
pub async fn check_crds(client: &Client) -> Result<(), RunError> {
    let wanted = ["Organization", "ClientSecret", "NativeApp"];
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
