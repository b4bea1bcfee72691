#!/usr/bin/env bash
# Smoke test of wallex-bench: starts a real server on a free loopback port with a fresh data
# directory, runs a few hundred verified operations in each load mode, and stops the server
# with SIGTERM, which must exit 0.
# Usage: smoke.sh <wallex-binary> <wallex-bench-binary>
set -euo pipefail

wallex=$1
bench=$2
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"

"$wallex" serve --host 127.0.0.1 --port "$port" --data-dir "$work/data" 2>"$work/server.log" &
pid=$!

for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null "$url/health" 2>/dev/null; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "smoke: the server exited during start-up" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
curl -fsS -o /dev/null "$url/health"

run() {
  echo "smoke: wallex-bench $*"
  if ! "$bench" --url "$url" --quiet "$@"; then
    echo "smoke: wallex-bench failed: $*" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
}

# The original scenario, closed loop, with a JSON report that must say it passed.
run --wallets 50 --operations 500 --workers 8 --seed 7 --json "$work/report.json"
grep -q '"passed":true' "$work/report.json"
# Open loop, zipfian, reads mixed in, two client threads.
run --scenario mixed --distribution zipfian --wallets 20 --rate 1000 --duration 0.3 --workers 8 --threads 2
# One hot wallet in every transfer, closed loop for a fixed time.
run --scenario transfer --distribution hot --wallets 20 --duration 0.3 --workers 8
# The HTTP ceiling scenario (nothing to verify but the statuses).
run --scenario health --duration 0.2 --workers 4

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
if [ "$status" -ne 0 ]; then
  echo "smoke: the server exited with $status after SIGTERM" >&2
  cat "$work/server.log" >&2
  exit 1
fi
# Under a sanitizer build a report also fails the run (belt and braces: the sanitizers' own exit
# code already makes the status above non-zero).
if grep -qE 'WARNING: ThreadSanitizer|ERROR: (Address|Leak)Sanitizer|runtime error:' "$work/server.log"; then
  echo "smoke: sanitizer report in the server's stderr" >&2
  cat "$work/server.log" >&2
  exit 1
fi
echo "smoke: passed"
