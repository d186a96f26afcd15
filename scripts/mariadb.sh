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

# Our server, not whatever process reused a stale pid: its command line names our data dir.
alive() {
  [ -f "$dir/mariadb.pid" ] || return 1
  local pid; pid="$(cat "$dir/mariadb.pid")"
  kill -0 "$pid" 2>/dev/null || return 1
  [ ! -r "/proc/$pid/cmdline" ] || tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "--datadir=$dir/data"
}

uri() { echo "mysql://nodepool:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/nodepool"; }

# The root account of the private instance authenticates by unix socket (uid 0), so no root
# password exists anywhere.
client() { "$cli" --no-defaults --protocol=socket -S "$dir/mysqld.sock" -uroot "$@"; }

case "$cmd" in
  start)
    server="$(find_bin mariadbd mysqld)" || { echo "mariadb.sh: mariadbd not found; run scripts/install-deps.sh all" >&2; exit 1; }
    installdb="$(find_bin mariadb-install-db mysql_install_db)" || { echo "mariadb.sh: mariadb-install-db not found" >&2; exit 1; }
    cli="$(find_bin mariadb mysql)" || { echo "mariadb.sh: mariadb client not found" >&2; exit 1; }
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    # unix socket paths are limited to 107 bytes
    if [ "${#dir}" -gt 90 ]; then echo "mariadb.sh: DIR path too long for a unix socket: $dir" >&2; exit 1; fi
    if alive; then
      if client -e 'SELECT 1' >/dev/null 2>&1; then uri; exit 0; fi
      # a SIGSTOPped (outage-test) server: let it run again rather than start a second one
      kill -CONT "$(cat "$dir/mariadb.pid")" 2>/dev/null || true
    else
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
      # Small buffers and relaxed durability: a test database, started and thrown away in seconds.
      nohup "$server" --no-defaults --user="$(id -un)" --datadir="$dir/data" \
        --socket="$dir/mysqld.sock" --pid-file="$dir/mariadb.pid" --port="$port" \
        --bind-address=127.0.0.1 --skip-name-resolve --skip-log-bin --log-error="$dir/error.log" \
        --innodb-buffer-pool-size=64M --innodb-log-file-size=32M --innodb-flush-log-at-trx-commit=2 \
        --innodb-doublewrite=0 --skip-innodb-adaptive-hash-index --max-connections=200 \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_bin \
        > "$dir/stdout.log" 2>&1 &
      echo $! > "$dir/mariadb.pid"
    fi
    for _ in $(seq 1 300); do
      if client -e 'SELECT 1' >/dev/null 2>&1; then break; fi
      alive || { echo "mariadb.sh: MariaDB exited; see $dir/error.log" >&2; tail -20 "$dir/error.log" >&2; exit 1; }
      sleep 0.1
    done
    client -e 'SELECT 1' >/dev/null 2>&1 || { echo "mariadb.sh: MariaDB did not answer on $dir/mysqld.sock" >&2; exit 1; }
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
      pid="$(cat "$dir/mariadb.pid")"
      if alive; then
        kill -CONT "$pid" 2>/dev/null || true   # a stopped process would never see SIGTERM
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
      fi
      rm -f "$dir/mariadb.pid"
    fi
    ;;
  *) echo "usage: mariadb.sh start|stop|uri DIR [PORT]" >&2; exit 2 ;;
esac
