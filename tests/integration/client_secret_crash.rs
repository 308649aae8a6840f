//! Crash safety of the real binary: `centralauth-operator run` as a subprocess, SIGKILLed at a
//! random point of every one of 50 rotations and restarted each time.
//!
//! Watched continuously (every event, in the API server's order — see `Invariants`): never two
//! Active ClientSecrets in the organization, Revoked never left, no fingerprint and no Secret's
//! `client_secret` changes after it was first written, the foreign Secret is never touched.
//! At the end: every ClientSecret has exactly one Secret, the last one is Active and recorded,
//! every other one is Revoked, deleted ones left nothing behind, and no generated secret appears
//! in any ClientSecret, Organization, Event or line the operator logged over all its runs.
//!
//! The random schedule comes from `CRASH_SEED` (printed on failure) or the clock.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use centralauth_operator::crd::ClientSecretPhase;

use crate::support;
use crate::support::client_secret::{Harness, Invariants, annotate, fp, phase};

const ROTATIONS: usize = 50;

/// xorshift64*: a reproducible schedule without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The operator binary, restarted after every kill, its stderr of all runs kept.
struct Operator {
    child: Option<tokio::process::Child>,
    logs: Arc<Mutex<String>>,
    starts: usize,
    namespace: String,
}

impl Operator {
    fn new(namespace: &str) -> Operator {
        Operator {
            child: None,
            logs: Arc::default(),
            starts: 0,
            namespace: namespace.to_string(),
        }
    }

    fn start(&mut self) {
        let (public, admin) = (support::free_port(), support::free_port());
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_centralauth-operator"))
            .args(["run", "--base-domain", crate::support::client_secret::BASE_DOMAIN])
            // Its own namespace only; no lease (a killed leader's lease would delay the restart).
            .args(["--watch-namespace", &self.namespace, "--leader-elect=false"])
            .arg(format!("--listen=127.0.0.1:{public}"))
            .arg(format!("--admin-listen=127.0.0.1:{admin}"))
            .env("KUBECONFIG", support::kubeconfig_path())
            .env("RUST_LOG", "info,centralauth_operator=trace")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the operator binary");
        let stderr = child.stderr.take().unwrap();
        let logs = self.logs.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut logs = logs.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        self.child = Some(child);
        self.starts += 1;
    }

    /// SIGKILL, then wait until the process is gone.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }
}

#[tokio::test]
async fn sigkilled_operator_never_has_two_active_secrets_nor_mints_twice() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test schedule: CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let h = Harness::without_controller("cs-crash").await;
    let foreign = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("foreign".into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(
            "client_secret".to_string(),
            "someone else's".to_string(),
        )])),
        ..Default::default()
    };
    let foreign = h.secrets().create(&PostParams::default(), &foreign).await.unwrap();
    let inv = Invariants::watch(&h.client, &h.ns, &["foreign"]).await;
    h.create_org("crash", Some("crash-client-0001"), "0s", Some("crash-credentials"))
        .await;
    h.create_cs("squatter", "crash", "Immediate", json!({"secretName": "foreign"}))
        .await;

    let mut operator = Operator::new(&h.ns);
    operator.start();
    let started = Instant::now();
    let mut deleted = vec![];
    let mut killed_at = BTreeMap::new();
    for i in 0..ROTATIONS {
        let name = format!("rot-{i:02}");
        rotate(&h, &mut operator, &mut rng, &name, i, &mut killed_at)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "rotation {i} (CRASH_SEED={seed}): {e}\n--- operator log tail ---\n{}",
                    tail(&operator.logs.lock().unwrap())
                )
            });
        if i % 10 == 9 {
            // Delete an old (revoked) one mid-run: the finalizer must finish across kills too.
            let old = format!("rot-{:02}", i - 5);
            h.client_secrets().delete(&old, &DeleteParams::default()).await.unwrap();
            deleted.push(old);
        }
    }
    eprintln!(
        "{ROTATIONS} rotations, {} operator starts, {:?}",
        operator.starts,
        started.elapsed()
    );
    assert!(
        operator.starts > ROTATIONS,
        "the operator was not killed in every rotation"
    );
    eprintln!("where the kills landed: {killed_at:#?}");
    assert!(
        killed_at.len() >= 3,
        "the kills did not land at varied points: {killed_at:?}"
    );
    assert!(!killed_at.contains_key("Active, previous not demoted (impossible)"));

    let last = format!("rot-{:02}", ROTATIONS - 1);
    settle(&h, &last, &deleted)
        .await
        .unwrap_or_else(|e| panic!("CRASH_SEED={seed}: {e}"));
    operator.kill().await;
    inv.assert_clean();

    // Exactly one Secret per ClientSecret; the foreign one untouched; the squatter refused.
    let managed = h
        .secrets()
        .list(&ListParams::default().labels("centralauth.io/client-secret"))
        .await
        .unwrap();
    let mut per_cs: BTreeMap<String, usize> = BTreeMap::new();
    for s in &managed {
        *per_cs
            .entry(s.labels()["centralauth.io/client-secret"].clone())
            .or_default() += 1;
    }
    for i in 0..ROTATIONS {
        let name = format!("rot-{i:02}");
        let expected = usize::from(!deleted.contains(&name));
        assert_eq!(per_cs.get(&name).copied().unwrap_or(0), expected, "Secrets of {name}");
    }
    assert_eq!(
        h.secrets().get("foreign").await.unwrap().resource_version(),
        foreign.resource_version()
    );
    let squatter = h.client_secrets().get("squatter").await.unwrap();
    assert!(
        squatter
            .status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .any(|c| c.reason == "SecretNameTaken")
    );

    // No plaintext anywhere, including every line every run of the operator logged.
    let secrets = inv.secret_values();
    assert_eq!(secrets.len(), ROTATIONS, "one secret per rotation");
    let logs = operator.logs.lock().unwrap().clone();
    assert!(
        logs.contains("generated a client secret"),
        "the operator's log was not captured"
    );
    for s in &secrets {
        assert!(
            !logs.contains(s.as_str()),
            "a generated secret appears in the operator's log"
        );
    }
    h.assert_no_plaintext(&secrets, None).await;
}

/// One rotation: a new ClientSecret that must become Active, with a SIGKILL at a random point.
async fn rotate(
    h: &Harness,
    operator: &mut Operator,
    rng: &mut Rng,
    name: &str,
    i: usize,
    killed_at: &mut BTreeMap<&'static str, usize>,
) -> Result<(), String> {
    let manual = i % 3 == 2;
    let mode = if manual { "Manual" } else { "Immediate" };
    h.create_cs(name, "crash", mode, json!({})).await;
    // Mostly early (the mint and the activation take tens of milliseconds), sometimes later.
    let delay = if rng.below(3) == 0 {
        rng.below(900)
    } else {
        rng.below(250)
    };
    tokio::time::sleep(Duration::from_millis(delay)).await;
    operator.kill().await;
    *killed_at.entry(stage(h, name).await).or_default() += 1;
    tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
    operator.start();
    if manual {
        let generated = wait(h, name, |cs| {
            cs.status.as_ref().is_some_and(|s| s.fingerprint.is_some())
        })
        .await?;
        annotate(&h.client_secrets(), name, "centralauth.io/activate", &fp(&generated)).await;
        if rng.below(2) == 0 {
            tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
            operator.kill().await;
            *killed_at.entry(stage(h, name).await).or_default() += 1;
            operator.start();
        }
    }
    wait(h, name, |cs| phase(cs) == Some(ClientSecretPhase::Active)).await?;
    Ok(())
}

/// How far the rotation of `name` had got when the operator died.
async fn stage(h: &Harness, name: &str) -> &'static str {
    let cs = h.client_secrets().get(name).await.unwrap();
    let secret = h.secrets().get_opt(name).await.unwrap();
    let org = h.orgs().get("crash").await.unwrap();
    let recorded = org.active_secret().is_some_and(|a| a.name == name);
    let others = h.client_secrets().list(&ListParams::default()).await.unwrap().items;
    let previous_active = others
        .iter()
        .any(|c| c.name_any() != name && phase(c) == Some(ClientSecretPhase::Active));
    let generated = cs.status.as_ref().and_then(|s| s.fingerprint.as_ref()).is_some();
    match (secret.is_some(), generated, recorded, phase(&cs)) {
        (false, ..) => "before the Secret was created",
        (true, false, ..) => "Secret created, status not written",
        (true, true, false, _) => "generated, not recorded as active",
        (true, true, true, Some(ClientSecretPhase::Active)) if previous_active => {
            "Active, previous not demoted (impossible)"
        }
        (true, true, true, Some(ClientSecretPhase::Active)) => "activation complete",
        (true, true, true, _) => "recorded, status not yet Active",
    }
}

async fn wait(
    h: &Harness,
    name: &str,
    pred: impl Fn(&centralauth_operator::crd::ClientSecret) -> bool,
) -> Result<centralauth_operator::crd::ClientSecret, String> {
    let api = h.client_secrets();
    support::wait_until(Duration::from_secs(90), || async {
        api.get_opt(name).await.ok().flatten().filter(|cs| pred(cs))
    })
    .await
    .ok_or_else(|| format!("{name} did not get there in 90s"))
}

/// Waits until the last rotation is the recorded Active secret, every other one is Revoked, and
/// the deleted ones are gone with their Secrets.
async fn settle(h: &Harness, last: &str, deleted: &[String]) -> Result<(), String> {
    let done = support::wait_until(Duration::from_secs(90), || async {
        let all = h.client_secrets().list(&ListParams::default()).await.ok()?.items;
        let rotations: Vec<_> = all.iter().filter(|c| c.name_any().starts_with("rot-")).collect();
        let settled = rotations.iter().all(|c| {
            let want = if c.name_any() == last {
                ClientSecretPhase::Active
            } else {
                ClientSecretPhase::Revoked
            };
            phase(c) == Some(want)
        });
        let gone = deleted.iter().all(|d| !rotations.iter().any(|c| c.name_any() == *d));
        let org = h.orgs().get("crash").await.ok()?;
        let recorded = org.active_secret().is_some_and(|a| a.name == last);
        (settled && gone && recorded && rotations.len() == ROTATIONS - deleted.len()).then_some(())
    })
    .await;
    if done.is_none() {
        return Err(
            "the rotations did not settle (last Active and recorded, the rest Revoked, deleted ones gone)".into(),
        );
    }
    for d in deleted {
        if h.secrets().get_opt(d).await.unwrap().is_some() {
            return Err(format!("the Secret of deleted ClientSecret {d} is still there"));
        }
    }
    Ok(())
}

fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
