#!/usr/bin/env python3
"""Token endpoint throughput, next to a bare axum handler on the same machine (the ceiling).

Not a test: prints figures and ratios. Needs wrk (apt), the test control plane
(tests/testenv/testenv.sh) and the debug binaries (cargo build --bin centralauth-operator
--examples; set PROFILE=release after `cargo build --release --examples` for production-like
figures). Everything runs on 127.0.0.1 and stops by itself.

    python3 tests/bench/token_bench.py [seconds] [--store memory|redis|both] [--orgs N] [--rounds N]

Measures, each with wrk -t2 -c16 --latency for `seconds` (default 5), in `--rounds` rounds
(default 3) per store whose order alternates, so the ceiling and the operator share whatever
else the machine is doing; prints medians, and each endpoint's fraction of the ceiling as the
median of the rounds' own ratios (`--store` default memory; `both` runs memory then Redis and
prints the Redis figures as a ratio of the memory ones; Redis is Debian's redis-server, started
here on a loopback port without persistence):
  1. client_credentials at /o/<cid>/oauth2/token (Basic auth; verified once, then cached);
  2. authorization_code exchange at the same endpoint, each request a fresh code (minted
     beforehand through /oauth2/authorize with a session cookie; codes live 60 s);
  3. the bare axum handler (tests/bench/axum_baseline.rs: the same POST, a small JSON answer);
plus tests/bench/verify.rs, the bench_verify example (cold argon2id vs cached verification).
With --orgs N the namespace also holds N other Organizations with a ClientSecret each (all
minted before wrk starts): how lookups in the caches scale with the number of tenants.
"""

import argparse, base64, concurrent.futures, hashlib, json, os, re, shutil, socket, subprocess, tempfile, time
import urllib.parse, http.client

import benchlib as b
from benchlib import kubectl, sh, free_port, wait_http

BIN = b.binary_dir()
# The operator binary under test (BENCH_OPERATOR measures another build, e.g. a saved baseline).
OPERATOR = b.operator_binary()
_parser = argparse.ArgumentParser(description="Token endpoint throughput next to a bare axum handler.")
_parser.add_argument("seconds", nargs="?", type=int, default=5, help="wrk duration of each run (default 5)")
_parser.add_argument("--store", choices=["memory", "redis", "both"], default="memory",
                     help="session store of the operator (both: memory, then Redis, with ratios)")
_parser.add_argument("--orgs", type=int, default=0, help="other Organizations (each with a ClientSecret) in the caches")
_parser.add_argument("--rounds", type=int, default=3,
                     help="alternating rounds of ceiling and operator per store (default 3); medians are printed")
OPTIONS = _parser.parse_args()
SECONDS = OPTIONS.seconds


def main():
    env = b.testenv_up()
    ns = b.random_name("bench-")
    cid = b.random_name("bench-", 10)
    pw_hash = sh(OPERATOR, "hash-password", input="pw-bench\n").strip()
    kubectl("create", "namespace", ns)
    manifest = {
        "apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "users", "namespace": ns},
             "stringData": {"users": f"bench@example.com:{pw_hash}\n"}},
            {"apiVersion": "centralauth.io/v1alpha1", "kind": "Organization", "metadata": {"name": "bench", "namespace": ns},
             "spec": {"displayName": "Bench", "clientId": cid, "allowedOrigins": ["https://app.example.com"],
                      "redirectUris": ["https://app.example.com/cb"], "loginMethods": {"passwords": {"secretName": "users"}}}},
            {"apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret", "metadata": {"name": "cs1", "namespace": ns},
             "spec": {"organizationRef": {"name": "bench"}, "activation": "Immediate"}},
        ]}
    for i in range(OPTIONS.orgs):
        manifest["items"] += [
            {"apiVersion": "centralauth.io/v1alpha1", "kind": "Organization", "metadata": {"name": f"other{i}", "namespace": ns},
             "spec": {"displayName": f"Other {i}", "subdomain": f"other{i}-{cid}", "allowedOrigins": [f"https://app{i}.example.com"],
                      "loginMethods": {"passwords": {"secretName": "users"}}}},
            {"apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret", "metadata": {"name": f"other{i}", "namespace": ns},
             "spec": {"organizationRef": {"name": f"other{i}"}, "activation": "Manual"}},
        ]
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps(manifest))

    stores = ["memory", "redis"] if OPTIONS.store == "both" else [OPTIONS.store]
    base_port = free_port()
    baseline = subprocess.Popen([os.path.join(BIN, "examples", "bench_baseline"), str(base_port)])
    ceiling_url = f"http://127.0.0.1:{base_port}/token"
    redis = None
    results = {}
    try:
        wait_http(ceiling_url, method="POST")
        for store in stores:
            store_url = None
            if store == "redis":
                redis = start_redis()
                store_url = f"redis://127.0.0.1:{redis[1]}/0"
            results[store] = measure(env, ns, cid, store_url, ceiling_url, baseline.pid)
    finally:
        baseline.terminate()
        if redis:
            redis[0].terminate()
            redis[0].wait()
            shutil.rmtree(redis[2], ignore_errors=True)
        kubectl("delete", "namespace", ns, "--wait=false")
    report(results)
    print(sh(os.path.join(BIN, "examples", "bench_verify"), "20"))


def report(results):
    """Medians over the rounds; "of ceiling" is the median of each round's own ratio."""
    print(f"operator={OPERATOR}  wrk -t2 -c16 -d{SECONDS}s  {OPTIONS.rounds} alternating rounds, medians"
          f"  other organizations={OPTIONS.orgs}  (2 cores shared by server, store and load generator)")
    print(f"{'store':<8}{'endpoint':<22}{'ok req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}{'of ceiling':>12}{'of memory':>11}")
    for store, by_endpoint in results.items():
        for name, rounds in by_endpoint.items():
            rps = b.median([r.rps for r, _ in rounds])
            p50, p99 = b.median([r.p50 for r, _ in rounds]), b.median([r.p99 for r, _ in rounds])
            of_ceiling = b.median([r.rps / c.rps for r, c in rounds])
            vs = results.get("memory", {}).get(name)
            ratio = f"{rps / b.median([r.rps for r, _ in vs]):>10.1%}" if vs and store != "memory" else ""
            cpu = b.median([r.cpu_us for r, _ in rounds])
            print(f"{store:<8}{name:<22}{rps:>10.0f}{p50:>9.2f}{p99:>9.2f}{cpu:>12.1f}{of_ceiling:>11.1%} {ratio}")
        ceilings = [c for r, c in next(iter(by_endpoint.values()))]
        print(f"{'':<8}{'bare axum handler':<22}{b.median([c.rps for c in ceilings]):>10.0f}{'':>18}"
              f"{b.median([c.cpu_us for c in ceilings]):>12.1f}")
    print("(authorization_code counts only successful exchanges; each code is single-use)")


def start_redis():
    """Debian's redis-server on a free loopback port, no persistence: (process, port, dir)."""
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is missing: run tests/clients/install.sh (or apt-get install redis-server)")
    port, tmp = free_port(), tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return proc, port, tmp
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit("redis-server never answered PING")


def measure(env, ns, cid, store_url, ceiling_url, ceiling_pid):
    """Starts the operator (on `store_url`, else memory) and runs the rounds: per endpoint a
    list of (operator run, ceiling run of the same round)."""
    port, admin = free_port(), free_port()
    args = [OPERATOR, "run", "--base-domain", "localhost",
            "--public-scheme", "http", "--public-port", str(port), "--listen", f"127.0.0.1:{port}",
            "--admin-listen", f"127.0.0.1:{admin}", "--namespace", ns, "--watch-namespace", ns,
            "--leader-elect=false"]
    if store_url:
        args += ["--store", store_url, "--store-key-prefix", f"{ns}:"]
    proc = subprocess.Popen(args, env=dict(env, RUST_LOG=os.environ.get("BENCH_RUST_LOG", "info")), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        issuer = f"http://localhost:{port}/o/{cid}"
        wait_http(f"{issuer}/oauth2/jwks")
        wait_http(f"http://127.0.0.1:{admin}/readyz")
        # The operator's own controller mints and activates the secret; read it where apps do.
        deadline = time.time() + 60
        while kubectl("get", "clientsecret", "cs1", "-n", ns, "-o", "jsonpath={.status.phase}") != "Active":
            if time.time() > deadline:
                raise SystemExit("the ClientSecret never became Active")
            time.sleep(0.2)
        wait_minted(ns, OPTIONS.orgs + 1)
        secret = base64.b64decode(kubectl("get", "secret", "cs1", "-n", ns, "-o", "jsonpath={.data.client_secret}")).decode()
        basic = base64.b64encode(f"{cid}:{secret}".encode()).decode()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        cc_lua = b.post_lua("grant_type=client_credentials", dict(form, Authorization=f"Basic {basic}"))
        ceiling_lua = b.post_lua("grant_type=client_credentials", form)
        time.sleep(1)  # Secret watchers
        verifier = "b" * 64
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        results = {"client_credentials": [], "authorization_code": []}
        for round_no in range(OPTIONS.rounds):
            # Codes live 60 s: mint them right before the round that uses them.
            code_lua = exchange_lua(mint_codes(port, cid, challenge, issuer), basic, verifier)
            plan = [("ceiling", ceiling_url, ceiling_lua), ("authorization_code", f"{issuer}/oauth2/token", code_lua),
                    ("client_credentials", f"{issuer}/oauth2/token", cc_lua)]
            pids = {"ceiling": ceiling_pid}
            runs = {name: b.wrk(url, lua, SECONDS, pid=pids.get(name, proc.pid))
                    for name, url, lua in (plan if round_no % 2 else plan[::-1])}
            for name in results:
                results[name].append((runs[name], runs["ceiling"]))
        return results
    finally:
        proc.terminate()
        proc.wait()


def exchange_lua(codes, basic, verifier):
    """wrk script exchanging each code once: thread t takes codes t+1, t+3, … (a code sent
    twice is a replay, which revokes the first exchange's tokens)."""
    lua_codes = "codes = {" + ",".join(f'"{c}"' for c in codes) + "}\n"
    return lua_codes + f'''
local i = 0
request = function()
  i = i + 1
  local c = codes[((i - 1) * 2 + tid) % #codes + 1]
  return wrk.format("POST", nil, {{["Authorization"] = "Basic {basic}", ["Content-Type"] = "application/x-www-form-urlencoded"}},
    "grant_type=authorization_code&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&code_verifier={verifier}&code=" .. c)
end
''' + b.COUNT_LUA


def wait_minted(ns, count):
    """Waits until `count` ClientSecrets carry a fingerprint: no reconcile competes with wrk."""
    deadline = time.time() + 60 + count * 0.1
    while len(kubectl("get", "clientsecrets", "-n", ns, "-o", "jsonpath={.items[*].status.fingerprint}").split()) < count:
        if time.time() > deadline:
            raise SystemExit(f"fewer than {count} ClientSecrets were minted in time")
        time.sleep(1)


def mint_codes(port, cid, challenge, issuer):
    """Logs in once (password form), then mints codes with the session cookie (no argon2)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    q = urllib.parse.urlencode({"client_id": cid, "response_type": "code", "redirect_uri": "https://app.example.com/cb",
                                "code_challenge": challenge, "code_challenge_method": "S256", "scope": "openid"})
    path = f"/o/{cid}/oauth2/authorize?{q}"
    conn.request("GET", path, headers={"Host": f"localhost:{port}"})
    r = conn.getresponse()
    html = r.read().decode()
    csrf_cookie = [v for k, v in r.getheaders() if k.lower() == "set-cookie" and v.startswith("ca_csrf=")][0].split(";")[0]
    field = lambda n: re.search(f'name="{n}" value="([^"]*)"', html).group(1)
    body = urllib.parse.urlencode({"login": field("login"), "csrf": field("csrf"), "email": "bench@example.com", "password": "pw-bench"})
    conn.request("POST", "/login", body=body, headers={"Host": f"localhost:{port}", "Cookie": csrf_cookie,
                                                        "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    session = [v for k, v in r.getheaders() if k.lower() == "set-cookie" and v.startswith("ca_session=")][0].split(";")[0]
    # Enough codes for wrk not to run out (more than either store redeems in SECONDS), minted
    # by 4 connections within 40 s so the first ones are still valid (60 s) when wrk uses them.
    deadline = time.time() + 40

    def mint(n):
        c, out = http.client.HTTPConnection("127.0.0.1", port), []
        while len(out) < n and time.time() < deadline:
            c.request("GET", path, headers={"Host": f"localhost:{port}", "Cookie": session})
            r = c.getresponse()
            r.read()
            out.append(urllib.parse.parse_qs(urllib.parse.urlparse(r.getheader("location")).query)["code"][0])
        return out

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return [c for part in pool.map(mint, [SECONDS * 5000] * 4) for c in part]

if __name__ == "__main__":
    main()
