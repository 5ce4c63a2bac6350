#!/usr/bin/env bash
# Same-run peers for issue 5 ("Benchmarks"): each peer and the matching p4lm benchmark back to back in
# one invocation, same thread count, OPENBLAS_CORETYPE unset, so the ratios come from one machine
# state. See benchmarks/peers/README.md for building the peers and writing their inputs.
#
#   benchmarks/peers/run_peers.sh --run /tmp/peers/llama2.c/run --llmc /tmp/peers/llm.c/train_gpt2 \
#     [--inputs /tmp/peers/inputs] [--build build-peers] [--threads 2] [--steps 4] [--tokens 64]
#
# Prints one line per measurement: "RESULT <benchmark> <who> <tokens/s> <detail>", plus the raw JSON of
# the p4lm / libtorch programs (they carry openblas_core) and the load average before each pair.
set -euo pipefail

run_bin="" llmc_bin="" inputs=/tmp/peers/inputs build=build-peers threads=2 steps=4 tokens=64
while [[ $# -gt 0 ]]; do
  case "$1" in
    --run) run_bin=$2; shift 2 ;;
    --llmc) llmc_bin=$2; shift 2 ;;
    --inputs) inputs=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --tokens) tokens=$2; shift 2 ;;
    -h|--help) sed -n 2,11p "$0"; exit 0 ;;
    *) echo "run_peers.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x "$run_bin" ]] || { echo "run_peers.sh: --run must name the built llama2.c run binary" >&2; exit 2; }
[[ -x "$llmc_bin" ]] || { echo "run_peers.sh: --llmc must name the built llm.c train_gpt2 binary" >&2; exit 2; }
[[ -f "$inputs/llama2c/tokenizer.bin" && -f "$inputs/llmc/gpt2_124M.bin" ]] ||
  { echo "run_peers.sh: no inputs in $inputs (run benchmarks/peers/make_peer_inputs.py)" >&2; exit 2; }
run_bin=$(realpath "$run_bin") llmc_bin=$(realpath "$llmc_bin") inputs=$(realpath "$inputs")
bench="$(realpath "$build")/benchmarks"
for b in bench_lm_generate bench_lm_train; do
  [[ -x "$bench/$b" ]] || { echo "run_peers.sh: $bench/$b not built" >&2; exit 2; }
done

# Every program: OPENBLAS_CORETYPE unset (benchmarks may; tests and CI never), $threads OpenMP threads.
ENV=(env -u OPENBLAS_CORETYPE OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads")
json_field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" | tr -d '"'; }
load() { echo "# $(date -u +%H:%M:%S) UTC, load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }

echo "# run_peers.sh: $threads threads, host $(hostname), $(nproc) CPUs, $(date -u +%F)"
load

# --- generation: llama2.c run.c (greedy, fp32, one sequence) vs bench_lm_generate ---------------------
# run.c times every token after the first; -n $((tokens + 1)) makes that $tokens tokens. Best of two
# runs, like bench_lm_generate --repeats 2 (best of two).
for m in 15M 110M; do
  load
  best=0
  for r in 1 2; do
    out=$(cd "$inputs/llama2c" &&
      "${ENV[@]}" "$run_bin" "stories${m}_random.bin" -z tokenizer.bin -t 0 -s 1 -n $((tokens + 1)) 2>&1 >/tmp/run_peers_runc.$$)
    produced=$(wc -w </tmp/run_peers_runc.$$)
    tps=$(sed -n 's/achieved tok\/s: //p' <<<"$out")
    echo "# run.c $m run $r: $tps tokens/s, $produced tokens printed"
    best=$(awk -v a="$best" -v b="$tps" 'BEGIN { print (b > a) ? b : a }')
  done
  rm -f /tmp/run_peers_runc.$$
  echo "RESULT generate_${m}_b1 run.c $best tokens/s (best of 2, $tokens timed tokens)"
  for batch in 1 16; do
    j=$("${ENV[@]}" "$bench/bench_lm_generate" --model "$m" --batch "$batch" --tokens "$tokens" --repeats 2 --json)
    echo "$j"
    echo "RESULT generate_${m}_b${batch} p4lm $(json_field tokens_per_s <<<"$j") tokens/s (core $(json_field openblas_core <<<"$j"); weights at $(json_field weights_gb_per_s <<<"$j") GB/s, read bandwidth $(json_field read_gb_per_s <<<"$j") GB/s)"
  done
done

# --- training: llm.c train_gpt2 (GPT-2 124M, B=4, T=64) vs bench_lm_train (and libtorch) -------------
# train_gpt2 runs its own fixed loop (validation at step 0, 40 steps); it is stopped once it has
# printed step $steps. Step 0 (lazy allocation of gradients and AdamW state) is the warmup; steps
# 1..$steps are averaged, as bench_lm_train --warmup 1 --steps $steps does.
load
log=/tmp/run_peers_llmc.$$
(cd "$inputs/llmc" && exec "${ENV[@]}" stdbuf -oL "$llmc_bin" >"$log" 2>&1) &
pid=$!
while kill -0 "$pid" 2>/dev/null && ! grep -q "^step $steps:" "$log"; do sleep 1; done
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
grep "^step" "$log" | sed 's/^/# llm.c /'
ms=$(awk -v n="$steps" '/^step [0-9]+:/ { s = $2 + 0; if (s >= 1 && s <= n) { t += $7; k++ } }
  END { if (k == n) printf "%.3f", t / k; else print "FAILED" }' "$log")
rm -f "$log"
[[ "$ms" != FAILED ]] || { echo "run_peers.sh: llm.c did not print $steps steps" >&2; exit 1; }
echo "RESULT train_T64 llm.c $(awk -v ms="$ms" 'BEGIN { printf "%.2f", 256 / (ms / 1000) }') tokens/s ($ms ms/step, mean of steps 1..$steps)"

for T in 64 256; do
  load
  n=$steps
  [[ $T == 256 ]] && n=2
  j=$("${ENV[@]}" "$bench/bench_lm_train" --seq "$T" --steps "$n" --warmup 1 --json)
  echo "$j"
  echo "RESULT train_T$T p4lm $(json_field tokens_per_s <<<"$j") tokens/s ($(json_field step_s <<<"$j") s/step, core $(json_field openblas_core <<<"$j"))"
  if [[ -x "$bench/bench_lm_train_torch" ]]; then
    j=$("${ENV[@]}" "$bench/bench_lm_train_torch" --seq "$T" --steps "$n" --warmup 1 --json)
    echo "$j"
    echo "RESULT train_T$T libtorch $(json_field tokens_per_s <<<"$j") tokens/s ($(json_field step_s <<<"$j") s/step, core $(json_field openblas_core <<<"$j"))"
  else
    echo "# bench_lm_train_torch not built (no libtorch): no libtorch peer"
  fi
done
load
