#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Where revproxy spends its CPU on the tiny-response benchmark: rp-backend
# answering 100 bytes, revproxy (one worker, CPU 0) in front, h2load
# sending HTTP/1.1 keep-alive requests as fast as it can (CPU 1), and
# perf (Debian's linux-perf) sampling revproxy with call graphs.  Prints
# the requests per second, revproxy's CPU time per request, and the top
# symbols by their own samples; --keep keeps perf.data for `perf report`.
#
#   bench/profile.sh [--duration SECONDS] [--connections N] [--top N]
#                    [--revproxy PATH] [--backend PATH] [--keep]
#
# Every port is a free loopback port, every file lives in a private temp
# dir, and only the processes started here are stopped on exit.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

DURATION=10
CONNECTIONS=64
TOP=25
REVPROXY="$REPO_ROOT/build/src/revproxy"
BACKEND="$REPO_ROOT/build/tools/rp-backend"
KEEP_TMP=0

usage() {
    cat <<EOF
usage: ${0##*/} [options]

  --duration SECONDS   length of the profiled run (default $DURATION)
  --connections N      keep-alive connections (default $CONNECTIONS)
  --top N              symbols listed (default $TOP)
  --revproxy PATH      revproxy binary (default ./build/src/revproxy)
  --backend PATH       rp-backend binary (default ./build/tools/rp-backend)
  --keep               keep the temp dir (perf.data, configs, logs)
  -h, --help           this help
EOF
}

while (($# > 0)); do
    case $1 in
        --duration) DURATION=$(positive_int --duration "${2:-}" seconds); shift 2 ;;
        --connections) CONNECTIONS=$(positive_int --connections "${2:-}"); shift 2 ;;
        --top) TOP=$(positive_int --top "${2:-}"); shift 2 ;;
        --revproxy) REVPROXY=$(abs_path "${2:-}"); shift 2 ;;
        --backend) BACKEND=$(abs_path "${2:-}"); shift 2 ;;
        --keep) KEEP_TMP=1; shift ;;
        *) help_or_unknown "$1" ;;
    esac
done
[[ -x $REVPROXY ]] || die "revproxy binary '$REVPROXY' not found (build it first)"

need_basics
need h2load nghttp2-client
need perf linux-perf
make_tmp rp-profile
prepare_backend
pin_cpus
start_backend

start_bench_revproxy /bytes/100
url="http://127.0.0.1:$PROXY_PORT/bytes/100"

note "warm-up: 2 s"
"${PIN_LOAD[@]}" h2load --h1 -c "$CONNECTIONS" -D 2 "$url" >"$TMP/warmup.txt" 2>&1 ||
    die "h2load warm-up failed: $(tail -n 3 "$TMP/warmup.txt")"

ticks() { awk '{ print $14 + $15 }' "/proc/$PROXY_PID/stat"; }
hz=$(getconf CLK_TCK)
note "profiling ${DURATION}s"
spawn "$TMP/perf.out" "$TMP/perf.out" perf record -F 999 -g -o "$TMP/perf.data" -p "$PROXY_PID" \
    -- sleep "$((DURATION + 1))"
PERF_PID=$SPAWNED
sleep 0.5
t0=$(ticks)
"${PIN_LOAD[@]}" h2load --h1 -c "$CONNECTIONS" -D "$DURATION" "$url" >"$TMP/load.txt" 2>&1 ||
    die "h2load failed: $(tail -n 3 "$TMP/load.txt")"
t1=$(ticks)
wait "$PERF_PID" || true
untrack "$PERF_PID"

done_n=$(awk '/^requests:/ { print $8; exit }' "$TMP/load.txt")
rps=$(awk '/^finished in/ { gsub(",", "", $4); print $4; exit }' "$TMP/load.txt")
echo "$("$REVPROXY" --version 2>/dev/null | head -n 1), $(cpu_model)"
echo "h2load --h1 -c $CONNECTIONS -D $DURATION $url"
echo "requests: ${done_n:-?} succeeded, ${rps:-?} req/s"
if [[ -n ${done_n:-} && $done_n -gt 0 ]]; then
    awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$done_n" \
        'BEGIN { printf "revproxy CPU: %.2f s, %.2f us per request\n", t / hz, t / hz * 1e6 / n }'
fi
echo
perf report -i "$TMP/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
    awk '/^ +[0-9.]+%/ { sub(/ +- +- *$/, ""); print }' >"$TMP/report.txt"
kernel=$(awk '$3 == "[k]" { s += $1 } END { printf "%.1f", s }' "$TMP/report.txt")
echo "revproxy's samples in the kernel: ${kernel}% (system calls, TCP on loopback)"
echo
echo "top $TOP symbols in user space by their own samples (perf report --no-children):"
awk '$3 == "[.]"' "$TMP/report.txt" | head -n "$TOP"
echo
echo "top $TOP symbols overall:"
head -n "$TOP" "$TMP/report.txt"
