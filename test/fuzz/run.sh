#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the libFuzzer targets with clang (ASan+UBSan) and run each for a
# while.  Usage: test/fuzz/run.sh [SECONDS per target, default 60]
#   FUZZ_TARGETS  which targets, default "config http h1"
#   FUZZ_DIR      build directory, default build-fuzz in the source tree
# Needs: clang (Debian's clang-14 ships libFuzzer) and the build deps.
set -euo pipefail
export LC_ALL=C
secs=${1:-60}
targets=${FUZZ_TARGETS:-config http h1}
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
libs=(librevproxy.a libllhttp.a $(pkg-config --libs $pcmods) -lpthread)

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

rc=0
for t in $targets; do
    clang "${flags[@]}" "$top/test/fuzz/fuzz_$t.c" "${libs[@]}" -o "fuzz_$t"
    mkdir -p "corpus_$t"
    extra=()
    case $t in
    config) cp "$top"/etc/revproxy.json "corpus_$t/" 2>/dev/null || true ;;
    h1)     h1_seeds
            # The proxy's own log lines (error responses) would drown the
            # fuzzer's: close the target's stderr, libFuzzer keeps its own.
            extra=(-close_fd_mask=2) ;;
    esac
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
