//! Command-line interface: `centralauth-operator run …` and `centralauth-operator crds`.
//!
//! Every flag can also come from an environment variable (`CENTRALAUTH_…`), which is how the
//! Helm chart passes them. Unknown or malformed flags exit non-zero with clap's message.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::forwarded::{AddressHeader, TrustedProxies};

/// Kubernetes operator and OAuth 2.1 / PKCE server for CentralAuth-style logins.
#[derive(Parser, Debug)]
#[command(name = "centralauth-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands of the binary.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controllers and serve the login endpoints.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    Crds(CrdsArgs),
    /// Read a password on stdin and print its argon2id PHC hash, the value a `passwords`
    /// login Secret maps an e-mail address to.
    HashPassword,
    /// Print the User manifest of an address in an organization, to invite someone or to
    /// pre-create their record: `centralauth-operator user --organization acme --email
    /// ada@example.com | kubectl apply -n <namespace> -f -`.
    User(UserArgs),
}

/// Flags of `centralauth-operator user`.
#[derive(Args, Debug, Clone)]
pub struct UserArgs {
    /// Name of the Organization (the User goes in its namespace).
    #[arg(long, value_parser = parse_namespace)]
    pub organization: String,
    /// The user's e-mail address (trimmed and lower-cased).
    #[arg(long)]
    pub email: String,
    /// Namespace to write into the manifest (default: none, so `kubectl -n` decides).
    #[arg(long, short = 'n', value_parser = parse_namespace)]
    pub namespace: Option<String>,
    /// Create the user blocked.
    #[arg(long)]
    pub blocked: bool,
}

/// Flags of `centralauth-operator crds`.
#[derive(Args, Debug, Clone)]
pub struct CrdsArgs {
    /// Write one file per CRD (`<kind>.yaml`) into this directory instead of printing them.
    #[arg(long)]
    pub out_dir: Option<std::path::PathBuf>,
}

/// Flags of `centralauth-operator run`. The Kubernetes client comes from `KUBECONFIG` or the
/// in-cluster service account, as kube does.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Shared login domain: organizations answer on it (picked by client_id) and on
    /// `<subdomain>.<base-domain>`.
    #[arg(long, env = "CENTRALAUTH_BASE_DOMAIN", value_parser = parse_host)]
    pub base_domain: String,

    /// Scheme of public URLs (issuers, login URLs). `http` only for local development and tests;
    /// behind a TLS-terminating ingress keep `https`.
    #[arg(long, env = "CENTRALAUTH_PUBLIC_SCHEME", value_enum, default_value_t = PublicScheme::Https)]
    pub public_scheme: PublicScheme,

    /// Port of public URLs when it is not the scheme's default (e.g. a local test server).
    #[arg(long, env = "CENTRALAUTH_PUBLIC_PORT")]
    pub public_port: Option<u16>,

    /// Address of the public HTTP server (login and OAuth endpoints).
    #[arg(long, env = "CENTRALAUTH_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Address of the admin server (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, env = "CENTRALAUTH_ADMIN_LISTEN", default_value = "0.0.0.0:8081")]
    pub admin_listen: SocketAddr,

    /// Where sessions, codes and tokens live: `memory` (one replica) or
    /// `redis://[user:password@]host[:port][/db]` / `rediss://…` (several replicas, Redis 7.0 or
    /// newer). `/readyz` stays unready while Redis is unreachable.
    #[arg(long, env = "CENTRALAUTH_STORE", default_value = "memory")]
    pub store: StoreArg,

    /// Prefix of every Redis key, so several installations can share one Redis (each with its
    /// own prefix). Every replica of one installation must use the same.
    #[arg(long, env = "CENTRALAUTH_STORE_KEY_PREFIX", default_value = "centralauth:", value_parser = parse_key_prefix)]
    pub store_key_prefix: String,

    /// PEM file of the CA certificate(s) a `rediss://` store must present a certificate from,
    /// instead of the system's trust store (e.g. a cluster-internal CA).
    #[arg(long, env = "CENTRALAUTH_STORE_CA_FILE")]
    pub store_ca_file: Option<std::path::PathBuf>,

    /// The operator's own namespace: the leader Lease and the signing-keys Secret live there.
    /// Default: `POD_NAMESPACE` (the chart sets it from the downward API), else the
    /// kubeconfig's namespace.
    #[arg(long, env = "POD_NAMESPACE", value_parser = parse_namespace)]
    pub namespace: Option<String>,

    /// Rotate the token-signing key after this many seconds (the previous key stays in the
    /// JWKS until the tokens it signed have expired).
    #[arg(long, env = "CENTRALAUTH_SIGNING_KEY_ROTATION_SECONDS", default_value_t = 30 * 24 * 3600,
          value_parser = clap::value_parser!(i64).range(60..))]
    pub signing_key_rotation_seconds: i64,

    /// Name of the Secret, in the operator's own namespace, holding the token-signing keys.
    /// Created if absent; several replicas share it.
    #[arg(long, env = "CENTRALAUTH_SIGNING_KEY_SECRET", default_value = "centralauth-signing-keys",
          value_parser = parse_namespace)]
    pub signing_key_secret: String,

    /// Log format.
    #[arg(long, env = "CENTRALAUTH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Watch only these namespaces (repeat the flag or separate with commas). Empty: the whole
    /// cluster. A restricted operator needs only namespaced Roles (the chart's
    /// `watchNamespaces`) and never lists anything cluster-wide.
    #[arg(long = "watch-namespace", env = "CENTRALAUTH_WATCH_NAMESPACES", value_delimiter = ',', value_parser = parse_namespace)]
    pub watch_namespaces: Vec<String>,

    /// Elect a leader on a Lease so that only one replica reconciles. `false` only for a
    /// single replica that must not touch a Lease.
    #[arg(long, env = "CENTRALAUTH_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Name of the leader Lease.
    #[arg(long, env = "CENTRALAUTH_LEASE_NAME", default_value = "centralauth-operator", value_parser = parse_namespace)]
    pub lease_name: String,

    /// How long followers wait after the leader's last renewal before taking over (whole
    /// seconds, e.g. `15s`).
    #[arg(long, env = "CENTRALAUTH_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// How long the leader keeps trying to renew before it stops reconciling. Must be shorter
    /// than `--lease-duration`.
    #[arg(long, env = "CENTRALAUTH_LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub lease_renew_deadline: Duration,

    /// Interval between attempts to take or renew the lease. Must be shorter than
    /// `--lease-renew-deadline`.
    #[arg(long, env = "CENTRALAUTH_LEASE_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub lease_retry_period: Duration,

    /// Reverse proxies (Ingress controller, load balancer) whose `--client-address-header`
    /// says who the client is: comma-separated address ranges, e.g. `10.0.0.0/8,fd00::/8`.
    /// The client is the right-most address in that header that is not a trusted proxy.
    /// Empty (the default): trust nobody, the socket peer is the client. Behind a proxy, list
    /// its addresses, or every user shares the proxy's address in the failure counters.
    #[arg(long, env = "CENTRALAUTH_TRUSTED_PROXIES", default_value = "",
          value_parser = clap::value_parser!(TrustedProxies))]
    pub trusted_proxies: TrustedProxies,

    /// Header the trusted proxies write the client address into (only this one is read).
    #[arg(long, env = "CENTRALAUTH_CLIENT_ADDRESS_HEADER", value_enum, default_value_t = AddressHeader::XForwardedFor)]
    pub client_address_header: AddressHeader,

    /// On SIGTERM, report not-ready at once but keep serving this long before closing the
    /// listeners, so load balancers stop sending traffic first (e.g. `5s` in a cluster).
    #[arg(long, env = "CENTRALAUTH_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
}

/// Scheme of public URLs.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicScheme {
    /// `https://` (production).
    Https,
    /// `http://` (local development and tests only).
    Http,
}

impl RunArgs {
    /// The namespaces to watch, from `--watch-namespace`.
    pub fn scope(&self) -> crate::runtime::scope::Scope {
        crate::runtime::scope::Scope::from_namespaces(self.watch_namespaces.clone())
    }

    /// How the public server is reached, from the flags.
    pub fn public_base(&self) -> crate::tenant::PublicBase {
        crate::tenant::PublicBase {
            scheme: match self.public_scheme {
                PublicScheme::Https => "https".into(),
                PublicScheme::Http => "http".into(),
            },
            base_domain: self.base_domain.clone(),
            port: self.public_port,
        }
    }
}

/// Log output format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

pub use crate::store::StoreUrl;

/// The `--store` value as given. It is validated by [`StoreArg::url`] when `run` starts rather
/// than by the argument parser, which would repeat a malformed value — and a Redis URL may hold
/// a password — in its error message. `Debug` never shows it either.
#[derive(Clone)]
pub struct StoreArg(String);

impl FromStr for StoreArg {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(StoreArg(s.to_string()))
    }
}

impl std::fmt::Debug for StoreArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.url() {
            Ok(url) => write!(f, "{url:?}"),
            Err(_) => f.write_str("<invalid store URL>"),
        }
    }
}

impl StoreArg {
    /// The validated store URL; the message says what to fix without repeating the value.
    pub fn url(&self) -> Result<StoreUrl, String> {
        self.0.parse()
    }
}

/// A Redis key prefix: at most 64 printable ASCII characters, no spaces.
fn parse_key_prefix(s: &str) -> Result<String, String> {
    if s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(s.to_string())
    } else {
        Err("expected at most 64 printable ASCII characters without spaces, such as `centralauth:`".to_string())
    }
}

/// A namespace (or other DNS-label) name.
fn parse_namespace(s: &str) -> Result<String, String> {
    let valid = !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(s.to_string())
    } else {
        Err("expected a namespace name: lowercase letters, digits and '-', at most 63 characters".to_string())
    }
}

/// A duration such as `500ms`, `15s` or `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("expected a duration such as 500ms, 15s or 2m, got {s:?}");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| err())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(err()),
    }
}

/// A bare lowercase host name: no scheme, path or port.
fn parse_host(s: &str) -> Result<String, String> {
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if s.len() <= 253 && s.split('.').all(valid_label) {
        Ok(s.to_string())
    } else {
        Err("expected a lowercase host name such as `auth.example.com` (no scheme, port or path)".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!("memory".parse::<StoreUrl>(), Ok(StoreUrl::Memory));
        let Ok(StoreUrl::Redis(url)) = "redis://127.0.0.1:6379/0".parse::<StoreUrl>() else {
            panic!("a redis URL")
        };
        assert_eq!(url.shown(), "redis://127.0.0.1:6379/0");
        assert!("redis://".parse::<StoreUrl>().is_err());
        assert!("postgres://x".parse::<StoreUrl>().is_err());
        assert!("mem".parse::<StoreUrl>().is_err());
    }

    #[test]
    fn a_bad_store_url_is_refused_at_start_without_repeating_it() {
        let cli = Cli::try_parse_from([
            "centralauth-operator",
            "run",
            "--base-domain",
            "a.b",
            "--store",
            "redis://:hunter2@cache/notadb",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else { panic!() };
        let err = args.store.url().unwrap_err();
        assert!(err.contains("database number"), "{err}");
        assert!(!format!("{err} {args:?}").contains("hunter2"));
        assert_eq!(args.store_key_prefix, "centralauth:");
        let ok: StoreArg = "redis://:hunter2@cache:6380/1".parse().unwrap();
        assert_eq!(format!("{ok:?}"), "Redis(redis://cache:6380/1)");
        assert!(parse_key_prefix("team a:").is_err());
        assert!(parse_key_prefix("prod/centralauth:").is_ok());
    }

    #[test]
    fn base_domain_must_be_a_host() {
        assert!(parse_host("auth.example.com").is_ok());
        assert!(parse_host("localhost").is_ok());
        assert!(parse_host("https://auth.example.com").is_err());
        assert!(parse_host("auth.example.com:8080").is_err());
        assert!(parse_host("Auth.Example.com").is_err());
        assert!(parse_host("").is_err());
    }

    #[test]
    fn durations_and_namespaces() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1h").is_err());
        let cli = Cli::try_parse_from([
            "centralauth-operator",
            "run",
            "--base-domain",
            "a.b",
            "--watch-namespace",
            "team-a,team-b",
            "--watch-namespace",
            "team-c",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else { panic!() };
        assert_eq!(args.watch_namespaces, ["team-a", "team-b", "team-c"]);
        assert!(
            Cli::try_parse_from([
                "centralauth-operator",
                "run",
                "--base-domain",
                "a.b",
                "--watch-namespace",
                "Team_A"
            ])
            .is_err()
        );
    }

    #[test]
    fn trusted_proxies_parse_from_the_flag_or_the_environment() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["centralauth-operator", "run", "--base-domain", "a.b"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).map(|cli| match cli.command {
                Command::Run(args) => *args,
                _ => panic!(),
            })
        };
        let none = parse(&[]).unwrap();
        assert!(none.trusted_proxies.is_empty());
        assert_eq!(none.client_address_header, AddressHeader::XForwardedFor);
        let set = parse(&[
            "--trusted-proxies",
            "10.0.0.0/8,fd00::/8",
            "--client-address-header",
            "forwarded",
        ])
        .unwrap();
        assert!(set.trusted_proxies.trusts("10.1.2.3".parse().unwrap()));
        assert_eq!(set.client_address_header, AddressHeader::Forwarded);
        let err = parse(&["--trusted-proxies", "10.0.0.0/40"]).unwrap_err().to_string();
        assert!(err.contains("--trusted-proxies") && err.contains("10.0.0.0/8"), "{err}");
        assert!(parse(&["--client-address-header", "x-real-ip"]).is_err());
    }

    #[test]
    fn unknown_flags_are_refused() {
        let err = Cli::try_parse_from(["centralauth-operator", "run", "--base-domain", "a.b", "--bogus"]);
        assert!(err.is_err());
        let err = Cli::try_parse_from([
            "centralauth-operator",
            "run",
            "--base-domain",
            "a.b",
            "--listen",
            "nope",
        ]);
        assert!(err.is_err());
        let ok = Cli::try_parse_from(["centralauth-operator", "run", "--base-domain", "a.b"]);
        assert!(ok.is_ok());
    }
}
