#!/usr/bin/env bash
# Installs the third-party clients and servers the tests drive: Debian's chromium (browser
# test), wrk (benchmark), redis-server (the Redis store's tests, which start their own
# servers on loopback ports), and podman, buildah and runc with the CA bundle (the image test
# builds the image with tests/image/build.sh and runs it) when missing, the npm packages of tests/clients/node
# (openid-client, jose, playwright-core; from package-lock.json) and a Python venv with
# tests/clients/python's requirements (authlib, and aiosmtpd: the test SMTP server). Idempotent: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
for pair in chromium:chromium wrk:wrk redis-server:redis-server node:nodejs npm:npm \
  podman:podman buildah:buildah runc:runc; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

# npm ci only when the lockfile changed since the last install.
if ! cmp -s node/package-lock.json node/node_modules/.installed-package-lock.json 2>/dev/null; then
  (cd node && npm ci --no-audit --no-fund --loglevel=error)
  cp node/package-lock.json node/node_modules/.installed-package-lock.json
fi

if [ ! -x python/.venv/bin/python ]; then
  python3 -m venv python/.venv
fi
if ! cmp -s python/requirements.txt python/.venv/installed-requirements.txt 2>/dev/null; then
  python/.venv/bin/pip install -q -r python/requirements.txt
  cp python/requirements.txt python/.venv/installed-requirements.txt
fi
