#!/usr/bin/env bash
# Runs the benchmark matrix of the README: every workload on our engine and on apalis-postgres,
# one after the other on this machine. Prints the RESULT lines (and saves them to $OUT if set).
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo build --release -p cowans-bench
bench=target/release/cowans-bench
out="${OUT:-/dev/null}"
run() { "$bench" "$@" | tee -a "$out"; }
for backend in ${BACKENDS:-postgres apalis-postgres}; do
  run enqueue-single --backend "$backend" --jobs 20000 --concurrency 50
  run enqueue-bulk --backend "$backend" --jobs 500000 --concurrency 2 --batch 10000
  run drain --backend "$backend" --jobs 100000 --concurrency 50
  run latency --backend "$backend" --rate 500 --seconds 10 --concurrency 50
  run backlog --backend "$backend" --concurrency 50
done
# Engine-control features on our engine only (apalis-postgres has neither): the same drain with
# a unique key on every job, and under a fleet-wide concurrency limit equal to the concurrency.
if [[ " ${BACKENDS:-postgres apalis-postgres} " == *" postgres "* ]]; then
  run drain-unique --backend postgres --jobs 100000 --concurrency 50
  run drain-limited --backend postgres --jobs 100000 --concurrency 50
fi
# The HTTP API (our engine only): single submits from 50 clients, group commit off (baseline,
# a fifth of the jobs) then on; bulk submits as JSON arrays and as NDJSON streams.
if [[ " ${BACKENDS:-postgres apalis-postgres} " == *" postgres "* ]]; then
  run api-submit --jobs 100000 --concurrency 50
  run api-bulk --jobs 500000 --batch 10000 --concurrency 2
  run api-bulk --jobs 500000 --batch 100000 --concurrency 2 --ndjson
fi
