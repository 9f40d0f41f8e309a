# SPDX-License-Identifier: MIT
"""Hostile clients (in progress): whose X-Forwarded-For is believed
(trusted_proxies), and what revproxy says of itself (server_header)."""
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend, Client, Proxy, free_port, response, run  # noqa: E402
from test_proxy import access_lines, assert_eq  # noqa: E402


def ask(p, source, headers="", path="/"):
    """A request from source address (any of 127/8 is loopback)."""
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", p.port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: a\r\n%sConnection: close\r\n\r\n" % (path, headers)).encode())
    r = Client(s).read_response()
    s.close()
    return r


def test_h01_forwarded_for_believed_only_from_trusted_peers():
    seen = []

    def handler(req, ci, s):
        seen.append(req.header("x-forwarded-for"))
        return response(200, b"ok")
    b = Backend(handler)
    p = Proxy({"upstreams": {"a": {"backends": [{"address": b.addr}]}},
               "routes": [{"path_prefix": "/", "upstream": "a"}],
               "trusted_proxies": ["127.0.0.2", "10.0.0.0/8"]})
    try:
        xff = "X-Forwarded-For: 6.6.6.6, 198.51.100.7, 10.1.2.3\r\n"
        assert_eq(ask(p, "127.0.0.2", xff).status, 200)   # trusted peer
        assert_eq(ask(p, "127.0.0.3", xff).status, 200)   # untrusted peer
        assert_eq(ask(p, "127.0.0.2").status, 200)        # trusted, no header
        deadline = time.time() + 5
        while len(access_lines(p)) < 3 and time.time() < deadline:
            time.sleep(0.02)
        lines = access_lines(p)
        assert_eq([l.get("client_ip") for l in lines], ["198.51.100.7", None, None])
        assert_eq([l["client"].split(":")[0] for l in lines], ["127.0.0.2", "127.0.0.3", "127.0.0.2"])
        # The header is appended to either way, never replaced.
        assert_eq(seen, ["6.6.6.6, 198.51.100.7, 10.1.2.3, 127.0.0.2",
                         "6.6.6.6, 198.51.100.7, 10.1.2.3, 127.0.0.3", "127.0.0.2"])
    finally:
        p.stop()
        b.close()


def test_h02_server_header():
    b = Backend(lambda req, ci, s: response(200, b"ok", headers=[("Server", "app/1.0")]))
    base = {"upstreams": {"a": {"backends": [{"address": b.addr}]}},
            "routes": [{"path": "/here", "upstream": "a"}]}
    try:
        for setting, want in ((None, "revproxy"), ("edge", "edge"), (False, None)):
            cfg = dict(base)
            if setting is not None:
                cfg["server_header"] = setting
            p = Proxy(cfg)
            try:
                r = ask(p, "127.0.0.1", path="/nowhere")
                assert_eq((setting, r.status, r.header("server")), (setting, 404, want))
                # A backend's own Server passes unchanged.
                r = ask(p, "127.0.0.1", path="/here")
                assert_eq((r.status, r.header("server")), (200, "app/1.0"))
            finally:
                p.stop()
    finally:
        b.close()


def connect_from(p, source):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", p.port))
    return s


def refused_at_once(s):
    """Whether the proxy closed s without answering a request."""
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        return s.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def admin_get(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(("GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % path).encode())
    r = Client(s).read_response()
    s.close()
    return r


def test_h03_connections_per_address_and_the_global_cap():
    b = Backend(lambda req, ci, s: response(200, b"ok"))
    aport = free_port()
    p = Proxy({"upstreams": {"a": {"backends": [{"address": b.addr}]}},
               "routes": [{"path_prefix": "/", "upstream": "a"}], "workers": 2,
               "admin": {"address": "127.0.0.1:%d" % aport},
               "limits": {"max_connections_per_ip": 3, "max_connections": 8}})
    held = []
    try:
        held = [connect_from(p, "127.0.0.2") for _ in range(3)]
        for s in held:   # each served
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert_eq(Client(s).read_response().status, 200)
        extra = connect_from(p, "127.0.0.2")
        assert refused_at_once(extra), "a fourth connection from one address was served"
        extra.close()
        assert_eq(ask(p, "127.0.0.3").status, 200)   # another address still connects
        # One closes: the address may connect again.
        held.pop().close()
        deadline = time.time() + 5
        while True:
            s = connect_from(p, "127.0.0.2")
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            try:
                r = Client(s).read_response()
                s.close()
                break
            except (EOFError, ConnectionResetError):
                s.close()
                assert time.time() < deadline, "the closed connection's place never freed"
                time.sleep(0.05)
        assert_eq(r.status, 200)
        m = admin_get(aport, "/metrics").body.decode()
        assert 'revproxy_connections_rejected_total{reason="per_ip_limit"} ' in m, m[:200]
        n = [l for l in m.split("\n")
             if l.startswith('revproxy_connections_rejected_total{reason="per_ip_limit"}')]
        assert int(n[0].split()[-1]) >= 1, n
        # At max_connections (8) from many addresses, the admin port answers.
        for i in range(8):
            try:
                held.append(connect_from(p, "127.0.1.%d" % (i + 1)))
            except OSError:
                break
        time.sleep(0.2)
        assert_eq(admin_get(aport, "/healthz").status, 200)
    finally:
        for s in held:
            s.close()
        p.stop()
        b.close()

def test_h04_rate_limit_per_address_and_per_route():
    b = Backend(lambda req, ci, s: response(200, b"ok"))
    aport = free_port()
    p = Proxy({"upstreams": {"a": {"backends": [{"address": b.addr}]}},
               "routes": [{"path_prefix": "/", "upstream": "a"},
                          {"path_prefix": "/free/", "upstream": "a", "ratelimit": False},
                          {"path_prefix": "/strict/", "upstream": "a",
                           "ratelimit": {"requests_per_second": 1, "burst": 1}}],
               "admin": {"address": "127.0.0.1:%d" % aport},
               "trusted_proxies": ["127.0.0.9"],
               "ratelimit": {"per_ip": {"requests_per_second": 1, "burst": 5},
                             "max_tracked_addresses": 1000}})
    try:
        t0 = time.time()
        codes = [ask(p, "127.0.0.2").status for _ in range(20)]
        elapsed = time.time() - t0
        ok = codes.count(200)
        assert 5 <= ok <= 5 + int(elapsed) + 1, (ok, elapsed, codes)
        assert codes.count(429) == 20 - ok, codes
        r = ask(p, "127.0.0.2")
        assert_eq(r.status, 429)
        assert int(r.header("retry-after")) >= 1, r.headers
        assert b"error: rate_limited" in r.body, r.body
        assert_eq(ask(p, "127.0.0.3").status, 200)   # another address
        assert_eq([ask(p, "127.0.0.2", path="/free/x").status for _ in range(10)], [200] * 10)
        # The route's own limit, on a table of its own.
        assert_eq([ask(p, "127.0.0.4", path="/strict/x").status for _ in range(3)],
                  [200, 429, 429])
        assert_eq(ask(p, "127.0.0.4").status, 200)   # the global one is untouched
        # 10,000 clients behind a trusted proxy: the table stays at 1,000.
        s = socket.socket()
        s.bind(("127.0.0.9", 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", p.port))
        c = Client(s)
        for i in range(10000):
            s.sendall(("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.%d.%d.%d\r\n\r\n"
                       % (i >> 16, (i >> 8) & 255, i & 255)).encode())
            assert_eq(c.read_response().status, 200)
        s.close()
        st = json.loads(admin_get(aport, "/stats").body)
        assert_eq(st["ratelimit"]["per_ip"]["tracked_addresses"], 1000)
        # A client forgotten (evicted) starts with a full bucket again.
    finally:
        p.stop()
        b.close()

def test_h05_forwarded_for_edges_unrouted_and_route_tables():
    b = Backend(lambda req, ci, s: response(200, b"ok"))
    p = Proxy({"upstreams": {"a": {"backends": [{"address": b.addr}]}},
               "routes": [{"path": "/r0", "upstream": "a"},
                          {"path": "/r1", "upstream": "a"},
                          {"path": "/r2", "upstream": "a"},
                          {"path": "/r3", "upstream": "a",
                           "ratelimit": {"requests_per_second": 1, "burst": 1}},
                          {"name": "3", "path": "/named", "upstream": "a",
                           "ratelimit": {"requests_per_second": 1, "burst": 1}}],
               "trusted_proxies": ["127.0.0.9"],
               "ratelimit": {"per_ip": {"requests_per_second": 1, "burst": 2}}})
    try:
        # A padded X-Forwarded-For: its right end still names the client.
        pad = ", ".join("10.0.%d.%d" % (i >> 8, i & 255) for i in range(250))
        assert_eq(ask(p, "127.0.0.9", "X-Forwarded-For: %s, 6.6.6.6\r\n" % pad,
                      path="/r0").status, 200)
        # Several fields: one list, read from the right.
        assert_eq(ask(p, "127.0.0.9", "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 7.7.7.7\r\n",
                      path="/r0").status, 200)
        # A last field that fills the 2 KiB alone, or all but a byte or two
        # of it: the fields before are left out whole (no separator is
        # written past the buffer), from trusted and untrusted peers.
        # (Each request from a client of its own: the rate limit is 1/s.)
        for k, n in enumerate((2048, 2047, 2046)):
            last = "x" * (n - 9) + ", 7.7.7.%d" % k
            assert_eq(len(last), n)
            for peer in ("127.0.0.9", "127.0.0.%d" % (20 + k)):
                assert_eq(ask(p, peer, "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: %s\r\n"
                              % last, path="/r0").status, 200)
        deadline = time.time() + 5
        while len(access_lines(p)) < 8 and time.time() < deadline:
            time.sleep(0.02)
        assert_eq([l.get("client_ip") for l in access_lines(p)[:8]],
                  ["6.6.6.6", "7.7.7.7", "7.7.7.0", None, "7.7.7.1", None, "7.7.7.2", None])
        # Requests that match no route are limited too.
        codes = [ask(p, "127.0.0.5", path="/nowhere").status for _ in range(4)]
        assert_eq(codes, [404, 404, 429, 429])
        # Two routes with their own limits: tables of their own, whatever
        # their names look like.
        assert_eq(ask(p, "127.0.0.6", path="/r3").status, 200)
        assert_eq(ask(p, "127.0.0.6", path="/named").status, 200)
        assert_eq(ask(p, "127.0.0.6", path="/r3").status, 429)
    finally:
        p.stop()
        b.close()


def test_h06_memory_per_connection_under_a_slow_header_flood():
    """500 connections each holding an unfinished 15 KiB head (under
    max_header_bytes 16 KiB): the memory each costs stays near the head
    limit, the bound revproxy(8) gives."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    b = Backend(lambda req, ci, s: response(200, b"ok"))
    p = Proxy({"upstreams": {"a": {"backends": [{"address": b.addr}]}},
               "routes": [{"path_prefix": "/", "upstream": "a"}], "workers": 1,
               "timeouts": {"client_header_ms": 60000}})
    held = []
    try:
        base = p.rss_kb()
        head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * (15 * 1024)
        for i in range(500):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            s.sendall(head)   # no end of head: it waits for more
            held.append(s)
        time.sleep(0.5)
        per = (p.rss_kb() - base) / 500
        print("    500 unfinished 15 KiB heads: %.1f KiB per connection" % per)
        # The sanitizers' allocator adds its own redzones and quarantine.
        assert per < (80 if "ASAN_OPTIONS" in os.environ else 40), per
        assert_eq(ask(p, "127.0.0.2").status, 200)   # others still served
    finally:
        for s in held:
            s.close()
        p.stop()
        b.close()

BIG = 64 << 20   # what /big* answer with: far more than any socket buffer


def big_handler(req, ci, s):
    """/big*: a large answer, written until the proxy stops taking it;
    anything else: its body's length."""
    if req.target.startswith("/big"):
        try:
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG)
            chunk = b"x" * 65536
            for _ in range(BIG // len(chunk)):
                s.sendall(chunk)
        except OSError:
            pass
        return None
    if req.target.startswith("/bursty"):
        t0 = time.time()
        # 150 kB, a pause until 9.8 s, then 1 MB more.
        try:
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % 1150000)
            s.sendall(b"b" * 150000)
            time.sleep(max(0.0, 9.8 - (time.time() - t0)))
            s.sendall(b"b" * 1000000)
        except OSError:
            pass
        return None
    return response(200, b"%d" % len(req.body))


def trickle_send(s, piece, every):
    """Send piece every `every` seconds until an answer's head comes back
    (25 s at most): its status line, and when."""
    t0 = time.time()
    s.setblocking(False)
    got = b""
    while time.time() - t0 < 25 and b"\r\n\r\n" not in got:
        try:
            s.send(piece)
        except OSError:
            pass
        time.sleep(every)
        try:
            d = s.recv(65536)
            if not d:
                break
            got += d
        except BlockingIOError:
            pass
        except OSError:
            break
    return got.split(b"\r\n")[0], time.time() - t0


def slow_body_h1(p, path, result):
    """A body at 400 bytes/s: the answer comes while it is still sent."""
    s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
    s.sendall(("POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" % path).encode())
    result[path] = trickle_send(s, b"y" * 200, 0.5)
    s.close()


def chunk_trickle_h1(p, path, result):
    """A chunked body whose bytes are nearly all framing: a chunk-size line
    with an extension, a byte every 2 s."""
    s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
    s.sendall(("POST %s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;e=" % path)
              .encode())
    result[path] = trickle_send(s, b"x", 2)
    s.close()


def slow_reader_h1(p, path, result):
    """Reads a large answer at 1,000 bytes/s through a small buffer."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect(("127.0.0.1", p.port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path).encode())
    result[path] = trickle_read(s)
    s.close()


def trickle_read(s):
    """Read 500 bytes every 0.5 s until the proxy ends the connection (30 s
    at most): how it ended, the bytes read, and when."""
    s.settimeout(5)
    t0 = time.time()
    total = 0
    end = "running"
    while time.time() - t0 < 30:
        try:
            d = s.recv(500)
        except ConnectionResetError:
            end = "reset"
            break
        except socket.timeout:
            continue
        if not d:
            end = "closed"
            break
        total += len(d)
        time.sleep(0.5)
    return end, total, time.time() - t0


def slow_body_h2(p, path, result):
    from test_h2 import H2
    c = H2(p)
    sid = c.request(path, method="POST", open_=True)
    t0 = time.time()
    while time.time() - t0 < 25 and sid not in c.headers and not c.closed:
        try:
            c.conn.send_data(sid, b"y" * 200)
            c.flush()
        except Exception:
            pass
        c.pump(0.5)
    result[path] = (c.headers.get(sid, {}).get(":status"), time.time() - t0)
    c.close()


def slow_reader_h2(p, path, result):
    """Windows wide open, but the socket read at 1,000 bytes/s."""
    import h2.settings
    from test_h2 import H2
    c = H2(p, window=(1 << 31) - 1 - 65535, rcvbuf=4096)
    c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (1 << 31) - 1})
    c.flush()
    c.request(path)
    result[path] = trickle_read(c.sock)
    c.close()


def test_h07_slow_clients_cut_at_the_minimum_rate():
    """timeouts.client_min_bytes_per_s 4000, judged over 10 s windows, with
    client_idle_ms far above: a body sent at 400 B/s gets 408 body_too_slow
    (HTTP/1 and HTTP/2), a response read at 1,000 B/s is cut with
    client_too_slow (HTTP/1 and HTTP/2), each after about one window."""
    import threading
    b = Backend(big_handler)
    p = Proxy({"upstreams": {"a": {"backends": [{"address": b.addr}]}},
               "routes": [{"path_prefix": "/", "upstream": "a"}],
               "timeouts": {"client_min_bytes_per_s": 4000, "client_idle_ms": 60000,
                            "upstream_response_ms": 60000, "request_ms": 60000}})
    try:
        result = {}
        ts = [threading.Thread(target=f, args=(p, path, result)) for f, path in
              ((slow_body_h1, "/up1"), (slow_reader_h1, "/big1"),
               (slow_body_h2, "/up2"), (slow_reader_h2, "/big2"),
               (chunk_trickle_h1, "/up3"))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(40)
        print("    %r" % result)
        status, took = result["/up1"]
        assert status.startswith(b"HTTP/1.1 408"), status
        assert 9 < took < 16, took
        status, took = result["/up2"]
        assert_eq(status, "408")
        assert 9 < took < 17, took
        # Chunk framing counts: a trickle of it is as slow as one of data.
        status, took = result["/up3"]
        assert status.startswith(b"HTTP/1.1 408"), status
        assert 9 < took < 17, took
        for path in ("/big1", "/big2"):
            end, total, took = result[path]
            assert end in ("reset", "closed"), (path, end)
            assert 9 < took < 17 and total < 1 << 20, (path, total, took)
        deadline = time.time() + 5
        while len(access_lines(p)) < 5 and time.time() < deadline:
            time.sleep(0.05)
        by = dict((l["target"], l) for l in access_lines(p))
        for path in ("/up1", "/up2", "/up3"):
            assert_eq((by[path]["status"], by[path]["error"]), (408, "body_too_slow"))
        for path in ("/big1", "/big2"):
            assert_eq((by[path]["status"], by[path]["error"]), (200, "client_too_slow"))
        assert_eq(ask(p, "127.0.0.2", path="/ok").status, 200)
    finally:
        p.stop()
        b.close()


def test_h08_pauses_and_stalls_are_not_cut_for_rate():
    """The same minimum (4000 B/s): a body sent in bursts with 4 s pauses
    is served, and so is one that stalls completely for 12 s (longer than
    a window, shorter than client_idle_ms) and then comes whole, over
    HTTP/1 and HTTP/2: a complete stall is client_idle_ms's to end."""
    import threading
    from test_h2 import H2
    b = Backend(big_handler)
    p = Proxy({"upstreams": {"a": {"backends": [{"address": b.addr}]}},
               "routes": [{"path_prefix": "/", "upstream": "a"}],
               "timeouts": {"client_min_bytes_per_s": 4000, "client_idle_ms": 20000,
                            "upstream_response_ms": 60000, "request_ms": 60000}})
    result = {}

    def h1(path, parts, pause):
        s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
        total = sum(len(x) for x in parts)
        s.sendall(("POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
                   % (path, total)).encode())
        for i, part in enumerate(parts):
            if i > 0 or pause == "first":
                time.sleep(12 if pause == "first" else 4)
            s.sendall(part)
        r = Client(s).read_response()
        result[path] = (r.status, r.body)
        s.close()

    def steady_after_stall(path):
        """12 s of nothing, then 6,000 B/s (1.5 times the minimum)."""
        s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
        s.sendall(("POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 60000\r\n\r\n" % path).encode())
        time.sleep(12)
        for _ in range(20):
            s.sendall(b"c" * 3000)
            time.sleep(0.5)
        r = Client(s).read_response()
        result[path] = (r.status, r.body)
        s.close()

    def bursty_fast_reader(path):
        """A client reading at 100 kB/s, five times the minimum there, from
        a backend that pauses for most of 10 s in the middle: the pause is
        not the client's, and the window counts only the time spent waiting
        on it."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.settimeout(20)
        s.connect(("127.0.0.1", fast.port))
        s.sendall(("GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, _, body = buf.partition(b"\r\n\r\n")
        got = len(body)
        t0 = time.time()
        try:
            while got < 1150000:
                d = s.recv(2000)
                if not d:
                    break
                got += len(d)
                ahead = got / 1e5 - (time.time() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        except OSError:
            pass
        result[path] = (head.split(b"\r\n")[0], got)
        s.close()

    def h2_stall(path):
        c = H2(p)
        sid = c.request(path, method="POST", open_=True)
        time.sleep(12)
        c.send_body(sid, b"z" * 100000)
        c.wait(lambda: sid in c.ended or sid in c.resets, timeout=15)
        result[path] = (c.headers.get(sid, {}).get(":status"), bytes(c.bodies.get(sid, b"")))
        c.close()
    fast = Proxy({"upstreams": {"a": {"backends": [{"address": b.addr}]}},
                  "routes": [{"path_prefix": "/", "upstream": "a"}],
                  "timeouts": {"client_min_bytes_per_s": 20000, "client_idle_ms": 20000,
                               "upstream_response_ms": 60000, "request_ms": 60000}})
    try:
        ts = [threading.Thread(target=h1, args=("/bursts", [b"a" * 40000] * 3, "between")),
              threading.Thread(target=h1, args=("/stall", [b"b" * 100000], "first")),
              threading.Thread(target=h2_stall, args=("/stall2",)),
              threading.Thread(target=steady_after_stall, args=("/steady",)),
              threading.Thread(target=bursty_fast_reader, args=("/bursty",))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(40)
        assert_eq(result, {"/bursts": (200, b"120000"), "/stall": (200, b"100000"),
                           "/stall2": ("200", b"100000"), "/steady": (200, b"60000"),
                           "/bursty": (b"HTTP/1.1 200 OK", 1150000)})
    finally:
        p.stop()
        fast.stop()
        b.close()


V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def pp_v2(src, sport, dst="10.0.0.1", dport=443, local=False, tlv=b""):
    """A PROXY protocol v2 header for TCP from src:sport."""
    import ipaddress
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if a.version == 4 else 0x21
    body = a.packed + b.packed + struct.pack("!HH", sport, dport) + tlv
    return V2_SIG + bytes([0x20 if local else 0x21, fam]) + struct.pack("!H", len(body)) + body


def pp_exchange(port, source, parts, pause=0.0, headers=""):
    """Connect from source, send parts (with pause between them) and a
    request: its response, or None when the proxy closed unanswered."""
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    try:
        for i, part in enumerate(parts):
            if i > 0 and pause:
                time.sleep(pause)
            s.sendall(part)
        s.sendall(("GET /pp HTTP/1.1\r\nHost: a\r\n%sConnection: close\r\n\r\n"
                   % headers).encode())
        return Client(s).read_response()
    except (EOFError, ConnectionResetError, BrokenPipeError):
        return None
    finally:
        s.close()


def test_h09_proxy_protocol_v1_and_v2():
    """Listeners with proxy_protocol v1 and v2 behind a trusted balancer
    (127.0.0.2): the header's address is the client in the access line,
    in X-Forwarded-For and for max_connections_per_ip; UNKNOWN and LOCAL
    keep the balancer's; a header in two pieces is waited for; a missing,
    malformed, wrong-version or unfinished header, or one from a peer not
    in trusted_proxies, closes the connection unanswered."""
    b = Backend(lambda req, ci, s: response(200, (req.header("x-forwarded-for") or "").encode()))
    p0, p1, p2 = free_port(), free_port(), free_port()
    aport = free_port()
    p = Proxy({"listeners": [{"address": "127.0.0.1:%d" % p0},
                             {"address": "127.0.0.1:%d" % p1, "proxy_protocol": "v1"},
                             {"address": "127.0.0.1:%d" % p2, "proxy_protocol": "v2"}],
               "upstreams": {"a": {"backends": [{"address": b.addr}]}},
               "routes": [{"path_prefix": "/", "upstream": "a"}],
               "trusted_proxies": ["127.0.0.2"],
               "admin": {"address": "127.0.0.1:%d" % aport},
               "timeouts": {"client_header_ms": 1500},
               "limits": {"max_connections_per_ip": 2}}, port=p0)
    try:
        lb = "127.0.0.2"
        ok = [
            (p1, [b"PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\n"], "203.0.113.7", "203.0.113.7:56324"),
            (p1, [b"PROXY TCP6 2001:db8::5 2001:db8::1 4000 443\r\n"], "2001:db8::5", "[2001:db8::5]:4000"),
            (p1, [b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"], lb, None),
            (p1, [b"PROXY TCP4 198.51.100.1 10.0.", b"0.1 1000 80\r\n"], "198.51.100.1", "198.51.100.1:1000"),
            (p2, [pp_v2("203.0.113.8", 40000)], "203.0.113.8", "203.0.113.8:40000"),
            (p2, [pp_v2("2001:db8::9", 40001, "2001:db8::1", tlv=b"\x04\x00\x02ab")], "2001:db8::9",
             "[2001:db8::9]:40001"),
            (p2, [pp_v2("203.0.113.9", 1, local=True)], lb, None),
            (p2, [pp_v2("203.0.113.10", 2)[:10], pp_v2("203.0.113.10", 2)[10:]], "203.0.113.10",
             "203.0.113.10:2"),
            # An IPv4 client in IPv6's mapped form is an IPv4 client.
            (p1, [b"PROXY TCP6 ::ffff:203.0.113.11 ::ffff:10.0.0.1 7 80\r\n"], "203.0.113.11",
             "203.0.113.11:7"),
            (p2, [pp_v2("::ffff:203.0.113.12", 8, "::ffff:10.0.0.1")], "203.0.113.12",
             "203.0.113.12:8"),
            # UNKNOWN ignores whatever follows it; 107 bytes is the most.
            (p1, [b"PROXY UNKNOWN " + b"x " * 45 + b"x\r\n"], lb, None),
        ]
        assert_eq(len(ok[-1][1][0]), 107)
        for port, parts, xff, client in ok:
            r = pp_exchange(port, lb, parts, pause=0.3)
            assert r is not None, parts
            assert_eq((r.status, r.body.decode()), (200, xff), parts)
        deadline = time.time() + 5
        while len(access_lines(p)) < len(ok) and time.time() < deadline:
            time.sleep(0.05)
        clients = [l["client"] for l in access_lines(p)]
        for (port, parts, xff, client), got in zip(ok, clients):
            if client is None:
                assert got.startswith("127.0.0.2:"), (parts, got)
            else:
                assert_eq(got, client, parts)
        bad = [
            (p1, lb, [b""]),                                               # no header
            (p1, lb, [b"PROXY TCP4 999.0.113.7 10.0.0.1 1 2\r\n"]),       # bad address
            (p1, lb, [b"PROXY TCP4 203.0.113.7 10.0.0.1 1 65536\r\n"]),   # bad port
            (p1, lb, [b"PROXY TCP4  203.0.113.7 10.0.0.1 1 2\r\n"]),      # two spaces
            (p1, lb, [b"PROXY TCP4 203.0.113.7 10.0.0.1 1 2\n"]),          # no CR
            (p1, lb, [b"PROXY " + b"A" * 120]),                            # too long
            (p1, lb, [b"PROXY UNKNOWN " + b"x " * 45 + b"xy\r\n"]),         # 108 bytes
            (p1, lb, [pp_v2("203.0.113.7", 1)]),                           # v2 on v1
            (p2, lb, [b"PROXY TCP4 203.0.113.7 10.0.0.1 1 2\r\n"]),       # v1 on v2
            (p2, lb, [V2_SIG + b"\x22\x11\x00\x0c" + b"\x00" * 12]),       # command 2
            (p2, lb, [V2_SIG + b"\x21\x11\x00\x04" + b"\x00" * 4]),        # addresses short
            (p1, "127.0.0.3", [b"PROXY TCP4 203.0.113.7 10.0.0.1 1 2\r\n"]),   # untrusted peer
            (p2, "127.0.0.3", [pp_v2("203.0.113.7", 1)]),
        ]
        for port, source, parts in bad:
            assert pp_exchange(port, source, parts) is None, (port, source, parts)
        # A header that never ends: closed at client_header_ms.
        s = socket.socket()
        s.bind((lb, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", p1))
        s.sendall(b"PROXY TCP4 203.0.113.7")
        t0 = time.time()
        try:
            assert_eq(s.recv(10), b"")
        except ConnectionResetError:
            pass   # (what it sent is unread: the close is a reset)
        assert 1.0 < time.time() - t0 < 4, time.time() - t0
        s.close()
        # The header's address is what max_connections_per_ip counts.
        held = []
        for _ in range(2):
            h = socket.socket()
            h.bind((lb, 0))
            h.settimeout(5)
            h.connect(("127.0.0.1", p1))
            h.sendall(b"PROXY TCP4 192.0.2.50 10.0.0.1 1000 80\r\n")
            held.append(h)
        time.sleep(0.3)
        assert pp_exchange(p1, lb, [b"PROXY TCP4 192.0.2.50 10.0.0.1 1001 80\r\n"]) is None
        r = pp_exchange(p1, lb, [b"PROXY TCP4 192.0.2.51 10.0.0.1 1002 80\r\n"])
        assert_eq(r.status, 200)
        for h in held:
            h.close()
        # A client that closes mid-header is let go at once (not held
        # until client_header_ms); one that connects and closes without a
        # byte (a balancer's TCP check) is not counted.
        s = socket.socket()
        s.bind((lb, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", p1))
        s.sendall(b"PROXY TCP4 203.0.113.7")
        s.shutdown(socket.SHUT_WR)
        t0 = time.time()
        try:
            s.recv(10)
        except ConnectionResetError:
            pass
        assert time.time() - t0 < 0.8, time.time() - t0
        s.close()
        s = socket.socket()
        s.bind((lb, 0))
        s.connect(("127.0.0.1", p2))
        s.close()
        s = socket.socket()   # nor one closing with a reset
        s.bind((lb, 0))
        s.connect(("127.0.0.1", p1))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        time.sleep(0.3)
        # A header that names no client: the balancer's address stands, but
        # the X-Forwarded-For of whoever it relays is not believed.
        for port, parts in ((p1, [b"PROXY UNKNOWN\r\n"]), (p2, [pp_v2("203.0.113.9", 1, local=True)]),
                            (p2, [V2_SIG + b"\x21\x31\x00\xd8" + b"\x00" * 216])):
            r = pp_exchange(port, lb, parts, headers="X-Forwarded-For: 6.6.6.6\r\n")
            assert_eq((r.status, r.body.decode()), (200, "6.6.6.6, 127.0.0.2"))
        deadline = time.time() + 5
        while len(access_lines(p)) < len(ok) + 4 and time.time() < deadline:
            time.sleep(0.05)
        assert_eq([l.get("client_ip") for l in access_lines(p)[-3:]], [None] * 3)
        m = admin_get(aport, "/metrics").body.decode()
        counts = dict((reason, int(l.split()[-1])) for l in m.split("\n")
                      for reason in ("proxy_protocol_invalid", "proxy_protocol_untrusted",
                                     "per_ip_limit")
                      if l.startswith('revproxy_connections_rejected_total{reason="%s"}' % reason))
        assert_eq(counts, {"proxy_protocol_invalid": 13, "proxy_protocol_untrusted": 2,
                           "per_ip_limit": 1})
        # The plain listener is as before.
        assert_eq(ask(p, "127.0.0.3", path="/plain").status, 200)
    finally:
        p.stop()
        b.close()


def test_h10_header_awaited_across_a_reload_removing_its_listener():
    """A connection waiting for the rest of its PROXY header when a reload
    removes its listener goes on under the listener it was accepted on:
    served once (Connection: close), not reset."""
    import signal
    b = Backend(lambda req, ci, s: response(200, (req.header("x-forwarded-for") or "").encode()))
    p0, p1, aport = free_port(), free_port(), free_port()
    cfg = {"listeners": [{"address": "127.0.0.1:%d" % p0},
                         {"address": "127.0.0.1:%d" % p1, "proxy_protocol": "v1"}],
           "upstreams": {"a": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "a"}],
           "trusted_proxies": ["127.0.0.2"],
           "admin": {"address": "127.0.0.1:%d" % aport}}
    p = Proxy(cfg, port=p0)
    try:
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", p1))
        s.sendall(b"PROXY TCP4 203.0.113.30 10.0.0.1 ")
        time.sleep(0.2)
        cfg2 = dict(p.config)
        cfg2["listeners"] = [{"address": "127.0.0.1:%d" % p0}]
        with open(p.config_path + ".tmp", "w") as f:
            json.dump(cfg2, f)
        os.rename(p.config_path + ".tmp", p.config_path)
        p.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while json.loads(admin_get(aport, "/config").body)["generation"] != 2:
            assert time.time() < deadline, "the reload did not happen"
            time.sleep(0.05)
        s.sendall(b"1000 80\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        r = Client(s).read_response()
        assert_eq((r.status, r.body, r.header("connection")), (200, b"203.0.113.30", "close"))
        s.close()
    finally:
        p.stop()
        b.close()


if __name__ == "__main__":
    sys.exit(run([test_h01_forwarded_for_believed_only_from_trusted_peers,
                  test_h02_server_header,
                  test_h03_connections_per_address_and_the_global_cap,
                  test_h04_rate_limit_per_address_and_per_route,
                  test_h05_forwarded_for_edges_unrouted_and_route_tables,
                  test_h06_memory_per_connection_under_a_slow_header_flood,
                  test_h07_slow_clients_cut_at_the_minimum_rate,
                  test_h08_pauses_and_stalls_are_not_cut_for_rate,
                  test_h09_proxy_protocol_v1_and_v2,
                  test_h10_header_awaited_across_a_reload_removing_its_listener]))
