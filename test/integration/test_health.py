# SPDX-License-Identifier: MIT
"""Backends that fail: passive health checks (ejection, its growth and cap,
no flapping), slow start, least_conn, and 503 no_healthy_backend, with real
backends on loopback and two workers sharing the counts."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REVPROXY, Backend, KeepAliveClient, Proxy, get, response, run  # noqa: E402
from test_proxy import assert_eq  # noqa: E402


def config(backends, health=None, balancer=None, weights=None, retry=None):
    # Retries are off unless a test asks: these tests count the failures
    # the passive checks see, one per request.
    app = {"backends": [{"address": b.addr} for b in backends],
           "retry": retry if retry is not None else {"max_retries": 0}}
    if weights:
        for b, w in zip(app["backends"], weights):
            b["weight"] = w
    if health is not None:
        app["health"] = health
    if balancer:
        app["balancer"] = balancer
    return {"workers": 2, "upstreams": {"app": app},
            "routes": [{"path_prefix": "/", "upstream": "app"}], "log": {"level": "info"}}


def changes(p, until=None):
    """The state changes logged, (backend, from, to); with until, waits up
    to 3 s for until(changes) to hold (a thread of its own writes the log)."""
    deadline = time.time() + 3
    while True:
        got = [(l.get("backend"), l.get("from"), l.get("to")) for l in p.log_lines()
               if l.get("to") is not None and l.get("upstream") == "app"]
        if until is None or until(got) or time.time() > deadline:
            return got
        time.sleep(0.05)


def named(b):
    return lambda req, ci, s: response(200, b"port%d" % b)


def two_backends():
    a = Backend()
    b = Backend()
    a.handler = named(a.port)
    b.handler = named(b.port)
    return a, b


def backend_on(port):
    """A backend on port, once the one closed there has let go of it (its
    accept thread's select holds the socket up to 0.1 s)."""
    for _ in range(50):
        try:
            return Backend(port=port)
        except OSError:
            time.sleep(0.02)
    return Backend(port=port)


def restart(b):
    """A new backend on the port of b, which is closed."""
    n = backend_on(b.port)
    n.handler = named(n.port)
    return n


def test_hc01_dead_backend_ejected_then_back():
    a, b = two_backends()
    p = Proxy(config([a, b], {"passive": {"consecutive_failures": 3, "ejection_ms": 1500}}))
    try:
        for _ in range(20):
            assert_eq(get(p).status, 200)
        assert len(b.requests) >= 5
        b.close()
        t0 = time.time()
        errors = 0
        for _ in range(60):
            if get(p).status != 200:
                errors += 1
        # Three failures in a row (across both workers) take it out; a
        # request replayed once on a new connection may count two.
        assert 1 <= errors <= 3, errors
        window = time.time() - t0
        for _ in range(40):
            assert_eq(get(p).status, 200)
        want = ("%s" % b.addr, "healthy", "unhealthy")
        assert want in changes(p, lambda c: want in c), changes(p)
        b2 = restart(b)
        try:
            time.sleep(1.6)
            served = 0
            for _ in range(40):
                r = get(p)
                assert_eq(r.status, 200)
                served += r.body == b"port%d" % b2.port
            assert served >= 10, served
            want = ("%s" % b.addr, "unhealthy", "healthy")
            assert want in changes(p, lambda c: want in c), changes(p)
        finally:
            b2.close()
        print("    detection: %d client-visible errors; 60 requests in %.2f s" % (errors, window))
    finally:
        p.stop()
        a.close()


def test_hc02_alternating_failures_never_eject():
    n = {"i": 0}
    lock = threading.Lock()

    def flaky(req, ci, s):
        with lock:
            n["i"] += 1
            bad = n["i"] % 2 == 0
        return response(503 if bad else 200, b"flaky")
    a = Backend()
    b = Backend(flaky)
    p = Proxy(config([a, b], {"passive": {"consecutive_failures": 2, "include_5xx": True}}))
    try:
        for _ in range(100):
            get(p)
        assert changes(p) == [], changes(p)
        assert len(b.requests) >= 40, len(b.requests)
    finally:
        p.stop()
        a.close()
        b.close()


def test_hc03_no_healthy_backend_is_503_at_once():
    b = Backend()
    p = Proxy(config([b], {"passive": {"consecutive_failures": 2, "ejection_ms": 2000}}))
    try:
        assert_eq(get(p).status, 200)
        port = b.port
        b.close()
        statuses = [get(p).status for _ in range(3)]
        assert statuses[:2] == [502, 502], statuses
        t0 = time.time()
        r = get(p)
        took = time.time() - t0
        assert_eq(r.status, 503)
        assert b"no_healthy_backend" in r.body, r.body
        assert took < 0.5, took
        # Access lines are buffered by each worker and written by a
        # thread of their own: wait for them (in the file, lines of
        # different workers need not be in order).
        rid = r.header("x-request-id")
        deadline = time.time() + 5
        while time.time() < deadline:
            access = [l for l in p.log_lines() if l.get("request_id") == rid]
            if access:
                break
            time.sleep(0.05)
        assert access and access[0].get("error") == "no_healthy_backend", access
        b2 = backend_on(port)
        try:
            time.sleep(2.1)
            assert_eq(get(p).status, 200)
        finally:
            b2.close()
    finally:
        p.stop()


def test_hc04_max_ejection_percent_keeps_some_in():
    a, b = two_backends()
    p = Proxy(config([a, b], {"passive": {"consecutive_failures": 2, "ejection_ms": 60000,
                                          "max_ejection_percent": 50}}))
    try:
        assert_eq(get(p).status, 200)
        a.close()
        b.close()
        statuses = [get(p).status for _ in range(20)]
        # One of the two is ejected; the other (50% is one of two) stays in
        # and goes on failing: 502, never 503.
        assert statuses.count(502) == 20, statuses
        outs = [c for c in changes(p, lambda c: any(x[2] == "unhealthy" for x in c))
                if c[2] == "unhealthy"]
        assert len(outs) == 1, outs
    finally:
        p.stop()


def test_hc05_least_conn_prefers_the_idle_backend():
    slow = Backend(lambda req, ci, s: (time.sleep(0.4), response(200, b"slow"))[1])
    fast = Backend(lambda req, ci, s: response(200, b"fast"))
    p = Proxy(config([slow, fast], balancer="least_conn"))
    try:
        done = []

        def client():
            for _ in range(10):
                done.append(get(p).body)
        ts = [threading.Thread(target=client) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert_eq(len(done), 40)
        # Round robin would give each half; the slow one holds its requests,
        # so it gets a request only when the fast one is as busy.
        assert done.count(b"fast") >= 30, (done.count(b"fast"), done.count(b"slow"))
    finally:
        p.stop()
        slow.close()
        fast.close()


def test_hc06_slow_start_ramps_the_share():
    a, b = two_backends()
    p = Proxy(config([a, b], {"passive": {"consecutive_failures": 2, "ejection_ms": 500},
                              "slow_start_ms": 3000}))
    try:
        assert_eq(get(p).status, 200)
        port = b.port
        b.close()
        for _ in range(6):
            get(p)
        b2 = restart(b)
        try:
            time.sleep(0.6)
            share = []
            t0 = time.time()
            with KeepAliveClient(p) as c:
                while time.time() - t0 < 3.0:
                    r = c.request()
                    share.append((time.time() - t0, r.body == b"port%d" % port))
            first = [x for t, x in share if t < 1.0]
            last = [x for t, x in share if t >= 2.0]
            f, l = sum(first) / len(first), sum(last) / len(last)
            assert f < 0.3 and l > f + 0.1, (f, l, len(first), len(last))
            time.sleep(0.2)
            trans = [c[1:] for c in changes(p, lambda c: len([x for x in c if x[0] == b.addr]) >= 3)
                     if c[0] == b.addr]
            assert trans == [("healthy", "unhealthy"), ("unhealthy", "recovering"),
                             ("recovering", "healthy")], trans
        finally:
            b2.close()
    finally:
        p.stop()
        a.close()


def test_hc07_bad_health_config_is_rejected_with_its_path():
    cases = (
        ({"passive": {"consecutive_failures": 0}},
         "upstreams.app.health.passive.consecutive_failures", "between 1 and 1000"),
        ({"passive": {"ejection_ms": 5000, "max_ejection_ms": 1000}},
         "upstreams.app.health.passive.max_ejection_ms", "at least ejection_ms"),
        ({"passive": {"bogus": 1}}, "upstreams.app.health.passive.bogus", "unknown"),
        ({"active": {"expect_status": "2xx"}}, "upstreams.app.health.active.expect_status",
         "status codes and ranges"),
        ({"active": {"interval_ms": 100, "timeout_ms": 100}},
         "upstreams.app.health.active.timeout_ms", "below interval_ms"),
        ({"slow_start_ms": -1}, "upstreams.app.health.slow_start_ms", "between 0 and"),
        ([], "upstreams.app.health", "must be an object"))
    a = Backend()
    try:
        for health, path, word in cases:
            cfg = config([a], health)
            cfg["listeners"] = [{"address": "127.0.0.1:1"}]
            fd, name = tempfile.mkstemp(suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(cfg, f)
            try:
                r = subprocess.run([REVPROXY, "--check", "--config", name], capture_output=True,
                                   text=True, timeout=10)
            finally:
                os.unlink(name)
            assert_eq(r.returncode, 78, r.stderr)
            assert path + ":" in r.stderr and word in r.stderr, (path, word, r.stderr)
    finally:
        a.close()


def test_hc08_active_checks_take_out_and_bring_back():
    a, b = two_backends()
    state = {"health": 200, "hang": False}
    checks = []

    def bh(req, ci, s):
        if req.target == "/healthz":
            checks.append(time.time())
            if state["hang"]:
                time.sleep(3)   # far past timeout_ms: only the deadline ends the check
                return None
            return response(state["health"], b"h")
        return response(200, b"port%d" % b.port)
    b.handler = bh
    p = Proxy(config([a, b], {"active": {"path": "/healthz", "interval_ms": 200, "timeout_ms": 100,
                                         "healthy_threshold": 2, "unhealthy_threshold": 3}}))
    try:
        time.sleep(1.0)
        # One check in flight per backend, whatever the number of workers:
        # about five in a second at 200 ms.
        n = len(checks)
        assert 3 <= n <= 7, n
        got = [get(p).body for _ in range(10)]
        assert b"port%d" % b.port in got, got
        state["health"] = 503
        time.sleep(1.2)   # three failures at 200 ms +-10%
        got = [get(p).body for _ in range(20)]
        assert b"port%d" % b.port not in got, got
        want = (b.addr, "healthy", "unhealthy")
        assert want in changes(p, lambda c: want in c), changes(p)
        state["health"] = 200
        time.sleep(0.8)   # two successes
        got = [get(p).body for _ in range(20)]
        assert b"port%d" % b.port in got, got
        want = (b.addr, "unhealthy", "healthy")
        assert want in changes(p, lambda c: want in c), changes(p)
        # A check that hangs past timeout_ms is a failure too.
        state["hang"] = True
        time.sleep(1.5)
        got = [get(p).body for _ in range(20)]
        assert b"port%d" % b.port not in got, got
        # The checks sent a Host and the path, and closed their connections.
        hz = [r for r in b.requests if r.target == "/healthz"]
        assert hz and hz[0].header("host") == b.addr, hz[0].header("host")
    finally:
        p.stop()
        a.close()
        b.close()


def test_hc09_flapping_health_endpoint_changes_state_rarely():
    # Two failures and a success, over and over: never four failures in a
    # row (even if a slow success timed out now and then), so the backend
    # stays in and its state never changes.
    a, b = two_backends()
    n = {"i": 0}

    def bh(req, ci, s):
        if req.target == "/healthz":
            n["i"] += 1
            return response(200 if n["i"] % 3 == 0 else 500, b"h")
        return response(200, b"port%d" % b.port)
    b.handler = bh
    p = Proxy(config([a, b], {"active": {"path": "/healthz", "interval_ms": 150, "timeout_ms": 100,
                                         "unhealthy_threshold": 4}}))
    try:
        time.sleep(2.0)
        assert n["i"] >= 8, n["i"]
        assert changes(p) == [], changes(p)
    finally:
        p.stop()
        a.close()
        b.close()


def test_hc10_fds_stable_across_1000_backend_restarts():
    # A backend that dies and comes back a thousand times (a bounded loop),
    # with requests, pooled connections and active checks in between: the
    # proxy ends with the descriptors it started with.
    a, b = two_backends()
    port = b.port
    p = Proxy(config([a, b], {"active": {"path": "/", "interval_ms": 100, "timeout_ms": 50},
                              "passive": {"consecutive_failures": 2, "ejection_ms": 50}}))
    try:
        with KeepAliveClient(p) as c:
            for _ in range(10):
                c.request()
        time.sleep(0.3)
        before = len(os.listdir("/proc/%d/fd" % p.proc.pid))
        for i in range(1000):
            b.close()
            b = backend_on(port)
            if i % 10 == 0:
                for _ in range(4):
                    get(p)
        b.close()
        a.close()
        # Idle pooled connections to the dead backends go as the backends
        # close them; in-flight checks end within their timeout.
        deadline = time.time() + 5
        after = None
        while time.time() < deadline:
            after = len(os.listdir("/proc/%d/fd" % p.proc.pid))
            if after <= before:
                break
            time.sleep(0.1)
        assert after <= before, (before, after)
        assert p.proc.poll() is None
    finally:
        p.stop()
        a.close()
        b.close()


def test_hc11_slow_clients_do_not_eject_a_backend():
    # The request deadline runs out while clients are still sending their
    # bodies: that is the clients' doing, not the backend's.
    b = Backend()
    cfg = config([b], {"passive": {"consecutive_failures": 2}})
    cfg["timeouts"] = {"request_ms": 400}
    p = Proxy(cfg)
    try:
        socks = []
        for _ in range(3):
            s = p.connect()
            s.sendall(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
            socks.append(s)
        time.sleep(0.8)
        for s in socks:
            s.settimeout(2)
            assert s.recv(100).startswith(b"HTTP/1.1 504"), "no 504"
            s.close()
        assert_eq(get(p).status, 200)
        assert changes(p) == [], changes(p)
    finally:
        p.stop()
        b.close()


def test_hc12_least_conn_upstreams_rotate_apart():
    # One worker, requests alternating between two least_conn upstreams of
    # two backends each: every backend gets its share (ties rotate per
    # upstream, not per worker).
    bs = [Backend() for _ in range(4)]
    for b in bs:
        b.handler = named(b.port)
    cfg = {"workers": 1,
           "upstreams": {"x": {"balancer": "least_conn",
                               "backends": [{"address": bs[0].addr}, {"address": bs[1].addr}]},
                         "y": {"balancer": "least_conn",
                               "backends": [{"address": bs[2].addr}, {"address": bs[3].addr}]}},
           "routes": [{"path_prefix": "/x", "upstream": "x"},
                      {"path_prefix": "/y", "upstream": "y"}],
           "log": {"level": "info"}}
    p = Proxy(cfg)
    try:
        got = {}
        with KeepAliveClient(p) as c:
            for i in range(40):
                r = c.request("/x" if i % 2 == 0 else "/y")
                got[r.body] = got.get(r.body, 0) + 1
        for b in bs:
            assert_eq(got.get(b"port%d" % b.port), 10, got)
    finally:
        p.stop()
        for b in bs:
            b.close()


def test_hc13_5xx_counts_when_asked_and_ejections_grow():
    a, b = two_backends()
    b.handler = lambda req, ci, s: response(503, b"busy")
    p = Proxy(config([a, b], {"passive": {"consecutive_failures": 2, "include_5xx": True,
                                          "ejection_ms": 1000, "max_ejection_ms": 1500}}))
    try:
        for _ in range(8):
            get(p)
        outs = [c for c in changes(p, lambda c: any(x[0] == b.addr for x in c))
                if c[0] == b.addr and c[2] == "unhealthy"]
        assert len(outs) == 1, changes(p)
        time.sleep(1.05)   # the first ejection (1 s) ends
        for _ in range(8):
            get(p)
        changes(p, lambda c: len([x for x in c if x[0] == b.addr and x[2] == "unhealthy"]) >= 2)
        lines = [l for l in p.log_lines() if l.get("backend") == b.addr and l.get("to") == "unhealthy"]
        assert len(lines) >= 2, lines
        # The second in a row lasts twice as long, capped at 1.5 s.
        assert "ejected for 1000 ms (ejection 1)" in lines[0]["reason"], lines[0]
        assert "ejected for 1500 ms (ejection 2)" in lines[1]["reason"], lines[1]
    finally:
        p.stop()
        a.close()
        b.close()


def test_hc14_active_check_heads():
    # An interim 103 before the final 200 is a good check; a head that goes
    # on past 16 KiB is a bad one at once, before any timeout.
    a, b = two_backends()
    mode = {"m": "103"}
    checks = []

    def bh(req, ci, s):
        if req.target == "/healthz":
            checks.append(mode["m"])
            if mode["m"] == "103":
                s.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
                return response(200, b"h")
            try:
                s.sendall(b"HTTP/1.1 200 OK\r\n")
                for _ in range(40):
                    s.sendall(b"X-Pad: " + b"p" * 1000 + b"\r\n")
            except OSError:
                pass
            time.sleep(1)   # no end of head, no close: only the size can end it
            return None
        return response(200, b"port%d" % b.port)
    b.handler = bh
    cfg = config([a, b], {"active": {"path": "/healthz", "interval_ms": 200, "timeout_ms": 150,
                                     "unhealthy_threshold": 2}})
    cfg["log"]["level"] = "debug"
    p = Proxy(cfg)
    try:
        time.sleep(1.0)
        assert checks.count("103") >= 3, checks
        assert changes(p) == [], changes(p)
        mode["m"] = "huge"
        want = (b.addr, "healthy", "unhealthy")
        assert want in changes(p, lambda c: want in c), changes(p)
        reasons = [l.get("msg", "") for l in p.log_lines() if "health check of" in l.get("msg", "")]
        assert any("response head over 16 KiB" in r for r in reasons), reasons
    finally:
        p.stop()
        a.close()
        b.close()


def test_hc15_slow_start_waits_for_the_ejection_to_end():
    # Passive checks eject the backend for 2.5 s; active checks find it
    # well again within a second.  Its slow start must begin when the
    # ejection ends, not when the checks passed (when it was still out).
    a, b = two_backends()
    state = {"bad": True}

    def bh(req, ci, s):
        st = 503 if state["bad"] else 200
        return response(st, b"h" if req.target == "/healthz" else b"port%d" % b.port)
    b.handler = bh
    p = Proxy(config([a, b], {"passive": {"consecutive_failures": 2, "include_5xx": True,
                                          "ejection_ms": 2500},
                              "active": {"path": "/healthz", "interval_ms": 200, "timeout_ms": 150,
                                         "healthy_threshold": 2, "unhealthy_threshold": 2},
                              "slow_start_ms": 1000}))
    try:
        for _ in range(6):
            get(p)
        want = (b.addr, "healthy", "unhealthy")
        assert want in changes(p, lambda c: want in c), changes(p)
        # The active checks take it out too (logged while it is out).
        want = (b.addr, "unhealthy", "unhealthy")
        assert want in changes(p, lambda c: want in c), changes(p)
        state["bad"] = False
        t0 = time.time()
        while time.time() - t0 < 3.2:
            get(p)
            time.sleep(0.03)
        trans = [c[1:] for c in changes(p, lambda c: len([x for x in c if x[0] == b.addr]) >= 3)
                 if c[0] == b.addr]
        assert ("unhealthy", "recovering") in trans, trans
    finally:
        p.stop()
        a.close()
        b.close()


def localhost_backends():
    """Backends on one port of every address localhost resolves to
    (127.0.0.1 and ::1 on Debian; a machine whose localhost is IPv4 only
    gets one)."""
    addrs = sorted({ai[4][0] for ai in socket.getaddrinfo("localhost", 80, 0, socket.SOCK_STREAM)})
    for _ in range(20):
        first = Backend(host=addrs[0], family=socket.AF_INET6 if ":" in addrs[0] else socket.AF_INET)
        bs = [first]
        try:
            for a in addrs[1:]:
                bs.append(Backend(host=a, port=first.port,
                                  family=socket.AF_INET6 if ":" in a else socket.AF_INET))
            return bs
        except OSError:
            for b in bs:
                b.close()
    raise AssertionError("no port free on every address of localhost")


def test_hc16_host_name_backend_resolves_to_every_address():
    bs = localhost_backends()
    for b in bs:
        b.handler = (lambda addr: lambda req, ci, s: response(200, addr.encode()))(b.addr)
    cfg = {"workers": 2, "upstreams": {"app": {
        "backends": [{"address": "localhost:%d" % bs[0].port, "max_connections": 4}],
        "resolve_interval_ms": 200,
        "health": {"active": {"path": "/", "interval_ms": 200, "timeout_ms": 150}}}},
        "routes": [{"path_prefix": "/", "upstream": "app"}], "log": {"level": "info"}}
    p = Proxy(cfg)
    try:
        want = ", ".join(sorted(b.addr for b in bs))
        deadline = time.time() + 5
        line = None
        while time.time() < deadline and line is None:
            line = next((l["msg"] for l in p.log_lines() if "resolves to" in l.get("msg", "")), None)
            time.sleep(0.02)
        assert_eq(line, "upstream app: localhost:%d resolves to %s" % (bs[0].port, want))
        got = {}
        for _ in range(40):
            r = get(p)
            assert_eq(r.status, 200)
            got[r.body] = got.get(r.body, 0) + 1
        # Every address is a backend of its own, taking its share.
        assert set(got) == {b.addr.encode() for b in bs}, got
        deadline = time.time() + 5
        while time.time() < deadline:
            access = [l for l in p.log_lines() if l.get("msg") == "access"]
            if len(access) >= 40:
                break
            time.sleep(0.05)
        backends = {l.get("backend") for l in access}
        assert backends == {b.addr for b in bs}, backends
        # The checks reach every address too (one checker per address).
        deadline = time.time() + 3
        while time.time() < deadline and not all(
                any(q.header("user-agent") == "revproxy-health-check" for q in list(b.requests))
                for b in bs):
            time.sleep(0.05)
        for b in bs:
            assert any(q.header("user-agent") == "revproxy-health-check" for q in b.requests), b.addr
            hosts = {q.header("host") for q in b.requests
                     if q.header("user-agent") == "revproxy-health-check"}
            assert_eq(hosts, {"localhost:%d" % bs[0].port})
        print("    localhost resolved to %s; shares %s" % (want, sorted(got.values())))
    finally:
        p.stop()
        for b in bs:
            b.close()


def test_hc17_a_name_that_does_not_resolve_is_a_warning():
    a = Backend()
    cfg = {"workers": 2, "upstreams": {
        "app": {"backends": [{"address": "no-such-host.invalid:80"}, {"address": a.addr}]},
        "dead": {"backends": [{"address": "no-such-host.invalid:80"}]}},
        "routes": [{"path": "/dead", "upstream": "dead"}, {"path_prefix": "/", "upstream": "app"}],
        "log": {"level": "info"}}
    path = None
    p = None
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(dict(cfg, listeners=[{"address": "127.0.0.1:1"}]), f)
            path = f.name
        out = subprocess.run([REVPROXY, "--check", "--config", path], capture_output=True,
                             text=True, timeout=30)
        assert_eq(out.returncode, 0)
        assert ("upstreams.app.backends[0].address: no-such-host.invalid:80 does not resolve now"
                in out.stderr), out.stderr
        assert "is valid" in out.stdout, out.stdout
        p = Proxy(cfg)
        for _ in range(10):
            r = get(p)
            assert_eq(r.status, 200)
        r = get(p, "/dead")
        assert_eq(r.status, 503)
        assert b"no_healthy_backend" in r.body, r.body
        deadline = time.time() + 3
        warned = []
        while time.time() < deadline and not warned:
            warned = [l for l in p.log_lines() if l.get("level") == "warn"
                      and "no-such-host.invalid:80 does not resolve" in l.get("msg", "")]
            time.sleep(0.05)
        assert warned, p.logs()
    finally:
        if p is not None:
            p.stop()
        a.close()
        if path:
            os.unlink(path)


FAKE_RESOLVER = {}


def fake_resolver_env(path, delay_ms=0):
    """Environment for a proxy whose names ending in .fake.test resolve to
    the IPv4 addresses on the first line of path (fake_resolver.c,
    compiled once)."""
    if "so" not in FAKE_RESOLVER:
        d = tempfile.mkdtemp(prefix="rp-fake-resolver-")
        so = os.path.join(d, "fake_resolver.so")
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_resolver.c")
        subprocess.run(["cc", "-shared", "-fPIC", "-o", so, src, "-ldl"], check=True)
        FAKE_RESOLVER["so"] = so
    asan = os.environ.get("ASAN_OPTIONS", "")
    return {"LD_PRELOAD": FAKE_RESOLVER["so"], "FAKE_RESOLVER_FILE": path,
            "FAKE_RESOLVER_DELAY_MS": str(delay_ms),
            # The sanitizer runtime need not come first for this library.
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}


def answer(path, *addrs, delay_ms=None):
    with open(path + ".new", "w") as f:
        f.write(" ".join(addrs) + "\n")
        if delay_ms is not None:
            f.write("%d\n" % delay_ms)
    os.replace(path + ".new", path)


def resolved(p, text, timeout=3):
    """Wait for the info line saying a name resolves to text."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(l.get("msg", "").endswith("resolves to " + text) for l in p.log_lines()):
            return True
        time.sleep(0.02)
    return False


def test_hc18_addresses_follow_the_name_and_keep_their_health():
    # An address active checks took out, dropped by DNS, back in DNS once
    # healthy: it comes back (its checks start from its state, not afresh
    # as if it were up).  A name that stops resolving keeps its addresses.
    state = {"b": False}
    a = Backend(lambda req, ci, s: response(200, b"A"), host="127.0.0.1")
    b = Backend(lambda req, ci, s: response(200 if state["b"] or req.request_line.startswith("GET /x")
                                            else 500, b"B"), host="127.0.0.2", port=a.port)
    dns = os.path.join(tempfile.mkdtemp(prefix="rp-dns-"), "answer")
    answer(dns, "127.0.0.1", "127.0.0.2")
    cfg = {"workers": 2, "upstreams": {"app": {
        "backends": [{"address": "svc.fake.test:%d" % a.port}], "resolve_interval_ms": 100,
        "health": {"active": {"path": "/", "interval_ms": 100, "timeout_ms": 80,
                              "healthy_threshold": 2, "unhealthy_threshold": 2}}}},
        "routes": [{"path_prefix": "/", "upstream": "app"}], "log": {"level": "info"}}
    p = Proxy(cfg, env=fake_resolver_env(dns))
    try:
        both = "127.0.0.1:%d, 127.0.0.2:%d" % (a.port, a.port)
        assert resolved(p, both), p.logs()
        want = ("127.0.0.2:%d" % a.port, "healthy", "unhealthy")
        assert want in changes(p, lambda c: want in c), changes(p)
        answer(dns, "127.0.0.1")
        assert resolved(p, "127.0.0.1:%d" % a.port), p.logs()
        state["b"] = True
        answer(dns, "127.0.0.1", "127.0.0.2")
        time.sleep(0.3)
        want = ("127.0.0.2:%d" % a.port, "unhealthy", "healthy")
        assert want in changes(p, lambda c: want in c), changes(p)
        bodies = [get(p, "/x").body for _ in range(30)]
        assert bodies.count(b"B") >= 8, bodies
        # DNS fails: the last addresses stay.
        answer(dns)
        deadline = time.time() + 3
        while time.time() < deadline and not any(
                "does not resolve" in l.get("msg", "") for l in p.log_lines()):
            time.sleep(0.02)
        assert any("keeping its last addresses" in l.get("msg", "") for l in p.log_lines()), p.logs()
        bodies = [get(p, "/x").body for _ in range(20)]
        assert set(bodies) == {b"A", b"B"}, bodies
    finally:
        p.stop()
        a.close()
        b.close()


def test_hc19_one_address_is_one_backend_and_names_resolve_before_serving():
    # The name resolves to a numeric backend of the upstream and another
    # address: the numeric one keeps its single share.  The lookup takes
    # 300 ms, and the first request after start is served all the same.
    a = Backend(lambda req, ci, s: response(200, b"A"), host="127.0.0.1")
    b = Backend(lambda req, ci, s: response(200, b"B"), host="127.0.0.2", port=a.port)
    dns = os.path.join(tempfile.mkdtemp(prefix="rp-dns-"), "answer")
    answer(dns, "127.0.0.1", "127.0.0.2")
    cfg = {"workers": 1, "upstreams": {
        "app": {"backends": [{"address": "svc.fake.test:%d" % a.port}, {"address": a.addr}]},
        "same": {"backends": [{"address": "one.fake.test:%d" % a.port}, {"address": b.addr}]}},
        "routes": [{"path": "/same", "upstream": "same"}, {"path_prefix": "/", "upstream": "app"}],
        "log": {"level": "info"}}
    p = Proxy(cfg, env=fake_resolver_env(dns, delay_ms=300))
    try:
        assert_eq(get(p).status, 200)
        bodies = [get(p).body for _ in range(40)]
        assert_eq(sorted(set(bodies)), [b"A", b"B"])
        assert_eq(bodies.count(b"A"), 20)
        # The line says what the name resolves to; each upstream takes
        # every address once.
        assert resolved(p, "127.0.0.1:%d, 127.0.0.2:%d" % (a.port, a.port)), p.logs()
        # In "same", the name adds 127.0.0.1 only: 127.0.0.2 is there as a
        # numeric backend already.
        bodies = [get(p, "/same").body for _ in range(20)]
        assert_eq(bodies.count(b"B"), 10)
    finally:
        p.stop()
        a.close()
        b.close()


def test_hc20_a_check_that_fails_as_its_address_moves_still_counts():
    # An address moves to another position (DNS adds one that sorts
    # before it) while a check of it is in flight, and that check fails:
    # the address goes out, and good checks from its new position bring
    # it back (its run is the address's, not the position's).
    dns = os.path.join(tempfile.mkdtemp(prefix="rp-dns-"), "answer")
    state = {"armed": False, "fired": False}

    def hb(req, ci, s):
        if req.request_line.startswith("GET /hc") and state["armed"] and not state["fired"]:
            state["fired"] = True
            answer(dns, "127.0.0.1", "127.0.0.2")   # 127.0.0.2 moves to position 1
            time.sleep(0.5)
            return response(500, b"B")
        return response(200, b"B")
    a = Backend(lambda req, ci, s: response(200, b"A"), host="127.0.0.1")
    b = Backend(hb, host="127.0.0.2", port=a.port)
    answer(dns, "127.0.0.2")
    cfg = {"workers": 1, "upstreams": {"app": {
        "backends": [{"address": "svc.fake.test:%d" % a.port}], "resolve_interval_ms": 100,
        "health": {"active": {"path": "/hc", "interval_ms": 600, "timeout_ms": 550,
                              "healthy_threshold": 1, "unhealthy_threshold": 1}}}},
        "routes": [{"path_prefix": "/", "upstream": "app"}], "log": {"level": "info"}}
    p = Proxy(cfg, env=fake_resolver_env(dns))
    try:
        state["armed"] = True
        out = ("127.0.0.2:%d" % a.port, "healthy", "unhealthy")
        assert out in changes(p, lambda c: out in c), changes(p)
        back = ("127.0.0.2:%d" % a.port, "unhealthy", "healthy")
        deadline = time.time() + 5
        while time.time() < deadline and back not in changes(p):
            time.sleep(0.05)
        assert back in changes(p), changes(p)
        bodies = [get(p).body for _ in range(20)]
        assert bodies.count(b"B") >= 5, bodies
    finally:
        p.stop()
        a.close()
        b.close()


def test_hc21_stopping_does_not_wait_for_a_lookup():
    a = Backend(host="127.0.0.1")
    dns = os.path.join(tempfile.mkdtemp(prefix="rp-dns-"), "answer")
    answer(dns, "127.0.0.1")
    cfg = {"workers": 1, "upstreams": {"app": {
        "backends": [{"address": "svc.fake.test:%d" % a.port}], "resolve_interval_ms": 100}},
        "routes": [{"path_prefix": "/", "upstream": "app"}], "log": {"level": "info"}}
    p = Proxy(cfg, env=fake_resolver_env(dns))
    try:
        assert_eq(get(p).status, 200)
        answer(dns, "127.0.0.1", delay_ms=20000)   # the next lookup hangs
        time.sleep(0.4)
        t0 = time.time()
        p.proc.terminate()
        p.proc.wait(10)
        took = time.time() - t0
        assert_eq(p.proc.returncode, 0)
        assert took < 3, took
    finally:
        p.stop()
        a.close()


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    sys.exit(run(tests))
