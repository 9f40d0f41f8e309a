# SPDX-License-Identifier: MIT
"""Allocation failure, walked over a request's whole path.

Needs a binary built with --enable-failmalloc (test/failmalloc.sh builds
one, with ASan and UBSan, and runs this file).  POST /failmalloc?after=N on
the admin port makes the Nth allocation after it fail (see
src/failmalloc.h for what is counted).  Each walk arms N = 1, 2, 3, ...,
runs one exchange, disarms, and stops at the first N that no allocation of
the exchange reached.  At every step: revproxy is still running, what the
client got is either the right answer, a 503 whose word is out_of_memory,
or a connection (stream) cut so that it cannot pass for a whole answer,
never a malformed or silently shortened one and never a hang; the next
exchange succeeds.  At the end revproxy stops cleanly with no
LeakSanitizer or other sanitizer report (Proxy.stop)."""
import json
import os
import signal
import socket
import struct
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend, Client, Proxy, free_port, response, run  # noqa: E402
from test_h2 import H2  # noqa: E402
from test_hostile import admin_get  # noqa: E402
from test_proxy import assert_eq  # noqa: E402
from test_websocket import WSBackend, frame, raw_handshake, read_frame  # noqa: E402

CUT = (EOFError, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
# A connection whose read or timer event could not be registered is left
# to the timers that could: short ones bound how long that takes.
TIMEOUTS = {"client_header_ms": 1000, "client_idle_ms": 2000, "upstream_response_ms": 2000}
UP = b"u" * 3000
DOWN = bytes(range(256)) * 64   # 16 KiB


def admin_post(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(("POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
               % path).encode())
    r = Client(s).read_response()
    s.close()
    return r


def arm(aport, n, scope="workers", count=1, own=False):
    r = admin_post(aport, "/failmalloc?after=%d&count=%d&scope=%s%s"
                   % (n, count, scope, "&only=own" if own else ""))
    assert_eq(r.status, 200)


def disarm(aport):
    r = admin_post(aport, "/failmalloc?after=0")
    assert_eq(r.status, 200)
    return json.loads(r.body)


def backend_handler(req, ci, s):
    if req.target.startswith("/up"):
        return response(200, b"got %d" % len(req.body))
    # The download: chunked, in pieces.
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"".join(b"%x\r\n%s\r\n" % (len(DOWN[i:i + 4096]), DOWN[i:i + 4096])
                    for i in range(0, len(DOWN), 4096))
    return head + body + b"0\r\n\r\n"


def check_error(status, body):
    assert status == 503, "status %d (only 200 or a 503 out_of_memory may come)" % status
    assert b"out_of_memory" in body, body


def check_oom_lines(p):
    """An out_of_memory answer is the proxy's own failing: its access line
    says termination internal, never a client's limit (a tunnel's says
    the proxy closed it).  Returns how many."""
    lines = [l for l in p.log_lines()
             if l.get("msg") == "access" and l.get("error") == "out_of_memory"]
    bad = [l for l in lines
           if (l.get("ws_closed_by") != "proxy" if l.get("status") == 101
               else l.get("termination") != "internal")]
    assert not bad, "out_of_memory logged as %r: %r" % (
        sorted({l.get("termination") for l in bad}), bad[0])
    return len(lines)


def walk(p, aport, exchange, check, scope="workers", limit=3000, count=1, stride=1,
         own=False):
    """Walk N over the allocations of exchange(); check() must succeed
    after each step.  Returns (steps, Counter of outcomes).  With
    FAILMALLOC_LOG=FILE in the environment, the proxy's log goes there
    when a step fails (run revproxy with REVPROXY_FAILMALLOC_TRACE=1 to
    have the stack of each failed allocation in it).  stride > 1 fails
    every stride-th allocation only (a sample, for paths of many thousand
    allocations); own: revproxy's own allocations only, not OpenSSL's."""
    try:
        return walk_(p, aport, exchange, check, scope, limit, count, stride, own)
    except BaseException:
        if os.environ.get("FAILMALLOC_LOG"):
            with open(os.environ["FAILMALLOC_LOG"], "w") as f:
                f.write(p.logs())
        raise


def walk_(p, aport, exchange, check, scope, limit, count, stride, own):
    outcomes = Counter()
    n = 1
    while n <= limit:
        arm(aport, n, scope, count, own)
        try:
            outcome = exchange()
        except socket.timeout:
            raise AssertionError("step %d: the exchange hung" % n)
        except AssertionError as e:
            raise AssertionError("step %d: %s" % (n, e))
        rep = disarm(aport)
        assert p.proc.poll() is None, "revproxy died at step %d" % n
        outcomes[outcome] += 1
        check()
        if rep["failed"] == 0:
            return n, outcomes
        n += stride
    raise AssertionError("more than %d allocations in one exchange" % limit)


def http1_exchange(p):
    """A new connection: a chunked upload, then a chunked download on the
    same connection.  Returns how it went."""
    try:
        s = p.connect(timeout=5)
    except CUT:
        return "cut"
    c = Client(s)
    try:
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(UP), UP)
        c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        r = c.read_response()
        if r.status != 200:
            check_error(r.status, r.body)
            if (r.header("connection") or "").lower() == "close":
                return "503"
        else:
            assert_eq(r.body, b"got %d" % len(UP))
        c.send(b"GET /down HTTP/1.1\r\nHost: a\r\n\r\n")
        r2 = c.read_response()
        if r2.status != 200:
            check_error(r2.status, r2.body)
            return "503"
        assert r2.body == DOWN, "a shortened or altered download (%d bytes)" % len(r2.body)
        return "ok" if r.status == 200 else "503"
    except CUT:
        return "cut"
    finally:
        s.close()


def http1_ok(p):
    s = p.connect(timeout=5)
    try:
        c = Client(s)
        c.send(b"GET /down HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert_eq(r.status, 200)
        assert r.body == DOWN
    finally:
        s.close()


def setup(extra=None, backend=None):
    b = backend or Backend(backend_handler)
    aport = free_port()
    cfg = {"upstreams": {"a": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "a"}],
           "admin": {"address": "127.0.0.1:%d" % aport}, "timeouts": TIMEOUTS}
    cfg.update(extra or {})
    p = Proxy(cfg)
    r = admin_post(aport, "/failmalloc?after=0")
    assert r.status == 200, "this binary was not built with --enable-failmalloc"
    return b, aport, p


def test_fm01_http1_walk():
    """HTTP/1.1: accept, parse, route, connect (then the pooled connection),
    upload and download relay, access line; a per-address connection
    count without memory refuses the connection, counted as such."""
    b, aport, p = setup({"limits": {"max_connections_per_ip": 100}})
    try:
        http1_ok(p)   # the backend pool warms up
        for count in (1, 3):   # one failure, then a burst of three in a row
            steps, seen = walk(p, aport, lambda: http1_exchange(p), lambda: http1_ok(p),
                               count=count)
            print("  http1, %d at a time: %d steps %s" % (count, steps, dict(seen)))
            assert steps > 10 and seen["ok"] >= 1 and seen["503"] + seen["cut"] >= 1, seen
        print("  out_of_memory access lines: %d" % check_oom_lines(p))
        m = admin_get(aport, "/metrics").body.decode()
        assert 'revproxy_connections_rejected_total{reason="out_of_memory"} ' in m, m[:300]
        assert 'rejected_total{reason="per_ip_limit"} 0' in m
    finally:
        p.stop()
        b.close()


def h2_exchange(p):
    try:
        h = H2(p)
    except CUT:
        return "cut"
    try:
        up = h.request("/up", method="POST", body=UP)
        down = h.request("/down")
        h.wait(lambda: (h.done(up) and h.done(down)) or h.closed or h.goaway is not None,
               timeout=5)
        if h.closed and not (h.done(up) and h.done(down)):
            return "cut"
        kinds = []
        for sid, want in ((up, b"got %d" % len(UP)), (down, DOWN)):
            if sid in h.resets or sid not in h.ended:
                kinds.append("cut")
                continue
            status = int(h.headers[sid][":status"])
            body = bytes(h.bodies.get(sid, b""))
            if status != 200:
                check_error(status, body)
                kinds.append("503")
            else:
                assert body == want, "stream %d: a shortened or altered body" % sid
                kinds.append("ok")
        return "+".join(kinds)
    except CUT:
        return "cut"
    except AssertionError as e:
        if "timed out" in str(e):
            raise socket.timeout(str(e))
        raise
    finally:
        h.close()


def h2_ok(p):
    h = H2(p)
    try:
        sid = h.request("/down")
        h.wait(lambda: h.done(sid), timeout=5)
        assert_eq(h.headers[sid][":status"], "200")
        assert bytes(h.bodies[sid]) == DOWN
    finally:
        h.close()


def test_fm02_http2_walk():
    """HTTP/2 (h2c): the session, two streams (an upload and a download)."""
    b, aport, p = setup()
    try:
        h2_ok(p)
        for count in (1, 3):
            steps, seen = walk(p, aport, lambda: h2_exchange(p), lambda: h2_ok(p), count=count)
            print("  http2, %d at a time: %d steps %s" % (count, steps, dict(seen)))
            assert steps > 10 and seen["ok+ok"] >= 1 and len(seen) >= 2, seen
        print("  out_of_memory access lines: %d" % check_oom_lines(p))
    finally:
        p.stop()
        b.close()


def ws_exchange(p):
    s = None
    try:
        s, c, (version, status, reason, headers) = raw_handshake(p)
        s.settimeout(5)
        if status != 101:
            body = c.buf
            # The error body follows its head (Content-Length).
            n = int(dict((k.lower(), v) for k, v in headers).get("content-length", "0"))
            while len(body) < n:
                d = s.recv(65536)
                if not d:
                    break
                body += d
            check_error(status, body)
            return "503"
        s.sendall(frame(1, b"hello over the tunnel"))
        f = read_frame(c, timeout=5)
        if f is None:
            return "cut"
        if f[0] == 8:
            return "closed %d" % (struct.unpack("!H", f[1][:2])[0] if len(f[1]) >= 2 else 1005)
        assert_eq(f, (1, b"hello over the tunnel"))
        s.sendall(frame(8, struct.pack("!H", 1000)))
        return "ok"
    except CUT:
        return "cut"
    finally:
        if s is not None:
            s.close()


def ws_ok(p):
    s, c, head = raw_handshake(p)
    try:
        assert_eq(head[1], 101)
        s.sendall(frame(1, b"check"))
        assert_eq(read_frame(c, timeout=5), (1, b"check"))
    finally:
        s.close()


def test_fm03_websocket_walk():
    """WebSocket: the upgrade, the backend's 101, the tunnel and a message
    each way (wslay's own allocations are out of sight)."""
    wb = WSBackend()
    aport = free_port()
    p = Proxy({"upstreams": {"ws": {"backends": [{"address": wb.addr}]}},
               "routes": [{"path_prefix": "/", "upstream": "ws", "websocket": True}],
               "admin": {"address": "127.0.0.1:%d" % aport}, "timeouts": TIMEOUTS,
               "websocket": {"idle_timeout_ms": 2000}})
    try:
        ws_ok(p)
        for count in (1, 3):
            steps, seen = walk(p, aport, lambda: ws_exchange(p), lambda: ws_ok(p), count=count)
            print("  websocket, %d at a time: %d steps %s" % (count, steps, dict(seen)))
            assert steps > 10 and seen["ok"] >= 1 and len(seen) >= 2, seen
        print("  out_of_memory access lines: %d" % check_oom_lines(p))
    finally:
        p.stop()
        wb.close()


def reload_walk(tls=False, count=1, stride=1, own=False):
    """A reload (POST /reload) whose building runs out of memory is refused
    as a whole (409, the old configuration serving); one that gets through
    is in force.  Two configurations alternate, told apart by a route;
    with tls, a TLS listener (certificates loaded at each reload)."""
    b = Backend(backend_handler)
    aport = free_port()
    extra_listeners = []
    if tls:
        from test_tls import make_certs
        c = make_certs()
        extra_listeners = [{"address": "127.0.0.1:%d" % free_port(),
                            "tls": {"certificates": [{"cert": c[n][0], "key": c[n][1]}
                                                     for n in ("default", "a", "w")]}}]
    # First in the file, a string of 14 characters: where jansson's lexer
    # once wrote past its buffer after a failed allocation.
    base = {"server_header": "abcdefghijklmn",
            "upstreams": {"a": {"backends": [{"address": b.addr}],
                                "health": {"active": {"path": "/up", "interval_ms": 60000}}}},
            "admin": {"address": "127.0.0.1:%d" % aport}, "timeouts": TIMEOUTS,
            "ratelimit": {"per_ip": {"requests_per_second": 1000, "burst": 1000}}}
    configs = [dict(base, routes=[{"path_prefix": "/", "upstream": "a"}]),
               dict(base, routes=[{"path_prefix": "/down", "upstream": "a"},
                                  {"host": "other.example", "path_prefix": "/", "upstream": "a"}])]
    plain = free_port()
    listeners = [{"address": "127.0.0.1:%d" % plain}] + extra_listeners
    p = Proxy(dict(configs[0], listeners=listeners), port=plain)
    try:
        assert admin_post(aport, "/failmalloc?after=0").status == 200
        gen = json.loads(admin_get(aport, "/stats").body)["config"]["generation"]
        state = {"next": 1, "gen": gen}

        def exchange():
            with open(p.config_path, "w") as f:
                json.dump(dict(configs[state["next"]], listeners=p.config["listeners"],
                               workers=1), f)
            r = admin_post(aport, "/reload")
            now = json.loads(admin_get(aport, "/stats").body)["config"]["generation"]
            if r.status == 200:
                assert_eq(now, state["gen"] + 1)
                state["gen"] = now
                state["next"] ^= 1
                return "ok"
            assert_eq(r.status, 409)
            assert_eq(now, state["gen"])   # the old one serves
            return "refused"

        def check():
            http1_ok(p)

        steps, seen = walk(p, aport, exchange, check, scope="reload", count=count,
                           stride=stride, limit=100000, own=own)
        print("  reload%s, %d at a time%s%s: %d steps %s"
              % (" with TLS" if tls else "", count, ", every %dth" % stride if stride > 1 else "",
                 ", revproxy's own" if own else "", steps, dict(seen)))
        assert steps > 20 and seen["ok"] >= 1 and seen["refused"] >= 1, seen
        # And a signal's reload after all that.
        p.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        http1_ok(p)
    finally:
        p.stop()
        b.close()


def test_fm04_reload_walk():
    reload_walk()


def test_fm05_reload_walk_a_burst_at_a_time():
    """Two and three failures in a row: the parser, the identities and the
    modules meet failures after failures."""
    reload_walk(count=2)
    reload_walk(count=3)


def test_fm06_reload_walk_with_tls():
    """Certificates, keys, cipher lists and the SNI table loaded by a
    reload that runs out of memory: refused whole, never an abort.  OpenSSL
    makes thousands of allocations loading them: revproxy's own are walked
    one by one, then every 7th of all (FAILMALLOC_TLS_STRIDE=1 walks them
    all)."""
    reload_walk(tls=True, own=True)   # every one of revproxy's own
    reload_walk(tls=True, stride=int(os.environ.get("FAILMALLOC_TLS_STRIDE", "7")))


def test_fm07_http2_websocket_walk():
    """WebSocket over HTTP/2 (RFC 8441): a tunnel whose DATA cannot be kept
    is reset, never carries on with a message missing."""
    from test_websocket import H2Tunnel
    wb = WSBackend()
    aport = free_port()
    p = Proxy({"upstreams": {"ws": {"backends": [{"address": wb.addr}]}},
               "routes": [{"path_prefix": "/", "upstream": "ws", "websocket": True}],
               "admin": {"address": "127.0.0.1:%d" % aport}, "timeouts": TIMEOUTS,
               "websocket": {"idle_timeout_ms": 2000}})

    def exchange():
        try:
            s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            t = H2Tunnel(s)
            h = t.open(1)
            if h is None or h.get(":status") != "200":
                if h is not None:
                    check_error(int(h[":status"]), t.data.get(1, b""))
                s.close()
                return "refused"
            sent = [b"m%d-" % i + os.urandom(3000) for i in range(3)]
            for m in sent:
                t.send(1, frame(2, m))
            got, part = [], None
            while len(got) < 3:
                f = t.frame(1, timeout=5)
                if f is None or f[0] == 8:
                    break
                part = f[1] if f[0] != 0 else part + f[1]   # frames joined
                if t.last_fin:
                    got.append(part)
            s.close()
            # What arrived is what was sent, in order, none missing between.
            assert got == sent[:len(got)], "a message lost or altered in the tunnel: %r" % (
                [(g[:3], len(g)) for g in got],)
            return "ok" if len(got) == 3 else "cut"
        except CUT:
            return "cut"
        except socket.timeout:
            return "cut"   # (the proxy's idle timers end what it cannot serve)

    def check():
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        t = H2Tunnel(s)
        assert_eq(t.open(1).get(":status"), "200")
        t.send(1, frame(1, b"check"))
        assert_eq(t.frame(1), (1, b"check"))
        s.close()

    try:
        check()
        steps, seen = walk(p, aport, exchange, check)
        print("  websocket over http/2: %d steps %s" % (steps, dict(seen)))
        assert steps > 10 and seen["ok"] >= 1 and len(seen) >= 2, seen
        print("  out_of_memory access lines: %d" % check_oom_lines(p))
    finally:
        p.stop()
        wb.close()


def test_fm08_idle_connection_walk():
    """An idle keep-alive connection compacted to its socket (after its
    second idle) and woken by its next request: every allocation of the
    compaction and of the wake."""
    b, aport, p = setup({"log": {"level": "debug"}})

    def compactions():
        return sum(1 for l in p.log_lines() if l.get("msg", "").endswith("only its socket kept"))

    try:
        def exchange():
            try:
                s = p.connect(timeout=5)
            except CUT:
                return "cut"
            c = Client(s)
            try:
                kinds = []
                for path in (b"/up/1", b"/up/2"):
                    before = compactions()
                    c.send(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path)
                    r = c.read_response()
                    if r.status != 200:
                        check_error(r.status, r.body)
                        kinds.append("503")
                        if (r.header("connection") or "").lower() == "close":
                            break
                    else:
                        assert_eq(r.body, b"got 0")
                        kinds.append("ok")
                    if path == b"/up/1":
                        # Idle until compacted (or, without memory for
                        # it, a little longer than the grace).
                        end = time.time() + 1.4
                        while compactions() == before and time.time() < end:
                            time.sleep(0.05)
                return "+".join(kinds)
            except CUT:
                return "cut"
            finally:
                s.close()

        def check():
            s = p.connect(timeout=5)
            try:
                c = Client(s)
                for _ in range(2):
                    c.send(b"GET /up HTTP/1.1\r\nHost: a\r\n\r\n")
                    assert_eq(c.read_response().status, 200)
            finally:
                s.close()

        exchange()
        woken = sum(1 for l in p.log_lines() if l.get("msg", "").endswith(": whole again"))
        assert woken >= 1, "no connection was compacted and woken"
        steps, seen = walk(p, aport, exchange, check)
        print("  idle connection: %d steps %s" % (steps, dict(seen)))
        assert steps > 10 and seen["ok+ok"] >= 1 and len(seen) >= 2, seen
        print("  out_of_memory access lines: %d" % check_oom_lines(p))
    finally:
        p.stop()
        b.close()


if __name__ == "__main__":
    sys.exit(run([test_fm01_http1_walk, test_fm02_http2_walk, test_fm03_websocket_walk,
                  test_fm04_reload_walk, test_fm05_reload_walk_a_burst_at_a_time,
                  test_fm06_reload_walk_with_tls, test_fm07_http2_websocket_walk,
                  test_fm08_idle_connection_walk]))
