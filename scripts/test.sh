#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build revproxy (installing build dependencies when run as root) and run
# the whole test suite: Check unit tests and integration tests against the
# real binary.  Prints each suite's summary line and a total
# "N passed, N failed"; exits non-zero if anything failed.
#
#   scripts/test.sh                 normal build, in build/
#   scripts/test.sh --sanitizers    ASan+UBSan build in build-sanitizers/
set -euo pipefail
RP_TOP=$(cd "$(dirname "$0")/.." && pwd)
case "${1:-}" in
    --sanitizers)
        BUILD_DIR=$RP_TOP/build-sanitizers
        CONFIGURE_FLAGS="--enable-sanitizers --enable-werror"
        # A small quarantine keeps ASan from holding freed buffers, so the
        # RSS bound of the large-body test measures the proxy, not ASan.
        export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:quarantine_size_mb=4}
        export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
        ;;
    "") BUILD_DIR=${BUILD_DIR:-$RP_TOP/build}; CONFIGURE_FLAGS=${CONFIGURE_FLAGS:---enable-werror} ;;
    *) echo "usage: scripts/test.sh [--sanitizers]" >&2; exit 64 ;;
esac
export BUILD_DIR CONFIGURE_FLAGS
. "$RP_TOP/scripts/setup.sh"
rp_install_deps
rp_build

cd "$BUILD_DIR"
rc=0
make -j"$(nproc)" check >/dev/null 2>&1 || rc=$?
exec "$RP_SRC/test/summary.sh" "$rc"
