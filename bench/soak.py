#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The soak run behind bench/soak.sh: revproxy under a mixed load from real
clients for a set time while backends are killed and restarted, one
answers 503 for a while, and the configuration is reloaded; sampled every
10 s into a CSV, drawn with gnuplot, judged against the pass criteria.

  soak.py --duration S --revproxy PATH --out DIR [--sanitizers]

Everything listens on 127.0.0.1, on ports below the kernel's ephemeral
range that nothing uses (so that a killed backend gets its port back);
clients connect from other loopback addresses (127.0.0.11 and up) so
that the access log tells them apart.  Every process started here is
kept by PID and stopped on exit.  See bench/soak.sh for the criteria.
"""
import argparse
import datetime
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable

# ---- the schedule (seconds from the start of the load) ----
SAMPLE_EVERY = 10
FAULTS_FROM = 10           # first churn cycle
CYCLE = 30                 # a backend killed every CYCLE seconds...
KILL_AT = 0.5              # ...at this offset in its cycle (after the checkpoint)
DOWN_FOR = 5               # ...and started again this much later
FAIL503_AT = 8             # odd cycles: a backend answers 503 from here...
FAIL503_FOR = 8            # ...for this long
RELOAD_FIRST = 30          # reloads at 30, 90, 150, ...
RELOAD_EVERY = 60
GRACE = 10                 # a fault explains errors this long after it ended
RSS_MARGIN = 0.05
FD_RESIDUE_SLACK = 3       # see Sampler.figures

# Source addresses of the client kinds (the access log's "client").
KINDS = [
    # kind (a soak_load.py process each), source address
    ("h1ka", "127.0.0.11"),
    ("h1close", "127.0.0.12"),
    ("bulk", "127.0.0.13"),
    ("h2c", "127.0.0.14"),
    ("h2tls", "127.0.0.15"),
    ("ws", "127.0.0.16"),
    ("slowloris", "127.0.0.17"),
    ("slowread", "127.0.0.18"),     # .18 below the floor, .19 above it
    ("h2load", "127.0.0.1"),
]
SRC_KIND = {src: kind for kind, src in KINDS}
SRC_KIND["127.0.0.19"] = "slowread_fast"

# Reason words each kind of slow client exists to provoke, at any time.
SLOW_WORDS = {
    "slowloris": {"header_timeout"},
    "slowread": {"client_too_slow", "client_stalled"},
}
# The words of slow clients, drawn apart from the others in the plot.
SLOW_CLIENT_WORDS = ("header_timeout", "client_too_slow", "client_stalled", "body_too_slow")
# Reason words a backend killed (or just started again) explains.
KILL_WORDS = {"upstream_connect_failed", "upstream_reset", "retry_budget_exhausted",
              "no_healthy_backend", "upstream_connect_timeout"}
# Reason words a backend answering 503 explains (besides its own 503s).
FAIL503_WORDS = {"retry_budget_exhausted", "no_healthy_backend"}

BACKENDS = [
    # name, kind, upstream
    ("a1", "http", "app"), ("a2", "http", "app"), ("a3", "http", "app"),
    ("b1", "http", "bulk"), ("b2", "http", "bulk"),
    ("w1", "ws", "ws"), ("w2", "ws", "ws"),
]
KILL_ORDER = ["a1", "w1", "b1", "a2", "w2", "b2", "a3"]
FAIL503_ORDER = ["a3", "b1", "a1", "b2", "a2"]


def log(msg):
    sys.stderr.write("soak: %s\n" % msg)
    sys.stderr.flush()


class HarnessError(Exception):
    pass


# ---- ports, processes ----

_ports = set()


def pick_port():
    """A port below the ephemeral range that nothing listens on or uses, so
    that no outgoing connection can take it while its backend is down."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            first = int(f.read().split()[0])
    except (OSError, ValueError):
        first = 32768
    hi = first - 1 if first > 10100 else 30000
    for _ in range(500):
        port = random.randint(10000, hi)
        if port in _ports:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _ports.add(port)
        return port
    raise HarnessError("no free port found")


def wait_port(port, proc, secs=10.0):
    end = time.time() + secs
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Procs:
    """Every process started here, stopped by PID at exit."""

    def __init__(self):
        self.procs = []

    def start(self, argv, out, env=None):
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.terminate()
                except OSError:
                    pass
        end = time.time() + 5
        for p in self.procs:
            try:
                p.wait(max(0.1, end - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


PROCS = Procs()


# ---- backends ----

class Backends:
    def __init__(self, out):
        self.out = out
        self.b = {}
        for name, kind, up in BACKENDS:
            self.b[name] = {"name": name, "kind": kind, "upstream": up, "port": pick_port(),
                            "proc": None}

    def addr(self, name):
        return "127.0.0.1:%d" % self.b[name]["port"]

    def start(self, name):
        b = self.b[name]
        logf = open(os.path.join(self.out, "logs", "backend-%s.log" % name), "ab")
        for _ in range(50):
            b["proc"] = PROCS.start([PY, os.path.join(HERE, "soak_backend.py"), b["kind"], name,
                                     str(b["port"])], logf)
            if wait_port(b["port"], b["proc"], 5):
                logf.close()
                return
            if b["proc"].poll() is None:
                b["proc"].kill()
            b["proc"].wait()
            time.sleep(0.1)
        logf.close()
        raise HarnessError("backend %s could not listen on port %d again" % (name, b["port"]))

    def kill(self, name):
        p = self.b[name]["proc"]
        p.send_signal(signal.SIGKILL)
        p.wait()

    def signal(self, name, sig):
        self.b[name]["proc"].send_signal(sig)


# ---- TLS ----

def make_cert(d):
    def run(*a):
        subprocess.run(["openssl"] + list(a), cwd=d, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=soak test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=soak.test")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:soak.test,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    return {k: os.path.join(d, v) for k, v in
            (("ca", "ca.crt"), ("cert", "server.crt"), ("key", "server.key"))}


# ---- configurations ----

def configs(bk, ports, cert, access_log):
    """Configuration A (the start), B (valid: other weights, balancer, pool,
    limits, timeouts and one more route) and an invalid one."""
    def health(path="/health"):
        return {"active": {"path": path, "interval_ms": 1000, "timeout_ms": 500,
                           "healthy_threshold": 2, "unhealthy_threshold": 2},
                "passive": {"consecutive_failures": 3, "ejection_ms": 5000,
                            "max_ejection_ms": 20000, "max_ejection_percent": 50},
                "slow_start_ms": 3000}

    def upstream(names, weights, balancer, idle, queue_ms):
        return {"balancer": balancer,
                "backends": [{"address": bk.addr(n), "weight": w, "max_connections": 128}
                             for n, w in zip(names, weights)],
                "pool": {"max_idle_per_backend": idle, "idle_timeout_ms": 4000},
                "queue": {"size": 256, "timeout_ms": queue_ms},
                "health": health()}

    def make(variant):
        b = variant == "B"
        cfg = {
            "workers": 2,
            "listeners": [
                {"address": "127.0.0.1:%d" % ports["http"]},
                {"address": "127.0.0.1:%d" % ports["tls"],
                 "tls": {"certificates": [{"cert": cert["cert"], "key": cert["key"]}]}},
            ],
            "admin": {"address": "127.0.0.1:%d" % ports["admin"]},
            "limits": {"max_connections": 2000, "max_body_bytes": 4 << 20,
                       "h2_max_concurrent_streams": 64 if b else 128},
            "timeouts": {"client_header_ms": 5000 if b else 6000, "client_idle_ms": 30000,
                         "client_min_bytes_per_s": 1500 if b else 2000,
                         "request_ms": 60000, "upstream_connect_ms": 1000,
                         "upstream_response_ms": 10000, "shutdown_drain_ms": 10000},
            "upstreams": {
                "app": upstream(["a1", "a2", "a3"], [3, 1, 2] if b else [1, 1, 1],
                                "least_conn" if b else "round_robin", 4 if b else 8,
                                3000 if b else 2000),
                "bulk": upstream(["b1", "b2"], [1, 2] if b else [1, 1], "least_conn",
                                 2 if b else 4, 2000),
                "ws": upstream(["w1", "w2"], [1, 1], "round_robin", 2, 2000),
            },
            "routes": [
                {"name": "app", "path_prefix": "/app/", "upstream": "app"},
                {"name": "bulk", "path_prefix": "/bulk/", "upstream": "bulk",
                 "timeouts": {"request_ms": 120000}},
                {"name": "ws", "path_prefix": "/ws/", "upstream": "ws", "websocket": True},
            ],
            "websocket": {"max_message_bytes": 1 << 20, "idle_timeout_ms": 30000},
            "log": {"level": "info", "format": "json", "access_log": access_log},
        }
        if b:
            cfg["routes"].append({"name": "app-b", "path_prefix": "/app/b/", "upstream": "app",
                                  "retry": {"max_retries": 1}})
        return cfg

    a, b = make("A"), make("B")
    bad = json.loads(json.dumps(b))
    bad["upstreams"]["app"]["backends"][0]["weight"] = 0
    return a, b, bad


# ---- revproxy and its admin port ----

def admin_get(port, path, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')
LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    m = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        g = METRIC_RE.match(line)
        if not g:
            continue
        labels = dict(LABEL_RE.findall(g.group(2) or ""))
        m.setdefault(g.group(1), []).append((labels, float(g.group(3))))
    return m


def msum(m, name, **want):
    return sum(v for lab, v in m.get(name, []) if all(lab.get(k) == x for k, x in want.items()))


def proc_figures(pid):
    """RSS (KiB), threads, and descriptors of the process: all, sockets,
    others."""
    rss = threads = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = sockets = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        fds += 1
        if link.startswith("socket:"):
            sockets += 1
    return rss, threads, fds, sockets, fds - sockets


class Sampler:
    """A row every SAMPLE_EVERY seconds, and checkpoints on demand."""

    def __init__(self, pid, admin_port, t0, csv_path):
        self.pid = pid
        self.admin = admin_port
        self.t0 = t0
        self.rows = []
        self.checkpoints = []
        self.reasons = None
        self.csv = open(csv_path, "w", buffering=1)
        self.prev = None
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures = []

    def metrics(self):
        st, body = admin_get(self.admin, "/metrics")
        if st != 200:
            raise HarnessError("/metrics answered %d" % st)
        return parse_metrics(body.decode())

    def figures(self):
        """One look at the process and its counters.  The residue is the
        descriptors not accounted for by connections: sockets minus client
        connections open minus backend connections open (idle or active,
        tunnels included).  It holds the listeners, the admin port and the
        odd health check; it must not grow."""
        m1 = self.metrics()
        rss, threads, fds, sockets, others = proc_figures(self.pid)
        m2 = self.metrics()
        conns = (msum(m1, "revproxy_connections_active") + msum(m2, "revproxy_connections_active")) / 2
        ups = (msum(m1, "revproxy_upstream_pool_connections")
               + msum(m2, "revproxy_upstream_pool_connections")) / 2
        return {"rss_kib": rss, "threads": threads, "fds": fds, "fds_socket": sockets,
                "fds_other": others, "conns_active": conns, "upstream_conns": ups,
                "fd_residue": sockets - conns - ups, "m": m2}

    def row(self):
        now = time.time()
        f = self.figures()
        m = f.pop("m")
        if self.reasons is None:
            self.reasons = sorted(lab["reason"] for lab, _ in m.get("revproxy_http_errors_total", []))
            self.csv.write(",".join(
                ["t_s", "rss_kib", "fds", "fds_socket", "fds_other", "threads", "conns_active",
                 "upstream_conns", "fd_residue", "ws_open", "requests_total", "req_per_s",
                 "errors_total", "errors_per_s", "slow_client_errors_per_s",
                 "responses_5xx_per_s", "config_generation", "reloads_success",
                 "reloads_failure"] + ["err_" + r for r in self.reasons]) + "\n")
        req = msum(m, "revproxy_http_requests_total")
        errs = {r: msum(m, "revproxy_http_errors_total", reason=r) for r in self.reasons}
        etot = sum(errs.values())
        slow = sum(errs.get(w, 0) for w in SLOW_CLIENT_WORDS)
        r5 = msum(m, "revproxy_http_requests_total", code="5xx")
        t = now - self.t0
        if self.prev:
            dt = max(0.001, t - self.prev[0])
            rps, eps = (req - self.prev[1]) / dt, (etot - self.prev[2]) / dt
            sps = (slow - self.prev[3]) / dt
            xps = (r5 - self.prev[4]) / dt
        else:
            rps = eps = sps = xps = 0.0
        self.prev = (t, req, etot, slow, r5)
        r = dict(f, t_s=round(t, 1), ws_open=msum(m, "revproxy_websocket_tunnels_open"),
                 requests_total=int(req), req_per_s=round(rps, 1), errors_total=int(etot),
                 errors_per_s=round(eps, 2), slow_client_errors_per_s=round(sps, 2),
                 responses_5xx_per_s=round(xps, 2),
                 config_generation=int(msum(m, "revproxy_config_generation")),
                 reloads_success=int(msum(m, "revproxy_config_reloads_total", result="success")),
                 reloads_failure=int(msum(m, "revproxy_config_reloads_total", result="failure")),
                 errors=errs)
        cols = [r["t_s"], r["rss_kib"], r["fds"], r["fds_socket"], r["fds_other"], r["threads"],
                r["conns_active"], r["upstream_conns"], r["fd_residue"], r["ws_open"],
                r["requests_total"], r["req_per_s"], r["errors_total"], r["errors_per_s"],
                r["slow_client_errors_per_s"], r["responses_5xx_per_s"], r["config_generation"], r["reloads_success"], r["reloads_failure"]]
        cols += [int(errs[x]) for x in self.reasons]
        with self.lock:
            self.rows.append(r)
            self.csv.write(",".join(str(c) for c in cols) + "\n")
        return r

    def checkpoint(self, label):
        """Five looks 0.3 s apart, the median of each figure: a churn
        cycle's quiet point, just before its kill."""
        looks = []
        for i in range(5):
            f = self.figures()
            f.pop("m")
            looks.append(f)
            if i < 4:
                time.sleep(0.3)
        cp = {k: statistics.median(x[k] for x in looks) for k in looks[0]}
        cp["label"] = label
        cp["t_s"] = round(time.time() - self.t0, 1)
        with self.lock:
            self.checkpoints.append(cp)
        return cp

    def run(self):
        nxt = time.time()
        while not self.stop.is_set():
            try:
                self.row()
            except (OSError, HarnessError, http.client.HTTPException) as e:
                self.failures.append("%.1f s: %s" % (time.time() - self.t0, e))
            nxt += SAMPLE_EVERY
            self.stop.wait(max(0, nxt - time.time()))


# ---- the run ----

class Soak:
    def __init__(self, a):
        self.a = a
        self.out = a.out
        os.makedirs(os.path.join(self.out, "logs"), exist_ok=True)
        os.makedirs(os.path.join(self.out, "clients"), exist_ok=True)
        os.makedirs(os.path.join(self.out, "configs"), exist_ok=True)
        for old in ("soak.csv", "soak.png", "access.log", "revproxy.log", "summary.txt",
                    "events.jsonl"):
            if os.path.exists(os.path.join(self.out, old)):
                os.unlink(os.path.join(self.out, old))
        for d in ("logs", "clients"):
            for f in os.listdir(os.path.join(self.out, d)):
                os.unlink(os.path.join(self.out, d, f))
        self.events = []
        self.evf = open(os.path.join(self.out, "events.jsonl"), "w", buffering=1)
        self.problems = []        # harness-level failures: the run is not valid
        self.reload_results = []

    def event(self, ev, **kw):
        kw.update(ev=ev, t=round(time.time(), 3))
        self.events.append(kw)
        self.evf.write(json.dumps(kw, sort_keys=True) + "\n")

    def setup(self):
        self.bk = Backends(self.out)
        self.ports = {"http": pick_port(), "tls": pick_port(), "admin": pick_port()}
        self.cert = make_cert(os.path.join(self.out, "configs"))
        self.access_log = os.path.join(self.out, "access.log")
        a, b, bad = configs(self.bk, self.ports, self.cert, self.access_log)
        cdir = os.path.join(self.out, "configs")
        self.cfg_files = {}
        for name, cfg in (("A", a), ("B", b), ("invalid", bad)):
            path = os.path.join(cdir, "%s.json" % name)
            with open(path, "w") as f:
                json.dump(cfg, f, indent=1)
            self.cfg_files[name] = path
        self.header_ms = max(a["timeouts"]["client_header_ms"], b["timeouts"]["client_header_ms"])
        self.live_cfg = os.path.join(cdir, "revproxy.json")
        shutil.copyfile(self.cfg_files["A"], self.live_cfg)
        self.in_force = "A"
        for name in ("A", "B"):
            r = subprocess.run([self.a.revproxy, "--check", "--config", self.cfg_files[name]],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
            if r.returncode != 0:
                raise HarnessError("configuration %s refused by --check:\n%s"
                                   % (name, r.stdout.decode()))
        r = subprocess.run([self.a.revproxy, "--check", "--config", self.cfg_files["invalid"]],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        if r.returncode != 78:
            raise HarnessError("the invalid configuration was not refused by --check (%d)"
                               % r.returncode)
        for name, _, _ in BACKENDS:
            self.bk.start(name)

    def start_proxy(self):
        env = dict(os.environ)
        if self.a.sanitizers:
            # as scripts/test.sh --sanitizers: a report stops revproxy, and
            # LeakSanitizer checks at exit
            env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:quarantine_size_mb=4")
            env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
            self.san_options = "ASAN_OPTIONS=%s UBSAN_OPTIONS=%s" % (env["ASAN_OPTIONS"],
                                                                   env["UBSAN_OPTIONS"])
        self.rp_log_path = os.path.join(self.out, "revproxy.log")
        self.rp_log = open(self.rp_log_path, "ab")
        self.rp = PROCS.start([self.a.revproxy, "--config", self.live_cfg], self.rp_log, env=env)
        end = time.time() + 20
        while time.time() < end:
            if self.rp.poll() is not None:
                raise HarnessError("revproxy exited at start with %d (see %s)"
                                   % (self.rp.returncode, self.rp_log_path))
            try:
                if admin_get(self.ports["admin"], "/ready", 1)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise HarnessError("revproxy not ready within 20 s")
        for p in (self.ports["http"], self.ports["tls"]):
            if not wait_port(p, self.rp):
                raise HarnessError("revproxy does not listen on %d" % p)

    def idle_fds(self, label):
        """Descriptors with no client and no backend connection open: the
        least of ten looks over 3 s (an active health check may hold a
        socket for a moment)."""
        looks = []
        for _ in range(10):
            looks.append(proc_figures(self.rp.pid))
            time.sleep(0.3)
        fds = min(x[2] for x in looks)
        self.event("idle_fds", label=label, fds=fds)
        return fds

    def start_load(self):
        self.loaders = []
        for kind, src in KINDS:
            out = os.path.join(self.out, "clients", "%s.jsonl" % kind)
            argv = [PY, os.path.join(HERE, "soak_load.py"), kind,
                    "--port", str(self.ports["http"]), "--tls-port", str(self.ports["tls"]),
                    "--ca", self.cert["ca"], "--deadline", "%.3f" % self.deadline,
                    "--src", src, "--out", out, "--header-ms", str(self.header_ms)]
            logf = open(os.path.join(self.out, "logs", "client-%s.log" % kind), "ab")
            self.loaders.append((kind, PROCS.start(argv, logf)))
            logf.close()

    def schedule(self):
        """(offset, action, args) for the whole run."""
        d = self.a.duration
        plan = []
        k = 0
        while FAULTS_FROM + k * CYCLE + KILL_AT + DOWN_FOR < d:
            c = FAULTS_FROM + k * CYCLE
            victim = KILL_ORDER[k % len(KILL_ORDER)]
            plan.append((c, "checkpoint", ("cycle %d" % k,)))
            plan.append((c + KILL_AT, "kill", (victim,)))
            plan.append((c + KILL_AT + DOWN_FOR, "restart", (victim,)))
            if k % 2 == 1 and c + FAIL503_AT + FAIL503_FOR < d:
                j = k // 2
                f5 = FAIL503_ORDER[j % len(FAIL503_ORDER)]
                if f5 == victim:
                    f5 = FAIL503_ORDER[(j + 1) % len(FAIL503_ORDER)]
                plan.append((c + FAIL503_AT, "fail503_on", (f5,)))
                plan.append((c + FAIL503_AT + FAIL503_FOR, "fail503_off", (f5,)))
            k += 1
        j = 0
        while RELOAD_FIRST + j * RELOAD_EVERY < d - 2:
            plan.append((RELOAD_FIRST + j * RELOAD_EVERY, "reload", (["B", "invalid", "A"][j % 3],)))
            j += 1
        plan.sort(key=lambda x: x[0])
        return plan

    def reload(self, target):
        before = self.sampler.metrics()
        ok0 = msum(before, "revproxy_config_reloads_total", result="success")
        bad0 = msum(before, "revproxy_config_reloads_total", result="failure")
        gen0 = msum(before, "revproxy_config_generation")
        tmp = self.live_cfg + ".new"
        shutil.copyfile(self.cfg_files[target], tmp)
        os.replace(tmp, self.live_cfg)
        self.rp.send_signal(signal.SIGHUP)
        self.event("reload", config=target)
        want = "failure" if target == "invalid" else "success"
        got = None
        end = time.time() + 10
        while time.time() < end and got is None:
            time.sleep(0.2)
            m = self.sampler.metrics()
            if msum(m, "revproxy_config_reloads_total", result="success") > ok0:
                got = "success"
            elif msum(m, "revproxy_config_reloads_total", result="failure") > bad0:
                got = "failure"
        gen1 = msum(m, "revproxy_config_generation")
        st, body = admin_get(self.ports["admin"], "/config")
        shown = json.loads(body).get("sha256") if st == 200 else None
        kept = target if got == "success" else self.in_force
        with open(self.cfg_files[kept], "rb") as f:
            expect_sha = hashlib.sha256(f.read()).hexdigest()
        good = (got == want and gen1 == gen0 + (1 if want == "success" else 0)
                and shown == expect_sha)
        res = {"t_s": round(time.time() - self.t0, 1), "config": target, "expected": want,
               "result": got, "generation": [int(gen0), int(gen1)],
               "config_in_force": kept, "sha256_matches": shown == expect_sha, "ok": good}
        self.reload_results.append(res)
        self.event("reload_result", **res)
        if got == "success":
            self.in_force = target
        else:
            # the refused file is not left in place for a later signal
            shutil.copyfile(self.cfg_files[self.in_force], tmp)
            os.replace(tmp, self.live_cfg)
        log("reload to %s: %s (expected %s)%s" % (target, got, want, "" if good else "  <-- WRONG"))

    def run(self):
        self.setup()
        self.start_proxy()
        self.idle_before = self.idle_fds("before load")
        self.t0 = time.time()
        self.deadline = self.t0 + self.a.duration
        self.sampler = Sampler(self.rp.pid, self.ports["admin"], self.t0,
                               os.path.join(self.out, "soak.csv"))
        self.event("start", duration=self.a.duration, pid=self.rp.pid, ports=self.ports,
                   backends={n: b["port"] for n, b in self.bk.b.items()})
        self.start_load()
        st = threading.Thread(target=self.sampler.run, daemon=True)
        st.start()
        log("load started: %d s, revproxy pid %d, out %s" % (self.a.duration, self.rp.pid, self.out))
        for off, action, args in self.schedule():
            delay = self.t0 + off - time.time()
            if delay > 0:
                time.sleep(delay)
            if self.rp.poll() is not None:
                break
            try:
                self.act(action, *args)
            except (OSError, HarnessError, http.client.HTTPException, ValueError) as e:
                self.problems.append("%s %s at %.1f s: %s" % (action, args, off, e))
        left = self.deadline - time.time()
        if left > 0:
            time.sleep(left)
        self.finish_load()
        self.sampler.stop.set()
        st.join(15)
        if self.rp.poll() is None:
            self.sampler.row()          # the last row, load done
            self.settle()
        self.stop_proxy()

    def act(self, action, *args):
        if action == "checkpoint":
            cp = self.sampler.checkpoint(args[0])
            log("%s at %.0f s: rss %d KiB, fds %d, residue %.1f"
                % (args[0], cp["t_s"], cp["rss_kib"], cp["fds"], cp["fd_residue"]))
        elif action == "kill":
            name = args[0]
            self.bk.kill(name)
            self.event("kill", backend=name, upstream=self.bk.b[name]["upstream"],
                       addr=self.bk.addr(name))
        elif action == "restart":
            name = args[0]
            self.bk.start(name)
            self.event("restart", backend=name, upstream=self.bk.b[name]["upstream"],
                       addr=self.bk.addr(name))
        elif action == "fail503_on":
            self.bk.signal(args[0], signal.SIGUSR1)
            self.event("fail503_on", backend=args[0], upstream=self.bk.b[args[0]]["upstream"],
                       addr=self.bk.addr(args[0]))
        elif action == "fail503_off":
            self.bk.signal(args[0], signal.SIGUSR2)
            self.event("fail503_off", backend=args[0], upstream=self.bk.b[args[0]]["upstream"],
                       addr=self.bk.addr(args[0]))
        elif action == "reload":
            self.reload(args[0])

    def finish_load(self):
        """The clients stop by themselves at the deadline; one still busy
        120 s later is a harness failure."""
        end = self.deadline + 120
        for kind, p in self.loaders:
            try:
                p.wait(max(0.1, end - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self.problems.append("client %s still running 120 s after the deadline" % kind)
            if p.returncode not in (0, -9):
                self.problems.append("client %s exited with %s (logs/client-%s.log)"
                                     % (kind, p.returncode, kind))
        self.event("load_done")

    def settle(self):
        """No client left: wait for revproxy to close every connection
        (idle pooled ones after pool.idle_timeout_ms), then count its
        descriptors at rest again."""
        end = time.time() + 30
        m = None
        while time.time() < end:
            m = self.sampler.metrics()
            if (msum(m, "revproxy_connections_active") == 0
                    and msum(m, "revproxy_upstream_pool_connections") == 0):
                break
            time.sleep(0.5)
        self.rest_conns = (msum(m, "revproxy_connections_active"),
                           msum(m, "revproxy_upstream_pool_connections")) if m else None
        self.idle_after = self.idle_fds("after load")
        self.final_metrics = m
        self.final_rss = proc_figures(self.rp.pid)[0]

    def stop_proxy(self):
        self.alive_at_end = self.rp.poll() is None
        self.exit_code = self.rp.returncode
        if self.alive_at_end:
            self.rp.send_signal(signal.SIGTERM)
            try:
                self.exit_code = self.rp.wait(40)
            except subprocess.TimeoutExpired:
                self.rp.kill()
                self.rp.wait()
                self.exit_code = "no exit within 40 s of SIGTERM"
        self.rp_log.close()
        self.event("stopped", alive_at_end=self.alive_at_end, exit_code=self.exit_code)


# ---- analysis ----

def parse_ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class Judge:
    """Reads the faults, the clients' records and the access log (streamed:
    a long run writes hundreds of MB of it) and explains every error."""

    def __init__(self, soak):
        self.addr_name = {soak.bk.addr(n): n for n in soak.bk.b}
        self.windows = []          # (name, upstream, kind, start, end)
        open_ = {}
        for e in soak.events:
            if e["ev"] in ("kill", "fail503_on"):
                open_[(e["backend"], e["ev"])] = e["t"]
            elif e["ev"] in ("restart", "fail503_off"):
                key = (e["backend"], "kill" if e["ev"] == "restart" else "fail503_on")
                t0 = open_.pop(key, None)
                if t0 is not None:
                    self.windows.append((e["backend"], e["upstream"],
                                         "kill" if key[1] == "kill" else "503",
                                         t0 - 0.5, e["t"] + GRACE))
        for (name, what), t0 in open_.items():
            self.windows.append((name, soak.bk.b[name]["upstream"],
                                 "kill" if what == "kill" else "503", t0 - 0.5, float("inf")))
        self.client = {}
        for kind, _ in KINDS:
            recs = []
            p = os.path.join(soak.out, "clients", "%s.jsonl" % kind)
            if os.path.exists(p):
                with open(p) as f:
                    for line in f:
                        try:
                            recs.append(json.loads(line))
                        except ValueError:
                            pass
            self.client[kind] = recs
        wanted = {r["rid"] for recs in self.client.values() for r in recs
                  if r.get("ev") == "error" and r.get("rid")}
        self.lines = 0
        self.bad = []              # access lines with an error word or status
        self.by_rid = {}           # access lines of the clients' errors
        self.fast_ok = 0           # the reader above the floor, served whole
        self.floor_cut = 0         # the reader below it, cut client_too_slow
        with open(soak.access_log, "rb") as f:
            for raw in f:
                try:
                    j = json.loads(raw)
                except ValueError:
                    continue
                if j.get("msg") != "access":
                    continue
                self.lines += 1
                client = j.get("client", "")
                word = j.get("error")
                status = j.get("status", 0)
                if client.startswith("127.0.0.19:") and status == 200 and not word:
                    self.fast_ok += 1
                if client.startswith("127.0.0.18:") and word == "client_too_slow":
                    self.floor_cut += 1
                rid = j.get("request_id")
                is_bad = bool(word) or status >= 400
                if not is_bad and rid not in wanted:
                    continue
                j["_t"] = parse_ts(j["ts"])
                if is_bad:
                    j["_why"] = self.explain_line(j)
                    self.bad.append(j)
                if rid in wanted:
                    self.by_rid.setdefault(rid, []).append(j)

    def window_for(self, t, backend=None, upstream=None, kinds=("kill", "503")):
        for name, up, kind, a, b in self.windows:
            if kind not in kinds or not a <= t <= b:
                continue
            if backend is not None and name == backend:
                return "%s %s" % (kind, name)
            if backend is None and upstream is not None and up == upstream:
                return "%s %s" % (kind, name)
        return None

    def explain_line(self, j):
        """Why an access line with an error or an error status is
        explained, or None."""
        word = j.get("error")
        status = j.get("status", 0)
        src = j.get("client", "").rsplit(":", 1)[0]
        kind = SRC_KIND.get(src, "other")
        backend = self.addr_name.get(j.get("backend"))
        upstream = j.get("upstream")
        t = j["_t"]
        if word:
            if word in SLOW_WORDS.get(kind, ()):
                return "%s client" % kind
            if word in KILL_WORDS:
                w = self.window_for(t, backend, upstream if backend is None else None, ("kill",))
                if w:
                    return w
            if word in FAIL503_WORDS:
                w = self.window_for(t, backend, upstream if backend is None else None, ("503",))
                if w:
                    return w
            return None
        # No word: the backend's own status, relayed.
        ups = j.get("upstream_status") or []
        if status == 503 and ups and ups[-1] == 503:
            return self.window_for(t, backend, None, ("503",))
        return None

    def judge(self):
        res = {"lines": self.lines, "line_words": {}, "line_unexplained": [],
               "client_errors": {}, "client_unexplained": [], "expected": {},
               "ok_by_kind": {}, "errors_by_kind": {}, "explained_by": {}}
        for j in self.bad:
            key = j.get("error") or "status_%d" % j.get("status", 0)
            res["line_words"][key] = res["line_words"].get(key, 0) + 1
            if j["_why"] is None:
                res["line_unexplained"].append(j)
            else:
                w = j["_why"].split(" ")[0]
                res["explained_by"][w] = res["explained_by"].get(w, 0) + 1
        for kind, recs in self.client.items():
            finals = [r for r in recs if r.get("ev") == "count"]
            if finals:
                res["ok_by_kind"][kind] = finals[-1]["ok"]
                res["errors_by_kind"][kind] = finals[-1]["errors"]
            for r in recs:
                if r.get("ev") == "expected":
                    res["expected"][r["cls"]] = res["expected"].get(r["cls"], 0) + 1
                    continue
                if r.get("ev") != "error":
                    continue
                key = "%s %s" % (kind, r["cls"])
                if r.get("word"):
                    key += " " + r["word"]
                elif r.get("status"):
                    key += " %s" % r["status"]
                res["client_errors"][key] = res["client_errors"].get(key, 0) + 1
                why = self.explain_client(r)
                if why is None:
                    res["client_unexplained"].append(r)
                r["_why"] = why
        return res

    def explain_client(self, r):
        """A client's error is explained by the access lines of its request
        id: at least one says what went wrong, and each of those is
        explained by a fault (or is the slow client's own word)."""
        lines = self.by_rid.get(r.get("rid")) if r.get("rid") else None
        if not lines:
            return None
        bad = [j for j in lines if j.get("error") or j.get("status", 0) >= 400]
        if not bad:
            return None
        whys = [j.get("_why") for j in bad]
        if any(w is None for w in whys):
            return None
        word = r.get("word")
        if word and word != "backend_503" and not any(j.get("error") == word for j in bad):
            return None
        return whys[0]


def fmt_line(j):
    keep = ("ts", "client", "request_id", "upstream", "backend", "target", "protocol", "status",
            "error", "termination", "state", "upstream_results", "upstream_status",
            "ws_close_code", "duration_ms")
    return json.dumps({k: j[k] for k in keep if k in j})


def sanitizer_report(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    hits = [line for line in text.splitlines()
            if "ERROR: AddressSanitizer" in line or "runtime error:" in line
            or "ERROR: LeakSanitizer" in line or "WARNING: AddressSanitizer" in line]
    return hits


def summarize(soak):
    a = soak.a
    crit = []      # (name, ok, figure)
    lines = []
    sm = soak.sampler
    rows = sm.rows
    dur = a.duration
    # The warm-up: long enough for the bounded caches (freed blocks kept
    # per thread and size class, freed streams and transactions, the
    # allocator's arenas) to meet the load's peaks, which the bulk
    # transfers and h2load bursts reach only every few minutes.
    warm = min(300.0, max(60.0, 0.2 * dur))

    # RSS, judged on the median of five samples around each one (50 s): a
    # sample that falls on a burst of 1 MiB transfers in flight (up to
    # 1 MiB each of buffers, by design) is not growth.  The raw maximum is
    # reported too.
    def smooth(i):
        w = sorted(r["rss_kib"] for r in rows[max(0, i - 2):i + 3])
        return w[len(w) // 2]
    warm_idx = [i for i, r in enumerate(rows) if r["t_s"] <= warm]
    late_idx = [i for i, r in enumerate(rows) if r["t_s"] > warm]
    warm_rows = [rows[i] for i in warm_idx]
    late_rows = [rows[i] for i in late_idx]
    if warm_rows and late_rows:
        base = max(smooth(i) for i in warm_idx)
        topi = max(late_idx, key=smooth)
        top = smooth(topi)
        limit = base * (1 + RSS_MARGIN)
        ok = top <= limit
        raw = max(late_rows, key=lambda r: r["rss_kib"])
        half = [r for r in late_rows if r["t_s"] >= (warm + rows[-1]["t_s"]) / 2]
        slope = 0.0
        if len(half) >= 3:
            mx = sum(r["t_s"] for r in half) / len(half)
            my = sum(r["rss_kib"] for r in half) / len(half)
            den = sum((r["t_s"] - mx) ** 2 for r in half)
            if den > 0:
                slope = sum((r["t_s"] - mx) * (r["rss_kib"] - my) for r in half) / den * 600
        fig = ("warm-up (first %.0f s) max %d KiB; after it max %d KiB at %.0f s (%+.1f%%), "
               "medians of 5 samples; limit %d KiB; raw samples: after the warm-up max %d KiB "
               "at %.0f s, last %d KiB; trend over the second half %+.0f KiB per 10 min"
               % (warm, base, top, rows[topi]["t_s"], 100.0 * (top - base) / base, limit,
                  raw["rss_kib"], raw["t_s"], late_rows[-1]["rss_kib"], slope))
        if a.sanitizers:
            # ASan's allocator (quarantine, shadow memory, per-thread caches)
            # makes RSS its own; LeakSanitizer at exit is the leak check here
            # and the normal build's run judges RSS.
            ok = None
            fig += " [not judged on a sanitizer build]"
        crit.append(("rss within +5% of warm-up", ok, fig))
    else:
        crit.append(("rss within +5% of warm-up", False, "too few samples (%d)" % len(rows)))

    # descriptors at each churn checkpoint
    cps = sm.checkpoints
    if len(cps) >= 2:
        r0, o0 = cps[0]["fd_residue"], cps[0]["fds_other"]
        worst = max(cps[1:], key=lambda c: c["fd_residue"])
        others_ok = all(c["fds_other"] == o0 for c in cps)
        ok = worst["fd_residue"] <= r0 + FD_RESIDUE_SLACK and others_ok
        fig = ("residue (sockets - client conns - backend conns) first %.1f, max later %.1f "
               "(%s), slack %d; non-socket fds %s; raw fds %s"
               % (r0, worst["fd_residue"], worst["label"], FD_RESIDUE_SLACK,
                  "constant %d" % o0 if others_ok else
                  "CHANGED " + " ".join("%d" % c["fds_other"] for c in cps),
                  " ".join("%d" % c["fds"] for c in cps)))
        crit.append(("fds back to baseline each churn cycle", ok, fig))
    else:
        crit.append(("fds back to baseline each churn cycle", False,
                     "%d checkpoints (need 2)" % len(cps)))
    if getattr(soak, "idle_after", None) is not None:
        ok = soak.idle_after == soak.idle_before
        crit.append(("fds at rest after the load = before it", ok,
                     "%d before, %d after (connections left: %s)"
                     % (soak.idle_before, soak.idle_after, soak.rest_conns)))
    else:
        crit.append(("fds at rest after the load = before it", False, "not measured"))

    # errors
    jd = Judge(soak)
    res = jd.judge()
    ok = not res["line_unexplained"] and not res["client_unexplained"]
    crit.append(("every error explained by an injected fault", ok,
                 "%d access lines with an error, %d unexplained; %d client-visible errors, "
                 "%d unexplained" % (sum(res["line_words"].values()), len(res["line_unexplained"]),
                                     sum(res["client_errors"].values()),
                                     len(res["client_unexplained"]))))

    # the faults really happened and the slow clients got what they provoke
    kills = sum(1 for e in soak.events if e["ev"] == "kill")
    w503 = sum(1 for e in soak.events if e["ev"] == "fail503_on")
    cut408 = res["expected"].get("slowloris_408", 0) + res["expected"].get("slowloris_reset", 0)
    # the floor decided: access lines of the slow reader cut client_too_slow
    cutslow = jd.floor_cut
    kinds_ok = [k for k, _ in KINDS if res["ok_by_kind"].get(k, 0) > 0 or k in ("slowloris",)]
    missing = [k for k, _ in KINDS if k not in kinds_ok]
    fast_ok = jd.fast_ok > 0
    ok = (kills >= 1 and cut408 >= 1 and cutslow >= 1 and fast_ok and not missing
          and (w503 >= 1 or dur < FAULTS_FROM + CYCLE + FAIL503_AT + FAIL503_FOR))
    crit.append(("faults injected and every client kind served", ok,
                 "%d kills, %d 503 windows, %d reloads; slowloris cut %d, slow readers cut "
                 "client_too_slow %d, "
                 "reader above the floor served whole %d times; kinds with no success: %s"
                 % (kills, w503, len(soak.reload_results), cut408, cutslow,
                    jd.fast_ok, ", ".join(missing) or "none")))

    # reloads
    rl = soak.reload_results
    ok = bool(rl) and all(r["ok"] for r in rl)
    crit.append(("each reload had its expected result", ok,
                 "; ".join("%s->%s (expected %s, generation %d->%d, /config sha256 %s)"
                           % (r["config"], r["result"], r["expected"], r["generation"][0],
                              r["generation"][1], "ok" if r["sha256_matches"] else "WRONG")
                           for r in rl) or "no reload"))

    # the process
    ok = soak.alive_at_end and soak.exit_code == 0
    crit.append(("no crash; exit 0 on SIGTERM", ok,
                 "running at the end: %s; exit status %s" % (soak.alive_at_end, soak.exit_code)))
    if a.sanitizers:
        hits = sanitizer_report(soak.rp_log_path)
        crit.append(("no sanitizer report", not hits,
                     "%d report lines in revproxy.log (%s)%s"
                     % (len(hits), soak.san_options, (": " + hits[0][:200]) if hits else "")))
    crit.append(("harness ran as planned", not soak.problems and not sm.failures,
                 "; ".join(soak.problems + sm.failures) or "yes"))

    # ---- text ----
    passed = all(c[1] is not False for c in crit)
    lines.append("revproxy soak: %s" % ("PASS" if passed else "FAIL"))
    lines.append("binary %s%s, %d s, revproxy pid %d, %d samples, %d checkpoints"
                 % (a.revproxy, " (sanitizers)" if a.sanitizers else "", dur, soak.rp.pid,
                    len(rows), len(cps)))
    lines.append("")
    for name, ok, fig in crit:
        lines.append("%-4s %s: %s" % ("info" if ok is None else "ok" if ok else "FAIL", name, fig))
    lines.append("")
    last = rows[-1] if rows else {}
    if rows:
        rss = [r["rss_kib"] for r in rows]
        lines.append("RSS KiB: first %d, min %d, max %d, last under load %d, at rest %s"
                     % (rss[0], min(rss), max(rss), rss[-2] if len(rss) > 1 else rss[-1],
                        getattr(soak, "final_rss", "-")))
        fds = [r["fds"] for r in rows]
        lines.append("fds: at rest before %s, under load min %d max %d, at rest after %s; "
                     "threads %s" % (soak.idle_before, min(fds), max(fds),
                                     getattr(soak, "idle_after", "-"),
                                     sorted({r["threads"] for r in rows})))
        lines.append("requests (revproxy_http_requests_total): %d, mean %.1f/s"
                     % (last["requests_total"], last["requests_total"] / max(1, dur)))
    lines.append("client successes by kind: %s" % ", ".join(
        "%s %d" % kv for kv in sorted(res["ok_by_kind"].items())))
    lines.append("expected outcomes: %s" % (", ".join(
        "%s %d" % kv for kv in sorted(res["expected"].items())) or "none"))
    lines.append("")
    lines.append("checkpoints (just before each kill):")
    for c in cps:
        lines.append("  %-9s %6.1f s  rss %7d KiB  fds %4d (sockets %4d, other %3d)  "
                     "client conns %5.1f  backend conns %5.1f  residue %5.1f"
                     % (c["label"], c["t_s"], c["rss_kib"], c["fds"], c["fds_socket"],
                        c["fds_other"], c["conns_active"], c["upstream_conns"], c["fd_residue"]))
    lines.append("")
    lines.append("faults:")
    t0 = soak.t0
    for e in soak.events:
        if e["ev"] in ("kill", "restart", "fail503_on", "fail503_off", "reload"):
            lines.append("  %6.1f s  %-11s %s" % (e["t"] - t0, e["ev"],
                                                 e.get("backend") or e.get("config")))
    lines.append("")
    lines.append("access-line errors by reason word (explained by: %s):" % (", ".join(
        "%s %d" % kv for kv in sorted(res["explained_by"].items())) or "-"))
    for k, v in sorted(res["line_words"].items()):
        lines.append("  %-28s %d" % (k, v))
    if soak.__dict__.get("final_metrics"):
        m = soak.final_metrics
        nz = {lab["reason"]: int(v) for lab, v in m.get("revproxy_http_errors_total", []) if v}
        lines.append("revproxy_http_errors_total at the end: %s" % (", ".join(
            "%s %d" % kv for kv in sorted(nz.items())) or "none"))
    lines.append("client-visible errors (kind, class, word or status):")
    for k, v in sorted(res["client_errors"].items()):
        lines.append("  %-40s %d" % (k, v))
    if res["line_unexplained"]:
        lines.append("")
        lines.append("UNEXPLAINED access lines (%d, first 20):" % len(res["line_unexplained"]))
        for j in res["line_unexplained"][:20]:
            lines.append("  %.1f s %s" % (j["_t"] - t0, fmt_line(j)))
    if res["client_unexplained"]:
        lines.append("")
        lines.append("UNEXPLAINED client errors (%d, first 20):" % len(res["client_unexplained"]))
        for r in res["client_unexplained"][:20]:
            r2 = {k: v for k, v in r.items() if not k.startswith("_")}
            lines.append("  %.1f s %s" % (r["t"] - t0, json.dumps(r2, sort_keys=True)))
            for j in jd.by_rid.get(r.get("rid"), [])[:3]:
                lines.append("      access: %s" % fmt_line(j))
    lines.append("")
    lines.append("files: soak.csv, soak.png, revproxy.log, access.log, events.jsonl, "
                 "clients/*.jsonl, logs/, configs/ in %s" % soak.out)
    return passed, "\n".join(lines) + "\n"


def plot(soak):
    """soak.png from soak.csv: RSS and descriptors above, requests and
    errors per second below, a line at each kill and each reload."""
    gp = os.path.join(soak.out, "soak.gp")
    marks = []
    on = {}
    for e in soak.events:
        x = e["t"] - soak.t0
        if e["ev"] == "fail503_on":
            on[e["backend"]] = x
        elif e["ev"] == "fail503_off" and e["backend"] in on:
            marks.append("set object rect from %.1f, graph 0 to %.1f, graph 1 behind "
                         "fc rgb '#fff0c0' fs solid noborder" % (on.pop(e["backend"]), x))
        if e["ev"] == "kill":
            marks.append("set arrow from %.1f, graph 0 to %.1f, graph 1 nohead lc rgb '#bbbbbb' dt 2"
                         % (x, x))
        elif e["ev"] == "reload":
            marks.append("set arrow from %.1f, graph 0 to %.1f, graph 1 nohead lc rgb '%s' dt 3"
                         % (x, x, "#cc0000" if e["config"] == "invalid" else "#009900"))
    term = "pngcairo size 1200,800 font ',10'"
    try:
        t = subprocess.run(["gnuplot", "-e", "set terminal"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, check=False).stdout.decode()
        if "pngcairo" not in t:
            term = "png size 1200,800"
    except OSError:
        return "gnuplot not found"
    title = ("revproxy soak, %d s%s: grey = backend killed, yellow = a backend answers 503, "
             "green = reload, red = invalid reload" % (
        soak.a.duration, " (sanitizers)" if soak.a.sanitizers else ""))
    csv = os.path.join(soak.out, "soak.csv")
    script = "\n".join([
        "set terminal %s" % term,
        "set output '%s'" % os.path.join(soak.out, "soak.png"),
        "set datafile separator ','",
        "set key below",
        "set termoption noenhanced",
        "set grid",
        "set multiplot layout 2,1 title \"%s\"" % title,
        *marks,
        "set xlabel 'seconds'",
        "set ylabel 'RSS (MiB)'",
        "set y2label 'open descriptors'",
        "set ytics nomirror",
        "set y2tics",
        "set yrange [0:*]",
        "set y2range [0:*]",
        "plot '{csv}' using 't_s':(column('rss_kib')/1024) with linespoints lw 2 "
        "lc rgb '#6a0dad' title 'RSS (MiB)', "
        "'' using 't_s':'fds' axes x1y2 with linespoints lc rgb '#009e73' "
        "title 'open fds', "
        "'' using 't_s':'fd_residue' axes x1y2 with lines dt 2 lc rgb '#56b4e9' "
        "title 'fds not held by a connection'".format(csv=csv),
        "set ylabel 'requests/s'",
        "set y2label 'errors/s'",
        "plot '{csv}' using 't_s':'req_per_s' every ::1 with linespoints lw 2 "
        "lc rgb '#6a0dad' title 'requests/s', "
        "'' using 't_s':(column('errors_per_s')-column('slow_client_errors_per_s')) every ::1 "
        "axes x1y2 with linespoints lc rgb '#cc0000' title 'errors/s, revproxy reason words "
        "(slow clients apart)', "
        "'' using 't_s':'slow_client_errors_per_s' every ::1 axes x1y2 with linespoints "
        "lc rgb '#e69f00' title 'errors/s of slow clients (header_timeout, client_too_slow)', "
        "'' using 't_s':'responses_5xx_per_s' every ::1 axes x1y2 with lines dt 2 "
        "lc rgb '#000000' title '5xx responses/s (backend 503s included)'".format(csv=csv),
        "unset multiplot",
    ])
    with open(gp, "w") as f:
        f.write(script + "\n")
    r = subprocess.run(["gnuplot", gp], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       check=False)
    if r.returncode != 0:
        return "gnuplot failed: " + r.stdout.decode()[-300:]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=1800)
    ap.add_argument("--revproxy", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sanitizers", action="store_true")
    a = ap.parse_args()
    if a.duration < 60:
        log("--duration must be at least 60 s (a churn cycle and a reload)")
        return 64
    a.out = os.path.abspath(a.out)
    os.makedirs(a.out, exist_ok=True)

    def on_signal(sig, _frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    soak = Soak(a)
    try:
        soak.run()
    except HarnessError as e:
        log("error: %s" % e)
        return 2
    finally:
        PROCS.stop_all()
    note = plot(soak)
    passed, text = summarize(soak)
    if note:
        text += "plot: %s\n" % note
        passed = False
    with open(os.path.join(a.out, "summary.txt"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
