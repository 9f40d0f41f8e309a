#!/bin/sh
# SPDX-License-Identifier: MIT
# The systemd unit passes `systemd-analyze verify`.  Its paths are pointed
# at this build so that the check does not depend on an installation.
# Skipped (77) without systemd-analyze.
top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
SYSTEMD_ANALYZE=${SYSTEMD_ANALYZE:-$(command -v systemd-analyze)}
if [ -z "$SYSTEMD_ANALYZE" ]; then
    echo "systemd-analyze not found: skipped"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sbindir=$(cd "$top_builddir/src" && pwd)
sysconfdir=$(cd "$top_srcdir/etc" && pwd)
sed -e "s|@sbindir@|$sbindir|g" -e "s|@sysconfdir@|$sysconfdir|g" \
    "$top_srcdir/etc/revproxy.service.in" > "$tmp/revproxy.service"
out=$("$SYSTEMD_ANALYZE" verify --man=no "$tmp/revproxy.service" 2>&1)
rc=$?
# Messages about other units on the machine are not ours.
mine=$(printf '%s\n' "$out" | grep -F "revproxy.service" || true)
if [ $rc -ne 0 ] || [ -n "$mine" ]; then
    printf '%s\n' "$out"
    echo "unit-verify: 0 passed, 1 failed"
    exit 1
fi
echo "unit-verify: 1 passed, 0 failed"
