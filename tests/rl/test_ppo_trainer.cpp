#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <span>
#include <vector>

#include "p4lm/model/causal_lm.hpp"
#include "p4lm/model/generate.hpp"
#include "p4lm/rl/ppo_trainer.hpp"

using namespace p4lm;

namespace {

// A bandit-sized LM: 8 tokens, one layer; at initialisation every token is about equally likely.
LlamaLM<> tiny_lm(std::uint64_t seed) {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 8;
  c.d_model = 16;
  c.n_layers = 1;
  c.n_heads = 2;
  c.d_ff = 32;
  c.max_seq = 16;
  c.tied_head = false;
  LlamaLM<> lm(c);
  Rng rng(seed);
  lm.init_random(rng, 0.1);
  return lm;
}

constexpr std::int32_t kGood = 5, kBos = 1;

// Reward: how many times the good token occurs in the response (optimum: every token).
struct CountToken {
  std::vector<double> operator()(std::span<const rl::Sample> batch) const {
    std::vector<double> s;
    for (const auto& x : batch)
      s.push_back(static_cast<double>(std::count(x.response.begin(), x.response.end(), kGood)));
    return s;
  }
};

std::vector<rl::Prompt> prompts(std::size_t n) {
  return std::vector<rl::Prompt>(n, rl::Prompt{0, {kBos}});
}

rl::PPOConfig toy_config() {
  rl::PPOConfig c;
  c.batch_size = 32;
  c.mini_batch_size = 8;
  c.ppo_epochs = 4;
  c.learning_rate = 3e-3;
  c.response_length = 6;
  c.init_kl_coef = 0.0;
  c.gamma = 1.0;
  c.lam = 0.95;
  c.vf_coef = 0.1;
  c.seed = 7;
  return c;
}

}  // namespace

TEST_CASE("PPO's first rollout: policy equals reference, ratio 1, log-probs equal the decoder's",
          "[rl][ppo]") {
  using Policy = rl::LMPolicy<LlamaLM<>>;
  auto c = toy_config();
  c.init_kl_coef = 0.1;
  rl::PPOTrainer<Policy, CountToken> ppo(Policy(tiny_lm(1)), CountToken{}, c);
  const auto ps = prompts(c.batch_size);
  const auto m = ppo.step(ps);
  CHECK(m.at("objective/kl") == 0.0);  // identical models, identical forward: exactly zero
  const auto& r = ppo.last_rollout();
  REQUIRE(r.size() == 32);
  CHECK(r.response_len == 6);
  double worst = 0;
  for (std::size_t b = 0; b < r.size(); ++b)
    for (std::size_t k = 0; k < r.responses[b].size(); ++k)
      worst = std::max(
          worst, std::abs(double(r.logprobs.data()[b * 6 + k]) - double(r.ref_logprobs.data()[b * 6 + k])));
  CHECK(worst == 0.0);
  // Scores are the reward's count.
  for (std::size_t b = 0; b < r.size(); ++b)
    CHECK(r.scores[b] == double(std::count(r.responses[b].begin(), r.responses[b].end(), kGood)));
  CHECK(m.at("objective/scores") > 0.3);  // about 6/8 at random
  CHECK(m.at("objective/entropy") == Approx(6 * std::log(8.0)).epsilon(0.05));
}

TEST_CASE("PPO reaches the toy's optimum (every token the rewarded one)", "[rl][ppo]") {
  using Policy = rl::LMPolicy<LlamaLM<>>;
  auto c = toy_config();
  rl::PPOTrainer<Policy, CountToken, rl::FixedKL> ppo(Policy(tiny_lm(2)), CountToken{}, c);
  const auto ps = prompts(c.batch_size);
  double score = 0;
  std::size_t it = 0;
  for (; it < 60 && score < 5.7; ++it) {
    const auto m = ppo.step(ps);
    score = m.at("objective/scores");
    if (it % 5 == 0)
      WARN("it " << it << " score " << score << " kl " << m.at("objective/kl") << " clipfrac "
                 << m.at("policy/clipfrac") << " approxkl " << m.at("policy/approxkl") << " vloss "
                 << m.at("loss/value"));
  }
  INFO("iterations " << it);
  CHECK(score >= 5.7);
}
