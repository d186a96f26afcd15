#!/usr/bin/env bash
# Start or stop a private MariaDB (Debian's `mariadb-server` binaries) on loopback, for tests,
# the benchmark and the demo. It never touches the system MariaDB: its own data dir, socket,
# pid file and port, all inside DIR, and it is stopped by pid, never through systemd.
#   scripts/mariadb.sh start DIR [PORT]  -> prints mysql://nodepool:<pw>@127.0.0.1:<port>/nodepool
#   scripts/mariadb.sh stop DIR
#   scripts/mariadb.sh uri DIR           -> prints the URI of an instance started earlier
# A second `start` of a running instance only prints its URI. A stopped instance restarts on the
# port and with the password it had (so an outage test gets the same URI back). A free port is
# picked when PORT is 0 or omitted. The user may also create databases named `nodepool_*`, so
# tests sharing one server each work in a database of their own.
#
# DIR/mariadb.pid is this script's record of the server (written from `$!`); the server keeps its
# own pid file, DIR/mariadbd.pid, which it deletes on shutdown and rewrites (truncate, then
# write) on start: sharing one file made `alive` see no or an empty pid in those windows.
set -euo pipefail
cmd="${1:?usage: mariadb.sh start|stop|uri DIR [PORT]}"
dir="${2:?usage: mariadb.sh start|stop|uri DIR [PORT]}"
port="${3:-0}"

find_bin() {
  for b in "$@"; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
    for d in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
      if [ -x "$d/$b" ]; then echo "$d/$b"; return 0; fi
    done
  done
  return 1
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

# A process that exists and is not a zombie (an orphaned server that exited may linger as one
# until its new parent reaps it; kill -0 still succeeds on it).
running() {
  local pid="$1" state
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  state="$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$pid/stat" 2>/dev/null || true)"
  [ "$state" != Z ]
}

recorded_pid() { cat "$dir/mariadb.pid" 2>/dev/null || true; }

# Our server, not whatever process reused a stale pid: its command line names our data dir.
# (Only for a server started by an earlier call: just after the spawn the child may not have
# exec'ed mariadbd yet, so `start` watches its own child by pid instead.)
alive() {
  local pid; pid="$(recorded_pid)"
  running "$pid" || return 1
  [ ! -r "/proc/$pid/cmdline" ] || tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "--datadir=$dir/data"
}

# Wait up to $2 tenths of a second for pid $1 to be gone.
wait_gone() {
  local pid="$1" n="$2"
  while [ "$n" -gt 0 ] && running "$pid"; do sleep 0.1; n=$((n - 1)); done
  ! running "$pid"
}

uri() { echo "mysql://nodepool:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/nodepool"; }

# The root account of the private instance authenticates by unix socket (uid 0), so no root
# password exists anywhere.
client() { "$cli" --no-defaults --protocol=socket -S "$dir/mysqld.sock" -uroot "$@"; }

# What a failed start left behind: the server's stderr before --log-error took over (bad
# options, early aborts) and the error log written by this attempt.
explain() {
  local errfrom="$1"
  echo "--- $dir/stdout.log (tail):" >&2
  tail -20 "$dir/stdout.log" >&2 2>/dev/null || true
  echo "--- $dir/error.log (this attempt, tail):" >&2
  tail -c +"$((errfrom + 1))" "$dir/error.log" 2>/dev/null | tail -20 >&2 || true
}

# Nothing of a previous server is left: its pid gone, its socket and lock files removed
# (mariadbd refuses a socket whose .lock names a live pid; a SIGKILLed one leaves both).
clear_stale() {
  rm -f "$dir/mariadb.pid" "$dir/mariadbd.pid" "$dir/mysqld.sock" "$dir/mysqld.sock.lock"
}

case "$cmd" in
  start)
    server="$(find_bin mariadbd mysqld)" || { echo "mariadb.sh: mariadbd not found; run scripts/install-deps.sh all" >&2; exit 1; }
    installdb="$(find_bin mariadb-install-db mysql_install_db)" || { echo "mariadb.sh: mariadb-install-db not found" >&2; exit 1; }
    cli="$(find_bin mariadb mysql)" || { echo "mariadb.sh: mariadb client not found" >&2; exit 1; }
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    # unix socket paths are limited to 107 bytes
    if [ "${#dir}" -gt 90 ]; then echo "mariadb.sh: DIR path too long for a unix socket: $dir" >&2; exit 1; fi
    deadline=$((SECONDS + 120))
    if alive; then
      if client -e 'SELECT 1' >/dev/null 2>&1; then uri; exit 0; fi
      # a SIGSTOPped (outage-test) server: let it run again rather than start a second one
      kill -CONT "$(recorded_pid)" 2>/dev/null || true
      spawned="$(recorded_pid)"
      errfrom=0
    else
      # no server of ours runs: drop what a crashed or killed one left behind
      # (`stop` waits for that; a zombie holds nothing)
      clear_stale
      if [ -f "$dir/port" ] && [ "$port" = 0 ]; then port="$(cat "$dir/port")"; fi
      [ "$port" = 0 ] && port="$(free_port)"
      echo "$port" > "$dir/port"
      [ -f "$dir/password" ] || { head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$dir/password"; }
      if [ ! -d "$dir/data/mysql" ]; then
        rm -rf "$dir/data"
        "$installdb" --no-defaults --datadir="$dir/data" --user="$(id -un)" \
          --auth-root-authentication-method=socket --skip-test-db --skip-name-resolve \
          > "$dir/install.log" 2>&1 || { echo "mariadb.sh: mariadb-install-db failed:" >&2; tail -20 "$dir/install.log" >&2; exit 1; }
      fi
      attempt=0
      while :; do
        attempt=$((attempt + 1))
        errfrom="$(stat -c %s "$dir/error.log" 2>/dev/null || echo 0)"
        # Small buffers and relaxed durability: a test database, started and thrown away in seconds.
        # --port-open-timeout: a port just released by the previous server may still be busy briefly.
        nohup "$server" --no-defaults --user="$(id -un)" --datadir="$dir/data" \
          --socket="$dir/mysqld.sock" --pid-file="$dir/mariadbd.pid" --port="$port" --port-open-timeout=10 \
          --bind-address=127.0.0.1 --skip-name-resolve --skip-log-bin --log-error="$dir/error.log" \
          --innodb-buffer-pool-size=64M --innodb-log-file-size=32M --innodb-flush-log-at-trx-commit=2 \
          --innodb-doublewrite=0 --skip-innodb-adaptive-hash-index --max-connections=200 \
          --character-set-server=utf8mb4 --collation-server=utf8mb4_bin \
          > "$dir/stdout.log" 2>&1 &
        spawned=$!
        echo "$spawned" > "$dir/mariadb.pid"
        # our own child: watched by pid (alive() would check the command line, which shows bash
        # or nohup until the exec of mariadbd has happened)
        while running "$spawned" && ! client -e 'SELECT 1' >/dev/null 2>&1 && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        if running "$spawned" || [ "$attempt" -ge 3 ]; then break; fi
        # it died: retry a start that lost a race for the data files (the port is retried by the
        # server itself, --port-open-timeout); anything else is fatal
        if ! { cat "$dir/stdout.log"; tail -c +"$((errfrom + 1))" "$dir/error.log" 2>/dev/null; } \
            | grep -qiE 'unable to lock|another .*process'; then
          break
        fi
        echo "mariadb.sh: MariaDB in $dir lost a race for its data files (attempt $attempt); retrying" >&2
        clear_stale
        sleep 1
      done
    fi
    until client -e 'SELECT 1' >/dev/null 2>&1; do
      if ! running "$spawned"; then
        echo "mariadb.sh: MariaDB exited; see $dir/error.log and $dir/stdout.log" >&2
        explain "$errfrom"
        rm -f "$dir/mariadb.pid"
        exit 1
      fi
      if [ "$SECONDS" -ge "$deadline" ]; then
        echo "mariadb.sh: MariaDB did not answer on $dir/mysqld.sock" >&2
        explain "$errfrom"
        exit 1
      fi
      sleep 0.1
    done
    pw="$(cat "$dir/password")"
    client <<SQL
CREATE DATABASE IF NOT EXISTS nodepool CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'nodepool'@'127.0.0.1' IDENTIFIED BY '$pw';
CREATE USER IF NOT EXISTS 'nodepool'@'localhost' IDENTIFIED BY '$pw';
GRANT ALL ON nodepool.* TO 'nodepool'@'127.0.0.1';
GRANT ALL ON nodepool.* TO 'nodepool'@'localhost';
GRANT ALL ON \`nodepool\\_%\`.* TO 'nodepool'@'127.0.0.1';
GRANT ALL ON \`nodepool\\_%\`.* TO 'nodepool'@'localhost';
SQL
    uri
    ;;
  uri)
    [ -f "$dir/port" ] && [ -f "$dir/password" ] || { echo "mariadb.sh: no instance in $dir" >&2; exit 1; }
    uri
    ;;
  stop)
    dir="$(cd "$dir" 2>/dev/null && pwd || echo "$dir")"
    if [ -f "$dir/mariadb.pid" ]; then
      pid="$(recorded_pid)"
      if alive; then
        kill -CONT "$pid" 2>/dev/null || true   # a stopped process would never see SIGTERM
        kill "$pid" 2>/dev/null || true
        # a loaded machine can take a while to shut InnoDB down; only then SIGKILL (and wait
        # for that too, so a `start` right after never meets the old server)
        if ! wait_gone "$pid" 300; then
          kill -9 "$pid" 2>/dev/null || true
          wait_gone "$pid" 100 || echo "mariadb.sh: MariaDB pid $pid in $dir did not exit" >&2
        fi
      fi
      clear_stale
    fi
    ;;
  *) echo "usage: mariadb.sh start|stop|uri DIR [PORT]" >&2; exit 2 ;;
esac
