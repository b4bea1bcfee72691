#!/usr/bin/env bash
# Runs CMD with a throwaway PostgreSQL cluster: starts one in a temporary directory, exports
# WALLEX_PG_URL (postgresql://postgres@127.0.0.1:PORT/postgres), runs CMD, always stops and
# removes the cluster, and exits with CMD's exit code. If the cluster cannot start, exits 1
# without running CMD (tests that need PostgreSQL fail, they are never skipped).
#
#   scripts/with-pg.sh build/release/bin/store_tests --gtest_filter='Postgres*'
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/wallex-pg-XXXXXX")
trap '"$here/pg-cluster.sh" stop "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! url=$("$here/pg-cluster.sh" start "$dir"); then
  echo "with-pg: could not start PostgreSQL (see above)" >&2
  exit 1
fi
export WALLEX_PG_URL=$url
echo "with-pg: PostgreSQL at $url" >&2
status=0
"$@" || status=$?
exit $status
