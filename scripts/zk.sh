#!/usr/bin/env bash
# Start or stop a private ZooKeeper (Debian's `zookeeper` package) on loopback.
#   scripts/zk.sh start DIR [PORT]   -> prints "127.0.0.1:PORT"; data, log and pid live in DIR
#   scripts/zk.sh stop DIR
# Several instances may run at once, each in its own DIR. A free port is picked when PORT is 0
# or omitted. The server is stopped by pid, never through systemd.
set -euo pipefail
cmd="${1:?usage: zk.sh start|stop DIR [PORT]}"
dir="${2:?usage: zk.sh start|stop DIR [PORT]}"
port="${3:-0}"
jar=/usr/share/java/zookeeper.jar

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

case "$cmd" in
  start)
    [ -f "$jar" ] || { echo "zk.sh: $jar missing; run scripts/install-deps.sh" >&2; exit 1; }
    mkdir -p "$dir/data" "$dir/log"
    dir="$(cd "$dir" && pwd)"
    if [ -f "$dir/zk.pid" ] && kill -0 "$(cat "$dir/zk.pid")" 2>/dev/null; then
      echo "127.0.0.1:$(cat "$dir/zk.port")"; exit 0
    fi
    [ "$port" = 0 ] && port="$(free_port)"
    cat > "$dir/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
minSessionTimeout=1000
maxSessionTimeout=60000
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr,cons
forceSync=no
CFG
    cat > "$dir/log4j.properties" <<'L4J'
log4j.rootLogger=WARN, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
L4J
    echo "$port" > "$dir/zk.port"
    # One selector thread that does its own I/O and a commit processor without a worker pool:
    # on a machine of two cores shared with the launchers, handing each request from thread to
    # thread cost ZooKeeper more CPU than the work itself (measured: docs/benchmarks.md).
    # The log4j file appender's target is set through a system property.
    nohup java -Xmx256m -XX:+UseSerialGC -Dzookeeper.log.dir="$dir/log" \
      -Dzookeeper.nio.numSelectorThreads=1 -Dzookeeper.nio.numWorkerThreads=0 \
      -Dzookeeper.commitProcessor.numWorkerThreads=0 \
      -Dlog4j.configuration="file:$dir/log4j.properties" -Dlog4j.appender.FILE.File="$dir/log/zookeeper.log" \
      -Dzookeeper.jmx.log4j.disable=true \
      -cp "$dir:$jar" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
      > "$dir/log/stdout.log" 2>&1 &
    echo $! > "$dir/zk.pid"
    for _ in $(seq 1 200); do
      if out=$( (exec 3<>/dev/tcp/127.0.0.1/"$port" && printf 'ruok' >&3 && timeout 1 cat <&3) 2>/dev/null) && [ "$out" = imok ]; then
        echo "127.0.0.1:$port"; exit 0
      fi
      kill -0 "$(cat "$dir/zk.pid")" 2>/dev/null || { echo "zk.sh: ZooKeeper exited; see $dir/log" >&2; tail -20 "$dir/log/stdout.log" >&2; exit 1; }
      sleep 0.1
    done
    echo "zk.sh: ZooKeeper did not answer on 127.0.0.1:$port" >&2; exit 1
    ;;
  stop)
    if [ -f "$dir/zk.pid" ]; then
      pid="$(cat "$dir/zk.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/zk.pid"
    fi
    ;;
  *) echo "usage: zk.sh start|stop DIR [PORT]" >&2; exit 2 ;;
esac
