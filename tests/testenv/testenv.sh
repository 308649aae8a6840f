#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for the tests, the way controller-runtime's
# envtest does it, plus what envtest lacks: kube-controller-manager, kube-scheduler and KWOK
# (fake nodes), so Deployments really roll out and garbage collection really runs.
#
#   testenv.sh up      build what is missing, start everything, wait for /readyz, and print
#                      `export KUBECONFIG=<path>` as the last line. Running it again while the
#                      control plane is up starts nothing and prints the same line.
#   testenv.sh down    stop every process (SIGTERM, then SIGKILL) and remove the state.
#   testenv.sh status  exit 0 when it is up (and print the export line), 1 otherwise.
#   testenv.sh env     print the export line without starting anything.
#   testenv.sh kubectl ARGS...  run the matching kubectl against it.
#
# State (certificates, etcd data, logs, pids, kubeconfig) lives in $TESTENV_STATE, by default
# one directory per checkout under /tmp, so two clones do not share a control plane.
# The CA key is kept there too: tests mint client certificates for RBAC-restricted users.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
source "$here/versions.sh"
repo=$(cd "$here/../.." && pwd)
TESTENV_STATE=${TESTENV_STATE:-/tmp/centralauth-testenv-$(printf %s "$repo" | sha256sum | cut -c1-10)}
BIN=$TESTENV_CACHE/bin
# kubectl of the same version as the API server (the system one may be outside the skew).
kubectl() { "$BIN/kubectl-$K8S_VERSION" "$@"; }
KUBECONFIG_PATH=$TESTENV_STATE/kubeconfig
# Seconds to wait for each component before giving up.
WAIT=${TESTENV_WAIT:-120}

log() { echo "[testenv] $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

alive() { [ -f "$TESTENV_STATE/pids/$1" ] && kill -0 "$(cat "$TESTENV_STATE/pids/$1")" 2>/dev/null; }

# Whether the API server of this state directory answers /readyz.
api_ready() {
  [ -f "$TESTENV_STATE/ports" ] || return 1
  # shellcheck disable=SC1091
  source "$TESTENV_STATE/ports"
  curl -sf --max-time 5 --cacert "$TESTENV_STATE/pki/ca.crt" --cert "$TESTENV_STATE/pki/admin.crt" \
    --key "$TESTENV_STATE/pki/admin.key" "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1
}

is_up() {
  for p in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do alive "$p" || return 1; done
  api_ready
}

wait_for() { # wait_for <what> <command...>
  local what=$1 deadline=$((SECONDS + WAIT))
  shift
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then
      log "$what did not become ready in ${WAIT}s; last lines of its log:"
      tail -n 30 "$TESTENV_STATE/logs/$what.log" >&2 || true
      return 1
    fi
    if ! alive "$what"; then
      log "$what exited; last lines of its log:"
      tail -n 30 "$TESTENV_STATE/logs/$what.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

# start <name> <binary> [args...]: runs it in the background with its own log and pid file.
# Started directly with `&` (not in a subshell) so the recorded pid is the process itself.
start() {
  local name=$1
  shift
  "$@" >"$TESTENV_STATE/logs/$name.log" 2>&1 </dev/null 8>&- &
  echo $! >"$TESTENV_STATE/pids/$name"
}

make_pki() {
  local d=$TESTENV_STATE/pki
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=centralauth-testenv-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 \
      -extfile apiserver.ext 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=testenv-admin" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 3650 \
      -extfile client.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

write_kubeconfig() {
  local pki=$TESTENV_STATE/pki
  rm -f "$KUBECONFIG_PATH"
  (
    export KUBECONFIG=$KUBECONFIG_PATH
    kubectl config set-cluster testenv --server="https://127.0.0.1:$API_PORT" \
      --certificate-authority="$pki/ca.crt" --embed-certs=true
    kubectl config set-credentials testenv-admin --client-certificate="$pki/admin.crt" \
      --client-key="$pki/admin.key" --embed-certs=true
    kubectl config set-context testenv --cluster=testenv --user=testenv-admin --namespace=default
    kubectl config use-context testenv
  ) >/dev/null 2>&1 </dev/null
  chmod 600 "$KUBECONFIG_PATH"
}

start_etcd() {
  start etcd "$BIN/etcd-$ETCD_VERSION" --name=testenv --data-dir="$TESTENV_STATE/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="testenv=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync=true --quota-backend-bytes=4294967296 --log-level=warn
  wait_for etcd curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  local pki=$TESTENV_STATE/pki
  start kube-apiserver "$BIN/kube-apiserver-$K8S_VERSION" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" --cert-dir="$pki" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --secure-port="$API_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --service-cluster-ip-range=10.0.0.0/24 \
    --service-account-issuer="https://127.0.0.1:$API_PORT/" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --authorization-mode=RBAC --disable-admission-plugins=ServiceAccount \
    --allow-privileged=true --profiling=false --v=0
  wait_for kube-apiserver api_ready
}

start_controllers() {
  local pki=$TESTENV_STATE/pki kc=$KUBECONFIG_PATH
  start kube-controller-manager "$BIN/kube-controller-manager-$K8S_VERSION" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --use-service-account-credentials=false --profiling=false --v=0
  start kube-scheduler "$BIN/kube-scheduler-$K8S_VERSION" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --profiling=false --v=0
  start kwok "$BIN/kwok-$KWOK_VERSION" --kubeconfig="$kc" \
    --config="$BIN/kwok-$KWOK_VERSION-stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 --cidr=10.0.0.1/24 --node-ip=10.0.0.1 \
    --server-address="127.0.0.1:$KWOK_PORT"
}

# One fake node, managed by KWOK, so the scheduler has somewhere to put Pods.
create_node() {
  kubectl --kubeconfig="$KUBECONFIG_PATH" apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "1000"}
  capacity: {cpu: "64", memory: 256Gi, pods: "1000"}
YAML
  local deadline=$((SECONDS + WAIT))
  until [ "$(kubectl --kubeconfig="$KUBECONFIG_PATH" get node kwok-node-0 \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = "True" ]; do
    [ $SECONDS -lt $deadline ] || die "the KWOK node did not become Ready (see $TESTENV_STATE/logs/kwok.log)"
    sleep 0.5
  done
  # The default ServiceAccount appears once the controller-manager runs; wait for it so tests
  # creating Pods right away are not refused.
  deadline=$((SECONDS + WAIT))
  until kubectl --kubeconfig="$KUBECONFIG_PATH" -n default get serviceaccount default >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "the controller-manager created no default ServiceAccount (see $TESTENV_STATE/logs/kube-controller-manager.log)"
    sleep 0.5
  done
}

stop_all() {
  local p pid
  for p in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [ -f "$TESTENV_STATE/pids/$p" ] || continue
    pid=$(cat "$TESTENV_STATE/pids/$p")
    kill -TERM "$pid" 2>/dev/null || true
  done
  for p in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [ -f "$TESTENV_STATE/pids/$p" ] || continue
    pid=$(cat "$TESTENV_STATE/pids/$p")
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

cmd_up() {
  mkdir -p "$TESTENV_STATE"
  exec 8>"$TESTENV_STATE.lock"
  flock 8
  if is_up; then
    log "already running ($TESTENV_STATE)"
    echo "export KUBECONFIG=$KUBECONFIG_PATH"
    return 0
  fi
  "$here/build.sh"
  command -v openssl >/dev/null || die "openssl is not installed"
  stop_all
  rm -rf "${TESTENV_STATE:?}"/{etcd,logs,pids,pki,ports,kubeconfig}
  mkdir -p "$TESTENV_STATE/logs" "$TESTENV_STATE/pids"
  local start=$SECONDS
  cat >"$TESTENV_STATE/ports" <<PORTS
ETCD_PORT=$(free_port)
ETCD_PEER_PORT=$(free_port)
API_PORT=$(free_port)
KCM_PORT=$(free_port)
SCHED_PORT=$(free_port)
KWOK_PORT=$(free_port)
PORTS
  # shellcheck disable=SC1091
  source "$TESTENV_STATE/ports"
  make_pki
  start_etcd || { stop_all; die "etcd failed to start"; }
  start_apiserver || { stop_all; die "kube-apiserver failed to start"; }
  write_kubeconfig
  start_controllers
  create_node || { stop_all; exit 1; }
  log "control plane up in $((SECONDS - start))s (state: $TESTENV_STATE, logs: $TESTENV_STATE/logs)"
  echo "export KUBECONFIG=$KUBECONFIG_PATH"
}

cmd_down() {
  exec 8>"$TESTENV_STATE.lock"
  flock 8
  stop_all
  rm -rf "$TESTENV_STATE"
  log "stopped"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status)
    if is_up; then echo "export KUBECONFIG=$KUBECONFIG_PATH"; else exit 1; fi
    ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_PATH" ;;
  kubectl)
    shift
    KUBECONFIG=$KUBECONFIG_PATH kubectl "$@"
    ;;
  *)
    echo "usage: $0 up|down|status|env|kubectl ARGS..." >&2
    exit 2
    ;;
esac
