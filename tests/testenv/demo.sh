#!/usr/bin/env bash
# The product's main job, locally: a real control plane (tests/testenv), the CRDs, the samples
# of config/samples in namespace `demo`, and the operator serving http://*.localhost:8080.
# It then shows what happened (client ID, minted and activated secret, association files, an
# OAuth token, the login page) and keeps the operator in the foreground: Ctrl-C stops it; the
# control plane keeps running (`tests/testenv/testenv.sh down` stops it).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/testenv
NS=demo PORT=${DEMO_PORT:-8080} ADMIN=${DEMO_ADMIN_PORT:-8081}

eval "$($here/testenv.sh up | tail -n 1)"
k() { "$here/testenv.sh" kubectl "$@"; }

cargo build --quiet
bin=target/debug/centralauth-operator

k apply --server-side -f crds/ >/dev/null
k wait --for condition=established crd --all --timeout=60s >/dev/null
k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
# The Deployment that the OnRollout sample rolls (KWOK runs its Pods on a fake node).
k -n "$NS" create deployment example-web --image=example/web:1 --dry-run=client -o yaml | k apply -f - >/dev/null
k -n "$NS" apply -f config/samples/ >/dev/null

"$bin" run --base-domain localhost --public-scheme http --public-port "$PORT" \
  --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" \
  --namespace "$NS" --watch-namespace "$NS" &
operator=$!
trap 'kill $operator 2>/dev/null; wait $operator 2>/dev/null' EXIT INT TERM
until curl -sf -o /dev/null "http://127.0.0.1:$ADMIN/readyz"; do
  kill -0 $operator 2>/dev/null || { echo "the operator exited" >&2; exit 1; }
  sleep 0.5
done
# The Immediate and the stamped OnRollout samples both activate; wait for the record and the
# credentials Secret that apps mount.
until [ -n "$(k -n "$NS" get organization example -o jsonpath='{.status.activeSecret.name}')" ] &&
  k -n "$NS" get secret example-credentials >/dev/null 2>&1; do sleep 0.5; done

secret_key() { k -n "$NS" get secret example-credentials -o "jsonpath={.data.$1}" | base64 -d; }
CID=$(secret_key client_id)
SECRET=$(secret_key client_secret)
ISSUER=$(k -n "$NS" get organization example -o jsonpath='{.status.issuer}')
FP=$(k -n "$NS" get clientsecret example-2026-11 -o jsonpath='{.status.fingerprint}')
CHALLENGE=$(printf %s "demo-verifier-0123456789-0123456789-0123456789" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')

cat <<TXT

=== centralauth-operator is running (namespace $NS, issuer $ISSUER) ===
$(k -n "$NS" get organizations,clientsecrets,nativeapps)

--- An OAuth token for the organization's client ID, with the active secret read from the
--- credentials Secret apps mount (kubectl -n $NS get secret example-credentials):
\$ curl -s -u "\$CID:\$SECRET" -d grant_type=client_credentials $ISSUER/oauth2/token
$(curl -s -u "$CID:$SECRET" -d grant_type=client_credentials "$ISSUER/oauth2/token" | cut -c1-160)…

--- Discovery and the association files the NativeApps need:
\$ curl -s $ISSUER/.well-known/openid-configuration
$(curl -s "$ISSUER/.well-known/openid-configuration" | cut -c1-160)…
\$ curl -s -H 'Host: app.example.com' http://127.0.0.1:$PORT/.well-known/apple-app-site-association
$(curl -s -H 'Host: app.example.com' "http://127.0.0.1:$PORT/.well-known/apple-app-site-association")

Log in (user demo@example.com, password "correct horse battery staple"); the browser lands on
http://localhost:3000/api/auth/callback?code=… (nothing listens there: read the code in the URL):
  $ISSUER/login?client_id=$CID&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%3A3000%2Fapi%2Fauth%2Fcallback&state=demo&code_challenge=$CHALLENGE&code_challenge_method=S256

Rotate ("Activate later"): the fingerprint, never the secret, activates example-2026-11:
  kubectl -n $NS annotate clientsecret example-2026-11 centralauth.io/activate=$FP

In another shell:
  export KUBECONFIG=$KUBECONFIG
  alias kubectl="$PWD/$here/testenv.sh kubectl"
  kubectl -n $NS get org,csec,na -o wide; kubectl -n $NS get events
  kubectl explain clientsecret.spec.activation
  curl -s http://127.0.0.1:$ADMIN/metrics | grep ^centralauth_
Ctrl-C stops the operator.
TXT
wait $operator
