#!/usr/bin/env bash
# Installs the manifest validators ops/k8s/validate.sh runs, when missing: kubernetes-validate
# (PyPI, in a venv under target/tools) and the KEDA schema checker's packages (npm, from the
# lock file). Idempotent.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
tools="$repo/target/tools/k8s-validate"
if [ ! -x "$tools/bin/kubernetes-validate" ]; then
  command -v python3 >/dev/null || { echo "k8s validate: python3 is missing" >&2; exit 1; }
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q "kubernetes-validate==1.37.0"
fi
if [ ! -d "$repo/ops/k8s/validate/node_modules" ]; then
  command -v npm >/dev/null || { echo "k8s validate: npm is missing (apt-get install nodejs npm)" >&2; exit 1; }
  (cd "$repo/ops/k8s/validate" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
