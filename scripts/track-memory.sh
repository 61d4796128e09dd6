#!/usr/bin/env bash
# Does `sqair track` hold memory flat as videos grow? Peak resident memory
# (/usr/bin/time -v) of tracking (a) a folder of N synthetic PNG frames (two blobs drifting and
# bouncing on a 50×50 canvas, written by python3 with zlib, no packages) and (b) a dataset file of
# 100-frame sequences, at the default K and batch size; with a second sqair binary (e.g. an older
# commit's build) both run side by side for a ratio.
#
#   scripts/track-memory.sh MODEL DATASET_100_FRAMES [FRAMES] [SQAIR] [OLD_SQAIR]
#     FRAMES: length of the synthetic folder (default 10 000)
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1; dataset=$2; frames=${3:-10000}
sqair=${4:-src/Sqair.Cli/bin/Release/net10.0/sqair}; old=${5:-}
[ -x "$sqair" ] || dotnet build -c Release src/Sqair.Cli -v quiet -nologo
work=runs/track-memory; folder=$work/frames-$frames
mkdir -p "$work"
if [ ! -d "$folder" ]; then
  mkdir -p "$folder"
  python3 - "$folder" "$frames" <<'PY'
import math, struct, sys, zlib
folder, n, side = sys.argv[1], int(sys.argv[2]), 50
def png(path, rows):
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    def chunk(tag, data): return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
def bounce(x, span): x %= 2 * span; return x if x < span else 2 * span - x
for t in range(n):
    rows = [[0] * side for _ in range(side)]
    for (y0, x0, vy, vx, r) in ((5, 5, 1.3, 0.7, 6), (30, 20, -0.9, 1.1, 8)):
        cy, cx = bounce(y0 + vy * t, side - 2 * r) + r, bounce(x0 + vx * t, side - 2 * r) + r
        for y in range(side):
            for x in range(side):
                if (y - cy) ** 2 + (x - cx) ** 2 <= r * r: rows[y][x] = 255
    png(f"{folder}/{t:06d}.png", rows)
PY
fi
peak() {  # peak RSS in MB of a command
  /usr/bin/time -v "$@" > /dev/null 2> "$work/time.txt" || { cat "$work/time.txt"; exit 1; }
  awk '/Maximum resident set size/ {printf "%.0f", $6 / 1024}' "$work/time.txt"
}
printf '%-10s %-44s %12s %10s\n' binary input peak_MB seconds
for bin in "$sqair" $old; do
  name=$([ "$bin" = "$sqair" ] && echo new || echo old)
  for input in "$folder" "$dataset"; do
    start=$(date +%s.%N)
    mb=$(peak "$bin" track "$model" "$input" --out "$work/$name-$(basename "$input")")
    printf '%-10s %-44s %12s %10.1f\n' "$name" "$(basename "$input")" "$mb" "$(echo "$(date +%s.%N) - $start" | bc)"
  done
done
