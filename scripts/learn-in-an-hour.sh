#!/usr/bin/env bash
# The "does it learn" benchmark (issue 6): train SQAIR from scratch with the cpu preset
# (60 minutes of wall time on this machine), then measure it on the standard moving
# multi-MNIST validation set and draw its curves and tracked sequences.
#
#   scripts/learn-in-an-hour.sh [SEED ...]      default: seeds 1 and 2
#
# Prints count accuracy (visible and present digits), MOTA, IDF1 and the IWAE bound per seed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then seeds=("$@"); else seeds=(1 2); fi

dotnet build -c Release src/Sqair.Cli -v quiet -nologo
sqair=src/Sqair.Cli/bin/Release/net10.0/sqair
runs=()
for seed in "${seeds[@]}"; do
  run="runs/hour-seed$seed"
  runs+=("$run")
  if [ -d "$run/checkpoints" ]; then
    echo "== $run exists: evaluating its newest checkpoint (delete the folder to retrain)"
  else
    "$sqair" train --preset cpu --seed "$seed" --run-dir "$run"
  fi
  "$sqair" eval "$run" --split validation --json "$run/eval-validation.json"
  "$sqair" render "$run" --out "$run/renders" --count 4
  "$sqair" render "$run" --out "$run/renders" --count 3 --seq-len 100
done
"$sqair" plot "${runs[@]}" --out runs/hour-curves

echo
printf '%-22s %10s %10s %8s %8s %10s\n' run count_vis count_pres mota idf1 iwae
for run in "${runs[@]}"; do
  python3 - "$run/eval-validation.json" <<'PY' 2>/dev/null || grep -E '"(count_acc_visible|count_acc_present|mota|idf1|iwae)"' "$run/eval-validation.json"
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print(f"{sys.argv[1].split('/')[1]:<22} {m['count_acc_visible']:10.4f} {m['count_acc_present']:10.4f} {m['mota']:8.4f} {m['idf1']:8.4f} {m['iwae']:10.1f}")
PY
done
