//! When a user's access ended: the record the User controller writes when a user is blocked or
//! deleted, and what every use of a session, refresh token or access token checks.
//!
//! The record is one store key per user ID, `access-ended:<user id>`, holding the Unix second
//! `T`. Sessions created at or before `T` — and everything they issued: refresh tokens, access
//! tokens, CentralAuth tokens — are refused from then on; a session created after `T` (the
//! user was unblocked, or recreated, and logged in again) is not. The record lives
//! [`RECORD_TTL`], longer than any session can (`maxSessionSeconds` is at most a year), so it
//! outlives everything it ends. A later `T` replaces an earlier one, never the reverse.

use std::time::Duration;

use crate::store::{Store, StoreResult};

/// How long an access-ended record is kept: longer than the longest session (one year).
pub const RECORD_TTL: Duration = Duration::from_secs(400 * 24 * 3600);

fn key(user_id: &str) -> String {
    format!("access-ended:{user_id}")
}

/// When the access of `user_id` ended, if it did.
pub async fn ended_at(store: &dyn Store, user_id: &str) -> StoreResult<Option<i64>> {
    Ok(store
        .get(&key(user_id))
        .await?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse().ok()))
}

/// Records that the access of `user_id` ended at `at` (Unix seconds), unless a later end is
/// already recorded. Returns the end now in force.
pub async fn end(store: &dyn Store, user_id: &str, at: i64) -> StoreResult<i64> {
    if let Some(recorded) = ended_at(store, user_id).await?
        && recorded >= at
    {
        return Ok(recorded);
    }
    store
        .put(&key(user_id), at.to_string().into_bytes(), RECORD_TTL)
        .await?;
    Ok(at)
}

/// Whether something of `user_id` that started at `since` (a login's Unix second) has ended.
pub async fn ended_since(store: &dyn Store, user_id: &str, since: i64) -> StoreResult<bool> {
    Ok(ended_at(store, user_id).await?.is_some_and(|t| since <= t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn an_end_refuses_what_started_before_it_and_never_moves_back() {
        let store = MemoryStore::new();
        assert!(!ended_since(&store, "u", 0).await.unwrap());
        assert_eq!(end(&store, "u", 100).await.unwrap(), 100);
        assert!(ended_since(&store, "u", 99).await.unwrap());
        assert!(
            ended_since(&store, "u", 100).await.unwrap(),
            "a login in the same second"
        );
        assert!(!ended_since(&store, "u", 101).await.unwrap());
        assert_eq!(end(&store, "u", 50).await.unwrap(), 100, "an older end does not win");
        assert_eq!(end(&store, "u", 200).await.unwrap(), 200);
        assert!(!ended_since(&store, "v", 0).await.unwrap(), "per user");
    }
}
