#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Shared set-up for the quick-start scripts: install what the build needs
# from Debian (when run as root and something is missing), then generate,
# configure and build in BUILD_DIR.  Sourced, not run.
#
#   BUILD_DIR         where to build (default: the source tree)
#   CONFIGURE_FLAGS   extra ./configure flags
set -euo pipefail

RP_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$RP_SRC/build}
CONFIGURE_FLAGS=${CONFIGURE_FLAGS:-}

RP_BUILD_DEPS=(build-essential autoconf automake libtool pkg-config
               libevent-dev libssl-dev libnghttp2-dev libjansson-dev libwslay-dev
               node-llhttp check python3 curl mandoc
               openssl nghttp2-client python3-h2 python3-websockets)

rp_install_deps() {
    local missing=()
    for p in "${RP_BUILD_DEPS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "missing Debian packages: ${missing[*]}" >&2
        echo "run this script as root, or: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

rp_build() {
    cd "$RP_SRC"
    [ -x configure ] || ./autogen.sh >/dev/null
    mkdir -p "$BUILD_DIR"
    cd "$BUILD_DIR"
    local stamp=.rp-configure-flags
    if [ ! -f Makefile ] || [ "$(cat "$stamp" 2>/dev/null)" != "$CONFIGURE_FLAGS" ]; then
        # shellcheck disable=SC2086
        "$RP_SRC/configure" $CONFIGURE_FLAGS >/dev/null
        echo "$CONFIGURE_FLAGS" > "$stamp"
    fi
    make -j"$(nproc)" >/dev/null
}
