#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# After `make check`: print each suite's own summary line (Check's
# "NN%: Checks: ..." or the integration runner's "N passed, N failed"),
# the log of every failed suite, and one total line.  Run in the build
# directory; $1 is make's exit status.
set -u
make_rc=${1:-0}
passed=0
failed=0
for trs in $(find test -name '*.trs' | sort); do
    log=${trs%.trs}.log
    name=${trs%.trs}
    result=$(sed -n 's/^:test-result: //p' "$trs" | head -n1)
    line=$(grep -E '^[0-9]+%: Checks: |passed, [0-9]+ failed$' "$log" | tail -n1)
    if [ -z "$line" ]; then
        line=$(grep -v '^\(PASS\|FAIL\|SKIP\|ERROR\|XFAIL\|XPASS\):' "$log" | grep . | tail -n1)
        [ -n "$line" ] || line="(no summary line)"
    fi
    printf '%-32s %-5s %s\n' "$name" "$result" "$line"
    if [[ $line =~ ^[0-9]+%:\ Checks:\ ([0-9]+),\ Failures:\ ([0-9]+),\ Errors:\ ([0-9]+) ]]; then
        n=${BASH_REMATCH[1]}; f=$((BASH_REMATCH[2] + BASH_REMATCH[3]))
        passed=$((passed + n - f)); failed=$((failed + f))
    elif [[ $line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        passed=$((passed + BASH_REMATCH[1])); failed=$((failed + BASH_REMATCH[2]))
    fi
    if [ "$result" != PASS ]; then
        [ "$result" = SKIP ] && continue
        failed=$((failed == 0 ? 1 : failed))
        echo "---- $log ----"
        tail -n 60 "$log"
        echo "----"
    fi
done
if [ -z "$(find test -name '*.trs' 2>/dev/null)" ]; then
    echo "no test results found (did the build fail?)"
    failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ] || [ "$make_rc" -ne 0 ]; then
    exit 1
fi
exit 0
