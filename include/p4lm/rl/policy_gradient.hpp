#pragma once
// The KL-regularised policy gradient with a leave-one-out baseline (REINFORCE / RLOO: Williams 1992;
// Kool et al. 2019; Ahmadian et al. 2024), the second algorithm on the same rollouts as PPO. The
// P4LM paper describes its fine-tuning this way.
//
// Each prompt is sampled rloo_k times. Sample i's return is its score minus the KL penalty,
//   R_i = score_i - β Σ_t kl_t,
// its advantage is R_i minus the mean return of the prompt's other k - 1 samples (an unbiased
// baseline: it does not depend on sample i), and one AdamW step follows
//   ∇ J ≈ (1 / B) Σ_i A_i Σ_t ∇ log π(y_{i,t}),   i.e.  d loss / d log π(y_{i,t}) = -A_i / B.
// No value head, no clipping, one update per rollout (on-policy). The gradient of the whole batch is
// accumulated over minibatches of mini_batch_size samples (memory, not extra updates).
//
//   rl::PolicyGradientTrainer<Policy, Reward> pg(policy, reward, {.batch_size = 32, .rloo_k = 4});
//   auto metrics = pg.step(prompts);   // batch_size / rloo_k distinct prompts

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/rl/kl_controller.hpp"
#include "p4lm/rl/kl_estimator.hpp"
#include "p4lm/rl/masked.hpp"
#include "p4lm/rl/metrics.hpp"
#include "p4lm/rl/minibatch.hpp"
#include "p4lm/rl/policy.hpp"
#include "p4lm/rl/reward_function.hpp"
#include "p4lm/rl/rl_state.hpp"
#include "p4lm/rl/rollout.hpp"
#include "p4lm/rl/shaped_reward.hpp"

namespace p4lm::rl {

struct PGConfig {
  std::size_t batch_size = 64;       // samples per iteration (batch_size / rloo_k prompts)
  std::size_t rloo_k = 4;            // samples per prompt (>= 2: the baseline needs the others)
  std::size_t mini_batch_size = 64;  // samples per forward/backward (gradient accumulated)
  double learning_rate = 1e-5;
  double max_grad_norm = 1.0;
  double weight_decay = 0.0;
  double init_kl_coef = 0.05;
  double target = 6.0;  // AdaptiveKL only
  double horizon = 10000.0;
  std::string kl_penalty = "k1";
  bool normalize_advantage = false;  // divide the advantages by their standard deviation
  std::size_t response_length = 64;
  std::int32_t eos_token_id = -1;
  double missing_eos_penalty = 0;
  std::uint64_t seed = 0;

  KLEstimator estimator() const { return kl_estimator_from_name(kl_penalty); }

  void validate() const {
    auto need = [](bool ok, const char* field, auto value, const char* rule) {
      if (!ok) fail<InvalidArgument>("PGConfig: ", field, " = ", value, ": ", rule);
    };
    need(rloo_k >= 2, "rloo_k", rloo_k, "must be >= 2 (the baseline is the other samples' mean)");
    need(batch_size > 0 && batch_size % rloo_k == 0, "batch_size", batch_size,
         "must be a positive multiple of rloo_k");
    need(mini_batch_size > 0 && batch_size % mini_batch_size == 0, "mini_batch_size", mini_batch_size,
         "must divide batch_size");
    need(learning_rate > 0 && std::isfinite(learning_rate), "learning_rate", learning_rate, "must be > 0");
    need(std::isfinite(max_grad_norm), "max_grad_norm", max_grad_norm, "must be finite");
    need(init_kl_coef >= 0 && std::isfinite(init_kl_coef), "init_kl_coef", init_kl_coef, "must be >= 0");
    need(target > 0, "target", target, "must be > 0");
    need(horizon > 0, "horizon", horizon, "must be > 0");
    (void)estimator();
    need(response_length > 0, "response_length", response_length, "must be > 0");
    need(missing_eos_penalty >= 0, "missing_eos_penalty", missing_eos_penalty, "must be >= 0");
    need(missing_eos_penalty == 0 || eos_token_id >= 0, "missing_eos_penalty", missing_eos_penalty,
         "needs eos_token_id");
  }
};

inline nlohmann::json to_json(const PGConfig& c) {
  return {{"algo", "rloo"},
          {"batch_size", c.batch_size},
          {"rloo_k", c.rloo_k},
          {"mini_batch_size", c.mini_batch_size},
          {"learning_rate", c.learning_rate},
          {"max_grad_norm", c.max_grad_norm},
          {"weight_decay", c.weight_decay},
          {"init_kl_coef", c.init_kl_coef},
          {"target", c.target},
          {"horizon", c.horizon},
          {"kl_penalty", c.kl_penalty},
          {"normalize_advantage", c.normalize_advantage},
          {"response_length", c.response_length},
          {"eos_token_id", c.eos_token_id},
          {"missing_eos_penalty", c.missing_eos_penalty},
          {"seed", c.seed}};
}

// Leave-one-out advantages: returns (groups of k consecutive samples) -> A_i = R_i - mean_{j≠i} R_j.
inline std::vector<double> rloo_advantages(std::span<const double> returns, std::size_t k) {
  if (k < 2 || returns.size() % k)
    fail<InvalidArgument>("rloo_advantages: ", returns.size(), " returns do not form groups of ", k, " >= 2");
  std::vector<double> a(returns.size());
  for (std::size_t g = 0; g < returns.size(); g += k) {
    const double sum = std::accumulate(returns.begin() + static_cast<std::ptrdiff_t>(g),
                                       returns.begin() + static_cast<std::ptrdiff_t>(g + k), 0.0);
    for (std::size_t i = g; i < g + k; ++i)
      a[i] = returns[i] - (sum - returns[i]) / static_cast<double>(k - 1);
  }
  return a;
}

template <Policy P, class RewardFn, class KLControl = FixedKL>
class PolicyGradientTrainer {
  static_assert(check_policy<P>());
  static_assert(check_reward_function<RewardFn>());
  static_assert(check_kl_controller<KLControl>());

 public:
  using T = typename P::value_type;

  PolicyGradientTrainer(P policy, RewardFn reward, PGConfig config)
      : config_(validated(std::move(config))),
        state_(std::move(policy), make_kl_controller<KLControl>(config_),
               AdamWOptions{.lr = config_.learning_rate,
                            .beta1 = 0.9,
                            .beta2 = 0.999,
                            .eps = 1e-8,
                            .weight_decay = config_.weight_decay,
                            .max_grad_norm = config_.max_grad_norm},
               config_.seed, to_json(config_)),
        reward_(std::move(reward)),
        collector_(state_.policy, state_.reference) {
    for (auto& p : state_.head.parameters()) p.trainable = false;  // no critic in this algorithm
  }
  PolicyGradientTrainer(const PolicyGradientTrainer&) = delete;
  PolicyGradientTrainer& operator=(const PolicyGradientTrainer&) = delete;

  // One iteration on batch_size / rloo_k distinct prompts (each sampled rloo_k times).
  Metrics step(std::span<const Prompt> prompts) {
    using clock = std::chrono::steady_clock;
    const auto& c = config_;
    if (prompts.size() * c.rloo_k != c.batch_size)
      fail<InvalidArgument>("PolicyGradientTrainer::step: ", prompts.size(), " prompts x rloo_k ", c.rloo_k,
                            " != batch_size ", c.batch_size);
    repeated_.clear();
    for (const auto& p : prompts)
      for (std::size_t j = 0; j < c.rloo_k; ++j) repeated_.push_back(p);
    auto& r = rollout_;
    RolloutOptions ro;
    ro.max_new_tokens = c.response_length;
    if (c.eos_token_id >= 0) ro.eos = c.eos_token_id;
    ro.missing_eos_penalty = c.missing_eos_penalty;
    ro.seed = state_.sampling_seed();
    collector_.collect(r, repeated_, ro, reward_, nullptr);

    const double beta = state_.kl.value();
    shape_rewards(r, beta, c.estimator());
    const auto returns = regularised_returns(r, beta);
    auto adv = rloo_advantages(returns, c.rloo_k);
    if (c.normalize_advantage) {
      double mean = 0, var = 0;
      for (double a : adv) mean += a;
      mean /= static_cast<double>(adv.size());
      for (double a : adv) var += (a - mean) * (a - mean);
      const double sd = std::sqrt(var / static_cast<double>(adv.size()) + 1e-8);
      for (double& a : adv) a /= sd;
    }

    Metrics m;
    rollout_metrics(m, r, beta);
    const auto t0 = clock::now();
    const std::size_t B = r.size(), R = r.response_len, mb = c.mini_batch_size;
    state_.zero_grad();
    double loss = 0;
    for (std::size_t start = 0; start < B; start += mb) {
      rows_.resize(mb);
      std::iota(rows_.begin(), rows_.end(), start);
      pass_.forward(state_.policy, nullptr, r, rows_);
      dlp_.resize(Shape{mb, R}, T(0));
      for (std::size_t i = 0; i < mb; ++i) {
        const std::size_t b = start + i;
        for (std::size_t k = 0; k < r.responses[b].size(); ++k) {
          dlp_.data()[i * R + k] = static_cast<T>(-adv[b] / static_cast<double>(B));
          loss -= adv[b] * static_cast<double>(pass_.logprobs().data()[i * R + k]) / static_cast<double>(B);
        }
      }
      pass_.backward(state_.policy, nullptr, dlp_.view(), {});
    }
    if (!std::isfinite(loss)) fail<Error>("PG iteration ", state_.iteration, ": loss/policy is ", loss);
    const double norm = state_.optimizer.step(state_.parameters(), c.learning_rate);
    if (!std::isfinite(norm)) fail<Error>("PG iteration ", state_.iteration, ": the gradient norm is ", norm);
    double adv_abs = 0;
    for (double a : adv) adv_abs += std::abs(a);
    m["loss/policy"] = loss;
    m["policy/grad_norm"] = norm;
    m["policy/advantage_abs_mean"] = adv_abs / static_cast<double>(B);
    m["time/update"] = std::chrono::duration<double>(clock::now() - t0).count();
    state_.kl.update(m["objective/kl"], B);
    ++state_.iteration;
    m["iteration"] = static_cast<double>(state_.iteration);
    return m;
  }
  Metrics step(const std::vector<Prompt>& prompts) { return step(std::span<const Prompt>(prompts)); }

  const PGConfig& config() const noexcept { return config_; }
  P& policy() noexcept { return state_.policy; }
  const P& reference() const noexcept { return state_.reference; }
  KLControl& kl_controller() noexcept { return state_.kl; }
  RLState<P, KLControl>& state() noexcept { return state_; }
  std::size_t iteration() const noexcept { return state_.iteration; }
  const Rollout<T>& last_rollout() const noexcept { return rollout_; }
  void save(const std::filesystem::path& path) { state_.save(path); }
  void load(const std::filesystem::path& path) { state_.load(path); }

 private:
  static PGConfig validated(PGConfig c) {
    c.validate();
    return c;
  }

  PGConfig config_;
  RLState<P, KLControl> state_;
  RewardFn reward_;
  RolloutCollector<P> collector_;
  MinibatchPass<P> pass_;
  Rollout<T> rollout_;
  std::vector<Prompt> repeated_;
  std::vector<std::size_t> rows_;
  CpuTensor<T> dlp_;
};

}  // namespace p4lm::rl
