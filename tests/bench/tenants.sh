#!/usr/bin/env bash
# Many-tenant benchmark (a script, not a test: it prints figures and asserts nothing about time).
#
#   tests/bench/tenants.sh                      # N=1000 tenants
#   BENCH_TENANTS=10000 tests/bench/tenants.sh
#   BENCH_STARVE=1 tests/bench/tenants.sh       # operator pinned to core 0 next to a busy loop
#
# N Organizations, each with its own passwords Secret, an `Immediate` ClientSecret and a
# NativeApp, applied concurrently (kubectl apply --server-side, chunks in parallel) to one
# namespace that a release-build operator watches (--watch-namespace, leader election on).
# Prints: time until every ClientSecret is Active, the operator's steady-state RSS, its open
# sockets to the API server, lease losses ("lost the leader lease" log lines), and the latency
# of client_credentials token requests to random tenants (p50/p99). The operator's log stays in
# target/bench/. BENCH_OPERATOR measures another binary (default target/release).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z "${BENCH_OPERATOR:-}" ]]; then
  cargo build --quiet --release --bin centralauth-operator
fi
exec python3 tests/bench/tenants.py "$@"
