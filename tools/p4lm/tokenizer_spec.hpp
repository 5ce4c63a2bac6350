#pragma once
// Tokenizers named on the command line (`--tokenizer`): shared by tokenize, generate, logits and
// train-lm.

#include <filesystem>
#include <string>
#include <variant>

#include <p4lm/core/error.hpp>
#include <p4lm/text/gpt2_tokenizer.hpp>
#include <p4lm/text/llama2c_tokenizer.hpp>

namespace p4lm::cli::lm {

using AnyTokenizer = std::variant<text::Gpt2Tokenizer, text::Llama2cTokenizer>;

inline constexpr const char* tokenizer_help =
    "gpt2 | stories260K (bundled), a folder with encoder.json + vocab.bpe, or a llama2.c tok*.bin file "
    "(default: stories260K for stories260K, gpt2 for GPT-2 models)";

// `gpt2_model` picks the default when spec is empty.
inline AnyTokenizer load_tokenizer(const std::string& spec, bool gpt2_model) {
  namespace fs = std::filesystem;
  std::string s = spec;
  if (s.empty()) s = gpt2_model ? "gpt2" : "stories260K";
  if (s == "gpt2") return text::Gpt2Tokenizer::bundled();
  if (s == "stories260K") return text::Llama2cTokenizer::bundled();
  const fs::path path(s);
  if (fs::is_directory(path)) return text::Gpt2Tokenizer::from_folder(path);
  if (path.filename() == "encoder.json") return text::Gpt2Tokenizer::from_folder(path.parent_path());
  if (fs::is_regular_file(path)) return text::Llama2cTokenizer::from_file(path);
  fail<UsageError>("--tokenizer '", s,
                   "': not gpt2, stories260K, a GPT-2 tokenizer folder, nor a llama2.c tokenizer file");
}

}  // namespace p4lm::cli::lm
