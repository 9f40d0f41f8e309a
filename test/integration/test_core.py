# SPDX-License-Identifier: MIT
"""Integration tests for the HTTP/1 core: framing, pooling and replay
corner cases, each against the real binary and scripted backends."""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend, Client, Proxy, get, response, upstream_config, run  # noqa: E402
from test_proxy import setup, assert_eq, access_lines  # noqa: E402


class RawBackend:
    """A backend that hands each accepted connection to serve(sock, index)
    on its own thread, for exchanges the request-reading Backend cannot
    script (answers before the body, bytes beyond a response)."""

    def __init__(self, serve):
        self.serve = serve
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.connections = 0
        self.closed_by_peer = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.clients = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                self.sock.settimeout(0.1)
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(10)
            with self.lock:
                self.connections += 1
                n = self.connections
                self.clients.append(c)
            threading.Thread(target=self._run, args=(c, n), daemon=True).start()

    def _run(self, c, n):
        try:
            self.serve(c, n)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.stopping = True
        self.sock.close()
        with self.lock:
            for c in self.clients:
                try:
                    c.close()
                except OSError:
                    pass


def read_head(sock, buf):
    """One request head from sock; returns (head bytes or None, rest)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None, buf
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def wait_until(cond, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def raw_setup(serve, **cfg):
    b = RawBackend(serve)
    base = upstream_config(b)
    base.update(cfg)
    return Proxy(base), b


# ---- a response followed by bytes it does not declare ----

EXTRA = response(200, b"STALE")


def stale_backend(mode, events):
    """HEAD is answered with a head and then a whole extra response: in the
    same segment, after a pause, or with the head exactly filling the
    proxy's first read so the extra bytes wait in the socket."""
    def serve(c, n):
        buf = b""
        while True:
            head, buf = read_head(c, buf)
            if head is None:
                events.append(("eof", n))
                return
            method = head.split(b" ", 1)[0]
            if method != b"HEAD":
                c.sendall(response(200, b"fresh-%d" % n))
                continue
            h = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
            if mode == "socket":
                pad = 4096 - len(h) - len(b"X-Pad: \r\n\r\n")
                h += b"X-Pad: " + b"p" * pad + b"\r\n"
            h += b"\r\n"
            if mode == "pause":
                c.sendall(h)
                time.sleep(0.3)
                c.sendall(EXTRA)
            else:
                c.sendall(h + EXTRA)
    return serve


def check_no_stale(mode):
    events = []
    p, b = raw_setup(stale_backend(mode, events))
    try:
        s = p.connect()
        c = Client(s)
        if mode == "socket":
            # Pipelined: the GET is handled in the same loop iteration that
            # pooled the connection, before its read event could run.
            c.send(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert_eq(c.read_response(head_request=True).status, 200)
        else:
            c.send(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert_eq(c.read_response(head_request=True).status, 200)
            if mode == "pause":
                # The proxy closes the pooled connection that spoke out of turn.
                assert wait_until(lambda: ("eof", 1) in events), "pooled connection not closed"
            c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert_eq(r.status, 200)
        assert r.body.startswith(b"fresh-"), r.body
        assert r.body != b"fresh-1", "the connection that sent extra bytes was reused"
        s.close()
    finally:
        p.stop()
        b.close()


def test_c01_extra_response_same_segment_not_served():
    check_no_stale("segment")


def test_c02_extra_response_after_pause_not_served():
    check_no_stale("pause")


def test_c03_extra_bytes_in_socket_not_served():
    check_no_stale("socket")


# ---- replay of requests that reached a backend ----

def test_c04_written_post_never_replayed():
    seen = {"post": 0}

    def h(req, ci, s):
        if req.method == "POST":
            seen["post"] += 1
            return None   # reads it, closes without answering
        return response(200, b"ok")
    with setup(h) as (p, bs):
        assert_eq(get(p).status, 200)
        r = get(p, method="POST", body=b"")
        assert_eq(r.status, 502)
        time.sleep(0.2)
        assert_eq(seen["post"], 1)
        # An idempotent request on a reused connection is still replayed.
        seen["n"] = 0

        def h2(req, ci, s):
            seen["n"] += 1
            return None if seen["n"] == 2 else response(200, b"r%d" % ci)
        bs[0].handler = h2
        assert_eq(get(p, method="PUT", body=b"").status, 200)
        r = get(p, method="DELETE")
        assert_eq(r.status, 200)
        assert_eq(seen["n"], 3)


def test_c05_post_not_sent_on_long_idle_connection():
    with setup() as (p, bs):
        assert_eq(get(p).status, 200)
        time.sleep(1.3)
        assert_eq(get(p).status, 200)      # GET reuses the idle connection
        assert_eq(bs[0].connections, 1)
        time.sleep(1.3)
        assert_eq(get(p, method="POST", body=b"x").status, 200)
        assert_eq(bs[0].connections, 2)    # POST opened a fresh one
        assert_eq(get(p, method="POST", body=b"y").status, 200)
        assert_eq(bs[0].connections, 2)    # ... and reuses one idle under a second


# ---- responses the client must be able to frame ----

def test_c06_head_error_has_no_body():
    with setup() as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"HEAD / HTTP/1.1\r\nHost: a\r\nExpect: x\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response(head_request=True)
        assert_eq(r.status, 417)
        r = c.read_response()
        assert_eq(r.status, 200)
        assert_eq(r.body, b"hello")
        s.close()
        c2 = Client(p.connect())
        c2.send(b"HEAD /nowhere HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert_eq(c2.read_response(head_request=True).status, 200)
        assert_eq(c2.read_response().body, b"hello")


def test_c07_early_response_says_close():
    def serve(c, n):
        head, _ = read_head(c, b"")
        if head is None:
            return
        c.sendall(response(403, b"no"))
        time.sleep(0.5)
    p, b = raw_setup(serve)
    try:
        s = p.connect()
        c = Client(s)
        c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        r = c.read_response()
        assert_eq(r.status, 403)
        assert_eq(r.header("connection"), "close")
        assert c.closed(), "client connection left open"
        s.close()
    finally:
        p.stop()
        b.close()


def test_c08_unparsed_method_logged_unknown():
    with setup() as (p, bs):
        s = p.connect()
        s.sendall(b"\x01BOGUS / HTTP/1.1\r\n\r\n")
        assert_eq(Client(s).read_response().status, 400)
        s.close()
        s = p.connect()
        s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
        assert_eq(Client(s).read_response().status, 400)
        s.close()
    lines = access_lines(p)
    assert_eq(len(lines), 2)
    assert_eq(lines[0]["method"], "-")
    assert_eq(lines[0]["protocol"], "-")
    assert_eq(lines[1]["method"], "GET")
    assert_eq(lines[1]["protocol"], "HTTP/1.1")


def test_c09_every_connection_field_honoured():
    hdrs = [("Connection", "X-N%d" % i) for i in range(12)]
    hdrs += [("X-N%d" % i, "v") for i in range(12)] + [("X-Kept", "v")]
    with setup() as (p, bs):
        assert_eq(get(p, headers=hdrs).status, 200)
        req = bs[0].requests[0]
        for i in range(12):
            assert req.header("x-n%d" % i) is None, "X-N%d forwarded" % i
        assert_eq(req.header("x-kept"), "v")


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    sys.exit(run(tests))
