#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Client loops for bench/soak.sh: one kind of client per process, each
running until a deadline, every loop bounded by socket timeouts.

  soak_load.py KIND --port P --tls-port T --ca FILE --deadline UNIX_TIME
               --src ADDR --out FILE [--threads N] [--header-ms MS]

KIND is one of
  h1ka       HTTP/1.1 keep-alive: small GETs and 2 KiB POSTs on /app/
  h1close    HTTP/1.1 with Connection: close, a connection per request
  bulk       1 MiB downloads and 1 MiB uploads on /bulk/, keep-alive
  h2c        HTTP/2 with prior knowledge (python3-h2), batches of streams
  h2tls      HTTP/2 over TLS (ALPN h2), batches of streams
  h2load     h2load bursts (-n bounded), h2c and TLS in turn
  ws         WebSocket tunnels opened, used (echo checked) and closed
  slowloris  a request head trickled a byte every 2 s: revproxy must
             answer 408 (header_timeout) and close
  slowread   1 MiB downloads read below timeouts.client_min_bytes_per_s
             (must be cut) and, from SRC's neighbour address, well above
             it (must complete)

Every connection is made from the loopback address SRC (127.0.0.x), so
that the access log's "client" tells the kinds apart, and every request
carries an X-Request-Id of its own (KIND-PID-THREAD-N) that revproxy keeps:
an error seen here is found in the access log by that id.

OUT receives JSON lines: {"ev": "error", ...} for each client-visible
error, {"ev": "expected", ...} for outcomes the kind exists to provoke
(a slowloris cut with 408, a slow reader cut), and {"ev": "count", ...}
every 5 s and at the end with the successes and errors so far.
"""
import argparse
import json
import os
import re
import select
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak_backend import BLOCK  # noqa: E402

HOST = "soak.test"
MIB = 1 << 20
BIG = (BLOCK * (MIB // len(BLOCK) + 1))[:MIB]
IO_TIMEOUT = 30.0


class Recorder:
    """Thread-safe JSON-lines writer with running counts."""

    def __init__(self, path, kind):
        self.kind = kind
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()
        self.ok = 0
        self.errors = 0
        self.expected = 0
        self.bytes = 0
        self.last_count = time.time()

    def _write(self, rec):
        rec.setdefault("t", round(time.time(), 3))
        rec.setdefault("kind", self.kind)
        with self.lock:
            self.f.write(json.dumps(rec, sort_keys=True) + "\n")

    def success(self, n=1, nbytes=0):
        with self.lock:
            self.ok += n
            self.bytes += nbytes
        self.maybe_count()

    def error(self, cls, **kw):
        with self.lock:
            self.errors += 1
        kw.update(ev="error", cls=cls)
        self._write(kw)

    def expect(self, cls, **kw):
        with self.lock:
            self.expected += 1
        kw.update(ev="expected", cls=cls)
        self._write(kw)

    def maybe_count(self, final=False):
        now = time.time()
        if not final and now - self.last_count < 5:
            return
        self.last_count = now
        with self.lock:
            rec = {"ev": "count", "ok": self.ok, "errors": self.errors,
                   "expected": self.expected, "bytes": self.bytes, "final": final}
        self._write(rec)


class Ctx:
    def __init__(self, a, rec):
        self.a = a
        self.rec = rec
        self.deadline = a.deadline
        self.pid = os.getpid()

    def running(self):
        return time.time() < self.deadline

    def rid(self, th, n):
        return "%s-%d-%d-%d" % (self.a.kind, self.pid, th, n)

    def pause(self, s):
        """Sleeps s seconds, never past the deadline."""
        left = self.deadline - time.time()
        if left > 0:
            time.sleep(min(s, left))


# ---- HTTP/1.1 ----

class H1Error(Exception):
    def __init__(self, cls, detail="", status=None, body=b""):
        super().__init__(cls)
        self.cls = cls
        self.detail = detail
        self.status = status
        self.body = body


def reason_word(body):
    """The reason word of a revproxy error body ("error: WORD"), or that of
    a backend in its 503 mode ("backend_503"), else ""."""
    m = re.search(rb"error: ([a-z_0-9]+)", body)
    if m:
        return m.group(1).decode()
    if body.startswith(b"backend_503"):
        return "backend_503"
    return ""


class H1:
    """One client connection, strict enough to tell a cut response."""

    def __init__(self, port, src, rcvbuf=None, timeout=IO_TIMEOUT, mss=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if mss:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        self.sock.settimeout(timeout)
        try:
            self.sock.bind((src, 0))
            self.sock.connect(("127.0.0.1", port))
        except OSError as e:
            self.sock.close()
            raise H1Error("connect_error", str(e)) from e
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.open = True

    def close(self):
        self.open = False
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, method, target, rid, body=None, close=False, extra=""):
        head = "%s %s HTTP/1.1\r\nHost: %s\r\nX-Request-Id: %s\r\n%s" % (
            method, target, HOST, rid, extra)
        if body is not None:
            head += "Content-Length: %d\r\n" % len(body)
        if close:
            head += "Connection: close\r\n"
        data = head.encode() + b"\r\n"
        try:
            self.sock.sendall(data)
            if body:
                self.sock.sendall(body)
        except socket.timeout as e:
            raise H1Error("timeout", "sending") from e
        except OSError as e:
            raise H1Error("reset", "sending: %s" % e) from e

    def _fill(self, n=262144):
        try:
            data = self.sock.recv(n)
        except socket.timeout as e:
            raise H1Error("timeout", "reading") from e
        except OSError as e:
            raise H1Error("reset", "reading: %s" % e) from e
        if not data:
            raise H1Error("eof", "closed by the proxy")
        self.buf += data

    def response(self, reader=None):
        """Reads one response: (status, headers, body).  reader(n) may be
        given to pace reads of the body."""
        got_any = bool(self.buf)
        try:
            while b"\r\n\r\n" not in self.buf:
                self._fill()
                got_any = True
        except H1Error as e:
            if e.cls == "eof" and not got_any:
                e.cls = "eof_before_head"
            elif e.cls == "eof":
                e.cls = "cut_head"
            raise
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hdr = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdr[k.strip().lower()] = v.strip()
        body = bytearray()
        if "content-length" in hdr:
            n = int(hdr["content-length"])
            try:
                while len(body) + len(self.buf) < n:
                    if reader:
                        body += self.buf
                        self.buf = b""
                        chunk = reader(self.sock, n - len(body))
                        if not chunk:
                            raise H1Error("cut_body", "%d of %d bytes" % (len(body), n), status)
                        body += chunk
                    else:
                        self._fill()
            except H1Error as e:
                e.status = status
                e.detail = "%d of %d bytes: %s" % (len(body) + len(self.buf), n, e.detail)
                if e.cls == "eof":
                    e.cls = "cut_body"
                raise
            take = n - len(body)
            body += self.buf[:take]
            self.buf = self.buf[take:]
        elif "chunked" in hdr.get("transfer-encoding", ""):
            raise H1Error("unexpected_chunked", "", status)
        else:
            try:
                while True:
                    self._fill()
            except H1Error as e:
                if e.cls != "eof":
                    raise
            body += self.buf
            self.buf = b""
        if "close" in hdr.get("connection", "").lower():
            self.open = False
        return status, hdr, bytes(body)


def check_status(status, body, want=200):
    if status != want:
        raise H1Error("status", "", status, body)


def h1_error(ctx, e, rid, **kw):
    kw.update(rid=rid, detail=e.detail)
    if e.status is not None:
        kw["status"] = e.status
    if e.cls == "status":
        kw["word"] = reason_word(e.body)
    ctx.rec.error(e.cls, **kw)


def h1_keepalive(ctx, th, per_conn, pause, exchange):
    """Keep-alive connections of per_conn requests each, while the run
    lasts: exchange(c, n, rid) makes one request, raising H1Error; a
    connection is given up at an error other than a status."""
    n = 0
    while ctx.running():
        try:
            c = H1(ctx.a.port, ctx.a.src)
        except H1Error as e:
            h1_error(ctx, e, None)
            ctx.pause(1)
            continue
        try:
            for _ in range(per_conn):
                if not ctx.running() or not c.open:
                    break
                n += 1
                rid = ctx.rid(th, n)
                try:
                    exchange(c, n, rid)
                except H1Error as e:
                    h1_error(ctx, e, rid)
                    if e.cls != "status":
                        break
                ctx.pause(pause)
        finally:
            c.close()


def loop_h1ka(ctx, th):
    def exchange(c, n, rid):
        if n % 5 == 0:
            c.send("POST", "/app/echo/%d" % n, rid, os.urandom(2048))
        else:
            c.send("GET", "/app/item/%d?th=%d" % (n, th), rid)
        status, _, resp = c.response()
        check_status(status, resp)
        if not resp.startswith(b"ok "):
            raise H1Error("bad_body", resp[:60].decode("latin-1"), status)
        ctx.rec.success(1, len(resp))
    h1_keepalive(ctx, th, 100, 0.03, exchange)


def loop_h1close(ctx, th):
    n = 0
    while ctx.running():
        n += 1
        rid = ctx.rid(th, n)
        try:
            c = H1(ctx.a.port, ctx.a.src)
        except H1Error as e:
            h1_error(ctx, e, rid)
            ctx.pause(1)
            continue
        try:
            c.send("GET", "/app/close/%d" % n, rid, close=True)
            status, _, resp = c.response()
            check_status(status, resp)
            ctx.rec.success(1, len(resp))
        except H1Error as e:
            h1_error(ctx, e, rid)
        finally:
            c.close()
        ctx.pause(0.05)


def loop_bulk(ctx, th):
    def exchange(c, n, rid):
        if n % 2:
            c.send("GET", "/bulk/dl?bytes=%d" % MIB, rid)
            status, _, resp = c.response()
            check_status(status, resp)
            if resp != BIG:
                raise H1Error("bad_body", "1 MiB download differs", status)
            ctx.rec.success(1, len(resp))
        else:
            c.send("POST", "/bulk/up", rid, BIG)
            status, _, resp = c.response()
            check_status(status, resp)
            if resp != BIG_UP_ANSWER:
                raise H1Error("bad_body", resp[:60].decode("latin-1"), status)
            ctx.rec.success(1, MIB)
    h1_keepalive(ctx, th, 20, 0.3, exchange)


def _crc_answer():
    import zlib
    return ("bytes=%d crc=%d" % (MIB, zlib.crc32(BIG))).encode()


BIG_UP_ANSWER = _crc_answer()


# ---- slow clients ----

def loop_slowloris(ctx, th):
    """A head trickled a byte every 2 s: revproxy must answer 408 with
    header_timeout within timeouts.client_header_ms (--header-ms, the
    longest of the configurations) and close."""
    limit = ctx.a.header_ms / 1000.0 + 4.0
    n = 0
    while ctx.running():
        n += 1
        try:
            c = H1(ctx.a.port, ctx.a.src)
        except H1Error as e:
            h1_error(ctx, e, None)
            ctx.pause(1)
            continue
        t0 = time.time()
        got = b""
        outcome = None
        try:
            c.sock.sendall(b"GET /app/slowloris HTTP/1.1\r\nHost: soak.test\r\nX-Slow: ")
            while outcome is None:
                r, _, _ = select.select([c.sock], [], [], 2.0)
                if r:
                    try:
                        data = c.sock.recv(65536)
                    except OSError as e:
                        outcome = ("reset", str(e))
                        break
                    if not data:
                        outcome = ("closed", "")
                        break
                    got += data
                    continue
                if time.time() - t0 > limit:
                    outcome = ("not_cut", "")
                    break
                try:
                    c.sock.sendall(b"a")
                except OSError as e:
                    outcome = ("reset", "sending: %s" % e)
        finally:
            c.close()
        took = round(time.time() - t0, 2)
        if got.startswith(b"HTTP/1.1 408") and b"error: header_timeout" in got:
            ctx.rec.expect("slowloris_408", took=took)
        elif outcome[0] == "reset" and not got and took >= 3.0:
            # revproxy closed with our last byte unread: the reset can
            # overtake its 408; the access log has the header_timeout.
            ctx.rec.expect("slowloris_reset", took=took, detail=outcome[1])
        else:
            ctx.rec.error("slowloris_" + outcome[0], took=took,
                          detail=got[:80].decode("latin-1") + outcome[1])
        ctx.pause(0.5)


def loop_slowread(ctx, th):
    """Thread 0: reads 1 MiB at 256 B/s, far below the floor, and must be
    cut (client_too_slow).  Thread 1, from the next address: reads at
    128 KiB/s, far above it, and must get the whole body.

    Both announce an MSS of 1460 bytes, as over Ethernet: the kernel sizes
    a socket's send buffer from the MSS, and with loopback's 64 KiB MSS
    revproxy's socket would take the whole 1 MiB at once, leaving nothing
    queued in revproxy for the floor to judge."""
    slow = th % 2 == 0
    src = ctx.a.src
    if not slow:
        parts = src.split(".")
        src = ".".join(parts[:3] + [str(int(parts[3]) + 1)])
    n = 0
    while ctx.running():
        n += 1
        rid = ctx.rid(th, n)
        try:
            c = H1(ctx.a.port, src, rcvbuf=2048 if slow else 16384, timeout=60, mss=1460)
        except H1Error as e:
            h1_error(ctx, e, rid)
            ctx.pause(1)
            continue
        t0 = time.time()

        def trickle(sock, left):
            if slow:
                time.sleep(0.25)
                return sock.recv(min(64, left))
            time.sleep(0.125)
            return sock.recv(min(16384, left))

        def reader(sock, left):
            if time.time() - t0 > 90:
                raise H1Error("slowread_not_cut" if slow else "timeout", "90 s")
            try:
                return trickle(sock, left)
            except socket.timeout as e:
                raise H1Error("timeout", "reading") from e
            except OSError as e:
                raise H1Error("reset", "reading: %s" % e) from e

        try:
            c.send("GET", "/bulk/dl?bytes=%d" % MIB, rid, close=True)
            status, _, body = c.response(reader)
            check_status(status, body)
            if body != BIG:
                raise H1Error("bad_body", "1 MiB download differs", status)
            if slow:
                ctx.rec.error("slowread_not_cut", rid=rid, took=round(time.time() - t0, 1))
            else:
                ctx.rec.success(1, len(body))
        except H1Error as e:
            took = round(time.time() - t0, 1)
            if slow and e.cls in ("reset", "cut_body", "eof") and e.status == 200:
                ctx.rec.expect("slowread_cut", rid=rid, took=took, detail=e.detail)
            else:
                h1_error(ctx, e, rid, took=took, slow=slow)
        finally:
            c.close()
        ctx.pause(1)


# ---- HTTP/2 (python3-h2) ----

def loop_h2(ctx, th):
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions

    tls = ctx.a.kind == "h2tls"
    n = 0
    batch = 0
    while ctx.running():
        try:
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.settimeout(IO_TIMEOUT)
            raw.bind((ctx.a.src, 0))
            raw.connect(("127.0.0.1", ctx.a.tls_port if tls else ctx.a.port))
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                tctx = ssl.create_default_context(cafile=ctx.a.ca)
                tctx.set_alpn_protocols(["h2"])
                sock = tctx.wrap_socket(raw, server_hostname=HOST)
                if sock.selected_alpn_protocol() != "h2":
                    raise OSError("ALPN chose %r" % sock.selected_alpn_protocol())
            else:
                sock = raw
        except (OSError, ssl.SSLError) as e:
            ctx.rec.error("connect_error", detail=str(e))
            ctx.pause(1)
            continue
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                    header_encoding="utf-8"))
        conn.initiate_connection()
        conn.increment_flow_control_window(4 * MIB)
        try:
            sock.sendall(conn.data_to_send())
            for _ in range(40):
                if not ctx.running():
                    break
                batch += 1
                streams = {}
                for j in range(4):
                    n += 1
                    rid = ctx.rid(th, n)
                    sid = conn.get_next_available_stream_id()
                    if j == 3 and batch % 10 == 0:
                        path, body, want = "/bulk/dl?bytes=%d" % MIB, None, "big"
                    elif j == 3:
                        path, body, want = "/app/h2post/%d" % n, os.urandom(8192), "ok"
                    else:
                        path, body, want = "/app/h2/%d" % n, None, "ok"
                    hdrs = [(":method", "POST" if body else "GET"), (":path", path),
                            (":scheme", "https" if tls else "http"), (":authority", HOST),
                            ("x-request-id", rid)]
                    if body:
                        hdrs.append(("content-length", str(len(body))))
                    conn.send_headers(sid, hdrs, end_stream=body is None)
                    if body:
                        conn.send_data(sid, body, end_stream=True)
                    streams[sid] = {"rid": rid, "want": want, "status": None,
                                    "body": bytearray(), "done": False}
                sock.sendall(conn.data_to_send())
                gone = h2_read(ctx, sock, conn, streams, h2)
                for sid, s in streams.items():
                    judge_h2_stream(ctx, s)
                if gone:
                    break
                ctx.pause(0.1)
            try:
                conn.close_connection()
                sock.sendall(conn.data_to_send())
            except (OSError, h2.exceptions.ProtocolError):
                pass
        except (OSError, h2.exceptions.ProtocolError) as e:
            ctx.rec.error("h2_connection", detail=str(e))
        finally:
            try:
                sock.close()
            except OSError:
                pass


def h2_read(ctx, sock, conn, streams, h2):
    """Reads until every stream of the batch ended; True when the
    connection is gone (GOAWAY or closed)."""
    gone = False
    while not all(s["done"] for s in streams.values()):
        try:
            data = sock.recv(262144)
        except socket.timeout:
            for s in streams.values():
                if not s["done"]:
                    s["done"], s["err"] = True, "timeout"
            return True
        except OSError as e:
            for s in streams.values():
                if not s["done"]:
                    s["done"], s["err"] = True, "reset: %s" % e
            return True
        if not data:
            for s in streams.values():
                if not s["done"]:
                    s["done"], s["err"] = True, "connection closed"
            return True
        for ev in conn.receive_data(data):
            s = streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived) and s:
                s["status"] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                if s:
                    s["body"] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and s:
                s["done"] = True
            elif isinstance(ev, h2.events.StreamReset) and s:
                s["done"], s["err"] = True, "stream_reset %s" % ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                gone = True
                for sid, st in streams.items():
                    if not st["done"] and (ev.last_stream_id is None or sid > ev.last_stream_id):
                        st["done"], st["err"] = True, "goaway %s" % ev.error_code
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    return gone


def judge_h2_stream(ctx, s):
    if s.get("err"):
        cls = s["err"].split(" ")[0].rstrip(":")
        ctx.rec.error(cls, rid=s["rid"], status=s["status"], detail=s["err"],
                      got=len(s["body"]))
        return
    body = bytes(s["body"])
    if s["status"] != 200:
        ctx.rec.error("status", rid=s["rid"], status=s["status"], word=reason_word(body))
        return
    if (s["want"] == "big" and body != BIG) or (s["want"] == "ok" and not body.startswith(b"ok ")):
        ctx.rec.error("bad_body", rid=s["rid"], status=200, got=len(body))
        return
    ctx.rec.success(1, len(body))


# ---- h2load bursts ----

def loop_h2load(ctx, th):
    burst = 0
    while ctx.running():
        burst += 1
        tls = burst % 2 == 0
        url = ("https://127.0.0.1:%d/app/h2load" % ctx.a.tls_port if tls
               else "http://127.0.0.1:%d/app/h2load" % ctx.a.port)
        rid = ctx.rid(th, burst)
        t0 = time.time()
        try:
            p = subprocess.run(["h2load", "-n", "300", "-c", "3", "-m", "8", "-t", "1",
                                "-T", "20", "-N", "20",
                                "-H", "x-request-id: %s" % rid, url],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=60, check=False)
            out = p.stdout.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            ctx.rec.error("h2load_timeout", rid=rid, t0=round(t0, 3))
            continue
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
        s = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
        if not m or not s:
            ctx.rec.error("h2load_output", rid=rid, t0=round(t0, 3), detail=out[-300:])
        else:
            total, _, _, succeeded, failed, errored, tmo = (int(x) for x in m.groups())
            c2, c3, c4, c5 = (int(x) for x in s.groups())
            ctx.rec.success(c2)
            if c2 != total or failed or errored or tmo:
                ctx.rec.error("h2load_burst", rid=rid, t0=round(t0, 3), tls=tls,
                              detail="%d total, %d 2xx, %d 4xx, %d 5xx, %d failed, "
                                     "%d errored, %d timeout" % (total, c2, c4, c5, failed,
                                                                 errored, tmo),
                              bad=total - c2)
        ctx.pause(12)


# ---- WebSocket ----

def loop_ws(ctx, th):
    import asyncio
    import websockets

    async def tunnel(i):
        n = 0
        while ctx.running():
            n += 1
            rid = "%s-%d" % (ctx.rid(th, i), n)
            hold = 0.1 if n % 3 else 1.0
            try:
                async with websockets.connect(
                        "ws://127.0.0.1:%d/ws/echo" % ctx.a.port,
                        extra_headers={"X-Request-Id": rid}, local_addr=(ctx.a.src, 0),
                        ping_interval=None, max_size=None, open_timeout=10,
                        close_timeout=10) as ws:
                    for k in range(12):
                        if k % 3 == 2:
                            msg = os.urandom(1024 << (k % 7))
                        else:
                            msg = "message %d of %s" % (k, rid)
                        await ws.send(msg)
                        back = await asyncio.wait_for(ws.recv(), IO_TIMEOUT)
                        if back != msg:
                            ctx.rec.error("ws_bad_echo", rid=rid)
                            break
                        await asyncio.sleep(hold)
                    await ws.close()
                ctx.rec.success(1)
            except websockets.exceptions.InvalidStatusCode as e:
                ctx.rec.error("ws_handshake", rid=rid, status=e.status_code)
            except websockets.exceptions.ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd is not None else 1006
                reason = e.rcvd.reason if e.rcvd is not None else ""
                ctx.rec.error("ws_close_%d" % code, rid=rid, detail=reason)
            except asyncio.TimeoutError:
                ctx.rec.error("timeout", rid=rid)
            except (OSError, websockets.exceptions.WebSocketException) as e:
                ctx.rec.error("ws_error", rid=rid, detail="%s: %s" % (type(e).__name__, e))
            left = ctx.deadline - time.time()
            if left > 0:
                await asyncio.sleep(min(0.2, left))

    async def main():
        await asyncio.gather(*(tunnel(i) for i in range(3)))

    asyncio.run(main())


LOOPS = {
    "h1ka": (loop_h1ka, 3),
    "h1close": (loop_h1close, 2),
    "bulk": (loop_bulk, 2),
    "h2c": (loop_h2, 1),
    "h2tls": (loop_h2, 1),
    "h2load": (loop_h2load, 1),
    "ws": (loop_ws, 1),
    "slowloris": (loop_slowloris, 2),
    "slowread": (loop_slowread, 2),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=sorted(LOOPS))
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--deadline", type=float, required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--header-ms", type=int, default=10000)
    a = ap.parse_args()
    rec = Recorder(a.out, a.kind)
    ctx = Ctx(a, rec)
    fn, threads = LOOPS[a.kind]
    threads = a.threads or threads

    def guarded(th):
        try:
            fn(ctx, th)
        except Exception as e:  # noqa: BLE001 - a harness bug must show, not hang
            rec.error("client_crash", detail="%s: %s" % (type(e).__name__, e))
            raise

    ts = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rec.maybe_count(final=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
