//! Integration tests against a real kube-apiserver + etcd (+ controller-manager, scheduler and
//! KWOK), started by `tests/testenv/testenv.sh`. One test binary, so it links once; each test
//! works in its own namespace.

mod support;

mod authenticate_direct;
mod binary;
mod chart;
mod client_secret;
mod client_secret_crash;
mod client_secret_rollout;
mod crds;
mod desktop_app;
mod email_link;
mod email_login;
mod events;
mod hijack;
mod image;
mod image_run;
mod leader;
mod login_load;
mod metrics;
mod native_app;
mod oauth_abuse;
mod oauth_attacks;
mod oauth_browser;
mod oauth_centralauth;
mod oauth_clients;
mod oauth_keys;
mod oauth_logs;
mod oauth_prompt;
mod oauth_refusals;
mod organization;
mod passkeys;
mod providers;
mod rbac;
mod release;
mod rolling_upgrade;
mod secrets_watch;
mod store_binary;
mod store_contract;
mod store_replicas;
mod theme;
mod users;
