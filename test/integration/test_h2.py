# SPDX-License-Identifier: MIT
"""Integration tests for HTTP/2 from clients (prior-knowledge h2c on a plain
listener): mapping to HTTP/1.1 backends, flow control, abuse limits and
malformed requests.  Frame-level cases use python3-h2 on a raw socket;
curl, nghttp and h2load are the real clients."""
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.errors
import h2.settings
import hpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend, response, run  # noqa: E402
from test_proxy import setup, assert_eq, access_lines  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream_id, payload=b""):
    n = len(payload)
    return bytes([n >> 16, (n >> 8) & 0xFF, n & 0xFF, ftype, flags]) + stream_id.to_bytes(4, "big") + payload


DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 2, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


class H2:
    """A python3-h2 client on a raw socket to the proxy.  Validation of
    what we send is off, so tests can send what a hostile client would."""

    def __init__(self, proxy, window=16 << 20, rcvbuf=None):
        if rcvbuf:
            # Before connecting, so the window it offers stays small.
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(10)
            self.sock.connect(("127.0.0.1", proxy.port))
        else:
            self.sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cfg = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                        normalize_outbound_headers=False,
                                        validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        if window:
            self.conn.increment_flow_control_window(window)
        self.flush()
        self.events = []
        self.closed = False
        self.bodies = {}
        self.headers = {}
        self.ended = set()
        self.resets = {}
        self.goaway = None

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_headers(self, sid, headers, end=True):
        self.conn.send_headers(sid, headers, end_stream=end)
        self.flush()

    def request(self, path="/", method="GET", headers=None, body=None, authority="example.com",
                open_=False):
        """open_: the body follows later (the stream stays open)."""
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "http"), (":authority", authority)]
        hdrs += headers or []
        self.conn.send_headers(sid, hdrs, end_stream=body is None and not open_)
        self.flush()
        if body is not None:
            self.send_body(sid, body)
        return sid

    def send_body(self, sid, body):
        off = 0
        while off < len(body):
            win = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if win <= 0:
                self.pump(0.05)
                continue
            chunk = body[off:off + win]
            self.conn.send_data(sid, chunk)
            off += len(chunk)
            self.flush()
        self.conn.end_stream(sid)
        self.flush()

    def pump(self, timeout=5.0, ack=True, skip_ack=()):
        """Read and handle what arrives for up to timeout seconds (returns at
        the first read that brings nothing more within it)."""
        self.sock.settimeout(timeout if timeout > 0 else None)
        if timeout <= 0:
            self.sock.setblocking(False)
        try:
            data = self.sock.recv(1 << 20)
        except (socket.timeout, BlockingIOError):
            return False
        except OSError:
            data = b""
        finally:
            self.sock.settimeout(10)
        if not data:
            self.closed = True
            return False
        for ev in self.conn.receive_data(data):
            self.events.append(ev)
            if isinstance(ev, h2.events.ResponseReceived):
                self.headers[ev.stream_id] = dict((k.decode() if isinstance(k, bytes) else k,
                                                   v.decode() if isinstance(v, bytes) else v)
                                                  for k, v in ev.headers)
            elif isinstance(ev, h2.events.InformationalResponseReceived):
                pass
            elif isinstance(ev, h2.events.DataReceived):
                self.bodies.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                if ack and ev.stream_id not in skip_ack:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.ended.add(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self.resets[ev.stream_id] = ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev.error_code
        try:
            self.flush()
        except OSError:
            pass
        return True

    def wait(self, cond, timeout=10.0, **kw):
        deadline = time.time() + timeout
        while not cond():
            if time.time() > deadline:
                raise AssertionError("timed out waiting; events: %r" % self.events[-5:])
            if not self.pump(min(1.0, max(0.05, deadline - time.time())), **kw) and self.closed:
                break
        return cond()

    def done(self, sid):
        return sid in self.ended or sid in self.resets

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def split_frames(buf):
    """The whole frames at the start of buf as (type, flags, stream id,
    payload), and what is left."""
    frames = []
    while len(buf) >= 9:
        n = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + n:
            break
        frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + n]))
        buf = buf[9 + n:]
    return frames, buf


class RawH2:
    """Hand-built frames on a raw socket, for what python3-h2 refuses to
    produce (floods, bad header blocks)."""

    def __init__(self, proxy):
        self.sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.enc = hpack.Encoder()
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0))

    def block(self, headers):
        return self.enc.encode(headers)

    def send(self, data):
        self.sock.sendall(data)

    def read_frames(self, timeout=5.0, until=None):
        """Frames received until the connection closes, until(frames) is true
        or timeout passes; returns (frames, closed)."""
        buf = b""
        frames = []
        deadline = time.time() + timeout
        closed = False
        while time.time() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.time()))
            try:
                d = self.sock.recv(1 << 16)
            except socket.timeout:
                break
            except OSError:
                closed = True
                break
            if not d:
                closed = True
                break
            got, buf = split_frames(buf + d)
            frames += got
            if until is not None and until(frames):
                break
        return frames, closed

    def close(self):
        self.sock.close()


def opened_and_reset(enc, first_sid, count):
    """count GET streams from first_sid on, each opened and reset at once
    (Rapid Reset), as bytes to send."""
    out = b""
    for sid in range(first_sid, first_sid + 2 * count, 2):
        out += frame(HEADERS, END_STREAM | END_HEADERS, sid,
                     enc.encode([(":method", "GET"), (":path", "/rr"), (":scheme", "http"),
                                 (":authority", "a")]))
        out += frame(RST_STREAM, 0, sid, (8).to_bytes(4, "big"))
    return out


def goaway_code(frames):
    for t, _, _, p in frames:
        if t == GOAWAY:
            return int.from_bytes(p[4:8], "big")
    return None


def rst_code(frames, sid):
    for t, _, s, p in frames:
        if t == RST_STREAM and s == sid:
            return int.from_bytes(p[:4], "big")
    return None


def echo_handler(req, ci, s):
    return response(200, req.body, [("Content-Type", "application/octet-stream")])


# ---- mapping ----

def test_h01_curl_prior_knowledge():
    with setup() as (p, bs):
        out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-D", "-",
                              "-H", "X-Forwarded-For: 10.9.9.9",
                              "http://127.0.0.1:%d/hello?x=1" % p.port],
                             capture_output=True, timeout=20)
        text = out.stdout.decode("latin-1")
        assert text.startswith("HTTP/2 200"), text
        assert "x-request-id:" in text.lower(), text
        assert text.endswith("hello"), text
        req = bs[0].requests[0]
        assert_eq(req.request_line, "GET /hello?x=1 HTTP/1.1")
        assert_eq(req.header("host"), "127.0.0.1:%d" % p.port)
        assert_eq(req.header("x-forwarded-proto"), "http")
        assert_eq(req.header("x-forwarded-for"), "10.9.9.9, 127.0.0.1")
        assert req.header("te") is None
        time.sleep(0.2)
        a = access_lines(p)[-1]
        assert_eq(a["protocol"], "HTTP/2")
        assert_eq(a["status"], 200)


def test_h02_cookies_joined_and_fields_mapped():
    with setup() as (p, bs):
        c = H2(p)
        sid = c.request("/c", headers=[("cookie", "a=1"), ("x-one", "1"), ("cookie", "b=2"),
                                       ("te", "trailers")])
        c.wait(lambda: c.done(sid))
        assert_eq(c.headers[sid][":status"], "200")
        req = bs[0].requests[0]
        assert_eq(req.header_all("cookie"), ["a=1; b=2"])
        assert_eq(req.header("x-one"), "1")
        assert_eq(req.header("host"), "example.com")
        assert req.header("te") is None
        c.close()


def test_h03_response_mapping():
    def handler(req, ci, s):
        if req.target == "/head":
            return response(200, b"", [("Content-Length", "5"), ("Connection", "keep-alive, X-Hop"),
                                       ("X-Hop", "1"), ("Keep-Alive", "timeout=5"), ("X-End", "e")])
        if req.target == "/204":
            return response(204, b"")
        if req.target == "/304":
            return response(304, b"", [("ETag", '"x"')])
        if req.target == "/gzip-te":
            return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\nabc")
        if req.target == "/chunked":
            return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        return response(200, b"plain")
    with setup(handler) as (p, bs):
        c = H2(p)
        s1 = c.request("/head", method="HEAD")
        s2 = c.request("/204")
        s3 = c.request("/304")
        s4 = c.request("/chunked")
        c.wait(lambda: all(c.done(s) for s in (s1, s2, s3, s4)))
        h = c.headers[s1]
        assert_eq(h[":status"], "200")
        assert_eq(h.get("content-length"), "5")
        assert "x-hop" not in h and "connection" not in h and "keep-alive" not in h, h
        assert_eq(h.get("x-end"), "e")
        for s in (s1, s2, s3):
            assert s not in c.bodies, (s, c.bodies.get(s))
        assert_eq(c.headers[s2][":status"], "204")
        assert_eq(c.headers[s3][":status"], "304")
        assert_eq(bytes(c.bodies[s4]), b"abcde")
        assert "transfer-encoding" not in c.headers[s4]
        s5 = c.request("/gzip-te")
        c.wait(lambda: c.done(s5))
        assert_eq(c.headers[s5][":status"], "502")
        assert b"upstream_transfer_coding" in bytes(c.bodies[s5]), c.bodies[s5]
        c.close()


def test_h04_connect_405_and_unknown_method():
    with setup() as (p, bs):
        c = H2(p)
        sid = c.conn.get_next_available_stream_id()
        c.send_headers(sid, [(":method", "CONNECT"), (":authority", "example.com:443")], end=True)
        c.wait(lambda: c.done(sid))
        assert_eq(c.headers[sid][":status"], "405")
        s2 = c.request("/x", method="FROB")
        c.wait(lambda: c.done(s2))
        assert_eq(c.headers[s2][":status"], "400")
        assert_eq(len(bs[0].requests), 0)
        c.close()


def test_h05_upgrade_h2c_not_honoured():
    with setup() as (p, bs):
        s = p.connect()
        s.sendall(b"GET /u HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n")
        data = b""
        while b"hello" not in data:
            d = s.recv(65536)
            if not d:
                break
            data += d
        assert data.startswith(b"HTTP/1.1 200"), data
        req = bs[0].requests[0]
        assert req.header("upgrade") is None and req.header("http2-settings") is None, req.headers
        s.close()


# ---- bodies and flow control ----

class CBackend:
    """tools/rp-backend: a C origin fast enough for bulk transfers."""

    def __init__(self):
        from harness import free_port
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        exe = os.path.join(os.path.dirname(os.environ.get("REVPROXY") or os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "revproxy")), "..", "tools", "rp-backend")
        self.proc = subprocess.Popen([exe, "--listen", self.addr], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def close(self):
        self.proc.terminate()
        self.proc.wait(5)


def test_h06_hundred_streams_1mib_both_ways():
    # 100 streams opened at once on one connection, each uploading its own
    # 1 MiB; the backend (rp-backend /echo...) answers with the path and
    # the body, checksummed on arrival.
    b = CBackend()
    try:
        with setup(backends=[b], timeouts={"request_ms": 120000}) as (p, bs):
            c = H2(p, window=256 << 20)
            bodies = {}
            for i in range(100):
                body = os.urandom(1 << 20)
                sid = c.request("/echo/%d" % i, method="POST",
                                headers=[("content-length", str(len(body)))], open_=True)
                bodies[sid] = ("/echo/%d\n" % i).encode(), body
            offs = dict((s, 0) for s in bodies)
            while offs:
                sent = False
                for sid in list(offs):
                    body = bodies[sid][1]
                    win = c.conn.local_flow_control_window(sid)
                    while win > 0 and sid in offs:
                        n = min(win, c.conn.max_outbound_frame_size)
                        chunk = body[offs[sid]:offs[sid] + n]
                        end = offs[sid] + len(chunk) >= len(body)
                        c.conn.send_data(sid, chunk, end_stream=end)
                        offs[sid] += len(chunk)
                        win -= len(chunk)
                        sent = True
                        if end:
                            del offs[sid]
                c.flush()
                while c.pump(0 if sent else 0.2):
                    sent = True
            c.wait(lambda: all(c.done(s) for s in bodies), timeout=120)
            for sid, (head, body) in bodies.items():
                assert_eq(c.headers[sid][":status"], "200")
                got = bytes(c.bodies.get(sid, b""))
                assert_eq(hashlib.sha256(got).hexdigest(), hashlib.sha256(head + body).hexdigest(),
                          "stream %d" % sid)
            a = access_lines(p)
            assert_eq(len(a), 100)
            assert_eq(len(set(l["client"] for l in a)), 1)
            assert all(l["bytes_in"] == 1 << 20 for l in a), a[0]
            c.close()
    finally:
        b.close()


def test_h07_one_stalled_stream_does_not_stall_others():
    big = 32 << 20

    def handler(req, ci, s):
        if req.target == "/big":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % big)
            try:
                chunk = b"x" * 65536
                for _ in range(big // 65536):
                    s.sendall(chunk)
            except OSError:
                pass
            return None
        return response(200, b"small")
    with setup(handler, timeouts={"client_idle_ms": 2000}) as (p, bs):
        rss0 = p.rss_kb()
        c = H2(p)
        stalled = c.request("/big")
        c.wait(lambda: stalled in c.bodies and len(c.bodies[stalled]) >= 60000, skip_ack=(stalled,))
        others = [c.request("/s%d" % i) for i in range(20)]
        c.wait(lambda: all(s in c.ended for s in others), skip_ack=(stalled,))
        for s in others:
            assert_eq(bytes(c.bodies[s]), b"small")
        # The proxy holds a bounded part of the 32 MiB, not all of it.
        rss = p.rss_kb()
        assert rss - rss0 < 8 * 1024, (rss0, rss)
        # A window left at zero for client_idle_ms resets the stream.
        c.wait(lambda: stalled in c.resets, timeout=10, skip_ack=(stalled,))
        assert len(c.bodies[stalled]) <= 65535, len(c.bodies[stalled])
        c.close()
        time.sleep(0.3)
        a = [l for l in access_lines(p) if l.get("target") == "/big"][0]
        assert_eq(a["error"], "client_stalled")


def test_h08_client_reset_cancels_upstream_at_once():
    closed = threading.Event()

    def handler(req, ci, s):
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
        try:
            while True:
                s.sendall(b"y" * 65536)
        except OSError:
            closed.set()
        return None
    with setup(handler) as (p, bs):
        c = H2(p)
        sid = c.request("/long")
        c.wait(lambda: sid in c.bodies)
        c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        c.flush()
        assert closed.wait(5), "backend connection not closed after the client reset"
        s2 = c.request("/after")
        c.wait(lambda: c.done(s2))
        c.close()
        time.sleep(0.3)
        a = [l for l in access_lines(p) if l.get("target") == "/long"][0]
        assert_eq(a["error"], "client_reset")


def test_h09_chunked_upload_without_length():
    with setup(echo_handler) as (p, bs):
        c = H2(p)
        body = os.urandom(300000)
        sid = c.request("/up", method="POST", body=body)
        c.wait(lambda: c.done(sid))
        assert_eq(bytes(c.bodies[sid]), body)
        req = bs[0].requests[0]
        assert_eq(req.header("transfer-encoding"), "chunked")
        assert req.header("content-length") is None
        c.close()


def test_h10_body_too_large_413():
    with setup(echo_handler, limits={"max_body_bytes": 1000}) as (p, bs):
        c = H2(p)
        s1 = c.request("/a", method="POST", headers=[("content-length", "5000")], open_=True)
        s2 = c.request("/b", method="POST", body=b"z" * 5000)
        c.wait(lambda: c.done(s1) and c.done(s2))
        assert_eq(c.headers[s1][":status"], "413")
        assert_eq(c.headers.get(s2, {}).get(":status"), "413")
        c.close()


# ---- malformed requests: RST_STREAM, never forwarded ----

MALFORMED = [
    ("connection", [(":method", "GET"), (":path", "/m"), (":scheme", "http"), (":authority", "a"), ("connection", "close")]),
    ("keep-alive", [(":method", "GET"), (":path", "/m"), (":scheme", "http"), (":authority", "a"), ("keep-alive", "1")]),
    ("proxy-connection", [(":method", "GET"), (":path", "/m"), (":scheme", "http"), (":authority", "a"), ("proxy-connection", "x")]),
    ("transfer-encoding", [(":method", "POST"), (":path", "/m"), (":scheme", "http"), (":authority", "a"), ("transfer-encoding", "chunked")]),
    ("upgrade", [(":method", "GET"), (":path", "/m"), (":scheme", "http"), (":authority", "a"), ("upgrade", "websocket")]),
    ("te not trailers", [(":method", "GET"), (":path", "/m"), (":scheme", "http"), (":authority", "a"), ("te", "gzip")]),
    ("uppercase name", [(":method", "GET"), (":path", "/m"), (":scheme", "http"), (":authority", "a"), ("X-Upper", "1")]),
    ("pseudo after regular", [(":method", "GET"), (":scheme", "http"), ("x-a", "1"), (":path", "/m"), (":authority", "a")]),
    ("duplicated :path", [(":method", "GET"), (":path", "/m"), (":path", "/n"), (":scheme", "http"), (":authority", "a")]),
    ("unknown pseudo", [(":method", "GET"), (":path", "/m"), (":scheme", "http"), (":authority", "a"), (":foo", "1")]),
    ("missing :path", [(":method", "GET"), (":scheme", "http"), (":authority", "a")]),
    ("missing :method", [(":path", "/m"), (":scheme", "http"), (":authority", "a")]),
    ("missing :scheme", [(":method", "GET"), (":path", "/m"), (":authority", "a")]),
    ("host differs from :authority", [(":method", "GET"), (":path", "/m"), (":scheme", "http"), (":authority", "a.example"), ("host", "b.example")]),
]


def test_h11_malformed_requests_reset_never_forwarded():
    with setup() as (p, bs):
        for name, hdrs in MALFORMED:
            r = RawH2(p)
            r.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, r.block(hdrs)))
            frames, _ = r.read_frames(3, until=lambda fs: rst_code(fs, 1) is not None or goaway_code(fs) is not None)
            code = rst_code(frames, 1)
            assert_eq(code, 1, "%s: RST_STREAM PROTOCOL_ERROR expected, got %r" % (name, frames))
            r.close()
        # content-length that disagrees with the DATA received
        r = RawH2(p)
        r.send(frame(HEADERS, END_HEADERS, 1, r.block([(":method", "POST"), (":path", "/cl"), (":scheme", "http"),
                                                       (":authority", "a"), ("content-length", "10")])))
        r.send(frame(DATA, END_STREAM, 1, b"12345"))
        frames, _ = r.read_frames(3, until=lambda fs: rst_code(fs, 1) is not None)
        assert_eq(rst_code(frames, 1), 1, frames)
        r.close()
        time.sleep(0.3)
        # The content-length case may have reached a backend as an aborted
        # request; the others must not have reached one at all.
        assert all(r.target == "/cl" for r in bs[0].requests), [r.target for r in bs[0].requests]
        for r in bs[0].requests:
            assert not r.complete, "a body that disagrees with content-length was forwarded whole"
        assert p.proc.poll() is None


# ---- abuse ----

def test_h12_rapid_reset():
    # Limits under test: nghttp2's stream-reset limiter at burst 100 then
    # 10/s (RP_H2_RESET_BURST/RATE), and the budget of 1000 frames that do
    # no work.  1000 streams opened and reset must end in GOAWAY with at
    # most 10 requests having reached the backend.
    with setup() as (p, bs):
        r = RawH2(p)
        sent = 0
        closed = False
        try:
            for batch in range(10):
                r.send(opened_and_reset(r.enc, 1 + 2 * sent, 100))
                sent += 100
        except OSError:
            closed = True
        frames, c2 = r.read_frames(5)
        assert goaway_code(frames) is not None or closed or c2, frames[-3:]
        r.close()
        time.sleep(0.5)
        n = len(bs[0].requests)
        assert n <= 10, "backend saw %d requests of %d streams opened and reset" % (n, sent)
        print("rapid reset: %d streams opened and reset, backend saw %d, GOAWAY %r"
              % (sent, n, goaway_code(frames)))
        c = H2(p)
        s = c.request("/alive")
        c.wait(lambda: c.done(s))
        assert_eq(c.headers[s][":status"], "200")
        c.close()


def test_h13_continuation_flood():
    with setup() as (p, bs):
        rss0 = p.rss_kb()
        r = RawH2(p)
        blk = r.block([(":method", "GET"), (":path", "/cf"), (":scheme", "http"), (":authority", "a")])
        closed = False
        try:
            r.send(frame(HEADERS, 0, 1, blk))
            junk = r.enc.encode([("x-junk", "v" * 100)])
            for i in range(20000):
                r.send(frame(CONTINUATION, 0, 1, junk))
        except OSError:
            closed = True
        frames, c2 = r.read_frames(5)
        print("CONTINUATION flood: GOAWAY %r, closed %r" % (goaway_code(frames), closed or c2))
        assert closed or c2 or goaway_code(frames) is not None, frames
        r.close()
        assert p.rss_kb() - rss0 < 8 * 1024
        assert_eq(len(bs[0].requests), 0)


def flood(p, make, count):
    r = RawH2(p)
    closed = False
    try:
        for i in range(count // 100):
            r.send(b"".join(make(i * 100 + k) for k in range(100)))
    except OSError:
        closed = True
    frames, c2 = r.read_frames(5, until=lambda fs: goaway_code(fs) is not None)
    r.close()
    return frames, closed or c2


def test_h14_ping_and_settings_floods():
    with setup() as (p, bs):
        frames, closed = flood(p, lambda i: frame(PING, 0, 0, i.to_bytes(8, "big")), 5000)
        print("PING flood: GOAWAY %r, closed %r" % (goaway_code(frames), closed))
        assert goaway_code(frames) == 11 or closed, "PING flood: %r" % frames[-2:]
        frames, closed = flood(p, lambda i: frame(SETTINGS, 0, 0), 5000)
        print("SETTINGS flood: GOAWAY %r, closed %r" % (goaway_code(frames), closed))
        assert goaway_code(frames) == 11 or closed, "SETTINGS flood: %r" % frames[-2:]
        frames, closed = flood(p, lambda i: frame(PRIORITY, 0, 1 + 2 * i, b"\x00\x00\x00\x00\x10"), 5000)
        print("PRIORITY flood: GOAWAY %r, closed %r" % (goaway_code(frames), closed))
        assert goaway_code(frames) == 11 or closed, "PRIORITY flood: %r" % frames[-2:]
        c = H2(p)
        s = c.request("/alive")
        c.wait(lambda: c.done(s))
        c.close()
        assert p.proc.poll() is None


def test_h15_idle_and_preface_timeouts():
    with setup(timeouts={"client_idle_ms": 500, "client_header_ms": 500}) as (p, bs):
        c = H2(p)
        s = c.request("/one")
        c.wait(lambda: c.done(s))
        t0 = time.time()
        c.wait(lambda: c.closed or c.goaway is not None, timeout=5)
        assert_eq(c.goaway, 0)
        assert time.time() - t0 < 3
        c.close()
        # A preface and nothing else: closed after client_header_ms.
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        s.sendall(PREFACE + frame(SETTINGS, 0, 0))
        t0 = time.time()
        while s.recv(65536):
            pass
        assert time.time() - t0 < 3
        s.close()


def test_h16_h2load_many_streams():
    if shutil.which("h2load") is None:
        raise AssertionError("h2load missing (nghttp2-client)")
    with setup() as (p, bs):
        out = subprocess.run(["h2load", "-n", "2000", "-c", "2", "-m", "64",
                              "http://127.0.0.1:%d/load" % p.port],
                             capture_output=True, timeout=60).stdout.decode()
        assert "2000 succeeded" in out, out
        assert "2000 2xx" in out, out


def test_h17_nghttp_client():
    with setup() as (p, bs):
        out = subprocess.run(["nghttp", "-v", "http://127.0.0.1:%d/ng" % p.port],
                             capture_output=True, timeout=30).stdout.decode()
        assert ":status: 200" in out, out
        assert "hello" in out, out


def test_h18_header_limits():
    with setup(limits={"max_header_bytes": 2048, "max_headers": 10}) as (p, bs):
        c = H2(p)
        s1 = c.request("/big", headers=[("x-big", "v" * 3000)])
        s2 = c.request("/many", headers=[("x-h%d" % i, "v") for i in range(20)])
        c.wait(lambda: c.done(s1) and c.done(s2))
        for s in (s1, s2):
            st = c.headers.get(s, {}).get(":status")
            assert st == "431" or s in c.resets, (s, st, c.resets)
        assert_eq(len(bs[0].requests), 0)
        c.close()


def test_h19_goaway_on_stop():
    with setup() as (p, bs):
        c = H2(p)
        s = c.request("/before-stop")
        c.wait(lambda: c.done(s))
        p.stop()
        c.wait(lambda: c.closed or c.goaway is not None, timeout=5)
        assert_eq(c.goaway, 0)
        c.close()


def test_h20_rejected_head_never_forwarded_even_with_a_warm_pool():
    # A pooled backend connection would take a request at once: a stream
    # reset as malformed must still never start.
    with setup() as (p, bs):
        c = H2(p)
        s = c.request("/warm", authority="good.example")
        c.wait(lambda: c.done(s))
        for hdrs in ([(":method", "GET"), (":path", "/smuggled"), (":scheme", "http"),
                      (":authority", "good.example"), ("host", "evil.example")],
                     [(":method", "GET"), (":path", "http://evil.example/admin"), (":scheme", "foo"),
                      (":authority", "good.example")],
                     [(":method", "GET"), (":path", "http://evil.example/admin"), (":scheme", "http"),
                      (":authority", "good.example")],
                     [(":method", "GET"), (":path", "/\x86x"), (":scheme", "http"),
                      (":authority", "good.example")]):
            sid = c.conn.get_next_available_stream_id()
            c.send_headers(sid, hdrs, end=True)
            c.wait(lambda: c.done(sid))
            assert_eq(c.resets.get(sid), 1, "stream %d (%r)" % (sid, hdrs[1:3]))
        c.close()
        time.sleep(0.2)
        assert_eq([r.target for r in bs[0].requests], ["/warm"])


def test_h21_server_side_resets_never_reach_backends():
    # DATA beyond content-length and a window overflow make the library
    # reset the stream itself; such streams must not start, and the resets
    # count against the budget of frames that do no work.
    with setup() as (p, bs):
        r = RawH2(p)
        sent = 0
        closed = False
        try:
            for batch in range(20):
                out = b""
                for i in range(100):
                    sid = 1 + 2 * sent
                    out += frame(HEADERS, END_HEADERS, sid,
                                 r.enc.encode([(":method", "POST"), (":path", "/myr"), (":scheme", "http"),
                                               (":authority", "a"), ("content-length", "1")]))
                    if i % 2:
                        out += frame(DATA, END_STREAM, sid, b"ab")
                    else:
                        out += frame(WINDOW_UPDATE, 0, sid, (0x7FFFFFFF).to_bytes(4, "big"))
                    sent += 1
                r.send(out)
        except OSError:
            closed = True
        frames, c2 = r.read_frames(5, until=lambda fs: goaway_code(fs) is not None)
        r.close()
        assert goaway_code(frames) is not None or closed or c2, frames[-3:]
        time.sleep(0.3)
        n = len(bs[0].requests)
        assert n == 0, "backend saw %d requests of %d streams the proxy reset" % (n, sent)


def test_h22_stalled_h2c_reader_times_out():
    big = 1 << 30

    def handler(req, ci, s):
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % big)
        try:
            while True:
                s.sendall(b"x" * 65536)
        except OSError:
            pass
        return None
    with setup(handler, timeouts={"client_idle_ms": 1500}) as (p, bs):
        c = H2(p, window=(1 << 31) - 1 - 65535)
        c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (1 << 31) - 1})
        c.flush()
        sid = c.request("/big")
        c.pump(1)   # then never read again
        t0 = time.time()
        closed = False
        c.sock.settimeout(0.5)
        while time.time() - t0 < 15:
            time.sleep(0.5)
            try:
                with open("/proc/net/tcp") as f:
                    pass
            except OSError:
                pass
            a = [l for l in access_lines(p) if l.get("target") == "/big"]
            if a:
                closed = True
                break
        assert closed, "a client that stopped reading was not timed out"
        assert_eq(a[0]["error"], "client_stalled")
        c.close()


def test_h23_window_opened_response_flows_at_once():
    with setup(lambda req, ci, s: response(200, b"r" * (1 << 20))) as (p, bs):
        c = H2(p, window=(1 << 31) - 1 - 65535)
        c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        c.flush()
        sid = c.request("/w")
        c.wait(lambda: sid in c.headers)
        time.sleep(0.5)   # the proxy holds what it could read
        c.conn.increment_flow_control_window((1 << 31) - 1, stream_id=sid)
        c.flush()
        t0 = time.time()
        c.wait(lambda: sid in c.ended, ack=False)
        took = time.time() - t0
        assert_eq(len(c.bodies[sid]), 1 << 20)
        # No client frame comes after the WINDOW_UPDATE: the proxy must not
        # wait for one (or for a 1 s sweep) between chunks.
        assert took < 0.8, took
        c.close()


def test_h24_useless_frame_floods_closed():
    with setup() as (p, bs):
        frames, closed = flood(p, lambda i: frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x00\x01"), 5000)
        assert goaway_code(frames) == 11 or closed, "WINDOW_UPDATE flood: %r" % frames[-2:]
        frames, closed = flood(p, lambda i: frame(0x42, 0, 0, b"xx"), 5000)
        assert goaway_code(frames) == 11 or closed, "unknown-frame flood: %r" % frames[-2:]


def test_h25_response_field_without_name_is_502():
    def handler(req, ci, s):
        return b"HTTP/1.1 200 OK\r\n:method-Length: 2\r\nContent-Length: 2\r\n\r\nok"
    with setup(handler) as (p, bs):
        c = H2(p)
        sid = c.request("/noname")
        c.wait(lambda: c.done(sid))
        assert_eq(c.headers[sid][":status"], "502")
        c.close()
        s = p.connect()
        s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n:x: y\r\n\r\n")
        data = s.recv(65536)
        assert data.startswith(b"HTTP/1.1 400"), data
        s.close()


def test_h26_goaway_never_raises_last_stream_id():
    # nghttp2's reset limiter queues a GOAWAY without ending the session; a
    # connection error further on in the same input (a PING of 7 bytes)
    # would queue a second one naming a higher last stream id, which a
    # client may read as "those streams were not processed" after it has
    # already retried them elsewhere (RFC 9113 6.8).  Every GOAWAY must
    # name a last stream id no higher than the one before, and the
    # connection must end.
    with setup() as (p, bs):
        r = RawH2(p)
        out = opened_and_reset(r.enc, 1, 150) + frame(PING, 0, 0, b"1234567")
        try:
            r.send(out)
        except OSError:
            pass
        frames, closed = r.read_frames(5)
        ids = [int.from_bytes(p_[:4], "big") & 0x7FFFFFFF for t, _, _, p_ in frames if t == GOAWAY]
        r.close()
        assert ids, "no GOAWAY: %r" % frames[-3:]
        assert closed, "connection left open after GOAWAY %r" % ids
        assert all(b <= a for a, b in zip(ids, ids[1:])), "GOAWAY last stream ids rise: %r" % ids


def test_h27_credit_given_back_every_frame_is_not_abuse():
    # A client that returns flow-control credit after every DATA frame (a
    # WINDOW_UPDATE for the stream and one for the connection: chatty but
    # legal) downloads 20 MiB, some 1300 frames: none of that is charged to
    # the budget of frames that do no work, so no GOAWAY cuts it.
    size = 20 << 20
    body = b"x" * size
    with setup(handler=lambda req, ci, s: response(200, body)) as (p, bs):
        s = socket.create_connection(("127.0.0.1", p.port))
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        c.send_headers(1, [(":method", "GET"), (":path", "/big"), (":scheme", "http"),
                           (":authority", "a")], end_stream=True)
        s.sendall(c.data_to_send())
        got = frames = 0
        goaway = None
        done = False
        s.settimeout(20)
        while not done and goaway is None:
            data = s.recv(1 << 20)
            if not data:
                break
            for ev in c.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    got += len(ev.data)
                    frames += 1
                    try:
                        c.increment_flow_control_window(ev.flow_controlled_length, stream_id=1)
                    except h2.exceptions.ProtocolError:
                        pass   # the stream ended further on in this read
                    c.increment_flow_control_window(ev.flow_controlled_length)
                elif isinstance(ev, h2.events.StreamEnded):
                    done = True
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    goaway = ev.error_code
            s.sendall(c.data_to_send())
        s.close()
        assert goaway is None, "GOAWAY %r after %d frames, %d bytes" % (goaway, frames, got)
        assert done and got == size, (done, got)


def test_h28_no_stream_above_a_queued_goaway_starts():
    # The client does not read: a large response fills the proxy's output.
    # Then it trips the reset limiter (150 streams opened and reset), whose
    # GOAWAY waits behind that output, and opens more streams.  None of
    # those may reach a backend: the GOAWAY's last stream id tells the
    # client they were never processed.  16 MiB: more than the kernel's
    # socket buffers can absorb (tcp_wmem allows 4 MiB), so the output
    # really is full; the GOAWAY must then come before the response ends.
    big = b"y" * (16 << 20)
    seen = []

    def handler(req, ci, sock):
        seen.append(req.target)
        return response(200, big if req.target == "/big" else b"ok")
    with setup(handler) as (p, bs):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", p.port))
        enc = hpack.Encoder()
        # Windows wide open, so that only the socket holds the proxy back.
        out = PREFACE + frame(SETTINGS, 0, 0, (4).to_bytes(2, "big") + (1 << 30).to_bytes(4, "big"))
        out += frame(WINDOW_UPDATE, 0, 0, ((1 << 30)).to_bytes(4, "big"))
        out += frame(HEADERS, END_STREAM | END_HEADERS, 1,
                     enc.encode([(":method", "GET"), (":path", "/big"), (":scheme", "http"),
                                 (":authority", "a")]))
        sock.sendall(out)
        for _ in range(100):
            if "/big" in seen:
                break
            time.sleep(0.05)
        assert "/big" in seen
        time.sleep(0.5)   # the response fills the socket and the proxy's output
        out = opened_and_reset(enc, 3, 150)
        sid = 3 + 2 * 150
        for i in range(5):
            out += frame(HEADERS, END_STREAM | END_HEADERS, sid,
                         enc.encode([(":method", "GET"), (":path", "/after%d" % sid),
                                     (":scheme", "http"), (":authority", "a")]))
            sid += 2
        sock.sendall(out)
        time.sleep(0.5)
        # Now read everything: find the GOAWAY.
        sock.settimeout(5)
        buf = b""
        last = None
        big_ended_first = False
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                d = sock.recv(1 << 20)
            except (socket.timeout, OSError):
                break
            if not d:
                break
            frames, buf = split_frames(buf + d)
            for t, fl, fsid, payload in frames:
                if t == GOAWAY and last is None:
                    last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
                if t == DATA and fsid == 1 and fl & END_STREAM and last is None:
                    big_ended_first = True
        sock.close()
        assert last is not None, "no GOAWAY"
        assert not big_ended_first, "the whole response went out before the GOAWAY was " \
            "queued: the output was never full, nothing was tested"
        after = [int(t[6:]) for t in seen if t.startswith("/after")]
        assert all(i <= last for i in after), \
            "streams %r above GOAWAY's last stream id %d reached the backend" % (after, last)


def test_h29_slow_downloads_do_not_hold_back_a_new_stream():
    # Four large downloads fill the proxy's output towards a client that
    # reads slowly; a small request sent meanwhile must reach its backend
    # at once, not when the downloads end (multiplexing is the point).
    big = b"z" * (4 << 20)
    seen = {}

    def handler(req, ci, sock):
        seen[req.target] = time.time()
        return response(200, big if req.target.startswith("/big") else b"small")
    with setup(handler) as (p, bs):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.connect(("127.0.0.1", p.port))
        sock.settimeout(5)
        enc = hpack.Encoder()
        out = PREFACE + frame(SETTINGS, 0, 0, (4).to_bytes(2, "big") + (1 << 30).to_bytes(4, "big"))
        out += frame(WINDOW_UPDATE, 0, 0, (1 << 30).to_bytes(4, "big"))
        for sid in (1, 3, 5, 7):
            out += frame(HEADERS, END_STREAM | END_HEADERS, sid,
                         enc.encode([(":method", "GET"), (":path", "/big%d" % sid),
                                     (":scheme", "http"), (":authority", "a")]))
        sock.sendall(out)
        t0 = time.time()
        sent = None
        ended = {}
        buf = b""
        while time.time() - t0 < 60 and len(ended) < 5:
            d = sock.recv(8192)   # about 1.5 MB/s with the pauses
            if not d:
                break
            frames, buf = split_frames(buf + d)
            for t, fl, sid, _ in frames:
                if t == DATA and fl & END_STREAM:
                    ended[sid] = time.time()
                assert t not in (GOAWAY, RST_STREAM), (t, sid)
            if sent is None and time.time() - t0 > 1.0:
                sock.sendall(frame(HEADERS, END_STREAM | END_HEADERS, 9,
                                   enc.encode([(":method", "GET"), (":path", "/small"),
                                               (":scheme", "http"), (":authority", "a")])))
                sent = time.time()
            time.sleep(0.005)
        sock.close()
        assert sent is not None and "/small" in seen, (sent, sorted(seen))
        downloads_end = max(ended.get(sid, time.time()) for sid in (1, 3, 5, 7))
        assert downloads_end - sent > 1.0, "the downloads ended too soon to tell"
        assert seen["/small"] - sent < 1.0, \
            "/small reached the backend %.2f s after it was sent (downloads ended %.2f s after)" \
            % (seen["/small"] - sent, downloads_end - sent)


def wu_flood_ends_in_calm(make):
    """After a 64 KiB download, the frames make(n) builds, 20000 of them:
    the connection must end with GOAWAY ENHANCE_YOUR_CALM (11)."""
    def handler(req, ci, sock):
        return response(200, b"w" * 65535)
    with setup(handler) as (p, bs):
        r = RawH2(p)
        r.send(frame(HEADERS, END_STREAM | END_HEADERS, 1,
                     r.block([(":method", "GET"), (":path", "/x"), (":scheme", "http"),
                              (":authority", "a")])))
        frames, closed = r.read_frames(5, until=lambda fs: any(
            t == DATA and fl & END_STREAM for t, fl, _, _ in fs))
        assert sum(len(pl) for t, _, _, pl in frames if t == DATA) == 65535
        try:
            r.send(make(20000))
            r.send(frame(PING, 0, 0, b"12345678"))
        except OSError:
            pass   # closed while sending: fine, GOAWAY is read below
        frames, closed = r.read_frames(5, until=lambda fs: any(t == GOAWAY for t, _, _, _ in fs))
        codes = [int.from_bytes(pl[4:8], "big") for t, _, _, pl in frames if t == GOAWAY]
        assert codes == [11], (codes, closed)
        assert p.proc.poll() is None


def test_h30_window_update_floods_are_charged():
    # Credit for a stream that is gone (the library drops those without a
    # word), and a byte at a time on the connection (one free update per
    # DATA frame sent, not per byte): both are frames that do no work.
    wu_flood_ends_in_calm(lambda n: frame(WINDOW_UPDATE, 0, 1, (1).to_bytes(4, "big")) * n)
    wu_flood_ends_in_calm(lambda n: frame(WINDOW_UPDATE, 0, 0, (1).to_bytes(4, "big")) * n)


def test_h31_a_ping_per_data_burst_is_not_abuse():
    # A client measuring bandwidth (as gRPC does) sends a PING after DATA
    # it receives, one outstanding at a time.  With a window of one frame,
    # each of the 1536 DATA frames of a 24 MiB download is answered by
    # credit for the stream and the connection and a PING: all free,
    # while as many PINGs with no DATA before them are not.
    size = 24 << 20
    body = b"p" * size
    with setup(handler=lambda req, ci, s: response(200, body)) as (p, bs):
        s = socket.create_connection(("127.0.0.1", p.port))
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16384})
        c.send_headers(1, [(":method", "GET"), (":path", "/big"), (":scheme", "http"),
                           (":authority", "a")], end_stream=True)
        s.sendall(c.data_to_send())
        got = pings = 0
        goaway = None
        done = False
        s.settimeout(20)
        while not done and goaway is None:
            data = s.recv(1 << 16)
            if not data:
                break
            for ev in c.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    got += len(ev.data)
                    n = ev.flow_controlled_length
                    try:
                        c.increment_flow_control_window(n, stream_id=1)
                    except h2.exceptions.ProtocolError:
                        pass   # the stream ended in this read
                    c.increment_flow_control_window(n)
                    c.ping(b"%08d" % pings)
                    pings += 1
                elif isinstance(ev, h2.events.StreamEnded):
                    done = True
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    goaway = ev.error_code
            s.sendall(c.data_to_send())
        s.close()
        assert goaway is None, "GOAWAY %r after %d PINGs, %d bytes" % (goaway, pings, got)
        assert done and got == size and pings > 1100, (done, got, pings)
        # As many PINGs with no DATA before them end in GOAWAY 11 (sent 50
        # at a time, each batch's acknowledgements read, so that only the
        # frame budget can stop them).
        r = RawH2(p)
        codes = []
        for batch in range(40):
            try:
                r.send(frame(PING, 0, 0, b"12345678") * 50)
            except OSError:
                break
            frames, closed = r.read_frames(5, until=lambda fs: any(t == GOAWAY for t, _, _, _ in fs)
                                           or sum(t == PING for t, _, _, _ in fs) >= 50)
            codes += [int.from_bytes(pl[4:8], "big") for t, _, _, pl in frames if t == GOAWAY]
            if codes or closed:
                break
        assert codes == [11] and 900 // 50 <= batch <= 1100 // 50, (codes, batch)


def calm_codes(r, timeout=5):
    frames, closed = r.read_frames(timeout, until=lambda fs: any(t == GOAWAY for t, _, _, _ in fs))
    return [int.from_bytes(pl[4:8], "big") for t, _, _, pl in frames if t == GOAWAY]


def test_h32_no_free_frames_banked_or_dribbled():
    def handler(req, ci, sock):
        n = int(req.target[1:])
        return response(200, b"d" * n)
    with setup(handler) as (p, bs):
        get = lambda r, sid, n: r.send(frame(HEADERS, END_STREAM | END_HEADERS, sid, r.block(
            [(":method", "GET"), (":path", "/%d" % n), (":scheme", "http"), (":authority", "a")])))
        # PING ACKs answer no PING of the proxy's, and GOAWAYs after the
        # first say nothing new: floods of either are charged (the GOAWAYs
        # while a POST is open, so that the session has a reason to live).
        for flood in (frame(PING, 1, 0, b"12345678"), frame(GOAWAY, 0, 0, bytes(8))):
            r = RawH2(p)
            r.send(frame(HEADERS, END_HEADERS, 1, r.block(
                [(":method", "POST"), (":path", "/1"), (":scheme", "http"), (":authority", "a")])))
            try:
                r.send(flood * 20000)
            except OSError:
                pass
            assert calm_codes(r) == [11]
        # An 8 MiB download (512 DATA frames) does not bank 512 free PINGs:
        # 2000 of them afterwards, their acknowledgements read, are charged.
        r = RawH2(p)
        r.send(frame(WINDOW_UPDATE, 0, 0, (1 << 30).to_bytes(4, "big")))
        r.send(frame(SETTINGS, 0, 0, (4).to_bytes(2, "big") + (1 << 30).to_bytes(4, "big")))
        get(r, 1, 8 << 20)
        frames, closed = r.read_frames(20, until=lambda fs: any(
            t == DATA and fl & END_STREAM for t, fl, _, _ in fs))
        assert sum(len(pl) for t, _, _, pl in frames if t == DATA) == 8 << 20
        codes = []
        for batch in range(40):
            try:
                r.send(frame(PING, 0, 0, b"12345678") * 50)
            except OSError:
                break
            frames, closed = r.read_frames(5, until=lambda fs: any(t == GOAWAY for t, _, _, _ in fs)
                                           or sum(t == PING for t, _, _, _ in fs) >= 50)
            codes += [int.from_bytes(pl[4:8], "big") for t, _, _, pl in frames if t == GOAWAY]
            if codes or closed:
                break
        assert codes == [11], (codes, batch)
        # A window of one byte makes 1-byte DATA frames: giving each byte
        # back (stream and connection) earns nothing free.
        r = RawH2(p)
        r.send(frame(SETTINGS, 0, 0, (4).to_bytes(2, "big") + (1).to_bytes(4, "big")))
        get(r, 1, 4000)
        codes = []
        got = 0
        buf = b""
        r.sock.settimeout(5)
        while not codes and got < 4000:
            try:
                d = r.sock.recv(65536)
            except OSError:
                break
            if not d:
                break
            fs, buf = split_frames(buf + d)
            out = b""
            for t, fl, sid, pl in fs:
                if t == DATA and sid == 1:
                    got += len(pl)
                    out += frame(WINDOW_UPDATE, 0, 1, len(pl).to_bytes(4, "big"))
                    out += frame(WINDOW_UPDATE, 0, 0, len(pl).to_bytes(4, "big"))
                elif t == GOAWAY:
                    codes.append(int.from_bytes(pl[4:8], "big"))
            try:
                r.send(out)
            except OSError:
                break
        assert codes == [11], (codes, got)
        assert p.proc.poll() is None


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    sys.exit(run(tests))
