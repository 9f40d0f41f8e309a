# SPDX-License-Identifier: MIT
"""Integration tests: the real revproxy between real sockets on loopback."""
import contextlib
import select
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (REVPROXY, Backend, Client, Proxy, get, response,  # noqa: E402
                     upstream_config, run)

LARGE = int(os.environ.get("RP_TEST_LARGE_BYTES", str(1 << 30)))


@contextlib.contextmanager
def setup(handler=None, n=1, backends=None, preexec_fn=None, **cfg):
    bs = backends or [Backend(handler) for _ in range(n)]
    base = upstream_config(*bs)
    base.update(cfg)
    p = Proxy(base, preexec_fn=preexec_fn)
    try:
        yield p, bs
    finally:
        try:
            p.stop()
        finally:
            for b in bs:
                b.close()


def assert_eq(a, b, msg=""):
    if a != b:
        raise AssertionError("%r != %r %s" % (a, b, msg))


def access_lines(p):
    return [l for l in p.log_lines() if l.get("msg") == "access"]


# ---- basics ----

def test_01_get():
    with setup() as (p, bs):
        r = get(p, "/hello")
        assert_eq(r.status, 200)
        assert_eq(r.body, b"hello")
        rid = r.header("x-request-id")
        assert rid and len(rid) == 32 and all(c in "0123456789abcdef" for c in rid), rid
        assert_eq(bs[0].requests[0].header("x-request-id"), rid)
        assert_eq(bs[0].requests[0].target, "/hello")


def test_02_request_id_kept_or_replaced():
    with setup() as (p, bs):
        r = get(p, headers=[("X-Request-Id", "abc-123")])
        assert_eq(r.header("x-request-id"), "abc-123")
        assert_eq(bs[0].requests[0].header_all("x-request-id"), ["abc-123"])
        r = get(p, headers=[("X-Request-Id", "bad id with spaces")])
        assert r.header("x-request-id") != "bad id with spaces"
        assert_eq(len(r.header("x-request-id")), 32)


def test_03_keepalive_and_pool_reuse():
    with setup() as (p, bs):
        s = p.connect()
        c = Client(s)
        for i in range(5):
            c.send(b"GET /k%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
            r = c.read_response()
            assert_eq(r.status, 200)
        s.close()
        # Another client connection reuses the pooled upstream connection.
        get(p)
        assert_eq(bs[0].connections, 1)
        assert_eq(len(bs[0].requests), 6)


def test_04_pipelining_in_order():
    def h(req, ci, s):
        if req.target == "/slow":
            time.sleep(0.2)
        return response(200, req.target.encode())
    with setup(h) as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
               b"POST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /4 HTTP/1.1\r\nHost: a\r\n\r\n")
        bodies = [c.read_response().body for _ in range(4)]
        assert_eq(bodies, [b"/slow", b"/2", b"/3", b"/4"])
        assert_eq(bs[0].requests[2].body, b"abc")
        s.close()


def test_05_http10_client():
    def h(req, ci, s):
        if req.target == "/chunked":
            return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        return response(200, b"cl")
    with setup(h) as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"GET /chunked HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert_eq(r.body, b"hello world")
        assert r.header("transfer-encoding") is None
        assert c.closed()
        s.close()
        # HTTP/1.0 keep-alive with a Content-Length response
        s = p.connect()
        c = Client(s)
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert_eq(r.body, b"cl")
        assert_eq(r.header("connection"), "keep-alive")
        c.send(b"GET / HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert_eq(r.body, b"cl")
        assert c.closed()
        # Backend saw HTTP/1.1 with a Host header
        assert_eq(bs[0].requests[0].version, "HTTP/1.1")
        assert bs[0].requests[0].header("host")


def test_05b_close_delimited_backend_response():
    def h(req, ci, s):
        s.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ")
        time.sleep(0.05)
        s.sendall(b"close")
        return None
    with setup(h) as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert_eq(r.header("transfer-encoding"), "chunked")
        assert_eq(r.body, b"until close")
        # the client connection stays usable; the backend one was not pooled
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert_eq(c.read_response().body, b"until close")
        assert_eq(bs[0].connections, 2)
        s.close()


def test_05c_interim_responses_dropped():
    def h(req, ci, s):
        return (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    with setup(h) as (p, bs):
        s = p.connect()
        c = Client(s)
        for _ in range(2):
            c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            version, status, reason, headers = c.read_head()
            assert_eq(status, 200)   # the first head the client sees is the final one
            while len(c.buf) < 2:
                c._fill()
            assert_eq(c.buf, b"ok")
            c.buf = b""
        s.close()
        # "Connection: close" from the backend: its connection is not reused
        assert_eq(bs[0].connections, 2)


def test_06_chunked_both_ways():
    def h(req, ci, s):
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n")
    with setup(h) as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n")
        r = c.read_response()
        assert_eq(r.status, 200)
        assert_eq(r.header("transfer-encoding"), "chunked")
        assert_eq(r.body, b"abc")
        req = bs[0].requests[0]
        assert_eq(req.body, b"wikipedia")
        assert_eq(req.header("transfer-encoding"), "chunked")
        assert req.header("content-length") is None
        s.close()


def test_07_head_204_304():
    def h(req, ci, s):
        if req.target == "/204":
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        if req.target == "/304":
            return b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"
        return response(200, b"0123456789")
    with setup(h) as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response(head_request=True)
        assert_eq(r.header("content-length"), "10")
        c.send(b"GET /204 HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert_eq(r.status, 204)
        c.send(b"GET /304 HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert_eq(r.status, 304)
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert_eq(r.body, b"0123456789")
        s.close()


def test_08_expect_100_continue():
    with setup() as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        version, status, reason, headers = c.read_head()
        assert_eq(status, 100)
        c.send(b"hello")
        r = c.read_response()
        assert_eq(r.status, 200)
        assert_eq(bs[0].requests[0].body, b"hello")
        assert bs[0].requests[0].header("expect") is None
        # Any other expectation: 417
        c.send(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: magic\r\n\r\nhello")
        r = c.read_response()
        assert_eq(r.status, 417)
        s.close()


def test_09_absolute_form():
    with setup() as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"GET http://Example.COM:8080/abs?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        r = c.read_response()
        assert_eq(r.status, 200)
        req = bs[0].requests[0]
        assert_eq(req.target, "/abs?q=1")
        assert_eq(req.header("host"), "Example.COM:8080")
        s.close()


def test_10_forwarded_and_hop_by_hop():
    def h(req, ci, s):
        return response(200, b"x", headers=[("Connection", "X-Secret"), ("X-Secret", "1"),
                                             ("Keep-Alive", "timeout=5"), ("X-Kept", "yes"),
                                             ("X-Request-Id", "from-backend")])
    with setup(h) as (p, bs):
        r = get(p, "/f", host="shop.example", headers=[
            ("X-Forwarded-For", "203.0.113.7"), ("Connection", "X-Hop, keep-alive"),
            ("X-Hop", "1"), ("Keep-Alive", "300"), ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"), ("Trailer", "X-T"), ("Upgrade", "websocket"),
            ("X-Forwarded-Proto", "https"), ("X-End", "kept")])
        req = bs[0].requests[0]
        assert_eq(req.header_all("x-forwarded-for"), ["203.0.113.7, 127.0.0.1"])
        assert_eq(req.header_all("x-forwarded-proto"), ["http"])
        assert_eq(req.header_all("x-forwarded-host"), ["shop.example"])
        for hop in ("connection", "x-hop", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"):
            assert req.header(hop) is None, hop
        assert_eq(req.header("x-end"), "kept")
        assert r.header("x-secret") is None
        assert r.header("keep-alive") is None
        assert_eq(r.header("x-kept"), "yes")
        assert r.header("x-request-id") != "from-backend"
        assert_eq(len(r.header_all("x-request-id")), 1)


def test_10b_trailers_dropped_both_ways():
    def h(req, ci, s):
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"2\r\nok\r\n0\r\nX-Resp-Trailer: 1\r\n\r\n")
    with setup(h, limits={"max_header_bytes": 1024}) as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n0\r\nX-Req-Trailer: 1\r\n\r\n")
        r = c.read_response()
        assert_eq(r.body, b"ok")
        assert b"X-Resp-Trailer" not in c.buf
        req = bs[0].requests[0]
        assert_eq(req.body, b"abc")
        assert b"X-Req-Trailer" not in req.raw_body
        # an empty chunked body with trailers, then a second request on the
        # same connection
        c.send(b"POST /t2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"0\r\nX-T: 1\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        assert_eq(c.read_response().status, 200)
        assert_eq(c.read_response().status, 200)
        assert_eq([r.target for r in bs[0].requests], ["/t", "/t2", "/after"])
        # oversized trailers: the backend cannot have answered (its body
        # never ended), so the client gets 431 and the connection closes;
        # the backend never sees a complete body
        c.send(b"POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"1\r\nx\r\n0\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
        r = c.read_response()
        assert_eq(r.status, 431)
        assert c.closed()
        assert not [r for r in bs[0].requests if r.target == "/big" and r.complete]
        s.close()


def test_10c_upgrade_request_forwarded_as_plain_http():
    with setup() as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
               b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        assert_eq(c.read_response().status, 200)
        assert_eq(c.read_response().status, 200)
        assert_eq([r.target for r in bs[0].requests], ["/ws", "/next"])
        assert bs[0].requests[0].header("upgrade") is None
        s.close()


# ---- errors ----

def test_11_no_route_404():
    b = Backend()
    cfg = upstream_config(b)
    cfg["routes"] = [{"host": "api.example.com", "path_prefix": "/v1/", "upstream": "app"}]
    p = Proxy(cfg)
    try:
        r = get(p, "/v2/", host="api.example.com")
        assert_eq(r.status, 404)
        assert r.header("x-request-id") in r.body.decode()
        r = get(p, "/v1/x", host="API.example.com:80")
        assert_eq(r.status, 200)
        assert_eq(len(b.requests), 1)
    finally:
        p.stop()
        b.close()
    lines = access_lines(p)
    assert_eq([l["status"] for l in lines], [404, 200])
    assert_eq(lines[0]["decided_by"], "router")


def test_12_backend_down_502():
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    addr = "127.0.0.1:%d" % port.getsockname()[1]
    port.close()
    cfg = {"upstreams": {"app": {"backends": [{"address": addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}]}
    p = Proxy(cfg)
    try:
        r = get(p)
        assert_eq(r.status, 502)
        assert "request_id" in r.body.decode()
    finally:
        p.stop()
    assert any(l.get("level") == "warn" and "connect" in l.get("msg", "") for l in p.log_lines())


def test_13_header_limits():
    with setup(limits={"max_header_bytes": 2048, "max_headers": 10, "max_uri_bytes": 512}) as (p, bs):
        r = get(p, headers=[("X-Big", "a" * 3000)])
        assert_eq(r.status, 431)
        r = get(p, headers=[("X-H%d" % i, "v") for i in range(12)])
        assert_eq(r.status, 431)
        r = get(p, "/" + "u" * 600)
        assert_eq(r.status, 414)
        r = get(p, headers=[("X-H%d" % i, "v") for i in range(5)])
        assert_eq(r.status, 200)
        assert_eq(len(bs[0].requests), 1)


def test_14_slow_headers_408():
    with setup(timeouts={"client_header_ms": 300}) as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
        t0 = time.time()
        r = c.read_response()
        assert_eq(r.status, 408)
        assert time.time() - t0 < 3
        assert c.closed()
        s.close()
        assert_eq(len(bs[0].requests), 0)


def test_15_backend_never_answers_504():
    def h(req, ci, s):
        time.sleep(2)
        return None
    with setup(h, timeouts={"upstream_response_ms": 300}) as (p, bs):
        t0 = time.time()
        r = get(p)
        assert_eq(r.status, 504)
        assert time.time() - t0 < 1.5


def test_15b_backend_stops_reading_body_504():
    # A backend that takes the head and never reads the body: once the
    # socket buffers are full the write timeout (upstream_response_ms)
    # answers 504 and the proxy lets go of both connections.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    held = []
    def serve():
        try:
            c, _ = srv.accept()
            held.append(c)
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += c.recv(1)
            time.sleep(5)
        except OSError:
            pass
    threading.Thread(target=serve, daemon=True).start()
    cfg = {"upstreams": {"app": {"backends": [{"address": "127.0.0.1:%d" % srv.getsockname()[1]}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}],
           "limits": {"max_body_bytes": 0}, "timeouts": {"upstream_response_ms": 300}}
    p = Proxy(cfg)
    try:
        s = p.connect(timeout=10)
        c = Client(s)
        size = 256 << 20
        c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
        s.setblocking(False)
        block = b"b" * (1 << 16)
        sent = 0
        deadline = time.time() + 10
        while sent < size and time.time() < deadline:
            try:
                sent += s.send(block)
            except BlockingIOError:
                r, _, _ = select.select([s], [], [], 0.05)
                if r:
                    break
            except OSError:
                break
        s.setblocking(True)
        s.settimeout(5)
        r = c.read_response()
        assert_eq(r.status, 504)
        assert sent < size
        s.close()
    finally:
        p.stop()
        srv.close()
        for h in held:
            h.close()
    assert_eq(access_lines(p)[0]["termination"], "upstream_timeout")


def test_15c_client_stops_reading_response():
    def h(req, ci, s):
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (512 << 20))
        try:
            for _ in range(8192):
                s.sendall(b"r" * 65536)
        except OSError:
            pass
        return None
    with setup(h, timeouts={"client_idle_ms": 300, "request_ms": 0}) as (p, bs):
        s = p.connect()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(1.5)          # read nothing: the proxy must give up on us
        rss = p.rss_kb()
        s.settimeout(5)
        got = 0
        try:
            while True:
                d = s.recv(1 << 20)
                if not d:
                    break
                got += len(d)
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
        assert got < (64 << 20), got
        assert rss < 64 * 1024, rss
    assert_eq(access_lines(p)[0]["termination"], "client_timeout")


def test_16_malformed_backend_response_502():
    bad = [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
           b"HTTP/1.1 abc OK\r\n\r\n",
           b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
           b"garbage\r\n\r\n",
           b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
           b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
           b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
           b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
           b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 20000 + b"\r\nContent-Length: 0\r\n\r\n",
           b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101)) +
           b"Content-Length: 0\r\n\r\n"]
    def h(req, ci, s):
        if req.target == "/chunk":
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"
        return bad[int(req.target[1:])]
    with setup(h) as (p, bs):
        for i in range(len(bad)):
            r = get(p, "/%d" % i)
            assert_eq(r.status, 502, "case %d" % i)
        # A bad chunk after the head has gone out: the client sees the
        # response cut short (no last chunk), never the malformed bytes.
        s = p.connect()
        c = Client(s)
        c.send(b"GET /chunk HTTP/1.1\r\nHost: a\r\n\r\n")
        try:
            c.read_response()
            raise AssertionError("truncated response read as complete")
        except (EOFError, ConnectionResetError):
            pass
        assert b"zz" not in c.buf
        s.close()


def test_17_smuggling_rejected():
    cases = [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 5\r\n\r\nabcde",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n Folded: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/9.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nabcde",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n",
    ]
    with setup() as (p, bs):
        for i, data in enumerate(cases):
            s = p.connect()
            c = Client(s)
            c.send(data)
            r = c.read_response()
            assert r.status in (400, 505), "case %d: %d" % (i, r.status)
            assert c.closed(), "case %d: connection left open" % i
            s.close()
        assert_eq(len(bs[0].requests), 0)


def test_18_bad_chunk_size_not_forwarded():
    with setup() as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\nfffffffffffffffffff\r\nx\r\n0\r\n\r\n")
        r = c.read_response()
        assert_eq(r.status, 400)
        assert c.closed()
        s.close()
        time.sleep(0.2)
        # The backend never got a complete request.
        assert all(not req.complete for req in bs[0].requests), [r.raw_body for r in bs[0].requests]


def test_19_body_limit_413():
    with setup(limits={"max_body_bytes": 1000}) as (p, bs):
        r = get(p, method="POST", body=b"x" * 1001)
        assert_eq(r.status, 413)
        s = p.connect()
        c = Client(s)
        c.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
               (b"200\r\n" + b"y" * 512 + b"\r\n") * 3 + b"0\r\n\r\n")
        r = c.read_response()
        assert_eq(r.status, 413)
        s.close()
        r = get(p, method="POST", body=b"x" * 1000)
        assert_eq(r.status, 200)
        # The chunked upload was cut by a reset: the backend saw one
        # connection end in an aborted request, and only the last request
        # complete.
        time.sleep(0.2)
        complete = [req.body for req in bs[0].requests if req.complete]
        assert_eq(complete, [b"x" * 1000])
        assert_eq(bs[0].connections, 2)


def test_20_pooled_connection_closed_by_backend():
    def h(req, ci, s):
        s.sendall(response(200, b"once"))
        time.sleep(0.05)
        return None   # close after answering, without Connection: close
    with setup(h) as (p, bs):
        assert_eq(get(p).body, b"once")
        time.sleep(0.3)
        assert_eq(get(p).body, b"once")
        assert_eq(bs[0].connections, 2)


def test_21_replay_on_reused_connection():
    state = {"n": 0}
    def h(req, ci, s):
        state["n"] += 1
        if state["n"] == 2:
            return None   # reused connection dies without a response
        return response(200, b"r%d" % ci)
    with setup(h) as (p, bs):
        assert_eq(get(p).body, b"r1")
        r = get(p)
        assert_eq(r.status, 200)
        assert_eq(r.body, b"r2")
        assert_eq(bs[0].connections, 2)


def test_22_request_deadline():
    def h(req, ci, s):
        if req.target == "/again":
            time.sleep(2)
            return None
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        time.sleep(2)
        return None
    with setup(h, timeouts={"request_ms": 400}) as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        t0 = time.time()
        version, status, reason, headers = c.read_head()
        assert_eq(status, 200)
        assert c.closed(3)
        assert time.time() - t0 < 2
        s.close()
        t0 = time.time()
        r = get(p, "/again")   # no byte from the backend yet: 504
        assert_eq(r.status, 504)
        assert time.time() - t0 < 1.5
    lines = access_lines(p)
    assert_eq([l["termination"] for l in lines], ["deadline", "deadline"])


def test_23_idle_keepalive_closed():
    with setup(timeouts={"client_idle_ms": 300}) as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        c.read_response()
        t0 = time.time()
        assert c.closed(3)
        assert 0.2 < time.time() - t0 < 2
        s.close()


def test_24_large_bodies_streamed_rss_bounded():
    with setup(backends=[Backend(None, sink=True)], limits={"max_body_bytes": 0},
               timeouts={"request_ms": 0}) as (p, bs):
        b = bs[0]
        def h(req, ci, s):
            if req.method == "POST":
                return response(200, b"got %d" % b.sink_bytes)
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % LARGE)
            block = b"z" * (1 << 20)
            left = LARGE
            while left > 0:
                n = min(left, len(block))
                s.sendall(block[:n])
                left -= n
            return "keep"
        b.handler = h
        rss0 = p.rss_kb()
        peak = [rss0]
        done = threading.Event()
        def watch():
            while not done.is_set():
                try:
                    peak[0] = max(peak[0], p.rss_kb())
                except OSError:
                    pass
                time.sleep(0.05)
        w = threading.Thread(target=watch, daemon=True)
        w.start()
        try:
            # upload
            s = p.connect(timeout=120)
            c = Client(s)
            c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % LARGE)
            block = b"u" * (1 << 20)
            left = LARGE
            while left > 0:
                n = min(left, len(block))
                s.sendall(block[:n])
                left -= n
            r = c.read_response()
            assert_eq(r.body, b"got %d" % LARGE)
            # download, read slowly at first so backpressure has to hold
            got = [0]
            def sink(x):
                got[0] += len(x)
            c.send(b"GET /down HTTP/1.1\r\nHost: a\r\n\r\n")
            time.sleep(0.5)
            c.read_response(sink=sink)
            assert_eq(got[0], LARGE)
            s.close()
        finally:
            done.set()
            w.join()
        growth_mb = (peak[0] - rss0) / 1024.0
        assert growth_mb < 64, "proxy RSS grew by %.1f MiB" % growth_mb
        print("     large body %d MiB each way; RSS %d KiB -> peak %d KiB" % (LARGE >> 20, rss0, peak[0]))


def test_25_ipv6():
    b = Backend(family=socket.AF_INET6, host="::1")
    port = 0
    s6 = socket.socket(socket.AF_INET6)
    s6.bind(("::1", 0))
    port = s6.getsockname()[1]
    s6.close()
    cfg = upstream_config(b)
    cfg["listeners"] = [{"address": "[::1]:%d" % port}]
    p = Proxy(cfg, expect_start=False)
    try:
        deadline = time.time() + 5
        while True:
            try:
                s = socket.create_connection(("::1", port), timeout=1)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        c = Client(s)
        c.send(b"GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n")
        r = c.read_response()
        assert_eq(r.status, 200)
        assert_eq(b.requests[0].header("x-forwarded-for"), "::1")
        s.close()
    finally:
        p.stop()
        b.close()


def test_26_max_connections():
    with setup(limits={"max_connections": 2}) as (p, bs):
        a, b = Client(p.connect()), Client(p.connect())
        for c in (a, b):
            c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert_eq(c.read_response().status, 200)
        third = Client(p.connect())
        third.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        third.sock.settimeout(0.5)
        try:
            data = third.sock.recv(100)
            raise AssertionError("third connection was served: %r" % data)
        except socket.timeout:
            pass
        a.sock.close()
        third.sock.settimeout(5)
        assert_eq(third.read_response().status, 200)
        b.sock.close()
        third.sock.close()


def test_26b_low_descriptor_limit():
    # With a descriptor limit far below what max_connections needs, the cap
    # is lowered (and said so) instead of running out of descriptors: extra
    # clients wait in the backlog and are served as others leave.
    import resource
    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (120, 120))
    with setup(limits={"max_connections": 1000}, preexec_fn=low_limit) as (p, bs):
        clients = []
        for i in range(60):
            c = Client(p.connect(timeout=10))
            c.send(b"GET /%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % i)
            clients.append(c)
        for c in clients:
            assert_eq(c.read_response().status, 200)
            c.sock.close()
        assert p.proc.poll() is None
    assert "too low for limits.max_connections 1000; accepting at most 11 connections" in p.logs()


def test_27_weighted_round_robin():
    bs = [Backend(lambda req, ci, s, n=n: response(200, n)) for n in (b"a", b"b")]
    cfg = {"upstreams": {"app": {"backends": [{"address": bs[0].addr, "weight": 3},
                                              {"address": bs[1].addr, "weight": 1}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}]}
    p = Proxy(cfg)
    try:
        s = p.connect()
        c = Client(s)
        seen = []
        for _ in range(8):
            c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            seen.append(c.read_response().body)
        assert_eq(seen.count(b"a"), 6)
        assert_eq(seen.count(b"b"), 2)
        s.close()
    finally:
        p.stop()
        for b in bs:
            b.close()


def test_28_routing_by_host_and_path():
    names = ["api", "wild", "web", "exact"]
    bs = {n: Backend(lambda req, ci, s, n=n: response(200, n.encode())) for n in names}
    cfg = {"upstreams": {n: {"backends": [{"address": bs[n].addr}]} for n in names},
           "routes": [{"path_prefix": "/", "upstream": "web"},
                      {"host": "*.example.com", "path_prefix": "/", "upstream": "wild"},
                      {"host": "api.example.com", "path_prefix": "/v1/", "upstream": "api"},
                      {"host": "api.example.com", "path": "/v1/status", "upstream": "exact"}]}
    p = Proxy(cfg)
    try:
        cases = [("api.example.com", "/v1/users", b"api"), ("api.example.com", "/v1/status", b"exact"),
                 ("api.example.com", "/v1/status?x=1", b"exact"), ("api.example.com", "/other", b"wild"),
                 ("x.example.com", "/", b"wild"), ("example.com", "/", b"web"), ("other.org", "/v1/", b"web")]
        for host, path, want in cases:
            assert_eq(get(p, path, host=host).body, want, "%s%s" % (host, path))
    finally:
        p.stop()
        for b in bs.values():
            b.close()


def test_29_early_response_closes_client():
    # The backend answers as soon as it has the request head, while most of
    # the body is still to come: the rest of the body is not wanted, so the
    # proxy closes the client connection after the response.
    from harness import Request, read_until

    class EarlyBackend(Backend):
        def _serve(self, c, ci):
            try:
                buf, ok = read_until(c, b"", b"\r\n\r\n")
                if ok:
                    with self.lock:
                        self.requests.append(Request(buf.partition(b"\r\n\r\n")[0], b"", b"", False))
                    c.sendall(response(403, b"no"))
                    while c.recv(65536):
                        pass
            except OSError:
                pass
            finally:
                c.close()

    with setup(backends=[EarlyBackend()]) as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n0123456789")
        r = c.read_response()
        assert_eq(r.status, 403)
        assert_eq(r.body, b"no")
        assert_eq(r.header("connection"), "close")
        assert_eq(bs[0].requests[0].target, "/up")
        assert c.closed(), "client connection left open after the early response"
        s.close()


def test_29b_stalled_request_body_408():
    with setup(timeouts={"client_idle_ms": 300}) as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        t0 = time.time()
        r = c.read_response()
        assert_eq(r.status, 408)
        assert time.time() - t0 < 2
        assert c.closed()
        s.close()
        time.sleep(0.1)
        assert all(not req.complete for req in bs[0].requests)


def test_29c_access_log_off_and_file():
    b = Backend()
    cfg = upstream_config(b)
    p = Proxy(dict(cfg, log={"access_log": "off"}))
    try:
        get(p)
    finally:
        p.stop()
    assert_eq(access_lines(p), [])
    import tempfile
    path = os.path.join(tempfile.mkdtemp(prefix="rp-acc-"), "access.log")
    p = Proxy(dict(cfg, log={"access_log": path}))
    try:
        get(p, "/to-file")
    finally:
        p.stop()
        b.close()
    assert_eq(access_lines(p), [])
    import json
    with open(path) as f:
        lines = [json.loads(l) for l in f]
    assert_eq([l["target"] for l in lines], ["/to-file"])


def test_29c2_half_close_still_served():
    def h(req, ci, s):
        time.sleep(0.05)
        return response(200, req.target.encode() + b":" + req.body)
    with setup(h) as (p, bs):
        s = p.connect()
        c = Client(s)
        c.send(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
               b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        assert_eq(c.read_response().body, b"/a:xyz")
        assert_eq(c.read_response().body, b"/b:")
        assert c.closed()
        s.close()
        # a body cut short by the half-close: 400, nothing complete upstream
        s = p.connect()
        c = Client(s)
        c.send(b"POST /cut HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        s.shutdown(socket.SHUT_WR)
        assert_eq(c.read_response().status, 400)
        assert c.closed()
        s.close()
        # a head cut short: closed without an answer
        s = p.connect()
        c = Client(s)
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
        s.shutdown(socket.SHUT_WR)
        assert c.closed()
        assert_eq(c.buf, b"")
        s.close()
        time.sleep(0.1)
        assert_eq([r.target for r in bs[0].requests if r.complete], ["/a", "/b"])
    lines = access_lines(p)
    assert_eq(sorted(l.get("termination", "ok") for l in lines),
              ["client_abort", "client_abort", "ok", "ok"])


def test_29d_garbage_requests_and_responses():
    # Mutated requests against a backend that answers with mutated
    # responses: whatever happens to each exchange, the proxy stays up,
    # answers the next clean request, and the sanitizers stay quiet.
    import random
    rnd = random.Random(20261126)
    good_req = (b"POST /p?q=1 HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n"
                b"X-A: b\r\n\r\nhello")
    good_chunked = (b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n0\r\n\r\n")
    good_resp = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n0\r\n\r\n")
    specials = [b"\r\n", b"\n", b"\x00", b":", b" ", b"\t", b"0", b"-1", b"ffffffffffffffffff",
                b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n", b"\xff"]

    def mutate(data):
        data = bytearray(data)
        for _ in range(rnd.randint(1, 4)):
            op = rnd.randint(0, 3)
            i = rnd.randrange(len(data) + 1)
            if op == 0 and data:
                del data[i:i + rnd.randint(1, 8)]
            elif op == 1:
                data[i:i] = rnd.choice(specials)
            elif op == 2 and data:
                data[min(i, len(data) - 1)] = rnd.randrange(256)
            else:
                data[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
        return bytes(data)

    responses = [mutate(good_resp) for _ in range(60)] + [good_resp]
    def h(req, ci, s):
        return responses[int(req.header("x-n") or "0") % len(responses)]
    with setup(h, timeouts={"client_header_ms": 500, "upstream_response_ms": 500,
                            "client_idle_ms": 500}) as (p, bs):
        for n in range(150):
            base = good_chunked if n % 2 else good_req
            data = mutate(base) if n % 3 else base
            data = data.replace(b"Host: ", b"X-N: %d\r\nHost: " % n, 1)
            s = p.connect(timeout=3)
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
            except OSError:
                pass
            finally:
                s.close()
        assert p.proc.poll() is None
        r = get(p, headers=[("X-N", str(len(responses) - 1))])
        assert_eq(r.status, 200)
        assert_eq(r.body, b"abc")


def test_29e_sigterm_during_transfers():
    def h(req, ci, s):
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
        try:
            for _ in range(1000):
                s.sendall(b"d" * 65536)
        except OSError:
            pass
        return None
    with setup(h) as (p, bs):
        clients = []
        for i in range(4):
            c = Client(p.connect())
            c.send(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
            c.read_head()
            clients.append(c)
        slow = Client(p.connect())
        slow.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nab")
        half = Client(p.connect())
        half.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
        time.sleep(0.2)
        # stop() sends SIGQUIT and requires exit status 0 and no sanitizer
        # report (leaks included) while all of these are in flight.
    for c in clients + [slow, half]:
        c.sock.close()
    terms = [l.get("termination") for l in access_lines(p)]
    assert_eq(terms.count("shutdown"), 6, terms)


# ---- command line ----

def rp(*args, config=None):
    files = []
    if config is not None:
        import tempfile
        f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        f.write(config)
        f.close()
        files.append(f.name)
        args = args + ("--config", f.name)
    try:
        r = subprocess.run([REVPROXY] + list(args), capture_output=True, text=True, timeout=10)
    finally:
        for f in files:
            os.unlink(f)
    return r


def test_30_command_line():
    good = ('{"listeners":[{"address":"127.0.0.1:1"}],"upstreams":{"a":{"backends":'
            '[{"address":"127.0.0.1:2"}]}},"routes":[{"upstream":"a"}]}')
    r = rp("--check", config=good)
    assert_eq(r.returncode, 0, r.stderr)
    assert "valid" in r.stdout
    r = rp("-t", config='{"listeners":[{"address":"127.0.0.1:99999"}],"upstreams":{"a":{"backends":'
                        '[{"address":"127.0.0.1:2","weight":0}]}},"routes":[{"upstream":"b"}],"admin":{}}')
    assert_eq(r.returncode, 78)
    for want in ("listeners[0].address: port out of range",
                 "upstreams.a.backends[0].weight: must be between 1 and 1000, not 0",
                 'routes[0].upstream: unknown upstream "b"', "admin.address: required"):
        if want not in r.stderr:
            raise AssertionError("missing %r in %s" % (want, r.stderr))
    r = rp("-t", config="{ not json")
    assert_eq(r.returncode, 78)
    assert ":1:" in r.stderr, r.stderr
    r = rp(config='{"listeners":[]}')
    assert_eq(r.returncode, 78)
    r = rp("--bogus")
    assert_eq(r.returncode, 64)
    assert "usage" in r.stderr
    r = rp("--version")
    assert_eq(r.returncode, 0)
    assert r.stdout.startswith("revproxy ")
    r = rp("--help")
    assert_eq(r.returncode, 0)
    for opt in ("--config", "--check", "--dump-config", "--version", "--build-info", "--help"):
        assert opt in r.stdout, opt
    r = rp("--build-info")
    assert_eq(r.returncode, 0)
    libs = [l.split()[0] for l in r.stdout.splitlines()]
    assert_eq(libs, ["revproxy", "libevent", "openssl", "nghttp2", "jansson", "wslay", "llhttp"])
    # -T: defaults filled in, and the output is a valid configuration again
    r = rp("-T", config=good)
    assert_eq(r.returncode, 0, r.stderr)
    eff = json.loads(r.stdout)
    assert_eq(eff["limits"]["max_header_bytes"], 16384)
    assert_eq(eff["timeouts"]["upstream_connect_ms"], 2000)
    assert_eq(eff["upstreams"]["a"]["pool"], {"max_idle_per_backend": 32, "idle_timeout_ms": 4000})
    # Routes show the timeouts that apply to them, inherited ones too.
    assert_eq(eff["routes"], [{"path_prefix": "/", "upstream": "a", "timeouts": {
        "upstream_connect_ms": eff["timeouts"]["upstream_connect_ms"],
        "upstream_response_ms": eff["timeouts"]["upstream_response_ms"],
        "request_ms": eff["timeouts"]["request_ms"]},
        "retry": eff["upstreams"]["a"]["retry"], "websocket": False}])
    assert_eq(eff["upstreams"]["a"]["retry"], {
        "max_retries": 2, "budget_percent": 20, "min_retries_per_s": 10, "backoff_base_ms": 25,
        "backoff_max_ms": 250, "on_status": [502, 503, 504], "max_body_bytes": 65536})
    assert_eq(eff["log"], {"level": "info", "format": "json", "access_log": "stderr"})
    r2 = rp("--check", config=r.stdout)
    assert_eq(r2.returncode, 0, r2.stderr)
    r = rp("-T", config='{"listeners": 5}')
    assert_eq(r.returncode, 78)
    assert_eq(r.stdout, "")


def test_31_port_in_use_fails():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    b = Backend()
    cfg = upstream_config(b)
    cfg["listeners"] = [{"address": "127.0.0.1:%d" % port}]
    try:
        p = Proxy(cfg, expect_start=False)
        rc = p.proc.wait(10)
        assert_eq(rc, 1)
        assert "listen on" in p.logs()
    finally:
        holder.close()
        b.close()


def test_32_signals_hup_reloads():
    with setup() as (p, bs):
        p.proc.send_signal(1)   # SIGHUP
        time.sleep(0.2)
        assert p.proc.poll() is None
        assert_eq(get(p).status, 200)
    assert "configuration reloaded: generation 2" in p.logs()


def test_32b_sigquit_stops_and_usr1_reopens_access_log():
    import tempfile
    d = tempfile.mkdtemp(prefix="rp-rot-")
    path = os.path.join(d, "access.log")
    b = Backend()
    p = Proxy(dict(upstream_config(b), log={"access_log": path}))
    try:
        get(p, "/one")
        time.sleep(0.2)
        os.rename(path, path + ".1")
        p.proc.send_signal(10)   # SIGUSR1
        deadline = time.time() + 5
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.02)
        assert os.path.exists(path), "access log not reopened"
        get(p, "/two")
        time.sleep(0.2)
        with open(path + ".1") as f:
            assert_eq([json.loads(l)["target"] for l in f], ["/one"])
        with open(path) as f:
            assert_eq([json.loads(l)["target"] for l in f], ["/two"])
        p.proc.send_signal(3)    # SIGQUIT
        assert_eq(p.proc.wait(10), 0)
    finally:
        p.stop()
        b.close()
    assert "access log reopened" in p.logs()


def test_32c_service_manager_notifications():
    import tempfile
    d = tempfile.mkdtemp(prefix="rp-notify-")
    sock_path = os.path.join(d, "notify")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(sock_path)
    ns.settimeout(10)
    os.environ["NOTIFY_SOCKET"] = sock_path
    b = Backend()
    try:
        p = Proxy(upstream_config(b), expect_start=False)
    finally:
        del os.environ["NOTIFY_SOCKET"]
    try:
        msg = ns.recv(4096).decode()
        assert "READY=1" in msg.split("\n"), msg
        assert "MAINPID=%d" % p.proc.pid in msg, msg
        # READY comes after the listeners are bound: connecting works now.
        s = socket.create_connection(("127.0.0.1", p.port), timeout=2)
        s.close()
        p.stop()
        assert_eq(ns.recv(4096).decode(), "STOPPING=1")
    finally:
        b.close()
        ns.close()


def test_32d_log_queue_full_drops_and_reports():
    # stderr is a pipe nobody reads: the writer thread blocks, the bounded
    # queue fills, lines are dropped (traffic is not slowed), and once the
    # pipe is read again the drop is reported.
    b = Backend()
    p = Proxy(upstream_config(b), stderr_pipe=True)
    try:
        s = p.connect(timeout=10)
        c = Client(s)
        batch = b"GET /%s HTTP/1.1\r\nHost: a\r\n\r\n" % (b"x" * 900)
        for _ in range(30):   # 30 x 1000 requests, ~1.5 KB of access line each
            c.send(batch * 1000)
            for _ in range(1000):
                assert_eq(c.read_response().status, 200)
        s.close()
        p.proc.send_signal(15)
        err = p.proc.stderr.read().decode()
        assert_eq(p.proc.wait(10), 0)
    finally:
        p.stop()
        b.close()
    assert "log queue full: lines dropped" in err, err[-2000:]


def test_33b_traceparent_passed_and_logged():
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with setup(lambda req, ci, s: response(404, b"no")) as (p, bs):
        assert_eq(get(p, "/a", headers=[("traceparent", tp)]).status, 404)
        assert_eq(get(p, "/b", headers=[("traceparent", "00-zz-bad")]).status, 404)
        assert_eq(get(p, "/c").status, 404)
        reqs = bs[0].requests
        assert_eq(reqs[0].header("traceparent"), tp)          # untouched
        assert_eq(reqs[1].header("traceparent"), "00-zz-bad")
        deadline = time.time() + 3
        while len(access_lines(p)) < 3 and time.time() < deadline:
            time.sleep(0.05)
        lines = access_lines(p)
        assert_eq(lines[0].get("trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736")
        assert "trace_id" not in lines[1] and "trace_id" not in lines[2], lines


def test_33_access_log_fields():
    with setup() as (p, bs):
        get(p, "/x?y=1", host="h.example")
    line = access_lines(p)[0]
    for k in ("ts", "level", "request_id", "client", "route", "upstream", "backend", "status",
              "duration_ms", "method", "target", "host"):
        assert k in line, k
    assert_eq(line["status"], 200)
    assert_eq(line["target"], "/x?y=1")
    assert line["ts"].endswith("Z") and "T" in line["ts"]


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    sys.exit(run(tests))
