#pragma once
// PPO with a KL penalty to a frozen reference (Ziegler et al. 2019; TRL's PPOTrainer), for causal LMs,
// as an Objective of the shared Trainer (rl/rl_trainer.hpp says how they fit together).
//
//   rl::PPOConfig cfg{.batch_size = 32, .mini_batch_size = 8, .init_kl_coef = 0.1, .target = 2.0};
//   rl::PPOTrainer<rl::LMPolicy<LlamaLM<>>, Reward> ppo(rl::LMPolicy(std::move(lm)), reward, cfg);
//   for (int it = 0; it < 100; ++it) {
//     auto metrics = ppo.step(prompts);        // objective/kl, objective/scores, policy/clipfrac, ...
//   }
//
// One iteration:
//   1. rollout (in batch(), when the last rollout is used up): batch_size prompts sampled by the
//      policy (batched KV-cache decoding), the policy's log-probs, entropies and values from one
//      batched forward, the reference's from one more, the reward on the finished samples
//      (missing_eos_penalty for samples without EOS);
//   2. rewards r_t = -β kl_t, plus the score at each sample's last token (shaped_reward.hpp);
//   3. GAE (gamma, lam) with the value head's values, then advantages whitened over the batch;
//   4. ppo_epochs passes over the batch in shuffled minibatches of mini_batch_size samples, one
//      Trainer step each: clipped policy loss + vf_coef × clipped value loss (loss()), one AdamW step
//      over policy and value head; with early_stopping, the passes end once a minibatch's approx-KL
//      exceeds 1.5 × target_kl;
//   5. after its last step (end_step()) the KL controller sees the batch's mean per-sample KL
//      (AdaptiveKL moves β toward `target`) and the iteration's metrics go into the step record.
// Non-finite rollouts or losses stop the run with the iteration, epoch, minibatch and quantity named;
// the Trainer's guard names non-finite gradients and parameters.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/rl/gae.hpp"
#include "p4lm/rl/kl_controller.hpp"
#include "p4lm/rl/masked.hpp"
#include "p4lm/rl/metrics.hpp"
#include "p4lm/rl/minibatch.hpp"
#include "p4lm/rl/policy.hpp"
#include "p4lm/rl/ppo_config.hpp"
#include "p4lm/rl/ppo_loss.hpp"
#include "p4lm/rl/reward_function.hpp"
#include "p4lm/rl/rl_state.hpp"
#include "p4lm/rl/rl_trainer.hpp"
#include "p4lm/rl/rollout.hpp"
#include "p4lm/rl/shaped_reward.hpp"
#include "p4lm/train/concepts.hpp"

namespace p4lm::rl {

template <Policy P, class RewardFn, class KLControl = AdaptiveKL>
class PPOObjective {
  static_assert(check_policy<P>());
  static_assert(check_reward_function<RewardFn>());
  static_assert(check_kl_controller<KLControl>());

 public:
  using T = typename P::value_type;
  using Model = RLState<P, KLControl>;
  using Config = PPOConfig;
  using Rows = std::span<const std::size_t>;  // a minibatch: rows of the current rollout

  PPOObjective(P policy, RewardFn reward, PPOConfig config, PromptSource prompts = {})
      : config_(validated(std::move(config))),
        state_(std::move(policy), make_kl_controller<KLControl>(config_), config_.seed),
        reward_(std::move(reward)),
        prompts_(std::move(prompts)),
        collector_(state_.policy, state_.reference) {}
  PPOObjective(const PPOObjective&) = delete;
  PPOObjective& operator=(const PPOObjective&) = delete;

  // Trainer steps of an iteration without an early stop.
  std::size_t steps_per_iteration() const noexcept {
    return config_.ppo_epochs * config_.minibatches_per_epoch();
  }

  // The next minibatch of the current rollout; a new rollout when the last one is used up.
  Rows batch(std::size_t, std::size_t) {
    if (!in_iteration_) {
      begin_iteration();
    } else if (k_ == config_.minibatches_per_epoch()) {
      ++epoch_, k_ = 0;
      shuffle();
    }
    return Rows(order_.data() + k_ * config_.mini_batch_size, config_.mini_batch_size);
  }

  // Clipped policy loss + vf_coef × clipped value loss on one minibatch; gradients into policy and
  // value head.
  train::StepLoss loss(Model& s, Rows rows) {
    const auto& c = config_;
    const auto& r = rollout_;
    const std::size_t mb = rows.size(), R = r.response_len;
    pass_.forward(s.policy, &s.head, r, rows);
    for (auto* t : {&old_lp_, &adv_, &ret_, &old_v_, &mask_, &dlp_, &dv_}) t->resize(Shape{mb, R});
    const auto& batch = pass_.batch();
    batch.take(old_lp_.view(), r.logprobs.view());
    batch.take(adv_.view(), r.advantages.view());
    batch.take(ret_.view(), r.returns.view());
    batch.take(old_v_.view(), r.values.view());
    batch.take(mask_.view(), r.mask.view());
    const auto pl =
        policy_loss(dlp_.view(), pass_.logprobs(), old_lp_.view(), adv_.view(), mask_.view(), c.cliprange);
    const auto vl =
        value_loss(dv_.view(), pass_.values(), old_v_.view(), ret_.view(), mask_.view(), c.cliprange_value);
    for (std::size_t i = 0; i < dv_.numel(); ++i) dv_.data()[i] *= static_cast<T>(c.vf_coef);
    auto where = [&] {
      return p4lm::detail::concat("PPO iteration ", s.iteration, ", epoch ", epoch_, ", minibatch ", k_,
                                  ": ");
    };
    if (!std::isfinite(pl.loss)) fail<Error>(where(), "loss/policy is ", pl.loss);
    if (!std::isfinite(vl.loss)) fail<Error>(where(), "loss/value is ", vl.loss);
    pass_.backward(s.policy, &s.head, dlp_.view(), dv_.view());
    sums_.pl += pl.loss, sums_.vl += vl.loss, sums_.akl += pl.approxkl, sums_.cf += pl.clipfrac;
    sums_.vcf += vl.clipfrac, sums_.ratio += pl.ratio_mean;
    sums_.vpred += masked_mean(pass_.values(), mask_.view());
    if (c.early_stopping && pl.approxkl > 1.5 * c.target_kl) early_ = true;
    ++k_;
    return {pl.loss + c.vf_coef * vl.loss, mb};
  }

  // After each AdamW step: at the iteration's last one, the iteration's metrics (without wall times),
  // the KL controller's update and the next iteration; {} otherwise.
  template <class Info>
  Metrics end_step(Model& s, const Info& info) {
    sums_.norm += info.grad_norm, ++sums_.steps;
    const bool last = early_ || (k_ == config_.minibatches_per_epoch() && epoch_ + 1 == config_.ppo_epochs);
    if (!last) return {};
    const double n = static_cast<double>(std::max<std::size_t>(sums_.steps, 1));
    auto& m = metrics_;
    m["loss/policy"] = sums_.pl / n;
    m["loss/value"] = sums_.vl / n;
    m["loss/total"] = (sums_.pl + config_.vf_coef * sums_.vl) / n;
    m["policy/approxkl"] = sums_.akl / n;
    m["policy/clipfrac"] = sums_.cf / n;
    m["policy/ratio"] = sums_.ratio / n;
    m["policy/grad_norm"] = sums_.norm / n;
    m["val/clipfrac"] = sums_.vcf / n;
    m["val/vpred"] = sums_.vpred / n;
    m["ppo/epochs"] = static_cast<double>(epoch_ + 1);
    m["ppo/optimizer_steps"] = static_cast<double>(sums_.steps);
    m["ppo/early_stopped"] = early_ ? 1.0 : 0.0;
    m["time/update"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - update_start_).count();
    s.kl.update(m["objective/kl"], rollout_.size());
    ++s.iteration;
    m["iteration"] = static_cast<double>(s.iteration);
    in_iteration_ = false;
    return without_times(m);
  }

  // Checkpointed with the Trainer's: iteration, β, RNG position and, between two steps of one
  // iteration, the rollout buffer and the cursor in it (the policy that sampled it has moved on, so
  // it cannot be rebuilt).
  nlohmann::json state() const {
    auto j = state_.state();
    if (in_iteration_) j["buffer"] = buffer_json();
    return j;
  }
  void load_state(const nlohmann::json& j) {
    state_.load_state(j);
    in_iteration_ = j.contains("buffer");
    if (in_iteration_) load_buffer(j.at("buffer"));
  }

  void set_prompts(PromptSource prompts) { prompts_ = std::move(prompts); }
  void check_prompts(std::span<const Prompt> prompts) const {
    if (prompts.size() != config_.batch_size)
      fail<InvalidArgument>("PPOTrainer::step: ", prompts.size(), " prompts, batch_size is ",
                            config_.batch_size);
  }

  const PPOConfig& config() const noexcept { return config_; }
  Model& model() noexcept { return state_; }
  const Model& model() const noexcept { return state_; }
  std::size_t iteration() const noexcept { return state_.iteration; }
  const Rollout<T>& last_rollout() const noexcept { return rollout_; }
  // The last finished iteration's metrics, wall times (time/*) included.
  const Metrics& last_metrics() const noexcept { return metrics_; }
  RewardFn& reward() noexcept { return reward_; }

 private:
  static PPOConfig validated(PPOConfig c) {
    c.validate();
    return c;
  }

  void begin_iteration() {
    const auto& c = config_;
    if (!prompts_) fail<InvalidArgument>("PPOObjective: no prompts (give it a PromptSource)");
    const auto prompts = prompts_(state_.iteration);
    check_prompts(prompts);
    auto& r = rollout_;
    collector_.collect(r, prompts, rollout_options(c, state_.sampling_seed()), reward_, &state_.head);
    const double beta = state_.kl.value();
    shape_rewards(r, beta, c.estimator());
    if (c.whiten_rewards) whiten(r.rewards.view(), r.mask.view(), false);
    gae(r.advantages.view(), r.returns.view(), r.rewards.view(), r.values.view(), r.mask.view(), c.gamma,
        c.lam);
    whiten(r.advantages.view(), r.mask.view());
    metrics_.clear();
    rollout_metrics(metrics_, r, beta);
    metrics_["val/vpred_rollout"] = masked_mean(r.values.view(), r.mask.view());
    metrics_["ppo/returns/mean"] = masked_mean(r.returns.view(), r.mask.view());
    update_start_ = std::chrono::steady_clock::now();
    sums_ = {};
    early_ = false;
    order_.resize(r.size());
    std::iota(order_.begin(), order_.end(), std::size_t{0});
    epoch_ = 0, k_ = 0;
    shuffle();
    in_iteration_ = true;
  }
  void shuffle() {
    for (std::size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[state_.rng.below(i)]);
  }

  nlohmann::json buffer_json() const {
    const auto& r = rollout_;
    nlohmann::json j{{"prefix_len", r.prefix_len},
                     {"text_len", r.text_len},
                     {"response_len", r.response_len},
                     {"responses", r.responses},
                     {"ended", r.ended},
                     {"raw_scores", r.raw_scores},
                     {"scores", r.scores},
                     {"order", order_},
                     {"epoch", epoch_},
                     {"minibatch", k_},
                     {"early", early_},
                     {"metrics", metrics_},
                     {"sums", std::vector<double>{sums_.pl, sums_.vl, sums_.akl, sums_.cf, sums_.vcf,
                                                  sums_.ratio, sums_.norm, sums_.vpred}},
                     {"steps", sums_.steps}};
    for (const auto& p : r.prompts) j["prompts"].push_back({{"key", p.key}, {"ids", p.ids}});
    for (const auto& [name, t] : tensors(const_cast<Rollout<T>&>(r)))
      j["tensors"][name] = std::vector<T>(t->data(), t->data() + r.size() * r.response_len);
    return j;
  }
  void load_buffer(const nlohmann::json& j) {
    auto& r = rollout_;
    r.prompts.clear();
    for (const auto& p : j.at("prompts"))
      r.prompts.push_back({p.at("key").get<std::size_t>(), p.at("ids").get<std::vector<std::int32_t>>()});
    j.at("responses").get_to(r.responses);
    r.ended = j.at("ended").get<std::vector<bool>>();
    j.at("raw_scores").get_to(r.raw_scores);
    j.at("scores").get_to(r.scores);
    r.prefix_len = j.at("prefix_len"), r.text_len = j.at("text_len"), r.response_len = j.at("response_len");
    for (auto& [name, t] : tensors(r)) {
      const auto v = j.at("tensors").at(name).template get<std::vector<T>>();
      t->resize(Shape{r.size(), r.response_len});
      std::copy(v.begin(), v.end(), t->data());
    }
    j.at("order").get_to(order_);
    epoch_ = j.at("epoch"), k_ = j.at("minibatch"), early_ = j.at("early");
    j.at("metrics").get_to(metrics_);
    const auto sums = j.at("sums").get<std::vector<double>>();
    sums_ = {sums.at(0), sums.at(1), sums.at(2),
             sums.at(3), sums.at(4), sums.at(5),
             sums.at(6), sums.at(7), j.at("steps").get<std::size_t>()};
    update_start_ = std::chrono::steady_clock::now();
  }
  static std::vector<std::pair<const char*, CpuTensor<T>*>> tensors(Rollout<T>& r) {
    return {{"mask", &r.mask},       {"logprobs", &r.logprobs},     {"ref_logprobs", &r.ref_logprobs},
            {"values", &r.values},   {"entropy", &r.entropy},       {"kl", &r.kl},
            {"rewards", &r.rewards}, {"advantages", &r.advantages}, {"returns", &r.returns}};
  }

  struct Sums {
    double pl = 0, vl = 0, akl = 0, cf = 0, vcf = 0, ratio = 0, norm = 0, vpred = 0;
    std::size_t steps = 0;
  };

  PPOConfig config_;
  Model state_;
  RewardFn reward_;
  PromptSource prompts_;
  RolloutCollector<P> collector_;
  MinibatchPass<P> pass_;
  Rollout<T> rollout_;
  CpuTensor<T> old_lp_, adv_, ret_, old_v_, mask_, dlp_, dv_;
  // The iteration in progress: minibatch order, epoch and next minibatch, early stop, running sums.
  bool in_iteration_ = false, early_ = false;
  std::vector<std::size_t> order_;
  std::size_t epoch_ = 0, k_ = 0;
  Sums sums_;
  Metrics metrics_;
  std::chrono::steady_clock::time_point update_start_{};
};

// PPO driven one iteration at a time (rl_trainer.hpp): PPOTrainer(policy, reward, config).step(prompts).
template <Policy P, class RewardFn, class KLControl = AdaptiveKL>
using PPOTrainer = RLTrainer<PPOObjective<P, RewardFn, KLControl>>;

}  // namespace p4lm::rl
