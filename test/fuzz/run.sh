#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the libFuzzer targets with clang (ASan+UBSan) and run each for a
# while.  Usage: test/fuzz/run.sh [SECONDS per target, default 60]
# Needs: clang (Debian's clang-14 ships libFuzzer) and the build deps.
set -euo pipefail
secs=${1:-60}
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_DIR:-$top/build-fuzz}
command -v clang >/dev/null || { echo "clang not found (apt-get install clang)" >&2; exit 1; }
mkdir -p "$out"
[ -x "$top/configure" ] || (cd "$top" && ./autogen.sh >/dev/null)
cd "$out"
if [ ! -f Makefile ]; then
    CC=clang CFLAGS="-g -O1 -fsanitize=fuzzer-no-link,address,undefined" \
        LDFLAGS="-fsanitize=address,undefined" "$top/configure" >/dev/null
fi
make -j"$(nproc)" librevproxy.a libllhttp.a >/dev/null
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -I. -I"$top/include" -I"$top/src"
       $(grep '^LLHTTP_CPPFLAGS' Makefile | cut -d= -f2-)
       $(pkg-config --cflags jansson libevent))
pcmods="libevent libevent_openssl libevent_pthreads openssl libnghttp2 jansson"
# shellcheck disable=SC2046,SC2086
libs=(librevproxy.a libllhttp.a $(pkg-config --libs $pcmods) -lpthread)
rc=0
for t in config http; do
    clang "${flags[@]}" "$top/test/fuzz/fuzz_$t.c" "${libs[@]}" -o "fuzz_$t"
    mkdir -p "corpus_$t"
    [ "$t" = config ] && cp "$top"/etc/revproxy.json "corpus_$t/" 2>/dev/null || true
    echo "== fuzz_$t for ${secs}s"
    ./"fuzz_$t" -max_total_time="$secs" -max_len=4096 "corpus_$t" 2>"fuzz_$t.log" || rc=1
    tail -n 3 "fuzz_$t.log"
done
exit $rc
