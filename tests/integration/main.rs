//! Integration tests against a real kube-apiserver + etcd (+ controller-manager, scheduler and
//! KWOK), started by `tests/testenv/testenv.sh`. One test binary, so it links once; each test
//! works in its own namespace.

mod support;

mod binary;
mod client_secret;
mod client_secret_crash;
mod client_secret_rollout;
mod crds;
