#!/usr/bin/env python3
"""Burst of first-time logins; run it through tests/bench/first_logins.sh.

Not a test: prints figures and asserts nothing about time. One Organization with password
login whose passwords Secret holds N accounts, an `Immediate` ClientSecret, the release
operator (--watch-namespace, leader election on). Burst 1: every account logs in for the first
time, C in flight, each a real browser login without JavaScript (GET /login renders the form
and sets the CSRF cookie; POST /login with the e-mail and password answers 303 to the redirect
URI with a code) — the login path creates each User. Burst 2: the same N accounts again, the
same day (the User exists and lastLogin is today: no write expected). For each burst:
latency per login (GET + POST; p50/p99/max), total time, the operator's and API server's CPU
per login, and the API requests per login by verb and resource, from the API server's own
`apiserver_request_total` counters (settled before and after; the benchmark makes no API
requests during a burst). Then the User objects (must be N, each with an ID and lastLogin
today) and the operator's RSS.

Environment: BENCH_USERS (N, 1000), BENCH_CONCURRENCY (C, 50), BENCH_OPERATOR (binary;
default <CARGO_TARGET_DIR or target>/release/centralauth-operator), BENCH_KEEP=1 (leave the
namespace). The operator's log: target/bench/<namespace>.log (namespace logins-…).
"""

import concurrent.futures, datetime, html, http.client, json, os, re, sys, threading, time, urllib.parse, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b
from benchlib import kubectl, sh, free_port, wait_http, percentile, rss_mib, cpu_seconds

N = int(os.environ.get("BENCH_USERS", "1000"))
C = int(os.environ.get("BENCH_CONCURRENCY", "50"))
OPERATOR = b.operator_binary("release")
PASSWORD = "pw-bench-logins"
CB = "https://app.example.com/cb"
# Resources the operator reads or writes; other rows come from other clients of the same API
# server (kube-controller-manager, KWOK's node heartbeats).
OPERATOR_RESOURCES = ("users", "organizations", "clientsecrets", "nativeapps", "secrets", "events")


def email(i):
    return f"user{i:05d}@example.com"


def manifests(ns, client_id, pw_hash):
    lines = "".join(f"{email(i)}:{pw_hash}\n" for i in range(N))
    # The warm-up account proves the server reads the passwords Secret before the clock starts.
    lines += f"warmup@example.com:{pw_hash}\n"
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "users", "namespace": ns},
         "stringData": {"users": lines}},
        {"apiVersion": "centralauth.io/v1alpha1", "kind": "Organization", "metadata": {"name": "acme", "namespace": ns},
         "spec": {"displayName": "Acme", "clientId": client_id, "allowedOrigins": ["https://app.example.com"],
                  "redirectUris": [CB], "loginMethods": {"passwords": {"secretName": "users"}}}},
        {"apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret", "metadata": {"name": "acme", "namespace": ns},
         "spec": {"organizationRef": {"name": "acme"}, "activation": "Immediate"}},
    ]


class Browser:
    """One connection per worker thread, as a browser keeps one to the login host; no cookies
    carried between logins (each login is a first visit)."""

    local = threading.local()

    def __init__(self, port, client_id):
        self.port, self.client_id = port, client_id

    def conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        return c

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {}, Host=f"localhost:{self.port}")
        for attempt in (1, 2):
            try:
                c = self.conn()
                c.request(method, path, body=body, headers=headers)
                resp = c.getresponse()
                return resp, resp.read()
            except (ConnectionError, http.client.HTTPException):
                # The server closed the keep-alive connection: once more on a new one.
                self.local.conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise

    def login(self, address, state):
        """One login: (seconds, None) on a 303 with a code, else (seconds, what went wrong)."""
        t = time.perf_counter()
        query = urllib.parse.urlencode({"client_id": self.client_id, "response_type": "code",
                                        "redirect_uri": CB, "state": state})
        resp, page = self.request("GET", f"/login?{query}")
        if resp.status != 200:
            return time.perf_counter() - t, f"GET /login {resp.status}"
        page = page.decode(errors="replace")
        csrf_cookie = next((c.split(";", 1)[0] for k, c in resp.getheaders()
                            if k.lower() == "set-cookie" and c.startswith("ca_csrf=")), None)
        fields = {k: html.unescape(v) for k, v in re.findall(r'name="(login|csrf)" value="([^"]*)"', page)}
        if not csrf_cookie or len(fields) != 2:
            return time.perf_counter() - t, "GET /login: no form or no CSRF cookie"
        form = urllib.parse.urlencode(dict(fields, email=address, password=PASSWORD))
        resp, body = self.request("POST", "/login", body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": csrf_cookie})
        elapsed = time.perf_counter() - t
        location = resp.getheader("Location") or ""
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
        if resp.status != 303 or not location.startswith(CB) or "code" not in params or params.get("state") != [state]:
            text = re.sub(r"<[^>]+>", " ", body.decode(errors="replace"))
            return elapsed, f"POST /login {resp.status}: {' '.join(text.split())[:120]}"
        return elapsed, None


def operator_logins(admin):
    """centralauth_logins_total lines of the operator's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
            if line.startswith("centralauth_logins_total{")}


def burst(name, browser, pids):
    """All N accounts log in, C in flight. Prints the figures."""
    before = b.api_counts_settled()
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(C) as pool:
        results = list(pool.map(lambda i: browser.login(email(i), f"s{i}"), range(N)))
    wall = time.perf_counter() - start
    cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
    delta = b.api_delta(b.api_counts_settled(), before)
    latencies = [t for t, _ in results]
    errors = {}
    for _, err in results:
        if err:
            errors[err] = errors.get(err, 0) + 1
    ok = N - sum(errors.values())
    print(f"\n{name}: {N} logins, {C} in flight, {wall:.1f} s ({N / wall:.0f} logins/s); {ok} answered 303 with a code")
    for err, n in sorted(errors.items(), key=lambda kv: -kv[1]):
        print(f"  {n} failed: {err}")
    print(f"  latency per login (GET /login + POST /login): p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
          f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    print("  CPU per login: " + ", ".join(f"{k} {v * 1000 / N:.1f} ms" for k, v in cpu.items()))
    ours = {k: v for k, v in delta.items() if k.split(" ")[1].split("/")[0] in OPERATOR_RESOURCES}
    others = {k: v for k, v in delta.items() if k not in ours}
    b.print_api("  per login, the operator's resources", ours, N)
    if others:
        b.print_api("  per login, other clients of the API server (not the operator)", others, N)
    return ok


def main():
    env = b.testenv_up()
    state = os.path.dirname(env["KUBECONFIG"])
    os.makedirs(os.path.join(b.ROOT, "target", "bench"), exist_ok=True)
    ns = b.random_name("logins-")
    client_id = f"bench-{ns.split('-', 1)[1]}"
    log = os.path.join(b.ROOT, "target", "bench", f"{ns}.log")
    kubectl("create", "namespace", ns)
    pw_hash = sh(OPERATOR, "hash-password", input=PASSWORD + "\n").strip()
    kubectl("apply", "--server-side", "-f", "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests(ns, client_id, pw_hash)}))
    port, admin = free_port(), free_port()
    proc = b.start_operator(OPERATOR, env, ns, port, admin, log)
    try:
        wait_http(f"http://127.0.0.1:{admin}/readyz", timeout=120)
        load = os.getloadavg()
        print(f"first-logins benchmark: {N} accounts of one Organization in namespace {ns}, {C} logins in flight; "
              f"operator {OPERATOR}; log {os.path.relpath(log, b.ROOT)}")
        print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start; "
              f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
        browser = Browser(port, client_id)
        deadline, err = time.time() + 120, "never tried"
        while time.time() < deadline:
            _, err = browser.login("warmup@example.com", "warmup")
            if err is None:
                break
            time.sleep(1)
        if err:
            raise SystemExit(f"the warm-up login never succeeded: {err}; see {log}")
        with open(os.path.join(state, "pids", "kube-apiserver")) as f:
            apiserver = int(f.read())
        with open(os.path.join(state, "pids", "etcd")) as f:
            etcd = int(f.read())
        pids = {"operator": proc.pid, "kube-apiserver": apiserver, "etcd": etcd}
        rss0 = rss_mib(proc.pid)
        print(f"operator RSS before the bursts: {rss0:.0f} MiB")
        burst("burst 1, first logins", browser, pids)
        print(f"  operator RSS: {rss_mib(proc.pid):.0f} MiB")
        burst("burst 2, the same accounts again, same day", browser, pids)
        print(f"  operator RSS: {rss_mib(proc.pid):.0f} MiB")
        users = json.loads(kubectl("get", "users.centralauth.io", "-n", ns, "-o", "json"))["items"]
        users = [u for u in users if u["spec"]["email"] != "warmup@example.com"]
        today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        with_id = {u.get("status", {}).get("id") for u in users} - {None}
        logged_today = sum(1 for u in users if u.get("status", {}).get("lastLogin") == today)
        expected = {email(i) for i in range(N)}
        missing = expected - {u["spec"]["email"] for u in users}
        print(f"\nUser objects (warm-up account left out): {len(users)} (expected {N}); {len(with_id)} distinct IDs; "
              f"{logged_today} with lastLogin {today}; {len(missing)} accounts without a User")
        print("operator's login counters: " + ", ".join(f"{k} {v:.0f}" for k, v in operator_logins(admin).items()))
        load = os.getloadavg()
        print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            b.delete_namespace(ns, proc, timeout=120 + N * 0.05)
        b.stop(proc)


if __name__ == "__main__":
    main()
