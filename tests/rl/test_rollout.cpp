#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <span>
#include <vector>

#include "p4lm/model/causal_lm.hpp"
#include "p4lm/model/generate.hpp"
#include "p4lm/rl/rollout.hpp"
#include "p4lm/rl/shaped_reward.hpp"

using namespace p4lm;

namespace {

LlamaLM<> small_lm(std::uint64_t seed) {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 11;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_ff = 24;
  c.max_seq = 24;
  c.tied_head = false;
  LlamaLM<> lm(c);
  Rng rng(seed);
  lm.init_random(rng, 0.3);  // far from uniform: some samples hit EOS early, some never
  return lm;
}

struct Length {
  std::vector<double> operator()(std::span<const rl::Sample> batch) const {
    std::vector<double> s;
    for (const auto& x : batch) s.push_back(static_cast<double>(x.response.size()) + 0.5 * x.ended);
    return s;
  }
};

using Policy = rl::LMPolicy<LlamaLM<>>;

}  // namespace

TEST_CASE("rollout: the decoder's samples, scored by one batched forward per model", "[rl][rollout]") {
  Policy policy(small_lm(5));
  Policy reference = policy.clone();
  // Make the reference differ so the KL is not zero.
  for (auto& p : reference.parameters())
    for (auto& x : p.value.span()) x *= 0.9f;
  rl::ValueHead<float> head(16);
  Rng hr(3);
  head.init(hr, 0.5);
  rl::RolloutCollector<Policy> collect(policy, reference);
  const std::vector<rl::Prompt> prompts{{0, {1}}, {1, {1, 3, 4}}, {2, {1, 2}}, {3, {1, 7, 7, 7}}};
  rl::RolloutOptions o{.max_new_tokens = 6, .eos = 2, .missing_eos_penalty = 0.25, .seed = 99};
  rl::Rollout<float> r;
  Length reward;
  collect.collect(r, prompts, o, reward, &head);

  // The same samples as the decoder gives for the same seed, with the same log-probs up to rounding.
  auto lm = policy.lm().clone();
  std::vector<std::vector<std::int32_t>> ids;
  for (const auto& p : prompts) ids.push_back(p.ids);
  const auto g = generate(lm, ids, {.max_new_tokens = 6, .eos = 2, .seed = 99});
  REQUIRE(r.responses == g.tokens);
  bool some_ended = false, some_not = false;
  for (std::size_t b = 0; b < 4; ++b) {
    some_ended |= g.stopped[b], some_not |= !g.stopped[b];
    CHECK(r.ended[b] == g.stopped[b]);
    for (std::size_t k = 0; k < 6; ++k) {
      const bool real = k < g.tokens[b].size();
      CHECK(r.mask.data()[b * r.response_len + k] == (real ? 1.0f : 0.0f));
      if (real) CHECK(r.logprobs.data()[b * r.response_len + k] == Approx(g.logprobs[b][k]).margin(2e-5));
    }
    // Score: the reward's, minus the penalty where no EOS came.
    const double raw = double(g.tokens[b].size()) + 0.5 * g.stopped[b];
    CHECK(r.raw_scores[b] == raw);
    CHECK(r.scores[b] == raw - (g.stopped[b] ? 0.0 : 0.25));
  }
  INFO("the seed should give both kinds of samples");
  CHECK(some_ended);
  CHECK(some_not);

  // A length floor: an ended sample with fewer than 6 tokens before its EOS also loses 0.5.
  auto floored = o;
  floored.min_response_length = 6, floored.short_response_penalty = 0.5;
  rl::Rollout<float> f;
  collect.collect(f, prompts, floored, reward, &head);
  REQUIRE(f.responses == g.tokens);
  std::size_t short_ones = 0;
  for (std::size_t b = 0; b < 4; ++b) {
    const bool short_one = g.stopped[b] && g.tokens[b].size() - 1 < 6;
    short_ones += short_one;
    CHECK(f.scores[b] == r.scores[b] - (short_one ? 0.5 : 0.0));
  }
  INFO("the seed should give a short sample");
  CHECK(short_ones > 0);

  // A repetition penalty: every sample loses 0.5 x the share of its tokens (n = 1) before EOS that
  // it has emitted before, counted here with a set.
  auto repeating = o;
  repeating.repeated_ngram_size = 1, repeating.repeated_ngram_penalty = 0.5;
  rl::Rollout<float> p;
  collect.collect(p, prompts, repeating, reward, &head);
  REQUIRE(p.responses == g.tokens);
  REQUIRE(p.repeated_shares.size() == 4);
  bool some_repeat = false;
  for (std::size_t b = 0; b < 4; ++b) {
    const std::size_t said = g.tokens[b].size() - (g.stopped[b] ? 1 : 0);
    const std::set<std::int32_t> distinct(g.tokens[b].begin(), g.tokens[b].begin() + std::ptrdiff_t(said));
    const double share = said ? double(said - distinct.size()) / double(said) : 0.0;
    some_repeat |= share > 0;
    CHECK(p.repeated_shares[b] == Approx(share));
    CHECK(p.scores[b] == Approx(r.scores[b] - 0.5 * share));
  }
  INFO("the seed should give a sample that repeats a token");
  CHECK(some_repeat);
  repeating.repeated_ngram_size = 0;
  CHECK_THROWS_WITH(collect.collect(p, prompts, repeating, reward, &head),
                    Catch::Contains("repeated_ngram_size must be >= 1"));

  // Each row scored alone (no padding, B = 1) gives the batched numbers: positions line up.
  for (std::size_t b = 0; b < 4; ++b) {
    std::vector<std::int32_t> seq = prompts[b].ids;
    seq.insert(seq.end(), g.tokens[b].begin(), g.tokens[b].end());
    const std::size_t n = seq.size(), Lp = prompts[b].ids.size();
    CpuTensor<std::int32_t> in(Shape{1, n}), tg(Shape{1, n}, -100);
    std::copy(seq.begin(), seq.end(), in.data());
    for (std::size_t k = 0; k < g.tokens[b].size(); ++k) tg.data()[Lp + k - 1] = g.tokens[b][k];
    CpuTensor<float> lp(Shape{1, n}), ent(Shape{1, n}), v(Shape{1, n});
    reference.lm().forward_logprobs({.ids = in.view(), .targets = tg.view()}, lp.view());
    for (std::size_t k = 0; k < g.tokens[b].size(); ++k)
      CHECK(r.ref_logprobs.data()[b * r.response_len + k] == Approx(lp.data()[Lp + k - 1]).margin(1e-5));
    policy.lm().forward_logprobs({.ids = in.view(), .targets = tg.view()}, lp.view(), ent.view());
    head.forward(v.view(), policy.lm().hidden());
    for (std::size_t k = 0; k < g.tokens[b].size(); ++k) {
      CHECK(r.values.data()[b * r.response_len + k] == Approx(v.data()[Lp + k - 1]).margin(1e-5));
      CHECK(r.entropy.data()[b * r.response_len + k] == Approx(ent.data()[Lp + k - 1]).margin(1e-5));
    }
  }
}

TEST_CASE("rollout with a prefix of soft tokens before each prompt", "[rl][rollout]") {
  auto lm = small_lm(8);
  CpuTensor<float> table(Shape{2, 3, 16});
  Rng rng(4);
  for (auto& x : table.span()) x = static_cast<float>(rng.normal());
  Policy policy(std::move(lm), table);
  Policy reference = policy.clone();
  CHECK(policy.prefix_length() == 3);
  rl::RolloutCollector<Policy> collect(policy, reference);
  // Prompt key 1 has no text at all: the soft tokens alone start it.
  const std::vector<rl::Prompt> prompts{{0, {1, 4}}, {1, {}}, {1, {1}}};
  rl::Rollout<float> r;
  Length reward;
  collect.collect(r, prompts, {.max_new_tokens = 5, .seed = 3}, reward);
  // The decoder with the same soft tokens.
  CpuTensor<float> prefix(Shape{3, 3, 16});
  const std::vector<std::size_t> keys{0, 1, 1};
  policy.write_prefix(prefix.view(), keys);
  auto clone = policy.lm().clone();
  const auto g = generate(clone, {{1, 4}, {}, {1}}, {.max_new_tokens = 5, .seed = 3}, prefix.view());
  REQUIRE(r.responses == g.tokens);
  for (std::size_t b = 0; b < 3; ++b)
    for (std::size_t k = 0; k < 5; ++k) {
      CHECK(r.logprobs.data()[b * 5 + k] == Approx(g.logprobs[b][k]).margin(2e-5));
      CHECK(r.ref_logprobs.data()[b * 5 + k] == r.logprobs.data()[b * 5 + k]);  // an exact copy
    }
  // A key outside the table is named.
  const std::vector<rl::Prompt> bad{{5, {1}}};
  CHECK_THROWS_WITH(collect.collect(r, bad, {.max_new_tokens = 2}, reward), Catch::Contains("key 5"));
}

TEST_CASE("KL-shaped rewards by hand", "[rl][rollout]") {
  rl::Rollout<double> r;
  r.prompts = {{0, {1}}, {1, {1}}};
  r.responses = {{3, 4, 2}, {5}};
  r.scores = {2.0, -1.0};
  r.response_len = 3;
  for (auto* t : {&r.mask, &r.logprobs, &r.ref_logprobs, &r.kl, &r.rewards}) t->resize(Shape{2, 3}, 0.0);
  const double mask[] = {1, 1, 1, 1, 0, 0}, lp[] = {-1, -2, -0.5, -3, 0, 0},
               ref[] = {-1.5, -1, -0.5, -2, 0, 0};
  std::copy(mask, mask + 6, r.mask.data());
  std::copy(lp, lp + 6, r.logprobs.data());
  std::copy(ref, ref + 6, r.ref_logprobs.data());
  rl::shape_rewards(r, 0.1, rl::KLEstimator::k1);
  // k1 = lp - ref: 0.5, -1, 0 | -1; rewards = -0.1 k1, + score at the last token.
  const double want[] = {-0.05, 0.1, 2.0, 0.1 - 1.0, 0, 0};
  for (int i = 0; i < 6; ++i) CHECK(r.rewards.data()[i] == Approx(want[i]));
  const auto ret = rl::regularised_returns(r, 0.1);
  CHECK(ret[0] == Approx(2.0 - 0.1 * (0.5 - 1.0)));
  CHECK(ret[1] == Approx(-1.0 - 0.1 * -1.0));
}

TEST_CASE("rollout: a reward that is not finite or miscounts is named", "[rl][rollout]") {
  Policy policy(small_lm(5));
  Policy reference = policy.clone();
  rl::RolloutCollector<Policy> collect(policy, reference);
  const std::vector<rl::Prompt> prompts{{0, {1}}, {42, {1, 3}}};
  rl::Rollout<float> r;
  auto nan_second = [](std::span<const rl::Sample> b) {
    return std::vector<double>{1.0, b.size() > 1 ? std::nan("") : 0.0};
  };
  CHECK_THROWS_WITH(collect.collect(r, prompts, {.max_new_tokens = 3}, nan_second),
                    Catch::Contains("reward of sample 1 (prompt key 42) is nan"));
  auto one = [](std::span<const rl::Sample>) { return std::vector<double>{1.0}; };
  CHECK_THROWS_WITH(collect.collect(r, prompts, {.max_new_tokens = 3}, one),
                    Catch::Contains("returned 1 scores for 2 samples"));
  Length reward;
  CHECK_THROWS_WITH(collect.collect(r, prompts, {.max_new_tokens = 3, .missing_eos_penalty = 1.0}, reward),
                    Catch::Contains("needs an eos token"));
}
