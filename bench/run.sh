#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Loopback benchmark: the same rp-backend measured directly (the ceiling),
# behind nginx, behind haproxy and behind revproxy, with wrk as the load
# generator; the targets take turns for several rounds and the median run
# of each is reported.
#
#   bench/run.sh [--duration SECONDS] [--connections N] [--rounds N]
#                [--revproxy PATH] [--backend PATH] [--no-haproxy]
#                [--only-nginx] [--access-log] [--ratelimit] [--h2o] [--close]
#                [--path PATH] [--keep]
#
# --access-log: nginx writes its access log (its default, unbuffered) and
# revproxy is measured twice, writing access lines to a file (revproxy)
# and with them off (revproxy_nolog); haproxy (which logs to syslog) is
# left out.  The ratios then compare CPU time per request too.
#
# --ratelimit: revproxy is measured with a rate limit on every request
# (ratelimit.per_ip, set high enough never to refuse) and without
# (revproxy_norl): the cost of the ratelimit module.
#
# The proxy under test runs on CPU 0; the backend and wrk share CPU 1.
# Every port is a free loopback port chosen at start-up, every config and
# log lives in a private temp dir, and on exit only the processes this
# script started are stopped.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

DURATION=10
CONNECTIONS=64
ROUNDS=3
WARMUP=2
REVPROXY="$REPO_ROOT/build/src/revproxy"
BACKEND="$REPO_ROOT/build/tools/rp-backend"
ONLY_NGINX=0
WITH_HAPROXY=1
WITH_H2O=0
URL_PATH=/
WRK_HEADERS=()
KEEP_TMP=0
ACCESS_LOG=0
RATELIMIT=0

usage() {
    cat <<EOF
usage: ${0##*/} [options]

  --duration SECONDS   length of each measured wrk run (default $DURATION)
  --connections N      concurrent wrk connections (default $CONNECTIONS)
  --rounds N           measure each target N times, alternating, and report
                       the median run (default $ROUNDS)
  --revproxy PATH      revproxy binary (default ./build/src/revproxy)
  --backend PATH       rp-backend binary (default ./build/tools/rp-backend;
                       built from tools/rp-backend.c when missing)
  --only-nginx         measure only the backend directly and nginx
  --no-haproxy         leave haproxy out (it is measured by default)
  --h2o                measure h2o too (one thread, upstream keep-alive)
  --close              every request with Connection: close (a new client
                       connection each time: the accept path)
  --path PATH          the path requested (default /, a 13-byte answer;
                       /bytes/16384 for 16 KiB)
  --ratelimit          revproxy with and without a rate limit on every request
                       (revproxy_norl), to measure the ratelimit module
  --access-log         access logs on in nginx and revproxy, and revproxy
                       measured with them off too (revproxy_nolog)
  --keep               keep the temp dir (configs, logs, raw wrk output)
  -h, --help           this help

Relative paths are taken from the repository root.
EOF
}

parse_args() {
    while (($# > 0)); do
        OPTN=1
        case $1 in
            --duration | --duration=*) opt_value "$@" && DURATION=$OPTVAL ;;
            --connections | --connections=*) opt_value "$@" && CONNECTIONS=$OPTVAL ;;
            --rounds | --rounds=*) opt_value "$@" && ROUNDS=$OPTVAL ;;
            --revproxy | --revproxy=*) opt_value "$@" && REVPROXY=$(abs_path "$OPTVAL") ;;
            --backend | --backend=*) opt_value "$@" && BACKEND=$(abs_path "$OPTVAL") ;;
            --no-haproxy) WITH_HAPROXY=0 ;;
            --h2o) WITH_H2O=1 ;;
            --path | --path=*) opt_value "$@" && URL_PATH=$OPTVAL ;;
            --close) WRK_HEADERS=(-H "Connection: close") ;;
            --only-nginx) ONLY_NGINX=1 WITH_HAPROXY=0 ;;
            --keep) KEEP_TMP=1 ;;
            --access-log) ACCESS_LOG=1 WITH_HAPROXY=0 ;;
            --ratelimit) RATELIMIT=1 ;;
            *) help_or_unknown "$1" ;;
        esac
        shift "$OPTN"
    done
    [[ $URL_PATH == /* ]] || die "--path must start with /"
    DURATION=$(positive_int --duration "$DURATION" seconds)
    CONNECTIONS=$(positive_int --connections "$CONNECTIONS")
    ROUNDS=$(positive_int --rounds "$ROUNDS")
}

# check_body NAME URL: the target must relay the backend's greeting.
check_body() {
    local name=$1 url=$2 body
    body=$(curl -fsS --max-time 2 "$url") ||
        die "$name: GET $url failed"
    [[ $body == "hello from "* ]] ||
        die "$name: unexpected body from $url: $body"
}

# --- measuring -------------------------------------------------------------

# to_ms VALUE: convert a wrk duration such as 812.00us, 1.82ms, 1.02s to ms.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (!match(v, /^[0-9.]+/)) exit 1
        n = substr(v, 1, RLENGTH); u = substr(v, RLENGTH + 1)
        if (u == "us") n /= 1000
        else if (u == "ms") n += 0
        else if (u == "s") n *= 1000
        else if (u == "m") n *= 60000
        else if (u == "h") n *= 3600000
        else exit 1
        printf "%.3f\n", n
    }'
}

RESULT_RPS=""
RESULT_P50=""
RESULT_P99=""
RESULT_CPU=""

# cpu_ticks N: print "busy total" clock ticks of CPU N from /proc/stat.
cpu_ticks() {
    awk -v cpu="cpu$1" '$1 == cpu {
        busy = $2 + $3 + $4 + $7 + $8 + $9
        printf "%d %d\n", busy, busy + $5 + $6
    }' /proc/stat
}

# load OUT WRK-ARGS...: run wrk on the load CPU, output to OUT.  It runs
# in the background so that an interrupt reaches the trap at once.
load() {
    local out=$1
    shift
    start_load "$out" "$WRK" "$@"
    finish_load
}

# measure NAME URL: warm up, run wrk, fill RESULT_* from its output.
measure() {
    local name=$1 url=$2 out="$TMP/wrk-$1.txt" p50 p99 extra
    note "$name: warm-up ${WARMUP}s, then ${DURATION}s on $url"
    load "$TMP/wrk-$name-warmup.txt" -t1 -c"$CONNECTIONS" -d"${WARMUP}s" \
        "${WRK_HEADERS[@]}" "$url" || die "$name: wrk warm-up failed"
    local b0 t0 b1 t1 nreq
    read -r b0 t0 < <(cpu_ticks 0)
    load "$out" -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${WRK_HEADERS[@]}" "$url" ||
        die "$name: wrk failed: $(tail -n 3 "$out")"
    read -r b1 t1 < <(cpu_ticks 0)
    nreq=$(awk '$2 == "requests" && $3 == "in" { print $1; exit }' "$out")
    # How busy the proxy's core was, and its cost per request: the proxy
    # need not be the bottleneck, so this shows headroom req/s cannot.
    RESULT_CPU=$(awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" \
        -v n="${nreq:-0}" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        if (t <= 0 || n <= 0) { print "n/a"; exit }
        printf "%.0f%% busy, %.1f us/request\n", 100 * b / t, b / hz * 1e6 / n
    }')

    RESULT_RPS=$(wrk_rps "$out")
    p50=$(awk '$1 == "50%" { print $2; exit }' "$out")
    p99=$(awk '$1 == "99%" { print $2; exit }' "$out")
    [[ -n $RESULT_RPS && -n $p50 && -n $p99 ]] ||
        die "$name: could not parse wrk output ($out)"
    RESULT_P50=$(to_ms "$p50") || die "$name: bad latency '$p50'"
    RESULT_P99=$(to_ms "$p99") || die "$name: bad latency '$p99'"

    extra=$(wrk_errors "$out")
    if [[ -n $extra ]]; then
        WARNINGS+=("$name: $extra")
    fi
}

# --- targets ---------------------------------------------------------------

# Each proxy is started on the proxy CPU on a free port, X_PORT, with X_PID
# its PID, and must answer on / before it is measured.

# start_h2o: h2o as a reverse proxy doing the same job (one thread,
# keep-alive to the backend, no access log).  Sets H2O_PID and H2O_PORT.
start_h2o() {
    local dir="$TMP/h2o"
    pick_port
    H2O_PORT=$PORT
    mkdir -p "$dir"
    cat >"$dir/h2o.conf" <<EOF
num-threads: 1
user: $(id -un)
pid-file: $dir/h2o.pid
error-log: $dir/error.log
listen:
  host: 127.0.0.1
  port: $H2O_PORT
hosts:
  default:
    paths:
      /:
        proxy.reverse.url: http://127.0.0.1:$BACKEND_PORT/
EOF
    check_config h2o "$dir/h2o.conf" "$dir/check.log" "$H2O" -t -c "$dir/h2o.conf"
    spawn "$dir/stdout.log" "$dir/stderr.log" "${PIN_PROXY[@]}" "$H2O" -c "$dir/h2o.conf"
    H2O_PID=$SPAWNED
    await h2o "$H2O_PID" "$dir/error.log" "http://127.0.0.1:$H2O_PORT/" -f
}

# start_revproxy [NAME ACCESS [RATELIMIT]]: NAME (default revproxy) sets
# NAME_PID and NAME_PORT (upper case); ACCESS is the access_log setting
# (default off); RATELIMIT 1 limits every request (never refusing one).
start_revproxy() {
    local name=${1:-revproxy} access=${2:-off} rl=${3:-0} rlconf=""
    local dir="$TMP/$name" port
    pick_port
    port=$PORT
    mkdir -p "$dir"
    [[ $access == file ]] && access="$dir/access.log"
    ((rl)) && rlconf='"ratelimit": { "per_ip": { "requests_per_second": 1000000, "burst": 1000000 } },'

    cat >"$dir/revproxy.json" <<EOF
{ "workers": 1,
  "listeners": [ { "address": "127.0.0.1:$port" } ],
  "upstreams": { "bench": { "backends": [ { "address": "127.0.0.1:$BACKEND_PORT" } ],
                            "pool": { "max_idle_per_backend": 64, "idle_timeout_ms": 60000 } } },
  "routes": [ { "path_prefix": "/", "upstream": "bench" } ], $rlconf
  "log": { "level": "warn", "access_log": "$access" } }
EOF
    # Access lines as for nginx above; other log lines stay on disk for
    # inspection with --keep.
    spawn "$dir/stdout.log" "$dir/stderr.log" "${PIN_PROXY[@]}" \
        "$REVPROXY" --config "$dir/revproxy.json"
    local upper=${name^^}
    printf -v "${upper}_PID" '%s' "$SPAWNED"
    printf -v "${upper}_PORT" '%s' "$port"
    await "$name" "$SPAWNED" "$dir/stderr.log" "http://127.0.0.1:$port/" -f
}

# cpu_us NAME LINES...: the us/request figure of NAME among "NAME: ..." lines.
cpu_us() {
    local name=$1 l
    shift
    for l in "$@"; do
        [[ $l == "$name: "* ]] || continue
        awk '{ for (i = 1; i <= NF; i++) if ($i == "us/request") print $(i - 1) }' <<<"$l"
    done
}

# --- main ------------------------------------------------------------------

main() {
    parse_args "$@"

    if ((!ONLY_NGINX)) && [[ ! -x $REVPROXY ]]; then
        die "revproxy binary '$REVPROXY' not found; build it first," \
            "pass --revproxy PATH, or use --only-nginx"
    fi

    need wrk wrk
    need nginx nginx-light
    if ((WITH_HAPROXY)); then
        need haproxy haproxy
        HAPROXY=$(find_cmd haproxy)
    fi
    if ((WITH_H2O)); then
        need h2o h2o
        H2O=$(find_cmd h2o)
    fi
    need_basics

    WRK=$(find_cmd wrk)
    NGINX=$(find_cmd nginx)

    make_tmp revproxy-bench

    prepare_backend

    # Room for many client and upstream sockets.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

    pin_cpus

    start_backend -f
    check_body direct "http://127.0.0.1:$BACKEND_PORT/"

    local names=() rps=() p50=() p99=() cpu0=() targets=(direct nginx)

    # Both proxies run side by side (each idle while the other is measured)
    # and the targets are measured in turn, round after round, so slow
    # drifts of a shared machine hit all of them alike.
    start_peer_nginx "$ACCESS_LOG"
    check_body nginx "http://127.0.0.1:$NGINX_PORT/"
    if ((WITH_HAPROXY)); then
        start_peer_haproxy
        check_body haproxy "http://127.0.0.1:$HAPROXY_PORT/"
        targets+=(haproxy)
    fi
    if ((WITH_H2O)); then
        start_h2o
        check_body h2o "http://127.0.0.1:$H2O_PORT/"
        targets+=(h2o)
    fi
    if ((!ONLY_NGINX)); then
        if ((ACCESS_LOG)); then
            start_revproxy revproxy file
            start_revproxy revproxy_nolog off
            check_body revproxy_nolog "http://127.0.0.1:$REVPROXY_NOLOG_PORT/"
            targets+=(revproxy_nolog)
        elif ((RATELIMIT)); then
            start_revproxy revproxy off 1
            start_revproxy revproxy_norl off 0
            check_body revproxy_norl "http://127.0.0.1:$REVPROXY_NORL_PORT/"
            targets+=(revproxy_norl)
        else
            start_revproxy
        fi
        check_body revproxy "http://127.0.0.1:$REVPROXY_PORT/"
        targets+=(revproxy)
    fi
    local round target url
    declare -A runs=()
    for ((round = 1; round <= ROUNDS; round++)); do
        for target in "${targets[@]}"; do
            case $target in
                direct) url="http://127.0.0.1:$BACKEND_PORT$URL_PATH" ;;
                nginx) url="http://127.0.0.1:$NGINX_PORT$URL_PATH" ;;
                haproxy) url="http://127.0.0.1:$HAPROXY_PORT$URL_PATH" ;;
                h2o) url="http://127.0.0.1:$H2O_PORT$URL_PATH" ;;
                revproxy) url="http://127.0.0.1:$REVPROXY_PORT$URL_PATH" ;;
                revproxy_nolog) url="http://127.0.0.1:$REVPROXY_NOLOG_PORT$URL_PATH" ;;
                revproxy_norl) url="http://127.0.0.1:$REVPROXY_NORL_PORT$URL_PATH" ;;
            esac
            measure "$target" "$url"
            runs[$target]+="$RESULT_RPS $RESULT_P50 $RESULT_P99 ${RESULT_CPU// /_}"$'\n'
        done
    done
    halt "$NGINX_PID"
    if ((WITH_HAPROXY)); then halt "$HAPROXY_PID"; fi
    if ((WITH_H2O)); then halt "$H2O_PID"; fi
    ((ONLY_NGINX)) || halt "$REVPROXY_PID"
    if ((ACCESS_LOG)); then halt "$REVPROXY_NOLOG_PID"; fi
    if ((RATELIMIT)); then halt "$REVPROXY_NORL_PID"; fi

    # The median run by req/s stands for each target.
    local line
    for target in "${targets[@]}"; do
        line=$(printf '%s' "${runs[$target]}" | sort -n -k1,1 |
            awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }')
        read -r RESULT_RPS RESULT_P50 RESULT_P99 RESULT_CPU <<<"$line"
        names+=("$target") rps+=("$RESULT_RPS") p50+=("$RESULT_P50")
        p99+=("$RESULT_P99")
        [[ $target == direct ]] || cpu0+=("$target: ${RESULT_CPU//_/ }")
    done

    local i
    echo
    echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "cpu:     $(cpu_model) ($NCPU CPUs); kernel $(uname -r)"
    echo "wrk:     -t1 -c$CONNECTIONS -d${DURATION}s --latency" \
        "(after a ${WARMUP}s warm-up), path $URL_PATH; median of $ROUNDS rounds"
    echo "pinning: proxy on CPU 0, backend and wrk on CPU 1"
    echo "nginx:   $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
    if ((WITH_H2O)); then
        echo "h2o:     $(version_of 3 "$H2O" --version)"
    fi
    if ((WITH_HAPROXY)); then
        echo "haproxy: $(version_of 3 "$HAPROXY" -v)"
    fi
    echo
    printf '%-10s %10s %9s %9s\n' target req/s p50_ms p99_ms
    for i in "${!names[@]}"; do
        printf '%-10s %10.0f %9.3f %9.3f\n' \
            "${names[$i]}" "${rps[$i]}" "${p50[$i]}" "${p99[$i]}"
    done
    if ((!ONLY_NGINX)); then
        local r=-1 other j
        for j in "${!names[@]}"; do
            [[ ${names[$j]} == revproxy ]] && r=$j
        done
        for other in nginx haproxy h2o revproxy_nolog revproxy_norl; do
            for j in "${!names[@]}"; do
                [[ ${names[$j]} == "$other" ]] || continue
                awk -v rr="${rps[$r]}" -v nr="${rps[$j]}" -v o="$other" \
                    -v rp="${p99[$r]}" -v np="${p99[$j]}" 'BEGIN {
                    printf "ratio revproxy/%s: req/s %s, p99 %s\n", o,
                        (nr > 0 ? sprintf("%.2f", rr / nr) : "n/a"),
                        (np > 0 ? sprintf("%.2f", rp / np) : "n/a")
                }'
            done
        done
    else
        echo "ratio revproxy/nginx: n/a (--only-nginx)"
    fi
    if ((NCPU >= 2)); then
        for i in "${cpu0[@]}"; do
            echo "CPU 0 during $i"
        done
        # CPU time per request against each other target.
        local rus other_us
        rus=$(cpu_us revproxy "${cpu0[@]}")
        for other in nginx haproxy h2o revproxy_nolog revproxy_norl; do
            other_us=$(cpu_us "$other" "${cpu0[@]}")
            [[ -n $rus && -n $other_us ]] || continue
            awk -v a="$rus" -v b="$other_us" -v o="$other" \
                'BEGIN { printf "ratio revproxy/%s: CPU per request %.2f\n", o, a / b }'
        done
    fi
    print_warnings
}

main "$@"
