#!/usr/bin/env bash
# Builds the test control plane's binaries from the Go module proxy and caches them.
#
# Nothing here can be downloaded as a binary, so every piece is compiled from its Go module:
#   etcd                     go.etcd.io/etcd/server/v3
#   kube-apiserver,
#   kube-controller-manager,
#   kube-scheduler,
#   kubectl                  k8s.io/kubernetes (wrapper module, staging modules replaced)
#   kwok                     sigs.k8s.io/kwok/cmd/kwok (fake nodes, so Pods become Ready)
#   helm                     helm.sh/helm/v3/cmd/helm
#
# Binaries land in $TESTENV_CACHE/bin/<name>-<version>; an existing binary is never rebuilt.
# GOMODCACHE / GOCACHE are the machine's defaults, so a warm Go cache makes rebuilds cheap.
# Usage: build.sh [component...]   (default: all)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
source "$here/versions.sh"

log() { echo "[testenv build] $*" >&2; }

k8s_ldflags() {
  local v=$K8S_VERSION minor
  minor=$(echo "$v" | cut -d. -f2)
  echo "-s -w -X k8s.io/component-base/version.gitVersion=v$v \
-X k8s.io/component-base/version.gitMajor=1 \
-X k8s.io/component-base/version.gitMinor=$minor \
-X k8s.io/component-base/version.gitTreeState=clean \
-X k8s.io/client-go/pkg/version.gitVersion=v$v \
-X k8s.io/client-go/pkg/version.gitMajor=1 \
-X k8s.io/client-go/pkg/version.gitMinor=$minor"
}

# A module outside k8s.io/kubernetes must replace every staging module (required there at
# v0.0.0) with the published v0.<minor>.<patch> that matches v1.<minor>.<patch>.
K8S_BINARIES="kube-apiserver kube-controller-manager kube-scheduler kubectl"

build_kubernetes() {
  local out=$TESTENV_CACHE/bin src=$TESTENV_CACHE/src/kubernetes-$K8S_VERSION
  local staging_ver="v0.${K8S_VERSION#*.}"
  local b missing=0
  for b in $K8S_BINARIES; do [ -x "$out/$b-$K8S_VERSION" ] || missing=1; done
  [ $missing = 1 ] || return 0
  log "building $K8S_BINARIES v$K8S_VERSION (cold: many minutes)"
  mkdir -p "$src" "$out"
  local modfile
  modfile=$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" \
    | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module centralauth.testenv/kubernetes"
    echo
    echo "go 1.25.0"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    echo "tool ("
    echo "	k8s.io/kubernetes/cmd/kube-apiserver"
    echo "	k8s.io/kubernetes/cmd/kube-controller-manager"
    echo "	k8s.io/kubernetes/cmd/kube-scheduler"
    echo "	k8s.io/kubernetes/cmd/kubectl"
    echo ")"
    echo
    echo "replace ("
    grep -E '^\s+k8s.io/\S+ v0\.0\.0$' "$modfile" | awk -v v="$staging_ver" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$src/go.mod"
  (cd "$src" && go mod tidy)
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -tags selinux,notest -ldflags "$(k8s_ldflags)" \
    -o "$src/bin/" $(for b in $K8S_BINARIES; do echo "k8s.io/kubernetes/cmd/$b"; done))
  for b in $K8S_BINARIES; do
    mv "$src/bin/$b" "$out/$b-$K8S_VERSION"
  done
}

# etcd's server module has relative replaces, so `go install …@v` refuses it: build it from a
# wrapper module too.
build_etcd() {
  local out=$TESTENV_CACHE/bin src=$TESTENV_CACHE/src/etcd-$ETCD_VERSION
  [ -x "$out/etcd-$ETCD_VERSION" ] && return 0
  log "building etcd v$ETCD_VERSION"
  mkdir -p "$src" "$out"
  cat >"$src/go.mod" <<MOD
module centralauth.testenv/etcd

go 1.25.0

require go.etcd.io/etcd/server/v3 v$ETCD_VERSION

tool go.etcd.io/etcd/server/v3
MOD
  (cd "$src" && go mod tidy)
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd-$ETCD_VERSION" go.etcd.io/etcd/server/v3)
}

# KWOK fakes nodes and drives Pods to Running/Ready, so Deployments really roll out on a
# control plane without kubelets. Its stage definitions (how fast a Pod becomes Ready) ship in
# the module as YAML: they are gathered into one config file beside the binary.
build_kwok() {
  local out=$TESTENV_CACHE/bin
  if [ ! -f "$out/kwok-$KWOK_VERSION-stages.yaml" ]; then
    local dir stages=kustomize/stage
    dir=$(go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    mkdir -p "$out"
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"
      cat "$dir/$stages/$f"
    done >"$out/kwok-$KWOK_VERSION-stages.yaml.tmp"
    mv "$out/kwok-$KWOK_VERSION-stages.yaml.tmp" "$out/kwok-$KWOK_VERSION-stages.yaml"
  fi
  [ -x "$out/kwok-$KWOK_VERSION" ] && return 0
  log "building kwok v$KWOK_VERSION"
  mkdir -p "$out"
  local gobin
  gobin=$(mktemp -d)
  CGO_ENABLED=0 GOBIN=$gobin go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  mv "$gobin/kwok" "$out/kwok-$KWOK_VERSION"
  rmdir "$gobin"
}

build_helm() {
  local out=$TESTENV_CACHE/bin minor
  [ -x "$out/helm-$HELM_VERSION" ] && return 0
  log "building helm v$HELM_VERSION"
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  mkdir -p "$out"
  local gobin
  gobin=$(mktemp -d)
  CGO_ENABLED=0 GOBIN=$gobin go install -trimpath -ldflags "-s -w \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor \
-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  mv "$gobin/helm" "$out/helm-$HELM_VERSION"
  rmdir "$gobin"
}

main() {
  mkdir -p "$TESTENV_CACHE"
  # One build at a time per cache: parallel `up`s wait here instead of compiling twice.
  exec 9>"$TESTENV_CACHE/.build.lock"
  flock 9
  local parts=("$@")
  [ ${#parts[@]} -gt 0 ] || parts=(etcd kubernetes kwok helm)
  local start=$SECONDS
  for p in "${parts[@]}"; do
    "build_$p"
  done
  log "binaries ready in $TESTENV_CACHE/bin ($((SECONDS - start))s)"
}

main "$@"
