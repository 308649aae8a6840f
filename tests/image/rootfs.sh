#!/usr/bin/env bash
# Assembles the root filesystem of the centralauth-operator image in DIR from BINARY:
#
#   /usr/local/bin/centralauth-operator     the binary
#   <each library `ldd BINARY` lists>        at the path ldd prints (dynamic loader included),
#                                            so no loader cache is needed
#   /etc/ssl/certs/ca-certificates.crt      the CA bundle (association check, SMTP and Redis TLS
#                                            verify against it; override with CA_BUNDLE=<file>)
#   /etc/passwd                             one entry: nonroot, UID/GID 65532
#
# and nothing else: no shell, no package manager, no writable directory. Every file is owned by
# root and read-only for the UID the image runs as. tests/image/build.sh and the Containerfile's
# build stage both use this script, so both images hold the same files.
#
#   tests/image/rootfs.sh target/release/centralauth-operator target/image/rootfs
set -euo pipefail
umask 022

if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY DIR" >&2
  exit 2
fi
binary=$1 dir=$2
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -f "$binary" ] && [ -x "$binary" ] || { echo "$binary is not an executable file" >&2; exit 1; }
[ -s "$ca" ] || { echo "no CA bundle at $ca: install the ca-certificates package or set CA_BUNDLE" >&2; exit 1; }
command -v ldd >/dev/null || { echo "ldd is missing (Debian package libc-bin)" >&2; exit 1; }
command -v chroot >/dev/null || { echo "chroot is missing (Debian package coreutils)" >&2; exit 1; }

# The libraries the dynamic loader will open. A statically linked binary has none.
if ! listing=$(ldd "$binary" 2>&1); then
  case $listing in
    *"not a dynamic executable"* | *"statically linked"*) listing= ;;
    *) echo "ldd $binary failed: $listing" >&2; exit 1 ;;
  esac
fi
if grep -q 'not found' <<<"$listing"; then
  echo "$binary links libraries this machine lacks:" >&2
  grep 'not found' <<<"$listing" >&2
  exit 1
fi
# "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" and "/lib64/ld-linux-x86-64.so.2 (0x…)";
# linux-vdso.so.1 lives in the kernel. (A command substitution, so a failure stops the script.)
libs=$(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$listing" | sort -u)

rm -rf "$dir"
mkdir -p "$dir"
install -D -m 0755 "$binary" "$dir/usr/local/bin/centralauth-operator"
for lib in $libs; do
  install -D -m 0755 "$lib" "$dir$lib" # a copy of the file, not of a symlink
done
install -D -m 0644 "$ca" "$dir/etc/ssl/certs/ca-certificates.crt"
printf 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' >"$dir/etc/passwd"
chmod 0644 "$dir/etc/passwd"
# The root filesystem must run the binary on its own: no library missing, none borrowed from
# the host. chroot needs root (as in a container build) or a user namespace.
if [ "$(id -u)" = 0 ]; then
  run=(chroot "$dir")
elif unshare --user --map-root-user true 2>/dev/null; then
  run=(unshare --user --map-root-user chroot "$dir")
else
  run=()
  echo "warning: cannot check that $dir runs the binary (needs root or user namespaces)" >&2
fi
if [ ${#run[@]} -gt 0 ] && ! "${run[@]}" /usr/local/bin/centralauth-operator --version >/dev/null; then
  echo "the root filesystem in $dir does not run the binary (a library missing from ldd's list?)" >&2
  exit 1
fi
# Reproducible timestamps when asked (https://reproducible-builds.org/specs/source-date-epoch/).
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
  find "$dir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
fi
