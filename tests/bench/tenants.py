#!/usr/bin/env python3
"""Many-tenant benchmark; run it through tests/bench/tenants.sh (which builds the release binary).

Not a test: prints figures. Environment: BENCH_TENANTS (1000), BENCH_CHUNK (tenants per
`kubectl apply`, 100), BENCH_APPLY_PARALLEL (kubectl applies in flight, 4), BENCH_STARVE=1
(operator and a busy loop both pinned to core 0 with taskset, as a pod at its CPU limit),
BENCH_SETTLE (seconds between the last activation and the steady-state figures, 20),
BENCH_TOKENS (token requests, 500), BENCH_OPERATOR (binary; default target/release),
BENCH_KEEP=1 (leave the namespace). The operator's log: target/bench/<namespace>.log (namespace tenants-…).
"""

import base64, concurrent.futures, http.client, json, os, random, re, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b
from benchlib import kubectl, sh, free_port, wait_http, percentile, rss_mib

N = int(os.environ.get("BENCH_TENANTS", "1000"))
CHUNK = int(os.environ.get("BENCH_CHUNK", "100"))
PARALLEL = int(os.environ.get("BENCH_APPLY_PARALLEL", "4"))
STARVE = os.environ.get("BENCH_STARVE") == "1"
SETTLE = float(os.environ.get("BENCH_SETTLE", "20"))
TOKENS = int(os.environ.get("BENCH_TOKENS", "500"))
OPERATOR = b.operator_binary("release")
LOST = "lost the leader lease"


def tenant(ns, suffix, i, pw_hash):
    org, cid = f"t{i:05d}", f"{suffix}-t{i:05d}"
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"users-{i:05d}", "namespace": ns},
         "stringData": {"users": f"user{i}@example.com:{pw_hash}\n"}},
        {"apiVersion": "centralauth.io/v1alpha1", "kind": "Organization", "metadata": {"name": org, "namespace": ns},
         "spec": {"displayName": f"Tenant {i}", "clientId": cid, "subdomain": f"{org}-{suffix}",
                  "loginMethods": {"passwords": {"secretName": f"users-{i:05d}"}}}},
        {"apiVersion": "centralauth.io/v1alpha1", "kind": "ClientSecret", "metadata": {"name": f"cs-{i:05d}", "namespace": ns},
         "spec": {"organizationRef": {"name": org}, "activation": "Immediate"}},
        {"apiVersion": "centralauth.io/v1alpha1", "kind": "NativeApp", "metadata": {"name": f"app-{i:05d}", "namespace": ns},
         "spec": {"organizationRef": {"name": org}, "displayName": f"App {i}", "platform": "iOS",
                  "bundleId": f"com.example.t{i:05d}", "teamId": "ABCDE12345",
                  "appLink": f"https://t{i:05d}.apps.bench.invalid/auth"}},
    ]


def api_server(env):
    """host, port of the API server in KUBECONFIG."""
    with open(env["KUBECONFIG"]) as f:
        m = re.search(r"server:\s*https?://([^:/\s]+):(\d+)", f.read())
    return m.group(1), int(m.group(2))


def sockets_to(pid, port):
    """Established TCP connections of `pid` to remote `port`."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                remote_port = int(cols[2].rsplit(":", 1)[1], 16)
                if cols[3] == "01" and remote_port == port and cols[9] in inodes:
                    count += 1
    return count


def phases(ns):
    out = kubectl("get", "clientsecrets", "-n", ns, "--chunk-size=2000", "-o", "custom-columns=P:.status.phase", "--no-headers")
    return out.split()


def lease_losses(log):
    with open(log, errors="replace") as f:
        return sum(1 for line in f if LOST in line)


def token_latencies(ns, suffix, port):
    """client_credentials requests to random tenants (among those Active), one at a time on one
    keep-alive connection."""
    data = json.loads(kubectl("get", "secrets", "-n", ns, "-l", "centralauth.io/client-secret", "-o", "json"))
    active = set(x for x in kubectl("get", "clientsecrets", "-n", ns, "-o",
                                      "jsonpath={range .items[?(@.status.phase=='Active')]}{.metadata.name} {end}").split())
    secrets = {s["metadata"]["name"]: base64.b64decode(s["data"]["client_secret"]).decode()
               for s in data["items"] if s["metadata"]["name"] in active}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, failures, statuses, failed = [], 0, {}, set()
    tenants = sorted(int(name[3:]) for name in secrets)
    for _ in range(TOKENS if tenants else 0):
        i = random.choice(tenants)
        secret = secrets[f"cs-{i:05d}"]
        cid = f"{suffix}-t{i:05d}"
        basic = base64.b64encode(f"{cid}:{secret}".encode()).decode()
        # Each tenant has its own subdomain, so it is served on its own host, not at /o/<cid>.
        headers = {"Host": f"t{i:05d}-{suffix}.localhost:{port}", "Authorization": f"Basic {basic}",
                   "Content-Type": "application/x-www-form-urlencoded"}
        t = time.perf_counter()
        try:
            conn.request("POST", "/oauth2/token", body="grant_type=client_credentials", headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except (ConnectionError, http.client.HTTPException) as err:
            # The server closed the keep-alive connection: count it, reconnect, go on.
            print(f"  token request failed ({err!r}); reconnecting", file=sys.stderr)
            failures += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        latencies.append(time.perf_counter() - t)
        if resp.status != 200:
            failures += 1
            key = (resp.status, body.decode(errors="replace")[:160])
            statuses[key] = statuses.get(key, 0) + 1
            failed.add(i)
    for (status, body), n in sorted(statuses.items()):
        print(f"  {n} answers {status}: {body}", file=sys.stderr)
    if failed:
        sample = sorted(failed)[:5]
        print(f"  {len(failed)} tenants answered other than 200, e.g. {['t%05d' % i for i in sample]}", file=sys.stderr)
    return latencies, failures


def main():
    env = b.testenv_up()
    os.makedirs(os.path.join(b.ROOT, "target", "bench"), exist_ok=True)
    ns = b.random_name("tenants-")
    suffix = ns.split("-", 1)[1]
    log = os.path.join(b.ROOT, "target", "bench", f"{ns}.log")
    kubectl("create", "namespace", ns)
    pw_hash = sh(OPERATOR, "hash-password", input="pw-bench\n").strip()
    api_host, api_port = api_server(env)
    port, admin = free_port(), free_port()
    pin = ["taskset", "-c", "0"] if STARVE else []
    busy = subprocess.Popen(pin + [sys.executable, "-c", "while True: pass"]) if STARVE else None
    proc = b.start_operator(OPERATOR, env, ns, port, admin, log, prefix=pin)
    try:
        wait_http(f"http://127.0.0.1:{admin}/readyz", timeout=120)
        print(f"tenants benchmark: {N} tenants in namespace {ns}; operator {OPERATOR}"
              f"{' pinned to core 0 next to a busy loop' if STARVE else ''}; log {os.path.relpath(log, b.ROOT)}")
        items = [o for i in range(N) for o in tenant(ns, suffix, i, pw_hash)]
        chunks = [items[k:k + 4 * CHUNK] for k in range(0, len(items), 4 * CHUNK)]
        start = time.time()
        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
            for _ in pool.map(lambda c: kubectl("apply", "--server-side", "-f", "-",
                                                input=json.dumps({"apiVersion": "v1", "kind": "List", "items": c})), chunks):
                pass
        applied = time.time() - start
        print(f"applied {len(items)} objects in {applied:.1f} s ({PARALLEL} kubectl applies of {CHUNK} tenants in flight)")
        deadline = start + float(os.environ.get("BENCH_TIMEOUT", str(600 + N * 0.5)))
        last_report = start
        while True:
            p = phases(ns)
            active = sum(1 for x in p if x == "Active")
            if active >= N:
                break
            if proc.poll() is not None:
                raise SystemExit(f"the operator exited ({proc.returncode}); see {log}")
            if time.time() > deadline:
                break
            if time.time() - last_report > 30:
                print(f"  … {active}/{N} Active after {time.time() - start:.0f} s", flush=True)
                last_report = time.time()
            # Listing 10,000 ClientSecrets costs the API server and kubectl more than a core for a
            # while: ask every 5 s, not every second (the figure is then up to 5 s late).
            time.sleep(5)
        if active >= N:
            print(f"all {N} ClientSecrets Active {time.time() - start:.1f} s after the first apply")
        else:
            print(f"NOT DONE: only {active} of {N} ClientSecrets Active after {time.time() - start:.0f} s (BENCH_TIMEOUT)")
        time.sleep(SETTLE)
        rss, socks = rss_mib(proc.pid), sockets_to(proc.pid, api_port)
        print(f"steady state ({SETTLE:.0f} s later): RSS {rss:.0f} MiB, {socks} sockets to the API server ({api_host}:{api_port})")
        latencies, failures = token_latencies(ns, suffix, port)
        if latencies:
            print(f"client_credentials to random Active tenants: {len(latencies)} requests, "
                  f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
                  f"max {max(latencies) * 1000:.1f} ms, {failures} not 200")
        rss2, socks2 = rss_mib(proc.pid), sockets_to(proc.pid, api_port)
        print(f"after the token requests: RSS {rss2:.0f} MiB, {socks2} sockets to the API server")
        print(f"lease losses: {lease_losses(log)} (\"{LOST}\" in the log)")
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            b.delete_namespace(ns, proc, timeout=120 + N * 0.05)
        b.stop(proc)
        if busy:
            busy.terminate()
            busy.wait()


if __name__ == "__main__":
    main()
