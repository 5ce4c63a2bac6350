#pragma once
// PPO with a KL penalty to a frozen reference (Ziegler et al. 2019; TRL's PPOTrainer), for causal LMs.
//
//   rl::PPOConfig cfg{.batch_size = 32, .mini_batch_size = 8, .init_kl_coef = 0.1, .target = 2.0};
//   rl::PPOTrainer<rl::LMPolicy<LlamaLM<>>, Reward> ppo(rl::LMPolicy(std::move(lm)), reward, cfg);
//   for (int it = 0; it < 100; ++it) {
//     auto metrics = ppo.step(prompts);        // objective/kl, objective/scores, policy/clipfrac, ...
//   }
//
// One iteration (step):
//   1. rollout: batch_size prompts sampled by the policy (batched KV-cache decoding), the policy's
//      log-probs, entropies and values from one batched forward, the reference's from one more, the
//      reward on the finished samples (missing_eos_penalty for samples without EOS);
//   2. rewards r_t = -β kl_t, plus the score at each sample's last token (shaped_reward.hpp);
//   3. GAE (gamma, lam) with the value head's values, then advantages whitened over the batch;
//   4. ppo_epochs passes over the batch in shuffled minibatches of mini_batch_size samples: clipped
//      policy loss + vf_coef × clipped value loss, one AdamW step over policy and value head each;
//      with early_stopping, the passes end once a minibatch's approx-KL exceeds 1.5 × target_kl;
//   5. the KL controller sees the batch's mean per-sample KL (AdaptiveKL moves β toward `target`).
// Non-finite rollouts, losses or gradient norms stop the run with the iteration, epoch, minibatch and
// quantity named.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
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
#include "p4lm/rl/rollout.hpp"
#include "p4lm/rl/shaped_reward.hpp"

namespace p4lm::rl {

template <Policy P, class RewardFn, class KLControl = AdaptiveKL>
class PPOTrainer {
  static_assert(check_policy<P>());
  static_assert(check_reward_function<RewardFn>());
  static_assert(check_kl_controller<KLControl>());

 public:
  using T = typename P::value_type;
  using View = TensorView<backend::cpu, T>;

  PPOTrainer(P policy, RewardFn reward, PPOConfig config)
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
        collector_(state_.policy, state_.reference) {}
  PPOTrainer(const PPOTrainer&) = delete;
  PPOTrainer& operator=(const PPOTrainer&) = delete;

  // One PPO iteration on these prompts (batch_size of them); returns its metrics.
  Metrics step(std::span<const Prompt> prompts) {
    using clock = std::chrono::steady_clock;
    const auto& c = config_;
    if (prompts.size() != c.batch_size)
      fail<InvalidArgument>("PPOTrainer::step: ", prompts.size(), " prompts, batch_size is ", c.batch_size);
    auto& r = rollout_;
    RolloutOptions ro;
    ro.max_new_tokens = c.response_length;
    if (c.eos_token_id >= 0) ro.eos = c.eos_token_id;
    ro.missing_eos_penalty = c.missing_eos_penalty;
    ro.seed = state_.sampling_seed();
    collector_.collect(r, prompts, ro, reward_, &state_.head);

    const double beta = state_.kl.value();
    shape_rewards(r, beta, c.estimator());
    if (c.whiten_rewards) whiten(r.rewards.view(), r.mask.view(), false);
    gae(r.advantages.view(), r.returns.view(), r.rewards.view(), r.values.view(), r.mask.view(), c.gamma,
        c.lam);
    whiten(r.advantages.view(), r.mask.view());

    Metrics m;
    rollout_metrics(m, r, beta);
    m["val/vpred_rollout"] = masked_mean(r.values.view(), r.mask.view());
    m["ppo/returns/mean"] = masked_mean(r.returns.view(), r.mask.view());

    const auto t0 = clock::now();
    const std::size_t B = r.size(), R = r.response_len, mb = c.mini_batch_size;
    std::vector<std::size_t> order(B);
    std::iota(order.begin(), order.end(), std::size_t{0});
    double pl_sum = 0, vl_sum = 0, akl_sum = 0, cf_sum = 0, vcf_sum = 0, ratio_sum = 0, norm_sum = 0;
    double vpred_sum = 0;
    std::size_t steps = 0, epochs = 0;
    bool early = false;
    for (std::size_t epoch = 0; epoch < c.ppo_epochs && !early; ++epoch, ++epochs) {
      for (std::size_t i = B; i > 1; --i) std::swap(order[i - 1], order[state_.rng.below(i)]);
      for (std::size_t k = 0; k < B / mb; ++k) {
        const std::span<const std::size_t> rows(order.data() + k * mb, mb);
        state_.zero_grad();
        pass_.forward(state_.policy, &state_.head, r, rows);
        for (auto* t : {&old_lp_, &adv_, &ret_, &old_v_, &mask_, &dlp_, &dv_}) t->resize(Shape{mb, R});
        const auto& batch = pass_.batch();
        batch.take(old_lp_.view(), r.logprobs.view());
        batch.take(adv_.view(), r.advantages.view());
        batch.take(ret_.view(), r.returns.view());
        batch.take(old_v_.view(), r.values.view());
        batch.take(mask_.view(), r.mask.view());
        const auto pl = policy_loss(dlp_.view(), pass_.logprobs(), old_lp_.view(), adv_.view(), mask_.view(),
                                    c.cliprange);
        const auto vl = value_loss(dv_.view(), pass_.values(), old_v_.view(), ret_.view(), mask_.view(),
                                   c.cliprange_value);
        for (std::size_t i = 0; i < dv_.numel(); ++i) dv_.data()[i] *= static_cast<T>(c.vf_coef);
        auto where = [&] {
          return p4lm::detail::concat("PPO iteration ", state_.iteration, ", epoch ", epoch, ", minibatch ",
                                      k, ": ");
        };
        if (!std::isfinite(pl.loss)) fail<Error>(where(), "loss/policy is ", pl.loss);
        if (!std::isfinite(vl.loss)) fail<Error>(where(), "loss/value is ", vl.loss);
        pass_.backward(state_.policy, &state_.head, dlp_.view(), dv_.view());
        const double norm = state_.optimizer.step(state_.parameters(), c.learning_rate);
        if (!std::isfinite(norm)) fail<Error>(where(), "the gradient norm is ", norm, " (update skipped)");
        pl_sum += pl.loss, vl_sum += vl.loss, akl_sum += pl.approxkl, cf_sum += pl.clipfrac;
        vcf_sum += vl.clipfrac, ratio_sum += pl.ratio_mean, norm_sum += norm;
        vpred_sum += masked_mean(pass_.values(), mask_.view());
        ++steps;
        if (c.early_stopping && pl.approxkl > 1.5 * c.target_kl) {
          early = true;
          break;
        }
      }
    }
    const double n = static_cast<double>(std::max<std::size_t>(steps, 1));
    m["loss/policy"] = pl_sum / n;
    m["loss/value"] = vl_sum / n;
    m["loss/total"] = (pl_sum + c.vf_coef * vl_sum) / n;
    m["policy/approxkl"] = akl_sum / n;
    m["policy/clipfrac"] = cf_sum / n;
    m["policy/ratio"] = ratio_sum / n;
    m["policy/grad_norm"] = norm_sum / n;
    m["val/clipfrac"] = vcf_sum / n;
    m["val/vpred"] = vpred_sum / n;
    m["ppo/epochs"] = static_cast<double>(epochs);
    m["ppo/optimizer_steps"] = static_cast<double>(steps);
    m["ppo/early_stopped"] = early ? 1.0 : 0.0;
    m["time/update"] = std::chrono::duration<double>(clock::now() - t0).count();

    state_.kl.update(m["objective/kl"], B);
    ++state_.iteration;
    m["iteration"] = static_cast<double>(state_.iteration);
    return m;
  }
  Metrics step(const std::vector<Prompt>& prompts) { return step(std::span<const Prompt>(prompts)); }

  const PPOConfig& config() const noexcept { return config_; }
  P& policy() noexcept { return state_.policy; }
  const P& reference() const noexcept { return state_.reference; }
  ValueHead<T>& value_head() noexcept { return state_.head; }
  KLControl& kl_controller() noexcept { return state_.kl; }
  RLState<P, KLControl>& state() noexcept { return state_; }
  std::size_t iteration() const noexcept { return state_.iteration; }
  const Rollout<T>& last_rollout() const noexcept { return rollout_; }
  RewardFn& reward() noexcept { return reward_; }

  // Checkpoints of the whole iteration state (rl_state.hpp).
  void save(const std::filesystem::path& path) { state_.save(path); }
  void load(const std::filesystem::path& path) { state_.load(path); }

 private:
  static PPOConfig validated(PPOConfig c) {
    c.validate();
    return c;
  }

  PPOConfig config_;
  RLState<P, KLControl> state_;
  RewardFn reward_;
  RolloutCollector<P> collector_;
  MinibatchPass<P> pass_;
  Rollout<T> rollout_;
  CpuTensor<T> old_lp_, adv_, ret_, old_v_, mask_, dlp_, dv_;
};

}  // namespace p4lm::rl
