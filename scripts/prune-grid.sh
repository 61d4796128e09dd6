#!/usr/bin/env bash
# The grid of docs/notes/tracking-history.md, "Ending objects": one `sqair eval` per (--end-empty,
# --suppress-iou) setting, each on one libtorch thread, its JSON report in OUT/eE-sS.json; a setting whose report exists is skipped,
# so a stopped grid resumes.
#   scripts/prune-grid.sh MODEL DATA COUNT OUT E:S [E:S ...]
# DATA is `validation` (the split) or a dataset file. SQAIR names the CLI (default: the Release build).
set -euo pipefail
sqair=${SQAIR:-"$(dirname "$0")/../src/Sqair.Cli/bin/Release/net10.0/sqair"}
if [ $# -lt 5 ]; then echo "usage: $0 MODEL DATA COUNT OUT E:S [E:S ...]" >&2; exit 2; fi
model=$1 data=$2 count=$3 out=$4
shift 4
if [ "$data" = validation ]; then source_args=(--split validation); else source_args=(--data "$data"); fi
mkdir -p "$out"
for setting in "$@"; do
  e=${setting%:*} s=${setting#*:}
  report="$out/e$e-s$s.json"
  [ -f "$report" ] && continue
  "$sqair" eval "$model" "${source_args[@]}" --count "$count" --batch-size 25 --threads 1 \
    --end-empty "$e" --suppress-iou "$s" --json "$report" > "$out/e$e-s$s.txt"
done
