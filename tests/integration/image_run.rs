//! The image built by `tests/image/build.sh` (see [`crate::image`]) run with podman against the
//! test control plane the way a pod runs: host network, the kubeconfig mounted read-only,
//! `--read-only` without even a tmpfs on `/tmp` (it writes nothing), `--user 65532:65532`, no
//! capabilities, no privilege escalation. It becomes ready, takes the lease, mints and activates
//! a ClientSecret, answers `client_credentials`, keeps serving through the shutdown delay after
//! SIGTERM, and exits 0 with the lease released; it verifies TLS against the CA bundle it ships.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::{Value, json};

use crate::image::{VERSION, built, podman, scratch};
use crate::support;
use crate::support::pki::TestPki;
use crate::support::process::{activated_organization, http_get, parse_prometheus_text};
use crate::support::redis_server::{self, RedisServer};

const SHUTDOWN_DELAY: Duration = Duration::from_secs(2);

/// A container started with `podman run`, removed when dropped.
struct Container {
    name: String,
    child: tokio::process::Child,
    log: PathBuf,
}

impl Container {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The container's main process, as the host's `/proc` shows it.
    fn proc_file(&self, file: &str) -> String {
        let out = podman()
            .args(["inspect", "--format", "{{.State.Pid}}", &self.name])
            .output()
            .unwrap();
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_else(|e| panic!("/proc/{pid}/{file}: {e}"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "--force", "--time", "0", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A directory holding a copy of the test kubeconfig that UID 65532 can read.
fn kubeconfig_dir(ns: &str) -> PathBuf {
    let dir = scratch().join(ns);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("kubeconfig");
    std::fs::copy(support::kubeconfig_path(), &file).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    dir
}

/// `podman run` of the image as a pod runs it (`podman_args` added before the image), with
/// `run`, the ports and namespace of the test, and `args`. Logs go to target/test-logs.
fn run_container(id: &str, ns: &str, ports: (u16, u16), podman_args: &[&str], args: &[&str]) -> Container {
    let name = format!("centralauth-{ns}-{}", ports.0);
    let log = support::repo_root().join(format!("target/test-logs/{name}.log"));
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&log).unwrap();
    let kubeconfig = kubeconfig_dir(ns);
    let mut command = podman();
    command
        .args(["run", "--rm", "--name", &name, "--pull", "never"])
        .args(["--read-only", "--read-only-tmpfs=false", "--network", "host"])
        .args([
            "--user",
            "65532:65532",
            "--cap-drop",
            "all",
            "--security-opt",
            "no-new-privileges",
        ])
        .args(["-v", &format!("{}:/kc:ro", kubeconfig.display())])
        .args(["-e", "KUBECONFIG=/kc/kubeconfig", "-e", "POD_NAME=image-op"])
        .args(["-e", "RUST_LOG=info,kube=warn"])
        .args(podman_args)
        .args([id, "run", "--base-domain", "auth.test", "--public-scheme", "http"])
        .args(["--listen", &format!("127.0.0.1:{}", ports.0)])
        .args(["--admin-listen", &format!("127.0.0.1:{}", ports.1)])
        .args(["--namespace", ns, "--watch-namespace", ns])
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    let child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .expect("podman is installed (tests/clients/install.sh)");
    Container { name, child, log }
}

/// Waits until the container's `/readyz` answers `status` with a body containing `body`.
async fn wait_readyz(container: &Container, admin: u16, status: u16, body: &str) {
    let readyz = format!("http://127.0.0.1:{admin}/readyz");
    let seen = support::wait_until(Duration::from_secs(60), || async {
        let (s, b) = http_get(&readyz).await?;
        (s == status && b.contains(body)).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "/readyz never answered {status} {body:?}:\n{}",
        container.logs()
    );
}

/// The value of a `Key:\tvalue` line of `/proc/<pid>/status`.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
}

async fn holder(client: &kube::Client, ns: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt("image-test")
        .await
        .ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// `client_credentials` at the container's public port: the status.
async fn client_credentials(public: u16, client_id: &str, secret: &str) -> Option<u16> {
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{public}/o/{client_id}/oauth2/token"))
        .header(reqwest::header::HOST, "auth.test")
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.ok()?;
    (status != 200 || body["access_token"].as_str().is_some_and(|t| !t.is_empty())).then_some(status)
}

/// What the kernel says about the container's process: UID and GID 65532, no capabilities, no
/// way to gain privileges, and a read-only root filesystem.
fn check_process(container: &Container) {
    let status = container.proc_file("status");
    for key in ["Uid", "Gid"] {
        let ids: Vec<&str> = status_field(&status, key).split_whitespace().collect();
        assert_eq!(ids, ["65532"; 4], "{key}");
    }
    assert_eq!(status_field(&status, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    let mounts = container.proc_file("mountinfo");
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .expect("a root mount");
    let options = root.split_whitespace().nth(5).unwrap();
    assert!(options.split(',').any(|o| o == "ro"), "root mounted {options}");
}

/// SIGTERM, as the kubelet sends it: unready at once, still serving during the delay, then exit
/// 0 with the lease released. Returns how long it took to exit.
async fn check_sigterm(container: &mut Container, ports: (u16, u16), credentials: (&str, &str)) -> Duration {
    let stop = podman()
        .args(["kill", "--signal", "TERM", &container.name])
        .output()
        .unwrap();
    assert!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stderr));
    let terminated = Instant::now();
    let readyz = format!("http://127.0.0.1:{}/readyz", ports.1);
    let unready = support::wait_until(Duration::from_secs(1), || async {
        (http_get(&readyz).await?.0 == 503).then_some(())
    })
    .await;
    assert!(unready.is_some(), "still ready after SIGTERM");
    let served = client_credentials(ports.0, credentials.0, credentials.1).await;
    assert_eq!(served, Some(200), "requests during the shutdown delay are served");
    let exit = tokio::time::timeout(SHUTDOWN_DELAY + Duration::from_secs(10), container.child.wait())
        .await
        .expect("the container did not exit")
        .unwrap();
    let took = terminated.elapsed();
    let logs = container.logs();
    assert_eq!(exit.code(), Some(0), "exit status {exit}:\n{logs}");
    assert!(
        took >= SHUTDOWN_DELAY && took < SHUTDOWN_DELAY + Duration::from_secs(5),
        "exited {took:?} after SIGTERM (shutdown delay {SHUTDOWN_DELAY:?}):\n{logs}"
    );
    assert!(logs.contains("leader lease released"), "{logs}");
    took
}

#[tokio::test]
async fn the_image_runs_read_only_as_65532_and_does_the_operators_job() {
    support::init_crypto();
    let built = built();
    let out = podman()
        .args(["run", "--rm", "--pull", "never", &built.id, "--version"])
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert_eq!(version.trim(), format!("centralauth-operator {VERSION}"), "{out:?}");

    let client = support::client().await;
    let ns = support::namespace(&client, "image").await;
    let ports = (support::free_port(), support::free_port());
    let delay = format!("{}s", SHUTDOWN_DELAY.as_secs());
    let args = ["--lease-name", "image-test", "--shutdown-delay", &delay];
    let mut container = run_container(&built.id, &ns, ports, &[], &args);
    wait_readyz(&container, ports.1, 200, "ready").await;
    check_process(&container);

    // It leads (the Lease names it), mints and activates a secret, and serves OAuth with it.
    let leads = support::wait_until(Duration::from_secs(30), || async {
        let (_, body) = http_get(&format!("http://127.0.0.1:{}/metrics", ports.1)).await?;
        let metrics = parse_prometheus_text(&body).ok()?;
        (metrics.value("centralauth_leader", &[]) == Some(1.0)).then_some(())?;
        holder(&client, &ns).await.filter(|h| h.starts_with("image-op_"))
    })
    .await;
    assert!(leads.is_some(), "the container never led:\n{}", container.logs());
    let spec = json!({"displayName": "Acme", "loginMethods": {"passwords": {"secretName": "users"}}});
    let (client_id, secret) = activated_organization(&client, &ns, spec)
        .await
        .unwrap_or_else(|| panic!("the container never activated acme-1:\n{}", container.logs()));
    let granted = support::wait_until(Duration::from_secs(10), || async {
        (client_credentials(ports.0, &client_id, &secret).await? == 200).then_some(())
    })
    .await;
    assert!(granted.is_some(), "client_credentials failed:\n{}", container.logs());

    let took = check_sigterm(&mut container, ports, (&client_id, &secret)).await;
    assert_eq!(
        holder(&client, &ns).await,
        None,
        "the lease is free for the next replica"
    );
    println!("image: ready, leading, served, and exited 0 {took:?} after SIGTERM");
    std::fs::remove_dir_all(scratch().join(&ns)).ok();
}

/// The binary in the image verifies TLS against the CA bundle the image ships, at
/// `/etc/ssl/certs/ca-certificates.crt`: a `rediss://` Redis with a certificate from a test CA
/// is refused with the image's own (public) bundle, and trusted once that one file is replaced
/// by the test CA (mounted over it, as a private CA would be).
#[tokio::test]
async fn the_image_verifies_tls_against_the_ca_bundle_it_ships() {
    support::init_crypto();
    let built = built();
    let client = support::client().await;
    let ns = support::namespace(&client, "image-ca").await;
    let pki = TestPki::new(&["localhost".to_string()]);
    let dir = kubeconfig_dir(&ns);
    for (file, pem) in [
        ("ca.pem", &pki.ca_pem),
        ("redis.pem", &pki.cert_pem),
        ("redis.key", &pki.key_pem),
    ] {
        std::fs::write(dir.join(file), pem).unwrap();
        std::fs::set_permissions(dir.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let port = redis_server::free_port();
    let (port_s, cert, key) = (port.to_string(), path("redis.pem"), path("redis.key"));
    let _redis = RedisServer::start(&[
        "--tls-port",
        &port_s,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-auth-clients",
        "no",
    ]);
    let store = format!("rediss://localhost:{port}/0");
    let args = ["--leader-elect=false", "--store", &store];

    let ports = (support::free_port(), support::free_port());
    let image_bundle = run_container(&built.id, &ns, ports, &[], &args);
    wait_readyz(&image_bundle, ports.1, 503, "the session store is unreachable").await;
    // /readyz may turn 503 a moment before the warning reaches the container's log.
    let logged = || image_bundle.logs().contains("session store unreachable");
    support::wait_until(Duration::from_secs(10), || std::future::ready(logged().then_some(()))).await;
    let logs = image_bundle.logs();
    let why = logs.lines().find(|l| l.contains("session store unreachable"));
    assert!(why.is_some_and(|l| l.contains("certificate")), "{logs}");

    let ports = (support::free_port(), support::free_port());
    let mount = format!("{}:/etc/ssl/certs/ca-certificates.crt:ro", path("ca.pem"));
    let test_ca = run_container(&built.id, &ns, ports, &["-v", &mount], &args);
    wait_readyz(&test_ca, ports.1, 200, "ready").await;
    std::fs::remove_dir_all(dir).ok();
}
