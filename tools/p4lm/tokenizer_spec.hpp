#pragma once
// Tokenizers named on the command line (`--tokenizer`): shared by tokenize, generate, logits and
// train-lm.

#include <filesystem>
#include <string>
#include <variant>

#include <p4lm/core/error.hpp>
#include <p4lm/core/model_cache.hpp>
#include <p4lm/io/gguf.hpp>
#include <p4lm/text/gguf_tokenizer.hpp>
#include <p4lm/text/gpt2_tokenizer.hpp>
#include <p4lm/text/llama2c_tokenizer.hpp>

namespace p4lm::cli::lm {

using AnyTokenizer = std::variant<text::Gpt2Tokenizer, text::Llama2cTokenizer>;

inline constexpr const char* tokenizer_help =
    "gpt2 | stories260K (bundled), smollm2 (model cache), a GGUF model file, a folder with encoder.json + "
    "vocab.bpe, or a llama2.c tok*.bin file (default: the model's own; gpt2 for GPT-2 models)";

// The SmolLM2 GGUF file of the model cache, or a UsageError saying how to fetch it.
inline std::filesystem::path smollm2_or_fail() {
  if (const auto path = smollm2_path()) return *path;
  fail<UsageError>("smollm2: not in the model cache ", model_cache_dir().string(),
                   " (run scripts/fetch-models.sh, or set P4LM_MODELS)");
}

// `gpt2_model` picks the default when spec is empty.
inline AnyTokenizer load_tokenizer(const std::string& spec, bool gpt2_model) {
  namespace fs = std::filesystem;
  std::string s = spec;
  if (s.empty()) s = gpt2_model ? "gpt2" : "stories260K";
  if (s == "gpt2") return text::Gpt2Tokenizer::bundled();
  if (s == "stories260K") return text::Llama2cTokenizer::bundled();
  if (s == "smollm2") return text::gguf_tokenizer(io::GgufFile(smollm2_or_fail()));
  const fs::path path(s);
  if (path.extension() == ".gguf") return text::gguf_tokenizer(io::GgufFile(path));
  if (fs::is_directory(path)) return text::Gpt2Tokenizer::from_folder(path);
  if (path.filename() == "encoder.json") return text::Gpt2Tokenizer::from_folder(path.parent_path());
  if (fs::is_regular_file(path)) return text::Llama2cTokenizer::from_file(path);
  fail<UsageError>("--tokenizer '", s,
                   "': not gpt2, stories260K, smollm2, a GGUF file, a GPT-2 tokenizer folder, nor a llama2.c "
                   "tokenizer file");
}

}  // namespace p4lm::cli::lm
