#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Memory per idle connection: N client connections, each having made one
# request, held open and idle, through revproxy, nginx and haproxy in
# front of the same rp-backend.  Each proxy is started afresh for each
# round; its resident memory (VmRSS) is read after its first request and
# again while the N connections are held, and the difference over N is
# its figure.  The median round of each is reported, and the ratios.
#
#   bench/idle.sh [--connections N] [--rounds N] [--h2c] [--revproxy PATH]
#                 [--backend PATH] [--no-haproxy] [--keep]
#
# --h2c: revproxy alone, the connections HTTP/2 over cleartext (prior
# knowledge), each after one stream.
#
# The proxies run on CPU 0, the backend and the client (bench/
# idle_clients.py) on CPU 1.  Every port is a free loopback port, every
# file lives in a private temp dir, and only the processes started here
# are stopped on exit.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

CONNECTIONS=2000
ROUNDS=3
MODE=h1
REVPROXY="$REPO_ROOT/build/src/revproxy"
BACKEND="$REPO_ROOT/build/tools/rp-backend"
WITH_HAPROXY=1
WITH_NGINX=1
KEEP_TMP=0
PYTHON=${PYTHON3:-/usr/bin/python3}

usage() {
    cat <<EOF
usage: ${0##*/} [options]

  --connections N      idle connections held (default $CONNECTIONS)
  --rounds N           rounds, each proxy started afresh (default $ROUNDS)
  --h2c                revproxy alone, HTTP/2 over cleartext connections
  --revproxy PATH      revproxy binary (default ./build/src/revproxy)
  --backend PATH       rp-backend binary (default ./build/tools/rp-backend)
  --no-haproxy         leave haproxy out
  --keep               keep the temp dir (configs, logs)
  -h, --help           this help
EOF
}

while (($# > 0)); do
    OPTN=1
    case $1 in
        --connections | --connections=*)
            opt_value "$@" && CONNECTIONS=$(positive_int --connections "$OPTVAL") ;;
        --rounds | --rounds=*) opt_value "$@" && ROUNDS=$(positive_int --rounds "$OPTVAL") ;;
        --h2c) MODE=h2c WITH_NGINX=0 WITH_HAPROXY=0 ;;
        --revproxy | --revproxy=*) opt_value "$@" && REVPROXY=$(abs_path "$OPTVAL") ;;
        --backend | --backend=*) opt_value "$@" && BACKEND=$(abs_path "$OPTVAL") ;;
        --no-haproxy) WITH_HAPROXY=0 ;;
        --keep) KEEP_TMP=1 ;;
        *) help_or_unknown "$1" ;;
    esac
    shift "$OPTN"
done
[[ -x $REVPROXY ]] || die "revproxy binary '$REVPROXY' not found (build it first)"

need_basics
((WITH_NGINX)) && need nginx nginx-light && NGINX=$(find_cmd nginx)
((WITH_HAPROXY)) && need haproxy haproxy && HAPROXY=$(find_cmd haproxy)
if [[ $MODE == h2c ]] && ! "$PYTHON" -c 'import h2' 2>/dev/null; then
    ((EUID == 0)) || die "python3-h2 is needed for --h2c"
    apt_install python3-h2
fi
make_tmp rp-idle
prepare_backend
# Room for the connections on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
((CONNECTIONS + 200 <= $(ulimit -n))) || die "--connections is above the descriptor limit"
PEER_CONNECTIONS=$((CONNECTIONS + 100))
pin_cpus
start_backend

# one TARGET: start TARGET afresh, hold the connections, stop it; sets
# RESULT to "before_kib held_kib".
one() {
    local pid port line
    case $1 in
        revproxy) start_bench_revproxy; pid=$PROXY_PID port=$PROXY_PORT ;;
        nginx) start_peer_nginx; pid=$NGINX_PID port=$NGINX_PORT ;;
        haproxy) start_peer_haproxy; pid=$HAPROXY_PID port=$HAPROXY_PORT ;;
    esac
    line=$("${PIN_LOAD[@]}" "$PYTHON" "$SCRIPT_DIR/idle_clients.py" --port "$port" \
        --pid "$pid" --connections "$CONNECTIONS" --mode "$MODE") ||
        die "$1: the idle connections could not be made"
    halt "$pid"
    read -r b h n <<<"$line"
    ((n == CONNECTIONS)) || die "$1: $n of $CONNECTIONS connections held"
    RESULT="$b $h"
}

targets=(revproxy)
((WITH_NGINX)) && targets+=(nginx)
((WITH_HAPROXY)) && targets+=(haproxy)
declare -A per=()
for ((round = 1; round <= ROUNDS; round++)); do
    for t in "${targets[@]}"; do
        one "$t"
        read -r b h <<<"$RESULT"
        v=$(awk -v b="$b" -v h="$h" -v n="$CONNECTIONS" 'BEGIN { printf "%.3f", (h - b) / n }')
        per[$t]+="$v "
        printf 'round %d %-8s rss %6d -> %6d KiB: %s KiB per connection\n' \
            "$round" "$t" "$b" "$h" "$v" >&2
    done
done

echo
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "cpu:     $(cpu_model) ($NCPU CPUs); kernel $(uname -r)"
echo "load:    $CONNECTIONS idle $MODE connections after one request each;" \
    "median of $ROUNDS rounds"
((WITH_NGINX)) && echo "nginx:   $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
((WITH_HAPROXY)) && echo "haproxy: $(version_of 3 "$HAPROXY" -v)"
echo
printf '%-10s %14s   %s\n' target KiB/connection rounds
declare -A med=()
for t in "${targets[@]}"; do
    # shellcheck disable=SC2086 # the rounds' figures, one word each
    med[$t]=$(printf '%s\n' ${per[$t]} | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    printf '%-10s %14s   %s\n' "$t" "${med[$t]}" "${per[$t]% }"
done
for t in nginx haproxy; do
    [[ -n ${med[$t]:-} ]] || continue
    awk -v a="${med[revproxy]}" -v b="${med[$t]}" -v o="$t" \
        'BEGIN { if (b > 0) printf "ratio revproxy/%s: memory per idle connection %.2f\n", o, a / b }'
done
print_warnings
