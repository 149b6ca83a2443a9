#!/usr/bin/env bash
# Cowans against graphile-worker (tuned: localQueue 50, completeJobBatchDelay 0, concurrency
# 10) on this machine, alternating in one invocation so that both see the same load: drain of
# 50,000 queued no-op jobs, bulk enqueue of 200,000 in calls of 1,000, and enqueue -> start
# latency at 500 jobs/s for 20 s (offered closed, as graphile's harness does, and open, with
# ops/peers/graphile-latency-open.js for graphile); and our bulk enqueue in calls of 10,000
# against COPY of the same rows into the same table (the server's ceiling); and the enqueue
# call's own latency against a plain single-row INSERT offered alongside at the same rate. Prints each run's
# RESULT line, then one ratio line per workload from the medians of the rounds.
#
#   ./ops/bench-peers.sh [rounds]        (default 2; needs a release build and npm)
#
# PEER_DIR: the graphile-worker harness (default ../shared/bench/graphile-worker, installed
# with `npm install` when its node_modules is missing). DATABASE_URL: the server (default the
# local one); graphile's own database is bench_graphile on it.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
peer_dir="${PEER_DIR:-../shared/bench/graphile-worker}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
base_url="${DATABASE_URL%/*}"
bench=./target/release/cowans-bench

[ -x "$bench" ] || cargo build --release --bins
command -v node >/dev/null || { echo "bench-peers: node is not installed (apt-get install nodejs npm)" >&2; exit 1; }
[ -d "$peer_dir/node_modules" ] || (cd "$peer_dir" && npm install --no-audit --no-fund >/dev/null)
psql "$base_url/postgres" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'bench_graphile'" | grep -q 1 \
  || psql "$base_url/postgres" -qc "CREATE DATABASE bench_graphile"
export PG_URL="$base_url/bench_graphile"

. ops/bench-lib.sh
for r in $(seq 1 "$rounds"); do
  run "cowans drain" $bench drain --jobs 50000 --concurrency 50
  # graphile-worker deletes finished jobs; ours keeps them an hour unless told otherwise.
  run "cowans drain-deleting" $bench drain --jobs 50000 --concurrency 50 --retain-finished-ms 0
  run "graphile drain" env LOCAL_QUEUE=50 node "$peer_dir/bench.js" drain 50000 10
  run "cowans enqueue-bulk" $bench enqueue-bulk --jobs 200000 --batch 1000 --concurrency 1
  run "graphile enqueue-bulk" env LOCAL_QUEUE=50 node "$peer_dir/bench.js" enqueue-bulk 200000
  # Start latency offered as graphile's harness offers it (closed: one add at a time, the next
  # stamped when it is sent), then offered open (every job at its time, however slow the adds
  # before it: a stall of the server counts once per job it delays) by both.
  run "cowans latency" $bench latency --rate 500 --seconds 20 --concurrency 10 --load closed
  run "graphile latency" env LOCAL_QUEUE=50 node "$peer_dir/bench.js" latency 10000 10 500 20
  run "cowans latency-open" $bench latency --rate 500 --seconds 20 --concurrency 10 --load open
  run "graphile latency-open" env LOCAL_QUEUE=50 NODE_PATH="$(cd "$peer_dir" && pwd)/node_modules" node ops/peers/graphile-latency-open.js 500 20 10
  # The enqueue call against a plain single-row INSERT of the same row shape, both offered at
  # 500/s side by side in one run.
  run "cowans latency-plain" $bench latency --rate 500 --seconds 20 --concurrency 10 --plain-baseline
  # Large calls against the server's own ceiling: COPY of the same rows into the same table.
  # Last in the round: the I/O they leave behind would otherwise land on the latency runs.
  run "cowans enqueue-large" $bench enqueue-bulk --jobs 500000 --batch 10000 --concurrency 1
  run "copy enqueue-large" $bench enqueue-copy --jobs 500000 --batch 10000 --concurrency 1
done

echo
for w in drain enqueue-bulk; do
  c=$(median cowans "$w" jobs_per_s); g=$(median graphile "$w" jobs_per_s)
  echo "RATIO workload=$w cowans_jobs_per_s=$c graphile_jobs_per_s=$g cowans_over_graphile=$(ratio "$c" "$g") rounds=$rounds"
done
c=$(median cowans drain-deleting jobs_per_s); g=$(median graphile drain jobs_per_s)
echo "RATIO workload=drain-deleting cowans_jobs_per_s=$c graphile_jobs_per_s=$g cowans_over_graphile=$(ratio "$c" "$g") rounds=$rounds"
c=$(median cowans enqueue-large jobs_per_s); g=$(median copy enqueue-large jobs_per_s)
echo "RATIO workload=enqueue-large(10000/call) cowans_jobs_per_s=$c copy_rows_per_s=$g cowans_over_copy=$(ratio "$c" "$g") rounds=$rounds"
c50=$(median cowans latency p50_ms); g50=$(median graphile latency p50_ms)
c99=$(median cowans latency p99_ms); g99=$(median graphile latency p99_ms)
echo "RATIO workload=latency(closed) cowans_p50_ms=$c50 graphile_p50_ms=$g50 cowans_p99_ms=$c99 graphile_p99_ms=$g99 p99_cowans_over_graphile=$(ratio "$c99" "$g99") rounds=$rounds"
c50=$(median cowans latency-open p50_ms); g50=$(median graphile latency-open p50_ms)
c99=$(median cowans latency-open p99_ms); g99=$(median graphile latency-open p99_ms)
echo "RATIO workload=latency(open) cowans_p50_ms=$c50 graphile_p50_ms=$g50 cowans_p99_ms=$c99 graphile_p99_ms=$g99 p99_cowans_over_graphile=$(ratio "$c99" "$g99") rounds=$rounds"
e99=$(median cowans latency-plain enqueue_p99_ms); i99=$(median cowans latency-plain plain_insert_p99_ms)
echo "RATIO workload=enqueue-call enqueue_p99_ms=$e99 plain_insert_p99_ms=$i99 enqueue_over_plain_insert=$(ratio "$e99" "$i99") rounds=$rounds"
