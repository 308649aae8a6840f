//! The container image as users run it. `tests/image/build.sh` packages the binary this suite
//! built (the debug build links the same libraries as the release build) into `scratch`, and
//! podman runs it against the test control plane the way a pod runs: host network, the
//! kubeconfig mounted read-only, `--read-only` (no tmpfs on `/tmp` either: it writes nothing),
//! `--user 65532:65532`, no capabilities, no privilege escalation. It becomes ready, takes the lease, mints and activates a ClientSecret,
//! answers `client_credentials`, keeps serving through the shutdown delay after SIGTERM, and
//! exits 0 with the lease released. The image holds nothing but the binary, its libraries, the
//! CA bundle and the passwd entry: the test lists the OCI archive users get.
//!
//! Podman needs two settings on this machine kind, both about the sandbox rather than the image
//! (README, "Container image"): the `runc` runtime, and no default ulimits (a containers.conf
//! in the scratch directory, passed as `CONTAINERS_CONF`).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::{Value, json};

use crate::process::{activated_organization, http_get, parse_prometheus_text};
use crate::support;
use crate::support::pki::TestPki;
use crate::support::redis_server::{self, RedisServer};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const BINARY: &str = env!("CARGO_BIN_EXE_centralauth-operator");
const IN_IMAGE: &str = "usr/local/bin/centralauth-operator";
const PASSWD: &str = "nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n";
const SHUTDOWN_DELAY: Duration = Duration::from_secs(2);

/// The image tests/image/build.sh built, once per test process.
struct Built {
    id: String,
    archive: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let started = Instant::now();
        let out = Command::new(support::repo_root().join("tests/image/build.sh"))
            .args(["--debug", "--binary", BINARY])
            .env_remove("IMAGE")
            .output()
            .expect("run tests/image/build.sh");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "tests/image/build.sh failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{stdout}(built in {:?})", started.elapsed());
        let field = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("build.sh printed no {key}=:\n{stdout}"))
                .to_string()
        };
        assert_eq!(
            field("image"),
            format!("localhost/centralauth-operator:{VERSION}-debug")
        );
        Built {
            id: field("id"),
            archive: support::repo_root().join(field("archive")),
        }
    })
}

/// Scratch directory of these tests, under `target/`.
fn scratch() -> PathBuf {
    let dir = support::repo_root().join("target/image-test");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `podman --runtime runc …` with this machine kind's two settings.
fn podman() -> Command {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    let conf = CONF.get_or_init(|| {
        let path = scratch().join(format!("containers-{}.conf", std::process::id()));
        std::fs::write(&path, "[containers]\ndefault_ulimits = []\n").unwrap();
        path
    });
    let mut command = Command::new("podman");
    command.env("CONTAINERS_CONF", conf).args(["--runtime", "runc"]);
    command
}

/// Runs `tar` on the archive through bash (for pipes); returns stdout.
fn tar(script: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new("bash")
        .args(["-c", &format!("set -euo pipefail; {script}"), "tar"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A JSON member of the OCI archive (`index.json` or a blob).
fn archive_json(archive: &Path, member: &str) -> Value {
    let bytes = tar(r#"tar -xOf "$1" "$2""#, &[archive.to_str().unwrap(), member]);
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{member} is not JSON: {e}"))
}

fn blob(digest: &Value) -> String {
    format!(
        "blobs/sha256/{}",
        digest.as_str().unwrap().strip_prefix("sha256:").unwrap()
    )
}

/// One entry of a layer, as `tar -tv --numeric-owner` shows it.
#[derive(Debug)]
struct Entry {
    mode: String,
    owner: String,
    size: u64,
    path: String,
}

/// The image config and every layer's entries, from the OCI archive.
fn image_contents(archive: &Path) -> (Value, Vec<Entry>, Vec<String>) {
    let index = archive_json(archive, "index.json");
    let manifest = archive_json(archive, &blob(&index["manifests"][0]["digest"]));
    let config = archive_json(archive, &blob(&manifest["config"]["digest"]));
    let (mut entries, mut layers) = (vec![], vec![]);
    for layer in manifest["layers"].as_array().unwrap() {
        let member = blob(&layer["digest"]);
        let list = tar(
            r#"tar -xOf "$1" "$2" | tar -tv --numeric-owner -z -f -"#,
            &[archive.to_str().unwrap(), &member],
        );
        for line in String::from_utf8(list).unwrap().lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [mode, owner, size, _date, _time, path @ ..] = &fields[..] else {
                panic!("unexpected tar line {line:?}")
            };
            entries.push(Entry {
                mode: mode.to_string(),
                owner: owner.to_string(),
                size: size.parse().unwrap(),
                path: path
                    .join(" ")
                    .trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_string(),
            });
        }
        layers.push(member);
    }
    (config, entries, layers)
}

/// The shared libraries `ldd` lists for `binary`, as absolute paths.
fn linked_libraries(binary: &str) -> Vec<String> {
    let out = Command::new("ldd").arg(binary).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            match fields[..] {
                [_, "=>", path, ..] if path.starts_with('/') => Some(path.to_string()),
                [path, ..] if path.starts_with('/') => Some(path.to_string()),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn the_image_holds_only_the_binary_its_libraries_ca_certificates_and_passwd() {
    let built = built();
    let (config, entries, layers) = image_contents(&built.archive);
    let libraries = linked_libraries(BINARY);
    // glibc (libc, libm, the loader) and libgcc_s: no OpenSSL, nothing else.
    for lib in &libraries {
        let name = lib.rsplit('/').next().unwrap();
        assert!(
            ["libc.so", "libm.so", "libgcc_s.so", "ld-linux"]
                .iter()
                .any(|p| name.starts_with(p)),
            "the binary links {lib}"
        );
    }
    let mut files: BTreeSet<String> = libraries
        .iter()
        .map(|l| l.trim_start_matches('/').to_string())
        .collect();
    files.extend([IN_IMAGE, "etc/ssl/certs/ca-certificates.crt", "etc/passwd"].map(String::from));
    let parents: BTreeSet<String> = files
        .iter()
        .flat_map(|f| {
            let parts: Vec<&str> = f.split('/').collect();
            (1..parts.len()).map(move |n| parts[..n].join("/"))
        })
        .collect();

    let listing: Vec<String> = entries
        .iter()
        .map(|e| format!("{} {} {}", e.mode, e.owner, e.path))
        .collect();
    let found: BTreeSet<String> = entries
        .iter()
        .filter(|e| !e.mode.starts_with('d'))
        .map(|e| e.path.clone())
        .collect();
    assert_eq!(found, files, "files of the image:\n{}", listing.join("\n"));
    for e in &entries {
        let is_dir = e.mode.starts_with('d');
        assert!(
            e.mode.starts_with('-') || (is_dir && parents.contains(&e.path)),
            "unexpected {e:?}"
        );
        assert_eq!(e.owner, "0/0", "{} is not owned by root", e.path);
        let mode = e.mode.as_bytes();
        assert!(mode[5] != b'w' && mode[8] != b'w', "{} is writable by others", e.path);
    }
    let binary = entries.iter().find(|e| e.path == IN_IMAGE).unwrap();
    assert_eq!(
        binary.size,
        std::fs::metadata(BINARY).unwrap().len(),
        "the binary as built"
    );
    let passwd = tar(
        r#"tar -xOf "$1" "$2" | tar -xzO -f - etc/passwd"#,
        &[built.archive.to_str().unwrap(), &layers[0]],
    );
    assert_eq!(String::from_utf8(passwd).unwrap(), PASSWD);

    // The runtime configuration, and the Containerfile says the same.
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(c["Entrypoint"], json!([format!("/{IN_IMAGE}")]));
    assert_eq!(c["Cmd"], json!(["run"]));
    let labels = &c["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], VERSION);
    assert_eq!(labels["org.opencontainers.image.licenses"], env!("CARGO_PKG_LICENSE"));
    let containerfile = std::fs::read_to_string(support::repo_root().join("Containerfile")).unwrap();
    let ports: Vec<&str> = c["ExposedPorts"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for line in [
        "FROM scratch".to_string(),
        "COPY --from=build /rootfs/ /".to_string(),
        " && rootfs.sh target/release/centralauth-operator /rootfs".to_string(),
        format!("USER {}", c["User"].as_str().unwrap()),
        format!("ENTRYPOINT {}", c["Entrypoint"]),
        format!("CMD {}", c["Cmd"]),
        format!("EXPOSE {}", ports.join(" ")),
    ] {
        assert!(
            containerfile.lines().any(|l| l == line),
            "the Containerfile lacks {line:?}"
        );
    }
    for key in ["title", "description", "licenses"] {
        let label = format!(
            "org.opencontainers.image.{key}={}",
            labels[format!("org.opencontainers.image.{key}")]
        );
        assert!(
            containerfile.contains(&label),
            "the Containerfile lacks the label {label}"
        );
    }
}

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

#[tokio::test]
async fn the_image_runs_read_only_as_65532_and_does_the_operators_job() {
    support::init_crypto();
    let built = built();
    let out = podman()
        .args(["run", "--rm", "--pull", "never", &built.id, "--version"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("centralauth-operator {VERSION}"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let client = support::client().await;
    let ns = support::namespace(&client, "image").await;
    let (public, admin) = (support::free_port(), support::free_port());
    let delay = format!("{}s", SHUTDOWN_DELAY.as_secs());
    let args = ["--lease-name", "image-test", "--shutdown-delay", &delay];
    let mut container = run_container(&built.id, &ns, (public, admin), &[], &args);
    wait_readyz(&container, admin, 200, "ready").await;
    let readyz = format!("http://127.0.0.1:{admin}/readyz");

    // What the kernel says about the process: UID and GID 65532, no capabilities, no way to
    // gain privileges, and a read-only root filesystem.
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

    // It leads (the Lease names it), mints and activates a secret, and serves OAuth with it.
    let leads = support::wait_until(Duration::from_secs(30), || async {
        let (_, body) = http_get(&format!("http://127.0.0.1:{admin}/metrics")).await?;
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
        (client_credentials(public, &client_id, &secret).await? == 200).then_some(())
    })
    .await;
    assert!(granted.is_some(), "client_credentials failed:\n{}", container.logs());

    // SIGTERM, as the kubelet sends it: unready at once, still serving during the delay, then
    // exit 0 with the lease released.
    let stop = podman()
        .args(["kill", "--signal", "TERM", &container.name])
        .output()
        .unwrap();
    assert!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stderr));
    let terminated = Instant::now();
    let unready = support::wait_until(Duration::from_secs(1), || async {
        (http_get(&readyz).await?.0 == 503).then_some(())
    })
    .await;
    assert!(unready.is_some(), "still ready after SIGTERM");
    assert_eq!(
        client_credentials(public, &client_id, &secret).await,
        Some(200),
        "requests during the shutdown delay are served"
    );
    let exit = tokio::time::timeout(SHUTDOWN_DELAY + Duration::from_secs(10), container.child.wait())
        .await
        .expect("the container did not exit")
        .unwrap();
    let took = terminated.elapsed();
    let logs = container.logs();
    assert_eq!(exit.code(), Some(0), "exit status {exit}:\n{logs}");
    assert!(
        took >= SHUTDOWN_DELAY && took < SHUTDOWN_DELAY + Duration::from_secs(3),
        "exited {took:?} after SIGTERM (shutdown delay {SHUTDOWN_DELAY:?}):\n{logs}"
    );
    assert!(logs.contains("leader lease released"), "{logs}");
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
    let logs = image_bundle.logs();
    let why = logs.lines().find(|l| l.contains("session store unreachable"));
    assert!(why.is_some_and(|l| l.contains("certificate")), "{logs}");

    let ports = (support::free_port(), support::free_port());
    let mount = format!("{}:/etc/ssl/certs/ca-certificates.crt:ro", path("ca.pem"));
    let test_ca = run_container(&built.id, &ns, ports, &["-v", &mount], &args);
    wait_readyz(&test_ca, ports.1, 200, "ready").await;
    std::fs::remove_dir_all(dir).ok();
}
