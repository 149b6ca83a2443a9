#!/usr/bin/env bash
# Starts the whole system on this machine: services, release build, migrations, a simulated
# Shopify shop of 10,000 products, the API and a worker, registers the shop (its token sealed
# under a development key kept in target/), then pulls its whole catalog and prints progress.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
./ops/dev-services.sh
cargo build --release -p cowans-worker -p cowans-api -p cowans-shopsim
export COWANS__DATABASE__URL="${COWANS__DATABASE__URL:-postgres://postgres@127.0.0.1:5432/cowans}"
# The applications to run (their job kinds, tables and queues).
export COWANS__APPS="${COWANS__APPS:-catalog,demo}"
bin=target/release
logs=target/cowans-logs
mkdir -p "$logs"
# Shop secrets are sealed at rest under this key: made once, kept out of the repository.
keyfile=target/cowans-dev-secret-key
if [[ ! -s $keyfile ]]; then
  (umask 077; head -c 32 /dev/urandom | base64 >"$keyfile")
fi
export COWANS__CATALOG__SECRET_KEYS__DEV="${COWANS__CATALOG__SECRET_KEYS__DEV:-$(cat "$keyfile")}"
# The simulated shop's webhooks come back to the API (shops added are subscribed).
export COWANS__CATALOG__WEBHOOK_URL="${COWANS__CATALOG__WEBHOOK_URL:-http://127.0.0.1:8080/webhooks/shopify}"
products="${COWANS_SIM_PRODUCTS:-10000}"
$bin/cowans-worker migrate
pids=()
cleanup() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
$bin/cowans-shopsim --listen 127.0.0.1:8090 --products "$products" --variants 3 --plan standard \
  >"$logs/shopsim.log" 2>&1 & pids+=($!)
$bin/cowans-api --listen 127.0.0.1:8080 >"$logs/api.log" 2>&1 & pids+=($!)
$bin/cowans-worker run --concurrency 20 --ops-listen 127.0.0.1:9464 \
  >"$logs/worker.log" 2>&1 & pids+=($!)
sleep 1
# The simulated shop, registered once (its token on standard input, never on the command line;
# its webhook secret is the simulator's app secret).
if ! $bin/cowans-api shops list | grep -q ' sim '; then
  echo shpat_sim | COWANS_SHOP_WEBHOOK_SECRET=sim-secret $bin/cowans-api shops add --name sim \
    --domain cowans-sim.myshopify.com --admin-url http://127.0.0.1:8090
fi
cat <<INFO

  Cowans is running.
    API health ........ http://127.0.0.1:8080/health   (readiness: /ready)
    API ............... http://127.0.0.1:8080/api/v1/openapi.json
                        (a key: $bin/cowans-api keys create --name me --role operator)
    console ........... http://127.0.0.1:8080/console   (sign in with an API key, as below)
    catalog ........... http://127.0.0.1:8080/api/v1/shops/sim/products
    staged changes .... http://127.0.0.1:8080/api/v1/shops/sim/changes
                        (propose: PATCH /api/v1/shops/sim/products/<id> {"title": "…"};
                        review: POST /api/v1/shops/sim/changes/approve {"ids": [..]} — then pushed)
    live events ....... http://127.0.0.1:8080/api/v1/events (SSE), ws://127.0.0.1:8080/api/v1/events/ws
    API metrics ....... http://127.0.0.1:8080/metrics   (requests, latency, queue gauges)
    worker metrics .... http://127.0.0.1:9464/metrics
    Prometheus ........ prometheus --config.file=ops/prometheus/prometheus.yml \
                          --storage.tsdb.path=$logs/prometheus --web.listen-address=127.0.0.1:9090 \
                          --web.console.templates=ops/prometheus/consoles \
                          --web.console.libraries=/usr/share/doc/prometheus/examples/console_libraries
                        (scrapes both; recording and alert rules; runbooks in ops/runbooks/;
                        queues console: http://127.0.0.1:9090/consoles/cowans-queues.html;
                        ./ops/prometheus/install.sh installs it)
INFO
if command -v grafana >/dev/null 2>&1 || command -v grafana-server >/dev/null 2>&1; then
cat <<INFO
    Grafana ........... COWANS_PROMETHEUS_URL=http://127.0.0.1:9090 COWANS_DASHBOARDS=$PWD/ops/grafana/dashboards \
                          grafana server --homepath /usr/share/grafana cfg:paths.provisioning=$PWD/ops/grafana/provisioning
                        (five dashboards in the folder "Cowans"; see ops/grafana/README.md)
INFO
else
cat <<INFO
    Grafana ........... not installed (not a Debian package): ops/grafana/README.md says how to load
                        the five provisioned dashboards once it is
INFO
fi
cat <<INFO
    database .......... ${COWANS__DATABASE__URL}
    simulated shop .... http://127.0.0.1:8090/admin/api/2026-10/graphql.json
                        ($products products; control API http://127.0.0.1:8090/__sim/requests;
                        a merchant edit: curl -XPOST -d '{"title":"New"}' -H 'Content-Type: application/json' \
                          http://127.0.0.1:8090/__sim/products/<id>/edit — it arrives by webhook)
    logs .............. $logs/api.log, $logs/worker.log, $logs/shopsim.log

  Pulling the simulated shop's catalog:
INFO
$bin/cowans-api shops pull sim --follow
$bin/cowans-api shops list
echo "pull finished; the API and the worker keep running. Ctrl-C to stop."
wait
