//! centralauth-operator: a Kubernetes operator that runs a self-hosted CentralAuth-style login
//! service declaratively, and the OAuth 2.0 / PKCE server that serves it, in one binary.
//!
//! Module map, in the order a request or a reconcile meets the layers:
//! - Resource types: [`crd`] (`Organization`, `ClientSecret`, `NativeApp`, `User`: the API) and
//!   [`tenant`] (how an organization is addressed: hosts, issuer, login URL).
//! - Controllers: [`controller`], one reconciler per kind, with [`applinks`] (native-app
//!   registration rules and association files) and [`association`] (whether an app-link host
//!   really lists the app).
//! - Protocol: [`flow`] (the login and token flows of both protocols, over the store, keys,
//!   verifier and a read-only directory of organizations) over [`oauth`] (the protocol
//!   library: PKCE, codes, client authentication, tokens, keys), [`crypto`] (argon2id),
//!   [`mail`] (the e-mail login's messages over SMTP) and [`origin`] (web origins).
//! - HTTP adapter: [`http`] (the public login/OAuth server and the admin listener: extraction
//!   and rendering only) and [`forwarded`] (the client address behind trusted proxies).
//! - Runtime: [`runtime`] (the reflector caches, the Secret and key watchers, leader
//!   election, metrics, the watched namespaces, the API client), wired by [`run`] from the
//!   command line parsed by [`cli`].
//! - Stores: [`store`] (sessions, codes and tokens behind one trait: memory or Redis).
//! - `layout` (tests only): the layering rules, checked by reading the source tree.

pub mod applinks;
pub mod association;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod crypto;
pub mod flow;
pub mod forwarded;
pub mod http;
pub mod mail;
pub mod oauth;
pub mod origin;
pub mod run;
pub mod runtime;
pub mod store;
pub mod tenant;

#[cfg(test)]
mod layout;
