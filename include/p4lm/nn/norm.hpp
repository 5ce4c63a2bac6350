#pragma once
// Normalisation layers over the last dimension, with the statistics backward needs cached by the caller:
//   LayerNorm  out = (x - mean) · rstd · w + b      (GPT-2, BERT)
//   RMSNorm    out = x · rstd · w                   (Llama), rstd = 1 / sqrt(mean(x²) + eps)
//
//   nn::RMSNorm<B> norm{&set["norm.weight"], nullptr, 1e-5};
//   norm.forward(out, mean, rstd, x);              // mean is unused by RMSNorm (pass {})
//   norm.backward(dx, dout, x, mean, rstd, scratch);   // dx += ...; gains accumulate if trainable
//
// A frozen gain still needs somewhere for its gradient (the ops always compute it): backward writes it
// to `scratch` (2 C elements), which the caller reuses across layers.

#include <cstddef>

#include "p4lm/nn/parameter_set.hpp"
#include "p4lm/ops/all_backends.hpp"

namespace p4lm::nn {

template <Backend B, Scalar T = float>
struct LayerNorm {
  using View = TensorView<B, T>;
  static constexpr bool has_mean = true;  // caches the row means as well as rstd

  Parameter<T, B>* weight = nullptr;  // (C)
  Parameter<T, B>* bias = nullptr;    // (C)
  double eps = 1e-5;

  static std::vector<ParameterSpec> specs(const std::string& prefix, std::size_t C) {
    return {{prefix + ".weight", {C}, false}, {prefix + ".bias", {C}, false}};
  }
  static LayerNorm bind(ParameterSet<B, T>& set, const std::string& prefix, double eps) {
    return {&set[prefix + ".weight"], &set[prefix + ".bias"], eps};
  }
  bool trainable() const noexcept { return weight->trainable || bias->trainable; }

  void forward(View out, View mean, View rstd, const View& x) const {
    ops::layernorm_forward(out, mean, rstd, x, weight->value, bias->value, T(eps));
  }
  void backward(View dx, const View& dout, const View& x, const View& mean, const View& rstd,
                View scratch) const {
    const std::size_t C = weight->value.numel();
    View dw = weight->trainable ? weight->grad : View(scratch.data(), Shape{C});
    View db = bias->trainable ? bias->grad : View(scratch.data() + C, Shape{C});
    ops::layernorm_backward(dx, dw, db, dout, x, weight->value, mean, rstd);
  }
};

template <Backend B, Scalar T = float>
struct RMSNorm {
  using View = TensorView<B, T>;
  static constexpr bool has_mean = false;

  Parameter<T, B>* weight = nullptr;  // (C)
  double eps = 1e-5;

  static std::vector<ParameterSpec> specs(const std::string& prefix, std::size_t C) {
    return {{prefix + ".weight", {C}, false}};
  }
  static RMSNorm bind(ParameterSet<B, T>& set, const std::string& prefix, double eps) {
    return {&set[prefix + ".weight"], eps};
  }
  bool trainable() const noexcept { return weight->trainable; }

  void forward(View out, View /*mean*/, View rstd, const View& x) const {
    ops::rmsnorm_forward(out, rstd, x, weight->value, T(eps));
  }
  void backward(View dx, const View& dout, const View& x, const View& /*mean*/, const View& rstd,
                View scratch) const {
    View dw = weight->trainable ? weight->grad : View(scratch.data(), Shape{weight->value.numel()});
    ops::rmsnorm_backward(dx, dw, dout, x, weight->value, rstd);
  }
};

}  // namespace p4lm::nn
