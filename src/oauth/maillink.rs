//! One-time e-mail links and number challenges (`loginMethods.email.attemptType: Link |
//! Challenge`), bound to one login (the browser flow that asked for them).
//!
//! Store layout (each value lives `ttl`, [`LINK_TTL`] by default; no secret is in any key or value):
//! - `mail-attempt:<sha256(login ID)>` → `{email, kind, shown}`: what the starting page shows
//!   (the short token of a link, the number of a challenge). Taking it atomically is what
//!   uses the attempt up: of all its links only the first one opened does anything.
//! - `mail-link:<sha256(link secret)>` → `{attempt, action}`: one per link of the e-mail (the
//!   secret, 256 random bits, is only in the e-mail). `attempt` is the SHA-256 of the login ID,
//!   which is also the key of the pending login (`login:<attempt>`).
//! - `mail-ok:<sha256(login ID)>` → the address: the user confirmed from the e-mail that the
//!   login continues on the device that started it; that device's next look takes it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::oauth::grant::random_bytes;
use crate::store::{Store, StoreResult, hashed, json};

/// How long a link or challenge works.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// Characters of the short token: no 0/O, 1/I/L look-alikes (31 of them; a byte's low five
/// bits pick one, 31 is drawn again).
const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Length of the short token.
pub const TOKEN_LEN: usize = 6;

/// What the e-mail carries (the organization's `attemptType`, but `Code` is [`super::otp`]).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A link for this device and one for the starting device, and a short token.
    Link,
    /// Three numbers, one of them right.
    Challenge,
}

/// A pending link or challenge, as stored.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Attempt {
    /// The address the e-mail went to.
    pub email: String,
    /// `Link` or `Challenge`.
    pub kind: Kind,
    /// What the starting page shows: the short token, or the number to click.
    pub shown: String,
    /// Random per e-mail: links of an earlier e-mail of the same login (perhaps to another
    /// address) do not open this one.
    nonce: String,
}

/// What opening a link does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Logs in on the device that opens it.
    Here,
    /// Completes the login on the device that started it.
    There,
    /// A wrong number of a challenge: burns the attempt.
    Wrong,
}

#[derive(Serialize, Deserialize)]
struct Link {
    attempt: String,
    nonce: String,
    action: Action,
    kind: Kind,
}

/// A freshly issued attempt: what to show, and the link secrets to e-mail with their labels
/// (the token for `Here`/`There`, each number of a challenge).
pub struct Issued {
    /// The short token or the right number.
    pub shown: String,
    /// `(label, action, secret)` of each link, in the e-mail's order.
    pub links: Vec<(String, Action, String)>,
}

/// What opening a link found.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// Unknown, expired or already used.
    Gone,
    /// A wrong number: the attempt is burned.
    Burned,
    /// Log in here: the pending login is `login:<attempt>` (its store key).
    Here {
        /// The store key of the pending login.
        login_key: String,
        /// The address.
        email: String,
    },
    /// The starting device completes.
    There,
}

fn attempt_key(attempt: &str) -> String {
    format!("mail-attempt:{attempt}")
}

fn link_key(secret: &str) -> String {
    format!("mail-link:{}", hashed(secret))
}

fn ok_key(attempt: &str) -> String {
    format!("mail-ok:{attempt}")
}

/// A short token of [`TOKEN_LEN`] characters from the OS CSPRNG (30 bits), for the user to
/// compare the page with the e-mail; not a secret.
pub fn short_token() -> String {
    let mut out = String::with_capacity(TOKEN_LEN);
    while out.len() < TOKEN_LEN {
        let b = random_bytes::<1>()[0] & 31;
        if let Some(c) = TOKEN_ALPHABET.get(b as usize) {
            out.push(*c as char);
        }
    }
    out
}

/// Three distinct numbers 10–99 (uniform, rejection sampling) and the index of the right one.
pub fn challenge_numbers() -> ([u8; 3], usize) {
    let mut numbers = [0u8; 3];
    let mut n = 0;
    while n < 3 {
        let b = random_bytes::<1>()[0];
        if b >= 180 {
            continue; // 180 = 2 × 90: uniform over 0..90 below it
        }
        let candidate = 10 + b % 90;
        if !numbers[..n].contains(&candidate) {
            numbers[n] = candidate;
            n += 1;
        }
    }
    let right = loop {
        let b = random_bytes::<1>()[0];
        if b < 255 {
            break (b % 3) as usize;
        }
    };
    (numbers, right)
}

/// Stores a fresh attempt of `kind` for `login_id` to `email` (replacing any pending one) and
/// returns what to show and e-mail; the secrets are then forgotten.
pub async fn issue(store: &dyn Store, login_id: &str, email: &str, kind: Kind, ttl: Duration) -> StoreResult<Issued> {
    let attempt = hashed(login_id);
    let nonce = crate::oauth::grant::random_token();
    let (shown, links): (String, Vec<(String, Action, String)>) = match kind {
        Kind::Challenge => {
            let (numbers, right) = challenge_numbers();
            let links = numbers
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let action = if i == right { Action::There } else { Action::Wrong };
                    (n.to_string(), action, crate::oauth::grant::random_token())
                })
                .collect();
            (numbers[right].to_string(), links)
        }
        Kind::Link => {
            let token = short_token();
            let links = [Action::Here, Action::There]
                .into_iter()
                .map(|a| (token.clone(), a, crate::oauth::grant::random_token()))
                .collect();
            (token, links)
        }
    };
    for (_, action, secret) in &links {
        let link = Link {
            attempt: attempt.clone(),
            nonce: nonce.clone(),
            action: *action,
            kind,
        };
        json::put(store, &link_key(secret), &link, ttl).await?;
    }
    let stored = Attempt {
        email: email.to_string(),
        kind,
        shown: shown.clone(),
        nonce,
    };
    store.delete(&ok_key(&attempt)).await?;
    json::put(store, &attempt_key(&attempt), &stored, ttl).await?;
    Ok(Issued { shown, links })
}

/// The pending attempt of `login_id`, if any.
pub async fn pending(store: &dyn Store, login_id: &str) -> StoreResult<Option<Attempt>> {
    json::get(store, &attempt_key(&hashed(login_id))).await
}

/// Withdraws the attempt of `login_id` (its e-mail could not be sent).
pub async fn withdraw(store: &dyn Store, login_id: &str) -> StoreResult<()> {
    store.delete(&attempt_key(&hashed(login_id))).await
}

/// The kind of link `secret` (to label its confirmation page), if it still works.
pub async fn peek(store: &dyn Store, secret: &str) -> StoreResult<Option<(Kind, Action)>> {
    let link: Option<Link> = json::get(store, &link_key(secret)).await?;
    Ok(link.map(|l| (l.kind, l.action)))
}

/// Opens link `secret`: uses the attempt up (atomically: of concurrent opens one wins).
pub async fn open(store: &dyn Store, secret: &str) -> StoreResult<Opened> {
    let Some(link) = json::take::<Link>(store, &link_key(secret)).await? else {
        return Ok(Opened::Gone);
    };
    // Only the e-mail's own attempt: a link of an earlier e-mail of this login must neither
    // complete nor use up the current one (it may have gone to another address).
    let key = attempt_key(&link.attempt);
    let current: Option<Attempt> = json::get(store, &key).await?;
    if current.is_none_or(|a| a.nonce != link.nonce) {
        return Ok(Opened::Gone);
    }
    let Some(attempt) = json::take::<Attempt>(store, &key).await? else {
        return Ok(Opened::Gone);
    };
    if attempt.nonce != link.nonce {
        return Ok(Opened::Gone); // replaced between the two reads: that e-mail must be asked again
    }
    Ok(match link.action {
        Action::Wrong => Opened::Burned,
        Action::Here => Opened::Here {
            login_key: format!("login:{}", link.attempt),
            email: attempt.email,
        },
        Action::There => {
            json::put(store, &ok_key(&link.attempt), &attempt.email, LINK_TTL).await?;
            Opened::There
        }
    })
}

/// The address confirmed from the e-mail for `login_id`, taken (once).
pub async fn confirmed(store: &dyn Store, login_id: &str) -> StoreResult<Option<String>> {
    json::take(store, &ok_key(&hashed(login_id))).await
}

/// Whether the starting device's login was confirmed (without taking it).
pub async fn is_confirmed(store: &dyn Store, login_id: &str) -> StoreResult<bool> {
    Ok(json::get::<String>(store, &ok_key(&hashed(login_id))).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tokens_use_the_unambiguous_alphabet() {
        let tokens: Vec<String> = (0..200).map(|_| short_token()).collect();
        for t in &tokens {
            assert_eq!(t.len(), TOKEN_LEN);
            assert!(t.bytes().all(|b| TOKEN_ALPHABET.contains(&b)), "{t}");
        }
        let distinct: std::collections::HashSet<_> = tokens.iter().collect();
        assert!(distinct.len() > 195, "tokens repeat: {}", distinct.len());
    }

    #[test]
    fn challenge_numbers_are_three_distinct_two_digit_numbers() {
        let mut right_seen = [0; 3];
        for _ in 0..300 {
            let (n, right) = challenge_numbers();
            assert!(n.iter().all(|x| (10..=99).contains(x)), "{n:?}");
            assert!(n[0] != n[1] && n[1] != n[2] && n[0] != n[2], "{n:?}");
            right_seen[right] += 1;
        }
        assert!(
            right_seen.iter().all(|c| *c > 50),
            "the right number's place is skewed: {right_seen:?}"
        );
    }

    #[tokio::test]
    async fn a_link_works_once_and_a_wrong_number_burns_the_challenge() {
        use crate::store::memory::MemoryStore;
        let store = MemoryStore::new();
        let issued = issue(&store, "login-1", "ann@example.com", Kind::Link, LINK_TTL)
            .await
            .unwrap();
        assert_eq!(issued.links.len(), 2);
        let (_, _, there) = &issued.links[1];
        assert_eq!(open(&store, there).await.unwrap(), Opened::There);
        assert_eq!(open(&store, there).await.unwrap(), Opened::Gone, "used");
        assert_eq!(
            open(&store, &issued.links[0].2).await.unwrap(),
            Opened::Gone,
            "its sibling too"
        );
        assert_eq!(
            confirmed(&store, "login-1").await.unwrap().as_deref(),
            Some("ann@example.com")
        );
        assert_eq!(confirmed(&store, "login-1").await.unwrap(), None, "taken once");

        let issued = issue(&store, "login-2", "bo@example.com", Kind::Challenge, LINK_TTL)
            .await
            .unwrap();
        let numbers: Vec<&str> = issued.links.iter().map(|(n, _, _)| n.as_str()).collect();
        assert!(numbers.contains(&issued.shown.as_str()), "{numbers:?}");
        let wrong = issued.links.iter().find(|(n, _, _)| *n != issued.shown).unwrap();
        let right = issued.links.iter().find(|(n, _, _)| *n == issued.shown).unwrap();
        assert_eq!(open(&store, &wrong.2).await.unwrap(), Opened::Burned);
        assert_eq!(open(&store, &right.2).await.unwrap(), Opened::Gone, "burned");
        assert_eq!(confirmed(&store, "login-2").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_link_of_an_earlier_email_does_not_open_the_current_attempt() {
        use crate::store::memory::MemoryStore;
        let store = MemoryStore::new();
        let first = issue(&store, "login-3", "mallory@example.com", Kind::Link, LINK_TTL)
            .await
            .unwrap();
        let second = issue(&store, "login-3", "victim@example.com", Kind::Link, LINK_TTL)
            .await
            .unwrap();
        assert_eq!(open(&store, &first.links[1].2).await.unwrap(), Opened::Gone);
        assert_eq!(confirmed(&store, "login-3").await.unwrap(), None);
        assert_eq!(open(&store, &second.links[1].2).await.unwrap(), Opened::There);
        assert_eq!(
            confirmed(&store, "login-3").await.unwrap().as_deref(),
            Some("victim@example.com")
        );
    }

    #[test]
    fn link_keys_hold_only_the_hash_of_the_secret() {
        let secret = crate::oauth::grant::random_token();
        let key = link_key(&secret);
        assert!(!key.contains(&secret));
        assert_eq!(key, format!("mail-link:{}", hashed(&secret)));
    }
}
