#!/usr/bin/env bash
# Evidence for docs/results.md (issue 8): the warm-start pitch model with CF adapters vs the same model
# fed shuffled user embeddings vs SFT-Text, over 3 seeds, on one CF model and one pitch corpus.
# Usage: scripts/sft_results.sh [build dir (default build/release)] [out (default runs/results)] [extra p4lm sft flags]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/release}/bin/p4lm
OUT=${2:-runs/results}
shift $(( $# > 2 ? 2 : $# )) || true
[ -f "$OUT/cf/cf.safetensors" ] || "$BIN" cf train --out "$OUT/cf" --dim 32 --seed 1 --progress=false
[ -f "$OUT/data/stats.json" ] || "$BIN" data build --cf "$OUT/cf/cf.safetensors" --out "$OUT/data" --seed 1 --progress=false
for seed in 1 2 3; do
  "$BIN" sft --data "$OUT/data" --cf "$OUT/cf/cf.safetensors" --out "$OUT/cf_seed$seed" --seed "$seed" --progress=false "$@"
  "$BIN" sft --conditioning text --data "$OUT/data" --out "$OUT/text_seed$seed" --seed "$seed" --progress=false "$@"
done
for run in "$OUT"/cf_seed* "$OUT"/text_seed*; do echo "$run $(tr -d '\n ' < "$run/result.json")"; done
