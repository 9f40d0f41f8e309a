# SPDX-License-Identifier: MIT
"""Test harness: the real revproxy binary, real backends, real sockets.

Everything listens on loopback ephemeral ports.  Backends are small
threaded servers whose behaviour each test scripts; they record what they
received so tests can assert on exactly what the proxy forwarded.
"""
import atexit
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))

# Every temporary file of a run lives under one directory, removed at exit.
TMP_ROOT = tempfile.mkdtemp(prefix="rp-it-")
tempfile.tempdir = TMP_ROOT
atexit.register(shutil.rmtree, TMP_ROOT, True)
REVPROXY = os.environ.get("REVPROXY") or os.path.join(HERE, "..", "..", "src", "revproxy")


_handed_out = set()


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port free now and never handed out before by this process: the
    kernel may give a port just released again, and a test asking for two
    (a listener and the admin port) must get two."""
    for _ in range(100):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.bind((host, 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise AssertionError("no fresh port in 100 tries")


class Request:
    def __init__(self, head, body, raw_body, complete):
        self.head = head
        lines = head.split(b"\r\n")
        self.request_line = lines[0].decode("latin-1")
        parts = self.request_line.split(" ")
        self.method, self.target, self.version = parts[0], parts[1], parts[2]
        self.headers = []
        for line in lines[1:]:
            if not line:
                continue
            k, _, v = line.partition(b":")
            self.headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        self.body = body
        self.raw_body = raw_body
        self.complete = complete

    def header(self, name):
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


def read_until(sock, buf, marker, limit=1 << 20):
    while marker not in buf:
        data = sock.recv(65536)
        if not data:
            return buf, False
        buf += data
        if len(buf) > limit:
            return buf, False
    return buf, True


def read_request(sock, buf, sink=None):
    """Read one request; returns (Request or None, rest of buffer).
    With sink, body bytes are passed to sink(bytes) instead of kept."""
    buf, ok = read_until(sock, buf, b"\r\n\r\n")
    if not ok:
        return None, buf
    head, _, buf = buf.partition(b"\r\n\r\n")
    req = Request(head, b"", b"", False)
    te = req.header("transfer-encoding")
    cl = req.header("content-length")
    body = bytearray()
    raw = bytearray()

    def keep(b):
        if sink:
            sink(b)
        else:
            body.extend(b)

    if te and "chunked" in te.lower():
        while True:
            buf, ok = read_until(sock, buf, b"\r\n")
            if not ok:
                req.body, req.raw_body = bytes(body), bytes(raw) + buf
                return req, b""
            line, _, buf = buf.partition(b"\r\n")
            raw += line + b"\r\n"
            size = int(line.split(b";")[0], 16)
            if size == 0:
                buf, ok = read_until(sock, buf, b"\r\n")
                if not ok:
                    req.body, req.raw_body = bytes(body), bytes(raw)
                    return req, b""
                _, _, buf = buf.partition(b"\r\n")
                break
            while len(buf) < size + 2:
                data = sock.recv(1 << 20)
                if not data:
                    req.body, req.raw_body = bytes(body), bytes(raw)
                    return req, b""
                buf += data
            keep(bytes(buf[:size]))
            if not sink:
                raw += buf[:size] + b"\r\n"
            buf = buf[size + 2:]
    elif cl is not None:
        n = int(cl)
        while n > 0:
            if buf:
                take = buf[:n]
                buf = buf[len(take):]
                n -= len(take)
                keep(bytes(take))
                continue
            data = sock.recv(min(1 << 20, n))
            if not data:
                req.body = bytes(body)
                return req, b""
            take = data[:n]
            buf = data[len(take):]
            n -= len(take)
            keep(bytes(take))
    req.body = bytes(body)
    req.raw_body = bytes(raw) if raw else req.body
    req.complete = True
    return req, buf


def response(status=200, body=b"ok", headers=None, reason=None):
    reasons = {200: "OK", 204: "No Content", 304: "Not Modified", 404: "Not Found", 500: "Internal Server Error"}
    lines = ["HTTP/1.1 %d %s" % (status, reason or reasons.get(status, "X"))]
    hdrs = list(headers or [])
    if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hdrs) and status not in (204, 304):
        hdrs.append(("Content-Length", str(len(body))))
    for k, v in hdrs:
        lines.append("%s: %s" % (k, v))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Backend:
    """A scripted HTTP/1.1 backend.  handler(req, conn_index, sock) returns
    bytes to send, None to close without answering, or "keep" when it
    wrote the answer itself."""

    def __init__(self, handler=None, family=socket.AF_INET, host="127.0.0.1", sink=False, port=0):
        self.handler = handler or (lambda req, ci, s: response(200, b"hello"))
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.addr = ("[%s]:%d" % (host, self.port)) if family == socket.AF_INET6 else ("%s:%d" % (host, self.port))
        self.requests = []
        self.connections = 0
        self.sink = sink
        self.sink_bytes = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.clients = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                r, _, _ = select.select([self.sock], [], [], 0.1)
                if not r:
                    continue
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                ci = self.connections
                self.clients.append(c)
            threading.Thread(target=self._serve, args=(c, ci), daemon=True).start()

    def _sink(self, b):
        self.sink_bytes += len(b)

    def _serve(self, c, ci):
        buf = b""
        try:
            while not self.stopping:
                req, buf = read_request(c, buf, self._sink if self.sink else None)
                if req is None:
                    break
                with self.lock:
                    self.requests.append(req)
                if not req.complete:
                    break
                out = self.handler(req, ci, c)
                if out is None:
                    break
                if out == "keep":
                    continue
                c.sendall(out)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.stopping = True
        try:
            # Wakes the accept thread's select at once, so the port is
            # free as soon as close returns.
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.thread.join(1)
        with self.lock:
            for c in self.clients:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass


class Proxy:
    """The real revproxy on its own config.  stderr_pipe: stderr is a pipe
    the test reads (or deliberately does not) instead of a file;
    preexec_fn: runs in the child before exec (e.g. to set rlimits);
    port: the listener the test waits for (default: a new plain one)."""

    def __init__(self, config, expect_start=True, stderr_pipe=False, preexec_fn=None, port=None,
                 env=None):
        self.dir = tempfile.mkdtemp(prefix="rp-test-")
        self.config_path = os.path.join(self.dir, "revproxy.json")
        self.log_path = os.path.join(self.dir, "stderr.log")
        # revproxy binds with SO_REUSEPORT, so a port that free_port() saw
        # free can be taken by another test's proxy running at the same
        # time, and the two would share the connections: a port chosen
        # here is checked to be ours alone, and chosen again if not.
        chosen = port is None and "listeners" not in config
        for attempt in range(5):
            self.port = port or free_port()
            cfg = dict(config)
            cfg.setdefault("listeners", [{"address": "127.0.0.1:%d" % self.port}])
            cfg.setdefault("workers", 1)
            self.config = cfg
            with open(self.config_path, "w") as f:
                json.dump(cfg, f)
            self.log = open(self.log_path, "wb")
            self.proc = subprocess.Popen([REVPROXY, "--config", self.config_path],
                                         stdout=self.log,
                                         stderr=subprocess.PIPE if stderr_pipe else self.log,
                                         preexec_fn=preexec_fn,
                                         env=dict(os.environ, **env) if env else None)
            if not expect_start:
                return
            self.wait_ready()
            shared = self.shared_ports()
            if not shared:
                return
            self.proc.kill()
            self.proc.wait()
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.log.close()
            if not chosen:
                raise AssertionError("port(s) %r shared with another process: the test's own "
                                     "choice, so not chosen again" % shared)
        raise AssertionError("no port of our own after 5 tries")

    def listener_ports(self):
        ports = set()
        for l in self.config.get("listeners", []):
            addr = l.get("address", "") if isinstance(l, dict) else ""
            tail = addr.rsplit(":", 1)[-1]
            if tail.isdigit():
                ports.add(int(tail))
        return ports

    def shared_ports(self):
        """The listening ports of the config on which another process listens
        too (none: they are ours alone)."""
        ours = set()
        try:
            fds = os.listdir("/proc/%d/fd" % self.proc.pid)
        except OSError:
            return sorted(self.listener_ports())   # gone: try again
        for fd in fds:
            try:
                link = os.readlink("/proc/%d/fd/%s" % (self.proc.pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                ours.add(link[8:-1])
        ports = self.listener_ports()
        shared = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    rows = f.read().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                col = row.split()
                if len(col) <= 9 or col[3] != "0A":   # LISTEN only
                    continue
                port = int(col[1].rsplit(":", 1)[1], 16)
                if port in ports and col[9] not in ours:
                    shared.add(port)
        return sorted(shared)

    def wait_ready(self):
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("revproxy exited with %d:\n%s" % (self.proc.returncode, self.logs()))
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=0.2)
                s.close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("revproxy did not start listening")

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        if not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        out = []
        for line in self.logs().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line})
        return out

    def unread_bytes(self, client_sock):
        """Bytes the kernel holds for the proxy on its side of
        client_sock that the proxy has not read (rx_queue in
        /proc/net/tcp), or None when the socket is not found."""
        host, port = client_sock.getsockname()[:2]
        want_local = "%08X:%04X" % (0x0100007F, self.port)
        want_rem = "%08X:%04X" % (0x0100007F, port)
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[1] == want_local and cols[2] == want_rem:
                    return int(cols[4].split(":")[1], 16)
        return None

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            # SIGQUIT stops at once; the graceful drain of SIGTERM has
            # tests of its own (test_lifecycle.py)
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("revproxy did not stop on SIGQUIT")
        self.log.close()
        rc = self.proc.returncode
        if rc != 0:
            raise AssertionError("revproxy exited with %d:\n%s" % (rc, self.logs()[-4000:]))
        text = self.logs()
        if "AddressSanitizer" in text or "runtime error:" in text or "LeakSanitizer" in text:
            raise AssertionError("sanitizer report:\n" + text[-6000:])

    def connect(self, timeout=5):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s


class Response:
    def __init__(self, status, reason, headers, body, version):
        self.status, self.reason, self.headers, self.body, self.version = status, reason, headers, body, version

    def header(self, name):
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Client:
    """A raw HTTP/1.1 client reading responses strictly."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k, v.strip()))
        return version, int(status), reason, headers

    def read_response(self, head_request=False, sink=None):
        while True:
            version, status, reason, headers = self.read_head()
            if 100 <= status < 200:
                continue
            break
        r = Response(status, reason, headers, b"", version)
        body = bytearray()
        def keep(b):
            if sink:
                sink(b)
            else:
                body.extend(b)
        if head_request or status in (204, 304):
            return r
        te = r.header("transfer-encoding")
        cl = r.header("content-length")
        if te:
            assert te.lower() == "chunked", te
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                line, _, self.buf = self.buf.partition(b"\r\n")
                size = int(line, 16)
                if size == 0:
                    while b"\r\n" not in self.buf:
                        self._fill()
                    _, _, self.buf = self.buf.partition(b"\r\n")
                    break
                while len(self.buf) < size + 2:
                    self._fill()
                keep(self.buf[:size])
                assert self.buf[size:size + 2] == b"\r\n"
                self.buf = self.buf[size + 2:]
        elif cl is not None:
            n = int(cl)
            while n > 0:
                if not self.buf:
                    self._fill()
                take = self.buf[:n]
                self.buf = self.buf[len(take):]
                n -= len(take)
                keep(take)
        else:
            while True:
                keep(self.buf)
                self.buf = b""
                try:
                    self._fill()
                except EOFError:
                    break
        r.body = bytes(body)
        return r

    def closed(self, timeout=2.0):
        """True when the peer closes the connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True


def request_bytes(path="/", host="example.com", headers=None, method="GET", body=None,
                  close=True):
    """One HTTP/1.1 request; Connection: close unless close is False."""
    hdrs = "".join("%s: %s\r\n" % kv for kv in (headers or []))
    data = "%s %s HTTP/1.1\r\nHost: %s\r\n%s" % (method, path, host, hdrs)
    if body is not None:
        data += "Content-Length: %d\r\n" % len(body)
    if close:
        data += "Connection: close\r\n"
    data += "\r\n"
    return data.encode() + (body or b"")


def get(proxy, path="/", host="example.com", headers=None, method="GET", body=None):
    s = proxy.connect()
    c = Client(s)
    c.send(request_bytes(path, host, headers, method, body))
    r = c.read_response(head_request=(method == "HEAD"))
    s.close()
    return r


class KeepAliveClient:
    """One persistent client connection: request() sends a request without
    Connection: close and reads its response, so many requests share the
    connection.  A response saying Connection: close ends it (closing is
    then True and further requests raise)."""

    def __init__(self, proxy, timeout=10):
        self.sock = proxy.connect(timeout=timeout)
        self.client = Client(self.sock)
        self.requests = 0
        self.closing = False

    def request(self, path="/", host="example.com", headers=None, method="GET", body=None):
        if self.closing:
            raise AssertionError("request on a connection the proxy said it closes")
        self.client.send(request_bytes(path, host, headers, method, body, close=False))
        r = self.client.read_response(head_request=(method == "HEAD"))
        self.requests += 1
        conn = r.header("connection") or ""
        if "close" in [t.strip().lower() for t in conn.split(",")]:
            self.closing = True
        return r

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def upstream_config(*backends, **extra):
    cfg = {
        "upstreams": {"app": {"backends": [{"address": b.addr} for b in backends]}},
        "routes": [{"path_prefix": "/", "upstream": "app"}],
        "log": {"level": "info"},
    }
    for k, v in extra.items():
        cfg[k] = v
    return cfg


def run(tests):
    only = sys.argv[1:]
    passed = failed = 0
    for t in tests:
        if only and t.__name__ not in only:
            continue
        start = time.time()
        try:
            t()
            passed += 1
            print("ok   %-45s %.2fs" % (t.__name__, time.time() - start), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s" % t.__name__, flush=True)
            traceback.print_exc()
            sys.stdout.flush()
    print("%s: %d passed, %d failed" % (os.path.basename(sys.argv[0]), passed, failed))
    return 1 if failed else 0
