#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Allocation-failure injection: build revproxy with --enable-failmalloc
# (and ASan+UBSan) in build-failmalloc/, then walk a failing allocation
# over the whole path of an HTTP/1.1 exchange, an HTTP/2 one, a WebSocket
# tunnel and a reload (test/integration/test_failmalloc.py).  Exits
# non-zero if any step crashed, leaked, hung or answered wrongly.
set -euo pipefail
RP_TOP=$(cd "$(dirname "$0")/.." && pwd)
export BUILD_DIR=$RP_TOP/build-failmalloc
export CONFIGURE_FLAGS="--enable-failmalloc --enable-sanitizers --enable-werror"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
. "$RP_TOP/scripts/setup.sh"
rp_install_deps
rp_build
# The Python configure chose (the one with the test modules).
py=$(sed -n 's/^PYTHON3 = //p' "$BUILD_DIR/Makefile")
cd "$RP_TOP/test/integration"
REVPROXY=$BUILD_DIR/src/revproxy exec "${py:-python3}" test_failmalloc.py "$@"
