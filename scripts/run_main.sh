#!/usr/bin/env bash
# The main job (README, first command): installs dependencies, builds the `p4lm` program and runs the
# pipeline on the bundled data. Extra arguments go to `p4lm run` (see `p4lm run --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Pretrained models (SmolLM2, MiniLM) into the model cache; offline, the job goes on without them.
scripts/fetch-models.sh || echo "run_main: continuing without the pretrained models" >&2
cmake --preset release -DP4LM_BUILD_TESTS=OFF -DP4LM_BUILD_BENCHMARKS=OFF -DP4LM_BUILD_EXAMPLES=OFF >/dev/null
cmake --build --preset release --target p4lm_tool
exec build/release/bin/p4lm run "$@"
