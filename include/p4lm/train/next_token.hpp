#pragma once
// Language-model pretraining or fine-tuning on a token stream (`p4lm train-lm`) as an Objective of the
// shared Trainer, and the one-call library entry behind the command.
//
//   p4lm::train::NextTokenOptions o{.batch = 8, .seq = 64, .steps = 2000, .out = "runs/lm"};
//   auto r = p4lm::train::train_next_token(model, tokens, o);   // resumes out/checkpoint.safetensors
//
// Batches are consecutive windows of the stream (documents joined by the caller with EOS/BOS): row b
// of step g starts at (g·B·T + b·T) mod (N - T - 1), so the data position is a function of the step
// and a resumed run reads the same windows. The checkpoint (the trained model, loadable with
// load_any_lm) is out/checkpoint.safetensors; metrics go to out/metrics.{jsonl,csv} every step.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/train/concepts.hpp"
#include "p4lm/train/trainer.hpp"

namespace p4lm::train {

// Next-token cross-entropy on windows of a token stream (the stream is borrowed).
template <class LM>
class NextTokenObjective {
 public:
  struct Batch {
    std::size_t index;  // flat batch number: step · micro_batches + micro
  };

  NextTokenObjective(std::span<const std::int32_t> stream, std::size_t batch, std::size_t seq,
                     std::size_t micro_batches = 1)
      : stream_(stream), B_(batch), T_(seq), micro_(micro_batches), ids_(batch * seq), targets_(batch * seq) {
    if (B_ == 0 || T_ < 2) fail<InvalidArgument>("NextTokenObjective: batch must be >= 1 and seq >= 2");
    if (stream_.size() < T_ + 2)
      fail<InvalidArgument>("NextTokenObjective: ", stream_.size(), " tokens, too few for windows of ", T_);
  }

  Batch batch(std::size_t step, std::size_t micro) const { return {step * micro_ + micro}; }

  StepLoss loss(LM& lm, const Batch& b) {
    const std::size_t span = stream_.size() - T_ - 1;
    const std::size_t position = (b.index * B_ * T_) % span;
    for (std::size_t r = 0; r < B_; ++r) {
      const std::size_t start = (position + r * T_) % span;
      std::copy(stream_.begin() + static_cast<std::ptrdiff_t>(start),
                stream_.begin() + static_cast<std::ptrdiff_t>(start + T_), ids_.begin() + r * T_);
      std::copy(stream_.begin() + static_cast<std::ptrdiff_t>(start + 1),
                stream_.begin() + static_cast<std::ptrdiff_t>(start + T_ + 1), targets_.begin() + r * T_);
    }
    position_ = (position + B_ * T_) % span;
    const auto loss =
        lm.forward({.ids = TensorView<backend::cpu, std::int32_t>(ids_.data(), Shape{B_, T_}),
                    .targets = TensorView<backend::cpu, std::int32_t>(targets_.data(), Shape{B_, T_})});
    lm.backward();
    return {static_cast<double>(loss), B_ * T_};
  }

  // The stream position after the last batch (for inspection; it is a function of the step).
  nlohmann::json state() const { return {{"data_position", position_}, {"batch", B_}, {"seq", T_}}; }
  void load_state(const nlohmann::json& s) {
    if (s.is_object()) position_ = s.value("data_position", std::size_t{0});
  }

 private:
  std::span<const std::int32_t> stream_;
  std::size_t B_, T_, micro_;
  std::vector<std::int32_t> ids_, targets_;
  std::size_t position_ = 0;
};

struct NextTokenOptions {
  std::size_t batch = 8;  // sequences per micro-batch
  std::size_t seq = 64;   // tokens per sequence
  std::size_t micro_batches = 1;
  std::size_t steps = 1000;  // optimizer steps in total (a resumed run continues to this count)
  double lr = 3e-4;          // peak of the warmup-cosine schedule
  double min_lr = 3e-5;
  std::size_t warmup = 50;
  double weight_decay = 0.1;
  double max_grad_norm = 1.0;
  std::size_t save_every = 100;  // checkpoint every N steps (and always at the end)
  std::filesystem::path out;     // empty: no files
  bool resume = true;            // continue from out/checkpoint.safetensors when it exists
  bool progress = true;
  std::size_t stop_after = 0;  // stop at this step (0: run to the end)
  // The caller's result-changing options (a resume with other values is refused) and files written
  // with the first step (config.json).
  nlohmann::json fingerprint = nlohmann::json::object();
  std::map<std::string, std::string> run_files{};
};

// The options of NextTokenOptions that change the result. `steps` is not one of them: raising it
// continues a finished run (the cosine schedule then decays over the new total).
inline nlohmann::json next_token_fingerprint(const NextTokenOptions& o) {
  return {{"batch", o.batch},
          {"seq", o.seq},
          {"micro_batches", o.micro_batches},
          {"lr", o.lr},
          {"min_lr", o.min_lr},
          {"warmup", o.warmup},
          {"weight_decay", o.weight_decay},
          {"max_grad_norm", o.max_grad_norm}};
}

struct NextTokenResult {
  std::size_t step = 0;        // global step reached
  std::size_t resumed_at = 0;  // step of the checkpoint it resumed from (0: started fresh)
  bool resumed = false;
  std::filesystem::path checkpoint;
};

// Trains `lm` on `stream` (validated: windows fit the context, ids inside the vocabulary).
template <class LM>
NextTokenResult train_next_token(LM& lm, std::span<const std::int32_t> stream, const NextTokenOptions& o) {
  if (o.seq > lm.config().max_seq)
    fail<InvalidArgument>("seq ", o.seq, " exceeds the model's context ", lm.config().max_seq);
  for (const auto id : stream)
    if (id < 0 || static_cast<std::size_t>(id) >= lm.config().vocab_size)
      fail<InvalidArgument>("token id ", id, " is outside the model's vocabulary of ",
                            lm.config().vocab_size);
  NextTokenObjective<LM> objective(stream, o.batch, o.seq, o.micro_batches);
  TrainerOptions t{
      .phases = {{.steps = o.steps,
                  .schedule =
                      {.peak_lr = o.lr, .warmup_steps = o.warmup, .total_steps = o.steps, .min_lr = o.min_lr},
                  .optimizer = {.lr = o.lr,
                                .beta1 = 0.9,
                                .beta2 = 0.95,
                                .eps = 1e-8,
                                .weight_decay = o.weight_decay,
                                .max_grad_norm = o.max_grad_norm}}},
      .micro_batches = o.micro_batches,
      .out = o.out,
      .train_metrics = "metrics",
      .log_every = 1,
      .checkpoint_every = o.save_every,
      .final_checkpoint = true,
      .stop_after = o.stop_after,
      .progress = o.progress,
      .label = "train-lm",
      .fingerprint = o.fingerprint,
      .run_files = o.run_files};
  const nlohmann::json own = next_token_fingerprint(o);  // a named object: items() only refers to it
  for (const auto& [k, v] : own.items()) t.fingerprint[k] = v;
  Trainer trainer(lm, objective, std::move(t));
  NextTokenResult r;
  if (o.resume && trainer.resume()) {
    r.resumed = true, r.resumed_at = trainer.step();
    if (o.progress)
      std::cerr << "train-lm: resuming " << trainer.checkpoint_path().string() << " at step " << r.resumed_at
                << '\n';
  }
  if (!o.resume && !o.out.empty()) std::filesystem::remove(trainer.checkpoint_path());  // starting over
  trainer.fit();
  r.step = trainer.step();
  r.checkpoint = o.out.empty() ? std::filesystem::path() : trainer.checkpoint_path();
  return r;
}

}  // namespace p4lm::train
