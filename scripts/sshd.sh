#!/usr/bin/env bash
# Start or stop a private OpenSSH server (Debian's `openssh-server`) on loopback, for the static
# driver's tests and for trying a static pool on one machine.
#   scripts/sshd.sh start DIR [PORT [PUBKEY]]  -> prints "ADDRESS:PORT"
#   scripts/sshd.sh stop DIR
# DIR holds the config, host keys (ed25519, ecdsa, rsa), the pid file, the log and
# `authorized_keys`. PUBKEY (a .pub file) is the key allowed to log in; without it a client key
# pair DIR/client_key{,.pub} is generated. Login is as the user running sshd (root in CI). A free
# port is picked when PORT is 0 or omitted. SSHD_ADDRESS (default 127.0.0.1) picks another loopback
# address (127.0.0.2, ...), so several instances can stand for differently named hosts. Several
# instances may run at once, each with its own DIR; each is stopped by its pid, never by name.
set -euo pipefail
usage='usage: sshd.sh start DIR [PORT [PUBKEY]] | stop DIR'
cmd="${1:?$usage}"
dir="${2:?$usage}"
port="${3:-0}"
pubkey="${4:-}"
addr="${SSHD_ADDRESS:-127.0.0.1}"
sshd=/usr/sbin/sshd

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,process.argv[1],()=>{console.log(s.address().port);s.close();});' "$addr"
}

running() {
  [ -f "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null
}

case "$cmd" in
  start)
    [ -x "$sshd" ] || { echo "sshd.sh: $sshd missing; install openssh-server" >&2; exit 1; }
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if running; then
      cat "$dir/sshd.addr"; exit 0
    fi
    # privilege separation directory sshd insists on (normally made by the service unit)
    mkdir -p /run/sshd && chmod 0755 /run/sshd
    for t in ed25519 ecdsa rsa; do
      [ -f "$dir/ssh_host_${t}_key" ] || ssh-keygen -q -N '' -t "$t" -C "sshd.sh-$t" -f "$dir/ssh_host_${t}_key"
    done
    if [ -n "$pubkey" ]; then
      cp "$pubkey" "$dir/authorized_keys"
    else
      [ -f "$dir/client_key" ] || ssh-keygen -q -N '' -t ed25519 -C sshd.sh-client -f "$dir/client_key"
      cp "$dir/client_key.pub" "$dir/authorized_keys"
    fi
    chmod 0600 "$dir/authorized_keys"
    [ "$port" = 0 ] && port="$(free_port)"
    cat > "$dir/sshd_config" <<CFG
Port $port
ListenAddress $addr
HostKey $dir/ssh_host_ed25519_key
HostKey $dir/ssh_host_ecdsa_key
HostKey $dir/ssh_host_rsa_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
# DIR usually lives under /tmp (world-writable): skip the ownership walk up to /
StrictModes no
UseDNS no
PrintMotd no
# the launcher opens many short unauthenticated connections (host-key scans)
MaxStartups 200:30:400
MaxSessions 50
LoginGraceTime 30
LogLevel VERBOSE
CFG
    # OpenSSH >= 9.8 penalises sources that disconnect before authenticating (our key scans)
    if "$sshd" -t -f "$dir/sshd_config" -o PerSourcePenalties=no 2>/dev/null; then
      echo 'PerSourcePenalties no' >> "$dir/sshd_config"
    fi
    "$sshd" -t -f "$dir/sshd_config"
    echo "$port" > "$dir/sshd.port"
    echo "$addr:$port" > "$dir/sshd.addr"
    rm -f "$dir/sshd.pid"
    # -D: stay in the foreground of this background job; -E: log to a file, not syslog
    nohup "$sshd" -D -f "$dir/sshd_config" -E "$dir/sshd.log" > "$dir/stdout.log" 2>&1 &
    child=$!
    for _ in $(seq 1 100); do
      if (exec 3<>/dev/tcp/"$addr"/"$port") 2>/dev/null; then
        # sshd -D writes its pid file itself; fall back to the job's pid
        [ -s "$dir/sshd.pid" ] || echo "$child" > "$dir/sshd.pid"
        echo "$addr:$port"; exit 0
      fi
      kill -0 "$child" 2>/dev/null || { echo "sshd.sh: sshd exited; see $dir/sshd.log" >&2; tail -20 "$dir/sshd.log" >&2 || true; exit 1; }
      sleep 0.05
    done
    echo "sshd.sh: sshd did not listen on $addr:$port; see $dir/sshd.log" >&2
    kill "$child" 2>/dev/null || true
    exit 1
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    if running; then
      pid="$(cat "$dir/sshd.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
      done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/sshd.pid"
    ;;
  *)
    echo "$usage" >&2; exit 2 ;;
esac
