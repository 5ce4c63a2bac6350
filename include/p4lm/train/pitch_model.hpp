#pragma once
// A causal LM and its CF adapter seen as one Model (train/concepts.hpp): one parameter list for the
// Trainer, AdamW and checkpoints, one zero_grad, and the SFT stages' freezing.
//
//   p4lm::train::PitchModel<p4lm::LlamaLM<>, p4lm::CFAdapter<32>> model(lm, &adapter);  // or nullptr
//   model.set_stage(1);      // only adapter.* trainable
//   model.set_stage(2, 4);   // the adapters, the top 4 blocks and the final norm
//
// After set_stage, parameters() lists only the trainable parameters: the optimizer holds moments
// and checkpoints hold tensors for those alone, which keeps both small when most of a 135M model is
// frozen (the frozen ones are the base model's, reloaded from it on resume). A PitchModel built
// afresh over the same modules lists everything (the model file, load_checkpoint_into).

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
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
  // Every parameter, frozen ones included (the forward pass reads them too): what a data-parallel
  // Trainer broadcasts so that the replicas agree on the frozen ones as well.
  std::span<Parameter<T>> all_parameters() noexcept { return all_; }
  LM& lm() noexcept { return *lm_; }
  Adapter* adapter() noexcept { return adapter_; }
  const Adapter* adapter() const noexcept { return adapter_; }

  // The full list again (every parameter of the LM and the adapter, flags as the modules hold them).
  void sync_from_modules() {
    params_.clear();
    for (const auto& p : lm_->parameters()) params_.push_back(p);
    if (adapter_)
      for (const auto& p : adapter_->parameters()) params_.push_back(p);
    all_ = params_;
  }
  // The trainable flags of the full list back into the modules (not after set_stage trimmed it).
  void sync_to_modules() {
    std::size_t k = 0;
    for (auto& p : lm_->parameters()) p.trainable = params_[k++].trainable;
    if (adapter_)
      for (auto& p : adapter_->parameters()) p.trainable = params_[k++].trainable;
  }
  // Stage 1: only adapter.*. Stage 2: everything, or with 0 < top_layers < the model's blocks the
  // adapters, the top `top_layers` blocks and the final norm (embeddings, lower blocks and an untied
  // head stay frozen). parameters() then lists the trainable parameters only.
  void set_stage(int stage, std::size_t top_layers = 0) {
    const std::size_t L = lm_->config().n_layers;
    const bool partial = stage == 2 && top_layers > 0 && top_layers < L;
    const auto trains = [&](const std::string& name) {
      if (name.starts_with("adapter.")) return true;
      if (stage != 2) return false;
      if (!partial) return true;
      if (name == "norm.weight" || name.starts_with("ln_f.")) return true;  // Llama, GPT-2 final norm
      const auto block = block_of(name);
      return block && *block >= L - top_layers;
    };
    for (auto& p : lm_->parameters()) p.trainable = trains(p.name);
    if (adapter_)
      for (auto& p : adapter_->parameters()) p.trainable = trains(p.name);
    sync_from_modules();
    std::erase_if(params_, [](const Parameter<T>& p) { return !p.trainable; });
    trimmed_ = true;
  }
  // Zeroes the gradients of the listed parameters (after set_stage: the trainable ones; frozen
  // gradients are never read).
  void zero_grad() {
    if (!trimmed_) {
      lm_->zero_grad();
      if (adapter_) adapter_->zero_grad();
      return;
    }
    for (auto& p : params_) {
      const auto g = p.grad.span();
      std::fill(g.begin(), g.end(), T(0));
    }
  }

  // The transformer block a parameter belongs to ("layers.7.*" for Llama, "h.7.*" for GPT-2), if any.
  static std::optional<std::size_t> block_of(std::string_view name) {
    for (const std::string_view prefix : {"layers.", "h."}) {
      if (!name.starts_with(prefix)) continue;
      const auto rest = name.substr(prefix.size());
      std::size_t l = 0;
      const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), l);
      if (ec == std::errc() && end != rest.data() && end < rest.data() + rest.size() && *end == '.') return l;
    }
    return std::nullopt;
  }

 private:
  LM* lm_;
  Adapter* adapter_;
  std::vector<Parameter<T>> params_, all_;
  bool trimmed_ = false;
};

}  // namespace p4lm::train
