//! The `centralauth-operator` binary as users start it.

use std::process::Stdio;
use std::time::Duration;

use crate::support;

#[tokio::test]
async fn run_connects_checks_crds_and_serves_healthz() {
    support::init_crypto();
    let client = support::client().await; // control plane up and CRDs installed
    let ns = support::namespace(&client, "binary-run").await;
    let (public, admin) = (support::free_port(), support::free_port());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_centralauth-operator"))
        .args([
            "run",
            "--base-domain",
            "auth.test",
            "--leader-elect=false",
            "--watch-namespace",
            &ns,
        ])
        .arg("--listen")
        .arg(format!("127.0.0.1:{public}"))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{admin}"))
        .env("KUBECONFIG", support::kubeconfig_path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let ready = support::wait_until(Duration::from_secs(30), || async {
        let r = http.get(format!("http://127.0.0.1:{admin}/readyz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    assert!(ready.is_some(), "the operator never became ready");
    let healthz = http
        .get(format!("http://127.0.0.1:{admin}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[test]
fn run_without_a_reachable_api_server_exits_non_zero_with_a_message() {
    let dir = std::env::temp_dir().join(format!("ca-bad-kubeconfig-{}", std::process::id()));
    std::fs::write(
        &dir,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_centralauth-operator"))
        .args([
            "run",
            "--base-domain",
            "auth.test",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", &dir)
        .output()
        .unwrap();
    std::fs::remove_file(&dir).ok();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach the Kubernetes API server"), "{stderr}");
}

#[test]
fn malformed_flags_exit_non_zero() {
    for args in [
        vec!["run", "--base-domain", "https://x"],
        vec!["run", "--base-domain", "a.b", "--store", "postgres://x"],
        vec!["run", "--base-domain", "a.b", "--listen", "nowhere"],
        vec!["run", "--base-domain", "a.b", "--frobnicate"],
        vec!["frobnicate"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_centralauth-operator"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?} was accepted");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn malformed_trusted_proxies_exit_2_naming_the_flag_and_the_fix() {
    for (flag, env) in [
        (Some("10.0.0.0/8,10.0.0.0/33"), None),
        (None, Some("192.168.0.0/16,proxy.example.com")),
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_centralauth-operator"));
        cmd.args(["run", "--base-domain", "a.b"]);
        if let Some(value) = flag {
            cmd.args(["--trusted-proxies", value]);
        }
        if let Some(value) = env {
            cmd.env("CENTRALAUTH_TRUSTED_PROXIES", value);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag:?} {env:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--trusted-proxies") && stderr.contains("such as 10.0.0.0/8"),
            "{stderr}"
        );
    }
}
