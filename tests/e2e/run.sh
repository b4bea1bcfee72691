#!/usr/bin/env bash
# Runs the Wallex end-to-end suite against a built binary.
# Usage: tests/e2e/run.sh path/to/wallex [extra unittest args]
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 path/to/wallex [unittest args...]" >&2
  exit 2
fi

WALLEX_BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
export WALLEX_BIN
shift

if [[ ! -x "$WALLEX_BIN" ]]; then
  echo "error: $WALLEX_BIN is not an executable file" >&2
  exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")"
exec python3 -m unittest -v "$@" test_e2e test_concurrency test_read_side test_hostile
