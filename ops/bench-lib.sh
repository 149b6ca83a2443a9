# Shared by the peer benchmark scripts (sourced, not run): each run's RESULT line is kept in
# "$out" under a label, and the ratio lines are computed from medians of those.

out=$(mktemp)
trap 'rm -f "$out"' EXIT

run() { # label, command...
  local label=$1; shift
  local line
  line=$("$@" 2>&1 | grep '^RESULT' | tail -1)
  echo "$label $line" | tee -a "$out"
}

# Median of field $3 over the lines of system $1 and workload $2.
median() {
  grep "^$1 $2 " "$out" | grep -oE "(^| )$3=[0-9.]+" | cut -d= -f2 | sort -g \
    | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b+0 == 0) print "nan"; else printf "%.2f", a/b }'; }
