#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests and local runs.
#
#   scripts/pg-cluster.sh start DIR   initdb in DIR/data (owned by postgres), start it on a free
#                                     127.0.0.1 port with its unix socket in DIR, write the URL
#                                     postgresql://postgres@127.0.0.1:PORT/postgres to DIR/url
#                                     and print it
#   scripts/pg-cluster.sh stop DIR    stop it (fast shutdown) and remove DIR
#
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` user (runuser);
# as any other user it runs as that user. Durability settings stay at their defaults (fsync=on,
# synchronous_commit=on): the tests exist to check what a durable commit costs and guarantees.
# The binaries come from $PGBIN, else /usr/lib/postgresql/15/bin.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

usage() {
  echo "usage: $0 start DIR | stop DIR" >&2
  exit 2
}

as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  # The kernel picks a free ephemeral port; a race with another process is possible but rare,
  # and pg_ctl then fails loudly ("could not bind").
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  local dir=$1
  [ -x "$PGBIN/initdb" ] || { echo "pg-cluster: $PGBIN/initdb not found (install postgresql-15)" >&2; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -e "$dir/data" ]; then
    echo "pg-cluster: $dir/data already exists" >&2
    exit 1
  fi
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || { echo "pg-cluster: no postgres user (install postgresql-15)" >&2; exit 1; }
    chown postgres:postgres "$dir"
    # The server user must be able to reach DIR: mktemp directories are 0700.
    chmod 0755 "$dir"
  fi
  as_server_user "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
    --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  local port attempt
  for attempt in 1 2 3; do
    port=$(free_port)
    # max_connections: tests open one database per test and several connections per service.
    if as_server_user "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
         -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on -c synchronous_commit=on" \
         start >"$dir/pg_ctl.log" 2>&1; then
      local url="postgresql://postgres@127.0.0.1:$port/postgres"
      echo "$url" >"$dir/url"
      echo "$url"
      return 0
    fi
    echo "pg-cluster: start on port $port failed (attempt $attempt):" >&2
    tail -5 "$dir/server.log" >&2 || true
  done
  exit 1
}

stop() {
  local dir=$1
  [ -d "$dir" ] || return 0
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_server_user "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
      as_server_user "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

[ $# -eq 2 ] || usage
case "$1" in
  start) start "$2" ;;
  stop) stop "$2" ;;
  *) usage ;;
esac
