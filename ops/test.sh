#!/usr/bin/env bash
# The whole test suite: starts (or installs) Postgres and Redis, builds every binary the
# black-box tests spawn, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
./ops/dev-services.sh
# The schema fuzzer the contract test runs (from PyPI).
./ops/schemathesis/install.sh
# promtool and Prometheus for the rule tests and the live dashboard/alert test (Debian's
# prometheus package).
./ops/prometheus/install.sh
# The Kubernetes and KEDA schema validators the deployment test runs (PyPI and npm).
./ops/k8s/validate/install.sh
# Chromium and ChromeDriver for the web console's browser tests (Debian's packages).
./ops/chromium-install.sh
export COWANS_TEST_DATABASE_URL="${COWANS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --profile ci
else
  cargo test --workspace
fi
