# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Helpers shared by bench/run.sh and bench/h2.sh, which source this file;
# it is not run on its own.
#
# The sourcing script sets REPO_ROOT before sourcing it, and defines usage
# (its help text), KEEP_TMP (1 keeps the temp dir), BACKEND (the rp-backend
# binary) and, for the nginx helpers, NGINX.  Every process the script
# starts goes through spawn, so that halt and cleanup stop only those, and
# the children that adopt found under them, by PID.

TMP=""
# The processes started here that are still to be stopped on exit.
PIDS=()
# Processes forked by the ones started here (nghttpx's worker), as
# "PARENT:PID:START" with START the start time from /proc/PID/stat, so that
# a PID reused by someone else is never touched.
CHILDREN=()
APT_UPDATED=0
# Lines for print_warnings to report after the results.
WARNINGS=()

die() {
    printf '%s: error: %s\n' "${0##*/}" "$*" >&2
    exit 1
}

note() {
    printf '%s: %s\n' "${0##*/}" "$*" >&2
}

# abs_path PATH: PATH made absolute, a relative one taken from the
# repository root.
abs_path() {
    case $1 in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$REPO_ROOT/${1#./}" ;;
    esac
}

# positive_int NAME VALUE [UNIT]: VALUE in decimal if it is an integer > 0;
# otherwise fail, naming the option NAME (and its UNIT, if given).
positive_int() {
    if [[ ! $2 =~ ^[0-9]+$ ]] || ((10#$2 == 0)); then
        die "$1 must be a positive integer${3:+ ($3)}"
    fi
    printf '%d\n' "$((10#$2))"
}

# opt_value ARG [NEXT...]: for parse_args, the value of an option given
# as `--name VALUE` (two words) or `--name=VALUE` (one): sets OPTVAL to
# the value and OPTN to the words it took; fails when the value is missing.
# shellcheck disable=SC2034 # OPTVAL and OPTN are for the scripts
opt_value() {
    if [[ $1 == *=* ]]; then
        OPTVAL=${1#*=}
        OPTN=1
    else
        (($# >= 2)) || die "$1 needs a value"
        OPTVAL=$2
        OPTN=2
    fi
}

# help_or_unknown ARG: for -h or --help, the help and exit; for anything
# else, the help on standard error and an error naming ARG.
help_or_unknown() {
    case $1 in
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            die "unknown argument '$1'"
            ;;
    esac
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

# find_cmd CMD: the full path of CMD, looking in the sbin directories too
# (a normal user's PATH may lack them; haproxy and nginx live there).
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

# need CMD PACKAGE: CMD must be there; as root, PACKAGE is installed when
# it is not.
need() {
    local cmd=$1 pkg=$2
    find_cmd "$cmd" >/dev/null && return 0
    if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
        apt_install "$pkg"
        find_cmd "$cmd" >/dev/null ||
            die "'$cmd' is still missing after installing $pkg"
    else
        die "'$cmd' not found; install the '$pkg' package" \
            "(as root: apt-get install -y $pkg)"
    fi
}

# need_basics: the tools these helpers use themselves must be there.
need_basics() {
    need curl curl
    need ss iproute2
    need taskset util-linux
    need awk mawk
}

# prepare_backend: BACKEND is the given binary, or one compiled into the
# temp dir from tools/rp-backend.c when the default build is not there.
prepare_backend() {
    local src="$REPO_ROOT/tools/rp-backend.c" cflags libs
    [[ -x $BACKEND ]] && return 0
    if [[ $BACKEND != "$REPO_ROOT/build/tools/rp-backend" || ! -f $src ]]; then
        die "backend binary '$BACKEND' not found or not executable"
    fi
    need gcc gcc
    need pkg-config pkg-config
    if ! pkg-config --exists libevent; then
        ((EUID == 0)) || die "libevent headers not found; install" \
            "'libevent-dev' (as root: apt-get install -y libevent-dev)"
        apt_install libevent-dev
    fi
    note "compiling rp-backend from tools/rp-backend.c"
    cflags=$(pkg-config --cflags libevent)
    libs=$(pkg-config --libs libevent)
    # shellcheck disable=SC2086 # pkg-config prints word lists
    gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra $cflags "$src" $libs \
        -o "$TMP/rp-backend" || die "compiling rp-backend failed"
    BACKEND="$TMP/rp-backend"
}

# --- processes -------------------------------------------------------------

# proc_stat PID: set STAT to the fields of /proc/PID/stat from the third
# (the state) on, or fail if there is no such process.  The command name
# before them may hold spaces and parentheses: they start behind the last
# ") ".
STAT=()
proc_stat() {
    local line
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
    read -r -a STAT <<<"${line##*) }"
}

# running PID START: PID is still the process that started at START (field
# 22 of /proc/PID/stat) and has not exited; a zombie has.
running() {
    proc_stat "$1" || return 1
    [[ ${STAT[0]} != Z && ${STAT[19]} == "$2" ]]
}

# family PID: set FAMILY to PID and all its descendants.
FAMILY=()
family() {
    local list
    list=$({ cat /proc/[0-9]*/stat 2>/dev/null || true; } |
        awk -v root="$1" '
        {
            # The command name may hold spaces and parentheses: the
            # fields after it start behind the last ") ".
            rest = $0
            sub(/^.*\) /, "", rest)
            split(rest, f, " ")
            up[$1] = f[2]
        }
        END {
            kin[root] = 1
            out = root
            grew = 1
            while (grew) {
                grew = 0
                for (p in up)
                    if (!(p in kin) && (up[p] in kin)) {
                        kin[p] = 1
                        out = out " " p
                        grew = 1
                    }
            }
            print out
        }')
    read -r -a FAMILY <<<"$list"
}

# adopt PID: remember the descendants PID has by now.
adopt() {
    local p
    family "$1"
    for p in "${FAMILY[@]:1}"; do
        proc_stat "$p" || continue
        CHILDREN+=("$1:$p:${STAT[19]}")
    done
}

# orphans [PARENT]: once their parent is gone, give the adopted children
# (of PARENT only, if given) 5 s to exit, kill those left, forget them all.
orphans() {
    local entry parent pid start i left rest=() mine=()
    for entry in "${CHILDREN[@]}"; do
        IFS=: read -r parent pid start <<<"$entry"
        if [[ -z ${1:-} || $parent == "$1" ]]; then
            mine+=("$entry")
        else
            rest+=("$entry")
        fi
    done
    for ((i = 0; i < 50; i++)); do
        left=0
        for entry in "${mine[@]}"; do
            IFS=: read -r parent pid start <<<"$entry"
            if running "$pid" "$start"; then
                left=1
            fi
        done
        ((left)) || break
        sleep 0.1
    done
    for entry in "${mine[@]}"; do
        IFS=: read -r parent pid start <<<"$entry"
        if running "$pid" "$start"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    CHILDREN=("${rest[@]}")
}

# spawn OUT ERR CMD...: start CMD in the background, its standard output
# in the file OUT and its standard error in ERR (both in OUT when ERR is
# OUT), and track it in PIDS so that it is stopped on exit; SPAWNED is its
# PID.
SPAWNED=""
spawn() {
    local out=$1 err=$2
    shift 2
    if [[ $err == "$out" ]]; then
        "$@" >"$out" 2>&1 &
    else
        "$@" >"$out" 2>"$err" &
    fi
    SPAWNED=$!
    PIDS+=("$SPAWNED")
}

# untrack PID: PID no longer needs stopping on exit.
untrack() {
    local p rest=()
    for p in "${PIDS[@]}"; do
        [[ $p == "$1" ]] || rest+=("$p")
    done
    PIDS=("${rest[@]}")
}

# reap PID: give PID, a process started here and signalled already, 5 s
# to exit, kill it if it has not, and collect its exit status.
reap() {
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$1" 2>/dev/null; then
        kill -KILL "$1" 2>/dev/null || true
    fi
    wait "$1" 2>/dev/null || true
}

# halt PID [SIGNAL]: stop one process this script started (with SIGNAL,
# TERM by default, then KILL after 5 s), untrack it, and stop the children
# adopted under it.
halt() {
    kill -"${2:-TERM}" "$1" 2>/dev/null || true
    reap "$1"
    untrack "$1"
    orphans "$1"
}

# cleanup: the EXIT trap; stops what is still tracked and removes the temp
# dir (unless KEEP_TMP), keeping the exit status.
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        reap "$pid"
    done
    orphans
    if [[ -n $TMP && -d $TMP ]]; then
        if ((KEEP_TMP)); then
            note "temp dir kept: $TMP"
        else
            rm -rf -- "$TMP"
        fi
    fi
    exit "$rc"
}

# make_tmp NAME: make the private temp dir TMP, NAME.XXXXXX in ${TMPDIR:-/tmp}
# as an absolute path, and have cleanup run on exit.
make_tmp() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    TMP=$(cd "$TMP" && pwd)
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# pin_cpus: set NCPU to the number of CPUs, and PIN_PROXY and PIN_LOAD to
# the command prefixes that put the proxy under test on CPU 0 and the
# backend and load generator on CPU 1 (empty with a single CPU).
NCPU=1
PIN_PROXY=()
PIN_LOAD=()
# shellcheck disable=SC2034 # PIN_PROXY is for the scripts
pin_cpus() {
    NCPU=$(nproc 2>/dev/null || echo 1)
    if ((NCPU >= 2)); then
        PIN_PROXY=(taskset -c 0)
        PIN_LOAD=(taskset -c 1)
    else
        note "only $NCPU CPU: running without CPU pinning"
        PIN_PROXY=()
        PIN_LOAD=()
    fi
}

# pick_port: set PORT to a port below the ephemeral range that no TCP
# socket uses (so no outgoing connection can take it either).
PORT=""
pick_port() {
    local lo=10000 hi first _ tries
    read -r first _ </proc/sys/net/ipv4/ip_local_port_range || first=32768
    hi=$((first - 1))
    ((hi > lo + 100)) || hi=30000
    for ((tries = 0; tries < 200; tries++)); do
        PORT=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
        if [[ -z $(ss -Htan "( sport = :$PORT )" 2>/dev/null) ]]; then
            return 0
        fi
    done
    die "no free loopback port found"
}

# await NAME PID LOG URL [CURL-OPTION...]: wait until URL answers curl
# with CURL-OPTIONs, or fail showing the end of LOG.
await() {
    local name=$1 pid=$2 log=$3 url=$4 i
    shift 4
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2 || true
            die "$name exited while starting (end of $log above;" \
                "--keep keeps it)"
        fi
        if curl -sS -o /dev/null --max-time 1 "$@" "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$log" >&2 || true
    die "$name did not answer on $url within 10 s (end of $log above;" \
        "--keep keeps it)"
}

# start_backend [CURL-OPTION...]: start rp-backend on the load CPU on a
# free port, BACKEND_PORT (BACKEND_PID is its PID), and wait until it
# answers curl with CURL-OPTIONs.
start_backend() {
    pick_port
    BACKEND_PORT=$PORT
    spawn "$TMP/backend.log" "$TMP/backend.log" "${PIN_LOAD[@]}" \
        "$BACKEND" --listen "127.0.0.1:$BACKEND_PORT" --name bench
    BACKEND_PID=$SPAWNED
    await rp-backend "$BACKEND_PID" "$TMP/backend.log" \
        "http://127.0.0.1:$BACKEND_PORT/" "$@"
}

# start_bench_revproxy [PATH]: revproxy (REVPROXY), one worker on the
# proxy CPU, in front of the backend on BACKEND_PORT with access lines off;
# PROXY_PORT and PROXY_PID are set, and it is waited for until PATH (/ by
# default) answers.
start_bench_revproxy() {
    pick_port
    PROXY_PORT=$PORT
    cat >"$TMP/revproxy.json" <<EOF
{ "workers": 1,
  "listeners": [ { "address": "127.0.0.1:$PROXY_PORT" } ],
  "upstreams": { "bench": { "backends": [ { "address": "127.0.0.1:$BACKEND_PORT" } ],
                            "pool": { "max_idle_per_backend": 64, "idle_timeout_ms": 60000 } } },
  "routes": [ { "path_prefix": "/", "upstream": "bench" } ],
  "log": { "level": "warn", "access_log": "off" } }
EOF
    spawn "$TMP/revproxy.out" "$TMP/revproxy.err" "${PIN_PROXY[@]}" "$REVPROXY" \
        --config "$TMP/revproxy.json"
    PROXY_PID=$SPAWNED
    await revproxy "$PROXY_PID" "$TMP/revproxy.err" "http://127.0.0.1:$PROXY_PORT${1:-/}" -f
}

# start_peer_nginx [ACCESS]: nginx as an HTTP/1.1 reverse proxy in front
# of the backend on BACKEND_PORT, one worker on the proxy CPU, keep-alive
# both ways (64 idle upstream connections), PEER_CONNECTIONS client
# connections at most (default 4096); ACCESS 1 writes its access log.
# Sets NGINX_PID and NGINX_PORT.
# shellcheck disable=SC2034 # NGINX_PID and NGINX_PORT are for the scripts
start_peer_nginx() {
    local dir="$TMP/nginx" port access=${1:-0}
    pick_port
    port=$PORT
    mkdir -p "$dir/logs" "$dir/tmp"
    {
        nginx_conf_head "$dir" "${PEER_CONNECTIONS:-4096}"
        cat <<EOF

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
        $( ((access)) && echo "access_log $dir/logs/access.log;" )

        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    nginx_checked nginx "$dir"
    spawn "$dir/logs/stderr.log" "$dir/logs/stderr.log" "${PIN_PROXY[@]}" \
        "$NGINX" -p "$dir/" "${NGINX_EFLAG[@]}" -c "$dir/nginx.conf"
    NGINX_PID=$SPAWNED
    NGINX_PORT=$port
    await nginx "$NGINX_PID" "$dir/logs/error.log" "http://127.0.0.1:$port/" -f
}

# start_peer_haproxy: haproxy doing the same job (one thread, keep-alive
# both ways, idle server connections reused by any request, no logging).
# Sets HAPROXY_PID and HAPROXY_PORT.
# shellcheck disable=SC2034 # HAPROXY_PID and HAPROXY_PORT are for the scripts
start_peer_haproxy() {
    local dir="$TMP/haproxy" port
    pick_port
    port=$PORT
    mkdir -p "$dir"
    cat >"$dir/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn ${PEER_CONNECTIONS:-4096}
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
    check_config haproxy "$dir/haproxy.cfg" "$dir/check.log" \
        "$HAPROXY" -c -q -f "$dir/haproxy.cfg"
    spawn "$dir/stdout.log" "$dir/stderr.log" "${PIN_PROXY[@]}" \
        "$HAPROXY" -db -f "$dir/haproxy.cfg"
    HAPROXY_PID=$SPAWNED
    HAPROXY_PORT=$port
    await haproxy "$HAPROXY_PID" "$dir/stderr.log" "http://127.0.0.1:$port/" -f
}

# check_config NAME FILE LOG CMD...: CMD checks NAME's config FILE; if it
# fails, show its output (kept in LOG) and stop.
check_config() {
    local name=$1 file=$2 log=$3
    shift 3
    "$@" >"$log" 2>&1 || {
        cat "$log" >&2
        die "$name rejected its config ($file)"
    }
}

# nginx_temp_paths DIR BUILD: the http-block directives that keep nginx's
# temp files in DIR/tmp, for each temp path of the modules this nginx has
# (BUILD is what nginx -V prints).
nginx_temp_paths() {
    local dir=$1 build=$2 m
    printf '    client_body_temp_path %s/tmp/body;\n' "$dir"
    printf '    proxy_temp_path %s/tmp/proxy;\n' "$dir"
    for m in fastcgi uwsgi scgi; do
        if [[ $build != *"--without-http_${m}_module"* ]]; then
            printf '    %s_temp_path %s/tmp/%s;\n' "$m" "$dir" "$m"
        fi
    done
}

# nginx_conf_head DIR CONNECTIONS: the start of an nginx.conf for one
# worker in the foreground (pid and error log in DIR, temp files in
# DIR/tmp), up to and into its http block, with no access log.
nginx_conf_head() {
    cat <<EOF
worker_processes 1;
daemon off;
master_process off;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;

events {
    worker_connections $2;
}

http {
    access_log off;
$(nginx_temp_paths "$1" "$("$NGINX" -V 2>&1)")
EOF
}

# nginx_checked NAME DIR: set NGINX_EFLAG for DIR's error log and have
# nginx test DIR/nginx.conf, or stop showing why.
nginx_checked() {
    nginx_error_flag "$2/logs/error.log"
    check_config "$1" "$2/nginx.conf" "$2/logs/check.log" \
        "$NGINX" -t -q -p "$2/" "${NGINX_EFLAG[@]}" -c "$2/nginx.conf"
}

# nginx_error_flag LOG: set NGINX_EFLAG to the options that send nginx's
# own error output to LOG, if this nginx has -e (empty if not).
NGINX_EFLAG=()
# shellcheck disable=SC2034 # NGINX_EFLAG is for the scripts
nginx_error_flag() {
    NGINX_EFLAG=()
    if [[ $("$NGINX" -h 2>&1 || true) == *"-e filename"* ]]; then
        NGINX_EFLAG=(-e "$1")
    fi
}

# --- measuring -------------------------------------------------------------

# start_load OUT CMD...: run a load generator on the load CPU in the
# background (so an interrupt reaches the trap at once), its output in
# OUT; LOAD_PID is its PID.  finish_load waits for it.
LOAD_PID=""
start_load() {
    local out=$1
    shift
    spawn "$out" "$out" "${PIN_LOAD[@]}" "$@"
    LOAD_PID=$SPAWNED
}

finish_load() {
    local rc=0
    wait "$LOAD_PID" || rc=$?
    untrack "$LOAD_PID"
    return "$rc"
}

# wrk_rps OUT: the req/s in wrk's output OUT (nothing if there is none).
wrk_rps() {
    awk '$1 == "Requests/sec:" { print $2; exit }' "$1"
}

# wrk_errors OUT: wrk's counts of non-2xx/3xx answers and socket errors
# in OUT, on one line (nothing if there are none).
wrk_errors() {
    awk '/Non-2xx or 3xx responses:|Socket errors:/ {
             sub(/^ +/, ""); printf "%s%s", sep, $0; sep = "; " }' "$1"
}

# --- reporting -------------------------------------------------------------

# cpu_model: the CPU's model name, or the machine type when /proc/cpuinfo
# has none.
cpu_model() {
    local cpu
    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo \
        2>/dev/null || true)
    [[ -n $cpu ]] || cpu=$(uname -m)
    printf '%s\n' "$cpu"
}

# version_of FIELD CMD...: the first line CMD prints, or only its FIELDth
# word if FIELD is not empty (wrk -v exits with status 1).
version_of() {
    local field=$1
    shift
    { "$@" 2>&1 || true; } | awk -v f="$field" 'NR == 1 {
        if (f == "") print; else print $f }'
}

# print_warnings: each of WARNINGS on a "warning:" line.
print_warnings() {
    local w
    for w in "${WARNINGS[@]}"; do
        echo "warning: $w"
    done
}
