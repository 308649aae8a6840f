#!/usr/bin/env python3
"""The operator's token and introspection endpoints next to Ory Hydra v2.3.0, side by side.

Not a test: prints figures and ratios. Hydra is built from the Go module proxy by
tests/peers/hydra-build.sh (cached in ~/.cache/centralauth-peers) and runs with its defaults —
nothing is tuned down: client secrets hashed with its default hasher, its default JWT signing
key (printed from its JWKS), a SQLite database on /dev/shm (`DSN=memory` loses its data when wrk
drops connections). Two Hydras run, one issuing JWT access tokens and one opaque ones
(`STRATEGIES_ACCESS_TOKEN`), each with a client_credentials client using client_secret_basic.
The operator (release build unless PROFILE/BENCH_OPERATOR say otherwise) runs against the test
control plane with one Organization and an Immediate ClientSecret.

    PROFILE=release python3 tests/bench/hydra_bench.py [seconds] [--rounds N]

Each round runs wrk -t2 -c16 for `seconds` (default 5) against every target, in alternating
order (reversed every other round) so a noisy neighbour hits both sides alike; the table shows
the median of the rounds and the operator/Hydra ratio.
"""

import argparse, base64, json, os, shutil, subprocess, tempfile, time, urllib.request

import benchlib as b

HYDRA_DEFAULTS = ("client secrets hashed with Hydra's default hasher (pbkdf2-sha256, 25,000 "
                  "iterations: oauth2.hashers defaults, not overridden here)")


def start_hydra(binary, strategy):
    """A Hydra with `strategy` access tokens and one client: a dict of what the rounds need."""
    public, admin = b.free_port(), b.free_port()
    db = tempfile.mktemp(prefix=f"bench-hydra-{strategy}-", suffix=".db", dir="/dev/shm")
    env = dict(os.environ, DSN=f"sqlite://{db}?_fk=true", SECRETS_SYSTEM="bench-system-secret-" + "x" * 32,
               URLS_SELF_ISSUER=f"http://127.0.0.1:{public}/", SERVE_PUBLIC_PORT=str(public),
               SERVE_ADMIN_PORT=str(admin), STRATEGIES_ACCESS_TOKEN=strategy, LOG_LEVEL="error")
    b.sh(binary, "migrate", "sql", "up", "-e", "--yes", env=env)
    proc = subprocess.Popen([binary, "serve", "all", "--dev"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    b.wait_http(f"http://127.0.0.1:{admin}/health/ready")
    client = json.loads(b.sh(binary, "create", "oauth2-client", "--endpoint", f"http://127.0.0.1:{admin}",
                             "--grant-type", "client_credentials", "--token-endpoint-auth-method",
                             "client_secret_basic", "--format", "json", env=env))
    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    token_url = f"http://127.0.0.1:{public}/oauth2/token"
    token = fetch_token(token_url, basic)  # also makes Hydra generate its signing key now
    return {"proc": proc, "db": db, "basic": basic, "token_url": token_url, "token": token,
            "introspect_url": f"http://127.0.0.1:{admin}/admin/oauth2/introspect",
            "jwks_url": f"http://127.0.0.1:{public}/.well-known/jwks.json"}


def fetch_token(url, basic):
    req = urllib.request.Request(url, data=b"grant_type=client_credentials", method="POST",
                                 headers={"Authorization": f"Basic {basic}",
                                          "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)["access_token"]


def signing_key(jwks_url):
    """`alg kty bits` of the first key Hydra publishes (what signs its JWT access tokens)."""
    with urllib.request.urlopen(jwks_url, timeout=10) as r:
        key = json.load(r)["keys"][0]
    n = key.get("n")
    bits = len(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))) * 8 if n else key.get("crv")
    return f"{key.get('alg')} {key.get('kty')} {bits}"


def start_operator(binary, env):
    """The operator with one Organization and an active secret: a dict of what the rounds need."""
    ns, cid = b.random_name("hbench-"), b.random_name("hbench-", 10)
    b.kubectl("create", "namespace", ns)
    manifest = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "centralauth.io/v1alpha1", "kind": "Organization", "metadata": {"name": "bench", "namespace": ns},
         "spec": {"displayName": "Bench", "clientId": cid, "allowedOrigins": ["https://app.example.com"],
                  "loginMethods": {"email": {"smtpHost": "127.0.0.1", "from": "login@example.com"}}}},
        {"apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret", "metadata": {"name": "cs1", "namespace": ns},
         "spec": {"organizationRef": {"name": "bench"}, "activation": "Immediate"}}]}
    b.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(manifest))
    port, admin = b.free_port(), b.free_port()
    proc = subprocess.Popen([binary, "run", "--base-domain", "localhost", "--public-scheme", "http",
                             "--public-port", str(port), "--listen", f"127.0.0.1:{port}",
                             "--admin-listen", f"127.0.0.1:{admin}", "--namespace", ns,
                             "--watch-namespace", ns, "--leader-elect=false"],
                            env=dict(env, RUST_LOG=os.environ.get("BENCH_RUST_LOG", "info")), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    issuer = f"http://localhost:{port}/o/{cid}"
    b.wait_http(f"http://127.0.0.1:{admin}/readyz", timeout=60)
    deadline = time.time() + 60
    while b.kubectl("get", "clientsecret", "cs1", "-n", ns, "-o", "jsonpath={.status.phase}") != "Active":
        if time.time() > deadline:
            raise SystemExit("the ClientSecret never became Active")
        time.sleep(0.2)
    secret = base64.b64decode(b.kubectl("get", "secret", "cs1", "-n", ns, "-o", "jsonpath={.data.client_secret}")).decode()
    basic = base64.b64encode(f"{cid}:{secret}".encode()).decode()
    token_url = f"{issuer}/oauth2/token"
    for _ in range(50):  # until the server's caches hold the activated secret
        try:
            token = fetch_token(token_url, basic)
            break
        except Exception:
            time.sleep(0.2)
    else:
        raise SystemExit("the operator never issued a token")
    return {"proc": proc, "ns": ns, "basic": basic, "token_url": token_url, "token": token,
            "introspect_url": f"{issuer}/oauth2/introspect"}


def targets(op, jwt, opaque):
    """(row, side, url, wrk script, server pid) of every measured endpoint."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cc = lambda t: b.post_lua("grant_type=client_credentials", dict(form, Authorization=f"Basic {t['basic']}"))
    return [
        ("client_credentials (JWT)", "operator", op["token_url"], cc(op), op["proc"].pid),
        ("client_credentials (JWT)", "hydra", jwt["token_url"], cc(jwt), jwt["proc"].pid),
        ("client_credentials (opaque)", "hydra", opaque["token_url"], cc(opaque), opaque["proc"].pid),
        ("introspection (JWT)", "operator", op["introspect_url"],
         b.post_lua(f"token={op['token']}", dict(form, Authorization=f"Basic {op['basic']}")), op["proc"].pid),
        ("introspection (JWT)", "hydra", jwt["introspect_url"], b.post_lua(f"token={jwt['token']}", form),
         jwt["proc"].pid),
        ("introspection (opaque)", "hydra", opaque["introspect_url"], b.post_lua(f"token={opaque['token']}", form),
         opaque["proc"].pid),
    ]


def report(results, key_info):
    print(f"Hydra v2.3.0 defaults: {HYDRA_DEFAULTS}; JWT access tokens signed {key_info}; "
          "introspection on its admin port (no client authentication), the operator's with Basic client auth.")
    print(f"{'endpoint':<30}{'side':<10}{'ok req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}{'operator/this':>15}")
    ops = {row: runs for (row, side), runs in results.items() if side == "operator"}
    for (row, side), runs in results.items():
        rps = b.median([r.rps for r in runs])
        p50, p99 = b.median([r.p50 for r in runs]), b.median([r.p99 for r in runs])
        family = row.split(" (")[0]
        op_row = next((r for r in ops if r.startswith(family)), None)
        ratio = "" if side == "operator" or not op_row else f"{b.median([r.rps for r in ops[op_row]]) / rps:.1f}x"
        cpu = b.median([r.cpu_us for r in runs])
        print(f"{row:<30}{side:<10}{rps:>10.0f}{p50:>9.2f}{p99:>9.2f}{cpu:>12.1f}{ratio:>15}")
        failed = sum(r.requests - r.ok for r in runs)
        if failed:
            print(f"{'':<30}{'':<10}  ({failed} non-200 answers)")


def main():
    parser = argparse.ArgumentParser(description="The operator next to Ory Hydra, side by side.")
    parser.add_argument("seconds", nargs="?", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    hydra_bin = b.sh(os.path.join(b.ROOT, "tests/peers/hydra-build.sh")).strip().splitlines()[-1]
    env = b.testenv_up()
    procs, dbs, ns = [], [], None
    try:
        jwt, opaque = start_hydra(hydra_bin, "jwt"), start_hydra(hydra_bin, "opaque")
        procs += [jwt["proc"], opaque["proc"]]
        dbs += [jwt["db"], opaque["db"]]
        op = start_operator(b.operator_binary("release"), env)
        procs.append(op["proc"])
        ns = op["ns"]
        results = {}
        plan = targets(op, jwt, opaque)
        for round_no in range(opts.rounds):
            for row, side, url, lua, pid in plan if round_no % 2 == 0 else reversed(plan):
                results.setdefault((row, side), []).append(b.wrk(url, lua, opts.seconds, pid=pid))
        results = {t[:2]: results[t[:2]] for t in plan}
        print(f"operator={b.operator_binary('release')}  wrk -t2 -c16 -d{opts.seconds}s, {opts.rounds} alternating "
              "rounds, medians  (2 cores shared by the servers and wrk)")
        report(results, signing_key(jwt["jwks_url"]))
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        for db in dbs:
            for f in (db, db + "-wal", db + "-shm"):
                if os.path.exists(f):
                    os.unlink(f)
        if ns:
            b.kubectl("delete", "namespace", ns, "--wait=false")


if __name__ == "__main__":
    main()
