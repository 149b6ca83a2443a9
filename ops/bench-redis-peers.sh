#!/usr/bin/env bash
# Cowans on Redis against BullMQ on this machine, alternating in one invocation so that both
# see the same load (no-op jobs, one worker process, the local Redis): drain of 100,000 queued
# at concurrency 50, bulk enqueue of 50,000 in calls of 1,000, single enqueues from 10 callers,
# enqueue -> start latency at 500 jobs/s for 20 s; and our drain with 1,000,000 queued against
# 10,000 queued. Prints each run's RESULT line, then one ratio line per workload from the
# medians of the rounds.
#
#   ./ops/bench-redis-peers.sh [rounds]        (default 2; needs a release build and npm)
#
# PEER_DIR: the BullMQ harness (default ../shared/bench/bullmq, installed with `npm install`
# when its node_modules is missing). BullMQ uses Redis db 6 and FLUSHDBs it; ours uses a fresh
# key prefix per run in db 0 (REDIS_URL to change) and deletes it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
peer_dir="${PEER_DIR:-../shared/bench/bullmq}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
bench=./target/release/cowans-bench

[ -x "$bench" ] || cargo build --release --bins
command -v node >/dev/null || { echo "bench-redis-peers: node is not installed (apt-get install nodejs npm)" >&2; exit 1; }
[ -d "$peer_dir/node_modules" ] || (cd "$peer_dir" && npm install --no-audit --no-fund >/dev/null)
export NODE_PATH="$(cd "$peer_dir" && pwd)/node_modules"

. ops/bench-lib.sh
for r in $(seq 1 "$rounds"); do
  run "cowans drain" $bench drain --backend redis --jobs 100000 --concurrency 50
  run "bullmq drain" node "$peer_dir/bench.js" drain 100000 50
  run "cowans enqueue-bulk" $bench enqueue-bulk --backend redis --jobs 50000 --batch 1000 --concurrency 1
  run "bullmq enqueue-bulk" node "$peer_dir/bench.js" enqueue-bulk 50000
  run "cowans enqueue-single" $bench enqueue-single --backend redis --jobs 50000 --concurrency 10
  run "bullmq enqueue-single" node ops/peers/bullmq-enqueue-callers.js 50000 10
  # Ours offered open (each job at its time, however slow the adds before it), BullMQ's harness
  # closed (one add at a time): the stricter measure is ours (README, "against graphile-worker").
  run "cowans latency" $bench latency --backend redis --rate 500 --seconds 20 --concurrency 10
  run "bullmq latency" node "$peer_dir/bench.js" latency 0 10 500 20
  # Two RESULT lines: the drain with 10,000 queued, then with 1,000,000 queued.
  $bench backlog --backend redis --concurrency 50 2>&1 | grep '^RESULT' | sed 's/^/cowans backlog /' | tee -a "$out"
done

echo
for w in drain enqueue-bulk enqueue-single; do
  c=$(median cowans "$w" jobs_per_s); b=$(median bullmq "$w" jobs_per_s)
  echo "RATIO workload=$w cowans_jobs_per_s=$c bullmq_jobs_per_s=$b cowans_over_bullmq=$(ratio "$c" "$b") rounds=$rounds"
done
c50=$(median cowans latency p50_ms); b50=$(median bullmq latency p50_ms)
c99=$(median cowans latency p99_ms); b99=$(median bullmq latency p99_ms)
echo "RATIO workload=latency cowans_p50_ms=$c50 bullmq_p50_ms=$b50 cowans_p99_ms=$c99 bullmq_p99_ms=$b99 p99_cowans_over_bullmq=$(ratio "$c99" "$b99") rounds=$rounds"
b10k=$(median cowans backlog-10000 jobs_per_s); b1m=$(median cowans backlog-1000000 jobs_per_s)
echo "RATIO workload=backlog cowans_10k_queued_jobs_per_s=$b10k cowans_1m_queued_jobs_per_s=$b1m one_million_over_10k=$(ratio "$b1m" "$b10k") rounds=$rounds"
