#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Quick start: build revproxy (installing build dependencies when run as
# root) in build/ and run it on 127.0.0.1:8080 in front of two demo backends on
# 127.0.0.1:9001 and :9002.  Ctrl-C stops all of it.
set -euo pipefail
. "$(dirname "$0")/setup.sh"
rp_install_deps
rp_build

tmp=$(mktemp -d /tmp/revproxy-demo.XXXXXX)
pids=()
cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

cat > "$tmp/revproxy.json" <<JSON
{
  "workers": 2,
  "listeners": [ { "address": "127.0.0.1:8080" } ],
  "limits": { "max_connections": 1024 },
  "upstreams": {
    "demo": {
      "balancer": "round_robin",
      "backends": [ { "address": "127.0.0.1:9001", "weight": 1 },
                    { "address": "127.0.0.1:9002", "weight": 1 } ],
      "pool": { "max_idle_per_backend": 16, "idle_timeout_ms": 4000 }
    }
  },
  "routes": [ { "path_prefix": "/", "upstream": "demo" } ],
  "log": { "level": "info" },
  "admin": { "address": "127.0.0.1:9901" }
}
JSON

"$BUILD_DIR/tools/rp-backend" --listen 127.0.0.1:9001 --name backend-1 & pids+=($!)
"$BUILD_DIR/tools/rp-backend" --listen 127.0.0.1:9002 --name backend-2 & pids+=($!)
"$BUILD_DIR/src/revproxy" --check --config "$tmp/revproxy.json"
"$BUILD_DIR/src/revproxy" --config "$tmp/revproxy.json" & pids+=($!)

for _ in $(seq 50); do
    curl -s -o /dev/null http://127.0.0.1:8080/ && break
    sleep 0.1
done
cat <<MSG

revproxy is listening on http://127.0.0.1:8080 (config: $tmp/revproxy.json)
Try, from another terminal:
  curl -i http://127.0.0.1:8080/                 # alternates backend-1 / backend-2
  curl http://127.0.0.1:8080/echo-headers        # what the backend received (X-Forwarded-*, X-Request-Id)
  curl -d 'hello' http://127.0.0.1:8080/upload   # request bodies are streamed
  curl http://127.0.0.1:9901/metrics             # the admin port: also /stats, /config, /ready
Access lines are printed below as JSON.  Ctrl-C stops everything.

MSG
wait "${pids[2]}"
