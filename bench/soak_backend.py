#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A backend for bench/soak.sh, run as a process of its own so that the
soak can kill it (SIGKILL) and start it again on the same port.

  soak_backend.py http NAME PORT    HTTP/1.1 with keep-alive
  soak_backend.py ws NAME PORT      WebSocket echo (python3-websockets)

HTTP paths (any prefix; the last segment decides):
  .../dl?bytes=N   N bytes of a fixed pattern (pattern_block), Content-Length
  .../up           takes a body (Content-Length or chunked), answers
                   "bytes=N crc=C" (zlib.crc32 of the body)
  .../health       200 "ok"
  anything else    200 "ok NAME TARGET", after the body, if any, is read
Every answer carries "X-Soak-Backend: NAME".  SIGUSR1 turns on the 503
mode (every request, health checks included, is answered 503 with the
body "backend_503 NAME"), SIGUSR2 turns it off.

The WebSocket backend echoes every message and answers GET /health with
200 for the proxy's active checks.

Loopback only: the port is bound on 127.0.0.1.
"""
import signal
import socket
import sys
import threading
import zlib

IDLE_TIMEOUT = 10.0          # above the proxy's pool.idle_timeout_ms
MAX_HEAD = 64 * 1024


def pattern_block():
    """The 64 KiB block that downloads repeat (the client checks it)."""
    return bytes((i * 7 + (i >> 8)) & 0xFF for i in range(65536))


BLOCK = pattern_block()


class HTTPBackend:
    def __init__(self, name, port):
        self.name = name
        self.port = port
        self.fail503 = False
        signal.signal(signal.SIGUSR1, self._on)
        signal.signal(signal.SIGUSR2, self._off)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(256)

    def _on(self, *_):
        self.fail503 = True

    def _off(self, *_):
        self.fail503 = False

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except InterruptedError:
                continue
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self.conn, args=(c,), daemon=True).start()

    # -- one connection --

    def conn(self, c):
        c.settimeout(IDLE_TIMEOUT)
        buf = b""
        try:
            while True:
                head, buf = self.read_head(c, buf)
                if head is None:
                    return
                keep = self.one(c, head, buf)
                buf = keep[1]
                if not keep[0]:
                    return
        except (OSError, ValueError):
            return
        finally:
            try:
                c.close()
            except OSError:
                pass

    @staticmethod
    def read_head(c, buf):
        while b"\r\n\r\n" not in buf:
            if len(buf) > MAX_HEAD:
                return None, b""
            data = c.recv(65536)
            if not data:
                return None, b""
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head, rest

    def one(self, c, head, buf):
        """Serves one request; returns (keep the connection, rest of buf)."""
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        hdr = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdr[k.strip().lower()] = v.strip()
        keep = version == "HTTP/1.1" and "close" not in hdr.get("connection", "").lower()
        crc = [0, 0]

        def take(b):
            crc[0] = zlib.crc32(b, crc[0])
            crc[1] += len(b)

        buf = self.read_body(c, hdr, buf, take)
        if buf is None:
            return False, b""
        path, _, query = target.partition("?")
        last = path.rstrip("/").rsplit("/", 1)[-1]
        if self.fail503:
            self.send(c, 503, b"backend_503 " + self.name.encode(), keep)
        elif last == "dl":
            n = 0
            for kv in query.split("&"):
                k, _, v = kv.partition("=")
                if k == "bytes" and v.isdigit():
                    n = min(int(v), 64 << 20)
            self.send_head(c, 200, n, keep, "application/octet-stream")
            left = n
            while left > 0:
                piece = BLOCK if left >= len(BLOCK) else BLOCK[:left]
                c.sendall(piece)
                left -= len(piece)
        elif last == "up":
            self.send(c, 200, ("bytes=%d crc=%d" % (crc[1], crc[0])).encode(), keep)
        elif last == "health":
            self.send(c, 200, b"ok", keep)
        else:
            self.send(c, 200, ("ok %s %s" % (self.name, target)).encode(), keep)
        return keep, buf

    @staticmethod
    def read_body(c, hdr, buf, take):
        """Reads the request body into take(); returns what follows it,
        or None when the connection ended first."""
        def line(buf):
            """The next CRLF-ended line and what follows, or None."""
            while b"\r\n" not in buf:
                data = c.recv(65536)
                if not data:
                    return None
                buf += data
            got, _, buf = buf.partition(b"\r\n")
            return got, buf

        if "chunked" in hdr.get("transfer-encoding", "").lower():
            while True:
                r = line(buf)
                if r is None:
                    return None
                size, buf = int(r[0].split(b";")[0], 16), r[1]
                if size == 0:
                    # trailers, if any, up to the empty line
                    while True:
                        r = line(buf)
                        if r is None:
                            return None
                        if not r[0]:
                            return r[1]
                        buf = r[1]
                while len(buf) < size + 2:
                    data = c.recv(max(65536, size + 2 - len(buf)))
                    if not data:
                        return None
                    buf += data
                take(buf[:size])
                buf = buf[size + 2:]
        n = int(hdr.get("content-length", "0") or "0")
        if len(buf) >= n:
            take(buf[:n])
            return buf[n:]
        take(buf)
        n -= len(buf)
        while n > 0:
            data = c.recv(min(n, 262144))
            if not data:
                return None
            take(data)
            n -= len(data)
        return b""

    def send_head(self, c, status, length, keep, ctype="text/plain"):
        reason = {200: "OK", 503: "Service Unavailable"}.get(status, "X")
        head = ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                "X-Soak-Backend: %s\r\n%s\r\n"
                % (status, reason, ctype, length, self.name,
                   "" if keep else "Connection: close\r\n"))
        c.sendall(head.encode())

    def send(self, c, status, body, keep):
        self.send_head(c, status, len(body), keep)
        c.sendall(body)


def ws_main(name, port):
    import asyncio
    import http
    import websockets

    async def echo(ws, path=None):
        try:
            async for m in ws:
                await ws.send(m)
        except websockets.ConnectionClosed:
            pass

    async def health(path, headers):
        if path.split("?")[0].endswith("/health"):
            return http.HTTPStatus.OK, [("X-Soak-Backend", name)], b"ok"
        return None

    async def main():
        async with websockets.serve(echo, "127.0.0.1", port, max_size=None,
                                    ping_interval=None, process_request=health,
                                    reuse_address=True):
            await asyncio.Future()

    asyncio.run(main())


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("http", "ws"):
        sys.stderr.write("usage: soak_backend.py http|ws NAME PORT\n")
        return 64
    kind, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if kind == "ws":
        ws_main(name, port)
        return 0
    HTTPBackend(name, port).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
