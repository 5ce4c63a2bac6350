#include <catch2/catch.hpp>

#include <algorithm>
#include <span>
#include <vector>

#include "p4lm/model/causal_lm.hpp"
#include "p4lm/rl/policy_gradient.hpp"

#include "toy_bandit.hpp"

using namespace p4lm;
using namespace p4lm::rl_test;

TEST_CASE("leave-one-out advantages by hand", "[rl][pg]") {
  const std::vector<double> r{1, 2, 3, 6};
  const auto a2 = rl::rloo_advantages(r, 2);
  CHECK(a2 == std::vector<double>{-1, 1, -3, 3});
  const auto a4 = rl::rloo_advantages(r, 4);
  CHECK(a4[0] == Approx(1 - 11.0 / 3));
  CHECK(a4[1] == Approx(2 - 10.0 / 3));
  CHECK(a4[2] == Approx(0.0).margin(1e-12));
  CHECK(a4[3] == Approx(4.0));
  CHECK_THROWS_AS(rl::rloo_advantages(r, 3), InvalidArgument);
}

TEST_CASE("the KL-regularised policy gradient (RLOO) reaches the toy's optimum", "[rl][pg]") {
  using Policy = rl::LMPolicy<LlamaLM<>>;
  rl::PGConfig c;
  c.batch_size = 32;
  c.rloo_k = 4;
  c.mini_batch_size = 16;
  c.learning_rate = 1e-2;
  c.init_kl_coef = 0.0;
  c.response_length = 6;
  c.seed = 5;
  rl::PolicyGradientTrainer<Policy, CountToken> pg(Policy(toy_lm(4)), CountToken{}, c);
  const std::vector<rl::Prompt> prompts(8, rl::Prompt{0, {1}});
  double score = 0;
  std::size_t it = 0;
  // 15 iterations with these seeds.
  for (; it < 40 && score < 5.7; ++it) score = pg.step(prompts).at("objective/scores");
  INFO("iterations " << it << ", score " << score);
  CHECK(score >= 5.7);
}

TEST_CASE("PGConfig is validated at construction, naming the field", "[rl][pg]") {
  using Policy = rl::LMPolicy<LlamaLM<>>;
  rl::PGConfig c;
  c.rloo_k = 1;
  CHECK_THROWS_WITH((rl::PolicyGradientTrainer<Policy, CountToken>(Policy(toy_lm(1)), CountToken{}, c)),
                    Catch::Contains("rloo_k = 1"));
}
