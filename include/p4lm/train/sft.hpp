#pragma once
// Supervised fine-tuning of the pitch model with the paper's two-stage warm start (Jeong et al.
// 2023, §4): stage 1 trains only the CF adapters (W_U, W_I) with the transformer frozen, so the soft
// tokens learn to speak the frozen model's language; stage 2 trains everything (or, with
// train_top_layers, the adapters, the top blocks and the final norm: PitchModel::set_stage). The same trainer
// runs SFT-Text (the profile as text in the prompt, no adapter, one stage) and the single-stage
// ablation (stage1_steps = 0).
//
//   p4lm::train::SftTrainer<p4lm::LlamaLM<>, p4lm::CFAdapter<32>> trainer(lm, &adapter, &cf, train, val,
//                                                                         options, "out");
//   trainer.resume();                        // from out/checkpoint.safetensors, if a run was killed
//   trainer.fit();                           // both stages
//   double loss = trainer.evaluate(test);    // held-out mean cross-entropy per pitch token
//
// SftTrainer is the SFT objective (train/sft_objective.hpp: data order, the link-weighted loss,
// evaluation with the shuffled-users control) on the shared Trainer (train/trainer.hpp), each stage
// a phase: a fresh AdamW with global-norm clipping and linear warmup + cosine decay per stage.
// Checkpoints every checkpoint_every steps hold the LM and adapter parameters, the optimizer's
// moments and step count, the global step and the data order's position: a killed run resumes
// losing at most one interval and continues bit-identically. Metrics: out/train_metrics.{jsonl,csv}
// per log_every steps, out/eval_metrics.{jsonl,csv} per evaluation.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/model/checkpoint.hpp"
#include "p4lm/nn/adamw.hpp"
#include "p4lm/nn/schedule.hpp"
#include "p4lm/train/pitch_model.hpp"
#include "p4lm/train/sft_objective.hpp"
#include "p4lm/train/trainer.hpp"

namespace p4lm::train {

// Where a run stands: global step g counts optimizer updates over both stages.
struct SftPosition {
  std::size_t step = 0;
  int stage(const SftOptions& o) const { return step < o.stage1_steps ? 1 : 2; }
};

// The two stages as Trainer phases (stage 1 only with stage1_steps > 0), each with its own peak
// learning rate, warmup (capped at a tenth of the stage) and cosine decay to min_lr_ratio × peak.
inline std::vector<Phase> sft_phases(const SftOptions& o) {
  std::vector<Phase> phases;
  for (int stage : {1, 2}) {
    const std::size_t steps = stage == 1 ? o.stage1_steps : o.stage2_steps;
    if (stage == 1 && steps == 0) continue;
    const double peak = stage == 1 ? o.stage1_lr : o.stage2_lr;
    phases.push_back(
        {.steps = steps,
         .schedule = {.peak_lr = peak,
                      .warmup_steps = std::min(o.warmup_steps, std::max<std::size_t>(1, steps / 10)),
                      .total_steps = steps,
                      .min_lr = peak * o.min_lr_ratio},
         .optimizer = {.lr = peak, .weight_decay = o.weight_decay, .max_grad_norm = o.max_grad_norm},
         .fields = {{"stage", stage}}});
  }
  return phases;
}

// The SFT options that change the trained model (a resume refuses a change of any of them). Not in
// it: eval_every, eval_examples, log_every, checkpoint_every, stop_after, progress. train_top_layers
// appears only when set, so the checkpoints of runs from before it existed still resume.
inline nlohmann::json sft_fingerprint(const SftOptions& o) {
  nlohmann::json j = {{"batch_size", o.batch_size},
                      {"stage1_steps", o.stage1_steps},
                      {"stage2_steps", o.stage2_steps},
                      {"stage1_lr", o.stage1_lr},
                      {"stage2_lr", o.stage2_lr},
                      {"stage2_adapter_lr", o.stage2_adapter_lr},
                      {"min_lr_ratio", o.min_lr_ratio},
                      {"warmup_steps", o.warmup_steps},
                      {"weight_decay", o.weight_decay},
                      {"max_grad_norm", o.max_grad_norm},
                      {"link_weight", o.link_weight},
                      {"link_weight_steps", o.link_weight_steps},
                      {"link_weight_after", o.link_weight_after},
                      {"seed", o.seed},
                      {"soft_tokens_after_bos", o.soft_tokens_after_bos}};
  if (o.train_top_layers) j["train_top_layers"] = o.train_top_layers;
  return j;
}

// Callbacks (train/callbacks.hpp) go to the Trainer; they are held by reference.
template <class LM, class Adapter = CFAdapter<32, 1, typename LM::value_type>, class... Callbacks>
class SftTrainer {
 public:
  using T = typename LM::value_type;
  using Objective = SftObjective<LM, Adapter>;
  using Model = PitchModel<LM, Adapter>;
  using Embeddings = typename Objective::Embeddings;

  // CF conditioning: adapter and cf given. Text conditioning: both null (no prefix, one stage).
  // `out` empty: no files (no metrics, no checkpoints). `fingerprint` adds the caller's
  // result-changing options (data, base model, ...) to the SFT ones; `run_files` are written into
  // out with the first step (config.json, ...).
  SftTrainer(LM& lm, Adapter* adapter, const Embeddings* cf, std::vector<SftSequence> train,
             std::vector<SftSequence> eval, SftOptions options, std::filesystem::path out = {},
             const nlohmann::json& fingerprint = nlohmann::json::object(),
             std::map<std::string, std::string> run_files = {}, Callbacks&... callbacks)
      : model_(lm, adapter),
        objective_(lm, adapter, cf, std::move(train), std::move(eval), options),
        trainer_(model_, objective_,
                 trainer_options(objective_.options(), std::move(out), fingerprint, std::move(run_files)),
                 callbacks...) {}

  std::size_t prefix_len() const noexcept { return objective_.prefix_len(); }
  bool bos_in_prefix() const noexcept { return objective_.bos_in_prefix(); }
  const SftOptions& options() const noexcept { return objective_.options(); }
  SftPosition position() const noexcept { return {trainer_.step()}; }
  std::size_t total_steps() const noexcept { return options().stage1_steps + options().stage2_steps; }
  std::filesystem::path checkpoint_path() const { return trainer_.checkpoint_path(); }
  bool done() const noexcept { return trainer_.done(); }
  Trainer<Model, Objective, AdamW<T>, Callbacks...>& trainer() noexcept { return trainer_; }

  // Loads out/checkpoint.safetensors if it exists: parameters, optimizer state, step. Returns
  // whether it did; refuses a checkpoint written with other result-changing options.
  bool resume() { return trainer_.resume(); }

  // Trains from the current position to the end of stage 2 (or stop_after); returns the final
  // held-out loss (NaN without held-out data).
  double fit() {
    const FitResult r = trainer_.fit();
    const auto it = r.last_eval.find("eval_loss");
    if (it != r.last_eval.end()) return it->second;
    return objective_.has_eval() ? objective_.evaluate_record(model_).real.loss
                                 : std::numeric_limits<double>::quiet_NaN();
  }

  bool predicts_link(const SftSequence& q, std::size_t pos) const { return objective_.predicts_link(q, pos); }

  // Mean cross-entropy per pitch token over `seqs`, overall and split into the link sentence and the
  // rest; with shuffle_users, the shuffled-users control (sft_objective.hpp).
  SftLoss evaluate_split(std::span<const SftSequence> seqs, bool shuffle_users = false,
                         std::uint64_t shuffle_seed = 7) {
    return objective_.evaluate_split(model_, seqs, shuffle_users, shuffle_seed);
  }
  double evaluate(std::span<const SftSequence> seqs, bool shuffle_users = false,
                  std::uint64_t shuffle_seed = 7) {
    return evaluate_split(seqs, shuffle_users, shuffle_seed).loss;
  }

  // Every LM and adapter parameter, frozen ones included, for pitch generation (no optimizer state):
  // the training model's list holds only what the current stage trains.
  void save_model(const std::filesystem::path& path, const std::map<std::string, std::string>& extra = {}) {
    Model whole(model_.lm(), model_.adapter());
    save_checkpoint(path, whole, static_cast<AdamW<T>*>(nullptr), extra);
  }

 private:
  static TrainerOptions trainer_options(const SftOptions& o, std::filesystem::path out,
                                        nlohmann::json fingerprint,
                                        std::map<std::string, std::string> run_files) {
    const nlohmann::json own = sft_fingerprint(o);  // a named object: items() only refers to it
    for (const auto& [k, v] : own.items()) fingerprint[k] = v;
    TrainerOptions t{.phases = sft_phases(o),
                     .out = std::move(out),
                     .train_metrics = "train_metrics",
                     .eval_metrics = "eval_metrics",
                     .log_every = o.log_every,
                     .eval_every = o.eval_every,
                     .checkpoint_every = o.checkpoint_every,
                     .final_checkpoint = o.checkpoint_every != 0,
                     .stop_after = o.stop_after,
                     .progress = o.progress,
                     .label = "sft",
                     .fingerprint = std::move(fingerprint),
                     .run_files = std::move(run_files)};
    return t;
  }

  Model model_;
  Objective objective_;
  Trainer<Model, Objective, AdamW<T>, Callbacks...> trainer_;
};

}  // namespace p4lm::train
