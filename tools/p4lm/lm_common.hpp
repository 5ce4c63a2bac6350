#pragma once
// Shared by the language-model subcommands (generate, logits, train-lm): loading a model and a
// tokenizer from command-line specs.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <p4lm/core/data_dir.hpp>
#include <p4lm/core/error.hpp>
#include <p4lm/model/checkpoint.hpp>
#include "p4lm/tokenizer_spec.hpp"

namespace p4lm::cli::lm {

inline constexpr const char* model_help =
    "stories260K (bundled), a llama2.c .bin, a p4lm checkpoint (.safetensors), or a Hugging Face GPT-2 "
    "folder / model.safetensors";

inline std::filesystem::path model_path(const std::string& spec) {
  if (spec.empty()) fail<UsageError>("--model is required (", model_help, ")");
  if (spec == "stories260K") return data_path("tiny-lm/stories260K/stories260K.bin");
  return spec;
}

inline AnyLM load_model(const std::string& spec) {
  return load_any_lm(model_path(spec));
}

inline bool is_gpt2(const AnyLM& model) {
  return std::holds_alternative<GPT2LM<float>>(model);
}

// Ids of a prompt: llama2.c tokenizers add BOS as run.c does; GPT-2 has none, so an empty GPT-2
// prompt starts from <|endoftext|> (how GPT-2 samples unconditionally).
inline std::vector<std::int32_t> encode_prompt(const AnyTokenizer& tok, const std::string& prompt) {
  return std::visit(
      [&](const auto& t) -> std::vector<std::int32_t> {
        auto ids = t.encode(prompt);
        if (ids.empty() && t.eos_id()) ids.push_back(*t.eos_id());
        return ids;
      },
      tok);
}

inline std::string decode(const AnyTokenizer& tok, const std::vector<std::int32_t>& ids) {
  return std::visit([&](const auto& t) { return t.decode(ids); }, tok);
}

inline std::optional<std::int32_t> eos_of(const AnyTokenizer& tok) {
  return std::visit([](const auto& t) { return t.eos_id(); }, tok);
}

inline std::size_t vocab_of(const AnyTokenizer& tok) {
  return std::visit([](const auto& t) { return static_cast<std::size_t>(t.vocab_size()); }, tok);
}

}  // namespace p4lm::cli::lm
