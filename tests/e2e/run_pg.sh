#!/usr/bin/env bash
# Runs the end-to-end suites of the wallet service and the read side against PostgreSQL: every
# server gets a fresh database on the cluster $WALLEX_PG_URL names (run it through
# scripts/with-pg.sh, which starts one), then the scale-out test (several instances on one
# database) and the relay lease against `wallex dev-kafka` (test_pg_relay).
#
#   scripts/with-pg.sh tests/e2e/run_pg.sh path/to/wallex [unittest args...]
#
# Every end-to-end suite of e2e_tests runs here too (test_hostile, the malformed-HTTP suite, and
# test_kafka, one instance relaying its database's log, `wallex relay --store` included); only
# the consumer-group suite (kafka_consumers_e2e_tests) stays SQLite-only: it compares a
# Kafka-built store with read.db.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 path/to/wallex [unittest args...]" >&2
  exit 2
fi
if [[ -z "${WALLEX_PG_URL:-}" ]]; then
  echo "error: WALLEX_PG_URL is not set (run through scripts/with-pg.sh)" >&2
  exit 1
fi
WALLEX_BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
export WALLEX_BIN
export WALLEX_E2E_STORE=postgresql
shift
cd "$(dirname "${BASH_SOURCE[0]}")"
exec python3 -m unittest -v "$@" test_e2e test_concurrency test_read_side test_hostile test_kafka \
  test_scale_out test_pg_relay
