#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Loopback benchmark of the client side protocols: revproxy, nghttpx and
# haproxy (and nginx with --nginx), each with one worker thread, in front
# of the same HTTP/1.1 backend answering 100-byte bodies, measured with
#
#   h2c     h2load, HTTP/2 with prior knowledge on a plain listener
#   h2      h2load, HTTP/2 over TLS (ALPN h2)
#   h1tls   wrk, HTTP/1.1 keep-alive over TLS
#
#   bench/h2.sh [--duration SECONDS] [--rounds N] [--connections N]
#               [--streams N] [--wrk-connections N] [--revproxy PATH]
#               [--backend-server nginx|rp-backend] [--backend PATH]
#               [--nginx] [--stock-peers] [--scenarios LIST] [--keep]
#
# The backend is an nginx worker answering every request with a fixed
# 100-byte body ("return 200"): it costs the load CPU about 12 us per
# request, so the proxy under test is what runs out of CPU first.  With
# --backend-server rp-backend (libevent's evhttp, about 34 us per
# request) the load CPU saturates first and every proxy is held to the
# same rate, idle part of the time, which says little about the proxies.
#
# revproxy always adds X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host
# and X-Request-Id to every request and X-Request-Id to every response.
# So that every proxy does the same work, the others are configured to add
# the same fields: haproxy with option forwardfor, set-header and a
# unique-id (a UUID) sent both ways; nghttpx with --add-x-forwarded-for,
# its default X-Forwarded-Proto and a fixed 32-character X-Request-Id both
# ways (it cannot make one per request), and nginx with proxy_set_header
# and $request_id.  --stock-peers measures the others as they come.
#
# For every run it reports req/s and the proxy's own CPU time per request
# (utime + stime from /proc/PID/stat of the proxy and its children over
# the measured window, divided by the requests of that window).  The proxy
# runs on CPU 0; the backend and the load generator share CPU 1.  Ports
# are free loopback ports chosen at start-up, the certificate, configs and
# logs live in a private temp dir, and on exit only the processes this
# script started are stopped.

set -euo pipefail

# Decimal points stay dots, whatever the caller's locale ($EPOCHREALTIME).
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

DURATION=10
ROUNDS=3
WARMUP=2
CONNECTIONS=8
STREAMS=64
WRK_CONNECTIONS=64
REVPROXY="$REPO_ROOT/build/src/revproxy"
BACKEND="$REPO_ROOT/build/tools/rp-backend"
BACKEND_SERVER=nginx
WITH_NGINX=0
STOCK_PEERS=0
KEEP_TMP=0

# Every proxy gets the same TLS 1.3 suite so that the cipher is not what
# differs between them.
readonly TLS13_SUITE=TLS_AES_128_GCM_SHA256
readonly BODY_PATH=/bytes/100
readonly BODY_BYTES=100
# The X-Request-Id nghttpx is given (it has no per-request id).
readonly FIXED_ID=6b1f0e2c9a4d4f3e8c7b5a6d2e1f0a9b
SCENARIOS=(h2c h2 h1tls)

TLS_DIR=""

usage() {
    cat <<EOF
usage: ${0##*/} [options]

  --duration SECONDS   length of each measured run (default $DURATION)
  --rounds N           measure each target N times, alternating, and report
                       the medians (default $ROUNDS)
  --connections N      h2load connections (default $CONNECTIONS)
  --streams N          h2load concurrent streams per connection, -m
                       (default $STREAMS)
  --wrk-connections N  wrk connections for HTTP/1.1 over TLS
                       (default $WRK_CONNECTIONS)
  --revproxy PATH      revproxy binary (default ./build/src/revproxy)
  --backend-server S   what answers behind the proxies: nginx (default;
                       installs nginx-light as root) or rp-backend
  --backend PATH       rp-backend binary for --backend-server rp-backend
                       (default ./build/tools/rp-backend; built from
                       tools/rp-backend.c when missing)
  --nginx              measure nginx too (installs nginx-light as root)
  --scenarios LIST     comma-separated subset of h2c,h2,h1tls (default all)
  --stock-peers        leave out the forwarding and request id fields the
                       other proxies are given to match what revproxy adds
  --keep               keep the temp dir (certificate, configs, logs, raw
                       h2load and wrk output)
  -h, --help           this help

Relative paths are taken from the repository root.
EOF
}

parse_args() {
    local opt val
    while (($# > 0)); do
        opt=$1
        case $opt in
            --*=*)
                val=${opt#*=}
                opt=${opt%%=*}
                shift
                ;;
            --duration | --rounds | --connections | --streams | \
                --wrk-connections | --revproxy | --backend | --backend-server | \
                --scenarios)
                (($# >= 2)) || die "$opt needs a value"
                val=$2
                shift 2
                ;;
            *)
                val=""
                shift
                ;;
        esac
        case $opt in
            --duration) DURATION=$(positive_int "$opt" "$val") ;;
            --rounds) ROUNDS=$(positive_int "$opt" "$val") ;;
            --connections) CONNECTIONS=$(positive_int "$opt" "$val") ;;
            --streams) STREAMS=$(positive_int "$opt" "$val") ;;
            --wrk-connections)
                WRK_CONNECTIONS=$(positive_int "$opt" "$val")
                ;;
            --revproxy) REVPROXY=$(abs_path "$val") ;;
            --backend) BACKEND=$(abs_path "$val") ;;
            --backend-server)
                case $val in
                    nginx | rp-backend) BACKEND_SERVER=$val ;;
                    *) die "--backend-server is nginx or rp-backend" ;;
                esac
                ;;
            --nginx) WITH_NGINX=1 ;;
            --stock-peers) STOCK_PEERS=1 ;;
            --scenarios)
                local list sc
                IFS=, read -r -a list <<<"$val"
                ((${#list[@]} > 0)) || die "--scenarios needs at least one of h2c,h2,h1tls"
                for sc in "${list[@]}"; do
                    case $sc in
                        h2c | h2 | h1tls) ;;
                        *) die "--scenarios: unknown scenario '$sc' (h2c, h2, h1tls)" ;;
                    esac
                done
                SCENARIOS=("${list[@]}")
                ;;
            --keep) KEEP_TMP=1 ;;
            *) help_or_unknown "$opt" ;;
        esac
    done
    ((STREAMS <= 1000)) || die "--streams must be at most 1000"
}

# --- requests --------------------------------------------------------------

# curl_args SCENARIO: set CURL_ARGS to what makes curl speak SCENARIO's
# protocol, and WANT_VERSION to the %{http_version} it must report.
CURL_ARGS=()
WANT_VERSION=""
curl_args() {
    case $1 in
        h2c) CURL_ARGS=(--http2-prior-knowledge) WANT_VERSION=2 ;;
        h2) CURL_ARGS=(--insecure --http2) WANT_VERSION=2 ;;
        h1tls | h1) CURL_ARGS=(--insecure --http1.1) WANT_VERSION=1.1 ;;
        *) die "internal: unknown scenario $1" ;;
    esac
}

# await_in NAME PID LOG SCENARIO URL: wait until URL answers in SCENARIO's
# protocol, or fail showing the end of LOG.
await_in() {
    curl_args "$4"
    await "$1" "$2" "$3" "$5" "${CURL_ARGS[@]}"
}

# verify NAME SCENARIO URL: one request in SCENARIO's protocol must come
# back 200 with the backend's 100 bytes.
verify() {
    local name=$1 scen=$2 url=$3 got body="$TMP/body.$1.$2"
    curl_args "$scen"
    got=$(curl -sS --max-time 2 "${CURL_ARGS[@]}" -o "$body" -D "$body.head" \
        -w '%{http_version} %{http_code}' "$url") ||
        die "$name ($scen): GET $url failed"
    if [[ $name != backend ]] && ((STOCK_PEERS == 0)) &&
        ! grep -qi '^x-request-id: ' "$body.head"; then
        die "$name ($scen): no X-Request-Id in the response from $url"
    fi
    [[ $got == "$WANT_VERSION 200" ]] ||
        die "$name ($scen): expected HTTP/$WANT_VERSION 200 from $url," \
            "got '$got'"
    [[ $(tr -d x <"$body" | wc -c) -eq 0 &&
        $(wc -c <"$body") -eq $BODY_BYTES ]] ||
        die "$name ($scen): the body from $url is not $BODY_BYTES x's"
}

# --- the certificate -------------------------------------------------------

make_certificate() {
    TLS_DIR="$TMP/tls"
    mkdir -p "$TLS_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" -days 7 \
        -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        >"$TLS_DIR/openssl.log" 2>&1 || {
        cat "$TLS_DIR/openssl.log" >&2
        die "openssl could not make the test certificate"
    }
    # haproxy wants the certificate and its key in one file.
    cat "$TLS_DIR/cert.pem" "$TLS_DIR/key.pem" >"$TLS_DIR/combined.pem"
}

# --- targets ---------------------------------------------------------------

# Per target: its PID (the one started; children are found at measuring
# time), its h2c port and its TLS port.
declare -A PROXY_PID=() H2C_PORT=() TLS_PORT=()

# launch NAME DIR LOG CMD...: start a proxy on the proxy CPU, its stdout
# and stderr in DIR, wait for both of its listeners (showing the end of LOG
# if it fails), and check it relays the body in all three protocols.
launch() {
    local name=$1 dir=$2 log=$3 pid
    shift 3
    spawn "$dir/stdout.log" "$dir/stderr.log" "${PIN_PROXY[@]}" "$@"
    pid=$SPAWNED
    PROXY_PID[$name]=$pid
    await_in "$name" "$pid" "$log" h2c "http://127.0.0.1:${H2C_PORT[$name]}/"
    await_in "$name" "$pid" "$log" h2 "https://127.0.0.1:${TLS_PORT[$name]}/"
    verify "$name" h2c "http://127.0.0.1:${H2C_PORT[$name]}$BODY_PATH"
    verify "$name" h2 "https://127.0.0.1:${TLS_PORT[$name]}$BODY_PATH"
    verify "$name" h1tls "https://127.0.0.1:${TLS_PORT[$name]}$BODY_PATH"
    adopt "$pid"
}

# ports NAME: choose the two listening ports of a target.
ports() {
    pick_port
    H2C_PORT[$1]=$PORT
    pick_port
    while [[ $PORT == "${H2C_PORT[$1]}" ]]; do pick_port; done
    TLS_PORT[$1]=$PORT
}

start_revproxy() {
    local dir="$TMP/revproxy"
    mkdir -p "$dir"
    ports revproxy
    # max_connections 4096, as haproxy's maxconn: the default 10000 wants
    # more descriptors than a 20000 hard limit holds, and warns.
    cat >"$dir/revproxy.json" <<EOF
{ "workers": 1,
  "listeners": [
    { "address": "127.0.0.1:${H2C_PORT[revproxy]}" },
    { "address": "127.0.0.1:${TLS_PORT[revproxy]}",
      "tls": { "certificates": [ { "cert": "$TLS_DIR/cert.pem",
                                   "key": "$TLS_DIR/key.pem" } ],
               "ciphersuites": "$TLS13_SUITE" } } ],
  "limits": { "max_connections": 4096,
              "h2_max_concurrent_streams": $MAX_STREAMS },
  "upstreams": { "bench": {
      "backends": [ { "address": "127.0.0.1:$BACKEND_PORT" } ],
      "pool": { "max_idle_per_backend": $POOL, "idle_timeout_ms": 60000 } } },
  "routes": [ { "path_prefix": "/", "upstream": "bench" } ],
  "log": { "level": "warn", "access_log": "off" } }
EOF
    check_config revproxy "$dir/revproxy.json" "$dir/check.log" \
        "$REVPROXY" --check --config "$dir/revproxy.json"
    launch revproxy "$dir" "$dir/stderr.log" \
        "$REVPROXY" --config "$dir/revproxy.json"
}

start_nghttpx() {
    local dir="$TMP/nghttpx"
    mkdir -p "$dir"
    ports nghttpx
    # An empty config file keeps /etc/nghttpx/nghttpx.conf out of it; no
    # access log is written unless one is configured.  nghttpx forks a
    # worker process: its CPU time is counted with the main process's.
    : >"$dir/nghttpx.conf"
    local same=()
    if ((STOCK_PEERS == 0)); then
        same=(--add-x-forwarded-for
              "--add-request-header=X-Forwarded-Host: 127.0.0.1"
              "--add-request-header=X-Request-Id: $FIXED_ID"
              "--add-response-header=X-Request-Id: $FIXED_ID")
    fi
    launch nghttpx "$dir" "$dir/error.log" \
        "$NGHTTPX" --conf="$dir/nghttpx.conf" \
        --frontend="127.0.0.1,${H2C_PORT[nghttpx]};no-tls" \
        --frontend="127.0.0.1,${TLS_PORT[nghttpx]}" \
        --backend="127.0.0.1,$BACKEND_PORT" \
        --workers=1 \
        --frontend-http2-max-concurrent-streams="$MAX_STREAMS" \
        --backend-keep-alive-timeout=60s \
        --tls13-ciphers="$TLS13_SUITE" \
        --no-ocsp \
        --log-level=WARN \
        --errorlog-file="$dir/error.log" \
        --pid-file="$dir/nghttpx.pid" \
        "${same[@]}" \
        "$TLS_DIR/key.pem" "$TLS_DIR/cert.pem"
}

start_haproxy() {
    local dir="$TMP/haproxy"
    mkdir -p "$dir"
    ports haproxy
    # One thread, keep-alive on both sides, idle server connections shared
    # by all requests, no logging.
    local same_h2c="" same_tls="" common
    if ((STOCK_PEERS == 0)); then
        common="    option forwardfor"$'\n'
        common+="    http-request set-header X-Forwarded-Host %[req.hdr(host)]"$'\n'
        common+="    unique-id-format %[uuid]"$'\n'
        common+="    unique-id-header X-Request-Id"$'\n'
        common+="    http-response set-header X-Request-Id %[unique-id]"$'\n'
        same_h2c="$common    http-request set-header X-Forwarded-Proto http"$'\n'
        same_tls="$common    http-request set-header X-Forwarded-Proto https"$'\n'
    fi
    cat >"$dir/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4096
    pidfile $dir/haproxy.pid
    tune.h2.max-concurrent-streams $MAX_STREAMS
    ssl-default-bind-ciphersuites $TLS13_SUITE

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend h2c
    bind 127.0.0.1:${H2C_PORT[haproxy]} proto h2
${same_h2c}    default_backend bench

frontend tls
    bind 127.0.0.1:${TLS_PORT[haproxy]} ssl crt $TLS_DIR/combined.pem alpn h2,http/1.1
${same_tls}    default_backend bench

backend bench
    server backend 127.0.0.1:$BACKEND_PORT
CFG
    check_config haproxy "$dir/haproxy.cfg" "$dir/check.log" \
        "$HAPROXY" -c -q -f "$dir/haproxy.cfg"
    launch haproxy "$dir" "$dir/stderr.log" \
        "$HAPROXY" -db -f "$dir/haproxy.cfg"
}

start_nginx() {
    local dir="$TMP/nginx" build
    mkdir -p "$dir/logs" "$dir/tmp"
    ports nginx
    build=$("$NGINX" -V 2>&1)
    [[ $build == *--with-http_v2_module* && $build == *--with-http_ssl_module* ]] ||
        die "this nginx lacks HTTP/2 or TLS (nginx -V); leave out --nginx"
    local fields=""
    if ((STOCK_PEERS == 0)); then
        fields+="            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"$'\n'
        fields+="            proxy_set_header X-Forwarded-Proto \$scheme;"$'\n'
        fields+="            proxy_set_header X-Forwarded-Host \$host;"$'\n'
        fields+="            proxy_set_header X-Request-Id \$request_id;"$'\n'
        fields+="            add_header X-Request-Id \$request_id;"$'\n'
    fi
    {
        nginx_conf_head "$dir" 8192
        cat <<EOF

    # No connection is recycled after N requests on either side.
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    http2_max_concurrent_streams $MAX_STREAMS;

    upstream bench {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive $POOL;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }

    server {
        listen 127.0.0.1:${H2C_PORT[nginx]} http2;
        listen 127.0.0.1:${TLS_PORT[nginx]} ssl http2;
        ssl_certificate $TLS_DIR/cert.pem;
        ssl_certificate_key $TLS_DIR/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_conf_command Ciphersuites $TLS13_SUITE;

        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
${fields}        }
    }
}
EOF
    } >"$dir/nginx.conf"
    nginx_checked nginx "$dir"
    launch nginx "$dir/logs" "$dir/logs/error.log" \
        "$NGINX" -p "$dir/" "${NGINX_EFLAG[@]}" -c "$dir/nginx.conf"
}

# start_nginx_backend: an nginx worker on the load CPU answering every
# request with the 100 x's, keep-alive without a request limit, on a free
# port (BACKEND_PORT; BACKEND_PID is its PID).
start_nginx_backend() {
    local dir="$TMP/backend" body
    mkdir -p "$dir/logs" "$dir/tmp"
    pick_port
    BACKEND_PORT=$PORT
    body=$(printf "%${BODY_BYTES}s" "" | tr ' ' x)
    {
        nginx_conf_head "$dir" 8192
        cat <<EOF
    keepalive_requests 1000000;
    keepalive_timeout 120s;

    server {
        listen 127.0.0.1:$BACKEND_PORT;
        location / {
            default_type text/plain;
            return 200 "$body";
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    nginx_checked backend "$dir"
    spawn "$dir/logs/stdout.log" "$dir/logs/stderr.log" "${PIN_LOAD[@]}" \
        "$NGINX" -p "$dir/" "${NGINX_EFLAG[@]}" -c "$dir/nginx.conf"
    BACKEND_PID=$SPAWNED
    curl_args h1
    await backend "$BACKEND_PID" "$dir/logs/error.log" \
        "http://127.0.0.1:$BACKEND_PORT/" "${CURL_ARGS[@]}"
}

# --- measuring -------------------------------------------------------------

# sample: set TICKS to the utime + stime of the FAMILY processes (clock
# ticks) and WHEN to the wall clock time, in seconds.
TICKS=0
WHEN=0
sample() {
    local p sum=0
    for p in "${FAMILY[@]}"; do
        proc_stat "$p" || die "process $p of the proxy under test is gone"
        # STAT[0] is field 3 (state): utime and stime are fields 14 and 15.
        sum=$((sum + STAT[11] + STAT[12]))
    done
    WHEN=$EPOCHREALTIME
    TICKS=$sum
}

# parse_h2load SCENARIO TARGET OUT: set RESULT_RPS from h2load's output,
# after checking the protocol and counting failures.
parse_h2load() {
    local scen=$1 name=$2 out=$3 proto want ndone="" failed="" codes cipher
    proto=$(awk -F': ' '$1 == "Application protocol" { print $2; exit }' \
        "$out")
    want=$([[ $scen == h2c ]] && echo h2c || echo h2)
    [[ $proto == "$want" ]] ||
        die "$name ($scen): h2load spoke '${proto:-nothing}', not $want" \
            "($out: $(tail -n 3 "$out" | tr '\n' ' '))"
    RESULT_RPS=$(awk '$1 == "finished" && $2 == "in" {
        v = $4; sub(/,$/, "", v); print v; exit }' "$out")
    read -r ndone failed < <(awk '$1 == "requests:" {
        print $6, $10 + $12 + $14; exit }' "$out") || true
    [[ -n $RESULT_RPS && -n $ndone ]] ||
        die "$name ($scen): could not read h2load's output ($out)"
    ((ndone > 0)) || die "$name ($scen): h2load completed no request ($out)"
    if ((failed > 0)); then
        WARNINGS+=("$scen $name: $failed requests failed, errored or" \
            "timed out")
    fi
    codes=$(awk '$1 == "status" && $2 == "codes:" {
        if ($5 + $7 + $9 > 0) print $5 " 3xx, " $7 " 4xx, " $9 " 5xx"
        exit }' "$out")
    [[ -z $codes ]] || WARNINGS+=("$scen $name: $codes")
    if [[ $scen == h2 ]]; then
        cipher=$(awk -F': ' '$1 == "Cipher" { c = $2 }
            $1 == "Server Temp Key" { k = $2 }
            END { print c (k != "" ? ", key exchange " k : "") }' "$out")
        TLS_SEEN[$name]=$cipher
    fi
}

# parse_wrk SCENARIO TARGET OUT: set RESULT_RPS from wrk's output.
parse_wrk() {
    local scen=$1 name=$2 out=$3 extra
    RESULT_RPS=$(wrk_rps "$out")
    [[ -n $RESULT_RPS ]] ||
        die "$name ($scen): could not read wrk's output ($out)"
    extra=$(wrk_errors "$out")
    [[ -z $extra ]] || WARNINGS+=("$scen $name: $extra")
}

# measure SCENARIO TARGET ROUND: one measured run; sets RESULT_RPS,
# RESULT_US (proxy CPU microseconds per request) and RESULT_PCT (proxy
# CPU use, % of one core).
#
# The proxy's CPU time is sampled over a window inside the load
# generator's own measurement: from the end of h2load's warm-up (wrk gets a
# separate warm-up run first) for DURATION seconds.  CPU seconds per
# second of that window, divided by the req/s of the run, is the CPU time
# per request.
measure() {
    local scen=$1 name=$2 round=$3 url out ticks0 when0
    local tag="$scen-$name-$round"
    out="$TMP/out/$tag.txt"
    if [[ $scen == h2c ]]; then
        url="http://127.0.0.1:${H2C_PORT[$name]}$BODY_PATH"
    else
        url="https://127.0.0.1:${TLS_PORT[$name]}$BODY_PATH"
    fi
    family "${PROXY_PID[$name]}"
    if [[ $scen == h1tls ]]; then
        note "$scen $name (round $round): wrk, ${WARMUP}s warm-up," \
            "then ${DURATION}s on $url"
        start_load "$TMP/out/$tag-warmup.txt" "$WRK" -t1 \
            -c"$WRK_CONNECTIONS" -d"${WARMUP}s" "$url"
        finish_load || die "$scen $name: wrk warm-up failed:" \
            "$(tail -n 3 "$TMP/out/$tag-warmup.txt")"
        start_load "$out" "$WRK" -t1 -c"$WRK_CONNECTIONS" -d"${DURATION}s" \
            "$url"
    else
        note "$scen $name (round $round): h2load, ${WARMUP}s warm-up," \
            "then ${DURATION}s on $url"
        start_load "$out" "$H2LOAD" -c"$CONNECTIONS" -m"$STREAMS" \
            -D"$DURATION" --warm-up-time="$WARMUP" "$url"
        sleep "$WARMUP"
        kill -0 "$LOAD_PID" 2>/dev/null || {
            finish_load || true
            die "$scen $name: h2load stopped early: $(tail -n 3 "$out")"
        }
    fi
    sample
    ticks0=$TICKS when0=$WHEN
    sleep "$DURATION"
    sample
    finish_load || die "$scen $name: load generator failed:" \
        "$(tail -n 3 "$out")"
    kill -0 "${PROXY_PID[$name]}" 2>/dev/null ||
        die "$name exited during the $scen run"

    if [[ $scen == h1tls ]]; then
        parse_wrk "$scen" "$name" "$out"
    else
        parse_h2load "$scen" "$name" "$out"
    fi
    read -r RESULT_US RESULT_PCT < <(awk -v t="$((TICKS - ticks0))" \
        -v hz="$HZ" -v w0="$when0" -v w1="$WHEN" -v rps="$RESULT_RPS" '
        BEGIN {
            wall = w1 - w0
            if (wall <= 0 || rps <= 0) { print "nan nan"; exit }
            cpu = t / hz / wall
            printf "%.2f %.1f\n", cpu / rps * 1e6, 100 * cpu
        }') || true
    note "$scen $name: $RESULT_RPS req/s, $RESULT_US us/request," \
        "proxy ${RESULT_PCT}% of a core"
}

# median: the median of the numbers on standard input.
median() {
    sort -g | awk '{ v[NR] = $1 }
        END {
            if (NR == 0) print "nan"
            else if (NR % 2) print v[(NR + 1) / 2]
            else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}

# --- main ------------------------------------------------------------------

declare -A TLS_SEEN=()
RESULT_RPS="" RESULT_US="" RESULT_PCT=""

main() {
    parse_args "$@"

    [[ -n ${EPOCHREALTIME:-} ]] || die "bash 5 or later is needed"

    [[ -x $REVPROXY ]] || die "revproxy binary '$REVPROXY' not found;" \
        "build it first (cd build && make) or pass --revproxy PATH"

    need h2load nghttp2-client
    need nghttpx nghttp2-proxy
    need haproxy haproxy
    need wrk wrk
    if ((WITH_NGINX)) || [[ $BACKEND_SERVER == nginx ]]; then
        need nginx nginx-light
    fi
    need openssl openssl
    need_basics

    H2LOAD=$(find_cmd h2load)
    NGHTTPX=$(find_cmd nghttpx)
    HAPROXY=$(find_cmd haproxy)
    WRK=$(find_cmd wrk)
    NGINX=""
    if ((WITH_NGINX)) || [[ $BACKEND_SERVER == nginx ]]; then
        NGINX=$(find_cmd nginx)
    fi
    HZ=$(getconf CLK_TCK)

    # Every target gets the same stream limit, at least what h2load opens,
    # and revproxy's pool keeps as many idle upstream connections as there
    # can be requests in flight.
    MAX_STREAMS=$((STREAMS > 128 ? STREAMS : 128))
    POOL=$((CONNECTIONS * STREAMS))
    ((POOL >= WRK_CONNECTIONS)) || POOL=$WRK_CONNECTIONS
    ((POOL >= 128)) || POOL=128
    ((POOL <= 100000)) || die "--connections x --streams is above 100000"

    make_tmp revproxy-h2bench
    mkdir -p "$TMP/out"

    [[ $BACKEND_SERVER != rp-backend ]] || prepare_backend
    make_certificate

    # Room for every client and upstream socket.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

    pin_cpus

    if [[ $BACKEND_SERVER == nginx ]]; then
        start_nginx_backend
    else
        curl_args h1
        start_backend "${CURL_ARGS[@]}"
    fi
    verify backend h1 "http://127.0.0.1:$BACKEND_PORT$BODY_PATH"

    # All proxies run side by side (each idle while another is measured),
    # and are measured in turn, round after round, the order rotating each
    # round, so the drifts of a shared machine hit them alike.
    local targets=(revproxy nghttpx haproxy)
    ((WITH_NGINX == 0)) || targets+=(nginx)
    start_revproxy
    start_nghttpx
    start_haproxy
    ((WITH_NGINX == 0)) || start_nginx

    declare -A runs=()
    local round scen i n=${#targets[@]} name
    for ((round = 1; round <= ROUNDS; round++)); do
        for scen in "${SCENARIOS[@]}"; do
            for ((i = 0; i < n; i++)); do
                name=${targets[$(((i + round - 1) % n))]}
                measure "$scen" "$name" "$round"
                runs[$scen/$name]+="$RESULT_RPS $RESULT_US $RESULT_PCT"$'\n'
            done
        done
    done
    # nghttpx's main process waits for its worker to exit only on a
    # graceful stop (QUIT); on TERM it leaves before the worker.
    for name in "${targets[@]}"; do
        if [[ $name == nghttpx ]]; then
            halt "${PROXY_PID[$name]}" QUIT
        else
            halt "${PROXY_PID[$name]}"
        fi
    done
    halt "$BACKEND_PID"

    # Medians, each column on its own.
    declare -A rps=() us=() pct=()
    local key
    for scen in "${SCENARIOS[@]}"; do
        for name in "${targets[@]}"; do
            key=$scen/$name
            rps[$key]=$(printf '%s' "${runs[$key]}" | awk '{ print $1 }' |
                median)
            us[$key]=$(printf '%s' "${runs[$key]}" | awk '{ print $2 }' |
                median)
            pct[$key]=$(printf '%s' "${runs[$key]}" | awk '{ print $3 }' |
                median)
        done
    done

    echo
    echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "cpu:      $(cpu_model) ($NCPU CPUs); kernel $(uname -r)"
    echo "h2c, h2:  h2load -c$CONNECTIONS -m$STREAMS -D$DURATION" \
        "--warm-up-time=$WARMUP, GET $BODY_PATH ($BODY_BYTES-byte body)"
    echo "h1tls:    wrk -t1 -c$WRK_CONNECTIONS -d${DURATION}s after a" \
        "${WARMUP}s warm-up, GET $BODY_PATH"
    echo "rounds:   median of $ROUNDS, targets alternating"
    echo "pinning:  proxy on CPU 0, the backend ($BACKEND_SERVER) and the" \
        "load generator on CPU 1"
    if ((STOCK_PEERS)); then
        echo "fields:   the other proxies as they come (--stock-peers)"
    else
        echo "fields:   every proxy adds X-Forwarded-For/-Proto/-Host and X-Request-Id"
    fi
    echo "tls:      ECDSA P-256 certificate, TLS 1.3 suite $TLS13_SUITE" \
        "configured on every proxy"
    for name in "${targets[@]}"; do
        [[ -z ${TLS_SEEN[$name]:-} ]] ||
            printf '          %-9s negotiated %s\n' "$name" "${TLS_SEEN[$name]}"
    done
    local versions
    versions="$(version_of '' "$REVPROXY" -V)"
    versions+=", $(version_of '' "$NGHTTPX" --version)"
    versions+=", haproxy $(version_of 3 "$HAPROXY" -v)"
    if ((WITH_NGINX)); then
        versions+=", $(version_of 3 "$NGINX" -v)"
    fi
    versions+=", $(version_of '' "$H2LOAD" --version)"
    versions+=", wrk $(version_of 2 "$WRK" -v)"
    echo "versions: $versions"
    echo
    printf '%-7s %-9s %10s %12s %10s\n' scenario target req/s \
        cpu_us/req proxy_cpu%
    for scen in "${SCENARIOS[@]}"; do
        for name in "${targets[@]}"; do
            key=$scen/$name
            printf '%-7s %-9s %10.0f %12.2f %10.0f\n' "$scen" "$name" \
                "${rps[$key]}" "${us[$key]}" "${pct[$key]}"
        done
    done
    echo
    echo "ratios revproxy/other, the median of the per-round ratios (each"
    echo "round measures every target back to back, so drifts of the shared"
    echo "machine mostly cancel out; req/s: above 1 is better for revproxy;"
    echo "CPU per request: below 1 is better):"
    local other rr ru
    for scen in "${SCENARIOS[@]}"; do
        for other in "${targets[@]}"; do
            [[ $other != revproxy ]] || continue
            # Line k of each run list is round k.
            rr=$(paste -d ' ' <(printf '%s' "${runs[$scen/revproxy]}") \
                <(printf '%s' "${runs[$scen/$other]}") |
                awk '$4 > 0 { printf "%.4f\n", $1 / $4 }' | median)
            ru=$(paste -d ' ' <(printf '%s' "${runs[$scen/revproxy]}") \
                <(printf '%s' "${runs[$scen/$other]}") |
                awk '$5 > 0 { printf "%.4f\n", $2 / $5 }' | median)
            printf '%-7s revproxy/%-8s req/s %.2f, CPU/request %.2f\n' \
                "$scen" "$other:" "${rr:-0}" "${ru:-0}"
        done
    done
    print_warnings
}

main "$@"
