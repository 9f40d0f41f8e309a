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

# The host-name backend tests resolve "localhost", which every Debian
# system has in /etc/hosts (the installer writes it).  A bare root (a
# chroot, a minimal container) may have no entry: in CI, add Debian's
# standard ones, ::1 only where IPv6 loopback works.
if ! getent hosts localhost >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && [ "${CI:-}" = true ]; then
        echo "test set-up: localhost does not resolve; adding Debian's entries to /etc/hosts" >&2
        # A last line without its newline stays as it was.
        if [ -s /etc/hosts ] && [ -n "$(tail -c 1 /etc/hosts)" ]; then
            echo >> /etc/hosts
        fi
        echo "127.0.0.1 localhost" >> /etc/hosts
        if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
            echo "::1 localhost ip6-localhost ip6-loopback" >> /etc/hosts
        fi
    else
        echo "warning: localhost does not resolve (add \"127.0.0.1 localhost\" to /etc/hosts);" \
             "the host-name backend test will fail" >&2
    fi
fi

cd "$BUILD_DIR"
rc=0
make -j"$(nproc)" check >/dev/null 2>&1 || rc=$?
exec "$RP_SRC/test/summary.sh" "$rc"
