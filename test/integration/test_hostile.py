# SPDX-License-Identifier: MIT
"""Hostile clients (in progress): whose X-Forwarded-For is believed
(trusted_proxies), and what revproxy says of itself (server_header)."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend, Client, Proxy, response, run  # noqa: E402
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


if __name__ == "__main__":
    sys.exit(run([test_h01_forwarded_for_believed_only_from_trusted_peers,
                  test_h02_server_header]))
