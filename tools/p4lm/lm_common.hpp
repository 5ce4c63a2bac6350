#pragma once
// Shared by the language-model subcommands (generate, logits, train-lm): loading a model and a
// tokenizer from command-line specs.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include <p4lm/core/data_dir.hpp>
#include <p4lm/core/error.hpp>
#include <p4lm/model/checkpoint.hpp>
#include <p4lm/model/gguf_model.hpp>
#include <p4lm/text/chat_template.hpp>
#include "p4lm/tokenizer_spec.hpp"

namespace p4lm::cli::lm {

inline constexpr const char* model_help =
    "stories260K (bundled), smollm2 (model cache), a GGUF Llama file (.gguf), a llama2.c .bin, a p4lm "
    "checkpoint (.safetensors), or a Hugging Face GPT-2 folder / model.safetensors";

inline std::filesystem::path model_path(const std::string& spec) {
  if (spec.empty()) fail<UsageError>("--model is required (", model_help, ")");
  if (spec == "stories260K") return data_path("tiny-lm/stories260K/stories260K.bin");
  if (spec == "smollm2") return smollm2_or_fail();
  return spec;
}

inline bool is_gguf(const std::filesystem::path& path) {
  return path.extension() == ".gguf";
}

inline AnyLM load_model(const std::string& spec) {
  const auto path = model_path(spec);
  if (is_gguf(path)) return AnyLM(load_gguf_model(path).model);
  return load_any_lm(path);
}

// A model with its tokenizer: a GGUF file brings its own (and its chat template) unless
// `tokenizer_spec` names another.
struct LoadedLM {
  AnyLM model;
  AnyTokenizer tokenizer;
  std::optional<text::ChatTemplate> chat;
};

inline LoadedLM load_model_and_tokenizer(const std::string& model_spec, const std::string& tokenizer_spec) {
  const auto path = model_path(model_spec);
  if (is_gguf(path)) {
    auto g = load_gguf_model(path);
    AnyTokenizer tok = tokenizer_spec.empty() ? AnyTokenizer(std::move(g.tokenizer))
                                              : load_tokenizer(tokenizer_spec, /*gpt2_model=*/false);
    return {AnyLM(std::move(g.model)), std::move(tok), std::move(g.chat)};
  }
  AnyLM model = load_any_lm(path);
  auto tok = load_tokenizer(tokenizer_spec, std::holds_alternative<GPT2LM<float>>(model));
  return {std::move(model), std::move(tok), std::nullopt};
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

// Ids of a training document: llama2.c tokenizers start it with BOS, GPT-2 ends it with EOT, so
// that documents concatenated into one stream stay apart.
inline std::vector<std::int32_t> encode_document(const AnyTokenizer& tok, const std::string& text) {
  return std::visit(
      [&](const auto& t) {
        using Tok = std::decay_t<decltype(t)>;
        std::vector<std::int32_t> ids;
        if constexpr (std::is_same_v<Tok, text::Llama2cTokenizer>) {
          ids = t.encode(text, {.bos = true});
        } else {
          ids = t.encode(text);
          ids.push_back(*t.eos_id());
        }
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
