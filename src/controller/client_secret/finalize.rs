//! The finalizer [`FINALIZER`]: added in the reconcile that then goes on to mint, removed after
//! the cleanup.
//!
//! kube's `finalizer` helper ends a reconcile once it added the finalizer and leaves the next
//! step to the watch event of its own patch, so every new ClientSecret waited a watch round trip
//! and a second reconcile before its Secret was minted (measured: most of the time from a
//! ClientSecret to its Secret in `tests/bench/client-secrets.sh`). Here the patch's answer — the
//! object with the finalizer, at its new resourceVersion — is reconciled at once. The crash-safety
//! argument is the helper's: the finalizer is on the object before anything is minted, and a
//! deleted object is cleaned up before the finalizer comes off.
//!
//! Both patches are JSON merge patches of the whole finalizer list, conditional on the
//! resourceVersion that was read: another writer in between (a 409) makes the reconcile start
//! over on fresh data instead of dropping someone else's finalizer.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;

use super::{Error, FINALIZER, State, reconcile};
use crate::crd::{ClientSecret, FIELD_MANAGER};

/// One reconcile of `cs` behind the finalizer: the cleanup of a deleted ClientSecret that still
/// carries it, else the lifecycle step (adding the finalizer first if it is missing).
pub async fn guarded(api: &Api<ClientSecret>, cs: &ClientSecret, state: &State) -> Result<Action, Error> {
    let ours = cs.finalizers().iter().any(|f| f == FINALIZER);
    match (cs.metadata.deletion_timestamp.is_some(), ours) {
        (true, false) => Ok(Action::await_change()),
        (true, true) => {
            let action = reconcile::cleanup(cs, state).await?;
            write(api, cs, without(cs.finalizers())).await?;
            state.own.forget(cs);
            Ok(action)
        }
        (false, true) => reconcile::apply(cs, state).await,
        (false, false) => {
            let mut list = cs.finalizers().to_vec();
            list.push(FINALIZER.to_string());
            let added = write(api, cs, list).await?;
            state.own.wrote(cs, &added);
            reconcile::apply(&added, state).await
        }
    }
}

/// The finalizer list without ours.
fn without(list: &[String]) -> Vec<String> {
    list.iter().filter(|f| *f != FINALIZER).cloned().collect()
}

/// Sets the finalizer list of `cs`, conditional on the version read.
async fn write(api: &Api<ClientSecret>, cs: &ClientSecret, list: Vec<String>) -> Result<ClientSecret, Error> {
    let patch = json!({"metadata": {"resourceVersion": cs.resource_version(), "finalizers": list}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    api.patch(&cs.name_any(), &params, &Patch::Merge(&patch))
        .await
        .map_err(Error::Finalizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_keeps_other_finalizers() {
        let list = vec!["a/b".to_string(), FINALIZER.to_string(), "c/d".to_string()];
        assert_eq!(without(&list), vec!["a/b".to_string(), "c/d".to_string()]);
        assert!(without(&[FINALIZER.to_string()]).is_empty());
    }
}
