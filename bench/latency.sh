#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Paced latency: revproxy in front of rp-backend, HTTP/1.1 keep-alive
# requests at a fixed rate (h2load --h1 --rps, so a slow answer does not
# slow the load down and hide itself), for several rounds.  Each round's
# latencies come from h2load's per-request log; the script prints p50,
# p99 and p99.9 per round, the median round's p99, and fails when a
# round's p99 is more than twice the median round's (a stall that comes
# and goes: a timer, a flush, a reload of something).
#
#   bench/latency.sh [--rounds N] [--duration SECONDS] [--rate RPS]
#                    [--clients N] [--revproxy PATH] [--backend PATH] [--keep]
#
# The proxy runs on CPU 0, the backend and h2load on CPU 1.  Every port is
# a free loopback port, every file lives in a private temp dir, and only
# the processes started here are stopped on exit.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

ROUNDS=10
DURATION=10
RATE=2000       # requests per second in all
CLIENTS=20
REVPROXY="$REPO_ROOT/build/src/revproxy"
BACKEND="$REPO_ROOT/build/tools/rp-backend"
KEEP_TMP=0

usage() {
    cat <<EOF
usage: ${0##*/} [options]

  --rounds N           rounds of the paced run (default $ROUNDS)
  --duration SECONDS   length of each round (default $DURATION)
  --rate RPS           requests per second, all clients together (default $RATE)
  --clients N          keep-alive connections (default $CLIENTS)
  --revproxy PATH      revproxy binary (default ./build/src/revproxy)
  --backend PATH       rp-backend binary (default ./build/tools/rp-backend)
  --keep               keep the temp dir (configs, logs, per-request logs)
  -h, --help           this help
EOF
}

while (($# > 0)); do
    case $1 in
        --rounds) ROUNDS=$(positive_int --rounds "${2:-}"); shift 2 ;;
        --duration) DURATION=$(positive_int --duration "${2:-}" seconds); shift 2 ;;
        --rate) RATE=$(positive_int --rate "${2:-}" "requests per second"); shift 2 ;;
        --clients) CLIENTS=$(positive_int --clients "${2:-}"); shift 2 ;;
        --revproxy) REVPROXY=$(abs_path "${2:-}"); shift 2 ;;
        --backend) BACKEND=$(abs_path "${2:-}"); shift 2 ;;
        --keep) KEEP_TMP=1; shift ;;
        *) help_or_unknown "$1" ;;
    esac
done
((RATE >= CLIENTS)) || die "--rate must be at least --clients"
[[ -x $REVPROXY ]] || die "revproxy binary '$REVPROXY' not found (build it first)"

need_basics
need h2load nghttp2-client
make_tmp rp-latency
prepare_backend
pin_cpus
start_backend

start_bench_revproxy

url="http://127.0.0.1:$PROXY_PORT/"
per_client=$((RATE / CLIENTS))
total=$((per_client * CLIENTS * DURATION))
note "warm-up: 2 s at $RATE req/s"
"${PIN_LOAD[@]}" h2load --h1 -c "$CLIENTS" -n $((per_client * CLIENTS * 2)) --rps "$per_client" \
    "$url" >"$TMP/warmup.txt" 2>&1 || die "h2load warm-up failed: $(tail -n 3 "$TMP/warmup.txt")"

printf '%-6s %10s %10s %10s %10s %8s\n' round requests p50_ms p99_ms p999_ms errors
p99s=()
for ((r = 1; r <= ROUNDS; r++)); do
    log="$TMP/round-$r.log"
    "${PIN_LOAD[@]}" h2load --h1 -c "$CLIENTS" -n "$total" --rps "$per_client" \
        --log-file="$log" "$url" >"$TMP/round-$r.txt" 2>&1 ||
        die "h2load failed in round $r: $(tail -n 3 "$TMP/round-$r.txt")"
    # The log: start time, status, latency in microseconds, a line each
    # (tab-separated).
    bad=$(awk '$2 != 200 { b++ } END { print b + 0 }' "$log")
    read -r n p50 p99 p999 < <(cut -f3 "$log" | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print 0, 0, 0, 0; exit }
            i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
            i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
            i999 = int(NR * 0.999); if (i999 < 1) i999 = 1
            printf "%d %.3f %.3f %.3f\n", NR, v[i50] / 1000, v[i99] / 1000, v[i999] / 1000
        }')
    printf '%-6s %10s %10s %10s %10s %8s\n' "$r" "$n" "$p50" "$p99" "$p999" "$bad"
    ((bad == 0)) || die "round $r: $bad requests did not get 200"
    p99s+=("$p99")
done

read -r median worst ratio < <(printf '%s\n' "${p99s[@]}" | sort -g | awk '
    { v[NR] = $1 }
    END {
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.3f %.3f %.2f\n", m, v[NR], (m > 0 ? v[NR] / m : 0)
    }')
echo
echo "$("$REVPROXY" --version 2>/dev/null | head -n 1), $(cpu_model)"
echo "rate: $RATE req/s over $CLIENTS keep-alive connections, $ROUNDS rounds of ${DURATION}s"
echo "p99: median round $median ms, worst round $worst ms (${ratio}x the median)"
if awk -v r="$ratio" 'BEGIN { exit !(r > 2) }'; then
    echo "FAIL: a round's p99 is more than twice the median round's"
    exit 1
fi
echo "ok: no round's p99 above twice the median round's"
