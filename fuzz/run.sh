#!/usr/bin/env bash
# Builds the libFuzzer targets with clang under ASan + UBSan and runs each for a bounded time from its
# checked-in seed corpus (copied: the corpus in git stays the tiny seeds). A crash, leak, sanitizer
# report, timeout or out-of-memory fails the run; the input that caused it is kept under
# <build>/artifacts/<target>/ for a regression test.
#   fuzz/run.sh [seconds per target (60)] [build folder (build/fuzz)]
# P4LM_FUZZ_JOBS targets run at once (default: the number of cores).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=${2:-build/fuzz}
cxx=${P4LM_FUZZ_CXX:-clang++-14}
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER="$cxx" \
  -DP4LM_BUILD_FUZZERS=ON -DP4LM_BUILD_TESTS=OFF -DP4LM_BUILD_TOOLS=OFF -DP4LM_BUILD_EXAMPLES=OFF \
  -DP4LM_BUILD_BENCHMARKS=OFF -DP4LM_INSTALL=OFF "-DCMAKE_CXX_FLAGS=-O1 -g $san" \
  "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined" >/dev/null
cmake --build "$build" --target p4lm_fuzzers
export P4LM_DATA="$PWD/data"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
jobs=${P4LM_FUZZ_JOBS:-$(nproc)}  # targets fuzzed at once (each is single-threaded)

fuzz_target() {  # target seeds -> exit status of the fuzzer; its log in $build/<target>.log
  local target=$1 seeds=$2
  local work="$build/corpus/$target" artifacts="$build/artifacts/$target"
  rm -rf "$work" && mkdir -p "$work" "$artifacts"
  cp "$seeds"* "$work/"
  "$build/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" >"$build/$target.log" 2>&1
}

targets=()
declare -A pid_of
for seeds in fuzz/corpus/*/; do
  target=$(basename "$seeds")
  targets+=("$target")
  while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
  echo "--- $target: ${seconds} s"
  fuzz_target "$target" "$seeds" &
  pid_of[$target]=$!
done
failed=()
for target in "${targets[@]}"; do
  if ! wait "${pid_of[$target]}"; then
    failed+=("$target")
    tail -40 "$build/$target.log"
  fi
  echo "$target: $(grep -E "^stat::(number_of_executed_units|new_units_added)" "$build/$target.log" | tr '\n' ' ')"
done
if ((${#failed[@]})); then
  echo "fuzz: failures in ${failed[*]} (inputs under $build/artifacts/)" >&2
  exit 1
fi
echo "fuzz: every target ran ${seconds} s without a finding"
