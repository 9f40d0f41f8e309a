# SPDX-License-Identifier: MIT
"""The admin port: /healthz, /ready, /metrics (checked by a strict parser
of the Prometheus text format), /stats and /config, its token, its bounds,
and the reason words: one failure, one word, the same in the access line,
the error log line, the error body and the metric."""
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (REVPROXY, Backend, Client, Proxy, free_port, get, response,  # noqa: E402
                     run)
from test_proxy import access_lines, assert_eq  # noqa: E402

TOKEN = "t0ken-for.tests~"


# ---- a strict parser of the text exposition format 0.0.4 ----

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % NAME)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)')


def parse_labels(text):
    out = {}
    pos = 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            raise AssertionError("bad labels: %r" % text)
        k = m.group(1)
        if k in out:
            raise AssertionError("label %s twice in %r" % (k, text))
        out[k] = m.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        pos = m.end()
        if m.group(3) == "" and pos != len(text):
            raise AssertionError("bad labels: %r" % text)
    return out


def parse_exposition(text):
    """{(name, frozenset(labels)): value}, after checking every rule this
    project holds itself to."""
    assert text.endswith("\n"), "the exposition ends with a newline"
    types, helps, series = {}, {}, {}
    current = None      # the family whose samples come now
    seen_families = []
    for line in text.split("\n")[:-1]:
        assert line != "", "no empty lines"
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            assert re.fullmatch(NAME, name) and help_, line
            assert name not in helps, "HELP twice for " + name
            helps[name] = help_
            continue
        if line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            assert typ in ("counter", "gauge", "histogram"), line
            assert name not in types, "TYPE twice for " + name
            assert name in helps, "HELP before TYPE for " + name
            assert name.startswith("revproxy_"), name
            if typ == "counter":
                assert name.endswith("_total"), "counter without _total: " + name
            else:
                assert not name.endswith("_total"), name
            types[name] = typ
            current = name
            seen_families.append(name)
            continue
        assert not line.startswith("#"), "unexpected comment: " + line
        m = SAMPLE.match(line)
        assert m, "bad sample line: %r" % line
        name, labels, value = m.group(1), parse_labels(m.group(2) or ""), m.group(3)
        v = float(value)   # "+Inf" too
        assert current is not None, "a sample before any TYPE"
        fam = current
        if types[fam] == "histogram":
            assert name in (fam + "_bucket", fam + "_sum", fam + "_count"), (fam, name)
            assert (name == fam + "_bucket") == ("le" in labels), line
        else:
            assert name == fam, "sample %s inside family %s" % (name, fam)
        assert "path" not in labels and "client" not in labels, line
        if name.endswith("_total") or name.endswith("_count") or name.endswith("_bucket"):
            assert v >= 0 and v == int(v), line
        key = (name, frozenset(labels.items()))
        assert key not in series, "series twice: " + line
        series[key] = v
    # histograms: cumulative buckets ending in +Inf, _count = +Inf bucket
    for fam, typ in types.items():
        if typ != "histogram":
            continue
        groups = {}
        for (name, labels), v in series.items():
            if name == fam + "_bucket":
                rest = frozenset((k, x) for k, x in labels if k != "le")
                le = dict(labels)["le"]
                groups.setdefault(rest, []).append((float(le), v))
        assert groups, "histogram %s without buckets" % fam
        for rest, buckets in groups.items():
            buckets.sort()
            assert buckets[-1][0] == float("inf"), "no +Inf bucket in " + fam
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), "buckets of %s not cumulative: %r" % (fam, counts)
            assert series[(fam + "_count", rest)] == counts[-1], fam
            assert (fam + "_sum", rest) in series, fam
    return series, types


def value(series, name, **labels):
    return series.get((name, frozenset(labels.items())), 0.0)


# ---- helpers ----

def admin_get(port, path, token=TOKEN, method="GET", extra=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    c = Client(s)
    auth = ("Authorization: Bearer %s\r\n" % token) if token else ""
    c.send(("%s %s HTTP/1.1\r\nHost: admin\r\n%sConnection: close\r\n" % (method, path, auth)).encode()
           + extra + b"\r\n")
    r = c.read_response(head_request=(method == "HEAD"))
    s.close()
    return r


def scrape(port):
    r = admin_get(port, "/metrics")
    assert_eq(r.status, 200)
    assert_eq(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8")
    return parse_exposition(r.body.decode())[0]


def stats(port):
    r = admin_get(port, "/stats")
    assert_eq(r.status, 200)
    assert_eq(r.header("content-type"), "application/json")
    return json.loads(r.body)


def settle(port, want, before, timeout=5.0):
    """Poll /metrics until every (name, labels) in want moved by exactly
    its delta from before; counters are added as transactions end, on
    each worker."""
    deadline = time.time() + timeout
    while True:
        now = scrape(port)
        got = {k: now.get(k, 0.0) - before.get(k, 0.0) for k in want}
        if got == want:
            return now
        if time.time() > deadline:
            diff = {"%s%s" % (k[0], dict(k[1])): (got[k], want[k]) for k in want if got[k] != want[k]}
            raise AssertionError("metric deltas (got, want): %r" % diff)
        time.sleep(0.05)


def key(name, **labels):
    return (name, frozenset(labels.items()))


def dead_addr():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    a = "127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    return a


def admin_proxy(cfg, token=TOKEN, **admin):
    port = free_port()
    a = {"address": "127.0.0.1:%d" % port}
    if token:
        a["token"] = token
    a.update(admin)
    cfg = dict(cfg)
    cfg["admin"] = a
    p = Proxy(cfg)
    return p, port


# ---- tests ----

def test_ad01_endpoints():
    b = Backend()
    p, port = admin_proxy({"upstreams": {"app": {"backends": [{"address": b.addr}]}},
                           "routes": [{"path_prefix": "/", "upstream": "app"}]}, token=None)
    try:
        r = admin_get(port, "/healthz")
        assert_eq((r.status, r.body), (200, b"ok\n"))
        r = admin_get(port, "/ready")
        assert_eq((r.status, r.body), (200, b"ready\n"))
        r = admin_get(port, "/ready?verbose=1")
        assert_eq(r.status, 200)
        r = admin_get(port, "/nope")
        assert_eq(r.status, 404)
        r = admin_get(port, "/metrics/")
        assert_eq(r.status, 404)
        for m in ("POST", "DELETE", "PUT"):
            r = admin_get(port, "/stats", method=m)
            assert_eq(r.status, 405)
            assert_eq(r.header("allow"), "GET, HEAD")
        r = admin_get(port, "/metrics", method="HEAD")
        assert_eq((r.status, r.body), (200, b""))
        assert int(r.header("content-length")) > 1000
        assert_eq(r.header("cache-control"), "no-store")
        # a request body is refused, the connection closed
        r = admin_get(port, "/healthz", method="POST", extra=b"Content-Length: 3\r\n")
        assert_eq(r.status, 413)
        # a head over the bound
        r = admin_get(port, "/healthz", extra=b"X-Big: " + b"a" * 9000 + b"\r\n")
        assert_eq(r.status, 431)
        # bytes the head does not keep count too: a flood of blank lines
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(b"\r\n" * 20000 + b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        except OSError:
            pass
        r = Client(s).read_response()
        assert_eq(r.status, 431)
        s.close()
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX:" + b" " * 20000 + b"v\r\n\r\n")
        except OSError:
            pass
        assert_eq(Client(s).read_response().status, 431)
        s.close()
        # each request counts from its own start on a kept-alive connection
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        c = Client(s)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * 7100 + b"\r\n\r\n")
        assert_eq(c.read_response().status, 200)
        s.sendall(b"\r\n" * 700)
        time.sleep(0.1)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert_eq(c.read_response().status, 200)
        s.close()
        # Host: one for HTTP/1.1, never two
        for head in (b"GET /healthz HTTP/1.1\r\n\r\n",
                     b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                     b"GET /healthz HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(head)
            assert_eq(Client(s).read_response().status, 400, head)
            s.close()
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert_eq(Client(s).read_response().status, 200)
        s.close()
        # an Upgrade is answered, then the connection closes: the request
        # behind it is not read as something else
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
                  b"GET /ready HTTP/1.1\r\nHost: a\r\n\r\n")
        c = Client(s)
        r = c.read_response()
        assert_eq((r.status, r.header("connection")), (200, "close"))
        assert c.closed()
        s.close()
        # strict parsing: a bare LF line, and an obs-fold
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n")
        r = Client(s).read_response()
        assert_eq(r.status, 400)
        s.close()
        # keep-alive and pipelining: answers in order on one connection
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /ready HTTP/1.1\r\nHost: a\r\n\r\n"
                  b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
        c = Client(s)
        assert_eq([c.read_response().status for _ in range(3)], [200, 200, 404])
        s.close()
        # traffic is unaffected
        assert_eq(get(p, "/x").status, 200)
    finally:
        p.stop()
        b.close()
    assert any("admin port on 127.0.0.1:%d" % port in l.get("msg", "") for l in p.log_lines())


def test_ad02_token():
    p, port = admin_proxy({"upstreams": {"app": {"backends": [{"address": dead_addr()}]}},
                           "routes": [{"path_prefix": "/", "upstream": "app"}]})
    try:
        for path in ("/healthz", "/ready", "/metrics", "/stats", "/config", "/nope"):
            r = admin_get(port, path, token=None)
            assert_eq(r.status, 401, path)
            assert_eq(r.header("www-authenticate"), 'Bearer realm="revproxy admin"')
            assert b"t0ken" not in r.body
        for bad in ("wrong", TOKEN + "x", TOKEN[:-1], "", TOKEN.upper()):
            r = admin_get(port, "/healthz", token=bad)
            assert_eq(r.status, 401, bad)
        # one guess per connection
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\n\r\n"
                  b"GET /healthz HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer y\r\n\r\n")
        c = Client(s)
        r = c.read_response()
        assert_eq((r.status, r.header("connection")), (401, "close"))
        assert c.closed()
        s.close()
        # other schemes, and a second Authorization field
        for hdr in ("Basic " + TOKEN, TOKEN, "Bearer" + TOKEN):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(("GET /healthz HTTP/1.1\r\nHost: a\r\nAuthorization: %s\r\n\r\n" % hdr).encode())
            assert_eq(Client(s).read_response().status, 401, hdr)
            s.close()
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(("GET /healthz HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n"
                   "Authorization: Bearer %s\r\n\r\n" % (TOKEN, TOKEN)).encode())
        assert_eq(Client(s).read_response().status, 401)
        s.close()
        assert_eq(admin_get(port, "/healthz").status, 200)
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(("GET /healthz HTTP/1.1\r\nHost: a\r\nauthorization: bEaReR %s\r\n\r\n" % TOKEN).encode())
        assert_eq(Client(s).read_response().status, 200)
        s.close()
        # the token is redacted from /config
        r = admin_get(port, "/config")
        assert_eq(r.status, 200)
        assert TOKEN.encode() not in r.body
        cfg = json.loads(r.body)
        assert_eq(cfg["config"]["admin"]["token"], "(redacted)")
        with open(p.config_path, "rb") as f:
            assert_eq(cfg["sha256"], hashlib.sha256(f.read()).hexdigest())
        assert abs(cfg["loaded_at"] - time.time()) < 60
        assert_eq(cfg["config"]["upstreams"]["app"]["backends"][0]["weight"], 1)
    finally:
        p.stop()
    # refusals are logged, without the token
    text = p.logs()
    assert "401 (no valid token" in text
    assert TOKEN not in text


def write_config(d, cfg):
    path = os.path.join(d, "c.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def test_ad03_remote_bind_refused():
    import tempfile
    d = tempfile.mkdtemp(prefix="rp-test-")
    lport = free_port()
    base = {"listeners": [{"address": "127.0.0.1:%d" % lport}],
            "upstreams": {"app": {"backends": [{"address": "127.0.0.1:9"}]}},
            "routes": [{"path_prefix": "/", "upstream": "app"}]}
    port = free_port()
    for addr in ("0.0.0.0:%d" % port, "[::]:%d" % port, "192.0.2.1:%d" % port):
        cfg = dict(base, admin={"address": addr, "token": TOKEN})
        r = subprocess.run([REVPROXY, "--config", write_config(d, cfg)], capture_output=True,
                           timeout=10)
        assert_eq(r.returncode, 78, r.stderr)   # EX_CONFIG
        assert ("admin.address: %s is not a loopback address" % addr) in r.stderr.decode(), r.stderr
    # allowed when asked for: it listens on every address
    cfg = dict(base, admin={"address": "0.0.0.0:%d" % port, "token": TOKEN, "allow_remote": True})
    r = subprocess.run([REVPROXY, "--check", "--config", write_config(d, cfg)], capture_output=True,
                       timeout=10)
    assert_eq(r.returncode, 0, r.stderr)
    p = Proxy(cfg, port=lport)
    try:
        assert_eq(admin_get(port, "/healthz").status, 200)
    finally:
        p.stop()
    # an IPv4-mapped address is refused; [::] is IPv6 only, so it does not
    # overlap an IPv4 listener on the same port
    cfg = dict(base, admin={"address": "[::ffff:127.0.0.1]:%d" % port})
    r = subprocess.run([REVPROXY, "--check", "--config", write_config(d, cfg)], capture_output=True,
                       timeout=10)
    assert_eq(r.returncode, 78, r.stderr)
    assert b"is an IPv4-mapped IPv6 address" in r.stderr, r.stderr
    if socket.has_ipv6:
        v4 = dict(base, listeners=[{"address": "0.0.0.0:%d" % lport}],
                  admin={"address": "[::]:%d" % lport, "allow_remote": True, "token": TOKEN})
        p = Proxy(v4, port=lport)
        try:
            s = socket.create_connection(("::1", lport), timeout=5)
            s.sendall(("GET /healthz HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n\r\n"
                       % TOKEN).encode())
            assert_eq(Client(s).read_response().status, 200)
            s.close()
        finally:
            p.stop()
    # without a token it warns
    cfg = dict(base, admin={"address": "0.0.0.0:%d" % port, "allow_remote": True})
    r = subprocess.run([REVPROXY, "--check", "--config", write_config(d, cfg)], capture_output=True,
                       timeout=10)
    assert_eq(r.returncode, 0, r.stderr)
    assert b"warning: admin.allow_remote: " in r.stderr, r.stderr
    # a short token too
    cfg = dict(base, admin={"address": "127.0.0.1:%d" % port, "token": "short"})
    r = subprocess.run([REVPROXY, "--check", "--config", write_config(d, cfg)], capture_output=True,
                       timeout=10)
    assert_eq(r.returncode, 0, r.stderr)
    assert b"warning: admin.token: 5 characters is short for a secret" in r.stderr, r.stderr
    # a port already taken: revproxy does not start, and says why
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    cfg = dict(base, admin={"address": "127.0.0.1:%d" % taken.getsockname()[1]})
    try:
        r = subprocess.run([REVPROXY, "--config", write_config(d, cfg)], capture_output=True,
                           timeout=20)
    finally:
        taken.close()
    assert_eq(r.returncode, 1, r.stderr)
    assert b"admin.address: cannot listen on" in r.stderr, r.stderr


def mix_backend(req, ci, s):
    if req.target.startswith("/slow"):
        time.sleep(1.0)
        return response(200, b"late")
    if req.target.startswith("/flaky"):
        # the first try fails, its retry succeeds
        FLAKY.append(1)
        if len(FLAKY) == 1:
            return response(503, b"busy")
        return response(200, b"second")
    return response(200, b"hello")


FLAKY = []


def test_ad04_exact_deltas_and_stats_agree():
    b = Backend(mix_backend)
    dead = dead_addr()
    cfg = {"workers": 2,
           "upstreams": {"app": {"backends": [{"address": b.addr}],
                                 "retry": {"max_retries": 1, "on_status": [503], "budget_percent": 100,
                                           "backoff_base_ms": 1, "backoff_max_ms": 2}},
                         "gone": {"backends": [{"address": dead}], "retry": {"max_retries": 0}}},
           "routes": [{"host": "app.test", "path_prefix": "/", "upstream": "app",
                       "timeouts": {"upstream_response_ms": 300}},
                      {"host": "gone.test", "path_prefix": "/", "upstream": "gone"}],
           "limits": {"max_header_bytes": 4096}}
    p, port = admin_proxy(cfg)
    try:
        before = scrape(port)
        assert_eq(value(before, "revproxy_build_info", version=value_version(before)), 1.0)
        for _ in range(3):
            assert_eq(get(p, "/ok", host="app.test").status, 200)
        assert_eq(get(p, "/", host="nowhere.test").status, 404)
        assert_eq(get(p, "/", host="gone.test").status, 502)
        assert_eq(get(p, "/", host="app.test", headers=[("X-Big", "a" * 5000)]).status, 431)
        assert_eq(get(p, "/flaky", host="app.test").status, 200)
        assert_eq(get(p, "/slow", host="app.test").status, 504)
        R = "app.test /*"
        want = {
            key("revproxy_http_requests_total", route=R, code="2xx"): 4,
            key("revproxy_http_requests_total", route=R, code="5xx"): 1,
            key("revproxy_http_requests_total", route="gone.test /*", code="5xx"): 1,
            key("revproxy_http_requests_total", route="none", code="4xx"): 2,
            key("revproxy_http_request_duration_seconds_count", route=R): 5,
            key("revproxy_http_errors_total", reason="no_route"): 1,
            key("revproxy_http_errors_total", reason="upstream_connect_failed"): 1,
            key("revproxy_http_errors_total", reason="headers_too_large"): 1,
            key("revproxy_http_errors_total", reason="upstream_timeout"): 1,
            key("revproxy_http_errors_total", reason="bad_request"): 0,
            key("revproxy_upstream_requests_total", upstream="app"): 5,
            key("revproxy_upstream_attempts_total", upstream="app", result="ok"): 5,
            # the GET that timed out was tried twice (max_retries 1)
            key("revproxy_upstream_attempts_total", upstream="app", result="timeout"): 2,
            key("revproxy_upstream_retries_total", upstream="app"): 2,
            key("revproxy_upstream_timeouts_total", upstream="app", phase="response"): 2,
            key("revproxy_upstream_request_duration_seconds_count", upstream="app"): 7,
            key("revproxy_upstream_connect_errors_total", upstream="gone"): 1,
            key("revproxy_upstream_requests_total", upstream="gone"): 1,
        }
        after = settle(port, want, before)
        # the connection gauge returns to zero, all connections counted
        lst = p.config["listeners"][0]["address"]
        deadline = time.time() + 5
        while value(after, "revproxy_connections_active", listener=lst) != 0 and time.time() < deadline:
            time.sleep(0.05)
            after = scrape(port)
        assert_eq(value(after, "revproxy_connections_active", listener=lst), 0.0)
        assert_eq(value(after, "revproxy_connections_accepted_total", listener=lst)
                  - value(before, "revproxy_connections_accepted_total", listener=lst), 8.0)
        # /stats says the same
        st = stats(port)
        m = scrape(port)
        assert_eq(st["requests"]["errors"]["no_route"], value(m, "revproxy_http_errors_total", reason="no_route"))
        for word, n in st["requests"]["errors"].items():
            assert_eq(n, value(m, "revproxy_http_errors_total", reason=word), word)
        for r in st["routes"]:
            for cls, n in r["requests"].items():
                assert_eq(n, value(m, "revproxy_http_requests_total", route=r["route"], code=cls))
            assert_eq(r["duration_seconds"]["count"],
                      value(m, "revproxy_http_request_duration_seconds_count", route=r["route"]))
        for name, u in st["upstreams"].items():
            assert_eq(u["requests"], value(m, "revproxy_upstream_requests_total", upstream=name))
            assert_eq(u["retries"], value(m, "revproxy_upstream_retries_total", upstream=name))
            assert_eq(u["connect_errors"], value(m, "revproxy_upstream_connect_errors_total", upstream=name))
            for res, n in u["attempt_results"].items():
                assert_eq(n, value(m, "revproxy_upstream_attempts_total", upstream=name, result=res))
            for be in u["backends"]:
                assert_eq(1.0 if be["up"] else 0.0,
                          value(m, "revproxy_upstream_up", upstream=name, backend=be["address"]))
        assert_eq(st["connections"]["listeners"][lst]["accepted"],
                  value(m, "revproxy_connections_accepted_total", listener=lst))
        assert_eq(st["config"]["sha256"], json.loads(admin_get(port, "/config").body)["sha256"])
    finally:
        p.stop()
        b.close()


def value_version(series):
    for (name, labels) in series:
        if name == "revproxy_build_info":
            return dict(labels)["version"]
    raise AssertionError("no revproxy_build_info")


def test_ad05_every_backend_down_ready_stays():
    dead1, dead2 = dead_addr(), dead_addr()
    cfg = {"upstreams": {"app": {"backends": [{"address": dead1}, {"address": dead2}],
                                 "retry": {"max_retries": 0},
                                 "health": {"passive": {"consecutive_failures": 1,
                                                        "ejection_ms": 60000,
                                                        "max_ejection_percent": 100}}}},
           "routes": [{"path_prefix": "/", "upstream": "app"}]}
    p, port = admin_proxy(cfg)
    try:
        t0 = time.time()
        for _ in range(4):
            get(p, "/")
        deadline = time.time() + 5
        while True:
            st = stats(port)
            bes = st["upstreams"]["app"]["backends"]
            if all(not be["up"] for be in bes) or time.time() > deadline:
                break
            time.sleep(0.05)
        assert_eq(sorted(be["address"] for be in bes), sorted([dead1, dead2]))
        for be in bes:
            assert_eq((be["health"], be["up"]), ("unhealthy", False), be)
            assert "passive: 1 failures in a row" in be["last_transition_reason"], be
            assert t0 - 1 <= be["since"] <= time.time() + 1, be
            assert_eq(be["transitions"]["unhealthy"], 1)
            assert_eq(be["connections"], {"active": 0, "idle": 0})
        r = get(p, "/")
        assert_eq(r.status, 503)
        assert b"no_healthy_backend" in r.body
        assert_eq(admin_get(port, "/ready").status, 200)
        m = scrape(port)
        for a in (dead1, dead2):
            assert_eq(value(m, "revproxy_upstream_up", upstream="app", backend=a), 0.0)
            assert_eq(value(m, "revproxy_upstream_health_transitions_total", upstream="app",
                            backend=a, to="unhealthy"), 1.0)
    finally:
        p.stop()


def test_ad06_reason_word_everywhere():
    """For each failure the proxy answers itself, the same word in the
    access line's error, the error log line's error, the body and the
    metric's reason label, tied together by the request id."""
    def h(req, ci, s):
        if req.target == "/slow":
            time.sleep(1.0)
        return response(200, b"ok")
    b = Backend(h)
    cfg = {"upstreams": {"app": {"backends": [{"address": b.addr}], "retry": {"max_retries": 0}},
                         "gone": {"backends": [{"address": dead_addr()}], "retry": {"max_retries": 0}}},
           "routes": [{"host": "app.test", "path_prefix": "/", "upstream": "app",
                       "timeouts": {"upstream_response_ms": 200}},
                      {"host": "gone.test", "path_prefix": "/", "upstream": "gone"}],
           "limits": {"max_header_bytes": 4096, "max_uri_bytes": 256, "max_body_bytes": 10}}
    p, port = admin_proxy(cfg)
    cases = [
        ("uri_too_long", 414, dict(path="/" + "u" * 300, host="app.test")),
        ("body_too_large", 413, dict(path="/", host="app.test", method="POST", body=b"x" * 100)),
        ("method_not_allowed", 405, dict(path="app.test:80", host="app.test", method="CONNECT")),
        ("no_route", 404, dict(path="/", host="else.test")),
        ("upstream_connect_failed", 502, dict(path="/", host="gone.test")),
        ("upstream_timeout", 504, dict(path="/slow", host="app.test")),
        ("headers_too_large", 431, dict(path="/", host="app.test", headers=[("X-Big", "a" * 5000)])),
    ]
    try:
        for word, status, kw in cases:
            before = scrape(port)
            r = get(p, **kw)
            assert_eq(r.status, status, word)
            assert ("error: %s\n" % word).encode() in r.body, r.body
            rid = r.header("x-request-id")
            assert rid and rid.encode() in r.body
            settle(port, {key("revproxy_http_errors_total", reason=word): 1}, before)
            deadline = time.time() + 5
            while True:
                lines = [l for l in p.log_lines() if l.get("request_id") == rid]
                acc = [l for l in lines if l.get("msg") == "access"]
                errs = [l for l in lines if l.get("msg") != "access" and l.get("error")]
                if (acc and errs) or time.time() > deadline:
                    break
                time.sleep(0.05)
            assert_eq([l["error"] for l in acc], [word])
            assert errs, "no error log line for %s: %r" % (word, lines)
            assert_eq({l["error"] for l in errs}, {word})
    finally:
        p.stop()
        b.close()


def test_ad07_workers_sum():
    b = Backend()
    cfg = {"workers": 2, "upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}]}
    p, port = admin_proxy(cfg)
    try:
        before = scrape(port)
        n = 40
        for _ in range(n):
            assert_eq(get(p, "/").status, 200)
        settle(port, {key("revproxy_http_requests_total", route="* /*", code="2xx"): n,
                      key("revproxy_upstream_requests_total", upstream="app"): n}, before)
    finally:
        p.stop()
        b.close()


def test_ad08_connection_cap_and_timeout():
    b = Backend()
    # 3000 routes: an exposition of several MB, too much for socket buffers
    cfg = {"upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}]
           + [{"path_prefix": "/r%d/" % i, "upstream": "app"} for i in range(3000)]}
    p, port = admin_proxy(cfg, token=None)
    held = []
    try:
        for _ in range(16):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            assert_eq(Client(s).read_response().status, 200)
            held.append(s)
        # the 17th waits in the backlog, unanswered, until one closes
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        extra.settimeout(0.5)
        try:
            got = extra.recv(100)
            raise AssertionError("answered beyond the cap: %r" % got)
        except socket.timeout:
            pass
        # traffic is unaffected
        assert_eq(get(p, "/").status, 200)
        held.pop().close()
        extra.settimeout(5)
        assert_eq(Client(extra).read_response().status, 200)
        extra.close()
        # a connection that does not finish its request is closed after
        # 10 s, and so is one whose reader takes longer than that for
        # its answer, however steadily it reads
        while held:
            held.pop().close()
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", port))
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        s = socket.create_connection(("127.0.0.1", port), timeout=15)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")
        t0 = time.time()
        try:
            assert_eq(s.recv(100), b"")
        except ConnectionResetError:
            pass
        took = time.time() - t0
        assert 9 <= took <= 13, took
        s.close()
        got, ended = 0, None
        slow.settimeout(1)
        while time.time() - t0 < 16:
            try:
                data = slow.recv(2048)
            except socket.timeout:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                ended = time.time() - t0
                break
            got += len(data)
            time.sleep(0.05)
        slow.close()
        assert ended is not None and ended < 13, (ended, got)
        assert got < 2000000, got   # it was cut, not served whole
    finally:
        for s in held:
            s.close()
        p.stop()
        b.close()


def test_ad09_log_format_text():
    b = Backend()
    cfg = {"upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}],
           "log": {"level": "info", "format": "text"}}
    p = Proxy(cfg)
    try:
        r = get(p, "/a b?x=1".replace(" ", "%20"), headers=[("Authorization", "Bearer sekret"),
                                                            ("Cookie", "sid=hidden")])
        assert_eq(r.status, 200)
        assert_eq(get(p, "/", host="x\"y").status, 400)
    finally:
        p.stop()
        b.close()
    text = p.logs()
    lines = text.splitlines()
    assert lines and not any(l.startswith("{") for l in lines), text[:2000]
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert any(re.match(ts + r" info listening on 127\.0\.0\.1:\d+ \(1 workers\)$", l) for l in lines), text
    acc = [l for l in lines if re.match(ts + " info access ", l)]
    assert_eq(len(acc), 2)
    rid = r.header("x-request-id")
    assert ("request_id=%s " % rid) in acc[0], acc[0]
    assert " status=200 " in acc[0] and " target=/a%20b?x=1 " in acc[0], acc[0]
    assert " upstream_results=[\"ok\"] " in acc[0] and " upstream_duration_ms=" in acc[0], acc[0]
    assert " error=bad_request " in acc[1] and " status=400 " in acc[1], acc[1]
    assert "sekret" not in text and "hidden" not in text
    # --dump-config says which
    r = subprocess.run([REVPROXY, "--dump-config", "--config", p.config_path], capture_output=True)
    assert_eq(json.loads(r.stdout)["log"]["format"], "text")


def test_ad10_access_lines_buffered_none_lost():
    """Workers hand their access lines over in buffers: a line shows up
    within a moment of its request, none is lost or torn in a burst from
    two workers, and those still buffered are written on stop."""
    b = Backend()
    import tempfile
    d = tempfile.mkdtemp(prefix="rp-test-")
    path = os.path.join(d, "access.log")
    cfg = {"workers": 2, "upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}],
           "log": {"level": "info", "access_log": path}}
    p = Proxy(cfg)
    n = 0
    try:
        r = get(p, "/first")
        rid = r.header("x-request-id")
        t0 = time.time()
        while time.time() - t0 < 3:
            with open(path) as f:
                if rid in f.read():
                    break
            time.sleep(0.01)
        took = time.time() - t0
        assert took < 1.0, took     # flushed by its timer (100 ms), not by a full buffer
        import threading
        def burst():
            nonlocal n
            for _ in range(300):
                s = p.connect()
                c = Client(s)
                for i in range(5):
                    c.send(("GET /burst/%d HTTP/1.1\r\nHost: a\r\n\r\n" % i).encode())
                    assert_eq(c.read_response().status, 200)
                s.close()
        ts = [threading.Thread(target=burst) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        p.stop()
        b.close()
    with open(path) as f:
        lines = f.read().splitlines()
    parsed = [json.loads(l) for l in lines]
    assert_eq(len([l for l in parsed if l["target"].startswith("/burst/")]), 3000)
    assert_eq(len({l["request_id"] for l in parsed}), len(parsed))


def test_ad11_route_names_and_labels():
    import tempfile
    d = tempfile.mkdtemp(prefix="rp-test-")
    base = {"listeners": [{"address": "127.0.0.1:%d" % free_port()}],
            "upstreams": {"app": {"backends": [{"address": "127.0.0.1:9"}]}}}
    # an exact "/a*" and a prefix "/a" would share a label
    cfg = dict(base, routes=[{"path": "/a*", "upstream": "app"},
                             {"path_prefix": "/a", "upstream": "app"}])
    r = subprocess.run([REVPROXY, "--check", "--config", write_config(d, cfg)], capture_output=True,
                       timeout=10)
    assert_eq(r.returncode, 78, r.stderr)
    assert b'routes[1]: shows as "* /a*" in logs and metrics, as routes[0] does: give one of them a "name"' \
        in r.stderr, r.stderr
    for bad in ("", "a b", "x" * 65, "caf\u00e9"):
        cfg = dict(base, routes=[{"name": bad, "path_prefix": "/", "upstream": "app"}])
        r = subprocess.run([REVPROXY, "--check", "--config", write_config(d, cfg)],
                           capture_output=True, timeout=10)
        assert_eq(r.returncode, 78, r.stderr)
        assert b"routes[0].name: must be 1 to 64 letters, digits and ._:-" in r.stderr, r.stderr
    cfg = dict(base, routes=[{"name": "dup", "path": "/x", "upstream": "app"},
                             {"name": "dup", "path": "/y", "upstream": "app"}])
    r = subprocess.run([REVPROXY, "--check", "--config", write_config(d, cfg)], capture_output=True,
                       timeout=10)
    assert_eq(r.returncode, 78, r.stderr)
    assert b'routes[1].name: "dup" is routes[0]\'s already' in r.stderr or \
        b'routes[1]: name "dup" is routes[0]\'s already' in r.stderr, r.stderr
    # a name is the route's label in access lines and metrics
    b = Backend()
    cfg = {"upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"name": "api.v1", "path": "/a*", "upstream": "app"},
                      {"path_prefix": "/a", "upstream": "app"}]}
    p, port = admin_proxy(cfg)
    try:
        before = scrape(port)
        assert_eq(get(p, "/a*").status, 200)
        assert_eq(get(p, "/a/b").status, 200)
        settle(port, {key("revproxy_http_requests_total", route="api.v1", code="2xx"): 1,
                      key("revproxy_http_requests_total", route="* /a*", code="2xx"): 1}, before)
        dumped = json.loads(admin_get(port, "/config").body)["config"]["routes"]
        assert_eq(dumped[0]["name"], "api.v1")
        assert "name" not in dumped[1]
    finally:
        p.stop()
        b.close()
    assert_eq(sorted(l["route"] for l in access_lines(p)), ["* /a*", "api.v1"])


def test_ad12_out_of_descriptors():
    """The admin port out of descriptors pauses (no busy loop on its
    backlog, a line a second at most) and answers again once they free."""
    import resource
    b = Backend()
    cfg = {"upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}], "log": {"level": "info"}}
    p, port = admin_proxy(cfg, token=None)
    socks = []
    try:
        soft, hard = resource.prlimit(p.proc.pid, resource.RLIMIT_NOFILE)
        nfd = len(os.listdir("/proc/%d/fd" % p.proc.pid))
        resource.prlimit(p.proc.pid, resource.RLIMIT_NOFILE, (nfd, hard))
        try:
            for _ in range(3):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                socks.append(s)
            t0 = time.time()
            time.sleep(1.5)
            cpu = sum(int(x) for x in open("/proc/%d/stat" % p.proc.pid).read().rsplit(")", 1)[1].split()[11:13])
        finally:
            resource.prlimit(p.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
        for s in socks:
            s.settimeout(5)
            assert_eq(Client(s).read_response().status, 200)
        took = time.time() - t0
        assert took < 3, took
        assert_eq(admin_get(port, "/healthz").status, 200)
    finally:
        for s in socks:
            s.close()
        p.stop()
        b.close()
    lines = [l for l in p.log_lines() if "admin: accept:" in l.get("msg", "")]
    assert 1 <= len(lines) <= 3, len(lines)
    hz = os.sysconf("SC_CLK_TCK")
    assert cpu < 1.0 * hz, cpu   # not a second of CPU spinning


def test_ad13_http2_goaway_by_code():
    b = Backend()
    cfg = {"upstreams": {"app": {"backends": [{"address": b.addr}]}},
           "routes": [{"path_prefix": "/", "upstream": "app"}]}
    p, port = admin_proxy(cfg)
    try:
        before = scrape(port)
        # prior-knowledge HTTP/2, then DATA on stream 0: a connection error
        s = p.connect()
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                  + b"\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"x")
        s.settimeout(5)
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass
        s.close()
        settle(port, {key("revproxy_http2_goaways_total", code="protocol_error"): 1,
                      key("revproxy_http2_goaways_total", code="no_error"): 0}, before)
    finally:
        p.stop()
        b.close()


if __name__ == "__main__":
    sys.exit(run([test_ad01_endpoints, test_ad02_token, test_ad03_remote_bind_refused,
                  test_ad04_exact_deltas_and_stats_agree, test_ad05_every_backend_down_ready_stays,
                  test_ad06_reason_word_everywhere, test_ad07_workers_sum,
                  test_ad08_connection_cap_and_timeout, test_ad09_log_format_text,
                  test_ad10_access_lines_buffered_none_lost, test_ad11_route_names_and_labels,
                  test_ad12_out_of_descriptors, test_ad13_http2_goaway_by_code]))
