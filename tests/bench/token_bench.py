#!/usr/bin/env python3
"""Token endpoint throughput, next to a bare axum handler on the same machine (the ceiling).

Not a test: prints figures and ratios. Needs wrk (apt), the test control plane
(tests/testenv/testenv.sh) and the debug binaries (cargo build --bin centralauth-operator
--examples; set PROFILE=release after `cargo build --release --examples` for production-like
figures). Everything runs on 127.0.0.1 and stops by itself.

    python3 tests/bench/token_bench.py [seconds]

Measures, each with wrk -t2 -c16 for `seconds` (default 5):
  1. client_credentials at /o/<cid>/oauth2/token (Basic auth; verified once, then cached);
  2. authorization_code exchange at the same endpoint, each request a fresh code (minted
     beforehand through /oauth2/authorize with a session cookie; codes live 60 s);
  3. the bare axum handler (POST returning a small JSON body);
plus examples/bench_verify (cold argon2id vs cached verification).
"""

import base64, hashlib, json, os, random, re, socket, string, subprocess, sys, tempfile, time
import urllib.parse, urllib.request, http.client

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROFILE = os.environ.get("PROFILE", "debug")
BIN = os.path.join(ROOT, "target", PROFILE)
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
TESTENV = os.path.join(ROOT, "tests/testenv/testenv.sh")


def sh(*args, input=None):
    return subprocess.run(args, input=input, capture_output=True, text=True, check=True).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubectl(*args, input=None):
    return sh(TESTENV, "kubectl", *args, input=input)


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
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
setup = function(thread) table.insert(threads, thread) end
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
    pw_hash = sh(os.path.join(BIN, "centralauth-operator"), "hash-password", input="pw-bench\n").strip()
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
    kubectl("apply", "-f", "-", input=json.dumps(manifest))

    port, admin, base_port = free_port(), free_port(), free_port()
    procs = [
        subprocess.Popen([os.path.join(BIN, "centralauth-operator"), "run", "--base-domain", "localhost",
                          "--public-scheme", "http", "--public-port", str(port), "--listen", f"127.0.0.1:{port}",
                          "--admin-listen", f"127.0.0.1:{admin}", "--namespace", ns, "--watch-namespace", ns,
                          "--leader-elect=false"],
                         env=dict(env, RUST_LOG="warn"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([os.path.join(BIN, "examples", "bench_baseline"), str(base_port)]),
    ]
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
local i = 0
request = function()
  i = i + 1
  local c = codes[((i - 1) % #codes) + 1]
  return wrk.format("POST", nil, {{["Authorization"] = "Basic {basic}", ["Content-Type"] = "application/x-www-form-urlencoded"}},
    "grant_type=authorization_code&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&code_verifier={verifier}&code=" .. c)
end
''' + COUNT_LUA
        results["authorization_code"] = wrk(f"{issuer}/oauth2/token", code_lua)
        results["bare axum handler"] = wrk(f"http://127.0.0.1:{base_port}/token", 'wrk.method = "POST"\n' + COUNT_LUA)
    finally:
        for p in procs:
            p.terminate()
        kubectl("delete", "namespace", ns, "--wait=false")
    ceiling = results["bare axum handler"][0]
    print(f"profile={PROFILE}  wrk -t2 -c16 -d{SECONDS}s  (2 cores shared by server and load generator)")
    print(f"{'endpoint':<22}{'ok req/s':>12}{'latency':>12}{'of ceiling':>12}")
    for name, (rps, lat, total, ok) in results.items():
        print(f"{name:<22}{rps:>12.0f}{lat:>12}{rps / ceiling:>11.1%}")
    print("(authorization_code counts only successful exchanges; each code is single-use)")
    print(sh(os.path.join(BIN, "examples", "bench_verify"), "20"))


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
    codes, deadline = [], time.time() + 20
    while len(codes) < 20000 and time.time() < deadline:
        conn.request("GET", path, headers={"Host": f"localhost:{port}", "Cookie": session})
        r = conn.getresponse()
        r.read()
        codes.append(urllib.parse.parse_qs(urllib.parse.urlparse(r.getheader("location")).query)["code"][0])
    return codes


if __name__ == "__main__":
    main()
