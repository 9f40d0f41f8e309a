# SPDX-License-Identifier: MIT
"""Resilience: per-route timeouts, and the limits that fail fast under
load (the circuit of an upstream, the cap of a worker), with real
backends on loopback."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend, Proxy, get, response, run  # noqa: E402
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
           "routes": [{"path": "/fast", "upstream": "app", "timeouts": {"upstream_response_ms": 300}},
                      {"path": "/deadline", "upstream": "app", "timeouts": {"request_ms": 400}},
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


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    sys.exit(run(tests))
