#!/usr/bin/env bash
# Several `wallex serve` instances on one throwaway PostgreSQL database, each driven by its own
# wallex-bench on wallets of its own (so each bench can verify what it reads back), run
# concurrently; prints each instance's throughput and latencies and the total.
#
#   scripts/bench-pg.sh [SCENARIO] [INSTANCES]      # default: credit 2
#   OPERATIONS=30000 WORKERS=64 WALLETS=1000 scripts/bench-pg.sh transfer 2
#
# Needs a release build (make build). Starts its own cluster through scripts/with-pg.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
source "$root/scripts/bench-lib.sh"
scenario=${1:-credit}
instances=${2:-2}

if [ -z "${WALLEX_PG_URL:-}" ]; then
  exec "$here/with-pg.sh" "$0" "$@"
fi

bin=$root/build/release/bin
work=$(mktemp -d "${TMPDIR:-/tmp}/wallex-bench-pg-XXXXXX")
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/wallex" migrate up --store "$WALLEX_PG_URL" >/dev/null
ports=()
for i in $(seq 1 "$instances"); do
  port=$(free_port)
  ports+=("$port")
  "$bin/wallex" serve --store "$WALLEX_PG_URL" --port "$port" --host 127.0.0.1 \
    --data-dir "$work/instance-$i" >"$work/server-$i.log" 2>&1 &
  servers+=($!)
done
for i in $(seq 1 "$instances"); do
  wait_for_server "http://127.0.0.1:${ports[$((i - 1))]}" "${servers[$((i - 1))]}" \
    "$work/server-$i.log" "bench-pg instance $i"
done

benches=()
for i in $(seq 1 "$instances"); do
  "$bin/wallex-bench" --url "http://127.0.0.1:${ports[$((i - 1))]}" --scenario "$scenario" \
    --wallets "${WALLETS:-1000}" --operations "${OPERATIONS:-30000}" --workers "${WORKERS:-64}" \
    --quiet --run-id "instance-$i" >"$work/bench-$i.txt" 2>&1 &
  benches+=($!)
done
status=0
for pid in "${benches[@]}"; do wait "$pid" || status=1; done

total=0
echo "scenario $scenario, $instances instances on one PostgreSQL database"
echo "  instance  ops/s   (operation ok rejected failed p50 p90 p99 p99.9 max ms)   verification"
for i in $(seq 1 "$instances"); do
  ops=$(grep 'throughput (operations phase)' "$work/bench-$i.txt" | grep -oE '[0-9]+ ops/s' | grep -oE '[0-9]+' || echo 0)
  total=$((total + ops))
  echo "  $i  $ops  ($(grep -E "^ +$scenario " "$work/bench-$i.txt" | head -1 | tr -s ' '))  $(grep -E '^verification' "$work/bench-$i.txt" || echo 'verification: not run')"
done
echo "  total: $total ops/s; events in the log: $(psql "$WALLEX_PG_URL" -Atc 'SELECT position FROM log_head')"
exit $status
