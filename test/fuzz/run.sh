#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the libFuzzer targets with clang (ASan+UBSan) and run each for a
# while.  Usage: test/fuzz/run.sh [SECONDS per target, default 60]
#   FUZZ_TARGETS  which targets, default "config http h1 h2 ws proxyproto path"
#   FUZZ_DIR      build directory, default build-fuzz in the source tree
# Needs: clang (Debian's clang-14 ships libFuzzer) and the build deps.
set -euo pipefail
export LC_ALL=C
secs=${1:-60}
targets=${FUZZ_TARGETS:-config http h1 h2 ws proxyproto path}
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_DIR:-$top/build-fuzz}
command -v clang >/dev/null || { echo "clang not found (apt-get install clang)" >&2; exit 1; }
for t in $targets; do
    [ -f "$top/test/fuzz/fuzz_$t.c" ] || { echo "no fuzz target $t" >&2; exit 1; }
done
mkdir -p "$out"
[ -x "$top/configure" ] || (cd "$top" && ./autogen.sh >/dev/null)
cd "$out"
if [ ! -f Makefile ]; then
    CC=clang CFLAGS="-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" \
        LDFLAGS="-fsanitize=address,undefined" "$top/configure" >/dev/null
fi
make -j"$(nproc)" librevproxy.a libllhttp.a >/dev/null
flags=(-g -O1 -Wall -Wextra -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I. -I"$top/include" -I"$top/src"
       $(grep '^LLHTTP_CPPFLAGS' Makefile | cut -d= -f2-)
       $(pkg-config --cflags jansson libevent))
pcmods="libevent libevent_openssl libevent_pthreads openssl libnghttp2 jansson"
# shellcheck disable=SC2046,SC2086
libs=(librevproxy.a libllhttp.a $(pkg-config --libs $pcmods) -lwslay -lpthread)

# Seeds for fuzz_h1 (input format: the header comment of fuzz_h1.c): two
# option bytes, the client bytes behind their 16-bit length, then replies,
# each a control byte and its bytes behind their 16-bit length.
le16() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8)))"; }
h1_seed() {   # name option0 option1 client-bytes [control reply]...
    local name=$1 o0=$2 o1=$3 req=$4
    shift 4
    {
        printf "\\x$o0\\x$o1"
        le16 ${#req}
        printf '%s' "$req"
        while [ $# -ge 2 ]; do
            printf "\\x$1"
            le16 ${#2}
            printf '%s' "$2"
            shift 2
        done
    } > "corpus_h1/$name"
}
h1_seeds() {
    local ok=$'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi'
    h1_seed get-200 00 00 $'GET / HTTP/1.1\r\nHost: a\r\n\r\n' 00 "$ok"
    h1_seed post-chunked 00 00 \
        $'POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' \
        01 $'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'
    h1_seed pipelined 04 00 \
        $'GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' \
        00 "$ok" 00 $'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n' 04 "$ok"
    h1_seed http10-eof 00 80 $'GET /x HTTP/1.0\r\n\r\n' 03 $'HTTP/1.1 200 OK\r\n\r\nuntil the end'
    h1_seed expect 01 00 \
        $'PUT /a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nabcd' \
        10 $'HTTP/1.1 204 No Content\r\n\r\n'
    h1_seed early-answer 00 00 \
        $'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\nsome' 00 $'HTTP/1.1 413 Too Big\r\nContent-Length: 0\r\n\r\n'
    h1_seed silent-backend 00 27 $'GET / HTTP/1.1\r\nHost: a\r\n\r\n'
    h1_seed head-timeout 03 01 $'GET / HTTP/1.1\r\nHost: a\r\n'
    h1_seed bad-backend 00 00 $'GET / HTTP/1.1\r\nHost: a\r\n\r\n' 02 $'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx'
    h1_seed config-b-slow 90 80 \
        $'GET /a/b HTTP/1.1\r\nHost: b.example\r\n\r\nGET /c HTTP/1.1\r\nHost: c\r\n\r\n' \
        01 $'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n'
    h1_seed interim-framing 00 00 $'GET / HTTP/1.1\r\nHost: a\r\n\r\n' \
        00 $'HTTP/1.1 103 Early Hints\r\nContent-Length: 38\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil'
    h1_seed not-modified 00 00 $'GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n' \
        00 $'HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n' 00 "$ok"
    h1_seed pooled-post 00 00 \
        $'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /g HTTP/1.1\r\nHost: a\r\n\r\n' \
        00 $'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyz' 00 $'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nuv\r\n0\r\nT: 1\r\n\r\n'
    h1_seed absolute-form 00 00 $'GET http://h.example/x?y HTTP/1.1\r\nHost: other\r\n\r\n' 00 "$ok"
    h1_seed http10-chunked 00 00 $'GET / HTTP/1.0\r\n\r\n' \
        00 $'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n'
    h1_seed limits 00 00 $'GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n'
}

# Seeds for fuzz_h2 (input format: the header comment of fuzz_h2.c): three
# option bytes, the client bytes (raw frames, after the preface the target
# adds; or, with bit 0 of the third byte, a program for a client session)
# behind their 16-bit length, then the backend replies as for fuzz_h1.
# Frames are written by hand: HPACK literal fields without indexing, new
# name (0x00, then the name and the value behind 7-bit lengths, no Huffman).
h2_seeds() {
    python3 - "corpus_h2" <<'PY'
import struct, sys
out = sys.argv[1]
def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload
def lit(name, value):
    return bytes([0, len(name)]) + name.encode() + bytes([len(value)]) + value.encode()
def block(method="GET", path="/", authority="a", extra=()):
    fields = [(":method", method), (":scheme", "http"), (":authority", authority), (":path", path)]
    return b"".join(lit(n, v) for n, v in fields + list(extra))
DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
ES, EH, ACK = 1, 4, 1
def reply(body=b"hi", status=b"200 OK", ctl=0):
    r = b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    return bytes([ctl]) + struct.pack("<H", len(r)) + r
def raw(r, ctl=0):
    return bytes([ctl]) + struct.pack("<H", len(r)) + r
def seed(name, client, replies=(), o0=0, o1=0, o2=0):
    # Byte 1 bit 6: the client closes once the exchange has settled (an
    # HTTP/2 connection ends at the client's half-close).
    with open(out + "/" + name, "wb") as f:
        f.write(bytes([o0, o1 | 0x40, o2]) + struct.pack("<H", len(client)) + client + b"".join(replies))
hello = frame(SETTINGS, 0, 0)
seed("get", hello + frame(HEADERS, EH | ES, 1, block()), [reply()])
seed("head", hello + frame(HEADERS, EH | ES, 1, block("HEAD")), [reply()])
seed("post-data", hello + frame(HEADERS, EH, 1, block("POST", "/p", extra=[("content-length", "5")]))
     + frame(DATA, 0, 1, b"hel") + frame(DATA, ES, 1, b"lo"), [reply(b"posted", b"201 Created")])
seed("post-chunked", hello + frame(HEADERS, EH, 1, block("PUT", "/u"))
     + frame(DATA, 0, 1, b"abc") + frame(DATA, ES, 1, b""),
     [raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n")])
seed("two-streams", hello + frame(HEADERS, EH | ES, 1, block(path="/one"))
     + frame(HEADERS, EH | ES, 3, block(path="/two")), [reply(b"one"), reply(b"two")])
seed("rst-same-read", hello + frame(HEADERS, EH, 1, block("POST", "/r", extra=[("x-request-id", "r1")]))
     + frame(RST, 0, 1, struct.pack(">I", 8))
     + frame(HEADERS, EH | ES, 3, block(extra=[("x-request-id", "r3")])), [reply()])
seed("rst-later", hello + frame(HEADERS, EH, 1, block("POST", "/r")) + frame(RST, 0, 1, struct.pack(">I", 8)),
     [reply()], o0=5)
seed("ping", hello + frame(PING, 0, 0, b"12345678") + frame(HEADERS, EH | ES, 1, block()), [reply()])
seed("settings", frame(SETTINGS, 0, 0, struct.pack(">HIHI", 4, 1000, 5, 20000))
     + frame(SETTINGS, ACK, 0) + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 100000))
     + frame(HEADERS, EH | ES, 1, block()) + frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 4000)),
     [reply(b"x" * 3000)])
b = block(path="/c", extra=[("x-long", "y" * 100)])
seed("continuation", hello + frame(HEADERS, ES, 1, b[:20]) + frame(CONTINUATION, 0, 1, b[20:60])
     + frame(CONTINUATION, EH, 1, b[60:]), [reply()])
seed("expect", hello + frame(HEADERS, EH, 1, block("PUT", "/e", extra=[("expect", "100-continue"), ("content-length", "2")]))
     + frame(DATA, ES, 1, b"ok"), [reply(b"", b"204 No Content")], o0=2)
seed("goaway", hello + frame(HEADERS, EH | ES, 1, block()) + frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0)), [reply()])
seed("idle-timer", hello, o0=0x20, o1=0x01)
seed("silent-backend", hello + frame(HEADERS, EH | ES, 1, block()), o0=0x20, o1=0x16)
seed("slow-client", hello + frame(HEADERS, EH | ES, 1, block()), [reply(b"z" * 2000, ctl=4)], o0=0x13, o1=0x88)
seed("config-b", hello + frame(HEADERS, EH | ES, 1, block(path="/a/b", authority="b.example")), [reply()], o0=0x80)
# Programs for the client session (third byte 1).
seed("p-get", bytes([13]), [reply()], o2=1)
seed("p-post", bytes([0x20, 0x09, 5, 0, 0x12, 0, 5]), [reply(b"done")], o2=1)
seed("p-two-rst", bytes([13, 13, 0x04, 0, 8]), [reply(b"a"), reply(b"b")], o2=1)
seed("p-ping-flood", bytes([5]) + b"pingping" + bytes([0x4a, 63]), o2=1)
seed("p-settings", bytes([6, 2, 3, 1, 4, 4, 13]), [reply(b"w" * 1000)], o2=1)
seed("p-continuation", bytes([0x10, 0x08, 0, 0x82]), [reply()], o0=0x80, o2=1)
seed("p-trailers", bytes([0x00, 0x09, 0, 0x20, 0x02, 0, 3, 0x03, 0]), [reply()], o2=1)
PY
}

# Seeds for fuzz_ws (input format: the header comment of fuzz_ws.c): four
# option bytes, the client's section behind its 16-bit length, then the
# backend's; each section a sequence of frame records (the frame's first
# byte, its length field, the payload: the target masks the client's).
ws_seeds() {
    python3 - "corpus_ws" <<'PY'
import struct, sys
out = sys.argv[1]
FIN, RSV1 = 0x80, 0x40
CONT, TEXT, BIN, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
def rec(b0, payload=b"", wrong=False, length=None):
    n = len(payload) if length is None else length
    w = 0x80 if wrong else 0
    if n < 126:
        hdr = bytes([b0, w | n])
    elif n < 65536:
        hdr = bytes([b0, w | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, w | 127]) + struct.pack(">Q", n)
    return hdr + payload
def close(code=None, reason=b""):
    return rec(FIN | CLOSE, b"" if code is None else struct.pack(">H", code) + reason)
def seed(name, client=b"", backend=b"", o0=0, o1=0, o2=0, o3=0):
    with open(out + "/" + name, "wb") as f:
        f.write(bytes([o0, o1, o2, o3]) + struct.pack("<H", len(client)) + client + backend)
hello = rec(FIN | TEXT, "h\u00e9llo".encode())
seed("text", hello + close(1000), rec(FIN | TEXT, b"world") + close(1000))
seed("binary", rec(FIN | BIN, bytes(range(256))), rec(FIN | BIN, b"\x00\xff" * 40), o0=0x01, o2=0x01)
seed("fragmented", rec(TEXT, b"frag") + rec(PING, b"p") + rec(CONT, b"men") + rec(FIN | CONT, b"ted"),
     rec(BIN, b"a" * 30) + rec(FIN | CONT, b"b" * 30), o0=0x02, o2=0x08)
seed("ping", rec(FIN | PING, b"are you there") + rec(FIN | PONG, b"x"), rec(FIN | PING, b"backend"))
seed("close-code", close(1001, b"going"), o1=0x02)
seed("close-no-code", close(), close(), o2=0x04)
seed("over-limit", rec(FIN | BIN, b"z" * 100, length=5000), rec(FIN | TEXT, b"y" * 100), o2=0x04)
seed("over-limit-b", rec(FIN | TEXT, b"q" * 80), rec(BIN, b"r" * 40) + rec(FIN | CONT, b"s" * 40), o0=0x80)
seed("bad-utf8", rec(FIN | TEXT, b"ok\xc3\x28"), rec(TEXT, b"\xe2\x82") + rec(FIN | CONT, b"\xac!"), o0=0x01)
seed("unmasked", rec(FIN | TEXT, b"plain", wrong=True), rec(FIN | TEXT, b"masked", wrong=True), o2=0x80)
seed("reserved-opcode", rec(FIN | 3, b"?"), rec(FIN | 0xb, b"!"), o2=0x08)
seed("rsv-bits", rec(FIN | RSV1 | TEXT, b"deflated?"), rec(FIN | 0x20 | BIN, b"x"))
seed("backend-close", rec(FIN | TEXT, b"hi"), rec(FIN | TEXT, b"bye") + close(4000, b"done"), o1=0x40, o2=0x04)
seed("backend-close-with-101", b"", rec(FIN | TEXT, b"early") + close(1000), o1=0x01, o2=0x0c)
seed("backend-reset", rec(FIN | TEXT, b"x" * 10), rec(TEXT, b"half"), o1=0x81, o2=0x05)
seed("eager-client", rec(FIN | TEXT, b"before the 101") + close(1000), rec(FIN | TEXT, b"ok"), o2=0x10)
seed("idle", b"", b"", o1=0x03)
seed("idle-b", rec(FIN | PONG, b"revproxy"), b"", o0=0x80, o1=0x07)
seed("slow-client", rec(FIN | TEXT, b"t"), rec(FIN | BIN, b"w" * 3000), o0=0x30 | 0x04, o1=0x0b, o2=0x01)
seed("drain", rec(TEXT, b"part"), rec(FIN | TEXT, b"b"), o1=0x11)
seed("reset-client", rec(FIN | TEXT, b"a"), rec(FIN | TEXT, b"b"), o0=0x40, o1=0x20)
seed("raw", b"\x81\x85\x01\x02\x03\x04" + bytes(c ^ k for c, k in zip(b"hello", b"\x01\x02\x03\x04\x01")),
     b"\x81\x03abc\x88\x02\x03\xe8", o2=0x60)
# permessage-deflate agreed: RSV1 marks a message (relayed as it is); offered
# and declined: RSV1 is refused.
seed("deflate", rec(FIN | RSV1 | TEXT, b"\xf2\x48\xcd\xc9\xc9\x07\x00") + rec(FIN | TEXT, b"plain"),
     rec(RSV1 | BIN, b"\x01\x02") + rec(FIN | CONT, b"\x03"), o3=0x81)
seed("deflate-declined", rec(FIN | RSV1 | TEXT, b"\xf2\x48"), rec(FIN | RSV1 | BIN, b"x"), o3=0x01)
# Many copies, the backend's in one write: the slow client holds the
# backend back (write watermarks), then lets it go on.
seed("flood", rec(FIN | TEXT, b"c" * 100), rec(FIN | BIN, b"f" * 4000), o0=0x10, o3=0x0e | 0x30)
PY
}

rc=0
for t in $targets; do
    srcs=("$top/test/fuzz/fuzz_$t.c")
    link=()
    # fuzz_h1, fuzz_h2 and fuzz_ws share their transport, loop and end of
    # an input; fuzz_ws moves the clock revproxy reads (rp_now_us) on when
    # it fires a timer, and runs the loop pass by pass (event_base_loop) to
    # catch one that spins.
    case $t in
    h1|h2) srcs+=("$top/test/fuzz/harness.c") ;;
    ws)    srcs+=("$top/test/fuzz/harness.c")
           link=(-Wl,--wrap=rp_now_us,--wrap=event_base_loop) ;;
    esac
    clang "${flags[@]}" "${srcs[@]}" "${libs[@]}" "${link[@]}" -o "fuzz_$t"
    mkdir -p "corpus_$t"
    extra=()
    case $t in
    config) cp "$top"/etc/revproxy.json "corpus_$t/" 2>/dev/null || true ;;
    h1)     h1_seeds
            # The proxy's own log lines (error responses) would drown the
            # fuzzer's: close the target's stderr, libFuzzer keeps its own.
            extra=(-close_fd_mask=2) ;;
    h2)     h2_seeds
            extra=(-close_fd_mask=2) ;;
    ws)     ws_seeds
            # An input runs in well under a second: one that hangs (a
            # loop that never returns) is reported after 30 s, not 20 min.
            extra=(-close_fd_mask=2 -timeout=30) ;;
    proxyproto)
            printf '\001PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n' > corpus_$t/v1-tcp4
            printf '\001PROXY TCP6 2001:db8::5 ::1 4000 443\r\n' > corpus_$t/v1-tcp6
            printf '\001PROXY UNKNOWN\r\n' > corpus_$t/v1-unknown
            printf '\000\r\n\r\n\000\r\nQUIT\n\041\021\000\014\313\000\161\010\012\000\000\001\234\100\001\273' \
                > corpus_$t/v2-tcp4
            printf '\000\r\n\r\n\000\r\nQUIT\n\040\000\000\000' > corpus_$t/v2-local ;;
    path)   printf '/a/b/../c/./d?x=/../y' > corpus_$t/dots
            printf '/%%2e%%2E/%%41%%2f%%7e%%zz' > corpus_$t/escapes
            printf '/a//b/%%2e%%2e/%%2E' > corpus_$t/slashes ;;
    esac
    # Inputs that once found a defect are replayed first, each once.
    if [ -d "$top/test/fuzz/regress/$t" ]; then
        echo "== fuzz_$t: replaying test/fuzz/regress/$t"
        if ! ./"fuzz_$t" "${extra[@]}" "$top/test/fuzz/regress/$t"/* 2>"fuzz_$t.regress.log"; then
            rc=1
            tail -n 40 "fuzz_$t.regress.log"
            continue
        fi
    fi
    echo "== fuzz_$t for ${secs}s"
    if ./"fuzz_$t" -max_total_time="$secs" -max_len=4096 "${extra[@]}" "corpus_$t" \
        2>"fuzz_$t.log"; then
        tail -n 3 "fuzz_$t.log"
    else
        rc=1
        tail -n 40 "fuzz_$t.log"   # the report and the input that failed
    fi
done
exit $rc
