#!/usr/bin/env bash
# The benchmark behind `make bench` (which builds first; this script builds nothing).
#
# Starts build/release/bin/wallex on a free loopback port with a fresh data directory, then,
# BENCH_REPEATS times interleaved (the disk is noisy, so every figure is compared with a
# ceiling measured minutes apart at most):
#   ceiling      GET /health, closed loop, BENCH_WORKERS connections, BENCH_DURATION s
#   original     1000 wallets, 20,000 operations, 20 connections (the NestJS project's test)
#   credit, debit, transfer         closed loop, BENCH_WORKERS connections, BENCH_DURATION s
#   transfer-hot                    the same with one wallet in every transfer
# and finally an open-loop transfer run at 70% of the median transfer throughput, where the
# p99 counts queueing (latency from each request's intended send time).
# Every run verifies every wallet it touched; any failure makes the script exit non-zero.
# Prints one table of medians; the JSON of every run stays in build/bench/<time>/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
wallex=${WALLEX_BIN:-$root/build/release/bin/wallex}
bench=${WALLEX_BENCH_BIN:-$root/build/release/bin/wallex-bench}
repeats=${BENCH_REPEATS:-3}
duration=${BENCH_DURATION:-5}
workers=${BENCH_WORKERS:-128}
open_loop_workers=${BENCH_OPEN_LOOP_WORKERS:-128}

for binary in "$wallex" "$bench"; do
  [ -x "$binary" ] || { echo "bench: $binary is missing; run 'make bench' (it builds first)" >&2; exit 2; }
done

results="$root/build/bench/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$results"
data=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
"$wallex" serve --host 127.0.0.1 --port "$port" --data-dir "$data" 2>"$results/server.log" &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$url/health" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "bench: the server did not start" >&2; cat "$results/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null "$url/health"

{
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r)"
  echo "server:  $wallex serve --host 127.0.0.1 --port $port --data-dir <temp> (pid $pid)"
  echo "bench:   $bench, $repeats repeats, ${duration} s per timed run, $workers connections"
} | tee "$results/machine.txt"

failed=0
# run <name> <repeat> <wallex-bench arguments...>
run() {
  local name=$1 rep=$2
  shift 2
  local out="$results/$name-$rep"
  printf 'bench: %-13s run %d: ' "$name" "$rep"
  if "$bench" --url "$url" --quiet --json "$out.json" "$@" >"$out.txt" 2>&1; then
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); o=r["phases"]["operations"]; a=o["latencyUs"]["all"]; print("%.0f ops/s, p50 %.2f ms, p99 %.2f ms, verified" % (float(o["requestsPerSecond"]), a["p50"]/1000, a["p99"]/1000))' "$out.json"
  else
    echo "FAILED (see $out.txt)"
    tail -n 25 "$out.txt" >&2
    failed=1
  fi
}

timed=(--duration "$duration" --workers "$workers")
for rep in $(seq 1 "$repeats"); do
  run ceiling "$rep" --scenario health "${timed[@]}"
  run original "$rep" --scenario original --wallets 1000 --operations 20000 --workers 20
  run credit "$rep" --scenario credit "${timed[@]}"
  run debit "$rep" --scenario debit "${timed[@]}"
  run transfer "$rep" --scenario transfer "${timed[@]}"
  run transfer-hot "$rep" --scenario transfer --distribution hot "${timed[@]}"
done

peak=$(python3 - "$results" "$repeats" <<'PY'
import json, statistics, sys
results, repeats = sys.argv[1], int(sys.argv[2])
rates = []
for rep in range(1, repeats + 1):
    try:
        rates.append(float(json.load(open(f"{results}/transfer-{rep}.json"))["phases"]["operations"]["requestsPerSecond"]))
    except (OSError, KeyError, ValueError):
        pass
print(statistics.median(rates) if rates else 0)
PY
)
rate=$(python3 -c "import sys; print(max(1, round(0.7 * float(sys.argv[1]))))" "$peak")
for rep in $(seq 1 "$repeats"); do
  run open-loop-70 "$rep" --scenario transfer --rate "$rate" --duration "$duration" --workers "$open_loop_workers"
done

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
if [ "$status" -ne 0 ]; then
  echo "bench: the server exited with $status after SIGTERM" >&2
  failed=1
fi

python3 - "$results" "$repeats" "$rate" <<'PY' | tee "$results/table.txt"
import json, statistics, sys
results, repeats, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def load(name, rep):
    try:
        return json.load(open(f"{results}/{name}-{rep}.json"))
    except (OSError, ValueError):
        return None
def ops(report):
    return float(report["phases"]["operations"]["requestsPerSecond"])
rows = [("ceiling", "GET /health"), ("original", "1000 wallets / 20k ops / 20 conn"),
        ("credit", "closed loop"), ("debit", "closed loop"), ("transfer", "closed loop, uniform"),
        ("transfer-hot", "closed loop, one hot wallet"), ("open-loop-70", f"transfer at {rate}/s")]
print()
print(f"{'scenario':<14} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs ceiling':>10}  {'runs':>4}  notes")
for name, note in rows:
    reports = [r for r in (load(name, rep) for rep in range(1, repeats + 1)) if r is not None]
    if not reports:
        print(f"{name:<14} {'-':>9}  no result")
        continue
    ratios = []
    for rep in range(1, repeats + 1):
        r, c = load(name, rep), load("ceiling", rep)
        if r and c and ops(c) > 0:
            ratios.append(ops(r) / ops(c))
    all_lat = [r["phases"]["operations"]["latencyUs"]["all"] for r in reports]
    med = statistics.median
    passed = sum(1 for r in reports if r["passed"])
    extra = note
    if name == "original":
        elapsed = med(float(r["phases"]["operations"]["elapsedSeconds"]) for r in reports)
        rejected = [r["phases"]["operations"]["rejected"] for r in reports]
        failed = [r["phases"]["operations"]["failed"] for r in reports]
        extra += f"; {elapsed:.2f} s; rejected (insufficient funds) {rejected}; failed {failed}"
    print(f"{name:<14} {med(ops(r) for r in reports):>9.0f} {med(l['p50'] for l in all_lat)/1000:>8.2f} "
          f"{med(l['p99'] for l in all_lat)/1000:>8.2f} {med(ratios) if ratios else 0:>10.0%}  {passed}/{len(reports)}  {extra}")
print()
print("medians of interleaved runs; 'runs' = runs that passed verification; vs ceiling = ops/s / same-round GET /health ops/s")
PY
echo "bench: results in $results"
exit "$failed"
