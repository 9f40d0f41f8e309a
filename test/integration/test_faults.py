# SPDX-License-Identifier: MIT
"""Failure injection: outputs that fail, descriptors that run out.  The
proxy keeps serving, counts what it loses, and says so without flooding
its own log."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Backend, Client, Proxy, free_port, response, run  # noqa: E402
from test_proxy import access_lines, assert_eq  # noqa: E402
from test_hostile import admin_get  # noqa: E402


def test_f01_access_log_on_a_full_device():
    """log.access_log on /dev/full: every write fails (ENOSPC).  Requests are
    served as usual, the lost lines are counted in
    revproxy_log_lines_dropped_total, and the error log says so once a
    second at most, not once a line."""
    b = Backend(lambda req, ci, s: response(200, b"ok"))
    aport = free_port()
    p = Proxy({"upstreams": {"a": {"backends": [{"address": b.addr}]}},
               "routes": [{"path_prefix": "/", "upstream": "a"}],
               "admin": {"address": "127.0.0.1:%d" % aport},
               "log": {"access_log": "/dev/full"}})
    try:
        s = p.connect(timeout=10)
        c = Client(s)
        for round_ in range(3):
            c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 500)
            for _ in range(500):
                assert_eq(c.read_response().status, 200)
            time.sleep(0.6)
        s.close()
        deadline = time.time() + 5
        while True:
            st = json.loads(admin_get(aport, "/stats").body)
            if st["log_lines_dropped"] >= 1500 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert_eq(st["log_lines_dropped"], 1500)
        m = admin_get(aport, "/metrics").body.decode()
        assert "revproxy_log_lines_dropped_total 1500" in m, [l for l in m.split("\n") if "dropped" in l]
        reports = [l for l in p.log_lines() if "log write failed" in l.get("msg", "")]
        assert 1 <= len(reports) <= 4, reports
        assert "No space left on device" in reports[0]["msg"], reports[0]
        assert p.proc.poll() is None
    finally:
        p.stop()
        b.close()


def cpu_ticks(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def test_f02_out_of_descriptors_pauses_accepting():
    """The descriptor limit lowered under revproxy's feet (prlimit) while 40
    clients connect: accepting pauses without spinning (the error logged
    once per pause, not per failure), a client already connected is still
    served, and once descriptors are back every waiting client is served."""
    import resource
    b = Backend(lambda req, ci, s: response(200, b"ok"))
    aport = free_port()
    p = Proxy({"upstreams": {"a": {"backends": [{"address": b.addr}]}},
               "routes": [{"path_prefix": "/", "upstream": "a"}],
               "admin": {"address": "127.0.0.1:%d" % aport}})
    waiting = []
    try:
        kept = Client(p.connect(timeout=10))
        kept.send(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        assert_eq(kept.read_response().status, 200)
        soft, hard = resource.prlimit(p.proc.pid, resource.RLIMIT_NOFILE)
        nfd = len(os.listdir("/proc/%d/fd" % p.proc.pid))
        # Room for the kept client's backend connection only.
        resource.prlimit(p.proc.pid, resource.RLIMIT_NOFILE, (nfd + 1, hard))
        try:
            for i in range(40):
                s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
                s.sendall(b"GET /w%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % i)
                waiting.append(s)
            before = cpu_ticks(p.proc.pid)
            time.sleep(2.5)
            spent = cpu_ticks(p.proc.pid) - before
            kept.send(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
            assert_eq(kept.read_response().status, 200)
        finally:
            resource.prlimit(p.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
        assert spent < 50, "accepting spun: %d ticks in 2.5 s" % spent
        for s in waiting:
            s.settimeout(10)
            assert_eq(Client(s).read_response().status, 200)
        assert_eq(admin_get(aport, "/healthz").status, 200)
        pauses = [l for l in p.log_lines() if "pausing accepts" in l.get("msg", "")]
        assert 1 <= len(pauses) <= 6, len(pauses)
    finally:
        for s in waiting:
            s.close()
        p.stop()
        b.close()


def test_f03_answers_at_the_timeout_boundary():
    """upstream_response_ms 40 against a backend answering after 30 to 50 ms,
    and a route with request_ms 1: every request gets exactly one answer
    (200 or 504, or 504 for the 1 ms route) and one access line; nothing is
    completed twice (the sanitizer build checks the memory side)."""
    import random
    import threading

    def handler(req, ci, s):
        time.sleep(random.uniform(0.030, 0.050))
        return response(200, b"ok")
    b = Backend(handler)
    p = Proxy({"upstreams": {"a": {"backends": [{"address": b.addr}],
                                   "retry": {"max_retries": 0}}},
               "routes": [{"path_prefix": "/tiny", "upstream": "a", "timeouts": {"request_ms": 1}},
                          {"path_prefix": "/", "upstream": "a"}],
               "timeouts": {"upstream_response_ms": 40}})
    statuses = []
    lock = threading.Lock()

    def client(k):
        for i in range(25):
            path = "/tiny/%d/%d" % (k, i) if i % 5 == 0 else "/b/%d/%d" % (k, i)
            s = p.connect(timeout=10)
            s.sendall(("GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % path).encode())
            r = Client(s).read_response()
            s.close()
            with lock:
                statuses.append((path, r.status))
    try:
        ts = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert_eq(len(statuses), 200)
        for path, st in statuses:
            assert st in ((504,) if path.startswith("/tiny") else (200, 504)), (path, st)
        deadline = time.time() + 5
        while len(access_lines(p)) < 200 and time.time() < deadline:
            time.sleep(0.05)
        lines = access_lines(p)
        assert_eq(sorted(l["target"] for l in lines), sorted(path for path, st in statuses))
        got = dict((l["target"], l["status"]) for l in lines)
        assert_eq(got, dict(statuses))
        n504 = sum(1 for _, st in statuses if st == 504)
        print("    %d of 200 at 504 (40 of them the 1 ms route)" % n504)
        assert p.proc.poll() is None
    finally:
        p.stop()
        b.close()


if __name__ == "__main__":
    sys.exit(run([test_f01_access_log_on_a_full_device,
                  test_f02_out_of_descriptors_pauses_accepting,
                  test_f03_answers_at_the_timeout_boundary]))
