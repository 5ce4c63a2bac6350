// `p4lm tokenize`: token ids of text, as JSON arrays, with GPT-2's or a llama2.c tokenizer.
//
//   p4lm tokenize --tokenizer gpt2 --text "hello world"          -> [31373,995]
//   p4lm tokenize --tokenizer stories260K --jsonl prompts.jsonl  -> one array per {"text": ...} line
//   p4lm tokenize --tokenizer smollm2 --text "<|im_start|>user"  -> [1,4093] (SmolLM2 from GGUF)

#include <filesystem>
#include <iostream>
#include <string>
#include <variant>

#include <p4lm/core/config.hpp>
#include <p4lm/core/error.hpp>
#include <p4lm/io/jsonl.hpp>
#include <p4lm/text/gpt2_tokenizer.hpp>
#include <p4lm/text/llama2c_tokenizer.hpp>

#include "p4lm/command.hpp"
#include "p4lm/tokenizer_spec.hpp"

namespace p4lm::cli {
namespace {

struct TokenizeConfig {
  Param<std::string> tokenizer{"gpt2",
                               "gpt2 | stories260K (bundled), smollm2 (model cache), a GGUF model file, a "
                               "folder with encoder.json + vocab.bpe, or a llama2.c tok*.bin file"};
  Param<std::string> text{"", "text to encode (one JSON array printed)"};
  Param<std::string> jsonl{"", "JSONL file of {\"text\": ...} objects (one JSON array per line)"};
  Param<bool> bos{true, "prepend BOS (llama2.c tokenizers, as run.c does; GPT-2 never adds one)"};
  Param<bool> special{false,
                      "encode <|endoftext|> in the text as its id 50256 (GPT-2; GGUF vocabularies always "
                      "recognise their control tokens)"};
};

}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::TokenizeConfig, tokenizer, text, jsonl, bos, special);

namespace p4lm::cli {
namespace {

using lm::AnyTokenizer;

int run_tokenize(std::span<const std::string> args) {
  const auto config = parse_flags<TokenizeConfig>(args);
  if (config.text->empty() == config.jsonl->empty())
    fail<UsageError>("give exactly one of --text and --jsonl");
  const auto tokenizer = lm::load_tokenizer(*config.tokenizer, /*gpt2_model=*/true);
  auto encode = [&](const std::string& s) {
    return std::visit(
        [&](const auto& tok) -> std::vector<std::int32_t> {
          using T = std::decay_t<decltype(tok)>;
          if constexpr (std::is_same_v<T, text::Gpt2Tokenizer>)
            return *config.special ? tok.encode_with_special(s) : tok.encode(s);
          else
            return tok.encode(s, {.bos = *config.bos});
        },
        tokenizer);
  };
  if (!config.text->empty()) {
    std::cout << nlohmann::json(encode(*config.text)).dump() << '\n';
    return 0;
  }
  io::for_each_jsonl(std::filesystem::path(*config.jsonl), [&](const nlohmann::json& j, std::size_t) {
    std::cout << nlohmann::json(encode(j.at("text").get<std::string>())).dump() << '\n';
  });
  return 0;
}

const Registration tokenize_registration{
    "tokenize", Command{"print token ids of text (byte-level BPE, GGUF or llama2.c tokenizer) as JSON arrays",
                        flags_help<TokenizeConfig>(), run_tokenize}};

}  // namespace
}  // namespace p4lm::cli
