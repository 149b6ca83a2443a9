#!/usr/bin/env bash
# A/B comparison of two cowans-bench builds (e.g. before and after a change) on this machine, in
# one invocation: runs each workload alternately A, B, A, B, ... ROUNDS times and prints every
# RESULT line plus the median jobs/s of each side and the ratio B/A. Only same-run ratios are
# evidence on a shared, noisy machine.
#
#   ops/bench-ab.sh OLD/cowans-bench NEW/cowans-bench "drain --jobs 100000 --concurrency 50" \
#       "api-submit --jobs 100000 --concurrency 50"
#
# Build the old side from a worktree: git worktree add /tmp/old <commit> &&
# (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old/target cargo build --release -p cowans-bench).
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 A_BIN B_BIN 'workload args' ['workload args' ...]" >&2
  exit 2
fi
a=$1 b=$2
shift 2
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
rounds="${ROUNDS:-3}"
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
for workload in "$@"; do
  : >/tmp/bench-ab.a
  : >/tmp/bench-ab.b
  for ((i = 1; i <= rounds; i++)); do
    for side in a b; do
      bin=${!side}
      # shellcheck disable=SC2086 # the workload string is split into its arguments on purpose
      line=$("$bin" $workload | grep '^RESULT' | tail -n 1)
      echo "$side round $i: $line"
      sed -n 's/.*jobs_per_s=\([0-9.]*\).*/\1/p' <<<"$line" >>"/tmp/bench-ab.$side"
    done
  done
  ma=$(median </tmp/bench-ab.a)
  mb=$(median </tmp/bench-ab.b)
  printf 'SUMMARY %s: A median %s jobs/s, B median %s jobs/s, B/A %.3f\n' \
    "$workload" "$ma" "$mb" "$(awk -v a="$ma" -v b="$mb" 'BEGIN {print b / a}')"
done
