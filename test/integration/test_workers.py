# SPDX-License-Identifier: MIT
"""Integration tests with two worker threads: the global connection cap,
balancing, stopping and keep-alive traffic with connections spread over
both workers' SO_REUSEPORT listeners.

The kernel hands each new connection to one listener by a hash of its
addresses, so which worker serves which connection is not known: the tests
open enough connections for both workers to get some and assert only what
holds whatever the split."""
import contextlib
import os
import select
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, Client, KeepAliveClient, Proxy, response,  # noqa: E402
                     upstream_config, run)
from test_proxy import assert_eq  # noqa: E402

WORKERS = 2


@contextlib.contextmanager
def setup(handler=None, n=1, backends=None, weights=None, **cfg):
    bs = backends or [Backend(handler) for _ in range(n)]
    base = upstream_config(*bs)
    app = base["upstreams"]["app"]
    if weights:
        for be, w in zip(app["backends"], weights):
            be["weight"] = w
    # Pooled connections outlive a slow run, so reuse counts stay meaningful.
    app["pool"] = {"idle_timeout_ms": 60000}
    base["workers"] = WORKERS
    base.update(cfg)
    p = Proxy(base)
    try:
        yield p, bs
    finally:
        try:
            p.stop()
        finally:
            for b in bs:
                b.close()


def wait_for(cond, what, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def run_threads(target, n):
    """Run target(i) on n threads; re-raise the first failure."""
    errors = []

    def wrap(i):
        try:
            target(i)
        except BaseException as e:   # noqa: B902 - reported below
            errors.append(e)
    ts = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
        if t.is_alive():
            raise AssertionError("client thread still running after 60 s")
    if errors:
        raise errors[0]


class Gates:
    """Backend requests wait until their target is opened (or everything
    is); the handler counts how many are inside it at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = {}
        self.all_open = False
        self.inside = 0
        self.most_inside = 0

    def _event(self, target):
        with self.lock:
            ev = self.events.setdefault(target, threading.Event())
            if self.all_open:
                ev.set()
            return ev

    def open(self, target):
        self._event(target).set()

    def open_all(self):
        with self.lock:
            self.all_open = True
            for ev in self.events.values():
                ev.set()

    def handler(self, req, ci, s):
        with self.lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            self._event(req.target).wait(30)
        finally:
            # Leaves before the response is sent, so before the proxy can
            # close the client connection and free its slot.
            with self.lock:
                self.inside -= 1
        return response(200, req.target.encode())


def unanswered_state(c):
    """'waiting' when nothing came back yet, 'refused' when the proxy closed
    the connection without a byte; any answer is an error here."""
    r, _, _ = select.select([c.sock], [], [], 0)
    if not r:
        return "waiting"
    try:
        data = c.sock.recv(65536)
    except ConnectionResetError:
        return "refused"
    if data:
        raise AssertionError("answered while every backend request is held: %r" % data[:200])
    return "refused"


# ---- the global connection cap ----

def test_01_connection_cap_across_workers():
    # limits.max_connections counts client connections over all workers.
    # Beyond it a worker stops accepting (new connections wait in the
    # kernel's queue) or, when another worker took the last slot first,
    # closes the one it just accepted without reading it.  The backend holds
    # every request until the test lets it answer, so the number of requests
    # that reach it is the number of connections the proxy is serving.
    cap, n = 4, 16
    gates = Gates()
    with setup(gates.handler, limits={"max_connections": cap}) as (p, bs):
        b = bs[0]
        clients = {}
        refused = [0]

        def connect(i):
            c = Client(p.connect(timeout=10))
            clients[i] = c
            try:
                c.send(b"GET /c%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % i)
            except OSError:
                pass   # closed at once: found refused below

        def reached():
            with b.lock:
                return [r.target for r in b.requests]

        def sweep(skip):
            # Reconnect the refused ones, as a client would.
            for i in sorted(clients):
                if "/c%d" % i not in skip and unanswered_state(clients[i]) == "refused":
                    refused[0] += 1
                    clients[i].sock.close()
                    connect(i)

        for i in range(n):
            connect(i)
        wait_for(lambda: len(reached()) >= cap, "%d requests at the backend" % cap)
        time.sleep(0.5)   # room for a wrong extra connection to get through
        first = reached()
        assert_eq(len(first), cap, first)
        sweep(first)
        assert_eq(len(reached()), cap)

        # Two served connections end (answered, Connection: close): two
        # waiting ones take their slots, and no more.
        for t in first[:2]:
            gates.open(t)
        for t in first[:2]:
            c = clients[int(t[2:])]
            r = c.read_response()
            assert_eq((r.status, r.body), (200, t.encode()))
            assert c.closed()
            c.sock.close()
        wait_for(lambda: len(reached()) >= cap + 2, "%d requests at the backend" % (cap + 2))
        time.sleep(0.5)
        second = reached()
        assert_eq(len(second), cap + 2, second)
        assert_eq(second[:cap], first)

        # Everything answered: every client is served in the end, retrying
        # when refused, and never more than cap at once.  Each client reads
        # and closes on its own thread: a served connection holds its slot
        # until the client closes its end too.
        gates.open_all()
        rest = [i for i in sorted(clients) if "/c%d" % i not in first[:2]]

        def finish(k):
            i = rest[k]
            t = "/c%d" % i
            for _ in range(100):
                try:
                    r = clients[i].read_response()
                    break
                except (EOFError, ConnectionResetError):
                    with gates.lock:
                        refused[0] += 1
                    clients[i].sock.close()
                    connect(i)
            else:
                raise AssertionError("%s refused 100 times" % t)
            assert_eq((r.status, r.body), (200, t.encode()))
            clients[i].sock.close()
        run_threads(finish, len(rest))
        done = reached()
        assert_eq(sorted(done), sorted("/c%d" % i for i in range(n)), "each request reached the backend once")
        assert gates.most_inside <= cap, (gates.most_inside, refused[0])
        assert_eq(gates.most_inside, cap)


# ---- balancing ----

def test_02_balancing_many_connections():
    # 40 connections, 4 keep-alive requests each, from 8 threads at once.
    # Every worker runs its own weighted round robin, so each backend gets
    # about its weight's share whatever the split of connections; the bounds
    # are loose on purpose.
    names = [b"a", b"b", b"c"]
    weights = [1, 1, 2]
    bs = [Backend(lambda req, ci, s, n=n: response(200, n)) for n in names]
    nconn, rounds, nthreads = 40, 4, 8
    seen = {n: 0 for n in names}
    lock = threading.Lock()
    with setup(backends=bs, weights=weights) as (p, bs):
        clients = [KeepAliveClient(p) for _ in range(nconn)]

        def work(k):
            mine = clients[k::nthreads]
            for rnd in range(rounds):
                for c in mine:
                    r = c.request("/r%d" % rnd)
                    assert_eq(r.status, 200)
                    assert r.body in names, r.body
                    assert not c.closing
                    with lock:
                        seen[r.body] += 1
        run_threads(work, nthreads)
        for c in clients:
            assert_eq(c.requests, rounds)
            c.close()
    total = nconn * rounds
    assert_eq(sum(seen.values()), total)
    for name, w, b in zip(names, weights, bs):
        share = total * w / sum(weights)
        assert 0.6 * share <= seen[name] <= 1.4 * share, (name, seen, share)
        assert_eq(len(b.requests), seen[name])
    # Upstream connections are pooled per worker and reused.
    conns = sum(b.connections for b in bs)
    assert conns * 2 <= total, (conns, total)


# ---- stopping ----

def test_03_sigterm_with_connections_on_both_workers():
    # Requests in flight, idle keep-alive connections and half-sent heads,
    # 36 connections in all (both workers have some unless the kernel's
    # hash sends every one to the same listener): SIGQUIT ends the process
    # with status 0 (stop() allows 10 s and checks for sanitizer reports)
    # and every client connection is closed.
    release = threading.Event()

    def h(req, ci, s):
        if req.target.startswith("/held"):
            release.wait(30)
        return response(200, b"ok")
    b = Backend(h)
    p = Proxy(dict(upstream_config(b), workers=WORKERS))
    clients = []
    try:
        nheld = 12
        for i in range(nheld):
            c = Client(p.connect())
            c.send(b"GET /held%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
            clients.append(c)
        for i in range(12):
            k = KeepAliveClient(p)
            assert_eq(k.request("/idle%d" % i).status, 200)
            clients.append(k.client)
        for i in range(12):
            c = Client(p.connect())
            c.send(b"GET /partial%d HTTP/1.1\r\nHost: a\r\n" % i)
            clients.append(c)
        wait_for(lambda: len([r for r in b.requests if r.target.startswith("/held")]) == nheld,
                 "every held request at the backend")
        start = time.time()
        p.stop()
        stopped_in = time.time() - start
        for c in clients:
            assert c.closed(timeout=5), "client connection left open after stop"
            assert_eq(c.buf, b"", "no answer to a request cut by the stop")
    finally:
        release.set()
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        for c in clients:
            c.sock.close()
        b.close()
    held = [l for l in p.log_lines() if l.get("msg") == "access"
            and str(l.get("target", "")).startswith("/held")]
    assert_eq(len(held), nheld, held)
    assert_eq({l.get("termination") for l in held}, {"shutdown"})
    assert stopped_in < 10, stopped_in


# ---- keep-alive clients ----

def test_04_keepalive_many_requests():
    # Many requests over one client connection, then over eight at once;
    # every response is the one for its request (the backend echoes the
    # target and the body size), no connection is closed by the proxy, and
    # the backend sees its connections reused.
    def h(req, ci, s):
        return response(200, b"%s %d" % (req.target.encode(), len(req.body)))

    def exchange(k, tag, i):
        path = "/%s/%d" % (tag, i)
        if i % 3 == 2:
            body = b"x" * (i * 7)
            r = k.request(path, method="POST", body=body)
            want = "%s %d" % (path, len(body))
        else:
            r = k.request(path)
            want = "%s 0" % path
        assert_eq(r.status, 200, path)
        assert_eq(r.body.decode(), want)
        assert not k.closing, path
        assert r.header("x-request-id")

    with setup(h) as (p, bs):
        b = bs[0]
        nseq = 60
        with KeepAliveClient(p) as k:
            for i in range(nseq):
                exchange(k, "one", i)
            assert_eq(k.requests, nseq)
        assert_eq(len(b.requests), nseq)
        assert b.connections * 5 <= nseq, b.connections

        nthreads, per = 8, 30

        def work(t):
            with KeepAliveClient(p) as k:
                for i in range(per):
                    exchange(k, "t%d" % t, i)
                assert_eq(k.requests, per)
        run_threads(work, nthreads)
        total = nseq + nthreads * per
        assert_eq(len(b.requests), total)
        got = sorted(r.target for r in b.requests)
        want = sorted(["/one/%d" % i for i in range(nseq)]
                      + ["/t%d/%d" % (t, i) for t in range(nthreads) for i in range(per)])
        assert_eq(got, want, "each request reached the backend once")
        assert b.connections * 5 <= total, (b.connections, total)


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    sys.exit(run(tests))
