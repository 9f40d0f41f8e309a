# SPDX-License-Identifier: MIT
"""Idle keep-alive connections, for bench/idle.sh.

Opens N connections to a proxy on loopback, makes one request on each
(HTTP/1.1 keep-alive, or HTTP/2 over cleartext with prior knowledge),
reads the whole response and leaves the connection open and idle.  The
proxy's resident memory (VmRSS of PID) is read before and while they are
held; the line printed is

    before_kib held_kib connections

and the connections are closed on exit.  Every connection is to
127.0.0.1; the loops are bounded by N."""
import argparse
import resource
import socket
import sys
import time


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS for pid %d" % pid)


def read_h1(sock, buf=b""):
    """One HTTP/1.1 response with a Content-Length; returns its status."""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("closed before the response head")
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(body) < length:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("closed in the response body")
        body += d
    return status


def h1_conn(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    status = read_h1(s)
    if status != 200:
        raise ConnectionError("status %d" % status)
    return s


def h2_conn(port):
    import h2.config
    import h2.connection
    import h2.events
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                       (":authority", "bench")], end_stream=True)
    s.sendall(c.data_to_send())
    done = False
    while not done:
        d = s.recv(65536)
        if not d:
            raise ConnectionError("closed before the response")
        for e in c.receive_data(d):
            if isinstance(e, h2.events.StreamEnded) and e.stream_id == 1:
                done = True
            elif isinstance(e, h2.events.DataReceived):
                c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                raise ConnectionError("stream reset or GOAWAY")
        s.sendall(c.data_to_send())
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--mode", choices=("h1", "h2c"), default="h1")
    ap.add_argument("--settle", type=float, default=2.0)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.connections + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, a.connections + 64), hard))
    conn = h2_conn if a.mode == "h2c" else h1_conn
    conn(a.port).close()   # the first request: lazily made state, the upstream pool
    time.sleep(0.5)
    before = rss_kib(a.pid)
    held = []
    try:
        for _ in range(a.connections):
            held.append(conn(a.port))
        time.sleep(a.settle)
        during = rss_kib(a.pid)
    finally:
        for s in held:
            s.close()
    print(before, during, len(held))
    return 0


if __name__ == "__main__":
    sys.exit(main())
