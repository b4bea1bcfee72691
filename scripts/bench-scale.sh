#!/usr/bin/env bash
# How the cost of an operation grows with the number of wallets: for each count in WALLET_COUNTS,
# a fresh server and data directory, then
#
#   1. a run that creates COUNT wallets and does a single operation (its CPU: "creation"),
#   2. a run that creates COUNT wallets of its own and does OPERATIONS operations on them,
#
# each followed by a wait until the projections have caught up, so the read side's share is
# counted. The CPU of an operation is (run 2 − run 1) / OPERATIONS, per server thread; ops/s is
# run 2's operations phase (closed loop, no verification). Run 2's own creations happen on a store
# already holding COUNT wallets, a little dearer than run 1's: keep OPERATIONS several times COUNT.
#
#   scripts/bench-scale.sh [WALLEX_BIN]
#   WALLET_COUNTS="1000 200000" OPERATIONS=1600000 SCENARIO=credit scripts/bench-scale.sh
#
# BENCHMARKS.md ("The number of wallets") has what it measured and why the cost grows.
# shellcheck source=scripts/bench-lib.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/bench-lib.sh"

server=${1:-$root/build/release/bin/wallex}
bench=${WALLEX_BENCH_BIN:-$root/build/release/bin/wallex-bench}
counts=${WALLET_COUNTS:-1000 100000}
operations=${OPERATIONS:-400000}
scenario=${SCENARIO:-credit}
workers=${WORKERS:-128}
require_executables bench-scale "$server" "$bench"
start_work bench-scale

echo "bench-scale: $scenario, $operations operations, $workers connections; wallets: $counts"
for count in $counts; do
  data="$work/data-$count"
  start_server "$server" "$data" bench-scale
  thread_ticks "$pid" >"$work/$count.0"
  "$bench" --url "$url" --quiet --scenario "$scenario" --wallets "$count" --operations 1 \
    --workers "$workers" --no-verify >/dev/null
  wait_caught_up "$url" bench-scale 600
  thread_ticks "$pid" >"$work/$count.1"
  "$bench" --url "$url" --quiet --json "$work/$count.json" --scenario "$scenario" \
    --wallets "$count" --operations "$operations" --workers "$workers" --no-verify >/dev/null
  wait_caught_up "$url" bench-scale 600
  thread_ticks "$pid" >"$work/$count.2"
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
  du -sh "$data" | awk -v c="$count" '{print "bench-scale: " c " wallets: data directory " $1}'
  rm -rf "$data" "$data.log"
done

python3 - "$work" "$operations" "$(getconf CLK_TCK)" $counts <<'PY'
import json, sys
work, operations, ticks_per_s, counts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]

def ticks(path):
    out = {}
    for line in open(path):
        name, value = line.rsplit(" ", 1)
        name = name.replace("wallex-", "")
        out[name] = out.get(name, 0) + int(value)
    return out

rows = []
for count in counts:
    t0, t1, t2 = (ticks(f"{work}/{count}.{i}") for i in range(3))
    us = {name: ((t2[name] - t1.get(name, 0)) - (t1.get(name, 0) - t0.get(name, 0)))
          * 1e6 / ticks_per_s / operations for name in t2}
    us["server"] = sum(us.values())
    report = json.load(open(f"{work}/{count}.json"))
    us["ops/s"] = float(report["phases"]["operations"]["requestsPerSecond"])
    rows.append((count, us))
columns = ["ops/s", "server"] + sorted({c for _, r in rows for c in r} - {"ops/s", "server"})
columns = [c for c in columns if any(abs(r.get(c, 0)) > 0.05 for _, r in rows)]
print("µs of CPU per operation by server thread (creation subtracted); ops/s as measured")
print(f"{'wallets':>9} " + " ".join(f"{c:>9}" for c in columns))
for count, r in rows:
    print(f"{count:>9} " + " ".join(
        f"{r.get(c, 0):9.0f}" if c == "ops/s" else f"{r.get(c, 0):9.1f}" for c in columns))
PY
