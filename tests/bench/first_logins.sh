#!/usr/bin/env bash
# Burst of first-time logins (a script, not a test: it prints figures and asserts nothing
# about time).
#
#   tests/bench/first_logins.sh                          # N=1000 accounts, 50 logins in flight
#   BENCH_USERS=200 BENCH_CONCURRENCY=10 tests/bench/first_logins.sh
#   BENCH_OPERATOR=<binary> tests/bench/first_logins.sh  # another build, no cargo build
#
# One Organization with password login (N accounts in its passwords Secret) and a release-build
# operator on the test control plane. Burst 1: every account logs in for the first time through
# the login form (the login path creates each User); burst 2: the same accounts again, the same
# day. Prints, per burst: latency per login (p50/p99/max), total time, CPU per login, and the
# API requests and writes per login by verb and resource (the API server's own counters); then
# the number of Users (must be N) and the operator's RSS. The operator's log stays in
# target/bench/.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z "${BENCH_OPERATOR:-}" ]]; then
  cargo build --quiet --release --bin centralauth-operator
fi
exec python3 tests/bench/first_logins.py "$@"
