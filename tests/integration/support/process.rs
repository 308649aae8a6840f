//! The operator binary as a child process, helm, and a small Prometheus text parser: shared by
//! the chart, RBAC, leader-election and metrics tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::support;

/// A new log file `target/test-logs/<stem>.log`.
fn log_file(stem: &str) -> (PathBuf, std::fs::File) {
    let dir = support::repo_root().join("target/test-logs");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{stem}.log"));
    let file = std::fs::File::create(&path).unwrap();
    (path, file)
}

/// A running `centralauth-operator run`, killed when dropped.
pub struct Operator {
    /// The child process.
    pub child: Child,
    /// Port of the public listener.
    pub public: u16,
    /// Port of the admin listener.
    pub admin: u16,
    stderr_path: PathBuf,
}

/// How to start an operator.
pub struct OperatorOptions<'a> {
    /// `POD_NAME`, the base of the lease identity.
    pub pod_name: &'a str,
    /// Kubeconfig to use (default: the testenv admin).
    pub kubeconfig: Option<&'a Path>,
    /// Extra flags after `run --base-domain auth.test --listen … --admin-listen …`.
    pub args: Vec<String>,
}

impl Operator {
    /// Starts the binary; stderr goes to a file under the target dir (read with [`Operator::logs`]).
    pub fn start(options: OperatorOptions<'_>) -> Operator {
        Operator::start_with_env(options, &[])
    }

    /// [`Operator::start`] with extra environment variables.
    pub fn start_with_env(options: OperatorOptions<'_>, env: &[(&str, &str)]) -> Operator {
        let (public, admin) = (support::free_port(), support::free_port());
        let (stderr_path, stderr) = log_file(&format!("{}-{}", options.pod_name, std::process::id()));
        let kubeconfig = options.kubeconfig.unwrap_or_else(|| support::kubeconfig_path());
        let mut command = Command::new(env!("CARGO_BIN_EXE_centralauth-operator"));
        command
            .args([
                "run",
                "--base-domain",
                "auth.test",
                "--public-scheme",
                "http",
                "--listen",
            ])
            .arg(format!("127.0.0.1:{public}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin}"))
            .args(&options.args)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", options.pod_name)
            .env_remove("POD_NAMESPACE")
            .env("RUST_LOG", "info,kube=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr);
        Operator::spawn(command, public, admin, stderr_path)
    }

    fn spawn(mut command: Command, public: u16, admin: u16, stderr_path: PathBuf) -> Operator {
        let child = command.kill_on_drop(true).spawn().unwrap();
        Operator {
            child,
            public,
            admin,
            stderr_path,
        }
    }

    /// Starts the binary serving base domain `localhost` (which every client resolves) over
    /// `http` on its public port, watching and keeping its keys in namespace `ns`, without
    /// leader election, at log level `rust_log`; stdout and stderr go to the log file.
    pub fn start_on_localhost(ns: &str, rust_log: &str) -> Operator {
        let (public, admin) = (support::free_port(), support::free_port());
        let (stderr_path, log) = log_file(&format!("{ns}-{}-{public}", std::process::id()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_centralauth-operator"));
        command
            .args(["run", "--base-domain", "localhost", "--public-scheme", "http"])
            .args(["--namespace", ns, "--watch-namespace", ns, "--leader-elect=false"])
            .args(["--public-port", &public.to_string()])
            .args(["--listen", &format!("127.0.0.1:{public}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .env("KUBECONFIG", support::kubeconfig_path())
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        Operator::spawn(command, public, admin, stderr_path)
    }

    /// Stops the process and returns everything it logged (the log file is removed).
    pub async fn stop_and_read_logs(mut self) -> String {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
        let logs = self.logs();
        std::fs::remove_file(&self.stderr_path).ok();
        logs
    }

    /// What the process logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// GET on the admin listener: `Some((status, body))`, or `None` when nothing answers.
    pub async fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&format!("http://127.0.0.1:{}{path}", self.admin)).await
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let ready = support::wait_until(Duration::from_secs(30), || async {
            let (status, _) = self.admin_get("/readyz").await?;
            (status == 200).then_some(())
        })
        .await;
        assert!(ready.is_some(), "the operator never became ready:\n{}", self.logs());
    }

    /// The parsed `/metrics`.
    pub async fn metrics(&self) -> Metrics {
        let (status, body) = self.admin_get("/metrics").await.expect("/metrics answers");
        assert_eq!(status, 200);
        parse_prometheus_text(&body).unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}\n{body}"))
    }

    /// Whether this replica reports itself leader (`centralauth_leader`).
    pub async fn is_leader(&self) -> Option<bool> {
        let (_, body) = self.admin_get("/metrics").await?;
        let metrics = parse_prometheus_text(&body).ok()?;
        Some(metrics.value("centralauth_leader", &[]) == Some(1.0))
    }

    /// Sends `signal` (e.g. `libc`-free: "TERM", "KILL") with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the operator is running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let status = tokio::time::timeout(timeout, self.child.wait()).await.ok()?.ok()?;
        status.code()
    }
}

/// A GET with a fresh connection and a short timeout.
pub async fn http_get(url: &str) -> Option<(u16, String)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let response = client.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with `_total`, `_bucket`… suffixes as exposed).
    pub name: String,
    /// Label pairs.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// `# TYPE` of each family.
    pub types: BTreeMap<String, String>,
}

impl Metrics {
    /// The value of the sample `name` whose labels include all of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
}

/// Parses the Prometheus text format (0.0.4) strictly enough to catch malformed output:
/// `# HELP`/`# TYPE` lines, `name{label="value",…} value` samples with escaped label values,
/// every sample belonging to a declared family.
pub fn parse_prometheus_text(text: &str) -> Result<Metrics, String> {
    let mut metrics = Metrics::default();
    for (n, line) in text.lines().enumerate() {
        let fail = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(fail("unknown metric type"));
                    }
                    metrics.types.insert(name.to_string(), kind.to_string());
                }
                (Some("HELP"), Some(_), _) => {}
                _ => return Err(fail("malformed comment")),
            }
            continue;
        }
        let sample = parse_sample(line).map_err(|e| fail(&e))?;
        let family_declared = metrics.types.keys().any(|family| {
            sample.name == *family
                || ["_total", "_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| sample.name == format!("{family}{suffix}"))
        });
        if !family_declared {
            return Err(fail("sample without a # TYPE line"));
        }
        metrics.samples.push(sample);
    }
    Ok(metrics)
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    let valid_name = name
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()));
    if name.is_empty() || !valid_name {
        return Err("invalid metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        loop {
            let Some(&(i, c)) = chars.peek() else {
                return Err("unterminated labels".into());
            };
            if c == '}' {
                rest = &body[i + 1..];
                break;
            }
            let key_start = i;
            while chars.peek().is_some_and(|(_, c)| *c != '=') {
                chars.next();
            }
            let (eq, _) = chars.next().ok_or("label without value")?;
            let key = body[key_start..eq].to_string();
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")?.1 {
                    '\\' => match chars.next().ok_or("dangling escape")?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        _ => return Err("invalid escape".into()),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.insert(key, value);
            if chars.peek().map(|(_, c)| *c) == Some(',') {
                chars.next();
            }
        }
    }
    let value_text = rest.trim().split(' ').next().ok_or("no value")?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("invalid value {v:?}"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Path of the helm binary the testenv builds (`tests/testenv/versions.sh`).
pub fn helm_path() -> PathBuf {
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg("source tests/testenv/versions.sh && tests/testenv/build.sh helm >&2 && echo \"$TESTENV_CACHE/bin/helm-$HELM_VERSION\"")
        .current_dir(support::repo_root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Runs helm with `args` against the test control plane; returns (success, stdout, stderr).
pub async fn helm(args: &[&str]) -> (bool, String, String) {
    let mut child = Command::new(helm_path())
        .args(args)
        .env("KUBECONFIG", support::kubeconfig_path())
        .current_dir(support::repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (_, _, status) = tokio::join!(
        stdout.read_to_string(&mut out),
        stderr.read_to_string(&mut err),
        child.wait()
    );
    (status.unwrap().success(), out, err)
}

/// Path of the chart.
pub const CHART: &str = "charts/centralauth-operator";

#[test]
fn the_parser_refuses_malformed_text() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\\\"q\",j=\"2\"} 3\n";
    let parsed = parse_prometheus_text(ok).unwrap();
    assert_eq!(parsed.value("a_total", &[("k", "v\"q")]), Some(3.0));
    for bad in [
        "a_total 1\n",
        "# TYPE a counter\na{k=v} 1\n",
        "# TYPE a counter\na{k=\"v\" 1\n",
        "# TYPE a counter\na x\n",
        "# TYPE a countr\n",
    ] {
        assert!(parse_prometheus_text(bad).is_err(), "{bad:?} was accepted");
    }
}

/// A dynamic API handle for a `centralauth.io/v1alpha1` kind in `ns`.
pub fn centralauth_api(client: &kube::Client, ns: &str, kind: &str) -> kube::Api<kube::api::DynamicObject> {
    let gvk = kube::core::GroupVersionKind::gvk("centralauth.io", "v1alpha1", kind);
    kube::Api::namespaced_with(client.clone(), ns, &kube::core::ApiResource::from_gvk(&gvk))
}

/// Creates Organization `acme` with `spec` and an `Immediate` ClientSecret `acme-1` in `ns`,
/// waits (up to 30 s) until the operator under test has activated it, and returns the client ID
/// and the secret as an app reads them (`status.clientId`, the Secret's `client_secret`).
/// `None` when it never became active.
pub async fn activated_organization(
    client: &kube::Client,
    ns: &str,
    spec: serde_json::Value,
) -> Option<(String, String)> {
    use kube::api::{DynamicObject, PostParams};
    let orgs = centralauth_api(client, ns, "Organization");
    for (api, object) in [
        (
            orgs.clone(),
            serde_json::json!({"apiVersion": "centralauth.io/v1alpha1", "kind": "Organization",
                               "metadata": {"name": "acme"}, "spec": spec}),
        ),
        (
            centralauth_api(client, ns, "ClientSecret"),
            serde_json::json!({"apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret", "metadata": {"name": "acme-1"},
                               "spec": {"organizationRef": {"name": "acme"}, "activation": "Immediate"}}),
        ),
    ] {
        let object: DynamicObject = serde_json::from_value(object).unwrap();
        api.create(&PostParams::default(), &object).await.unwrap();
    }
    let client_id = support::wait_until(Duration::from_secs(30), || async {
        let org = orgs.get("acme").await.ok()?;
        (org.data["status"]["activeSecret"]["name"] == "acme-1").then_some(())?;
        org.data["status"]["clientId"].as_str().map(String::from)
    })
    .await?;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client.clone(), ns);
    let data = secrets.get("acme-1").await.unwrap().data.unwrap();
    Some((client_id, String::from_utf8(data["client_secret"].0.clone()).unwrap()))
}
