//! The lifecycle decision, as pure functions: given what the organization's record says and
//! what the ClientSecret's status and its Secret's markers say, what must happen next.
//!
//! The Organization's `status.activeSecret` is the single record of activation. The phases of
//! the ClientSecrets follow it:
//! - a revoked secret (status or marker) stays Revoked; if the record still names it (a
//!   restored backup, a split brain) the record is cleared — fail closed;
//! - a Retiring secret is revoked once its grace period passed and the rollout of the active
//!   secret's workloads completed; the record naming it is cleared as above;
//! - the secret the record names is Active: its activation is completed (others demoted, its
//!   own status marked) — after a crash anywhere in an activation, this finishes it;
//! - a secret that was Active but is no longer named steps down (Retiring or Revoked), unless
//!   the record is empty (a wiped Organization status), in which case it records itself again;
//! - everything else is Pending, and activation is whatever its mode asks for.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::secret::Markers;
use crate::crd::ClientSecretPhase;

/// Whom the Organization's record names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    /// This ClientSecret (name and UID).
    Me,
    /// Another ClientSecret.
    Other,
    /// Nobody.
    Nobody,
}

/// What the decision is made from, read under the organization's lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The phase in the ClientSecret's status, if any.
    pub status_phase: Option<ClientSecretPhase>,
    /// Milestones from the status and the owned Secret's annotations.
    pub markers: Markers,
    /// Whom the record names.
    pub named: Named,
    /// The secret was generated for an Organization of the same name that has since been
    /// deleted and recreated.
    pub org_replaced: bool,
}

/// The next lifecycle step of one ClientSecret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Revoked: keep it so (and clear the record if it names this secret).
    SettleRevoked,
    /// Generated for an Organization that no longer exists: revoke.
    RevokeOrgReplaced,
    /// Retiring: revoke when due (and clear the record if it names this secret).
    Retire,
    /// Named by the record: complete the activation.
    CompleteActivation,
    /// Was Active and the record is empty: record it again.
    Reclaim,
    /// Was Active and the record names another: step down.
    Resign,
    /// Never activated.
    Pending,
}

impl Facts {
    fn revoked(&self) -> bool {
        self.status_phase == Some(ClientSecretPhase::Revoked) || self.markers.revoked_at.is_some()
    }

    fn retiring(&self) -> bool {
        self.status_phase == Some(ClientSecretPhase::Retiring) || self.markers.retired_at.is_some()
    }

    fn was_activated(&self) -> bool {
        self.status_phase == Some(ClientSecretPhase::Active) || self.markers.activated_at.is_some()
    }
}

/// The next step for a ClientSecret with these facts.
pub fn decide(facts: &Facts) -> Step {
    if facts.revoked() {
        Step::SettleRevoked
    } else if facts.org_replaced {
        Step::RevokeOrgReplaced
    } else if facts.retiring() {
        Step::Retire
    } else if facts.named == Named::Me {
        Step::CompleteActivation
    } else if facts.was_activated() {
        match facts.named {
            Named::Nobody => Step::Reclaim,
            _ => Step::Resign,
        }
    } else {
        Step::Pending
    }
}

/// Where a replaced secret goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Demotion {
    /// Still accepted for a while.
    Retire,
    /// Refused from now on.
    Revoke,
}

/// A replaced secret is revoked at once when the organization has no grace period and the new
/// secret does not wait for a rollout; otherwise it is Retiring.
pub fn demotion(grace: Duration, successor_waits_for_rollout: bool) -> Demotion {
    if grace.is_zero() && !successor_waits_for_rollout {
        Demotion::Revoke
    } else {
        Demotion::Retire
    }
}

/// Whether a Retiring secret is due for revocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retirement {
    /// Grace passed and rollouts complete: revoke now.
    Due,
    /// The grace period ends at this time (rollouts may be pending too).
    WaitUntil(Timestamp),
    /// Grace passed; the active secret's workloads are still rolling out.
    WaitForRollout,
}

/// When a secret Retiring since `retired_at` may be revoked.
pub fn retirement(retired_at: Timestamp, grace: Duration, now: Timestamp, rollouts_complete: bool) -> Retirement {
    let deadline = deadline(retired_at, grace);
    if now < deadline {
        Retirement::WaitUntil(deadline)
    } else if !rollouts_complete {
        Retirement::WaitForRollout
    } else {
        Retirement::Due
    }
}

/// End of the grace period of a secret Retiring since `retired_at`.
pub fn deadline(retired_at: Timestamp, grace: Duration) -> Timestamp {
    let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
    retired_at.checked_add(grace).unwrap_or(Timestamp::MAX)
}

/// Parses a grace period as the schema admits it (`0s`, `90s`, `1h30m`); `None` when malformed.
pub fn parse_grace(value: &str) -> Option<Duration> {
    let parsed: kube::core::Duration = value.parse().ok()?;
    (!parsed.is_negative()).then(|| parsed.into())
}

/// Now, rounded up to the whole second: status timestamps have second precision, and a grace
/// period measured from a rounded-up start never ends early.
pub fn now() -> Timestamp {
    let now = Timestamp::now();
    let secs = now.as_second() + i64::from(now.subsec_nanosecond() > 0);
    Timestamp::from_second(secs).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClientSecretPhase::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn facts(phase: Option<ClientSecretPhase>, markers: Markers, named: Named) -> Facts {
        Facts {
            status_phase: phase,
            markers,
            named,
            org_replaced: false,
        }
    }

    fn marked(activated: bool, retired: bool, revoked: bool) -> Markers {
        let t = Some(ts("2030-01-01T00:00:00Z"));
        Markers {
            activated_at: t.filter(|_| activated),
            retired_at: t.filter(|_| retired),
            revoked_at: t.filter(|_| revoked),
        }
    }

    #[test]
    fn the_record_decides_who_is_active() {
        let none = Markers::default();
        assert_eq!(decide(&facts(None, none.clone(), Named::Me)), Step::CompleteActivation);
        assert_eq!(
            decide(&facts(Some(Pending), none.clone(), Named::Me)),
            Step::CompleteActivation
        );
        assert_eq!(
            decide(&facts(Some(Active), none.clone(), Named::Me)),
            Step::CompleteActivation
        );
        assert_eq!(decide(&facts(Some(Active), none.clone(), Named::Other)), Step::Resign);
        assert_eq!(decide(&facts(Some(Active), none.clone(), Named::Nobody)), Step::Reclaim);
        assert_eq!(decide(&facts(Some(Pending), none.clone(), Named::Other)), Step::Pending);
        assert_eq!(decide(&facts(None, none, Named::Nobody)), Step::Pending);
    }

    #[test]
    fn a_wiped_status_is_recovered_from_the_markers() {
        // Status gone; the Secret says it was activated and replaced: never Pending again.
        assert_eq!(
            decide(&facts(None, marked(true, true, false), Named::Other)),
            Step::Retire
        );
        assert_eq!(
            decide(&facts(None, marked(true, true, true), Named::Other)),
            Step::SettleRevoked
        );
        assert_eq!(
            decide(&facts(None, marked(true, false, false), Named::Other)),
            Step::Resign
        );
        assert_eq!(
            decide(&facts(None, marked(true, false, false), Named::Nobody)),
            Step::Reclaim
        );
    }

    #[test]
    fn revoked_is_terminal_even_when_named() {
        assert_eq!(
            decide(&facts(Some(Revoked), Markers::default(), Named::Me)),
            Step::SettleRevoked
        );
        assert_eq!(
            decide(&facts(Some(Pending), marked(false, false, true), Named::Me)),
            Step::SettleRevoked
        );
        assert_eq!(
            decide(&facts(Some(Retiring), Markers::default(), Named::Me)),
            Step::Retire
        );
        let mut replaced = facts(Some(Active), Markers::default(), Named::Me);
        replaced.org_replaced = true;
        assert_eq!(decide(&replaced), Step::RevokeOrgReplaced);
    }

    #[test]
    fn demotion_revokes_at_once_only_without_grace_or_rollout() {
        assert_eq!(demotion(Duration::ZERO, false), Demotion::Revoke);
        assert_eq!(demotion(Duration::ZERO, true), Demotion::Retire);
        assert_eq!(demotion(Duration::from_secs(5), false), Demotion::Retire);
    }

    #[test]
    fn retirement_waits_for_the_later_of_grace_and_rollout() {
        let start = ts("2030-01-01T00:00:00Z");
        let grace = Duration::from_secs(60);
        let early = ts("2030-01-01T00:00:30Z");
        let late = ts("2030-01-01T00:01:00Z");
        assert_eq!(
            retirement(start, grace, early, true),
            Retirement::WaitUntil(ts("2030-01-01T00:01:00Z"))
        );
        assert_eq!(retirement(start, grace, late, false), Retirement::WaitForRollout);
        assert_eq!(retirement(start, grace, late, true), Retirement::Due);
        assert_eq!(retirement(start, Duration::ZERO, start, true), Retirement::Due);
    }

    #[test]
    fn grace_periods_parse_like_kubernetes_durations() {
        assert_eq!(parse_grace("0s"), Some(Duration::ZERO));
        assert_eq!(parse_grace("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_grace("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_grace("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_grace("soon"), None);
        assert_eq!(parse_grace("-5s"), None);
    }

    #[test]
    fn now_is_whole_seconds_not_in_the_past() {
        let before = Timestamp::now();
        let n = now();
        assert_eq!(n.subsec_nanosecond(), 0);
        assert!(n >= before.checked_sub(SignedDuration::from_secs(1)).unwrap());
        assert!(n.as_second() >= before.as_second());
    }
}
