//! centralauth-operator: a Kubernetes operator that runs a self-hosted CentralAuth-style login
//! service declaratively, and the OAuth 2.0 / PKCE server that serves it, in one binary.
//!
//! Module map:
//! - [`crd`]: the `Organization`, `ClientSecret` and `NativeApp` resource types (the API).
//! - [`tenant`]: how an organization is addressed (hosts, issuer, login URL).
//! - [`cache`]: reflector caches of the three kinds, which the HTTP server reads.
//! - [`crypto`]: argon2id hashing of secrets and passwords.
//! - [`forwarded`]: the client address behind trusted reverse proxies.
//! - [`origin`]: web origins and whether a URL belongs to an organization's `allowedOrigins`.
//! - [`applinks`]: native-app registration rules and the app-link association files.
//! - [`association`]: whether an app-link host really serves association files listing the app.
//! - [`controller`]: one reconciler per kind.
//! - [`flow`]: the protocol layer: the login and token flows of both protocols, over the
//!   store, keys, verifier and a read-only directory of organizations.
//! - [`http`]: the public OAuth/login server and the admin listener (extraction and rendering).
//! - [`mail`]: the code e-mails of the `email` login method, over SMTP.
//! - [`oauth`]: the protocol library (PKCE, codes, client authentication, tokens, keys).
//! - [`store`]: sessions, codes and tokens behind one trait (memory or Redis).
//! - [`scope`]: which namespaces are watched (all, or a list).
//! - [`leader`]: leader election on a Lease; only the leader runs the controllers.
//! - [`metrics`]: Prometheus metrics served on the admin listener.
//! - [`cli`] and [`run`]: command-line parsing and the wiring of the `run` subcommand.
//! - `layout` (tests only): the layering rules above, checked by reading the source tree.

pub mod applinks;
pub mod association;
pub mod cache;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod crypto;
pub mod flow;
pub mod forwarded;
pub mod http;
pub mod kube_client;
pub mod leader;
pub mod mail;
pub mod metrics;
pub mod oauth;
pub mod origin;
pub mod run;
pub mod scope;
pub mod store;
pub mod tenant;

#[cfg(test)]
mod layout;
