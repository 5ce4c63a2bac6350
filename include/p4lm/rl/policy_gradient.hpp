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
// No value head, no clipping, one update per rollout (on-policy): one Trainer step per iteration
// (rl/rl_trainer.hpp). The gradient of the whole batch is accumulated over minibatches of
// mini_batch_size samples inside loss() (memory, not extra updates).
//
//   rl::PolicyGradientTrainer<Policy, Reward> pg(policy, reward, {.batch_size = 32, .rloo_k = 4});
//   auto metrics = pg.step(prompts);   // batch_size / rloo_k distinct prompts
//
// Data parallel (the Trainer's communicator of N ranks, docs/distributed.md): the prompts
// (batch_size / rloo_k) and mini_batch_size must be multiples of N; rank r samples its contiguous
// share of the prompts, rloo_k times each, from its own seed, so every leave-one-out group stays on
// one rank; the loss is normalised by this rank's samples and the Trainer's average over the ranks
// makes it the global (1 / B) sum. normalize_advantage and every metric reduce over all ranks.

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
#include "p4lm/dist/communicator.hpp"
#include "p4lm/dist/shard.hpp"
#include "p4lm/rl/kl_controller.hpp"
#include "p4lm/rl/kl_estimator.hpp"
#include "p4lm/rl/masked.hpp"
#include "p4lm/rl/metrics.hpp"
#include "p4lm/rl/minibatch.hpp"
#include "p4lm/rl/policy.hpp"
#include "p4lm/rl/reward_function.hpp"
#include "p4lm/rl/rl_state.hpp"
#include "p4lm/rl/rl_trainer.hpp"
#include "p4lm/rl/rollout.hpp"
#include "p4lm/rl/sampling_settings.hpp"
#include "p4lm/rl/shaped_reward.hpp"
#include "p4lm/train/concepts.hpp"

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
  std::size_t min_response_length = 0;  // a length floor, as in PPOConfig
  double short_response_penalty = 0;
  std::size_t repeated_ngram_size = 4;  // a repetition penalty, as in PPOConfig
  double repeated_ngram_penalty = 0;
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
    validate_sampling(*this, need);
  }
};

inline nlohmann::json to_json(const PGConfig& c) {
  nlohmann::json j{{"algo", "rloo"},
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
                   {"normalize_advantage", c.normalize_advantage}};
  add_sampling_json(j, c);
  return j;
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
class PolicyGradientObjective {
  static_assert(check_policy<P>());
  static_assert(check_reward_function<RewardFn>());
  static_assert(check_kl_controller<KLControl>());

 public:
  using T = typename P::value_type;
  using Model = RLState<P, KLControl>;
  using Config = PGConfig;

  PolicyGradientObjective(P policy, RewardFn reward, PGConfig config, PromptSource prompts = {})
      : config_(validated(std::move(config))),
        state_(std::move(policy), make_kl_controller<KLControl>(config_), config_.seed),
        reward_(std::move(reward)),
        prompts_(std::move(prompts)),
        collector_(state_.policy, state_.reference) {
    for (auto& p : state_.head.parameters()) p.trainable = false;  // no critic in this algorithm
  }
  PolicyGradientObjective(const PolicyGradientObjective&) = delete;
  PolicyGradientObjective& operator=(const PolicyGradientObjective&) = delete;

  static constexpr std::size_t steps_per_iteration() noexcept { return 1; }

  // A new rollout: batch_size / rloo_k prompts, each sampled rloo_k times; leave-one-out advantages.
  const Rollout<T>& batch(std::size_t, std::size_t) {
    const auto& c = config_;
    if (!prompts_) fail<InvalidArgument>("PolicyGradientObjective: no prompts (give it a PromptSource)");
    const auto prompts = prompts_(state_.iteration);
    check_prompts(prompts);
    const auto [first, last] = dist::Shard::of(comm_).range(prompts.size());  // this rank's share
    repeated_.clear();
    for (std::size_t i = first; i < last; ++i)
      for (std::size_t j = 0; j < c.rloo_k; ++j) repeated_.push_back(prompts[i]);
    auto& r = rollout_;
    collector_.collect(r, repeated_,
                       rollout_options(c, state_.sampling_seed(static_cast<std::size_t>(comm_.rank()))),
                       reward_, nullptr);
    const double beta = state_.kl.value();
    shape_rewards(r, beta, c.estimator());
    const auto returns = regularised_returns(r, beta);
    adv_ = rloo_advantages(returns, c.rloo_k);
    if (c.normalize_advantage) {  // over every rank's samples
      double mean[2] = {0, static_cast<double>(adv_.size())}, var = 0;
      for (double a : adv_) mean[0] += a;
      comm_.all_reduce_sum(std::span<double>(mean));
      mean[0] /= mean[1];
      for (double a : adv_) var += (a - mean[0]) * (a - mean[0]);
      var = comm_.sum(var);
      const double sd = std::sqrt(var / mean[1] + 1e-8);
      for (double& a : adv_) a /= sd;
    }
    metrics_.clear();
    rollout_metrics(metrics_, r, beta, comm_);
    update_start_ = std::chrono::steady_clock::now();
    return r;
  }

  // -(1/B) Σ_i A_i Σ_t log π(y_{i,t}) over the whole rollout, minibatch by minibatch.
  train::StepLoss loss(Model& s, const Rollout<T>& r) {
    const std::size_t B = r.size(), R = r.response_len;
    const std::size_t mb = config_.mini_batch_size / static_cast<std::size_t>(comm_.size());  // this rank's
    double loss = 0;
    for (std::size_t start = 0; start < B; start += mb) {
      rows_.resize(mb);
      std::iota(rows_.begin(), rows_.end(), start);
      pass_.forward(s.policy, nullptr, r, rows_);
      dlp_.resize(Shape{mb, R}, T(0));
      for (std::size_t i = 0; i < mb; ++i) {
        const std::size_t b = start + i;
        for (std::size_t k = 0; k < r.responses[b].size(); ++k) {
          dlp_.data()[i * R + k] = static_cast<T>(-adv_[b] / static_cast<double>(B));
          loss -= adv_[b] * static_cast<double>(pass_.logprobs().data()[i * R + k]) / static_cast<double>(B);
        }
      }
      pass_.backward(s.policy, nullptr, dlp_.view(), {});
    }
    if (!std::isfinite(loss)) fail<Error>("PG iteration ", s.iteration, ": loss/policy is ", loss);
    last_loss_ = loss;
    return {loss, B};
  }

  // After the AdamW step: the iteration's metrics (without wall times), β's update, the next iteration.
  template <class Info>
  Metrics end_step(Model& s, const Info& info) {
    auto& m = metrics_;
    double sums[2] = {0, last_loss_};  // |advantage| over this rank's samples, its loss
    for (double a : adv_) sums[0] += std::abs(a);
    if (comm_.distributed()) {
      comm_.all_reduce_sum(std::span<double>(sums));
      sums[1] /= static_cast<double>(comm_.size());  // the Trainer's loss: the mean over the ranks
    }
    m["loss/policy"] = sums[1];
    m["policy/grad_norm"] = info.grad_norm;
    m["policy/advantage_abs_mean"] = sums[0] / static_cast<double>(config_.batch_size);
    m["time/update"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - update_start_).count();
    s.kl.update(m["objective/kl"], config_.batch_size);
    ++s.iteration;
    m["iteration"] = static_cast<double>(s.iteration);
    return without_times(m);
  }

  // Every step ends its iteration, so a checkpoint never falls inside one.
  nlohmann::json state() const { return state_.state(); }
  void load_state(const nlohmann::json& j) { state_.load_state(j); }

  void set_prompts(PromptSource prompts) { prompts_ = std::move(prompts); }
  // The ranks the Trainer runs on (see the file comment); each takes an equal share of the prompts.
  void set_communicator(const dist::Communicator& c) {
    const auto n = static_cast<std::size_t>(c.size());
    if ((config_.batch_size / config_.rloo_k) % n || config_.mini_batch_size % n)
      fail<InvalidArgument>("RLOO on ", n, " ranks: the prompts per iteration (batch_size / rloo_k = ",
                            config_.batch_size / config_.rloo_k, ") and mini_batch_size ",
                            config_.mini_batch_size, " must be multiples of the number of ranks");
    comm_ = c;
  }
  void check_prompts(std::span<const Prompt> prompts) const {
    if (prompts.size() * config_.rloo_k != config_.batch_size)
      fail<InvalidArgument>("PolicyGradientTrainer::step: ", prompts.size(), " prompts x rloo_k ",
                            config_.rloo_k, " != batch_size ", config_.batch_size);
  }

  const PGConfig& config() const noexcept { return config_; }
  Model& model() noexcept { return state_; }
  const Model& model() const noexcept { return state_; }
  std::size_t iteration() const noexcept { return state_.iteration; }
  const Rollout<T>& last_rollout() const noexcept { return rollout_; }
  const Metrics& last_metrics() const noexcept { return metrics_; }  // time/* included
  RewardFn& reward() noexcept { return reward_; }

 private:
  static PGConfig validated(PGConfig c) {
    c.validate();
    return c;
  }

  PGConfig config_;
  Model state_;
  RewardFn reward_;
  PromptSource prompts_;
  RolloutCollector<P> collector_;
  MinibatchPass<P> pass_;
  Rollout<T> rollout_;
  std::vector<Prompt> repeated_;
  std::vector<double> adv_;
  std::vector<std::size_t> rows_;
  CpuTensor<T> dlp_;
  double last_loss_ = 0;
  Metrics metrics_;
  dist::Communicator comm_;  // the Trainer's ranks (set_communicator)
  std::chrono::steady_clock::time_point update_start_{};
};

// The policy gradient driven one iteration at a time (rl_trainer.hpp).
template <Policy P, class RewardFn, class KLControl = FixedKL>
using PolicyGradientTrainer = RLTrainer<PolicyGradientObjective<P, RewardFn, KLControl>>;

}  // namespace p4lm::rl
