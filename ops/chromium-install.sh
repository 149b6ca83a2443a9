#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver (the web console's browser tests drive them, and
# the operations test captures the README's console screenshot with them) when missing.
# Idempotent.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_root apt-get update -q
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver
chromedriver --version
