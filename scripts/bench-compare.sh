#!/usr/bin/env bash
# Speed of this checkout against another commit, side by side on the same machine:
# builds both (Release), then alternates their `sqair bench train` runs (old-new, new-old, …) so that
# both see the same machine state, and prints iterations/s (median over rounds) and the ratio new/old.
#
#   scripts/bench-compare.sh [REF] [ROUNDS] [SEQ_LENS]     defaults: d9e40bb 3 "3 10"
#   EXTRA="--shards 1" scripts/bench-compare.sh            options for the new build only
#
# Run it on an otherwise idle machine: a build or test run alongside changes the result.
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:-d9e40bb}
rounds=${2:-3}
lens=${3:-"3 10"}
work=$(mktemp -d /tmp/sqair-bench-XXXXXX)
trap 'git worktree remove --force "$work/old" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

echo "building $ref and $(git rev-parse --short HEAD) (working tree) ..."
git worktree add --detach "$work/old" "$ref" >/dev/null 2>&1
dotnet build -c Release "$work/old/src/Sqair.Cli" -o "$work/old-bin" >/dev/null
dotnet build -c Release src/Sqair.Cli -o "$work/new-bin" >/dev/null

field() { grep -oE "\"$2\": *[0-9.]+" "$1" | grep -oE '[0-9.]+$'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

printf '%-4s %-9s %-9s %-6s %-8s %-10s %-10s %-7s %-7s\n' T "old it/s" "new it/s" ratio "GFLOP/it" "old GFLOP/s" "new GFLOP/s" "old MB" "new MB"
# The option naming the timed length: --timed-len since it was renamed, --seq-len before.
len_flag() { if "$1" bench train --help | grep -q -- --timed-len; then echo --timed-len; else echo --seq-len; fi; }

# One timed run of each build at length $t for $iters iterations (set by the loop below).
run_old() {
  "$work/old-bin/sqair" bench train --preset paper --synthetic "$(len_flag "$work/old-bin/sqair")" "$t" --iterations "$iters" --json "$work/o.json" >/dev/null
  field "$work/o.json" IterationsPerSecond >> "$work/old-$t"; field "$work/o.json" PeakRssMb >> "$work/old-mb-$t"
}
run_new() {
  # shellcheck disable=SC2086
  "$work/new-bin/sqair" bench train --preset paper --synthetic "$(len_flag "$work/new-bin/sqair")" "$t" --iterations "$iters" --json "$work/n.json" ${EXTRA:-} >/dev/null
  field "$work/n.json" IterationsPerSecond >> "$work/new-$t"; field "$work/n.json" PeakRssMb >> "$work/new-mb-$t"
}

for t in $lens; do
  iters=$(( t <= 3 ? 20 : 8 ))
  : > "$work/old-$t"; : > "$work/new-$t"; : > "$work/old-mb-$t"; : > "$work/new-mb-$t"
  # Old first in odd rounds, new first in even ones: a machine whose speed drifts within a round then
  # favours neither (one build's runs spread by ±12 % within minutes here; docs/performance.md).
  for r in $(seq "$rounds"); do
    if (( r % 2 )); then run_old; run_new; else run_new; run_old; fi
  done
  old=$(median < "$work/old-$t"); new=$(median < "$work/new-$t")
  # GFLOP per iteration: the essential arithmetic of the layers (forward + 2 × forward for backward) by
  # the new count, for both; the old commit's own count missed some layers and doubled others
  gflop=$(awk -v f="$(field "$work/n.json" ForwardGflops)" 'BEGIN {print 3 * f}')
  printf '%-4s %-9.3f %-9.3f %-6.2f %-8.2f %-10.1f %-10.1f %-7.0f %-7.0f\n' "$t" "$old" "$new" "$(awk -v a="$new" -v b="$old" 'BEGIN {print a / b}')" \
    "$gflop" "$(awk -v g="$gflop" -v i="$old" 'BEGIN {print g * i}')" "$(awk -v g="$gflop" -v i="$new" 'BEGIN {print g * i}')" \
    "$(sort -g "$work/old-mb-$t" | tail -1)" "$(sort -g "$work/new-mb-$t" | tail -1)"
  echo "     rounds, old: $(tr '\n' ' ' < "$work/old-$t")"
  echo "     rounds, new: $(tr '\n' ' ' < "$work/new-$t")"
done
