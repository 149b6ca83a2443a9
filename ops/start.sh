#!/usr/bin/env bash
# Starts the whole system on this machine: services, release build, migrations, the simulated
# Shopify shop, the API and a worker, then a demo producer that enqueues sample jobs and prints
# their progress. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
./ops/dev-services.sh
cargo build --release -p cowans-worker -p cowans-api -p cowans-shopsim
export COWANS__DATABASE__URL="${COWANS__DATABASE__URL:-postgres://postgres@127.0.0.1:5432/cowans}"
# The applications to run (their job kinds, tables and queues); the demo until the catalog lands.
export COWANS__APPS="${COWANS__APPS:-demo}"
bin=target/release
logs=target/cowans-logs
mkdir -p "$logs"
$bin/cowans-worker migrate
pids=()
cleanup() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
$bin/cowans-shopsim --listen 127.0.0.1:8090 --products 1000 --variants 3 --plan standard \
  >"$logs/shopsim.log" 2>&1 & pids+=($!)
$bin/cowans-api --listen 127.0.0.1:8080 >"$logs/api.log" 2>&1 & pids+=($!)
$bin/cowans-worker run --concurrency 20 --ops-listen 127.0.0.1:9464 \
  >"$logs/worker.log" 2>&1 & pids+=($!)
sleep 1
cat <<INFO

  Cowans is running.
    API health ........ http://127.0.0.1:8080/health   (readiness: /ready)
    API ............... http://127.0.0.1:8080/api/v1/openapi.json
                        (a key: $bin/cowans-api keys create --name me --role operator)
    live events ....... http://127.0.0.1:8080/api/v1/events (SSE), ws://127.0.0.1:8080/api/v1/events/ws
    API metrics ....... http://127.0.0.1:8080/metrics   (requests, latency, queue gauges)
    worker metrics .... http://127.0.0.1:9464/metrics
    database .......... ${COWANS__DATABASE__URL}
    simulated shop .... http://127.0.0.1:8090/admin/api/2026-10/graphql.json
                        (token shpat_sim; control API http://127.0.0.1:8090/__sim/requests)
    logs .............. $logs/api.log, $logs/worker.log, $logs/shopsim.log

INFO
$bin/cowans-worker demo --queue default --jobs 2000
echo "demo finished; the API and the worker keep running. Ctrl-C to stop."
wait
