#!/usr/bin/env bash
# The main job: an end-to-end demo on embedded defaults (fake cloud, SQLite, private ZooKeeper).
# Sets everything up, starts ZooKeeper and nodepool-launcher on etc/demo/nodepool.yaml, lets a
# Zuul-like client (kazoo, exactly as Zuul talks to Nodepool) request nodes, shows the tables
# filling and the history the launcher recorded, and stops everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
bash scripts/setup.sh core

state="$root/.state/demo"
rm -rf "$state"; mkdir -p "$state"
export NODEPOOL_STATE_DIR="$state"
launcher_pid=""
cleanup() {
  if [ -n "$launcher_pid" ] && kill -0 "$launcher_pid" 2>/dev/null; then
    kill -INT "$launcher_pid"; for _ in $(seq 1 100); do kill -0 "$launcher_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  bash scripts/zk.sh stop "$state/zk"
}
trap cleanup EXIT

zk="$(bash scripts/zk.sh start "$state/zk")"
echo "== ZooKeeper running on $zk (data in $state/zk)"
cat > "$state/secure.conf" <<YAML
zookeeper-servers:
  - host: ${zk%:*}
    port: ${zk#*:}
YAML
np() { node packages/cli/bin/nodepool.js -c etc/demo/nodepool.yaml -s "$state/secure.conf" "$@"; }

echo "== nodepool config-validate"
np config-validate

echo "== starting nodepool-launcher (log: $state/launcher.log)"
node packages/launcher/bin/nodepool-launcher.js -f -c etc/demo/nodepool.yaml -s "$state/secure.conf" \
  -p "$state/launcher.pid" --no-webapp > "$state/launcher.log" 2>&1 &
launcher_pid=$!

echo "== waiting for min-ready nodes"
for _ in $(seq 1 100); do
  ready=$(np list --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{console.log(JSON.parse(s).filter(n=>n.state==="ready").length)})')
  [ "$ready" -ge 3 ] && break; sleep 0.2
done
np list

echo "== a Zuul-like client (kazoo) requests nodes: 3 jobs, one needing two labels"
/usr/bin/python3 test/zuul/zuul_client.py "$zk" fake-label --count 2 --hold-seconds 1 > "$state/zuul-1.log" &
c1=$!
/usr/bin/python3 test/zuul/zuul_client.py "$zk" fake-label,fake-label2 --count 1 --hold-seconds 1 > "$state/zuul-2.log" &
c2=$!
sleep 0.5
echo "== while the jobs run"
np request-list
np list
wait $c1 $c2
cat "$state/zuul-1.log" "$state/zuul-2.log"
sleep 1
echo "== after the jobs: used nodes deleted, min-ready refilled"
np list --detail
np request-list
echo "== history, recorded by the launcher in the embedded SQLite database ($state/nodepool.db)"
echo "-- the trail of node 0000000000, from launch to deletion:"
np history --node 0000000000
echo "-- nodes no longer in ZooKeeper:"
np history --deleted
np stats
echo "== stopping"
