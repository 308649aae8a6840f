//! Failure counters, kept in the store so every replica sees the same ones.
//!
//! Every counter belongs to one organization (its UID, the *tenant*), so no tenant's traffic
//! moves another tenant's counters: fifty wrong passwords for `ann@example.org` at one
//! organization say nothing about `ann@example.org` at another, and a NAT shared by two
//! tenants' users is two counters. Inside a tenant an attempt is counted either
//!
//! - **untrusted**: per subject (a client ID, an e-mail address) and per client address, or
//! - **by device**: per device cookie only ([`crate::oauth::device`]), for a browser that
//!   already logged this account in. Strangers cannot hold that cookie, so their failures
//!   never lock out a browser the user has used before (OWASP's device-cookie pattern), and
//!   a stolen cookie is limited on its own counter.
//!
//! What a counter over its limit does is the caller's business: client authentication only
//! slows uncached verifications down ([`crate::oauth::client_auth`]), logins and e-mail codes
//! refuse the attempt.

use std::net::IpAddr;
use std::time::Duration;

use crate::store::{Store, StoreResult, hashed};

/// Limits of the failure counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Failures allowed per subject (client ID or account) — or per device cookie — in one
    /// window.
    pub per_subject: u64,
    /// Failures allowed per client address in one window.
    pub per_address: u64,
    /// Length of the window.
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_subject: 50,
            per_address: 30,
            window: Duration::from_secs(300),
        }
    }
}

/// A family of counters: the name of its per-subject counters and of its per-address ones
/// (families may share an address counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    subject: &'static str,
    address: &'static str,
}

/// Refused passkey assertions (per credential ID and per address; the address counter is the
/// one password and code failures count in).
pub const PASSKEY: Tally = Tally {
    subject: "passkey",
    address: "addr",
};

/// Failed client authentications (per client ID; address counter shared with logins).
pub const CLIENT: Tally = Tally {
    subject: "client",
    address: "addr",
};
/// Failed password logins (per account; address counter shared with client authentication).
pub const LOGIN: Tally = Tally {
    subject: "login",
    address: "addr",
};
/// Wrong e-mail codes (per account; address counter shared with passwords and secrets).
pub const EMAIL_CODE: Tally = Tally {
    subject: "email-code",
    address: "addr",
};
/// Code e-mails sent (per account and per client address; not failures, but limited alike).
pub const CODE_SENDS: Tally = Tally {
    subject: "code-sends",
    address: "code-sends-addr",
};

impl Tally {
    /// The counters of an attempt by anyone on `subject` from `addr`, in organization `tenant`.
    pub fn untrusted(self, limits: Limits, tenant: &str, subject: &str, addr: IpAddr) -> Counters {
        let by_subject = format!("throttle:{}:{tenant}:{}", self.subject, hashed(subject));
        let by_address = format!("throttle:{}:{tenant}:{addr}", self.address);
        Counters::new(
            limits,
            vec![(by_subject, limits.per_subject), (by_address, limits.per_address)],
        )
    }

    /// The counter of an attempt from a browser holding the device cookie `device` of the
    /// account, in organization `tenant`.
    pub fn device(self, limits: Limits, tenant: &str, device: &str) -> Counters {
        let by_device = format!("throttle:{}:{tenant}:device:{}", self.subject, hashed(device));
        Counters::new(limits, vec![(by_device, limits.per_subject)])
    }
}

/// The counters one attempt is counted in, with their limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    keys: Vec<(String, u64)>,
    window: Duration,
}

impl Counters {
    fn new(limits: Limits, keys: Vec<(String, u64)>) -> Counters {
        Counters {
            keys,
            window: limits.window,
        }
    }

    /// Whether any of the counters has reached its limit.
    pub async fn over(&self, store: &dyn Store) -> StoreResult<bool> {
        for (key, limit) in &self.keys {
            let count = store
                .get(key)
                .await?
                .and_then(|b| String::from_utf8(b).ok()?.parse::<u64>().ok())
                .unwrap_or(0);
            if count >= *limit {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Counts one failure (or one send) in every counter.
    pub async fn record(&self, store: &dyn Store) -> StoreResult<()> {
        for (key, _) in &self.keys {
            store.incr(key, self.window).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    const LIMITS: Limits = Limits {
        per_subject: 3,
        per_address: 5,
        window: Duration::from_secs(60),
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn per_subject_and_per_address_within_one_tenant() {
        let store = MemoryStore::new();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        for _ in 0..3 {
            let c = LOGIN.untrusted(LIMITS, "org-1", "ann@example.org", a);
            assert!(!c.over(&store).await.unwrap());
            c.record(&store).await.unwrap();
        }
        let ann_from_b = LOGIN.untrusted(LIMITS, "org-1", "ann@example.org", b);
        assert!(ann_from_b.over(&store).await.unwrap(), "per account, any address");
        let bo_from_b = LOGIN.untrusted(LIMITS, "org-1", "bo@example.org", b);
        assert!(!bo_from_b.over(&store).await.unwrap());
        for who in ["c@example.org", "d@example.org"] {
            LOGIN.untrusted(LIMITS, "org-1", who, a).record(&store).await.unwrap();
        }
        let e_from_a = LOGIN.untrusted(LIMITS, "org-1", "e@example.org", a);
        assert!(e_from_a.over(&store).await.unwrap(), "per address, any account");
    }

    #[tokio::test]
    async fn no_counter_crosses_tenants_and_devices_count_alone() {
        let store = MemoryStore::new();
        let a = ip("10.0.0.1");
        for _ in 0..5 {
            LOGIN
                .untrusted(LIMITS, "org-b", "ann@example.org", a)
                .record(&store)
                .await
                .unwrap();
        }
        let at_b = LOGIN.untrusted(LIMITS, "org-b", "ann@example.org", a);
        assert!(at_b.over(&store).await.unwrap());
        let at_c = LOGIN.untrusted(LIMITS, "org-c", "ann@example.org", a);
        assert!(
            !at_c.over(&store).await.unwrap(),
            "same account and address at another tenant"
        );
        let device = LOGIN.device(LIMITS, "org-b", "device-1");
        assert!(
            !device.over(&store).await.unwrap(),
            "a device of the account is not locked out"
        );
        for _ in 0..3 {
            device.record(&store).await.unwrap();
        }
        assert!(device.over(&store).await.unwrap(), "but has a limit of its own");
        assert!(!LOGIN.device(LIMITS, "org-b", "device-2").over(&store).await.unwrap());
        assert!(
            !CLIENT
                .untrusted(LIMITS, "org-b", "ann@example.org", ip("10.0.0.9"))
                .over(&store)
                .await
                .unwrap(),
            "families keep their own subject counters"
        );
    }
}
