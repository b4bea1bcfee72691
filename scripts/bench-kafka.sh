#!/usr/bin/env bash
# The Kafka relay's figures in BENCHMARKS.md ("The Kafka relay"); builds nothing.
#
# 1. live:     wallex dev-kafka (3 brokers) + wallex serve --kafka-brokers on a fresh data dir;
#              wallex-bench transfer, closed loop, BENCH_WORKERS connections, BENCH_DURATION s,
#              then the relay's decide-to-ack lag (GET /health/kafka/stats ackLagMs) once the
#              backlog is 0, and the same bench on a server without Kafka (the baseline).
# 2. catch-up: the live run's data dir served again with a fresh mock cluster and relay.db
#              removed: the whole log is published from position 0; events/s until backlog 0.
# Prints the figures; the server logs stay in build/bench-kafka/<time>/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
source "$root/scripts/bench-lib.sh"
wallex=${WALLEX_BIN:-$root/build/release/bin/wallex}
bench=${WALLEX_BENCH_BIN:-$root/build/release/bin/wallex-bench}
duration=${BENCH_DURATION:-10}
workers=${BENCH_WORKERS:-64}
results="$root/build/bench-kafka/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$results"
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }

start_kafka() {  # sets bootstrap and kafka_pid
  mkfifo "$tmp/kafka-in-$1"
  "$wallex" dev-kafka --brokers 3 <"$tmp/kafka-in-$1" >"$tmp/kafka-$1.out" 2>"$results/kafka-$1.log" &
  kafka_pid=$!
  pids+=("$kafka_pid")
  exec {keep}>"$tmp/kafka-in-$1"  # keeps its stdin open
  wait_for_bootstrap "$tmp/kafka-$1.out" "$kafka_pid" bench-kafka
  bootstrap=$(head -1 "$tmp/kafka-$1.out")
}

start_server() {  # <name> <data dir> [serve args...]; sets url and server_pid
  local name=$1 dir=$2
  shift 2
  local port
  port=$(free_port)
  url="http://127.0.0.1:$port"
  "$wallex" serve --host 127.0.0.1 --port "$port" --data-dir "$dir" "$@" 2>"$results/$name.log" &
  server_pid=$!
  pids+=("$server_pid")
  wait_for_server "$url" "$server_pid" "$results/$name.log" "bench-kafka $name"
}

stop_server() { kill -TERM "$server_pid"; wait "$server_pid" || true; }

wait_backlog_zero() {  # prints the stats JSON once the backlog is 0
  local stats
  for _ in $(seq 1 1200); do
    stats=$(curl -fsS "$url/health/kafka/stats")
    if [ "$(echo "$stats" | field "['backlog']")" = 0 ] &&
       [ "$(echo "$stats" | field "['headPosition']")" != 0 ]; then echo "$stats"; return; fi
    sleep 0.1
  done
  echo "bench-kafka: the backlog did not drain" >&2
  exit 1
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"

# 1. Baseline without Kafka, then the same with the relay.
mkdir "$tmp/base"
start_server base "$tmp/base"
"$bench" --url "$url" --scenario transfer --duration "$duration" --workers "$workers" --quiet \
  --json "$results/base.json" | tail -4
echo "base CPU seconds: server $(cpu_seconds "$server_pid")"
stop_server

start_kafka live
mkdir "$tmp/live"
start_server live "$tmp/live" --kafka-brokers "$bootstrap"
"$bench" --url "$url" --scenario transfer --duration "$duration" --workers "$workers" --quiet \
  --json "$results/live.json" | tail -4
stats=$(wait_backlog_zero)
echo "live relay: $stats"
echo "live CPU seconds: server $(cpu_seconds "$server_pid"), mock cluster (dev-kafka) $(cpu_seconds "$kafka_pid")"
stop_server

# 2. Catch-up of the whole log from position 0 into an empty topic.
kill -TERM "$kafka_pid"
start_kafka catchup
rm -f "$tmp/live/relay.db" "$tmp/live/relay.db-wal" "$tmp/live/relay.db-shm"
started=$(date +%s%N)
start_server catchup "$tmp/live" --kafka-brokers "$bootstrap"
stats=$(wait_backlog_zero)
elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))
events=$(echo "$stats" | field "['publishedPosition']")
echo "catch-up: $events events in $elapsed_ms ms (server start included) = $(( events * 1000 / elapsed_ms )) events/s"
echo "catch-up relay: $stats"
stop_server

python3 - "$results" <<'PY'
import json, sys
for name in ("base", "live"):
    report = json.load(open(f"{sys.argv[1]}/{name}.json"))
    ops = report["phases"]["operations"]
    latency = ops["latencyUs"]["all"]
    print(f"{name:5} transfers: {ops['requestsPerSecond']:.0f}/s, p50 {latency['p50'] / 1000:.1f} ms, "
          f"p99 {latency['p99'] / 1000:.1f} ms, verified: {report['passed']}")
PY
