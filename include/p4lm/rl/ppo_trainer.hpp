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
//
// Data parallel (the Trainer's communicator of N ranks, docs/distributed.md): batch_size and
// mini_batch_size stay global and must be multiples of N. Rank r takes its contiguous share of the
// iteration's prompts (dist::Shard::range) and samples it from its own seed
// (RLState::sampling_seed(r)); reward whitening, advantage whitening and every rollout metric reduce
// over all ranks' tokens and samples (ppo_advantages); each Trainer step is a minibatch of
// mini_batch_size / N rows on every rank, whose gradients the Trainer averages; the minibatch
// statistics and the approx-KL early stop are means over the ranks. last_rollout() is this rank's
// share. A checkpoint inside an iteration holds every rank's share (gathered on rank 0) and resumes
// on the same number of ranks; one at an iteration's end resumes on any number.

#include <algorithm>
#include <array>
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
#include "p4lm/dist/communicator.hpp"
#include "p4lm/dist/shard.hpp"
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

// Steps 2-3 of a PPO iteration on a collected rollout (this rank's rows of the batch), and the
// rollout's metrics: rewards shaped with β, optionally whitened, GAE, advantages whitened; every
// statistic over the tokens and samples of all ranks of comm.
template <class T>
void ppo_advantages(Rollout<T>& r, double beta, const PPOConfig& c, Metrics& m,
                    const dist::Communicator& comm = dist::Communicator()) {
  shape_rewards(r, beta, c.estimator());
  if (c.whiten_rewards) whiten(r.rewards.view(), r.mask.view(), comm, false);
  gae(r.advantages.view(), r.returns.view(), r.rewards.view(), r.values.view(), r.mask.view(), c.gamma,
      c.lam);
  whiten(r.advantages.view(), r.mask.view(), comm);
  rollout_metrics(m, r, beta, comm);
  m["val/vpred_rollout"] = masked_mean(r.values.view(), r.mask.view(), comm);
  m["ppo/returns/mean"] = masked_mean(r.returns.view(), r.mask.view(), comm);
}

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
    const std::size_t mb = config_.mini_batch_size / ranks();  // this rank's rows of a minibatch
    return Rows(order_.data() + k_ * mb, mb);
  }

  // The ranks the Trainer runs on (see the file comment); each takes an equal share of a batch.
  void set_communicator(const dist::Communicator& c) {
    const auto n = static_cast<std::size_t>(c.size());
    if (config_.batch_size % n || config_.mini_batch_size % n)
      fail<InvalidArgument>("PPO on ", n, " ranks: batch_size ", config_.batch_size, " and mini_batch_size ",
                            config_.mini_batch_size, " must be multiples of the number of ranks");
    comm_ = c;
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
    step_ = {pl.loss,
             vl.loss,
             pl.approxkl,
             pl.clipfrac,
             vl.clipfrac,
             pl.ratio_mean,
             masked_mean(pass_.values(), mask_.view())};
    ++k_;
    return {pl.loss + c.vf_coef * vl.loss, mb, static_cast<double>(mask_count(mask_.view()))};
  }

  // After each AdamW step: at the iteration's last one, the iteration's metrics (without wall times),
  // the KL controller's update and the next iteration; {} otherwise.
  template <class Info>
  Metrics end_step(Model& s, const Info& info) {
    if (comm_.distributed()) {  // the minibatch's statistics: means over the ranks
      comm_.all_reduce_sum(std::span<double>(step_));
      for (double& v : step_) v /= static_cast<double>(comm_.size());
    }
    sums_.pl += step_[0], sums_.vl += step_[1], sums_.akl += step_[2], sums_.cf += step_[3];
    sums_.vcf += step_[4], sums_.ratio += step_[5], sums_.vpred += step_[6];
    if (config_.early_stopping && step_[2] > 1.5 * config_.target_kl) early_ = true;
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
    s.kl.update(m["objective/kl"], config_.batch_size);
    ++s.iteration;
    m["iteration"] = static_cast<double>(s.iteration);
    in_iteration_ = false;
    return without_times(m);
  }

  // Checkpointed with the Trainer's: iteration, β, RNG position and, between two steps of one
  // iteration, the rollout buffer and the cursor in it (the policy that sampled it has moved on, so
  // it cannot be rebuilt).
  // Data parallel: rank 0's state, with the other ranks' shares of the rollout (rank_rollouts).
  nlohmann::json state() const {
    auto j = state_.state();
    if (in_iteration_) j["buffer"] = buffer_json();
    if (in_iteration_ && comm_.distributed()) j["rank_rollouts"] = rank_rollouts_;
    return j;
  }
  void load_state(const nlohmann::json& j) {
    state_.load_state(j);
    in_iteration_ = j.contains("buffer");
    rank_rollouts_.clear();
    if (!in_iteration_) return;
    const std::size_t saved = j.contains("rank_rollouts") ? j.at("rank_rollouts").size() + 1 : 1;
    if (saved != ranks())
      fail<InvalidArgument>("PPO: the checkpoint was saved inside iteration ", state_.iteration + 1, " by ",
                            saved, " rank(s), each holding its share of the rollout: resume it on ", saved,
                            " rank(s) (a checkpoint at an iteration's end resumes on any number)");
    load_buffer(j.at("buffer"));
    if (saved > 1) {
      rank_rollouts_ = j.at("rank_rollouts").get<std::vector<nlohmann::json>>();
      if (comm_.rank() > 0) load_rollout(rank_rollouts_.at(static_cast<std::size_t>(comm_.rank()) - 1));
    }
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

  std::size_t ranks() const noexcept { return static_cast<std::size_t>(comm_.size()); }

  void begin_iteration() {
    const auto& c = config_;
    if (!prompts_) fail<InvalidArgument>("PPOObjective: no prompts (give it a PromptSource)");
    const auto prompts = prompts_(state_.iteration);
    check_prompts(prompts);
    const auto [first, last] = dist::Shard::of(comm_).range(prompts.size());  // this rank's share
    auto& r = rollout_;
    collector_.collect(r, std::span<const Prompt>(prompts).subspan(first, last - first),
                       rollout_options(c, state_.sampling_seed(static_cast<std::size_t>(comm_.rank()))),
                       reward_, &state_.head);
    metrics_.clear();
    ppo_advantages(r, state_.kl.value(), c, metrics_, comm_);
    if (comm_.distributed()) {  // rank 0 saves the checkpoints: it keeps every rank's share
      const auto shares = comm_.gather(rollout_json().dump());
      rank_rollouts_.clear();
      for (std::size_t k = 1; k < shares.size(); ++k)
        rank_rollouts_.push_back(nlohmann::json::parse(shares[k]));
    }
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

  // This rank's rollout (the buffer_json fields that differ between ranks).
  nlohmann::json rollout_json() const {
    const auto& r = rollout_;
    nlohmann::json j{{"prefix_len", r.prefix_len}, {"text_len", r.text_len}, {"response_len", r.response_len},
                     {"responses", r.responses},   {"ended", r.ended},       {"raw_scores", r.raw_scores},
                     {"scores", r.scores}};
    for (const auto& p : r.prompts) j["prompts"].push_back({{"key", p.key}, {"ids", p.ids}});
    for (const auto& [name, t] : tensors(const_cast<Rollout<T>&>(r)))
      j["tensors"][name] = std::vector<T>(t->data(), t->data() + r.size() * r.response_len);
    return j;
  }
  // The rollout and the cursor in it (the same on every rank).
  nlohmann::json buffer_json() const {
    nlohmann::json j = rollout_json();
    j["order"] = order_, j["epoch"] = epoch_, j["minibatch"] = k_, j["early"] = early_;
    j["metrics"] = metrics_;
    j["sums"] = std::vector<double>{sums_.pl,  sums_.vl,    sums_.akl,  sums_.cf,
                                    sums_.vcf, sums_.ratio, sums_.norm, sums_.vpred};
    j["steps"] = sums_.steps;
    return j;
  }
  void load_buffer(const nlohmann::json& j) {
    load_rollout(j);
    j.at("order").get_to(order_);
    epoch_ = j.at("epoch"), k_ = j.at("minibatch"), early_ = j.at("early");
    j.at("metrics").get_to(metrics_);
    const auto sums = j.at("sums").get<std::vector<double>>();
    sums_ = {sums.at(0), sums.at(1), sums.at(2),
             sums.at(3), sums.at(4), sums.at(5),
             sums.at(6), sums.at(7), j.at("steps").get<std::size_t>()};
    update_start_ = std::chrono::steady_clock::now();
  }
  void load_rollout(const nlohmann::json& j) {
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
  std::array<double, 7> step_{};  // the last minibatch's pl, vl, approxkl, clipfrac, vclipfrac, ratio, vpred
  Metrics metrics_;
  dist::Communicator comm_;                    // the Trainer's ranks (set_communicator)
  std::vector<nlohmann::json> rank_rollouts_;  // rank 0: ranks 1..N-1's shares of the current rollout
  std::chrono::steady_clock::time_point update_start_{};
};

// PPO driven one iteration at a time (rl_trainer.hpp): PPOTrainer(policy, reward, config).step(prompts).
template <Policy P, class RewardFn, class KLControl = AdaptiveKL>
using PPOTrainer = RLTrainer<PPOObjective<P, RewardFn, KLControl>>;

}  // namespace p4lm::rl
