#!/usr/bin/env bash
# The test command (README, second command): installs dependencies, builds the release preset with
# warnings as errors, and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Pretrained models (SmolLM2, MiniLM) into the model cache; offline, the tests that need them are
# reported skipped.
scripts/fetch-models.sh || echo "run_tests: continuing without the pretrained models" >&2
cmake --preset release
cmake --build --preset release
ctest --preset release
