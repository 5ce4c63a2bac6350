#pragma once
// Softmax over the last dimension, forward and backward (CPU):
//   softmax_forward(probs, logits)            probs (..., V) = softmax(logits (..., V)) per row
//   softmax_backward(dlogits, dprobs, probs)  dlogits (..., V) = probs ⊙ (dprobs − Σ probs·dprobs)
// dlogits is written (not accumulated) and may be dprobs itself. Used where a softmax's output is the
// product (the CF adapters' vocabulary mixtures); the losses fuse their own softmax.

#include <cstddef>

#include "p4lm/core/tensor.hpp"
#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/detail/row_softmax.hpp"

namespace p4lm::ops {

// The max and Σ exp(x - max) of one row of logits, read once, exactly as logprob_gather_forward and the
// cross-entropy compute them: a sampler that reports log-probabilities through these agrees with the
// training pass bit for bit.
using detail::MaxSumExp;
using detail::row_max_sum_exp;

template <Scalar T>
void softmax_forward(CpuView<T> probs, const CpuView<T>& logits) {
  expect_shape("softmax_forward: probs", probs.shape(), logits.shape());
  const std::size_t V = logits.shape().last(), rows = V ? logits.numel() / V : 0;
  for (std::size_t r = 0; r < rows; ++r) {
    const T* z = logits.data() + r * V;
    T* p = probs.data() + r * V;
    const T inv = T(1) / detail::row_sum_exp(z, V, detail::row_max(z, V), p);
    for (std::size_t v = 0; v < V; ++v) p[v] *= inv;
  }
}

template <Scalar T>
void softmax_backward(CpuView<T> dlogits, const CpuView<T>& dprobs, const CpuView<T>& probs) {
  expect_shape("softmax_backward: dprobs", dprobs.shape(), probs.shape());
  expect_shape("softmax_backward: dlogits", dlogits.shape(), probs.shape());
  const std::size_t V = probs.shape().last(), rows = V ? probs.numel() / V : 0;
  for (std::size_t r = 0; r < rows; ++r) {
    const T* d = dprobs.data() + r * V;
    const T* p = probs.data() + r * V;
    T* out = dlogits.data() + r * V;
    T dot = 0;
    for (std::size_t v = 0; v < V; ++v) dot += p[v] * d[v];
    for (std::size_t v = 0; v < V; ++v) out[v] = p[v] * (d[v] - dot);
  }
}

}  // namespace p4lm::ops
