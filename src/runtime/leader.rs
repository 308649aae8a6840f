//! Leader election on a `coordination.k8s.io/v1` Lease: only the leader runs the controllers;
//! every replica keeps its caches and serves HTTP.
//!
//! The algorithm is client-go's `leaderelection`, with the same three timings:
//! - a follower takes the lease when it is free (never held, or released by a leader that shut
//!   down), or when the holder's record has not changed for `leaseDurationSeconds` as measured
//!   on the follower's own monotonic clock (so clock skew between nodes does not matter);
//! - the leader renews every `retry_period`; if it cannot renew within `renew_deadline` of its
//!   last successful renewal (API server unreachable, partitioned, or another holder), it stops
//!   the controllers at once — before any follower may consider the lease expired, because
//!   `renew_deadline < lease_duration`;
//! - every write is an update with the lease's `resourceVersion` (optimistic concurrency), so
//!   two candidates can never both win the same transition.
//!
//! On graceful shutdown the leader stops its controllers, then releases the lease (empty
//! holder), so the next replica takes over at its next retry instead of after expiry.
//!
//! Why not `kube-lease-manager`: in its watch mode a failed renewal is logged and retried
//! without ever reporting leadership lost, so a leader cut off from the API server keeps
//! reconciling while the lease expires and another replica takes it; and its renewals are
//! patches without a `resourceVersion` precondition. Both break "losing the lease stops
//! reconciling at once".

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::crd::FIELD_MANAGER;
use crate::runtime::metrics::Metrics;

/// Where the lease lives and how leadership is timed.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Name of the Lease object.
    pub name: String,
    /// Namespace of the Lease object (the operator's own namespace).
    pub namespace: String,
    /// This replica's identity in `holderIdentity`; unique per process.
    pub identity: String,
    /// How long followers wait after the holder's last renewal before taking the lease.
    pub duration: Duration,
    /// How long the leader keeps trying to renew before it stops the controllers.
    pub renew_deadline: Duration,
    /// Interval between attempts to acquire or renew.
    pub retry_period: Duration,
}

/// Lease timings that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeaseConfigError {
    /// The three durations are not strictly ordered.
    #[error(
        "leader election needs --lease-retry-period ({retry:?}) < --lease-renew-deadline ({renew:?}) < --lease-duration ({duration:?}); the gap between the last two protects against two leaders"
    )]
    Timings {
        /// `--lease-retry-period`.
        retry: Duration,
        /// `--lease-renew-deadline`.
        renew: Duration,
        /// `--lease-duration`.
        duration: Duration,
    },
    /// The duration does not fit the Lease's whole seconds.
    #[error("--lease-duration must be whole seconds, at least 1s (got {0:?})")]
    Duration(Duration),
}

impl LeaseConfig {
    /// Checks that the timings make two simultaneous leaders impossible.
    pub fn validate(&self) -> Result<(), LeaseConfigError> {
        if self.duration.subsec_nanos() != 0 || self.duration.as_secs() == 0 {
            return Err(LeaseConfigError::Duration(self.duration));
        }
        if self.retry_period.is_zero()
            || self.retry_period >= self.renew_deadline
            || self.renew_deadline >= self.duration
        {
            return Err(LeaseConfigError::Timings {
                retry: self.retry_period,
                renew: self.renew_deadline,
                duration: self.duration,
            });
        }
        Ok(())
    }
}

/// A unique holder identity: `<pod name or host name>_<random>`. The random part makes a
/// restarted process (same pod name) a new candidate rather than a holder of its predecessor's
/// lease, and keeps two processes on one host apart.
pub fn identity(pod_name: Option<&str>) -> String {
    let base = pod_name
        .map(str::to_string)
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "centralauth-operator".to_string());
    format!("{base}_{:08x}", random_u32())
}

fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish() as u32
}

/// The last version of the lease this replica saw, and when (on its monotonic clock) it first
/// saw that version.
struct Observed {
    resource_version: Option<String>,
    at: Instant,
}

/// One candidate for the lease.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Option<Observed>,
}

/// Result of one attempt.
enum Attempt {
    Held,
    HeldByOther,
}

impl Elector {
    /// A candidate for `config.name` in `config.namespace`.
    pub fn new(client: Client, config: LeaseConfig) -> Elector {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    fn observe(&mut self, lease: &Lease) {
        let rv = lease.metadata.resource_version.clone();
        if self.observed.as_ref().is_none_or(|o| o.resource_version != rv) {
            self.observed = Some(Observed {
                resource_version: rv,
                at: Instant::now(),
            });
        }
    }

    /// Whether the record this candidate observed has not changed for the holder's lease
    /// duration.
    fn observed_expired(&self, spec: &LeaseSpec) -> bool {
        let secs = spec
            .lease_duration_seconds
            .map_or(self.config.duration.as_secs(), |s| s.max(0) as u64);
        self.observed
            .as_ref()
            .is_some_and(|o| o.at.elapsed() >= Duration::from_secs(secs))
    }

    fn our_spec(&self, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let renewing = previous.is_some_and(|p| p.holder_identity.as_deref() == Some(self.identity()));
        let previous = previous.cloned().unwrap_or_default();
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.duration.as_secs() as i32),
            renew_time: Some(now.clone()),
            acquire_time: if renewing {
                previous.acquire_time.clone()
            } else {
                Some(now)
            },
            lease_transitions: Some(previous.lease_transitions.unwrap_or(0) + i32::from(!renewing)),
            ..previous
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.our_spec(None)),
            };
            return match self.api.create(&params, &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(Attempt::Held)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::HeldByOther),
                Err(e) => Err(e),
            };
        };
        self.observe(&lease);
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        if holder.is_some_and(|h| h != self.identity()) && !self.observed_expired(&spec) {
            return Ok(Attempt::HeldByOther);
        }
        lease.spec = Some(self.our_spec(Some(&spec)));
        match self.api.replace(&self.config.name, &params, &lease).await {
            Ok(written) => {
                self.observe(&written);
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::HeldByOther),
            Err(e) => Err(e),
        }
    }

    /// The longest one acquire or renew attempt may take.
    fn attempt_timeout(&self) -> Duration {
        self.config.renew_deadline.mul_f64(ATTEMPT_TIMEOUT_FRACTION)
    }

    /// Tries until this candidate holds the lease. Returns when the winning attempt started.
    async fn acquire(&mut self) -> Instant {
        loop {
            let started = Instant::now();
            match tokio::time::timeout(self.attempt_timeout(), self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Held)) => return started,
                Ok(Ok(Attempt::HeldByOther)) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, lease = %self.config.name, "cannot read or take the leader lease; retrying")
                }
                Err(_) => {
                    tracing::warn!(lease = %self.config.name, "the API server did not answer in time; retrying the leader lease")
                }
            }
            tokio::time::sleep(jittered(self.config.retry_period)).await;
        }
    }

    /// Renews every retry period; returns as soon as leadership is lost: another holder, or no
    /// successful renewal within the renew deadline.
    async fn keep(&mut self, mut last_renewal: Instant) {
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            let deadline = last_renewal + self.config.renew_deadline;
            let started = Instant::now();
            if started >= deadline {
                return;
            }
            let attempt_ends = deadline.min(started + self.attempt_timeout());
            match tokio::time::timeout_at(attempt_ends, self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Held)) => last_renewal = started,
                Ok(Ok(Attempt::HeldByOther)) => return,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "cannot renew the leader lease; retrying until the renew deadline")
                }
                Err(_) if attempt_ends >= deadline => return,
                Err(_) => tracing::warn!("renewing the leader lease timed out; retrying until the renew deadline"),
            }
        }
    }

    /// Gives the lease up if this candidate holds it: empty holder, so a follower takes it at
    /// its next attempt. A conflict means someone else already holds it: nothing to do.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity()) {
            return Ok(());
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(Timestamp::now())),
            acquire_time: None,
            ..spec
        });
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        match self.api.replace(&self.config.name, &params, &lease).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `period` stretched by a random 0–20 %, so candidates do not retry in lockstep.
fn jittered(period: Duration) -> Duration {
    period + period.mul_f64(f64::from(random_u32() % 1000) / 5000.0)
}

/// Leadership as the election thread last reported it. `term` counts acquisitions, so a loss
/// and a re-acquisition that happen between two looks of a starved runtime are still seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Term {
    leading: bool,
    term: u64,
}

/// How the election thread ended.
#[derive(Debug)]
enum Ended {
    /// It did not hold the lease.
    NotHeld,
    /// It held the lease and gave it up.
    Released,
    /// Releasing failed (the lease expires by itself).
    Failed(String),
    /// Releasing took longer than the renew deadline.
    TimedOut,
    /// The thread could not start (no runtime or no client).
    NotStarted(String),
}

/// Runs `work` (the controllers) only while this replica holds the lease `config`, until
/// `shutdown` resolves. Losing the lease aborts `work` at once; `work` is started afresh on the
/// next acquisition. On shutdown the leader aborts `work`, waits until it is dropped, and
/// releases the lease.
///
/// The election itself runs on its own OS thread, with its own single-threaded tokio runtime
/// and its own Kubernetes client (so its own HTTP/2 connection, built from `kube`): renewals
/// never queue behind the watches, lists and reconciles of the main runtime, however loaded or
/// CPU-starved it is. Each attempt is bounded by [`ATTEMPT_TIMEOUT_FRACTION`] of the renew
/// deadline.
pub async fn lead<W, Fut>(
    kube: kube::Config,
    config: LeaseConfig,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
    work: W,
) where
    W: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let lease = format!("{}/{}", config.namespace, config.name);
    let identity = config.identity.clone();
    let renew_deadline = config.renew_deadline;
    let (state_tx, state) = watch::channel(Term::default());
    let (stop_tx, stop_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    if let Err(err) = std::thread::Builder::new()
        .name("leader-election".into())
        .spawn(move || campaign_thread(kube, config, state_tx, stop_rx, done_tx))
    {
        tracing::error!(%lease, error = %err, "cannot start the leader-election thread; controllers not started");
        return;
    }
    let leading = work_while_leading(&lease, &identity, &metrics, state, shutdown, work).await;
    // The controllers are stopped: the thread may release the lease now.
    let _ = stop_tx.send(());
    let ended = tokio::time::timeout(renew_deadline + Duration::from_secs(1), done_rx).await;
    if leading {
        metrics.set_leader(false, "released");
    }
    report_end(&lease, ended);
}

/// Runs `work` during each term `state` reports, until `shutdown` resolves or the election
/// thread goes away. Returns whether this replica was leading when `shutdown` came.
async fn work_while_leading<W, Fut>(
    lease: &str,
    identity: &str,
    metrics: &Metrics,
    mut state: watch::Receiver<Term>,
    shutdown: impl Future<Output = ()>,
    work: W,
) -> bool
where
    W: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let term = tokio::select! {
            () = &mut shutdown => return false,
            t = state.wait_for(|t| t.leading) => match t {
                Ok(t) => t.term,
                Err(_) => return false,
            },
        };
        tracing::info!(%lease, %identity, "acquired the leader lease; starting the controllers");
        metrics.set_leader(true, "acquired");
        let task = tokio::spawn(work());
        let shutting_down = tokio::select! {
            () = &mut shutdown => true,
            _ = state.wait_for(|t| !t.leading || t.term != term) => false,
        };
        task.abort();
        let _ = task.await;
        if shutting_down {
            return true;
        }
        metrics.set_leader(false, "lost");
        tracing::warn!(%lease, %identity, "lost the leader lease; controllers stopped");
    }
}

/// Logs how the election thread ended (`Err`: it did not report in time).
fn report_end(lease: &str, ended: Result<Result<Ended, oneshot::error::RecvError>, tokio::time::error::Elapsed>) {
    match ended {
        Ok(Ok(Ended::NotHeld)) => {}
        Ok(Ok(Ended::Released)) => tracing::info!(%lease, "controllers stopped; leader lease released"),
        Ok(Ok(Ended::Failed(err))) => {
            tracing::warn!(%lease, error = %err, "controllers stopped; could not release the leader lease (it expires by itself)")
        }
        Ok(Ok(Ended::TimedOut)) | Err(_) => {
            tracing::warn!(%lease, "controllers stopped; releasing the leader lease timed out (it expires by itself)")
        }
        Ok(Ok(Ended::NotStarted(err))) => {
            tracing::error!(%lease, error = %err, "the leader-election thread could not start; controllers never ran")
        }
        Ok(Err(_)) => tracing::error!(%lease, "the leader-election thread died"),
    }
}

/// Each acquire or renew attempt may take at most this fraction of the renew deadline, so a
/// stuck request leaves time for another attempt before the deadline.
pub const ATTEMPT_TIMEOUT_FRACTION: f64 = 0.5;

/// The body of the election thread: its own runtime and client, then [`campaign`].
fn campaign_thread(
    kube: kube::Config,
    config: LeaseConfig,
    state: watch::Sender<Term>,
    stop: oneshot::Receiver<()>,
    done: oneshot::Sender<Ended>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = done.send(Ended::NotStarted(err.to_string()));
            return;
        }
    };
    runtime.block_on(async move {
        match crate::runtime::kube_client::from_config(kube) {
            Ok(client) => {
                let elector = Elector::new(client, config);
                let _ = done.send(campaign(elector, state, stop).await);
            }
            Err(err) => {
                let _ = done.send(Ended::NotStarted(err.to_string()));
            }
        }
    });
}

/// Acquires, renews and (on `stop`, sent once the controllers are stopped) releases the lease,
/// reporting every change into `state`.
async fn campaign(mut elector: Elector, state: watch::Sender<Term>, mut stop: oneshot::Receiver<()>) -> Ended {
    let mut term = 0;
    loop {
        let acquired = tokio::select! {
            _ = &mut stop => return Ended::NotHeld,
            at = elector.acquire() => at,
        };
        term += 1;
        state.send_replace(Term { leading: true, term });
        let stopping = tokio::select! {
            _ = &mut stop => true,
            () = elector.keep(acquired) => false,
        };
        if !stopping {
            state.send_replace(Term { leading: false, term });
            continue;
        }
        return match tokio::time::timeout(elector.config.renew_deadline, elector.release()).await {
            Ok(Ok(())) => Ended::Released,
            Ok(Err(err)) => Ended::Failed(err.to_string()),
            Err(_) => Ended::TimedOut,
        };
    }
}

#[cfg(test)]
mod tests;
