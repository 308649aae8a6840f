//! The Kubernetes Secrets the request path needs, kept in memory with a constant number of
//! watches (two per watched unit, whatever the number of tenants):
//!
//! - each organization's `passwords` Secret (accounts for the password login),
//! - each organization's SMTP credentials Secret (keys `username`, `password`) and each
//!   upstream provider's client secret key (`loginMethods.providers[].clientSecretRef`), and
//! - the Secret of each ClientSecret that currently authenticates (its plaintext is the key
//!   of the JWE tokens of native apps, which send no secret: the official CentralAuth backend
//!   library decrypts every access token with its client secret, so the server must encrypt
//!   native tokens with the secret the backend holds).
//!
//! Per unit (the cluster, or each `--watch-namespace`, see [`crate::runtime::scope`]) one watch selects
//! the Secrets the operator writes for ClientSecrets (label [`CLIENT_SECRET_LABEL`]), the other
//! every other Secret (`!`[`CLIENT_SECRET_LABEL`]: user-provided passwords and SMTP
//! credentials, and older operator Secrets until the controller labels them). Both feed one
//! filter: a Secret is kept only while the caches name it, and only the keys the server reads
//! (the data map is rebuilt; metadata, annotations and managed fields are never kept). When
//! the caches start naming a Secret whose events were dropped (say, an Organization created
//! after its Secret), that one Secret is read once with a GET, in the background. No request
//! ever calls the API server.
//!
//! RBAC: `get`, `list`, `watch` on `secrets` in the namespaces of Organizations (a ClusterRole
//! when organizations live in many namespaces): RBAC cannot narrow `list`/`watch` to names
//! that change at run time.
//!
//! Readiness waits for [`SecretsView::wait_loaded`]: until every Secret the caches name has
//! been resolved (held, or known not to exist), a login with a right password would be refused
//! as a wrong one.
//!
//! Which Secrets are wanted, and which watch delivers each, is in `selection.rs` (re-exported).
//!
//! [`CLIENT_SECRET_LABEL`]: crate::controller::client_secret::secret::CLIENT_SECRET_LABEL

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::watcher::Event;
use kube::{Client, ResourceExt};
use tokio::sync::watch;

mod run;
mod selection;

pub use self::selection::{SecretRef, Source, Wanted, secret_ref, wanted};
use crate::runtime::cache::Caches;
use crate::runtime::scope::WatchScope;

/// How often the loop looks for cache changes.
pub const RESYNC: Duration = Duration::from_millis(250);
/// [`Follower::sweep`]'s wait once the unit's watches listed.
const SWEEP_AFTER_LISTED: Duration = Duration::from_secs(2);
/// [`Follower::sweep`]'s wait in any case.
const SWEEP_AFTER: Duration = Duration::from_secs(10);
/// The longest wait between sweep reads of one Secret (the wait doubles after each read that
/// left it unresolved: under load the watch may simply be late, and reads add to that load).
const SWEEP_AFTER_MAX: Duration = Duration::from_secs(120);
/// How often readiness logs what it still waits for.
const WAIT_REPORT_EVERY: Duration = Duration::from_secs(5);
/// How many single-Secret reads may be in flight at once.
const MAX_FETCHES: usize = 8;
/// How long one single-Secret read may take before it is retried.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between retries of a failed single-Secret read.
const FETCH_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The kept keys of one Secret and their values: a slice, not a map — one to three keys, where a
/// `BTreeMap` node costs ~550 bytes (heaptrack, 1,000 tenants: 1.5 of 17 MiB live heap).
type SecretData = Arc<[(Box<str>, Box<[u8]>)]>;

/// What is known of a Secret the caches name: its kept keys, or that it does not exist.
type Held = Option<SecretData>;

/// The data of the watched Secrets.
#[derive(Clone)]
pub struct SecretsView {
    /// Every named Secret that is resolved: `Some` kept keys, or `None` when it does not exist.
    data: Arc<RwLock<HashMap<SecretRef, Held>>>,
    progress: Arc<watch::Sender<Progress>>,
}

impl Default for SecretsView {
    fn default() -> Self {
        SecretsView {
            data: Arc::default(),
            progress: Arc::new(watch::Sender::new(Progress::default())),
        }
    }
}

/// How far the follower is: what [`SecretsView::wait_loaded`] waits on.
#[derive(Default)]
struct Progress {
    /// How many times the follower took in a new state of the caches.
    follows: u64,
    /// How many times a Secret was resolved or forgotten.
    changes: u64,
}

impl SecretsView {
    /// The value of `key` in Secret `namespace/name`, when it is named by the caches, present,
    /// and `key` is one the server reads from it.
    pub fn value(&self, namespace: &str, name: &str, key: &str) -> Option<Vec<u8>> {
        let data = self.data.read().unwrap_or_else(|p| p.into_inner());
        data.get(&secret_ref(namespace, name))?
            .as_ref()?
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| v.to_vec())
    }

    /// Whether any data of Secret `namespace/name` is held in memory (for tests and metrics:
    /// Secrets nobody names are never held).
    pub fn holds(&self, namespace: &str, name: &str) -> bool {
        let data = self.data.read().unwrap_or_else(|p| p.into_inner());
        matches!(data.get(&secret_ref(namespace, name)), Some(Some(_)))
    }

    /// How many Secrets are held in memory.
    pub fn held_count(&self) -> usize {
        let data = self.data.read().unwrap_or_else(|p| p.into_inner());
        data.values().filter(|h| h.is_some()).count()
    }

    fn resolve(&self, r: &SecretRef, held: Held) {
        self.data
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(r.clone(), held);
        self.progress.send_modify(|p| p.changes += 1);
    }

    fn forget(&self, r: &SecretRef) {
        let removed = self.data.write().unwrap_or_else(|p| p.into_inner()).remove(r).is_some();
        if removed {
            self.progress.send_modify(|p| p.changes += 1);
        }
    }

    fn resolved(&self, r: &SecretRef) -> bool {
        self.data.read().unwrap_or_else(|p| p.into_inner()).contains_key(r)
    }

    /// Resolves once every Secret the caches name has been resolved once (held, or known not to
    /// exist) and the follower took in the caches once: from then on the request path sees what
    /// the API server holds. Call it once the caches are ready. Secrets named later do not delay
    /// it; those no longer named are not waited for.
    pub async fn wait_loaded(&self, caches: &Caches) {
        let mut progress = self.progress.subscribe();
        // Read before the caches: any later follow of the caches is seen below.
        let mut follows = progress.borrow_and_update().follows;
        let mut needed: HashSet<SecretRef> = wanted(caches).into_keys().collect();
        loop {
            let latest = progress.borrow_and_update().follows;
            if latest != follows {
                // The follower took in newer caches: drop what they no longer name.
                follows = latest;
                let now = wanted(caches);
                needed.retain(|r| now.contains_key(r));
            }
            if follows > 0 && needed.iter().all(|r| self.resolved(r)) {
                return;
            }
            tokio::select! {
                changed = progress.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(WAIT_REPORT_EVERY) => self.report_waiting(&needed),
            }
        }
    }

    /// Logs which named Secrets readiness still waits for (names only, never data).
    fn report_waiting(&self, needed: &HashSet<SecretRef>) {
        let missing: Vec<String> = needed
            .iter()
            .filter(|r| !self.resolved(r))
            .take(5)
            .map(|(ns, name)| format!("{ns}/{name}"))
            .collect();
        tracing::info!(count = missing.len(), waiting_for = ?missing, "not ready: Secrets not read yet");
    }

    /// Starts the two watches per unit of the caches' scope, and the loop that follows the
    /// caches (once they are ready).
    pub fn start(client: Client, caches: Caches) -> SecretsView {
        let view = SecretsView::default();
        tokio::spawn(run::follow(client, caches, view.clone()));
        view
    }
}

/// One watch: its unit (index into the units) and source.
pub type StreamId = (usize, Source);

/// The keys `keys` of `secret`, nothing else.
pub fn kept(secret: &Secret, keys: &[String]) -> SecretData {
    let data = secret.data.as_ref();
    keys.iter()
        .filter_map(|k| Some((k.as_str().into(), data?.get(k)?.0.as_slice().into())))
        .collect()
}

/// The state of the loop that follows the caches: which Secrets are wanted, where their kept
/// data came from, which watches have listed, and which single reads are due. It makes no API
/// calls itself (the loop does), so it is tested without an API server.
pub struct Follower {
    view: SecretsView,
    units: Vec<WatchScope>,
    wanted: Wanted,
    /// The watch that delivered each held Secret (a delete or relist of that watch drops it).
    source: HashMap<SecretRef, Source>,
    /// Watches that finished their first list.
    listed: HashSet<StreamId>,
    /// What a watch has seen of its current (re)list.
    listing: HashMap<StreamId, HashSet<SecretRef>>,
    /// Single reads in flight, and whether a watch event came for that Secret since it started
    /// (then the read's answer is older than what the watch delivered, and is ignored).
    fetching: HashMap<SecretRef, bool>,
    /// Single reads due, oldest first, each Secret at most once.
    queue: VecDeque<SecretRef>,
    /// What `queue` holds.
    queued: HashSet<SecretRef>,
    /// When each named Secret was named (or last read by the sweep), and how many sweep reads
    /// left it unresolved since: see [`Follower::sweep`].
    named_at: HashMap<SecretRef, (Instant, u32)>,
}

impl Follower {
    /// A follower publishing into `view`, for the watch units `units`.
    pub fn new(view: SecretsView, units: Vec<WatchScope>) -> Follower {
        Follower {
            view,
            units,
            wanted: Wanted::new(),
            source: HashMap::new(),
            listed: HashSet::new(),
            listing: HashMap::new(),
            fetching: HashMap::new(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            named_at: HashMap::new(),
        }
    }

    fn unit_of(&self, namespace: &str) -> Option<usize> {
        self.units.iter().position(|u| match u {
            WatchScope::Cluster => true,
            WatchScope::Namespace(ns) => ns == namespace,
        })
    }

    /// Whether both watches of the unit of `namespace` have listed once.
    fn unit_listed(&self, namespace: &str) -> bool {
        self.unit_of(namespace)
            .is_some_and(|u| self.listed.contains(&(u, Source::Operator)) && self.listed.contains(&(u, Source::User)))
    }

    /// Takes in what the caches name now: forgets what they no longer name, and queues single
    /// reads for what they newly name (or now read other keys of) once its unit has listed.
    pub fn follow(&mut self, wanted: Wanted) {
        let old = std::mem::replace(&mut self.wanted, wanted);
        for r in old.keys().filter(|r| !self.wanted.contains_key(*r)) {
            self.view.forget(r);
            self.source.remove(r);
        }
        let changed: Vec<SecretRef> = self
            .wanted
            .iter()
            .filter(|(r, keys)| old.get(*r) != Some(*keys))
            .map(|(r, _)| r.clone())
            .collect();
        self.named_at.retain(|r, _| self.wanted.contains_key(r));
        let now = Instant::now();
        for r in changed {
            self.view.forget(&r);
            self.source.remove(&r);
            self.named_at.insert(r.clone(), (now, 0));
            self.queue_if_unresolved(r);
        }
        self.view.progress.send_modify(|p| p.follows += 1);
    }

    /// The safety net: a named Secret still unresolved [`SWEEP_AFTER_LISTED`] after it was named
    /// once its unit listed, or [`SWEEP_AFTER`] in any case, is read again: a replica must never
    /// stay unready (or refuse a right password) for a missing event. Each further read of the
    /// same Secret waits twice as long (up to [`SWEEP_AFTER_MAX`]), and one log line reports
    /// each sweep that reads anything.
    pub fn sweep(&mut self, now: Instant) {
        let due: Vec<SecretRef> = self
            .named_at
            .iter()
            .filter(|(r, (at, reads))| {
                let first = if self.unit_listed(&r.0) {
                    SWEEP_AFTER_LISTED
                } else {
                    SWEEP_AFTER
                };
                let wait = first.saturating_mul(1 << (*reads).min(16)).min(SWEEP_AFTER_MAX);
                now.duration_since(*at) >= wait && !self.view.resolved(r) && !self.fetching.contains_key(*r)
            })
            .map(|(r, _)| r.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let names: Vec<String> = due.iter().take(5).map(|(ns, name)| format!("{ns}/{name}")).collect();
        tracing::info!(count = due.len(), first = ?names, "named Secrets are still unresolved; reading them");
        for r in due {
            if let Some((at, reads)) = self.named_at.get_mut(&r) {
                (*at, *reads) = (now, *reads + 1);
            }
            self.push(r);
        }
    }

    fn queue_if_unresolved(&mut self, r: SecretRef) {
        if self.unit_listed(&r.0) && !self.view.resolved(&r) && !self.fetching.contains_key(&r) {
            self.push(r);
        }
    }

    /// Queues a single read of `r`, unless one is queued already.
    fn push(&mut self, r: SecretRef) {
        if self.queued.insert(r.clone()) {
            self.queue.push_back(r);
        }
    }

    fn keep(&mut self, secret: &Secret, from: Source) -> Option<SecretRef> {
        let r = secret_ref(secret.metadata.namespace.as_deref()?, &secret.name_any());
        if let Some(touched) = self.fetching.get_mut(&r) {
            *touched = true;
        }
        let keys = self.wanted.get(&r)?;
        self.view.resolve(&r, Some(kept(secret, keys)));
        self.source.insert(r.clone(), from);
        Some(r)
    }

    /// Applies one event of watch `id`.
    pub fn on_event(&mut self, id: StreamId, event: Event<Secret>) {
        match event {
            Event::Init => {
                self.listing.insert(id, HashSet::new());
            }
            Event::InitApply(secret) => {
                if let Some(r) = self.keep(&secret, id.1) {
                    self.listing.entry(id).or_default().insert(r);
                }
            }
            Event::Apply(secret) => {
                self.keep(&secret, id.1);
            }
            Event::Delete(secret) => self.on_delete(&secret, id.1),
            Event::InitDone => self.on_listed(id),
        }
    }

    fn on_delete(&mut self, secret: &Secret, from: Source) {
        let Some(ns) = secret.metadata.namespace.as_deref() else {
            return;
        };
        let r = secret_ref(ns, &secret.name_any());
        if let Some(touched) = self.fetching.get_mut(&r) {
            *touched = true;
        }
        // A delete from the other watch is a label change: the new watch brings it.
        if self.wanted.contains_key(&r) && self.source.get(&r).is_none_or(|s| *s == from) {
            self.view.resolve(&r, None);
            self.source.remove(&r);
        }
    }

    /// A (re)list of watch `id` is complete: what it held but did not list is gone (re-read
    /// to be sure), and once both watches of the unit listed, every named Secret not resolved
    /// is read once.
    fn on_listed(&mut self, id: StreamId) {
        let seen = self.listing.remove(&id).unwrap_or_default();
        let unit = id.0;
        let gone: Vec<SecretRef> = self
            .source
            .iter()
            .filter(|(r, s)| **s == id.1 && self.unit_of(&r.0) == Some(unit) && !seen.contains(*r))
            .map(|(r, _)| r.clone())
            .collect();
        for r in gone {
            self.source.remove(&r);
            self.view.forget(&r);
        }
        self.listed.insert(id);
        let named: Vec<SecretRef> = self
            .wanted
            .keys()
            .filter(|r| self.unit_of(&r.0) == Some(unit))
            .cloned()
            .collect();
        for r in named {
            self.queue_if_unresolved(r);
        }
    }

    /// The next single read to start, if any is due and still useful.
    pub fn next_fetch(&mut self) -> Option<SecretRef> {
        while let Some(r) = self.queue.pop_front() {
            self.queued.remove(&r);
            if self.wanted.contains_key(&r) && !self.view.resolved(&r) && !self.fetching.contains_key(&r) {
                self.fetching.insert(r.clone(), false);
                return Some(r);
            }
        }
        None
    }

    /// Applies the answer of a single read of `r` (`None`: the Secret does not exist), unless
    /// a watch event for it came in the meantime or it is no longer named.
    pub fn on_fetched(&mut self, r: SecretRef, secret: Option<Secret>) {
        let touched = self.fetching.remove(&r).unwrap_or(true);
        let Some(keys) = self.wanted.get(&r) else { return };
        if self.view.resolved(&r) {
            return;
        }
        if touched {
            // A watch event came while reading, but did not resolve it (it was not named
            // then, or came from the other watch): read again rather than wait for the next
            // event, which may never come.
            self.queue_if_unresolved(r);
            return;
        }
        match secret {
            Some(secret) => {
                self.view.resolve(&r, Some(kept(&secret, keys)));
                self.source.insert(r, Source::of(&secret));
            }
            None => self.view.resolve(&r, None),
        }
    }

    /// How many single reads are in flight.
    pub fn in_flight(&self) -> usize {
        self.fetching.len()
    }
}

#[cfg(test)]
mod tests;
