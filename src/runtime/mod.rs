//! The runtime around the controllers and the login server: what watches the API server and
//! what keeps the process healthy. Nothing here speaks a protocol.
//!
//! - [`blocking`]: blocking work behind a bound that holds even when its caller gives up.
//! - [`cache`]: reflector caches of the three kinds (the HTTP server's and controllers' view).
//! - [`secrets`]: the Secrets the server authenticates with, followed by a constant number of
//!   watches ([`secrets::SecretsView`]).
//! - [`keys`]: the signing and encryption keys, from their Secret ([`keys::KeyRing`]).
//! - [`leader`]: leader election on a Lease; only the leader runs the controllers.
//! - [`memory`]: allocator settings that return the start-up burst's memory.
//! - [`metrics`]: Prometheus metrics served on the admin listener.
//! - [`pace`]: spacing out recomputations whose cost grows with the number of tenants.
//! - [`scope`]: which namespaces are watched (all, or a list).
//! - [`kube_client`]: the API client: one HTTP/2 connection for every request and watch.

pub mod blocking;
pub mod cache;
pub mod keys;
pub mod kube_client;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod pace;
pub mod scope;
pub mod secrets;
