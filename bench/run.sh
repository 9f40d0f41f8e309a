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
#                [--only-nginx] [--keep]
#
# The proxy under test runs on CPU 0; the backend and wrk share CPU 1.
# Every port is a free loopback port chosen at start-up, every config and
# log lives in a private temp dir, and on exit only the processes this
# script started are stopped.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT

DURATION=10
CONNECTIONS=64
ROUNDS=3
WARMUP=2
REVPROXY="$REPO_ROOT/build/src/revproxy"
BACKEND="$REPO_ROOT/build/tools/rp-backend"
ONLY_NGINX=0
WITH_HAPROXY=1
KEEP_TMP=0

TMP=""
PIDS=()
APT_UPDATED=0

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
  --keep               keep the temp dir (configs, logs, raw wrk output)
  -h, --help           this help

Relative paths are taken from the repository root.
EOF
}

die() {
    printf '%s: error: %s\n' "${0##*/}" "$*" >&2
    exit 1
}

note() {
    printf '%s: %s\n' "${0##*/}" "$*" >&2
}

# Turn a path given on the command line into an absolute one, resolving
# relative paths against the repository root.
abs_path() {
    case $1 in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$REPO_ROOT/${1#./}" ;;
    esac
}

is_uint() {
    [[ $1 =~ ^[0-9]+$ ]]
}

parse_args() {
    while (($# > 0)); do
        case $1 in
            --duration)
                (($# >= 2)) || die "--duration needs a value"
                DURATION=$2
                shift 2
                ;;
            --duration=*)
                DURATION=${1#*=}
                shift
                ;;
            --connections)
                (($# >= 2)) || die "--connections needs a value"
                CONNECTIONS=$2
                shift 2
                ;;
            --connections=*)
                CONNECTIONS=${1#*=}
                shift
                ;;
            --revproxy)
                (($# >= 2)) || die "--revproxy needs a path"
                REVPROXY=$(abs_path "$2")
                shift 2
                ;;
            --revproxy=*)
                REVPROXY=$(abs_path "${1#*=}")
                shift
                ;;
            --backend)
                (($# >= 2)) || die "--backend needs a path"
                BACKEND=$(abs_path "$2")
                shift 2
                ;;
            --backend=*)
                BACKEND=$(abs_path "${1#*=}")
                shift
                ;;
            --rounds)
                (($# >= 2)) || die "--rounds needs a value"
                ROUNDS=$2
                shift 2
                ;;
            --rounds=*)
                ROUNDS=${1#*=}
                shift
                ;;
            --no-haproxy)
                WITH_HAPROXY=0
                shift
                ;;
            --only-nginx)
                ONLY_NGINX=1
                WITH_HAPROXY=0
                shift
                ;;
            --keep)
                KEEP_TMP=1
                shift
                ;;
            -h | --help)
                usage
                exit 0
                ;;
            *)
                usage >&2
                die "unknown argument '$1'"
                ;;
        esac
    done
    if ! is_uint "$DURATION" || ((10#$DURATION == 0)); then
        die "--duration must be a positive integer (seconds)"
    fi
    if ! is_uint "$CONNECTIONS" || ((10#$CONNECTIONS == 0)); then
        die "--connections must be a positive integer"
    fi
    if ! is_uint "$ROUNDS" || ((10#$ROUNDS == 0)); then
        die "--rounds must be a positive integer"
    fi
    DURATION=$((10#$DURATION))
    CONNECTIONS=$((10#$CONNECTIONS))
    ROUNDS=$((10#$ROUNDS))
}

# --- dependencies ----------------------------------------------------------

apt_install() {
    local pkg=$1
    if ((APT_UPDATED == 0)); then
        note "apt-get update"
        apt-get update -qq >&2 || die "apt-get update failed"
        APT_UPDATED=1
    fi
    note "installing $pkg"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2 ||
        die "apt-get install $pkg failed"
}

# require CMD PACKAGE: make sure CMD can be found, installing PACKAGE as root.
require() {
    local cmd=$1 pkg=$2
    if find_cmd "$cmd" >/dev/null; then
        return 0
    fi
    if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
        apt_install "$pkg"
        find_cmd "$cmd" >/dev/null ||
            die "'$cmd' still missing after installing $pkg"
    else
        die "'$cmd' not found; install the '$pkg' package" \
            "(as root: apt-get install -y $pkg)"
    fi
}

# find_cmd CMD: print the full path of CMD, also looking in the sbin dirs
# that a normal user's PATH may lack (nginx lives in /usr/sbin).
find_cmd() {
    local cmd=$1 dir
    if command -v "$cmd" 2>/dev/null; then
        return 0
    fi
    for dir in /usr/sbin /sbin /usr/local/sbin; do
        if [[ -x $dir/$cmd ]]; then
            printf '%s\n' "$dir/$cmd"
            return 0
        fi
    done
    return 1
}

# Build rp-backend into the temp dir when no binary was supplied.
ensure_backend() {
    local src="$REPO_ROOT/tools/rp-backend.c"
    if [[ -x $BACKEND ]]; then
        return 0
    fi
    if [[ $BACKEND != "$REPO_ROOT/tools/rp-backend" || ! -f $src ]]; then
        die "backend binary '$BACKEND' not found or not executable"
    fi
    require gcc gcc
    require pkg-config pkg-config
    if ! pkg-config --exists libevent; then
        if ((EUID == 0)); then
            apt_install libevent-dev
        else
            die "libevent headers not found; install the 'libevent-dev'" \
                "package (as root: apt-get install -y libevent-dev)"
        fi
    fi
    note "building rp-backend from tools/rp-backend.c"
    local cflags libs
    cflags=$(pkg-config --cflags libevent)
    libs=$(pkg-config --libs libevent)
    # shellcheck disable=SC2086 # pkg-config output is a word list
    gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra $cflags "$src" $libs \
        -o "$TMP/rp-backend" || die "building rp-backend failed"
    BACKEND="$TMP/rp-backend"
}

# --- processes -------------------------------------------------------------

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $TMP && -d $TMP ]]; then
        if ((KEEP_TMP)); then
            note "temp dir kept: $TMP"
        else
            rm -rf -- "$TMP"
        fi
    fi
    exit "$rc"
}

# forget PID: drop PID from the list of processes to stop on exit.
forget() {
    local pid=$1 p keep=()
    for p in "${PIDS[@]}"; do
        [[ $p == "$pid" ]] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

# stop PID: stop one process this script started and forget it.
stop() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}

# Set FREE_PORT to a port in [10000, start of the ephemeral range) that no
# TCP socket uses, so it cannot collide with outgoing connections either.
FREE_PORT=""
free_port() {
    local lo=10000 hi eph_lo _ port tries
    read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range || eph_lo=32768
    hi=$((eph_lo - 1))
    ((hi > lo + 100)) || hi=30000
    for ((tries = 0; tries < 200; tries++)); do
        port=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
        if [[ -z $(ss -Htan "( sport = :$port )" 2>/dev/null) ]]; then
            FREE_PORT=$port
            return 0
        fi
    done
    die "could not find a free loopback port"
}

# wait_http NAME PID URL LOG: wait until URL answers, or fail.
wait_http() {
    local name=$1 pid=$2 url=$3 log=$4 i
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2 || true
            die "$name exited during start-up (log tail above;" \
                "--keep keeps $log)"
        fi
        if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$log" >&2 || true
    die "$name did not answer on $url within 10 s (log tail above;" \
        "--keep keeps $log)"
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
WARNINGS=()

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
    local out=$1 pid rc=0
    shift
    "${PIN_LOAD[@]}" "$WRK" "$@" >"$out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    forget "$pid"
    return "$rc"
}

# measure NAME URL: warm up, run wrk, fill RESULT_* from its output.
measure() {
    local name=$1 url=$2 out="$TMP/wrk-$1.txt" p50 p99 extra
    note "$name: warm-up ${WARMUP}s, then ${DURATION}s on $url"
    load "$TMP/wrk-$name-warmup.txt" -t1 -c"$CONNECTIONS" -d"${WARMUP}s" \
        "$url" || die "$name: wrk warm-up failed"
    local b0 t0 b1 t1 nreq
    read -r b0 t0 < <(cpu_ticks 0)
    load "$out" -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url" ||
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

    RESULT_RPS=$(awk '$1 == "Requests/sec:" { print $2; exit }' "$out")
    p50=$(awk '$1 == "50%" { print $2; exit }' "$out")
    p99=$(awk '$1 == "99%" { print $2; exit }' "$out")
    [[ -n $RESULT_RPS && -n $p50 && -n $p99 ]] ||
        die "$name: could not parse wrk output ($out)"
    RESULT_P50=$(to_ms "$p50") || die "$name: bad latency '$p50'"
    RESULT_P99=$(to_ms "$p99") || die "$name: bad latency '$p99'"

    extra=$(awk '/Non-2xx or 3xx responses:|Socket errors:/ {
                     sub(/^ +/, ""); printf "%s%s", sep, $0; sep = "; " }' \
        "$out")
    if [[ -n $extra ]]; then
        WARNINGS+=("$name: $extra")
    fi
}

# --- targets ---------------------------------------------------------------

start_backend() {
    free_port
    BACKEND_PORT=$FREE_PORT
    "${PIN_LOAD[@]}" "$BACKEND" --listen "127.0.0.1:$BACKEND_PORT" \
        --name bench 2>"$TMP/backend.log" &
    BACKEND_PID=$!
    PIDS+=("$BACKEND_PID")
    wait_http rp-backend "$BACKEND_PID" "http://127.0.0.1:$BACKEND_PORT/" \
        "$TMP/backend.log"
}

# nginx_has_module NAME: true unless nginx was built --without-NAME_module.
nginx_has_module() {
    [[ $NGINX_BUILD != *"--without-$1_module"* ]]
}

start_nginx() {
    local dir="$TMP/nginx" port temps="" m
    free_port
    port=$FREE_PORT
    mkdir -p "$dir/logs" "$dir/tmp"
    temps+="        client_body_temp_path $dir/tmp/body;"$'\n'
    temps+="        proxy_temp_path $dir/tmp/proxy;"$'\n'
    for m in fastcgi uwsgi scgi; do
        if nginx_has_module "http_$m"; then
            temps+="        ${m}_temp_path $dir/tmp/$m;"$'\n'
        fi
    done
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
$temps
    # Steady-state proxying: do not recycle connections every 1000
    # requests on either side.
    keepalive_requests 1000000;

    upstream bench {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen 127.0.0.1:$port;

        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    local eflag=()
    if [[ $NGINX_HELP == *"-e filename"* ]]; then
        eflag=(-e "$dir/logs/error.log")
    fi
    "$NGINX" -t -q -p "$dir/" "${eflag[@]}" -c "$dir/nginx.conf" \
        >"$dir/logs/configtest.log" 2>&1 || {
        cat "$dir/logs/configtest.log" >&2
        die "nginx rejected its config ($dir/nginx.conf)"
    }
    "${PIN_PROXY[@]}" "$NGINX" -p "$dir/" "${eflag[@]}" -c "$dir/nginx.conf" \
        >"$dir/logs/stderr.log" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    NGINX_PORT=$port
    wait_http nginx "$NGINX_PID" "http://127.0.0.1:$port/" \
        "$dir/logs/error.log"
}

start_haproxy() {
    local dir="$TMP/haproxy" port
    free_port
    port=$FREE_PORT
    mkdir -p "$dir"
    # One thread, keep-alive both ways, idle server connections reused by
    # any request, no logging: the same job as the other two proxies.
    cat >"$dir/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4096
    pidfile $dir/haproxy.pid

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 2s
    timeout client 60s
    timeout server 60s

frontend bench
    bind 127.0.0.1:$port
    default_backend bench

backend bench
    server backend 127.0.0.1:$BACKEND_PORT
CFG
    "$HAPROXY" -c -q -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1 || {
        cat "$dir/check.log" >&2
        die "haproxy rejected its config ($dir/haproxy.cfg)"
    }
    "${PIN_PROXY[@]}" "$HAPROXY" -db -f "$dir/haproxy.cfg" \
        >"$dir/stdout.log" 2>"$dir/stderr.log" &
    HAPROXY_PID=$!
    PIDS+=("$HAPROXY_PID")
    HAPROXY_PORT=$port
    wait_http haproxy "$HAPROXY_PID" "http://127.0.0.1:$port/" \
        "$dir/stderr.log"
}

start_revproxy() {
    local dir="$TMP/revproxy" port
    free_port
    port=$FREE_PORT
    mkdir -p "$dir"
    cat >"$dir/revproxy.json" <<EOF
{ "workers": 1,
  "listeners": [ { "address": "127.0.0.1:$port" } ],
  "upstreams": { "bench": { "backends": [ { "address": "127.0.0.1:$BACKEND_PORT" } ],
                            "pool": { "max_idle_per_backend": 64, "idle_timeout_ms": 60000 } } },
  "routes": [ { "path_prefix": "/", "upstream": "bench" } ],
  "log": { "level": "warn", "access_log": "off" } }
EOF
    # Access lines are off, as they are for nginx above; other log lines
    # stay on disk for inspection with --keep.
    "${PIN_PROXY[@]}" "$REVPROXY" --config "$dir/revproxy.json" \
        >"$dir/stdout.log" 2>"$dir/stderr.log" &
    REVPROXY_PID=$!
    PIDS+=("$REVPROXY_PID")
    REVPROXY_PORT=$port
    wait_http revproxy "$REVPROXY_PID" "http://127.0.0.1:$port/" \
        "$dir/stderr.log"
}

# --- main ------------------------------------------------------------------

main() {
    parse_args "$@"

    if ((!ONLY_NGINX)) && [[ ! -x $REVPROXY ]]; then
        die "revproxy binary '$REVPROXY' not found; build it first," \
            "pass --revproxy PATH, or use --only-nginx"
    fi

    require wrk wrk
    require nginx nginx-light
    if ((WITH_HAPROXY)); then
        require haproxy haproxy
        HAPROXY=$(find_cmd haproxy)
    fi
    require curl curl
    require ss iproute2
    require taskset util-linux
    require awk mawk

    WRK=$(find_cmd wrk)
    NGINX=$(find_cmd nginx)
    NGINX_BUILD=$("$NGINX" -V 2>&1)
    NGINX_HELP=$("$NGINX" -h 2>&1 || true)

    TMP=$(mktemp -d "${TMPDIR:-/tmp}/revproxy-bench.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    ensure_backend

    # Room for many client and upstream sockets.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

    local ncpu
    ncpu=$(nproc 2>/dev/null || echo 1)
    if ((ncpu >= 2)); then
        PIN_PROXY=(taskset -c 0)
        PIN_LOAD=(taskset -c 1)
    else
        note "only $ncpu CPU: running without CPU pinning"
        PIN_PROXY=()
        PIN_LOAD=()
    fi

    start_backend
    check_body direct "http://127.0.0.1:$BACKEND_PORT/"

    local names=() rps=() p50=() p99=() cpu0=() targets=(direct nginx)

    # Both proxies run side by side (each idle while the other is measured)
    # and the targets are measured in turn, round after round, so slow
    # drifts of a shared machine hit all of them alike.
    start_nginx
    check_body nginx "http://127.0.0.1:$NGINX_PORT/"
    if ((WITH_HAPROXY)); then
        start_haproxy
        check_body haproxy "http://127.0.0.1:$HAPROXY_PORT/"
        targets+=(haproxy)
    fi
    if ((!ONLY_NGINX)); then
        start_revproxy
        check_body revproxy "http://127.0.0.1:$REVPROXY_PORT/"
        targets+=(revproxy)
    fi
    local round target url
    declare -A runs=()
    for ((round = 1; round <= ROUNDS; round++)); do
        for target in "${targets[@]}"; do
            case $target in
                direct) url="http://127.0.0.1:$BACKEND_PORT/" ;;
                nginx) url="http://127.0.0.1:$NGINX_PORT/" ;;
                haproxy) url="http://127.0.0.1:$HAPROXY_PORT/" ;;
                revproxy) url="http://127.0.0.1:$REVPROXY_PORT/" ;;
            esac
            measure "$target" "$url"
            runs[$target]+="$RESULT_RPS $RESULT_P50 $RESULT_P99 ${RESULT_CPU// /_}"$'\n'
        done
    done
    stop "$NGINX_PID"
    if ((WITH_HAPROXY)); then stop "$HAPROXY_PID"; fi
    ((ONLY_NGINX)) || stop "$REVPROXY_PID"

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

    local cpu i
    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo \
        2>/dev/null || true)
    [[ -n $cpu ]] || cpu=$(uname -m)

    echo
    echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "cpu:     $cpu ($ncpu CPUs); kernel $(uname -r)"
    echo "wrk:     -t1 -c$CONNECTIONS -d${DURATION}s --latency" \
        "(after a ${WARMUP}s warm-up), path /; median of $ROUNDS rounds"
    echo "pinning: proxy on CPU 0, backend and wrk on CPU 1"
    echo "nginx:   $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
    if ((WITH_HAPROXY)); then
        echo "haproxy: $("$HAPROXY" -v 2>&1 | awk 'NR == 1 { print $3 }')"
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
        for other in nginx haproxy; do
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
    if ((ncpu >= 2)); then
        for i in "${cpu0[@]}"; do
            echo "CPU 0 during $i"
        done
    fi
    for i in "${WARNINGS[@]}"; do
        echo "warning: $i"
    done
}

main "$@"
