//! Standard `metav1.Condition` helpers shared by the three statuses.
//!
//! Like cert-manager's condition helpers: setting a condition keeps its `lastTransitionTime`
//! when the status did not change, so a reconcile that finds nothing new writes nothing new.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition type every resource carries: the object is valid and fully reconciled.
pub const READY: &str = "Ready";

/// Status value of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

impl Status {
    /// The string stored in `condition.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// Builds a condition stamped with `now` and the generation it describes.
pub fn new(
    type_: &str,
    status: Status,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status.as_str().to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(Timestamp::now()),
    }
}

/// Inserts or replaces the condition of the same type, keeping the old `lastTransitionTime`
/// when the status value is unchanged. Returns `true` when anything changed.
pub fn set(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            let changed = old.status != new.status
                || old.reason != new.reason
                || old.message != new.message
                || old.observed_generation != new.observed_generation;
            *old = new;
            changed
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of the given type is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == Status::True.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_keeps_transition_time_when_status_is_unchanged() {
        let mut conditions = vec![];
        assert!(set(
            &mut conditions,
            new(READY, Status::False, "Pending", "waiting", Some(1))
        ));
        let first = conditions[0].last_transition_time.clone();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(set(
            &mut conditions,
            new(READY, Status::False, "Invalid", "bad", Some(2))
        ));
        assert_eq!(conditions[0].last_transition_time, first);
        assert_eq!(conditions[0].reason, "Invalid");
        assert!(!set(
            &mut conditions,
            new(READY, Status::False, "Invalid", "bad", Some(2))
        ));
        assert!(set(&mut conditions, new(READY, Status::True, "Ready", "ok", Some(2))));
        assert_ne!(conditions[0].last_transition_time, first);
        assert!(is_true(&conditions, READY));
        assert_eq!(conditions.len(), 1);
    }
}
