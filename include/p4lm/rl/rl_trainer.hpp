#pragma once
// RL on the shared Trainer (train/trainer.hpp). PPO and the policy gradient are Objectives
// (PPOObjective in ppo_trainer.hpp, PolicyGradientObjective in policy_gradient.hpp) whose Model is
// RLState (policy + value head): batch() hands out minibatches of the current rollout and collects
// the next rollout (prompts from a PromptSource, sampling, reference, reward, KL, advantages) when
// the last one is used up; the Trainer owns the step loop, AdamW and its clipping, the non-finite
// guard, metrics files, progress and checkpoints (the objective's iteration, β, RNG and, between
// two iterations' steps, its rollout buffer go in through state()). A Trainer step is one AdamW
// step; an iteration is batch_size / mini_batch_size × ppo_epochs of them for PPO (fewer after an
// approx-KL early stop) and one for the policy gradient.
//
// RLTrainer<Objective> drives such an objective one iteration at a time, for code that picks its
// own prompts per iteration (tests, notebooks):
//   rl::PPOTrainer<Policy, Reward> ppo(std::move(policy), reward, cfg);   // = RLTrainer<PPOObjective<...>>
//   rl::Metrics m = ppo.step(prompts);                                    // one iteration
//   ppo.save("rl.safetensors");  ppo.load("rl.safetensors");             // the Trainer's checkpoint
// A longer run gives the objective a PromptSource and the Trainer a step count (pipeline/rl_stage.hpp):
//   rl::PPOObjective<Policy, Reward> objective(std::move(policy), reward, cfg, prompt_source);
//   auto o = rl::trainer_options(cfg, iterations * objective.steps_per_iteration());
//   train::Trainer trainer(objective.model(), objective, o);
// An iteration's metrics come with its last step (Objective::end_step's fields): with metrics files,
// set o.log_every = steps_per_iteration() (and no early stop), since a CSV keeps its first record's
// columns.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/nn/adamw.hpp"
#include "p4lm/rl/metrics.hpp"
#include "p4lm/rl/rollout.hpp"
#include "p4lm/train/trainer.hpp"

namespace p4lm::rl {

// The prompts of iteration i (PPO: batch_size of them; the policy gradient: batch_size / rloo_k).
// A resumed run asks again for the iterations it has not done, so it should be a function of i.
using PromptSource = std::function<std::vector<Prompt>(std::size_t iteration)>;

// What a config (PPOConfig, PGConfig) says about sampling, for iteration seed `seed`.
template <class Config>
RolloutOptions rollout_options(const Config& c, std::uint64_t seed) {
  RolloutOptions ro;
  ro.max_new_tokens = c.response_length;
  if (c.eos_token_id >= 0) ro.eos = c.eos_token_id;
  ro.missing_eos_penalty = c.missing_eos_penalty;
  ro.min_response_length = c.min_response_length, ro.short_response_penalty = c.short_response_penalty;
  ro.repeated_ngram_size = c.repeated_ngram_size, ro.repeated_ngram_penalty = c.repeated_ngram_penalty;
  ro.seed = seed;
  return ro;
}

// The Trainer's options for `steps` AdamW steps of an RL config: one phase at the config's constant
// learning rate, AdamW(0.9, 0.999, 1e-8) with its weight decay and max_grad_norm, one step per
// batch (no gradient accumulation: the objectives accumulate themselves), and every config field
// in the fingerprint as config.<field>, so a resume with another setting is refused naming it.
template <class Config>
train::TrainerOptions trainer_options(const Config& c, std::size_t steps) {
  train::TrainerOptions o;
  train::Phase phase;
  phase.steps = steps;
  phase.schedule = {
      .peak_lr = c.learning_rate, .warmup_steps = 0, .total_steps = 1, .min_lr = c.learning_rate};
  phase.optimizer = {.lr = c.learning_rate,
                     .beta1 = 0.9,
                     .beta2 = 0.999,
                     .eps = 1e-8,
                     .weight_decay = c.weight_decay,
                     .max_grad_norm = c.max_grad_norm};
  o.phases = {phase};
  o.micro_batches = 1;
  o.progress = false;
  o.label = "rl";
  o.fingerprint = nlohmann::json::object();
  const nlohmann::json fields = to_json(c);
  for (const auto& [k, v] : fields.items()) o.fingerprint["config." + k] = v;
  return o;
}

// An iteration's metrics without wall times: what goes into step records, so that a resumed run
// writes the same bytes as an uninterrupted one (the times stay in the objective's last_metrics()).
inline Metrics without_times(const Metrics& m) {
  Metrics out;
  for (const auto& [k, v] : m)
    if (!k.starts_with("time/")) out.emplace(k, v);
  return out;
}

// A Trainer callback: stops once the objective has finished `iteration` iterations (0: never).
struct StopAtIteration {
  std::size_t iteration = 0;
  template <class Trainer, class Info>
  bool end_step(Trainer& t, const Info&) const {
    return iteration != 0 && t.objective().iteration() >= iteration;
  }
};

template <class Objective>
class RLTrainer {
 public:
  using Model = typename Objective::Model;
  using T = typename Model::value_type;
  using Config = typename Objective::Config;
  using Trainer = train::Trainer<Model, Objective, AdamW<T>, StopAtIteration>;

  template <class P, class RewardFn>
  RLTrainer(P policy, RewardFn reward, Config config)
      : objective_(std::move(policy), std::move(reward), std::move(config)),
        trainer_(objective_.model(), objective_,
                 trainer_options(objective_.config(), std::numeric_limits<std::size_t>::max() / 2), stop_) {}
  RLTrainer(const RLTrainer&) = delete;
  RLTrainer& operator=(const RLTrainer&) = delete;

  // One iteration on these prompts; its metrics (wall times included).
  Metrics step(std::span<const Prompt> prompts) {
    objective_.check_prompts(prompts);
    objective_.set_prompts(
        [p = std::vector<Prompt>(prompts.begin(), prompts.end())](std::size_t) { return p; });
    stop_.iteration = objective_.iteration() + 1;
    trainer_.fit();
    return objective_.last_metrics();
  }
  Metrics step(const std::vector<Prompt>& prompts) { return step(std::span<const Prompt>(prompts)); }

  // The Trainer's checkpoint (parameters, AdamW, the objective's state); load refuses a checkpoint
  // of another configuration, naming the field (config.<field>).
  void save(const std::filesystem::path& path) { trainer_.save_checkpoint(path); }
  void load(const std::filesystem::path& path) {
    if (!trainer_.resume(path)) fail<IoError>(path.string(), ": no such checkpoint");
  }

  const Config& config() const noexcept { return objective_.config(); }
  auto& policy() noexcept { return objective_.model().policy; }
  const auto& reference() const noexcept { return objective_.model().reference; }
  auto& value_head() noexcept { return objective_.model().head; }
  auto& kl_controller() noexcept { return objective_.model().kl; }
  Model& state() noexcept { return objective_.model(); }
  std::size_t iteration() const noexcept { return objective_.iteration(); }
  const auto& last_rollout() const noexcept { return objective_.last_rollout(); }
  auto& reward() noexcept { return objective_.reward(); }
  Objective& objective() noexcept { return objective_; }
  Trainer& trainer() noexcept { return trainer_; }

 private:
  Objective objective_;
  StopAtIteration stop_;
  Trainer trainer_;
};

}  // namespace p4lm::rl
