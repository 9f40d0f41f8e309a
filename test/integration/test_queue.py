# SPDX-License-Identifier: MIT
"""Per-backend max_connections and the upstream queue: the limit holds
across two workers, waiters are served as places free (on whichever worker
they wait), and a full queue or a queue deadline gives 503 with
Retry-After, long before a slow backend would have answered."""
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, KeepAliveClient, Proxy, get, request_bytes, response,  # noqa: E402
                     run)
from test_proxy import assert_eq, access_lines  # noqa: E402


class CountingBackend(Backend):
    """Counts its open connections and the requests it is handling at
    once, with their peaks.

    A request being handled holds a connection the proxy cannot have
    closed yet (it has no response), so the peak of requests handled at
    once is an exact lower bound of the proxy's connections.  Open
    connections are counted from accept to the proxy's FIN or RST; since
    the proxy may close one and open the next before the thread serving
    the first has read its FIN, every accept first asks the connections
    it counts whether they are closed (the FIN left the proxy before the
    new SYN did)."""

    def __init__(self, delay=0.0, **kw):
        self.delay = delay
        self.live = set()
        self.peak_open = 0
        self.busy = self.peak_busy = 0
        self.count_lock = threading.Lock()
        super().__init__(self._handle, **kw)

    def _handle(self, req, ci, s):
        with self.count_lock:
            self.busy += 1
            self.peak_busy = max(self.peak_busy, self.busy)
        try:
            if self.delay:
                time.sleep(self.delay)
            return response(200, b"done")
        finally:
            with self.count_lock:
                self.busy -= 1

    def _reap(self):
        for c in list(self.live):
            try:
                if c.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                    self.live.discard(c)
            except BlockingIOError:
                pass
            except OSError:
                self.live.discard(c)

    def _serve(self, c, ci):
        with self.count_lock:
            self._reap()
            self.live.add(c)
            self.peak_open = max(self.peak_open, len(self.live))
        try:
            super()._serve(c, ci)
        finally:
            with self.count_lock:
                self.live.discard(c)


def config(backends, max_conns, queue=None, workers=2, pool=None):
    app = {"backends": [{"address": b.addr, "max_connections": m} for b, m in zip(backends, max_conns)]}
    if queue is not None:
        app["queue"] = queue
    if pool is not None:
        app["pool"] = pool
    return {"workers": workers, "upstreams": {"app": app},
            "routes": [{"path_prefix": "/", "upstream": "app"}], "log": {"level": "info"}}


def parallel(p, n, each, results, path="/"):
    """n client threads, each sending `each` requests on new connections."""
    def client():
        for _ in range(each):
            try:
                r = get(p, path)
                results.append((r.status, r.header("retry-after"), r.body))
            except Exception as e:  # noqa: BLE001
                results.append((0, None, repr(e).encode()))
    ts = [threading.Thread(target=client) for _ in range(n)]
    for t in ts:
        t.start()
    return ts


def occupy(p, a):
    """One request in flight to a (slow) backend a: (its result list, its
    threads), once a is handling it."""
    first = []
    ts = parallel(p, 1, 1, first)
    deadline = time.time() + 5
    while a.busy == 0 and time.time() < deadline:
        time.sleep(0.01)
    assert_eq(a.busy, 1)
    return first, ts


def test_q01_max_connections_never_exceeded():
    a = CountingBackend(delay=0.02)
    b = CountingBackend(delay=0.02)
    p = Proxy(config([a, b], [3, 2], {"size": 1000, "timeout_ms": 10000}))
    try:
        results = []
        for t in parallel(p, 24, 8, results):
            t.join(60)
        bad = [r for r in results if r[0] != 200]
        assert not bad, bad[:5]
        assert_eq(len(results), 24 * 8)
        # The limits were reached, and never passed.
        assert a.peak_busy == 3 and b.peak_busy == 2, (a.peak_busy, b.peak_busy)
        assert a.peak_open <= 3 and b.peak_open <= 2, (a.peak_open, b.peak_open)
        print("    peaks: %d/3 and %d/2 requests handled at once, %d/3 and %d/2 connections open"
              % (a.peak_busy, b.peak_busy, a.peak_open, b.peak_open))
    finally:
        p.stop()
        a.close()
        b.close()


def test_q02_queue_full_and_queue_timeout_before_a_slow_backend():
    a = CountingBackend(delay=5.0)
    p = Proxy(config([a], [1], {"size": 2, "timeout_ms": 400}))
    try:
        _, t1 = occupy(p, a)
        waiting = []
        t0 = time.time()
        ts = parallel(p, 2, 1, waiting)
        time.sleep(0.15)
        # The queue holds two: a third waiter is refused at once.
        r = get(p)
        full_after = time.time() - t0
        assert_eq(r.status, 503)
        assert_eq(r.header("retry-after"), "1")
        assert b"queue_full" in r.body, r.body
        for t in ts:
            t.join(10)
        timed_out_after = time.time() - t0
        assert_eq(sorted(w[0] for w in waiting), [503, 503])
        assert all(w[1] == "1" and b"queue_timeout" in w[2] for w in waiting), waiting
        assert full_after < 0.4, full_after
        assert 0.35 < timed_out_after < 2.5, timed_out_after
        # The log writer is a thread of its own: wait for the lines.
        deadline = time.time() + 3
        while True:
            errors = sorted(l.get("error") for l in access_lines(p) if l.get("status") == 503)
            if len(errors) >= 3 or time.time() > deadline:
                break
            time.sleep(0.05)
        assert_eq(errors, ["queue_full", "queue_timeout", "queue_timeout"])
        assert all(l.get("termination") == "queue" for l in access_lines(p)
                   if l.get("status") == 503), access_lines(p)
        assert_eq(a.peak_open, 1)
        print("    queue_full after %.2f s, queue_timeout after %.2f s (backend: 5 s)"
              % (full_after, timed_out_after))
    finally:
        a.close()
        p.stop()
        for t in t1:
            t.join(10)


def test_q03_no_queue_is_503_at_once():
    a = CountingBackend(delay=5.0)
    p = Proxy(config([a], [1]))
    try:
        _, t1 = occupy(p, a)
        t0 = time.time()
        r = get(p)
        assert_eq(r.status, 503)
        assert_eq(r.header("retry-after"), "1")
        assert b"queue_full" in r.body, r.body
        assert time.time() - t0 < 1.0
    finally:
        a.close()
        p.stop()
        for t in t1:
            t.join(10)


def test_q04_waiters_on_both_workers_served_in_turn():
    # One connection for everybody: each request that waits is woken when
    # the one before it finishes, whichever worker it waits on.
    a = CountingBackend(delay=0.1)
    cfg = config([a], [1], {"size": 50, "timeout_ms": 8000})
    cfg["log"]["level"] = "debug"
    p = Proxy(cfg)
    try:
        results = []
        t0 = time.time()
        for t in parallel(p, 10, 1, results):
            t.join(20)
        took = time.time() - t0
        assert_eq(sorted(r[0] for r in results), [200] * 10)
        assert_eq(a.peak_busy, 1)
        assert took >= 0.95, took
        # Waiting decided nothing: the answers are the backend's.
        assert all("decided_by" not in l for l in access_lines(p)), access_lines(p)
        queued = [l["msg"] for l in p.log_lines() if "queued for upstream" in l.get("msg", "")]
        on = {m.split(" on worker ")[1].split()[0] for m in queued}
        # Ten connections spread by the kernel over two workers: all on one
        # has a chance of 1 in 512.
        assert on == {"0", "1"}, queued
        print("    10 requests through one connection in %.2f s; %d waited, on workers %s"
              % (took, len(queued), sorted(on)))
    finally:
        p.stop()
        a.close()


def test_q05_a_waiter_that_leaves_gives_its_place_back():
    a = CountingBackend(delay=0.8)
    p = Proxy(config([a], [1], {"size": 1, "timeout_ms": 5000}))
    try:
        first, t1 = occupy(p, a)
        s = p.connect()
        s.sendall(request_bytes("/"))
        time.sleep(0.15)
        s.close()   # leaves the queue
        time.sleep(0.15)
        r = get(p)   # takes the place it left
        assert_eq(r.status, 200)
        for t in t1:
            t.join(10)
        assert_eq(first[0][0], 200)
    finally:
        p.stop()
        a.close()


def test_q06_idle_connections_on_other_workers_give_way():
    # Keep-alive pools hold connections idle on both workers; a request
    # that finds the backend's places all held idle elsewhere must not
    # wait for them to time out.
    a = CountingBackend()
    p = Proxy(config([a], [2], {"size": 10, "timeout_ms": 3000},
                     pool={"max_idle_per_backend": 8, "idle_timeout_ms": 60000}))
    try:
        for _ in range(3):
            results = []
            for t in parallel(p, 6, 4, results):
                t.join(20)
            assert_eq(sorted(r[0] for r in results), [200] * 24)
        t0 = time.time()
        for _ in range(20):
            assert_eq(get(p).status, 200)
        took = time.time() - t0
        assert took < 2.5, took
        assert a.peak_open <= 2, a.peak_open
    finally:
        p.stop()
        a.close()


def test_q08_post_takes_the_place_of_an_old_idle_connection():
    # The only place is held by a connection idle for over a second, which
    # a POST may not use (it could not be replayed if the backend closed
    # it as the request arrived): it gives way at once, and the POST does
    # not wait for the queue's deadline.
    a = CountingBackend()
    p = Proxy(config([a], [1], {"size": 5, "timeout_ms": 3000}, workers=1))
    try:
        assert_eq(get(p).status, 200)
        time.sleep(1.2)
        t0 = time.time()
        r = get(p, method="POST", body=b"x" * 10)
        assert_eq(r.status, 200)
        assert time.time() - t0 < 1.0, time.time() - t0
        assert_eq(a.peak_open, 1)
    finally:
        p.stop()
        a.close()


def test_q09_no_queue_and_the_place_idle_on_another_worker():
    # No queue, one place, two workers: the connection idle in one
    # worker's pool must not turn away a request on the other.
    a = CountingBackend()
    p = Proxy(config([a], [1]))
    try:
        got = [get(p).status for _ in range(20)]
        assert_eq(got, [200] * 20)
        assert_eq(a.peak_open, 1)
    finally:
        p.stop()
        a.close()


def test_q10_waiters_on_every_worker_get_their_turn():
    # Steady traffic on one worker must not keep the only place there:
    # each keep-alive client, whichever worker serves it, gets answers.
    a = CountingBackend(delay=0.05)
    p = Proxy(config([a], [1], {"size": 50, "timeout_ms": 1500}))
    res = {}
    stop = time.time() + 3

    def loop(i):
        k = KeepAliveClient(p)
        got = res.setdefault(i, [])
        while time.time() < stop:
            r = k.request("/c%d" % i)
            got.append(r.status)
            if k.closing:
                k.close()
                k = KeepAliveClient(p)
        k.close()
    try:
        ts = [threading.Thread(target=loop, args=(i,)) for i in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(20)
        for i, got in res.items():
            assert got.count(200) >= 3, (i, got)
        assert_eq(a.peak_busy, 1)
    finally:
        p.stop()
        a.close()


def health_backend(state, key, delay=0.0, body=b"x"):
    def h(req, ci, s):
        if req.request_line.startswith("GET /health"):
            return response(200 if state[key] else 500, b"h")
        if delay:
            time.sleep(delay)
        return response(200, body)
    return Backend(h)


def test_q11_health_changes_reach_parked_requests():
    # A backend that comes back takes a parked request at once; when every
    # backend goes out, parked and new requests get no_healthy_backend at
    # once, not queue_timeout.
    state = {"a": True, "b": False}
    a = health_backend(state, "a", delay=3.0, body=b"A")
    b = health_backend(state, "b", body=b"B")
    cfg = config([a, b], [1, 1], {"size": 5, "timeout_ms": 2500}, workers=1)
    cfg["upstreams"]["app"]["health"] = {"active": {
        "path": "/health", "interval_ms": 100, "timeout_ms": 80,
        "unhealthy_threshold": 1, "healthy_threshold": 1}}
    p = Proxy(cfg)
    try:
        time.sleep(0.5)   # b is out
        first = []
        t1 = parallel(p, 1, 1, first)
        deadline = time.time() + 3
        while time.time() < deadline and not any(
                q.request_line.startswith("GET / ") for q in list(a.requests)):
            time.sleep(0.01)
        parked = []
        t0 = time.time()
        t2 = parallel(p, 1, 1, parked)
        time.sleep(0.2)
        state["b"] = True
        for t in t2:
            t.join(10)
        assert_eq(parked[0][0], 200)
        assert_eq(parked[0][2], b"B")
        assert time.time() - t0 < 1.5, time.time() - t0
        # Now one request on each backend, one parked; then both go out.
        second = []
        t3 = parallel(p, 1, 1, second)   # b is free: it takes b, for 0 s
        for t in t3:
            t.join(10)
        state["b"] = False
        time.sleep(0.4)
        parked = []
        t4 = parallel(p, 1, 1, parked)   # a busy, b out: waits
        time.sleep(0.2)
        state["a"] = False
        t0 = time.time()
        for t in t4:
            t.join(10)
        assert_eq(parked[0][0], 503)
        assert b"no_healthy_backend" in parked[0][2], parked
        assert time.time() - t0 < 1.0, time.time() - t0
        r = get(p)
        assert_eq(r.status, 503)
        assert b"no_healthy_backend" in r.body, r.body
        for t in t1:
            t.join(10)
    finally:
        p.stop()
        a.close()
        b.close()


def test_q13_a_backend_back_in_drains_the_queue_at_once():
    # Places that come without a connection closing (a backend brought
    # back by its checks) go to the waiters one after the other at once,
    # not one per sweep.
    state = {"a": True, "b": False}
    a = health_backend(state, "a", delay=3.0, body=b"A")
    b = health_backend(state, "b", body=b"B")
    cfg = config([a, b], [1, 20], {"size": 14, "timeout_ms": 1500}, workers=1)
    cfg["upstreams"]["app"]["health"] = {"active": {
        "path": "/health", "interval_ms": 100, "timeout_ms": 80,
        "unhealthy_threshold": 1, "healthy_threshold": 1}}
    p = Proxy(cfg)
    try:
        time.sleep(0.5)   # b is out
        first = []
        t1 = parallel(p, 1, 1, first)
        deadline = time.time() + 3
        while time.time() < deadline and not any(
                q.request_line.startswith("GET / ") for q in list(a.requests)):
            time.sleep(0.01)
        parked = []
        ts = parallel(p, 14, 1, parked)
        time.sleep(0.2)
        state["b"] = True
        for t in ts:
            t.join(10)
        assert_eq(sorted((r[0], r[2]) for r in parked), [(200, b"B")] * 14)
        for t in t1:
            t.join(10)
    finally:
        p.stop()
        a.close()
        b.close()


def test_q12_a_client_gone_with_its_body_is_never_sent():
    a = CountingBackend(delay=0.8)
    p = Proxy(config([a], [1], {"size": 1, "timeout_ms": 5000}, workers=1))
    try:
        first, t1 = occupy(p, a)
        s = p.connect()
        s.sendall(request_bytes("/gone", method="POST", body=b"x" * 100))
        time.sleep(0.15)
        s.close()
        time.sleep(0.15)
        r = get(p)   # takes the place the POST gave back
        assert_eq(r.status, 200)
        for t in t1:
            t.join(10)
        time.sleep(0.3)
        assert not any(q.request_line.startswith("POST") for q in a.requests), \
            [q.request_line for q in a.requests]
    finally:
        p.stop()
        a.close()


def test_q07_h2_queue_full_has_retry_after():
    a = CountingBackend(delay=3.0)
    p = Proxy(config([a], [1]))
    try:
        _, t1 = occupy(p, a)
        out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-D", "-",
                              "http://127.0.0.1:%d/" % p.port], capture_output=True, timeout=20)
        text = out.stdout.decode("latin-1")
        assert text.startswith("HTTP/2 503"), text
        assert "retry-after: 1\r\n" in text.lower(), text
        assert "queue_full" in text, text
    finally:
        a.close()
        p.stop()
        for t in t1:
            t.join(10)


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    sys.exit(run(tests))
