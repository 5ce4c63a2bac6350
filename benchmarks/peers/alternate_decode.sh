#!/usr/bin/env bash
# Decoding speed against llama2.c's run.c in alternated rounds: each round runs run.c once, then each
# given bench_lm_generate binary once, so every ratio pairs two measurements taken seconds apart. On a
# machine shared with noisy neighbours a single pair swings by a fifth or more; the median of the
# per-round ratios is the steadier reading (docs/performance.md, "Decoding, second pass").
#
#   benchmarks/peers/alternate_decode.sh --run /tmp/peers/llama2.c/run [--inputs /tmp/peers/inputs] \
#     [--rounds 12] [--model 15M] [--batch 1] [--threads 2] [--tokens 64] NAME=BINARY...
#
# NAME=BINARY names a bench_lm_generate build (an old and a new one, say). Prints each round, then per
# program the median, min and max tokens/s and the median (min, max) of its per-round ratio to run.c.
set -euo pipefail

run_bin="" inputs=/tmp/peers/inputs rounds=12 model=15M batch=1 threads=2 tokens=64
programs=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --run) run_bin=$2; shift 2 ;;
    --inputs) inputs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --tokens) tokens=$2; shift 2 ;;
    -h|--help) sed -n 2,11p "$0"; exit 0 ;;
    *=*) programs+=("$1"); shift ;;
    *) echo "alternate_decode.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x "$run_bin" ]] || { echo "alternate_decode.sh: --run must name the built llama2.c run binary" >&2; exit 2; }
[[ ${#programs[@]} -gt 0 ]] || { echo "alternate_decode.sh: name at least one NAME=BINARY" >&2; exit 2; }
for p in "${programs[@]}"; do
  [[ -x "${p#*=}" ]] || { echo "alternate_decode.sh: ${p#*=} is not an executable" >&2; exit 2; }
done
checkpoint="$inputs/llama2c/stories${model}_random.bin"
[[ -f "$checkpoint" ]] || { echo "alternate_decode.sh: no $checkpoint (run make_peer_inputs.py)" >&2; exit 2; }

ENV=(env -u OPENBLAS_CORETYPE OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads")
# run.c times every token after the first: -n tokens + 1 times `tokens` of them, as the benchmark does.
for ((r = 1; r <= rounds; r++)); do
  line="run.c=$("${ENV[@]}" "$run_bin" "$checkpoint" -z "$inputs/llama2c/tokenizer.bin" -t 0 -s 1 \
    -n $((tokens + 1)) 2>&1 >/dev/null | sed -n 's/achieved tok\/s: //p')"
  for p in "${programs[@]}"; do
    tps=$("${ENV[@]}" "${p#*=}" --model "$model" --batch "$batch" --tokens "$tokens" --repeats 2 --json |
      sed -n 's/.*"tokens_per_s":\([^,}]*\).*/\1/p')
    line="$line ${p%%=*}=$tps"
  done
  echo "# round $r: $line"
  echo "$line"
done | python3 -c '
import statistics as st, sys
rows = []
for line in sys.stdin:
    if line.startswith("#"):
        print(line, end="")
    else:
        rows.append(dict(kv.split("=") for kv in line.split()))
for name in rows[0]:
    v = [float(r[name]) for r in rows]
    ratio = [float(r[name]) / float(r["run.c"]) for r in rows]
    print(f"{name}: median {st.median(v):.1f} tokens/s (min {min(v):.1f}, max {max(v):.1f}); "
          f"per-round ratio to run.c: median {st.median(ratio):.3f} (min {min(ratio):.3f}, max {max(ratio):.3f})")
'
