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


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    sys.exit(run(tests))
