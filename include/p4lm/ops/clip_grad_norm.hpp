#pragma once
// Global gradient-norm clipping over many tensors (torch.nn.utils.clip_grad_norm_).

#include <cmath>
#include <cstddef>
#include <span>
#include <type_traits>
#include <vector>

#include "p4lm/ops/detail/common.hpp"

namespace p4lm::ops {

// grads: any number of tensors of any shapes -> ‖(all elements)‖₂, summed in double in a fixed order
// (the same on any thread count).
template <Scalar T>
double global_grad_norm(std::span<const CpuView<T>> grads) {
  double sq = 0;
  for (const auto& g : grads) {
    const T* d = g.data();
    sq += detail::deterministic_sum(g.numel(), [d](std::size_t i) {
      const double x = d[i];
      return x * x;
    });
  }
  return std::sqrt(sq);
}

// grads as above -> returns the global norm before clipping; when it exceeds max_norm every tensor is
// scaled in place by max_norm / (norm + 1e-6) (PyTorch's formula). A non-finite norm scales nothing:
// the caller sees it in the return value and should skip the step.
template <Scalar T>
double clip_grad_norm(std::span<const CpuView<T>> grads, double max_norm) {
  if (!(max_norm > 0)) fail<InvalidArgument>("clip_grad_norm: max_norm ", max_norm, " must be > 0");
  const double norm = global_grad_norm<T>(grads);
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  const T scale = T(max_norm / (norm + 1e-6));
  for (CpuView<T> g : grads) {  // a copy of the view: its data() is writable
    T* d = g.data();
    detail::simd_map(
        g.numel(), [scale](auto x) { return x * scale; }, d, static_cast<const T*>(d));
  }
  return norm;
}

// The same for a vector of views (template deduction cannot see through std::span's conversions).
template <Scalar T>
double global_grad_norm(const std::vector<CpuView<T>>& grads) {
  return global_grad_norm<T>(std::span<const CpuView<T>>(grads));
}
template <Scalar T>
double clip_grad_norm(const std::vector<CpuView<T>>& grads, double max_norm) {
  return clip_grad_norm<T>(std::span<const CpuView<T>>(grads), max_norm);
}

}  // namespace p4lm::ops
