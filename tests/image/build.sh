#!/usr/bin/env bash
# Builds the centralauth-operator container image on this machine without pulling anything:
# `buildah from scratch` + the root filesystem of tests/image/rootfs.sh (the binary, exactly the
# shared libraries it links, the CA bundle, a passwd entry for UID 65532), tagged
# localhost/centralauth-operator:<version> (the version of Cargo.toml, which is the chart's
# appVersion: the chart's default image) and saved as an OCI archive under target/image/.
# The Containerfile builds the same image where base images can be pulled.
#
#   tests/image/build.sh                   cargo build --release, then the image :<version>
#   tests/image/build.sh --debug           the debug binary instead (IMAGE_PROFILE=debug does the
#                                          same), tagged :<version>-debug
#   tests/image/build.sh --binary PATH     package PATH as it is, without running cargo (the
#                                          tests pass the debug binary they already built)
#   IMAGE=registry.example.com/team/centralauth-operator:0.1.0 tests/image/build.sh
#                                          another name for the image
#   tests/image/build.sh --print-image     print the name it would build, build nothing
#
# Needs buildah (Debian: apt-get install buildah) and ldd. Prints the image name, its ID, the
# archive, and the sizes; the last lines are `image=…`, `id=…` and `archive=…`.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

profile=${IMAGE_PROFILE:-release}
binary=
print_only=
while [ $# -gt 0 ]; do
  case $1 in
    --debug) profile=debug ;;
    --release) profile=release ;;
    --print-image) print_only=1 ;;
    --binary)
      [ $# -ge 2 ] || { echo "--binary needs a path" >&2; exit 2; }
      binary=$2
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) echo "unknown argument $1 (see $0 --help)" >&2; exit 2 ;;
  esac
  shift
done
case $profile in
  release | debug) ;;
  *) echo "IMAGE_PROFILE must be release or debug, not $profile" >&2; exit 2 ;;
esac
# The package's version and metadata, from the [package] table of Cargo.toml.
package_field() { sed -n '/^\[package\]/,/^\[/ s/^'"$1"' = "\(.*\)"$/\1/p' Cargo.toml | head -n 1; }
version=$(package_field version)
[ -n "$version" ] || { echo "no version in Cargo.toml" >&2; exit 1; }
tag=$version
[ "$profile" = release ] || tag=$version-$profile
image=${IMAGE:-localhost/centralauth-operator:$tag}
if [ -n "$print_only" ]; then
  echo "$image"
  exit 0
fi
command -v buildah >/dev/null || { echo "buildah is missing: apt-get install buildah" >&2; exit 1; }

if [ -z "$binary" ]; then
  flags=(--locked --bin centralauth-operator)
  [ "$profile" = release ] && flags+=(--release)
  cargo build "${flags[@]}"
  binary=target/$profile/centralauth-operator
fi

work=target/image
mkdir -p "$work"
rootfs=$work/rootfs-$tag
# Timestamps of the commit, so the same binary gives the same image.
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
SOURCE_DATE_EPOCH=$epoch tests/image/rootfs.sh "$binary" "$rootfs"

labels=(
  --label "org.opencontainers.image.title=centralauth-operator"
  --label "org.opencontainers.image.description=$(package_field description)"
  --label "org.opencontainers.image.version=$version"
  --label "org.opencontainers.image.licenses=$(package_field license)"
)
if revision=$(git rev-parse HEAD 2>/dev/null); then
  labels+=(--label "org.opencontainers.image.revision=$revision")
fi
# The source label names where this checkout came from (the project publishes no fixed URL).
if source=$(git remote get-url origin 2>/dev/null) && [ -n "$source" ]; then
  labels+=(--label "org.opencontainers.image.source=$source")
fi

previous=$(buildah images --quiet --noheading "$image" 2>/dev/null || true)
container=$(buildah from --quiet scratch)
trap 'buildah rm "$container" >/dev/null 2>&1 || true' EXIT
buildah copy --quiet "$container" "$rootfs" / >/dev/null
buildah config \
  --env PATH=/usr/local/bin \
  --user 65532:65532 \
  --workingdir / \
  --entrypoint '["/usr/local/bin/centralauth-operator"]' \
  --cmd '["run"]' \
  --port 8080/tcp --port 8081/tcp \
  "${labels[@]}" \
  "$container"
id=$(buildah commit --quiet --rm --timestamp "$epoch" "$container" "$image")
trap - EXIT
# The previous build of this name is now untagged: remove it (kept if a container uses it).
if [ -n "$previous" ] && [ "${id#"$previous"}" = "$id" ]; then
  buildah rmi "$previous" >/dev/null 2>&1 || true
fi

archive=$work/centralauth-operator-$tag.oci.tar
rm -f "$archive"
buildah push --quiet "$id" "oci-archive:$archive:$image" >/dev/null

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
unpacked=$(du -sb "$rootfs" | cut -f1)
compressed=$(stat -c %s "$archive")
echo "built $image from $binary"
echo "size: $(mib "$unpacked") unpacked, $(mib "$compressed") compressed (the archive's gzipped layer: what a pull downloads)"
echo "image=$image"
echo "id=$id"
echo "archive=$archive"
