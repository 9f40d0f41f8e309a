# SPDX-License-Identifier: MIT
"""WebSocket: the handshake on WebSocket routes (400, 426, 502 for a bad
101, a refused upgrade relayed as HTTP), a frame-aware relay between a
real client and a real echo backend (python3-websockets): text, binary,
fragments, 1 MiB, ping/pong, Close from either side, 1009, 1002, 1007,
the idle timeout, drain (1001), reload, metrics, and 1,000 tunnels at
once with the memory each takes."""
import asyncio
import base64
import hashlib
import json
import os
import resource
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend, Client, Proxy, free_port, request_bytes, response, run  # noqa: E402
from test_proxy import access_lines, assert_eq  # noqa: E402

import websockets  # noqa: E402

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WSBackend:
    """A WebSocket server on loopback, on an asyncio loop of its own.
    handler(ws) is a coroutine; the default echoes every message.  The
    close code each connection ended with, and each handshake's headers,
    are recorded."""

    def __init__(self, handler=None, **kw):
        self.handler = handler or self.echo
        self.closes, self.headers, self.paths = [], [], []
        self.loop = asyncio.new_event_loop()
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        ready = threading.Event()

        def main():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                websockets.serve(self._serve, "127.0.0.1", self.port, max_size=None,
                                 ping_interval=None, **kw))
            ready.set()
            self.loop.run_forever()
        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        ready.wait(5)

    async def echo(self, ws):
        async for m in ws:
            await ws.send(m)

    async def _serve(self, ws, path=None):
        self.headers.append({k.lower(): v for k, v in ws.request_headers.raw_items()})
        self.paths.append(ws.path)
        try:
            await self.handler(ws)
        except websockets.ConnectionClosed:
            pass
        finally:
            await ws.wait_closed()
            self.closes.append(ws.close_code)

    def close(self):
        async def stop():
            self.server.close()
            await self.server.wait_closed()
        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        except Exception:   # noqa: BLE001
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def ws_proxy(backend, route_extra=None, port=None, **cfg):
    route = {"path_prefix": "/", "upstream": "ws", "websocket": True}
    route.update(route_extra or {})
    base = {"upstreams": {"ws": {"backends": [{"address": backend.addr}]}},
            "routes": [route], "log": {"level": "info"}}
    base.update(cfg)
    return Proxy(base, port=port)


def arun(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def connect(p, path="/chat", **kw):
    kw.setdefault("compression", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("max_size", None)
    return websockets.connect("ws://127.0.0.1:%d%s" % (p.port, path), **kw)


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def tunnel_lines(p):
    return [l for l in access_lines(p) if l.get("websocket")]


# ---- a raw client, for what a library would never send ----

def raw_handshake(p, key="dGhlIHNhbXBsZSBub25jZQ==", extra="", path="/chat"):
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    s.sendall(("GET %s HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n" % (path, key, extra))
              .encode())
    c = Client(s)
    r = c.read_head()
    return s, c, r


def frame(opcode, payload, fin=True, mask=True, rsv=0):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frame(c, timeout=5):
    """(opcode, payload) of the next frame from the proxy (unmasked), or
    None at the end of the connection."""
    c.sock.settimeout(timeout)

    def need(n):
        while len(c.buf) < n:
            try:
                d = c.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                return False
            if not d:
                return False
            c.buf += d
        return True
    if not need(2):
        return None
    b0, b1 = c.buf[0], c.buf[1]
    assert not b1 & 0x80, "a frame from the proxy to the client is masked"
    n, off = b1 & 0x7F, 2
    if n == 126:
        if not need(4):
            return None
        n, off = struct.unpack("!H", c.buf[2:4])[0], 4
    elif n == 127:
        if not need(10):
            return None
        n, off = struct.unpack("!Q", c.buf[2:10])[0], 10
    if not need(off + n):
        return None
    payload = bytes(c.buf[off:off + n])
    c.buf = c.buf[off + n:]
    return b0 & 0x0F, payload


def read_close(c, timeout=5):
    """The close code the proxy sent, skipping data and pings."""
    while True:
        f = read_frame(c, timeout)
        if f is None:
            return None
        if f[0] == 8:
            return struct.unpack("!H", f[1][:2])[0] if len(f[1]) >= 2 else 1005


# ---- tests ----

def test_ws01_echo_text_binary_fragments_big_ping_and_close():
    b = WSBackend()
    p = ws_proxy(b)
    try:
        async def go():
            async with connect(p) as ws:
                await ws.send("hello")
                assert_eq(await ws.recv(), "hello")
                await ws.send(bytes(range(256)))
                assert_eq(await ws.recv(), bytes(range(256)))
                await ws.send(["frag", "mented", " text"])    # one message, three frames
                assert_eq(await ws.recv(), "fragmented text")
                big = os.urandom(1 << 20)   # 1 MiB, incompressible, no compression
                await ws.send(big)
                assert (await ws.recv()) == big
                await ws.send("")
                assert_eq(await ws.recv(), "")
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, 5)
                hdr = ws.response_headers
            return ws.close_code, hdr
        code, hdr = arun(go())
        assert_eq(code, 1000)
        assert hdr.get("X-Request-Id")
        wait_for(lambda: tunnel_lines(p), 5, "the tunnel's access line")
        line = tunnel_lines(p)[0]
        assert_eq((line["status"], line["ws_close_code"], line["ws_closed_by"]), (101, 1000, "client"))
        assert_eq((line["ws_messages_in"], line["ws_messages_out"]), (5, 5))
        assert line["bytes_in"] > (1 << 20), line
        assert line["bytes_out"] > (1 << 20), line
        wait_for(lambda: b.closes == [1000], 5, "the backend's close")
        # The backend saw the upgrade, and no extension the client did not offer.
        h = b.headers[0]
        assert_eq((h.get("upgrade"), h.get("sec-websocket-version")), ("websocket", "13"))
        assert "sec-websocket-extensions" not in h, h
        assert_eq(b.paths, ["/chat"])
    finally:
        p.stop()
        b.close()


def test_ws02_permessage_deflate_passes_with_rsv1():
    b = WSBackend()
    p = ws_proxy(b)
    try:
        async def go():
            async with connect(p, compression="deflate") as ws:
                msg = "compress me " * 50000
                await ws.send(msg)
                assert_eq(await ws.recv(), msg)
                return ws.response_headers.get("Sec-WebSocket-Extensions")
        ext = arun(go())
        assert ext is not None and ext.startswith("permessage-deflate"), ext
        wait_for(lambda: tunnel_lines(p), 5, "the tunnel's access line")
        # Compressed on the wire: far fewer bytes than the text.
        assert tunnel_lines(p)[0]["bytes_in"] < 100000, tunnel_lines(p)[0]
    finally:
        p.stop()
        b.close()


def test_ws03_close_started_by_the_backend():
    async def closer(ws):
        m = await ws.recv()
        await ws.send("bye " + m)
        await ws.close(4000, "done here")
    b = WSBackend(closer)
    p = ws_proxy(b)
    try:
        async def go():
            async with connect(p) as ws:
                await ws.send("x")
                assert_eq(await ws.recv(), "bye x")
                try:
                    await ws.recv()
                except websockets.ConnectionClosed:
                    pass
                return ws.close_code, ws.close_reason
        assert_eq(arun(go()), (4000, "done here"))
        wait_for(lambda: tunnel_lines(p), 5, "the tunnel's access line")
        line = tunnel_lines(p)[0]
        assert_eq((line["ws_close_code"], line["ws_closed_by"]), (4000, "backend"))
        assert_eq(b.closes, [4000])
    finally:
        p.stop()
        b.close()


def test_ws04_oversize_message_1009():
    b = WSBackend()
    p = ws_proxy(b, websocket={"max_message_bytes": 1000})
    try:
        async def go():
            async with connect(p) as ws:
                await ws.send("a" * 1000)   # at the limit: fine
                assert_eq(len(await ws.recv()), 1000)
                await ws.send(["b" * 600, "b" * 600])   # 1200 in two frames
                try:
                    await ws.recv()
                except websockets.ConnectionClosed:
                    pass
                return ws.close_code
        assert_eq(arun(go()), 1009)
        wait_for(lambda: tunnel_lines(p), 5, "the tunnel's access line")
        line = tunnel_lines(p)[0]
        assert_eq((line["ws_close_code"], line["ws_closed_by"], line["error"]),
                  (1009, "proxy", "websocket_message_too_big"))
        wait_for(lambda: b.closes, 5, "the backend's close")
        assert_eq(b.closes, [1001])
    finally:
        p.stop()
        b.close()


def test_ws05_invalid_frames_1002_and_bad_utf8_1007():
    b = WSBackend()
    p = ws_proxy(b)
    try:
        cases = [
            ("unmasked", frame(1, b"hi", mask=False), 1002),
            ("reserved bit", frame(1, b"hi", rsv=4), 1002),
            ("unknown opcode", frame(3, b"hi"), 1002),
            ("continuation first", frame(0, b"hi"), 1002),
            ("fragmented ping", frame(9, b"hi", fin=False), 1002),
            ("invalid UTF-8", frame(1, b"\xc3\x28"), 1007),
        ]
        for name, data, want in cases:
            s, c, r = raw_handshake(p)
            assert_eq((name, r[1]), (name, 101))
            s.sendall(frame(1, b"ok"))
            assert_eq(read_frame(c), (1, b"ok"))
            s.sendall(data)
            assert_eq((name, read_close(c)), (name, want))
            s.close()
        wait_for(lambda: len(tunnel_lines(p)) == len(cases), 5, "every access line")
        errors = [l["error"] for l in tunnel_lines(p)]
        assert_eq(sorted(set(errors)), ["websocket_invalid_utf8", "websocket_protocol_error"])
    finally:
        p.stop()
        b.close()


def test_ws06_handshake_errors_and_other_routes():
    plain = Backend(lambda req, ci, s: response(200, ("upgrade=%s" % req.header("upgrade")).encode()))
    b = WSBackend()
    cfg = {"upstreams": {"ws": {"backends": [{"address": b.addr}]},
                         "plain": {"backends": [{"address": plain.addr}]}},
           "routes": [{"path_prefix": "/ws/", "upstream": "ws", "websocket": True},
                      {"path_prefix": "/", "upstream": "plain"}]}
    p = Proxy(cfg)
    key = base64.b64encode(os.urandom(16)).decode()

    def ask(path, hdrs, method="GET", version="1.1"):
        s = p.connect()
        s.sendall(("%s %s HTTP/%s\r\nHost: a\r\n%s\r\n" % (method, path, version, hdrs)).encode())
        r = Client(s).read_response()
        s.close()
        return r
    up = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    try:
        r = ask("/ws/a", up + "Sec-WebSocket-Version: 13\r\n")
        assert_eq(r.status, 400)
        assert b"error: bad_websocket_handshake" in r.body, r.body
        r = ask("/ws/a", up + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n")
        assert_eq(r.status, 400)
        r = ask("/ws/a", up + "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: %s\r\n" % key)
        assert_eq((r.status, r.header("sec-websocket-version")), (426, "13"))
        assert b"error: websocket_version" in r.body, r.body
        r = ask("/ws/a", up + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n"
                "Content-Length: 0\r\n" % key, method="POST")
        assert_eq(r.status, 400)
        r = ask("/ws/a", "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: %s\r\n" % key)
        assert_eq(r.status, 400)   # no Connection: upgrade
        assert_eq(b.headers, [])   # none reached the backend
        # Another route: Upgrade stripped, a plain request.
        r = ask("/other", up + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n" % key)
        assert_eq((r.status, r.body), (200, b"upgrade=None"))
        # A WebSocket route without an upgrade: plain HTTP too.
        r = ask("/ws/plain", "")
        assert r.status in (400, 426), r.status   # the echo server refuses plain HTTP
    finally:
        p.stop()
        b.close()
        plain.close()


def test_ws07_backend_refuses_or_answers_badly():
    state = {"mode": "refuse"}

    def handler(req, ci, s):
        key = req.header("sec-websocket-key") or ""
        if state["mode"] == "refuse":
            return response(403, b"no tunnel for you")
        acc = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if state["mode"] == "bad accept":
            acc = base64.b64encode(b"x" * 20).decode()
        ext = "Sec-WebSocket-Extensions: x-custom\r\n" if state["mode"] == "bad ext" else ""
        s.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n" % (acc, ext)).encode())
        return "keep"
    be = Backend(handler)
    p = ws_proxy(be)
    try:
        # Refused: relayed as it is, and the connection stays HTTP.
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        s.sendall(b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        c = Client(s)
        r = c.read_response()
        assert_eq((r.status, r.body), (403, b"no tunnel for you"))
        s.sendall(request_bytes("/again"))
        assert_eq(c.read_response().status, 403)
        s.close()
        for mode in ("bad accept", "bad ext"):
            state["mode"] = mode
            s, c, r = raw_handshake(p)
            assert_eq((mode, r[1]), (mode, 502))
            s.close()
        wait_for(lambda: len(access_lines(p)) >= 4, 5, "the access lines")
        errs = [l.get("error") for l in access_lines(p)]
        assert_eq(errs.count("upstream_bad_handshake"), 2, access_lines(p))
    finally:
        p.stop()
        be.close()


def test_ws08_drain_sends_1001_to_both_sides():
    b = WSBackend()
    p = ws_proxy(b, timeouts={"shutdown_drain_ms": 10000})
    try:
        async def go():
            async with connect(p) as ws:
                await ws.send("before")
                assert_eq(await ws.recv(), "before")
                t0 = time.time()
                p.proc.send_signal(signal.SIGTERM)
                try:
                    await ws.recv()
                except websockets.ConnectionClosed:
                    pass
                return ws.close_code, ws.close_reason, time.time() - t0
        code, reason, took = arun(go())
        assert_eq((code, reason), (1001, "going away"))
        assert took < 1.5, took
        p.proc.wait(5)
        assert_eq(p.proc.returncode, 0)
        wait_for(lambda: b.closes, 5, "the backend's close")
        assert_eq(b.closes, [1001])
        line = tunnel_lines(p)[0]
        assert_eq((line["ws_close_code"], line["ws_closed_by"], line["error"]),
                  (1001, "proxy", "shutdown"))
    finally:
        p.stop()
        b.close()


def test_ws09_reload_keeps_the_tunnel():
    b, b2 = WSBackend(), WSBackend()
    aport = free_port()
    p = ws_proxy(b, admin={"address": "127.0.0.1:%d" % aport})
    try:
        async def go():
            async with connect(p) as ws:
                await ws.send("one")
                assert_eq(await ws.recv(), "one")
                cfg = dict(p.config)
                cfg["upstreams"] = {"ws": {"backends": [{"address": b2.addr}]}}
                with open(p.config_path, "w") as f:
                    json.dump(cfg, f)
                p.proc.send_signal(signal.SIGHUP)
                await asyncio.sleep(0.5)
                await ws.send("two")
                assert_eq(await ws.recv(), "two")
                # A new tunnel goes to the new backend.
                async with connect(p) as ws2:
                    await ws2.send("three")
                    assert_eq(await ws2.recv(), "three")
            return True
        arun(go())
        wait_for(lambda: len(tunnel_lines(p)) == 2, 5, "two access lines")
        assert_eq(len(b.headers), 1)
        assert_eq(len(b2.headers), 1)
        gens = sorted(l["config_generation"] for l in tunnel_lines(p))
        assert_eq(gens, [1, 2])
    finally:
        p.stop()
        b.close()
        b2.close()


def test_ws10_idle_client_is_pinged_then_closed():
    b = WSBackend()
    p = ws_proxy(b, websocket={"idle_timeout_ms": 1000})
    try:
        # A client that answers pings stays.
        async def live():
            async with connect(p) as ws:
                await asyncio.sleep(2.5)
                await ws.send("still here")
                assert_eq(await ws.recv(), "still here")
            return ws.close_code
        assert_eq(arun(live()), 1000)
        # A raw client that never answers: closed with 1001 once idle.
        s, c, r = raw_handshake(p)
        assert_eq(r[1], 101)
        t0 = time.time()
        f = read_frame(c)
        assert_eq(f[0], 9)   # a ping at half the timeout
        code = read_close(c)
        took = time.time() - t0
        assert_eq(code, 1001)
        assert 0.6 < took < 3, took
        s.close()
        wait_for(lambda: len(tunnel_lines(p)) == 2, 5, "the access lines")
        assert_eq(tunnel_lines(p)[1]["error"], "websocket_idle_timeout")
    finally:
        p.stop()
        b.close()


def test_ws11_metrics():
    b = WSBackend()
    aport = free_port()
    p = ws_proxy(b, admin={"address": "127.0.0.1:%d" % aport})
    try:
        def backend_stats():
            s = socket.create_connection(("127.0.0.1", aport), timeout=5)
            s.sendall(b"GET /stats HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            st = json.loads(Client(s).read_response().body)
            s.close()
            return st["upstreams"]["ws"]["backends"][0]

        async def go():
            async with connect(p) as ws:
                for i in range(3):
                    await ws.send("m%d" % i)
                    await ws.recv()
                # An open tunnel is work at its backend (least_conn sees it).
                be = backend_stats()
                assert_eq((be["active_requests"], be["connections"]["active"]), (1, 1))
            return True
        arun(go())
        wait_for(lambda: backend_stats()["active_requests"] == 0, 5, "the tunnel to end")
        wait_for(lambda: tunnel_lines(p), 5, "the access line")
        s = socket.create_connection(("127.0.0.1", aport), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        text = Client(s).read_response().body.decode()
        s.close()
        for want in ('revproxy_websocket_tunnels_total 1',
                     'revproxy_websocket_tunnels_open 0',
                     'revproxy_websocket_messages_total{direction="client_to_backend"} 3',
                     'revproxy_websocket_messages_total{direction="backend_to_client"} 3',
                     'revproxy_websocket_closes_total{code="1000"} 1'):
            assert want in text, (want, [l for l in text.split("\n") if "websocket" in l])
    finally:
        p.stop()
        b.close()



def test_ws12_a_thousand_tunnels():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    n = 1000
    b = WSBackend()
    p = ws_proxy(b, workers=1)
    try:
        async def go():
            socks = []
            base = p.rss_kb()
            for i in range(0, n, 100):
                socks += await asyncio.gather(*[websockets.connect(
                    "ws://127.0.0.1:%d/t%d" % (p.port, i + k), compression=None,
                    ping_interval=None, open_timeout=30) for k in range(100)])
            for ws in socks[::50]:
                await ws.send("alive")
                assert_eq(await ws.recv(), "alive")
            held = p.rss_kb()
            await asyncio.gather(*[ws.close() for ws in socks])
            return base, held
        base, held = arun(go(), timeout=120)
        per = (held - base) / n
        print("    %d tunnels open at once: RSS %d KiB -> %d KiB, %.1f KiB per tunnel"
              % (n, base, held, per))
        assert per < 64, per
        wait_for(lambda: len(tunnel_lines(p)) == n, 30, "every access line")
        codes = {l["ws_close_code"] for l in tunnel_lines(p)}
        assert_eq(codes, {1000})
    finally:
        p.stop()
        b.close()


def flooder(chunk, count):
    """A backend handler: count binary messages of chunk at once, then
    wait for the client's close."""
    async def flood(ws):
        for _ in range(count):
            await ws.send(chunk)
        await ws.recv()   # until the client closes
    return flood


def test_ws13_slow_reader_bounds_memory():
    """A backend that sends 32 MiB to a client that does not read: the
    proxy stops reading the backend (watermarks), its memory stays flat,
    and every byte arrives once the client reads."""
    chunk = os.urandom(65536)
    count = 512
    b = WSBackend(flooder(chunk, count))
    p = ws_proxy(b)
    try:
        s, c, r = raw_handshake(p)
        assert_eq(r[1], 101)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        base = p.rss_kb()
        time.sleep(2)
        grown = p.rss_kb() - base
        got = 0
        while got < count * len(chunk):
            f = read_frame(c, timeout=10)
            assert f is not None and f[0] in (0, 2), f
            got += len(f[1])
        assert_eq(got, count * len(chunk))
        s.sendall(frame(8, struct.pack("!H", 1000)))
        assert_eq(read_close(c), 1000)
        s.close()
        print("    32 MiB to a client not reading: proxy RSS grew %d KiB" % grown)
        assert grown < 8 * 1024, grown
    finally:
        p.stop()
        b.close()

class H2Tunnel:
    """RFC 8441 over one HTTP/2 connection (python3-h2): an extended
    CONNECT stream carrying WebSocket frames."""

    def __init__(self, sock):
        import h2.config
        import h2.connection
        self.sock = sock
        cfg = h2.config.H2Configuration(client_side=True, validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.data, self.headers, self.ended, self.reset = {}, {}, set(), {}
        self.settings = {}
        # The server's SETTINGS first: :protocol needs ENABLE_CONNECT_PROTOCOL.
        while 0x8 not in self.settings:
            self.pump()

    def pump(self, timeout=5, size=65536):
        import h2.events
        self.sock.settimeout(timeout)
        d = self.sock.recv(size)
        if not d:
            raise EOFError("connection closed")
        for ev in self.conn.receive_data(d):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                for k, v in ev.changed_settings.items():
                    self.settings[int(k)] = v.new_value
            elif isinstance(ev, h2.events.ResponseReceived):
                self.headers[ev.stream_id] = dict((k.decode() if isinstance(k, bytes) else k,
                                                   v.decode() if isinstance(v, bytes) else v)
                                                  for k, v in ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                self.data[ev.stream_id] = self.data.get(ev.stream_id, b"") + ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.ended.add(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self.reset[ev.stream_id] = ev.error_code
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def open(self, sid, path="/chat", protocol="websocket", extra=(), version="13"):
        hdrs = [(":method", "CONNECT"), (":protocol", protocol), (":scheme", "https"),
                (":path", path), (":authority", "a.example"), ("sec-websocket-version", version)]
        self.conn.send_headers(sid, hdrs + list(extra), end_stream=False)
        self.sock.sendall(self.conn.data_to_send())
        while sid not in self.headers and sid not in self.reset:
            self.pump()
        return self.headers.get(sid)

    def send(self, sid, data, end=False):
        while data:
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room <= 0:
                self.pump()
                continue
            self.conn.send_data(sid, data[:room])
            data = data[room:]
            self.sock.sendall(self.conn.data_to_send())
        if end:
            self.conn.send_data(sid, b"", end_stream=True)
            self.sock.sendall(self.conn.data_to_send())

    def message(self, sid, timeout=5):
        """The next whole message (opcode, payload): its frames joined."""
        op, data = self.frame(sid, timeout)
        fin = self.last_fin
        while not fin:
            f = self.frame(sid, timeout)
            assert f[0] == 0, f[0]
            data += f[1]
            fin = self.last_fin
        return op, data

    def frame(self, sid, timeout=5):
        """The next WebSocket frame the proxy sent on stream sid."""
        while True:
            buf = self.data.get(sid, b"")
            if len(buf) >= 2:
                n, off = buf[1] & 0x7F, 2
                if n == 126 and len(buf) >= 4:
                    n, off = struct.unpack("!H", buf[2:4])[0], 4
                elif n == 127 and len(buf) >= 10:
                    n, off = struct.unpack("!Q", buf[2:10])[0], 10
                if n < 126 or off > 2:
                    if len(buf) >= off + n:
                        assert not buf[1] & 0x80, "masked frame towards the client"
                        self.data[sid] = buf[off + n:]
                        self.last_fin = bool(buf[0] & 0x80)
                        return buf[0] & 0x0F, buf[off:off + n]
            if sid in self.ended or sid in self.reset:
                return None
            self.pump(timeout)


def h2_tunnel_roundtrip(t, sid, p, b):
    h = t.open(sid)
    assert_eq(h.get(":status"), "200")
    assert "sec-websocket-accept" not in h, h
    t.send(sid, frame(1, b"over h2"))
    assert_eq(t.frame(sid), (1, b"over h2"))
    big = os.urandom(200000)
    t.send(sid, frame(2, big))
    op, got = t.message(sid)
    assert op == 2 and got == big, (op, len(got))
    t.send(sid, frame(8, struct.pack("!H", 1000) + b"bye"))
    f = t.frame(sid)
    assert_eq((f[0], struct.unpack("!H", f[1][:2])[0]), (8, 1000))
    # The closing handshake done, the proxy ends the stream.
    while sid not in t.ended and sid not in t.reset:
        t.pump()
    assert_eq(t.reset.get(sid, 0), 0)   # NO_ERROR, if reset at all


def test_ws14_rfc8441_over_h2c():
    b = WSBackend()
    p = ws_proxy(b)
    try:
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        t = H2Tunnel(s)
        assert_eq(t.settings.get(0x8), 1)   # SETTINGS_ENABLE_CONNECT_PROTOCOL
        h2_tunnel_roundtrip(t, 1, p, b)
        # Two tunnels on one connection, and a plain request between.
        h2_tunnel_roundtrip(t, 3, p, b)
        # Another :protocol: refused.
        h = t.open(5, protocol="chat")
        assert_eq(h.get(":status"), "400")
        s.close()
        wait_for(lambda: len(tunnel_lines(p)) == 2, 5, "the tunnels' access lines")
        for l in tunnel_lines(p):
            assert_eq((l["protocol"], l["status"], l["ws_close_code"], l["ws_closed_by"]),
                      ("HTTP/2", 101, 1000, "client"))
        # The backend saw an HTTP/1.1 upgrade with a key of the proxy's.
        assert_eq(len(b.headers), 2)
        for h in b.headers:
            assert_eq((h.get("upgrade"), h.get("sec-websocket-version")), ("websocket", "13"))
            assert len(base64.b64decode(h["sec-websocket-key"])) == 16, h
    finally:
        p.stop()
        b.close()


def test_ws15_rfc8441_over_tls_and_wss():
    import ssl
    from test_tls import make_certs
    c = make_certs()
    b = WSBackend()
    tport, plain = free_port(), free_port()
    p = ws_proxy(b, port=plain, listeners=[
        {"address": "127.0.0.1:%d" % plain},
        {"address": "127.0.0.1:%d" % tport, "tls": {"certificates": [
            {"cert": c["default"][0], "key": c["default"][1]}]}}])
    try:
        ctx = ssl.create_default_context(cafile=c["ca"])
        ctx.check_hostname = False
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", tport), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="default.example")
        assert_eq(s.selected_alpn_protocol(), "h2")
        t = H2Tunnel(s)
        h2_tunnel_roundtrip(t, 1, p, b)
        s.close()
        # wss: HTTP/1.1 over TLS.
        ctx1 = ssl.create_default_context(cafile=c["ca"])
        ctx1.check_hostname = False

        async def go():
            async with websockets.connect("wss://127.0.0.1:%d/secure" % tport, ssl=ctx1,
                                          compression=None, ping_interval=None) as ws:
                await ws.send("tls")
                return await ws.recv()
        assert_eq(arun(go()), "tls")
        wait_for(lambda: len(tunnel_lines(p)) == 2, 5, "the access lines")
    finally:
        p.stop()
        b.close()


def test_ws16_h2_drain_closes_tunnel_with_1001():
    b = WSBackend()
    p = ws_proxy(b)
    try:
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        t = H2Tunnel(s)
        assert_eq(t.open(1).get(":status"), "200")
        t.send(1, frame(1, b"x"))
        assert_eq(t.frame(1), (1, b"x"))
        p.proc.send_signal(signal.SIGTERM)
        # python3-h2 cannot follow a graceful GOAWAY (it refuses the PING
        # behind the notice): the Close is looked for in the raw bytes.
        raw, deadline = b"", time.time() + 5
        while b"\x88\x0c\x03\xe9going away" not in raw and time.time() < deadline:
            d = s.recv(65536)
            if not d:
                break
            raw += d
        assert b"\x88\x0c\x03\xe9going away" in raw, raw[-200:]
        p.proc.wait(5)
        assert_eq(p.proc.returncode, 0)
        wait_for(lambda: b.closes, 5, "the backend's close")
        assert_eq(b.closes, [1001])
    finally:
        p.stop()
        b.close()

def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def send_101(sock, req):
    """A scripted backend's valid 101 for req."""
    sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                  % accept_for(req.header("sec-websocket-key"))).encode())


class Sink(WSBackend):
    """A backend that reads and never answers; it records what it got."""

    def __init__(self):
        self.got = []

        async def sink(ws):
            async for m in ws:
                self.got.append(m)
        super().__init__(sink)


def test_ws17_ping_flood_is_bounded():
    b = WSBackend()
    p = ws_proxy(b)
    try:
        s, c, r = raw_handshake(p)
        assert_eq(r[1], 101)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.setblocking(False)
        base = p.rss_kb()
        ping = frame(9, b"p" * 125)
        burst = ping * 512
        sent, end, pending = 0, time.time() + 2, b""
        while time.time() < end:
            if not pending:
                pending = burst
            try:
                n = s.send(pending)   # whole frames only, in order
                pending = pending[n:]
                sent += n
            except BlockingIOError:
                time.sleep(0.01)
        grown = p.rss_kb() - base
        s.close()
        print("    %d MiB of pings, never read: proxy RSS grew %d KiB" % (sent >> 20, grown))
        assert grown < 16 * 1024, grown
        assert sent > (2 << 20), sent   # the proxy read a good deal before stopping
    finally:
        p.stop()
        b.close()


def raw_ws_backend(record):
    """A backend that answers the upgrade, then only reads: record gets
    each frame it receives (opcode, payload) and when."""
    def handler(req, ci, sock):
        send_101(sock, req)
        buf = b""
        sock.settimeout(5)
        while True:
            try:
                d = sock.recv(65536)
            except OSError:
                d = b""
            if not d:
                record.append(("eof", b"", time.time()))
                return None
            buf += d
            while len(buf) >= 6:
                n, off = buf[1] & 0x7F, 2
                if n >= 126:
                    break   # small frames only here
                if len(buf) < off + 4 + n:
                    break
                key = buf[off:off + 4]
                payload = bytes(x ^ key[i % 4] for i, x in enumerate(buf[off + 4:off + 4 + n]))
                record.append((buf[0] & 0x0F, payload, time.time()))
                buf = buf[off + 4 + n:]
    return Backend(handler)


def test_ws18_close_right_behind_the_last_message():
    got = []
    be = raw_ws_backend(got)
    p = ws_proxy(be)
    try:
        s, c, r = raw_handshake(p)
        assert_eq(r[1], 101)
        t0 = time.time()
        s.sendall(frame(1, b"last") + frame(8, struct.pack("!H", 1000) + b"done"))
        wait_for(lambda: any(g[0] == 8 for g in got), 3, "the Close at the backend")
        close = next(g for g in got if g[0] == 8)
        assert_eq([g[:2] for g in got[:2]], [(1, b"last"), (8, struct.pack("!H", 1000) + b"done")])
        # At once, not at the closing deadline (RP_WS_CLOSE_MS).
        assert close[2] - t0 < 0.5, close[2] - t0
        s.close()
    finally:
        p.stop()
        be.close()


def test_ws19_many_tiny_messages_reach_a_silent_backend():
    b = Sink()
    p = ws_proxy(b)
    try:
        s, c, r = raw_handshake(p)
        assert_eq(r[1], 101)
        n = 20000
        s.sendall(b"".join(frame(2, b"x") for _ in range(n)))
        wait_for(lambda: len(b.got) == n, 15, "%d messages at the backend" % n)
        s.sendall(frame(8, struct.pack("!H", 1000)))
        assert_eq(read_close(c), 1000)
        s.close()
    finally:
        p.stop()
        b.close()


def test_ws20_upgrade_answered_during_a_drain_gets_1001():
    def slow_101(req, ci, sock):
        time.sleep(0.6)
        send_101(sock, req)
        try:
            sock.settimeout(5)
            while sock.recv(4096):
                pass
        except OSError:
            pass
        return None
    be = Backend(slow_101)
    p = ws_proxy(be, timeouts={"shutdown_drain_ms": 20000})
    try:
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        s.sendall(b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        time.sleep(0.2)
        t0 = time.time()
        p.proc.send_signal(signal.SIGTERM)
        c = Client(s)
        assert_eq(c.read_head()[1], 101)
        assert_eq(read_close(c), 1001)
        s.close()
        p.proc.wait(5)
        assert time.time() - t0 < 3, time.time() - t0
        assert_eq(p.proc.returncode, 0)
    finally:
        p.stop()
        be.close()


def test_ws21_backend_data_close_and_fin_reach_a_slow_client():
    size = 16 << 20

    def burst(req, ci, sock):
        send_101(sock, req)
        chunk = b"d" * 65536
        for _ in range(size // len(chunk)):
            sock.sendall(frame(2, chunk, mask=False))
        sock.sendall(frame(8, struct.pack("!H", 1000) + b"all sent", mask=False))
        return None   # then FIN at once
    be = Backend(burst)
    p = ws_proxy(be)
    try:
        s, c, r = raw_handshake(p)
        assert_eq(r[1], 101)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        time.sleep(1)   # the backend is gone by now; its bytes wait in the proxy
        got, close = 0, None
        while True:
            f = read_frame(c, timeout=10)
            assert f is not None, "ended after %d bytes" % got
            if f[0] == 8:
                close = f[1]
                break
            got += len(f[1])
        assert_eq(got, size)
        assert_eq(close, struct.pack("!H", 1000) + b"all sent")
        s.close()
    finally:
        p.stop()
        be.close()


def test_ws22_extension_offers_in_any_order():
    b = WSBackend()   # accepts permessage-deflate
    p = ws_proxy(b)
    try:
        for offer in ("x-webkit-deflate-frame, permessage-deflate",
                      "permessage-deflate,x-foo",
                      "permessage-deflate, permessage-deflate; client_max_window_bits"):
            s, c, r = raw_handshake(p, extra="Sec-WebSocket-Extensions: %s\r\n" % offer)
            assert_eq((offer, r[1]), (offer, 101))
            ext = dict((k.lower(), v) for k, v in r[3]).get("sec-websocket-extensions", "")
            assert ext.startswith("permessage-deflate"), (offer, ext)
            s.close()
        # What the backend was offered: permessage-deflate only.
        for h in b.headers:
            assert "x-" not in h["sec-websocket-extensions"], h
    finally:
        p.stop()
        b.close()


def test_ws23_one_close_frame_only():
    async def closer(ws):
        await ws.close(4000, "bye")
    b = WSBackend(closer)
    p = ws_proxy(b)
    try:
        s, c, r = raw_handshake(p)
        assert_eq(r[1], 101)
        f = read_frame(c)
        assert_eq((f[0], struct.unpack("!H", f[1][:2])[0]), (8, 4000))
        s.sendall(frame(9, b"x", fin=False))   # a fragmented ping after it
        closes = 0
        while True:
            f = read_frame(c, timeout=3)
            if f is None:
                break
            closes += f[0] == 8
        assert_eq(closes, 0)
        s.close()
    finally:
        p.stop()
        b.close()


def test_ws24_a_slow_frame_is_not_idle():
    b = WSBackend()
    p = ws_proxy(b, websocket={"idle_timeout_ms": 1000})
    try:
        s, c, r = raw_handshake(p)
        assert_eq(r[1], 101)
        data = frame(2, b"t" * 3000)
        for i in range(0, len(data), 100):
            s.sendall(data[i:i + 100])
            time.sleep(0.1)   # 3 s for the frame, 0.1 s between bytes
        assert_eq(read_frame(c), (2, b"t" * 3000))
        s.close()
    finally:
        p.stop()
        b.close()


def test_ws25_stop_with_output_pending_frees_everything():
    async def flood(ws):
        chunk = b"f" * 65536
        while True:
            await ws.send(chunk)
    b = WSBackend(flood)
    p = ws_proxy(b)
    try:
        s, c, r = raw_handshake(p)
        assert_eq(r[1], 101)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        time.sleep(0.5)
        p.proc.send_signal(signal.SIGQUIT)
        p.proc.wait(10)
        # Under the sanitizers, a leak at exit fails the process.
        assert_eq(p.proc.returncode, 0)
        s.close()
    finally:
        p.stop()
        b.close()

def test_ws26_h2_handshake_edges():
    """HTTP/2: a 2xx without a switch is 502 (never a tunnel the client
    believes open); 426 carries sec-websocket-version; a slow 101 is not a
    body timeout; END_STREAM right with the CONNECT reaches the backend as
    a Close at once."""
    mode = {"m": "200"}
    got = []

    def handler(req, ci, sock):
        if mode["m"] == "200":
            return response(200, b"<html>not a websocket</html>")
        if mode["m"] == "slow":
            time.sleep(1.2)
        return raw_handler(req, ci, sock)
    raw_handler = raw_ws_backend(got).handler
    be = Backend(handler)
    p = ws_proxy(be, timeouts={"client_idle_ms": 500, "upstream_response_ms": 5000})
    try:
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        t = H2Tunnel(s)
        assert_eq(t.open(1).get(":status"), "502")
        h = t.open(3, version="8")
        assert_eq((h.get(":status"), h.get("sec-websocket-version")), ("426", "13"))
        mode["m"] = "slow"
        assert_eq(t.open(5).get(":status"), "200")
        t.send(5, frame(1, b"after a slow 101"))
        wait_for(lambda: any(g[1] == b"after a slow 101" for g in got), 5, "the message")
        # END_STREAM with the CONNECT head: the backend gets a Close soon.
        mode["m"] = "fast"
        del got[:]
        hdrs = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
                (":path", "/x"), (":authority", "a.example"), ("sec-websocket-version", "13")]
        t.conn.send_headers(7, hdrs, end_stream=True)
        t.sock.sendall(t.conn.data_to_send())
        t0 = time.time()
        wait_for(lambda: any(g[0] == 8 for g in got), 3, "the backend's Close")
        assert time.time() - t0 < 2, time.time() - t0
        s.close()
    finally:
        p.stop()
        be.close()

def small_buffer_tunnel(p):
    """An RFC 8441 tunnel (stream 1) on a connection with a 4 KiB receive
    buffer and flow-control windows wide open: the socket is all that
    holds the proxy back."""
    import h2.settings
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", p.port))
    t = H2Tunnel(s)
    t.conn.increment_flow_control_window((1 << 31) - 1 - 65535)
    t.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (1 << 31) - 1})
    s.sendall(t.conn.data_to_send())
    assert_eq(t.open(1).get(":status"), "200")
    return s, t


def test_ws27_tunnels_are_not_held_to_the_minimum_rate():
    """timeouts.client_min_bytes_per_s applies to requests and responses,
    not to tunnels (their idle timeout bounds them): a client that reads
    4 MiB of messages at 4 KB/s for 12 s through a small buffer, over
    HTTP/1 and over HTTP/2, keeps its tunnel and then gets every byte."""
    chunk = os.urandom(65536)
    count = 64
    b = WSBackend(flooder(chunk, count))
    p = ws_proxy(b, timeouts={"client_min_bytes_per_s": 100000, "client_idle_ms": 60000})
    result = {}

    def over_h1():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect(("127.0.0.1", p.port))
        s.sendall(b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(1)
        got = 0
        t0 = time.time()
        while time.time() - t0 < 12:
            got += len(s.recv(2000))
            time.sleep(0.5)
        # Frame heads towards the client add at least 4 bytes a message.
        while got < count * (len(chunk) + 4):
            d = s.recv(1 << 20)
            if not d:
                break
            got += len(d)
        result["h1"] = got
        s.close()

    def over_h2():
        s, t = small_buffer_tunnel(p)
        t0 = time.time()
        while time.time() - t0 < 12:
            t.pump(10, size=2000)
            time.sleep(0.5)
        while len(t.data.get(1, b"")) < count * (len(chunk) + 4):
            t.pump(10)
        result["h2"] = len(t.data.get(1, b""))
        s.close()
    try:
        ts = [threading.Thread(target=f) for f in (over_h1, over_h2)]
        for th in ts:
            th.start()
        for th in ts:
            th.join(40)
        assert_eq(sorted(result), ["h1", "h2"])
        assert min(result.values()) >= count * (len(chunk) + 4), result
        assert not [l for l in access_lines(p) if l.get("error") == "client_too_slow"]
    finally:
        p.stop()
        b.close()


def cpu_ticks(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])   # utime + stime


def test_ws28_client_gone_while_its_side_waits():
    """A client whose output is full (so its own reading waits) vanishes
    mid-flood, over HTTP/2 (connection closed) and over HTTP/1 (reset):
    the tunnel ends, the backend gets 1001, and the worker does not spin
    on a side that can never read again."""
    import struct as st
    b = WSBackend(flooder(os.urandom(65536), 64))
    p = ws_proxy(b)
    try:
        s, t = small_buffer_tunnel(p)
        # A ping from the client whose pong cannot leave: its side waits.
        t.send(1, frame(9, b"p"))
        time.sleep(1)
        s.close()
        s, c, r = raw_handshake(p)
        assert_eq(r[1], 101)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(frame(9, b"p"))
        time.sleep(1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, st.pack("ii", 1, 0))
        s.close()
        wait_for(lambda: len(b.closes) == 2, 5, "both backend connections closed")
        assert_eq(b.closes, [1001, 1001])
        before = cpu_ticks(p.proc.pid)
        time.sleep(2)
        spent = cpu_ticks(p.proc.pid) - before
        assert spent < 50, "the worker spun: %d ticks in 2 s" % spent
        # And it still works.
        s, c, r = raw_handshake(p)
        assert_eq(r[1], 101)
        s.close()
    finally:
        p.stop()
        b.close()


def test_ws29_close_reason_not_utf8_sent_a_byte_at_a_time():
    """A Close whose reason is not UTF-8, sent a byte at a time (so no
    piece of it is checked by the frame parser as it arrives): the client
    gets 1007, the reason never reaches the backend, which is told 1001."""
    b = WSBackend()
    p = ws_proxy(b)
    try:
        s, c, r = raw_handshake(p)
        assert_eq(r[1], 101)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in frame(8, b"\x03\xe8\xff\xfe\xfd"):
            s.sendall(bytes([byte]))
            time.sleep(0.01)
        assert_eq(read_close(c), 1007)
        wait_for(lambda: len(b.closes) == 1, 5, "the backend connection closed")
        assert_eq(b.closes, [1001])
        s.close()
    finally:
        p.stop()
        b.close()


if __name__ == "__main__":
    sys.exit(run([test_ws01_echo_text_binary_fragments_big_ping_and_close,
                  test_ws02_permessage_deflate_passes_with_rsv1,
                  test_ws03_close_started_by_the_backend,
                  test_ws04_oversize_message_1009,
                  test_ws05_invalid_frames_1002_and_bad_utf8_1007,
                  test_ws06_handshake_errors_and_other_routes,
                  test_ws07_backend_refuses_or_answers_badly,
                  test_ws08_drain_sends_1001_to_both_sides,
                  test_ws09_reload_keeps_the_tunnel,
                  test_ws10_idle_client_is_pinged_then_closed,
                  test_ws11_metrics,
                  test_ws12_a_thousand_tunnels,
                  test_ws13_slow_reader_bounds_memory,
                  test_ws14_rfc8441_over_h2c,
                  test_ws15_rfc8441_over_tls_and_wss,
                  test_ws16_h2_drain_closes_tunnel_with_1001,
                  test_ws17_ping_flood_is_bounded,
                  test_ws18_close_right_behind_the_last_message,
                  test_ws19_many_tiny_messages_reach_a_silent_backend,
                  test_ws20_upgrade_answered_during_a_drain_gets_1001,
                  test_ws21_backend_data_close_and_fin_reach_a_slow_client,
                  test_ws22_extension_offers_in_any_order,
                  test_ws23_one_close_frame_only,
                  test_ws24_a_slow_frame_is_not_idle,
                  test_ws25_stop_with_output_pending_frees_everything,
                  test_ws26_h2_handshake_edges,
                  test_ws27_tunnels_are_not_held_to_the_minimum_rate,
                  test_ws28_client_gone_while_its_side_waits,
                  test_ws29_close_reason_not_utf8_sent_a_byte_at_a_time]))
