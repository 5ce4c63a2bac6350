#pragma once
// AdamW on CUDA (ops/adamw.hpp: PyTorch's torch.optim.AdamW), element-wise via thrust. The bias
// corrections and 1 - β are computed on the host in double and rounded once, as on the CPU.
//
// The config is any type with the fields of ops::AdamWConfig (lr, beta1, beta2, eps, weight_decay): the
// struct itself is defined in the CPU header, so this overload takes it as a template parameter and
// CUDA-only code may pass its own struct with those fields.

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "p4lm/backend/cuda/common.cuh"

namespace p4lm::cuda::detail {
struct AdamWStep {
  float* p;
  const float* g;
  float* m;
  float* v;
  float lr, b1, b2, one_b1, one_b2, eps, wd, c1, c2;
  __device__ void operator()(std::size_t i) const {
    const float gi = g[i];
    const float mi = b1 * m[i] + one_b1 * gi;
    const float vi = b2 * v[i] + one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= lr * (mi * c1 / (sqrtf(vi * c2) + eps) + wd * p[i]);
  }
};
}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

template <class Config>
concept AdamWConfigLike = requires(const Config& c) {
  double(c.lr);
  double(c.beta1);
  double(c.beta2);
  double(c.eps);
  double(c.weight_decay);
};

// params, grads, m, v (same shape); step = t >= 1 -> params, m, v updated in place (grads read only)
template <AdamWConfigLike Config>
void adamw_update(CudaView params, const CudaView& grads, CudaView m, CudaView v, std::int64_t step,
                  const Config& config) {
  check::adamw_update(params, grads, m, v, step);
  const float c1 = static_cast<float>(1.0 / (1.0 - std::pow(double(config.beta1), double(step))));
  const float c2 = static_cast<float>(1.0 / (1.0 - std::pow(double(config.beta2), double(step))));
  cuda::detail::for_each_index(
      "adamw_update", params.numel(),
      cuda::detail::AdamWStep{params.data(), grads.data(), m.data(), v.data(), static_cast<float>(config.lr),
                              static_cast<float>(config.beta1), static_cast<float>(config.beta2),
                              static_cast<float>(1.0 - double(config.beta1)),
                              static_cast<float>(1.0 - double(config.beta2)), static_cast<float>(config.eps),
                              static_cast<float>(config.weight_decay), c1, c2});
}

}  // namespace p4lm::ops
