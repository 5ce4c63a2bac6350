#pragma once
// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay and bias correction, as PyTorch's
// torch.optim.AdamW computes it.

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/shape_checks.hpp"

namespace p4lm::ops {

struct AdamWConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // pass 0 for biases and norm gains (the caller groups its tensors)
};

// params, grads, m, v (same shape); step = t, 1 for the first update (the caller keeps the counter,
// saved with checkpoints) ->
//   m = β1 m + (1-β1) g,  v = β2 v + (1-β2) g²,
//   params -= lr · ( m/(1-β1^t) / (√(v/(1-β2^t)) + eps) + weight_decay · params )
// Updates params, m and v in place; grads are read only (zero them yourself).
template <Scalar T>
void adamw_update(CpuView<T> params, const CpuView<T>& grads, CpuView<T> m, CpuView<T> v, std::int64_t step,
                  const AdamWConfig& config) {
  check::adamw_update(params, grads, m, v, step);
  // 1 - β in double, then rounded: in float, 1 - 0.999f is off by 1e-5 relative.
  const T lr = T(config.lr), b1 = T(config.beta1), b2 = T(config.beta2), one_b1 = T(1.0 - config.beta1),
          one_b2 = T(1.0 - config.beta2), eps = T(config.eps), wd = T(config.weight_decay);
  // Bias corrections in double: β^t for large t underflows gracefully and stays exact to T precision.
  const T c1 = T(1.0 / (1.0 - std::pow(config.beta1, double(step))));
  const T c2 = T(1.0 / (1.0 - std::pow(config.beta2, double(step))));
  T *p = params.data(), *mm = m.data(), *vv = v.data();
  const T* g = grads.data();
  // One update, written once for xsimd batches and for scalars (the tail): std::sqrt alone would not
  // vectorise (errno), xsimd::sqrt does.
  const auto update = [=](auto pi, auto gi, auto& mi, auto& vi) {
    using std::sqrt;
    using xsimd::sqrt;
    mi = b1 * mi + one_b1 * gi;
    vi = b2 * vi + one_b2 * gi * gi;
    return pi - lr * (mi * c1 / (sqrt(vi * c2) + eps) + wd * pi);
  };
  using Batch = xsimd::batch<T>;
  constexpr std::size_t W = Batch::size;
  detail::parallel_ranges(params.numel(), [&](std::size_t begin, std::size_t end) {
    std::size_t i = begin;
    for (; i + W <= end; i += W) {
      Batch mi = Batch::load_unaligned(mm + i), vi = Batch::load_unaligned(vv + i);
      const Batch pi = update(Batch::load_unaligned(p + i), Batch::load_unaligned(g + i), mi, vi);
      pi.store_unaligned(p + i);
      mi.store_unaligned(mm + i);
      vi.store_unaligned(vv + i);
    }
    for (; i < end; ++i) p[i] = update(p[i], g[i], mm[i], vv[i]);
  });
}

}  // namespace p4lm::ops
