//! Every [`Store`] operation, with one test body run against both implementations: the
//! memory store and the Redis store on a real `redis-server` (one per test process, each test
//! under its own key prefix).

use std::sync::Arc;
use std::time::Duration;

use centralauth_operator::store::{MemoryStore, RedisStore, RedisUrl, Store};

use crate::support::redis_server::{self, RedisServer};

const MIN: Duration = Duration::from_secs(60);

/// Generates `memory::<name>` and `redis::<name>` for each test body `<name>(store)`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(std::sync::Arc::new(centralauth_operator::store::MemoryStore::new())).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::redis_store(stringify!($name))).await;
                }
            )*
        }
    };
}

on_both_stores!(
    put_get_take_delete,
    swap_returns_the_previous_value,
    twenty_concurrent_takes_get_the_value_once,
    twenty_concurrent_swaps_hand_the_old_value_to_one,
    twenty_concurrent_incrs_count_each_once,
    entries_and_counters_expire,
    touch_extends_only_live_entries,
    values_are_binary_safe,
    ping_answers,
    an_ended_access_refuses_what_started_before_it_and_never_moves_back,
);

fn redis_url(url: &str) -> RedisUrl {
    url.parse().expect("a valid test URL")
}

/// A Redis store on the shared test server, under a prefix of its own.
fn redis_store(test: &str) -> Arc<dyn Store> {
    let url = redis_url(&redis_server::shared().url());
    Arc::new(RedisStore::new(&url, &redis_server::unique_prefix(test), None).expect("a Redis store"))
}

async fn put_get_take_delete(s: Arc<dyn Store>) {
    assert_eq!(s.get("a").await.unwrap(), None);
    s.put("a", b"1".to_vec(), MIN).await.unwrap();
    assert_eq!(s.get("a").await.unwrap(), Some(b"1".to_vec()));
    s.put("a", b"2".to_vec(), MIN).await.unwrap();
    assert_eq!(s.get("a").await.unwrap(), Some(b"2".to_vec()), "put overwrites");
    assert_eq!(s.take("a").await.unwrap(), Some(b"2".to_vec()));
    assert_eq!(s.take("a").await.unwrap(), None);
    assert_eq!(s.get("a").await.unwrap(), None);
    s.put("b", b"2".to_vec(), MIN).await.unwrap();
    s.delete("b").await.unwrap();
    assert_eq!(s.get("b").await.unwrap(), None);
    s.delete("never-there").await.unwrap();
}

async fn swap_returns_the_previous_value(s: Arc<dyn Store>) {
    assert_eq!(s.swap("k", b"first".to_vec(), MIN).await.unwrap(), None);
    assert_eq!(
        s.swap("k", b"second".to_vec(), MIN).await.unwrap(),
        Some(b"first".to_vec())
    );
    assert_eq!(s.get("k").await.unwrap(), Some(b"second".to_vec()));
}

/// Runs `op` on 20 tasks at once and returns their results.
async fn twenty<T: Send + 'static>(
    s: &Arc<dyn Store>,
    op: impl Fn(Arc<dyn Store>) -> futures::future::BoxFuture<'static, T>,
) -> Vec<T> {
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (fut, barrier) = (op(s.clone()), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                fut.await
            })
        })
        .collect();
    let mut out = vec![];
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn twenty_concurrent_takes_get_the_value_once(s: Arc<dyn Store>) {
    s.put("code", b"live".to_vec(), MIN).await.unwrap();
    let got = twenty(&s, |s| Box::pin(async move { s.take("code").await.unwrap() })).await;
    assert_eq!(got.iter().filter(|v| v.is_some()).count(), 1, "{got:?}");
    assert!(got.contains(&Some(b"live".to_vec())));
}

async fn twenty_concurrent_swaps_hand_the_old_value_to_one(s: Arc<dyn Store>) {
    s.put("code", b"live".to_vec(), MIN).await.unwrap();
    let got = twenty(&s, |s| {
        Box::pin(async move { s.swap("code", b"used".to_vec(), MIN).await.unwrap() })
    })
    .await;
    assert_eq!(
        got.iter().filter(|v| *v == &Some(b"live".to_vec())).count(),
        1,
        "{got:?}"
    );
    assert_eq!(got.iter().filter(|v| *v == &Some(b"used".to_vec())).count(), 19);
}

async fn twenty_concurrent_incrs_count_each_once(s: Arc<dyn Store>) {
    let mut got = twenty(&s, |s| Box::pin(async move { s.incr("n", MIN).await.unwrap() })).await;
    got.sort_unstable();
    assert_eq!(got, (1..=20).collect::<Vec<u64>>());
}

async fn entries_and_counters_expire(s: Arc<dyn Store>) {
    // Long enough that a loaded machine (CI shares two cores with builds) cannot stretch the
    // first half of the window past its end.
    let short = Duration::from_millis(1500);
    s.put("a", b"1".to_vec(), short).await.unwrap();
    s.swap("b", b"1".to_vec(), short).await.unwrap();
    assert_eq!(s.incr("n", short).await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A later increment neither resets the count nor extends the window.
    assert_eq!(s.incr("n", MIN).await.unwrap(), 2);
    assert_eq!(s.get("a").await.unwrap(), Some(b"1".to_vec()));
    tokio::time::sleep(short).await;
    assert_eq!(s.get("a").await.unwrap(), None);
    assert_eq!(s.take("b").await.unwrap(), None);
    assert_eq!(
        s.swap("a", b"2".to_vec(), MIN).await.unwrap(),
        None,
        "an expired value is not handed out"
    );
    assert_eq!(s.incr("n", MIN).await.unwrap(), 1, "an expired counter starts again");
    s.put("z", b"1".to_vec(), Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(s.get("z").await.unwrap(), None, "a zero TTL expires at once");
}

async fn touch_extends_only_live_entries(s: Arc<dyn Store>) {
    s.put("a", b"1".to_vec(), Duration::from_millis(100)).await.unwrap();
    assert!(s.touch("a", Duration::from_secs(10)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.get("a").await.unwrap(), Some(b"1".to_vec()), "touch extended it");
    assert!(s.touch("a", Duration::from_millis(50)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(s.get("a").await.unwrap(), None, "touch can shorten it too");
    assert!(!s.touch("a", MIN).await.unwrap());
    assert_eq!(s.get("a").await.unwrap(), None, "touch does not bring a key back");
}

async fn values_are_binary_safe(s: Arc<dyn Store>) {
    let bytes: Vec<u8> = (0..=255).collect();
    s.put("bin", bytes.clone(), MIN).await.unwrap();
    assert_eq!(s.get("bin").await.unwrap(), Some(bytes));
    s.put("empty", vec![], MIN).await.unwrap();
    assert_eq!(
        s.take("empty").await.unwrap(),
        Some(vec![]),
        "an empty value is not absent"
    );
}

async fn ping_answers(s: Arc<dyn Store>) {
    s.ping().await.unwrap();
    s.ping().await.unwrap();
}

/// The record the User controller writes when a user is blocked or deleted
/// ([`centralauth_operator::oauth::access`]), as every replica reads it.
async fn an_ended_access_refuses_what_started_before_it_and_never_moves_back(s: Arc<dyn Store>) {
    use centralauth_operator::oauth::access;
    let store = s.as_ref();
    assert_eq!(access::ended_at(store, "user-1").await.unwrap(), None);
    assert!(!access::ended_since(store, "user-1", 0).await.unwrap());
    assert_eq!(access::end(store, "user-1", 1_000).await.unwrap(), 1_000);
    assert!(access::ended_since(store, "user-1", 999).await.unwrap());
    assert!(access::ended_since(store, "user-1", 1_000).await.unwrap());
    assert!(
        !access::ended_since(store, "user-1", 1_001).await.unwrap(),
        "a later login"
    );
    assert_eq!(
        access::end(store, "user-1", 500).await.unwrap(),
        1_000,
        "an older end never wins"
    );
    assert_eq!(access::end(store, "user-1", 2_000).await.unwrap(), 2_000);
    assert_eq!(access::ended_at(store, "user-1").await.unwrap(), Some(2_000));
    assert!(!access::ended_since(store, "user-2", 0).await.unwrap(), "per user");
}

#[tokio::test]
async fn redis_prefixes_keep_installations_apart() {
    let url = redis_url(&redis_server::shared().url());
    let a = RedisStore::new(&url, &redis_server::unique_prefix("install-a"), None).unwrap();
    let b = RedisStore::new(&url, &redis_server::unique_prefix("install-b"), None).unwrap();
    a.put("session:1", b"a".to_vec(), MIN).await.unwrap();
    assert_eq!(b.get("session:1").await.unwrap(), None);
    b.put("session:1", b"b".to_vec(), MIN).await.unwrap();
    assert_eq!(a.get("session:1").await.unwrap(), Some(b"a".to_vec()));
}

#[tokio::test]
async fn redis_store_reconnects_after_a_restart_and_fails_fast_meanwhile() {
    let mut server = RedisServer::start(&[]);
    let store = RedisStore::new(&redis_url(&server.url()), "t:", None).unwrap();
    store.put("k", b"v".to_vec(), MIN).await.unwrap();
    server.stop();
    let started = std::time::Instant::now();
    let err = store.get("k").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        err.to_string()
            .contains(&format!("Redis at redis://127.0.0.1:{}/0", server.port)),
        "{err}"
    );
    assert!(store.ping().await.is_err());
    server.restart();
    let back = async {
        loop {
            if store.ping().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(15), back)
        .await
        .expect("the store reconnected");
    assert_eq!(
        store.get("k").await.unwrap(),
        None,
        "a restarted Redis without persistence is empty"
    );
    store.put("k", b"v2".to_vec(), MIN).await.unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(b"v2".to_vec()));
}

#[tokio::test]
async fn redis_errors_name_neither_key_nor_value() {
    // A server that does not know GETDEL answers `ERR unknown command 'GETDEL', with args
    // beginning with: '<key>'`: the store's error must not repeat the key.
    let server = RedisServer::start(&["--rename-command", "GETDEL", ""]);
    let store = RedisStore::new(&redis_url(&server.url()), "t:", None).unwrap();
    let key = "code:secret-key-4f1d";
    store.put(key, b"secret-value-9c2e".to_vec(), MIN).await.unwrap();
    let err = store.take(key).await.unwrap_err().to_string();
    assert!(err.contains("Redis refused a command (ERR)"), "{err}");
    assert!(!err.contains("secret-key") && !err.contains("secret-value"), "{err}");
    // A key of another type: WRONGTYPE.
    assert!(server.raw("LPUSH t:list secret-value-9c2e").is_some());
    let err = store.get("list").await.unwrap_err().to_string();
    assert!(err.contains("(WRONGTYPE)") && !err.contains("secret-value"), "{err}");
}

#[tokio::test]
async fn redis_authentication_is_used_and_failures_say_what_to_fix() {
    let server = RedisServer::start(&["--requirepass", "hunter2-redis-pw"]);
    let good = format!("redis://:hunter2-redis-pw@127.0.0.1:{}/0", server.port);
    let store = RedisStore::new(&redis_url(&good), "t:", None).unwrap();
    store.ping().await.unwrap();
    store.put("k", b"v".to_vec(), MIN).await.unwrap();
    for url in [format!("redis://:wrong-pw@127.0.0.1:{}/0", server.port), server.url()] {
        let store = RedisStore::new(&redis_url(&url), "t:", None).unwrap();
        let err = store.ping().await.unwrap_err().to_string();
        assert!(err.contains("authentication failed"), "{err}");
        assert!(!err.contains("wrong-pw") && !err.contains("hunter2"), "{err}");
    }
}

#[tokio::test]
async fn memory_store_is_always_reachable() {
    MemoryStore::new().ping().await.unwrap();
}
