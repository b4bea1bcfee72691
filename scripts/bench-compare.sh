#!/usr/bin/env bash
# One run comparing, on this machine and in the same minutes (the disk and the cores are shared
# and noisy: only figures of one run compare), the same wallex-bench load against:
#   sqlite   one instance on the embedded store
#   pg-1     one instance on PostgreSQL
#   pg-2     two instances on one PostgreSQL database (scripts/bench-pg.sh: each instance driven
#            by its own wallex-bench; the figure is the total)
# ROUNDS times, interleaved; each configuration gets a fresh data directory or database.
#
#   scripts/bench-compare.sh [SCENARIO]          # default: credit (one event per operation)
#   ROUNDS=2 OPERATIONS=30000 WORKERS=64 WALLETS=1000 scripts/bench-compare.sh transfer
#
# Needs a release build of wallex and wallex-bench. Starts its own PostgreSQL cluster.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
source "$root/scripts/bench-lib.sh"
scenario=${1:-credit}
rounds=${ROUNDS:-2}

if [ -z "${WALLEX_PG_URL:-}" ]; then
  exec "$here/with-pg.sh" "$0" "$@"
fi
server_url=$WALLEX_PG_URL
bin=$root/build/release/bin
work=$(mktemp -d "${TMPDIR:-/tmp}/wallex-bench-compare-XXXXXX")
trap 'rm -rf "$work"' EXIT

bench_sqlite() {
  local dir=$1 port
  port=$(free_port)
  "$bin/wallex" serve --port "$port" --host 127.0.0.1 --data-dir "$dir/data" \
    >"$dir/server.log" 2>&1 &
  local pid=$!
  wait_for_server "http://127.0.0.1:$port" "$pid" "$dir/server.log" bench-compare
  local status=0
  "$bin/wallex-bench" --url "http://127.0.0.1:$port" --scenario "$scenario" \
    --wallets "${WALLETS:-1000}" --operations "${OPERATIONS:-30000}" --workers "${WORKERS:-64}" \
    --quiet --run-id sqlite >"$dir/bench.txt" 2>&1 || status=1
  kill "$pid"
  wait "$pid" || true
  local ops
  ops=$(grep 'throughput (operations phase)' "$dir/bench.txt" | grep -oE '[0-9]+ ops/s' | grep -oE '[0-9]+' || echo 0)
  echo "scenario $scenario, 1 instance on the embedded SQLite store"
  echo "  1  $ops  ($(grep -E "^ +$scenario " "$dir/bench.txt" | head -1 | tr -s ' '))  $(grep -E '^verification' "$dir/bench.txt" || echo 'verification: not run')"
  echo "  total: $ops ops/s"
  return $status
}

bench_pg() {
  local instances=$1 name=$2
  local database="wallex_bench_${name}_$$"
  psql "$server_url" -qc "CREATE DATABASE $database"
  local url="${server_url%/*}/$database"
  local status=0
  WALLEX_PG_URL=$url "$here/bench-pg.sh" "$scenario" "$instances" || status=1
  psql "$server_url" -qc "DROP DATABASE $database WITH (FORCE)"
  return $status
}

echo "bench-compare: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -r); scenario $scenario," \
  "${OPERATIONS:-30000} operations, ${WORKERS:-64} connections, ${WALLETS:-1000} wallets per bench"
status=0
for round in $(seq 1 "$rounds"); do
  echo "== round $round"
  mkdir -p "$work/sqlite-$round"
  bench_sqlite "$work/sqlite-$round" || status=1
  bench_pg 1 "one_$round" || status=1
  bench_pg 2 "two_$round" || status=1
done
exit $status
