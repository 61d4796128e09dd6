#!/usr/bin/env bash
# Issue 24's inference A/B: one checkpoint, one dataset, K particles with and without particle
# filtering (sqair eval --k K --resample none|ess|always), one row per arm. No training: it runs on
# any trained model. Choose on validation data; the test sets are for final numbers.
#
#   scripts/inference-ab.sh CHECKPOINT DATA OUT_DIR [COUNT] [BATCH] [SQAIR]
#     DATA: "validation" (the cached split) or a dataset file (e.g. 100-frame sequences from
#           sqair data generate --split validation --count 200 --seq-len 100 --out FILE)
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
arms=("5 none" "5 ess" "5 always" "1 none" "20 none" "20 ess" "20 always")
for arm in "${arms[@]}"; do
  read -r k resample <<<"$arm"
  json="$out/k$k-$resample.json"
  [ -f "$json" ] || "$sqair" eval "$checkpoint" "${source[@]}" "${limit[@]}" --k "$k" --resample "$resample" --batch-size "$batch" --json "$json" >/dev/null
done
printf '%3s %-7s %9s %7s %7s %13s %15s %9s %10s %10s\n' K resample count_vis mota idf1 mota_dontcare mota_window_p50 iwae mota_1st mota_last
for arm in "${arms[@]}"; do
  read -r k resample <<<"$arm"
  python3 - "$out/k$k-$resample.json" "$k" "$resample" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
first, last = m.get("mota_tenth_01", float("nan")), m.get("mota_tenth_10", float("nan"))
print(f"{sys.argv[2]:>3} {sys.argv[3]:<7} {m['count_acc_visible']:9.3f} {m['mota']:7.3f} {m['idf1']:7.3f} {m['mota_dontcare']:13.3f} "
      f"{m['mota_window_p50']:15.3f} {m['iwae']:9.1f} {first:10.3f} {last:10.3f}")
PY
done
