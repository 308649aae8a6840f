//! The user as the directory recorded them at login (a snapshot of a `User`'s status, without
//! Kubernetes types), which the session carries and the user objects are made of. Blocking and
//! deletion after the login are enforced through [`super::access`], not through this snapshot.

use serde::{Deserialize, Serialize};

/// A login method a user has used.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// `password`, `email`, `passkey` or a provider.
    #[serde(rename = "type")]
    pub type_: String,
    /// Unix seconds of its first use.
    pub created: i64,
}

/// The directory's record of a user at login.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserProfile {
    /// Stable user ID (`id`, `sub`).
    pub id: String,
    /// Normalised address.
    pub email: String,
    /// Whether the address was proven.
    pub verified: bool,
    /// Unix seconds the user was recorded.
    pub created: i64,
    /// Unix seconds the record last changed.
    pub updated: i64,
    /// Day of the last login, `YYYY-MM-DD`.
    pub last_login: String,
    /// Login methods used.
    pub connections: Vec<Connection>,
}

/// The UTC day (`YYYY-MM-DD`) of a Unix time.
pub fn day(unix: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(86_399), "1970-01-01");
        assert_eq!(day(86_400), "1970-01-02");
    }
}
