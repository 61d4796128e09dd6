#!/usr/bin/env bash
# Kills a small training with SIGKILL at random moments, resumes it after each kill, and checks that
# its final checkpoint is byte-identical to the one of an uninterrupted run (docs: README, "Training
# runs"). Needs no MNIST: the data are synthetic blobs.
#
#   scripts/kill-resume.sh [KILLS] [ITERATIONS]      (defaults 10, 300)
#
# SQAIR="dotnet path/to/sqair.dll" uses that build instead of building one. Exit 0: identical.
set -euo pipefail
kills=${1:-10}
iterations=${2:-300}
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

if [ -z "${SQAIR:-}" ]; then
  dotnet build "$root/src/Sqair.Cli" -c Release -o "$work/bin" -v quiet -nologo >/dev/null
  SQAIR="$work/bin/sqair"
fi
read -r -a sqair <<<"$SQAIR"

"${sqair[@]}" data generate --synthetic --split train --count 64 --canvas_size 32 --seq_len 3 --out "$work/data.safetensors" >/dev/null
cat >"$work/tiny.json" <<JSON
{ "img_size": 32, "glimpse_size": 8, "n_what": 8, "n_units": 2, "max_objects": 2, "k_particles": 2,
  "batch_size": 4, "seq_len": 3, "curriculum_start": 2, "stage_itr": 10, "optimizer": "adam",
  "learning_rate": 0.001, "lr_schedule": [1], "train_size": 64, "valid_size": 16, "eval_size": 8,
  "max_train_iter": $iterations, "log_itr": 2, "eval_itr": 10, "fig_itr": 1000, "ckpt_itr": 3 }
JSON
train=("${sqair[@]}" train --data "$work/data.safetensors" --threads 1)

began=$(date +%s.%N)
"${train[@]}" --config "$work/tiny.json" --run-dir "$work/straight" >/dev/null
straight=$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')

start=("${train[@]}" --config "$work/tiny.json" --run-dir "$work/killed")
landed=0
for ((i = 1; i <= kills; i++)); do
  "${start[@]}" >>"$work/killed.log" 2>&1 &
  pid=$!
  # a moment in the first 60 % of an uninterrupted run (start-up included), so that most kills land
  sleep "$(awk -v s="$RANDOM" -v t="$straight" 'BEGIN { srand(s); printf "%.2f", 0.6 * t * rand() }')"
  kill -9 "$pid" 2>/dev/null || true
  status=0; wait "$pid" 2>/dev/null || status=$?
  [ "$status" -eq 137 ] && landed=$((landed + 1))
  # Resume once there is a checkpoint; before that, start the run again (its folder holds only config.json).
  if ls "$work/killed/checkpoints"/step-*.safetensors >/dev/null 2>&1; then
    start=("${train[@]}" --resume "$work/killed")
  else
    start=("${train[@]}" --config "$work/tiny.json" --run-dir "$work/killed" --force)
  fi
done
"${start[@]}" >>"$work/killed.log" 2>&1

final=$(printf 'step-%09d.safetensors' "$iterations")
if cmp "$work/straight/checkpoints/$final" "$work/killed/checkpoints/$final"; then
  echo "identical: $final after $landed kills during training (of $kills tries; an uninterrupted run takes ${straight%.*} s)"
  leftovers=$(find "$work/killed" -name '*.tmp-*' | wc -l)
  [ "$leftovers" -eq 0 ] || { echo "but $leftovers temporary files remain"; exit 1; }
else
  echo "DIFFERENT: $final after $landed kills"; tail -20 "$work/killed.log"; exit 1
fi
