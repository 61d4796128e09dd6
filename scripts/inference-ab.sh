#!/usr/bin/env bash
# Inference A/B (docs/notes/tracking-history.md): one checkpoint, one dataset, K particles with and without
# particle filtering (sqair eval --k K --resample none|ess|always) and with discovery's rejection of
# duplicates (--reject-iou), one row per arm, each without the ending of objects (--end-empty 0
# --suppress-iou 0: scripts/prune-grid.sh measures that), as the tables it made were measured. No
# training: it runs on any trained model. Choose on validation data; the test sets are for final numbers.
#
#   scripts/inference-ab.sh CHECKPOINT DATA OUT_DIR [COUNT] [BATCH] [SQAIR]
#     DATA: "validation" (the cached split) or a dataset file (e.g. 100-frame sequences from
#           sqair data generate --split validation --count 200 --seq_len 100 --out FILE)
#     COUNT: sequences (default: all); BATCH: sequences per batch (default 50; 25 for 100 frames at K = 20 stays
#     under ~2 GB); SQAIR: the sqair binary (default: this checkout's Release build)
# Prints K, resampling, count accuracy (visible), MOTA, IDF1, MOTA don't-care, MOTA window p > 0.5,
# IWAE (the filter's bound with resampling), and with >10 frames MOTA in the first and last tenth.
set -euo pipefail
cd "$(dirname "$0")/.."
checkpoint=$1; data=$2; out=$3; count=${4:-}; batch=${5:-50}; sqair=${6:-src/Sqair.Cli/bin/Release/net10.0/sqair}
[ -x "$sqair" ] || dotnet build -c Release src/Sqair.Cli -v quiet -nologo
mkdir -p "$out"
if [ "$data" = validation ]; then source=(--split validation); else source=(--data "$data"); fi
limit=(); [ -n "$count" ] && limit=(--count "$count")
# the JSON of an arm: k5-ess.json, k5-none-reject0.5.json
arm_json() { echo "$out/k$1-$2$([ "$3" = 0 ] || echo "-reject$3").json"; }
arms=("5 none 0" "5 ess 0" "5 always 0" "1 none 0" "5 none 0.8" "5 ess 0.8" "5 none 0.5" "20 none 0" "20 ess 0" "20 always 0")
for arm in "${arms[@]}"; do
  read -r k resample reject <<<"$arm"
  json=$(arm_json "$k" "$resample" "$reject")
  [ -f "$json" ] || "$sqair" eval "$checkpoint" "${source[@]}" "${limit[@]}" --k "$k" --resample "$resample" --reject-iou "$reject" \
                      --end-empty 0 --suppress-iou 0 --batch-size "$batch" --json "$json" >/dev/null
done
printf '%3s %-7s %6s %9s %7s %7s %13s %15s %9s %10s %10s\n' K resample reject count_vis mota idf1 mota_dontcare mota_window_p50 iwae mota_1st mota_last
for arm in "${arms[@]}"; do
  read -r k resample reject <<<"$arm"
  python3 - "$(arm_json "$k" "$resample" "$reject")" "$k" "$resample" "$reject" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
first, last = m.get("mota_tenth_01", float("nan")), m.get("mota_tenth_10", float("nan"))
print(f"{sys.argv[2]:>3} {sys.argv[3]:<7} {sys.argv[4]:>6} {m['count_acc_visible']:9.3f} {m['mota']:7.3f} {m['idf1']:7.3f} {m['mota_dontcare']:13.3f} "
      f"{m['mota_window_p50']:15.3f} {m['iwae']:9.1f} {first:10.3f} {last:10.3f}")
PY
done
