#!/usr/bin/env bash
# Benchmark of the ClientSecret controller on the local test control plane (not a test: it
# prints figures next to a baseline and asserts nothing about time).
#
#   tests/bench/client-secrets.sh                       # 1,000 ClientSecrets over 100 organizations
#   BENCH_SECRETS=200 BENCH_ORGS=20 tests/bench/client-secrets.sh
#
# It reports: the time until all N Secrets exist when N ClientSecrets are created, next to bare
# kube-rs creating N Secrets on the same API server (the ratio); and the latency from the
# `centralauth.io/activate` annotation landing to phase Active (p50/p99), one at a time and in
# bursts; and the API requests the operator makes per ClientSecret and per activation (the API
# server's own counters). The operator under test is the dev-profile binary (dependencies
# optimised, the crate itself not), or with PROFILE=release the release one; set BENCH_OPERATOR
# to measure another build (e.g. main's, saved, for a before/after).
set -euo pipefail
cd "$(dirname "$0")/../.."

eval "$(tests/testenv/testenv.sh up | tail -n 1)"
tests/testenv/testenv.sh kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
tests/testenv/testenv.sh kubectl wait --for condition=Established --timeout=60s -f crds/ >/dev/null
# PROFILE=release measures release builds of both (BENCH_OPERATOR still overrides the operator).
target_dir=${CARGO_TARGET_DIR:-target}
if [[ "${PROFILE:-debug}" == release ]]; then
  cargo build --quiet --release --bin centralauth-operator --example bench-client-secrets
  BENCH_OPERATOR=${BENCH_OPERATOR:-$target_dir/release/centralauth-operator} exec "$target_dir/release/examples/bench-client-secrets"
fi
cargo build --quiet --bin centralauth-operator --example bench-client-secrets
cargo run --quiet --example bench-client-secrets
