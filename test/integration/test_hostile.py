# SPDX-License-Identifier: MIT
"""Hostile clients (in progress): whose X-Forwarded-For is believed
(trusted_proxies), and what revproxy says of itself (server_header)."""
import json
import os
import socket
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
        deadline = time.time() + 5
        while len(access_lines(p)) < 2 and time.time() < deadline:
            time.sleep(0.02)
        assert_eq([l.get("client_ip") for l in access_lines(p)[:2]], ["6.6.6.6", "7.7.7.7"])
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

if __name__ == "__main__":
    sys.exit(run([test_h01_forwarded_for_believed_only_from_trusted_peers,
                  test_h02_server_header,
                  test_h03_connections_per_address_and_the_global_cap,
                  test_h04_rate_limit_per_address_and_per_route,
                  test_h05_forwarded_for_edges_unrouted_and_route_tables,
                  test_h06_memory_per_connection_under_a_slow_header_flood]))
