#pragma once
// The tokenizer stored in a GGUF file's metadata, as a Gpt2Tokenizer (byte-level BPE):
//   tokenizer.ggml.model    "gpt2" (byte-level BPE; SentencePiece "llama" vocabularies are refused)
//   tokenizer.ggml.pre      pre-tokenizer: "smollm" (digits alone, then GPT-2's pattern) or
//                           "gpt2"/"default" (GPT-2's pattern)
//   tokenizer.ggml.tokens   token strings in GPT-2's printable byte spelling
//   tokenizer.ggml.merges   "left right", highest priority first
//   tokenizer.ggml.token_type  3 = control token (<|im_start|> ...): kept verbatim and recognised
//                           in text by encode(), as HF tokenizers and llama.cpp do
//   tokenizer.ggml.bos_token_id / eos_token_id / unknown_token_id (SmolLM2 has no token for a few
//                           control bytes: they become the unknown token, as in HF tokenizers)
//
//   p4lm::GgufFile f("SmolLM2-135M-Instruct.Q4_1.gguf");
//   auto tok = p4lm::text::gguf_tokenizer(f);
//   tok.encode("<|im_start|>user\nHi<|im_end|>");   // {1, 4093, 198, 26843, 2}

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/io/gguf.hpp"
#include "p4lm/text/gpt2_tokenizer.hpp"

namespace p4lm::text {

inline Gpt2Tokenizer gguf_tokenizer(const io::GgufFile& f) {
  const auto model = f.get_or<std::string>("tokenizer.ggml.model", "");
  if (model != "gpt2")
    throw ParseError(f.path(), 0, "tokenizer.ggml.model",
                     "tokenizer model '" + model + "' is not supported (only byte-level BPE \"gpt2\")");
  const auto pre_name = f.get_or<std::string>("tokenizer.ggml.pre", "default");
  Gpt2Tokenizer::VocabOptions options;
  if (pre_name == "smollm")
    options.pretokenizer = Pretokenizer::smollm;
  else if (pre_name == "gpt2" || pre_name == "default")
    options.pretokenizer = Pretokenizer::gpt2;
  else
    throw ParseError(f.path(), 0, "tokenizer.ggml.pre",
                     "pre-tokenizer '" + pre_name + "' is not supported (smollm, gpt2, default)");
  const auto& tokens = f.string_array("tokenizer.ggml.tokens");
  const auto& merges = f.string_array("tokenizer.ggml.merges");
  if (f.has("tokenizer.ggml.token_type")) {
    const auto types = f.int_array("tokenizer.ggml.token_type");
    if (types.size() != tokens.size())
      throw ParseError(
          f.path(), 0, "tokenizer.ggml.token_type",
          std::to_string(types.size()) + " types for " + std::to_string(tokens.size()) + " tokens");
    for (std::size_t i = 0; i < types.size(); ++i)
      if (types[i] == 3) options.special_ids.push_back(static_cast<std::int32_t>(i));
  }
  options.parse_special = true;
  auto id = [&](const char* key) -> std::optional<std::int32_t> {
    if (!f.has(key)) return std::nullopt;
    return f.get<std::int32_t>(key);
  };
  options.bos = id("tokenizer.ggml.bos_token_id");
  options.eos = id("tokenizer.ggml.eos_token_id");
  options.unk = id("tokenizer.ggml.unknown_token_id");
  return Gpt2Tokenizer::from_vocab(tokens, merges, options, f.path());
}

}  // namespace p4lm::text
