#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <span>
#include <vector>

#include "p4lm/model/causal_lm.hpp"
#include "p4lm/model/generate.hpp"
#include "p4lm/rl/ppo_trainer.hpp"

#include "toy_bandit.hpp"

using namespace p4lm;
using namespace p4lm::rl_test;

namespace {

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

TEST_CASE("PPO's first rollout: KL exactly 0, a minibatch's ratio starts at 1", "[rl][ppo]") {
  using Policy = rl::LMPolicy<LlamaLM<>>;
  auto c = toy_config();
  c.init_kl_coef = 0.1;
  rl::PPOTrainer<Policy, CountToken> ppo(Policy(toy_lm(1)), CountToken{}, c);
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
  // The first minibatch of the update sees the rollout's policy (the reference is its copy): its
  // forward over 8 of the 32 rows gives the rollout's log-probs, so every ratio starts at 1.
  auto before = ppo.reference().clone();
  rl::MinibatchPass<Policy> pass;
  const std::vector<std::size_t> rows{3, 0, 17, 31, 8, 9, 22, 5};
  pass.forward(before, nullptr, r, rows);
  double diff = 0;
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (std::size_t k = 0; k < 6; ++k)
      diff = std::max(diff, std::abs(double(pass.logprobs().data()[i * 6 + k]) -
                                     double(r.logprobs.data()[rows[i] * 6 + k])));
  CHECK(diff < 1e-6);
}

TEST_CASE("PPO reaches the toy's optimum (every token the rewarded one)", "[rl][ppo]") {
  using Policy = rl::LMPolicy<LlamaLM<>>;
  auto c = toy_config();
  rl::PPOTrainer<Policy, CountToken, rl::FixedKL> ppo(Policy(toy_lm(2)), CountToken{}, c);
  const auto ps = prompts(c.batch_size);
  double score = 0;
  std::size_t it = 0;
  for (; it < 30 && score < 5.7; ++it) {  // 9 iterations with these seeds
    const auto m = ppo.step(ps);
    score = m.at("objective/scores");
  }
  INFO("iterations " << it);
  CHECK(score >= 5.7);
}

TEST_CASE("PPO with AdaptiveKL: the measured KL settles near the target", "[rl][ppo][kl]") {
  // Without the penalty the policy runs to KL = 6 ln 8 = 12.5 nats (every token the good one). With
  // a 2-nat target, AdaptiveKL raises β until the KL-regularised optimum (per token
  // π(5) ∝ exp(1/β) against the reference's near-uniform 1/8) sits at 2 nats: β ≈ 0.6.
  using Policy = rl::LMPolicy<LlamaLM<>>;
  auto c = toy_config();
  c.init_kl_coef = 0.3;
  c.target = 2.0;
  c.horizon = 160;  // 5 batches: β moves by up to 4 % per iteration
  rl::PPOTrainer<Policy, CountToken> ppo(Policy(toy_lm(3)), CountToken{}, c);
  const auto ps = prompts(c.batch_size);
  double kl_sum = 0, max_kl = 0;
  std::size_t counted = 0;
  for (std::size_t it = 0; it < 90; ++it) {
    const auto m = ppo.step(ps);
    max_kl = std::max(max_kl, m.at("objective/kl"));
    if (it >= 50) kl_sum += m.at("objective/kl"), ++counted;
  }
  const double mean_kl = kl_sum / double(counted), beta = ppo.kl_controller().value();
  INFO("mean KL over the last 40 iterations " << mean_kl << ", beta " << beta << ", max KL " << max_kl);
  CHECK(mean_kl == Approx(2.0).epsilon(0.3));
  CHECK(beta > 0.3);                        // the controller had to raise β ...
  CHECK(max_kl < 6 * std::log(8.0) * 0.8);  // ... and the policy never ran to the unpenalised optimum
}

TEST_CASE("a killed and resumed PPO run gives the same result as an uninterrupted one",
          "[rl][ppo][checkpoint]") {
  using Policy = rl::LMPolicy<LlamaLM<>>;
  auto c = toy_config();
  c.init_kl_coef = 0.1;
  c.target = 1.0;
  c.horizon = 64;
  const auto ps = prompts(c.batch_size);
  const auto path = std::filesystem::temp_directory_path() / "p4lm_test_rl_state.safetensors";

  rl::PPOTrainer<Policy, CountToken> whole(Policy(toy_lm(9)), CountToken{}, c);
  rl::Metrics last;
  for (int i = 0; i < 3; ++i) last = whole.step(ps);

  {
    rl::PPOTrainer<Policy, CountToken> killed(Policy(toy_lm(9)), CountToken{}, c);
    killed.step(ps);
    killed.step(ps);
    killed.save(path);
  }
  rl::PPOTrainer<Policy, CountToken> resumed(Policy(toy_lm(9)), CountToken{}, c);  // same warm start
  resumed.load(path);
  CHECK(resumed.iteration() == 2);
  const auto m = resumed.step(ps);
  for (const char* k : {"objective/kl", "objective/scores", "loss/policy", "loss/value", "objective/kl_coef"})
    CHECK(m.at(k) == last.at(k));
  CHECK(resumed.kl_controller().value() == whole.kl_controller().value());
  auto a = whole.state().parameters();
  auto b = resumed.state().parameters();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].name);
    CHECK(std::equal(a[i].value.data(), a[i].value.data() + a[i].value.numel(), b[i].value.data()));
  }

  // A checkpoint of another configuration is refused, naming the field.
  auto other = c;
  other.cliprange = 0.3;
  rl::PPOTrainer<Policy, CountToken> mismatched(Policy(toy_lm(9)), CountToken{}, other);
  CHECK_THROWS_WITH(mismatched.load(path), Catch::Contains("config.cliprange"));
  std::filesystem::remove(path);
}

TEST_CASE("PPOConfig is validated at construction, naming the field", "[rl][ppo]") {
  using Policy = rl::LMPolicy<LlamaLM<>>;
  auto make = [](rl::PPOConfig c) {
    rl::PPOTrainer<Policy, CountToken> t(Policy(toy_lm(1)), CountToken{}, c);
  };
  auto c = toy_config();
  c.mini_batch_size = 5;
  CHECK_THROWS_WITH(make(c), Catch::Contains("mini_batch_size = 5: must divide batch_size"));
  c = toy_config();
  c.kl_penalty = "full";
  CHECK_THROWS_WITH(make(c), Catch::Contains("unknown estimator 'full'"));
  c = toy_config();
  c.missing_eos_penalty = 1.0;
  CHECK_THROWS_WITH(make(c), Catch::Contains("needs eos_token_id"));
  c = toy_config();
  c.short_response_penalty = 1.0;
  CHECK_THROWS_WITH(make(c), Catch::Contains("short_response_penalty = 1: needs eos_token_id"));
  c = toy_config();
  c.min_response_length = c.response_length;
  CHECK_THROWS_WITH(make(c), Catch::Contains("min_response_length = " + std::to_string(c.response_length) +
                                             ": must be < response_length"));
  c = toy_config();
  c.repeated_ngram_size = 0;
  CHECK_THROWS_WITH(make(c), Catch::Contains("repeated_ngram_size = 0: must be >= 1"));
  c = toy_config();
  c.repeated_ngram_penalty = -1;
  CHECK_THROWS_WITH(make(c), Catch::Contains("repeated_ngram_penalty = -1: must be >= 0"));
  c = toy_config();
  c.lam = 1.5;
  CHECK_THROWS_WITH(make(c), Catch::Contains("lam = 1.5"));
  CHECK(toy_config().summary() ==
        "PPO: 32 samples per iteration, 4 epochs x 4 minibatches of 8 = 16 optimizer steps per iteration");
}

TEST_CASE("PPO's approx-KL early stop ends the epochs", "[rl][ppo]") {
  using Policy = rl::LMPolicy<LlamaLM<>>;
  auto c = toy_config();
  c.learning_rate = 3e-2;  // large steps: the policy leaves the rollout's quickly
  c.early_stopping = true;
  c.target_kl = 0.01;
  rl::PPOTrainer<Policy, CountToken> ppo(Policy(toy_lm(6)), CountToken{}, c);
  const auto m = ppo.step(prompts(c.batch_size));
  CHECK(m.at("ppo/early_stopped") == 1.0);
  CHECK(m.at("ppo/optimizer_steps") < 16.0);
}

TEST_CASE("a non-finite policy stops PPO with the sample and quantity named", "[rl][ppo]") {
  using Policy = rl::LMPolicy<LlamaLM<>>;
  rl::PPOTrainer<Policy, CountToken> ppo(Policy(toy_lm(1)), CountToken{}, toy_config());
  ppo.policy().lm().parameter("output.weight").value.data()[3] = std::nanf("");
  CHECK_THROWS_WITH(ppo.step(prompts(32)),
                    Catch::Contains("rollout: the policy's log-prob of sample 0, token 0 is nan"));
}

namespace {

// PPO with reward 0 for everything, so that only c's penalties shape the samples: the metric `key`
// after the first iteration and after the iterations (at most max_iterations) until done(metric).
struct PenaltyRun {
  double first = 0, last = 0;
  std::size_t iterations = 0;
};
template <class Done>
PenaltyRun run_until(const rl::PPOConfig& c, const std::string& key, std::size_t max_iterations, Done done) {
  using Policy = rl::LMPolicy<LlamaLM<>>;
  auto nothing = [](std::span<const rl::Sample> b) { return std::vector<double>(b.size(), 0.0); };
  rl::PPOTrainer<Policy, decltype(nothing)> ppo(Policy(toy_lm(12)), nothing, c);
  const auto ps = prompts(c.batch_size);
  PenaltyRun r;
  r.first = r.last = ppo.step(ps).at(key);
  for (r.iterations = 1; r.iterations < max_iterations && !done(r.last); ++r.iterations)
    r.last = ppo.step(ps).at(key);
  return r;
}

}  // namespace

TEST_CASE("PPO learns to end its samples when a missing EOS is penalised", "[rl][ppo]") {
  // A sample without EOS (token 2) within 6 tokens scores -1. At random 1 - (7/8)^6 = 45 % of the
  // samples end; the optimum ends all of them (variable lengths, so GAE and the masks see ragged
  // rows). 3 iterations with these seeds (0.625 of the samples ended at first).
  auto c = toy_config();
  c.eos_token_id = 2;
  c.missing_eos_penalty = 1.0;
  const auto r = run_until(c, "env/ended_fraction", 30, [](double ended) { return ended >= 0.97; });
  INFO("iterations " << r.iterations << ", ended " << r.first << " -> " << r.last);
  CHECK(r.first < 0.8);
  CHECK(r.last >= 0.97);
}

TEST_CASE("PPO learns to stop repeating itself when repeats are penalised", "[rl][ppo]") {
  // A sample loses the share of its 6 tokens (n = 1) it has emitted before. Drawn uniformly from 8
  // tokens, 6 - 8 (1 - (7/8)^6) = 1.59 of them repeat (share 0.27); the optimum repeats none
  // (reached to 0.05 in 24 iterations with these seeds).
  auto c = toy_config();
  c.repeated_ngram_size = 1;
  c.repeated_ngram_penalty = 1.0;
  const auto r = run_until(c, "env/repeated_ngram_share", 40, [](double share) { return share <= 0.05; });
  INFO("iterations " << r.iterations << ", repeated share " << r.first << " -> " << r.last);
  CHECK(r.first > 0.15);
  CHECK(r.last <= 0.05);
}

TEST_CASE("PPO on the shared Trainer: a checkpoint inside an iteration resumes bit-identically",
          "[rl][ppo][checkpoint]") {
  // The Trainer steps PPOObjective minibatch by minibatch; a checkpoint 5 steps into the second
  // iteration holds the rollout buffer and the cursor in it (the policy that sampled it has moved on).
  using Policy = rl::LMPolicy<LlamaLM<>>;
  using Objective = rl::PPOObjective<Policy, CountToken>;
  auto c = toy_config();
  c.init_kl_coef = 0.1;
  c.target = 1.0;
  c.horizon = 64;
  const rl::PromptSource ppo_same_prompts = [](std::size_t) { return prompts(32); };
  const std::size_t steps = 2 * 16;  // two iterations of 4 epochs x 4 minibatches
  Objective whole(Policy(toy_lm(9)), CountToken{}, c, ppo_same_prompts);
  REQUIRE(whole.steps_per_iteration() == 16);
  train::Trainer straight(whole.model(), whole, rl::trainer_options(c, steps));
  straight.fit();
  REQUIRE(whole.iteration() == 2);

  const auto path = std::filesystem::temp_directory_path() / "p4lm_test_ppo_mid_iteration.safetensors";
  {
    Objective killed(Policy(toy_lm(9)), CountToken{}, c, ppo_same_prompts);
    auto o = rl::trainer_options(c, steps);
    o.stop_after = 16 + 5;
    train::Trainer first(killed.model(), killed, o);
    first.fit();
    CHECK(killed.iteration() == 1);
    first.save_checkpoint(path);
  }
  Objective resumed(Policy(toy_lm(9)), CountToken{}, c, ppo_same_prompts);
  train::Trainer second(resumed.model(), resumed, rl::trainer_options(c, steps));
  REQUIRE(second.resume(path));
  CHECK(second.step() == 21);
  second.fit();
  CHECK(resumed.iteration() == 2);
  for (const char* k : {"objective/kl", "objective/scores", "loss/policy", "loss/value", "policy/approxkl",
                        "policy/grad_norm", "val/vpred", "objective/kl_coef"})
    CHECK(resumed.last_metrics().at(k) == whole.last_metrics().at(k));
  CHECK(resumed.model().kl.value() == whole.model().kl.value());
  auto a = whole.model().parameters();
  auto b = resumed.model().parameters();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].name);
    CHECK(std::equal(a[i].value.data(), a[i].value.data() + a[i].value.numel(), b[i].value.data()));
  }
  std::filesystem::remove(path);
}
