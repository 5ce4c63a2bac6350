#pragma once
// Linear: out = in · Wᵀ + b, W stored (out_features, in_features) as ops::matmul_forward takes it.
//
//   nn::Linear<B> fc{&set["fc.weight"], &set["fc.bias"]};   // bias optional (nullptr)
//   fc.forward(out, in);                 // in (..., K) -> out (..., M)
//   fc.backward(din, dout, in);          // din += dout · W; dW += doutᵀ · in; db += Σ dout (if trainable)
//
// Decoding runs a few rows through many matrices: linear_streamed() sends them to the CPU's skinny
// kernel (backend/cpu/skinny_gemm.hpp), which streams each weight once for every row of the batch and
// runs several products that read the same input in one pass; on other backends it is the dense product.

#include <array>
#include <cstddef>
#include <initializer_list>
#include <span>
#include <type_traits>

#include "p4lm/backend/cpu/skinny_gemm.hpp"
#include "p4lm/nn/parameter_set.hpp"
#include "p4lm/ops/all_backends.hpp"

namespace p4lm::nn {

template <Backend B, Scalar T = float>
struct Linear {
  using View = TensorView<B, T>;

  Parameter<T, B>* weight = nullptr;  // (M, K)
  Parameter<T, B>* bias = nullptr;    // (M) or none

  static std::vector<ParameterSpec> specs(const std::string& prefix, std::size_t in, std::size_t out,
                                          bool with_bias) {
    std::vector<ParameterSpec> s{{prefix + ".weight", {out, in}, true}};
    if (with_bias) s.push_back({prefix + ".bias", {out}, false});
    return s;
  }
  static Linear bind(ParameterSet<B, T>& set, const std::string& prefix, bool with_bias) {
    return {&set[prefix + ".weight"], with_bias ? &set[prefix + ".bias"] : nullptr};
  }

  std::size_t in_features() const { return weight->value.dim(1); }
  std::size_t out_features() const { return weight->value.dim(0); }
  bool trainable() const noexcept { return weight->trainable || (bias && bias->trainable); }

  void forward(View out, const View& in) const {
    ops::matmul_forward(out, in, weight->value, value_of(bias));
  }
  // Accumulates; din may be {} when the input's gradient is not needed.
  void backward(View din, const View& dout, const View& in) const {
    ops::matmul_backward(din, grad_of(weight), grad_of(bias), dout, in, weight->value);
  }
};

// One product of linear_streamed: out = in · weightᵀ + bias (weight/bias may be row windows of a
// parameter, e.g. the q, k or v third of GPT-2's fused projection).
template <Backend B, Scalar T>
struct StreamedProduct {
  TensorView<B, T> out;
  TensorView<B, T> weight;
  TensorView<B, T> bias{};
};

// Rows beyond which a dense GEMM beats streaming the weights (prefill-sized inputs).
inline constexpr std::size_t streamed_max_rows = 32;

// Every product reads the same input (rows, K). Up to three products per call.
template <Backend B, Scalar T>
void linear_streamed(const TensorView<B, T>& in, std::initializer_list<StreamedProduct<B, T>> list) {
  const std::span<const StreamedProduct<B, T>> outs(list.begin(), list.size());
  const std::size_t rows = in.shape().rows(), K = in.shape().last();
  if constexpr (!std::is_same_v<B, backend::cpu>) {
    for (const auto& o : outs) ops::matmul_forward(o.out, in, o.weight, o.bias);
  } else {
    if (rows > streamed_max_rows) {
      for (const auto& o : outs) ops::matmul_forward(o.out, in, o.weight, o.bias);
      return;
    }
    std::array<backend::cpu_blas::SkinnyProduct<T>, 3> products;
    std::size_t count = 0;
    for (StreamedProduct<B, T> o : outs) {  // a copy: data() of a const view is const
      const std::size_t M = o.weight.dim(0);
      expect_shape("linear_streamed: weight", o.weight.shape(), Shape{M, K});
      expect_shape("linear_streamed: out", o.out.shape(), with_last(in.shape(), M));
      if (is_given(o.bias)) expect_shape("linear_streamed: bias", o.bias.shape(), Shape{M});
      auto& p = products.at(count++);
      p.w = o.weight.data(), p.m = M, p.out = o.out.data(), p.ldo = M;
      p.bias = is_given(o.bias) ? o.bias.data() : nullptr;
    }
    backend::cpu_blas::skinny_gemm_nt<T>(
        in.data(), rows, K, K, std::span<const backend::cpu_blas::SkinnyProduct<T>>(products.data(), count));
  }
}

}  // namespace p4lm::nn
