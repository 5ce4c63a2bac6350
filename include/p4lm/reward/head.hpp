#pragma once
// The small trained part of every reward: a one-hidden-layer MLP over frozen encoder features,
//   y = W2 tanh(W1 x + b1) + b2      x: (n, in) rows, y: (n, out)
// with forward/backward and named parameters, so the shared Trainer (train/trainer.hpp) trains it
// like any Model. out = 1 for the scalar rewards, the CF width for PreferenceRelevance.
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
    const T *w1 = values_.data(), *b1 = w1 + hidden_ * in_, *w2 = values_.data() + w2_,
            *b2 = w2 + out_ * hidden_;
    for (std::size_t r = 0; r < n; ++r) {
      const T* xr = x_.data() + r * in_;
      T* hr = h_.data() + r * hidden_;
      for (std::size_t j = 0; j < hidden_; ++j) {
        T a = b1[j];
        const T* wj = w1 + j * in_;
        for (std::size_t k = 0; k < in_; ++k) a += wj[k] * xr[k];
        hr[j] = std::tanh(a);
      }
      for (std::size_t o = 0; o < out_; ++o) {
        T a = b2[o];
        for (std::size_t j = 0; j < hidden_; ++j) a += w2[o * hidden_ + j] * hr[j];
        y[r * out_ + o] = a;
      }
    }
    n_ = n;
    return y;
  }

  // dy: (n, out) for the last forward(); adds to the parameter gradients.
  void backward(const T* dy) {
    T *g1 = grads_.data(), *gb1 = g1 + hidden_ * in_, *g2 = grads_.data() + w2_, *gb2 = g2 + out_ * hidden_;
    const T* w2 = values_.data() + w2_;
    std::vector<T> dh(hidden_);
    for (std::size_t r = 0; r < n_; ++r) {
      const T *xr = x_.data() + r * in_, *hr = h_.data() + r * hidden_, *dyr = dy + r * out_;
      std::fill(dh.begin(), dh.end(), T(0));
      for (std::size_t o = 0; o < out_; ++o) {
        gb2[o] += dyr[o];
        for (std::size_t j = 0; j < hidden_; ++j) {
          g2[o * hidden_ + j] += dyr[o] * hr[j];
          dh[j] += dyr[o] * w2[o * hidden_ + j];
        }
      }
      for (std::size_t j = 0; j < hidden_; ++j) {
        const T da = dh[j] * (T(1) - hr[j] * hr[j]);
        gb1[j] += da;
        T* gj = g1 + j * in_;
        for (std::size_t k = 0; k < in_; ++k) gj[k] += da * xr[k];
      }
    }
  }

 private:
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
