#pragma once
// A causal LM and its CF adapter seen as one Model (train/concepts.hpp): one parameter list for the
// Trainer, AdamW and checkpoints, one zero_grad, and the SFT stages' freezing.
//
//   p4lm::train::PitchModel<p4lm::LlamaLM<>, p4lm::CFAdapter<32>> model(lm, &adapter);  // or nullptr
//   model.set_stage(1);   // only adapter.* trainable

#include <span>
#include <vector>

#include "p4lm/model/arch.hpp"
#include "p4lm/nn/parameter.hpp"

namespace p4lm::train {

// A model and its adapter seen as one parameter list (for AdamW and checkpoints). The entries are
// copies of the modules' Parameter records: views into the same memory, so updates land in the
// modules; trainable flags are pushed back with sync_to_modules().
template <class LM, class Adapter>
class PitchModel {
 public:
  using value_type = typename LM::value_type;
  using T = value_type;

  PitchModel(LM& lm, Adapter* adapter) : lm_(&lm), adapter_(adapter) { sync_from_modules(); }

  const ModelConfig& config() const { return lm_->config(); }
  std::span<Parameter<T>> parameters() noexcept { return params_; }
  std::span<const Parameter<T>> parameters() const noexcept { return params_; }
  LM& lm() noexcept { return *lm_; }
  Adapter* adapter() noexcept { return adapter_; }
  const Adapter* adapter() const noexcept { return adapter_; }

  void sync_from_modules() {
    params_.clear();
    for (const auto& p : lm_->parameters()) params_.push_back(p);
    if (adapter_)
      for (const auto& p : adapter_->parameters()) params_.push_back(p);
  }
  void sync_to_modules() {
    std::size_t k = 0;
    for (auto& p : lm_->parameters()) p.trainable = params_[k++].trainable;
    if (adapter_)
      for (auto& p : adapter_->parameters()) p.trainable = params_[k++].trainable;
  }
  // Stage 1: only adapter.*; stage 2: everything.
  void set_stage(int stage) {
    for (auto& p : params_) p.trainable = stage == 2 || p.name.starts_with("adapter.");
    sync_to_modules();
  }
  void zero_grad() {
    lm_->zero_grad();
    if (adapter_) adapter_->zero_grad();
  }

 private:
  LM* lm_;
  Adapter* adapter_;
  std::vector<Parameter<T>> params_;
};

}  // namespace p4lm::train
