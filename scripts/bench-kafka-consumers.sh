#!/usr/bin/env bash
# The consumer-group projectors' figure in BENCHMARKS.md ("Consumer-group projectors"); builds
# nothing. A fresh `wallex dev-kafka` (3 brokers) is filled by kcat with WALLETS WalletCreated
# messages and CREDITS WalletCredited per wallet, in the format of docs/kafka-format.md (one
# key per wallet, murmur2). Then, ROUNDS times and interleaved, one `wallex project` member of a
# fresh group per projector set reads them all into a fresh read store; its last log line gives
# events / (first message polled → last commit), which leaves out the mock's 3 s group join.
# Keep WALLETS × (CREDITS + 1) ≤ ~100,000: the mock drops a partition's oldest messages past a
# few MB, and a store cannot be built from a topic that lost its head.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
source "$root/scripts/bench-lib.sh"
wallex=${WALLEX_BIN:-$root/build/release/bin/wallex}
wallets=${WALLETS:-1000}
credits=${CREDITS:-100}
rounds=${ROUNDS:-3}
tmp=$(mktemp -d)
kafka_pid=
cleanup() {
  [ -n "$kafka_pid" ] && kill -TERM "$kafka_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

"$wallex" dev-kafka --brokers 3 > "$tmp/bootstrap" 2> /dev/null &
kafka_pid=$!
wait_for_bootstrap "$tmp/bootstrap" "$kafka_pid" bench-kafka-consumers
bootstrap=$(head -1 "$tmp/bootstrap")

python3 - "$wallets" "$credits" > "$tmp/messages" <<'PY'
import json, sys
wallets, credits = int(sys.argv[1]), int(sys.argv[2])
position = 0
def emit(wallet, kind, version, payload):
    global position
    position += 1
    at = "2026-11-26T04:00:00.000Z"
    value = {"id": f"bench-{position}", "position": position, "aggregateId": wallet,
             "eventType": kind, "eventVersion": version, "payload": payload,
             "metadata": {"occurredAt": at, "correlationId": f"c{position}",
                          "causationId": None, "position": position},
             "createdAt": at}
    sys.stdout.write(wallet + "\t" + json.dumps(value, separators=(",", ":")) + "\n")
for i in range(wallets):
    emit(f"bench-{i}", "WalletCreated", 0, {"ownerId": f"owner-{i % 7}"})
for c in range(credits):
    for i in range(wallets):
        emit(f"bench-{i}", "WalletCredited", c + 1, {"amount": "1.25", "description": f"credit {c}"})
PY
kcat -P -b "$bootstrap" -t wallet-events -K $'\t' -X partitioner=murmur2_random \
  -X enable.idempotence=true -X acks=all -l "$tmp/messages"
echo "$(wc -l < "$tmp/messages") messages on wallet-events"

for round in $(seq 1 "$rounds"); do
  for set in ledger "readModel walletEvents"; do
    rm -f "$tmp"/store.db*
    args=()
    for p in $set; do args+=(--projectors "$p"); done
    "$wallex" project --source kafka --group "bench-$round-${set%% *}" "${args[@]}" \
      --read-db "$tmp/store.db" --kafka-brokers "$bootstrap" \
      --kafka-config session.timeout.ms=4000 --kafka-config heartbeat.interval.ms=300 \
      --idle-exit-ms 2000 2>&1 | grep 'stopped after' | sed "s/^/round $round [$set] /"
  done
done
uptime
