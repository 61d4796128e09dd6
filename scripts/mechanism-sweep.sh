#!/usr/bin/env bash
# Tracking mechanisms compared at a fair budget before the long training takes any of them (docs/tracking.md):
# each arm continues the long training's parameters (models/long-training.safetensors) with its settings, the
# same iterations and seeds, on the same kind of data; then every arm's model is measured on the validation
# split (10 frames) and on 200 validation sequences of 100 frames, with the default inference settings.
#
#   scripts/mechanism-sweep.sh [SWEEP_DIR]      default: ~/.cache/sqair/sweeps/mechanisms
#
# Arms, in the order they run (tasks run arm by arm, so a sweep stopped early has the first arms whole): base (the
# long training's settings), a wider window shift (shift_range 1.5: first, because the digits cut by the edge hold
# most of the errors), 20-frame windows (seq_len 20), a presence prior tied to what each object drew
# (prop_prior_drawn_pixels 10: a tenth of a digit's ink), rejection in training (reject_iou 0.5) and discovery
# dropout (disc_dropout 0.2). Every arm draws
# its training sequences on the fly: 20-frame windows would otherwise need a 3 GB training set, and the others
# then see the same kind of data. The sweep resumes where it stopped (run it again); 2 000 iterations at 10
# frames take about 50 minutes per task on one core. Prints one row per arm and seed. SEEDS (default "1 2") sets
# the seeds when the sweep is created; PARALLEL (tasks at once; default one per core) applies when it is created
# or resumed. SEEDS=1 runs base and shift on seed 1 first: a pair that compares on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
sweep=${1:-$HOME/.cache/sqair/sweeps/mechanisms}
iterations=${ITERATIONS:-2000}
read -r -a seeds <<<"${SEEDS:-1 2}"
parallel=(); [ -z "${PARALLEL:-}" ] || parallel=(--parallel "$PARALLEL")

dotnet build -c Release src/Sqair.Cli -v quiet -nologo
sqair=src/Sqair.Cli/bin/Release/net10.0/sqair
long_frames=runs/sets/valid-100frames.safetensors
mkdir -p runs/sets
[ -f "$long_frames" ] || "$sqair" data generate --split validation --count 200 --seq_len 100 --out "$long_frames"

if [ -f "$sweep/sweep.json" ]; then "$sqair" sweep "$sweep" "${parallel[@]}"
else
  "$sqair" sweep "$sweep" --init models/long-training.safetensors \
    --set curriculum_start=10 --set learning_rate=1e-4 --set 'lr_schedule=[1]' --set on_the_fly=true \
    --arm shift:shift_range=1.5 --arm frames20:seq_len=20,curriculum_start=20,valid_size=500 \
    --arm drawn:prop_prior_drawn_pixels=10 --arm reject:reject_iou=0.5 --arm dropout:disc_dropout=0.2 \
    --iterations "$iterations" --eval-every 1000 --eval-count 200 --seeds "${seeds[@]}" "${parallel[@]}"
fi

printf '%-22s %8s %8s %8s %8s %8s %8s %8s %10s %10s\n' \
  run mota10 idf1_10 count10 edge10 mota100 count100 edge100 hyp_first hyp_worst
for run in "$sweep"/*/seed-*; do
  [ -d "$run/checkpoints" ] || continue
  name=${run#"$sweep"/}
  [ -f "$run/eval-valid.json" ] ||
    "$sqair" eval "$run" --split validation --count 1000 --json "$run/eval-valid.json" >/dev/null
  [ -f "$run/eval-valid-100frames.json" ] ||
    "$sqair" eval "$run" --data "$long_frames" --count 200 --batch-size 25 \
      --json "$run/eval-valid-100frames.json" >/dev/null
  jq -r --arg name "$name" --slurpfile long "$run/eval-valid-100frames.json" '
    .metrics as $m | $long[0].metrics as $l
    | [range(1; 11) | $l["hyp_per_digit_tenth_" + (if . < 10 then "0" else "" end) + tostring]] as $hyp
    | [$name, $m.mota, $m.idf1, $m.count_acc_visible, $m.mota_edge, $l.mota, $l.count_acc_visible, $l.mota_edge,
       $hyp[0], ($hyp | max)]
    | "\(.[0])\t\(.[1:] | map(. * 1000 | round / 1000) | join("\t"))"' "$run/eval-valid.json" |
    awk -F'\t' '{ printf "%-22s %8s %8s %8s %8s %8s %8s %8s %10s %10s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }'
done
