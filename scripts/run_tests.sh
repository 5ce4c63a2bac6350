#!/usr/bin/env bash
# The test command (README, second command): installs dependencies, builds the release preset with
# warnings as errors, and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release
cmake --build --preset release
ctest --preset release
