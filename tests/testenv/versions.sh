# Versions of the test control plane. Sourced by build.sh and testenv.sh.
# kube-apiserver's minor matches the k8s-openapi feature in Cargo.toml (v1_35).
K8S_VERSION=${K8S_VERSION:-1.35.4}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
HELM_VERSION=${HELM_VERSION:-3.22.0}
# Binaries are cached outside the checkout, keyed by version, so clones and CI reuse them.
TESTENV_CACHE=${TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/centralauth-testenv}
