#!/usr/bin/env bash
# Runs the crash and disk-fault tests against a built binary and the fault-injecting shim.
# Usage: tests/crash/run.sh path/to/wallex path/to/libwallex_fault_shim.so [unittest args...]
# Environment: WALLEX_CRASH_SEED, WALLEX_CRASH_KILLS (long variant), WALLEX_CRASH_KEEP; see
# test_crash.py.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 path/to/wallex path/to/libwallex_fault_shim.so [unittest args...]" >&2
  exit 2
fi
WALLEX_BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
WALLEX_FAULT_SHIM="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
export WALLEX_BIN WALLEX_FAULT_SHIM
shift 2
for f in "$WALLEX_BIN" "$WALLEX_FAULT_SHIM"; do
  if [[ ! -f "$f" ]]; then
    echo "error: $f does not exist" >&2
    exit 2
  fi
done

cd "$(dirname "${BASH_SOURCE[0]}")"
if [[ $# -gt 0 ]]; then
  exec python3 -u -m unittest -v "$@"
fi
exec python3 -u -m unittest -v test_auditor test_crash test_disk_faults
