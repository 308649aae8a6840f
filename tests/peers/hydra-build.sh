#!/usr/bin/env bash
# Builds Ory Hydra (the token benchmark's peer and the upstream OIDC provider of the login
# tests) from the Go module proxy and caches the binary outside the checkout, keyed by version:
#   $PEERS_CACHE/hydra-<version>   (default ~/.cache/centralauth-peers)
# Prints the binary's path as its last line. Skips the build when the binary is there.
#
# `go install github.com/ory/hydra/v2@v2.3.0` is refused (its go.mod has replace directives,
# one pointing at a directory the module zip lacks), so a wrapper module pins those two
# replacements to proxy versions and builds the module's main package. About 4 minutes of
# compile on 2 cores with a cold Go cache.
set -euo pipefail
HYDRA_VERSION=${HYDRA_VERSION:-v2.3.0}
PEERS_CACHE=${PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/centralauth-peers}
bin="$PEERS_CACHE/hydra-$HYDRA_VERSION"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$PEERS_CACHE"
exec 9>"$PEERS_CACHE/.hydra.lock"
flock 9
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
work=$(mktemp -d "$PEERS_CACHE/hydra-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
cat > go.mod <<MOD
module hydrawrap

go 1.26

require github.com/ory/hydra/v2 $HYDRA_VERSION

replace github.com/ory/hydra-client-go/v2 => github.com/ory/hydra-client-go/v2 v2.2.1

replace github.com/gobuffalo/pop/v6 => github.com/ory/pop/v6 v6.2.1-0.20241121111754-e5dfc0f3344b
MOD
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/ory/hydra/v2"
GO
started=$SECONDS
echo "[hydra] resolving modules" >&2
GOFLAGS=-mod=mod go mod tidy >&2
echo "[hydra] building $HYDRA_VERSION (a few minutes on 2 cores)" >&2
CGO_ENABLED=1 GOFLAGS=-mod=mod go build -tags sqlite,sqlite_omit_load_extension \
  -ldflags "-X github.com/ory/hydra/v2/driver/config.Version=$HYDRA_VERSION" \
  -o "$bin.tmp" github.com/ory/hydra/v2
mv "$bin.tmp" "$bin"
echo "[hydra] built in $((SECONDS - started))s" >&2
echo "$bin"
