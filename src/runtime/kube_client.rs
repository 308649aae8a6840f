//! The Kubernetes client: every request and watch of one client shares **one HTTP/2
//! connection** to the API server (the kube-apiserver speaks h2, negotiated by ALPN), so the
//! number of sockets does not grow with watches, tenants or concurrent reconciles. kube's
//! default client speaks HTTP/1.1 only, where every open watch holds a connection of its own.
//!
//! The connection is checked with HTTP/2 pings, so a dead one (API server restarted, network
//! cut) fails its streams within [`PING_INTERVAL`] + [`PING_TIMEOUT`] and the watchers
//! reconnect. A client's connection belongs to the tokio runtime that first uses it: the
//! leader-election thread builds its own client (and connection) on its own runtime.
//!
//! The API server caps concurrent streams per connection (`--http2-max-streams-per-connection`;
//! Go's default, 250, when unset), and each open watch holds a stream: the operator keeps about
//! 13 watches per watched unit (caches 3, Secrets 2, signing keys 1, controllers 7). With more
//! than [`MAX_H2_UNITS`] watched namespaces, [`for_units`] falls back to kube's HTTP/1.1 client
//! (a connection per watch) rather than let watches take every stream.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ConfigExt};
use kube::{Client, Config};

/// Interval between HTTP/2 pings on the API server connection.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long a ping may go unanswered before the connection is closed.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/2 flow-control window per stream. hyper's default (2 MiB per stream, 5 MiB per
/// connection) lets the API server run megabytes ahead of a busy reader, and h2 keeps received
/// frames as slices of its read buffers, so a few unread frames pin whole buffers: at the
/// start-up burst of 1,000 tenants, 20 of the heap's 51 MiB peak were such buffers
/// (heaptrack). Watch events are small and a list page of 500 objects is well under 1 MiB; on a
/// cluster network a window of this size still streams tens of MiB/s per watch.
pub const STREAM_WINDOW: u32 = 256 * 1024;
/// HTTP/2 flow-control window of the whole connection (all watches and requests together).
pub const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum KubeClientError {
    /// No usable configuration (kubeconfig or in-cluster service account).
    #[error("cannot configure a Kubernetes client (set KUBECONFIG or run in a cluster): {0}")]
    Config(#[source] kube::config::InferConfigError),
    /// The configuration's TLS or auth settings are unusable.
    #[error("cannot set up TLS or authentication for the Kubernetes API server: {0}")]
    Setup(#[source] kube::Error),
    /// `tls-server-name` of the kubeconfig is not a host name.
    #[error("the kubeconfig's tls-server-name {0:?} is not a valid DNS name or IP address")]
    ServerName(String),
    /// A proxy is configured; this client connects directly.
    #[error("a proxy ({0}) is configured for the Kubernetes API server; the operator connects directly: unset it")]
    Proxy(String),
}

/// The most watched units (namespaces) served over one HTTP/2 connection.
pub const MAX_H2_UNITS: usize = 12;

/// A client for an operator watching `units` units: one HTTP/2 connection up to
/// [`MAX_H2_UNITS`], else kube's HTTP/1.1 client.
pub fn for_units(config: Config, units: usize) -> Result<Client, KubeClientError> {
    if units <= MAX_H2_UNITS {
        return from_config(config);
    }
    tracing::warn!(
        units,
        max = MAX_H2_UNITS,
        "too many watched namespaces for one HTTP/2 connection; using one HTTP/1.1 connection per watch"
    );
    Client::try_from(config).map_err(KubeClientError::Setup)
}

/// A client from the inferred configuration (`KUBECONFIG`, `~/.kube/config` or in-cluster).
pub async fn infer() -> Result<Client, KubeClientError> {
    let config = Config::infer().await.map_err(KubeClientError::Config)?;
    from_config(config)
}

/// A client for `config` whose requests share one HTTP/2 connection.
pub fn from_config(config: Config) -> Result<Client, KubeClientError> {
    if let Some(proxy) = &config.proxy_url {
        return Err(KubeClientError::Proxy(proxy.to_string()));
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    http.set_nodelay(true);
    let tls = config.rustls_client_config().map_err(KubeClientError::Setup)?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let https = match &config.tls_server_name {
        Some(name) => {
            let name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|_| KubeClientError::ServerName(name.clone()))?;
            https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => https,
    };
    let https = https.enable_http2().wrap_connector(http);
    let hyper: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .http2_only(true)
            .timer(TokioTimer::new())
            .http2_keep_alive_interval(PING_INTERVAL)
            .http2_keep_alive_timeout(PING_TIMEOUT)
            .http2_keep_alive_while_idle(true)
            .http2_initial_stream_window_size(STREAM_WINDOW)
            .http2_initial_connection_window_size(CONNECTION_WINDOW)
            .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer().map_err(KubeClientError::Setup)?)
        .layer(config.extra_headers_layer().map_err(KubeClientError::Setup)?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(Client::new(service, config.default_namespace))
}
