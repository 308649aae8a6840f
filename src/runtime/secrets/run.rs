//! The follower's loop: the two Secret watches of every unit, the single reads, and the
//! periodic look at the caches, around the [`Follower`] state machine.

use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, SelectAll};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

use super::{
    FETCH_BACKOFF_MAX, FETCH_TIMEOUT, Follower, MAX_FETCHES, RESYNC, SecretRef, SecretsView, Source, StreamId, wanted,
};
use crate::runtime::cache::Caches;
use crate::runtime::pace::Pace;
use crate::runtime::scope::WatchScope;

type EventStream = Pin<Box<dyn Stream<Item = (StreamId, Result<Event<Secret>, watcher::Error>)> + Send>>;
type Fetch = Pin<Box<dyn std::future::Future<Output = (SecretRef, Option<Secret>)> + Send>>;

/// The two watches of every unit, as one stream.
fn watches(client: &Client, units: &[WatchScope]) -> SelectAll<EventStream> {
    let mut all = SelectAll::new();
    for (i, unit) in units.iter().enumerate() {
        for source in [Source::Operator, Source::User] {
            let api: Api<Secret> = unit.api(client);
            let config = source.config();
            let stream: EventStream = Box::pin(
                watcher::watcher(api, config)
                    .default_backoff()
                    .map(move |event| ((i, source), event)),
            );
            all.push(stream);
        }
    }
    all
}

/// Reads Secret `r` once, retrying (with backoff) until the API server answers.
fn fetch(client: Client, r: SecretRef) -> Fetch {
    Box::pin(async move {
        let api: Api<Secret> = Api::namespaced(client, &r.0);
        let mut backoff = Duration::from_millis(500);
        loop {
            match tokio::time::timeout(FETCH_TIMEOUT, api.get_opt(&r.1)).await {
                Ok(Ok(secret)) => return (r, secret),
                Ok(Err(err)) => {
                    tracing::warn!(namespace = %r.0, secret = %r.1, error = %err, "reading a Secret failed; retrying")
                }
                Err(_) => tracing::warn!(namespace = %r.0, secret = %r.1, "reading a Secret timed out; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(FETCH_BACKOFF_MAX);
        }
    })
}

/// The loop: waits for the caches, then applies watch events, follows cache changes every
/// [`RESYNC`], and runs the single reads the follower asks for.
pub(super) async fn follow(client: Client, caches: Caches, view: SecretsView) {
    // Name the Secrets before the watches list, so the first list keeps them (else each
    // would need a single read).
    caches.wait_until_ready().await;
    let units = caches.scope().units();
    let mut follower = Follower::new(view, units.clone());
    let mut seen = caches.generation();
    follower.follow(wanted(&caches));
    let mut pace = Pace::new(Instant::now());
    let mut events = watches(&client, &units);
    let mut fetches: FuturesUnordered<Fetch> = FuturesUnordered::new();
    let mut tick = tokio::time::interval(RESYNC);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some((id, event)) = events.next() => match event {
                Ok(event) => follower.on_event(id, event),
                Err(err) => tracing::warn!(error = %err, "watching Secrets failed; retrying"),
            },
            Some((r, secret)) = fetches.next(), if !fetches.is_empty() => follower.on_fetched(r, secret),
            _ = tick.tick() => {
                // What is wanted follows from the caches alone: recompute only after a change,
                // and paced (it is O(tenants)).
                let generation = caches.generation();
                if generation != seen && pace.ready(Instant::now()) {
                    seen = generation;
                    follower.follow(pace.run(|| wanted(&caches)));
                }
                follower.sweep(Instant::now());
            }
        }
        while follower.in_flight() < MAX_FETCHES {
            let Some(r) = follower.next_fetch() else { break };
            fetches.push(fetch(client.clone(), r));
        }
    }
}
