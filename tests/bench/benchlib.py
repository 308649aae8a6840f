"""Shared helpers of the benchmark scripts in tests/bench (not tests: they print figures).

Everything runs on 127.0.0.1: the test control plane (tests/testenv/testenv.sh), the operator
binary, peers and wrk. Absolute figures on a shared 2-core machine are noise; the scripts print
ratios against a baseline measured in the same run, in alternating rounds.
"""

import os, random, re, socket, string, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TESTENV = os.path.join(ROOT, "tests/testenv/testenv.sh")


def binary_dir(default_profile="debug"):
    """<CARGO_TARGET_DIR, else target>/<PROFILE> (env PROFILE, else `default_profile`)."""
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, os.environ.get("PROFILE", default_profile))


def operator_binary(default_profile="debug"):
    """The operator under test: BENCH_OPERATOR (e.g. a saved baseline build), else target/<PROFILE>."""
    return os.environ.get("BENCH_OPERATOR", os.path.join(binary_dir(default_profile), "centralauth-operator"))


def sh(*args, input=None, env=None):
    done = subprocess.run(args, input=input, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubectl(*args, input=None):
    return sh(TESTENV, "kubectl", *args, input=input)


def testenv_up():
    """Starts (or reuses) the test control plane and returns the environment with KUBECONFIG."""
    env = dict(os.environ)
    env["KUBECONFIG"] = sh(TESTENV, "up").strip().splitlines()[-1].split("=", 1)[1]
    kubectl("apply", "--server-side", "-f", os.path.join(ROOT, "crds"))
    return env


def random_name(prefix, k=6):
    return prefix + "".join(random.choices(string.ascii_lowercase, k=k))


def wait_http(url, timeout=30, method="GET"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=1)
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"{url} never answered")


# Counts 200 answers across wrk's threads (each thread has its own Lua state).
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


def _millis(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


class Run:
    """One wrk run: successful requests per second, p50 / p99 latency (ms), totals."""

    def __init__(self, out):
        ok = re.search(r"STATUS200 (\d+)", out)
        total = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
        seconds = _millis(total.group(2) + total.group(3)) / 1000.0
        self.requests = int(total.group(1))
        self.ok = int(ok.group(1)) if ok else self.requests
        self.rps = self.ok / seconds
        self.p50 = _millis(re.search(r"\s50%\s+(\S+)", out).group(1))
        self.p99 = _millis(re.search(r"\s99%\s+(\S+)", out).group(1))
        self.cpu_us = None


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, lua, seconds, connections=16, threads=2, pid=None):
    """Runs wrk with `lua` (COUNT_LUA appended by the caller where 200s should be counted).
    With `pid`, also the server's CPU time per request (`cpu_us`): a figure that the rest of
    a shared machine's load disturbs far less than requests per second."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    try:
        before = cpu_seconds(pid) if pid else None
        run = Run(sh("wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name, url))
        if pid:
            run.cpu_us = (cpu_seconds(pid) - before) * 1e6 / max(run.requests, 1)
        return run
    finally:
        os.unlink(f.name)


def post_lua(body, headers):
    """wrk script sending the same POST every time."""
    lines = ['wrk.method = "POST"', f'wrk.body = "{body}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    return "\n".join(lines) + "\n" + COUNT_LUA


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def percentile(samples, p):
    s = sorted(samples)
    return s[round((len(s) - 1) * p)]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        kib = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    return kib / 1024


def start_operator(binary, env, ns, port, admin, log, prefix=()):
    """Starts `binary run` serving http://*.localhost:<port> (admin server on `admin`), leader
    election on, watching only `ns` (also its own namespace), logging to the file `log`
    (RUST_LOG from BENCH_RUST_LOG, default info). `prefix` goes before the command (taskset…)."""
    args = list(prefix) + [binary, "run", "--base-domain", "localhost", "--public-scheme", "http",
                           "--public-port", str(port), "--listen", f"127.0.0.1:{port}",
                           "--admin-listen", f"127.0.0.1:{admin}", "--namespace", ns, "--watch-namespace", ns]
    with open(log, "w") as logfile:
        return subprocess.Popen(args, env=dict(env, RUST_LOG=os.environ.get("BENCH_RUST_LOG", "info")),
                                stdout=logfile, stderr=subprocess.STDOUT)


def stop(proc):
    """SIGTERM, then SIGKILL after 30 s."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def delete_namespace(ns, proc, timeout):
    """Deletes the namespace while the operator `proc` still runs (it lifts its finalizers) and
    waits up to `timeout` seconds for it to go."""
    kubectl("delete", "namespace", ns, "--wait=false")
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        done = subprocess.run([TESTENV, "kubectl", "get", "namespace", ns], capture_output=True)
        if done.returncode != 0:
            return
        time.sleep(2)
    print(f"namespace {ns} still terminating; finalizers (ClientSecrets, Users) may need lifting by hand",
          file=sys.stderr)


def api_counts():
    """The API server's request counters (`apiserver_request_total`, read from its /metrics),
    summed per "VERB resource[/subresource]". Watches, lease renewals (they run on their own
    clock) and requests without a resource (/metrics itself, discovery) are left out. The
    counters are the whole API server's: other clients (kube-controller-manager…) count too."""
    counts = {}
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        verb, resource, sub = labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", "")
        if verb == "WATCH" or not resource or resource == "leases":
            continue
        key = f"{verb} {resource}/{sub}" if sub else f"{verb} {resource}"
        counts[key] = counts.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def api_counts_settled(limit=60):
    """api_counts once they stop moving (unchanged over one second, up to `limit` seconds), so
    the work a burst triggers after its last answer is counted."""
    last = api_counts()
    for _ in range(limit):
        time.sleep(1)
        now = api_counts()
        if now == last:
            return now
        last = now
    return last


def api_delta(after, before):
    """after - before, per key, without the keys that did not move."""
    keys = set(after) | set(before)
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys if after.get(k, 0.0) != before.get(k, 0.0)}


def is_write(key):
    return not key.startswith(("GET ", "LIST "))


def print_api(what, delta, per):
    """Requests and writes per `per` (e.g. per login), with the breakdown."""
    per = max(per, 1)
    total = sum(delta.values()) / per
    writes = sum(v for k, v in delta.items() if is_write(k)) / per
    print(f"{what}: {total:.2f} API requests, {writes:.2f} writes")
    for k, v in sorted(delta.items(), key=lambda kv: (-abs(kv[1]), kv[0])):
        print(f"    {v / per:>7.3f}  {k}   ({v:.0f} in all)")
