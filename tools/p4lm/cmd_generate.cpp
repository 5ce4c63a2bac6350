// `p4lm generate`: text from a causal LM (KV-cache decoding), printed as the prompt plus its
// continuation, like llama2.c's run.c; with --chat, the model's answer to one user message in its
// chat format (ChatML for SmolLM2), printed alone.
//
//   p4lm generate --model stories260K --prompt "Once upon a time" --temperature 0
//   p4lm generate --model gpt2/ --tokenizer gpt2 --prompt "Hello" --top-p 0.9 --seed 7
//   p4lm generate --model smollm2 --chat "Recommend a movie about space" --temperature 0.2 --top-p 0.9

#include <iostream>
#include <string>
#include <variant>
#include <vector>

#include <p4lm/core/config.hpp>
#include <p4lm/model/generate.hpp>

#include "p4lm/command.hpp"
#include "p4lm/lm_common.hpp"

namespace p4lm::cli {
namespace {

struct GenerateConfig {
  Param<std::string> model{"", lm::model_help};
  Param<std::string> tokenizer{"", lm::tokenizer_help};
  Param<std::string> prompt{"", "prompt text (empty: start from BOS / <|endoftext|>)"};
  Param<std::string> chat{"", "a user message: the answer in the model's chat format (GGUF models)"};
  Param<std::string> system{"", "system message for --chat (default: the chat template's)"};
  Param<double> temperature{1.0, "sampling temperature (0: greedy)", between(0, 100)};
  Param<int> top_k{0, "keep the k most likely tokens (0: all)"};
  Param<double> top_p{1.0, "nucleus sampling: keep the smallest set reaching this probability (1: all)",
                      Range{0, 1, true, false}};
  Param<int> max_new_tokens{256, "tokens to generate at most (stops earlier at EOS)"};
  Param<std::uint64_t> seed{0, "random seed (Philox stream per sequence)"};
};

}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::GenerateConfig, model, tokenizer, prompt, chat, system, temperature, top_k,
                        top_p, max_new_tokens, seed);

namespace p4lm::cli {
namespace {

int run_generate(std::span<const std::string> args) {
  const auto config = parse_flags<GenerateConfig>(args);
  if (*config.max_new_tokens < 0) fail<UsageError>("--max-new-tokens must be >= 0");
  if (*config.top_k < 0) fail<UsageError>("--top-k must be >= 0");
  if (!(*config.top_p > 0 && *config.top_p <= 1)) fail<UsageError>("--top-p must be in (0, 1]");
  if (*config.temperature < 0) fail<UsageError>("--temperature must be >= 0");
  if (!config.chat->empty() && !config.prompt->empty()) fail<UsageError>("give --prompt or --chat, not both");
  auto [model, tok, chat] = lm::load_model_and_tokenizer(*config.model, *config.tokenizer);
  const bool chatting = !config.chat->empty();
  if (chatting && !chat)
    fail<UsageError>("--chat needs a model with a chat template (a GGUF file such as smollm2)");
  std::vector<std::int32_t> prompt;
  if (chatting) {
    std::vector<text::ChatMessage> messages;
    if (!config.system->empty()) messages.push_back({"system", *config.system});
    messages.push_back({"user", *config.chat});
    prompt = lm::encode_prompt(tok, chat->format(messages));
  } else {
    prompt = lm::encode_prompt(tok, *config.prompt);
  }
  return std::visit(
      [&](auto& m) {
        if (lm::vocab_of(tok) > m.config().vocab_size)
          fail<UsageError>("--tokenizer has ", lm::vocab_of(tok), " tokens but the model only ",
                           m.config().vocab_size);
        // Never run past the model's context.
        const std::size_t room = m.config().max_seq > prompt.size() ? m.config().max_seq - prompt.size() : 0;
        if (room == 0)
          fail<UsageError>("--prompt has ", prompt.size(), " tokens, the model's context is ",
                           m.config().max_seq);
        SamplingOptions o{
            .max_new_tokens = std::min<std::size_t>(static_cast<std::size_t>(*config.max_new_tokens), room),
            .temperature = *config.temperature,
            .top_k = static_cast<std::size_t>(*config.top_k),
            .top_p = *config.top_p,
            .eos = lm::eos_of(tok),
            .seed = *config.seed};
        const auto out = generate(m, {prompt}, o);
        std::vector<std::int32_t> ids = chatting ? std::vector<std::int32_t>{} : prompt;
        ids.insert(ids.end(), out.tokens[0].begin(), out.tokens[0].end());
        if (chatting && out.stopped[0]) ids.pop_back();  // the end-of-turn token
        std::cout << lm::decode(tok, ids) << '\n';
        return 0;
      },
      model);
}

const Registration generate_registration{
    "generate",
    Command{"generate text from a causal LM (GGUF Llama, llama2.c .bin, HF GPT-2, p4lm checkpoint)",
            flags_help<GenerateConfig>(), run_generate}};

}  // namespace
}  // namespace p4lm::cli
