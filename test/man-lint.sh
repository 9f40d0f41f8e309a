#!/bin/sh
# SPDX-License-Identifier: MIT
# The man pages lint clean: mandoc -Tlint -Wwarning prints nothing.
# Skipped (77) when mandoc is not installed (apt-get install mandoc).
top_srcdir=${top_srcdir:-.}
MANDOC=${MANDOC:-$(command -v mandoc)}
if [ -z "$MANDOC" ]; then
    echo "mandoc not found (apt-get install mandoc): skipped"
    exit 77
fi
out=$("$MANDOC" -Tlint -Wwarning "$top_srcdir/man/revproxy.8" "$top_srcdir/man/revproxy.json.5" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
    echo "$out"
    echo "man-lint: 0 passed, 1 failed"
    exit 1
fi
echo "man-lint: 1 passed, 0 failed"
