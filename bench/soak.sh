#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Soak: revproxy under a mixed load from real clients for a set time while
# its backends fail and its configuration is reloaded; sampled every 10 s
# into a CSV drawn as a PNG; judged against pass criteria.
#
#   bench/soak.sh [--duration SECONDS] [--revproxy PATH] [--out DIR]
#                 [--sanitizers]
#
# Load (bench/soak_load.py, each kind a process of its own, from its own
# loopback address): HTTP/1.1 keep-alive and Connection: close, 1 MiB
# downloads and uploads, HTTP/2 over TLS and h2c (python3-h2, plus h2load
# bursts), WebSocket echo tunnels, slowloris clients and slow readers.
#
# Faults: every 30 s a backend is killed (SIGKILL) and started again on
# its port 5 s later; every other cycle a backend answers 503 for 8 s;
# every 60 s revproxy is reloaded by SIGHUP, cycling through configuration
# B, an invalid one (which must be refused) and A again.
#
# Output in DIR (default build-soak): soak.csv (a row every 10 s:
# RSS, descriptors, threads, connections, requests/s, errors by reason
# word), soak.png (drawn by gnuplot), revproxy.log (its stderr),
# access.log, events.jsonl (every fault with its time), clients/ (each
# client-visible error with its request id), summary.txt.
#
# Pass criteria (summary.txt gives each with its figures; exit status 0
# only when all hold):
#   - RSS: after the warm-up (20% of the run, at least 60 s and at most
#     300 s: the bounded caches meet the load's peaks only every few
#     minutes), no median of five samples (50 s) above the largest such
#     median of the warm-up by more than 5% (the median, so that a sample
#     falling on a burst of 1 MiB transfers in flight is not taken for
#     growth; the raw maximum and the trend over the second half are
#     reported too).  With --sanitizers it is reported, not judged: ASan's allocator
#     makes RSS its own, and LeakSanitizer's check at exit is the leak
#     criterion there.
#   - Descriptors: at each churn checkpoint (just before each kill, the
#     median of five looks), the descriptors that no open connection
#     accounts for (sockets minus client connections minus backend
#     connections, from /metrics) stay within 3 of the first checkpoint's,
#     and the other descriptors (files, pipes, event fds) do not change;
#     once the load has ended and revproxy has closed every connection,
#     the count equals the one before the load.
#   - Errors: every access line with an error word or an error status, and
#     every error a client saw (found in the access log by its request id),
#     is explained: a slow client's own word (header_timeout for slowloris,
#     client_too_slow or client_stalled for slow readers), or an upstream_*
#     word (or retry_budget_exhausted, no_healthy_backend) on a backend that
#     was down or just restarted, or a relayed 503 from a backend in its
#     503 window (each fault explains errors until 10 s after it ended).
#   - The faults happened, the slow clients were cut and every client kind
#     succeeded at least once; each reload had its expected result
#     (revproxy_config_reloads_total, revproxy_config_generation and the
#     sha256 of /config).
#   - revproxy is still running at the end and exits 0 on SIGTERM; with
#     --sanitizers, no AddressSanitizer, LeakSanitizer or "runtime error"
#     report in its stderr.
#
# Needs python3 with python3-h2 and python3-websockets, h2load
# (nghttp2-client), openssl and gnuplot (gnuplot-nox); as root, missing
# Debian packages are installed.  Everything runs on loopback; every
# process started is stopped on exit, by PID.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

DURATION=1800
REVPROXY=""
OUT="$REPO_ROOT/build-soak"
SANITIZERS=0
KEEP_TMP=0
PYTHON=${PYTHON3:-/usr/bin/python3}

usage() {
    cat <<EOF
usage: ${0##*/} [options]

  --duration SECONDS   how long the load runs (default $DURATION; at least 60)
  --revproxy PATH      revproxy binary (default ./build/src/revproxy, or
                       ./build-sanitizers/src/revproxy with --sanitizers)
  --out DIR            where the CSV, PNG, logs and summary go
                       (default build-soak, which git ignores like the
                       build directories; its previous results are replaced)
  --sanitizers         the binary is an ASan+UBSan build: its stderr must
                       hold no sanitizer report
  -h, --help           this help

Relative paths are taken from the repository root.  Exit status 0 when
every pass criterion holds, 1 when one does not, 2 when the run could not
be made.
EOF
}

parse_args() {
    while (($# > 0)); do
        OPTN=1
        case $1 in
            --duration | --duration=*) opt_value "$@" && DURATION=$OPTVAL ;;
            --revproxy | --revproxy=*) opt_value "$@" && REVPROXY=$(abs_path "$OPTVAL") ;;
            --out | --out=*) opt_value "$@" && OUT=$(abs_path "$OPTVAL") ;;
            --sanitizers) SANITIZERS=1 ;;
            *) help_or_unknown "$1" ;;
        esac
        shift "$OPTN"
    done
    DURATION=$(positive_int --duration "$DURATION" seconds)
    ((DURATION >= 60)) || die "--duration must be at least 60 seconds"
    if [[ -z $REVPROXY ]]; then
        if ((SANITIZERS)); then
            REVPROXY="$REPO_ROOT/build-sanitizers/src/revproxy"
        else
            REVPROXY="$REPO_ROOT/build/src/revproxy"
        fi
    fi
}

# need_python_module MODULE PACKAGE: PYTHON must import MODULE; as root,
# PACKAGE is installed when it does not.
need_python_module() {
    "$PYTHON" -c "import $1" 2>/dev/null && return 0
    if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
        apt_install "$2"
        "$PYTHON" -c "import $1" 2>/dev/null ||
            die "$PYTHON cannot import $1 even after installing $2"
    else
        die "$PYTHON cannot import $1; install the '$2' package" \
            "(as root: apt-get install -y $2)"
    fi
}

main() {
    parse_args "$@"
    [[ -x $PYTHON ]] || need python3 python3
    need openssl openssl
    need h2load nghttp2-client
    need gnuplot gnuplot-nox
    need_python_module h2 python3-h2
    need_python_module websockets python3-websockets
    [[ -x $REVPROXY ]] || die "revproxy binary '$REVPROXY' not found or not" \
        "executable (build it first: ./scripts/test.sh, or --revproxy PATH)"
    mkdir -p "$OUT"

    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local args=(--duration "$DURATION" --revproxy "$REVPROXY" --out "$OUT")
    ((SANITIZERS)) && args+=(--sanitizers)
    note "soak of $REVPROXY for $DURATION s; results in $OUT"
    # In the background, so that an interrupt reaches the trap at once; the
    # trap stops it by PID, and it stops what it started.
    "$PYTHON" "$SCRIPT_DIR/soak.py" "${args[@]}" &
    local pid=$! rc=0
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    untrack "$pid"
    return "$rc"
}

main "$@"
