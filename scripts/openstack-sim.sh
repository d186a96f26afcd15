#!/usr/bin/env bash
# Start or stop the OpenStack API simulator (test/openstack-sim) on loopback.
#   scripts/openstack-sim.sh start DIR [PORT] [CONFIG.json]      -> prints the Keystone URL
#   scripts/openstack-sim.sh start-tls DIR [PORT] [CONFIG.json]  -> the same over HTTPS: a test CA
#                                 and a server certificate it signed (127.0.0.1, localhost) are
#                                 made with openssl in DIR/tls (ca.pem, server.pem, server.key)
#                                 and clouds.yaml says `cacert: DIR/tls/ca.pem`
#   scripts/openstack-sim.sh stop DIR
# DIR receives sim.pid, url, clouds.yaml (clouds `sim` and `sim-example`) and sim.log. Use
# `OS_CLIENT_CONFIG_FILE=DIR/clouds.yaml OS_CLOUD=sim openstack ...` to drive it by hand.
# Several instances may run at once, each in its own DIR; the process is stopped by pid.
set -euo pipefail
cmd="${1:?usage: openstack-sim.sh start|start-tls|stop DIR [PORT] [CONFIG.json]}"
dir="${2:?usage: openstack-sim.sh start|start-tls|stop DIR [PORT] [CONFIG.json]}"
port="${3:-0}"
config="${4:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

case "$cmd" in
  start|start-tls)
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [ -f "$dir/sim.pid" ] && kill -0 "$(cat "$dir/sim.pid")" 2>/dev/null && [ -f "$dir/url" ]; then
      cat "$dir/url"; exit 0
    fi
    rm -f "$dir/url"
    args=(--import tsx "$root/test/openstack-sim/main.ts" --port "$port" --dir "$dir")
    [ -n "$config" ] && args+=(--config "$config")
    if [ "$cmd" = start-tls ]; then
      command -v openssl >/dev/null || { echo "openstack-sim.sh: openssl missing; run scripts/install-deps.sh" >&2; exit 1; }
      args+=(--tls "$dir/tls")
    fi
    cd "$root"
    # node itself is the background job (its pid is the one to stop) and holds none of our fds
    nohup node "${args[@]}" > "$dir/sim.log" 2>&1 < /dev/null &
    echo $! > "$dir/sim.pid"
    for _ in $(seq 1 200); do
      if [ -s "$dir/url" ]; then cat "$dir/url"; exit 0; fi
      kill -0 "$(cat "$dir/sim.pid")" 2>/dev/null || { echo "openstack-sim.sh: simulator exited; see $dir/sim.log" >&2; tail -20 "$dir/sim.log" >&2; exit 1; }
      sleep 0.1
    done
    echo "openstack-sim.sh: simulator did not start in 20 s; see $dir/sim.log" >&2
    exit 1
    ;;
  stop)
    [ -f "$dir/sim.pid" ] || exit 0
    pid="$(cat "$dir/sim.pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$dir/sim.pid" "$dir/url"
    ;;
  *)
    echo "usage: openstack-sim.sh start|start-tls|stop DIR [PORT] [CONFIG.json]" >&2; exit 2 ;;
esac
