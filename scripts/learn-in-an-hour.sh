#!/usr/bin/env bash
# The README's hour as a benchmark: train SQAIR from scratch with the default `sqair train` (the README's main
# command: 60 minutes of wall time), once per seed, then measure each model on the test split
# (10 000 sequences from MNIST's test digits) and on two harder test sets: 100-frame sequences and
# sequences of 3 digits. With --robustness it also trains one hour on digits 0.7× as large
# (--digit_scale 0.7) and measures that model on its own test split.
#
#   scripts/learn-in-an-hour.sh [--robustness] [SEED ...]      default: seeds 0, 1 and 2
#
# Each training needs an otherwise idle machine (the hour is wall time: anything else running
# changes how many iterations it reaches). Existing run folders are evaluated, not retrained.
# Prints one row per model: count accuracy (visible and present digits), MOTA, IDF1, mota_glimpse
# and the IWAE bound, all with the model's own inference (no ending of objects), as the hours recorded in
# the docs were measured.
set -euo pipefail
cd "$(dirname "$0")/.."
robustness=0
if [ "${1:-}" = "--robustness" ]; then robustness=1; shift; fi
if [ $# -gt 0 ]; then seeds=("$@"); else seeds=(0 1 2); fi

dotnet build -c Release src/Sqair.Cli -v quiet -nologo
own=(--end-empty 0 --suppress-iou 0)
sqair=src/Sqair.Cli/bin/Release/net10.0/sqair
mkdir -p runs/test-sets
hard_sets=(runs/test-sets/test-100frames.safetensors runs/test-sets/test-3digits.safetensors)
[ -f "${hard_sets[0]}" ] || "$sqair" data generate --split test --count 200 --seq_len 100 --out "${hard_sets[0]}"
[ -f "${hard_sets[1]}" ] || "$sqair" data generate --split test --count 1000 --min_digits 3 --max_digits 3 --out "${hard_sets[1]}"

train() {   # train RUN [options...]: one hour from scratch unless RUN already holds a run
  local run=$1; shift
  if [ -d "$run/checkpoints" ]; then echo "== $run exists: evaluating its newest checkpoint (delete the folder to retrain)"
  else "$sqair" train --run-dir "$run" "$@"; fi
}

reports=()
runs=()
for seed in "${seeds[@]}"; do
  run="runs/hour-seed$seed"
  runs+=("$run")
  train "$run" --seed "$seed"
  "$sqair" eval "$run" "${own[@]}" --split test --json "$run/eval-test.json"
  reports+=("$run/eval-test.json")
  for set in "${hard_sets[@]}"; do
    name=$(basename "$set" .safetensors)
    "$sqair" eval "$run" "${own[@]}" --data "$set" --batch-size 10 --json "$run/eval-$name.json"
    reports+=("$run/eval-$name.json")
  done
  "$sqair" render "$run" --split test --out "$run/renders" --count 4
  "$sqair" render "$run" --split test --out "$run/renders" --count 3 --seq_len 100
done
if [ "$robustness" = 1 ]; then
  run=runs/hour-small-digits-seed1
  train "$run" --seed 1 --digit_scale 0.7
  "$sqair" eval "$run" "${own[@]}" --split test --json "$run/eval-test.json"
  reports+=("$run/eval-test.json")
fi
"$sqair" plot "${runs[@]}" --out runs/hour-curves

echo
printf '%-52s %9s %10s %7s %7s %12s %8s\n' report count_vis count_pres mota idf1 mota_glimpse iwae
for report in "${reports[@]}"; do
  python3 - "$report" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print(f"{sys.argv[1]:<52} {m['count_acc_visible']:9.3f} {m['count_acc_present']:10.3f} {m['mota']:7.3f} {m['idf1']:7.3f} {m['mota_glimpse']:12.3f} {m['iwae']:8.1f}")
PY
done
