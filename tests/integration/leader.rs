//! Leader election with real operator processes against the real API server: one leader,
//! hand-over on SIGKILL (lease expiry) and SIGTERM (release), a leader cut off from the API
//! server steps down before anyone takes over, every replica serves HTTP throughout, and
//! graceful shutdown finishes requests in flight.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::Api;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::support;
use crate::support::process::{Operator, OperatorOptions, http_get};

/// Lease timings for the tests: `(duration, renew deadline, retry period)`.
fn lease_args(ns: &str, timings: (&str, &str, &str), extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--lease-name",
        "leader-test",
        "--namespace",
        ns,
        "--lease-duration",
        timings.0,
        "--lease-renew-deadline",
        timings.1,
        "--lease-retry-period",
        timings.2,
    ]
    .map(String::from)
    .into();
    if !extra.contains(&"--watch-namespace") {
        args.extend(["--watch-namespace".to_string(), ns.to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn holder(client: &Client, ns: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt("leader-test")
        .await
        .ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// Waits until exactly one of `operators` reports itself leader and the Lease names it; returns
/// its index.
async fn single_leader(client: &Client, ns: &str, operators: &[&Operator], names: &[&str]) -> usize {
    let found = support::wait_until(Duration::from_secs(20), || async {
        let mut leaders = vec![];
        for (i, op) in operators.iter().enumerate() {
            if op.is_leader().await? {
                leaders.push(i);
            }
        }
        let [i] = leaders[..] else { return None };
        let holder = holder(client, ns).await?;
        holder.starts_with(&format!("{}_", names[i])).then_some(i)
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "no single leader:\n{}",
            operators.iter().map(|o| o.logs()).collect::<Vec<_>>().join("\n---\n")
        )
    })
}

/// Polls `/readyz` of `operator` every 100 ms until stopped; returns how many polls failed.
fn watch_readiness(admin_port: u16) -> (tokio::sync::oneshot::Sender<()>, JoinHandle<(u32, u32)>) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let (mut polls, mut failures) = (0, 0);
        loop {
            polls += 1;
            match http_get(&format!("http://127.0.0.1:{admin_port}/readyz")).await {
                Some((200, _)) => {}
                _ => failures += 1,
            }
            tokio::select! {
                _ = &mut stopped => return (polls, failures),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    });
    (stop, task)
}

#[tokio::test]
async fn two_replicas_elect_one_leader_and_sigkill_hands_over_within_the_lease_duration() {
    support::init_crypto();
    let client = support::client().await;
    let ns = support::namespace(&client, "leader-kill").await;
    let timings = ("3s", "2s", "500ms");
    let names = ["kill-a", "kill-b"];
    let a = Operator::start(OperatorOptions {
        pod_name: names[0],
        kubeconfig: None,
        args: lease_args(&ns, timings, &[]),
    });
    let b = Operator::start(OperatorOptions {
        pod_name: names[1],
        kubeconfig: None,
        args: lease_args(&ns, timings, &[]),
    });
    a.wait_ready().await;
    b.wait_ready().await;
    let mut operators = [a, b];
    let leader = single_leader(&client, &ns, &[&operators[0], &operators[1]], &names).await;
    let follower = 1 - leader;
    // It stays that way: the leader renews, the follower waits.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(operators[leader].is_leader().await, Some(true));
        assert_eq!(operators[follower].is_leader().await, Some(false));
    }

    let (stop, readiness) = watch_readiness(operators[follower].admin);
    operators[leader].signal("KILL");
    operators[leader].wait_exit(Duration::from_secs(5)).await;
    // The dead leader's last renewal, as the Lease records it (the follower has not taken over
    // yet: that takes at least the lease duration).
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let last_renewal = leases
        .get("leader-test")
        .await
        .unwrap()
        .spec
        .unwrap()
        .renew_time
        .unwrap()
        .0;
    let acquired = support::wait_until(Duration::from_secs(15), || async {
        let spec = leases.get("leader-test").await.ok()?.spec?;
        let holder = spec.holder_identity.clone()?;
        let leads = operators[follower].is_leader().await? && holder.starts_with(&format!("{}_", names[follower]));
        leads.then_some(spec.acquire_time?.0)
    })
    .await
    .unwrap_or_else(|| panic!("the follower never took over:\n{}", operators[follower].logs()));
    stop.send(()).unwrap();
    let (polls, failures) = readiness.await.unwrap();
    // Measured on the Lease's own timestamps, so a busy test machine's observation delay does
    // not count: never before the lease expired (3 s after the last renewal), and within one
    // retry period (500 ms, +20 % jitter) plus scheduling slack after that.
    let took_over = Duration::try_from(acquired.duration_since(last_renewal)).unwrap();
    assert!(
        took_over >= Duration::from_secs(3),
        "the follower took the lease {took_over:?} after the last renewal, before it expired"
    );
    assert!(
        took_over < Duration::from_millis(3000 + 600 + 2500),
        "take-over took {took_over:?} after the last renewal"
    );
    assert!(
        polls > 5 && failures == 0,
        "{failures} of {polls} /readyz polls of the survivor failed"
    );
    println!("SIGKILL hand-over: {took_over:?} (lease duration 3s)");
}

#[tokio::test]
async fn sigterm_stops_the_controllers_releases_the_lease_and_exits_zero() {
    support::init_crypto();
    let client = support::client().await;
    let ns = support::namespace(&client, "leader-term").await;
    // A long lease: a hand-over well under it can only come from the release.
    let timings = ("20s", "10s", "500ms");
    let names = ["term-a", "term-b"];
    let mut operators = names.map(|name| {
        Operator::start(OperatorOptions {
            pod_name: name,
            kubeconfig: None,
            args: lease_args(&ns, timings, &[]),
        })
    });
    for op in &operators {
        op.wait_ready().await;
    }
    let leader = single_leader(&client, &ns, &[&operators[0], &operators[1]], &names).await;
    let follower = 1 - leader;

    operators[leader].signal("TERM");
    let terminated = Instant::now();
    let code = operators[leader].wait_exit(Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "SIGTERM must exit 0:\n{}", operators[leader].logs());
    let logs = operators[leader].logs();
    assert!(logs.contains("leader lease released"), "{logs}");
    let took_over = support::wait_until(Duration::from_secs(15), || async {
        let leads = operators[follower].is_leader().await?;
        leads.then(|| terminated.elapsed())
    })
    .await
    .expect("the follower took over");
    assert!(
        took_over < Duration::from_secs(5),
        "hand-over after release took {took_over:?}"
    );
    println!("SIGTERM hand-over: {took_over:?} (lease duration 20s)");
}

/// A TCP proxy to the API server that can be cut: the listener and every connection close.
struct Proxy {
    port: u16,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let registry = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                registry.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Proxy { port, tasks }
    }

    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// `host:port` of the test API server, from the admin kubeconfig.
fn api_server_address() -> String {
    let text = std::fs::read_to_string(support::kubeconfig_path()).unwrap();
    let server = text.lines().find_map(|l| l.trim().strip_prefix("server:")).unwrap();
    server.trim().trim_start_matches("https://").to_string()
}

/// The admin kubeconfig, pointed at `127.0.0.1:port` instead of the API server.
fn kubeconfig_via(port: u16) -> std::path::PathBuf {
    let text = std::fs::read_to_string(support::kubeconfig_path()).unwrap();
    let rewritten = text.replace(&api_server_address(), &format!("127.0.0.1:{port}"));
    let path = std::env::temp_dir().join(format!("leader-proxy-{port}.kubeconfig"));
    std::fs::write(&path, rewritten).unwrap();
    path
}

#[tokio::test]
async fn a_leader_cut_off_from_the_api_server_stops_reconciling_before_anyone_takes_over() {
    support::init_crypto();
    let client = support::client().await;
    let ns = support::namespace(&client, "leader-partition").await;
    let timings = ("4s", "2s", "500ms");
    let proxy = Proxy::start(api_server_address()).await;
    let kubeconfig = kubeconfig_via(proxy.port);

    let a = Operator::start(OperatorOptions {
        pod_name: "cut-a",
        kubeconfig: Some(&kubeconfig),
        args: lease_args(&ns, timings, &[]),
    });
    a.wait_ready().await;
    assert!(
        support::wait_until(Duration::from_secs(10), || async { a.is_leader().await?.then_some(()) })
            .await
            .is_some(),
        "{}",
        a.logs()
    );
    let b = Operator::start(OperatorOptions {
        pod_name: "cut-b",
        kubeconfig: None,
        args: lease_args(&ns, timings, &[]),
    });
    b.wait_ready().await;

    proxy.cut();
    let cut = Instant::now();
    let (mut a_stepped_down, mut b_took_over) = (None, None);
    while cut.elapsed() < Duration::from_secs(15) && (a_stepped_down.is_none() || b_took_over.is_none()) {
        if a_stepped_down.is_none() && a.is_leader().await == Some(false) {
            a_stepped_down = Some(cut.elapsed());
        }
        if b_took_over.is_none() && b.is_leader().await == Some(true) {
            b_took_over = Some(cut.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a_down = a_stepped_down.unwrap_or_else(|| panic!("the cut-off leader kept leading:\n{}", a.logs()));
    let b_up = b_took_over.unwrap_or_else(|| panic!("the other replica never took over:\n{}", b.logs()));
    assert!(
        a_down < b_up,
        "two leaders: A stepped down at {a_down:?}, B led from {b_up:?}"
    );
    // Renew deadline 2 s after the last renewal (at most one retry period before the cut).
    assert!(
        a_down < Duration::from_millis(2000 + 1000),
        "A stepped down after {a_down:?}"
    );
    assert!(a.logs().contains("lost the leader lease; controllers stopped"));
    // Cut off from the API server, A still answers from its caches.
    assert_eq!(a.admin_get("/readyz").await.map(|r| r.0), Some(200));
    println!("partition: A stopped after {a_down:?}, B led after {b_up:?} (renew deadline 2s, lease 4s)");
    std::fs::remove_file(&kubeconfig).ok();
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight_and_stops_accepting() {
    use axum::routing::get;
    let router = axum::Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            "done"
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (trigger, shutdown) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(centralauth_operator::run::serve(listener, router, async {
        let _ = shutdown.await;
    }));
    let in_flight = tokio::spawn(async move { http_get(&format!("http://127.0.0.1:{port}/slow")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    trigger.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "still accepting after shutdown"
    );
    assert_eq!(in_flight.await.unwrap(), Some((200, "done".to_string())));
    server.await.unwrap().unwrap();
}

/// Across a leader hand-over (SIGKILL in the middle of a rotation burst), no ClientSecret is
/// minted twice (its Secret keeps one `client_secret` value for life) and none is activated
/// twice (it appears in one contiguous run of the organization's `status.activeSecret`), and
/// the survivor keeps serving: `/readyz` throughout, and a client-credentials grant with the
/// newest secret once it is active.
#[tokio::test]
async fn no_client_secret_is_minted_or_activated_twice_across_a_hand_over() {
    use std::collections::BTreeMap;

    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{DynamicObject, PostParams};
    use kube::core::{ApiResource, GroupVersionKind};
    use kube::runtime::{WatchStreamExt, watcher};

    support::init_crypto();
    let client = support::client().await;
    let ns = support::namespace(&client, "leader-rotation").await;
    let resource = |kind| ApiResource::from_gvk(&GroupVersionKind::gvk("centralauth.io", "v1alpha1", kind));
    let orgs: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource("Organization"));
    let secrets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource("ClientSecret"));
    let org = serde_json::from_value(serde_json::json!({
        "apiVersion": "centralauth.io/v1alpha1", "kind": "Organization", "metadata": {"name": "acme"},
        "spec": {"displayName": "Acme", "loginMethods": {"passwords": {"secretName": "users"}}}
    }))
    .unwrap();
    orgs.create(&PostParams::default(), &org).await.unwrap();

    // Record every activation and every generated value while it happens.
    let activations = Arc::new(Mutex::new(Vec::<String>::new()));
    let minted = Arc::new(Mutex::new(BTreeMap::<String, Vec<Vec<u8>>>::new()));
    let recorder = {
        let (activations, orgs) = (activations.clone(), orgs.clone());
        tokio::spawn(async move {
            let mut stream = watcher(orgs, watcher::Config::default()).applied_objects().boxed();
            while let Some(Ok(org)) = stream.next().await {
                let active = org.data["status"]["activeSecret"]["name"].as_str().map(String::from);
                let mut log = activations.lock().unwrap();
                if let Some(name) = active.filter(|n| log.last() != Some(n)) {
                    log.push(name);
                }
            }
        })
    };
    let secret_recorder = {
        let (minted, api) = (minted.clone(), Api::<Secret>::namespaced(client.clone(), &ns));
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default()).applied_objects().boxed();
            while let Some(Ok(secret)) = stream.next().await {
                let Some(value) = secret.data.as_ref().and_then(|d| d.get("client_secret")) else {
                    continue;
                };
                let mut values = minted.lock().unwrap();
                let entry = values.entry(secret.metadata.name.clone().unwrap()).or_default();
                if !entry.contains(&value.0) {
                    entry.push(value.0.clone());
                }
            }
        })
    };

    let timings = ("3s", "2s", "500ms");
    let names = ["rot-a", "rot-b"];
    let mut operators = names.map(|name| {
        Operator::start(OperatorOptions {
            pod_name: name,
            kubeconfig: None,
            args: lease_args(&ns, timings, &["--watch-namespace", &ns]),
        })
    });
    for op in &operators {
        op.wait_ready().await;
    }
    let leader = single_leader(&client, &ns, &[&operators[0], &operators[1]], &names).await;
    let follower = 1 - leader;
    let (stop, readiness) = watch_readiness(operators[follower].admin);
    let count = 12;
    for i in 0..count {
        let cs = serde_json::from_value(serde_json::json!({
            "apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret", "metadata": {"name": format!("acme-{i:02}")},
            "spec": {"organizationRef": {"name": "acme"}, "activation": "Immediate"}
        }))
        .unwrap();
        secrets.create(&PostParams::default(), &cs).await.unwrap();
        if i == count / 2 {
            operators[leader].signal("KILL");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    operators[leader].wait_exit(Duration::from_secs(5)).await;
    let last = format!("acme-{:02}", count - 1);
    let settled = support::wait_until(Duration::from_secs(60), || async {
        (activations.lock().unwrap().last() == Some(&last)).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "the newest secret never became active:\n{}",
        operators[follower].logs()
    );
    stop.send(()).unwrap();
    let (polls, failures) = readiness.await.unwrap();
    recorder.abort();
    secret_recorder.abort();

    let log = activations.lock().unwrap().clone();
    let mut seen = std::collections::BTreeSet::new();
    for name in &log {
        assert!(seen.insert(name.clone()), "{name} was activated twice: {log:?}");
    }
    for (name, values) in minted.lock().unwrap().iter() {
        assert_eq!(values.len(), 1, "Secret {name} was minted {} times", values.len());
    }
    assert_eq!(
        failures, 0,
        "{failures} of {polls} /readyz polls of the survivor failed"
    );

    // The survivor answers OAuth with the newest secret, read where apps read it.
    let org = orgs.get("acme").await.unwrap();
    let client_id = org.data["status"]["clientId"].as_str().unwrap().to_string();
    let data = Api::<Secret>::namespaced(client.clone(), &ns)
        .get(&last)
        .await
        .unwrap()
        .data
        .unwrap();
    let secret = String::from_utf8(data["client_secret"].0.clone()).unwrap();
    // (The survivor's caches follow the API server within a moment of the test's own watch.)
    let http = reqwest::Client::new();
    let url = format!(
        "http://127.0.0.1:{}/o/{client_id}/oauth2/token",
        operators[follower].public
    );
    let granted = support::wait_until(Duration::from_secs(5), || async {
        let response = http
            .post(&url)
            .header(reqwest::header::HOST, "auth.test")
            .basic_auth(&client_id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    assert!(
        granted.is_some(),
        "the survivor refused the newest secret:\n{}",
        operators[follower].logs()
    );
}

/// Sockets the process holds open (TCP, Unix), from `/proc/<pid>/fd`.
fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|target| target.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_lease_taken_by_force_stops_the_controllers_without_leaking_tasks_or_sockets() {
    support::init_crypto();
    let client = support::client().await;
    let ns = support::namespace(&client, "leader-force").await;
    let op = Operator::start(OperatorOptions {
        pod_name: "force-a",
        kubeconfig: None,
        args: lease_args(&ns, ("3s", "2s", "500ms"), &[]),
    });
    op.wait_ready().await;
    single_leader(&client, &ns, &[&op], &["force-a"]).await;
    let pid = op.child.id().expect("the operator runs");
    let tasks = || async {
        op.metrics()
            .await
            .value("centralauth_runtime_alive_tasks", &[])
            .expect("the task gauge") as i64
    };
    // Settled: the controllers listed and have nothing to do.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (tasks_before, sockets_before) = (tasks().await, sockets_of(pid));

    for round in 1..=3 {
        // Another identity takes the Lease: the operator sees it at its next renewal and stops its
        // controllers; nobody renews the intruder's record, so it takes the lease back later.
        // A renewal landing between the read and the write makes the write conflict: read again.
        let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
        let taken = support::wait_until(Duration::from_secs(10), || async {
            let mut lease = leases.get("leader-test").await.ok()?;
            let spec = lease.spec.as_mut()?;
            spec.holder_identity = Some("intruder".into());
            spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                k8s_openapi::jiff::Timestamp::now(),
            ));
            leases.replace("leader-test", &Default::default(), &lease).await.ok()
        })
        .await;
        assert!(taken.is_some(), "round {round}: the intruder could not take the Lease");
        let lost = support::wait_until(Duration::from_secs(10), || async {
            let m = op.metrics().await;
            (m.value("centralauth_leadership_changes_total", &[("event", "lost")]) == Some(f64::from(round)))
                .then_some(())
        })
        .await;
        assert!(
            lost.is_some(),
            "round {round}: the lease loss was not seen:\n{}",
            op.logs()
        );
        let back = support::wait_until(Duration::from_secs(15), || async {
            (holder(&client, &ns).await?.starts_with("force-a_") && op.is_leader().await?).then_some(())
        })
        .await;
        assert!(
            back.is_some(),
            "round {round}: the lease was never taken back:\n{}",
            op.logs()
        );
    }
    // Back at their level once the restarted controllers have listed (polled, not timed).
    let settled = support::wait_until(Duration::from_secs(20), || async {
        let (t, s) = (tasks().await, sockets_of(pid));
        (t <= tasks_before + 2 && s <= sockets_before + 1).then_some((t, s))
    })
    .await;
    assert!(
        settled.is_some(),
        "after 3 lost leases: {} tasks (was {tasks_before}), {} sockets (was {sockets_before})",
        tasks().await,
        sockets_of(pid)
    );
    println!("tasks {tasks_before} -> {:?}, sockets {sockets_before}", settled);
}
