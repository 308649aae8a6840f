//! The operator binary with `--store redis://…`: unready while Redis is unreachable (and ready
//! once it answers, without a restart), writing to Redis under its key prefix, never logging
//! the password; `rediss://` verified against the CA of `--store-ca-file` (or of
//! `SSL_CERT_FILE`) and refused against others, with a warning when Redis may evict keys; a malformed URL refused at start without repeating it.

use std::time::Duration;

use crate::support::pki::TestPki;
use crate::support::process::{Operator, OperatorOptions};
use crate::support::redis_server::{self, RedisServer};
use crate::support::{self, wait_until};

const PASSWORD: &str = "redis-pw-3b9f2c71";

/// Starts the operator in a fresh namespace with `extra` flags and `env` added.
async fn operator(test: &str, extra: &[&str], env: &[(&str, &str)]) -> Operator {
    support::init_crypto();
    let client = support::client().await;
    let ns = support::namespace(&client, test).await;
    let args = ["--leader-elect=false", "--watch-namespace", &ns];
    Operator::start_with_env(
        OperatorOptions {
            pod_name: test,
            kubeconfig: None,
            args: args.iter().chain(extra).map(|s| s.to_string()).collect(),
        },
        env,
    )
}

/// Waits until `/readyz` answers `status` with a body containing `body`.
async fn wait_readyz(op: &Operator, status: u16, body: &str) {
    let seen = wait_until(Duration::from_secs(30), || async {
        let (s, b) = op.admin_get("/readyz").await?;
        (s == status && b.contains(body)).then_some(())
    })
    .await;
    let now = op.admin_get("/readyz").await;
    assert!(
        seen.is_some(),
        "/readyz never answered {status} {body:?} (now {now:?}):\n{}",
        op.logs()
    );
}

/// The keys under `prefix` in the Redis at `url`.
async fn keys(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn binary_is_unready_until_redis_answers_and_never_logs_its_password() {
    let port = redis_server::free_port();
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{port}/0");
    let prefix = redis_server::unique_prefix("binary");
    // The URL in the environment, as the chart passes it from a Secret (`secretKeyRef`).
    let env = [
        ("CENTRALAUTH_STORE", url.as_str()),
        ("CENTRALAUTH_STORE_KEY_PREFIX", &prefix),
    ];
    let op = operator("store-binary", &[], &env).await;
    wait_readyz(&op, 503, "the session store is unreachable").await;
    assert_eq!(
        op.admin_get("/healthz").await.map(|r| r.0),
        Some(200),
        "alive while unready"
    );

    let mut redis = RedisServer::start_on(port, &["--requirepass", PASSWORD]);
    wait_readyz(&op, 200, "ready").await;

    // A failed client authentication is counted in the store: in this Redis, under the prefix.
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/api/v1/userinfo", op.public))
        .header("host", "auth.test")
        .basic_auth("no-such-client", Some("wrong"))
        .body("token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let stored = keys(&url, &prefix).await;
    assert!(
        stored
            .iter()
            .any(|k| k.starts_with(&format!("{prefix}throttle:client:"))),
        "{stored:?}"
    );

    // Redis goes away: unready (alive), then ready again once it is back, with no restart.
    redis.stop();
    wait_readyz(&op, 503, "the session store is unreachable").await;
    redis.restart();
    wait_readyz(&op, 200, "ready").await;

    let logs = op.logs();
    assert!(logs.contains("session store unreachable"), "{logs}");
    assert!(
        logs.contains(&format!("redis://127.0.0.1:{port}/0")),
        "the logs name the server: {logs}"
    );
    assert!(!logs.contains(PASSWORD), "the logs hold the Redis password:\n{logs}");
    assert!(
        !logs.contains("maxmemory-policy"),
        "no eviction warning for a noeviction Redis: {logs}"
    );
}

#[tokio::test]
async fn binary_speaks_tls_to_redis_and_verifies_its_certificate() {
    let pki = TestPki::new(&["localhost".to_string()]);
    let dir = std::env::temp_dir().join(format!("centralauth-redis-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, pem) in [
        ("ca.pem", &pki.ca_pem),
        ("redis.pem", &pki.cert_pem),
        ("redis.key", &pki.key_pem),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let tls_port = redis_server::free_port();
    let (tls_port_s, cert, key, ca) = (
        tls_port.to_string(),
        path("redis.pem"),
        path("redis.key"),
        path("ca.pem"),
    );
    let _redis = RedisServer::start(&[
        "--tls-port",
        &tls_port_s,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
        "--maxmemory-policy",
        "allkeys-lru",
    ]);
    let url = format!("rediss://localhost:{tls_port}/0");

    let trusted = operator("store-tls", &["--store", &url, "--store-ca-file", &ca], &[]).await;
    wait_readyz(&trusted, 200, "ready").await;
    let logs = trusted.logs();
    assert!(
        logs.contains("set maxmemory-policy noeviction"),
        "a Redis that evicts is worth a warning: {logs}"
    );
    // The system trust store (the default) can be pointed at the CA too.
    let via_env = operator("store-tls-env", &["--store", &url], &[("SSL_CERT_FILE", &ca)]).await;
    wait_readyz(&via_env, 200, "ready").await;

    // The same server is refused when its CA is not trusted: verification is on.
    let empty = path("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let untrusted = operator("store-tls-untrusted", &["--store", &url], &[("SSL_CERT_FILE", &empty)]).await;
    wait_readyz(&untrusted, 503, "the session store is unreachable").await;
    let logs = untrusted.logs();
    let why = logs.lines().find(|l| l.contains("session store unreachable"));
    assert!(
        why.is_some_and(|l| l.contains("certificate")),
        "the log says why: {logs}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn binary_refuses_a_malformed_store_url_without_repeating_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_centralauth-operator"))
        .args(["run", "--base-domain", "auth.test", "--store"])
        .arg(format!("redis://:{PASSWORD}@cache.example/not-a-db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error, like the flags clap checks");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid --store") && stderr.contains("database number"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}
