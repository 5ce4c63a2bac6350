#!/usr/bin/env bash
# `conan create` of packaging/conan with its test_package, as CI runs it (.ci/run): conan 2 from PyPI
# in a virtual environment under /tmp (Debian 12's pip refuses system installs, PEP 668), a fresh
# CONAN_HOME, the repository's Debian 12 profile whose [platform_requires] declare every dependency as
# the installed Debian package, and --no-remote: conan may not fetch anything, so a recipe requirement
# that the system does not provide fails here instead of being downloaded. Needs python3-venv and the
# packages of scripts/install-deps.sh. Prints the time the create step took.
#   packaging/conan/create.sh [extra conan create arguments]
set -euo pipefail
cd "$(dirname "$0")/../.."

work=$(mktemp -d /tmp/p4lm-conan.XXXXXX)
trap 'rm -rf "$work"' EXIT
export CONAN_HOME=$work/home  # before the first conan command: nothing under ~/.conan2

conan_version=2.34.0
venv=${P4LM_CONAN_VENV:-/tmp/p4lm-conan-$conan_version}
if ! "$venv/bin/conan" --version 2>/dev/null | grep -qx "Conan version $conan_version"; then
  start=$SECONDS
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "conan==$conan_version"
  echo "conan $conan_version installed in $venv: $((SECONDS - start)) s"
fi

profile=packaging/conan/profiles/debian12

start=$SECONDS
"$venv/bin/conan" create packaging/conan -pr:a "$profile" --build=missing --no-remote \
  -c "tools.cmake.cmake_layout:test_folder=$work/test_package" "$@"
elapsed=$((SECONDS - start))

# What the cache holds now: p4lm alone (the platform requirements are never in it).
packages=$("$venv/bin/conan" list '*' --format=json | python3 -c 'import json, sys
print(" ".join(sorted(r for remote in json.load(sys.stdin).values() for r in remote)))')
echo "conan cache after create: $packages"
if [[ "$packages" != p4lm/* ]] || [[ "$packages" == *" "* ]]; then
  echo "create.sh: expected only p4lm in the conan cache" >&2
  exit 1
fi
echo "conan create packaging/conan: ${elapsed} s"
