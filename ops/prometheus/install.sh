#!/usr/bin/env bash
# Installs Debian's Prometheus (promtool runs the rule tests; prometheus is what
# ./ops/start.sh tells you to start) when missing. Idempotent; it does not start the packaged service.
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_root apt-get update -q
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
promtool --version | head -n 1
