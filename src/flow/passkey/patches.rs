//! The JSON patches of a User's passkeys: each first `test`s what the login read, so an
//! admin's edit (a revocation) made meanwhile is never overwritten.

use kube::api::PatchParams;

use super::webauthn::{PasskeyError, Used};
use super::{PASSKEY_MANAGER, credential};
use crate::crd::user::{MAX_PASSKEYS, USER_HANDLE_LABEL};
use crate::crd::{PasskeyCredential, User};
use crate::flow::login::LoginError;
use crate::flow::users::directory_down;

pub(super) fn passkey_manager() -> PatchParams {
    PatchParams {
        field_manager: Some(PASSKEY_MANAGER.to_string()),
        ..Default::default()
    }
}

/// A refused conditional patch (the entry changed meanwhile) refuses the step; anything else
/// means the directory is down.
pub(super) fn patch_refused(e: kube::Error) -> LoginError {
    match e {
        kube::Error::Api(ref s) if s.code == 422 || s.code == 409 => PasskeyError::UnknownCredential.into(),
        e => directory_down(e),
    }
}

/// The JSON patch appending `credential` to `user` (creating `spec.passkeys` with `handle`
/// and the label when absent), guarded by tests of what was read.
pub(super) fn append_patch(
    user: &User,
    handle: &str,
    credential: PasskeyCredential,
) -> Result<json_patch::Patch, LoginError> {
    use serde_json::json;
    let passkeys = user.spec.passkeys.as_ref();
    let count = passkeys.map_or(0, |p| p.credentials.len());
    if count >= MAX_PASSKEYS {
        return Err(PasskeyError::Refused(format!("at most {MAX_PASSKEYS} passkeys per user")).into());
    }
    let label_path = format!("/metadata/labels/{}", USER_HANDLE_LABEL.replace('/', "~1"));
    let mut ops = vec![];
    if user.metadata.labels.is_none() {
        ops.push(json!({"op": "add", "path": "/metadata/labels", "value": {}}));
    }
    ops.push(json!({"op": "add", "path": label_path, "value": handle}));
    match passkeys {
        None => ops.push(json!({"op": "add", "path": "/spec/passkeys",
            "value": {"userHandle": handle, "credentials": [credential]}})),
        Some(p) => {
            ops.push(json!({"op": "test", "path": "/spec/passkeys/userHandle", "value": p.user_handle}));
            ops.push(json!({"op": "test", "path": "/spec/passkeys/credentials", "value": p.credentials}));
            ops.push(json!({"op": "add", "path": "/spec/passkeys/credentials/-", "value": credential}));
        }
    }
    serde_json::from_value(serde_json::Value::Array(ops)).map_err(|_| LoginError::DirectoryUnavailable)
}

/// The JSON patch recording a login with `credential_id` at `now`, or `None` when nothing
/// changed (same day, counter 0 or unchanged, same flags).
pub(super) fn use_patch(user: &User, credential_id: &str, used: &Used, now: i64) -> Option<json_patch::Patch> {
    use serde_json::json;
    let creds = &user.spec.passkeys.as_ref()?.credentials;
    let (i, stored) = creds.iter().enumerate().find(|(_, c)| c.id == credential_id)?;
    let day = crate::oauth::profile::day(now);
    let base = format!("/spec/passkeys/credentials/{i}");
    let mut ops = vec![json!({"op": "test", "path": format!("{base}/id"), "value": credential_id})];
    if let Some(count) = credential::sign_count_to_write(stored.sign_count, used.sign_count) {
        ops.push(json!({"op": "replace", "path": format!("{base}/signCount"), "value": count}));
    }
    if stored.backed_up != used.backed_up {
        ops.push(json!({"op": "replace", "path": format!("{base}/backedUp"), "value": used.backed_up}));
    }
    if used.user_verified && !stored.user_verified {
        ops.push(json!({"op": "replace", "path": format!("{base}/userVerified"), "value": true}));
    }
    if stored.last_used_at.as_deref() != Some(day.as_str()) {
        ops.push(json!({"op": "add", "path": format!("{base}/lastUsedAt"), "value": day}));
    }
    if ops.len() == 1 {
        return None;
    }
    serde_json::from_value(serde_json::Value::Array(ops)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::UserPasskeys;

    fn credential(id: &str, sign_count: u32, last_used: Option<&str>) -> PasskeyCredential {
        let mut c = credential::decoy_credential("uid", id);
        c.sign_count = sign_count;
        c.last_used_at = last_used.map(str::to_string);
        c
    }

    fn user_with(creds: Vec<PasskeyCredential>) -> User {
        let mut user = User::invite(Some("ns"), "acme", "ada@example.com");
        user.spec.passkeys = Some(UserPasskeys {
            user_handle: "ab".repeat(16),
            credentials: creds,
        });
        user
    }

    #[test]
    fn a_login_writes_only_what_changed_and_tests_the_entry_first() {
        let day = 86_400 * 10;
        let c = credential("a@b.c", 0, Some(&crate::oauth::profile::day(day)));
        let user = user_with(vec![credential("x@y.z", 0, None), c.clone()]);
        let same = Used {
            sign_count: 0,
            backed_up: false,
            user_verified: false,
        };
        assert!(
            use_patch(&user, &c.id, &same, day + 5).is_none(),
            "same day, no counter: no write"
        );
        let counted = Used {
            sign_count: 3,
            ..same.clone()
        };
        let patch = serde_json::to_value(use_patch(&user, &c.id, &counted, day + 5).unwrap()).unwrap();
        assert_eq!(patch[0]["op"], "test");
        assert_eq!(patch[0]["path"], "/spec/passkeys/credentials/1/id");
        assert_eq!(patch[1]["path"], "/spec/passkeys/credentials/1/signCount");
        assert_eq!(patch.as_array().unwrap().len(), 2);
        let next_day = serde_json::to_value(use_patch(&user, &c.id, &same, day + 86_400).unwrap()).unwrap();
        assert_eq!(next_day[1]["path"], "/spec/passkeys/credentials/1/lastUsedAt");
        assert!(use_patch(&user, "unknown", &same, day).is_none());
    }

    #[test]
    fn a_registration_appends_only_to_the_list_it_read_and_stops_at_the_limit() {
        let user = User::invite(Some("ns"), "acme", "ada@example.com");
        let first =
            serde_json::to_value(append_patch(&user, &"ab".repeat(16), credential("a@b.c", 0, None)).unwrap()).unwrap();
        assert_eq!(first[0]["path"], "/metadata/labels");
        assert_eq!(first[1]["path"], "/metadata/labels/centralauth.io~1passkey-user-handle");
        assert_eq!(first[2]["path"], "/spec/passkeys");
        let user = user_with(vec![credential("a@b.c", 0, None)]);
        let next =
            serde_json::to_value(append_patch(&user, &"ab".repeat(16), credential("d@e.f", 0, None)).unwrap()).unwrap();
        let ops: Vec<&str> = next
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["op"].as_str().unwrap())
            .collect();
        assert_eq!(ops, ["add", "add", "test", "test", "add"]);
        let full = user_with(
            (0..MAX_PASSKEYS)
                .map(|i| credential(&format!("{i}@x.y"), 0, None))
                .collect(),
        );
        assert!(append_patch(&full, &"ab".repeat(16), credential("z@x.y", 0, None)).is_err());
    }
}
