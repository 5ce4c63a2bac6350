// PPO and RLOO over N ranks (rl/ppo_trainer.hpp, rl/policy_gradient.hpp): each rank samples its share
// of an iteration's prompts, and the statistics (reward and advantage whitening, rollout metrics)
// are those one process computes on the union of the ranks' rollouts. The toy problem is tests/rl's
// bandit (an 8-token LM, a reward counting one token).

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../rl/toy_bandit.hpp"
#include "dist_support.hpp"
#include "p4lm/dist/communicator.hpp"
#include "p4lm/dist/shard.hpp"
#include "p4lm/rl/policy_gradient.hpp"
#include "p4lm/rl/ppo_trainer.hpp"

namespace {

using namespace p4lm_dist_test;
using p4lm::rl::Rollout;
using RlPolicy = p4lm::rl::LMPolicy<p4lm::LlamaLM<float>>;

// The rollout fields a collection fills (what PPO's statistics start from), as JSON.
nlohmann::json collected_json(const Rollout<float>& r) {
  nlohmann::json j{{"responses", r.responses},
                   {"ended", r.ended},
                   {"raw_scores", r.raw_scores},
                   {"scores", r.scores},
                   {"response_len", r.response_len}};
  for (const auto& p : r.prompts) j["keys"].push_back(p.key), j["prompts"].push_back(p.ids);
  const std::pair<const char*, const p4lm::CpuTensor<float>*> ts[] = {
      {"mask", &r.mask},      {"logprobs", &r.logprobs}, {"ref_logprobs", &r.ref_logprobs},
      {"values", &r.values},  {"entropy", &r.entropy},   {"advantages", &r.advantages},
      {"returns", &r.returns}};
  for (const auto& [name, t] : ts) j[name] = std::vector<float>(t->data(), t->data() + t->numel());
  return j;
}

// The ranks' rollouts, concatenated in rank order (columns padded to the widest), on rank 0; also
// the rows at which each rank's share starts. Empty on the other ranks.
struct Union {
  Rollout<float> r;
  std::vector<nlohmann::json> shares;
};
Union gather_rollouts(const p4lm::dist::Communicator& comm, const Rollout<float>& mine) {
  Union u;
  for (const auto& s : comm.gather(collected_json(mine).dump())) u.shares.push_back(nlohmann::json::parse(s));
  if (u.shares.empty()) return u;
  std::size_t B = 0, R = 0;
  for (const auto& s : u.shares)
    B += s.at("scores").size(), R = std::max<std::size_t>(R, s.at("response_len"));
  auto& r = u.r;
  r.response_len = R;
  for (auto* t : {&r.mask, &r.logprobs, &r.ref_logprobs, &r.values, &r.entropy, &r.kl, &r.rewards,
                  &r.advantages, &r.returns})
    t->resize(p4lm::Shape{B, R}, 0.0f);
  std::size_t row = 0;
  for (const auto& s : u.shares) {
    const std::size_t n = s.at("scores").size(), w = s.at("response_len");
    for (std::size_t b = 0; b < n; ++b) {
      r.prompts.push_back(
          {s.at("keys")[b].get<std::size_t>(), s.at("prompts")[b].get<std::vector<std::int32_t>>()});
      r.responses.push_back(s.at("responses")[b].get<std::vector<std::int32_t>>());
      r.ended.push_back(s.at("ended")[b].get<bool>());
      r.raw_scores.push_back(s.at("raw_scores")[b]), r.scores.push_back(s.at("scores")[b]);
    }
    const std::pair<const char*, p4lm::CpuTensor<float>*> ts[] = {{"mask", &r.mask},
                                                                  {"logprobs", &r.logprobs},
                                                                  {"ref_logprobs", &r.ref_logprobs},
                                                                  {"values", &r.values},
                                                                  {"entropy", &r.entropy}};
    for (const auto& [name, t] : ts) {
      const auto v = s.at(name).get<std::vector<float>>();
      for (std::size_t b = 0; b < n; ++b)
        for (std::size_t k = 0; k < w; ++k) t->data()[(row + b) * R + k] = v[b * w + k];
    }
    row += n;
  }
  return u;
}

// Rows `first`.. of the union's (B, R) array `t` against a share's (n, w) values.
double share_diff(const p4lm::CpuTensor<float>& t, std::size_t first, const std::vector<float>& share,
                  std::size_t w) {
  const std::size_t R = t.dim(1);
  double worst = 0;
  for (std::size_t i = 0; i < share.size(); ++i)
    worst = std::max(worst, std::abs(double(t.data()[(first + i / w) * R + i % w]) - double(share[i])));
  return worst;
}

p4lm::rl::PPOConfig ppo_config() {
  p4lm::rl::PPOConfig c;
  c.batch_size = 8, c.mini_batch_size = 4, c.ppo_epochs = 2;
  c.learning_rate = 3e-3, c.response_length = 4, c.init_kl_coef = 0.2;
  c.whiten_rewards = true;  // the reward normalisation reduces over the ranks too
  c.gamma = 1.0, c.lam = 0.95, c.vf_coef = 0.1, c.seed = 7;
  return c;
}

std::vector<p4lm::rl::Prompt> toy_prompts(std::size_t n) {
  std::vector<p4lm::rl::Prompt> p;
  for (std::size_t k = 0; k < n; ++k) p.push_back({0, {p4lm::rl_test::kBos, std::int32_t(2 + k % 3)}});
  return p;
}

std::vector<float> policy_params(RlPolicy& p) {
  std::vector<float> out;
  for (const auto& prm : p.parameters())
    for (const float v : prm.value.span()) out.push_back(v);
  return out;
}

// Every rank holds the same value.
bool same_on_every_rank(const p4lm::dist::Communicator& c, double v) {
  return c.max(v) == v && -c.max(-v) == v;
}

const char* const rollout_keys[] = {"objective/kl",          "objective/entropy",   "objective/scores",
                                    "objective/rlhf_reward", "env/reward_mean",     "env/reward_std",
                                    "env/ended_fraction",    "env/response_length", "val/vpred_rollout",
                                    "ppo/returns/mean"};

}  // namespace

TEST_CASE("data parallel PPO: statistics over the ranks' rollouts = one process's on their union",
          "[dist][rl][ppo]") {
  const auto world = p4lm::dist::world();
  const auto n = static_cast<std::size_t>(world.size());
  auto c = ppo_config();
  c.batch_size = 4 * n, c.mini_batch_size = 2 * n;
  p4lm::rl::PPOTrainer<RlPolicy, p4lm::rl_test::CountToken> ppo(RlPolicy(p4lm::rl_test::toy_lm(3)),
                                                                p4lm::rl_test::CountToken{}, c);
  const auto prompts = toy_prompts(c.batch_size);
  for (int iteration = 0; iteration < 2; ++iteration) {
    const auto m = ppo.step(prompts);
    const auto& mine = ppo.last_rollout();
    REQUIRE(mine.size() == 4);  // this rank's share
    const auto [first, last] = p4lm::dist::Shard::of(world).range(c.batch_size);
    for (std::size_t b = 0; b < mine.size(); ++b) CHECK(mine.prompts[b].ids == prompts[first + b].ids);
    for (const auto& [k, v] : m)
      if (!k.starts_with("time/")) CHECK(same_on_every_rank(world, v));
    // Every replica took the same steps.
    auto params = policy_params(ppo.policy());
    auto from_root = params;
    world.broadcast(std::span<float>(from_root));
    CHECK(max_abs_diff(params, from_root) == 0.0);

    // One process on the union of the rollouts: the same metrics and advantages.
    auto u = gather_rollouts(world, mine);
    if (!world.is_root()) continue;
    const p4lm::dist::SingleProcess alone;
    p4lm::rl::Metrics one;
    p4lm::rl::ppo_advantages(u.r, m.at("objective/kl_coef"), c, one);
    for (const char* k : rollout_keys) {
      INFO(k);
      CHECK(m.at(k) == Approx(one.at(k)).epsilon(1e-9).margin(1e-12));
    }
    std::size_t row = 0;
    double worst = 0;
    for (const auto& s : u.shares) {
      const std::size_t w = s.at("response_len");
      worst =
          std::max(worst, share_diff(u.r.advantages, row, s.at("advantages").get<std::vector<float>>(), w));
      worst = std::max(worst, share_diff(u.r.returns, row, s.at("returns").get<std::vector<float>>(), w));
      row += s.at("scores").size();
    }
    INFO("ranks " << n << ": max |advantage or return difference| " << worst);
    CHECK(worst <= 1e-5);
    // The whitened advantages over all ranks: mean 0, (unbiased) standard deviation 1.
    CHECK(std::abs(p4lm::rl::masked_mean(u.r.advantages.view(), u.r.mask.view())) < 1e-6);
    CHECK(p4lm::rl::masked_var(u.r.advantages.view(), u.r.mask.view()) == Approx(1.0).epsilon(1e-5));
    if (n > 1) {  // the ranks sampled different responses (seeds of their own)
      std::set<std::vector<std::int32_t>> rank0, others;
      for (std::size_t b = 0; b < 4; ++b) rank0.insert(u.r.responses[b]);
      for (std::size_t b = 4; b < u.r.size(); ++b) others.insert(u.r.responses[b]);
      CHECK(rank0 != others);
    }
  }
}

TEST_CASE("data parallel PPO: whitening alone on one rank's share would differ (the test can fail)",
          "[dist][rl][ppo]") {
  const auto world = p4lm::dist::world();
  if (!world.distributed()) return;
  p4lm::CpuTensor<float> x(p4lm::Shape{2, 3}), mask(p4lm::Shape{2, 3});
  for (std::size_t i = 0; i < 6; ++i)
    x.data()[i] = float(world.rank() * 3 + int(i)), mask.data()[i] = i % 3 == 2 && i > 2 ? 0.0f : 1.0f;
  auto local = x, shared = x;
  p4lm::rl::whiten(local.view(), mask.view());
  p4lm::rl::whiten(shared.view(), mask.view(), world);
  CHECK(max_abs_diff(std::vector<float>(local.data(), local.data() + 6),
                     std::vector<float>(shared.data(), shared.data() + 6)) > 0.1);
  CHECK(p4lm::rl::masked_mean(shared.view(), mask.view(), world) == Approx(0.0).margin(1e-6));
}

TEST_CASE("data parallel PPO: a checkpoint inside an iteration resumes on the same number of ranks",
          "[dist][rl][ppo]") {
  const auto world = p4lm::dist::world();
  const auto n = static_cast<std::size_t>(world.size());
  auto c = ppo_config();
  c.batch_size = 4 * n, c.mini_batch_size = 2 * n;
  using Objective = p4lm::rl::PPOObjective<RlPolicy, p4lm::rl_test::CountToken>;
  const p4lm::rl::PromptSource source = [&](std::size_t it) {
    auto p = toy_prompts(c.batch_size);
    for (auto& q : p) q.ids.push_back(std::int32_t(it % 4));
    return p;
  };
  SharedTempDir dir(world, "ppo_resume");
  auto run = [&](std::size_t stop_after, bool resume, bool files) {
    Objective objective(RlPolicy(p4lm::rl_test::toy_lm(4)), p4lm::rl_test::CountToken{}, c, source);
    auto o = p4lm::rl::trainer_options(objective.config(), 2 * objective.steps_per_iteration());
    if (files) o.out = dir.path, o.log_every = objective.steps_per_iteration();
    o.stop_after = stop_after;
    p4lm::train::Trainer trainer(objective.model(), objective, o);
    if (resume && !trainer.resume()) FAIL("no checkpoint to resume");
    trainer.fit();
    return policy_params(objective.model().policy);
  };
  const auto whole = run(0, false, false);
  (void)run(3, false, true);  // 3 of the 4 steps of iteration 1: the checkpoint holds every share
  const auto resumed = run(0, true, true);
  INFO("ranks " << n << ": max |parameter difference| " << max_abs_diff(whole, resumed));
  CHECK(max_abs_diff(whole, resumed) == 0.0);
  if (n > 1 && world.is_root()) {  // its shares belong to n ranks: one process refuses it
    (void)run(3, false, true);
    const p4lm::dist::SingleProcess alone;
    std::string message;
    try {
      (void)run(0, true, true);
    } catch (const p4lm::InvalidArgument& e) {
      message = e.what();
    }
    CHECK_THAT(message, Catch::Contains("resume it on " + std::to_string(n) + " rank(s)"));
  } else if (n > 1) {
    (void)run(3, false, true);
  }
}

TEST_CASE("data parallel RLOO: the ranks' metrics are one process's on the union of their samples",
          "[dist][rl][rloo]") {
  const auto world = p4lm::dist::world();
  const auto n = static_cast<std::size_t>(world.size());
  p4lm::rl::PGConfig c;
  c.rloo_k = 2, c.batch_size = 4 * n, c.mini_batch_size = 2 * n, c.learning_rate = 3e-3;
  c.response_length = 4, c.init_kl_coef = 0.1, c.normalize_advantage = true, c.seed = 5;
  p4lm::rl::PolicyGradientTrainer<RlPolicy, p4lm::rl_test::CountToken> pg(RlPolicy(p4lm::rl_test::toy_lm(6)),
                                                                          p4lm::rl_test::CountToken{}, c);
  const auto prompts = toy_prompts(c.batch_size / c.rloo_k);
  for (int iteration = 0; iteration < 2; ++iteration) {
    const auto m = pg.step(prompts);
    const auto& mine = pg.last_rollout();
    REQUIRE(mine.size() == 4);
    CHECK(mine.prompts[0].ids == mine.prompts[1].ids);  // a leave-one-out group stays on one rank
    for (const auto& [k, v] : m)
      if (!k.starts_with("time/")) CHECK(same_on_every_rank(world, v));
    auto params = policy_params(pg.policy());
    auto from_root = params;
    world.broadcast(std::span<float>(from_root));
    CHECK(max_abs_diff(params, from_root) == 0.0);
    auto u = gather_rollouts(world, mine);
    if (!world.is_root()) continue;
    double score = 0, kl = 0;
    for (std::size_t b = 0; b < u.r.size(); ++b) score += u.r.scores[b];
    CHECK(m.at("objective/scores") == Approx(score / double(c.batch_size)).epsilon(1e-12));
    // objective/kl from the union's log-probs (k1: log π - log π_ref, summed per sample).
    for (std::size_t i = 0; i < u.r.mask.numel(); ++i)
      if (u.r.mask.data()[i] > 0) kl += double(u.r.logprobs.data()[i]) - double(u.r.ref_logprobs.data()[i]);
    CHECK(m.at("objective/kl") == Approx(kl / double(c.batch_size)).epsilon(1e-6).margin(1e-9));
  }
}

TEST_CASE("data parallel RL: batches that do not split evenly over the ranks are refused", "[dist][rl]") {
  const auto world = p4lm::dist::world();
  if (!world.distributed()) return;
  const auto n = static_cast<std::size_t>(world.size());
  auto c = ppo_config();
  c.batch_size = 4 * n + 1, c.mini_batch_size = 1;
  using PPO = p4lm::rl::PPOTrainer<RlPolicy, p4lm::rl_test::CountToken>;
  std::string message;
  try {
    PPO ppo(RlPolicy(p4lm::rl_test::toy_lm(3)), p4lm::rl_test::CountToken{}, c);
  } catch (const p4lm::InvalidArgument& e) {
    message = e.what();
  }
  CHECK_THAT(message, Catch::Contains("must be multiples of the number of ranks"));
}

TEST_CASE("data parallel PPO: the approx-KL early stop is one decision for every rank", "[dist][rl][ppo]") {
  const auto world = p4lm::dist::world();
  const auto n = static_cast<std::size_t>(world.size());
  auto c = ppo_config();
  c.batch_size = 4 * n, c.mini_batch_size = 2 * n, c.ppo_epochs = 4;
  c.learning_rate = 3e-2, c.early_stopping = true, c.target_kl = 1e-7;  // any update exceeds it
  p4lm::rl::PPOTrainer<RlPolicy, p4lm::rl_test::CountToken> ppo(RlPolicy(p4lm::rl_test::toy_lm(8)),
                                                                p4lm::rl_test::CountToken{}, c);
  const auto prompts = toy_prompts(c.batch_size);
  (void)ppo.step(prompts);
  const auto m = ppo.step(prompts);  // the first minibatch of an iteration starts at ratio 1: the second
  CHECK(m.at("ppo/early_stopped") == 1.0);
  CHECK(m.at("ppo/optimizer_steps") < double(c.ppo_epochs * 2));
  for (const char* k : {"ppo/early_stopped", "ppo/optimizer_steps", "ppo/epochs", "policy/approxkl"})
    CHECK(same_on_every_rank(world, m.at(k)));
}
