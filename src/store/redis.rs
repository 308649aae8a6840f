//! The Redis store: every replica of the server shares sessions, codes, login state, refresh
//! tokens and throttling counters, so a replayed code, a revoked session or a logout holds on
//! every replica.
//!
//! Each [`Store`] operation is one Redis command, which Redis runs atomically: `put` = `SET … PX`,
//! `get` = `GET`, `take` = `GETDEL`, `swap` = `SET … PX … GET`, `delete` = `DEL`,
//! `touch` = `PEXPIRE`. `incr` is `INCR` followed by `PEXPIRE … NX` in one `MULTI`/`EXEC`
//! transaction: Redis runs the two back to back with no other client's command in between,
//! and `NX` sets the expiry only when the counter has none (its creation), as the memory store
//! does. A transaction rather than a Lua script because it needs no scripting permission (many
//! managed Redis offerings and ACL setups deny `EVAL`), no script cache (`NOSCRIPT` after a
//! failover or `SCRIPT FLUSH`), and there is no branch to express: `NX` is the condition.
//! These commands need Redis 7.0 or newer (`PEXPIRE … NX`).
//!
//! Connections: one multiplexed connection per process, managed by `redis`'s
//! `ConnectionManager`, opened lazily on first use and re-opened after any I/O failure, with
//! connect and response timeouts so a lost Redis fails requests fast ("retry later") instead of
//! hanging them. A command is never retried by the client, so `INCR` or `SET … GET` cannot run
//! twice. `rediss://` uses rustls with the `ring` provider (the crate's only TLS stack) and the
//! system's trust store (which `SSL_CERT_FILE` / `SSL_CERT_DIR` replace), or only the CAs given
//! to [`RedisStore::new`] (`--store-ca-file`); turning certificate verification off
//! (`#insecure`) is refused. The first [`RedisStore::ping`] also reads `INFO server memory`:
//! it refuses a server older than 7.0 and warns when `maxmemory-policy` lets Redis evict keys
//! (a forgotten revocation or used-code marker would re-enable what it stopped).
//!
//! Errors never carry a key or a value: Redis echoes arguments in some error replies
//! (`ERR unknown command 'X', with args beginning with: …`), so only the reply's error code and
//! the client-side cause (connection refused, timeout, TLS) are kept.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisError};
use futures::future::{BoxFuture, FutureExt};

use super::{Store, StoreError, StoreResult};

/// Oldest Redis whose commands this store uses (`PEXPIRE … NX` is 7.0).
const MIN_VERSION: (u32, u32) = (7, 0);
/// Longest wait for a TCP (and TLS) connection to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the answer to one command.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A validated `redis://` or `rediss://` URL. Its `Debug` and `Display` forms leave out the user
/// name and password, so it can be logged.
#[derive(Clone)]
pub struct RedisUrl {
    raw: String,
    info: Box<ConnectionInfo>,
    shown: String,
    tls: bool,
}

impl RedisUrl {
    /// `scheme://host:port/db`, without credentials.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether it is a `rediss://` (TLS) URL.
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PartialEq for RedisUrl {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for RedisUrl {}

impl FromStr for RedisUrl {
    type Err = String;

    /// Parses `redis[s]://[user[:password]@]host[:port][/db]`. Messages never repeat the URL
    /// (it may hold a password).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FORM: &str = "expected `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS)";
        let url = url::Url::parse(s).map_err(|e| format!("the store URL is not a URL ({e}): {FORM}"))?;
        if !matches!(url.scheme(), "redis" | "rediss") {
            return Err(format!("the store URL must start with redis:// or rediss://: {FORM}"));
        }
        if url.fragment().is_some() {
            return Err(
                "the store URL has a #fragment: certificate verification cannot be turned off \
                 (`#insecure`); trust the server's CA with SSL_CERT_FILE instead"
                    .to_string(),
            );
        }
        if url.query().is_some() {
            return Err(format!("the store URL takes no ?query: {FORM}"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("the store URL has no host: {FORM}"))?;
        let db = url.path().trim_matches('/');
        if !db.is_empty() && db.parse::<u16>().is_err() {
            return Err(format!(
                "the store URL's path must be a database number such as /0: {FORM}"
            ));
        }
        let info = s
            .into_connection_info()
            .map_err(|e| format!("the store URL is not usable ({}): {FORM}", e.category()))?;
        let port = url.port().unwrap_or(6379);
        let shown = format!(
            "{}://{host}:{port}/{}",
            url.scheme(),
            if db.is_empty() { "0" } else { db }
        );
        Ok(RedisUrl {
            raw: s.to_string(),
            info: Box::new(info),
            shown,
            tls: url.scheme() == "rediss",
        })
    }
}

/// A [`Store`] in Redis, shared by every replica. Keys are `<prefix><key>`.
pub struct RedisStore {
    manager: ConnectionManager,
    prefix: String,
    target: String,
    version_checked: AtomicBool,
}

impl RedisStore {
    /// A store on `url` whose keys all start with `prefix` (so several installations can share
    /// one Redis). With `ca_pem` (PEM certificates), a `rediss://` server must present a
    /// certificate from those CAs (instead of the system's trust store). Connects lazily: the
    /// first operation (or [`RedisStore::ping`]) opens the connection. Must be called inside a
    /// Tokio runtime.
    pub fn new(url: &RedisUrl, prefix: &str, ca_pem: Option<&[u8]>) -> StoreResult<RedisStore> {
        // redis-rs builds its rustls configuration from the process default provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let target = url.shown().to_string();
        let info = (*url.info).clone();
        let client = match ca_pem {
            None => ::redis::Client::open(info),
            Some(pem) => {
                check_ca(url, pem)?;
                let certs = ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                };
                ::redis::Client::build_with_tls(info, certs)
            }
        }
        .map_err(|e| unavailable(&target, &e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| unavailable(&target, &e))?;
        Ok(RedisStore {
            manager,
            prefix: prefix.to_string(),
            target,
            version_checked: AtomicBool::new(false),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// `SET <prefix><key> <value> PX <ttl>`.
    fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> ::redis::Cmd {
        ::redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .to_owned()
    }

    async fn run<T: ::redis::FromRedisValue>(&self, cmd: &::redis::Cmd) -> StoreResult<T> {
        let mut conn = self.manager.clone();
        cmd.query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&self.target, &e))
    }

    /// Fails unless the server is Redis (or a compatible server reporting) 7.0 or newer; warns
    /// when it may evict keys, which would forget revocations and used-code markers.
    async fn check_server(&self) -> StoreResult<()> {
        let info: String = self.run(::redis::cmd("INFO").arg("server").arg("memory")).await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let version = field("redis_version").unwrap_or("unknown");
        if parse_version(version).is_none_or(|v| v < MIN_VERSION) {
            return Err(StoreError(format!(
                "Redis at {} is version {version}; this server needs Redis 7.0 or newer \
                 (GETDEL, SET … GET, PEXPIRE … NX): upgrade it or point --store at another one",
                self.target
            )));
        }
        if let Some(policy) = field("maxmemory_policy").filter(|p| *p != "noeviction") {
            tracing::warn!(
                redis = %self.target,
                policy,
                "Redis may evict keys when full, forgetting revoked tokens and used codes: \
                 set maxmemory-policy noeviction (a full Redis then refuses writes instead)"
            );
        }
        self.version_checked.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// A CA bundle only makes sense for TLS, and must hold at least one certificate.
fn check_ca(url: &RedisUrl, pem: &[u8]) -> StoreResult<()> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    if !url.is_tls() {
        return Err(StoreError(
            "a CA file for the store is set but the store URL is redis://: use rediss:// for TLS, or drop the CA file"
                .into(),
        ));
    }
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(()),
        _ => Err(StoreError(
            "the store's CA file holds no valid PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        )),
    }
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Milliseconds for `PX` / `PEXPIRE`, at least 1 (Redis refuses 0).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A store error that names the server and the cause, never a key or a value.
fn unavailable(target: &str, err: &RedisError) -> StoreError {
    StoreError(format!("Redis at {target}: {}", describe(err)))
}

/// What went wrong, from the error's kind and code only (server replies may echo arguments).
fn describe(err: &RedisError) -> String {
    if err.is_timeout() {
        return "no answer in time (timed out); is Redis up and reachable?".into();
    }
    if err.is_io_error() {
        // Client-side causes (socket, TLS, certificates): they hold no command arguments.
        let hint = if err.to_string().contains("certificate") {
            " (trust the server's CA with SSL_CERT_FILE, and name a host its certificate covers)"
        } else {
            ""
        };
        return format!("connection failed: {err}{hint}");
    }
    match (err.kind(), err.code()) {
        (ErrorKind::AuthenticationFailed, _) | (_, Some("WRONGPASS" | "NOAUTH")) => {
            "authentication failed: check the user name and password in the store URL".into()
        }
        (_, Some("NOPERM")) => "the Redis user lacks a permission: allow the commands GET, SET, GETDEL, DEL, \
             INCR, PEXPIRE, MULTI, EXEC, PING and INFO on the keys under the store's prefix"
            .into(),
        (_, Some("READONLY")) => "connected to a read-only replica: point the store URL at the primary".into(),
        (_, Some("LOADING")) => "Redis is loading its data set; retry shortly".into(),
        (_, Some(code @ ("MOVED" | "ASK" | "CLUSTERDOWN" | "CROSSSLOT"))) => {
            format!("Redis Cluster is not supported ({code}): use a single primary (with replicas)")
        }
        (_, Some(code)) => format!("Redis refused a command ({code}); it needs Redis 7.0 or newer"),
        (_, None) => format!("{} from the Redis client", err.category()),
    }
}

impl Store for RedisStore {
    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> BoxFuture<'a, StoreResult<()>> {
        async move { self.run::<()>(&self.set(key, value, ttl)).await }.boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        async move { self.run(::redis::cmd("GET").arg(self.key(key))).await }.boxed()
    }

    fn take<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        async move { self.run(::redis::cmd("GETDEL").arg(self.key(key))).await }.boxed()
    }

    fn swap<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Duration) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        async move { self.run(self.set(key, value, ttl).arg("GET")).await }.boxed()
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        async move { self.run::<()>(::redis::cmd("DEL").arg(self.key(key))).await }.boxed()
    }

    fn incr<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, StoreResult<u64>> {
        async move {
            let k = self.key(key);
            let mut conn = self.manager.clone();
            let (n,): (u64,) = ::redis::pipe()
                .atomic()
                .cmd("INCR")
                .arg(&k)
                .cmd("PEXPIRE")
                .arg(&k)
                .arg(millis(ttl))
                .arg("NX")
                .ignore()
                .query_async(&mut conn)
                .await
                .map_err(|e| unavailable(&self.target, &e))?;
            Ok(n)
        }
        .boxed()
    }

    fn touch<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, StoreResult<bool>> {
        async move {
            let cmd = ::redis::cmd("PEXPIRE").arg(self.key(key)).arg(millis(ttl)).to_owned();
            self.run::<bool>(&cmd).await
        }
        .boxed()
    }

    /// `PING`, and the first time `INFO server memory` to check the version and eviction.
    fn ping(&self) -> BoxFuture<'_, StoreResult<()>> {
        async move {
            if !self.version_checked.load(Ordering::Relaxed) {
                self.check_server().await?;
            }
            self.run::<()>(&::redis::cmd("PING")).await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_validated_and_shown_without_credentials() {
        let url: RedisUrl = "redis://user:hunter2-secret@cache.example:6380/3".parse().unwrap();
        assert_eq!(url.shown(), "redis://cache.example:6380/3");
        assert_eq!(
            format!("{url:?} {url}"),
            "redis://cache.example:6380/3 redis://cache.example:6380/3"
        );
        let tls: RedisUrl = "rediss://:pw@cache.example".parse().unwrap();
        assert_eq!(tls.shown(), "rediss://cache.example:6379/0");
        for (bad, says) in [
            ("rediss://:hunter2-secret@cache.example#insecure", "#fragment"),
            ("redis://:hunter2-secret@cache.example/zero", "database number"),
            ("redis://:hunter2-secret@cache.example/0?protocol=3", "?query"),
            ("unix:///run/redis.sock", "redis:// or rediss://"),
            ("redis://:hunter2-secret@/0", "host"),
        ] {
            let err = bad.parse::<RedisUrl>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "the message repeats the password: {err}");
        }
    }

    #[tokio::test]
    async fn a_ca_file_needs_tls_and_a_certificate() {
        let plain: RedisUrl = "redis://cache:6379".parse().unwrap();
        let tls: RedisUrl = "rediss://cache:6379".parse().unwrap();
        let err = RedisStore::new(&plain, "p:", Some(b"x")).err().unwrap();
        assert!(err.0.contains("use rediss://"), "{err}");
        let err = RedisStore::new(&tls, "p:", Some(b"not a pem")).err().unwrap();
        assert!(err.0.contains("no valid PEM certificate"), "{err}");
    }

    #[test]
    fn versions_and_ttls() {
        assert_eq!(parse_version("7.0.15"), Some((7, 0)));
        assert_eq!(parse_version("6.2.14").map(|v| v < MIN_VERSION), Some(true));
        assert_eq!(parse_version("unknown"), None);
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_secs(2)), 2000);
    }
}
