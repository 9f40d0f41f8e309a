# SPDX-License-Identifier: MIT
"""Start-up checks against the real binary: the descriptor budget, at
--check and at start."""
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REVPROXY, Backend, Client, Proxy, get, response, run  # noqa: E402


def assert_eq(a, b, msg=""):
    if a != b:
        raise AssertionError("%r != %r %s" % (a, b, msg))


def nofile(soft, hard):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return set_limit


def check(config, preexec_fn):
    fd, path = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(config, f)
    return subprocess.run([REVPROXY, "--check", "--config", path], capture_output=True,
                          text=True, timeout=10, preexec_fn=preexec_fn)


# Two workers, one listener, two upstreams with pools:
#   2 x 1000 connections
#   + 2 workers x (40 idle x 2 backends + 32 idle x 1 backend) = 224
#   + 64 + 2 workers x 1 listener = 66
# = 2290 descriptors; with a limit of 400, (400 - 224 - 66) / 2 = 55
# connections fit.
def budget_config(a_addrs, b_addrs):
    return {
        "workers": 2,
        "listeners": [{"address": "127.0.0.1:1"}],
        "limits": {"max_connections": 1000},
        "upstreams": {
            "a": {"backends": [{"address": x} for x in a_addrs],
                  "pool": {"max_idle_per_backend": 40}},
            "b": {"backends": [{"address": x} for x in b_addrs]},
        },
        "routes": [{"path_prefix": "/", "upstream": "a"}],
    }


WARNING = ("file descriptor limit 400 is too low for limits.max_connections 1000; "
           "accepting at most 55 connections (needs 2290 = 2 x limits.max_connections 1000"
           " + 224 idle pooled upstream connections [workers 2 x "
           "(upstreams.a.pool.max_idle_per_backend 40 x 2 backends"
           " + upstreams.b.pool.max_idle_per_backend 32 x 1 backend)]"
           " + 66 reserved [64 + workers x listeners])")


def test_01_check_warns_when_descriptors_do_not_fit():
    cfg = budget_config(["127.0.0.1:1", "127.0.0.1:2"], ["127.0.0.1:3"])
    r = check(cfg, nofile(400, 400))
    assert_eq(r.returncode, 0, r.stderr)
    assert "is valid" in r.stdout, r.stdout
    assert_eq(r.stderr, "revproxy: warning: " + WARNING + "\n")


def test_02_check_quiet_when_descriptors_fit():
    cfg = budget_config(["127.0.0.1:1", "127.0.0.1:2"], ["127.0.0.1:3"])
    # Enough as it is, and enough once the soft limit is raised to the
    # hard one, as start-up would.
    for soft, hard in ((4096, 4096), (256, 4096)):
        r = check(cfg, nofile(soft, hard))
        assert_eq(r.returncode, 0, r.stderr)
        assert_eq(r.stderr, "", "limit %d/%d" % (soft, hard))
        assert "is valid" in r.stdout, r.stdout


def test_03_check_idle_pools_alone_too_many():
    # The idle pools and the reserve alone exceed the limit: one connection
    # is still accepted, and the warning says what to lower.
    cfg = budget_config(["127.0.0.1:1", "127.0.0.1:2"], ["127.0.0.1:3"])
    r = check(cfg, nofile(250, 250))
    assert_eq(r.returncode, 0, r.stderr)
    assert "accepting at most 1 connection (needs 2290" in r.stderr, r.stderr
    assert r.stderr.rstrip().endswith(
        "the idle pools and the reserve leave no room for connections: lower "
        "upstreams.NAME.pool.max_idle_per_backend or workers"), r.stderr


def test_04_start_warns_and_serves():
    bs = [Backend() for _ in range(3)]
    cfg = budget_config([bs[0].addr, bs[1].addr], [bs[2].addr])
    del cfg["listeners"]   # the harness picks a free port
    p = Proxy(cfg, preexec_fn=nofile(400, 400))
    try:
        for _ in range(4):
            assert_eq(get(p, "/").status, 200)
    finally:
        p.stop()
        for b in bs:
            b.close()
    warn = [l for l in p.log_lines() if l.get("level") == "warn"
            and "file descriptor limit" in l.get("msg", "")]
    assert_eq(len(warn), 1, p.logs())
    assert_eq(warn[0]["msg"], WARNING)


def test_05_idle_pools_never_exhaust_descriptors():
    # 67 keep-alive clients each ask upstream a (whose pool keeps up to 66
    # idle connections), then upstream b.  Counting two descriptors per
    # connection only, a limit of 200 would admit all 67: the second round
    # needs 67 client + 67 upstream descriptors beside 66 idle ones of a,
    # and connects to b fail.  With the idle pool in the budget the cap is
    # (200 - 66 - 65) / 2 = 34 and every request is answered.
    def slow(delay, body):
        def handler(req, ci, s):
            time.sleep(delay)
            return response(200, body)
        return handler
    a, b = Backend(slow(0.5, b"a")), Backend(slow(1.0, b"b"))
    cfg = {
        "limits": {"max_connections": 1000},
        "upstreams": {"a": {"backends": [{"address": a.addr}],
                            "pool": {"max_idle_per_backend": 66}},
                      "b": {"backends": [{"address": b.addr}],
                            "pool": {"max_idle_per_backend": 0}}},
        "routes": [{"path_prefix": "/a", "upstream": "a"},
                   {"path_prefix": "/b", "upstream": "b"}],
    }
    p = Proxy(cfg, preexec_fn=nofile(200, 200))
    statuses = []
    lock = threading.Lock()

    def client():
        try:
            c = Client(p.connect(timeout=30))
            got = []
            for path in (b"/a", b"/b"):
                c.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
                got.append(c.read_response().status)
            c.sock.close()
        except OSError as e:
            got = [repr(e)]
        with lock:
            statuses.extend(got)

    try:
        threads = [threading.Thread(target=client) for _ in range(67)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert p.proc.poll() is None
    finally:
        p.stop()
        a.close()
        b.close()
    assert_eq(sorted(set(map(str, statuses))), ["200"], statuses)
    assert_eq(len(statuses), 134)
    assert "accepting at most 34 connections" in p.logs(), p.logs()


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    sys.exit(run(tests))
