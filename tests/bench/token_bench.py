#!/usr/bin/env python3
"""Token endpoint throughput, next to a bare axum handler on the same machine (the ceiling).

Not a test: prints figures and ratios. Needs wrk (apt), the test control plane
(tests/testenv/testenv.sh) and the debug binaries (cargo build --bin centralauth-operator
--examples; set PROFILE=release after `cargo build --release --examples` for production-like
figures). Everything runs on 127.0.0.1 and stops by itself.

    python3 tests/bench/token_bench.py [seconds] [--store memory|redis|both] [--orgs N]

Measures, each with wrk -t2 -c16 for `seconds` (default 5), once per store (`--store`,
default memory; `both` runs memory then Redis and prints the Redis figures as a ratio of the
memory ones; Redis is Debian's redis-server, started here on a loopback port without
persistence):
  1. client_credentials at /o/<cid>/oauth2/token (Basic auth; verified once, then cached);
  2. authorization_code exchange at the same endpoint, each request a fresh code (minted
     beforehand through /oauth2/authorize with a session cookie; codes live 60 s);
  3. the bare axum handler (POST returning a small JSON body);
plus tests/bench/verify.rs, the bench_verify example (cold argon2id vs cached verification).
With --orgs N the namespace also holds N other Organizations with a ClientSecret each (all
minted before wrk starts): how lookups in the caches scale with the number of tenants.
"""

import argparse, base64, concurrent.futures, hashlib, json, os, random, re, shutil, socket, string, subprocess, sys, tempfile, time
import urllib.parse, urllib.request, http.client

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROFILE = os.environ.get("PROFILE", "debug")
BIN = os.path.join(ROOT, "target", PROFILE)
# The operator binary under test (BENCH_OPERATOR measures another build, e.g. a saved baseline).
OPERATOR = os.environ.get("BENCH_OPERATOR", os.path.join(BIN, "centralauth-operator"))
_parser = argparse.ArgumentParser(description="Token endpoint throughput next to a bare axum handler.")
_parser.add_argument("seconds", nargs="?", type=int, default=5, help="wrk duration of each run (default 5)")
_parser.add_argument("--store", choices=["memory", "redis", "both"], default="memory",
                     help="session store of the operator (both: memory, then Redis, with ratios)")
_parser.add_argument("--orgs", type=int, default=0, help="other Organizations (each with a ClientSecret) in the caches")
OPTIONS = _parser.parse_args()
SECONDS = OPTIONS.seconds
TESTENV = os.path.join(ROOT, "tests/testenv/testenv.sh")


def sh(*args, input=None):
    done = subprocess.run(args, input=input, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubectl(*args, input=None):
    return sh(TESTENV, "kubectl", *args, input=input)


def wait_http(url, timeout=30, method="GET"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=1)
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"{url} never answered")


def wrk(url, lua):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    out = sh("wrk", "-t2", "-c16", f"-d{SECONDS}s", "-s", f.name, url)
    ok = re.search(r"STATUS200 (\d+)", out)
    total = re.search(r"(\d+) requests in ([\d.]+)s", out)
    latency = re.search(r"Latency\s+(\S+)", out)
    n200 = int(ok.group(1)) if ok else int(total.group(1))
    return n200 / float(total.group(2)), latency.group(1), int(total.group(1)), n200


COUNT_LUA = """
local threads = {}
setup = function(thread) thread:set("tid", #threads) table.insert(threads, thread) end
ok = 0
response = function(status, headers, body) if status == 200 then ok = ok + 1 end end
done = function(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("ok") end
  io.write("STATUS200 " .. total .. "\\n")
end
"""


def main():
    env = dict(os.environ)
    env["KUBECONFIG"] = sh(TESTENV, "up").strip().splitlines()[-1].split("=", 1)[1]
    kubectl("apply", "--server-side", "-f", os.path.join(ROOT, "crds"))
    ns = "bench-" + "".join(random.choices(string.ascii_lowercase, k=6))
    cid = "bench-" + "".join(random.choices(string.ascii_lowercase, k=10))
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
    redis = None
    results = {}
    try:
        for store in stores:
            store_url = None
            if store == "redis":
                redis = start_redis()
                store_url = f"redis://127.0.0.1:{redis[1]}/0"
            results[store] = measure(env, ns, cid, store_url)
        wait_http(f"http://127.0.0.1:{base_port}/token", method="POST")
        ceiling = wrk(f"http://127.0.0.1:{base_port}/token", 'wrk.method = "POST"\n' + COUNT_LUA)
    finally:
        baseline.terminate()
        if redis:
            redis[0].terminate()
            redis[0].wait()
            shutil.rmtree(redis[2], ignore_errors=True)
        kubectl("delete", "namespace", ns, "--wait=false")
    print(f"operator={OPERATOR}  wrk -t2 -c16 -d{SECONDS}s  other organizations={OPTIONS.orgs}"
          "  (2 cores shared by server, store and load generator)")
    print(f"{'store':<8}{'endpoint':<22}{'ok req/s':>12}{'latency':>12}{'of ceiling':>12}{'of memory':>12}")
    for store, by_endpoint in results.items():
        for name, figures in by_endpoint.items():
            rps, lat = figures[0], figures[1]
            vs = results.get("memory", {}).get(name)
            ratio = f"{rps / vs[0]:>11.1%}" if vs and store != "memory" else f"{'':>11}"
            minted = f"  ({figures[4]} codes minted)" if len(figures) > 4 else ""
            print(f"{store:<8}{name:<22}{rps:>12.0f}{lat:>12}{rps / ceiling[0]:>11.1%} {ratio}{minted}")
    print(f"{'':<8}{'bare axum handler':<22}{ceiling[0]:>12.0f}{ceiling[1]:>12}{1:>11.1%}")
    print("(authorization_code counts only successful exchanges; each code is single-use)")
    print(sh(os.path.join(BIN, "examples", "bench_verify"), "20"))


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


def measure(env, ns, cid, store_url):
    """Starts the operator (on `store_url`, else memory), measures both grants, stops it."""
    port, admin = free_port(), free_port()
    args = [OPERATOR, "run", "--base-domain", "localhost",
            "--public-scheme", "http", "--public-port", str(port), "--listen", f"127.0.0.1:{port}",
            "--admin-listen", f"127.0.0.1:{admin}", "--namespace", ns, "--watch-namespace", ns,
            "--leader-elect=false"]
    if store_url:
        args += ["--store", store_url, "--store-key-prefix", f"{ns}:"]
    proc = subprocess.Popen(args, env=dict(env, RUST_LOG="warn"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        cc_lua = f'wrk.method = "POST"\nwrk.headers["Authorization"] = "Basic {basic}"\n' \
                 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n' \
                 'wrk.body = "grant_type=client_credentials"\n' + COUNT_LUA
        time.sleep(1)  # Secret watchers
        results = {"client_credentials": wrk(f"{issuer}/oauth2/token", cc_lua)}

        verifier = "b" * 64
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        codes = mint_codes(port, cid, challenge, issuer)
        lua_codes = "codes = {" + ",".join(f'"{c}"' for c in codes) + "}\n"
        code_lua = lua_codes + f'''
-- Each wrk thread has its own Lua state and counter: thread t takes codes t+1, t+3, … so no
-- code is sent twice (a second presentation is a replay, which revokes the first one's tokens).
local i = 0
request = function()
  i = i + 1
  local c = codes[((i - 1) * 2 + tid) % #codes + 1]
  return wrk.format("POST", nil, {{["Authorization"] = "Basic {basic}", ["Content-Type"] = "application/x-www-form-urlencoded"}},
    "grant_type=authorization_code&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&code_verifier={verifier}&code=" .. c)
end
''' + COUNT_LUA
        results["authorization_code"] = wrk(f"{issuer}/oauth2/token", code_lua)
        results["authorization_code"] += (len(codes),)
        return results
    finally:
        proc.terminate()
        proc.wait()


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
