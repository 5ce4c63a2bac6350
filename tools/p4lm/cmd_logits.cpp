// `p4lm logits`: the logits of the last position of a token sequence, as one JSON array (for checks
// against other implementations).
//
//   p4lm logits --model stories260K --ids 1,403,407
//   p4lm logits --model gpt2/ --prompt "Hello world" --tokenizer gpt2
//   p4lm logits --model smollm2 --prompt "The best space movie is"   (the GGUF's own tokenizer)

#include <iostream>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include <p4lm/core/config.hpp>

#include "p4lm/command.hpp"
#include "p4lm/lm_common.hpp"

namespace p4lm::cli {
namespace {

struct LogitsConfig {
  Param<std::string> model{"", lm::model_help};
  Param<std::vector<std::int32_t>> ids{{}, "token ids, comma-separated"};
  Param<std::string> prompt{"", "text to tokenize instead of --ids"};
  Param<std::string> tokenizer{"", lm::tokenizer_help};
};

}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::LogitsConfig, model, ids, prompt, tokenizer);

namespace p4lm::cli {
namespace {

int run_logits(std::span<const std::string> args) {
  const auto config = parse_flags<LogitsConfig>(args);
  if (config.ids->empty() == config.prompt->empty())
    fail<UsageError>("give exactly one of --ids and --prompt");
  auto [model, tok, chat] = lm::load_model_and_tokenizer(*config.model, *config.tokenizer);
  std::vector<std::int32_t> ids = *config.ids;
  if (ids.empty()) ids = lm::encode_prompt(tok, *config.prompt);
  return std::visit(
      [&](auto& m) {
        for (const auto id : ids)
          if (id < 0 || static_cast<std::size_t>(id) >= m.config().vocab_size)
            fail<UsageError>("--ids: id ", id, " is outside the model's vocabulary [0, ",
                             m.config().vocab_size, ")");
        if (ids.size() > m.config().max_seq)
          fail<UsageError>(ids.size(), " tokens exceed the model's context of ", m.config().max_seq);
        m.forward({.ids = TensorView<backend::cpu, std::int32_t>(ids.data(), Shape{1, ids.size()})});
        const auto last = m.last_logits();
        nlohmann::json out = nlohmann::json::array();
        for (std::size_t j = 0; j < last.numel(); ++j) out.push_back(last.data()[j]);
        std::cout << out.dump() << '\n';
        return 0;
      },
      model);
}

const Registration logits_registration{
    "logits", Command{"print the last position's logits of a token sequence as a JSON array",
                      flags_help<LogitsConfig>(), run_logits}};

}  // namespace
}  // namespace p4lm::cli
