#pragma once
// The critic: a Linear layer from the policy's final hidden states (after the final norm, the input
// of the LM head) to one value per position, as TRL's AutoModelForCausalLMWithValueHead. It shares
// the policy's trunk: its gradient goes back into the LM through CausalLM::backward_logprobs'
// hidden-state gradient.
//
//   rl::ValueHead<float> head(lm.config().d_model);
//   head.forward(values, lm.hidden());               // values (B, S), hidden (B, S, C)
//   head.backward(dhidden, dvalues, lm.hidden());    // dhidden (B, S, C) overwritten; weights accumulate
//
// Parameters: v_head.weight (1, C), v_head.bias (1), in one allocation (gradients in another).

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "p4lm/core/rng.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/nn/parameter.hpp"
#include "p4lm/ops/matmul.hpp"

namespace p4lm::rl {

template <class T = float>
class ValueHead {
 public:
  using value_type = T;
  using View = TensorView<backend::cpu, T>;

  explicit ValueHead(std::size_t d_model)
      : C_(d_model), values_(Shape{d_model + 1}), grads_(Shape{d_model + 1}) {
    if (d_model == 0) fail<InvalidArgument>("ValueHead: d_model must be > 0");
    params_.push_back(
        {"v_head.weight", View(values_.data(), Shape{1, C_}), View(grads_.data(), Shape{1, C_}), true, true});
    params_.push_back({"v_head.bias", View(values_.data() + C_, Shape{1}), View(grads_.data() + C_, Shape{1}),
                       true, false});
  }
  ValueHead(const ValueHead& o) : ValueHead(o.C_) {
    p4lm::copy(values_.view(), o.values_.view());
    for (std::size_t i = 0; i < params_.size(); ++i) params_[i].trainable = o.params_[i].trainable;
  }
  ValueHead& operator=(const ValueHead&) = delete;
  ValueHead(ValueHead&&) noexcept = default;  // storages move with their buffers: views stay valid
  ValueHead& operator=(ValueHead&&) noexcept = default;

  std::size_t d_model() const noexcept { return C_; }
  std::span<Parameter<T>> parameters() noexcept { return params_; }
  std::span<const Parameter<T>> parameters() const noexcept { return params_; }
  void zero_grad() { grads_.zero(); }

  // Weight N(0, std), bias 0. std = 0 starts every value at 0.
  void init(Rng& rng, double std = 0.0) {
    for (std::size_t c = 0; c < C_; ++c) values_.data()[c] = static_cast<T>(std * rng.normal());
    values_.data()[C_] = T(0);
  }

  // hidden (..., C) -> values (...).
  void forward(View values, const View& hidden) const {
    ops::matmul_forward(values.reshaped(with_one(values.shape())), hidden, params_[0].value,
                        params_[1].value);
  }

  // dvalues (...), hidden (..., C) -> dhidden (..., C) = dvalues ⊗ w (overwritten, skipped when {}),
  // v_head gradients += (accumulated across calls until zero_grad).
  void backward(View dhidden, const View& dvalues, const View& hidden) {
    if (dhidden.data()) std::fill(dhidden.data(), dhidden.data() + dhidden.numel(), T(0));
    ops::matmul_backward(dhidden, params_[0].trainable ? params_[0].grad : View{},
                         params_[1].trainable ? params_[1].grad : View{},
                         View(const_cast<T*>(dvalues.data()), with_one(dvalues.shape())), hidden,
                         params_[0].value);
  }

 private:
  static Shape with_one(const Shape& s) {
    std::vector<std::size_t> dims(s.begin(), s.end());
    dims.push_back(1);
    return Shape::from(dims);
  }

  std::size_t C_;
  CpuTensor<T> values_, grads_;
  std::vector<Parameter<T>> params_;
};

}  // namespace p4lm::rl
