#pragma once
// The small trained part of every reward: a one-hidden-layer MLP over frozen encoder features,
//   y = W2 tanh(W1 x + b1) + b2      x: (n, in) rows, y: (n, out)
// with forward/backward (two GEMMs each way, OpenBLAS) and named parameters, so the shared Trainer
// (train/trainer.hpp) trains it like any Model. out = 1 for the scalar rewards, the CF width for
// PreferenceRelevance.
//
//   reward::MlpHead<float> head(1152, 64, 1, /*seed=*/1);
//   auto y = head.forward(x.data(), n);   // kept for backward
//   head.zero_grad(); head.backward(dy.data());

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/core/tensor_view.hpp"
#include "p4lm/nn/parameter.hpp"
#include "p4lm/ops/matmul.hpp"

namespace p4lm::reward {

template <class T = float>
class MlpHead {
 public:
  using value_type = T;

  MlpHead() = default;
  MlpHead(std::size_t in, std::size_t hidden, std::size_t out, std::uint64_t seed = 1)
      : in_(in), hidden_(hidden), out_(out) {
    if (in == 0 || hidden == 0 || out == 0) fail<InvalidArgument>("MlpHead: widths must be positive");
    values_.assign(size(), T(0));
    grads_.assign(size(), T(0));
    bind();
    // Glorot-style scales; biases 0.
    Rng rng(seed, 0x4ead);
    const double s1 = 1.0 / std::sqrt(double(in)), s2 = 1.0 / std::sqrt(double(hidden));
    for (std::size_t i = 0; i < hidden * in; ++i) values_[i] = T(rng.normal() * s1);
    for (std::size_t i = 0; i < out * hidden; ++i) values_[w2_ + i] = T(rng.normal() * s2);
  }
  MlpHead(const MlpHead& o)
      : in_(o.in_), hidden_(o.hidden_), out_(o.out_), values_(o.values_), grads_(o.grads_) {
    bind();
  }
  MlpHead& operator=(const MlpHead& o) {
    if (this != &o) {
      in_ = o.in_, hidden_ = o.hidden_, out_ = o.out_, values_ = o.values_, grads_ = o.grads_;
      bind();
    }
    return *this;
  }

  std::size_t in() const noexcept { return in_; }
  std::size_t hidden() const noexcept { return hidden_; }
  std::size_t out() const noexcept { return out_; }
  std::span<Parameter<T>> parameters() noexcept { return params_; }
  std::span<const Parameter<T>> parameters() const noexcept { return params_; }
  void zero_grad() { std::fill(grads_.begin(), grads_.end(), T(0)); }
  std::span<T> values() noexcept { return values_; }

  // (n, in) rows -> (n, out); keeps x (copied) and the hidden activations for backward().
  std::vector<T> forward(const T* x, std::size_t n) {
    x_.assign(x, x + n * in_);
    h_.assign(n * hidden_, T(0));
    std::vector<T> y(n * out_);
    if (n == 0) return y;
    ops::matmul_forward(rows(h_.data(), n, hidden_), rows(x_.data(), n, in_), params_[0].value,
                        params_[1].value);
    for (auto& v : h_) v = std::tanh(v);
    ops::matmul_forward(rows(y.data(), n, out_), rows(h_.data(), n, hidden_), params_[2].value,
                        params_[3].value);
    n_ = n;
    return y;
  }

  // dy: (n, out) for the last forward(); adds to the parameter gradients.
  void backward(const T* dy) {
    if (n_ == 0) return;
    std::vector<T> dh(n_ * hidden_, T(0));
    ops::matmul_backward(rows(dh.data(), n_, hidden_), params_[2].grad, params_[3].grad,
                         rows(const_cast<T*>(dy), n_, out_), rows(h_.data(), n_, hidden_), params_[2].value);
    for (std::size_t i = 0; i < dh.size(); ++i) dh[i] *= T(1) - h_[i] * h_[i];
    ops::matmul_backward(ops::CpuView<T>{}, params_[0].grad, params_[1].grad, rows(dh.data(), n_, hidden_),
                         rows(x_.data(), n_, in_), params_[0].value);
  }

 private:
  static ops::CpuView<T> rows(T* p, std::size_t n, std::size_t width) {
    return ops::CpuView<T>(p, Shape{n, width});
  }
  std::size_t size() const noexcept { return hidden_ * in_ + hidden_ + out_ * hidden_ + out_; }
  void bind() {
    w2_ = hidden_ * in_ + hidden_;
    params_.clear();
    const auto add = [&](const char* name, std::size_t off, Shape s, bool decay) {
      params_.push_back({name, TensorView<backend::cpu, T>(values_.data() + off, s),
                         TensorView<backend::cpu, T>(grads_.data() + off, s), true, decay});
    };
    if (values_.empty()) return;
    add("head.0.weight", 0, Shape{hidden_, in_}, true);
    add("head.0.bias", hidden_ * in_, Shape{hidden_}, false);
    add("head.1.weight", w2_, Shape{out_, hidden_}, true);
    add("head.1.bias", w2_ + out_ * hidden_, Shape{out_}, false);
  }

  std::size_t in_ = 0, hidden_ = 0, out_ = 0, w2_ = 0, n_ = 0;
  std::vector<T> values_, grads_, x_, h_;
  std::vector<Parameter<T>> params_;
};

}  // namespace p4lm::reward
