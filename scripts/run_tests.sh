#!/usr/bin/env bash
# The test command (README, second command): installs dependencies, builds the release preset with
# warnings as errors, and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Pretrained models (SmolLM2, MiniLM) into the model cache; offline, the tests that need them are
# reported skipped.
scripts/fetch-models.sh || echo "run_tests: continuing without the pretrained models" >&2
# Explicit: the main job (scripts/run_main.sh) configures the same folder with these OFF, and a cached
# OFF would leave ctest nothing to run (the presets' noTestsAction makes that an error too).
# P4LM_BUILD_BENCHMARKS=OFF leaves the benchmark programs out (CI does: no test runs them).
cmake --preset release -DP4LM_BUILD_TESTS=ON -DP4LM_BUILD_TOOLS=ON -DP4LM_BUILD_EXAMPLES=ON \
  "-DP4LM_BUILD_BENCHMARKS=${P4LM_BUILD_BENCHMARKS:-ON}"
cmake --build --preset release
ctest --preset release
