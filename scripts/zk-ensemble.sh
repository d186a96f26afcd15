#!/usr/bin/env bash
# A three-member ZooKeeper ensemble (Debian's `zookeeper` package) on loopback, for the
# reliability tests and `bench/faults.ts`. Each member has its own directory DIR/zkN (data with
# `myid`, log, pid, zoo.cfg in the style of scripts/zk.sh), its own client port and its own
# quorum (peer) and election ports. Members are started and stopped by pid, never through systemd.
#
#   scripts/zk-ensemble.sh start DIR          -> prints "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
#   scripts/zk-ensemble.sh stop DIR           stop every member
#   scripts/zk-ensemble.sh stop-member DIR N  stop member N (1..3) with SIGTERM (SIGKILL after 5 s)
#   scripts/zk-ensemble.sh kill-member DIR N  stop member N with SIGKILL (a crash)
#   scripts/zk-ensemble.sh start-member DIR N start member N again (same ports, same data)
#   scripts/zk-ensemble.sh leader DIR         -> prints the number of the member that leads
#   scripts/zk-ensemble.sh status DIR         -> one line per member: "N PORT PID MODE"
#   scripts/zk-ensemble.sh hosts DIR          -> prints the connect string again
#
# MODE is what the `srvr` four-letter word reports (leader, follower), `down` for a member that is
# not running and `no-quorum` for one that runs but does not serve. `start` waits until every
# member serves and one leads. Sessions may last 1 to 60 s (tickTime 500 ms), so a client's 10 s
# default timeout is honoured as asked.
set -euo pipefail
cmd="${1:?usage: zk-ensemble.sh start|stop|stop-member|kill-member|start-member|leader|status|hosts DIR [N]}"
dir="${2:?usage: zk-ensemble.sh CMD DIR [N]}"
jar=/usr/share/java/zookeeper.jar
MEMBERS="1 2 3"

free_ports() {
  # N distinct free loopback ports, one per line
  node -e '
    const net = require("net"); const n = Number(process.argv[1]); const out = []; const held = [];
    const next = () => { if (out.length === n) { held.forEach((s) => s.close()); console.log(out.join("\n")); return; }
      const s = net.createServer(); s.listen(0, "127.0.0.1", () => { out.push(s.address().port); held.push(s); next(); }); };
    next();' "$1"
}

four() {
  # four-letter word $2 to 127.0.0.1:$1; empty output when nobody answers
  (exec 3<>/dev/tcp/127.0.0.1/"$1" && printf '%s' "$2" >&3 && timeout 2 cat <&3) 2>/dev/null || true
}

member_dir() { echo "$dir/zk$1"; }
client_port() { cat "$(member_dir "$1")/zk.port"; }
alive() { local d; d="$(member_dir "$1")"; [ -f "$d/zk.pid" ] && kill -0 "$(cat "$d/zk.pid")" 2>/dev/null; }

mode() {
  alive "$1" || { echo down; return; }
  local out m
  out="$(four "$(client_port "$1")" srvr)"
  m="$(printf '%s\n' "$out" | sed -n 's/^Mode: //p')"
  if [ -n "$m" ]; then echo "$m"; else echo no-quorum; fi
}

hosts() {
  local h=""
  for n in $MEMBERS; do h="${h:+$h,}127.0.0.1:$(client_port "$n")"; done
  echo "$h"
}

write_configs() {
  # ports: 3 client, 3 peer, 3 election, allocated once and kept (a restarted member reuses them)
  mapfile -t ports < <(free_ports 9)
  local servers=""
  for n in $MEMBERS; do
    servers="${servers}server.$n=127.0.0.1:${ports[$((n + 2))]}:${ports[$((n + 5))]}
"
  done
  for n in $MEMBERS; do
    local d; d="$(member_dir "$n")"
    mkdir -p "$d/data" "$d/log"
    echo "$n" > "$d/data/myid"
    echo "${ports[$((n - 1))]}" > "$d/zk.port"
    cat > "$d/zoo.cfg" <<CFG
tickTime=500
initLimit=20
syncLimit=10
dataDir=$d/data
clientPort=${ports[$((n - 1))]}
clientPortAddress=127.0.0.1
maxClientCnxns=0
minSessionTimeout=1000
maxSessionTimeout=60000
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr,cons
forceSync=no
${servers}
CFG
    cat > "$d/log4j.properties" <<'L4J'
log4j.rootLogger=WARN, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
L4J
  done
}

launch() {
  local n="$1" d; d="$(member_dir "$n")"
  alive "$n" && return 0
  nohup java -Xmx256m -XX:+UseSerialGC -Dzookeeper.log.dir="$d/log" \
    -Dlog4j.configuration="file:$d/log4j.properties" -Dlog4j.appender.FILE.File="$d/log/zookeeper.log" \
    -Dzookeeper.jmx.log4j.disable=true \
    -cp "$d:$jar" org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" \
    >> "$d/log/stdout.log" 2>&1 &
  echo $! > "$d/zk.pid"
}

# wait until member $1 serves (mode leader/follower); up to $2 tenths of a second
wait_serving() {
  local n="$1" tries="${2:-600}"
  for _ in $(seq 1 "$tries"); do
    case "$(mode "$n")" in
      leader|follower|standalone) return 0 ;;
      down) echo "zk-ensemble.sh: member $n exited; see $(member_dir "$n")/log" >&2
            tail -20 "$(member_dir "$n")/log/stdout.log" >&2; return 1 ;;
    esac
    sleep 0.1
  done
  echo "zk-ensemble.sh: member $n does not serve; see $(member_dir "$n")/log" >&2
  return 1
}

stop_member() {
  local n="$1" sig="$2" d pid; d="$(member_dir "$n")"
  [ -f "$d/zk.pid" ] || return 0
  pid="$(cat "$d/zk.pid")"
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$d/zk.pid"
}

member_arg() {
  local n="${1:?member number (1..3) required}"
  case "$n" in 1|2|3) echo "$n" ;; *) echo "zk-ensemble.sh: no member $n (1..3)" >&2; exit 2 ;; esac
}

case "$cmd" in
  start)
    [ -f "$jar" ] || { echo "zk-ensemble.sh: $jar missing; run scripts/install-deps.sh" >&2; exit 1; }
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    [ -f "$(member_dir 1)/zoo.cfg" ] || write_configs
    for n in $MEMBERS; do launch "$n"; done
    for n in $MEMBERS; do wait_serving "$n" || exit 1; done
    hosts
    ;;
  stop)
    for n in $MEMBERS; do stop_member "$n" TERM; done
    ;;
  stop-member)
    stop_member "$(member_arg "${3:-}")" TERM
    ;;
  kill-member)
    stop_member "$(member_arg "${3:-}")" KILL
    ;;
  start-member)
    n="$(member_arg "${3:-}")"
    launch "$n"
    wait_serving "$n" || exit 1
    ;;
  leader)
    for n in $MEMBERS; do
      if [ "$(mode "$n")" = leader ]; then echo "$n"; exit 0; fi
    done
    echo "zk-ensemble.sh: no member leads" >&2; exit 1
    ;;
  status)
    for n in $MEMBERS; do
      pid=-; [ -f "$(member_dir "$n")/zk.pid" ] && pid="$(cat "$(member_dir "$n")/zk.pid")"
      echo "$n $(client_port "$n") $pid $(mode "$n")"
    done
    ;;
  hosts)
    hosts
    ;;
  *) echo "usage: zk-ensemble.sh start|stop|stop-member|kill-member|start-member|leader|status|hosts DIR [N]" >&2; exit 2 ;;
esac
