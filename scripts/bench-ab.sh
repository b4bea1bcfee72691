#!/usr/bin/env bash
# Compares two builds of the server by the CPU each of its threads spends per operation, which is
# far steadier on this shared 2-core box than throughput: PAIRS rounds, the builds alternated
# (A first in odd rounds, B first in even ones), each run on a fresh server and data directory.
#
#   scripts/bench-ab.sh OLD_WALLEX NEW_WALLEX [SCENARIO]     # default: transfer
#   PAIRS=5 OPERATIONS=150000 WARMUP=100000 scripts/bench-ab.sh /tmp/old/wallex build/release/bin/wallex credit
#   RATE=15000 DURATION=10 scripts/bench-ab.sh OLD NEW credit   # open loop: the same load for both
#
# Closed loop, a faster build also runs at a higher rate, with larger group commits, which
# changes its cost per operation; at a fixed RATE both builds get the same batches, so their CPU
# per operation compares the code alone (RATE must be one both sustain).
#
# A run: start the server, WARMUP operations (not counted; 2,000 creates the wallets), wait until
# the projections have caught up, read every thread's CPU time (/proc/<pid>/task/*/stat), run
# OPERATIONS operations with WORKERS connections (closed loop, no verification), wait until the
# projections have caught up again (their share of the run is counted, not left to the next
# one), read the CPU times again. Prints each run (ops/s and µs per operation by thread name)
# and, per build, the median of every column; then the same for the time each thread was
# runnable but waited for a core (/proc/<pid>/task/*/schedstat), which shows how the threads of
# a request queue behind each other on two cores. The client is the release wallex-bench of this
# tree (WALLEX_BENCH_BIN to change it).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
source "$root/scripts/bench-lib.sh"
[ $# -ge 2 ] || { sed -n 2,16p "$0" >&2; exit 2; }
builds=("$1" "$2")
scenario=${3:-transfer}
pairs=${PAIRS:-3}
operations=${OPERATIONS:-100000}
warmup=${WARMUP:-2000}
workers=${WORKERS:-128}
wallets=${WALLETS:-1000}
rate=${RATE:-}
duration=${DURATION:-10}
bench=${WALLEX_BENCH_BIN:-$root/build/release/bin/wallex-bench}
require_executables bench-ab "${builds[@]}" "$bench"
start_work bench-ab

# run <build index> <round>: one measured run, its figures into $work/<index>-<round>.{before,after,json}
run() {
  local index=$1 round=$2 data
  data="$work/data-$index-$round"
  start_server "${builds[$index]}" "$data" bench-ab
  "$bench" --url "$url" --quiet --scenario "$scenario" --wallets "$wallets" \
    --operations "$warmup" --workers "$workers" --no-verify >/dev/null
  wait_caught_up "$url" bench-ab 300
  thread_ticks "$pid" >"$work/$index-$round.before"
  thread_waits "$pid" >"$work/$index-$round.waits-before"
  local load=(--operations "$operations")
  [ -z "$rate" ] || load=(--rate "$rate" --duration "$duration")
  "$bench" --url "$url" --quiet --json "$work/$index-$round.json" --scenario "$scenario" \
    --wallets "$wallets" "${load[@]}" --workers "$workers" --no-verify >/dev/null
  wait_caught_up "$url" bench-ab 300
  thread_ticks "$pid" >"$work/$index-$round.after"
  thread_waits "$pid" >"$work/$index-$round.waits-after"
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
  rm -rf "$data" "$data.log"
  sync  # the freed data directory's writeback before the next run, not during it
}

if [ -n "$rate" ]; then
  echo "bench-ab: $scenario, $pairs pairs, $rate/s for $duration s after $warmup, $workers connections"
else
  echo "bench-ab: $scenario, $pairs pairs, $operations operations after $warmup, $workers connections"
fi
echo "bench-ab: A = ${builds[0]}"
echo "bench-ab: B = ${builds[1]}"
# The build that goes first alternates from round to round: the second run of a round was
# measured dearer whichever build it was (2026-11-29, BENCHMARKS.md "Two builds, thread by thread").
for round in $(seq 1 "$pairs"); do
  if [ $((round % 2)) -eq 1 ]; then
    run 0 "$round"
    run 1 "$round"
  else
    run 1 "$round"
    run 0 "$round"
  fi
done

python3 - "$work" "$pairs" "$operations" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
work, pairs, operations, ticks_per_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def ticks(path):
    out = {}
    for line in open(path):
        name, value = line.rsplit(" ", 1)
        out[name] = out.get(name, 0) + int(value)
    return out

def per_operation(kind, scale):
    """{build index: [{thread: µs per operation}, ...]} from the files <index>-<round>.<kind>."""
    rows = {0: [], 1: []}
    for round_ in range(1, pairs + 1):
        for index in (0, 1):
            before = ticks(f"{work}/{index}-{round_}.{kind}before")
            after = ticks(f"{work}/{index}-{round_}.{kind}after")
            report = json.load(open(f"{work}/{index}-{round_}.json"))
            done = int(report["phases"]["operations"]["requests"]) or operations  # open loop: as sent
            us = {name.replace("wallex-", ""): (after[name] - before.get(name, 0)) * scale / done
                  for name in after}
            us["server"] = sum(us.values())
            us["ops/s"] = float(report["phases"]["operations"]["requestsPerSecond"])
            rows[index].append(us)
    return rows

def table(title, rows):
    columns = ["ops/s", "server"] + sorted({c for r in rows[0] + rows[1] for c in r} - {"ops/s", "server"})
    columns = [c for c in columns if any(r.get(c, 0) > 0.05 for r in rows[0] + rows[1])]
    print(title)
    print("build round " + " ".join(f"{c:>9}" for c in columns))
    def line(label, values):
        return label + " " + " ".join(f"{values.get(c, 0):9.0f}" if c == "ops/s" else f"{values.get(c, 0):9.1f}" for c in columns)
    for round_ in range(pairs):
        for index in (0, 1):
            print(line(f"{'AB'[index]:>5} {round_ + 1:>5}", rows[index][round_]))
    for index in (0, 1):
        median = {c: statistics.median(r.get(c, 0) for r in rows[index]) for c in columns}
        print(line(f"{'AB'[index]:>5} {'med':>5}", median))

table("µs of CPU per operation by server thread (ops/s as measured); medians last",
      per_operation("", 1e6 / ticks_per_s))
# Time runnable but without a core: on two cores, how long each stage of a request waited for
# the others to give one up (schedstat; the "server" column sums the threads).
waits = per_operation("waits-", 1e-3)
if any(r["server"] > 0 for r in waits[0] + waits[1]):
    print()
    table("µs waiting for a core per operation by server thread; medians last", waits)
PY
