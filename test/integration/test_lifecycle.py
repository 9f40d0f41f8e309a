# SPDX-License-Identifier: MIT
"""Graceful shutdown: on SIGTERM revproxy stops accepting (what waits in
its accept queues is still served), lets requests in flight over HTTP/1
and HTTP/2 finish, closes idle keep-alive connections, and exits 0; at
timeouts.shutdown_drain_ms it cuts what is left and says how much."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, Client, Proxy, free_port, get, request_bytes, response,  # noqa: E402
                     run)
from test_proxy import assert_eq, access_lines  # noqa: E402


class SlowBackend(Backend):
    """Answers after delay seconds (never, with delay None); counts the
    requests it has received."""

    def __init__(self, delay):
        self.delay = delay
        self.got = 0
        self.lock = threading.Lock()
        super().__init__(self._handle)

    def _handle(self, req, ci, s):
        with self.lock:
            self.got += 1
        if self.delay is None:
            time.sleep(30)
            return None
        time.sleep(self.delay)
        return response(200, b"slow " + req.target.encode())


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.01)


def refused(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
    except OSError:
        return True
    s.close()
    return False


def test_sd01_in_flight_requests_finish():
    b = SlowBackend(2.0)
    cfg = {"workers": 2, "upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}],
           "timeouts": {"shutdown_drain_ms": 10000}}
    p = Proxy(cfg)
    results = {}
    try:
        # 25 HTTP/1 requests on connections of their own, 25 HTTP/2 streams
        def h1(i):
            try:
                r = get(p, "/h1/%d" % i)
                results["h1-%d" % i] = (r.status, r.header("connection"))
            except Exception as e:   # noqa: BLE001
                results["h1-%d" % i] = repr(e)
        ts = [threading.Thread(target=h1, args=(i,)) for i in range(25)]
        for t in ts:
            t.start()
        # curl multiplexes 25 streams over one prior-knowledge HTTP/2
        # connection, and takes GOAWAY as a server's graceful stop
        urls = ["http://127.0.0.1:%d/h2/%d" % (p.port, i) for i in range(25)]
        cmd = ["curl", "-sS", "--http2-prior-knowledge", "--parallel", "--parallel-max", "25",
               "--parallel-immediate"]
        for u in urls:
            cmd += ["-o", "/dev/null", "-w", "%{http_version} %{http_code}\n", u]
        curl = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: b.got >= 50, 10, "50 requests at the backend")
        t0 = time.time()
        p.proc.send_signal(signal.SIGTERM)
        # new connections are refused within a second
        wait_for(lambda: refused(p.port), 1.0, "the listener to close")
        took_refuse = time.time() - t0
        out, err = curl.communicate(timeout=15)
        for t in ts:
            t.join(10)
        h2_status = sorted(out.decode().split("\n")[:-1])
        p.proc.wait(10)
        took_exit = time.time() - t0
    finally:
        p.stop()
        b.close()
    assert_eq(sorted(results.values()), [(200, "close")] * 25)
    assert_eq(h2_status, ["2 200"] * 25, err)
    assert took_refuse < 1.0, took_refuse
    assert took_exit < 5.0, took_exit
    assert_eq(p.proc.returncode, 0)
    acc = access_lines(p)
    assert_eq(sorted(l["status"] for l in acc), [200] * 50)
    msgs = [l.get("msg", "") for l in p.log_lines()]
    assert any(m.startswith("received Terminated: draining (") for m in msgs), msgs[-10:]
    assert any(m.startswith("drained in ") for m in msgs), msgs[-10:]
    assert not any("cut" in m for m in msgs), msgs[-10:]


def test_sd02_queued_connections_served_and_idle_closed():
    """A connection waiting in the accept queue when the signal comes is
    served; an idle keep-alive connection is closed at once; a request on
    a kept-alive connection in flight is answered with Connection: close."""
    b = SlowBackend(0.5)
    cfg = {"upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}],
           "timeouts": {"shutdown_drain_ms": 10000}}
    p = Proxy(cfg)
    try:
        idle = p.connect()
        ic = Client(idle)
        ic.send(request_bytes("/warm", close=False))
        assert_eq(ic.read_response().status, 200)
        busy = p.connect()
        bc = Client(busy)
        bc.send(request_bytes("/busy", close=False))
        wait_for(lambda: b.got >= 2, 5, "the busy request")
        # stop the worker from accepting for a moment: SIGSTOP, connect, SIGTERM, SIGCONT
        p.proc.send_signal(signal.SIGSTOP)
        try:
            queued = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            queued.sendall(request_bytes("/queued", close=False))
            p.proc.send_signal(signal.SIGTERM)
        finally:
            p.proc.send_signal(signal.SIGCONT)
        assert ic.closed(timeout=2), "the idle keep-alive connection stays open"
        r = bc.read_response()
        assert_eq((r.status, r.header("connection")), (200, "close"))
        qc = Client(queued)
        r = qc.read_response()
        assert_eq((r.status, r.header("connection")), (200, "close"))
        assert qc.closed(timeout=2)
        p.proc.wait(10)
    finally:
        p.stop()
        b.close()
    assert_eq(p.proc.returncode, 0)


def test_sd03_deadline_cuts_and_second_signal():
    b = SlowBackend(None)
    cfg = {"upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}],
           "timeouts": {"shutdown_drain_ms": 1000, "upstream_response_ms": 60000,
                        "request_ms": 0}}
    p = Proxy(cfg)
    try:
        socks = []
        for i in range(3):
            s = p.connect()
            s.sendall(request_bytes("/hang/%d" % i))
            socks.append(s)
        wait_for(lambda: b.got >= 3, 5, "3 requests at the backend")
        t0 = time.time()
        p.proc.send_signal(signal.SIGTERM)
        p.proc.wait(10)
        took = time.time() - t0
        for s in socks:
            s.close()
    finally:
        p.stop()
        b.close()
    assert_eq(p.proc.returncode, 0)
    assert 0.9 <= took < 3.0, took     # the deadline, plus 2 s at most
    msgs = [l.get("msg", "") for l in p.log_lines()]
    assert "timeouts.shutdown_drain_ms (1000 ms) passed: 3 requests cut" in msgs, msgs[-10:]
    acc = access_lines(p)
    assert_eq(sorted(l.get("error") for l in acc), ["shutdown"] * 3)
    # a second signal stops at once
    b = SlowBackend(None)
    cfg["upstreams"]["app"]["backends"][0]["address"] = b.addr
    cfg["timeouts"]["shutdown_drain_ms"] = 30000
    p = Proxy(cfg)
    try:
        s = p.connect()
        s.sendall(request_bytes("/hang"))
        wait_for(lambda: b.got >= 1, 5, "the request at the backend")
        t0 = time.time()
        p.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        p.proc.send_signal(signal.SIGINT)
        p.proc.wait(10)
        took = time.time() - t0
        s.close()
    finally:
        p.stop()
        b.close()
    assert took < 2.0, took
    assert_eq(p.proc.returncode, 0)
    msgs = [l.get("msg", "") for l in p.log_lines()]
    assert "received Interrupt again: stopping now" in msgs, msgs[-10:]


def test_sd04_ready_turns_503_while_draining():
    b = SlowBackend(1.5)
    aport = socket.socket()
    aport.bind(("127.0.0.1", 0))
    port = aport.getsockname()[1]
    aport.close()
    cfg = {"upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}],
           "admin": {"address": "127.0.0.1:%d" % port}}
    p = Proxy(cfg)
    try:
        s = p.connect()
        s.sendall(request_bytes("/slow"))
        wait_for(lambda: b.got >= 1, 5, "the request at the backend")
        p.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        a = socket.create_connection(("127.0.0.1", port), timeout=5)
        a.sendall(b"GET /ready HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        r = Client(a).read_response()
        a.close()
        assert_eq((r.status, r.body), (503, b"draining\n"))
        assert_eq(Client(s).read_response().status, 200)
        s.close()
        p.proc.wait(10)
    finally:
        p.stop()
        b.close()
    assert_eq(p.proc.returncode, 0)


def test_sd05_http2_notice_then_goaway():
    """HTTP/2: a shutdown notice (GOAWAY with the largest stream id) first,
    a stream opened after it is still served, then GOAWAY with the last
    stream processed, and the connection closes when its streams end."""
    from test_h2 import (END_HEADERS, END_STREAM, GOAWAY, HEADERS, RawH2, frame)
    b = SlowBackend(0.3)
    cfg = {"upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}]}
    p = Proxy(cfg)
    try:
        c = RawH2(p)
        hdrs = [(":method", "GET"), (":path", "/one"), (":scheme", "http"), (":authority", "a")]
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, c.block(hdrs)))
        wait_for(lambda: b.got >= 1, 5, "the first stream at the backend")
        p.proc.send_signal(signal.SIGTERM)
        frames, _ = c.read_frames(timeout=3, until=lambda fs: any(t == GOAWAY for t, _, _, _ in fs))
        goaways = [(int.from_bytes(pl[:4], "big") & 0x7FFFFFFF, int.from_bytes(pl[4:8], "big"))
                   for t, _, _, pl in frames if t == GOAWAY]
        assert_eq(goaways[0], (0x7FFFFFFF, 0))
        # a stream opened after the notice is served
        hdrs[1] = (":path", "/two")
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, 3, c.block(hdrs)))
        more, closed = c.read_frames(timeout=5)
        frames += more
        c.close()
        p.proc.wait(10)
    finally:
        p.stop()
        b.close()
    goaways = [(int.from_bytes(pl[:4], "big") & 0x7FFFFFFF, int.from_bytes(pl[4:8], "big"))
               for t, _, _, pl in frames if t == GOAWAY]
    assert_eq(goaways, [(0x7FFFFFFF, 0), (3, 0)])
    assert closed
    ended = {sid for t, fl, sid, _ in frames if t in (0, 1) and fl & END_STREAM}
    assert_eq(ended, {1, 3})
    assert_eq(sorted(l["target"] for l in access_lines(p)), ["/one", "/two"])
    assert_eq(p.proc.returncode, 0)


def test_sd06_queue_past_the_cap_and_unused_connections():
    """At limits.max_connections new connections wait in the accept queue:
    the drain serves them rather than resetting them.  A connection that
    never sent a byte does not hold the drain for client_header_ms."""
    b = SlowBackend(1.0)
    cfg = {"upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}],
           "limits": {"max_connections": 2},
           "timeouts": {"client_header_ms": 60000}}
    p = Proxy(cfg)
    try:
        busy = []
        for i in range(2):
            s = p.connect()
            s.sendall(request_bytes("/busy/%d" % i))
            busy.append(s)
        wait_for(lambda: b.got >= 2, 5, "2 requests at the backend")
        time.sleep(0.1)
        waiting = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        waiting.sendall(request_bytes("/waiting"))
        time.sleep(0.2)
        p.proc.send_signal(signal.SIGTERM)
        for s in busy:
            assert_eq(Client(s).read_response().status, 200)
            s.close()
        r = Client(waiting).read_response()
        assert_eq((r.status, r.body), (200, b"slow /waiting"))
        waiting.close()
        p.proc.wait(10)
    finally:
        p.stop()
        b.close()
    assert_eq(p.proc.returncode, 0)
    # a connection that sends nothing: closed after a short grace
    b = SlowBackend(0)
    cfg["limits"] = {}
    cfg["upstreams"]["app"]["backends"][0]["address"] = b.addr
    p = Proxy(cfg)
    try:
        mute = p.connect()
        time.sleep(0.1)
        t0 = time.time()
        p.proc.send_signal(signal.SIGTERM)
        p.proc.wait(10)
        took = time.time() - t0
        mute.close()
    finally:
        p.stop()
        b.close()
    assert took < 2.0, took


def test_sd07_pipelined_requests_served():
    """Requests already received behind the one in flight are served during
    the drain; the last response says close."""
    b = SlowBackend(0.5)
    cfg = {"upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}]}
    p = Proxy(cfg)
    try:
        s = p.connect()
        c = Client(s)
        c.send(request_bytes("/1", close=False) + request_bytes("/2", close=False)
               + request_bytes("/3", close=False))
        wait_for(lambda: b.got >= 1, 5, "the first request at the backend")
        p.proc.send_signal(signal.SIGTERM)
        got = []
        for _ in range(3):
            r = c.read_response()
            got.append((r.status, r.body, r.header("connection")))
        assert c.closed()
        s.close()
        p.proc.wait(10)
    finally:
        p.stop()
        b.close()
    assert_eq(got, [(200, b"slow /1", None), (200, b"slow /2", None), (200, b"slow /3", "close")])
    assert_eq(p.proc.returncode, 0)


def test_sd08_two_listeners_at_the_cap_and_a_slow_first_head():
    """Serving a second listener's queue at the connection cap while the
    first is closed already does not crash; a first request whose head
    starts within the grace and ends after it is served."""
    b = SlowBackend(0.5)
    pa, pb = free_port(), free_port()
    cfg = {"workers": 1, "listeners": [{"address": "127.0.0.1:%d" % pa},
                                       {"address": "127.0.0.1:%d" % pb}],
           "upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}],
           "limits": {"max_connections": 1}}
    p = Proxy(cfg, port=pa)
    try:
        s1 = socket.create_connection(("127.0.0.1", pa), timeout=10)
        s1.sendall(request_bytes("/a"))
        wait_for(lambda: b.got >= 1, 5, "the first request")
        s2 = socket.create_connection(("127.0.0.1", pb), timeout=10)
        s2.sendall(request_bytes("/b"))
        time.sleep(0.1)
        p.proc.send_signal(signal.SIGTERM)
        assert_eq(Client(s1).read_response().status, 200)
        assert_eq(Client(s2).read_response().status, 200)
        s1.close()
        s2.close()
        p.proc.wait(10)
    finally:
        p.stop()
        b.close()
    assert_eq(p.proc.returncode, 0)
    b = SlowBackend(0)
    p = Proxy({"upstreams": {"app": {"backends": [{"address": b.addr}]}},
               "routes": [{"path_prefix": "/", "upstream": "app"}]})
    try:
        s = p.connect()
        time.sleep(0.1)
        p.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        s.sendall(b"GET /late HTTP/1.1\r\nHost: a\r\n")
        time.sleep(0.8)
        s.sendall(b"\r\n")
        r = Client(s).read_response()
        assert_eq((r.status, r.header("connection")), (200, "close"))
        s.close()
        p.proc.wait(10)
    finally:
        p.stop()
        b.close()


def test_sd09_http2_goaway_after_ping_round_trip():
    """HTTP/2 drain: the shutdown notice comes with a PING, and the final
    GOAWAY follows as soon as its ACK comes back (a round trip), naming the
    stream the client sent before the ACK (the PING goes out behind the
    notice, so the ACK means the client has read it)."""
    from test_h2 import (ACK, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PING, RawH2, frame)
    b = SlowBackend(0.3)
    cfg = {"upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}]}
    p = Proxy(cfg)
    try:
        c = RawH2(p)
        hdrs = [(":method", "GET"), (":path", "/one"), (":scheme", "http"), (":authority", "a")]
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, c.block(hdrs)))
        wait_for(lambda: b.got >= 1, 5, "the first stream at the backend")
        p.proc.send_signal(signal.SIGTERM)
        frames, _ = c.read_frames(timeout=3, until=lambda fs: any(
            t == PING and not fl & ACK for t, fl, _, _ in fs) and any(t == GOAWAY for t, _, _, _ in fs))
        pings = [pl for t, fl, _, pl in frames if t == PING and not fl & ACK]
        assert_eq(len(pings), 1)
        assert_eq(len(pings[0]), 8)
        goaways = [int.from_bytes(pl[:4], "big") & 0x7FFFFFFF for t, _, _, pl in frames if t == GOAWAY]
        assert_eq(goaways, [0x7FFFFFFF])
        # The PING comes behind the notice: its ACK means the notice was read.
        order = [t for t, fl, _, _ in frames if t in (GOAWAY, PING) and not fl & ACK]
        assert_eq(order, [GOAWAY, PING])
        # A stream sent before the client saw the notice, then the ACK.
        hdrs[1] = (":path", "/two")
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, 3, c.block(hdrs)) + frame(PING, ACK, 0, pings[0]))
        t0 = time.time()
        more, _ = c.read_frames(timeout=3, until=lambda fs: any(t == GOAWAY for t, _, _, _ in fs))
        took = time.time() - t0
        final = [int.from_bytes(pl[:4], "big") & 0x7FFFFFFF for t, _, _, pl in more if t == GOAWAY]
        assert_eq(final, [3])
        # Well before the 1 s that a silent client waits for.
        assert took < 0.6, took
        rest, closed = c.read_frames(timeout=5)
        more += rest
        c.close()
        p.proc.wait(10)
    finally:
        p.stop()
        b.close()
    assert closed
    ended = {sid for t, fl, sid, _ in frames + more if t in (0, 1) and fl & END_STREAM}
    assert_eq(ended, {1, 3})
    assert_eq(p.proc.returncode, 0)


if __name__ == "__main__":
    sys.exit(run([test_sd01_in_flight_requests_finish,
                  test_sd02_queued_connections_served_and_idle_closed,
                  test_sd03_deadline_cuts_and_second_signal,
                  test_sd04_ready_turns_503_while_draining,
                  test_sd05_http2_notice_then_goaway,
                  test_sd06_queue_past_the_cap_and_unused_connections,
                  test_sd07_pipelined_requests_served,
                  test_sd08_two_listeners_at_the_cap_and_a_slow_first_head,
                  test_sd09_http2_goaway_after_ping_round_trip]))
