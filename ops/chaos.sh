#!/usr/bin/env bash
# Reliability under faults with real worker processes: `cowans-bench chaos` (README, Chaos).
# Every scenario by default, or those named: ./ops/chaos.sh --scenarios kill,restart
# Defaults: 100,000 jobs, 3 workers at concurrency 50. Flags pass through (--jobs, --processes,
# --concurrency, --kill-every-ms, --hold-seconds, ...; `cowans-bench --help`); engine
# settings come from COWANS__ENGINE__* variables, as for the worker. Prints one RESULT line per
# scenario (and appends them to $OUT if set). `restart` and `pool` start a throw-away Postgres
# cluster of their own (needs the server binaries: /usr/lib/postgresql/*/bin or PG_BINDIR);
# the other scenarios make (and drop) a database on the server of DATABASE_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo build --release -p cowans-bench -p cowans-worker
target/release/cowans-bench chaos "$@" | tee -a "${OUT:-/dev/null}"
