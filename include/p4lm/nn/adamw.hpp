#pragma once
// AdamW<T, B> over a module's trainable parameters: global gradient-norm clipping (ops::clip_grad_norm),
// then ops::adamw_update per tensor, weight decay only where Parameter::decay says so. The moment
// estimates m and v live in one allocation each, one slice per parameter in parameters() order, so
// they save and load by parameter name (model/checkpoint.hpp). Only the parameters trainable when the
// optimizer is built get a slice (has_state): a model whose frozen base is most of its weights costs
// moments, steps and checkpoint bytes for the trained part alone. Decide what trains first, then
// build the optimizer (the Trainer builds one per phase, after the objective's begin_phase).
//
//   p4lm::AdamW opt(model.parameters(), {.lr = 3e-4, .weight_decay = 0.1});
//   opt.scale_lr("adapter.*", 5.0);        // parameter groups: these take 5x the step's learning rate
//   double norm = opt.step(model.parameters(), schedule.lr(step));   // returns the pre-clip norm

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "p4lm/backend/tensors.hpp"
#include "p4lm/nn/parameter.hpp"
#include "p4lm/ops/all_backends.hpp"

namespace p4lm {

struct AdamWOptions {
  double lr = 3e-4;  // default learning rate when step() is not given one
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;  // <= 0: no clipping
};

template <Scalar T = float, Backend B = backend::cpu>
class AdamW {
 public:
  using View = TensorView<B, T>;
  using backend_type = B;

  AdamW() = default;
  AdamW(std::span<const Parameter<T, B>> params, AdamWOptions options = {}) : options_(options) {
    std::size_t total = 0;
    for (const auto& p : params) {
      names_.push_back(p.name);
      offsets_.push_back(p.trainable ? total : no_state);
      lr_scale_.push_back(1.0);
      if (p.trainable) total += p.value.numel();
    }
    m_ = Tensor<B, T>(Shape{total}, T(0));
    v_ = Tensor<B, T>(Shape{total}, T(0));
  }

  const AdamWOptions& options() const noexcept { return options_; }
  AdamWOptions& options() noexcept { return options_; }
  // Parameter groups: the parameters whose names match `glob` (nn/parameter.hpp's glob_match) are
  // updated with factor × the step's learning rate from now on. Returns how many matched. The factors
  // are configuration, not state: checkpoints do not hold them, a resumed run sets them again.
  std::size_t scale_lr(std::string_view glob, double factor) {
    if (!(factor > 0) || !std::isfinite(factor))
      fail<InvalidArgument>("AdamW::scale_lr: factor for '", glob, "' must be positive and finite, got ",
                            factor);
    std::size_t n = 0;
    for (std::size_t i = 0; i < names_.size(); ++i)
      if (glob_match(glob, names_[i])) lr_scale_[i] = factor, ++n;
    return n;
  }
  double lr_scale(std::size_t i) const { return lr_scale_.at(i); }

  // Number of updates done so far (AdamW's t after the last step).
  std::int64_t steps() const noexcept { return t_; }
  void set_steps(std::int64_t t) noexcept { t_ = t; }

  // Clips the trainable gradients to max_grad_norm, then updates every trainable parameter.
  // Returns the global gradient norm before clipping; a non-finite norm skips the update. A parameter
  // frozen when the optimizer was built and trainable now is refused (it has no moments).
  double step(std::span<Parameter<T, B>> params, double lr) {
    check(params);
    for (std::size_t i = 0; i < params.size(); ++i)
      if (params[i].trainable && !has_state(i))
        fail<InvalidArgument>("AdamW: parameter '", params[i].name,
                              "' is trainable but was frozen when the optimizer was built (it holds no "
                              "moments for it): build the optimizer after choosing what trains");
    grads_.clear();
    for (const auto& p : params)
      if (p.trainable) grads_.push_back(p.grad);
    const std::span<const View> grads(grads_);
    const double norm = options_.max_grad_norm > 0
                            ? double(ops::clip_grad_norm(grads, options_.max_grad_norm))
                            : double(ops::global_grad_norm(grads));
    if (!std::isfinite(norm)) return norm;
    ++t_;
    for (std::size_t i = 0; i < params.size(); ++i) {
      auto& p = params[i];
      if (!p.trainable) continue;
      ops::AdamWConfig c{lr * lr_scale_[i], options_.beta1, options_.beta2, options_.eps,
                         p.decay ? options_.weight_decay : 0.0};
      ops::adamw_update(p.value, p.grad, m(i, p.value.shape()), v(i, p.value.shape()), t_, c);
    }
    return norm;
  }
  double step(std::span<Parameter<T, B>> params) { return step(params, options_.lr); }

  // Whether parameter i (by position in the parameters() it was built from) has moments: it was
  // trainable when the optimizer was built.
  bool has_state(std::size_t i) const { return offsets_.at(i) != no_state; }
  // State of parameter i; only where has_state(i).
  View m(std::size_t i, Shape s) { return {m_.data() + state_offset(i), s}; }
  View v(std::size_t i, Shape s) { return {v_.data() + state_offset(i), s}; }
  // Elements held per moment (the sum of numel over the parameters with state).
  std::size_t state_numel() const noexcept { return m_.numel(); }
  const std::vector<std::string>& names() const noexcept { return names_; }

 private:
  static constexpr std::size_t no_state = static_cast<std::size_t>(-1);

  std::size_t state_offset(std::size_t i) const {
    if (!has_state(i))
      fail<InvalidArgument>("AdamW: parameter '", names_.at(i),
                            "' was frozen when the optimizer was built and has no moments");
    return offsets_[i];
  }

  void check(std::span<const Parameter<T, B>> params) const {
    if (params.size() != names_.size())
      fail<InvalidArgument>("AdamW: built for ", names_.size(), " parameters, stepped with ", params.size());
    for (std::size_t i = 0; i < params.size(); ++i)
      if (params[i].name != names_[i])
        fail<InvalidArgument>("AdamW: parameter ", i, " is '", params[i].name, "', the optimizer holds '",
                              names_[i], "'");
  }

  AdamWOptions options_{};
  std::vector<std::string> names_;
  std::vector<std::size_t> offsets_;
  std::vector<double> lr_scale_;
  Tensor<B, T> m_, v_;
  std::vector<View> grads_;
  std::int64_t t_ = 0;
};

}  // namespace p4lm
