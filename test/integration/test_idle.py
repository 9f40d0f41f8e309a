# SPDX-License-Identifier: MIT
"""Idle HTTP/1 keep-alive connections keep only their socket.

A plain-TCP keep-alive connection idle for 1 s (or at once, while its
worker already has 64 whole idle ones) gives up its parser, buffers and
timers and keeps its socket, peer and one event; its next bytes make it
whole again, the rest of timeouts.client_idle_ms closes it.  These tests
check that nothing an operator or a client can see changes: requests go
on, timeouts are the configured ones, a half-close or a drain closes it,
per-address counts and listener removal hold."""
import json
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, Client, KeepAliveClient, Proxy, free_port, request_bytes,  # noqa: E402
                     response, run, upstream_config)
from test_proxy import access_lines, assert_eq  # noqa: E402

COMPACT_S = 1.0   # RP_IDLE_COMPACT_MS


def handler(req, ci, s):
    return response(200, b"got " + req.target.encode())


def setup(**extra):
    b = Backend(handler)
    cfg = upstream_config(b, **extra)
    cfg["log"] = {"level": "debug"}
    return b, Proxy(cfg)


def compacted(p):
    return sum(1 for l in p.log_lines() if l.get("msg", "").endswith("idle: only its socket kept"))


def woken(p):
    return sum(1 for l in p.log_lines() if l.get("msg", "").endswith(": whole again"))


def served_once(p, path="/x"):
    """A keep-alive connection that has had one request answered."""
    s = p.connect()
    c = Client(s)
    c.send(request_bytes(path, close=False))
    assert_eq(c.read_response().status, 200)
    return s, c


def wait_for(cond, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def test_id01_idle_then_more_requests():
    """After 1 s idle the connection keeps its socket only; requests on it
    go on, each one answered, the access lines unchanged."""
    b, p = setup(timeouts={"client_idle_ms": 10000})
    try:
        with KeepAliveClient(p) as c:
            assert_eq(c.request("/one").body, b"got /one")
            wait_for(lambda: compacted(p) == 1, 3, "the connection to be compacted")
            for i in range(3):
                r = c.request("/again/%d" % i)
                assert_eq(r.status, 200)
                assert_eq(r.body, b"got /again/%d" % i)
            assert_eq(woken(p), 1)
            # Idle again: compacted again, and woken by a pipelined pair.
            wait_for(lambda: compacted(p) == 2, 3, "a second compaction")
            c.client.send(request_bytes("/p1", close=False) + request_bytes("/p2", close=False))
            assert_eq(c.client.read_response().body, b"got /p1")
            assert_eq(c.client.read_response().body, b"got /p2")
        wait_for(lambda: len(access_lines(p)) == 6, 3, "the access lines")
        lines = access_lines(p)
        assert_eq([l["target"] for l in lines], ["/one", "/again/0", "/again/1", "/again/2",
                                                  "/p1", "/p2"])
        assert all(l["client"] == lines[0]["client"] for l in lines), lines
    finally:
        p.stop()
        b.close()


def test_id02_idle_timeout_is_the_configured_one():
    """client_idle_ms counts from the end of the response, across the
    compaction: closed after 1.8 s, not after 1 s nor 2.8 s."""
    b, p = setup(timeouts={"client_idle_ms": 1800})
    try:
        s, c = served_once(p)
        t0 = time.time()
        s.settimeout(5)
        assert s.recv(1) == b"", "the idle connection sent bytes"
        took = time.time() - t0
        assert 1.6 < took < 2.4, "closed after %.2f s" % took
        assert_eq(compacted(p), 1)
        s.close()
    finally:
        p.stop()
        b.close()


def test_id03_a_head_in_pieces_after_compaction():
    """Bytes trickling in on a compacted connection: the head is put
    together as on any connection, and client_header_ms bounds it."""
    b, p = setup(timeouts={"client_idle_ms": 10000, "client_header_ms": 800})
    try:
        s, c = served_once(p, "/a")
        wait_for(lambda: compacted(p) == 1, 3, "compaction")
        req = request_bytes("/b", close=False)
        for i in range(0, len(req), 7):
            s.sendall(req[i:i + 7])
            time.sleep(0.02)
        assert_eq(c.read_response().body, b"got /b")
        # A head that stops half-way: 408 after client_header_ms.
        wait_for(lambda: compacted(p) == 2, 3, "compaction")
        s.sendall(b"GET /c HTTP/1.1\r\nHo")
        t0 = time.time()
        r = c.read_response()
        assert_eq(r.status, 408)
        assert time.time() - t0 < 2, "the head timeout took %.2f s" % (time.time() - t0)
        s.close()
    finally:
        p.stop()
        b.close()


def test_id04_half_close_and_reset_while_compacted():
    """A client that half-closes or resets a compacted connection: it is
    closed, nothing logged as a request, revproxy goes on."""
    b, p = setup(timeouts={"client_idle_ms": 10000})
    try:
        conns = []
        for _ in range(2):
            s = p.connect()
            Client(s).send(request_bytes("/", close=False))
            conns.append(s)
        for s in conns:
            assert_eq(Client(s).read_response().status, 200)
        wait_for(lambda: compacted(p) == 2, 3, "compaction")
        conns[0].shutdown(socket.SHUT_WR)
        conns[0].settimeout(3)
        assert conns[0].recv(1) == b""
        conns[1].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conns[1].close()
        conns[0].close()
        time.sleep(0.2)
        with KeepAliveClient(p) as c:
            assert_eq(c.request("/fine").status, 200)
        wait_for(lambda: len(access_lines(p)) == 3, 3, "the access lines")
        assert_eq([l["target"] for l in access_lines(p)], ["/", "/", "/fine"])
    finally:
        p.stop()
        b.close()


def test_id05_many_idle_compacted_at_once():
    """Past 64 whole idle connections a worker compacts new idle ones
    after 50 ms, not 1 s; every one of 150 still serves its next request."""
    b, p = setup(timeouts={"client_idle_ms": 20000})
    try:
        clients = [KeepAliveClient(p) for _ in range(150)]
        for i, c in enumerate(clients):
            assert_eq(c.request("/first/%d" % i).status, 200)
        # At least 150 - 64 of them without waiting for the second (the
        # log lines say so a moment later: they are written by a thread).
        wait_for(lambda: compacted(p) >= 150 - 64, 0.5, "%d compactions" % (150 - 64))
        for i, c in enumerate(clients):
            assert_eq(c.request("/second/%d" % i).body, b"got /second/%d" % i)
        for c in clients:
            c.close()
    finally:
        p.stop()
        b.close()


def test_id06_drain_closes_compacted_connections():
    """SIGTERM: compacted idle connections are closed at once, revproxy
    exits 0 without waiting for them."""
    b, p = setup(timeouts={"client_idle_ms": 30000})
    try:
        conns = []
        for _ in range(5):
            c = KeepAliveClient(p)
            assert_eq(c.request("/").status, 200)
            conns.append(c)
        wait_for(lambda: compacted(p) == 5, 3, "compaction")
        t0 = time.time()
        p.proc.send_signal(signal.SIGTERM)
        for c in conns:
            c.sock.settimeout(3)
            assert c.sock.recv(1) == b"", "a compacted connection was not closed"
        assert_eq(p.proc.wait(timeout=5), 0)
        assert time.time() - t0 < 2.5
    finally:
        p.stop()
        b.close()


def test_id07_per_address_limit_counts_compacted_connections():
    """A compacted connection still counts against
    limits.max_connections_per_ip, and closing it frees its place."""
    b, p = setup(timeouts={"client_idle_ms": 1500},
                 limits={"max_connections_per_ip": 2})
    try:
        a, c2 = KeepAliveClient(p), KeepAliveClient(p)
        assert_eq(a.request("/").status, 200)
        assert_eq(c2.request("/").status, 200)
        wait_for(lambda: compacted(p) == 2, 3, "compaction")
        third = p.connect()
        third.settimeout(3)
        assert third.recv(1) == b"", "a third connection from one address was served"
        third.close()
        # The idle timeout closes both; then two new ones are served.
        for c in (a, c2):
            c.sock.settimeout(3)
            assert c.sock.recv(1) == b""
        time.sleep(0.1)
        with KeepAliveClient(p) as n1, KeepAliveClient(p) as n2:
            assert_eq(n1.request("/").status, 200)
            assert_eq(n2.request("/").status, 200)
    finally:
        p.stop()
        b.close()


def test_id08_reload_dropping_the_listener_closes_them():
    """A reload that drops a listener closes the compacted connections
    that came through it; those of the kept listener go on."""
    b = Backend(handler)
    keep, drop = free_port(), free_port()
    cfg = upstream_config(b, timeouts={"client_idle_ms": 30000})
    cfg["log"] = {"level": "debug"}
    cfg["listeners"] = [{"address": "127.0.0.1:%d" % keep}, {"address": "127.0.0.1:%d" % drop}]
    p = Proxy(cfg, port=keep)
    try:
        ck = KeepAliveClient(p)
        sd = socket.create_connection(("127.0.0.1", drop), timeout=5)
        cd = Client(sd)
        assert_eq(ck.request("/k").status, 200)
        cd.send(request_bytes("/d", close=False))
        assert_eq(cd.read_response().status, 200)
        wait_for(lambda: compacted(p) == 2, 3, "compaction")
        cfg2 = dict(p.config, listeners=[{"address": "127.0.0.1:%d" % keep}])
        with open(p.config_path, "w") as f:
            json.dump(cfg2, f)
        p.proc.send_signal(signal.SIGHUP)
        sd.settimeout(3)
        try:
            assert sd.recv(1) == b"", "the dropped listener's idle connection stayed open"
        except socket.timeout:
            raise AssertionError("the dropped listener's idle connection stayed open:\n"
                                 + p.logs()[-3000:])
        sd.close()
        assert_eq(ck.request("/k2").body, b"got /k2")
        ck.close()
    finally:
        p.stop()
        b.close()


def test_id09_busy_clients_are_not_compacted():
    """150 busy keep-alive clients (past the 64 whole idle ones a worker
    keeps): their next requests come sooner than the short grace, so
    hardly any is compacted and woken again."""
    import shutil
    import subprocess
    b, p = setup(timeouts={"client_idle_ms": 20000})
    try:
        h2load = shutil.which("h2load")
        assert h2load, "h2load (nghttp2-client) is needed"
        out = subprocess.run([h2load, "--h1", "-n", "6000", "-c", "150",
                              "http://127.0.0.1:%d/" % p.port],
                             capture_output=True, text=True, timeout=60).stdout
        assert "6000 succeeded" in out, out
        time.sleep(0.3)
        print("  %d of 6000 requests woke a compacted connection" % woken(p))
        assert woken(p) < 30, "%d of 6000 requests woke a compacted connection" % woken(p)
    finally:
        p.stop()
        b.close()


def test_id10_bytes_that_start_no_request():
    """A compacted connection woken by a CRLF (which starts no request)
    is still idle: closed at the end of client_idle_ms, not at
    client_header_ms after the wake."""
    b, p = setup(timeouts={"client_idle_ms": 3000, "client_header_ms": 500})
    try:
        s, c = served_once(p)
        t0 = time.time()
        wait_for(lambda: compacted(p) == 1, 3, "compaction")
        time.sleep(0.2)
        s.sendall(b"\r\n")
        wait_for(lambda: woken(p) == 1, 3, "the wake")
        s.settimeout(5)
        assert s.recv(1) == b""
        took = time.time() - t0
        assert 2.7 < took < 3.6, "closed %.2f s after the response (client_idle_ms 3 s)" % took
        s.close()
    finally:
        p.stop()
        b.close()


if __name__ == "__main__":
    sys.exit(run([test_id01_idle_then_more_requests, test_id02_idle_timeout_is_the_configured_one,
                  test_id03_a_head_in_pieces_after_compaction,
                  test_id04_half_close_and_reset_while_compacted,
                  test_id05_many_idle_compacted_at_once,
                  test_id06_drain_closes_compacted_connections,
                  test_id07_per_address_limit_counts_compacted_connections,
                  test_id08_reload_dropping_the_listener_closes_them,
                  test_id09_busy_clients_are_not_compacted,
                  test_id10_bytes_that_start_no_request]))
