#!/usr/bin/env bash
# Validates the Kubernetes manifests of a directory (default ops/k8s) against the Kubernetes
# schemas, strictly (kubernetes-validate from PyPI: unknown fields are errors), for the oldest
# and the newest Kubernetes we support, and keda.yaml against KEDA's ScaledObject schema
# (ops/k8s/validate, from npm); ops/k8s/validate/install.sh installs both when missing.
# Exits non-zero naming every problem.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$(cd "${1:-$repo/ops/k8s}" && pwd)"
tools="$repo/target/tools/k8s-validate"
"$repo/ops/k8s/validate/install.sh"
core=()
for f in "$dir"/*.yaml; do
  case "$(basename "$f")" in
    keda.yaml | kustomization.yaml) ;;
    *) core+=("$f") ;;
  esac
done
status=0
for version in 1.29.0 1.37.0; do
  if ! out=$("$tools/bin/kubernetes-validate" --strict -k "$version" "${core[@]}" 2>&1); then status=1; fi
  echo "$out"
  # An unknown kind is only a warning to the tool; here every document must be checked.
  if grep -qE '^(WARN|ERROR)' <<<"$out"; then status=1; fi
done
node "$repo/ops/k8s/validate/keda.mjs" "$dir/keda.yaml" || status=1
# The kustomization names files that exist.
for r in $(sed -n 's/^  - \(.*\.yaml\)$/\1/p' "$dir/kustomization.yaml"); do
  [ -f "$dir/$r" ] || { echo "ERROR kustomization.yaml names $r, which does not exist"; status=1; }
done
exit "$status"
