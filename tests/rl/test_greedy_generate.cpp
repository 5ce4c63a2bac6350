// rl::greedy_generate / sample_generate (rl/greedy_generate.hpp): the decoding settings reach every
// chunk of a batch, and greedy decoding ignores the sampling ones.

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "p4lm/rl/greedy_generate.hpp"
#include "p4lm/rl/pitch_policy.hpp"
#include "p4lm/text/repetition.hpp"
#include "tiny_pitch_run.hpp"

using namespace p4lm;

TEST_CASE("greedy_generate: no_repeat_ngram_size reaches every chunk; temperature plays no part",
          "[rl][generate]") {
  p4lm_test::TinyRun run;
  const auto loader = rl::PitchPolicyLoader::open(run.dir.path);
  auto policy = loader.load<p4lm_test::kDim>();
  const train::PitchSources sources(run.dir.path);
  rl::PitchPrompter prompter(loader, sources, policy.prefix().keys());
  std::vector<rl::Prompt> prompts;
  for (std::int64_t user : {10, 11, 12})
    for (std::int64_t movie : {100, 101}) prompts.push_back(prompter.prompt(user, movie));

  const SamplingOptions plain{.max_new_tokens = 24, .eos = loader.codec().eos};
  const auto loops = rl::greedy_generate(policy, prompts, plain, 4);  // chunks of 4 and 2
  double repeated = 0;
  for (const auto& t : loops.tokens) repeated += text::repeated_ngram_share(t, 2);
  REQUIRE(repeated > 0);  // the random model's greedy continuations repeat themselves

  SamplingOptions refusing = plain;
  refusing.no_repeat_ngram_size = 2;
  refusing.temperature = 0.9, refusing.top_k = 3, refusing.seed = 5;  // greedy: ignored
  const auto g = rl::greedy_generate(policy, prompts, refusing, 4);
  REQUIRE(g.tokens.size() == prompts.size());
  for (const auto& t : g.tokens) CHECK(text::repeated_ngram_share(t, 2) == 0.0);
  refusing.temperature = 0, refusing.top_k = 0, refusing.seed = 0;
  CHECK(rl::sample_generate(policy, prompts, refusing, 4).tokens == g.tokens);
  CHECK(g.tokens != loops.tokens);
}
