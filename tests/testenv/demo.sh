#!/usr/bin/env bash
# The product's main job, locally: a real control plane (tests/testenv), the CRDs, the samples
# of config/samples in namespace `demo`, and the operator in the foreground. Ctrl-C stops the
# operator; the control plane keeps running (`tests/testenv/testenv.sh down` stops it).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/testenv

eval "$($here/testenv.sh up | tail -n 1)"
k() { "$here/testenv.sh" kubectl "$@"; }

cargo build --quiet
bin=target/debug/centralauth-operator

k apply --server-side -f crds/ >/dev/null
k wait --for condition=established crd --all --timeout=60s >/dev/null
k create namespace demo --dry-run=client -o yaml | k apply -f - >/dev/null
# The Deployment that the OnRollout sample rolls (KWOK runs its Pods on a fake node).
k -n demo create deployment example-web --image=example/web:1 --dry-run=client -o yaml | k apply -f - >/dev/null
k -n demo apply -f config/samples/ >/dev/null

export CENTRALAUTH_BASE_DOMAIN=${CENTRALAUTH_BASE_DOMAIN:-centralauth.localhost}
"$bin" run --listen 127.0.0.1:8080 --admin-listen 127.0.0.1:8081 &
operator=$!
trap 'kill $operator 2>/dev/null; wait $operator 2>/dev/null' EXIT INT TERM
until curl -sf -o /dev/null http://127.0.0.1:8081/readyz; do
  kill -0 $operator 2>/dev/null || { echo "the operator exited" >&2; exit 1; }
  sleep 0.5
done
sleep 2

cat <<TXT

=== centralauth-operator is running (namespace demo) ===
$(k -n demo get organizations,clientsecrets,nativeapps 2>/dev/null)

Look around (in another shell):
  export KUBECONFIG=$KUBECONFIG
  alias kubectl="$PWD/$here/testenv.sh kubectl"
  kubectl -n demo get org,csec,na -o wide
  kubectl explain clientsecret.spec.activation
  curl -s http://127.0.0.1:8081/healthz
Ctrl-C stops the operator.
TXT
wait $operator
