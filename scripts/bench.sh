#!/usr/bin/env bash
# The benchmark behind `make bench` (which builds first; this script builds nothing).
#
# Starts build/release/bin/wallex on a free loopback port with a fresh data directory, then,
# BENCH_REPEATS times interleaved:
#   original     1000 wallets, 20,000 operations, 20 connections (the NestJS project's test)
#   credit, debit, transfer         closed loop, BENCH_WORKERS connections, BENCH_DURATION s
#   transfer-hot                    the same with one wallet in every transfer
#   credit-uuid                     credit with a random (version 4 UUID) Idempotency-Key per
#                                   operation instead of the ordered <run>-op-<n> of the others
# and finally an open-loop transfer run at 70% of the median transfer throughput, where the
# p99 counts queueing (latency from each request's intended send time). Before the first of
# these runs and after each one, the ceiling: GET /health, closed loop, BENCH_WORKERS
# connections, BENCH_DURATION s. The box's speed moves within a minute, so each run is compared
# with the mean of the two ceilings measured just before and just after it.
# Every run verifies every wallet it touched; any failure makes the script exit non-zero.
# Prints one table of medians and one of CPU per request (each server thread's, from /proc, and
# the client's); the JSON of every run stays in build/bench/<time>/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
source "$root/scripts/bench-lib.sh"
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

port=$(free_port)
url="http://127.0.0.1:$port"
"$wallex" serve --host 127.0.0.1 --port "$port" --data-dir "$data" 2>"$results/server.log" &
pid=$!
wait_for_server "$url" "$pid" "$results/server.log" bench

{
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r)"
  echo "server:  $wallex serve --host 127.0.0.1 --port $port --data-dir <temp> (pid $pid)"
  echo "bench:   $bench, $repeats repeats, ${duration} s per timed run, $workers connections"
} | tee "$results/machine.txt"

failed=0
# The CPU time (user + system) of this shell's finished children, i.e. the client runs, in µs,
# into $client_us. `times` must run in this shell itself: in a pipeline or a $(...) it would
# report a subshell's children.
client_us=0
read_client_us() {
  times >"$results/.times"
  client_us=$(awk 'NR == 2 {
    total = 0
    for (i = 1; i <= 2; i++) { split($i, p, "m"); total += p[1] * 60 + p[2] }
    printf "%d\n", total * 1000000 }' "$results/.times")
}
# run <name> <repeat> <wallex-bench arguments...>
run() {
  local name=$1 rep=$2
  shift 2
  local out="$results/$name-$rep"
  echo "$name $rep" >>"$results/sequence"
  printf 'bench: %-13s run %s: ' "$name" "$rep"
  thread_ticks "$pid" >"$out.cpu-before"
  read_client_us
  local client_before=$client_us
  local status=0
  "$bench" --url "$url" --quiet --json "$out.json" "$@" >"$out.txt" 2>&1 || status=$?
  read_client_us  # before thread_ticks, whose own helper processes would count otherwise
  echo "$((client_us - client_before))" >"$out.cpu-client"
  thread_ticks "$pid" >"$out.cpu-after"
  if [ "$status" -eq 0 ]; then
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); o=r["phases"]["operations"]; a=o["latencyUs"]["all"]; print("%.0f ops/s, p50 %.2f ms, p99 %.2f ms, verified" % (float(o["requestsPerSecond"]), a["p50"]/1000, a["p99"]/1000))' "$out.json"
  else
    echo "FAILED (see $out.txt)"
    tail -n 25 "$out.txt" >&2
    failed=1
  fi
}

timed=(--duration "$duration" --workers "$workers")
ceilings=0
ceiling() {
  ceilings=$((ceilings + 1))
  run ceiling "$ceilings" --scenario health "${timed[@]}"
}
ceiling
for rep in $(seq 1 "$repeats"); do
  run original "$rep" --scenario original --wallets 1000 --operations 20000 --workers 20
  ceiling
  run credit "$rep" --scenario credit "${timed[@]}"
  ceiling
  run debit "$rep" --scenario debit "${timed[@]}"
  ceiling
  run transfer "$rep" --scenario transfer "${timed[@]}"
  ceiling
  run transfer-hot "$rep" --scenario transfer --distribution hot "${timed[@]}"
  ceiling
  run credit-uuid "$rep" --scenario credit --idempotency-keys random "${timed[@]}"
  ceiling
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
  ceiling
done

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
if [ "$status" -ne 0 ]; then
  echo "bench: the server exited with $status after SIGTERM" >&2
  failed=1
fi

python3 - "$results" "$repeats" "$rate" "$(getconf CLK_TCK)" <<'PY' | tee "$results/table.txt"
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
        ("transfer-hot", "closed loop, one hot wallet"),
        ("credit-uuid", "closed loop, a random UUID Idempotency-Key each"),
        ("open-loop-70", f"transfer at {rate}/s")]
# The runs in the order they ran; each run's ceiling is the mean of the GET /health runs next to
# it (just before and just after; one of them if the other is missing or failed).
sequence = [tuple(line.split()) for line in open(f"{results}/sequence") if line.strip()]
def run_ids(name):
    return [run_id for n, run_id in sequence if n == name]
def ceiling_next_to(index):
    found = []
    for step in (-1, 1):
        i = index + step
        while 0 <= i < len(sequence) and sequence[i][0] != "ceiling":
            i += step
        if 0 <= i < len(sequence):
            c = load("ceiling", sequence[i][1])
            if c and ops(c) > 0:
                found.append(ops(c))
    return sum(found) / len(found) if found else None
print()
print(f"{'scenario':<14} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs ceiling':>10}  {'runs':>4}  notes")
for name, note in rows:
    reports = [r for r in (load(name, run_id) for run_id in run_ids(name)) if r is not None]
    if not reports:
        print(f"{name:<14} {'-':>9}  no result")
        continue
    if name == "ceiling":
        ratios = [1.0]
    else:
        ratios = []
        for index, (n, run_id) in enumerate(sequence):
            r = load(n, run_id) if n == name else None
            ceiling = ceiling_next_to(index) if r else None
            if ceiling:
                ratios.append(ops(r) / ceiling)
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
print("medians of interleaved runs; 'runs' = runs that passed verification; vs ceiling = ops/s / the mean")
print("of the GET /health runs just before and just after it (the ceiling's row: every GET /health run)")

# CPU per request, from the threads' own counters: unlike ops/s it hardly depends on what else
# the box is doing, so it is the figure to compare between builds.
clk_tck = int(sys.argv[4])
def cpu_per_request(name, rep):
    report = load(name, rep)
    try:
        def ticks(path):
            out = {}
            for line in open(path):
                parts = line.split()
                if len(parts) == 2:
                    out[parts[0]] = int(parts[1])
            return out
        before = ticks(f"{results}/{name}-{rep}.cpu-before")
        after = ticks(f"{results}/{name}-{rep}.cpu-after")
        client_us = int(open(f"{results}/{name}-{rep}.cpu-client").read())
    except (OSError, ValueError):
        return None
    if report is None:
        return None
    requests = sum(int(p.get("requests", 0)) for p in report["phases"].values())
    if requests <= 0:
        return None
    threads = {n: (after[n] - before.get(n, 0)) * 1e6 / clk_tck / requests for n in after}
    return threads, client_us / requests
names = ["wallex-http", "wallex-writer", "wallex-sync", "wallex-project", "wallex-checkpt",
         "wallex-readckpt"]
print()
print("CPU per request in µs (all phases of a run: create, operations, read-back; medians)")
print(f"{'scenario':<14} {'server':>7} {'client':>7}  " + " ".join(f"{n[7:]:>8}" for n in names)
      + f" {'by CPU':>7}")
ceiling_cpu = None
for name, _ in rows:
    measured = [m for m in (cpu_per_request(name, run_id) for run_id in run_ids(name)) if m]
    if not measured:
        continue
    med = statistics.median
    server = med(sum(t.values()) for t, _ in measured)
    client = med(c for _, c in measured)
    per_thread = " ".join(f"{med(t.get(n, 0.0) for t, _ in measured):>8.1f}" for n in names)
    if name == "ceiling":
        ceiling_cpu = server + client
    by_cpu = f"{ceiling_cpu / (server + client):>7.0%}" if ceiling_cpu and server + client > 0 else ""
    print(f"{name:<14} {server:>7.1f} {client:>7.1f}  {per_thread} {by_cpu}")
print("by CPU = the ceiling's CPU per request (server + client) / the scenario's: the ratio to the")
print("ceiling a box whose cores were equally busy in both would show; a guide, not the target")
PY
echo "bench: results in $results"
exit "$failed"
