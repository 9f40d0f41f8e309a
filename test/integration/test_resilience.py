# SPDX-License-Identifier: MIT
"""Resilience: per-route timeouts, and the limits that fail fast under
load (the circuit of an upstream, the cap of a worker), with real
backends on loopback."""
import math
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend, Proxy, get, request_bytes, response, run  # noqa: E402
from test_proxy import assert_eq, access_lines  # noqa: E402
from test_queue import CountingBackend, parallel  # noqa: E402


def slow(delay):
    def h(req, ci, s):
        time.sleep(delay)
        return response(200, b"late")
    return h


def wait_access(p, n, timeout=3):
    deadline = time.time() + timeout
    while True:
        lines = access_lines(p)
        if len(lines) >= n or time.time() > deadline:
            return lines
        time.sleep(0.05)


def test_rs01_route_timeouts_override_the_global_ones():
    a = Backend(slow(1.0))
    cfg = {"upstreams": {"app": {"backends": [{"address": a.addr}]}},
           "timeouts": {"upstream_response_ms": 5000},
           "routes": [{"path": "/fast", "upstream": "app", "timeouts": {"upstream_response_ms": 300},
                       "retry": {"max_retries": 0}},
                      {"path": "/deadline", "upstream": "app", "timeouts": {"request_ms": 400},
                       "retry": {"max_retries": 0}},
                      {"path_prefix": "/", "upstream": "app"}],
           "log": {"level": "info"}}
    p = Proxy(cfg)
    try:
        t0 = time.time()
        r = get(p, "/fast")
        took = time.time() - t0
        assert_eq(r.status, 504)
        assert b"upstream_timeout" in r.body, r.body
        assert 0.25 < took < 0.9, took
        t0 = time.time()
        r = get(p, "/deadline")
        took = time.time() - t0
        assert_eq(r.status, 504)
        assert b"request_timeout" in r.body, r.body
        assert 0.35 < took < 0.9, took
        # The other routes keep the global ones.
        r = get(p, "/other")
        assert_eq(r.status, 200)
        assert_eq(r.body, b"late")
    finally:
        p.stop()
        a.close()


def test_rs02_circuit_answers_503_before_a_slow_backend_would():
    a = CountingBackend(delay=5.0)
    cfg = {"workers": 2, "upstreams": {"app": {"backends": [{"address": a.addr}],
                                               "circuit": {"max_active_requests": 2}}},
           "routes": [{"path_prefix": "/", "upstream": "app"}], "log": {"level": "info"}}
    p = Proxy(cfg)
    try:
        held = []
        ts = parallel(p, 2, 1, held)
        deadline = time.time() + 5
        while a.busy < 2 and time.time() < deadline:
            time.sleep(0.01)
        assert_eq(a.busy, 2)
        t0 = time.time()
        r = get(p)
        took = time.time() - t0
        assert_eq(r.status, 503)
        assert_eq(r.header("retry-after"), "1")
        assert b"upstream_overloaded" in r.body, r.body
        assert took < 1.0, took
        lines = wait_access(p, 1)
        assert any(l.get("error") == "upstream_overloaded" and l.get("termination") == "limit"
                   for l in lines), lines
        print("    503 upstream_overloaded after %.3f s (backend: 5 s)" % took)
    finally:
        a.close()
        p.stop()
        for t in ts:
            t.join(10)


def test_rs03_circuit_with_a_queue_serves_in_turn():
    a = CountingBackend(delay=0.2)
    cfg = {"workers": 2, "upstreams": {"app": {"backends": [{"address": a.addr}],
                                               "circuit": {"max_active_requests": 1},
                                               "queue": {"size": 10, "timeout_ms": 5000}}},
           "routes": [{"path_prefix": "/", "upstream": "app"}], "log": {"level": "info"}}
    p = Proxy(cfg)
    try:
        results = []
        for t in parallel(p, 5, 1, results):
            t.join(20)
        assert_eq(sorted(r[0] for r in results), [200] * 5)
        assert_eq(a.peak_busy, 1)
    finally:
        p.stop()
        a.close()


def test_rs04_worker_cap_fails_fast():
    a = CountingBackend(delay=3.0)
    cfg = {"workers": 1, "limits": {"max_active_requests_per_worker": 1},
           "upstreams": {"app": {"backends": [{"address": a.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}], "log": {"level": "info"}}
    p = Proxy(cfg)
    try:
        held = []
        ts = parallel(p, 1, 1, held)
        deadline = time.time() + 5
        while a.busy < 1 and time.time() < deadline:
            time.sleep(0.01)
        t0 = time.time()
        r = get(p)
        assert_eq(r.status, 503)
        assert b"worker_overloaded" in r.body, r.body
        assert_eq(r.header("retry-after"), "1")
        assert time.time() - t0 < 1.0
        for t in ts:
            t.join(10)
        assert_eq(held[0][0], 200)
        # The place is back once the first one ended.
        a.delay = 0
        assert_eq(get(p).status, 200)
    finally:
        p.stop()
        a.close()


def app_cfg(backends, retry=None, workers=1, **up):
    app = {"backends": [{"address": b.addr if hasattr(b, "addr") else b} for b in backends]}
    if retry is not None:
        app["retry"] = retry
    app.update(up)
    return {"workers": workers, "upstreams": {"app": app},
            "routes": [{"path_prefix": "/", "upstream": "app"}], "log": {"level": "info"}}


def dead_addr():
    """An address where nothing listens (a port just freed)."""
    d = Backend()
    addr = d.addr
    d.close()
    return addr


def test_rs05_get_to_a_dead_backend_succeeds_on_another():
    b = Backend(lambda req, ci, s: response(200, b"B"))
    dead = dead_addr()
    p = Proxy(app_cfg([dead, b]))
    try:
        for _ in range(10):
            r = get(p)
            assert_eq(r.status, 200)
            assert_eq(r.body, b"B")
        lines = wait_access(p, 10)
        retried = [l for l in lines if l.get("attempts") == 2]
        assert retried, lines
        for l in retried:
            assert_eq(l["upstream_results"], ["connect_error", "ok"])
        assert all(l.get("attempts", 1) <= 2 for l in lines), lines
    finally:
        p.stop()
        b.close()


class ResetAfterReading(Backend):
    """Reads each request whole, then resets the connection without
    answering; counts the requests."""

    def __init__(self):
        super().__init__(self._h)

    def _h(self, req, ci, s):
        import socket as so
        import struct
        s.setsockopt(so.SOL_SOCKET, so.SO_LINGER, struct.pack("ii", 1, 0))
        return None


def test_rs06_a_post_is_never_sent_twice():
    r1 = ResetAfterReading()
    r2 = ResetAfterReading()
    p = Proxy(app_cfg([r1, r2]))
    try:
        r = get(p, "/order", method="POST", body=b"x" * 100)
        assert_eq(r.status, 502)
        time.sleep(0.2)
        posts = [q for q in r1.requests + r2.requests if q.request_line.startswith("POST")]
        assert_eq(len(posts), 1)
        # A GET reset the same way is tried on the other backend, then again.
        r = get(p, "/item")
        assert_eq(r.status, 502)
        time.sleep(0.2)
        gets = [q for q in r1.requests + r2.requests if q.request_line.startswith("GET")]
        assert_eq(len(gets), 3)
        assert r1.requests and r2.requests
        # A POST whose backend refused the connection was never sent: it is
        # tried on the other.
        ok = Backend(lambda req, ci, s: response(200, b"ok"))
        dead = dead_addr()
        p2 = Proxy(app_cfg([dead, ok]))
        try:
            for _ in range(6):
                assert_eq(get(p2, "/order", method="POST", body=b"y" * 10).status, 200)
            assert_eq(len(ok.requests), 6)
        finally:
            p2.stop()
            ok.close()
    finally:
        p.stop()
        r1.close()
        r2.close()


def test_rs07_a_put_body_is_sent_again_whole():
    seen = []

    def flaky(req, ci, s):
        seen.append(req.body)
        return response(503 if len(seen) == 1 else 200, b"done")
    a = Backend(flaky)
    p = Proxy(app_cfg([a]))
    try:
        body = bytes(range(256)) * 40
        r = get(p, "/doc", method="PUT", body=body)
        assert_eq(r.status, 200)
        assert_eq(len(seen), 2)
        assert seen[0] == body and seen[1] == body
        # Beyond retry.max_body_bytes the body is streamed, not kept: the
        # 503 goes to the client as it is.
        seen.clear()
        p2 = Proxy(app_cfg([a], retry={"max_body_bytes": 1000}))
        try:
            r = get(p2, "/doc", method="PUT", body=body)
            assert_eq(r.status, 503)
            assert_eq(len(seen), 1)
        finally:
            p2.stop()
    finally:
        p.stop()
        a.close()


def test_rs08_all_503_amplification_stays_within_the_budget():
    count = {"n": 0}

    def busy(req, ci, s):
        count["n"] += 1
        return response(503, b"busy")
    bs = [Backend(busy), Backend(busy)]
    p = Proxy(app_cfg(bs, workers=2))
    try:
        sent = 0
        t0 = time.time()
        while time.time() - t0 < 3.0:
            results = []
            for t in parallel(p, 8, 5, results):
                t.join(20)
            sent += len(results)
            assert all(r[0] == 503 for r in results), results[:3]
        elapsed = time.time() - t0
        time.sleep(0.2)
        got = count["n"]
        # The floor accrues per second with traffic: the run touches
        # ceil(elapsed) + 1 seconds at most, whatever their alignment.
        seconds = math.ceil(elapsed) + 1
        bound = 1.2 * sent + 10 * seconds
        amp = got / sent
        lines = wait_access(p, sent)
        exhausted = sum(1 for l in lines if l.get("error") == "retry_budget_exhausted")
        print("    %d client requests over %d s, %d reached backends: amplification %.2f "
              "(bound %.0f); %d answered with the budget spent" % (
                  sent, seconds, got, amp, bound, exhausted))
        assert got <= bound, (got, bound)
        assert exhausted > 0
    finally:
        p.stop()
        for b in bs:
            b.close()


def test_rs09_no_retry_after_the_first_response_byte():
    # The backend sends a head and part of the body, then resets: the
    # client got the head, so nothing is tried again.
    def cut(req, ci, s):
        import socket as so
        import struct
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        time.sleep(0.1)
        s.setsockopt(so.SOL_SOCKET, so.SO_LINGER, struct.pack("ii", 1, 0))
        return None
    a = Backend(cut)
    b = Backend(cut)
    p = Proxy(app_cfg([a, b]))
    try:
        sock = p.connect()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        sock.settimeout(5)
        try:
            while True:
                d = sock.recv(65536)
                if not d:
                    break
                data += d
        except OSError:
            pass
        sock.close()
        assert data.startswith(b"HTTP/1.1 200"), data
        time.sleep(0.2)
        assert_eq(len(a.requests) + len(b.requests), 1)
    finally:
        p.stop()
        a.close()
        b.close()


def test_rs10_retries_stop_at_the_request_deadline():
    # Each try times out after 300 ms; request_ms 500 leaves room for one
    # retry at most, and the answer comes by the deadline.
    a = Backend(slow(2.0))
    cfg = app_cfg([a])
    cfg["timeouts"] = {"upstream_response_ms": 300, "request_ms": 500}
    p = Proxy(cfg)
    try:
        t0 = time.time()
        r = get(p)
        took = time.time() - t0
        assert_eq(r.status, 504)
        assert took < 1.2, took
        lines = wait_access(p, 1)
        assert lines[0]["attempts"] <= 2, lines
    finally:
        p.stop()
        a.close()


def test_rs11_a_retry_holding_the_circuit_place_goes_on():
    # A holds the circuit's only place and is retried after a 503; C waits
    # for the place meanwhile.  A's retry must not wait behind C (it holds
    # what C waits for): both are served at once.
    n = {"k": 0}
    lock = threading.Lock()

    def h(req, ci, s):
        with lock:
            n["k"] += 1
            k = n["k"]
        if k == 1:
            time.sleep(0.3)
            return response(503, b"busy")
        return response(200, b"ok")
    a = Backend(h)
    p = Proxy(app_cfg([a], retry={"backoff_base_ms": 100, "backoff_max_ms": 100},
                      circuit={"max_active_requests": 1}, queue={"size": 4, "timeout_ms": 3000}))
    try:
        res = {}

        def go(name, delay):
            time.sleep(delay)
            t0 = time.time()
            r = get(p, "/" + name)
            res[name] = (r.status, time.time() - t0)
        ts = [threading.Thread(target=go, args=("A", 0)), threading.Thread(target=go, args=("C", 0.1))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        assert_eq(res["A"][0], 200)
        assert_eq(res["C"][0], 200)
        assert res["A"][1] < 1.5 and res["C"][1] < 1.5, res
    finally:
        p.stop()
        a.close()


def test_rs15_a_request_waiting_for_a_connection_holds_no_circuit_place():
    # Circuit of 1, one connection: A gets the place and the connection; B
    # waits for the circuit; when A ends, B is served (a waiter for a
    # connection never sits on the circuit's place).
    a = CountingBackend(delay=0.3)
    p = Proxy({"workers": 2, "upstreams": {"app": {
        "backends": [{"address": a.addr, "max_connections": 1}],
        "circuit": {"max_active_requests": 1}, "queue": {"size": 8, "timeout_ms": 3000}}},
        "routes": [{"path_prefix": "/", "upstream": "app"}], "log": {"level": "info"}})
    try:
        results = []
        t0 = time.time()
        for t in parallel(p, 4, 2, results):
            t.join(30)
        assert_eq(sorted(r[0] for r in results), [200] * 8)
        assert time.time() - t0 < 6, time.time() - t0
        assert_eq(a.peak_busy, 1)
    finally:
        p.stop()
        a.close()


def test_rs16_replay_stays_with_retries_off():
    # The backend answers the first request of each connection and closes
    # on the second without answering, as one closing an idle connection
    # just as a request arrives: that request is replayed once on a new
    # connection, even with retries off.
    per_conn = {}

    def h(req, ci, s):
        per_conn[ci] = per_conn.get(ci, 0) + 1
        if per_conn[ci] > 1:
            return None
        return response(200, b"ok")
    a = Backend(h)
    p = Proxy(app_cfg([a], retry={"max_retries": 0}))
    try:
        assert_eq(get(p).status, 200)
        r = get(p)
        assert_eq(r.status, 200)
        assert_eq(a.connections, 2)
        lines = wait_access(p, 2)
        assert_eq(lines[1]["upstream_results"], ["reset", "ok"])
    finally:
        p.stop()
        a.close()


def test_rs12_expect_continue_after_a_failed_connect():
    good = Backend(lambda req, ci, s: response(200, b"ok"))
    p = Proxy(app_cfg([dead_addr(), good]))
    try:
        for _ in range(2):   # one of the two starts with the dead backend
            s = p.connect(timeout=5)
            s.sendall(b"PUT /x HTTP/1.1\r\nHost: e\r\nContent-Length: 5\r\n"
                      b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
            s.settimeout(2.0)
            got = s.recv(100)
            assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), got
            s.sendall(b"hello")
            data = got
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    data += d
            except OSError:
                pass
            s.close()
            assert b"HTTP/1.1 200" in data, data
        assert_eq([q.body for q in good.requests], [b"hello", b"hello"])
    finally:
        p.stop()
        good.close()


def test_rs13_no_retry_for_a_client_that_left():
    def reset(req, ci, s):
        time.sleep(0.4)
        return None
    a = Backend(reset)
    b = Backend(lambda req, ci, s: response(200, b"ok"))
    p = Proxy(app_cfg([a, b]))
    try:
        for i in range(2):
            s = p.connect()
            s.sendall(request_bytes("/gone%d" % i))
            time.sleep(0.05)
            s.close()
            time.sleep(0.8)
        gone = [q for q in b.requests if q.request_line.startswith("GET /gone")]
        # Round robin sends one of the two to a first: it fails there and
        # is not tried on b, as its client left.
        assert len(a.requests) >= 1, a.requests
        assert len(gone) + len(a.requests) == 2, (len(gone), len(a.requests))
    finally:
        p.stop()
        a.close()
        b.close()


def test_rs14_full_circuit_without_a_queue_refuses_at_once():
    a = CountingBackend(delay=1.0)
    a.live_max = 0
    p = Proxy({"workers": 2, "upstreams": {"app": {
        "backends": [{"address": a.addr, "max_connections": 8}],
        "circuit": {"max_active_requests": 1}}},
        "routes": [{"path_prefix": "/", "upstream": "app"}], "log": {"level": "info"}})
    try:
        # Idle connections on both workers first.
        a.delay = 0
        for _ in range(10):
            assert_eq(get(p).status, 200)
        a.delay = 1.0
        held = []
        ts = parallel(p, 1, 1, held)
        deadline = time.time() + 5
        while a.busy < 1 and time.time() < deadline:
            time.sleep(0.01)
        for _ in range(6):
            t0 = time.time()
            r = get(p)
            assert_eq(r.status, 503)
            assert b"upstream_overloaded" in r.body, r.body
            assert time.time() - t0 < 0.5
        for t in ts:
            t.join(10)
    finally:
        p.stop()
        a.close()


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    sys.exit(run(tests))
