#!/usr/bin/env bash
# Start or stop a private ZooKeeper (Debian's `zookeeper` package) on loopback.
#   scripts/zk.sh start DIR [PORT]   -> prints "127.0.0.1:PORT"; data, log and pid live in DIR
#   scripts/zk.sh start-tls DIR      -> prints "127.0.0.1:PORT" of a TLS-only client port
#                                       (secureClientPort, client certificates required); the PEM
#                                       files are made in DIR/tls: ca.pem, client.pem, client.key;
#                                       started again after a stop, it keeps that port and its data
#   scripts/zk.sh stop DIR
# Several instances may run at once, each in its own DIR. A free port is picked when PORT is 0
# or omitted. The server is stopped by pid, never through systemd.
set -euo pipefail
cmd="${1:?usage: zk.sh start|start-tls|stop DIR [PORT]}"
dir="${2:?usage: zk.sh start|start-tls|stop DIR [PORT]}"
port="${3:-0}"
jar=/usr/share/java/zookeeper.jar

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

# A test CA and, signed by it, a server certificate for localhost/127.0.0.1 (ZooKeeper reads the
# key and certificate from one PEM file) and a client certificate.
make_certs() {
  local t="$1" n
  [ -f "$t/client.key" ] && return 0
  command -v openssl >/dev/null || { echo "zk.sh: openssl missing; run scripts/install-deps.sh" >&2; exit 1; }
  mkdir -p "$t"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=nodepool-ts test CA" \
    -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null
  for n in server client; do
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$n" -keyout "$t/$n.key" -out "$t/$n.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$t/$n.ext"
    openssl x509 -req -in "$t/$n.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial -days 30 \
      -extfile "$t/$n.ext" -out "$t/$n.pem" 2>/dev/null
  done
  cat "$t/server.key" "$t/server.pem" > "$t/server-keystore.pem"
  chmod 600 "$t"/*.key "$t/server-keystore.pem"
}

case "$cmd" in
  start|start-tls)
    [ -f "$jar" ] || { echo "zk.sh: $jar missing; run scripts/install-deps.sh" >&2; exit 1; }
    mkdir -p "$dir/data" "$dir/log"
    dir="$(cd "$dir" && pwd)"
    if [ -f "$dir/zk.pid" ] && kill -0 "$(cat "$dir/zk.pid")" 2>/dev/null; then
      echo "127.0.0.1:$(cat "$dir/zk.client-port")"; exit 0
    fi
    [ "$port" = 0 ] && port="$(free_port)"
    client_port="$port"
    cp="$dir:$jar"
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
    if [ "$cmd" = start-tls ]; then
      # The plain port above stays for the readiness check (ruok) only; clients get the TLS one.
      # The Netty connection factory does TLS; Debian's zookeeper.jar lists only part of Netty.
      make_certs "$dir/tls"
      # a restarted instance keeps its TLS port, so its clients can resume their sessions
      client_port="$(cat "$dir/zk.client-port" 2>/dev/null || free_port)"
      cat >> "$dir/zoo.cfg" <<CFG
secureClientPort=$client_port
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
ssl.keyStore.location=$dir/tls/server-keystore.pem
ssl.keyStore.type=PEM
ssl.trustStore.location=$dir/tls/ca.pem
ssl.trustStore.type=PEM
ssl.clientAuth=need
CFG
      cp="$cp:/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar"
    fi
    cat > "$dir/log4j.properties" <<'L4J'
log4j.rootLogger=WARN, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
L4J
    echo "$port" > "$dir/zk.port"
    echo "$client_port" > "$dir/zk.client-port"
    # One selector thread that does its own I/O and a commit processor without a worker pool:
    # on a machine of two cores shared with the launchers, handing each request from thread to
    # thread cost ZooKeeper more CPU than the work itself (measured: docs/benchmarks.md).
    # The log4j file appender's target is set through a system property.
    nohup java -Xmx256m -XX:+UseSerialGC -Dzookeeper.log.dir="$dir/log" \
      -Dzookeeper.nio.numSelectorThreads=1 -Dzookeeper.nio.numWorkerThreads=0 \
      -Dzookeeper.commitProcessor.numWorkerThreads=0 \
      -Dlog4j.configuration="file:$dir/log4j.properties" -Dlog4j.appender.FILE.File="$dir/log/zookeeper.log" \
      -Dzookeeper.jmx.log4j.disable=true \
      -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
      > "$dir/log/stdout.log" 2>&1 &
    echo $! > "$dir/zk.pid"
    for _ in $(seq 1 200); do
      if out=$( (exec 3<>/dev/tcp/127.0.0.1/"$port" && printf 'ruok' >&3 && timeout 1 cat <&3) 2>/dev/null) && [ "$out" = imok ]; then
        echo "127.0.0.1:$client_port"; exit 0
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
  *) echo "usage: zk.sh start|start-tls|stop DIR [PORT]" >&2; exit 2 ;;
esac
