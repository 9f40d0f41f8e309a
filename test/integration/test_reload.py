# SPDX-License-Identifier: MIT
"""In-process reload: SIGHUP and POST /reload build and check a whole new
configuration before anything changes; under load no request fails, each
is served by a backend of the generation its access line names, and a bad
file changes nothing."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend, Client, Proxy, free_port, request_bytes, response, run  # noqa: E402
from test_proxy import assert_eq, access_lines  # noqa: E402


def named_backend(name):
    return Backend(lambda req, ci, s: response(200, name.encode()))


def write(p, cfg):
    """cfg over what the harness added at start (listeners, workers)."""
    full = dict(p.config)
    full.update(cfg)
    tmp = p.config_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(full, f)
    os.rename(tmp, p.config_path)


def admin(port, method, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(("%s %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % (method, path)).encode())
    r = Client(s).read_response()
    s.close()
    return r


def wait_generation(port, gen, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = admin(port, "GET", "/config")
        if json.loads(r.body)["generation"] == gen:
            return
        time.sleep(0.02)
    raise AssertionError("generation %d not reached" % gen)


def test_rl01_reloads_under_load():
    a, b = named_backend("A"), named_backend("B")
    aport = free_port()
    base = {"workers": 2, "admin": {"address": "127.0.0.1:%d" % aport},
            "routes": [{"path_prefix": "/", "upstream": "app"}],
            "log": {"level": "info"}}
    cfg_a = dict(base, upstreams={"app": {"backends": [{"address": a.addr}]}})
    cfg_b = dict(base, upstreams={"app": {"backends": [{"address": b.addr}]}})
    p = Proxy(cfg_a)
    stop = threading.Event()
    failures, served = [], []
    lock = threading.Lock()

    def h1_client():
        while not stop.is_set():
            try:
                s = p.connect()
                c = Client(s)
                for _ in range(50):
                    if stop.is_set():
                        break
                    c.send(request_bytes("/ka", close=False))
                    r = c.read_response()
                    with lock:
                        if r.status != 200:
                            failures.append(r.status)
                        served.append((r.header("x-request-id"), r.body.decode()))
                s.close()
            except Exception as e:   # noqa: BLE001
                with lock:
                    failures.append(repr(e))
    ts = [threading.Thread(target=h1_client) for _ in range(4)]
    for t in ts:
        t.start()
    h2_out = []

    def h2_client():
        # h2load: request after request on one prior-knowledge HTTP/2
        # connection, 200 a run
        while not stop.is_set():
            r = subprocess.run(["h2load", "-n", "200", "-c", "1", "-m", "1",
                                "http://127.0.0.1:%d/h2" % p.port], capture_output=True, timeout=60)
            h2_out.append((r.returncode, r.stdout.decode(), r.stderr.decode()))
    t2 = threading.Thread(target=h2_client)
    t2.start()
    try:
        for gen in range(2, 22):
            time.sleep(0.25)
            write(p, cfg_b if gen % 2 == 0 else cfg_a)
            p.proc.send_signal(signal.SIGHUP)
            wait_generation(aport, gen)
        time.sleep(0.25)
    finally:
        stop.set()
        for t in ts:
            t.join(30)
        t2.join(60)
        p.stop()
        a.close()
        b.close()
    assert_eq(failures, [])
    assert len(served) > 200, len(served)
    assert h2_out
    for rc, out, err in h2_out:
        assert_eq(rc, 0, err)
        assert "requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed" in out, out
        assert "status codes: 200 2xx, 0 3xx, 0 4xx, 0 5xx" in out, out
    # every response came from the backend of the generation it names
    by_id = {l["request_id"]: l for l in access_lines(p)}
    want = {1: "A"}
    for g in range(2, 22):
        want[g] = "B" if g % 2 == 0 else "A"
    gens = set()
    for rid, body in served:
        line = by_id[rid]
        gens.add(line["config_generation"])
        assert_eq(body, want[line["config_generation"]], line)
    assert len(gens) >= 10, gens
    # HTTP/2 streams too: each access line's backend is its generation's
    addr = {"A": a.addr, "B": b.addr}
    h2 = [l for l in access_lines(p) if l["target"] == "/h2"]
    assert len(h2) >= 200, len(h2)
    for l in h2:
        assert_eq((l["status"], l["backend"]), (200, addr[want[l["config_generation"]]]), l)
    # and generations only grow on each connection
    last = {}
    for l in access_lines(p):
        g = l["config_generation"]
        assert g >= last.get(l["client"], 0), l
        last[l["client"]] = g
    msgs = [l.get("msg", "") for l in p.log_lines()]
    assert_eq(len([m for m in msgs if m.startswith("configuration reloaded: generation ")]), 20)


def test_rl02_bad_config_changes_nothing():
    a = named_backend("A")
    aport = free_port()
    cfg = {"admin": {"address": "127.0.0.1:%d" % aport},
           "upstreams": {"app": {"backends": [{"address": a.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}]}
    p = Proxy(cfg)
    stop = threading.Event()
    failures, n = [], [0]

    def client():
        s = p.connect()
        c = Client(s)
        while not stop.is_set():
            c.send(request_bytes("/x", close=False))
            r = c.read_response()
            n[0] += 1
            if r.status != 200 or r.body != b"A":
                failures.append((r.status, r.body))
        s.close()
    t = threading.Thread(target=client)
    t.start()
    try:
        # a semantic error, by SIGHUP
        bad = dict(cfg, upstreams={"app": {"backends": [{"address": a.addr, "weight": 0}]}})
        write(p, bad)
        p.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        # a syntax error and a change a reload cannot make, by POST /reload
        with open(p.config_path, "w") as f:
            f.write('{"listeners": [')
        r = admin(aport, "POST", "/reload")
        assert_eq(r.status, 409)
        j = json.loads(r.body)
        assert_eq((j["result"], j["generation"]), ("failure", 1))
        assert "1:" in j["errors"][0], j
        write(p, dict(cfg, workers=3))
        r = admin(aport, "POST", "/reload")
        j = json.loads(r.body)
        assert_eq(r.status, 409)
        assert_eq(j["errors"], ["workers: 1 workers run; a reload cannot change that to 3 "
                                "(restart revproxy)"])
        r = admin(aport, "GET", "/reload")
        assert_eq((r.status, r.header("allow")), (405, "POST"))
        m = admin(aport, "GET", "/metrics").body.decode()
        assert 'revproxy_config_reloads_total{result="failure"} 3\n' in m, m[:2000]
        assert "revproxy_config_last_reload_success 0\n" in m
        assert "revproxy_config_generation 1\n" in m
        # a good one after them
        write(p, dict(cfg, timeouts={"request_ms": 20000}))
        r = admin(aport, "POST", "/reload")
        assert_eq((r.status, json.loads(r.body)["result"], json.loads(r.body)["generation"]),
                  (200, "success", 2))
        m = admin(aport, "GET", "/metrics").body.decode()
        assert "revproxy_config_last_reload_success 1\n" in m
        assert 'revproxy_config_reloads_total{result="success"} 1\n' in m
        assert_eq(json.loads(admin(aport, "GET", "/config").body)["config"]["timeouts"]["request_ms"],
                  20000)
        time.sleep(0.2)
    finally:
        stop.set()
        t.join(10)
        p.stop()
        a.close()
    assert_eq(failures, [])
    assert n[0] > 50, n[0]
    errs = [l.get("msg", "") for l in p.log_lines() if l.get("level") == "error"]
    assert "reload: upstreams.app.backends[0].weight: must be between 1 and 1000, not 0" in errs, errs
    assert "reload failed (1 error): generation 1 stays in force" in errs, errs


def test_rl03_health_state_survives():
    a = named_backend("A")
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_addr = "127.0.0.1:%d" % dead.getsockname()[1]
    dead.close()
    aport = free_port()
    cfg = {"admin": {"address": "127.0.0.1:%d" % aport},
           "upstreams": {"app": {"backends": [{"address": a.addr}, {"address": dead_addr}],
                                 "health": {"passive": {"consecutive_failures": 1,
                                                        "ejection_ms": 60000}}}},
           "routes": [{"path_prefix": "/", "upstream": "app"}]}
    p = Proxy(cfg)
    try:
        for _ in range(4):
            s = p.connect()
            s.sendall(request_bytes("/"))
            Client(s).read_response()
            s.close()
        st = json.loads(admin(aport, "GET", "/stats").body)
        down = [x for x in st["upstreams"]["app"]["backends"] if x["address"] == dead_addr][0]
        assert_eq(down["health"], "unhealthy")
        write(p, dict(cfg, routes=[{"path_prefix": "/", "upstream": "app", "name": "renamed"}]))
        assert_eq(admin(aport, "POST", "/reload").status, 200)
        st = json.loads(admin(aport, "GET", "/stats").body)
        down = [x for x in st["upstreams"]["app"]["backends"] if x["address"] == dead_addr][0]
        assert_eq(down["health"], "unhealthy")
        assert_eq([r["route"] for r in st["routes"]], ["renamed", "none"])
        before = len(access_lines(p))
        for _ in range(10):
            s = p.connect()
            s.sendall(request_bytes("/"))
            r = Client(s).read_response()
            s.close()
            assert_eq((r.status, r.body), (200, b"A"))
    finally:
        p.stop()
        a.close()


def test_rl04_hundred_reloads_leak_nothing():
    """100 reloads, each swapping routes, upstreams, TLS-free listeners'
    settings and limits, with a request between: the process stays the
    same size (the sanitizer build's leak check runs at stop)."""
    a, b = named_backend("A"), named_backend("B")
    aport = free_port()
    base = {"admin": {"address": "127.0.0.1:%d" % aport}, "workers": 2}
    cfgs = [dict(base, upstreams={"one": {"backends": [{"address": a.addr}]}},
                 routes=[{"path_prefix": "/", "upstream": "one"}]),
            dict(base, upstreams={"two": {"backends": [{"address": b.addr}], "retry": {"max_retries": 0}},
                                  "spare": {"backends": [{"address": a.addr}]}},
                 routes=[{"path_prefix": "/", "upstream": "two"},
                         {"name": "x", "path": "/x", "upstream": "spare"}],
                 limits={"max_header_bytes": 8192})]
    p = Proxy(cfgs[0])
    try:
        rss = []
        for i in range(100):
            write(p, cfgs[(i + 1) % 2])
            r = admin(aport, "POST", "/reload")
            assert_eq(r.status, 200, r.body)
            s = p.connect()
            s.sendall(request_bytes("/"))
            got = Client(s).read_response()
            s.close()
            assert_eq(got.body, b"B" if i % 2 == 0 else b"A")
            if i in (20, 99):
                rss.append(p.rss_kb())
        with open("/proc/%d/maps" % p.proc.pid) as f:
            sanitized = "libasan" in f.read()
        # (AddressSanitizer keeps freed memory in quarantine: there the
        # leak check at stop is the measure)
        assert sanitized or rss[1] - rss[0] < 4096, rss
    finally:
        p.stop()
        a.close()
        b.close()


def test_rl05_diff_against():
    import tempfile
    from harness import REVPROXY
    d = tempfile.mkdtemp(prefix="rp-test-")
    cur = {"workers": 2, "listeners": [{"address": "127.0.0.1:18999"}],
           "admin": {"address": "127.0.0.1:18998", "token": "first-token-0123456789"},
           "upstreams": {"a": {"backends": [{"address": "127.0.0.1:9001"}, {"address": "127.0.0.1:9002"}]},
                         "old": {"backends": [{"address": "127.0.0.1:9009"}]}},
           "routes": [{"path_prefix": "/", "upstream": "a"},
                      {"host": "x.test", "path": "/o", "upstream": "old"}]}
    new = json.loads(json.dumps(cur))
    new["upstreams"]["a"]["backends"] = [{"address": "127.0.0.1:9002"},
                                         {"address": "127.0.0.1:9003", "weight": 3}]
    del new["upstreams"]["old"]
    new["routes"] = [{"path_prefix": "/", "upstream": "a", "timeouts": {"request_ms": 5000}}]
    new["limits"] = {"max_connections": 2000}
    new["admin"]["token"] = "second-token-0123456789"
    paths = {}
    for name, c in (("cur", cur), ("new", new), ("bad", dict(new, workers=3))):
        paths[name] = os.path.join(d, name + ".json")
        with open(paths[name], "w") as f:
            json.dump(c, f)
    r = subprocess.run([REVPROXY, "-t", "-c", paths["new"], "--diff-against", paths["cur"]],
                       capture_output=True, timeout=10)
    assert_eq(r.returncode, 0, r.stderr)
    out = r.stdout.decode().split("\n")[:-1]
    assert_eq(out[:-1], [
        "~ limits.max_connections: 10000 -> 2000",
        "- upstreams.a.backends[127.0.0.1:9001]",
        '+ upstreams.a.backends[127.0.0.1:9003] = {"address":"127.0.0.1:9003","weight":3}',
        "- upstreams.old",
        "~ routes[* /*].timeouts.request_ms: 30000 -> 5000",
        "- routes[x.test /o]",
        '~ admin.token: "(the old token)" -> "(a new token)"',
    ])
    assert_eq(out[-1], "revproxy: %s is valid; a reload from %s applies 7 changes"
              % (paths["new"], paths["cur"]))
    assert b"token-0123456789" not in r.stdout
    r = subprocess.run([REVPROXY, "-t", "-c", paths["bad"], "--diff-against", paths["new"]],
                       capture_output=True, timeout=10)
    assert_eq(r.returncode, 1, r.stderr)
    assert_eq(r.stdout.decode().split("\n")[:-1], [
        "~ workers: 2 -> 3",
        "revproxy: a reload from %s cannot apply %s; restart revproxy for it:" % (paths["new"], paths["bad"]),
        "  workers: 2 workers run; a reload cannot change that to 3 (restart revproxy)"])
    r = subprocess.run([REVPROXY, "-c", paths["new"], "--diff-against", paths["cur"]],
                       capture_output=True, timeout=10)
    assert_eq(r.returncode, 64)
    with open(paths["bad"], "w") as f:
        f.write("{")
    r = subprocess.run([REVPROXY, "-t", "-c", paths["new"], "--diff-against", paths["bad"]],
                       capture_output=True, timeout=10)
    assert_eq(r.returncode, 78)


def test_rl06_listener_added_and_removed():
    """A reload that adds a listener opens it; one it removes stops
    accepting, and its open keep-alive connection finishes the request in
    flight with Connection: close."""
    slow = Backend(lambda req, ci, s: (time.sleep(0.8), response(200, b"late"))[1]
                   if req.target == "/slow" else response(200, b"ok"))
    aport, first, second = free_port(), free_port(), free_port()
    base = {"workers": 2, "admin": {"address": "127.0.0.1:%d" % aport},
            "upstreams": {"app": {"backends": [{"address": slow.addr}]}},
            "routes": [{"path_prefix": "/", "upstream": "app"}]}
    p = Proxy(dict(base, listeners=[{"address": "127.0.0.1:%d" % first}]), port=first)
    try:
        ka = socket.create_connection(("127.0.0.1", first), timeout=10)
        c = Client(ka)
        c.send(request_bytes("/warm", close=False))
        assert_eq(c.read_response().status, 200)
        c.send(request_bytes("/slow", close=False))
        time.sleep(0.2)
        write(p, dict(base, listeners=[{"address": "127.0.0.1:%d" % second}]))
        r = admin(aport, "POST", "/reload")
        assert_eq(r.status, 200, r.body)
        # the request in flight on the removed listener finishes, then closes
        r = c.read_response()
        assert_eq((r.status, r.body, r.header("connection")), (200, b"late", "close"))
        assert c.closed()
        ka.close()
        # the removed one refuses, the added one serves
        deadline = time.time() + 2
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", first), timeout=1).close()
                time.sleep(0.05)
            except OSError:
                break
        else:
            raise AssertionError("the removed listener still accepts")
        s = socket.create_connection(("127.0.0.1", second), timeout=5)
        s.sendall(request_bytes("/new"))
        assert_eq(Client(s).read_response().status, 200)
        s.close()
        # a port in use fails the reload as a whole
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        write(p, dict(base, listeners=[{"address": "127.0.0.1:%d" % second},
                                       {"address": "127.0.0.1:%d" % taken.getsockname()[1]}]))
        r = admin(aport, "POST", "/reload")
        taken.close()
        assert_eq(r.status, 409)
        assert json.loads(r.body)["errors"][0].startswith("listeners[1].address: cannot listen on"), r.body
        s = socket.create_connection(("127.0.0.1", second), timeout=5)
        s.sendall(request_bytes("/still"))
        assert_eq(Client(s).read_response().status, 200)
        s.close()
    finally:
        p.stop()
        slow.close()


def test_rl07_connection_cap_follows_reload():
    a = named_backend("A")
    aport = free_port()
    cfg = {"admin": {"address": "127.0.0.1:%d" % aport},
           "upstreams": {"app": {"backends": [{"address": a.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}],
           "limits": {"max_connections": 1}}
    p = Proxy(cfg)
    try:
        held = p.connect()
        hc = Client(held)
        hc.send(request_bytes("/h", close=False))
        assert_eq(hc.read_response().status, 200)
        second = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        second.sendall(request_bytes("/second"))
        second.settimeout(0.5)
        try:
            raise AssertionError("served past the cap: %r" % second.recv(100))
        except socket.timeout:
            pass
        write(p, dict(cfg, limits={"max_connections": 10}))
        assert_eq(admin(aport, "POST", "/reload").status, 200)
        second.settimeout(5)
        assert_eq(Client(second).read_response().status, 200)
        second.close()
        held.close()
    finally:
        p.stop()
        a.close()


def test_rl08_what_reload_keeps_or_refuses():
    """Active checks removed by reload no longer keep a backend out; a
    reloaded shutdown_drain_ms is the one a drain uses."""
    good = Backend(lambda req, ci, s: response(500 if req.target == "/check" else 200, b"A"))
    aport = free_port()
    base = {"admin": {"address": "127.0.0.1:%d" % aport},
            "upstreams": {"app": {"backends": [{"address": good.addr}],
                                  "health": {"active": {"path": "/check", "interval_ms": 100,
                                                        "unhealthy_threshold": 1}}}},
            "routes": [{"path_prefix": "/", "upstream": "app"}]}
    p = Proxy(base)
    try:
        deadline = time.time() + 5
        while time.time() < deadline:
            s = p.connect()
            s.sendall(request_bytes("/"))
            r = Client(s).read_response()
            s.close()
            if r.status == 503:
                break
            time.sleep(0.05)
        assert_eq(r.status, 503)   # the active check takes it out
        # active checks removed: the backend takes traffic again
        cfg = json.loads(json.dumps(base))
        del cfg["upstreams"]["app"]["health"]
        cfg["timeouts"] = {"shutdown_drain_ms": 300}
        write(p, cfg)
        assert_eq(admin(aport, "POST", "/reload").status, 200)
        s = p.connect()
        s.sendall(request_bytes("/"))
        assert_eq(Client(s).read_response().status, 200)
        s.close()
    finally:
        good.close()
    # the reloaded drain deadline holds: a request that never ends is cut
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    cfg["upstreams"]["app"]["backends"] = [{"address": "127.0.0.1:%d" % hang.getsockname()[1]}]
    cfg["timeouts"] = {"shutdown_drain_ms": 300, "upstream_response_ms": 60000, "request_ms": 0}
    try:
        write(p, cfg)
        assert_eq(admin(aport, "POST", "/reload").status, 200)
        s = p.connect()
        s.sendall(request_bytes("/hang"))
        time.sleep(0.3)
        t0 = time.time()
        p.proc.send_signal(signal.SIGTERM)
        p.proc.wait(10)
        took = time.time() - t0
        s.close()
    finally:
        hang.close()
        p.stop()
    assert took < 1.5, took


class Load:
    """Keep-alive clients sending GETs until stopped; every status and
    failure recorded."""

    def __init__(self, p, n=2):
        self.p, self.stop, self.lock = p, threading.Event(), threading.Lock()
        self.statuses, self.errors = {}, []
        self.threads = [threading.Thread(target=self.run) for _ in range(n)]
        for t in self.threads:
            t.start()

    def run(self):
        while not self.stop.is_set():
            try:
                s = self.p.connect()
                c = Client(s)
                for _ in range(100):
                    if self.stop.is_set():
                        break
                    c.send(request_bytes("/load", close=False))
                    r = c.read_response()
                    with self.lock:
                        self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
                s.close()
            except Exception as e:   # noqa: BLE001
                with self.lock:
                    self.errors.append(repr(e))

    def end(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        return self.statuses, self.errors


def dns_answer(dns, name, addr, delay_ms=None):
    """What NAME.fake.test resolves to from now on (fake_resolver.c)."""
    from test_health import answer
    answer(dns + "." + name, *([addr] if addr else []), delay_ms=delay_ms)


def test_rl09_host_names_change_by_reload():
    """Host-name backends are added, changed and removed by reload under
    load with no failed request: a new name is resolved before the
    configuration naming it is published, while the admin port keeps
    answering; an address that is also a numeric backend, or that another
    name holds, counts once and never empties the configuration in force;
    a name configured again after a time without does not come back with
    its old addresses."""
    from test_health import fake_resolver_env, localhost_backends
    a = named_backend("A")
    bs, cs = localhost_backends(), localhost_backends()
    for b in bs:
        b.handler = lambda req, ci, s: response(200, b"B")
    for c in cs:
        c.handler = lambda req, ci, s: response(200, b"C")
    bport, cport = bs[0].port, cs[0].port
    aport = free_port()
    import tempfile
    dns = os.path.join(tempfile.mkdtemp(prefix="rp-dns-"), "answers")
    dns_answer(dns, "slow", "127.0.0.1", delay_ms=600)
    dns_answer(dns, "sib", "127.0.0.1")
    dns_answer(dns, "gone", "127.0.0.1")
    base = {"workers": 2, "admin": {"address": "127.0.0.1:%d" % aport}, "log": {"level": "info"},
            "routes": [{"path_prefix": "/", "upstream": "app"}]}
    p = Proxy(dict(base, upstreams={"app": {"backends": [{"address": a.addr}]}}),
              env=fake_resolver_env(dns))
    c1 = p.connect()
    k1 = Client(c1)

    def bodies(n=20):
        out = set()
        for _ in range(n):
            c1.sendall(request_bytes("/", close=False))
            r = k1.read_response()
            assert_eq(r.status, 200)
            out.add(r.body)
        return out

    def reload(up):
        write(p, dict(base, upstreams={"app": up}))
        t0 = time.time()
        r = admin(aport, "POST", "/reload")
        assert_eq(r.status, 200, r.body)
        st = json.loads(admin(aport, "GET", "/stats").body)
        addrs = [b["address"] for b in st["upstreams"]["app"]["backends"]]
        assert_eq(len(addrs), len(set(addrs)), addrs)   # no address twice
        return time.time() - t0

    load = Load(p)
    try:
        assert_eq(bodies(), {b"A"})
        # A name that takes 600 ms to resolve: the reload answers when it
        # has, the admin port answering meanwhile.
        quick = []
        th = threading.Thread(target=lambda: (time.sleep(0.2), quick.append(time.time()),
                                              admin(aport, "GET", "/healthz"),
                                              quick.append(time.time())))
        th.start()
        took = reload({"backends": [{"address": "slow.fake.test:%d" % bport}]})
        th.join()
        assert took >= 0.5, took
        assert quick[1] - quick[0] < 0.3, quick
        assert_eq(bodies(), {b"B"})
        # The same address as a numeric backend and a name, and back.
        reload({"backends": [{"address": "localhost:%d" % bport}], "resolve_interval_ms": 60000})
        assert_eq(bodies(), {b"B"})
        reload({"backends": [{"address": "127.0.0.1:%d" % bport},
                             {"address": "localhost:%d" % bport}], "resolve_interval_ms": 60000})
        assert_eq(bodies(), {b"B"})
        reload({"backends": [{"address": "localhost:%d" % bport}], "resolve_interval_ms": 60000})
        assert_eq(bodies(), {b"B"})
        # Two names of one address; the one holding it goes.
        reload({"backends": [{"address": "localhost:%d" % bport},
                             {"address": "sib.fake.test:%d" % bport}], "resolve_interval_ms": 60000})
        assert_eq(bodies(), {b"B"})
        reload({"backends": [{"address": "sib.fake.test:%d" % bport}], "resolve_interval_ms": 60000})
        assert_eq(bodies(), {b"B"})
        # A name that goes, stops resolving, and comes back: no traffic to
        # its old address.
        reload({"backends": [{"address": a.addr}, {"address": "gone.fake.test:%d" % cport}]})
        assert_eq(bodies(), {b"A", b"C"})
        reload({"backends": [{"address": a.addr}]})
        dns_answer(dns, "gone", None)
        reload({"backends": [{"address": a.addr}, {"address": "gone.fake.test:%d" % cport}]})
        assert_eq(bodies(), {b"A"})
    finally:
        statuses, errors = load.end()
        c1.close()
        p.stop()
        a.close()
        for b in bs + cs:
            b.close()
    assert_eq(errors, [])
    assert_eq(list(statuses), [200])
    assert statuses[200] > 100, statuses
    print("    %d requests under load across 10 reloads, all 200" % statuses[200])


def test_rl11_new_name_not_behind_a_slow_lookup():
    """A reload's new name is looked up on its own, not behind a scheduled
    lookup that a slow name server holds up, nor behind another new name
    that is slow; a SIGHUP while a reload waits reloads again after it; and
    a reload waiting for its names does not delay a stop: SIGTERM refuses
    new connections at once and drops the reload, which is never
    published, even when the drain outlasts the lookup."""
    from test_health import fake_resolver_env
    a, b = named_backend("A"), named_backend("B")
    slow = Backend(lambda req, ci, s: (time.sleep(2.5), response(200, b"slow"))[1])
    aport = free_port()
    import tempfile
    dns = os.path.join(tempfile.mkdtemp(prefix="rp-dns-"), "answers")
    dns_answer(dns, "stuck", "127.0.0.1", delay_ms=2500)
    dns_answer(dns, "fresh", "127.0.0.1")
    dns_answer(dns, "slowx", "127.0.0.1", delay_ms=3000)
    dns_answer(dns, "fasty", "127.0.0.1")
    dns_answer(dns, "late", "127.0.0.1", delay_ms=1500)
    base = {"admin": {"address": "127.0.0.1:%d" % aport}, "log": {"level": "info"},
            "routes": [{"path_prefix": "/", "upstream": "app"},
                       {"path_prefix": "/other/", "upstream": "other"},
                       {"path_prefix": "/slow/", "upstream": "slow"}]}
    other = {"backends": [{"address": "stuck.fake.test:%d" % a.port}], "resolve_interval_ms": 100}
    slow_up = {"backends": [{"address": slow.addr}]}

    def cfg(app):
        return dict(base, upstreams={"app": app, "other": other, "slow": slow_up})

    def get_body(path="/"):
        s = p.connect()
        s.sendall(request_bytes(path))
        r = Client(s).read_response()
        s.close()
        return r.status, r.body

    p = Proxy(cfg({"backends": [{"address": a.addr}]}), env=fake_resolver_env(dns))
    try:
        time.sleep(0.3)   # the scheduled lookup of stuck is under way again
        write(p, cfg({"backends": [{"address": "fresh.fake.test:%d" % b.port}]}))
        t0 = time.time()
        assert_eq(admin(aport, "POST", "/reload").status, 200)
        took = time.time() - t0
        assert took < 1.0, took
        assert_eq(get_body(), (200, b"B"))
        # Two new names, one slow: the fast one is there at once.
        write(p, cfg({"backends": [{"address": "slowx.fake.test:%d" % a.port},
                                   {"address": "fasty.fake.test:%d" % b.port}]}))
        t0 = time.time()
        assert_eq(admin(aport, "POST", "/reload").status, 200)
        took = time.time() - t0
        assert 1.8 < took < 2.8, took   # the deadline: slowx is still looking
        assert_eq(get_body(), (200, b"B"))
        # A SIGHUP while a reload waits: a second reload follows it.
        write(p, cfg({"backends": [{"address": "late.fake.test:%d" % b.port}]}))
        p.proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)
        p.proc.send_signal(signal.SIGHUP)
        wait_generation(aport, 5, timeout=5)
        # A reload waiting for a slow name, then SIGTERM, with a request in
        # flight that keeps the drain going past the lookup.
        dns_answer(dns, "later", "127.0.0.1", delay_ms=1500)
        write(p, cfg({"backends": [{"address": "later.fake.test:%d" % b.port}]}))
        inflight = []
        th = threading.Thread(target=lambda: inflight.append(get_body("/slow/x")))
        th.start()
        time.sleep(0.2)
        p.proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)
        p.proc.send_signal(signal.SIGTERM)
        t0 = time.time()
        deadline = t0 + 1.0
        refused = False
        while time.time() < deadline and not refused:
            try:
                socket.create_connection(("127.0.0.1", p.port), timeout=0.2).close()
                time.sleep(0.02)
            except OSError:
                refused = True
        assert refused, "still accepting %.2f s after SIGTERM" % (time.time() - t0)
        th.join(10)
        assert_eq(inflight, [(200, b"slow")])
        p.proc.wait(10)
        assert_eq(p.proc.returncode, 0)
        msgs = [l.get("msg", "") for l in p.log_lines()]
        assert any("the reload under way is dropped" in m for m in msgs), msgs
        assert "configuration reloaded: generation 6" not in msgs, msgs
        assert not [m for m in msgs if m.startswith("reload failed")], msgs
    finally:
        p.stop()
        a.close()
        b.close()
        slow.close()


def test_rl10_reload_logs_changes_and_renewed_certificate():
    """--diff-against prints the warnings --check prints; a reload logs what
    it changed, including a certificate file renewed in place (same name,
    another certificate: only the running process can tell), and serves
    the new certificate."""
    import hashlib
    import shutil
    import ssl
    import tempfile
    from harness import REVPROXY
    d = tempfile.mkdtemp(prefix="rp-test-")

    def selfsigned(name):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key", "-out",
                        name + ".crt", "-subj", "/CN=renew.example", "-days", "30"],
                       cwd=d, check=True, capture_output=True)

    def served_fingerprint(port):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="renew.example") as t:
                return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()

    def file_fingerprint(name):
        der = subprocess.run(["openssl", "x509", "-in", os.path.join(d, name + ".crt"),
                              "-outform", "DER"], capture_output=True, check=True).stdout
        return hashlib.sha256(der).hexdigest()

    b = named_backend("A")
    p = None
    try:
        selfsigned("old")
        selfsigned("next")
        crt, key = os.path.join(d, "site.crt"), os.path.join(d, "site.key")
        shutil.copy(os.path.join(d, "old.crt"), crt)
        shutil.copy(os.path.join(d, "old.key"), key)
        tport, aport = free_port(), free_port()
        cfg = {"admin": {"address": "127.0.0.1:%d" % aport}, "log": {"level": "info"},
               "upstreams": {"a": {"backends": [{"address": b.addr}]}},
               "routes": [{"path_prefix": "/", "upstream": "a"}]}
        p = Proxy(cfg)
        cfg["listeners"] = p.config["listeners"] + [
            {"address": "127.0.0.1:%d" % tport, "tls": {"certificates": [{"cert": crt, "key": key}]}}]
        write(p, cfg)
        assert_eq(admin(aport, "POST", "/reload").status, 200)
        assert_eq(served_fingerprint(tport), file_fingerprint("old"))
        # --diff-against warns as --check does.
        new = os.path.join(d, "new.json")
        with open(new, "w") as f:
            full = dict(p.config)
            full.update(cfg)
            full["admin"] = {"address": "127.0.0.1:%d" % aport, "token": "short"}
            json.dump(full, f)
        r = subprocess.run([REVPROXY, "-t", "-c", new, "--diff-against", p.config_path],
                           capture_output=True, timeout=10)
        assert_eq(r.returncode, 0, r.stderr)
        assert b"admin.token: 5 characters is short for a secret" in r.stderr, r.stderr
        assert b'+ admin.token = "(a new token)"' in r.stdout, r.stdout
        assert b"short" not in r.stdout, r.stdout
        # Renewed in place, and a limit changed: the reload logs both.
        shutil.copy(os.path.join(d, "next.crt"), crt)
        shutil.copy(os.path.join(d, "next.key"), key)
        cfg["limits"] = {"max_connections": 500}
        write(p, cfg)
        assert_eq(admin(aport, "POST", "/reload").status, 200)
        assert_eq(served_fingerprint(tport), file_fingerprint("next"))
        msgs = [l["msg"] for l in p.log_lines() if l.get("msg", "").startswith("reload changes ")]
        assert "reload changes limits.max_connections: 10000 -> 500" in msgs, msgs
        want = "reload changes listeners[127.0.0.1:%d].tls.certificates[%s]: sha256 %s..." % (
            tport, crt, file_fingerprint("old")[:16])
        got = [m for m in msgs if m.startswith(want)]
        assert len(got) == 1 and ("-> sha256 %s..." % file_fingerprint("next")[:16]) in got[0], msgs
    finally:
        if p is not None:
            p.stop()
        b.close()
        shutil.rmtree(d)

def test_rl12_late_lookup_and_new_listener_while_waiting():
    """A lookup begun for a name that a later reload removes and adds
    again lands nowhere (the name shows its new answer, not the old one);
    and a listener a waiting reload adds takes no connection before the
    reload is published (refused, not queued then reset)."""
    from test_health import fake_resolver_env
    a = named_backend("A")
    aport, newport = free_port(), free_port()
    import tempfile
    dns = os.path.join(tempfile.mkdtemp(prefix="rp-dns-"), "answers")
    dns_answer(dns, "x", "127.0.0.1", delay_ms=3000)
    base = {"admin": {"address": "127.0.0.1:%d" % aport}, "log": {"level": "info"},
            "routes": [{"path_prefix": "/", "upstream": "app"}]}
    p = Proxy(dict(base, upstreams={"app": {"backends": [{"address": a.addr}]}}),
              env=fake_resolver_env(dns))

    def app_addrs():
        st = json.loads(admin(aport, "GET", "/stats").body)
        return sorted(b["address"] for b in st["upstreams"]["app"]["backends"])
    try:
        with_x = {"backends": [{"address": a.addr}, {"address": "x.fake.test:%d" % a.port}],
                  "resolve_interval_ms": 60000}
        listeners = p.config["listeners"] + [{"address": "127.0.0.1:%d" % newport}]
        write(p, dict(base, upstreams={"app": with_x}, listeners=listeners))
        t0 = time.time()
        th = threading.Thread(target=lambda: admin(aport, "POST", "/reload"))
        th.start()
        time.sleep(0.5)
        # Waiting: the new address is bound, not listening.
        try:
            socket.create_connection(("127.0.0.1", newport), timeout=1).close()
            assert False, "the new listener took a connection before the reload was published"
        except ConnectionRefusedError:
            pass
        th.join(10)   # published at the 2 s deadline, x still looking
        socket.create_connection(("127.0.0.1", newport), timeout=1).close()
        write(p, dict(base, upstreams={"app": {"backends": [{"address": a.addr}]}},
                      listeners=listeners))
        assert_eq(admin(aport, "POST", "/reload").status, 200)
        dns_answer(dns, "x", "127.0.0.2")
        write(p, dict(base, upstreams={"app": with_x}, listeners=listeners))
        assert_eq(admin(aport, "POST", "/reload").status, 200)
        assert_eq(app_addrs(), sorted([a.addr, "127.0.0.2:%d" % a.port]))
        # The first lookup ends (3 s after it began) and changes nothing.
        time.sleep(max(0, 3.4 - (time.time() - t0)))
        assert_eq(app_addrs(), sorted([a.addr, "127.0.0.2:%d" % a.port]))
    finally:
        p.stop()
        a.close()

if __name__ == "__main__":
    sys.exit(run([test_rl01_reloads_under_load, test_rl02_bad_config_changes_nothing,
                  test_rl03_health_state_survives, test_rl04_hundred_reloads_leak_nothing,
                  test_rl05_diff_against, test_rl06_listener_added_and_removed,
                  test_rl07_connection_cap_follows_reload, test_rl08_what_reload_keeps_or_refuses,
                  test_rl09_host_names_change_by_reload,
                  test_rl10_reload_logs_changes_and_renewed_certificate,
                  test_rl11_new_name_not_behind_a_slow_lookup,
                  test_rl12_late_lookup_and_new_listener_while_waiting]))
