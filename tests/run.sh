#!/usr/bin/env bash
# The whole test suite: unit tests, then the integration tests against a real kube-apiserver,
# etcd, controller-manager, scheduler and KWOK (started, or reused, by tests/testenv/testenv.sh;
# built from the Go module proxy on first use, which takes ~10 minutes once), driving the real
# OAuth clients of tests/clients (installed by tests/clients/install.sh).
# The control plane is left running for the next run; stop it with `tests/testenv/testenv.sh down`.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/clients/install.sh
tests/testenv/testenv.sh up >/dev/null
# Integration tests wait on the API server far more than on the CPU: run more than 2 at once.
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-6}
cargo test --all-targets "$@"
