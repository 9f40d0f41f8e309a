#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the Debian package from this tree, lint it, install it, check the
# installed configuration, run the installed binary as the revproxy user in
# front of a test backend on loopback, then purge it.  Needs root (apt-get,
# dpkg).  Run by .ci/run; takes a minute or two.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "test/package.sh: run as root (it installs packages)" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
need=(debhelper lintian fakeroot dpkg-dev autoconf automake libtool pkg-config
      libevent-dev libssl-dev libnghttp2-dev libjansson-dev libwslay-dev node-llhttp
      check mandoc python3 curl adduser)
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/revproxy-pkg.XXXXXX)
backend_pid= proxy_pid=
cleanup() {
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
    [ -n "$backend_pid" ] && kill "$backend_pid" 2>/dev/null || true
    if dpkg-query -W revproxy >/dev/null 2>&1; then dpkg --purge revproxy >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

step() { echo "== $*"; }

step "copy the source tree"
mkdir "$work/revproxy"
tar -C "$top" --exclude=./.git --exclude=./build --exclude='./build-*' -c . | tar -C "$work/revproxy" -x
(cd "$work/revproxy" && { [ ! -f Makefile ] || make distclean >/dev/null 2>&1 || true; })

step "dpkg-buildpackage -b -us -uc"
(cd "$work/revproxy" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
    dpkg-buildpackage -b -us -uc >"$work/build.log" 2>&1) || { tail -n 40 "$work/build.log"; exit 1; }
deb=$(ls "$work"/revproxy_*.deb)
echo "built $(basename "$deb")"
# llhttp's C sources come from node-llhttp, built from another source package.
want=$(dpkg-query -f '${source:Package} (= ${source:Version})' -W node-llhttp)
[ "$(dpkg-deb -f "$deb" Built-Using)" = "$want" ] || {
    echo "Built-Using is '$(dpkg-deb -f "$deb" Built-Using)', want '$want'"; exit 1; }

step "lintian"
lintian --fail-on error --suppress-tags-from-file /dev/null "$deb" | tee "$work/lintian.log" || {
    echo "lintian reported errors"; exit 1; }

step "dpkg -i"
dpkg -i "$deb"
getent passwd revproxy >/dev/null || { echo "no revproxy user after install"; exit 1; }
test -x /usr/sbin/revproxy
test -f /etc/revproxy.json
test -f /lib/systemd/system/revproxy.service
test -f /etc/logrotate.d/revproxy
test -f /usr/share/man/man8/revproxy.8.gz
test -f /usr/share/man/man5/revproxy.json.5.gz
dpkg-query -W -f='${Conffiles}\n' revproxy | grep -q /etc/revproxy.json || {
    echo "/etc/revproxy.json is not a conffile"; exit 1; }

step "revproxy --check --config /etc/revproxy.json"
/usr/sbin/revproxy --check --config /etc/revproxy.json

step "run the installed binary as user revproxy"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bport=$(port); pport=$(port); aport=$(port)
mkdir -p "$work/www" && echo "package test backend" > "$work/www/index.html"
python3 -m http.server "$bport" --bind 127.0.0.1 --directory "$work/www" >"$work/backend.log" 2>&1 &
backend_pid=$!
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$bport/" && break
    sleep 0.1
done
cat > "$work/run.json" <<JSON
{ "workers": 1,
  "listeners": [ { "address": "127.0.0.1:$pport" } ],
  "upstreams": { "app": { "backends": [ { "address": "127.0.0.1:$bport" } ] } },
  "routes": [ { "path_prefix": "/", "upstream": "app" } ],
  "admin": { "address": "127.0.0.1:$aport", "token": "pkg-test" },
  "log": { "level": "info" } }
JSON
chmod 755 "$work"; chmod 644 "$work/run.json"
setpriv --reuid=revproxy --regid=revproxy --init-groups \
    /usr/sbin/revproxy --config "$work/run.json" 2>"$work/proxy.log" &
proxy_pid=$!
body=
for _ in $(seq 50); do
    body=$(curl -sf "http://127.0.0.1:$pport/" || true)
    [ -n "$body" ] && break
    sleep 0.1
done
[ "$body" = "package test backend" ] || { echo "unexpected answer: '$body'"; cat "$work/proxy.log"; exit 1; }
counted=
for _ in $(seq 50); do
    if curl -sf -H 'Authorization: Bearer pkg-test' "http://127.0.0.1:$aport/metrics" \
        | grep -q '^revproxy_http_requests_total{route="\* /\*",code="2xx"} [1-9]'; then
        counted=1; break
    fi
    sleep 0.1
done
[ -n "$counted" ] || { echo "the admin port's /metrics does not count the request"; exit 1; }
kill -TERM "$proxy_pid"
wait "$proxy_pid" || { echo "revproxy exited with $?"; exit 1; }
proxy_pid=
grep -q '"msg":"access"' "$work/proxy.log"

step "dpkg --purge"
dpkg --purge revproxy
! getent passwd revproxy >/dev/null || { echo "revproxy user left after purge"; exit 1; }
[ ! -e /etc/revproxy.json ] || { echo "/etc/revproxy.json left after purge"; exit 1; }
[ ! -e /usr/sbin/revproxy ] || { echo "/usr/sbin/revproxy left after purge"; exit 1; }
echo "package: 1 passed, 0 failed"
