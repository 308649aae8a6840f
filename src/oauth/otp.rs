//! One-time login codes sent by e-mail: 5 digits, uniform over `00000`–`99999`, bound to one
//! login (the browser flow that asked for it), single-use, short-lived, and burned after
//! [`OtpPolicy::max_attempts`] wrong guesses.
//!
//! Store layout (every operation one atomic store command, so several replicas agree):
//! - `otp:<sha256(login ID)>` → `{email, mac}` for [`OtpPolicy::ttl`], where `mac` is
//!   HMAC-SHA-256 keyed with the login ID over the code. Neither the code nor the login ID is
//!   in any key or value, and the login ID (256 random bits, held by the browser) is needed to
//!   test a guess: a dump of the store cannot be brute-forced over the 100 000 codes.
//! - `otp-attempts:<sha256(login ID)>` counts guesses with `INCR` *before* comparing, so
//!   concurrent guesses can never exceed the limit.
//! - `otp-sent:<organization UID>:<sha256(email)>[:<sha256(device)>]` (cool-down between two
//!   codes to one address, `INCR`: one winner among concurrent requests) and the
//!   [`super::throttle::CODE_SENDS`] counters (codes sent per window per address and client
//!   address of the organization — or per device cookie —, counted after a successful send)
//!   throttle sending, whatever the address: every address may receive a code (see
//!   `docs/email-login.md`). A browser with the account's device cookie has a cool-down and
//!   counters of its own, so a stranger asking for codes cannot keep it from getting one.
//!
//! A guess succeeds with probability at most `max_attempts / 100 000` per code, and at most
//! [`OtpPolicy::sends`]`.per_subject × max_attempts` codes can be tried per address and
//! window; the HTTP layer also counts wrong codes per address and client in
//! [`super::throttle`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::throttle::{Counters, Limits};
use crate::store::{Store, StoreResult, hashed, json};

/// Number of digits of a code.
pub const DIGITS: usize = 5;
/// Number of distinct codes (10^5).
const SPACE: u32 = 100_000;

/// How codes are issued and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OtpPolicy {
    /// How long a code stays valid.
    pub ttl: Duration,
    /// How long an e-mailed link or challenge stays valid ([`super::maillink::LINK_TTL`]).
    pub link_ttl: Duration,
    /// Guesses allowed per code; the last wrong one burns it.
    pub max_attempts: u64,
    /// Least time between two codes sent to one address.
    pub resend_after: Duration,
    /// Codes sent per e-mail address (`per_subject`) and per client address (`per_address`)
    /// in one `window`.
    pub sends: Limits,
    /// Wrong codes per e-mail address and per client address in one `window`; over it, no
    /// code is checked until the window ends.
    pub failures: Limits,
}

impl Default for OtpPolicy {
    fn default() -> Self {
        OtpPolicy {
            ttl: Duration::from_secs(600),
            link_ttl: super::maillink::LINK_TTL,
            max_attempts: 5,
            resend_after: Duration::from_secs(30),
            sends: Limits {
                per_subject: 5,
                per_address: 20,
                window: Duration::from_secs(3600),
            },
            failures: Limits {
                per_subject: 10,
                per_address: 30,
                window: Duration::from_secs(3600),
            },
        }
    }
}

/// A pending code, as stored.
#[derive(Serialize, Deserialize)]
struct Pending {
    email: String,
    mac: String,
}

/// What a guess found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The code was right; it is used up now. The user is whoever controls `email`.
    Accepted {
        /// The address the code was sent to.
        email: String,
    },
    /// Wrong code; `attempts_left` more guesses are allowed.
    Wrong {
        /// The address the code was sent to.
        email: String,
        /// Guesses left for this code.
        attempts_left: u64,
    },
    /// Too many wrong guesses: the code is deleted; a new one must be requested.
    Burned {
        /// The address the code was sent to.
        email: String,
    },
    /// No code is pending for this login (never sent, expired, used or burned).
    Missing,
    /// The input is not 5 digits (not counted as a guess).
    Malformed,
}

/// Whether a code may be sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendGate {
    /// Go ahead.
    Allowed,
    /// A code went to this address less than [`OtpPolicy::resend_after`] ago.
    TooSoon,
    /// The address or the client used up its codes for this window.
    TooMany,
}

/// A fresh code from the OS CSPRNG, uniform over `00000`–`99999` (rejection sampling: the
/// 32-bit values above the last whole multiple of 100 000 are drawn again).
pub fn generate() -> String {
    let limit = u32::MAX - (u32::MAX % SPACE); // 42 949 × 100 000
    loop {
        let n = u32::from_be_bytes(super::grant::random_bytes::<4>());
        if n < limit {
            return format!("{:0width$}", n % SPACE, width = DIGITS);
        }
    }
}

fn pending_key(login_id: &str) -> String {
    format!("otp:{}", hashed(login_id))
}

fn attempts_key(login_id: &str) -> String {
    format!("otp-attempts:{}", hashed(login_id))
}

fn mac(login_id: &str, code: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, login_id.as_bytes());
    ring::hmac::sign(&key, code.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The code as typed, without spaces and dashes, if it is 5 ASCII digits.
fn normalize(input: &str) -> Option<String> {
    let code: String = input.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    (code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// Whether a code may be sent now: the send counters `sends` ([`super::throttle::CODE_SENDS`]
/// of the address and client, or of the device) are under their limits, and the cool-down
/// `cooldown` ([`cooldown_key`]) is not running — this call starts it, atomically, so of
/// concurrent requests for one address only one sends. Count the code with
/// [`Counters::record`] once it is sent: a failed send costs the user nothing.
pub async fn may_send(
    store: &dyn Store,
    policy: &OtpPolicy,
    sends: &Counters,
    cooldown: &str,
) -> StoreResult<SendGate> {
    if sends.over(store).await? {
        return Ok(SendGate::TooMany);
    }
    if store.incr(cooldown, policy.resend_after).await? > 1 {
        return Ok(SendGate::TooSoon);
    }
    Ok(SendGate::Allowed)
}

/// The cool-down key of codes to `email` at organization `tenant`, from a browser with the
/// account's device cookie `device` or without one.
pub fn cooldown_key(tenant: &str, email: &str, device: Option<&str>) -> String {
    match device {
        Some(d) => format!("otp-sent:{tenant}:{}:{}", hashed(email), hashed(d)),
        None => format!("otp-sent:{tenant}:{}", hashed(email)),
    }
}

/// Stores a fresh code for `login_id` (replacing any pending one and resetting its guesses)
/// and returns it, to be sent to `email` and then forgotten.
pub async fn issue(store: &dyn Store, policy: &OtpPolicy, login_id: &str, email: &str) -> StoreResult<String> {
    let code = generate();
    store.delete(&attempts_key(login_id)).await?;
    let pending = Pending {
        email: email.to_string(),
        mac: mac(login_id, &code),
    };
    json::put(store, &pending_key(login_id), &pending, policy.ttl).await?;
    Ok(code)
}

/// Withdraws the code of `login_id` and the cool-down `cooldown` after the e-mail could not
/// be sent, so the user can retry at once.
pub async fn withdraw(store: &dyn Store, login_id: &str, cooldown: &str) -> StoreResult<()> {
    store.delete(&pending_key(login_id)).await?;
    store.delete(cooldown).await
}

/// The address a pending code of `login_id` was sent to.
pub async fn pending_email(store: &dyn Store, login_id: &str) -> StoreResult<Option<String>> {
    Ok(json::get::<Pending>(store, &pending_key(login_id))
        .await?
        .map(|p| p.email))
}

/// Checks a guess for `login_id`: counts it, compares in constant time, and on success takes
/// the code (single use: of two concurrent right guesses one wins).
pub async fn verify(store: &dyn Store, policy: &OtpPolicy, login_id: &str, input: &str) -> StoreResult<Verdict> {
    let Some(code) = normalize(input) else {
        return Ok(Verdict::Malformed);
    };
    let key = pending_key(login_id);
    let Some(pending) = json::get::<Pending>(store, &key).await? else {
        return Ok(Verdict::Missing);
    };
    let attempt = store.incr(&attempts_key(login_id), policy.ttl).await?;
    let email = pending.email.clone();
    if attempt > policy.max_attempts {
        store.delete(&key).await?;
        return Ok(Verdict::Burned { email });
    }
    let guess = mac(login_id, &code);
    if !super::ct_eq(guess.as_bytes(), pending.mac.as_bytes()) {
        if attempt == policy.max_attempts {
            store.delete(&key).await?;
            return Ok(Verdict::Burned { email });
        }
        return Ok(Verdict::Wrong {
            email,
            attempts_left: policy.max_attempts - attempt,
        });
    }
    // A new code may have replaced this one since it was read: only the taken one counts.
    match json::take::<Pending>(store, &key).await? {
        Some(taken) if super::ct_eq(guess.as_bytes(), taken.mac.as_bytes()) => {
            store.delete(&attempts_key(login_id)).await?;
            Ok(Verdict::Accepted { email: taken.email })
        }
        _ => Ok(Verdict::Missing),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use std::net::IpAddr;

    use super::*;
    use crate::oauth::throttle::CODE_SENDS;
    use crate::store::MemoryStore;

    const ADDR: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn wrong(code: &str) -> String {
        format!("{:05}", (code.parse::<u32>().unwrap() + 1) % SPACE)
    }

    #[test]
    fn codes_are_five_digits_and_spread_over_the_whole_range() {
        let mut first_digit = [0u32; 10];
        for _ in 0..20_000 {
            let c = generate();
            assert_eq!(c.len(), 5);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
            first_digit[(c.as_bytes()[0] - b'0') as usize] += 1;
        }
        // Each leading digit expects 2 000 draws; 1 600..2 400 is beyond 8 standard deviations.
        assert!(first_digit.iter().all(|n| (1600..2400).contains(n)), "{first_digit:?}");
        assert_eq!(u32::MAX - (u32::MAX % SPACE), 42_949 * SPACE);
    }

    #[test]
    fn input_is_normalized() {
        assert_eq!(normalize(" 012 34 "), Some("01234".into()));
        assert_eq!(normalize("012-34"), Some("01234".into()));
        assert_eq!(normalize("1234"), None);
        assert_eq!(normalize("12a45"), None);
        assert_eq!(normalize("١٢٣٤٥"), None, "only ASCII digits");
    }

    #[tokio::test]
    async fn a_right_code_is_accepted_once() {
        let store = MemoryStore::new();
        let policy = OtpPolicy::default();
        let code = issue(&store, &policy, "login-1", "ann@example.com").await.unwrap();
        assert_eq!(
            verify(&store, &policy, "login-2", &code).await.unwrap(),
            Verdict::Missing,
            "bound to its login"
        );
        assert_eq!(
            verify(&store, &policy, "login-1", &code).await.unwrap(),
            Verdict::Accepted {
                email: "ann@example.com".into()
            }
        );
        assert_eq!(
            verify(&store, &policy, "login-1", &code).await.unwrap(),
            Verdict::Missing
        );
    }

    #[tokio::test]
    async fn wrong_guesses_are_counted_and_the_last_burns_the_code() {
        let store = MemoryStore::new();
        let policy = OtpPolicy {
            max_attempts: 3,
            ..OtpPolicy::default()
        };
        let code = issue(&store, &policy, "l", "bo@example.com").await.unwrap();
        assert_eq!(verify(&store, &policy, "l", "12").await.unwrap(), Verdict::Malformed);
        for left in [2, 1] {
            assert_eq!(
                verify(&store, &policy, "l", &wrong(&code)).await.unwrap(),
                Verdict::Wrong {
                    email: "bo@example.com".into(),
                    attempts_left: left
                }
            );
        }
        assert!(matches!(
            verify(&store, &policy, "l", &wrong(&code)).await.unwrap(),
            Verdict::Burned { .. }
        ));
        assert_eq!(verify(&store, &policy, "l", &code).await.unwrap(), Verdict::Missing);
        let fresh = issue(&store, &policy, "l", "bo@example.com").await.unwrap();
        assert!(matches!(
            verify(&store, &policy, "l", &fresh).await.unwrap(),
            Verdict::Accepted { .. }
        ));
    }

    #[tokio::test]
    async fn concurrent_guesses_never_exceed_the_limit() {
        let store = Arc::new(MemoryStore::new());
        let policy = OtpPolicy::default();
        let code = issue(store.as_ref(), &policy, "l", "cy@example.com").await.unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (store, guess) = (store.clone(), wrong(&code));
                tokio::spawn(async move { verify(store.as_ref(), &policy, "l", &guess).await.unwrap() })
            })
            .collect();
        let mut wrong_answers = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Verdict::Wrong { .. }) {
                wrong_answers += 1;
            }
        }
        assert_eq!(wrong_answers, policy.max_attempts - 1);
        assert_eq!(
            verify(store.as_ref(), &policy, "l", &code).await.unwrap(),
            Verdict::Missing
        );
    }

    #[tokio::test]
    async fn the_store_holds_neither_the_code_nor_the_login_id() {
        let store = MemoryStore::new();
        let policy = OtpPolicy::default();
        let code = issue(&store, &policy, "login-secret", "di@example.com").await.unwrap();
        let raw = store.get(&pending_key("login-secret")).await.unwrap().unwrap();
        let raw = String::from_utf8(raw).unwrap();
        assert!(!raw.contains(&code) && !raw.contains("login-secret"), "{raw}");
        assert!(!pending_key("login-secret").contains("login-secret"));
    }

    #[tokio::test]
    async fn sending_is_throttled_per_address_and_client() {
        let store = MemoryStore::new();
        let policy = OtpPolicy {
            resend_after: Duration::from_millis(30),
            sends: Limits {
                per_subject: 2,
                per_address: 3,
                window: Duration::from_secs(60),
            },
            ..OtpPolicy::default()
        };
        let send = |tenant: &'static str, email: &'static str, device: Option<&'static str>| {
            let (store, policy) = (&store, &policy);
            async move {
                let sends = match device {
                    Some(d) => CODE_SENDS.device(policy.sends, tenant, d),
                    None => CODE_SENDS.untrusted(policy.sends, tenant, email, ADDR),
                };
                let cooldown = cooldown_key(tenant, email, device);
                let gate = may_send(store, policy, &sends, &cooldown).await.unwrap();
                if gate == SendGate::Allowed {
                    sends.record(store).await.unwrap();
                }
                gate
            }
        };
        assert_eq!(send("o1", "a@example.com", None).await, SendGate::Allowed);
        assert_eq!(send("o1", "a@example.com", None).await, SendGate::TooSoon);
        withdraw(&store, "l", &cooldown_key("o1", "a@example.com", None))
            .await
            .unwrap();
        assert_eq!(
            send("o1", "a@example.com", None).await,
            SendGate::Allowed,
            "a failed send ends the cool-down"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(
            send("o1", "a@example.com", None).await,
            SendGate::TooMany,
            "per e-mail address"
        );
        assert_eq!(
            send("o1", "a@example.com", Some("dev")).await,
            SendGate::Allowed,
            "the account's own browser is not locked out by a stranger's sends"
        );
        assert_eq!(
            send("o2", "a@example.com", None).await,
            SendGate::Allowed,
            "per organization"
        );
        assert_eq!(send("o1", "b@example.com", None).await, SendGate::Allowed);
        assert_eq!(
            send("o1", "c@example.com", None).await,
            SendGate::TooMany,
            "per client address"
        );
    }
}
