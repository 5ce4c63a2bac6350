#pragma once
// Where p4lm finds the pretrained models that scripts/fetch-models.sh puts in the model cache:
//   1. the P4LM_MODELS environment variable (a folder; the fetch script honours it too),
//   2. models/ in the source tree (next to data/, when built in-tree).
// The cache is never required: callers check `present` and fall back (tests skip, the pipeline uses
// the bundled stories260K model).
//
//   for (const auto& m : p4lm::cached_models()) std::cout << m.name << (m.present ? "" : " (absent)");
//   if (auto gguf = p4lm::smollm2_path()) ...           // minilm_path(): the sentence encoder

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace p4lm {

inline std::filesystem::path model_cache_dir() {
  if (const char* env = std::getenv("P4LM_MODELS"); env != nullptr && *env != '\0') return env;
#ifdef P4LM_SOURCE_DATA_DIR
  return std::filesystem::path(P4LM_SOURCE_DATA_DIR).parent_path() / "models";
#else
  return "models";
#endif
}

// One model the fetch script provides.
struct CachedModel {
  std::string name;            // folder in the cache
  std::string kind;            // what it is for
  std::filesystem::path path;  // the file or folder a loader takes
  bool present = false;
};

inline std::vector<CachedModel> cached_models(const std::filesystem::path& cache = model_cache_dir()) {
  namespace fs = std::filesystem;
  std::vector<CachedModel> out{{"smollm2-135m-instruct", "causal LM (GGUF Q4_1, Llama, 135M parameters)",
                                cache / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf", false},
                               {"all-minilm-l6-v2", "sentence encoder (BERT, safetensors, 22M parameters)",
                                cache / "all-minilm-l6-v2", false}};
  std::error_code ec;
  out[0].present = fs::is_regular_file(out[0].path, ec);
  out[1].present = fs::is_regular_file(out[1].path / "model.safetensors", ec) &&
                   fs::is_regular_file(out[1].path / "tokenizer.json", ec);
  return out;
}

// The SmolLM2 GGUF file when the cache holds it.
inline std::optional<std::filesystem::path> smollm2_path() {
  const auto m = cached_models().front();
  return m.present ? std::optional(m.path) : std::nullopt;
}

// The all-MiniLM-L6-v2 folder when the cache holds it.
inline std::optional<std::filesystem::path> minilm_path() {
  const auto m = cached_models()[1];
  return m.present ? std::optional(m.path) : std::nullopt;
}

}  // namespace p4lm
