#!/usr/bin/env bash
# Installs schemathesis (the schema fuzzer tests/integration/api_fuzz.rs runs) from PyPI into
# target/tools/schemathesis, with Debian's python3-venv when missing. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=4.32.5
venv=target/tools/schemathesis
if [[ -x $venv/bin/st ]] && "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
  exit 0
fi
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version"
"$venv/bin/st" --version
