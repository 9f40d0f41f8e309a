# SPDX-License-Identifier: MIT
"""Integration tests for TLS listeners: certificates chosen by SNI, ALPN
between HTTP/2 and HTTP/1.1, protocol versions, handshake failures and
their logging, and HTTP/2 over TLS with real clients (curl, nghttp,
h2load, openssl s_client, python3-h2 over Python's ssl).  A test CA and
its certificates are made by the test with the openssl command line."""
import os
import socket
import ssl
import subprocess
import sys
import time

import h2.config
import h2.connection
import h2.events

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend, Proxy, free_port, response, run, upstream_config  # noqa: E402
from test_proxy import assert_eq, access_lines  # noqa: E402

CERTS = None


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_certs():
    """A CA and three server certificates (EC P-256): default.example,
    a.example (exact) and *.w.example (wildcard)."""
    global CERTS
    if CERTS is not None:
        return CERTS
    import tempfile
    d = tempfile.mkdtemp(prefix="rp-certs-")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=revproxy test CA", "-days", "30",
            cwd=d)
    out = {"dir": d, "ca": os.path.join(d, "ca.crt")}
    for name, san in (("default", "DNS:default.example"), ("a", "DNS:a.example"),
                      ("w", "DNS:*.w.example")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=%s cert" % name, cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\n" % san)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".crt", "-days", "30", "-extfile", name + ".ext", cwd=d)
        out[name] = (os.path.join(d, name + ".crt"), os.path.join(d, name + ".key"))
    CERTS = out
    return out


class TLSSetup:
    """A proxy with a plain listener (for start-up) and a TLS one."""

    def __init__(self, handler=None, tls=None, **cfg):
        c = make_certs()
        self.backend = Backend(handler)
        self.tls_port = free_port()
        plain = free_port()
        tls_cfg = {"certificates": [{"cert": c[n][0], "key": c[n][1]} for n in ("default", "a", "w")]}
        tls_cfg.update(tls or {})
        base = upstream_config(self.backend)
        base.update(cfg)
        base["listeners"] = [{"address": "127.0.0.1:%d" % plain},
                             {"address": "127.0.0.1:%d" % self.tls_port, "tls": tls_cfg}]
        self.proxy = Proxy(base, port=plain)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.proxy.stop()
        finally:
            self.backend.close()

    def context(self, alpn=None, maxv=None, minv=None):
        ctx = ssl.create_default_context(cafile=make_certs()["ca"])
        if alpn:
            ctx.set_alpn_protocols(alpn)
        if maxv:
            ctx.maximum_version = maxv
        if minv:
            ctx.minimum_version = minv
        return ctx

    def memory_tls(self, alpn):
        """A handshaken TLS client whose records the test writes itself:
        (socket, SSLObject, its incoming and outgoing MemoryBIOs)."""
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        o = self.context(alpn).wrap_bio(inc, out, server_hostname="a.example")
        s = socket.create_connection(("127.0.0.1", self.tls_port), timeout=10)
        while True:
            try:
                o.do_handshake()
                break
            except ssl.SSLWantReadError:
                d = out.read()
                if d:
                    s.sendall(d)
                inc.write(s.recv(65536))
        d = out.read()
        if d:
            s.sendall(d)
        return s, o, inc, out

    def connect(self, sni="a.example", alpn=None, **kw):
        raw = socket.create_connection(("127.0.0.1", self.tls_port), timeout=10)
        return self.context(alpn, **kw).wrap_socket(raw, server_hostname=sni)


def subject_cn(s):
    cert = s.getpeercert()
    for rdn in cert["subject"]:
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def http1_get(s, path="/", host="a.example"):
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            break
        data += d
    head, _, body = data.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(body) < n:
        d = s.recv(65536)
        if not d:
            break
        body += d
    return head.decode("latin-1"), body


# ---- certificates and ALPN ----

def test_t01_sni_exact_wildcard_default():
    with TLSSetup() as t:
        for sni, cn in (("a.example", "a cert"), ("x.w.example", "w cert"), ("A.EXAMPLE", "a cert"),
                        ("w.example", "default cert"), ("y.x.w.example", "default cert"),
                        ("other.example", "default cert")):
            raw = socket.create_connection(("127.0.0.1", t.tls_port), timeout=10)
            ctx = t.context()
            ctx.check_hostname = False
            s = ctx.wrap_socket(raw, server_hostname=sni)
            assert_eq(subject_cn(s), cn, "SNI %s" % sni)
            s.close()
        # No SNI at all: the default certificate.
        raw = socket.create_connection(("127.0.0.1", t.tls_port), timeout=10)
        ctx = t.context()
        ctx.check_hostname = False
        s = ctx.wrap_socket(raw)
        assert_eq(subject_cn(s), "default cert")
        s.close()


def test_t02_alpn_and_forwarded_proto():
    with TLSSetup() as t:
        s = t.connect(alpn=["h2", "http/1.1"])
        assert_eq(s.selected_alpn_protocol(), "h2")
        s.close()
        s = t.connect(alpn=["http/1.1"])
        assert_eq(s.selected_alpn_protocol(), "http/1.1")
        head, body = http1_get(s, "/one")
        assert head.startswith("HTTP/1.1 200"), head
        s.close()
        s = t.connect()
        assert_eq(s.selected_alpn_protocol(), None)
        head, body = http1_get(s, "/two")
        assert head.startswith("HTTP/1.1 200"), head
        s.close()
        req = t.backend.requests[0]
        assert_eq(req.header("x-forwarded-proto"), "https")
        # Only an unknown protocol offered: no_application_protocol.
        try:
            s = t.connect(alpn=["spdy/3"])
            s.close()
            raise AssertionError("handshake with only an unknown ALPN protocol succeeded")
        except ssl.SSLError as e:
            assert "NO_APPLICATION_PROTOCOL" in str(e).upper() or "ALERT" in str(e).upper(), e


def test_t03_alpn_config_http11_only():
    with TLSSetup(tls={"alpn": ["http/1.1"]}) as t:
        s = t.connect(alpn=["h2", "http/1.1"])
        assert_eq(s.selected_alpn_protocol(), "http/1.1")
        s.close()


def test_t04_versions():
    with TLSSetup() as t:
        # Debian's openssl refuses TLS 1.1 itself unless told otherwise;
        # then the refusal must come from the server, as an alert.
        out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % t.tls_port,
                              "-servername", "a.example", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                             input=b"", capture_output=True, timeout=20)
        text = (out.stdout + out.stderr).decode("latin-1")
        assert "alert protocol version" in text, text[-2000:]
        s = t.connect(maxv=ssl.TLSVersion.TLSv1_2)
        assert_eq(s.version(), "TLSv1.2")
        s.close()
        s = t.connect()
        assert_eq(s.version(), "TLSv1.3")
        s.close()
    with TLSSetup(tls={"min_version": "TLSv1.3"}) as t:
        try:
            s = t.connect(maxv=ssl.TLSVersion.TLSv1_2)
            s.close()
            raise AssertionError("a TLS 1.2-only client was accepted with min_version TLSv1.3")
        except ssl.SSLError as e:
            assert "VERSION" in str(e).upper(), e
        # openssl s_client as the issue names it: the server's alert.
        out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % t.tls_port,
                              "-servername", "a.example", "-tls1_2"],
                             input=b"", capture_output=True, timeout=20)
        text = (out.stdout + out.stderr).decode("latin-1")
        assert "alert protocol version" in text, text[-2000:]


def test_t05_handshake_failures_quiet_and_bounded():
    aport = free_port()
    with TLSSetup(timeouts={"client_header_ms": 500},
                  admin={"address": "127.0.0.1:%d" % aport}) as t:
        for i in range(20):
            s = socket.create_connection(("127.0.0.1", t.tls_port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")   # plain text on a TLS port
            try:
                s.recv(100)
            except OSError:
                pass
            s.close()
        # A handshake that never ends is closed after client_header_ms.
        s = socket.create_connection(("127.0.0.1", t.tls_port), timeout=5)
        t0 = time.time()
        try:
            while s.recv(100):
                pass
        except OSError:
            pass
        assert time.time() - t0 < 3, time.time() - t0
        s.close()
        s = t.connect()
        head, _ = http1_get(s, "/after")
        assert head.startswith("HTTP/1.1 200"), head
        s.close()
        time.sleep(0.2)
        noisy = [l for l in t.proxy.log_lines() if l.get("level") in ("info", "warn", "error")
                 and "handshake" in l.get("msg", "")]
        assert not noisy, noisy[:3]
        # Counted by reason on the admin port...
        s = socket.create_connection(("127.0.0.1", aport), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        text = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            text += d
        s.close()
        assert b'\nrevproxy_tls_handshake_failures_total{reason="http_request"} 20\n' in text, text[-3000:]
        assert b'\nrevproxy_tls_handshake_failures_total{reason="timeout"} 1\n' in text
        # ... and logged once at stop.
        t.proxy.stop()
        counts = [l for l in t.proxy.log_lines() if "tls_handshake_failures" in l]
        assert_eq(len(counts), 1)
        f = counts[0]["tls_handshake_failures"]
        assert_eq(f.get("http_request"), 20)
        assert_eq(f.get("timeout"), 1)


def test_t06_close_without_close_notify_is_normal():
    with TLSSetup() as t:
        s = t.connect()
        head, body = http1_get(s, "/n")
        assert head.startswith("HTTP/1.1 200"), head
        # Drop the TCP connection under the TLS session: no close_notify.
        s2 = socket.socket(fileno=s.detach())
        s2.close()
        time.sleep(0.3)
        a = [l for l in access_lines(t.proxy) if l.get("target") == "/n"]
        assert_eq(a[0]["status"], 200)
        assert "error" not in a[0], a[0]
        # A body cut by such a close is caught by HTTP framing.
        s = t.connect()
        s.sendall(b"POST /cut HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100\r\n\r\n12345")
        time.sleep(0.2)
        socket.socket(fileno=s.detach()).close()
        time.sleep(0.5)
        a = [l for l in access_lines(t.proxy) if l.get("target") == "/cut"]
        assert a and a[0].get("error") in ("body_incomplete", "client_closed"), a


# ---- HTTP/2 over TLS ----

def test_t07_curl_http2_over_tls():
    with TLSSetup() as t:
        c = make_certs()
        out = subprocess.run(["curl", "-s", "--http2", "--cacert", c["ca"], "-D", "-",
                              "--resolve", "a.example:%d:127.0.0.1" % t.tls_port,
                              "https://a.example:%d/h2" % t.tls_port],
                             capture_output=True, timeout=20)
        text = out.stdout.decode("latin-1")
        assert text.startswith("HTTP/2 200"), (text, out.stderr)
        req = t.backend.requests[0]
        assert_eq(req.header("x-forwarded-proto"), "https")
        assert_eq(req.header("host"), "a.example:%d" % t.tls_port)
        time.sleep(0.2)
        assert_eq(access_lines(t.proxy)[-1]["protocol"], "HTTP/2")
        out = subprocess.run(["curl", "-s", "--http1.1", "--cacert", c["ca"], "-D", "-",
                              "--resolve", "a.example:%d:127.0.0.1" % t.tls_port,
                              "https://a.example:%d/h1" % t.tls_port],
                             capture_output=True, timeout=20)
        assert out.stdout.startswith(b"HTTP/1.1 200"), out.stdout


def test_t08_h2load_and_nghttp_over_tls():
    with TLSSetup() as t:
        out = subprocess.run(["h2load", "-n", "2000", "-c", "2", "-m", "32",
                              "https://127.0.0.1:%d/load" % t.tls_port],
                             capture_output=True, timeout=60).stdout.decode()
        assert "2000 succeeded" in out, out
        assert "h2" in out, out
        out = subprocess.run(["nghttp", "-v", "https://127.0.0.1:%d/ng" % t.tls_port],
                             capture_output=True, timeout=30).stdout.decode()
        assert ":status: 200" in out, out


def test_t09_h2_frames_over_tls():
    with TLSSetup() as t:
        s = t.connect(alpn=["h2"])
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":path", "/tls-h2"), (":scheme", "https"),
                                (":authority", "a.example")], end_stream=True)
        s.sendall(conn.data_to_send())
        status = None
        ended = False
        while not ended:
            data = s.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    status = dict(ev.headers)[b":status"]
                elif isinstance(ev, h2.events.StreamEnded):
                    ended = True
            s.sendall(conn.data_to_send())
        assert_eq(status, b"200")
        s.close()


def test_t10_large_bodies_over_tls():
    def handler(req, ci, sock):
        if req.method == "POST":
            return response(200, ("%d" % len(req.body)).encode())
        return response(200, b"z" * (3 << 20))
    with TLSSetup(handler) as t:
        s = t.connect()
        head, body = http1_get(s, "/big")
        assert_eq(len(body), 3 << 20)
        payload = os.urandom(2 << 20)
        s.sendall(b"POST /up HTTP/1.1\r\nHost: a.example\r\nContent-Length: %d\r\n\r\n" % len(payload)
                  + payload)
        data = b""
        while not data.endswith(str(len(payload)).encode()):
            d = s.recv(65536)
            if not d:
                break
            data += d
        assert data.startswith(b"HTTP/1.1 200"), data[:200]
        s.close()


def test_t11_bad_record_behind_data_closes():
    # A valid record and a corrupted one in the same segment: the data is
    # delivered, then the error must close the connection (HTTP/2 and
    # HTTP/1.1), not leave it open with every event disarmed.
    with TLSSetup(timeouts={"client_idle_ms": 30000, "client_header_ms": 30000}) as t:
        for proto in ("h2", "http/1.1"):
            s, o, inc, out = t.memory_tls([proto])
            if proto == "h2":
                c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
                c.initiate_connection()
                o.write(c.data_to_send())
            else:
                o.write(b"GET /hang HTTP/1.1\r\nHost: a.example\r\nContent-Length: 10\r\n\r\n")
            good = out.read()
            o.write(b"A" * 100)
            bad = bytearray(out.read())
            bad[-5] ^= 0xFF
            s.sendall(good + bytes(bad))
            t0 = time.time()
            s.settimeout(5)
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            except socket.timeout:
                raise AssertionError("%s: connection still open after a bad record" % proto)
            assert time.time() - t0 < 4, proto
            s.close()



def read_bodies(s, o, inc, n):
    """The bodies of n HTTP/1.1 200 responses read through the SSL object o
    (a MemoryBIO pair, inc its input) from socket s, in order."""
    plain = b""
    got = []
    deadline = time.time() + 20
    while len(got) < n and time.time() < deadline:
        try:
            plain += o.read(65536)
        except ssl.SSLWantReadError:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            assert d, "connection closed after %d responses" % len(got)
            inc.write(d)
            continue
        while b"\r\n\r\n" in plain:
            head, _, rest = plain.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            if len(rest) < length:
                break
            assert head.startswith(b"HTTP/1.1 200"), head
            got.append(rest[:length])
            plain = rest[length:]
    return got


def test_t12_pipelined_records_past_the_read_watermark():
    # Pipelined requests, one TLS record each, arrive at once: more than
    # the client read high watermark (256 KiB).  The proxy reads ahead into
    # the SSL and can stop at the watermark with records left inside the
    # SSL, where the socket's events cannot see them (test_tls.c makes that
    # case exact); it must go on as it serves the requests one by one:
    # every request answered, in order.  Then a body sent in many small
    # records.
    def handler(req, ci, sock):
        if req.method == "POST":
            return response(200, ("%d" % len(req.body)).encode())
        return response(200, req.target.encode())
    with TLSSetup(handler) as t:
        s, o, inc, out = t.memory_tls(["http/1.1"])
        # About 270 KiB: just past the watermark.
        n = 44
        pad = b"p" * 6150
        for i in range(n):
            o.write(b"GET /p%d HTTP/1.1\r\nHost: a.example\r\nX-Pad: %s\r\n\r\n" % (i, pad))
        s.sendall(out.read())
        assert_eq(read_bodies(s, o, inc, n), [b"/p%d" % i for i in range(n)])
        payload = os.urandom(300 << 10)
        o.write(b"POST /up HTTP/1.1\r\nHost: a.example\r\nContent-Length: %d\r\n\r\n"
                % len(payload))
        for i in range(0, len(payload), 1000):
            o.write(payload[i:i + 1000])
        s.sendall(out.read())
        assert_eq(read_bodies(s, o, inc, 1), [b"%d" % len(payload)])
        s.close()


def test_t13_proxy_protocol_in_front_of_tls():
    """A TLS listener behind a balancer: the PROXY v2 header comes before
    the ClientHello; the client it names is the one in X-Forwarded-For and
    the access line, over HTTP/1.1 and HTTP/2; without it the handshake
    never starts."""
    from test_hostile import pp_v2
    c = make_certs()

    def handler(req, ci, sock):
        return response(200, ("%s %s" % (req.header("x-forwarded-for"),
                                         req.header("x-forwarded-proto"))).encode())
    b = Backend(handler)
    plain, tport = free_port(), free_port()
    base = upstream_config(b)
    base["trusted_proxies"] = ["127.0.0.0/8"]
    base["listeners"] = [{"address": "127.0.0.1:%d" % plain},
                         {"address": "127.0.0.1:%d" % tport, "proxy_protocol": "v2",
                          "tls": {"certificates": [{"cert": c["a"][0], "key": c["a"][1]}]}}]
    p = Proxy(base, port=plain)
    try:
        ctx = ssl.create_default_context(cafile=c["ca"])
        ctx.set_alpn_protocols(["http/1.1"])
        raw = socket.create_connection(("127.0.0.1", tport), timeout=10)
        raw.sendall(pp_v2("203.0.113.20", 5555))
        s = ctx.wrap_socket(raw, server_hostname="a.example")
        head, body = http1_get(s)
        assert_eq(body, b"203.0.113.20 https")
        s.close()
        # HTTP/2 by ALPN, from an IPv6 client.
        ctx2 = ssl.create_default_context(cafile=c["ca"])
        ctx2.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", tport), timeout=10)
        raw.sendall(pp_v2("2001:db8::20", 6666, "2001:db8::1"))
        s = ctx2.wrap_socket(raw, server_hostname="a.example")
        assert_eq(s.selected_alpn_protocol(), "h2")
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "https"),
                              (":authority", "a.example")], end_stream=True)
        s.sendall(conn.data_to_send())
        got = b""
        done = False
        while not done:
            for ev in conn.receive_data(s.recv(65536)):
                if isinstance(ev, h2.events.DataReceived):
                    got += ev.data
                elif isinstance(ev, h2.events.StreamEnded):
                    done = True
            s.sendall(conn.data_to_send())
        assert_eq(got, b"2001:db8::20 https")
        s.close()
        # No header: the ClientHello is not one, and the connection closes.
        raw = socket.create_connection(("127.0.0.1", tport), timeout=10)
        try:
            ctx.wrap_socket(raw, server_hostname="a.example")
            assert False, "a handshake without the header succeeded"
        except (ssl.SSLError, ConnectionResetError, OSError):
            pass
        raw.close()
        deadline = time.time() + 5
        while len(access_lines(p)) < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert_eq(sorted(l["client"] for l in access_lines(p)),
                  ["203.0.113.20:5555", "[2001:db8::20]:6666"])
    finally:
        p.stop()
        b.close()


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    sys.exit(run(tests))
