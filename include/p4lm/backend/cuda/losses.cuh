#pragma once
// Scalar losses on CUDA (ops/losses.hpp): MSE, logistic loss on logits, Bradley-Terry. Each forward
// returns the mean as a cuda::DeviceScalar<float> (summed in double in a fixed order, on the device);
// each backward adds dloss · d(mean)/d(input) element-wise.

#include <cstddef>

#include "p4lm/backend/cuda/common.cuh"

namespace p4lm::cuda::detail {
__device__ inline float softplus(float x) {
  return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x));
}
__device__ inline float sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  const float e = expf(x);
  return e / (1.0f + e);
}
struct SquaredDiff {
  const float* p;
  const float* t;
  __device__ double operator()(std::size_t i) const {
    const double d = double(p[i]) - double(t[i]);
    return d * d;
  }
};
struct BceTerm {
  const float* x;
  const float* y;
  __device__ double operator()(std::size_t i) const {
    return double(softplus(x[i])) - double(x[i]) * double(y[i]);
  }
};
struct BradleyTerryTerm {
  const float* w;
  const float* l;
  __device__ double operator()(std::size_t i) const { return double(softplus(l[i] - w[i])); }
};
struct MseGrad {
  float* d;
  const float* p;
  const float* t;
  float s;
  __device__ void operator()(std::size_t i) const { d[i] = d[i] + s * (p[i] - t[i]); }
};
struct BceGrad {
  float* d;
  const float* x;
  const float* y;
  float s;
  __device__ void operator()(std::size_t i) const { d[i] += s * (sigmoid(x[i]) - y[i]); }
};
struct BradleyTerryGrad {
  float* gw;  // either may be null
  float* gl;
  const float* w;
  const float* l;
  float s;
  __device__ void operator()(std::size_t i) const {
    const float g = s * sigmoid(l[i] - w[i]);
    if (gw) gw[i] -= g;
    if (gl) gl[i] += g;
  }
};

template <class F>
cuda::DeviceScalar<float> device_mean(std::size_t n, F f) {
  cuda::DeviceScalar<float> mean;
  if (n == 0) return mean;  // zero-initialised
  auto* partial = static_cast<double*>(current_context().workspace(sizeof(double) * sum_blocks(n)));
  queue_partial_sum(partial, n, f);
  queue_final_sum(mean.data(), partial, sum_blocks(n), MeanOf<float>{double(n)});
  return mean;
}
}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

// pred, target (any shape, equal) -> mean (pred - target)²
inline cuda::DeviceScalar<float> mse_forward(const CudaView& pred, const CudaView& target) {
  check::paired("mse_forward", "target", pred, target);
  return cuda::detail::device_mean(pred.numel(), cuda::detail::SquaredDiff{pred.data(), target.data()});
}

// -> dpred += dloss · 2 (pred - target) / n
inline void mse_backward(CudaView dpred, const CudaView& pred, const CudaView& target, float dloss = 1.0f) {
  check::paired("mse_backward", "target", pred, target);
  check::paired("mse_backward", "dpred", pred, dpred);
  const std::size_t n = pred.numel();
  if (n == 0) return;
  cuda::detail::for_each_index(
      "mse_backward", n,
      cuda::detail::MseGrad{dpred.data(), pred.data(), target.data(), 2.0f * dloss / static_cast<float>(n)});
}

// logits, labels in [0, 1] (any shape, equal) -> mean of softplus(x) - x·y
inline cuda::DeviceScalar<float> bce_with_logits_forward(const CudaView& logits, const CudaView& labels) {
  check::paired("bce_with_logits_forward", "labels", logits, labels);
  return cuda::detail::device_mean(logits.numel(), cuda::detail::BceTerm{logits.data(), labels.data()});
}

// -> dlogits += dloss · (σ(x) - y) / n
inline void bce_with_logits_backward(CudaView dlogits, const CudaView& logits, const CudaView& labels,
                                     float dloss = 1.0f) {
  check::paired("bce_with_logits_backward", "labels", logits, labels);
  check::paired("bce_with_logits_backward", "dlogits", logits, dlogits);
  const std::size_t n = logits.numel();
  if (n == 0) return;
  cuda::detail::for_each_index(
      "bce_with_logits_backward", n,
      cuda::detail::BceGrad{dlogits.data(), logits.data(), labels.data(), dloss / static_cast<float>(n)});
}

// chosen, rejected rewards (any shape, equal) -> mean of softplus(rejected - chosen)
inline cuda::DeviceScalar<float> bradley_terry_forward(const CudaView& chosen, const CudaView& rejected) {
  check::paired("bradley_terry_forward", "rejected", chosen, rejected);
  return cuda::detail::device_mean(chosen.numel(),
                                   cuda::detail::BradleyTerryTerm{chosen.data(), rejected.data()});
}

// -> dchosen -= dloss · σ(rejected - chosen) / n, drejected += the same; either may be {}
inline void bradley_terry_backward(CudaView dchosen, CudaView drejected, const CudaView& chosen,
                                   const CudaView& rejected, float dloss = 1.0f) {
  check::paired("bradley_terry_backward", "rejected", chosen, rejected);
  check::paired_grad("bradley_terry_backward", "dchosen", dchosen, chosen);
  check::paired_grad("bradley_terry_backward", "drejected", drejected, chosen);
  const bool dw = is_given(dchosen), dl = is_given(drejected);
  const std::size_t n = chosen.numel();
  if (n == 0 || (!dw && !dl)) return;
  cuda::detail::for_each_index(
      "bradley_terry_backward", n,
      cuda::detail::BradleyTerryGrad{dw ? dchosen.data() : nullptr, dl ? drejected.data() : nullptr,
                                     chosen.data(), rejected.data(), dloss / static_cast<float>(n)});
}

}  // namespace p4lm::ops
