//! Reflector caches of the three kinds, run by every replica (leader or not): the HTTP server
//! answers from them and never calls the API server on the request path.

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::crd::{ClientSecret, NativeApp, Organization};

/// Read handles on the caches.
#[derive(Clone)]
pub struct Caches {
    /// Every Organization the operator watches.
    pub organizations: Store<Organization>,
    /// Every ClientSecret the operator watches.
    pub client_secrets: Store<ClientSecret>,
    /// Every NativeApp the operator watches.
    pub native_apps: Store<NativeApp>,
}

impl Caches {
    /// Starts one reflector per kind on the tokio runtime and returns the read handles.
    pub fn start(client: &Client) -> Caches {
        Caches {
            organizations: spawn_reflector(Api::all(client.clone())),
            client_secrets: spawn_reflector(Api::all(client.clone())),
            native_apps: spawn_reflector(Api::all(client.clone())),
        }
    }

    /// Resolves once every cache has listed its objects.
    pub async fn wait_until_ready(&self) {
        let _ = tokio::join!(
            self.organizations.wait_until_ready(),
            self.client_secrets.wait_until_ready(),
            self.native_apps.wait_until_ready(),
        );
    }
}

fn spawn_reflector<K>(api: Api<K>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
    tokio::spawn(stream.for_each(|event| async move {
        if let Err(err) = event {
            tracing::warn!(kind = K::kind(&()).as_ref(), error = %err, "cache watch failed; retrying");
        }
    }));
    reader
}
