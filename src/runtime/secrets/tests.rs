use super::*;
use crate::controller::client_secret::secret::{CLIENT_SECRET_KEY, CLIENT_SECRET_LABEL};
use k8s_openapi::ByteString;
use kube::api::ObjectMeta;

fn secret(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            annotations: Some([("big".to_string(), "x".repeat(100))].into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn r(name: &str) -> SecretRef {
    ("ns".into(), name.into())
}

fn wanting(names: &[(&str, &[&str])]) -> Wanted {
    names
        .iter()
        .map(|(n, keys)| (r(n), keys.iter().map(|k| k.to_string()).collect()))
        .collect()
}

const USER: StreamId = (0, Source::User);
const OPERATOR: StreamId = (0, Source::Operator);

fn listed(f: &mut Follower, user: &[Secret], operator: &[Secret]) {
    for (id, list) in [(USER, user), (OPERATOR, operator)] {
        f.on_event(id, Event::Init);
        for s in list {
            f.on_event(id, Event::InitApply(s.clone()));
        }
        f.on_event(id, Event::InitDone);
    }
}

fn follower() -> (SecretsView, Follower) {
    let view = SecretsView::default();
    (
        view.clone(),
        Follower::new(view, vec![WatchScope::Namespace("ns".into())]),
    )
}

#[test]
fn keeps_only_named_secrets_and_read_keys() {
    let (view, mut f) = follower();
    f.follow(wanting(&[("users", &["users"]), ("cs-1", &[CLIENT_SECRET_KEY])]));
    let users = secret("users", &[], &[("users", "alice:x"), ("other", "y")]);
    let stranger = secret("unrelated", &[], &[("k", "v")]);
    let cs = secret(
        "cs-1",
        &[(CLIENT_SECRET_LABEL, "cs-1")],
        &[(CLIENT_SECRET_KEY, "s3"), ("issuer", "i")],
    );
    listed(&mut f, &[users, stranger], &[cs]);
    assert_eq!(view.value("ns", "users", "users").as_deref(), Some(&b"alice:x"[..]));
    assert_eq!(
        view.value("ns", "users", "other"),
        None,
        "a key the server does not read is dropped"
    );
    assert_eq!(view.value("ns", "cs-1", "issuer"), None);
    assert_eq!(view.value("ns", "cs-1", CLIENT_SECRET_KEY).as_deref(), Some(&b"s3"[..]));
    assert!(!view.holds("ns", "unrelated"), "a Secret nobody names is not held");
    assert_eq!(view.held_count(), 2);
    assert_eq!(f.next_fetch(), None, "everything named was listed");
}

#[test]
fn a_missing_secret_is_read_once_and_then_resolved() {
    let (view, mut f) = follower();
    f.follow(wanting(&[("users", &["users"])]));
    listed(&mut f, &[], &[]);
    assert!(!view.resolved(&r("users")));
    assert_eq!(f.next_fetch(), Some(r("users")));
    assert_eq!(f.next_fetch(), None, "one read per Secret");
    f.on_fetched(r("users"), None);
    assert!(view.resolved(&r("users")), "known not to exist");
    assert_eq!(view.value("ns", "users", "users"), None);
    // Created later: the watch brings it.
    f.on_event(USER, Event::Apply(secret("users", &[], &[("users", "bob:y")])));
    assert_eq!(view.value("ns", "users", "users").as_deref(), Some(&b"bob:y"[..]));
}

#[test]
fn a_secret_named_after_its_events_is_read() {
    let (view, mut f) = follower();
    listed(&mut f, &[secret("users", &[], &[("users", "a")])], &[]);
    assert!(!view.holds("ns", "users"));
    f.follow(wanting(&[("users", &["users"])]));
    assert_eq!(f.next_fetch(), Some(r("users")));
    f.on_fetched(r("users"), Some(secret("users", &[], &[("users", "a")])));
    assert_eq!(view.value("ns", "users", "users").as_deref(), Some(&b"a"[..]));
    // No longer named: forgotten.
    f.follow(Wanted::new());
    assert!(!view.holds("ns", "users"));
    assert_eq!(view.held_count(), 0);
}

/// A follower whose watches listed nothing, with a single read of the named Secret `users`
/// in flight.
fn reading_users() -> (SecretsView, Follower) {
    let (view, mut f) = follower();
    listed(&mut f, &[], &[]);
    f.follow(wanting(&[("users", &["users"])]));
    assert_eq!(f.next_fetch(), Some(r("users")));
    (view, f)
}

#[test]
fn a_read_older_than_a_watch_event_is_ignored() {
    let (view, mut f) = reading_users();
    f.on_event(USER, Event::Delete(secret("users", &[], &[])));
    f.on_fetched(r("users"), Some(secret("users", &[], &[("users", "stale")])));
    assert!(view.resolved(&r("users")));
    assert_eq!(
        view.value("ns", "users", "users"),
        None,
        "the delete came after the read"
    );
}

#[test]
fn changes_and_deletes_follow_the_watch() {
    let (view, mut f) = follower();
    f.follow(wanting(&[("smtp", &["username", "password"])]));
    listed(
        &mut f,
        &[secret("smtp", &[], &[("username", "u"), ("password", "p")])],
        &[],
    );
    f.on_event(
        USER,
        Event::Apply(secret("smtp", &[], &[("username", "u"), ("password", "q")])),
    );
    assert_eq!(view.value("ns", "smtp", "password").as_deref(), Some(&b"q"[..]));
    // Labelled by the operator: the other watch brings it, this one deletes it — in either order.
    let labelled = secret(
        "smtp",
        &[(CLIENT_SECRET_LABEL, "x")],
        &[("username", "u"), ("password", "q")],
    );
    f.on_event(OPERATOR, Event::Apply(labelled));
    f.on_event(USER, Event::Delete(secret("smtp", &[], &[])));
    assert!(view.holds("ns", "smtp"));
    f.on_event(OPERATOR, Event::Delete(secret("smtp", &[], &[])));
    assert!(!view.holds("ns", "smtp"));
    assert!(view.resolved(&r("smtp")));
}

#[test]
fn a_relist_drops_what_it_no_longer_lists() {
    let (view, mut f) = follower();
    f.follow(wanting(&[("users", &["users"])]));
    listed(&mut f, &[secret("users", &[], &[("users", "a")])], &[]);
    f.on_event(USER, Event::Init);
    f.on_event(USER, Event::InitDone);
    assert!(!view.holds("ns", "users"));
    assert_eq!(f.next_fetch(), Some(r("users")), "re-read to be sure");
}

#[test]
fn a_read_overtaken_by_an_event_that_did_not_resolve_is_repeated() {
    let (view, mut f) = reading_users();
    // Not named for a moment: the watch event that comes then resolves nothing.
    f.follow(Wanted::new());
    f.on_event(USER, Event::Apply(secret("users", &[], &[("users", "a")])));
    f.follow(wanting(&[("users", &["users"])]));
    f.on_fetched(r("users"), Some(secret("users", &[], &[("users", "old")])));
    assert!(!view.resolved(&r("users")), "the read is older than the event");
    assert_eq!(f.next_fetch(), Some(r("users")), "read again");
    f.on_fetched(r("users"), Some(secret("users", &[], &[("users", "a")])));
    assert_eq!(view.value("ns", "users", "users").as_deref(), Some(&b"a"[..]));
}

#[test]
fn other_keys_are_read_again() {
    let (view, mut f) = follower();
    f.follow(wanting(&[("users", &["users"])]));
    listed(&mut f, &[secret("users", &[], &[("users", "a"), ("alt", "b")])], &[]);
    f.follow(wanting(&[("users", &["alt"])]));
    assert!(!view.resolved(&r("users")));
    assert_eq!(f.next_fetch(), Some(r("users")));
    f.on_fetched(r("users"), Some(secret("users", &[], &[("users", "a"), ("alt", "b")])));
    assert_eq!(view.value("ns", "users", "alt").as_deref(), Some(&b"b"[..]));
    assert_eq!(view.value("ns", "users", "users"), None);
}

#[test]
fn a_named_secret_no_watch_delivered_is_read_by_the_sweep() {
    let (view, mut f) = follower();
    f.follow(wanting(&[("users", &["users"])]));
    let start = Instant::now();
    f.sweep(start);
    assert_eq!(f.next_fetch(), None, "not due yet");
    // The watches never listed: read after the long wait.
    f.sweep(start + SWEEP_AFTER);
    assert_eq!(f.next_fetch(), Some(r("users")));
    f.on_fetched(r("users"), None);
    assert!(view.resolved(&r("users")));
    f.sweep(start + SWEEP_AFTER * 3);
    assert_eq!(f.next_fetch(), None, "resolved: nothing more to read");
}

#[test]
fn the_sweep_reads_a_late_secret_ever_less_often_and_queues_it_once() {
    // Under load the watch may deliver a Secret late; reading it every few seconds, once per
    // sweep, piled up reads (and log lines) at 10,000 tenants.
    let (_view, mut f) = follower();
    f.follow(wanting(&[("users", &["users"])]));
    let start = Instant::now();
    let mut reads_at = |secs: u64| {
        f.sweep(start + Duration::from_secs(secs));
        f.named_at[&r("users")].1
    };
    // Not listed yet: first after SWEEP_AFTER (10 s), then 20, 40, 80, then every 120 s.
    let expected = [
        (9, 0),
        (10, 1),
        (29, 1),
        (30, 2),
        (70, 3),
        (149, 3),
        (150, 4),
        (270, 5),
        (389, 5),
        (390, 6),
    ];
    for (secs, reads) in expected {
        assert_eq!(reads_at(secs), reads, "at {secs} s");
    }
    assert_eq!(f.next_fetch(), Some(r("users")));
    assert_eq!(f.next_fetch(), None, "queued once, however many sweeps found it due");
}
